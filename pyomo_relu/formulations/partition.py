r"""Partition-based ("P-split") formulation of ``y = max(0, w·x + b)`` for ``L < 0 < U``.

Tsay, Kronqvist, Thebelt & Misener, *Partition-based formulations for mixed-integer
optimization of trained ReLU neural networks*, NeurIPS 2021.  The neuron's inputs (those
with a non-zero weight; inputs known to be zero are skipped) are split into groups
``S_1 .. S_N``.  Each group's partial sum ``w_Sn·x_Sn`` is split into an *active part*
``z_n`` (``active_part[j, n]``) and an inactive part ``w_Sn·x_Sn − z_n``, and the convex
hull of the two disjuncts (inactive: ``y = 0, w·x + b <= 0``; active: ``y = w·x + b >= 0``)
is taken in the space of the partial sums.  With one binary ``σ`` (``σ = 1`` active)::

    y = Σ_n z_n + b σ                                  (post_from_active_parts)
    Σ_n (w_Sn·x_Sn − z_n) + (1 − σ) b <= 0             (post_at_least_pre)
    Σ_n z_n + b σ >= 0                                 (the bound y >= 0 of post)
    σ LB_n <= z_n <= σ UB_n                            (active_part_lower/_upper)
    (1 − σ) LB_n <= w_Sn·x_Sn − z_n <= (1 − σ) UB_n    (inactive_part_lower/_upper)
    σ ∈ {0, 1}

Because the block already has ``pre = w·x + b`` (``affine``), the inactive disjunct's sum
is written, equivalently and sparser, as ``y − pre >= 0``: substituting
``Σ_n w_Sn·x_Sn = pre − b`` and ``Σ_n z_n = y − b σ`` gives exactly ``pre − y <= 0``.
Likewise ``Σ_n z_n + bσ >= 0`` is ``y >= 0``, the lower bound of ``post``.  Rows
``σ LB_n <= z_n`` with ``LB_n = 0`` (or ``z_n <= σ UB_n`` with ``UB_n = 0``) are the
variable bounds of ``z_n`` and are not written.

**Group bounds.**  ``LB_n``/``UB_n`` bound the partial sum over the layer's input box by
interval arithmetic, ``LB_n = Σ_{i∈S_n} min(w_i l_i, w_i u_i)`` and
``UB_n = Σ_{i∈S_n} max(w_i l_i, w_i u_i)``, with ``[l, u]`` = ``ctx.input_lower/upper``
(the previous layer's post-activation bounds, or the network's input box).

**Strength.**  ``N = 1`` is big-M with the interval bounds ``L = LB_1 + b``,
``U = UB_1 + b`` (the active/inactive rows reduce to ``y <= Uσ`` and
``y <= pre − L(1 − σ)``).  ``N = fan-in`` (one group per input) is the convex hull of
the neuron over the box, the same relaxation as :mod:`~pyomo_relu.formulations.extended`.
When the groups of ``N'`` refine those of ``N`` the relaxation of ``N'`` is at least as
tight.  When the block's bounds ``L``/``U`` of a neuron are *tighter* than the interval
ones (CROWN, LP, OBBT), the big-M rows ``y <= Uσ`` (``post_zero_when_inactive``) and
``y <= pre − L(1 − σ)`` (``post_at_most_pre_when_active``) are added for those neurons
only, so the formulation is never weaker than :mod:`~pyomo_relu.formulations.bigm`;
with interval bounds they are redundant and not created.

**Size** per unstable neuron: one binary, ``N`` continuous ``z_n``, at most ``4N + 1``
rows; the inactive rows together hold every non-zero weight of the neuron once more.

**Strategies** (option ``strategy``; the split of each neuron is recorded in the layer
block's attribute ``partition_groups``, a dict ``neuron -> [input indices per group]``):

* ``"equal_size"`` (default, the paper's main one): inputs sorted by weight ``w_i``, cut
  into ``N`` contiguous groups at positions ``⌊k·m/N⌋`` (``m`` inputs).  Groups of ``N'``
  refine those of ``N`` whenever ``N`` divides ``N'`` (e.g. 2 → 4), so strength grows.
* ``"equal_range"``: the weight range ``[min w, max w]`` cut into ``N`` intervals of
  equal width, empty ones dropped (the paper also clips the outer intervals at weight
  quantiles; not done here).
* ``"random"``: a random permutation (``numpy.random.default_rng((seed, layer,
  neuron))``, reproducible) cut like ``equal_size``.
* ``"uneven_magnitude"``: inputs ranked by the width ``|w_i|(u_i − l_i)`` of their
  contribution; the ``N − 1`` widest get a group each (their terms are convexified
  exactly) and the rest share the last group.

Options: ``{"n": 2, "strategy": "equal_size", "seed": 0}``; ``n`` is capped at the
number of inputs with a non-zero weight.  Pick ``n`` per layer with the per-layer dict,
``formulation={"default": ("partition", {"n": 2}), 0: ("partition", {"n": 4})}``.

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0, -2.0, 0.5]], [0.25]),
...                          DenseLayer([[1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1), (-1, 1), (-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, formulation=("partition", {"n": 2}))
>>> print(m.nn.describe())
inputs Var [0, 1, 2]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0]
layer[0].pre Var [0]
layer[0].affine Constraint [0]
layer[0].is_active Var [0]
layer[0].active_part Var [(0, 0), (0, 1)]
layer[0].post_from_active_parts Constraint [0]
layer[0].post_at_least_pre Constraint [0]
layer[0].active_part_lower Constraint [(0, 0), (0, 1)]
layer[0].active_part_upper Constraint [(0, 0), (0, 1)]
layer[0].inactive_part_lower Constraint [(0, 0), (0, 1)]
layer[0].inactive_part_upper Constraint [(0, 0), (0, 1)]
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'partition' to layer 0:
  is_active, active_part, post_from_active_parts, post_at_least_pre, active_part_lower,
  active_part_upper, inactive_part_lower, inactive_part_upper
>>> m.nn.layer[0].partition_groups
{0: [[1], [2, 0]]}
>>> print(m.nn.layer[0].inactive_part_upper[0, 1].expr)
0.5*nn.inputs[2] + nn.inputs[0] - nn.layer[0].active_part[0,1] + 1.5*nn.layer[0].is_active[0]  <=  1.5
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyomo.environ as pe
from pyomo.core.expr.numeric_expr import LinearExpression, MonomialTermExpression

from pyomo_relu.bounds.interval import affine_interval
from pyomo_relu.errors import PyomoReluError
from pyomo_relu.formulations.base import Formulation, LayerContext, frozen_formulation

STRATEGIES = ("equal_size", "equal_range", "random", "uneven_magnitude")


@frozen_formulation
class Partition(Formulation):
    """One binary, one active part per group and the hull rows per unstable neuron (module doc)."""

    name = "partition"
    reads_weights = True

    n: int = 2
    strategy: str = "equal_size"
    seed: int = 0

    def validate(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise PyomoReluError(f"partition option n must be an integer >= 1, got {self.n!r}")
        if self.strategy not in STRATEGIES:
            raise PyomoReluError(f"unknown partition strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")

    def add(self, ctx: LayerContext) -> None:
        groups, bounds = _groups_and_bounds(ctx, self)
        _add_rows(ctx, groups, bounds)

    def initialize(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        """``σ = [pre > 0]``; ``z_n`` = the group's partial sum when active, else 0."""
        block = ctx.block
        x = input_values(ctx)
        weights = ctx.layer.weights
        for j in ctx.unstable:
            j = int(j)
            on = pre_values[j] > 0
            block.is_active[j].set_value(1 if on else 0, skip_validation=True)
            for n, group in enumerate(block.partition_groups[j]):
                value = float(weights[j, group] @ x[group]) if on else 0.0
                block.active_part[j, n].set_value(value, skip_validation=True)


# ------------------------------------------------------------------ grouping
def partition_inputs(
    weights: np.ndarray,
    n: int,
    strategy: str = "equal_size",
    *,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> list[np.ndarray]:
    """Split positions ``0 .. len(weights)-1`` into at most ``n`` non-empty groups.

    ``lower``/``upper`` (the inputs' bounds) are used by ``"uneven_magnitude"``; ``rng``
    by ``"random"``.  Every position appears in exactly one group.

    >>> [g.tolist() for g in partition_inputs(np.array([3.0, -1.0, 2.0, 0.5]), 2)]
    [[1, 3], [2, 0]]
    >>> [g.tolist() for g in partition_inputs(np.array([3.0, -1.0, 2.0, 0.5]), 4)]
    [[1], [3], [2], [0]]
    """
    weights = np.asarray(weights, dtype=float)
    m = weights.size
    if m == 0:
        return []
    n = max(1, min(int(n), m))
    if strategy == "equal_size":
        return _cut(np.argsort(weights, kind="stable"), n)
    if strategy == "random":
        rng = rng if rng is not None else np.random.default_rng(0)
        return _cut(rng.permutation(m), n)
    if strategy == "equal_range":
        low, high = float(weights.min()), float(weights.max())
        if high <= low:
            return [np.arange(m)]
        bins = np.minimum(((weights - low) / (high - low) * n).astype(int), n - 1)
        order = np.argsort(weights, kind="stable")
        groups = [order[bins[order] == k] for k in range(n)]
        return [g for g in groups if g.size]
    if strategy == "uneven_magnitude":
        lo = np.zeros(m) if lower is None else np.asarray(lower, float)
        hi = np.ones(m) if upper is None else np.asarray(upper, float)
        width = np.abs(weights) * (hi - lo)
        order = np.argsort(-width, kind="stable")
        groups = [order[k : k + 1] for k in range(n - 1)]
        groups.append(np.sort(order[n - 1 :]))
        return groups
    raise PyomoReluError(f"unknown partition strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def _cut(order: np.ndarray, n: int) -> list[np.ndarray]:
    """Contiguous pieces of ``order`` split at ``⌊k·m/n⌋`` (nested when n divides n')."""
    m = order.size
    edges = [(k * m) // n for k in range(n + 1)]
    return [order[edges[k] : edges[k + 1]] for k in range(n)]


# ------------------------------------------------------------- shared helpers
def present_inputs(ctx: LayerContext) -> np.ndarray:
    """Indices of the layer's inputs that are variables (not known zeros)."""
    return np.array([i for i, var in enumerate(ctx.inputs) if var is not None], dtype=int)


def linear(coefs: Any, variables: list[Any]) -> LinearExpression:
    """``Σ coefs[k] * variables[k]`` as one LinearExpression."""
    return LinearExpression([MonomialTermExpression((float(c), v)) for c, v in zip(coefs, variables)])


def add_tighter_bigm_rows(ctx: LayerContext, neurons: list[int], active: Any) -> None:
    """Big-M rows for neurons whose ``L``/``U`` are tighter than interval arithmetic.

    Hull-type formulations see only the input box; where the block's pre-activation
    bounds say more, ``post <= U σ`` and ``post <= pre − L (1 − σ)`` keep them at least as
    strong as big-M.  Components are created only when some neuron needs them.
    """
    columns = present_inputs(ctx)
    weights = ctx.layer.weights[:, columns]
    low, high = affine_interval(weights, ctx.layer.bias, ctx.input_lower[columns], ctx.input_upper[columns])
    pre, post = ctx.pre, ctx.post

    def tighter(a: float, b: float) -> bool:
        return a > b + 1e-9 * max(1.0, abs(a), abs(b))

    upper_rows = [j for j in neurons if tighter(high[j], ctx.upper[j])]
    lower_rows = [j for j in neurons if tighter(ctx.lower[j], low[j])]
    if upper_rows:
        ctx.block.post_zero_when_inactive = pe.Constraint(
            upper_rows, rule=lambda b, j: post[j] - float(ctx.upper[j]) * active[j] <= 0
        )
    if lower_rows:
        ctx.block.post_at_most_pre_when_active = pe.Constraint(
            lower_rows,
            rule=lambda b, j: post[j] - pre[j] - float(ctx.lower[j]) * active[j] <= -float(ctx.lower[j]),
        )


def input_values(ctx: LayerContext) -> np.ndarray:
    """Current values of the layer's inputs for a warm start (0 for known zeros).

    A variable without a value counts as the centre of its box; values are clipped to
    the box (the block clips the network inputs the same way).
    """
    lower, upper = ctx.input_lower, ctx.input_upper
    values = np.zeros(len(ctx.inputs))
    for i, var in enumerate(ctx.inputs):
        if var is None:
            continue
        if var.value is None:
            values[i] = (lower[i] + upper[i]) / 2 if np.isfinite(lower[i] + upper[i]) else 0.0
        else:
            values[i] = var.value
    return np.clip(values, lower, upper)


# --------------------------------------------------------------------- build
Groups = dict[int, list[list[int]]]
GroupBounds = dict[tuple[int, int], tuple[float, float]]


def _groups_and_bounds(ctx: LayerContext, options: Partition) -> tuple[Groups, GroupBounds]:
    """The groups of every unstable neuron and the interval bounds of their partial sums."""
    layer = ctx.layer
    columns = present_inputs(ctx)
    lo, hi = ctx.input_lower, ctx.input_upper
    groups: Groups = {}
    bounds: GroupBounds = {}
    for j in (int(j) for j in ctx.unstable):
        row = layer.weights[j, columns]
        idx = columns[row != 0]
        rng = np.random.default_rng((int(options.seed), int(ctx.index), j))
        parts = partition_inputs(
            layer.weights[j, idx], options.n, options.strategy, lower=lo[idx], upper=hi[idx], rng=rng
        )
        groups[j] = [[int(i) for i in idx[p]] for p in parts]
        for n, group in enumerate(groups[j]):
            w = layer.weights[j, group]
            a, c = w * lo[group], w * hi[group]
            bounds[j, n] = (float(np.minimum(a, c).sum()), float(np.maximum(a, c).sum()))
    return groups, bounds


def _add_rows(ctx: LayerContext, groups: Groups, bounds: GroupBounds) -> None:
    """The variables and rows of the module docstring, from the groups and their bounds."""
    block, layer, inputs = ctx.block, ctx.layer, ctx.inputs
    neurons = [int(j) for j in ctx.unstable]
    keys = [(j, n) for j in neurons for n in range(len(groups[j]))]
    pre, post, bias = ctx.pre, ctx.post, layer.bias

    block.is_active = pe.Var(neurons, within=pe.Binary, doc="1 when the neuron is active")
    block.active_part = pe.Var(
        keys,
        bounds=lambda b, j, n: (min(0.0, bounds[j, n][0]), max(0.0, bounds[j, n][1])),
        doc="active part z_n of group n's partial sum",
    )
    active, part = block.is_active, block.active_part

    def partial_sum(j: int, n: int) -> LinearExpression:
        group = groups[j][n]
        return linear(layer.weights[j, group], [inputs[i] for i in group])

    block.post_from_active_parts = pe.Constraint(
        neurons,
        rule=lambda b, j: post[j] - sum(part[j, n] for n in range(len(groups[j]))) - float(bias[j]) * active[j] == 0,
    )
    block.post_at_least_pre = pe.Constraint(neurons, rule=lambda b, j: post[j] - pre[j] >= 0)
    block.active_part_lower = pe.Constraint(
        [k for k in keys if bounds[k][0] != 0],
        rule=lambda b, j, n: part[j, n] - bounds[j, n][0] * active[j] >= 0,
    )
    block.active_part_upper = pe.Constraint(
        [k for k in keys if bounds[k][1] != 0],
        rule=lambda b, j, n: part[j, n] - bounds[j, n][1] * active[j] <= 0,
    )
    block.inactive_part_lower = pe.Constraint(
        keys,
        rule=lambda b, j, n: partial_sum(j, n) - part[j, n] + bounds[j, n][0] * active[j] >= bounds[j, n][0],
    )
    block.inactive_part_upper = pe.Constraint(
        keys,
        rule=lambda b, j, n: partial_sum(j, n) - part[j, n] + bounds[j, n][1] * active[j] <= bounds[j, n][1],
    )
    add_tighter_bigm_rows(ctx, neurons, active)
    block.partition_groups = groups
