r"""Big-M formulation of ``y = max(0, x)`` for neurons with ``L < 0 < U``.

With one binary ``σ`` per unstable neuron (``σ = 1`` when the neuron is active)::

    y >= x                      (post_at_least_pre)
    y <= x - L (1 - σ)          (post_at_most_pre_when_active)
    y <= U σ                    (post_zero_when_inactive)
    y >= 0,  σ ∈ {0, 1}         (variable bounds)

Its LP relaxation is the triangle ``conv{(x, max(0,x)) : L <= x <= U}`` of each neuron
alone, which is why tight ``L`` and ``U`` matter (Grimstad & Andersson 2019).

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0], [-1.0], [2.0]], [0.0, 0.5, 3.0]),
...                          DenseLayer([[1.0, 1.0, 1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, formulation="bigm")
>>> print(m.nn.describe())
inputs Var [0]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0, 1, 2]
layer[0].pre Var [0, 1]
layer[0].affine Constraint [0, 1, 2]
layer[0].is_active Var [0, 1]
layer[0].post_at_least_pre Constraint [0, 1]
layer[0].post_at_most_pre_when_active Constraint [0, 1]
layer[0].post_zero_when_inactive Constraint [0, 1]
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'bigm' to layer 0:
  is_active, post_at_least_pre, post_at_most_pre_when_active, post_zero_when_inactive
>>> print(m.nn.layer[0].post_zero_when_inactive[0].expr)
nn.layer[0].post[0] - nn.layer[0].is_active[0]  <=  0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyomo.environ as pe

from pyomo_relu.formulations.base import Formulation, LayerContext, frozen_formulation


@frozen_formulation
class BigM(Formulation):
    """One binary and three inequalities per unstable neuron (no options)."""

    name = "bigm"

    def add(self, ctx: LayerContext) -> None:
        add_bigm(ctx)

    def initialize(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        initialize_bigm(ctx, pre_values)


def add_bigm(ctx: LayerContext) -> None:
    """Add ``is_active`` and the three rows of the module docstring on ``ctx.unstable``."""
    block, neurons = ctx.block, [int(j) for j in ctx.unstable]
    lower, upper = ctx.lower, ctx.upper
    pre, post = ctx.pre, ctx.post
    block.is_active = pe.Var(neurons, within=pe.Binary, doc="1 when the neuron is active")
    active = block.is_active
    block.post_at_least_pre = pe.Constraint(neurons, rule=lambda b, j: post[j] - pre[j] >= 0)

    def at_most_pre(b: Any, j: int) -> Any:
        return post[j] - pre[j] - float(lower[j]) * active[j] <= -float(lower[j])

    block.post_at_most_pre_when_active = pe.Constraint(neurons, rule=at_most_pre)
    block.post_zero_when_inactive = pe.Constraint(neurons, rule=lambda b, j: post[j] - float(upper[j]) * active[j] <= 0)


def initialize_bigm(ctx: LayerContext, pre_values: np.ndarray) -> None:
    """Set ``σ`` to 1 where the pre-activation is positive."""
    active = ctx.block.is_active
    for j in ctx.unstable:
        active[int(j)].set_value(1 if pre_values[j] > 0 else 0, skip_validation=True)
