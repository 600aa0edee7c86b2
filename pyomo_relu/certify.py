r"""A certified interval for the true optimum of a model whose networks are relaxed (``pwl``).

A :class:`~pyomo_relu.block.ReLUNetBlock` built with ``formulation="pwl"`` (or
``"relaxation"``, certified on request) contains every forward pass of its network, so solving the model gives
a **proven bound** on the true optimum (the solver's dual bound: a lower bound when
minimising).  Evaluating the true network (``net.evaluate``) at the solution's inputs,
fixing each relaxed block's inputs and outputs to those values and re-solving the rest of
the model gives a point that is **feasible for the true model**; its objective is the
other end.  The true global optimum lies in ``[bound, value]`` (minimising) and the gap
shrinks with the tolerance.

:func:`certify_solution` does this for a solved Pyomo model (``solve()`` calls it and
stores the answer as ``SolveResult.certified``); :func:`certify_point` is the same
check in plain numpy for callers that hold the network, a candidate input and an
objective as a function of inputs and outputs (``optimize``/``verify``-style searches).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyomo_relu.errors import PyomoReluError
from pyomo_relu.network import NetworkDefinition

logger = logging.getLogger(__name__)

__all__ = ["CertifiedInterval", "approximated_blocks", "certify_point", "certify_solution"]

#: Formulations whose blocks are certified automatically by ``solve()``: ``relaxation``
#: blocks are relaxations too, but are solved for their dual bound alone (pass them as
#: ``blocks=`` to :func:`certify_solution` to certify them).
RELAXING = ("pwl",)


@dataclass(frozen=True)
class CertifiedInterval:
    """Where the true optimum is: between a proven ``bound`` and a checked feasible ``value``.

    ``sense`` is ``"minimize"`` or ``"maximize"``.  ``bound`` is ``None`` when the solver
    proved none; ``value`` is ``None`` when no true-feasible point was found (the
    relaxed solution's inputs made the rest of the model infeasible once the true
    network outputs were fixed).  ``inputs``/``outputs`` map each relaxed block's name to
    the input point and the true network outputs there (``net.evaluate``);
    ``max_violation`` is the largest constraint violation at the feasible point;
    ``approximation_error`` maps block names to
    :meth:`~pyomo_relu.block.ReLUNetBlockData.approximation_error`.
    """

    sense: str
    bound: float | None
    value: float | None
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    max_violation: float = 0.0
    approximation_error: dict[str, np.ndarray] = field(default_factory=dict)
    message: str = ""

    @property
    def lower(self) -> float:
        """Lower end of the interval (``-inf`` when unknown)."""
        end = self.bound if self.sense == "minimize" else self.value
        return -math.inf if end is None else float(end)

    @property
    def upper(self) -> float:
        end = self.value if self.sense == "minimize" else self.bound
        return math.inf if end is None else float(end)

    @property
    def gap(self) -> float | None:
        """``upper - lower`` (``None`` when an end is missing)."""
        if self.bound is None or self.value is None:
            return None
        return self.upper - self.lower

    @property
    def relative_gap(self) -> float | None:
        gap = self.gap
        return None if gap is None else gap / max(1.0, abs(self.value))  # type: ignore[arg-type]

    def __str__(self) -> str:
        gap = "" if self.gap is None else f", gap {self.gap:.3g}"
        return f"true optimum in [{self.lower:.8g}, {self.upper:.8g}]{gap}"


def certify_point(
    net: NetworkDefinition,
    inputs: Any,
    bound: float | None,
    sense: str,
    objective: Callable[[np.ndarray, np.ndarray], float],
    name: str = "network",
) -> CertifiedInterval:
    """Numpy version: the true network at ``inputs`` gives the feasible end of the interval.

    ``objective(x, y)`` is the objective at inputs ``x`` and network outputs ``y``;
    ``bound`` a proven bound of the relaxation (e.g. from a branch-and-bound over PWL or
    CROWN relaxations).  The inputs are clipped to the network's box.
    """
    _check_sense(sense)
    x = np.clip(np.asarray(inputs, dtype=np.float64), net.input_lower, net.input_upper)
    y = net.evaluate(x)
    value = float(objective(x, y))
    return CertifiedInterval(sense, bound, value if math.isfinite(value) else None, {name: x}, {name: y})


def approximated_blocks(model: Any) -> list[Any]:
    """Built ReLU blocks of ``model`` with a ``pwl`` layer (a relaxation of the network)."""
    import pyomo.environ as pe

    from pyomo_relu.block import ReLUNetBlockData

    found = []
    for data in model.component_data_objects(pe.Block, active=True, descend_into=True):
        if (
            isinstance(data, ReLUNetBlockData)
            and data.is_built
            and any(name in RELAXING for name, _ in data._layer_contexts)
        ):
            found.append(data)
    return found


def certify_solution(
    model: Any,
    result: Any,
    *,
    solver: str = "highs",
    time_limit: float | None = None,
    mip_gap: float | None = None,
    options: dict[str, Any] | None = None,
    load: str = "feasible",
    blocks: list[Any] | None = None,
) -> CertifiedInterval | None:
    """The certified interval of a solved model (``None`` when no block is relaxed).

    ``result`` is the :class:`~pyomo_relu.solvers.SolveResult` of the relaxed model.
    The feasible end: every relaxed block's inputs are fixed at the solution (clipped to
    the network's box), its outputs at ``net.evaluate`` of them, the block is deactivated
    and the rest of the model re-solved with ``solver``.  ``load="feasible"`` leaves that
    true-feasible point in the model (every block re-initialised by a forward pass, so
    ``get_error()`` is 0); ``load="relaxed"`` restores the relaxed solution.
    """
    import pyomo.environ as pe

    from pyomo_relu.solvers import _active_objective

    if load not in ("feasible", "relaxed"):
        raise PyomoReluError(f"certify_solution: load must be 'feasible' or 'relaxed', not {load!r}")
    blocks = approximated_blocks(model) if blocks is None else blocks
    if not blocks:
        return None
    sense = "minimize" if _active_objective(model).sense == pe.minimize else "maximize"
    errors = {b.name: b.approximation_error() for b in blocks}
    if not result.has_solution:
        message = "relaxation infeasible: so is the true model" if result.status == "infeasible" else result.status
        return CertifiedInterval(sense, result.bound, None, approximation_error=errors, message=message)
    saved = {id(v): (v, v.value, v.fixed) for v in model.component_data_objects(pe.Var, descend_into=True)}
    point = _TruePoint(blocks)
    check = point.solve_rest(model, dict(solver=solver, time_limit=time_limit, mip_gap=mip_gap, options=options))
    found = check is not None and check.has_solution
    value = check.objective if found and check is not None else None
    violation = _max_violation(model, blocks) if found else math.inf
    _warn_beyond_bound(value, result.bound, sense)
    if value is not None and load == "feasible":
        point.load(blocks)
    else:
        _restore(saved.values())
    return CertifiedInterval(
        sense, result.bound, value, point.inputs, point.outputs, violation, errors, point.message(check)
    )


class _TruePoint:
    """The relaxed blocks' inputs (clipped to their boxes) and the true network outputs there."""

    def __init__(self, blocks: list[Any]) -> None:
        self.inputs: dict[str, np.ndarray] = {}
        self.outputs: dict[str, np.ndarray] = {}
        self.clash: list[str] = []
        for b in blocks:
            box = b.neuron_bounds
            x = np.clip([v.value for v in b.input_vars], box.input_lower, box.input_upper)
            y = b.network.evaluate(x)
            self.inputs[b.name], self.outputs[b.name] = x, y
            tol = 1e-6 * np.maximum(1.0, np.abs(y))
            self.clash += [
                v.name
                for v, value, t in zip(b.output_vars, y, tol)  # a fixed value or a bound broken
                if (v.fixed and abs(v.value - value) > t)
                or (v.lb is not None and value < v.lb - t)
                or (v.ub is not None and value > v.ub + t)
            ]
        self.blocks = blocks

    def solve_rest(self, model: Any, solve_options: dict[str, Any]) -> Any:
        """Fix the blocks' inputs and outputs at the point, deactivate them, re-solve; undo the fixing."""
        from pyomo_relu.solvers import solve

        fixed = []
        for b in self.blocks:
            values = np.r_[self.inputs[b.name], self.outputs[b.name]]
            for var, value in zip(b.input_vars + b.output_vars, values):
                if not var.fixed:
                    var.fix(float(value))
                    fixed.append(var)
            b.deactivate()
        try:
            return None if self.clash else solve(model, certify=False, **solve_options)
        finally:
            for b in self.blocks:
                b.activate()
            for var in fixed:
                var.unfix()

    def message(self, check: Any) -> str:
        if self.clash:
            return (
                "no true-feasible point at the relaxed inputs: the network's outputs break "
                f"{self.clash} (fixed values or bounds)"
            )
        return "" if check.has_solution else f"no true-feasible point at the relaxed inputs ({check.status})"

    def load(self, blocks: list[Any]) -> None:
        """Inputs and outputs hold the true point already; now the blocks' insides (a forward pass)."""
        for b in blocks:
            try:
                b.initialize(self.inputs[b.name])
            except AttributeError:  # core.scale_model's copy renames the block's variables (scaled_pre)
                logger.debug("%s: block variables renamed (a scaled copy); left at the relaxed values", b.name)


def _warn_beyond_bound(value: float | None, bound: float | None, sense: str) -> None:
    if value is None or bound is None:
        return
    wrong = (value < bound) if sense == "minimize" else (value > bound)
    if wrong and abs(value - bound) > 1e-6 * max(1.0, abs(value)):
        logger.warning("feasible value %s beyond the proven bound %s: solver tolerances", value, bound)


def _restore(saved: Any) -> None:
    """Put back the values (and fixed flags) the variables had before certifying."""
    for var, old, was_fixed in saved:
        var.set_value(old, skip_validation=True)
        if was_fixed and not var.fixed:
            var.fix()


def _max_violation(model: Any, blocks: list[Any]) -> float:
    """Largest violation of an active constraint outside ``blocks`` at the current values."""
    import pyomo.environ as pe

    inside = {id(c) for b in blocks for c in b.component_data_objects(pe.Constraint, descend_into=True)}
    worst = 0.0
    for con in model.component_data_objects(pe.Constraint, active=True, descend_into=True):
        if id(con) in inside:
            continue
        body = pe.value(con.body, exception=False)
        if body is None:
            return math.inf
        lo, up = pe.value(con.lower), pe.value(con.upper)
        if lo is not None:
            worst = max(worst, lo - body)
        if up is not None:
            worst = max(worst, body - up)
    return float(worst)


def _check_sense(sense: str) -> None:
    if sense not in ("minimize", "maximize"):
        raise PyomoReluError(f"sense must be 'minimize' or 'maximize', not {sense!r}")
