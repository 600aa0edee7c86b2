"""``solve(model, strategy="split")``: branch and bound on the network inputs of a Pyomo model.

A model with one or more :class:`~pyomo_relu.block.ReLUNetBlock` (linear balances, specs,
several networks, indexed blocks) is solved by splitting the box of the blocks' input
variables.  On each sub-box every block's neuron bounds are re-tightened (interval and
CROWN over the sub-box, intersected with the block's own bounds), the block is rebuilt with
them (smaller big-M constants, no binary for a neuron the sub-box makes stable, the same
formulation), and the sub-MILP is solved with the incumbent as an objective cutoff.  A
sub-MILP that finishes closes its box; one that hits its short time limit gives a proven
bound for the box, which is then split in two along the input whose width matters most.
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
from pyomo_relu.bounds.chain import net_weights, run_chain
from pyomo_relu.errors import EmptyBoxError, PyomoReluError, SolverError
from pyomo_relu.parallel import ExecutorSpec, Workers

logger = logging.getLogger(__name__)

__all__ = ["LEAF_UNSTABLE", "PROBE_SECONDS", "solve_split"]

#: A sub-box with at most this many unstable neurons (all blocks) is solved to the end.
LEAF_UNSTABLE = 24
#: Seconds a sub-MILP with more unstable neurons gets before its box is split.
PROBE_SECONDS = 0.3
#: Networks with at most this many weights get LP tightening on every sub-box.
RETIGHTEN_LP_WEIGHTS = 50_000
#: Boxes narrower than this (relative to the root box) in every input are solved to the end.
MIN_RELATIVE_WIDTH = 1e-4

#: Working copies by key: (owner thread, owner process, :class:`_Work`); workers forked
#: after a copy was stored inherit it.
_MODELS: dict[str, tuple[int, int, _Work]] = {}
#: Copies cloned by threads of executors that are not forked pools (Dask, threads).
_COPIES = threading.local()


@dataclasses.dataclass(order=True)
class _Box:
    bound: float  # proven lower bound (minimisation form) from the parent
    order: int
    lower: np.ndarray = dataclasses.field(compare=False)
    upper: np.ndarray = dataclasses.field(compare=False)
    depth: int = dataclasses.field(compare=False, default=0)


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
    ..., "max_depth": ...}``.  Ctrl-C stops the search and returns what is known
    (``status="time_limit"``, ``message="interrupted"``).
    """
    from pyomo_relu.solvers import SolveResult

    began = time.perf_counter()
    deadline = None if time_limit is None else began + float(time_limit)
    gap = 1e-4 if mip_gap is None else float(mip_gap)
    objective, sign = _objective(model)
    _require_linear(model)
    blocks = _network_blocks(model)
    work = model.clone()
    key = f"{id(work)}-{time.time_ns()}"
    _MODELS[key] = (threading.get_ident(), os.getpid(), _Work.of(work))
    branch, lower, upper = _branching_box(work)
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
        _MODELS.pop(key, None)
    status, bound = state.verdict()
    if state.best_values is not None:
        _load(model, blocks, state.best_values)
    value = None if state.best_values is None else float(pe.value(objective))
    logger.info(
        "split: %s objective=%s bound=%s in %.2f s (%d boxes, %d finished)",
        status,
        value,
        bound,
        time.perf_counter() - began,
        state.nodes,
        state.leaves,
    )
    return SolveResult(
        status,
        value,
        bound,
        time.perf_counter() - began,
        solver,
        state.best_values is not None,
        state.message,
        {"nodes": state.nodes, "leaves": state.leaves, "max_depth": state.max_depth},
    )


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
        self.nodes = self.leaves = self.max_depth = 0
        self.message = ""
        self.failed = False

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
    """The open box of least bound that can still beat the incumbent (others are closed)."""
    while state.heap:
        box = heapq.heappop(state.heap)
        if box.bound < state.incumbent - state.tolerance():
            return box
        state.closed_bound = min(state.closed_bound, max(box.bound, state.incumbent))
    return None


def _absorb(state: _Search, box: _Box, outcome: dict[str, Any]) -> None:
    """Record one sub-MILP's answer: a new incumbent, a finished box, or two children."""
    state.nodes += 1
    state.max_depth = max(state.max_depth, box.depth)
    sign = state.sign
    if outcome["values"] is not None and sign * outcome["objective"] < state.incumbent:
        state.incumbent, state.best_values = sign * outcome["objective"], outcome["values"]
    status = outcome["status"]
    if status in ("optimal", "infeasible"):
        state.leaves += 1
        # infeasible under the cutoff: nothing in the box beats the incumbent it was given
        bound = sign * outcome["bound"] if outcome["bound"] is not None else outcome["cutoff"]
        state.closed_bound = min(state.closed_bound, max(box.bound, bound))
        return
    if status != "time_limit" or outcome["split"] is None:
        state.failed = True
        state.message = f"a sub-MILP ended with {status}: {outcome.get('message', '')}"
        return
    bound = box.bound if outcome["bound"] is None else max(box.bound, sign * outcome["bound"])
    i, middle = outcome["split"]
    below, above = box.upper.copy(), box.lower.copy()
    below[i] = above[i] = middle
    for lower, upper in ((box.lower, below), (above, box.upper)):
        state.push(_Box(bound, next(state.counter), lower, upper, box.depth + 1))


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
) -> dict[str, Any]:
    """Solve the sub-MILP of one box (in this process or a worker); returns a picklable summary."""
    from pyomo_relu.solvers import solve

    copy = _model(key, shipped)
    work = copy.model
    objective, sign = _objective(work)
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
    }
    unstable = _tighten_box(copy, dict(zip(branch, zip(lower, upper))), objective, sign, cutoff)
    if unstable is None:  # the box's bounds contradict the model's constraints: nothing to find
        return summary
    leaf = unstable <= LEAF_UNSTABLE or float(widths.max()) <= MIN_RELATIVE_WIDTH
    limit = seconds if leaf else min(PROBE_SECONDS, seconds if seconds is not None else np.inf)
    result = solve(work, solver, time_limit=limit, mip_gap=gap, options=dict(options), certify=False)
    summary.update(
        status=result.status, objective=result.objective, bound=result.bound, message=result.message, unstable=unstable
    )
    if result.has_solution and result.status in ("optimal", "time_limit"):
        summary["values"] = {var.name: var.value for var, _, _ in copy.kept}
    if leaf and result.status != "time_limit":
        summary["split"] = None
    return summary


def _tighten_box(
    copy: _Work, box: dict[str, tuple[float, float]], objective: Any, sign: float, cutoff: float
) -> int | None:
    """Bounds of the sub-box: the model's linear constraints propagated (FBBT), the blocks'
    neuron bounds re-tightened, the blocks rebuilt.  The unstable count, or ``None`` when the
    box holds no point of the model."""
    from pyomo.common.errors import InfeasibleConstraintException
    from pyomo.contrib.fbbt.fbbt import fbbt

    work = copy.model
    for var, lb, ub in copy.kept:  # every node starts from the model's own bounds
        var.setlb(lb)
        var.setub(ub)
    for name, (lo, hi) in box.items():
        var = work.find_component(name)
        var.setlb(max(float(lo), _value(var.lb, -np.inf)))
        var.setub(min(float(hi), _value(var.ub, np.inf)))
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
    except (InfeasibleConstraintException, _EmptyBox):
        return None
    for block, bounds in zip(copy.blocks, tightened):
        block.rebuild(bounds)
    return sum(int(b.unstable(k).sum()) for b in tightened for k in range(b.n_layers - 1))


class _EmptyBox(Exception):
    """A block's inputs or outputs have crossed bounds on this box."""


def _retighten(block: Any, base: Bounds) -> Bounds:
    """Neuron bounds of ``block`` over its variables' current bounds (inputs and outputs).

    Interval and CROWN always, LP tightening for small networks; intersected with the bounds
    the block was built with (valid on its whole box).  The output variables' bounds shrink
    to what the network can reach.
    """
    net = block.network
    lower = np.maximum([_value(v.lb, -np.inf) for v in block.input_vars], base.input_lower)
    upper = np.minimum([_value(v.ub, np.inf) for v in block.input_vars], base.input_upper)
    out_lower = np.array([_value(v.lb, -np.inf) for v in block.output_vars])
    out_upper = np.array([_value(v.ub, np.inf) for v in block.output_vars])
    if np.any(lower > upper + 1e-9) or np.any(out_lower > out_upper + 1e-9):
        raise _EmptyBox
    upper = np.maximum(upper, lower)
    chain = ["interval", "crown"] + (["lp"] if net_weights(net) <= RETIGHTEN_LP_WEIGHTS else [])
    has_outputs = bool(np.any(np.isfinite(out_lower)) or np.any(np.isfinite(out_upper)))
    try:
        sub = run_chain(
            net, chain, lower, upper, output_bounds=(out_lower, out_upper) if has_outputs else None, progress=False
        )
    except EmptyBoxError:  # the output box is out of the network's reach on this box
        raise _EmptyBox from None
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
            var.setlb(max(float(lo), _value(var.lb, -np.inf)) if np.isfinite(lo) else var.lb)
            var.setub(min(float(hi), _value(var.ub, np.inf)) if np.isfinite(hi) else var.ub)
    return tight


def _outside_constraints(work: Any, blocks: list[Any]) -> list[Any]:
    """The model's active constraints that are not the networks' own (balances, specs, the cutoff)."""
    inside = {id(block) for block in blocks}
    kept = []
    for con in work.component_data_objects(pe.Constraint, active=True, descend_into=True):
        parent = con.parent_block()
        while parent is not None and id(parent) not in inside:
            parent = parent.parent_block()
        if parent is None:
            kept.append(con)
    return kept


def _ordered(bounds: Bounds) -> Bounds:
    """Where the intersection crossed (an empty box within round-off), keep a point interval."""
    upper = [np.maximum(hi, lo) for lo, hi in zip(bounds.lower, bounds.upper)]
    return dataclasses.replace(bounds, upper=upper)


def _value(bound: Any, default: float) -> float:
    return default if bound is None else float(bound)


@dataclasses.dataclass
class _Work:
    """A working copy of the model and what every box needs of it, found once.

    The network blocks and the bounds they were built with, the variables outside their
    layers with their own bounds (restored at every box; they stay the same objects when
    the blocks are rebuilt), and the model's own constraints."""

    model: Any
    blocks: list[Any]
    built: list[Bounds]  # each block's bounds as built (valid on its whole box)
    kept: list[tuple[Any, Any, Any]]
    outside: list[Any]

    @classmethod
    def of(cls, model: Any) -> _Work:
        blocks = _network_blocks(model)
        return cls(
            model,
            blocks,
            [b.neuron_bounds for b in blocks],
            [(v, v.lb, v.ub) for v in _kept_vars(model)],
            _outside_constraints(model, blocks),
        )


def _model(key: str, shipped: Any) -> _Work:
    """The working copy for this thread: the search's own in its thread or in a forked worker
    (which inherited a private copy), else a clone of the model the executor delivered (Dask
    serialises task arguments itself; threads of one process would share the object), made
    once per thread."""
    entry = _MODELS.get(key)
    if entry is not None and (entry[0] == threading.get_ident() or entry[1] != os.getpid()):
        return entry[2]
    copies = getattr(_COPIES, "models", {})
    if key not in copies:
        if shipped is None:
            raise PyomoReluError("internal error: a split worker has no copy of the model")
        copies = {key: _Work.of(shipped.clone())}  # one model per thread at a time
        _COPIES.models = copies
    return copies[key]


def _network_blocks(model: Any) -> list[Any]:
    from pyomo_relu.block import ReLUNetBlockData

    blocks = [
        b
        for b in model.component_data_objects(pe.Block, descend_into=True, active=True)
        if isinstance(b, ReLUNetBlockData)
    ]
    built = [b for b in blocks if b.is_built]
    if not built:
        raise PyomoReluError(
            "solve(strategy='split') branches on the inputs of ReLUNetBlocks, and this model "
            "has no built one; use strategy='milp'"
        )
    return built


def _branching_box(work: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The unfixed input variables of all blocks (once each, by name) and their box."""
    box: dict[str, tuple[float, float]] = {}
    for block in _network_blocks(work):
        bounds = block.neuron_bounds
        for i, var in enumerate(block.input_vars):
            if var.fixed:
                continue
            lo = max(_value(var.lb, -np.inf), float(bounds.input_lower[i]))
            hi = min(_value(var.ub, np.inf), float(bounds.input_upper[i]))
            old = box.get(var.name, (-np.inf, np.inf))
            box[var.name] = (max(lo, old[0]), min(hi, old[1]))
    names = list(box)
    lower = np.array([box[n][0] for n in names], dtype=float)
    upper = np.array([box[n][1] for n in names], dtype=float)
    if np.any(lower > upper):
        raise PyomoReluError(f"input {names[int(np.argmax(lower > upper))]} has an empty box (lower > upper)")
    return names, lower, upper


def _objective(model: Any) -> tuple[Any, float]:
    objectives = list(model.component_data_objects(pe.Objective, active=True, descend_into=True))
    if len(objectives) != 1:
        raise SolverError(f"solve() needs exactly one active objective, found {len(objectives)}")
    return objectives[0], (1.0 if objectives[0].sense == pe.minimize else -1.0)


def _require_linear(model: Any) -> None:
    """Refuse models that are not MILPs, naming the first nonlinear component."""
    objective, _ = _objective(model)
    degree = objective.expr.polynomial_degree()
    if degree is None or degree > 1:
        raise SolverError(
            f"solve(strategy='split') needs a linear model: the objective {objective.name} is "
            "nonlinear; use strategy='milp' with a solver that takes it (e.g. scip)"
        )
    for con in model.component_data_objects(pe.Constraint, active=True, descend_into=True):
        degree = con.body.polynomial_degree()
        if degree is None or degree > 1:
            raise SolverError(
                f"solve(strategy='split') needs a linear model: constraint {con.name} is "
                "nonlinear; use strategy='milp' with a solver that takes it (e.g. scip), or a "
                "linear formulation of the network (bigm, gdp.*, partition, ...)"
            )


def _kept_vars(model: Any) -> list[Any]:
    """Variables outside the blocks' rebuilt layers, in model order (the same in every copy)."""
    layers = {id(block.component("layer")) for block in _network_blocks(model)}
    kept = []
    for var in model.component_data_objects(pe.Var, descend_into=True):
        parent = var.parent_block()
        inside = False
        while parent is not None:
            if id(parent) in layers or id(parent.parent_component()) in layers:
                inside = True
                break
            parent = parent.parent_block()
        if not inside:
            kept.append(var)
    return kept


def _load(model: Any, blocks: list[Any], values: dict[str, float | None]) -> None:
    """Set the user's variables to the best solution; the networks' own from a forward pass."""
    for var in _kept_vars(model):
        value = values.get(var.name)
        if value is not None and not var.fixed:
            var.set_value(value, skip_validation=True)
    for block in blocks:
        block.initialize([v.value for v in block.input_vars])


def _node_seconds(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.01, deadline - time.perf_counter())
