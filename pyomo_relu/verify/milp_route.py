"""The route of :func:`~pyomo_relu.verify.verify` for many inputs: tighter bounds, ReLU branching, MILPs.

For a case whose box has too many inputs to split (e.g. MNIST's 784):

1. the requested bounds chain (:func:`resolve_bounds_on_box`) tightens the neurons, CROWN
   is repeated from them, then alpha-CROWN on the specification rows
   (:func:`alpha_root`); polytopes it excludes are done;
2. **ReLU branching** (:func:`~pyomo_relu.search.relu_branch.relu_branch_and_bound`) gets
   :data:`RELU_SPLIT_SHARE` of the time left;
3. each polytope still open gets its margin MILP (:class:`~pyomo_relu.search.leaf.NetworkMilp`)
   on the box cut by its linear bounds (:func:`~pyomo_relu.search.nodes.shrink_box`), most
   promising first, in parallel on the executor's workers when it has more than one.

A MILP point counts as a counterexample only once :class:`~pyomo_relu.verify.results.ExactMargin`
confirms it (a point the solver calls unsafe but the forward pass does not is searched
around by :func:`repair`); a polytope is excluded only by an infeasible MILP (``t* <= -τ``)
or a proven bound below ``-τ``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyomo_relu.bounds.alpha import Slopes, optimise_rows
from pyomo_relu.bounds.base import Bounds
from pyomo_relu.network import Layer, NetworkDefinition
from pyomo_relu.parallel import ExecutorSpec, Workers
from pyomo_relu.search.attack import descend
from pyomo_relu.search.leaf import LEAF_TOLERANCE, UNSAT_TOLERANCE, MilpOutcome, NetworkMilp
from pyomo_relu.search.nodes import SAFE_MARGIN, shrink_box
from pyomo_relu.search.problem import LinearConstraints, SearchProblem
from pyomo_relu.search.relu_branch import relu_branch_and_bound
from pyomo_relu.verify.context import (
    CaseOutcome,
    NeuronBounds,
    RootBounds,
    RowForms,
    VerifyContext,
    only_regions,
    open_regions,
    root_bounds,
)
from pyomo_relu.verify.results import ExactMargin

logger = logging.getLogger(__name__)

__all__ = ["resolve_bounds_on_box", "verify_by_milp"]

#: Share of the time left that ReLU branching may take before the MILPs.
RELU_SPLIT_SHARE = 0.25
#: Share of the time left that the bounds chain of the MILP route leaves for the CROWN pass
#: from its bounds: on 784-1024x4-10 (4 M weights) alpha-CROWN took all 4.6 s left of a 5 s
#: limit and that pass 0.6 s more (``benchmarks/RESULTS.md``, "Scale").
CHAIN_RESERVE = 0.2
#: alpha-CROWN steps on the specification rows at the root.
ROOT_ALPHA_STEPS = 40


# ------------------------------------------------------------------- bounds
def resolve_bounds_on_box(
    net: NetworkDefinition,
    lower: np.ndarray,
    upper: np.ndarray,
    methods: Sequence[str] | str,
    deadline: float | None,
    executor: ExecutorSpec = None,
) -> NeuronBounds:
    """Neuron bounds over the box from the requested chain, skipping what is unavailable.

    Methods not registered in :data:`~pyomo_relu.bounds.chain.METHODS` are skipped with a
    warning, and a method that fails keeps the bounds computed before it.  Each method
    starts from the previous one's bounds (``interval`` always runs first).
    """
    from pyomo_relu.bounds.chain import METHODS
    from pyomo_relu.bounds.interval import interval_bounds

    chain = [methods] if isinstance(methods, str) else list(methods)
    for name in chain:
        if name not in METHODS:
            logger.warning("bounds method %r is not available (registered: %s); skipped", name, ", ".join(METHODS))
    bounds = interval_bounds(net, lower, upper)
    for name in (m for m in chain if m in METHODS and m != "interval"):
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            break
        options: dict[str, Any] = {"time_limit": left, "executor": executor, "progress": False}
        try:
            bounds = _call_method(METHODS[name], net, lower, upper, bounds, options)
        except Exception as error:  # noqa: BLE001 - a failing method must not stop verification
            logger.warning("bounds method %r failed (%s: %s); continuing without it", name, type(error).__name__, error)
    return [np.array(a) for a in bounds.lower], [np.array(a) for a in bounds.upper]


def _call_method(
    method: Callable[..., Bounds],
    net: NetworkDefinition,
    lower: np.ndarray,
    upper: np.ndarray,
    start: Bounds,
    options: dict[str, Any],
) -> Bounds:
    """``method(net, lower, upper, start, **options)`` with only the options it takes."""
    parameters = inspect.signature(method).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        options = {key: value for key, value in options.items() if key in parameters}
    return method(net, lower, upper, start, **options)


def alpha_root(problem: SearchProblem, root: RootBounds) -> tuple[np.ndarray, RowForms, Slopes | None]:
    """The root's row bounds and forms with alpha-CROWN's (:func:`~pyomo_relu.bounds.alpha.optimise_rows`) added.

    Also the optimised slopes (per layer ``(r, n_k)``, ``None`` for an unbounded box), to
    warm-start ReLU branching.
    """
    if not (np.all(np.isfinite(problem.lower)) and np.all(np.isfinite(problem.upper))):
        return root.row_lower, root.forms, None
    widths = [layer.n_outputs for layer in problem.layers]
    best, alpha_lower, form = optimise_rows(root.bounds, widths, problem.rows_y, problem.rows_x, steps=ROOT_ALPHA_STEPS)
    slopes: Slopes = [None if s is None else s[0] for s in best.slopes]
    return np.maximum(root.row_lower, alpha_lower), root.forms + [form], slopes


def tightened_root(ctx: VerifyContext, problem: SearchProblem, root: RootBounds) -> RootBounds:
    """CROWN again from the bounds chain's neuron bounds (when it has more than interval and CROWN)."""
    if not set(ctx.bounds) - {"interval", "crown"}:
        return root
    left = ctx.left()
    deadline = None if left is None or ctx.deadline is None else ctx.deadline - CHAIN_RESERVE * max(left, 0.0)
    chain = resolve_bounds_on_box(ctx.net, problem.lower, problem.upper, ctx.bounds, deadline, ctx.executor)
    if ctx.expired():  # no time left for the CROWN pass from the chain's bounds: the verdict is "unknown"
        return root
    pre = root.neurons
    start = (
        [np.maximum(a, b) for a, b in zip(pre[0], chain[0])],
        [np.minimum(a, b) for a, b in zip(pre[1], chain[1])],
    )
    return root_bounds(problem, start)


# ------------------------------------------------------------ ReLU branching
def verify_by_relu_split(
    ctx: VerifyContext,
    problem: SearchProblem,
    exact: ExactMargin,
    pre: NeuronBounds,
    warm: tuple[Slopes | None, np.ndarray] | None = None,
) -> CaseOutcome | list[int]:
    """ReLU-phase branch and bound for :data:`RELU_SPLIT_SHARE` of the time left.

    ``warm`` are the root's alpha-CROWN slopes and row bounds for ``problem``'s rows.

    A decision (a confirmed point, or every domain excluded) is returned; otherwise the
    regions of ``problem`` that some open domain has not excluded (the others are proven
    infeasible on the whole box), for the MILPs to take in the rest of the time.
    """
    left = ctx.left()
    deadline = None if left is None else time.perf_counter() + RELU_SPLIT_SHARE * left
    slopes, row_lower = warm if warm is not None else (None, None)
    result = relu_branch_and_bound(problem, exact, pre, deadline=deadline, root_slopes=slopes, root_row_lower=row_lower)
    ctx.subproblems += result.domains
    ctx.count("relu_domains", result.domains)
    ctx.used("relu-split")
    if result.status == "feasible" and result.x is not None:
        return CaseOutcome("sat", result.x, method="relu-split")
    if result.status == "infeasible":
        return CaseOutcome("unsat", bound=result.margin_bound, method="relu-split")
    still_open = list(range(problem.n_regions)) if result.open_regions is None else np.flatnonzero(result.open_regions)
    logger.info(
        "ReLU branching stopped (%s) after %d domains; regions still open: %d of %d",
        result.reason,
        result.domains,
        len(still_open),
        problem.n_regions,
    )
    return [int(p) for p in still_open]


# --------------------------------------------------------------------- MILPs
@dataclass(frozen=True, eq=False)
class PolytopeMilp:
    """One margin MILP: the network on a (cut) box with one unsafe polytope; picklable for workers."""

    layers: Sequence[Layer]
    pre: NeuronBounds
    region: LinearConstraints
    lower: np.ndarray
    upper: np.ndarray

    def solve(self, time_limit: float | None, check: ExactMargin) -> MilpOutcome:
        """``max t`` by HiGHS, stopping at the first incumbent ``check`` confirms."""
        milp = NetworkMilp(self.layers, self.pre[0], self.pre[1], self.lower, self.upper)
        return milp.maximize_margin(self.region, time_limit=time_limit, stop_check=check)


def _solve(job: PolytopeMilp, wall_deadline: float | None, check: ExactMargin) -> MilpOutcome:
    """On a worker: the MILP with the time left when it starts (``wall_deadline`` of ``time.time``)."""
    if wall_deadline is None:
        return job.solve(None, check)
    left = wall_deadline - time.time()
    if left <= 0:
        return MilpOutcome("time_limit")
    return job.solve(left, check)


def repair(
    ctx: VerifyContext, problem: SearchProblem, job: PolytopeMilp, x: np.ndarray, exact: ExactMargin
) -> np.ndarray | None:
    """The solver says ``t >= 0`` but the exact check disagrees: search around its point."""
    radius = 1e-4 * (job.upper - job.lower)
    points = descend(
        problem,
        np.maximum(job.lower, x - radius),
        np.minimum(job.upper, x + radius),
        seed=ctx.seed,
        steps=60,
        starts=x[None, :],
    )
    candidates = np.vstack([x[None, :], points])
    confirmed = exact(candidates)
    good = np.flatnonzero(confirmed >= 0)
    if good.size:
        return candidates[good[0]]
    logger.info("MILP point with t >= 0 not confirmed by the forward pass (margin %.3g)", confirmed[0])
    return None


def _unsafe(value: float | None) -> bool:
    return value is not None and value >= 0


def _judge(
    ctx: VerifyContext, problem: SearchProblem, p: int, job: PolytopeMilp, outcome: MilpOutcome, exact: ExactMargin
) -> CaseOutcome:
    """A polytope's MILP outcome as a verdict: ``sat`` only if confirmed, ``unsat`` only if proven."""
    ctx.subproblems += 1
    ctx.count("milp_seconds", outcome.seconds)
    if outcome.status == "sat" and outcome.x is not None:
        return CaseOutcome("sat", outcome.x, method="milp")
    if outcome.status in ("optimal", "time_limit") and outcome.x is not None and _unsafe(outcome.value):
        repaired = repair(ctx, only_regions(problem, [p]), job, outcome.x, exact)
        if repaired is not None:
            return CaseOutcome("sat", repaired, method="milp")
    if outcome.status == "infeasible":
        return CaseOutcome("unsat", bound=outcome.bound if outcome.bound is not None else -UNSAT_TOLERANCE)
    bound = outcome.bound
    if (
        outcome.status == "optimal"
        and bound is not None
        and bound + LEAF_TOLERANCE * max(1.0, abs(bound)) < -UNSAT_TOLERANCE
    ):
        return CaseOutcome("unsat", bound=bound)
    timed_out = outcome.status == "time_limit" or ctx.expired()
    return CaseOutcome(
        "unknown", reason="time limit" if timed_out else f"MILP ended {outcome.status} with t = {outcome.value}"
    )


def _jobs(
    problem: SearchProblem, regions: Sequence[int], forms: RowForms, pre: NeuronBounds
) -> tuple[list[tuple[int, PolytopeMilp]], list[float]]:
    """A MILP per region on its cut box; regions whose cut leaves nothing are proven at once."""
    jobs, proven = [], []
    for p in regions:
        rows = problem.region_rows(p)
        cut = [(coef[:, rows], const[:, rows]) for coef, const in forms]
        lower, upper, empty = shrink_box(cut, only_regions(problem, [p]), problem.lower[None], problem.upper[None])
        if empty[0]:  # the input cut leaves nothing: the margin is negative
            proven.append(-2 * SAFE_MARGIN)
        else:
            jobs.append((p, PolytopeMilp(problem.layers, pre, problem.regions[p], lower[0], upper[0])))
    return jobs, proven


def _run_serial(
    ctx: VerifyContext, problem: SearchProblem, jobs: list[tuple[int, PolytopeMilp]], exact: ExactMargin
) -> list[CaseOutcome]:
    outcomes: list[CaseOutcome] = []
    for p, job in jobs:
        left = ctx.left()
        if left is not None and left <= 0:
            outcomes.append(CaseOutcome("unknown", reason="time limit"))
            break
        outcomes.append(_judge(ctx, problem, p, job, job.solve(left, exact), exact))
        if outcomes[-1].status == "sat" or (outcomes[-1].status == "unknown" and ctx.expired()):
            break
    return outcomes


def _run_parallel(
    ctx: VerifyContext,
    problem: SearchProblem,
    jobs: list[tuple[int, PolytopeMilp]],
    exact: ExactMargin,
    workers: Workers,
) -> list[CaseOutcome]:
    """The MILPs on the workers, each with the time left when it starts; the first confirmed point stops the rest."""
    assert workers.executor is not None
    left = ctx.left()
    wall_deadline = None if left is None else time.time() + left
    pending: dict[Future[MilpOutcome], tuple[int, PolytopeMilp]] = {
        workers.executor.submit(_solve, job, wall_deadline, exact): (p, job) for p, job in jobs
    }
    outcomes: list[CaseOutcome] = []
    while pending:
        left = ctx.left()
        timeout = None if left is None else max(left, 0.0) + 5.0  # HiGHS keeps its own time limit
        done, _ = wait(list(pending), timeout=timeout, return_when=FIRST_COMPLETED)
        if not done:
            outcomes.append(CaseOutcome("unknown", reason="time limit"))
            break
        for future in done:
            p, job = pending.pop(future)
            outcomes.append(_judge(ctx, problem, p, job, future.result(), exact))
        if any(o.status == "sat" for o in outcomes):
            break
    if pending:
        workers.close(cancel=True)
    return outcomes


def _solve_polytopes(
    ctx: VerifyContext, problem: SearchProblem, jobs: list[tuple[int, PolytopeMilp]], exact: ExactMargin
) -> list[CaseOutcome]:
    """Serial, or in parallel when the executor has more than one worker and there is more than one MILP."""
    with Workers(ctx.executor) as workers:
        if workers.executor is None or workers.count < 2 or len(jobs) < 2:
            return _run_serial(ctx, problem, jobs, exact)
        return _run_parallel(ctx, problem, jobs, exact, workers)


def _combine(outcomes: list[CaseOutcome], proven: list[float], jobs: int) -> CaseOutcome:
    """``sat`` if any MILP found a point; ``unsat`` if every polytope is proven; else the first reason."""
    for outcome in outcomes:
        if outcome.status == "sat":
            return outcome
    undecided = [o for o in outcomes if o.status != "unsat"]
    if undecided or len(outcomes) < jobs:
        reason = undecided[0].reason if undecided else "time limit"
        return CaseOutcome("unknown", method="milp", reason=reason)
    bounds = proven + [o.bound for o in outcomes if o.bound is not None]
    return CaseOutcome("unsat", bound=float(max(bounds)) if bounds else -np.inf, method="milp")


def verify_by_milp(ctx: VerifyContext, problem: SearchProblem, exact: ExactMargin, root: RootBounds) -> CaseOutcome:
    """Bounds, then ReLU branching, then one MILP per open polytope (see the module docstring)."""
    remaining, margins = open_regions(problem, root.row_lower)
    ctx.used("bounds")
    if remaining:
        root = tightened_root(ctx, problem, root)
        remaining, margins = open_regions(problem, root.row_lower)
    forms, slopes, row_lower = root.forms, None, root.row_lower
    if remaining and not ctx.expired():
        row_lower, forms, slopes = alpha_root(problem, root)
        remaining, margins = open_regions(problem, row_lower)
    if not remaining:
        return CaseOutcome("unsat", bound=float(np.max(margins)) if margins.size else -np.inf, method="bounds")
    proven = [float(margins[p]) for p in range(problem.n_regions) if p not in remaining]  # by the bounds
    if ctx.relu_split:
        rows = np.concatenate([problem.region_rows(p) for p in remaining])
        warm = (None if slopes is None else [None if s is None else s[rows] for s in slopes], row_lower[0, rows])
        decided = verify_by_relu_split(ctx, only_regions(problem, remaining), exact, root.neurons, warm)
        if isinstance(decided, CaseOutcome):
            return decided
        proven += [-2 * SAFE_MARGIN] * (len(remaining) - len(decided))  # excluded on every domain of the partition
        remaining = [remaining[i] for i in decided]
        if not remaining:
            return CaseOutcome("unsat", bound=max(proven), method="relu-split")
    ctx.count("milp_polytopes", len(remaining))
    ctx.used("milp")
    jobs, cut_empty = _jobs(problem, sorted(remaining, key=lambda q: -margins[q]), forms, root.neurons)
    proven += cut_empty
    return _combine(_solve_polytopes(ctx, problem, jobs, exact), proven, len(jobs))
