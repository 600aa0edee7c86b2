r"""The safe-bound solver of OBBT: proven bounds of linear objectives over a bound-tightening LP/MILP.

:func:`solve_chunk` (a module-level function of numpy arrays and plain data, so that it
runs on any executor) builds one ``highspy.Highs`` model for a
:class:`~pyomo_relu.bounds.rows.LinearProgram` and only changes the objective between
solves, so HiGHS warm-starts from the previous basis.  The algorithm that chooses what to
solve is :mod:`pyomo_relu.bounds.obbt`; the spreading over workers is
:mod:`pyomo_relu.bounds.lp_schedule`.

Soundness
---------
HiGHS solves with feasibility tolerances of ``1e-9`` and no result is trusted to the last
digit:

* an LP optimum ``v`` gives the lower bound ``min(v - tol·max(1, |v|), s)`` where ``s`` is
  the safe dual bound of Neumaier & Shcherbina (2004) recomputed in numpy from HiGHS' row
  duals ``y``: ``s = min_{x in cols} (c - Aᵀy)ᵀx + min_{r in rows} yᵀr``, which is a valid
  bound for *any* ``y``;
* a MILP gives its proven dual bound (``mip_dual_bound``), not its incumbent, widened by
  ``tol·max(1, |v|)``, so a time-out still gives a valid bound;
* a solve that ends without an optimum (or a dual bound) leaves that bound unchanged, and
  a new bound is always intersected with the old one;
* the neuron bounds enter the LP as column bounds loosened by ``1e-8·max(1, |b|)`` (a
  relaxation), so that nearly degenerate bounds cannot make the LP spuriously
  infeasible; a solver's "infeasible" is re-checked with HiGHS' defaults before
  :class:`~pyomo_relu.errors.PyomoReluError` says that the box and the output bounds admit
  no point (without output bounds it is only logged, and the bounds are kept).

This module imports numpy and highspy only, never Pyomo.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from pyomo_relu.bounds.rows import HIGHS_TIME_LIMIT_OPTIONS, LinearProgram, highs_model
from pyomo_relu.errors import SolverError

#: Relative widening of every bound found by a solver (see "Soundness").
DEFAULT_TOLERANCE = 1e-7
#: Feasibility tolerance given to HiGHS (well below :data:`DEFAULT_TOLERANCE`).
SOLVER_FEASIBILITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SolveSettings:
    """What a worker needs besides the LP; plain data so that it pickles cheaply."""

    integer: bool
    tolerance: float = DEFAULT_TOLERANCE
    deadline: float | None = None  # absolute ``time.time()``
    time_per_solve: float | None = None
    mip_gap: float = 1e-6


def solve_chunk(
    lp: LinearProgram,
    cols: np.ndarray,
    coefficients: np.ndarray,
    constants: np.ndarray,
    skip_lower_if_inactive: np.ndarray,
    settings: SolveSettings,
    callback: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Bounds of ``coefficients[t] @ x[cols] + constants[t]`` over ``lp`` for every row ``t``.

    The maximum is computed first; where ``skip_lower_if_inactive[t]`` and it is ``<= 0``
    the minimum is not needed and not computed.  Returns ``(lower, upper, infeasible)``
    with NaN where no bound was found and the number of solves that proved ``lp``
    infeasible.  ``callback(1)`` is called after each target (serial progress bars).
    """
    highs = _make_highs(lp, settings)
    solver = _ChunkSolver(highs, lp, cols, settings)
    n = constants.size
    lower, upper = np.full(n, np.nan), np.full(n, np.nan)
    infeasible = 0
    for t in range(n):
        if expired(settings.deadline):
            break
        top, bad = solver.minimum(-coefficients[t])
        upper[t] = constants[t] - top
        infeasible += bad
        if not (skip_lower_if_inactive[t] and upper[t] <= 0):
            bottom, bad = solver.minimum(coefficients[t])
            lower[t] = constants[t] + bottom
            infeasible += bad
        if callback is not None:
            callback(1)
    return lower, upper, infeasible


class LPMinimum(NamedTuple):
    """The answer of :func:`lp_minimum`."""

    value: float  # a proven lower bound of the objective (NaN if none)
    infeasible: bool  # HiGHS found the LP infeasible
    point: np.ndarray | None  # HiGHS's point (None if none)
    #: the safe bound's reduced costs ``c - Aᵀy`` over every column and that bound
    #: ``s`` (``None`` and ``-inf`` without duals): every point of the LP has
    #: ``cᵀx >= s + r_j x_j - min(r_j l_j, r_j u_j)`` for each column ``j``
    reduced: np.ndarray | None
    safe: float


def lp_minimum(lp: LinearProgram, cols: np.ndarray, coefficients: np.ndarray, settings: SolveSettings) -> LPMinimum:
    """One proven lower bound of ``min coefficients @ x[cols]`` over ``lp``, with the solver's
    point and the safe bound's reduced costs (for reduced-cost bound tightening)."""
    solver = _ChunkSolver(_make_highs(lp, settings), lp, cols, settings)
    value, infeasible = solver.minimum(coefficients)
    point = None if infeasible or np.isnan(value) else np.asarray(solver.highs.getSolution().col_value, float)
    reduced, safe = solver.reduced if point is not None else (None, -np.inf)
    return LPMinimum(value, bool(infeasible), point, reduced, safe)


def reduced_cost_box(
    answer: LPMinimum, lower: np.ndarray, upper: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """Reduced-cost bound tightening: the bounds ``lower``/``upper`` of the LP's columns (as
    the LP had them) narrowed to where a point of objective below ``cutoff`` can lie.

    From :attr:`LPMinimum.reduced` ``r`` and the safe bound ``s``: ``cᵀx < cutoff`` needs
    ``r_j (x_j - l_j) < cutoff - s`` for ``r_j > 0`` (and ``r_j (x_j - u_j) < cutoff - s``
    for ``r_j < 0``), so ``x_j < l_j + (cutoff - s) / r_j``.  The slack is widened by
    ``1e-9`` (relative) and the new bounds by ``1e-9`` of the width, beyond the round-off of
    the numpy sums; nothing changes without duals or a finite cutoff.
    """
    lo, hi = np.array(lower, float), np.array(upper, float)
    if answer.reduced is None or not np.isfinite(answer.safe) or not np.isfinite(cutoff):
        return lo, hi
    slack = cutoff - answer.safe
    if slack < 0:  # the LP proves the whole box worse than the cutoff: the caller prunes it
        return lo, hi
    slack += 1e-9 * max(1.0, abs(cutoff), abs(answer.safe))
    reduced = answer.reduced
    pad = 1e-9 * np.maximum(1.0, hi - lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = slack / np.abs(reduced)
        up = (reduced > 0) & np.isfinite(lo) & np.isfinite(reach)
        down = (reduced < 0) & np.isfinite(hi) & np.isfinite(reach)
        new_hi = np.where(up, np.minimum(hi, lo + reach + pad), hi)
        new_lo = np.where(down, np.maximum(lo, hi - reach - pad), lo)
    return new_lo, new_hi


def expired(deadline: float | None) -> bool:
    """``deadline`` (absolute ``time.time()``) has passed."""
    return deadline is not None and time.time() >= deadline


def _make_highs(lp: LinearProgram, settings: SolveSettings) -> Any:
    import highspy

    model = highs_model(lp, settings.integer)
    highs = highspy.Highs()
    options: dict[str, Any] = {
        "output_flag": False,
        "primal_feasibility_tolerance": SOLVER_FEASIBILITY_TOLERANCE,
        "dual_feasibility_tolerance": SOLVER_FEASIBILITY_TOLERANCE,
    }
    if settings.integer and lp.integer.size:
        options.update(
            mip_feasibility_tolerance=SOLVER_FEASIBILITY_TOLERANCE,
            mip_rel_gap=settings.mip_gap,
            mip_abs_gap=settings.mip_gap,
            **HIGHS_TIME_LIMIT_OPTIONS,
        )
    else:
        options["presolve"] = "off"  # keep the basis between solves
    for key, value in options.items():
        highs.setOptionValue(key, value)
    # kWarning: e.g. HiGHS dropped |coefficients| < 1e-9 (the safe dual bound still uses them)
    if highs.passModel(model) == highspy.HighsStatus.kError:
        raise SolverError("HiGHS rejected the bound-tightening LP")
    return highs


class _ChunkSolver:
    """One HiGHS model whose objective changes between solves."""

    def __init__(self, highs: Any, lp: LinearProgram, cols: np.ndarray, settings: SolveSettings) -> None:
        import highspy

        self.highs, self.lp, self.settings = highs, lp, settings
        self.cols = np.ascontiguousarray(cols, dtype=np.int32)
        self.mip = settings.integer and lp.integer.size > 0
        self.status = highspy.HighsModelStatus
        self.row_of_entry = np.repeat(np.arange(lp.n_rows), np.diff(lp.start))
        self.reduced: tuple[np.ndarray | None, float] = (None, -np.inf)  # of the last safe bound

    def minimum(self, coefficients: np.ndarray) -> tuple[float, int]:
        """A proven lower bound of ``min coefficients @ x[cols]`` (NaN if none) and 1 if infeasible."""
        highs = self.highs
        highs.changeColsCost(self.cols.size, self.cols, np.ascontiguousarray(coefficients, float))
        # HiGHS (1.15) checks an LP's time_limit against the model's cumulative run time but
        # a MIP's against the current run's
        offset = 0.0 if self.mip else highs.getRunTime()
        highs.setOptionValue("time_limit", offset + self._time_budget())
        highs.run()
        status = highs.getModelStatus()
        if status == self.status.kInfeasible:
            return np.nan, 1
        if self.mip:
            return self._widen(highs.getInfo().mip_dual_bound), 0
        if status != self.status.kOptimal:
            return np.nan, 0
        value = self._widen(highs.getInfo().objective_function_value)
        safe = self._safe_bound(coefficients)
        return (min(value, safe) if np.isfinite(safe) else value), 0

    def _time_budget(self) -> float:
        budget = np.inf
        if self.settings.time_per_solve is not None:
            budget = self.settings.time_per_solve
        if self.settings.deadline is not None:
            budget = min(budget, max(self.settings.deadline - time.time(), 1e-3))
        return float(budget)

    def _widen(self, value: float) -> float:
        if not np.isfinite(value):
            return np.nan
        return float(value - self.settings.tolerance * max(1.0, abs(value)))

    def _safe_bound(self, coefficients: np.ndarray) -> float:
        """Neumaier–Shcherbina bound ``min (c - Aᵀy)ᵀx + min yᵀr`` from HiGHS' row duals."""
        lp = self.lp
        duals = np.asarray(self.highs.getSolution().row_dual, float)
        if duals.size != lp.n_rows:
            return -np.inf
        cost = np.zeros(lp.n_cols)
        cost[self.cols] = coefficients
        reduced = cost - np.bincount(lp.index, lp.value * duals[self.row_of_entry], minlength=lp.n_cols)
        safe = _box_minimum(reduced, lp.col_lower, lp.col_upper) + _box_minimum(duals, lp.row_lower, lp.row_upper)
        self.reduced = (reduced, safe)
        return safe


def _box_minimum(coefficients: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """``min coefficients @ v`` over ``lower <= v <= upper`` (``-inf`` if unbounded)."""
    with np.errstate(invalid="ignore"):
        terms = np.where(coefficients > 0, coefficients * lower, coefficients * upper)
    terms[coefficients == 0] = 0.0
    return float(terms.sum())


def confirm_empty(lp: LinearProgram, integer: bool, time_limit: float = 60.0) -> bool:
    """Re-solve ``lp`` with a zero objective and HiGHS' defaults (presolve, tolerances)."""
    import highspy

    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("time_limit", time_limit)
    highs.passModel(highs_model(lp, integer))
    highs.run()
    return highs.getModelStatus() == highspy.HighsModelStatus.kInfeasible
