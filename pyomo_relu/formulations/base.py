"""The interface every formulation implements: :class:`Formulation`, a small frozen dataclass.

A formulation is an object whose fields are its options (``Partition(n=4)``,
``Complementarity(reformulation="product")``); its constructor refuses unknown option
names (:func:`pyomo_relu.options.check_options`, with a did-you-mean) and bad values
(:meth:`Formulation.validate`).  The block calls, for each canonical layer:

* :meth:`Formulation.build` on the unstable ReLU neurons (it calls :meth:`Formulation.add`,
  which a formulation writes, and returns an :class:`Added` record of the components it added);
* :meth:`Formulation.build_smooth` on the smooth neurons (sigmoid, tanh, softplus) when
  the formulation has the capability ``smooth`` (else the block refuses the layer);
* :meth:`Formulation.build_max` on max layers (max pooling): big-M of
  :mod:`~pyomo_relu.formulations.max_affine`, or its disjunctions for ``disjunctive``
  formulations;
* the ``initialize*`` counterparts for a warm start from a forward pass.

Capabilities are class attributes: ``smooth`` (it formulates smooth neurons),
``reads_weights`` (it reads rows of the weights, which the block then passes dense),
``disjunctive`` (max layers become disjunctions) and ``step_eps`` (the ``ε`` of the step
neurons of its layers, :mod:`~pyomo_relu.formulations.step`).

:func:`pyomo_relu.register_formulation` adds a new one (see its example).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, dataclass_transform

import numpy as np
import pyomo.environ as pe

from pyomo_relu.formulations.context import LayerContext
from pyomo_relu.options import check_options

__all__ = ["DEFAULT_STEP_EPS", "Added", "Formulation", "LayerContext", "frozen_formulation"]

#: The default ``ε`` of ``z <= -ε`` on the lower level of a step neuron (:mod:`~pyomo_relu.formulations.step`).
DEFAULT_STEP_EPS = 1e-5

F = TypeVar("F", bound=type)


@dataclass(frozen=True)
class Added:
    """What one formulation added to one layer block: the local names of its components, in order."""

    formulation: str
    layer: int
    components: tuple[str, ...]


@dataclass_transform(frozen_default=True)
def frozen_formulation(cls: F) -> F:
    """Class decorator: a frozen dataclass whose constructor checks option names first.

    A misspelled option (``Partition(nn=2)``) raises
    :class:`~pyomo_relu.errors.UnknownOptionError` naming the formulation and the option
    meant, as every option dict of the package does.
    """
    made: Any = dataclass(frozen=True)(cls)
    init: Callable[..., None] = made.__init__
    where = f"formulation {made.name!r}"
    names = tuple(f.name for f in dataclasses.fields(made))

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs:
            check_options(kwargs, names, where)
        init(self, *args, **kwargs)

    made.__init__ = checked
    return made


@frozen_formulation
class Formulation:
    """Base class of the formulations: its fields are the options; subclasses implement :meth:`add`."""

    #: The name users write (``formulation="bigm"``) and ``relu.<name>`` transformations use.
    name: ClassVar[str] = ""
    #: Capability: formulates smooth neurons (:meth:`build_smooth`); others refuse such layers.
    smooth: ClassVar[bool] = False
    #: Capability: reads rows of the layer's weights (sparse weights are passed dense).
    reads_weights: ClassVar[bool] = False
    #: Capability: max layers of this formulation become ``pyomo.gdp`` disjunctions.
    disjunctive: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------- options
    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The options this formulation takes (its dataclass fields)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def validate(self) -> None:
        """Raise :class:`~pyomo_relu.errors.PyomoReluError` for a bad option value (none to check here)."""

    def with_options(self, options: Mapping[str, Any]) -> Formulation:
        """A copy with ``options`` set; unknown names are refused by :func:`~pyomo_relu.options.check_options`."""
        check_options(options, self.option_names(), f"formulation {self.name!r}")
        return dataclasses.replace(self, **dict(options))

    def changed_options(self) -> dict[str, Any]:
        """The options whose value differs from the default."""
        changed = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if not _same(value, default):
                changed[f.name] = value
        return changed

    @property
    def step_eps(self) -> float:
        """The ``ε`` of the step neurons of this formulation's layers."""
        return DEFAULT_STEP_EPS

    # ------------------------------------------------------------ ReLU neurons
    def build(self, ctx: LayerContext) -> Added:
        """Make ``post = max(0, pre)`` on ``ctx.unstable``; return the components added."""
        before = set(_component_names(ctx.block))
        self.add(ctx)
        added = tuple(name for name in _component_names(ctx.block) if name not in before)
        return Added(self.name, ctx.index, added)

    def add(self, ctx: LayerContext) -> None:
        """Add the variables and constraints of the unstable neurons (what a formulation writes)."""
        raise NotImplementedError(f"formulation {self.name!r} does not define add(ctx)")

    def initialize(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        """Set the formulation's own variables consistently with ``pre_values`` (all neurons)."""

    # ---------------------------------------------------------- smooth neurons
    def build_smooth(self, ctx: LayerContext, neurons: np.ndarray) -> None:
        """``post == f(pre)`` exactly on the smooth ``neurons`` (an NLP; ``pwl`` overrides it)."""
        kinds, pre, post = ctx.layer.kinds, ctx.pre, ctx.post
        ctx.block.smooth_activation = pe.Constraint(
            index_set(neurons), rule=lambda b, j: post[j] == smooth_expression(str(kinds[j]), pre[j])
        )

    def initialize_smooth(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        """Set the variables :meth:`build_smooth` added (none for the exact equation)."""

    def post_error(self, ctx: LayerContext) -> tuple[np.ndarray, np.ndarray] | None:
        """``(below, above)``: how far ``post`` may be from the activation of ``pre``; ``None`` when exact."""
        return None

    # -------------------------------------------------------------- max layers
    def build_max(self, ctx: LayerContext) -> None:
        """``post[g] = max_i pre[i]`` on the open groups: :mod:`~pyomo_relu.formulations.max_affine`."""
        from pyomo_relu.formulations import max_affine

        if self.disjunctive:
            max_affine.build_disjunctions(ctx)
            self.transform(ctx.block)
        else:
            max_affine.build(ctx)

    def initialize_max(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        """The warm start of :meth:`build_max`."""
        from pyomo_relu.formulations import max_affine

        max_affine.initialize(ctx, pre_values)

    def transform(self, block: Any) -> None:
        """Apply the formulation's Pyomo transformation to ``block`` (disjunctive ones; none here)."""


# ----------------------------------------------------------------- helpers
def index_set(indices: Any) -> pe.Set:
    """A one-dimensional ordered index set (GDP transformations need the dimension known)."""
    return pe.Set(initialize=[int(j) for j in indices], dimen=1, ordered=True)


def smooth_expression(kind: str, z: Any) -> Any:
    """Pyomo expression of a smooth activation (for NLP/MINLP solvers)."""
    if kind == "sigmoid":
        return 1 / (1 + pe.exp(-z))
    if kind == "tanh":
        return pe.tanh(z)
    return pe.log(1 + pe.exp(z))  # softplus


def _component_names(block: Any) -> list[str]:
    return [c.local_name for c in block.component_objects(descend_into=False)]


def _same(value: Any, default: Any) -> bool:
    """Whether an option still has its default (plain values by value, objects by identity)."""
    if value is default:
        return True
    plain = (bool, int, float, str, tuple)
    if isinstance(value, plain) and isinstance(default, plain):
        return isinstance(value, bool) == isinstance(default, bool) and bool(value == default)
    if isinstance(value, Mapping) and isinstance(default, Mapping):
        return not value and not default
    return False
