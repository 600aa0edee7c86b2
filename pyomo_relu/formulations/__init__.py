"""ReLU formulations, one module each, and the table that names them.

A formulation module has a ``name``, ``build(ctx)`` and ``initialize(ctx, pre_values)``
(see :mod:`pyomo_relu.formulations.base`).  ``ReLUNetBlock.build(formulation=...)``
accepts a name, or a per-layer choice::

    formulation={"default": "bigm", 1: ("bigm", {})}
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Mapping, Union

from pyomo_relu.errors import PyomoReluError
from pyomo_relu.formulations import bigm
from pyomo_relu.formulations import complementarity, gdp, relaxation
from pyomo_relu.formulations import extended, ideal_cuts, partition, pwl

FORMULATIONS: dict[str, ModuleType] = {bigm.name: bigm}
FORMULATIONS.update({m.name: m for m in (gdp, complementarity, relaxation)})
FORMULATIONS.update(gdp.VARIANTS)  # "gdp.bigm", "gdp.hull", ...: disjunctions transformed at once
FORMULATIONS.update({m.name: m for m in (partition, extended, ideal_cuts, pwl)})

FormulationSpec = Union[str, tuple, Mapping[Any, Any]]


def get_formulation(name: str) -> ModuleType:
    """The formulation module registered under ``name``."""
    try:
        return FORMULATIONS[name]
    except KeyError:
        raise PyomoReluError(
            f"unknown formulation {name!r}; available: {', '.join(sorted(FORMULATIONS))}"
        ) from None


def formulation_for_layer(spec: FormulationSpec, layer: int) -> tuple[ModuleType, dict[str, Any]]:
    """Resolve a formulation spec (name, ``(name, options)`` or per-layer dict) for one layer."""
    if isinstance(spec, Mapping):
        chosen = spec.get(layer, spec.get("default", "bigm"))
    else:
        chosen = spec
    if isinstance(chosen, tuple):
        name, options = chosen
        return get_formulation(name), dict(options)
    return get_formulation(chosen), {}
