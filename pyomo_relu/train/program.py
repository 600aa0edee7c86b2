r"""The training MIPs as arrays: columns and rows built in bulk, solved by HiGHS or SCIP.

Both trainers (:mod:`pyomo_relu.train.bnn`, :mod:`pyomo_relu.train.relu`) write their MIP
into a :class:`TrainingProgram`, a :class:`~pyomo_relu.bounds.rows.RowBuilder` with the
pieces every training MIP shares, each built for all examples at once from numpy index
arrays (no Python loop over examples, neurons or weights):

* :meth:`TrainingProgram.weights`: a weight matrix of columns in ``[-R, R]`` and, per
  weight, a binary ``s`` with ``-R s <= W <= R s`` (``s = 0`` forces ``W = 0``: the
  sparsity objective ``min Σ s``);
* :meth:`TrainingProgram.sums`: rows ``z_r = Σ_t coef[r, t] col[r, t] + const_r``;
* :meth:`TrainingProgram.products`: ``p = β v`` for a binary ``β`` and ``lo <= v <= hi``,
  exactly: ``lo β <= p <= hi β``, ``v - hi (1 - β) <= p <= v - lo (1 - β)``;
* :meth:`TrainingProgram.break_symmetry`: the biases of a hidden layer in decreasing order
  (hidden neurons are interchangeable; in one trial the order cut the solve of a 16-2-2 ReLU
  net on 100 digits from over 30 s to 2 s, but HiGHS's times vary a lot with such changes);
* :meth:`TrainingProgram.bilinear`: products ``coef x_a x_b`` added to rows (the nonconvex
  model, SCIP only);
* :meth:`TrainingProgram.margins`: per example a binary ``ok`` and, for every other class
  ``c``, ``s_y - s_c >= margin - M (1 - ok)`` with ``M = margin - (L_y - U_c)`` from the
  score bounds (the accuracy objective ``max Σ ok``).

:func:`solve_program` hands the arrays to highspy directly (HiGHS) or builds a Pyomo model
from them row by row (SCIP), and returns the
:class:`~pyomo_relu.solvers.SolveResult` with the column values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pyomo_relu.bounds.rows import HIGHS_TIME_LIMIT_OPTIONS, LinearProgram, RowBuilder
from pyomo_relu.errors import InvalidValueError
from pyomo_relu.solvers import SolveResult

__all__ = ["Solution", "TrainingProgram", "complete_start", "pyomo_model", "solve_program"]

#: A coefficient: one number or an array (broadcast against the columns).
Coef = np.ndarray | float
#: Bilinear terms ``(rows, a, b, coef)``: row ``rows[t]`` has ``coef[t] * x[a[t]] * x[b[t]]`` (SCIP only).
Bilinear = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class TrainingProgram(RowBuilder):
    """A :class:`RowBuilder` with the training MIP's shared pieces (module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.correct: list[np.ndarray] = []  # the ok columns (accuracy objective)
        self.support: list[np.ndarray] = []  # the s columns (sparsity objective)
        self.supported: list[np.ndarray] = []  # the weight column of each s
        self.products_ab: list[Bilinear] = []  # bilinear terms of the nonconvex model

    def at_most(self, upper: np.ndarray, terms: list[tuple[np.ndarray, Coef]]) -> None:
        """Rows ``Σ coef * col <= upper`` (one per entry of ``upper``)."""
        upper = np.asarray(upper, float)
        self.add_rows(np.full(upper.size, -np.inf), upper, terms=terms)

    def at_least(self, lower: np.ndarray, terms: list[tuple[np.ndarray, Coef]]) -> None:
        """Rows ``Σ coef * col >= lower`` (one per entry of ``lower``)."""
        lower = np.asarray(lower, float)
        self.add_rows(lower, np.full(lower.size, np.inf), terms=terms)

    def weights(self, shape: tuple[int, ...], bound: float, integer: bool) -> np.ndarray:
        """Columns in ``[-bound, bound]`` of this shape, each with its sparsity binary."""
        w = self.add_cols(np.full(shape, -float(bound)), np.full(shape, float(bound)), integer=integer).reshape(shape)
        s = self.add_cols(np.zeros(w.size), np.ones(w.size), integer=True)
        flat = w.ravel()
        self.support.append(s)
        self.supported.append(flat)
        self.at_most(np.zeros(w.size), [(flat, 1.0), (s, -float(bound))])
        self.at_least(np.zeros(w.size), [(flat, 1.0), (s, float(bound))])
        return w

    def break_symmetry(self, bias: np.ndarray) -> None:
        """``b[0] >= b[1] >= ...`` for a hidden layer's biases: permuting a hidden layer's neurons (its
        rows of ``W``, ``b`` and the next layer's columns) changes nothing, so one order may be kept.
        """
        if bias.size > 1:
            self.at_least(np.zeros(bias.size - 1), [(bias[:-1], 1.0), (bias[1:], -1.0)])

    def sums(self, z: np.ndarray, terms: list[tuple[np.ndarray, Coef]], const: Coef = 0.0) -> np.ndarray:
        """Rows ``z[r] - Σ_t coef[r, t] col[r, t] = const[r]``; each term is ``(cols, coefs)`` of shape ``(rows, T)``.

        Entries with a zero coefficient are left out.  Returns the rows' numbers (shaped as ``z``).
        """
        shape = np.shape(z)
        first = self.n_rows
        z = np.asarray(z).ravel()
        n = z.size
        rows, cols, values = [np.arange(n)], [z], [np.ones(n)]
        for col, coef in terms:
            col, coef = (a.reshape(n, -1) for a in np.broadcast_arrays(np.asarray(col), np.asarray(coef, float)))
            r, t = np.nonzero(coef)
            rows.append(r)
            cols.append(col[r, t])
            values.append(-coef[r, t])
        rhs = np.broadcast_to(np.asarray(const, float), (n,))
        self.add_sparse_rows(rhs, rhs, np.concatenate(rows), np.concatenate(cols), np.concatenate(values))
        return np.arange(first, first + n).reshape(shape)

    def bilinear(self, rows: np.ndarray, a: np.ndarray, b: np.ndarray, coef: float) -> None:
        """Add ``coef * x[a] * x[b]`` to ``rows`` (broadcast): the nonconvex model, for SCIP."""
        rows, a, b = (np.ravel(v) for v in np.broadcast_arrays(rows, a, b))
        self.products_ab.append((rows, a, b, np.full(rows.size, float(coef))))

    def bilinear_terms(self) -> Bilinear | None:
        """All bilinear terms (``None``: the model is a MILP)."""
        if not self.products_ab:
            return None
        rows, a, b, coef = (np.concatenate([t[i] for t in self.products_ab]) for i in range(4))
        return rows, a, b, coef

    def products(self, binary: np.ndarray, var: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Columns ``p = binary * var`` (same shape, broadcast), exact for ``lo <= var <= hi``."""
        shape = np.broadcast_shapes(np.shape(binary), np.shape(var), np.shape(lo), np.shape(hi))
        binary, var, lo, hi = (np.ravel(a) for a in np.broadcast_arrays(binary, var, lo, hi))
        lo, hi = lo.astype(float), hi.astype(float)
        p = self.add_cols(np.minimum(lo, 0.0), np.maximum(hi, 0.0))
        zero = np.zeros(p.size)
        self.at_most(zero, [(p, 1.0), (binary, -hi)])  # p <= hi β
        self.at_least(zero, [(p, 1.0), (binary, -lo)])  # p >= lo β
        self.at_most(-lo, [(p, 1.0), (var, -1.0), (binary, -lo)])  # p <= v - lo (1 - β)
        self.at_least(-hi, [(p, 1.0), (var, -1.0), (binary, -hi)])  # p >= v - hi (1 - β)
        return p.reshape(shape)

    def margins(self, scores: np.ndarray, lower: np.ndarray, upper: np.ndarray, y: np.ndarray, margin: float) -> None:
        """The ``ok`` binaries and margin rows of the module doc; ``scores`` are columns ``(examples, classes)``."""
        n, k = scores.shape
        ok = self.add_cols(np.zeros(n), np.ones(n), integer=True)
        self.correct.append(ok)
        i, c = np.nonzero(np.arange(k)[None, :] != y[:, None])
        big_m = margin - (lower[i, y[i]] - upper[i, c])
        self.at_least(margin - big_m, [(scores[i, y[i]], 1.0), (scores[i, c], -1.0), (ok[i], -big_m)])

    def objective(self, which: str) -> tuple[np.ndarray, bool]:
        """``(cost, maximize)`` of ``"accuracy"`` (max Σ ok) or ``"sparsity"`` (min Σ s)."""
        cost = np.zeros(self.n_cols)
        cols = self.correct if which == "accuracy" else self.support
        cost[np.concatenate(cols)] = 1.0
        return cost, which == "accuracy"

    def sparse_start(self, values: np.ndarray) -> np.ndarray:
        """``values`` with each ``s`` lowered to 0 where its weight is 0 (a better start for the sparsity solve)."""
        values = np.array(values, dtype=float)
        s, w = np.concatenate(self.support), np.concatenate(self.supported)
        values[s] = np.abs(values[w]) > 0
        return values

    def keep_accuracy(self, correct: int) -> None:
        """The row ``Σ ok >= correct`` (the sparsity solve keeps the accuracy)."""
        ok = np.concatenate(self.correct)
        self.add_rows(np.full(1, float(correct)), np.full(1, np.inf), dense=(ok, np.ones((1, ok.size))))

    def count(self) -> dict[str, int]:
        """Columns, rows and binaries (integer columns in ``[0, 1]``) of the MIP so far."""
        integer = np.concatenate(self.integer) if self.integer else np.zeros(0, np.int64)
        lower, upper = np.concatenate(self.col_lower), np.concatenate(self.col_upper)
        binary = int(np.sum((lower[integer] == 0) & (upper[integer] == 1)))
        return {"columns": self.n_cols, "rows": self.n_rows, "binaries": binary, "integers": int(integer.size)}


@dataclass
class Solution:
    """A solve of a :class:`TrainingProgram`: the solver's result and the column values (``None``: none)."""

    result: SolveResult
    values: np.ndarray | None


def solve_program(
    lp: LinearProgram,
    cost: np.ndarray,
    maximize: bool,
    solver: str = "highs",
    time_limit: float | None = None,
    mip_gap: float | None = None,
    start: np.ndarray | None = None,
    bilinear: Bilinear | None = None,
) -> Solution:
    """Solve ``lp`` with objective ``cost`` by ``"highs"`` (arrays to highspy) or ``"scip"`` (Pyomo from the arrays).

    ``time_limit`` counts from the call (the hand-off included); ``start`` is a full column
    vector passed as a MIP start; ``bilinear`` terms (a nonconvex model) need SCIP.
    """
    began = time.perf_counter()
    if bilinear is not None and solver != "scip":
        raise InvalidValueError("the bilinear (nonconvex) training model needs solver='scip'")
    if solver == "highs":
        solution = _solve_highs(lp, cost, maximize, None if time_limit is None else began + time_limit, mip_gap, start)
    elif solver == "scip":
        solution = _solve_pyomo(lp, cost, maximize, (solver, time_limit, mip_gap), start, bilinear)
    else:
        raise InvalidValueError(f"training MIPs are solved by 'highs' or 'scip', not {solver!r}")
    solution.result.seconds = time.perf_counter() - began
    solution.result.solver = solver
    return solution


def complete_start(
    lp: LinearProgram, cost: np.ndarray, maximize: bool, cols: np.ndarray, values: np.ndarray, time_limit: float
) -> np.ndarray | None:
    """A full MIP start from the values of some columns (the weights): the MIP with them fixed, solved by HiGHS.

    With the weights fixed every other column follows from the forward pass, so presolve
    nearly solves it; ``None`` when HiGHS finds nothing within ``time_limit``.
    """
    lower, upper = lp.col_lower.copy(), lp.col_upper.copy()
    lower[cols] = upper[cols] = values
    return solve_program(replace(lp, col_lower=lower, col_upper=upper), cost, maximize, "highs", time_limit).values


def _solve_highs(
    lp: LinearProgram,
    cost: np.ndarray,
    maximize: bool,
    deadline: float | None,
    mip_gap: float | None,
    start: np.ndarray | None,
) -> Solution:
    from pyomo_relu.handoff import ModelArrays, _result, _status, highs_from_arrays, run_highs

    options: dict[str, object] = dict(HIGHS_TIME_LIMIT_OPTIONS) if deadline is not None else {}
    if mip_gap is not None:
        options["mip_rel_gap"] = float(mip_gap)
    arrays = ModelArrays(lp, cost, 0.0, maximize, [], lp.n_rows, 0)
    highs = highs_from_arrays(arrays, options, tee=False)
    if start is not None:
        highs.setSolution(int(lp.n_cols), np.arange(lp.n_cols, dtype=np.int32), np.asarray(start, float))
    run_highs(highs, deadline)
    result = _result(highs, arrays, _status(highs))
    values = np.asarray(highs.getSolution().col_value, dtype=float) if result.has_solution else None
    return Solution(result, values)


def _solve_pyomo(
    lp: LinearProgram,
    cost: np.ndarray,
    maximize: bool,
    how: tuple[str, float | None, float | None],
    start: np.ndarray | None,
    bilinear: Bilinear | None,
) -> Solution:
    """``how`` is ``(solver, time_limit, mip_gap)``."""
    from pyomo_relu.solvers import solve

    solver, time_limit, mip_gap = how
    m = pyomo_model(lp, cost, maximize, bilinear)
    if start is not None:
        for var, value in zip(m.x.values(), np.asarray(start, float).tolist()):
            var.set_value(value, skip_validation=True)
    result = solve(m, solver, time_limit=time_limit, mip_gap=mip_gap, certify=False)
    values = np.array([v.value if v.value is not None else 0.0 for v in m.x.values()]) if result.has_solution else None
    return Solution(result, values)


def pyomo_model(lp: LinearProgram, cost: np.ndarray, maximize: bool, bilinear: Bilinear | None = None) -> Any:
    """``lp`` as a Pyomo model: ``m.x[j]`` per column, one linear sum per row (``m.rows``), ``m.obj``.

    ``bilinear`` terms are added to their rows (a quadratic, nonconvex model).
    """
    import pyomo.environ as pe
    from pyomo.core.expr.numeric_expr import LinearExpression

    m = pe.ConcreteModel("training_mip")
    integer = np.zeros(lp.n_cols, dtype=bool)
    integer[lp.integer] = True
    finite = lambda v: [float(a) if np.isfinite(a) else None for a in v]  # noqa: E731
    col_bounds = list(zip(finite(lp.col_lower), finite(lp.col_upper)))
    m.x = pe.Var(
        range(lp.n_cols), within=lambda m, j: pe.Integers if integer[j] else pe.Reals, bounds=lambda m, j: col_bounds[j]
    )
    x = list(m.x.values())
    start, index, value = lp.start.tolist(), lp.index.tolist(), lp.value.tolist()
    lower, upper = lp.row_lower.tolist(), lp.row_upper.tolist()
    quadratic: dict[int, list[tuple[int, int, float]]] = {}
    for r, a, b, c in zip(*(v.tolist() for v in bilinear or ())):
        quadratic.setdefault(r, []).append((a, b, c))

    def row(m: Any, r: int) -> Any:  # one-sided rows and a plain sum: the fastest forms in Pyomo 6.10
        if start[r] == start[r + 1]:
            return pe.Constraint.Skip
        expr = sum(c * x[j] for c, j in zip(value[start[r] : start[r + 1]], index[start[r] : start[r + 1]]))
        if r in quadratic:
            expr = expr + sum(c * x[i] * x[j] for i, j, c in quadratic[r])
        lo, hi = lower[r], upper[r]
        if lo == hi:
            return expr == lo
        if lo == -np.inf:
            return expr <= hi
        return expr >= lo if hi == np.inf else (lo, expr, hi)

    m.rows = pe.Constraint(range(lp.n_rows), rule=row)
    used = np.flatnonzero(cost).tolist()
    m.obj = pe.Objective(
        expr=LinearExpression(linear_coefs=cost[used].tolist(), linear_vars=[x[j] for j in used]),
        sense=pe.maximize if maximize else pe.minimize,
    )
    return m
