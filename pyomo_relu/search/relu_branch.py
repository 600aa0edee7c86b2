r"""Branch and bound on ReLU phases, for feasibility problems with many inputs (MNIST).

Input splitting halves one of ``n`` input widths per step, hopeless for ``n = 784``.  Here a
**domain** is the input box with some unstable ReLUs fixed to a phase: ``z_j <= 0``
(inactive, its upper bound set to 0) or ``z_j >= 0`` (active, lower bound 0).  The two
children of a domain cover it, so a property holds when every domain is excluded.

Per batch of domains (:func:`relu_branch_and_bound`):

1. batched CROWN with each domain's neuron bounds as ``start``
   (:func:`~pyomo_relu.bounds.crown.batch_crown`), then alpha-CROWN on the specification
   rows warm-started from the parent's slopes (:func:`pyomo_relu.search.nodes.alpha_rows`).
   A fixed neuron's relaxation is exact on the domain, and every line is valid on the
   domain's points, so the minimum over the whole box is a sound bound on the domain.
   With ``beta=True`` the split constraints ``s_j z_j >= 0`` enter the bound as Lagrangian
   terms ``-β_j s_j z_j`` (``β >= 0``, beta-CROWN; sound for every ``β`` because each term
   is ``<= 0`` on the domain), optimised with the slopes;
2. a domain whose every region's margin bound is below ``-SAFE_MARGIN`` is discarded;
3. the corners minimising each row's linear lower bound are checked by ``check`` (the
   exact forward pass): a confirmed point decides ``sat``;
4. each open domain is split on the unstable neuron of largest BaBSR intercept score
   (:func:`pyomo_relu.bounds.alpha.intercept_scores`) summed over the rows bounding its
   open regions.

A domain with no unstable neuron left that is still open cannot be split (its bound is
that of a linear function over the whole box) and leaves the answer ``unknown``.

Each domain also carries the regions its ancestors have not excluded (a region excluded on
a domain stays excluded on its sub-domains).  When the search stops undecided it reports
the regions some open domain still holds (``open_regions``): every other region is excluded
on every domain of the partition, hence infeasible on the whole box, and the caller's MILPs
need only the regions left (on MNIST 256x4 prop 8, one of nine).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pyomo_relu.bounds.alpha import Slopes, expand, initial_slopes, intercept_scores
from pyomo_relu.bounds.crown import BatchBounds, MaxRelaxation, batch_crown, linear_bounds
from pyomo_relu.search.nodes import SAFE_MARGIN, SEARCH_ALPHA_STEPS, alpha_rows, safe_margin
from pyomo_relu.search.problem import SearchProblem

logger = logging.getLogger(__name__)

__all__ = ["ReluSearchResult", "relu_branch_and_bound"]

#: Domains kept at most (each holds its neuron bounds and slopes); beyond it the answer is unknown.
MAX_DOMAINS = 8000


@dataclass
class ReluSearchResult:
    """``status``: ``"feasible"`` (``x`` confirmed by ``check``), ``"infeasible"`` (every domain
    excluded: ``margin_bound`` is the largest margin bound met), or ``"unknown"`` (``reason``)."""

    status: str
    x: np.ndarray | None
    domains: int
    margin_bound: float
    reason: str = ""
    #: For ``"unknown"``: the regions some open domain has not excluded (every other region is
    #: excluded on every domain of the partition, so it is proven infeasible on the whole box).
    open_regions: np.ndarray | None = None


@dataclass(order=True)
class ReluDomain:
    """The box with some unstable ReLUs fixed: ``signs[k][j]`` -1 (inactive), +1 (active), 0 (free)."""

    priority: float
    order: int
    lower: list[np.ndarray] = field(compare=False)
    upper: list[np.ndarray] = field(compare=False)
    signs: list[np.ndarray] = field(compare=False)
    slopes: Slopes | None = field(compare=False, default=None)
    depth: int = field(compare=False, default=0)
    open_regions: np.ndarray | None = field(compare=False, default=None)  # regions not excluded by an ancestor
    row_lower: np.ndarray | None = field(compare=False, default=None)  # the parent's row bounds (valid here too)


def _stack(
    domains: list[ReluDomain],
) -> tuple[tuple[list[np.ndarray], list[np.ndarray]], list[np.ndarray], Slopes | None]:
    """The domains' neuron bounds, split signs and (if every domain has them) slopes, stacked per layer."""
    n = len(domains[0].lower)
    start = (
        [np.stack([d.lower[k] for d in domains]) for k in range(n)],
        [np.stack([d.upper[k] for d in domains]) for k in range(n)],
    )
    signs = [np.stack([d.signs[k] for d in domains]) for k in range(n)]
    given = [d.slopes for d in domains]
    if any(g is None for g in given):
        return start, signs, None
    layers = [g for g in given if g is not None]
    return start, signs, [None if s is None else _stack_layer([g[k] for g in layers]) for k, s in enumerate(layers[0])]


def _stack_layer(values: list[np.ndarray | None]) -> np.ndarray:
    """One layer's slopes of every domain (a layer has slopes in all domains or in none)."""
    arrays = [v for v in values if v is not None]
    assert len(arrays) == len(values), "a layer has slopes in every domain or in none"
    return np.stack(arrays)


def _choose(
    problem: SearchProblem, bounds: BatchBounds, slopes: Slopes | None, slack: np.ndarray, margin: np.ndarray
) -> list[tuple[int, int] | None]:
    """Per domain, ``(layer, neuron)`` of the largest BaBSR score over its open regions' bounding rows."""
    widths = [layer.n_outputs for layer in problem.layers]
    batch = slack.shape[0]
    if slopes is None:
        slopes = initial_slopes(bounds.relaxations, problem.rows_y.shape[0], widths)
    coef = np.broadcast_to(-problem.rows_y, (batch,) + problem.rows_y.shape)
    scores = intercept_scores(
        bounds.relaxations, widths, coef, [None if s is None else np.asarray(s, float) for s in slopes]
    )
    weight = np.zeros(slack.shape)
    for p in range(problem.n_regions):
        rows = problem.region_rows(p)
        best = rows[np.argmin(slack[:, rows], axis=1)]
        weight[np.arange(batch), best] += margin[:, p] >= -SAFE_MARGIN
    choices: list[tuple[int, int] | None] = []
    per_layer = [None if s is None else np.einsum("br,brn->bn", weight, s) for s in scores]
    for b in range(batch):
        best_value, best_choice = 0.0, None
        for k, (score, relaxed) in enumerate(zip(per_layer, bounds.relaxations)):
            if score is None or isinstance(relaxed, MaxRelaxation):
                continue
            unstable = np.zeros(widths[k], bool)
            unstable[relaxed.keep] = relaxed.unstable[b]
            values = np.where(unstable, score[b] + 1e-12, 0.0)
            j = int(np.argmax(values))
            if values[j] > best_value:
                best_value, best_choice = float(values[j]), (k, j)
        choices.append(best_choice)
    return choices


def _candidates(problem: SearchProblem, form: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Per domain and row, the input corner minimising the row's linear lower bound."""
    coef = form[0]
    return np.where(coef > 0, problem.lower, problem.upper).reshape(-1, problem.n_inputs)


@dataclass
class ReluDomainBounds:
    """One batch of domains bounded: CROWN's bounds (relaxations expanded for beta), slopes and margins."""

    bounds: BatchBounds
    slopes: Slopes | None
    signs: list[np.ndarray]
    slack: np.ndarray
    margin: np.ndarray
    excluded: np.ndarray
    points: np.ndarray
    open_regions: np.ndarray  # (B, P): regions neither this bound nor an ancestor's excludes
    row_lower: np.ndarray  # (B, r): the rows' lower bounds (this domain's and its ancestors' best)


def _bound_domains(problem: SearchProblem, domains: list[ReluDomain], alpha_steps: int, beta: bool) -> ReluDomainBounds:
    """Batched CROWN from each domain's neuron bounds, then alpha(-beta)-CROWN on the specification rows."""
    start, signs, slopes = _stack(domains)
    batch = len(domains)
    lower, upper = np.tile(problem.lower, (batch, 1)), np.tile(problem.upper, (batch, 1))
    bounds = batch_crown(problem.layers, lower, upper, start)
    forms, row_lower = linear_bounds(bounds, problem.rows_y, problem.rows_x)
    if beta:
        bounds = replace(
            bounds,
            relaxations=[
                expand(r, layer) if np.any(sign) else r
                for r, layer, sign in zip(bounds.relaxations, problem.layers, signs)
            ],
        )
    split_signs = [s.astype(float) for s in signs] if beta else None
    forms, row_lower, slopes = alpha_rows(problem, bounds, forms, row_lower, np.inf, slopes, alpha_steps, split_signs)
    # a bound of the parent domain holds on its sub-domain: keep the better one per row
    inherited_rows = [d.row_lower for d in domains]
    if any(r is not None for r in inherited_rows):
        parent = np.array([np.full(row_lower.shape[1], -np.inf) if r is None else r for r in inherited_rows])
        row_lower = np.maximum(row_lower, parent)
    slack = problem.rhs - row_lower
    region_excluded = problem.reduce_min(slack + safe_margin(problem.rhs)) < 0
    inherited = np.array(
        [np.ones(problem.n_regions, bool) if d.open_regions is None else d.open_regions for d in domains]
    )
    open_regions = ~region_excluded & inherited  # a region an ancestor excluded stays excluded
    margin = np.where(inherited, problem.reduce_min(slack), np.minimum(problem.reduce_min(slack), -2 * SAFE_MARGIN))
    return ReluDomainBounds(
        bounds,
        slopes,
        signs,
        slack,
        margin,
        ~open_regions.any(axis=1),
        _candidates(problem, forms[-1]),
        open_regions,
        row_lower,
    )


def _children(
    domain: ReluDomain, found: ReluDomainBounds, b: int, choice: tuple[int, int], counter: Iterator[int]
) -> list[ReluDomain]:
    """Domain ``b`` of the batch split on neuron ``choice``: inactive (``z <= 0``) and active (``z >= 0``)."""
    k, j = choice
    slopes = found.slopes
    own = [None if s is None else s[b] for s in slopes] if slopes is not None else None
    lo, hi = [a[b] for a in found.bounds.lower], [a[b] for a in found.bounds.upper]
    priority = -float(found.margin[b].max())
    children = []
    for phase in (-1, 1):
        child_lo, child_hi = [a.copy() for a in lo], [a.copy() for a in hi]
        child_signs = [a[b].copy() for a in found.signs]
        child_signs[k][j] = phase
        if phase < 0:
            child_hi[k][j] = 0.0
        else:
            child_lo[k][j] = 0.0
        children.append(
            ReluDomain(
                priority,
                next(counter),
                child_lo,
                child_hi,
                child_signs,
                own,
                domain.depth + 1,
                found.open_regions[b].copy(),
                found.row_lower[b].copy(),
            )
        )
    return children


def _left(problem: SearchProblem, queue: list[ReluDomain], stuck: list[np.ndarray]) -> np.ndarray:
    """The regions some open domain (queued, or without unstable neurons) has not excluded."""
    everything = np.ones(problem.n_regions, bool)
    masks = [everything if d.open_regions is None else d.open_regions for d in queue] + stuck
    return np.any(masks, axis=0) if masks else np.zeros(problem.n_regions, bool)


def _root_domain(
    problem: SearchProblem,
    root: tuple[Sequence[np.ndarray], Sequence[np.ndarray]],
    order: int,
    slopes: Slopes | None,
    row_lower: np.ndarray | None,
) -> ReluDomain:
    """The domain of the whole box: no ReLU split, the given bounds, warm slopes and row bounds."""
    return ReluDomain(
        0.0,
        order,
        [np.asarray(a, float) for a in root[0]],
        [np.asarray(a, float) for a in root[1]],
        [np.zeros(layer.n_outputs, np.int8) for layer in problem.layers],
        None if slopes is None else [None if s is None else np.asarray(s, float) for s in slopes],
        row_lower=None if row_lower is None else np.asarray(row_lower, float),
    )


def relu_branch_and_bound(
    problem: SearchProblem,
    check: Callable[[np.ndarray], np.ndarray],
    root: tuple[Sequence[np.ndarray], Sequence[np.ndarray]],
    *,
    deadline: float | None = None,
    batch_size: int = 32,
    alpha_steps: int = SEARCH_ALPHA_STEPS,
    max_domains: int = MAX_DOMAINS,
    beta: bool = True,
    root_slopes: Slopes | None = None,
    root_row_lower: np.ndarray | None = None,
) -> ReluSearchResult:
    """Decide the feasibility problem ``problem`` by splitting ReLUs (see the module docstring).

    ``check(X)`` returns the exact margin of each row of ``X`` (``>= 0``: a confirmed point);
    ``root`` are per-layer neuron bounds valid on the whole box (e.g. CROWN or LP bounds).
    ``beta`` adds the split constraints to the bounds with optimised multipliers (beta-CROWN).
    ``root_slopes`` (per layer ``(r, n_k)``, e.g. the root's alpha-CROWN slopes) warm-start the
    first domain and ``root_row_lower`` (``(r,)``, bounds valid on the whole box) are kept by
    every domain where they are tighter than its own.
    """
    counter = itertools.count()
    queue = [_root_domain(problem, root, next(counter), root_slopes, root_row_lower)]
    processed, best_margin, covered = 0, -np.inf, 0.0
    stuck: list[np.ndarray] = []  # open regions of the domains without unstable neurons left

    while queue:
        if deadline is not None and time.perf_counter() >= deadline:
            reason = "time limit"
            return ReluSearchResult("unknown", None, processed, best_margin, reason, _left(problem, queue, stuck))
        if len(queue) > max_domains:
            reason = f"more than {max_domains} open domains"
            return ReluSearchResult("unknown", None, processed, best_margin, reason, _left(problem, queue, stuck))
        domains = [heapq.heappop(queue) for _ in range(min(batch_size, len(queue)))]
        processed += len(domains)
        found = _bound_domains(problem, domains, alpha_steps, beta)
        values = np.asarray(check(found.points), float)
        if np.any(values >= 0):
            return ReluSearchResult("feasible", found.points[int(np.argmax(values))], processed, best_margin)
        best_margin = max(best_margin, float(np.max(np.where(found.excluded[:, None], found.margin, -np.inf))))
        covered += sum(0.5 ** domains[b].depth for b in np.flatnonzero(found.excluded))
        logger.debug("ReLU branching: %d domains, %.3g of the box left, %d queued", processed, 1 - covered, len(queue))
        open_ = np.flatnonzero(~found.excluded)
        if open_.size == 0:
            continue
        choices = _choose(problem, found.bounds, found.slopes, found.slack, found.margin)
        for b in open_:
            choice = choices[b]
            if choice is None:
                stuck.append(found.open_regions[b])
                continue
            for child in _children(domains[b], found, int(b), choice, counter):
                heapq.heappush(queue, child)
    if stuck:
        reason = f"{len(stuck)} domain(s) without unstable neurons left open"
        return ReluSearchResult("unknown", None, processed, best_margin, reason, _left(problem, [], stuck))
    return ReluSearchResult("infeasible", None, processed, best_margin)
