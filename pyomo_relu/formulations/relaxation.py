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
>>> for c in m.nn.layer[0].component_objects(descend_into=False):
...     print(c.local_name, c.ctype.__name__, sorted(c.keys()))
post Var [0, 1, 2]
pre Var [0, 1]
affine Constraint [0, 1, 2]
post_at_least_pre Constraint [0, 1]
post_below_chord Constraint [0, 1]
>>> print(m.nn.layer[0].post_below_chord[0].expr)
nn.layer[0].post[0] - 0.5*nn.layer[0].pre[0]  <=  0.5
>>> m.nn.stats()["binaries"]
0
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe

from pyomo_relu.formulations.base import LayerContext

name = "relaxation"
#: No options.
OPTIONS: tuple[str, ...] = ()


def build(ctx: LayerContext) -> None:
    """Add the two inequalities of the triangle per unstable neuron (no new variables)."""
    pre, post = ctx.pre, ctx.post
    neurons = [int(j) for j in ctx.unstable]
    ctx.block.post_at_least_pre = pe.Constraint(neurons, rule=lambda b, j: post[j] - pre[j] >= 0)
    add_chord(ctx)


def add_chord(ctx: LayerContext) -> None:
    """Add ``post_below_chord[j]``: ``y <= U (x - L) / (U - L)`` on the unstable neurons."""
    lower, upper, pre, post = ctx.lower, ctx.upper, ctx.pre, ctx.post

    def chord(b, j):
        lo, up = float(lower[j]), float(upper[j])
        slope = up / (up - lo)
        return post[j] - slope * pre[j] <= -slope * lo

    ctx.block.post_below_chord = pe.Constraint([int(j) for j in ctx.unstable], rule=chord)


def initialize(ctx: LayerContext, pre_values: np.ndarray) -> None:
    """Nothing to set: the relaxation adds no variables of its own."""
