r"""Best-first branch and bound over sub-boxes of the network inputs.

A priority queue holds open boxes, each with a proven lower bound of the objective over
its feasible points (the parent's bound until it is processed).  Boxes are taken in
batches, best first (smallest bound; for a feasibility problem, largest margin bound, so
that points are met early), and each batch

1. is bounded, cut, sampled and given split choices by
   :func:`~pyomo_relu.search.nodes.process_batch` (batched CROWN, then alpha-CROWN on the
   boxes CROWN leaves open, warm-started from the parent's slopes; in this process or on
   the executor's workers);
2. offers its candidate points to ``check`` (the exact forward pass, in this process):
   a point better than the incumbent becomes the incumbent;
3. discards every box whose bound is at least ``min(cutoff, incumbent - gap)`` (it cannot
   improve the incumbent by more than ``gap``) and every box proven infeasible;
4. sends boxes with at most ``leaf_unstable`` unstable neurons to an exact leaf MILP
   (:func:`~pyomo_relu.search.leaf.solve_leaf`, the incumbent as cutoff, in parallel on the
   executor), which closes them or returns a bound and candidate points;
5. splits the other boxes in two along the chosen input.

It stops when the queue is empty, when ``incumbent - bound <= gap`` (``bound`` the least
bound of an open or discarded box, widened by :data:`BOUND_TOLERANCE`), when a point with
value ``<= stop_at`` is found (a decision: the verifier stops at its first
counterexample), at the time limit, or on Ctrl-C (``KeyboardInterrupt``).  It is anytime:
every exit reports the incumbent (exactly checked), the proven bound and the nodes.

An initial incumbent comes from :func:`~pyomo_relu.search.attack.descend` at the root and
from ``starts``; rounds also run the attack inside their most promising open boxes (largest
margin bound for a feasibility problem, where narrow counterexamples are found, ever more
rarely in a long search; least bound with an objective, in large rounds).  The engine knows
nothing of Pyomo.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyomo_relu.bounds.alpha import Slopes
from pyomo_relu.parallel import ExecutorSpec, Workers
from pyomo_relu.search.attack import descend
from pyomo_relu.search.leaf import UNSAT_TOLERANCE, LeafOutcome, solve_leaf
from pyomo_relu.search.nodes import LOPSIDED, SEARCH_ALPHA_STEPS, NodeBatch, Start, process_batch

logger = logging.getLogger(__name__)

__all__ = ["BOUND_TOLERANCE", "SearchResult", "branch_and_bound"]

#: Relative widening of the final bound against round-off in the bounds arithmetic.
BOUND_TOLERANCE = 1e-9
#: Boxes are split at most this many times (then left unresolved).
MAX_DEPTH = 200
#: Seconds given to one leaf MILP (a box is split further when its leaf times out).
LEAF_TIME_LIMIT = 2.0
#: Restarts and steps of the local attack in the most promising boxes of a round (feasibility problems).
LOCAL_RESTARTS = 4
LOCAL_STEPS = 20
#: With an objective, local attacks only in rounds of this many boxes (8-input Rosenbrock min: 4.7513 -> 4.7197).
ATTACK_BATCH = 64
#: Rounds with local attacks in every round; later rounds attack ever more rarely (``_Search.attack_due``).
ATTACK_EVERY = 16

Check = Callable[[np.ndarray], np.ndarray]


@dataclass
class SearchResult:
    """What the search found and proved.

    ``status``: ``"optimal"`` (``value - bound <= gap``), ``"infeasible"`` (no feasible point
    exists: proven), ``"feasible"`` (a point with value ``<= stop_at`` was found: a decision),
    ``"time_limit"``, ``"interrupted"`` (Ctrl-C), ``"node_limit"`` or ``"unresolved"`` (boxes
    too small to split kept the bound below the incumbent).  For a feasibility problem
    ``margin_bound`` is the largest margin bound of a discarded box (every region's margin
    ``max_x min_i (b_i - g_i(x))`` is below it on the discarded part).  ``x``/``value``: the incumbent
    (``None``/``+inf`` when none), its value by ``check``; ``bound``: a proven lower bound of
    the optimum (``+inf`` when infeasible).
    """

    status: str
    x: np.ndarray | None
    value: float
    bound: float
    nodes: int = 0
    leaves: int = 0
    seconds: float = 0.0
    max_depth: int = 0
    unresolved: int = 0
    reason: str = ""
    margin_bound: float = -np.inf

    @property
    def gap(self) -> float:
        """``value - bound`` (``+inf`` without an incumbent or a finite bound)."""
        if not np.isfinite(self.value) or not np.isfinite(self.bound):
            return np.inf
        return float(max(self.value - self.bound, 0.0))


@dataclass(order=True)
class _Node:
    priority: float
    order: int
    lower: np.ndarray = field(compare=False)
    upper: np.ndarray = field(compare=False)
    bound: float = field(compare=False, default=-np.inf)
    depth: int = field(compare=False, default=0)
    start: Start | None = field(compare=False, default=None)
    slopes: Slopes | None = field(compare=False, default=None)

    def neuron_bounds(self) -> Start:
        """The per-layer neuron bounds of the box (set once it has been bounded)."""
        assert self.start is not None, "a box is bounded before its leaf MILP"
        return self.start


def widen(bound: float) -> float:
    """``bound`` made safe against round-off (:data:`BOUND_TOLERANCE`)."""
    if not np.isfinite(bound):
        return float(bound)
    return float(bound - BOUND_TOLERANCE * (1.0 + abs(bound)))


class _Progress:
    """A tqdm bar of nodes with the incumbent, the bound and the gap (after a second)."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Any = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # optional dependency: no bar
            return
        self.bar = tqdm(desc="branch and bound", unit="box", delay=1.0, leave=False, dynamic_ncols=True)

    def update(self, nodes: int, value: float, bound: float, open_: int) -> None:
        if self.bar is None:
            return
        gap = value - bound if np.isfinite(value) and np.isfinite(bound) else np.inf
        self.bar.set_postfix(best=f"{value:.6g}", bound=f"{bound:.6g}", gap=f"{gap:.2e}", open=open_, refresh=False)
        self.bar.update(nodes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Runner:
    """Runs batches and leaves in this process or on the workers."""

    def __init__(self, workers: Workers, problem: Any, root_width: np.ndarray, settings: tuple[int, float]) -> None:
        self.workers, self.problem, self.root_width = workers, problem, root_width
        self.alpha_steps, self.lopsided = settings

    def bounds(self, nodes: list[_Node], cutoff: float) -> NodeBatch:
        lower = np.stack([node.lower for node in nodes])
        upper = np.stack([node.upper for node in nodes])
        start = _stack_start(nodes)
        slopes = _stack_slopes(nodes)
        executor = self.workers.executor
        if executor is None or len(nodes) < 8:
            return process_batch(
                self.problem, lower, upper, start, self.root_width, cutoff, slopes, self.alpha_steps, self.lopsided
            )
        parts = np.array_split(np.arange(len(nodes)), min(self.workers.count, len(nodes) // 4))
        futures = [
            executor.submit(
                process_batch,
                self.problem,
                lower[p],
                upper[p],
                None if start is None else ([a[p] for a in start[0]], [a[p] for a in start[1]]),
                self.root_width,
                cutoff,
                None if slopes is None else [None if a is None else a[p] for a in slopes],
                self.alpha_steps,
                self.lopsided,
            )
            for p in parts
        ]
        return NodeBatch.concatenate([future.result() for future in futures])

    def leaves(self, nodes: list[_Node], cutoff: float, time_limit: float, gap: float) -> list[LeafOutcome]:
        executor = self.workers.executor
        if executor is None or len(nodes) < 2:
            return [
                solve_leaf(self.problem, n.lower, n.upper, n.neuron_bounds(), cutoff, time_limit, gap) for n in nodes
            ]
        futures: list[Future[LeafOutcome]] = [
            executor.submit(solve_leaf, self.problem, n.lower, n.upper, n.neuron_bounds(), cutoff, time_limit, gap)
            for n in nodes
        ]
        return [future.result() for future in futures]


def _stack_start(nodes: list[_Node]) -> Start | None:
    """The nodes' neuron bounds stacked per layer (``None`` unless every node has them)."""
    starts = [node.start for node in nodes]
    given = [start for start in starts if start is not None]
    if len(given) < len(starts):
        return None
    n_layers = len(given[0][0])
    return (
        [np.stack([start[0][k] for start in given]) for k in range(n_layers)],
        [np.stack([start[1][k] for start in given]) for k in range(n_layers)],
    )


def _stack_slopes(nodes: list[_Node]) -> Slopes | None:
    """The nodes' warm-start slopes per layer ``(B, r, n_k)``, NaN for nodes without; ``None`` if none has any."""
    given = next((node.slopes for node in nodes if node.slopes is not None), None)
    if given is None:
        return None
    stacked: Slopes = []
    for k, template in enumerate(given):
        if template is None:
            stacked.append(None)
            continue
        blank = np.full(template.shape, np.nan, dtype=np.float32)
        layer = [None if node.slopes is None else node.slopes[k] for node in nodes]
        stacked.append(np.stack([blank if value is None else value for value in layer]))
    return stacked


def _batch_size(done: int, limit: int) -> int:
    """Small batches first (an easy problem is decided at once), then ``limit``."""
    return int(min(limit, max(1, 2 ** (done.bit_length() // 2 + 1))))


class _Search:
    """The state of one branch and bound (see the module docstring)."""

    def __init__(
        self,
        problem: Any,
        check: Check,
        gap: float,
        stop_at: float,
        cutoff: float,
        deadline: float | None,
        leaf_unstable: int,
        leaf_time_limit: float,
        batch_size: int,
        max_nodes: int | None,
        local_attacks: int = 0,
        seed: int = 0,
    ) -> None:
        self.problem, self.check = problem, check
        self.local_attacks, self.seed, self.attacks, self.rounds = int(local_attacks), int(seed), 0, 0
        self.gap, self.stop_at, self.cutoff = float(gap), float(stop_at), float(cutoff)
        self.deadline, self.batch_size, self.max_nodes = deadline, batch_size, max_nodes
        self.leaf_unstable = leaf_unstable if problem.milp_ok else -1
        self.leaf_time_limit = leaf_time_limit
        self.value, self.x = np.inf, None
        self.pruned_bound = np.inf  # least bound of a discarded box
        self.margin_bound = -np.inf  # largest margin bound of a discarded box (feasibility problems)
        self.unresolved_bound = np.inf  # least bound of a box too small to split
        self.nodes = self.leaves = self.max_depth = self.unresolved = 0
        self.queue: list[_Node] = []
        self.in_flight: list[_Node] = []
        self.counter = itertools.count()
        self.started = time.perf_counter()

    def offer(self, points: np.ndarray) -> None:
        """Check candidate points exactly; the best one better than the incumbent replaces it."""
        points = np.atleast_2d(points)
        if points.size == 0:
            return
        values = np.asarray(self.check(points), float)
        best = int(np.argmin(values))
        if values[best] < self.value:
            self.value, self.x = float(values[best]), points[best].copy()
            logger.debug("incumbent %.9g after %d boxes", self.value, self.nodes)

    @property
    def decided(self) -> bool:
        return self.value <= self.stop_at

    def level(self) -> float:
        """Boxes whose bound is at least this cannot improve the incumbent by more than ``gap``.

        The gap is reduced by twice the round-off allowance of :func:`widen`, so that the
        widened bound reported in the end still lies within ``gap`` of the incumbent.
        """
        if not np.isfinite(self.value):
            return self.cutoff
        slack = 2 * BOUND_TOLERANCE * (1.0 + abs(self.value))
        return min(self.cutoff, self.value - max(self.gap - slack, 0.0))

    def prunable(self, bound: float) -> bool:
        """A box can be discarded: its bound reaches :meth:`level`."""
        return bound >= self.level()

    def open_bound(self) -> float:
        """The least bound of every box not yet discarded (the queue and the batch in hand)."""
        # with an objective a queued node's priority is its bound, so the heap's top is the least
        queued = (
            [self.queue[0].bound] if self.problem.has_objective and self.queue else [node.bound for node in self.queue]
        )
        bounds = queued + [node.bound for node in self.in_flight]
        return min(bounds) if bounds else np.inf

    def bound(self) -> float:
        if not self.problem.has_objective:  # a feasibility problem: infeasible once nothing is open
            return np.inf if not (self.queue or self.in_flight or self.unresolved) else 0.0
        return widen(min(self.pruned_bound, self.unresolved_bound, self.open_bound(), self.value))

    def converged(self) -> bool:
        return self.problem.has_objective and np.isfinite(self.value) and self.value - self.bound() <= self.gap

    def push(self, node: _Node) -> None:
        heapq.heappush(self.queue, node)

    def discard(self, bound: float, margin: float = -np.inf) -> None:
        self.pruned_bound = min(self.pruned_bound, bound)
        self.margin_bound = max(self.margin_bound, margin)

    def children(self, node: _Node, d: int) -> list[_Node]:
        middle = 0.5 * (node.lower[d] + node.upper[d])
        left_upper, right_lower = node.upper.copy(), node.lower.copy()
        left_upper[d], right_lower[d] = middle, middle
        return [
            _Node(node.priority, next(self.counter), lo, hi, node.bound, node.depth + 1, node.start, node.slopes)
            for lo, hi in ((node.lower, left_upper), (right_lower, node.upper))
        ]

    def take(self) -> list[_Node]:
        size = _batch_size(self.nodes, self.batch_size)
        if self.deadline is not None and self.nodes:  # a round may take at most half the time left
            per_box = (time.perf_counter() - self.started) / self.nodes
            size = max(1, min(size, int(0.5 * (self.deadline - time.perf_counter()) / max(per_box, 1e-6))))
        taken: list[_Node] = []
        while self.queue and len(taken) < size:
            node = heapq.heappop(self.queue)
            if self.prunable(node.bound):
                self.discard(node.bound)
            else:
                taken.append(node)
        return taken

    def expired(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def leaf_time(self) -> float:
        left = np.inf if self.deadline is None else self.deadline - time.perf_counter()
        return float(max(min(self.leaf_time_limit, left), 1e-3))

    def round(self, runner: _Runner, nodes: list[_Node]) -> None:
        self.in_flight = nodes
        batch = runner.bounds(nodes, self.level())
        self.nodes += len(nodes)
        self.max_depth = max(self.max_depth, max(node.depth for node in nodes))
        better = batch.candidate_values < self.value
        if better.any():
            self.offer(batch.candidates[better])
        leaves: list[tuple[_Node, int]] = []
        splits: list[tuple[_Node, int]] = []
        for b, node in enumerate(nodes):
            node.bound = max(node.bound, float(batch.bound[b]))
            node.lower, node.upper = batch.box_lower[b], batch.box_upper[b]
            node.start = ([a[b] for a in batch.lower], [a[b] for a in batch.upper])
            if batch.slopes is not None:
                node.slopes = [None if a is None else a[b] for a in batch.slopes]
            node.priority = node.bound if self.problem.has_objective else -float(batch.margin_bound[b].max())
            if self.prunable(node.bound) or self.decided:
                self.discard(node.bound, float(batch.margin_bound[b].max()))
            elif batch.unstable[b] <= self.leaf_unstable:
                leaves.append((node, int(batch.split_dim[b])))
            else:
                splits.append((node, int(batch.split_dim[b])))
        if leaves and not self.decided and not self.expired():
            self.solve_leaves(runner, [node for node, _ in leaves], splits)
        else:
            splits.extend(leaves)
        self.rounds += 1
        if self.local_attacks and not self.decided and self.attack_due(len(nodes)):
            self.attack_best([node for node, _ in splits])
        for node, d in splits:
            if self.prunable(node.bound):
                self.discard(node.bound)
            elif node.depth >= MAX_DEPTH or not node.upper[d] > node.lower[d]:
                self.unresolved += 1
                self.unresolved_bound = min(self.unresolved_bound, node.bound)
            else:
                for child in self.children(node, d):
                    self.push(child)
        self.in_flight = []

    def attack_due(self, size: int) -> bool:
        """Whether this round (of ``size`` boxes) attacks: with an objective if ``size >= ATTACK_BATCH``;
        else the first :data:`ATTACK_EVERY` rounds, then ever more rarely (logarithmically many)."""
        if self.problem.has_objective:
            return size >= ATTACK_BATCH
        return self.rounds % max(1, self.rounds // ATTACK_EVERY) == 0

    def attack_best(self, nodes: list[_Node]) -> None:
        """PGD inside the ``local_attacks`` most promising open boxes (largest margin, or least bound)."""
        best = sorted(nodes, key=lambda node: node.priority)[: self.local_attacks]
        for node in best:
            self.attacks += 1
            self.offer(
                descend(
                    self.problem,
                    node.lower,
                    node.upper,
                    restarts=LOCAL_RESTARTS,
                    steps=LOCAL_STEPS,
                    seed=self.seed + self.attacks,
                    deadline=self.deadline,
                )
            )
            if self.decided:
                return

    def solve_leaves(self, runner: _Runner, leaves: list[_Node], splits: list[tuple[_Node, int]]) -> None:
        outcomes = runner.leaves(leaves, self.level(), self.leaf_time(), max(self.gap / 2, 1e-9))
        for node, outcome in zip(leaves, outcomes):
            self.leaves += outcome.milps
            self.offer(outcome.points)
            if outcome.closed:
                self.discard(max(node.bound, outcome.bound), -UNSAT_TOLERANCE)
                continue
            node.bound = max(node.bound, outcome.bound)
            width = node.upper - node.lower
            rel = np.where(runner.root_width > 0, width / np.where(runner.root_width > 0, runner.root_width, 1), 0)
            splits.append((node, int(np.argmax(rel))))  # a leaf that timed out: split its widest input


def branch_and_bound(
    problem: Any,
    check: Check,
    *,
    gap: float = 1e-6,
    stop_at: float = -np.inf,
    cutoff: float = np.inf,
    time_limit: float | None = None,
    deadline: float | None = None,
    executor: ExecutorSpec = None,
    progress: bool = False,
    leaf_unstable: int = 12,
    leaf_time_limit: float = LEAF_TIME_LIMIT,
    batch_size: int = 256,
    max_nodes: int | None = None,
    starts: np.ndarray | None = None,
    attack: bool = True,
    seed: int = 0,
    root_bounds: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
    alpha_steps: int = SEARCH_ALPHA_STEPS,
    local_attacks: int = 2,
    lopsided: float = LOPSIDED,
) -> SearchResult:
    """Minimise ``problem`` (a :class:`~pyomo_relu.search.problem.SearchProblem`) by branch and bound.

    Args:
        check: ``check(X)``, the exact value of each row of ``X`` (``+inf`` where infeasible),
            e.g. from :meth:`NetworkDefinition.evaluate`; only its values are ever reported.
        gap: absolute gap at which the incumbent counts as optimal.
        stop_at: stop at the first point with value ``<= stop_at`` (``0``: a feasibility problem).
        cutoff: only points with value below ``cutoff`` matter (``+inf``: all).
        time_limit: wall-clock seconds (or an absolute ``deadline`` of ``time.perf_counter``).
        executor: ``None``, a number of processes or a ``concurrent.futures.Executor``
            (e.g. ``dask.distributed.Client(...).get_executor()``) for batches and leaves.
        progress: show a tqdm bar of nodes, incumbent, bound and gap after a second.
        leaf_unstable: boxes with at most this many unstable neurons go to a leaf MILP (``-1``: never).
        leaf_time_limit: seconds per leaf MILP.
        max_nodes: stop after bounding this many boxes.
        starts: points to try first (and to start the attack from).
        attack: run the gradient attack at the root for an early incumbent (seeded by ``seed``).
        root_bounds: per-layer ``(lower, upper)`` neuron bounds valid on the whole box.
        alpha_steps: alpha-CROWN steps on each box CROWN does not prune (``0``: CROWN only).
        local_attacks: PGD inside this many open boxes of largest margin bound (feasibility) or
            least bound (objective; rounds of :data:`ATTACK_BATCH` boxes or more) after each
            round (``0``: none; with an objective also none when ``attack`` is false).
        lopsided: inputs more than this many times narrower (relative to the root box) than
            the widest are not split (:func:`~pyomo_relu.search.nodes.split_dimension`).
    """
    began = time.perf_counter()
    if time_limit is not None:
        deadline = min(deadline if deadline is not None else np.inf, began + float(time_limit))
    local = local_attacks if attack or not problem.has_objective else 0
    limits = (gap, stop_at, cutoff, deadline, leaf_unstable, leaf_time_limit, batch_size, max_nodes)
    search = _Search(problem, check, *limits, local, seed)
    status, reason = _run(
        search, executor, (int(alpha_steps), float(lopsided)), progress, _Start(starts, attack, seed, root_bounds)
    )
    return _result(search, status, reason, time.perf_counter() - began)


@dataclass
class _Start:
    """How the search begins: points to try, whether to attack at the root, the root's neuron bounds."""

    points: np.ndarray | None
    attack: bool
    seed: int
    root_bounds: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None

    def begin(self, search: _Search) -> None:
        """Offer the starting points and the attack's, and queue the root box."""
        problem = search.problem
        lower, upper = np.asarray(problem.lower, float), np.asarray(problem.upper, float)
        if self.points is not None and len(self.points):
            search.offer(np.clip(np.atleast_2d(self.points), lower, upper))
        if self.attack:
            search.offer(descend(problem, lower, upper, seed=self.seed, deadline=search.deadline, starts=self.points))
        root = self.root_bounds
        start = (
            None if root is None else ([np.asarray(a, float) for a in root[0]], [np.asarray(a, float) for a in root[1]])
        )
        search.push(_Node(-np.inf, next(search.counter), lower, upper, start=start))


def _run(
    search: _Search, executor: ExecutorSpec, settings: tuple[int, float], progress: bool, start: _Start
) -> tuple[str, str]:
    """The rounds on the executor's workers; ``(status, reason)`` of a limit or an interruption (else empty)."""
    problem = search.problem
    bar = _Progress(progress)
    status, reason = "", ""
    with Workers(executor) as workers:
        runner = _Runner(
            workers, problem, np.asarray(problem.upper, float) - np.asarray(problem.lower, float), settings
        )
        try:
            start.begin(search)
            status, reason = _rounds(search, runner, bar, search.max_nodes)
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted (Ctrl-C)"
            logger.warning("branch and bound interrupted after %d boxes; returning what is known", search.nodes)
            workers.close(cancel=True)
        finally:
            bar.close()
    return status, reason


def _rounds(search: _Search, runner: _Runner, bar: _Progress, max_nodes: int | None) -> tuple[str, str]:
    """Rounds until the queue is empty, a decision, convergence or a limit: ``(status, reason)`` of a limit."""
    while search.queue and not search.decided:
        if search.converged():
            break
        if search.expired():
            return "time_limit", "time limit"
        if max_nodes is not None and search.nodes >= max_nodes:
            return "node_limit", f"node limit {max_nodes}"
        nodes = search.take()
        if nodes:
            done = search.nodes
            search.round(runner, nodes)
            bar.update(search.nodes - done, search.value, search.bound(), len(search.queue))
    return "", ""


def _result(search: _Search, status: str, reason: str, seconds: float) -> SearchResult:
    problem = search.problem
    bound = search.bound()
    if not status:
        if search.decided:
            status = "feasible"
        elif search.converged():
            status = "optimal"
        elif search.unresolved:
            status, reason = "unresolved", f"{search.unresolved} box(es) too small to split were left undecided"
        elif np.isfinite(search.value):
            status = "optimal"
        else:
            status, bound = "infeasible", np.inf
    if status == "feasible" and not problem.has_objective:
        bound = -np.inf  # a decision proves no bound
    result = SearchResult(
        status,
        search.x,
        search.value,
        bound,
        search.nodes,
        search.leaves,
        seconds,
        search.max_depth,
        search.unresolved,
        reason,
        search.margin_bound,
    )
    logger.info(
        "branch and bound: %s, value %.9g, bound %.9g, %d boxes, %d leaf MILPs, %.2f s",
        status,
        result.value,
        result.bound,
        result.nodes,
        result.leaves,
        seconds,
    )
    return result
