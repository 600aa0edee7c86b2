r"""Input-domain splitting: branch and bound over sub-boxes with batched CROWN bounds.

Bounds of a batch of boxes
--------------------------
:func:`box_bounds` runs CROWN (see :mod:`pyomo_relu.bounds.crown` for the relaxation and
the back-substitution) on ``B`` boxes at once, as 3-d numpy arrays: every layer's bound
is the tightest of interval arithmetic, CROWN, and the bounds of the parent box (valid on
any sub-box).  With the specification rows ``C`` stacked from the unsafe polytopes, the
same back-substitution gives, for every box and row ``i``, a linear lower bound

.. math::

    C_i\,f(x) \;\ge\; \lambda_i \cdot x + \mu_i \qquad (x \in [l, u]),

so ``C_i f(x) >= lb_i := min_{x in [l,u]} λ_i·x + μ_i``.  A polytope ``A y <= b`` is empty
on the box as soon as one of its rows has ``lb_i > b_i``; its margin
``max_x min_i (b_i - A_i f(x))`` is at most ``U_p = min_i (b_i - lb_i)``.

The splitting loop
------------------
A priority queue holds sub-boxes, the largest margin bound first (so counterexamples are
met early).  Each round takes a batch of boxes and

1. computes :func:`box_bounds`; a box whose polytopes all have ``U_p < 0`` is **safe**
   and dropped;
2. cuts the box to the part that can still be unsafe (:func:`shrink_box`: every linear
   bound ``λ_i·x + μ_i <= b_i`` of a polytope's row is a half-space holding its unsafe
   points); a box cut to nothing is safe;
3. evaluates the network at the box centre and at the box corner that minimises each
   row's linear bound (where the relaxation says the unsafe region is nearest); a point
   whose margin is ``>= 0`` by the exact forward pass is a **counterexample**;
4. hands boxes with few unstable neurons to ``leaf_solver`` (a small MILP), when given;
5. splits the others in two along the input with the largest
   ``|λ_{i*,d}| · (u_d - l_d)``, where ``i*`` is the row that bounds each open polytope
   (the "smear" of ReluVal/Neurify measured with the CROWN coefficients), unless that
   input is already much narrower than the (relatively) widest one, which is then split.

The property holds when the queue is empty.  Rounds can run in parallel through an
``executor`` (``None``, a number of processes, or any ``concurrent.futures.Executor``);
the time limit is checked between rounds and passed to leaf solves.

This module uses numpy only; the leaf MILP is supplied by :mod:`pyomo_relu.verify.verify`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from pyomo_relu.bounds.crown import max_relaxation, relaxation
from pyomo_relu.network import group_max
from pyomo_relu.sparse import dense
from pyomo_relu.verify.vnnlib import Polytope

logger = logging.getLogger(__name__)

__all__ = ["BoxBounds", "SplitResult", "SpecRows", "box_bounds", "split_verify"]

#: A polytope counts as empty on a box when its margin bound is below ``-SAFE_MARGIN``.
SAFE_MARGIN = 1e-9

#: Sub-boxes are split at most this many times (then left undecided: the verdict is unknown).
MAX_DEPTH = 200

#: Relative width ratio at which the split falls back to the widest input (see ``_split_dimension``).
LOPSIDED = 64.0

#: ``(weights, bias, kind)`` per canonical layer: plain arrays that pickle cheaply.  ``kind``
#: is the boolean ReLU mask of a dense layer, or the integer group of every row of a max layer.
LayerArrays = Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]


def is_max(kind: np.ndarray) -> bool:
    """True for the ``kind`` entry of a max layer (integer groups, not a boolean mask)."""
    return kind.dtype != np.bool_


def layer_arrays(net: object) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The canonical layers of a network as plain ``(W, b, relu_mask)`` tuples.

    Max layers give ``(W, b, groups)``.  Raises
    :class:`~pyomo_relu.errors.UnsupportedOperatorError` for smooth activations.
    """
    from pyomo_relu.errors import UnsupportedOperatorError

    arrays = []
    for k, layer in enumerate(net.canonical_layers):  # type: ignore[attr-defined]
        groups = getattr(layer, "groups", None)
        if groups is None and layer.smooth_mask.any():
            raise UnsupportedOperatorError(
                f"canonical layer {k} ({layer.name or layer.activation}) has smooth activations "
                "(sigmoid, tanh, softplus); verification needs piecewise-linear networks")
        kind = np.asarray(groups, dtype=np.int64) if groups is not None else np.asarray(layer.relu_mask)
        arrays.append((dense(layer.weights), np.asarray(layer.bias), kind))
    return arrays


# ------------------------------------------------------------- specification
@dataclass(frozen=True)
class SpecRows:
    """The rows of several polytopes stacked: ``C`` (r, n_out), ``d`` (r,), and ``owner`` (r,).

    Row ``i`` belongs to polytope ``owner[i]``; the polytope is ``C[owner == p] y <= d[owner == p]``.
    """

    C: np.ndarray
    d: np.ndarray
    owner: np.ndarray
    n_polytopes: int

    @classmethod
    def of(cls, polytopes: Sequence[Polytope], n_outputs: int) -> "SpecRows":
        rows = [p.A for p in polytopes]
        C = np.concatenate(rows) if rows else np.zeros((0, n_outputs))
        d = np.concatenate([p.b for p in polytopes]) if rows else np.zeros(0)
        owner = np.concatenate([np.full(p.n_rows, k) for k, p in enumerate(polytopes)]) if rows else np.zeros(0, int)
        return cls(C.reshape(-1, n_outputs), d, owner.astype(int), len(polytopes))

    def margins(self, y: np.ndarray) -> np.ndarray:
        """``(n, P)``: ``min_{i in p} (d_i - C_i y)`` per point and polytope (``+inf`` without rows)."""
        slack = self.d - y @ self.C.T
        return self.reduce_min(slack)

    def reduce_min(self, per_row: np.ndarray) -> np.ndarray:
        """Minimum over each polytope's rows of the last axis of ``per_row``."""
        out = np.full(per_row.shape[:-1] + (self.n_polytopes,), np.inf)
        for p in range(self.n_polytopes):
            mask = self.owner == p
            if mask.any():
                out[..., p] = per_row[..., mask].min(axis=-1)
        return out


# -------------------------------------------------------------------- bounds
@dataclass
class BoxBounds:
    """Bounds of a batch of ``B`` boxes.

    ``lower[k]``, ``upper[k]``: ``(B, n_k)`` pre-activation bounds of canonical layer ``k``.
    ``row_lower``: ``(B, r)`` lower bounds of ``C_i f(x)``; ``row_coef`` ``(B, r, n_in)`` and
    ``row_const`` ``(B, r)`` CROWN's linear bound ``C_i f(x) >= row_coef·x + row_const``;
    ``forms`` every linear bound computed (CROWN's first), all valid.
    """

    lower: list[np.ndarray]
    upper: list[np.ndarray]
    row_lower: np.ndarray
    row_coef: np.ndarray
    row_const: np.ndarray
    forms: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def unstable(self) -> np.ndarray:
        """``(B,)`` number of unstable ReLU neurons per box (all layers)."""
        return sum(((lo < 0) & (hi > 0)).sum(axis=1) for lo, hi in zip(self.lower, self.upper))


def _box_max(coef: np.ndarray, const: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``max_x coef·x + const`` over boxes: coef ``(B, r, n)``, const ``(B, r)``, boxes ``(B, n)``."""
    positive = np.maximum(coef, 0.0)
    return (np.einsum("brn,bn->br", positive, upper) + np.einsum("brn,bn->br", coef - positive, lower)
            + const)


Relaxation = tuple  # (slope_u, intercept_u, slope_l, keep): (B, n) arrays and the (n,) columns that matter


def _relax_max(low: np.ndarray, high: np.ndarray, groups: np.ndarray) -> Relaxation:
    """Max layer, per box: :func:`pyomo_relu.bounds.crown.max_relaxation` on ``(B, n)`` bounds.

    Returned as ``("max", mask_u, intercept_u, mask_l, groups)`` with ``(B, n)`` masks and
    ``(B, G)`` intercepts.
    """
    mask_u, intercept_u, mask_l = max_relaxation(groups, low, high)
    return ("max", mask_u.astype(float), intercept_u, mask_l.astype(float), groups)


def _relax(low: np.ndarray, high: np.ndarray, kind: np.ndarray) -> Relaxation:
    """CROWN's lines around each neuron, and the neurons not proven inactive in every box."""
    if is_max(kind):
        return _relax_max(low, high, kind)
    is_relu = kind
    slope_u, intercept_u, slope_l = relaxation(low, high, "relu")
    slope_u = np.where(is_relu, slope_u, 1.0)
    intercept_u = np.where(is_relu, intercept_u, 0.0)
    slope_l = np.where(is_relu, slope_l, 1.0)
    keep = np.flatnonzero((slope_u != 0).any(axis=0) | (slope_l != 0).any(axis=0))
    return slope_u[:, keep], intercept_u[:, keep], slope_l[:, keep], keep


def _back_substitute(
    coef: np.ndarray, const: np.ndarray, layers: LayerArrays, relaxations: list[Relaxation],
) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite ``coef·h_{k-1} + const`` (an upper bound form) as a form in ``x``.

    ``coef`` is ``(B, r, n_{k-1})``; ``layers`` and ``relaxations`` are those of layers
    ``0 .. k-1``.  Each step uses ``λ⁺ ⊙ a_U + λ⁻ ⊙ a_L`` and adds ``λ⁺·c_U`` (CROWN);
    neurons inactive in every box have zero slopes and are skipped.
    """
    for (weights, bias, _), relaxed in zip(reversed(layers), reversed(relaxations)):
        if isinstance(relaxed[0], str):  # ("max", ...)
            _, mask_u, intercept_u, mask_l, groups = relaxed
            positive = np.maximum(coef, 0.0)
            negative = coef - positive
            const = const + np.einsum("brn,bn->br", positive, intercept_u)
            coef = positive[:, :, groups] * mask_u[:, None, :] + negative[:, :, groups] * mask_l[:, None, :]
            const = const + coef @ bias
            coef = coef @ weights
            continue
        slope_u, intercept_u, slope_l, keep = relaxed
        coef = coef[:, :, keep] if keep.size != coef.shape[2] else coef
        positive = np.maximum(coef, 0.0)
        negative = coef - positive
        const = const + np.einsum("brn,bn->br", positive, intercept_u)
        coef = positive * slope_u[:, None, :] + negative * slope_l[:, None, :]
        const = const + coef @ bias[keep]
        coef = coef @ weights[keep]
    return coef, const


def box_bounds(
    layers: LayerArrays,
    lower: np.ndarray,
    upper: np.ndarray,
    rows: np.ndarray,
    start: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
) -> BoxBounds:
    """CROWN bounds of every layer and of the rows ``rows @ f(x)`` over ``B`` boxes.

    ``lower``/``upper`` are ``(B, n_in)``; ``rows`` is ``(r, n_out)``; ``start`` optional
    per-layer ``(B, n_k)`` bounds valid on these boxes (e.g. those of the parent boxes),
    intersected layer by layer.  Every bound is sound for every ``x`` in its box.
    """
    lower, upper = np.atleast_2d(lower).astype(float), np.atleast_2d(upper).astype(float)
    batch = lower.shape[0]
    pre_lower: list[np.ndarray] = []
    pre_upper: list[np.ndarray] = []
    relaxations: list[Relaxation] = []
    h_low, h_high = lower, upper
    for k, (weights, bias, kind) in enumerate(layers):
        positive, negative = np.maximum(weights, 0.0), np.minimum(weights, 0.0)
        low = h_low @ positive.T + h_high @ negative.T + bias
        high = h_high @ positive.T + h_low @ negative.T + bias
        if start is not None:
            low, high = np.maximum(low, start[0][k]), np.minimum(high, start[1][k])
        # CROWN only where it can matter: not for ReLUs proven inactive in every box (their output is 0).
        open_ = np.arange(low.shape[1]) if is_max(kind) else np.flatnonzero((high > 0).any(axis=0) | ~kind)
        if k > 0 and open_.size:
            n, w, c = open_.size, weights[open_], bias[open_]
            coef = np.broadcast_to(np.concatenate([w, -w]), (batch, 2 * n, weights.shape[1]))
            const = np.broadcast_to(np.concatenate([c, -c]), (batch, 2 * n))
            coef, const = _back_substitute(coef, const, layers[:k], relaxations)
            both = _box_max(coef, const, lower, upper)
            low[:, open_] = np.maximum(low[:, open_], -both[:, n:])
            high[:, open_] = np.minimum(high[:, open_], both[:, :n])
        low, high = np.minimum(low, high), np.maximum(low, high)
        pre_lower.append(low)
        pre_upper.append(high)
        relaxations.append(_relax(low, high, kind))
        if is_max(kind):
            h_low, h_high = group_max(low, kind), group_max(high, kind)
        else:
            h_low, h_high = np.where(kind, np.maximum(low, 0.0), low), np.where(kind, np.maximum(high, 0.0), high)
    forms, row_lower = _row_bounds(layers, relaxations, lower, upper, rows)
    # The rows over the output box itself can be tighter (e.g. with LP output bounds in ``start``).
    positive = np.maximum(rows, 0.0)
    row_lower = np.maximum(row_lower, h_low @ positive.T + h_high @ (rows - positive).T)
    return BoxBounds(pre_lower, pre_upper, row_lower, forms[0][0], forms[0][1], forms)


def _row_bounds(
    layers: LayerArrays, relaxations: list[Relaxation], lower: np.ndarray, upper: np.ndarray, rows: np.ndarray,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Linear lower bounds ``rows @ f(x) >= coef·x + const`` and the best minimum over each box.

    The rows are few, so three choices of the lower slope ``a_L`` of unstable neurons are
    tried: CROWN's adaptive one (first in the list), 0 and 1.  Each gives a sound linear
    bound; the row bound is the best of the three, box by box.
    """
    batch, r = lower.shape[0], rows.shape[0]
    forms, best = [], np.full((batch, r), -np.inf)
    for variant in ("adaptive", "zero", "one"):
        relaxed = relaxations if variant == "adaptive" else [_lower_slopes(rel, variant) for rel in relaxations]
        # rows @ f(x) = rows @ σ_L(z_L): the rows act as one more linear layer.
        coef = np.broadcast_to(-rows, (batch, r, rows.shape[1]))
        coef, const = _back_substitute(coef, np.zeros((batch, r)), layers, relaxed)
        best = np.maximum(best, -_box_max(coef, const, lower, upper))
        forms.append((-coef, -const))
    return forms, best


def _lower_slopes(rel: Relaxation, variant: str) -> Relaxation:
    """The same relaxation with the lower slope of unstable neurons set to 0 or 1."""
    if isinstance(rel[0], str):  # max layers keep their lines
        return rel
    slope_u, intercept_u, slope_l, keep = rel
    unstable = (slope_u > 0) & (slope_u < 1)
    return slope_u, intercept_u, np.where(unstable, 1.0 if variant == "one" else 0.0, slope_l), keep


# ------------------------------------------------------------------ workers
@dataclass
class _Batch:
    """What one round computes for its boxes (plain arrays, so it pickles)."""

    margin_bound: np.ndarray   # (B, P) upper bound of each polytope's margin
    split_dim: np.ndarray      # (B,)
    unstable: np.ndarray       # (B,)
    candidates: np.ndarray     # (B, c, n_in) points to evaluate
    candidate_margin: np.ndarray  # (B, c) best polytope margin at each candidate (canonical forward pass)
    lower: list[np.ndarray]
    upper: list[np.ndarray]
    box_lower: np.ndarray      # (B, n_in) the boxes shrunk to their possibly unsafe part
    box_upper: np.ndarray


def _forward(layers: LayerArrays, x: np.ndarray) -> np.ndarray:
    for weights, bias, kind in layers:
        x = x @ weights.T + bias
        x = group_max(x, kind) if is_max(kind) else np.where(kind, np.maximum(x, 0.0), x)
    return x


def shrink_box(
    forms: Sequence[tuple[np.ndarray, np.ndarray]], spec: "SpecRows", lower: np.ndarray, upper: np.ndarray,
    passes: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smallest box that keeps every unsafe point, from linear row bounds.

    ``forms`` are pairs ``(coef (B, r, n), const (B, r))`` with ``C_i f(x) >= coef_i·x + const_i``
    on the boxes.  An unsafe ``x`` (``f(x)`` in polytope ``p``) satisfies
    ``coef_i·x + const_i <= C_i f(x) <= d_i`` for every row ``i`` of ``p`` and every form.  Each
    such half-space cuts the box by interval propagation:
    ``coef_id x_d <= d_i - const_i - Σ_{e≠d} min(coef_ie x_e)``.  The result is the hull over
    the polytopes of their cut boxes, widened outwards by ``1e-9`` of the width against
    round-off (and with the right-hand side loosened by ``1e-10`` of its terms), with
    ``empty[b]`` where every polytope's cut box is empty.
    """
    batch, n = lower.shape
    new_lower = np.full((batch, n), np.inf)
    new_upper = np.full((batch, n), -np.inf)
    empty = np.ones(batch, dtype=bool)
    pad = 1e-9 * (upper - lower) + 1e-12
    for p in range(spec.n_polytopes):
        rows = np.flatnonzero(spec.owner == p)
        lo, hi = lower.copy(), upper.copy()
        dead = np.zeros(batch, dtype=bool)
        for _ in range(passes if rows.size else 0):
            for (coef, const), i in ((form, i) for form in forms for i in rows):
                lam = coef[:, i, :]
                least = np.where(lam > 0, lam * lo, lam * hi)
                room = (spec.d[i] - const[:, i])[:, None] - (least.sum(axis=1, keepdims=True) - least)
                # Round-off in the sums may only loosen the cut, never tighten it.
                room = room + 1e-10 * (1.0 + abs(spec.d[i]) + np.abs(const[:, i])[:, None]
                                       + np.abs(least).sum(axis=1, keepdims=True))
                with np.errstate(divide="ignore", invalid="ignore"):
                    limit = room / lam
                cut_hi = np.where(lam > 0, np.minimum(hi, limit + pad), hi)
                cut_lo = np.where(lam < 0, np.maximum(lo, limit - pad), lo)
                lo, hi = cut_lo, cut_hi
                dead |= np.any(lo > hi, axis=1)
        alive = ~dead
        new_lower[alive] = np.minimum(new_lower[alive], lo[alive])
        new_upper[alive] = np.maximum(new_upper[alive], hi[alive])
        empty &= dead
    new_lower = np.where(empty[:, None], lower, np.maximum(new_lower, lower))
    new_upper = np.where(empty[:, None], upper, np.minimum(new_upper, upper))
    return new_lower, new_upper, empty


def _split_dimension(score: np.ndarray, width: np.ndarray, root_width: np.ndarray) -> np.ndarray:
    """The input to split per box: the largest smear ``score``, unless it is lopsided.

    The smear only sees the linear part of the bound; the looseness of the relaxation
    (unstable neurons) can come from an input whose coefficient is near zero.  So when
    the chosen input is already :data:`LOPSIDED` times narrower (relative to the root
    box) than the relatively widest one, the relatively widest input is split instead.
    """
    relative = np.where(root_width > 0, width / np.where(root_width > 0, root_width, 1.0), 0.0)
    chosen = np.argmax(np.where(width > 0, score + 1e-12 * relative, -1.0), axis=1)
    widest = np.argmax(relative, axis=1)
    rows = np.arange(len(chosen))
    lopsided = relative[rows, chosen] * LOPSIDED < relative[rows, widest]
    return np.where(lopsided, widest, chosen)


def process_batch(
    layers: LayerArrays, spec: SpecRows, lower: np.ndarray, upper: np.ndarray,
    start: tuple[list[np.ndarray], list[np.ndarray]] | None, root_width: np.ndarray,
) -> _Batch:
    """Bounds, margin bounds, the shrunk boxes, attack candidates and split choices for a batch."""
    bounds = box_bounds(layers, lower, upper, spec.C, start)
    slack_bound = spec.d - bounds.row_lower                  # (B, r) >= d_i - C_i f(x)
    margin_bound = spec.reduce_min(slack_bound)              # (B, P)
    lower, upper, empty = shrink_box(bounds.forms, spec, lower, upper)
    # A box cut to nothing is safe; its margin is only known to be negative.
    margin_bound[empty] = np.minimum(margin_bound[empty], -SAFE_MARGIN * 2)
    width = upper - lower
    score = np.zeros_like(width)
    for p in range(spec.n_polytopes):
        rows = np.flatnonzero(spec.owner == p)
        if rows.size == 0:
            continue
        best = rows[np.argmin(slack_bound[:, rows], axis=1)]  # the row that bounds polytope p
        coef = bounds.row_coef[np.arange(len(best)), best]    # (B, n)
        open_ = (margin_bound[:, p] >= -SAFE_MARGIN)[:, None]
        score += np.where(open_, np.abs(coef) * width, 0.0)
    split_dim = _split_dimension(score, width, root_width)
    # Candidates: the centre and, per row, the corner minimising its linear lower bound.
    corners = np.where(bounds.row_coef > 0, lower[:, None, :], upper[:, None, :])
    candidates = np.concatenate([((lower + upper) / 2)[:, None, :], corners], axis=1)
    flat = candidates.reshape(-1, lower.shape[1])
    y = _forward(layers, flat)
    candidate_margin = spec.margins(y).max(axis=1).reshape(candidates.shape[:2])
    return _Batch(margin_bound, split_dim, bounds.unstable(), candidates, candidate_margin,
                  bounds.lower, bounds.upper, lower, upper)


# ------------------------------------------------------------------- driver
@dataclass
class LeafOutcome:
    """What a leaf solver says about a box: ``"unsat"``, ``"sat"`` (with ``x``) or ``"unknown"``."""

    status: str
    x: np.ndarray | None = None
    bound: float | None = None


LeafSolver = Callable[[np.ndarray, np.ndarray, tuple[list[np.ndarray], list[np.ndarray]], float], LeafOutcome]
Checker = Callable[[np.ndarray], np.ndarray]


@dataclass
class SplitResult:
    """Outcome of :func:`split_verify`.

    ``status`` is ``"unsat"`` (every sub-box proven safe), ``"sat"`` (``x`` confirmed by
    ``check``) or ``"unknown"`` (time or box budget exhausted, or ``unresolved`` sub-boxes
    that could not be split further).  ``boxes`` counts the sub-boxes bounded, ``leaves``
    the leaf MILPs, ``bound`` the largest margin bound of a discarded box (boxes removed
    by the input cut, whose margin is only known to be negative, count as
    ``-2·SAFE_MARGIN``).
    """

    status: str
    x: np.ndarray | None = None
    boxes: int = 0
    leaves: int = 0
    bound: float = -np.inf
    max_depth: int = 0
    unresolved: int = 0
    reason: str = ""


@dataclass(order=True)
class _Item:
    priority: float
    order: int
    lower: np.ndarray = field(compare=False)
    upper: np.ndarray = field(compare=False)
    depth: int = field(compare=False, default=0)
    start: tuple | None = field(compare=False, default=None)
    split: int = field(compare=False, default=-1)  # the input to split, -1: decided (no children)


def split_verify(
    layers: LayerArrays,
    spec: SpecRows,
    lower: np.ndarray,
    upper: np.ndarray,
    check: Checker,
    *,
    deadline: float | None = None,
    leaf_solver: LeafSolver | None = None,
    leaf_unstable: int = 12,
    batch_size: int = 256,
    max_boxes: int | None = None,
    executor: Executor | int | None = None,
) -> SplitResult:
    """Decide whether some ``x`` in ``[lower, upper]`` has ``f(x)`` in one of the polytopes.

    ``check(X)`` returns the exact margin (``max_p margin_p(f(x))``, by the reference
    forward pass) of each row of ``X``; only points it confirms (``>= 0``) are reported.
    ``leaf_solver(lower, upper, bounds, time_left)`` decides a small box exactly; it is
    called for boxes with at most ``leaf_unstable`` unstable neurons.
    """
    runner = _BatchRunner(executor, np.asarray(upper, float) - np.asarray(lower, float))
    counter = itertools.count()
    queue: list[_Item] = [_Item(-np.inf, next(counter), np.asarray(lower, float), np.asarray(upper, float))]
    result = SplitResult("unknown")
    started = time.perf_counter()
    try:
        while queue:
            if deadline is not None and time.perf_counter() >= deadline:
                result.reason = "time limit"
                return result
            if max_boxes is not None and result.boxes >= max_boxes:
                result.reason = f"box budget {max_boxes}"
                return result
            size = _batch_size(result.boxes, batch_size)
            if deadline is not None and result.boxes:  # a round may take at most half the time left
                per_box = (time.perf_counter() - started) / result.boxes
                size = max(1, min(size, int(0.5 * (deadline - time.perf_counter()) / max(per_box, 1e-6))))
            items = [heapq.heappop(queue) for _ in range(min(len(queue), size))]
            outcome = _round(items, layers, spec, runner, check, result, deadline, leaf_solver, leaf_unstable)
            if outcome is not None:
                return outcome
            for item in _children_of(items, counter):
                heapq.heappush(queue, item)
        if result.unresolved:
            result.reason = f"{result.unresolved} sub-box(es) too small to split were left undecided"
            return result
        result.status = "unsat"
        return result
    finally:
        runner.close()


def _batch_size(done: int, limit: int) -> int:
    """Small batches first (an easy property is decided at once), then ``limit``."""
    return int(min(limit, max(1, 2 ** (done.bit_length() // 2 + 1))))


def _round(
    items: list[_Item], layers: LayerArrays, spec: SpecRows, runner: "_BatchRunner", check: Checker,
    result: SplitResult, deadline: float | None, leaf_solver: LeafSolver | None, leaf_unstable: int,
) -> SplitResult | None:
    """Bound, attack and (for small boxes) solve one batch; mark the boxes to split."""
    batch = runner.run(layers, spec, items)
    result.boxes += len(items)
    result.max_depth = max(result.max_depth, max(item.depth for item in items))
    found = _confirmed_candidate(batch, check)
    if found is not None:
        result.status, result.x = "sat", found
        return result
    for b, item in enumerate(items):
        bound = float(batch.margin_bound[b].max()) if spec.n_polytopes else -np.inf
        item.priority = -bound  # reused for the children
        item.start = ([a[b] for a in batch.lower], [a[b] for a in batch.upper])
        item.lower, item.upper = batch.box_lower[b], batch.box_upper[b]
        if bound < -SAFE_MARGIN:
            result.bound = max(result.bound, bound)
            continue
        if leaf_solver is not None and batch.unstable[b] <= leaf_unstable:
            left = np.inf if deadline is None else deadline - time.perf_counter()
            if left <= 0:
                result.reason = "time limit"
                return result
            leaf = leaf_solver(item.lower, item.upper, item.start, left)
            result.leaves += 1
            if leaf.status == "sat" and leaf.x is not None:
                result.status, result.x = "sat", leaf.x
                return result
            if leaf.status == "unsat":
                result.bound = max(result.bound, leaf.bound if leaf.bound is not None else -SAFE_MARGIN)
                continue
        if item.depth >= MAX_DEPTH or not np.any(item.upper > item.lower):
            result.unresolved += 1  # too small to split further: the verdict cannot be unsat
            continue
        item.split = int(batch.split_dim[b])
    return None


def _confirmed_candidate(batch: _Batch, check: Checker) -> np.ndarray | None:
    """The first candidate point the exact check confirms, trying the most promising first."""
    margins = batch.candidate_margin.ravel()
    promising = np.flatnonzero(margins >= -1e-7)
    if promising.size == 0:
        return None
    points = batch.candidates.reshape(-1, batch.candidates.shape[-1])[promising]
    exact = check(points)
    good = np.flatnonzero(exact >= 0)
    return points[good[np.argmax(exact[good])]] if good.size else None


def _children_of(items: list[_Item], counter: itertools.count) -> list[_Item]:
    children = []
    for item in items:
        if item.split < 0:
            continue
        d = item.split
        middle = 0.5 * (item.lower[d] + item.upper[d])
        left_upper, right_lower = item.upper.copy(), item.lower.copy()
        left_upper[d], right_lower[d] = middle, middle
        for lo, hi in ((item.lower, left_upper), (right_lower, item.upper)):
            children.append(_Item(item.priority, next(counter), lo, hi, item.depth + 1, item.start))
    return children


class _BatchRunner:
    """Runs :func:`process_batch` in this process or spread over an executor."""

    def __init__(self, executor: Executor | int | None, root_width: np.ndarray) -> None:
        self.root_width = root_width
        self.owned: Executor | None = None
        if isinstance(executor, int) and not isinstance(executor, bool):
            if executor > 1:
                self.owned = ProcessPoolExecutor(executor, mp_context=multiprocessing.get_context("forkserver"))
            executor = self.owned
        self.executor: Executor | None = executor  # type: ignore[assignment]
        self.workers = int(getattr(self.executor, "_max_workers", 0) or 2) if self.executor else 1

    def close(self) -> None:
        if self.owned is not None:
            self.owned.shutdown(wait=True, cancel_futures=True)

    def run(self, layers: LayerArrays, spec: SpecRows, items: list[_Item]) -> _Batch:
        lower = np.stack([item.lower for item in items])
        upper = np.stack([item.upper for item in items])
        start = _stack_start(items)
        if self.executor is None or len(items) < 8:
            return process_batch(layers, spec, lower, upper, start, self.root_width)
        parts = np.array_split(np.arange(len(items)), min(self.workers, len(items) // 4))
        futures = [
            self.executor.submit(process_batch, layers, spec, lower[p], upper[p],
                                 None if start is None else ([a[p] for a in start[0]], [a[p] for a in start[1]]),
                                 self.root_width)
            for p in parts
        ]
        return _concatenate([future.result() for future in futures])


def _stack_start(items: list[_Item]) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    if any(item.start is None for item in items):
        return None
    n_layers = len(items[0].start[0])
    return ([np.stack([item.start[0][k] for item in items]) for k in range(n_layers)],
            [np.stack([item.start[1][k] for item in items]) for k in range(n_layers)])


def _concatenate(parts: list[_Batch]) -> _Batch:
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    n_layers = len(parts[0].lower)
    return _Batch(
        cat("margin_bound"), cat("split_dim"), cat("unstable"), cat("candidates"), cat("candidate_margin"),
        [np.concatenate([p.lower[k] for p in parts]) for k in range(n_layers)],
        [np.concatenate([p.upper[k] for p in parts]) for k in range(n_layers)],
        cat("box_lower"), cat("box_upper"),
    )
