"""Reduced-cost bound tightening (``lp_solve.reduced_cost_box``) and its use by the split."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe
from hypothesis import given, settings
from hypothesis import strategies as st

from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock, solve
from pyomo_relu.bounds.lp_solve import SolveSettings, lp_minimum, reduced_cost_box
from pyomo_relu.bounds.rows import LinearProgram, RowBuilder


def _random_lp(seed: int) -> tuple[LinearProgram, np.ndarray, np.ndarray, np.ndarray]:
    """A feasible random LP over 4 boxed columns, 5 ranged rows; its columns, a point, a cost."""
    rng = np.random.default_rng(seed)
    n, m = 4, 5
    lower = rng.uniform(-2.0, 0.0, n)
    upper = lower + rng.uniform(0.5, 3.0, n)
    point = rng.uniform(lower, upper)
    matrix = rng.normal(size=(m, n))
    builder = RowBuilder()
    cols = builder.add_cols(lower, upper)
    builder.add_rows(matrix @ point - rng.uniform(0, 1, m), matrix @ point + rng.uniform(0, 1, m), dense=(cols, matrix))
    return builder.finish(), cols, point, rng.normal(size=n)


def _range_below(lp: LinearProgram, cols: np.ndarray, cost: np.ndarray, cutoff: float, j: int) -> tuple[float, float]:
    """The least and largest ``x_j`` HiGHS finds over the LP with ``cost @ x <= cutoff``."""
    builder = RowBuilder()
    builder.add_cols(lp.col_lower, lp.col_upper)
    rows = np.repeat(np.arange(lp.n_rows), np.diff(lp.start))
    builder.add_sparse_rows(lp.row_lower, lp.row_upper, rows, lp.index, lp.value)
    builder.add_rows(-np.inf, cutoff, dense=(cols, cost[None, :]))
    cut = builder.finish()
    unit = np.zeros(cols.size)
    unit[j] = 1.0
    low = lp_minimum(cut, cols, unit, SolveSettings(False))
    high = lp_minimum(cut, cols, -unit, SolveSettings(False))
    assert low.point is not None and high.point is not None
    return float(low.point[j]), float(high.point[j])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 100_000), st.floats(0.0, 1.0))
def test_reduced_cost_box_keeps_every_point_below_the_cutoff(seed: int, where: float) -> None:
    lp, cols, point, cost = _random_lp(seed)
    answer = lp_minimum(lp, cols, cost, SolveSettings(False))
    assert answer.reduced is not None and np.isfinite(answer.safe)
    # a cutoff between the LP's optimum and a known feasible point's objective
    cutoff = float(answer.value + where * (cost @ point - answer.value) + 1e-6)
    lower, upper = reduced_cost_box(answer, lp.col_lower, lp.col_upper, cutoff)
    assert np.all(lower >= lp.col_lower) and np.all(upper <= lp.col_upper) and np.all(lower <= upper)
    for j in range(cols.size):
        least, largest = _range_below(lp, cols, cost, cutoff, j)
        assert lower[j] <= least + 1e-7 and largest <= upper[j] + 1e-7


def test_reduced_cost_box_narrows_a_column_whose_cost_is_direct() -> None:
    builder = RowBuilder()
    cols = builder.add_cols(np.array([0.0, -1.0]), np.array([10.0, 1.0]))
    builder.add_rows(-5.0, 5.0, dense=(cols, np.array([[0.0, 1.0]])))
    lp = builder.finish()
    answer = lp_minimum(lp, cols, np.array([1.0, 0.0]), SolveSettings(False))  # min x0: 0 at x0 = 0
    lower, upper = reduced_cost_box(answer, lp.col_lower, lp.col_upper, 2.0)  # x0 < 2 to beat 2
    assert abs(upper[0] - 2.0) < 1e-6 and lower[0] == 0.0
    assert (lower[1], upper[1]) == (-1.0, 1.0)  # no cost on x1: unchanged
    same = reduced_cost_box(answer, lp.col_lower, lp.col_upper, np.inf)  # no cutoff, no change
    assert np.array_equal(same[1], lp.col_upper)


def test_split_result_is_checked_by_the_forward_pass() -> None:
    net = NetworkDefinition(
        [DenseLayer([[1.0, 1.0], [1.0, -1.0]], [0.0, 0.0]), DenseLayer([[1.0, 1.0]], [-1.0], "linear")],
        input_bounds=[(-1, 1), (-1, 1)],
    )
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-1, 1))
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x)
    m.spec = pe.Constraint(expr=m.x[0] + m.x[1] <= 0.5)
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=pe.maximize)
    result = solve(m, strategy="split", options={"mip_allow_restart": True})  # a HiGHS MIP option
    assert result.status == "optimal" and result.forward_error is not None and result.forward_error < 1e-9
    assert abs(result.objective - float(net.evaluate(np.array([m.x[0].value, m.x[1].value]))[0])) < 1e-9
