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
:mod:`pyomo_relu.formulations.bigm` (the rows of :func:`pyomo_relu.bounds.obbt.build_lp`:
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
1. **Attack**: sign-gradient ascent on the margin (:func:`.adversary.pgd_attack`).
2. **Bounds** on the case's box: CROWN with the specification rows back-substituted
   (:func:`.split.box_bounds`); polytopes whose margin bound is negative are dropped and
   the box is shrunk to the part that can still be unsafe (:func:`.split.shrink_box`).
3. Low-dimensional inputs (at most ``split_max_inputs``, e.g. ACAS Xu): **input splitting**
   (:func:`.split.split_verify`) with MILPs on sub-boxes that have few unstable neurons.
4. Otherwise the requested bounds chain (``interval``, ``crown``, ``lp``, ... as registered
   in :data:`pyomo_relu.bounds.chain.METHODS`; unknown or failing methods are skipped with
   a warning) tightens the neurons over the box, the bound test is repeated, and the
   remaining polytopes go to the MILP.

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
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from pyomo_relu.errors import SolverError
from pyomo_relu.network import NetworkDefinition
from pyomo_relu.verify.adversary import pgd_attack
from pyomo_relu.verify.split import (
    SAFE_MARGIN, LeafOutcome, SpecRows, box_bounds, layer_arrays, shrink_box, split_verify,
)
from pyomo_relu.verify.vnnlib import Case, Polytope, Specification

logger = logging.getLogger(__name__)

__all__ = [
    "CounterexampleCheck", "MarginMilp", "MilpOutcome", "VerifyResult", "check_counterexample", "verify",
]

#: A MILP proves a polytope unreachable when it shows ``t* <= -UNSAT_TOLERANCE``.
UNSAT_TOLERANCE = 1e-6
#: Feasibility tolerances given to HiGHS.
SOLVER_TOLERANCE = 1e-9
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
            "status": self.status, "counterexample": counterexample,
            "proven_bound": self.proven_bound, "seconds": round(self.seconds, 4),
            "subproblems": self.subproblems, "method": self.method, "reason": self.reason,
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
    net: NetworkDefinition, spec: Specification, x: Sequence[float], *,
    input_tol: float = 0.0, output_tol: float = 0.0,
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


# ---------------------------------------------------------------------- MILP
@dataclass
class MilpOutcome:
    """What one margin MILP gave.

    ``status``: ``"sat"`` (``x`` is confirmed by the check), ``"infeasible"`` (no ``t`` above
    the cutoff: ``bound`` is the cutoff), ``"optimal"``, ``"time_limit"`` or ``"error"``.
    ``value`` is the solver's best ``t``; ``bound`` a proven upper bound of ``t*``.
    """

    status: str
    x: np.ndarray | None = None
    value: float | None = None
    bound: float | None = None
    seconds: float = 0.0


class MarginMilp:
    """The big-M MILP of a network over a box, as a HiGHS model (see the module docstring).

    ``pre_lower``/``pre_upper`` are pre-activation bounds of every canonical layer valid on
    the box ``[lower, upper]``.
    """

    def __init__(
        self, net: NetworkDefinition, pre_lower: Sequence[np.ndarray], pre_upper: Sequence[np.ndarray],
        lower: np.ndarray, upper: np.ndarray,
    ) -> None:
        import highspy

        from pyomo_relu.bounds.rows import build_lp

        layers = net.canonical_layers
        self.layers = layer_arrays(net)
        lp, columns = build_lp(layers, list(pre_lower), list(pre_upper), np.asarray(lower, float),
                               np.asarray(upper, float), len(layers), True)
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.x_cols, self.y_cols = columns[0], columns[-1]
        self.y_lower, self.y_upper = layers[-1].output_bounds(pre_lower[-1], pre_upper[-1])
        model = highspy.HighsLp()
        model.num_col_, model.num_row_ = lp.n_cols, lp.n_rows
        model.col_cost_ = np.zeros(lp.n_cols)
        model.col_lower_, model.col_upper_ = lp.col_lower, lp.col_upper
        model.row_lower_, model.row_upper_ = lp.row_lower, lp.row_upper
        model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        model.a_matrix_.start_, model.a_matrix_.index_, model.a_matrix_.value_ = lp.start, lp.index, lp.value
        if lp.integer.size:
            kinds = np.full(lp.n_cols, highspy.HighsVarType.kContinuous)
            kinds[lp.integer] = highspy.HighsVarType.kInteger
            model.integrality_ = list(kinds)
        self.highs = highspy.Highs()
        for key, value in {"output_flag": False, "primal_feasibility_tolerance": SOLVER_TOLERANCE,
                           "mip_feasibility_tolerance": SOLVER_TOLERANCE, "threads": 1}.items():
            self.highs.setOptionValue(key, value)
        if self.highs.passModel(model) != highspy.HighsStatus.kOk:
            raise SolverError("HiGHS rejected the verification MILP")
        self.n_binaries = int(lp.integer.size)

    # ------------------------------------------------------------- building
    def _add_col(self, cost: float, lower: float, upper: float) -> int:
        self.highs.addCol(cost, lower, upper, 0, np.zeros(0, np.int32), np.zeros(0))
        return self.highs.getNumCol() - 1

    def _add_row(self, lower: float, upper: float, cols: Sequence[int], values: Sequence[float]) -> None:
        cols_arr = np.asarray(cols, dtype=np.int32)
        self.highs.addRow(lower, upper, cols_arr.size, cols_arr, np.asarray(values, dtype=float))

    def _output_terms(self, row: np.ndarray) -> tuple[list[int], list[float]]:
        """Columns and coefficients of ``row·y``; outputs fixed at zero are dropped."""
        cols, values = [], []
        for j, coefficient in enumerate(row):
            if coefficient != 0 and self.y_cols[j] >= 0:
                cols.append(int(self.y_cols[j]))
                values.append(float(coefficient))
        return cols, values

    def add_l1_ball(self, x0: np.ndarray, eps: float) -> None:
        """``sum_i |x_i - x0_i| <= eps`` with ``d_i >= ±(x_i - x0_i)``."""
        d_cols = []
        for i, col in enumerate(self.x_cols):
            d = self._add_col(0.0, 0.0, np.inf)
            self._add_row(-x0[i], np.inf, [d, int(col)], [1.0, -1.0])   # d - x >= -x0
            self._add_row(x0[i], np.inf, [d, int(col)], [1.0, 1.0])     # d + x >= x0
            d_cols.append(d)
        self._add_row(-np.inf, float(eps), d_cols, [1.0] * len(d_cols))

    # -------------------------------------------------------------- solving
    def maximize_margin(
        self, polytope: Polytope, *, cutoff: float | None = -UNSAT_TOLERANCE,
        time_limit: float | None = None, stop_check: Any = None, gap: float | None = None,
    ) -> MilpOutcome:
        """``max t`` s.t. ``A_i y + t <= b_i``; only ``t > cutoff`` is searched (``None``: all).

        Call it once per instance (it adds ``t`` and the polytope's rows to the model).

        ``stop_check(x)`` returns the exact margin at ``x``; the solve stops at the first
        incumbent it confirms (``>= 0``), with status ``"sat"``.  ``gap`` sets HiGHS' relative
        and absolute MIP gaps (its defaults otherwise).
        """
        import highspy

        start = time.perf_counter()
        # Without rows every output is unsafe: t <= 0 makes any feasible point a solution.
        t_upper = _margin_upper(polytope, self.y_lower, self.y_upper) if polytope.n_rows else 0.0
        t_col = self._add_col(1.0, -np.inf, t_upper)
        for i in range(polytope.n_rows):
            cols, values = self._output_terms(polytope.A[i])
            self._add_row(-np.inf, float(polytope.b[i]), cols + [t_col], values + [1.0])
        highs = self.highs
        highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
        highs.setOptionValue("objective_bound", np.inf if cutoff is None else -float(cutoff))
        highs.setOptionValue("time_limit", float(max(time_limit, 1e-3)) if time_limit is not None else np.inf)
        if gap is not None:
            highs.setOptionValue("mip_rel_gap", float(gap))
            highs.setOptionValue("mip_abs_gap", float(gap))
        found: list[np.ndarray] = []
        if stop_check is not None:
            self._watch(stop_check, found)
        highs.run()
        return self._outcome(found, cutoff, t_col, time.perf_counter() - start)

    def _watch(self, stop_check: Any, found: list[np.ndarray]) -> None:
        x_cols = self.x_cols

        def on_solution(event: Any) -> None:
            solution = np.asarray(event.data_out.mip_solution, float)
            if found or solution.size <= x_cols.max():
                return
            x = np.clip(solution[x_cols], self.lower, self.upper)
            if float(stop_check(x[None, :])[0]) >= 0:
                found.append(x)

        def on_interrupt(event: Any) -> None:
            if found:
                event.interrupt()

        self.highs.cbMipImprovingSolution.subscribe(on_solution)
        self.highs.cbMipInterrupt.subscribe(on_interrupt)

    def _outcome(self, found: list[np.ndarray], cutoff: float | None, t_col: int, seconds: float) -> MilpOutcome:
        import highspy

        highs = self.highs
        status = highs.getModelStatus()
        info = highs.getInfo()
        bound = _finite(info.mip_dual_bound)
        value = _finite(info.objective_function_value)
        x = None
        if value is not None:  # the solver holds a feasible point
            solution = np.asarray(highs.getSolution().col_value, float)
            if solution.size > t_col:
                x = np.clip(solution[self.x_cols], self.lower, self.upper)
        if found:
            return MilpOutcome("sat", found[0], value, bound, seconds)
        S = highspy.HighsModelStatus
        if status == S.kInfeasible:
            return MilpOutcome("infeasible", None, None, None if cutoff is None else cutoff, seconds)
        if status == S.kOptimal:
            return MilpOutcome("optimal", x, value, bound if bound is not None else value, seconds)
        if status in (S.kTimeLimit, S.kInterrupt, S.kSolutionLimit, S.kIterationLimit, S.kObjectiveBound):
            return MilpOutcome("time_limit", x, value, bound, seconds)
        logger.warning("HiGHS ended the verification MILP with status %s", highs.modelStatusToString(status))
        return MilpOutcome("error", x, value, None, seconds)


def _margin_upper(polytope: Polytope, y_lower: np.ndarray, y_upper: np.ndarray) -> float:
    """``min_i (b_i - min_y A_i y)`` over the output box: a valid upper bound of ``t``."""
    if polytope.n_rows == 0:
        return np.inf
    positive = np.maximum(polytope.A, 0.0)
    least = positive @ y_lower + (polytope.A - positive) @ y_upper
    return float(np.min(polytope.b - least))


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and abs(number) < 1e30 else None


# ------------------------------------------------------------------- bounds
def resolve_bounds_on_box(
    net: NetworkDefinition, lower: np.ndarray, upper: np.ndarray, methods: Sequence[str] | str,
    deadline: float | None, executor: Executor | int | None = None,
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


def _call_method(method: Any, net: NetworkDefinition, lower: np.ndarray, upper: np.ndarray, start: Any,
                 options: dict[str, Any]) -> Any:
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
) -> VerifyResult:
    """Decide the property ``spec`` for ``net``: ``"sat"``, ``"unsat"`` or ``"unknown"``.

    Args:
        net: the network (its outputs are the ``Y_j`` of the property).
        spec: a :class:`~pyomo_relu.verify.vnnlib.Specification` (``read_vnnlib``).
        time_limit: wall-clock seconds for the whole call; ``"unknown"`` when exceeded.
        bounds: neuron bounds chain for the MILP path (names of
            :data:`pyomo_relu.bounds.chain.METHODS`).
        split: use input splitting for networks with at most ``split_max_inputs`` inputs.
        executor: ``None``, a number of processes or a ``concurrent.futures.Executor``,
            used by the ``lp`` bounds and by the splitting rounds.
        seed: seed of the random starting points of the attack.

    See the module docstring for the method and the soundness rules.
    """
    start = time.perf_counter()
    spec.check_network(net.n_inputs, net.n_outputs)
    ctx = _Context(net, layer_arrays(net), None if time_limit is None else start + float(time_limit),
                   bounds, split, split_max_inputs, executor, seed)
    unknown: _CaseOutcome | None = None
    bound = -np.inf
    for index, case in enumerate(spec.cases):
        outcome = _verify_case(ctx, case)
        logger.info("case %d: %s (%s) after %.2f s", index, outcome.status, outcome.method, time.perf_counter() - start)
        if outcome.status == "sat":
            return _sat_result(net, spec, outcome, ctx, start)
        bound = max(bound, np.inf if outcome.bound is None else outcome.bound)
        if outcome.status != "unsat" and unknown is None:
            unknown = outcome
    seconds = time.perf_counter() - start
    proven = None if not np.isfinite(bound) else float(bound)
    if unknown is not None:
        return VerifyResult("unknown", None, proven, seconds, ctx.subproblems, unknown.method,
                            unknown.reason or "undecided", ctx.details)
    methods = ctx.details.get("methods", [])
    return VerifyResult("unsat", None, proven if proven is not None else None, seconds, ctx.subproblems,
                        "+".join(sorted(set(methods))) or "bounds", "", ctx.details)


def _sat_result(net: NetworkDefinition, spec: Specification, outcome: _CaseOutcome, ctx: _Context,
                start: float) -> VerifyResult:
    assert outcome.x is not None
    check = check_counterexample(net, spec, outcome.x)
    if not check.valid:  # every sat is confirmed before it gets here; never report an unchecked one
        logger.error("a counterexample failed its final check (margin %r); reporting unknown", check.margin)
        return VerifyResult("unknown", None, None, time.perf_counter() - start, ctx.subproblems,
                            outcome.method, "counterexample failed the final check", ctx.details)
    ctx.details["margin"] = check.margin
    return VerifyResult("sat", (outcome.x.copy(), check.y), None, time.perf_counter() - start,
                        ctx.subproblems, outcome.method, "", ctx.details)


def _verify_case(ctx: _Context, case: Case) -> _CaseOutcome:
    net = ctx.net
    spec = SpecRows.of(case.polytopes, net.n_outputs)
    if spec.n_polytopes == 0:
        return _CaseOutcome("unsat", bound=-np.inf, method="bounds")
    exact = _exact_margin(net, case)
    crown = box_bounds(ctx.layers, case.lower[None], case.upper[None], spec.C)
    ctx.subproblems += 1
    open_, margin_bounds = _open_polytopes(spec, crown)
    if not open_:
        ctx.details.setdefault("methods", []).append("bounds")
        return _CaseOutcome("unsat", bound=float(np.max(margin_bounds)), method="bounds")
    found = _attack(ctx, SpecRows.of([case.polytopes[p] for p in open_], net.n_outputs), case, exact)
    if found is not None:
        return _CaseOutcome("sat", found, method="attack")
    if ctx.expired():
        return _CaseOutcome("unknown", method="attack", reason="time limit")
    if ctx.split and net.n_inputs <= ctx.split_max_inputs:
        return _verify_by_splitting(ctx, case, spec, exact)
    return _verify_by_milp(ctx, case, spec, exact, crown)


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


def _attack(ctx: _Context, spec: SpecRows, case: Case, exact: Any) -> np.ndarray | None:
    points, margins = pgd_attack(ctx.layers, spec, case.lower, case.upper, seed=ctx.seed, deadline=ctx.deadline)
    promising = points[margins >= -1e-6][:16]
    if promising.size:
        confirmed = exact(promising)
        good = np.flatnonzero(confirmed >= 0)
        if good.size:
            return promising[good[np.argmax(confirmed[good])]]
    return None


def _verify_by_splitting(ctx: _Context, case: Case, spec: SpecRows, exact: Any) -> _CaseOutcome:
    net = ctx.net

    def leaf(lower: np.ndarray, upper: np.ndarray, start: tuple, left: float) -> LeafOutcome:
        return _leaf_milp(ctx, case, lower, upper, start, min(left, LEAF_TIME_LIMIT), exact)

    result = split_verify(ctx.layers, spec, case.lower, case.upper, exact, deadline=ctx.deadline,
                          leaf_solver=leaf, executor=ctx.executor)
    ctx.subproblems += result.boxes + result.leaves
    ctx.details.update(boxes=ctx.details.get("boxes", 0) + result.boxes,
                       leaf_milps=ctx.details.get("leaf_milps", 0) + result.leaves,
                       max_depth=max(ctx.details.get("max_depth", 0), result.max_depth))
    ctx.details.setdefault("methods", []).append("split")
    if result.status == "sat" and result.x is not None:
        return _CaseOutcome("sat", result.x, method="split")
    if result.status == "unsat":
        return _CaseOutcome("unsat", bound=result.bound, method="split")
    logger.debug("splitting stopped on %s after %d boxes", result.reason, result.boxes)
    return _CaseOutcome("unknown", method="split", reason=result.reason or "undecided")


#: Seconds given to a MILP on one sub-box during splitting (it is split further on a time-out).
LEAF_TIME_LIMIT = 2.0


def _leaf_milp(ctx: _Context, case: Case, lower: np.ndarray, upper: np.ndarray, start: tuple,
               left: float, exact: Any) -> LeafOutcome:
    bound = -np.inf
    for polytope in case.polytopes:
        outcome = _polytope_milp(ctx, start[0], start[1], lower, upper, polytope, left, exact)
        if outcome.status == "sat":
            return LeafOutcome("sat", outcome.x)
        if outcome.status != "infeasible":
            return LeafOutcome("unknown")
        bound = max(bound, outcome.bound if outcome.bound is not None else -UNSAT_TOLERANCE)
    return LeafOutcome("unsat", bound=bound)


def _polytope_milp(ctx: _Context, pre_lower: Sequence[np.ndarray], pre_upper: Sequence[np.ndarray],
                   lower: np.ndarray, upper: np.ndarray, polytope: Polytope, time_limit: float | None,
                   exact: Any) -> MilpOutcome:
    """One margin MILP; a solver point is ``"sat"`` only once ``exact`` confirms it."""
    milp = MarginMilp(ctx.net, pre_lower, pre_upper, lower, upper)
    outcome = milp.maximize_margin(polytope, time_limit=time_limit, stop_check=exact)
    ctx.subproblems += 1
    ctx.details.setdefault("milp_seconds", 0.0)
    ctx.details["milp_seconds"] += outcome.seconds
    if outcome.status in ("optimal", "time_limit") and outcome.x is not None and outcome.value is not None \
            and outcome.value >= 0:
        repaired = _repair(ctx, polytope, lower, upper, outcome.x, exact)
        if repaired is not None:
            return MilpOutcome("sat", repaired, outcome.value, outcome.bound, outcome.seconds)
    return outcome


def _repair(ctx: _Context, polytope: Polytope, lower: np.ndarray, upper: np.ndarray, x: np.ndarray,
            exact: Any) -> np.ndarray | None:
    """The solver says ``t >= 0`` but the exact check disagrees: search around its point."""
    spec = SpecRows.of([polytope], ctx.net.n_outputs)
    radius = 1e-4 * (upper - lower)
    points, _ = pgd_attack(ctx.layers, spec, np.maximum(lower, x - radius), np.minimum(upper, x + radius),
                           seed=ctx.seed, steps=60)
    confirmed = exact(np.vstack([x[None, :], points]))
    good = np.flatnonzero(confirmed >= 0)
    if good.size:
        return np.vstack([x[None, :], points])[good[0]]
    logger.info("MILP point with t >= 0 not confirmed by the forward pass (margin %.3g)", confirmed[0])
    return None


def _verify_by_milp(ctx: _Context, case: Case, spec: SpecRows, exact: Any, crown: Any) -> _CaseOutcome:
    net = ctx.net
    pre = ([a[0] for a in crown.lower], [a[0] for a in crown.upper])
    remaining, bounds = _open_polytopes(spec, crown)
    ctx.details.setdefault("methods", []).append("bounds")
    if remaining and set(ctx.bounds) - {"interval", "crown"}:
        chain = resolve_bounds_on_box(net, case.lower, case.upper, ctx.bounds, ctx.deadline, ctx.executor)
        pre = ([np.maximum(a, b) for a, b in zip(pre[0], chain[0])], [np.minimum(a, b) for a, b in zip(pre[1], chain[1])])
        crown = box_bounds(ctx.layers, case.lower[None], case.upper[None], spec.C, ([a[None] for a in pre[0]], [a[None] for a in pre[1]]))
        pre = ([a[0] for a in crown.lower], [a[0] for a in crown.upper])
        remaining, bounds = _open_polytopes(spec, crown)
    best = float(np.max(bounds)) if bounds.size else -np.inf
    if not remaining:
        return _CaseOutcome("unsat", bound=best, method="bounds")
    ctx.details["milp_polytopes"] = ctx.details.get("milp_polytopes", 0) + len(remaining)
    ctx.details["methods"].append("milp")
    proven = [bounds[p] for p in range(spec.n_polytopes) if p not in remaining]
    undecided: str | None = None
    for p in sorted(remaining, key=lambda q: -bounds[q]):
        left = ctx.left()
        if left is not None and left <= 0:
            return _CaseOutcome("unknown", method="milp", reason="time limit")
        mine = spec.owner == p
        lower, upper, empty = shrink_box([(coef[:, mine], const[:, mine]) for coef, const in crown.forms],
                                         SpecRows.of([case.polytopes[p]], net.n_outputs),
                                         case.lower[None], case.upper[None])
        if empty[0]:  # the input cut leaves nothing: the margin is negative
            proven.append(-2 * SAFE_MARGIN)
            continue
        outcome = _polytope_milp(ctx, pre[0], pre[1], lower[0], upper[0], case.polytopes[p], left, exact)
        if outcome.status == "sat":
            return _CaseOutcome("sat", outcome.x, method="milp")
        if outcome.status == "infeasible":
            proven.append(outcome.bound if outcome.bound is not None else -UNSAT_TOLERANCE)
            continue
        if outcome.status == "optimal" and outcome.bound is not None and outcome.bound < -UNSAT_TOLERANCE:
            proven.append(outcome.bound)
            continue
        undecided = "time limit" if outcome.status == "time_limit" or ctx.expired() else \
            f"MILP ended {outcome.status} with t = {outcome.value}"
        if ctx.expired():
            break
    if undecided is not None:
        return _CaseOutcome("unknown", method="milp", reason=undecided)
    return _CaseOutcome("unsat", bound=float(max(proven)) if proven else -np.inf, method="milp")


def _open_polytopes(spec: SpecRows, crown: Any) -> tuple[list[int], np.ndarray]:
    """Polytopes whose margin bound does not exclude them, and every polytope's margin bound."""
    bounds = spec.reduce_min(spec.d - crown.row_lower)[0]
    return [p for p in range(spec.n_polytopes) if bounds[p] >= -SAFE_MARGIN], bounds
