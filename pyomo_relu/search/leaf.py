r"""Exact MILPs of a network over a box: the engine's leaves and the verifier's margin MILPs.

:class:`NetworkMilp` writes the big-M MILP of the canonical layers over a box straight into
HiGHS from the package's one row builder (:func:`pyomo_relu.bounds.rows.build_lp`: no binary
for a neuron the box's bounds prove stable), then adds one of two objectives:

* :meth:`NetworkMilp.minimize`: ``min c_y·y + c_x·x`` subject to a region
  ``A_y y + A_x x <= b``, with HiGHS' ``objective_bound`` set to a cutoff, so nodes that
  cannot beat the incumbent are pruned at once and "infeasible" proves that nothing in the
  box does;
* :meth:`NetworkMilp.maximize_margin`: ``max t`` s.t. ``A_i y + A^x_i x + t <= b_i`` (the
  margin of a region), searched only above a cutoff; with ``stop_check`` the solve stops at
  the first incumbent the exact check confirms (a counterexample).

:func:`solve_leaf` is the engine's leaf: a pure function of plain data (it runs in worker
processes) that decides a box of a :class:`~pyomo_relu.search.problem.SearchProblem`.
Dual bounds are widened by :data:`LEAF_TOLERANCE` relative before they are used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyomo_relu.bounds.rows import HIGHS_TIME_LIMIT_OPTIONS, TRUSTED_BIG_M_ERROR, build_lp, highs_model, largest_big_m
from pyomo_relu.errors import SolverError
from pyomo_relu.network import Layer
from pyomo_relu.search.problem import LinearConstraints, SearchProblem

logger = logging.getLogger(__name__)

__all__ = ["LEAF_TOLERANCE", "LeafOutcome", "MilpOutcome", "NetworkMilp", "UNSAT_TOLERANCE", "solve_leaf"]

#: A margin MILP proves a region unreachable when it shows ``t* <= -UNSAT_TOLERANCE``.
UNSAT_TOLERANCE = 1e-6
#: Feasibility tolerances given to HiGHS.
SOLVER_TOLERANCE = 1e-9
#: Relative widening of a MILP's dual bound before the engine relies on it.
LEAF_TOLERANCE = 1e-9


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and abs(number) < 1e30 else None


@dataclass
class MilpOutcome:
    """What one MILP gave.

    ``status``: ``"sat"`` (``x`` confirmed by the check), ``"infeasible"`` (nothing beats the
    cutoff: ``bound`` is the cutoff), ``"optimal"``, ``"time_limit"`` or ``"error"``.
    ``value`` is the solver's best objective; ``bound`` a proven bound of the optimum (upper
    for :meth:`NetworkMilp.maximize_margin`, lower for :meth:`NetworkMilp.minimize`).
    """

    status: str
    x: np.ndarray | None = None
    value: float | None = None
    bound: float | None = None
    seconds: float = 0.0


class NetworkMilp:
    """The big-M MILP of canonical ``layers`` over the box ``[lower, upper]``, as a HiGHS model.

    ``pre_lower``/``pre_upper`` are pre-activation bounds of every layer valid on the box.
    Call one of the solve methods once per instance (each adds its objective's rows).
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        pre_lower: Sequence[np.ndarray],
        pre_upper: Sequence[np.ndarray],
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> None:
        import highspy

        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        lp, columns = build_lp(layers, list(pre_lower), list(pre_upper), self.lower, self.upper, len(layers), True)
        self.x_cols, self.y_cols = np.asarray(columns[0]), np.asarray(columns[-1])
        self.y_lower, self.y_upper = layers[-1].output_bounds(np.asarray(pre_lower[-1]), np.asarray(pre_upper[-1]))
        self.highs = highspy.Highs()
        for key, value in {
            "output_flag": False,
            "primal_feasibility_tolerance": SOLVER_TOLERANCE,
            "mip_feasibility_tolerance": SOLVER_TOLERANCE,
            "threads": 1,
            **HIGHS_TIME_LIMIT_OPTIONS,
        }.items():
            self.highs.setOptionValue(key, value)
        if self.highs.passModel(highs_model(lp, True)) != highspy.HighsStatus.kOk:
            raise SolverError("HiGHS rejected the network MILP")
        self.n_binaries = int(lp.integer.size)

    # ------------------------------------------------------------- building
    def _add_col(self, cost: float, lower: float, upper: float) -> int:
        self.highs.addCol(cost, lower, upper, 0, np.zeros(0, np.int32), np.zeros(0))
        return self.highs.getNumCol() - 1

    def _add_row(
        self, lower: float, upper: float, cols: np.ndarray | Sequence[int], values: np.ndarray | Sequence[float]
    ) -> None:
        cols_arr = np.asarray(cols, dtype=np.int32)
        self.highs.addRow(lower, upper, cols_arr.size, cols_arr, np.asarray(values, dtype=float))

    def _terms(self, row_y: np.ndarray, row_x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Columns and coefficients of ``row_y·y + row_x·x``; outputs fixed at zero are dropped."""
        keep = (np.asarray(row_y) != 0) & (self.y_cols >= 0)
        cols, values = [self.y_cols[keep]], [np.asarray(row_y, float)[keep]]
        if row_x is not None:
            used = np.asarray(row_x) != 0
            cols.append(self.x_cols[used])
            values.append(np.asarray(row_x, float)[used])
        cols_all, values_all = np.concatenate(cols).astype(np.int64), np.concatenate(values)
        # an input may also be an output column of a linear network: merge duplicates
        unique, inverse = np.unique(cols_all, return_inverse=True)
        return unique, np.bincount(inverse, values_all, minlength=unique.size)

    def add_region(self, region: LinearConstraints) -> None:
        """The rows ``A_y y + A_x x <= b``."""
        for i in range(region.n_rows):
            cols, values = self._terms(region.A_y[i], region.A_x[i])
            self._add_row(-np.inf, float(region.b[i]), cols, values)

    def add_l1_ball(self, x0: np.ndarray, eps: float) -> None:
        """``sum_i |x_i - x0_i| <= eps`` with ``d_i >= ±(x_i - x0_i)``."""
        d_cols = []
        for i, col in enumerate(self.x_cols):
            d = self._add_col(0.0, 0.0, np.inf)
            self._add_row(-x0[i], np.inf, [d, int(col)], [1.0, -1.0])  # d - x >= -x0
            self._add_row(x0[i], np.inf, [d, int(col)], [1.0, 1.0])  # d + x >= x0
            d_cols.append(d)
        self._add_row(-np.inf, float(eps), d_cols, [1.0] * len(d_cols))

    # -------------------------------------------------------------- solving
    def minimize(
        self,
        c_y: np.ndarray,
        c_x: np.ndarray,
        region: LinearConstraints,
        *,
        cutoff: float = np.inf,
        time_limit: float | None = None,
        gap: float = 1e-7,
    ) -> MilpOutcome:
        """``min c_y·y + c_x·x`` over the box and ``region``; only values below ``cutoff`` are searched."""
        import highspy

        start = time.perf_counter()
        self.add_region(region)
        cols, values = self._terms(c_y, c_x)
        cost = np.zeros(self.highs.getNumCol())
        cost[cols] = values
        self.highs.changeColsCost(cost.size, np.arange(cost.size, dtype=np.int32), cost)
        self.highs.changeObjectiveSense(highspy.ObjSense.kMinimize)
        self._limits(np.inf if not np.isfinite(cutoff) else float(cutoff), time_limit, gap)
        self.highs.run()
        return self._outcome([], cutoff, time.perf_counter() - start)

    def maximize_margin(
        self,
        region: LinearConstraints,
        *,
        cutoff: float | None = -UNSAT_TOLERANCE,
        time_limit: float | None = None,
        stop_check: Callable[[np.ndarray], np.ndarray] | None = None,
        gap: float | None = None,
    ) -> MilpOutcome:
        """``max t`` s.t. ``A_i y + A^x_i x + t <= b_i``; only ``t > cutoff`` is searched (``None``: all).

        ``stop_check(X)`` returns the exact margin of each row of ``X``; the solve stops at
        the first incumbent it confirms (``>= 0``), with status ``"sat"``.  ``gap`` sets
        HiGHS' relative and absolute MIP gaps (its defaults otherwise).
        """
        import highspy

        start = time.perf_counter()
        # Without rows every output is unsafe: t <= 0 makes any feasible point a solution.
        t_upper = self._margin_upper(region) if region.n_rows else 0.0
        t_col = self._add_col(1.0, -np.inf, t_upper)
        for i in range(region.n_rows):
            cols, values = self._terms(region.A_y[i], region.A_x[i])
            self._add_row(-np.inf, float(region.b[i]), np.r_[cols, t_col], np.r_[values, 1.0])
        self.highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
        # HiGHS minimises -t internally: its objective bound is on -t
        self._limits(np.inf if cutoff is None else -float(cutoff), time_limit, gap)
        found: list[np.ndarray] = []
        if stop_check is not None:
            self._watch(stop_check, found)
        self.highs.run()
        return self._outcome(found, cutoff, time.perf_counter() - start)

    def _limits(self, objective_bound: float, time_limit: float | None, gap: float | None) -> None:
        highs = self.highs
        highs.setOptionValue("objective_bound", objective_bound)
        highs.setOptionValue("time_limit", float(max(time_limit, 1e-3)) if time_limit is not None else np.inf)
        if gap is not None:
            highs.setOptionValue("mip_rel_gap", float(gap))
            highs.setOptionValue("mip_abs_gap", float(gap))

    def _margin_upper(self, region: LinearConstraints) -> float:
        """``min_i (b_i - min A_i (y, x))`` over the output and input boxes: an upper bound of ``t``."""

        def least(A: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
            positive = np.maximum(A, 0.0)
            with np.errstate(invalid="ignore"):
                return np.nan_to_num(positive @ lo + (A - positive) @ hi, nan=-np.inf)

        bound = region.b - least(region.A_y, self.y_lower, self.y_upper) - least(region.A_x, self.lower, self.upper)
        return float(np.min(bound))

    def _watch(self, stop_check: Callable[[np.ndarray], np.ndarray], found: list[np.ndarray]) -> None:
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

    def _outcome(self, found: list[np.ndarray], cutoff: float | None, seconds: float) -> MilpOutcome:
        import highspy

        highs = self.highs
        status = highs.getModelStatus()
        info = highs.getInfo()
        bound = _finite(info.mip_dual_bound)
        value = _finite(info.objective_function_value)
        x = None
        if value is not None:  # the solver holds a feasible point
            solution = np.asarray(highs.getSolution().col_value, float)
            if solution.size > int(self.x_cols.max(initial=-1)):
                x = np.clip(solution[self.x_cols], self.lower, self.upper)
        if found:
            return MilpOutcome("sat", found[0], value, bound, seconds)
        S = highspy.HighsModelStatus
        if status == S.kInfeasible:
            return MilpOutcome("infeasible", None, None, cutoff, seconds)
        if status == S.kOptimal:
            return MilpOutcome("optimal", x, value, bound if bound is not None else value, seconds)
        if status in (S.kTimeLimit, S.kInterrupt, S.kSolutionLimit, S.kIterationLimit, S.kObjectiveBound):
            return MilpOutcome("time_limit", x, value, bound, seconds)
        logger.warning("HiGHS ended a network MILP with status %s", highs.modelStatusToString(status))
        return MilpOutcome("error", x, value, None, seconds)


# ----------------------------------------------------------------- the leaf
@dataclass
class LeafOutcome:
    """What a leaf MILP says of a box.

    ``closed``: the box is decided (``bound`` is then a valid lower bound of the objective
    over its feasible points, ``+inf`` when it has none better than the cutoff);
    otherwise ``bound`` is still a valid lower bound (maybe ``-inf``) and the box must be
    split further.  ``points`` are solver points to check exactly (candidates only).
    """

    closed: bool
    bound: float
    points: np.ndarray
    milps: int
    seconds: float


def widen(value: float) -> float:
    """A solver's bound made safe against its tolerances (:data:`LEAF_TOLERANCE`)."""
    return float(value - LEAF_TOLERANCE * max(1.0, abs(value)))


def solve_leaf(
    problem: SearchProblem,
    lower: np.ndarray,
    upper: np.ndarray,
    start: tuple[Sequence[np.ndarray], Sequence[np.ndarray]],
    cutoff: float,
    time_limit: float,
    gap: float = 1e-7,
) -> LeafOutcome:
    """Decide the box ``[lower, upper]`` of ``problem`` with one MILP per region.

    With an objective: ``min`` over each region below ``cutoff``; the box bound is the
    least region bound.  Without (a feasibility problem): each region's margin MILP with
    cutoff ``-UNSAT_TOLERANCE``, stopping at a point the canonical forward pass confirms.
    """
    began = time.perf_counter()
    if largest_big_m(start[0][:-1], start[1][:-1]) * SOLVER_TOLERANCE > TRUSTED_BIG_M_ERROR:  # the engine splits on
        return LeafOutcome(False, -np.inf, np.zeros((0, lower.size)), 0, time.perf_counter() - began)
    deadline = began + time_limit
    points: list[np.ndarray] = []
    bounds: list[float] = []
    closed = True
    for p, region in enumerate(problem.regions):
        left = deadline - time.perf_counter()
        if left <= 0:
            return LeafOutcome(False, -np.inf, _stack(points, lower.size), p, time.perf_counter() - began)
        milp = NetworkMilp(problem.layers, start[0], start[1], lower, upper)
        if problem.objective is not None:
            outcome = milp.minimize(*problem.objective, region, cutoff=cutoff, time_limit=left, gap=gap)
            if outcome.status == "infeasible":  # nothing in the region below the cutoff
                dual = np.inf
            else:
                dual = widen(outcome.bound) if outcome.bound is not None else -np.inf
                closed &= outcome.status == "optimal"
            # HiGHS prunes by ``objective_bound`` (the cutoff); when nothing beats it, it may still
            # report a worse point as "optimal" with a dual bound equal to that point, which is no
            # bound at all.  The cutoff itself always is one.
            bounds.append(min(dual, cutoff) if np.isfinite(cutoff) else dual)
        else:

            def check(x: np.ndarray, _p: int = p) -> np.ndarray:
                return problem.region_margins(x, problem.forward(x))[:, _p]

            outcome = milp.maximize_margin(region, time_limit=left, stop_check=check)
            excluded = outcome.status == "infeasible" or (
                outcome.status == "optimal" and outcome.bound is not None and outcome.bound < -UNSAT_TOLERANCE
            )
            bounds.append(np.inf if excluded else 0.0)
            closed &= excluded  # a point found is only a candidate until the caller confirms it
        if outcome.x is not None:
            points.append(outcome.x)
        if problem.objective is None and outcome.status == "sat":
            break
    bound = min(bounds) if bounds else np.inf
    return LeafOutcome(closed, bound, _stack(points, lower.size), len(bounds), time.perf_counter() - began)


def _stack(points: list[np.ndarray], n: int) -> np.ndarray:
    return np.vstack(points) if points else np.zeros((0, n))
