r"""Exact MILP formulation of step neurons ``step`` (0/1) and ``sign`` (-1/+1).

A step neuron takes its upper level ``b`` where ``z >= 0`` and its lower level ``a`` where
``z < 0`` (:mod:`pyomo_relu.step`; ``step(0) = 1``, ``sign(0) = +1``).  With pre-activation
bounds ``l < 0 <= u`` (an *unstable* neuron) and one binary ``σ`` (1 on the upper level)::

    z >= l (1 - σ)                  (up_when_nonnegative: σ = 1 forces z >= 0)
    z <= u σ - ε (1 - σ)            (down_when_negative:  σ = 0 forces z <= -ε)
    h  = a + (b - a) σ              (level)

The big-M values are the bounds themselves, so tight bounds give a tight model; its LP
relaxation is the hull of the step's graph over ``[l, u]`` (the lines of
:func:`pyomo_relu.step.step_lines`).  ``ε`` (option ``eps``, default
:data:`DEFAULT_EPS`) stands in for the strict ``z < 0``: the MILP is exact except that it
excludes pre-activations in ``(-ε, 0)``.  ``ε`` must exceed the solver's feasibility
tolerance (HiGHS's MIP tolerance is 1e-6: with ``ε = 1e-6`` it accepts ``z = 0`` on the
lower level), hence the default 1e-5.  With integral pre-activations (binarized layers on
binary inputs, integer weights) ``eps=1`` is exact; ``eps=0`` gives the closure of the graph
(at ``z = 0`` both levels are allowed), a relaxation that is always sound.  Stable neurons
(``l >= 0`` or ``u < 0``) are the constant ``h = b`` or ``h = a`` (``stable_level``).

Step neurons are formulated here whatever ReLU formulation their layer uses; choosing
``formulation="step"`` (or ``("step", {"eps": 1})`` for some layers) sets ``eps`` and formulates
that layer's ReLUs by big-M.

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0], [1.0]], [0.0, 5.0], "sign"),
...                          DenseLayer([[1.0, 1.0]], [0.0], "linear")], input_bounds=[(-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net)
>>> print(m.nn.describe())
inputs Var [0]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0, 1]
layer[0].pre Var [0, 1]
layer[0].affine Constraint [0, 1]
layer[0].is_up Var [0]
layer[0].up_when_nonnegative Constraint [0]
layer[0].down_when_negative Constraint [0]
layer[0].level Constraint [0]
layer[0].stable_level Constraint [1]
layer[1].pre Var []
layer[1].affine Constraint [0]
>>> print(m.nn.layer[0].level[0].expr)
nn.layer[0].post[0] - 2.0*nn.layer[0].is_up[0]  ==  -1.0
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe

from pyomo_relu.errors import InvalidValueError, MissingBoundsError
from pyomo_relu.formulations.base import DEFAULT_STEP_EPS, LayerContext, frozen_formulation
from pyomo_relu.formulations.bigm import BigM
from pyomo_relu.step import levels, unstable_step

#: The default ``ε`` of ``z <= -ε`` on the lower level (see the module doc).
DEFAULT_EPS = DEFAULT_STEP_EPS


@frozen_formulation
class Step(BigM):
    """Big-M for the layer's unstable ReLUs, and ``eps`` for its step neurons (a finite number >= 0)."""

    name = "step"

    eps: float = DEFAULT_EPS

    def validate(self) -> None:
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not np.isfinite(eps) or eps < 0:
            raise InvalidValueError(f"formulation 'step': eps must be a finite number >= 0, not {eps!r}")

    @property
    def step_eps(self) -> float:
        return float(self.eps)


def build_step(ctx: LayerContext, neurons: np.ndarray, eps: float = DEFAULT_EPS) -> None:
    """Tie ``post`` to ``pre`` on the step ``neurons`` of the layer (module doc), ``ε = eps``."""
    block, layer, pre, post = ctx.block, ctx.layer, ctx.pre, ctx.post
    eps = float(eps)
    lower, upper = ctx.lower[neurons], ctx.upper[neurons]
    low, high = levels(layer.kinds[neurons])
    loose = unstable_step(lower, upper)
    open_ = loose & ~(np.isfinite(lower) & np.isfinite(upper))
    if open_.any():
        j = int(neurons[np.flatnonzero(open_)[0]])
        raise MissingBoundsError(
            f"layer {ctx.index} ({layer.name or 'dense'}), {layer.kinds[j]} neuron {j}: its pre-activation "
            f"bounds [{ctx.lower[j]}, {ctx.upper[j]}] are not finite, so it has no big-M; bound the "
            "network's inputs (input_bounds=...) or the input variables"
        )
    jumps = [int(j) for j in neurons[loose]]
    at = {int(j): k for k, j in enumerate(neurons)}
    block.is_up = pe.Var(jumps, within=pe.Binary, doc="1 when the step neuron is on its upper level")
    up = block.is_up
    block.up_when_nonnegative = pe.Constraint(
        jumps, rule=lambda b, j: pre[j] + float(ctx.lower[j]) * up[j] >= float(ctx.lower[j])
    )
    block.down_when_negative = pe.Constraint(
        jumps, rule=lambda b, j: pre[j] - (float(ctx.upper[j]) + eps) * up[j] <= -eps
    )
    block.level = pe.Constraint(
        jumps, rule=lambda b, j: post[j] - float(high[at[j]] - low[at[j]]) * up[j] == float(low[at[j]])
    )
    fixed = [int(j) for j in neurons[~loose]]
    block.stable_level = pe.Constraint(
        fixed, rule=lambda b, j: post[j] == float(high[at[j]] if ctx.lower[j] >= 0 else low[at[j]])
    )
    ctx.steps = np.asarray(jumps, dtype=int)


def initialize_step(ctx: LayerContext, pre_values: np.ndarray) -> None:
    """Set ``σ`` to 1 where the pre-activation is non-negative (the forward pass's level)."""
    up = getattr(ctx.block, "is_up", None)
    if up is None:
        return
    for j in up.keys():
        up[j].set_value(1 if pre_values[j] >= 0 else 0, skip_validation=True)
