"""ReLU formulations, one module each, and the table that names them.

A formulation is a small frozen dataclass (:class:`~pyomo_relu.formulations.base.Formulation`)
whose fields are its options.  ``ReLUNetBlock.build(formulation=...)`` accepts a name,
``(name, options)``, a formulation object (``Partition(n=4)``), or a per-layer choice
keyed by the layers as the reader reports them (indices of ``net.layers`` or layer names,
see ``net.summary()``)::

    formulation={"default": "bigm", 1: ("partition", {"n": 2}), "dense_3": Extended()}

Every canonical layer a user layer was lowered into gets that layer's choice.  Every
choice is resolved here, by :func:`resolve_formulation`, for the block, the ``relu.*``
transformations and the IDAES surrogate alike: option names are checked by
:func:`pyomo_relu.options.check_options` (a did-you-mean), option values by the
formulation's own :meth:`~pyomo_relu.formulations.base.Formulation.validate`.

:func:`register_formulation` adds a formulation under a new name (and its ``relu.<name>``
transformation).  A toy one, ``post = max(0, pre)`` written as two disjunction-free
rows and a binary chosen by the solver, with its own option::

    >>> import pyomo.environ as pe
    >>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock, register_formulation
    >>> from pyomo_relu.formulations.base import Formulation, frozen_formulation
    >>> @frozen_formulation
    ... class Sandwich(Formulation):
    ...     '''y >= x and y <= scale * U * σ (a loose big-M: toy).'''
    ...     name = "sandwich"
    ...     scale: float = 1.0
    ...     def validate(self):
    ...         if self.scale < 1:
    ...             raise ValueError("scale must be >= 1")
    ...     def add(self, ctx):
    ...         neurons = [int(j) for j in ctx.unstable]
    ...         ctx.block.on = pe.Var(neurons, within=pe.Binary)
    ...         ctx.block.above = pe.Constraint(neurons, rule=lambda b, j: ctx.post[j] >= ctx.pre[j])
    ...         ctx.block.below = pe.Constraint(
    ...             neurons, rule=lambda b, j: ctx.post[j] <= self.scale * float(ctx.upper[j]) * b.on[j])
    >>> register_formulation(Sandwich)
    Sandwich(scale=1.0)
    >>> net = NetworkDefinition([DenseLayer([[1.0], [-1.0]], [0.0, 0.5]),
    ...                          DenseLayer([[1.0, 1.0]], [0.0], "linear")], input_bounds=[(-1, 1)])
    >>> m = pe.ConcreteModel()
    >>> m.nn = ReLUNetBlock()
    >>> m.nn.build(net, formulation=("sandwich", {"scale": 2.0}))
    >>> print(m.nn.describe())
    inputs Var [0]
    outputs Var [0]
    layer Block [0, 1]
    layer[0].post Var [0, 1]
    layer[0].pre Var [0, 1]
    layer[0].affine Constraint [0, 1]
    layer[0].on Var [0, 1]
    layer[0].above Constraint [0, 1]
    layer[0].below Constraint [0, 1]
    layer[1].pre Var []
    layer[1].affine Constraint [0]
    added by 'sandwich' to layer 0:
      on, above, below
    >>> print(m.nn.layer[0].below[0].expr)
    nn.layer[0].post[0]  <=  2.0*nn.layer[0].on[0]
    >>> pe.TransformationFactory("relu.sandwich") is not None
    True
    >>> Sandwich(scael=2.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pyomo_relu.errors.UnknownOptionError: formulation 'sandwich' got an unknown option 'scael' (did you mean ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyomo_relu.errors import PyomoReluError, UnknownLayerError
from pyomo_relu.formulations.base import Formulation
from pyomo_relu.formulations.bigm import BigM
from pyomo_relu.formulations.complementarity import Complementarity
from pyomo_relu.formulations.extended import Extended
from pyomo_relu.formulations.gdp import VARIANTS, Gdp
from pyomo_relu.formulations.ideal_cuts import IdealCuts
from pyomo_relu.formulations.partition import Partition
from pyomo_relu.formulations.pwl import Pwl
from pyomo_relu.formulations.relaxation import Relaxation
from pyomo_relu.formulations.step import Step

if TYPE_CHECKING:
    from pyomo_relu.network import NetworkDefinition

__all__ = [
    "FORMULATIONS",
    "Formulation",
    "FormulationSpec",
    "formulation_for_layer",
    "get_formulation",
    "layer_formulations",
    "register_formulation",
    "resolve_formulation",
]

#: Every formulation by name, as its default object (``FORMULATIONS["partition"] == Partition()``).
FORMULATIONS: dict[str, Formulation] = {}

FormulationSpec = str | tuple | Formulation | Mapping[Any, Any]


def register_formulation(formulation: Formulation | type[Formulation], *, replace: bool = False) -> Formulation:
    """Make ``formulation`` (a :class:`Formulation` subclass or object) available by its ``name``.

    A class is registered as its default object.  Afterwards
    ``build(formulation=name)``, ``(name, options)``, per-layer dicts, the IDAES surrogate
    and ``TransformationFactory("relu.<name>")`` accept it.  A name already taken is
    refused unless ``replace=True``.  Returns the registered object.
    """
    made = formulation() if isinstance(formulation, type) else formulation
    if not isinstance(made, Formulation):
        raise PyomoReluError(f"register_formulation needs a Formulation subclass or object, not {formulation!r}")
    if not made.name:
        raise PyomoReluError(f"{type(made).__name__} has no name: set the class attribute name = '...'")
    if made.name in FORMULATIONS and not replace:
        raise PyomoReluError(f"a formulation named {made.name!r} is registered already; pass replace=True")
    FORMULATIONS[made.name] = made
    transformations = _loaded_modules().get("pyomo_relu.transformations")
    if transformations is not None and hasattr(transformations, "register_transformations"):
        transformations.register_transformations()  # else it registers every formulation when imported
    return made


def get_formulation(name: str) -> Formulation:
    """The formulation registered under ``name`` (its default object)."""
    try:
        return FORMULATIONS[name]
    except KeyError:
        raise PyomoReluError(f"unknown formulation {name!r}; available: {', '.join(sorted(FORMULATIONS))}") from None


def resolve_formulation(chosen: Any) -> Formulation:
    """One choice as a formulation object: a name, ``(name, options)``, a :class:`Formulation` or its class.

    Option names are checked by :func:`~pyomo_relu.options.check_options`, values by the
    formulation's :meth:`~Formulation.validate`; a malformed choice raises
    :class:`~pyomo_relu.errors.PyomoReluError`.
    """
    if isinstance(chosen, Formulation):
        return chosen
    if isinstance(chosen, type) and issubclass(chosen, Formulation):
        return chosen()
    if isinstance(chosen, str):
        return get_formulation(chosen)
    if (
        isinstance(chosen, (tuple, list))
        and len(chosen) == 2
        and isinstance(chosen[0], str)
        and isinstance(chosen[1], Mapping)
    ):
        return get_formulation(chosen[0]).with_options(chosen[1])
    raise PyomoReluError(
        f"a formulation is a name or a (name, options) pair such as ('partition', {{'n': 2}}), or a "
        f"Formulation object, not {chosen!r}"
    )


def layer_formulations(spec: FormulationSpec, net: NetworkDefinition) -> list[Formulation]:
    """The formulation of every canonical layer of ``net``, each choice resolved once."""
    if not isinstance(spec, Mapping):
        one = resolve_formulation(spec)
        return [one] * len(net.canonical_layers)
    per_layer = {index: resolve_formulation(choice) for index, choice in _per_user_layer(spec, net).items()}
    default = resolve_formulation(spec.get("default", "bigm"))
    return [per_layer.get(origin, default) for origin in net.canonical_origin]


def formulation_for_layer(spec: FormulationSpec, layer: int, net: NetworkDefinition) -> Formulation:
    """The formulation of canonical layer ``layer`` of ``net``.

    ``spec`` is a name, ``(name, options)``, a formulation object, or a dict whose keys are
    ``"default"`` and layers of ``net.layers`` (an index or a name,
    :meth:`NetworkDefinition.layer_index`): the choice for a user layer applies to every
    canonical layer it became (:attr:`NetworkDefinition.canonical_origin`).  A key naming no
    layer, a layer named twice, or a malformed choice raises
    :class:`~pyomo_relu.errors.PyomoReluError`.
    """
    return layer_formulations(spec, net)[layer]


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


def _loaded_modules() -> Any:
    import sys

    return sys.modules


for _formulation in (BigM, Gdp, *VARIANTS, Complementarity, Relaxation, Partition, Extended, IdealCuts, Pwl, Step):
    register_formulation(_formulation)
