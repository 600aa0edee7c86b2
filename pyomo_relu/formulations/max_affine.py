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
>>> print(m.nn.describe())
inputs Var [0, 1]
outputs Var [0]
layer Block [0]
outputs_link Constraint [0]
layer[0].post Var [0]
layer[0].pre Var [0, 1]
layer[0].affine Constraint [0, 1]
layer[0].is_max Var [0, 1]
layer[0].post_at_least_pre Constraint [0, 1]
layer[0].post_at_most_pre_when_max Constraint [0, 1]
layer[0].one_max Constraint [0]
layer[0].post_at_most_selected_upper Constraint [0]
>>> print(m.nn.layer[0].post_at_most_pre_when_max[0].expr)
nn.layer[0].post[0] - nn.layer[0].pre[0] + 2.0*nn.layer[0].is_max[0]  <=  2.0

(Row 2, ``x0 + x1 - 5 <= -3``, can never beat ``max(x0, x1) >= -1`` and is left out.)

**Disjunctive form.**  When the layer's formulation is ``"gdp"`` or ``"gdp.<t>"``, each
open group gets instead one ``pyomo.gdp`` Disjunction over its candidates,
``∨_i [ y = z_i,  z_i >= z_k for every other candidate k ]`` (``max_disjunct[i]``,
``max_disjunction[g]``), over the block's own bounded ``pre``/``post`` variables.  Under
``gdp.hull`` this is the convex hull of the group's graph over the box of its
pre-activations: for max pooling, where each ``z_i`` is one input, Anderson et al.'s ideal
formulation of the maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyomo.environ as pe
from pyomo.core.expr.numeric_expr import LinearExpression

from pyomo_relu.bounds.interval import affine_interval
from pyomo_relu.formulations.base import LayerContext
from pyomo_relu.sparse import is_sparse

name = "max_affine"
#: No options.
OPTIONS: tuple[str, ...] = ()


def big_m(ctx: LayerContext, rows: np.ndarray) -> np.ndarray:
    """``M_i`` for the candidate ``rows`` of one group (see the module docstring).

    Only the columns some row of the group reads matter (the others cancel in every
    difference), so the interval arithmetic runs on those few columns.
    """
    layer = ctx.layer
    weights = layer.weights[rows]
    if is_sparse(weights):
        columns = np.unique(weights.indices)
        weights = weights[:, columns].toarray()
    else:
        columns = np.flatnonzero(np.any(weights != 0, axis=0))
        weights = weights[:, columns]
    low, high = ctx.input_lower[columns], ctx.input_upper[columns]
    naive = ctx.upper[rows].max() - ctx.lower[rows]
    differences = (weights[None, :, :] - weights[:, None, :]).reshape(-1, columns.size)
    offsets = (layer.bias[rows][None, :] - layer.bias[rows][:, None]).ravel()
    _, top = affine_interval(differences, offsets, low, high)
    return np.minimum(naive, top.reshape(rows.size, rows.size).max(axis=1))


def build(ctx: LayerContext) -> None:
    """One binary per candidate row, and the four families of rows above, per open group."""
    block = ctx.block
    rows = [int(i) for i in ctx.unstable]
    pre, post = ctx.pre, ctx.post
    group_of = {i: int(ctx.max_layer.groups[i]) for i in rows}
    members = _members(ctx)
    constants: dict[int, float] = {}
    for group_rows in members.values():
        for i, m in zip(group_rows, big_m(ctx, np.array(group_rows)).tolist()):
            constants[i] = max(float(m), 0.0)
    block.is_max = pe.Var(rows, within=pe.Binary, doc="1 for the row that attains the group's maximum")
    sigma = block.is_max
    block.post_at_least_pre = pe.Constraint(rows, rule=lambda b, i: post[group_of[i]] - pre[i] >= 0)
    block.post_at_most_pre_when_max = pe.Constraint(
        rows, rule=lambda b, i: post[group_of[i]] - pre[i] + constants[i] * sigma[i] <= constants[i]
    )
    group_index = sorted(members)
    block.one_max = pe.Constraint(
        group_index,
        rule=lambda b, g: (
            LinearExpression(linear_coefs=[1.0] * len(members[g]), linear_vars=[sigma[i] for i in members[g]]) == 1
        ),
    )
    upper = ctx.upper
    block.post_at_most_selected_upper = pe.Constraint(
        group_index, rule=lambda b, g: post[g] - sum(float(upper[i]) * sigma[i] for i in members[g]) <= 0
    )


def _members(ctx: LayerContext) -> dict[int, list[int]]:
    """Candidate rows of every open group, in row order (one pass)."""
    assert ctx.groups is not None, "the block sets the open groups of a max layer"
    members: dict[int, list[int]] = {int(g): [] for g in ctx.groups}
    for i, g in zip(ctx.unstable.tolist(), ctx.max_layer.groups[ctx.unstable].tolist()):
        members[g].append(int(i))
    return members


def build_disjunctions(ctx: LayerContext) -> None:
    """One disjunction per open group: the row that is the maximum (see the module docstring)."""
    from pyomo.gdp import Disjunct, Disjunction

    block, groups = ctx.block, ctx.max_layer.groups
    pre, post = ctx.pre, ctx.post
    members = _members(ctx)
    rows = [i for group_rows in members.values() for i in group_rows]

    def disjunct_rule(d: Any, i: int) -> None:
        others = [k for k in members[int(groups[i])] if k != i]
        d.post_equals_pre = pe.Constraint(expr=post[int(groups[i])] - pre[i] == 0)
        d.pre_is_largest = pe.Constraint(others, rule=lambda _, k: pre[i] - pre[k] >= 0)

    block.max_disjunct = Disjunct(rows, rule=disjunct_rule)
    block.max_disjunction = Disjunction(sorted(members), rule=lambda b, g: [b.max_disjunct[i] for i in members[g]])


def _winners(ctx: LayerContext, pre_values: np.ndarray) -> set[int]:
    """The first candidate row attaining each open group's maximum."""
    best: dict[int, int] = {}
    for g, rows in _members(ctx).items():
        best[g] = max(rows, key=lambda i: (pre_values[i], -i))
    return set(best.values())


def initialize(ctx: LayerContext, pre_values: np.ndarray) -> None:
    """``σ = 1`` (or the disjunct selected) for the first candidate row attaining each group's maximum."""
    winners = _winners(ctx, pre_values)
    block = ctx.block
    if block.component("is_max") is not None:
        for i in (int(i) for i in ctx.unstable):
            block.is_max[i].set_value(1 if i in winners else 0, skip_validation=True)
        return
    hull = None
    for i in (int(i) for i in ctx.unstable):
        disjunct = block.max_disjunct[i]
        disjunct.indicator_var.set_value(i in winners)
        relaxed = disjunct.transformation_block
        if relaxed is None or "hull" not in relaxed.parent_block().local_name:
            continue
        hull = hull or pe.TransformationFactory("gdp.hull")
        g = int(ctx.max_layer.groups[i])
        for var in [ctx.post[g]] + [block.pre[k] for k in _members(ctx)[g]]:
            copy = hull.get_disaggregated_var(var, disjunct, raise_exception=False)
            if copy is not None and copy is not var:
                copy.set_value(var.value if i in winners else 0.0, skip_validation=True)
