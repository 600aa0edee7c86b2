r"""LP (triangle) relaxation of ``y = max(0, x)`` for neurons with ``L < 0 < U``.

No binaries: each unstable neuron is replaced by the convex hull of its graph over
``[L, U]``, the triangle with corners ``(L, 0)``, ``(0, 0)`` and ``(U, U)``::

    y >= x                          (post_at_least_pre)
    y >= 0                          (bound of post)
    y <= U (x - L) / (U - L)        (post_below_chord)

It is the LP relaxation of the big-M formulation (:mod:`pyomo_relu.formulations.bigm`)
with the binary projected out, so its optimum is a valid *dual bound*: minimising over
it gives a value ``<=`` the network's true minimum (``>=`` the true maximum when
maximising), with equality only when the optimum happens to sit on the graph.  The
solution is in general not a forward pass of the network (``get_error()`` may be
large); use it for bounds, screening and as a cheap first pass, not for answers.

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0], [-1.0], [2.0]], [0.0, 0.5, 3.0]),
...                          DenseLayer([[1.0, 1.0, 1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, formulation="relaxation")
>>> print(m.nn.describe())
inputs Var [0]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0, 1, 2]
layer[0].pre Var [0, 1]
layer[0].affine Constraint [0, 1, 2]
layer[0].post_at_least_pre Constraint [0, 1]
layer[0].post_below_chord Constraint [0, 1]
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'relaxation' to layer 0:
  post_at_least_pre, post_below_chord
>>> print(m.nn.layer[0].post_below_chord[0].expr)
nn.layer[0].post[0] - 0.5*nn.layer[0].pre[0]  <=  0.5
>>> m.nn.stats()["binaries"]
0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyomo.environ as pe

from pyomo_relu.formulations.base import Formulation, LayerContext, frozen_formulation


@frozen_formulation
class Relaxation(Formulation):
    """The two inequalities of the triangle per unstable neuron (no new variables, no options)."""

    name = "relaxation"

    def add(self, ctx: LayerContext) -> None:
        pre, post = ctx.pre, ctx.post
        neurons = [int(j) for j in ctx.unstable]
        ctx.block.post_at_least_pre = pe.Constraint(neurons, rule=lambda b, j: post[j] - pre[j] >= 0)
        add_chord(ctx)

    def post_error(self, ctx: LayerContext) -> tuple[np.ndarray, np.ndarray] | None:
        """The triangle's height ``-l u / (u - l)`` above ``relu`` on the unstable neurons."""
        unstable = ctx.unstable.astype(int)
        if not unstable.size:
            return None
        below, above = np.zeros(ctx.layer.n_outputs), np.zeros(ctx.layer.n_outputs)
        lo, up = ctx.lower[unstable], ctx.upper[unstable]
        above[unstable] = -lo * up / (up - lo)
        return below, above


def add_chord(ctx: LayerContext) -> None:
    """Add ``post_below_chord[j]``: ``y <= U (x - L) / (U - L)`` on the unstable neurons."""
    lower, upper, pre, post = ctx.lower, ctx.upper, ctx.pre, ctx.post

    def chord(b: Any, j: int) -> Any:
        lo, up = float(lower[j]), float(upper[j])
        slope = up / (up - lo)
        return post[j] - slope * pre[j] <= -slope * lo

    ctx.block.post_below_chord = pe.Constraint([int(j) for j in ctx.unstable], rule=chord)
