"""ReLU formulations, one module each, and the table that names them.

A formulation module has a ``name``, ``build(ctx)`` and ``initialize(ctx, pre_values)``
(see :mod:`pyomo_relu.formulations.base`).  ``ReLUNetBlock.build(formulation=...)``
accepts a name, ``(name, options)``, or a per-layer choice keyed by the layers as the
reader reports them (indices of ``net.layers`` or layer names, see ``net.summary()``)::

    formulation={"default": "bigm", 1: ("partition", {"n": 2}), "dense_3": "extended"}

Every canonical layer a user layer was lowered into gets that layer's choice.

Each module lists the option names it takes in ``OPTIONS``; :func:`check_formulation_options`
(called for every choice, by ``build``, the ``relu.*`` transformations and the IDAES
surrogate) refuses any other name with a did-you-mean, then lets the module's
``validate_options`` check the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Union

from pyomo_relu.errors import PyomoReluError, UnknownLayerError
from pyomo_relu.formulations import bigm, complementarity, extended, gdp, ideal_cuts, partition, pwl, relaxation, step
from pyomo_relu.options import check_options

if TYPE_CHECKING:
    from pyomo_relu.network import NetworkDefinition

FORMULATIONS: dict[str, ModuleType] = {bigm.name: bigm}
FORMULATIONS.update({m.name: m for m in (gdp, complementarity, relaxation)})
FORMULATIONS.update(gdp.VARIANTS)  # "gdp.bigm", "gdp.hull", ...: disjunctions transformed at once
FORMULATIONS.update({m.name: m for m in (partition, extended, ideal_cuts, pwl, step)})

FormulationSpec = Union[str, tuple, Mapping[Any, Any]]


def get_formulation(name: str) -> ModuleType:
    """The formulation module registered under ``name``."""
    try:
        return FORMULATIONS[name]
    except KeyError:
        raise PyomoReluError(f"unknown formulation {name!r}; available: {', '.join(sorted(FORMULATIONS))}") from None


def formulation_for_layer(
    spec: FormulationSpec, layer: int, net: NetworkDefinition
) -> tuple[ModuleType, dict[str, Any]]:
    """The formulation module and options of canonical layer ``layer`` of ``net``.

    ``spec`` is a name, ``(name, options)``, or a dict whose keys are ``"default"`` and
    layers of ``net.layers`` (an index or a name, :meth:`NetworkDefinition.layer_index`):
    the choice for a user layer applies to every canonical layer it became
    (:attr:`NetworkDefinition.canonical_origin`).  A key naming no layer, a layer named
    twice, or a malformed choice raises :class:`~pyomo_relu.errors.PyomoReluError`.
    """
    if isinstance(spec, Mapping):
        chosen = _per_user_layer(spec, net).get(net.canonical_origin[layer], spec.get("default", "bigm"))
    else:
        chosen = spec
    return _resolve_choice(chosen)


def _per_user_layer(spec: Mapping[Any, Any], net: NetworkDefinition) -> dict[int, Any]:
    """``{user layer index: choice}`` from a per-layer dict, every key checked."""
    chosen: dict[int, Any] = {}
    named_by: dict[int, Any] = {}
    for key, value in spec.items():
        if isinstance(key, str) and key == "default":
            continue
        try:
            index = net.layer_index(key)
        except UnknownLayerError as error:
            raise UnknownLayerError(
                f"formulation={{...}} key {key!r}: {error} (or 'default'); net.summary() lists the layers"
            ) from None
        if index in chosen:
            raise UnknownLayerError(
                f"formulation={{...}} names layer {index} twice, as {named_by[index]!r} and {key!r}; keep one"
            )
        chosen[index], named_by[index] = value, key
    return chosen


def option_names(module: Any) -> tuple[str, ...]:
    """The option names formulation ``module`` takes (its ``OPTIONS``)."""
    return tuple(getattr(module, "OPTIONS", ()))


def check_formulation_options(module: Any, options: Mapping[str, Any]) -> None:
    """Refuse option names ``module`` does not take (did-you-mean), then check the values."""
    check_options(options, option_names(module), f"formulation {module.name!r}")
    validate = getattr(module, "validate_options", None)
    if validate is not None:
        validate(dict(options))


def _resolve_choice(chosen: Any) -> tuple[ModuleType, dict[str, Any]]:
    if isinstance(chosen, str):
        return get_formulation(chosen), {}
    if (
        isinstance(chosen, (tuple, list))
        and len(chosen) == 2
        and isinstance(chosen[0], str)
        and isinstance(chosen[1], Mapping)
    ):
        module = get_formulation(chosen[0])
        check_formulation_options(module, chosen[1])
        return module, dict(chosen[1])
    raise PyomoReluError(
        f"a formulation is a name or a (name, options) pair such as ('partition', {{'n': 2}}), not {chosen!r}"
    )
