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

    \max\; t \quad \text{s.t.}\quad A_i y + t \le b_i \;\; \forall i, \qquad
    y = f(x) \text{ (big-M)}, \quad l \le x \le u .

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
   (:mod:`pyomo_relu.search.relu_branch`, alpha/beta-CROWN per domain) gets a quarter of the time
   left, and the polytopes it leaves open (it proves the others on the whole box) go to
   the MILPs of :mod:`pyomo_relu.verify.milp_route`, in parallel on the executor's workers.

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

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np

from pyomo_relu.network import NetworkDefinition
from pyomo_relu.options import strict_keywords
from pyomo_relu.search.attack import pgd
from pyomo_relu.search.engine import branch_and_bound
from pyomo_relu.search.leaf import MilpOutcome
from pyomo_relu.search.problem import SearchProblem, as_regions
from pyomo_relu.verify.context import CaseOutcome, VerifyContext, only_regions, open_regions, root_bounds
from pyomo_relu.verify.milp_route import resolve_bounds_on_box, verify_by_milp
from pyomo_relu.verify.results import CounterexampleCheck, ExactMargin, VerifyResult, check_counterexample
from pyomo_relu.verify.vnnlib import Case, Specification

logger = logging.getLogger(__name__)

__all__ = [
    "CounterexampleCheck",
    "MilpOutcome",
    "VerifyResult",
    "check_counterexample",
    "resolve_bounds_on_box",
    "verify",
]

#: Inputs up to this many are verified by input splitting (``split=True``).
SPLIT_MAX_INPUTS = 16
#: Share of the time limit (at most :data:`ATTACK_SECONDS`) the attack may take before the search.
ATTACK_SHARE = 0.05
ATTACK_SECONDS = 5.0
#: Rounds of the attack (restarts double each round, the step shrinks).
ATTACK_ROUNDS = 4
#: Seconds given to a MILP on one sub-box during splitting (it is split further on a time-out).
LEAF_TIME_LIMIT = 2.0


@strict_keywords
def verify(
    net: NetworkDefinition,
    spec: Specification,
    time_limit: float | None = None,
    *,
    bounds: Sequence[str] | str = ("interval", "crown", "alpha-crown"),
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
            The step running at the deadline finishes first: measured past the limit, at most
            0.14 s on networks up to 4 M weights (``benchmarks/RESULTS.md``, "Scale: time limits").
            Ctrl-C also returns ``"unknown"`` (``reason="interrupted"``).
        bounds: neuron bounds chain for the MILP path (names of
            :data:`pyomo_relu.bounds.chain.METHODS`).  alpha-CROWN by default: on the MNIST
            boxes it leaves as few unstable neurons as LP tightening in a fraction of the time
            (``benchmarks/vnncomp_bounds.py``).
        split: use input splitting for networks with at most ``split_max_inputs`` inputs.
        relu_split: for more inputs, branch on ReLU phases (alpha/beta-CROWN bounds per
            domain) for a share of the time left before the per-polytope MILPs.
        executor: ``None``, a number of processes or a ``concurrent.futures.Executor``,
            used by the ``lp`` bounds, the splitting rounds and the per-polytope MILPs.
        seed: seed of the random starting points of the attack.

    See the module docstring for the method and the soundness rules.
    """
    start = time.perf_counter()
    spec.check_network(net.n_inputs, net.n_outputs)
    deadline = None if time_limit is None else start + float(time_limit)
    chain = (bounds,) if isinstance(bounds, str) else tuple(bounds)
    ctx = VerifyContext(net, net.canonical_layers, deadline, chain, split, split_max_inputs, executor, seed, relu_split)
    outcomes: list[CaseOutcome] = []
    for index, case in enumerate(spec.cases):
        try:
            outcome = _verify_case(ctx, case)
        except KeyboardInterrupt:  # Ctrl-C: what is known is "unknown", never a guess
            logger.warning("verify interrupted in case %d after %.2f s", index, time.perf_counter() - start)
            return _result(ctx, start, "unknown", method="interrupted", reason="interrupted")
        logger.info("case %d: %s (%s) after %.2f s", index, outcome.status, outcome.method, time.perf_counter() - start)
        if outcome.status == "sat":
            return _sat_result(net, spec, outcome, ctx, start)
        outcomes.append(outcome)
    return _verdict(ctx, start, outcomes)


def _result(ctx: VerifyContext, start: float, status: str, **fields: object) -> VerifyResult:
    """A :class:`VerifyResult` with the call's time, counters and details."""
    result = VerifyResult(status, seconds=time.perf_counter() - start, subproblems=ctx.subproblems, details=ctx.details)
    for name, value in fields.items():
        setattr(result, name, value)
    return result


def _verdict(ctx: VerifyContext, start: float, outcomes: list[CaseOutcome]) -> VerifyResult:
    """``unsat`` if every case is, else ``unknown`` with the first undecided case's reason."""
    bound = max((np.inf if o.bound is None else o.bound for o in outcomes), default=-np.inf)
    proven = None if not np.isfinite(bound) else float(bound)
    unknown = next((o for o in outcomes if o.status != "unsat"), None)
    if unknown is not None:
        return _result(
            ctx, start, "unknown", proven_bound=proven, method=unknown.method, reason=unknown.reason or "undecided"
        )
    methods = ctx.details.get("methods", [])
    return _result(ctx, start, "unsat", proven_bound=proven, method="+".join(sorted(set(methods))) or "bounds")


def _sat_result(
    net: NetworkDefinition, spec: Specification, outcome: CaseOutcome, ctx: VerifyContext, start: float
) -> VerifyResult:
    """``sat`` with the counterexample, after the final check by the forward pass (else ``unknown``)."""
    assert outcome.x is not None
    check = check_counterexample(net, spec, outcome.x)
    if not check.valid:  # every sat is confirmed before it gets here; never report an unchecked one
        logger.error("a counterexample failed its final check (margin %r); reporting unknown", check.margin)
        return _result(ctx, start, "unknown", method=outcome.method, reason="counterexample failed the final check")
    ctx.details["margin"] = check.margin
    return _result(ctx, start, "sat", counterexample=(outcome.x.copy(), check.y), method=outcome.method)


def _verify_case(ctx: VerifyContext, case: Case) -> CaseOutcome:
    """Bounds, attack, then input splitting (few inputs) or the MILP route (many)."""
    net = ctx.net
    if not case.polytopes:
        return CaseOutcome("unsat", bound=-np.inf, method="bounds")
    problem = SearchProblem(
        ctx.layers, case.lower, case.upper, None, as_regions(case.polytopes, net.n_inputs, net.n_outputs)
    )
    exact = ExactMargin(net, case)
    root = root_bounds(problem)
    ctx.subproblems += 1
    open_, margin_bounds = open_regions(problem, root.row_lower)
    if not open_:
        ctx.used("bounds")
        return CaseOutcome("unsat", bound=float(np.max(margin_bounds)), method="bounds")
    found = _attack(ctx, only_regions(problem, open_), exact)
    if found is not None:
        return CaseOutcome("sat", found, method="attack")
    if ctx.expired():
        return CaseOutcome("unknown", method="attack", reason="time limit")
    if ctx.split and net.n_inputs <= ctx.split_max_inputs:
        return _verify_by_splitting(ctx, problem, exact)
    return verify_by_milp(ctx, problem, exact, root)


def _attack(ctx: VerifyContext, problem: SearchProblem, exact: ExactMargin) -> np.ndarray | None:
    """PGD with seeded random restarts on every open polytope's margin (:func:`~pyomo_relu.search.attack.pgd`)."""
    left = ctx.left()
    budget = ATTACK_SECONDS if left is None else min(ATTACK_SECONDS, ATTACK_SHARE * left)
    deadline = time.perf_counter() + budget
    return pgd(
        problem, problem.lower, problem.upper, exact, rounds=ATTACK_ROUNDS, restarts=8, seed=ctx.seed, deadline=deadline
    )


def _verify_by_splitting(ctx: VerifyContext, problem: SearchProblem, exact: ExactMargin) -> CaseOutcome:
    """Input-domain branch and bound: a feasibility problem that stops at its first confirmed point."""
    result = branch_and_bound(
        problem,
        exact.feasibility,
        stop_at=0.0,
        deadline=ctx.deadline,
        executor=ctx.executor,
        leaf_time_limit=LEAF_TIME_LIMIT,
        attack=False,
        seed=ctx.seed,
    )
    ctx.subproblems += result.nodes + result.leaves
    ctx.count("boxes", result.nodes)
    ctx.count("leaf_milps", result.leaves)
    ctx.details["max_depth"] = max(ctx.details.get("max_depth", 0), result.max_depth)
    ctx.used("split")
    if result.status == "feasible" and result.x is not None:
        return CaseOutcome("sat", result.x, method="split")
    if result.status == "infeasible":
        return CaseOutcome("unsat", bound=result.margin_bound, method="split")
    if result.status == "interrupted":
        raise KeyboardInterrupt
    logger.debug("splitting stopped on %s after %d boxes", result.reason, result.nodes)
    return CaseOutcome("unknown", method="split", reason=result.reason or "undecided")
