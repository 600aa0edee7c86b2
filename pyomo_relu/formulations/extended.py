r"""Ideal extended formulation of ``y = max(0, w·x + b)`` over the box of ``x``.

Anderson, Huchette, Ma, Tjandraatmadja & Vielma, *Strong mixed-integer programming
formulations for trained neural networks*, Math. Prog. 2020 (the disaggregated
formulation, "big-M with copies of x").  Each unstable neuron gets one binary ``σ``
(``σ = 1`` active) and a copy ``x¹`` (``active_copy[j, i]``) of every input ``i`` with a
non-zero weight; ``x = x⁰ + x¹`` splits ``x`` between the inactive and the active
disjunct, each copy confined to its disjunct's box scaled by ``1 − σ`` or ``σ``::

    y = w·x¹ + b σ                          (post_from_active_copy)
    w·x⁰ + b (1 − σ) <= 0                   (post_at_least_pre)
    w·x¹ + b σ >= 0                         (the bound y >= 0 of post)
    l σ <= x¹ <= u σ                        (active_copy_lower/_upper)
    l (1 − σ) <= x − x¹ <= u (1 − σ)        (inactive_copy_lower/_upper)
    σ ∈ {0, 1}

``[l, u]`` is the layer's input box (``ctx.input_lower/upper``).  ``x⁰ = x − x¹`` is
substituted, so only the active copies are variables; with ``pre = w·x + b`` (the
block's ``affine`` row) and ``w·x¹ = y − bσ`` the inactive disjunct's row is exactly
``y − pre >= 0``.  Rows ``l σ <= x¹`` with ``l = 0`` (every hidden layer's inputs) or
``x¹ <= u σ`` with ``u = 0`` coincide with the variable bounds of ``x¹`` and are not
written.  Inputs known to be zero, and inputs with weight 0, get no copy.

Its LP relaxation is the convex hull of ``{(x, y) : y = max(0, w·x + b), l <= x <= u}``
for each neuron alone (the tightest possible per neuron); it equals
:mod:`~pyomo_relu.formulations.partition` with one group per input.  As there, the big-M
rows ``post_zero_when_inactive``/``post_at_most_pre_when_active`` are added for neurons
whose block bounds ``L``/``U`` are tighter than interval arithmetic over the box (none
with interval bounds), so the formulation is never weaker than big-M.

**Size.**  Per unstable neuron with ``k`` non-zero-weight inputs: one binary, ``k``
continuous copies and at most ``4k + 2`` rows (``2k`` to ``4k`` box rows, the output
row and ``y >= pre``), holding about ``4k`` more non-zeros than big-M.  A dense layer of
``n`` unstable neurons on ``k`` inputs therefore adds ``n·k`` variables: fine for small
layers, heavy for e.g. 256 neurons on 784 pixels (200 704 copies); consider
``partition`` with a few groups instead.

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0, -2.0, 0.0]], [0.25]),
...                          DenseLayer([[1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1), (0, 1), (-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, formulation="extended")
>>> print(m.nn.describe())
inputs Var [0, 1, 2]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0]
layer[0].pre Var [0]
layer[0].affine Constraint [0]
layer[0].is_active Var [0]
layer[0].active_copy Var [(0, 0), (0, 1)]
layer[0].post_from_active_copy Constraint [0]
layer[0].post_at_least_pre Constraint [0]
layer[0].active_copy_lower Constraint [(0, 0)]
layer[0].active_copy_upper Constraint [(0, 0), (0, 1)]
layer[0].inactive_copy_lower Constraint [(0, 0), (0, 1)]
layer[0].inactive_copy_upper Constraint [(0, 0), (0, 1)]
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'extended' to layer 0:
  is_active, active_copy, post_from_active_copy, post_at_least_pre, active_copy_lower,
  active_copy_upper, inactive_copy_lower, inactive_copy_upper
>>> print(m.nn.layer[0].inactive_copy_upper[0, 1].expr)
nn.inputs[1] - nn.layer[0].active_copy[0,1] + nn.layer[0].is_active[0]  <=  1.0
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe

from pyomo_relu.formulations.base import Formulation, LayerContext, frozen_formulation
from pyomo_relu.formulations.partition import add_tighter_bigm_rows, input_values, linear, present_inputs


@frozen_formulation
class Extended(Formulation):
    """One binary, a copy of each non-zero-weight input and the hull rows per unstable neuron (no options)."""

    name = "extended"
    reads_weights = True

    def add(self, ctx: LayerContext) -> None:
        add_extended(ctx)

    def initialize(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        """``σ = [pre > 0]``; ``x¹ = x`` when active, else 0."""
        block = ctx.block
        x = input_values(ctx)
        for j, i in block.active_copy:
            on = pre_values[j] > 0
            block.active_copy[j, i].set_value(float(x[i]) if on else 0.0, skip_validation=True)
        for j in ctx.unstable:
            block.is_active[int(j)].set_value(1 if pre_values[j] > 0 else 0, skip_validation=True)


def add_extended(ctx: LayerContext) -> None:
    """The variables and rows of the module docstring on ``ctx.unstable``."""
    block, layer = ctx.block, ctx.layer
    neurons = [int(j) for j in ctx.unstable]
    columns = present_inputs(ctx)
    support = {j: [int(i) for i in columns[layer.weights[j, columns] != 0]] for j in neurons}
    keys = [(j, i) for j in neurons for i in support[j]]
    lo, hi = ctx.input_lower, ctx.input_upper
    inputs, pre, post, bias = ctx.inputs, ctx.pre, ctx.post, layer.bias

    block.is_active = pe.Var(neurons, within=pe.Binary, doc="1 when the neuron is active")
    block.active_copy = pe.Var(
        keys,
        bounds=lambda b, j, i: (min(0.0, float(lo[i])), max(0.0, float(hi[i]))),
        doc="the active disjunct's copy x¹ of input i",
    )
    active, copy = block.is_active, block.active_copy

    block.post_from_active_copy = pe.Constraint(
        neurons,
        rule=lambda b, j: (
            post[j]
            - linear(layer.weights[j, support[j]], [copy[j, i] for i in support[j]])
            - float(bias[j]) * active[j]
            == 0
        ),
    )
    block.post_at_least_pre = pe.Constraint(neurons, rule=lambda b, j: post[j] - pre[j] >= 0)
    block.active_copy_lower = pe.Constraint(
        [k for k in keys if lo[k[1]] != 0], rule=lambda b, j, i: copy[j, i] - float(lo[i]) * active[j] >= 0
    )
    block.active_copy_upper = pe.Constraint(
        [k for k in keys if hi[k[1]] != 0], rule=lambda b, j, i: copy[j, i] - float(hi[i]) * active[j] <= 0
    )
    block.inactive_copy_lower = pe.Constraint(
        keys, rule=lambda b, j, i: inputs[i] - copy[j, i] + float(lo[i]) * active[j] >= float(lo[i])
    )
    block.inactive_copy_upper = pe.Constraint(
        keys, rule=lambda b, j, i: inputs[i] - copy[j, i] + float(hi[i]) * active[j] <= float(hi[i])
    )
    add_tighter_bigm_rows(ctx, neurons, active)
