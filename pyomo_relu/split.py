"""``solve(model, strategy="split")``: branch and bound on the network inputs of a Pyomo model.

A model with one or more :class:`~pyomo_relu.block.ReLUNetBlock` (linear balances, specs,
several networks, indexed blocks) is solved by splitting the box of the blocks' input
variables.  On each sub-box the model's linear constraints and the incumbent's cutoff are
propagated over the variable bounds (FBBT) and every block's neuron bounds are
re-tightened (interval and CROWN over the sub-box, intersected with the block's own
bounds).  The box's LP (:mod:`pyomo_relu.split_relaxation`: every network's triangle
relaxation, the model's rows, the objective) then bounds it: a box that cannot beat the
incumbent is closed without a MILP; one with more than :data:`LEAF_UNSTABLE` unstable
neurons is split in two at the middle of one input, bounded by its LP; the others
get their sub-MILP: the blocks rebuilt over the box's bounds (smaller big-M constants, no
binary for a neuron the sub-box makes stable, the same formulation) and solved with the
incumbent as an objective cutoff.
The split input is the widest side of the box as propagation left it (relative to the root
box), weighted by a pseudo-cost: the mean bound gain of that input's past splits relative to
the mean over all inputs (1 for an input not split yet, at least 0.1), so inputs whose splits
move the bound are preferred.  The children inherit the propagated box, narrowed by the box
LP's reduced costs against the incumbent (:func:`~pyomo_relu.bounds.lp_solve.reduced_cost_box`).
Boxes are taken best bound first, except before the first incumbent: then the deepest
open box (a dive to a sub-MILP, which gives incumbents).  Sub-MILPs run with
:data:`SUB_MILP_HIGHS_OPTIONS` (no sub-MIP heuristics or restarts).
Sub-MILPs run in parallel through an executor (``None``, a number of processes, or any
``concurrent.futures.Executor`` such as a Dask client's).

The work is done on a private copy of the model: the user's model keeps its components,
bounds and constraints; only the variable values are set, to the best solution found (the
networks' variables from a forward pass at its inputs).

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock, solve
>>> net = NetworkDefinition([DenseLayer([[1.0, 1.0], [1.0, -1.0]], [0.0, 0.0]),
...                          DenseLayer([[1.0, 1.0]], [-1.0], "linear")], input_bounds=[(-1, 1), (-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.x = pe.Var(range(2), bounds=(-1, 1))
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, inputs=m.x)
>>> m.spec = pe.Constraint(expr=m.x[0] + m.x[1] <= 0.5)
>>> m.obj = pe.Objective(expr=m.nn.outputs[0], sense=pe.maximize)
>>> r = solve(m, strategy="split")
>>> r.status, round(r.objective, 6), round(r.bound, 6)
('optimal', 1.0, 1.0)
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any

import numpy as np
import pyomo.environ as pe

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.chain import run_chain
from pyomo_relu.errors import EmptyBoxError
from pyomo_relu.parallel import ExecutorSpec, Workers
from pyomo_relu.split_model import (
    MODELS,
    WorkingCopy,
    bound_value,
    branching_box,
    load_solution,
    model_objective,
    network_blocks,
    require_linear,
    working_copy,
)

logger = logging.getLogger(__name__)

__all__ = ["LEAF_UNSTABLE", "SUB_MILP_HIGHS_OPTIONS", "solve_split"]

#: A sub-box with at most this many unstable neurons (all blocks) gets its sub-MILP; one
#: with more is split without a solve (bounded by its LP, :mod:`pyomo_relu.split_relaxation`).
LEAF_UNSTABLE = 32
#: A box is split at its LP's point, at least this fraction of its width from either edge.
SPLIT_MARGIN = 0.35
#: Boxes narrower than this (relative to the root box) in every input are solved to the end.
MIN_RELATIVE_WIDTH = 1e-4
#: HiGHS options of the sub-MILPs (the caller's ``options`` override them).  A sub-MILP has at
#: most :data:`LEAF_UNSTABLE` binaries and a cutoff: HiGHS's sub-MIP heuristics (RINS, RENS),
#: root reduced-cost fixing, feasibility jump and restarts took more than half its time on the
#: flowsheet of ``examples/flowsheet_split.py`` (1.21 s of HiGHS time in its 8 sub-MILPs,
#: 0.53 s without them, the same optima; ``benchmarks/RESULTS.md``, "Global optimisation").
SUB_MILP_HIGHS_OPTIONS: dict[str, Any] = {
    "mip_allow_restart": False,
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False,
    "mip_heuristic_run_feasibility_jump": False,
}


@dataclasses.dataclass(order=True)
class _Box:
    bound: float  # proven lower bound (minimisation form) from the parent
    order: int
    lower: np.ndarray = dataclasses.field(compare=False)
    upper: np.ndarray = dataclasses.field(compare=False)
    depth: int = dataclasses.field(compare=False, default=0)
    dimension: int = dataclasses.field(compare=False, default=-1)  # the split that made it
    parent: float = dataclasses.field(compare=False, default=-np.inf)  # its parent's own bound


def solve_split(
    model: Any,
    solver: str = "highs",
    *,
    time_limit: float | None = None,
    mip_gap: float | None = None,
    options: dict[str, Any] | None = None,
    executor: ExecutorSpec = None,
    progress: bool = False,
) -> Any:
    """Branch and bound over the network inputs of ``model``; see the module docstring.

    ``mip_gap`` is relative, as in :func:`pyomo_relu.solve` (default ``1e-4``): the search
    stops when ``|objective - bound| <= mip_gap * max(1, |objective|)``.  Returns a
    :class:`~pyomo_relu.solvers.SolveResult` whose ``raw`` holds ``{"nodes": ..., "leaves":
    ..., "max_depth": ..., "milps": ...}`` (boxes, boxes closed, depth, sub-MILPs solved).
    Ctrl-C stops the search and returns what is known (``status="time_limit"``,
    ``message="interrupted"``).
    """
    began = time.perf_counter()
    deadline = None if time_limit is None else began + float(time_limit)
    gap = 1e-4 if mip_gap is None else float(mip_gap)
    objective, sign = model_objective(model)
    require_linear(model)
    blocks = network_blocks(model)
    work = model.clone()
    key = f"{id(work)}-{time.time_ns()}"
    MODELS[key] = (threading.get_ident(), os.getpid(), WorkingCopy.of(work))
    branch, lower, upper = branching_box(work)
    state = _Search(sign, gap)
    state.push(_Box(-np.inf, 0, lower, upper))
    shipped = None
    try:
        with Workers(executor) as workers:
            if workers.executor is not None and workers.owned is None:
                shipped = work  # a foreign executor (Dask, ...) gets the model itself
            _run(state, workers, key, shipped, branch, (lower, upper), solver, gap, options or {}, deadline, progress)
    except KeyboardInterrupt:
        state.message = "interrupted"
    finally:
        MODELS.pop(key, None)
    if state.best_values is not None:
        load_solution(model, blocks, state.best_values)
    return _result(state, None if state.best_values is None else float(pe.value(objective)), solver, began)


def _result(state: _Search, value: float | None, solver: str, began: float) -> Any:
    """The :class:`~pyomo_relu.solvers.SolveResult` of a finished (or stopped) search."""
    from pyomo_relu.solvers import SolveResult

    status, bound = state.verdict()
    seconds = time.perf_counter() - began
    logger.info(
        "split: %s objective=%s bound=%s in %.2f s (%d boxes, %d finished, %d sub-MILPs)",
        status,
        value,
        bound,
        seconds,
        state.nodes,
        state.leaves,
        state.milps,
    )
    raw = {"nodes": state.nodes, "leaves": state.leaves, "max_depth": state.max_depth, "milps": state.milps}
    return SolveResult(status, value, bound, seconds, solver, state.best_values is not None, state.message, raw)


class _Search:
    """Open boxes, the incumbent and the proven bound (all in minimisation form)."""

    def __init__(self, sign: float, gap: float) -> None:
        self.sign, self.gap = sign, gap
        self.heap: list[_Box] = []
        self.counter = itertools.count(1)
        self.incumbent = np.inf
        self.best_values: dict[str, float | None] | None = None
        self.closed_bound = np.inf  # the least bound of finished boxes
        self.running: dict[Any, _Box] = {}
        self.nodes = self.leaves = self.max_depth = self.milps = 0
        self.message = ""
        self.gains: list[list[float]] = []  # per branching input: bound gains of its splits
        self.failed = False

    def scores(self, n: int) -> np.ndarray:
        """Pseudo-costs of the branching inputs: the mean bound gain of their past splits
        (relative to the mean over all), 1 for inputs not split yet."""
        while len(self.gains) < n:
            self.gains.append([])
        means = np.array([np.mean(g) if g else np.nan for g in self.gains[:n]])
        if np.all(np.isnan(means)) or not np.nanmax(means) > 0:
            return np.ones(n)
        return np.where(np.isnan(means), 1.0, 0.1 + means / np.nanmean(means))

    def push(self, box: _Box) -> None:
        heapq.heappush(self.heap, box)

    def bound(self) -> float:
        open_bounds = [box.bound for box in self.heap] + [box.bound for box in self.running.values()]
        return float(min([self.closed_bound, *open_bounds]))

    def tolerance(self) -> float:
        return self.gap * max(1.0, abs(self.incumbent)) if np.isfinite(self.incumbent) else 0.0

    def done(self) -> bool:
        return self.incumbent - self.bound() <= self.tolerance() or (not self.heap and not self.running)

    def verdict(self) -> tuple[str, float | None]:
        bound = min(self.bound(), self.incumbent)
        finished = not self.heap and not self.running and not self.failed and not self.message
        if self.best_values is None:
            status = "infeasible" if finished else ("error" if self.failed and not self.heap else "time_limit")
            return status, None if not np.isfinite(bound) else self.sign * bound
        status = "optimal" if (self.incumbent - bound <= self.tolerance() and not self.failed) else "time_limit"
        return status, None if not np.isfinite(bound) else float(self.sign * bound)


def _run(
    state: _Search,
    workers: Workers,
    key: str,
    shipped: Any,
    branch: list[str],
    root: tuple[np.ndarray, np.ndarray],
    solver: str,
    gap: float,
    options: dict[str, Any],
    deadline: float | None,
    progress: bool,
) -> None:
    """The loop: keep up to ``workers.count`` boxes in flight, best bound first."""
    while not state.done():
        if deadline is not None and time.perf_counter() >= deadline:
            state.message = state.message or "time limit reached"
            return
        box = _next_box(state)
        if box is not None:
            task = (
                key,
                shipped,
                branch,
                box.lower,
                box.upper,
                root,
                state.sign * state.incumbent,
                solver,
                gap,
                options,
                _node_seconds(deadline),
                state.scores(len(branch)),
            )
            if workers.executor is None:
                state.running[0] = box
                outcome = solve_box(*task)
                del state.running[0]
                _absorb(state, box, outcome)
                continue
            state.running[workers.executor.submit(solve_box, *task)] = box
            if state.heap and len(state.running) < workers.count:
                continue
        if state.running:
            finished, _ = wait(list(state.running), timeout=_node_seconds(deadline), return_when=FIRST_COMPLETED)
            for future in finished:
                _absorb(state, state.running.pop(future), future.result())
        if progress:
            logger.info("split: %d open, incumbent %s, bound %s", len(state.heap), state.incumbent, state.bound())


def _next_box(state: _Search) -> _Box | None:
    """The open box of least bound that can still beat the incumbent (others are closed);
    before the first incumbent, the deepest open box (a dive: incumbents come from the
    sub-MILPs of small boxes, and pruning needs one)."""
    if not np.isfinite(state.incumbent) and state.heap:
        box = max(state.heap, key=lambda b: (b.depth, -b.bound))
        state.heap.remove(box)  # boxes compare by (bound, order): this one only
        heapq.heapify(state.heap)
        return box
    while state.heap:
        box = heapq.heappop(state.heap)
        if box.bound < state.incumbent - state.tolerance():
            return box
        state.closed_bound = min(state.closed_bound, max(box.bound, state.incumbent))
    return None


def _absorb(state: _Search, box: _Box, outcome: dict[str, Any]) -> None:
    """Record one sub-MILP's answer: a new incumbent, a finished box, or two children."""
    state.nodes += 1
    state.milps += int(outcome["milp"])
    state.max_depth = max(state.max_depth, box.depth)
    sign = state.sign
    if box.dimension >= 0 and np.isfinite(box.parent):
        # a child the split proved empty (or worse than the cutoff) gained up to the cutoff
        reached = sign * outcome["bound"] if outcome["bound"] is not None else outcome["cutoff"]
        gain = reached - box.parent
        if np.isfinite(gain):
            state.scores(box.dimension + 1)
            state.gains[box.dimension].append(max(0.0, float(gain)))
    if outcome["values"] is not None and sign * outcome["objective"] < state.incumbent:
        state.incumbent, state.best_values = sign * outcome["objective"], outcome["values"]
    status = outcome["status"]
    if status in ("optimal", "infeasible", "pruned"):
        state.leaves += 1
        # infeasible under the cutoff: nothing in the box beats the incumbent it was given
        bound = sign * outcome["bound"] if outcome["bound"] is not None else outcome["cutoff"]
        state.closed_bound = min(state.closed_bound, max(box.bound, bound))
        return
    if status not in ("time_limit", "branched") or outcome["split"] is None:
        state.failed = True
        state.message = f"a sub-MILP ended with {status}: {outcome.get('message', '')}"
        return
    bound = box.bound if outcome["bound"] is None else max(box.bound, sign * outcome["bound"])
    i, middle = outcome["split"]
    parent_lower, parent_upper = outcome.get("box", (box.lower, box.upper))
    below, above = parent_upper.copy(), parent_lower.copy()
    below[i] = above[i] = middle
    for lower, upper in ((parent_lower, below), (above, parent_upper)):
        state.push(_Box(bound, next(state.counter), lower, upper, box.depth + 1, i, bound))


def solve_box(
    key: str,
    shipped: Any,
    branch: list[str],
    lower: np.ndarray,
    upper: np.ndarray,
    root: tuple[np.ndarray, np.ndarray],
    cutoff: float,
    solver: str,
    gap: float,
    options: dict[str, Any],
    seconds: float | None,
    scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """Bound one box, then prune it, split it or solve its sub-MILP (in this process or a
    worker); returns a picklable summary."""
    copy = working_copy(key, shipped)
    work = copy.model
    objective, sign = model_objective(work)
    widths = (upper - lower) / np.maximum(root[1] - root[0], 1e-300)
    i = int(np.argmax(widths))
    split = (i, 0.5 * (lower[i] + upper[i]))
    summary: dict[str, Any] = {
        "status": "infeasible",
        "objective": None,
        "bound": None,
        "values": None,
        "cutoff": sign * cutoff,
        "message": "",
        "unstable": 0,
        "split": split,
        "milp": False,
    }
    tightened = _tighten_box(copy, dict(zip(branch, zip(lower, upper))), objective, sign, cutoff)
    if tightened is None:  # the box's bounds contradict the model's constraints: nothing to find
        return summary
    # the box as propagation left it: the children split that, along its widest side
    lower, upper = _propagated_box(work, branch, lower, upper)
    bounded = _box_bound(copy, tightened, objective, sign, sign * cutoff)
    if bounded is None:  # the box's LP has no point
        return summary
    bound, point, narrowed = bounded
    # and as the LP's reduced costs narrowed it (no point beating the cutoff lies outside)
    summary["box"] = lower, upper = _narrow(branch, lower, upper, narrowed)
    widths = (upper - lower) / np.maximum(root[1] - root[0], 1e-300)
    i = int(np.argmax(widths if scores is None else widths * scores))
    summary["split"] = (i, 0.5 * (lower[i] + upper[i]))
    if branch[i] in point:  # split at the LP's point, away from the edges
        summary["split"] = (i, float(np.clip(point[branch[i]], *_inner(lower[i], upper[i]))))
    summary["bound"] = sign * bound
    if bound >= sign * cutoff - gap * max(1.0, abs(cutoff)):  # cannot beat the incumbent
        summary["status"] = "pruned"
        return summary
    unstable = sum(int(b.unstable(k).sum()) for b in tightened for k in range(b.n_layers - 1))
    summary["unstable"] = unstable
    if unstable > LEAF_UNSTABLE and float(widths.max()) > MIN_RELATIVE_WIDTH:
        summary["status"] = "branched"  # too many unstable neurons for a quick sub-MILP: split
        return summary
    return _sub_milp(copy, tightened, summary, solver, gap, options, seconds)


def _sub_milp(
    copy: WorkingCopy,
    tightened: list[Bounds],
    summary: dict[str, Any],
    solver: str,
    gap: float,
    options: dict[str, Any],
    seconds: float | None,
) -> dict[str, Any]:
    """The blocks rebuilt over the box's bounds and the sub-MILP solved (with the cutoff row)."""
    from pyomo_relu.solvers import solve

    for block, bounds in zip(copy.blocks, tightened):
        block.rebuild(bounds)
    options = {**SUB_MILP_HIGHS_OPTIONS, **options} if solver == "highs" else dict(options)
    result = solve(copy.model, solver, time_limit=seconds, mip_gap=gap, options=options, certify=False)
    summary.update(
        status=result.status, objective=result.objective, bound=result.bound, message=result.message, milp=True
    )
    if result.has_solution and result.status in ("optimal", "time_limit"):
        summary["values"] = {var.name: var.value for var, _, _ in copy.kept}
    if result.status != "time_limit":
        summary["split"] = None
    return summary


def _box_bound(
    copy: WorkingCopy, tightened: list[Bounds], objective: Any, sign: float, cutoff: float
) -> tuple[float, dict[str, float], dict[str, tuple[float, float]]] | None:
    """A lower bound (minimisation form) of the box: the tighter of the sub-box LP
    (:mod:`pyomo_relu.split_relaxation`) and the objective over the variable bounds, the
    LP's point by variable name (empty without one) and the variables' bounds narrowed by
    its reduced costs against ``cutoff`` (minimisation form); ``None`` when the LP proves
    the box empty."""
    bound = _objective_bound(objective, sign)
    if copy.relaxation is None:
        return bound, {}, {}
    lp = copy.relaxation.bound(copy.blocks, tightened, cutoff)
    if lp is None:
        return None
    kept = copy.relaxation.kept
    point = {} if lp.point is None else {var.name: float(v) for var, v in zip(kept, lp.point)}
    narrowed = {var.name: (float(lo), float(hi)) for var, lo, hi in zip(kept, lp.lower, lp.upper)}
    return max(bound, lp.value), point, narrowed


def _propagated_box(
    work: Any, branch: list[str], lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The branching variables' box after propagation (FBBT and the networks' reach set
    their bounds on the working copy), within the box the node was given."""
    lo, hi = lower.copy(), upper.copy()
    for k, name in enumerate(branch):
        var = work.find_component(name)
        lo[k] = max(lo[k], bound_value(var.lb, -np.inf))
        hi[k] = min(hi[k], bound_value(var.ub, np.inf))
    return lo, np.maximum(hi, lo)


def _narrow(
    branch: list[str], lower: np.ndarray, upper: np.ndarray, narrowed: dict[str, tuple[float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """The branching box intersected with the bounds the box LP's reduced costs left."""
    lo, hi = lower.copy(), upper.copy()
    for k, name in enumerate(branch):
        if name in narrowed:
            lo[k], hi[k] = max(lo[k], narrowed[name][0]), min(hi[k], narrowed[name][1])
    return lo, np.maximum(hi, lo)


def _inner(lower: float, upper: float) -> tuple[float, float]:
    """The middle part of ``[lower, upper]`` where a split point may fall."""
    margin = SPLIT_MARGIN * (upper - lower)
    return lower + margin, upper - margin


def _objective_bound(objective: Any, sign: float) -> float:
    """A lower bound (minimisation form) of the linear objective over the variables' current bounds."""
    from pyomo.repn import generate_standard_repn

    repn = generate_standard_repn(objective.expr, quadratic=False, compute_values=True)
    total = sign * float(pe.value(repn.constant))
    for var, coef in zip(repn.linear_vars, repn.linear_coefs):
        c = sign * float(coef)
        if c == 0.0:
            continue
        bound = var.lb if c > 0 else var.ub
        if bound is None:
            return -np.inf
        total += c * float(bound)
    return total


def _tighten_box(
    copy: WorkingCopy, box: dict[str, tuple[float, float]], objective: Any, sign: float, cutoff: float
) -> list[Bounds] | None:
    """Bounds of the sub-box: the model's linear constraints propagated (FBBT) and the blocks'
    neuron bounds re-tightened (the variables' bounds are set on the working copy).  The
    blocks' new bounds, or ``None`` when the box holds no point of the model."""
    from pyomo.common.errors import InfeasibleConstraintException
    from pyomo.contrib.fbbt.fbbt import fbbt

    work = copy.model
    for var, lb, ub in copy.kept:  # every node starts from the model's own bounds
        var.setlb(lb)
        var.setub(ub)
    for name, (lo, hi) in box.items():
        var = work.find_component(name)
        var.setlb(max(float(lo), bound_value(var.lb, -np.inf)))
        var.setub(min(float(hi), bound_value(var.ub, np.inf)))
    if work.component("_split_cutoff") is not None:
        work.del_component("_split_cutoff")
    outside = list(copy.outside)
    if np.isfinite(cutoff):
        work._split_cutoff = pe.Constraint(expr=(objective.expr <= cutoff) if sign > 0 else (objective.expr >= cutoff))
        outside.append(work._split_cutoff)
    try:
        for con in outside:
            fbbt(con, deactivate_satisfied_constraints=False)
        tightened = [_retighten(block, base) for block, base in zip(copy.blocks, copy.built)]
    except (InfeasibleConstraintException, EmptyBoxError):
        return None
    return tightened


def _retighten(block: Any, base: Bounds) -> Bounds:
    """Neuron bounds of ``block`` over its variables' current bounds (inputs and outputs).

    Interval and CROWN (cheap; the box LP is the strong bound); intersected with the bounds
    the block was built with (valid on its whole box).  The output variables' bounds shrink
    to what the network can reach.
    """
    net = block.network
    lower = np.maximum([bound_value(v.lb, -np.inf) for v in block.input_vars], base.input_lower)
    upper = np.minimum([bound_value(v.ub, np.inf) for v in block.input_vars], base.input_upper)
    out_lower = np.array([bound_value(v.lb, -np.inf) for v in block.output_vars])
    out_upper = np.array([bound_value(v.ub, np.inf) for v in block.output_vars])
    if np.any(lower > upper + 1e-9) or np.any(out_lower > out_upper + 1e-9):
        raise EmptyBoxError(f"{block.name}: its inputs or outputs have crossed bounds on this box")
    upper = np.maximum(upper, lower)
    chain = ["interval", "crown"]  # per box: cheap; the box LP does the rest
    has_outputs = bool(np.any(np.isfinite(out_lower)) or np.any(np.isfinite(out_upper)))
    # an EmptyBoxError here: the output box is out of the network's reach on this box
    sub = run_chain(
        net, chain, lower, upper, output_bounds=(out_lower, out_upper) if has_outputs else None, progress=False
    )
    tight = _ordered(
        dataclasses.replace(
            sub,
            lower=[np.maximum(a, b) for a, b in zip(sub.lower, base.lower)],
            upper=[np.minimum(a, b) for a, b in zip(sub.upper, base.upper)],
            methods=base.methods + ("split",),
        )
    )
    reach_lower, reach_upper = net.canonical_layers[-1].output_bounds(tight.lower[-1], tight.upper[-1])
    for var, lo, hi in zip(block.output_vars, reach_lower, reach_upper):
        if not var.fixed:
            var.setlb(max(float(lo), bound_value(var.lb, -np.inf)) if np.isfinite(lo) else var.lb)
            var.setub(min(float(hi), bound_value(var.ub, np.inf)) if np.isfinite(hi) else var.ub)
    return tight


def _ordered(bounds: Bounds) -> Bounds:
    """Where the intersection crossed (an empty box within round-off), keep a point interval."""
    upper = [np.maximum(hi, lo) for lo, hi in zip(bounds.lower, bounds.upper)]
    return dataclasses.replace(bounds, upper=upper)


def _node_seconds(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.01, deadline - time.perf_counter())
