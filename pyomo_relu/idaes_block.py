"""The block side of :class:`~pyomo_relu.idaes.ReLUSurrogate`: ties' data, initialisation, units, dof.

Split from :mod:`pyomo_relu.idaes` (which re-exports the public names):
:func:`initialize_surrogate_block`, :func:`degrees_of_freedom_without_binaries` and the
unit conversions of the tie constraints, the ties themselves and the conversions of the
surrogate's labels and scalings.  Needs only Pyomo, never IDAES.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pyomo_relu.components import within
from pyomo_relu.errors import PyomoReluError, ShapeMismatchError
from pyomo_relu.network import Scaling

logger = logging.getLogger("pyomo_relu.idaes")


# ------------------------------------------------------------ block helpers
class _SurrogateLinks:
    """What :func:`initialize_surrogate_block` and the dof helper need to know of a block."""

    def __init__(
        self,
        input_vars: list,
        output_vars: list,
        input_units: list,
        output_units: list,
        input_scaling: Scaling | None,
        output_scaling: Scaling | None,
    ) -> None:
        self.input_vars = input_vars
        self.output_vars = output_vars
        self.input_units = input_units
        self.output_units = output_units
        n_in, n_out = len(input_vars), len(output_vars)
        self.input_offset = input_scaling.offset if input_scaling is not None else np.zeros(n_in)
        self.input_factor = input_scaling.factor if input_scaling is not None else np.ones(n_in)
        self.output_offset = output_scaling.offset if output_scaling is not None else np.zeros(n_out)
        self.output_factor = output_scaling.factor if output_scaling is not None else np.ones(n_out)


def initialize_surrogate_block(block: Any, input_values: Sequence[float] | None = None) -> None:
    """Set every variable of a ``ReLUSurrogate`` block from a forward pass; no solver.

    The inputs are ``input_values`` (in the flowsheet variables' units) if given, else
    the current values of the input variables (those without a value get the centre of
    the network's box, and that value).  Every network variable, binary, disjunct
    indicator and disaggregated copy is set, then the output variables, so that every
    constraint of the block holds (to rounding).  An input outside the network's box is
    clipped (the tie constraint is then violated) and a warning is logged.

    Attached to each block as ``block.initialize()`` by ``populate_block``.
    """
    links = _links(block)
    nn = block.nn
    box_lower, box_upper = nn.neuron_bounds.input_lower, nn.neuron_bounds.input_upper  # scaled
    x = np.empty(len(links.input_vars))
    for i, (var, unit) in enumerate(zip(links.input_vars, links.input_units)):
        if input_values is not None:
            var.set_value(float(input_values[i]), skip_validation=True)
        if var.value is None:
            centre = 0.5 * (box_lower[i] + box_upper[i]) * links.input_factor[i] + links.input_offset[i]
            var.set_value(_from_network_value(var, centre, unit), skip_validation=True)
        x[i] = _to_network_value(var, var.value, unit)
    scaled = (x - links.input_offset) / links.input_factor
    outside = np.flatnonzero((scaled < box_lower - 1e-9) | (scaled > box_upper + 1e-9))
    for k in outside.tolist():
        logger.warning(
            "%s: input %s = %s is outside the network's box; clipped for the forward pass",
            block.name,
            links.input_vars[k].name,
            links.input_vars[k].value,
        )
    nn.initialize(input_values=np.clip(scaled, box_lower, box_upper))
    for j, (var, unit) in enumerate(zip(links.output_vars, links.output_units)):
        if not var.fixed:
            y = nn.outputs[j].value * links.output_factor[j] + links.output_offset[j]
            var.set_value(_from_network_value(var, y, unit), skip_validation=True)


def degrees_of_freedom_without_binaries(block: Any) -> int:
    """Degrees of freedom of ``block`` with each embedded network counted as ``y = f(x)``.

    IDAES' ``degrees_of_freedom`` is (unfixed variables in active equalities) − (active
    equalities).  A ReLU network is a function, but its MILP form determines ``post``
    of an unstable neuron by inequalities and binaries, so IDAES counts one spare degree
    of freedom per unstable neuron (more with ``gdp.hull`` copies).  Here every
    :class:`~pyomo_relu.block.ReLUNetBlock` (with, for a ``ReLUSurrogate`` block, its tie
    constraints) is left out of the count and replaced by ``n_outputs`` equalities over
    its unfixed input and output variables: the answer is what IDAES reports for the
    same model with the network replaced by ``n_outputs`` explicit equations.
    """
    import pyomo.environ as pe
    from pyomo.common.collections import ComponentSet
    from pyomo.core.expr.visitor import identify_variables

    from pyomo_relu.block import ReLUNetBlockData

    excluded_blocks = ComponentSet()
    excluded_constraints = ComponentSet()
    io_vars = ComponentSet()
    n_equations = 0
    for data in block.component_data_objects(pe.Block, active=True, descend_into=True):
        if not isinstance(data, ReLUNetBlockData) or not data.is_built:
            continue
        parent = data.parent_block()
        links = getattr(parent, "_relu_surrogate", None) if parent is not None else None
        excluded_blocks.add(data)
        if links is not None and parent.component("nn") is data:
            for name in ("input_surrogate_ties", "output_surrogate_ties"):
                excluded_constraints.update(parent.component(name).values())
            ins, outs = links.input_vars, links.output_vars
        else:
            ins, outs = data.input_vars, data.output_vars
        io_vars.update(v for v in list(ins) + list(outs) if not v.fixed)
        n_equations += len(outs)
    variables = ComponentSet(io_vars)
    for constraint in block.component_data_objects(pe.Constraint, active=True, descend_into=True):
        if not constraint.equality or constraint in excluded_constraints:
            continue
        if within(constraint, excluded_blocks):
            continue
        n_equations += 1
        variables.update(identify_variables(constraint.body, include_fixed=False))
    return len(variables) - n_equations


def add_surrogate_ties(block: Any, links: _SurrogateLinks, in_labels: list, out_labels: list) -> None:
    """``input_surrogate_ties``/``output_surrogate_ties``: the flowsheet variables to ``block.nn``'s."""
    import pyomo.environ as pe

    in_index = {label: i for i, label in enumerate(in_labels)}
    out_index = {label: j for j, label in enumerate(out_labels)}

    def input_tie(b: Any, label: Any) -> Any:
        i = in_index[label]
        value = _dimensionless(links.input_vars[i], links.input_units[i])
        offset, factor = links.input_offset[i], links.input_factor[i]
        scaled = value if (offset, factor) == (0.0, 1.0) else (value - offset) / factor
        return b.nn.inputs[i] == scaled

    def output_tie(b: Any, label: Any) -> Any:
        j = out_index[label]
        value = _dimensionless(links.output_vars[j], links.output_units[j])
        offset, factor = links.output_offset[j], links.output_factor[j]
        unscaled = b.nn.outputs[j] if (offset, factor) == (0.0, 1.0) else factor * b.nn.outputs[j] + offset
        return value == unscaled

    block.input_surrogate_ties = pe.Constraint(pe.Set(initialize=in_labels, ordered=True), rule=input_tie)
    block.output_surrogate_ties = pe.Constraint(pe.Set(initialize=out_labels, ordered=True), rule=output_tie)
    block._relu_surrogate = links


def _links(block: Any) -> _SurrogateLinks:
    links = getattr(block, "_relu_surrogate", None)
    if links is None:
        raise PyomoReluError(
            f"{block.name} was not built from a ReLUSurrogate (call build_model(surrogate, ...) first)"
        )
    return links


# ------------------------------------------------------------------- units
def _dimensionless(var: Any, unit: Any) -> Any:
    """``var`` divided by its units, or converted to ``unit`` and divided by it."""
    from pyomo.environ import units as pyunits

    if unit is None:
        return var / pyunits.get_units(var)
    return pyunits.convert(var, to_units=unit) / unit


def _to_network_value(var: Any, value: float, unit: Any) -> float:
    """A value of ``var`` (in its units) in the network's units."""
    if unit is None:
        return float(value)
    from pyomo.environ import units as pyunits

    return float(pyunits.convert_value(float(value), from_units=pyunits.get_units(var), to_units=unit))


def _from_network_value(var: Any, value: float, unit: Any) -> float:
    if unit is None:
        return float(value)
    from pyomo.environ import units as pyunits

    return float(pyunits.convert_value(float(value), from_units=unit, to_units=pyunits.get_units(var)))


def _units_map(units: Mapping[Any, Any] | None, labels: list, what: str) -> dict[Any, Any]:
    if not units:
        return {}
    unknown = [k for k in units if k not in labels]
    if unknown:
        raise PyomoReluError(f"{what} names {unknown}, which are not labels {labels}")
    return {k: _as_units(u) for k, u in units.items() if u is not None}


def _as_units(unit: Any) -> Any:
    """A Pyomo unit from a unit object or a string (``"m^3/s"``, ``"K"``)."""
    from pyomo.environ import units as pyunits

    if isinstance(unit, str):
        try:
            return getattr(pyunits, unit)
        except Exception as exc:  # pint raises its own UndefinedUnitError
            raise PyomoReluError(f"unknown units {unit!r}: {exc}") from None
    return unit


def _units_str(unit: Any) -> str | None:
    if unit is None:
        return None
    from pyomo.environ import units as pyunits

    return str(pyunits.get_units(unit))


# ------------------------------------------------------ surrogate arguments
def _labels(given: Sequence[Any] | None, names: Sequence[str] | None, size: int, prefix: str, what: str) -> list:
    labels = list(given) if given is not None else (list(names) if names else [f"{prefix}{i}" for i in range(size)])
    if len(labels) != size:
        raise ShapeMismatchError(f"{len(labels)} {what} labels for a network with {size} {what}s")
    if len(set(labels)) != len(labels):
        raise PyomoReluError(f"duplicate {what} labels: {labels}")
    return labels


def _as_scaling(spec: Any, labels: list, what: str) -> Scaling | None:
    """Accept a Scaling, an IDAES OffsetScaler, a dict label -> (offset, factor) or (offsets, factors)."""
    if spec is None or isinstance(spec, Scaling):
        if spec is not None and spec.size != len(labels):
            raise ShapeMismatchError(f"{what} has {spec.size} entries for {len(labels)} labels")
        return spec
    if hasattr(spec, "offset_series") and hasattr(spec, "factor_series"):  # IDAES OffsetScaler
        missing = [k for k in labels if k not in list(spec.expected_columns())]
        if missing:
            raise PyomoReluError(f"{what}: the OffsetScaler has no columns {missing}")
        offset = spec.offset_series()[labels].to_numpy(dtype=float)
        factor = spec.factor_series()[labels].to_numpy(dtype=float)
        return Scaling(offset, factor)
    if isinstance(spec, Mapping):
        missing = [k for k in labels if k not in spec]
        if missing:
            raise PyomoReluError(f"{what} has no (offset, factor) for {missing}")
        return Scaling(np.array([float(spec[k][0]) for k in labels]), np.array([float(spec[k][1]) for k in labels]))
    offsets, factors = spec
    return Scaling(
        np.broadcast_to(np.asarray(offsets, float), (len(labels),)),
        np.broadcast_to(np.asarray(factors, float), (len(labels),)),
    )
