r"""``verify(net, spec)``: decide a VNN-LIB property with bounds, attacks, splitting and MILPs.

The question
------------
For every case ``(box, polytopes)`` of the specification (see :mod:`.vnnlib`) and every
polytope ``A y <= b`` of it, is there an ``x`` in the box whose output lies in the polytope?
Equivalently, is the best **margin**

.. math::

    t^* \;=\; \max_{x \in [l, u]} \; \min_i \,(b_i - A_i f(x))

non-negative?  ``sat`` (a counterexample exists) iff ``t* >= 0`` for some case and polytope;
``unsat`` iff ``t* < 0`` for all of them.

The MILP
--------
For one (box, polytope) pair the network is written with the big-M formulation of
:mod:`pyomo_relu.formulations.bigm` (the rows of :func:`pyomo_relu.bounds.rows.build_lp`,
in :class:`pyomo_relu.search.leaf.NetworkMilp`:
``z = W h + b``, ``h >= z``, ``h >= 0``, ``h <= z - l (1 - σ)``, ``h <= u σ``, binary ``σ``, and no
binary for stable neurons), and the margin becomes a variable ``t`` with

.. math::

    \max\; t \quad \text{s.t.}\quad A_i y + t \le b_i \;\; \forall i, \qquad y = f(x) \text{ (big-M)}, \quad l \le x \le u .

The model is passed to HiGHS directly as arrays (``highspy``), not through Pyomo:
verification builds many small models, and it needs two HiGHS features Pyomo does not
expose.  ``objective_bound`` restricts the search to ``t > -τ`` (``τ`` =
:data:`UNSAT_TOLERANCE`), so every node whose relaxation proves ``t <= -τ`` is pruned at
once, and an "infeasible" answer proves ``t* <= -τ < 0``.  A callback on improving
solutions evaluates each incumbent's ``x`` with the exact forward pass and interrupts the
solve as soon as one is a confirmed counterexample.

A disjunction of polytopes is handled with **one MILP per polytope** (unsafe iff any is),
most promising first: each is smaller than a disjunctive model and a confirmed
counterexample ends the whole search.

The pipeline for one case
-------------------------
Each case is a feasibility problem of the search engine (:mod:`pyomo_relu.search`): one
region per unsafe polytope, no objective.  A decision is an optimisation with a cutoff:
the search stops at its first confirmed point.

1. **Bounds** on the case's box: CROWN with the specification rows back-substituted
   (:func:`pyomo_relu.bounds.crown.linear_bounds`); polytopes whose margin bound is
   negative are dropped.
2. **Attack**: PGD with seeded random restarts on the margin of every open polytope
   (:func:`pyomo_relu.search.attack.pgd`), every point confirmed by the forward pass.
3. Low-dimensional inputs (at most ``split_max_inputs``, e.g. ACAS Xu): the engine's
   **input-domain branch and bound** (:func:`pyomo_relu.search.engine.branch_and_bound`)
   with leaf MILPs on sub-boxes that have few unstable neurons.
4. Otherwise the requested bounds chain (``interval``, ``crown``, ``lp``, ... as registered
   in :data:`pyomo_relu.bounds.chain.METHODS`; unknown or failing methods are skipped with
   a warning) tightens the neurons over the box, the bound test is repeated with
   alpha-CROWN on the specification rows, then **ReLU branching**
   (:mod:`pyomo_relu.search.relu_branch`, alpha/beta-CROWN per domain) gets half the time
   left, and the polytopes still open go to the MILP.

Soundness rules
---------------
* ``sat`` only with a counterexample ``x`` inside the box (solver points are clipped to
  it) whose output by :meth:`NetworkDefinition.evaluate` has margin ``>= 0``, with no
  tolerance in our favour.
* ``unsat`` only when every polytope is excluded by a sound bound (CROWN, LP with safe
  dual bounds, or a MILP that proved ``t* <= -τ``).
* Everything else, including a time-out, is ``unknown``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyomo_relu.bounds.alpha import optimise_rows
from pyomo_relu.bounds.crown import batch_crown, linear_bounds
from pyomo_relu.network import NetworkDefinition
from pyomo_relu.options import strict_keywords
from pyomo_relu.search.attack import descend, pgd
from pyomo_relu.search.engine import branch_and_bound
from pyomo_relu.search.leaf import LEAF_TOLERANCE, UNSAT_TOLERANCE, MilpOutcome, NetworkMilp
from pyomo_relu.search.nodes import SAFE_MARGIN, safe_margin, shrink_box
from pyomo_relu.search.problem import SearchProblem, as_regions
from pyomo_relu.search.relu_branch import relu_branch_and_bound
from pyomo_relu.verify.vnnlib import Case, Specification

logger = logging.getLogger(__name__)

__all__ = ["CounterexampleCheck", "MilpOutcome", "VerifyResult", "check_counterexample", "verify"]

#: Inputs up to this many are verified by input splitting (``split=True``).
SPLIT_MAX_INPUTS = 16


# ------------------------------------------------------------------- results
@dataclass
class VerifyResult:
    """The verdict on a property.

    ``status``: ``"sat"`` (the property is violated: ``counterexample`` is ``(x, y)`` with
    ``y = net.evaluate(x)``, and ``details["margin"]`` its margin), ``"unsat"`` (it holds) or
    ``"unknown"`` (``reason`` says why, e.g. ``"time limit"``).  ``proven_bound`` is a proven
    upper bound of the best margin ``max min_i (b_i - A_i y)`` over the cases (negative for
    ``unsat``; ``None`` for ``sat`` and when no bound is known).  ``subproblems`` counts the sub-boxes bounded by splitting plus the
    MILPs solved.  ``method`` names what decided: ``"attack"``, ``"bounds"``, ``"split"``,
    ``"milp"``.
    """

    status: str
    counterexample: tuple[np.ndarray, np.ndarray] | None = None
    proven_bound: float | None = None
    seconds: float = 0.0
    subproblems: int = 0
    method: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def timed_out(self) -> bool:
        return self.status == "unknown" and self.reason == "time limit"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (counterexample as lists or ``None``)."""
        counterexample = None
        if self.counterexample is not None:
            x, y = self.counterexample
            counterexample = {"x": [float(v) for v in x], "y": [float(v) for v in y]}
        return {
            "status": self.status,
            "counterexample": counterexample,
            "proven_bound": self.proven_bound,
            "seconds": round(self.seconds, 4),
            "subproblems": self.subproblems,
            "method": self.method,
            "reason": self.reason,
        }


@dataclass
class CounterexampleCheck:
    """Whether ``x`` is a counterexample: inside a case's box and unsafe by the forward pass.

    ``margin`` is the best ``max_p margin_p(y)`` over the cases whose box holds ``x``
    (``-inf`` if none does); ``box_violation`` how far ``x`` lies outside the nearest box.
    """

    valid: bool
    y: np.ndarray
    margin: float
    box_violation: float
    case: int | None
    polytope: int | None


def check_counterexample(
    net: NetworkDefinition,
    spec: Specification,
    x: Sequence[float],
    *,
    input_tol: float = 0.0,
    output_tol: float = 0.0,
) -> CounterexampleCheck:
    """Check ``x`` with :meth:`NetworkDefinition.evaluate`.

    Valid when ``x`` is within ``input_tol`` of some case's box and the output's margin
    in one of its polytopes is ``>= -output_tol``.  The defaults (zero) are what
    :func:`verify` demands of its own answers; counterexamples written in float32 by
    other tools may need ``input_tol`` / ``output_tol`` around ``1e-6``.
    """
    spec.check_network(net.n_inputs, net.n_outputs)
    x = np.asarray(x, dtype=float).ravel()
    y = net.evaluate(x)
    best: tuple[float, int | None, int | None] = (-np.inf, None, None)
    nearest = np.inf
    for c, case in enumerate(spec.cases):
        violation = float(max(0.0, np.max(case.lower - x), np.max(x - case.upper)))
        nearest = min(nearest, violation)
        if violation > input_tol:
            continue
        for p, polytope in enumerate(case.polytopes):
            margin = float(polytope.margin(y))
            if margin > best[0]:
                best = (margin, c, p)
    return CounterexampleCheck(bool(best[0] >= -output_tol), y, best[0], nearest, best[1], best[2])


# ------------------------------------------------------------------- bounds
def resolve_bounds_on_box(
    net: NetworkDefinition,
    lower: np.ndarray,
    upper: np.ndarray,
    methods: Sequence[str] | str,
    deadline: float | None,
    executor: Executor | int | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
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
    method: Any, net: NetworkDefinition, lower: np.ndarray, upper: np.ndarray, start: Any, options: dict[str, Any]
) -> Any:
    """``method(net, lower, upper, start, **options)`` with only the options it takes."""
    parameters = inspect.signature(method).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        options = {key: value for key, value in options.items() if key in parameters}
    return method(net, lower, upper, start, **options)


# ------------------------------------------------------------------- verify
@dataclass
class _Context:
    net: NetworkDefinition
    layers: list
    deadline: float | None
    bounds: Sequence[str]
    split: bool
    split_max_inputs: int
    executor: Executor | int | None
    seed: int
    relu_split: bool = True
    subproblems: int = 0
    best_bound: float = -np.inf
    details: dict[str, Any] = field(default_factory=dict)

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def expired(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline


@dataclass
class _CaseOutcome:
    status: str
    x: np.ndarray | None = None
    bound: float | None = None
    method: str = ""
    reason: str = ""


@strict_keywords
def verify(
    net: NetworkDefinition,
    spec: Specification,
    time_limit: float | None = None,
    *,
    bounds: Sequence[str] | str = ("interval", "crown", "lp"),
    split: bool = True,
    executor: Executor | int | None = None,
    split_max_inputs: int = SPLIT_MAX_INPUTS,
    seed: int = 0,
    relu_split: bool = True,
) -> VerifyResult:
    """Decide the property ``spec`` for ``net``: ``"sat"``, ``"unsat"`` or ``"unknown"``.

    Args:
        net: the network (its outputs are the ``Y_j`` of the property).
        spec: a :class:`~pyomo_relu.verify.vnnlib.Specification` (``read_vnnlib``).
        time_limit: wall-clock seconds for the whole call; ``"unknown"`` when exceeded.
            Ctrl-C also returns ``"unknown"`` (``reason="interrupted"``).
        bounds: neuron bounds chain for the MILP path (names of
            :data:`pyomo_relu.bounds.chain.METHODS`).
        split: use input splitting for networks with at most ``split_max_inputs`` inputs.
        relu_split: for more inputs, branch on ReLU phases (alpha/beta-CROWN bounds per
            domain) for half the time left before the per-polytope MILPs.
        executor: ``None``, a number of processes or a ``concurrent.futures.Executor``,
            used by the ``lp`` bounds and by the splitting rounds.
        seed: seed of the random starting points of the attack.

    See the module docstring for the method and the soundness rules.
    """
    start = time.perf_counter()
    spec.check_network(net.n_inputs, net.n_outputs)
    ctx = _Context(
        net,
        net.canonical_layers,
        None if time_limit is None else start + float(time_limit),
        bounds,
        split,
        split_max_inputs,
        executor,
        seed,
        relu_split,
    )
    unknown: _CaseOutcome | None = None
    bound = -np.inf
    for index, case in enumerate(spec.cases):
        try:
            outcome = _verify_case(ctx, case)
        except KeyboardInterrupt:  # Ctrl-C: what is known is "unknown", never a guess
            logger.warning("verify interrupted in case %d after %.2f s", index, time.perf_counter() - start)
            return VerifyResult(
                "unknown",
                None,
                None,
                time.perf_counter() - start,
                ctx.subproblems,
                "interrupted",
                "interrupted",
                ctx.details,
            )
        logger.info("case %d: %s (%s) after %.2f s", index, outcome.status, outcome.method, time.perf_counter() - start)
        if outcome.status == "sat":
            return _sat_result(net, spec, outcome, ctx, start)
        bound = max(bound, np.inf if outcome.bound is None else outcome.bound)
        if outcome.status != "unsat" and unknown is None:
            unknown = outcome
    seconds = time.perf_counter() - start
    proven = None if not np.isfinite(bound) else float(bound)
    if unknown is not None:
        return VerifyResult(
            "unknown",
            None,
            proven,
            seconds,
            ctx.subproblems,
            unknown.method,
            unknown.reason or "undecided",
            ctx.details,
        )
    methods = ctx.details.get("methods", [])
    return VerifyResult(
        "unsat",
        None,
        proven if proven is not None else None,
        seconds,
        ctx.subproblems,
        "+".join(sorted(set(methods))) or "bounds",
        "",
        ctx.details,
    )


def _sat_result(
    net: NetworkDefinition, spec: Specification, outcome: _CaseOutcome, ctx: _Context, start: float
) -> VerifyResult:
    assert outcome.x is not None
    check = check_counterexample(net, spec, outcome.x)
    if not check.valid:  # every sat is confirmed before it gets here; never report an unchecked one
        logger.error("a counterexample failed its final check (margin %r); reporting unknown", check.margin)
        return VerifyResult(
            "unknown",
            None,
            None,
            time.perf_counter() - start,
            ctx.subproblems,
            outcome.method,
            "counterexample failed the final check",
            ctx.details,
        )
    ctx.details["margin"] = check.margin
    return VerifyResult(
        "sat",
        (outcome.x.copy(), check.y),
        None,
        time.perf_counter() - start,
        ctx.subproblems,
        outcome.method,
        "",
        ctx.details,
    )


def _verify_case(ctx: _Context, case: Case) -> _CaseOutcome:
    net = ctx.net
    if not case.polytopes:
        return _CaseOutcome("unsat", bound=-np.inf, method="bounds")
    problem = SearchProblem(
        ctx.layers, case.lower, case.upper, None, as_regions(case.polytopes, net.n_inputs, net.n_outputs)
    )
    exact = _exact_margin(net, case)
    crown = _root_bounds(problem)
    ctx.subproblems += 1
    open_, margin_bounds = _open_regions(problem, crown[1])
    if not open_:
        ctx.details.setdefault("methods", []).append("bounds")
        return _CaseOutcome("unsat", bound=float(np.max(margin_bounds)), method="bounds")
    found = _attack(ctx, _only(problem, open_), exact)
    if found is not None:
        return _CaseOutcome("sat", found, method="attack")
    if ctx.expired():
        return _CaseOutcome("unknown", method="attack", reason="time limit")
    if ctx.split and net.n_inputs <= ctx.split_max_inputs:
        return _verify_by_splitting(ctx, problem, exact)
    return _verify_by_milp(ctx, problem, exact, crown)


def _root_bounds(problem: SearchProblem, start: Any = None) -> tuple[Any, np.ndarray, list]:
    """CROWN on the case's box: the batch bounds, each region's margin bound and the row forms."""
    bounds = batch_crown(problem.layers, problem.lower[None], problem.upper[None], start)
    forms, row_lower = linear_bounds(bounds, problem.rows_y, problem.rows_x)
    return bounds, row_lower, forms


def _open_regions(problem: SearchProblem, row_lower: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Regions whose margin bound does not exclude them, and every region's margin bound."""
    margin = problem.reduce_min(problem.rhs - row_lower)[0]
    excluded = problem.reduce_min(problem.rhs - row_lower + safe_margin(problem.rhs))[0] < 0
    return [p for p in range(problem.n_regions) if not excluded[p]], margin


def _only(problem: SearchProblem, regions: Sequence[int]) -> SearchProblem:
    return SearchProblem(
        problem.layers,
        problem.lower,
        problem.upper,
        None,
        tuple(problem.regions[p] for p in regions),
        problem.feasibility_tol,
    )


def _exact_margin(net: NetworkDefinition, case: Case):
    """``X -> max_p margin_p(net.evaluate(x))``: the reference check of every candidate.

    Points outside the case's box get ``-inf``.  A point that passes in the batch is
    evaluated again on its own, as :func:`check_counterexample` will do (a batched and a
    single matrix product may differ in the last bit), and must pass both times.
    """

    def check(points: np.ndarray) -> np.ndarray:
        points = np.atleast_2d(points)
        inside = np.all((points >= case.lower) & (points <= case.upper), axis=1)
        margins = np.where(inside, np.atleast_1d(case.margin(net.evaluate(points))), -np.inf)
        for i in np.flatnonzero(margins >= 0):
            margins[i] = min(margins[i], float(case.margin(net.evaluate(points[i]))))
        return margins

    return check


#: Share of the time limit (at most :data:`ATTACK_SECONDS`) the attack may take before the search.
ATTACK_SHARE = 0.05
ATTACK_SECONDS = 5.0
#: Rounds of the attack (restarts double each round, the step shrinks).
ATTACK_ROUNDS = 4


def _attack(ctx: _Context, problem: SearchProblem, exact: Any) -> np.ndarray | None:
    """PGD with seeded random restarts on every open polytope's margin (:func:`~pyomo_relu.search.attack.pgd`)."""
    left = ctx.left()
    budget = ATTACK_SECONDS if left is None else min(ATTACK_SECONDS, ATTACK_SHARE * left)
    deadline = time.perf_counter() + budget
    return pgd(
        problem, problem.lower, problem.upper, exact, rounds=ATTACK_ROUNDS, restarts=8, seed=ctx.seed, deadline=deadline
    )


#: Seconds given to a MILP on one sub-box during splitting (it is split further on a time-out).
LEAF_TIME_LIMIT = 2.0


def _verify_by_splitting(ctx: _Context, problem: SearchProblem, exact: Any) -> _CaseOutcome:
    """Input-domain branch and bound: a feasibility problem that stops at its first confirmed point."""

    def value(points: np.ndarray) -> np.ndarray:
        return np.where(exact(points) >= 0, 0.0, np.inf)

    result = branch_and_bound(
        problem,
        value,
        stop_at=0.0,
        deadline=ctx.deadline,
        executor=ctx.executor,
        leaf_time_limit=LEAF_TIME_LIMIT,
        attack=False,
        seed=ctx.seed,
    )
    ctx.subproblems += result.nodes + result.leaves
    ctx.details.update(
        boxes=ctx.details.get("boxes", 0) + result.nodes,
        leaf_milps=ctx.details.get("leaf_milps", 0) + result.leaves,
        max_depth=max(ctx.details.get("max_depth", 0), result.max_depth),
    )
    ctx.details.setdefault("methods", []).append("split")
    if result.status == "feasible" and result.x is not None:
        return _CaseOutcome("sat", result.x, method="split")
    if result.status == "infeasible":
        return _CaseOutcome("unsat", bound=result.margin_bound, method="split")
    if result.status == "interrupted":
        raise KeyboardInterrupt
    logger.debug("splitting stopped on %s after %d boxes", result.reason, result.nodes)
    return _CaseOutcome("unknown", method="split", reason=result.reason or "undecided")


def _polytope_milp(
    ctx: _Context,
    pre_lower: Sequence[np.ndarray],
    pre_upper: Sequence[np.ndarray],
    problem: SearchProblem,
    p: int,
    lower: np.ndarray,
    upper: np.ndarray,
    time_limit: float | None,
    exact: Any,
) -> MilpOutcome:
    """One margin MILP; a solver point is ``"sat"`` only once ``exact`` confirms it."""
    milp = NetworkMilp(ctx.layers, pre_lower, pre_upper, lower, upper)
    outcome = milp.maximize_margin(problem.regions[p], time_limit=time_limit, stop_check=exact)
    ctx.subproblems += 1
    ctx.details.setdefault("milp_seconds", 0.0)
    ctx.details["milp_seconds"] += outcome.seconds
    if (
        outcome.status in ("optimal", "time_limit")
        and outcome.x is not None
        and outcome.value is not None
        and outcome.value >= 0
    ):
        repaired = _repair(ctx, _only(problem, [p]), lower, upper, outcome.x, exact)
        if repaired is not None:
            return MilpOutcome("sat", repaired, outcome.value, outcome.bound, outcome.seconds)
    return outcome


def _repair(
    ctx: _Context, problem: SearchProblem, lower: np.ndarray, upper: np.ndarray, x: np.ndarray, exact: Any
) -> np.ndarray | None:
    """The solver says ``t >= 0`` but the exact check disagrees: search around its point."""
    radius = 1e-4 * (upper - lower)
    points = descend(
        problem,
        np.maximum(lower, x - radius),
        np.minimum(upper, x + radius),
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


#: Share of the time left that ReLU branching may take before the MILPs (high-dimensional inputs).
RELU_SPLIT_SHARE = 0.5


def _verify_by_relu_split(
    ctx: _Context, problem: SearchProblem, exact: Any, pre: tuple[list, list]
) -> _CaseOutcome | None:
    """ReLU-phase branch and bound (:mod:`pyomo_relu.search.relu_branch`) for part of the time left.

    A decision (a confirmed point, or every domain excluded) is returned; otherwise ``None``
    and the MILPs take the rest of the time.
    """
    left = ctx.left()
    deadline = None if left is None else time.perf_counter() + RELU_SPLIT_SHARE * left
    result = relu_branch_and_bound(problem, exact, pre, deadline=deadline)
    ctx.subproblems += result.domains
    ctx.details["relu_domains"] = ctx.details.get("relu_domains", 0) + result.domains
    ctx.details.setdefault("methods", []).append("relu-split")
    if result.status == "feasible" and result.x is not None:
        return _CaseOutcome("sat", result.x, method="relu-split")
    if result.status == "infeasible":
        return _CaseOutcome("unsat", bound=result.margin_bound, method="relu-split")
    logger.debug("ReLU branching stopped (%s) after %d domains", result.reason, result.domains)
    return None


#: alpha-CROWN steps on the specification rows at the root of the MILP path.
ROOT_ALPHA_STEPS = 40


def _alpha_root(problem: SearchProblem, bounds: Any, row_lower: np.ndarray, forms: list) -> tuple[np.ndarray, list]:
    """The root's row bounds and forms with alpha-CROWN's (:func:`pyomo_relu.bounds.alpha.optimise_rows`) added."""
    if not (np.all(np.isfinite(problem.lower)) and np.all(np.isfinite(problem.upper))):
        return row_lower, forms
    widths = [layer.n_outputs for layer in problem.layers]
    _, alpha_lower, form = optimise_rows(bounds, widths, problem.rows_y, problem.rows_x, steps=ROOT_ALPHA_STEPS)
    return np.maximum(row_lower, alpha_lower), forms + [form]


def _verify_by_milp(ctx: _Context, problem: SearchProblem, exact: Any, crown: tuple) -> _CaseOutcome:
    net = ctx.net
    bounds, row_lower, forms = crown
    pre = ([a[0] for a in bounds.lower], [a[0] for a in bounds.upper])
    remaining, margins = _open_regions(problem, row_lower)
    ctx.details.setdefault("methods", []).append("bounds")
    if remaining and set(ctx.bounds) - {"interval", "crown"}:
        chain = resolve_bounds_on_box(net, problem.lower, problem.upper, ctx.bounds, ctx.deadline, ctx.executor)
        start = (
            [np.maximum(a, b) for a, b in zip(pre[0], chain[0])],
            [np.minimum(a, b) for a, b in zip(pre[1], chain[1])],
        )
        bounds, row_lower, forms = _root_bounds(problem, start)
        pre = ([a[0] for a in bounds.lower], [a[0] for a in bounds.upper])
        remaining, margins = _open_regions(problem, row_lower)
    if remaining:
        row_lower, forms = _alpha_root(problem, bounds, row_lower, forms)
        remaining, margins = _open_regions(problem, row_lower)
    best = float(np.max(margins)) if margins.size else -np.inf
    if not remaining:
        return _CaseOutcome("unsat", bound=best, method="bounds")
    if ctx.relu_split:
        decided = _verify_by_relu_split(ctx, _only(problem, remaining), exact, pre)
        if decided is not None:
            return decided
    ctx.details["milp_polytopes"] = ctx.details.get("milp_polytopes", 0) + len(remaining)
    ctx.details["methods"].append("milp")
    proven = [margins[p] for p in range(problem.n_regions) if p not in remaining]
    undecided: str | None = None
    for p in sorted(remaining, key=lambda q: -margins[q]):
        left = ctx.left()
        if left is not None and left <= 0:
            return _CaseOutcome("unknown", method="milp", reason="time limit")
        single = _only(problem, [p])
        rows = problem.region_rows(p)
        lower, upper, empty = shrink_box(
            [(coef[:, rows], const[:, rows]) for coef, const in forms], single, problem.lower[None], problem.upper[None]
        )
        if empty[0]:  # the input cut leaves nothing: the margin is negative
            proven.append(-2 * SAFE_MARGIN)
            continue
        outcome = _polytope_milp(ctx, pre[0], pre[1], problem, p, lower[0], upper[0], left, exact)
        if outcome.status == "sat":
            return _CaseOutcome("sat", outcome.x, method="milp")
        if outcome.status == "infeasible":
            proven.append(outcome.bound if outcome.bound is not None else -UNSAT_TOLERANCE)
            continue
        if (
            outcome.status == "optimal"
            and outcome.bound is not None
            and outcome.bound + LEAF_TOLERANCE * max(1.0, abs(outcome.bound)) < -UNSAT_TOLERANCE
        ):
            proven.append(outcome.bound)
            continue
        undecided = (
            "time limit"
            if outcome.status == "time_limit" or ctx.expired()
            else f"MILP ended {outcome.status} with t = {outcome.value}"
        )
        if ctx.expired():
            break
    if undecided is not None:
        return _CaseOutcome("unknown", method="milp", reason=undecided)
    return _CaseOutcome("unsat", bound=float(max(proven)) if proven else -np.inf, method="milp")
