r"""Max of affine functions (max pooling): Anderson et al.'s big-M formulation.

A :class:`~pyomo_relu.network.MaxLayer` computes ``y_g = max_{i in I_g} z_i`` with
``z_i = w_i·h + b_i`` (max pooling: each ``w_i`` selects one window entry).  The block
keeps only the *candidate* rows of a group (``u_i >= max_k l_k``: the others can never be
the maximum), writes ``y_g = z_i`` when one candidate is left, and for every group with
several candidates adds a binary ``σ_i`` per candidate (Anderson, Huchette, Ma,
Tjandraatmadja & Vielma, Math. Prog. 2020, Prop. 10, big-M for the maximum of ``d``
affine functions)::

    y >= z_i                          (post_at_least_pre)
    y <= z_i + M_i (1 - σ_i)          (post_at_most_pre_when_max)
    Σ_i σ_i = 1                       (one_max)
    y <= Σ_i u_i σ_i                  (post_at_most_selected_upper)

with the tightened constants ``M_i = max_{h in box} max_k (z_k - z_i)``: the interval
maximum of ``(w_k - w_i)·h + b_k - b_i`` over the layer's input box, never more than
``max_k u_k - l_i``.  For max pooling on a box this is ``max_k u_k - l_i``; for general
affine pieces the shared input makes it much smaller than the naive constant.

>>> import numpy as np, pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, MaxLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([MaxLayer([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0, -5.0], [0, 0, 0])],
...                         input_bounds=[(-1, 1), (-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net)
>>> for c in m.nn.layer[0].component_objects(descend_into=False):
...     print(c.local_name, c.ctype.__name__, sorted(c.keys()))
post Var [0]
pre Var [0, 1]
affine Constraint [0, 1]
is_max Var [0, 1]
post_at_least_pre Constraint [0, 1]
post_at_most_pre_when_max Constraint [0, 1]
one_max Constraint [0]
post_at_most_selected_upper Constraint [0]
>>> print(m.nn.layer[0].post_at_most_pre_when_max[0].expr)
nn.layer[0].post[0] - nn.layer[0].pre[0] + 2.0*nn.layer[0].is_max[0]  <=  2.0

(Row 2, ``x0 + x1 - 5 <= -3``, can never beat ``max(x0, x1) >= -1`` and is left out.)
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe
from pyomo.core.expr.numeric_expr import LinearExpression

from pyomo_relu.bounds.interval import affine_interval
from pyomo_relu.formulations.base import LayerContext

name = "max_affine"


def big_m(ctx: LayerContext, rows: np.ndarray) -> np.ndarray:
    """``M_i`` for the candidate ``rows`` of one group (see the module docstring)."""
    layer = ctx.layer
    kept = np.array([var is not None for var in ctx.inputs])
    weights = layer.weights[rows][:, kept]
    low, high = ctx.input_lower[kept], ctx.input_upper[kept]
    naive = ctx.upper[rows].max() - ctx.lower[rows]
    differences = (weights[None, :, :] - weights[:, None, :]).reshape(-1, weights.shape[1])
    offsets = (layer.bias[rows][None, :] - layer.bias[rows][:, None]).ravel()
    _, top = affine_interval(differences, offsets, low, high)
    return np.minimum(naive, top.reshape(rows.size, rows.size).max(axis=1))


def build(ctx: LayerContext) -> None:
    """One binary per candidate row, and the four families of rows above, per open group."""
    block, layer = ctx.block, ctx.layer
    rows = [int(i) for i in ctx.unstable]
    pre, post = ctx.pre, ctx.post
    group_of = {i: int(layer.groups[i]) for i in rows}
    members = {int(g): [i for i in rows if group_of[i] == g] for g in ctx.groups}
    constants: dict[int, float] = {}
    for g, group_rows in members.items():
        for i, m in zip(group_rows, big_m(ctx, np.array(group_rows)).tolist()):
            constants[i] = max(float(m), 0.0)
    block.is_max = pe.Var(rows, within=pe.Binary, doc="1 for the row that attains the group's maximum")
    sigma = block.is_max
    block.post_at_least_pre = pe.Constraint(rows, rule=lambda b, i: post[group_of[i]] - pre[i] >= 0)
    block.post_at_most_pre_when_max = pe.Constraint(
        rows, rule=lambda b, i: post[group_of[i]] - pre[i] + constants[i] * sigma[i] <= constants[i])
    group_index = sorted(members)
    block.one_max = pe.Constraint(
        group_index, rule=lambda b, g: LinearExpression(linear_coefs=[1.0] * len(members[g]),
                                                        linear_vars=[sigma[i] for i in members[g]]) == 1)
    upper = ctx.upper
    block.post_at_most_selected_upper = pe.Constraint(
        group_index, rule=lambda b, g: post[g] - sum(float(upper[i]) * sigma[i] for i in members[g]) <= 0)


def initialize(ctx: LayerContext, pre_values: np.ndarray) -> None:
    """``σ = 1`` for the first candidate row attaining each group's maximum."""
    sigma, groups = ctx.block.is_max, ctx.layer.groups
    best: dict[int, int] = {}
    for i in (int(i) for i in ctx.unstable):
        g = int(groups[i])
        if g not in best or pre_values[i] > pre_values[best[g]]:
            best[g] = i
    for i in (int(i) for i in ctx.unstable):
        sigma[i].set_value(1 if best[int(groups[i])] == i else 0, skip_validation=True)
