"""``solve``: one result type for HiGHS, glpk, CBC and SCIP on small MILPs with known answers."""

from __future__ import annotations

import time

import numpy as np
import pyomo.environ as pe
import pytest

from pyomo_relu import SolverError, solve
from pyomo_relu.solvers import SOLVERS

ALL = ["highs", "glpk", "cbc", "scip"]


def small_milp(sense=pe.minimize) -> pe.ConcreteModel:
    """Optimum -29.25 (minimise) at x = (2, 2, 1), y = 0.5; +29.25 when maximising the negation."""
    m = pe.ConcreteModel()
    m.x = pe.Var(range(3), within=pe.Integers, bounds=(0, 10))
    m.y = pe.Var(bounds=(0, None))
    m.c1 = pe.Constraint(expr=3 * m.x[0] + 5 * m.x[1] + 7 * m.x[2] + m.y <= 23.5)
    m.c2 = pe.Constraint(expr=m.x[0] - m.x[1] <= 2)
    gain = 4 * m.x[0] + 6 * m.x[1] + 9 * m.x[2] + 0.5 * m.y
    m.obj = pe.Objective(expr=-gain if sense == pe.minimize else gain, sense=sense)
    return m


def knapsack(n: int, k: int, seed: int = 0, sense=pe.maximize) -> pe.ConcreteModel:
    """Multi-dimensional 0-1 knapsack: hard enough that a tiny time limit stops the search."""
    rng = np.random.default_rng(seed)
    weights, value = rng.integers(20, 100, (k, n)), rng.integers(20, 100, n)
    capacity = weights.sum(axis=1) // 2
    m = pe.ConcreteModel()
    m.x = pe.Var(range(n), within=pe.Binary)
    m.cap = pe.Constraint(
        range(k), rule=lambda m, i: sum(int(weights[i, j]) * m.x[j] for j in range(n)) <= int(capacity[i])
    )
    total = sum(int(value[j]) * m.x[j] for j in range(n))
    m.obj = pe.Objective(expr=total if sense == pe.maximize else -total, sense=sense)
    return m


def assert_feasible(model, tol=1e-6) -> None:
    for con in model.component_data_objects(pe.Constraint, active=True):
        body = pe.value(con.body)
        assert not con.has_lb() or body >= pe.value(con.lower) - tol, con.name
        assert not con.has_ub() or body <= pe.value(con.upper) + tol, con.name
    for var in model.component_data_objects(pe.Var):
        assert var.lb is None or var.value >= var.lb - tol
        assert var.ub is None or var.value <= var.ub + tol
        assert not var.is_integer() or abs(var.value - round(var.value)) <= tol


def timed_solve(model, solver, **options):
    """``solve(model, solver, **options)`` and the wall-clock seconds the call took."""
    start = time.perf_counter()
    result = solve(model, solver, **options)
    return result, time.perf_counter() - start


def assert_consistent(result, model, wall: float) -> None:
    """Fields that must agree whatever the status; ``wall`` is the measured time of the call."""
    assert result.status != "error", f"no verdict on a model with one: {result.message}"
    if result.status == "optimal":
        assert result.has_solution
    if result.status in ("infeasible", "unbounded"):
        assert not result.has_solution and result.objective is None
    assert 0 < result.seconds <= wall, f"solve reported {result.seconds} s for a call of {wall} s"
    if result.has_solution:
        assert result.objective is not None
        assert result.objective == pytest.approx(pe.value(model.obj), abs=1e-6)
        assert_feasible(model)
    else:
        assert result.objective is None and result.gap is None
    if result.objective is not None and result.bound is not None:
        tol = 1e-6 * max(1.0, abs(result.objective))
        if model.obj.sense == pe.minimize:
            assert result.bound <= result.objective + tol
        else:
            assert result.bound >= result.objective - tol
        assert result.gap == pytest.approx(abs(result.objective - result.bound) / max(1.0, abs(result.objective)))


@pytest.mark.parametrize("solver", ALL)
@pytest.mark.parametrize("sense", [pe.minimize, pe.maximize], ids=["min", "max"])
def test_small_milp(solver, sense):
    m = small_milp(sense)
    result, wall = timed_solve(m, solver)
    assert result.solver == solver
    assert result.status == "optimal"
    assert result.has_solution
    expected = -29.25 if sense == pe.minimize else 29.25
    assert result.objective == pytest.approx(expected, abs=1e-6)
    assert result.bound == pytest.approx(expected, abs=1e-6)
    assert result.gap == pytest.approx(0.0, abs=1e-6)
    assert [m.x[i].value for i in range(3)] == pytest.approx([2, 2, 1], abs=1e-6)
    assert m.y.value == pytest.approx(0.5, abs=1e-6)
    assert_consistent(result, m, wall)


@pytest.mark.parametrize("solver", ALL)
def test_mip_gap_is_passed(solver):
    m = knapsack(40, 5, seed=1)
    exact = solve(knapsack(40, 5, seed=1), solver, mip_gap=0.0)
    loose, wall = timed_solve(m, solver, mip_gap=0.2)
    assert exact.status == "optimal" and loose.status == "optimal"
    assert_consistent(loose, m, wall)
    assert loose.objective <= exact.objective + 1e-6
    assert loose.objective >= (1 - 0.2) * exact.objective - 1e-6


def test_glpk_gap_stop_is_optimal_without_a_false_bound():
    m = knapsack(40, 5, seed=1)
    result, wall = timed_solve(m, "glpk", mip_gap=0.2)
    # glpk reports "feasible" when it stops at the gap; its bound is unknown, not the objective
    assert result.status == "optimal" and result.message == "feasible"
    assert result.bound is None or result.bound >= result.objective
    assert_consistent(result, m, wall)


def test_highs_tiny_time_limit():
    m = knapsack(80, 15)
    result, wall = timed_solve(m, "highs", time_limit=0.02)
    assert result.status in ("time_limit", "optimal")
    if result.status == "optimal":
        assert result.has_solution and result.bound == pytest.approx(result.objective, rel=1e-4)
    assert_consistent(result, m, wall)
    assert result.seconds < 5


@pytest.mark.parametrize(
    "solver, sense",
    [("cbc", pe.maximize), ("cbc", pe.minimize), ("glpk", pe.maximize)],
    ids=["cbc-max", "cbc-min", "glpk-max"],
)
def test_shell_solver_time_limit(solver, sense):
    # glpk's limit is whole seconds; both get 1 s on an instance that needs longer
    m = knapsack(200, 30, sense=sense)
    result, wall = timed_solve(m, solver, time_limit=1)
    assert result.status in ("time_limit", "optimal")
    assert_consistent(result, m, wall)  # CBC's bound of a maximisation used to come back negated


@pytest.mark.parametrize("solver", ALL)
def test_infeasible(solver):
    m = small_milp()
    m.c3 = pe.Constraint(expr=m.x[0] + m.y >= 100)
    m.y.setub(5)
    result, wall = timed_solve(m, solver)
    assert result.status == "infeasible"
    assert not result.has_solution
    assert result.objective is None
    assert_consistent(result, m, wall)


@pytest.mark.parametrize("solver", ALL)
def test_unbounded_is_never_infeasible(solver):
    m = pe.ConcreteModel()
    m.x = pe.Var(within=pe.Integers)
    m.y = pe.Var(bounds=(0, 1))
    m.c = pe.Constraint(expr=m.x + m.y >= 0.5)
    m.obj = pe.Objective(expr=m.x, sense=pe.maximize)
    result = solve(m, solver)
    # glpk's reader cannot tell (termination "other"): no verdict rather than a wrong one
    assert result.status == ("error" if solver == "glpk" else "unbounded")


def test_unknown_solver():
    with pytest.raises(SolverError, match=r"unknown solver 'gurobi'; choose one of highs, scip, glpk, cbc"):
        solve(small_milp(), "gurobi")
    assert set(SOLVERS) == set(ALL)


@pytest.mark.parametrize("solver", ALL)
def test_objective_count(solver):
    m = small_milp()
    m.obj2 = pe.Objective(expr=m.y)
    with pytest.raises(SolverError, match=r"exactly one active objective, it has 2"):
        solve(m, solver)
    m.obj.deactivate()
    m.obj2.deactivate()
    with pytest.raises(SolverError, match=r"exactly one active objective, it has 0"):
        solve(m, solver)
    m.obj.activate()  # deactivated extras are fine
    assert solve(m, solver).objective == pytest.approx(-29.25, abs=1e-6)


def _start_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every MIP start handed to HiGHS."""
    import highspy

    calls: list[int] = []
    original = highspy.Highs.setSolution

    def spy(self, *args):  # type: ignore[no-untyped-def]
        calls.append(int(args[0]) if len(args) == 3 else -1)
        return original(self, *args)

    monkeypatch.setattr(highspy.Highs, "setSolution", spy)
    return calls


def test_highs_gets_a_complete_start_and_no_partial_one(monkeypatch):
    """A start missing integer values would make HiGHS spend its time limit completing it."""
    from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock

    net = NetworkDefinition(
        [DenseLayer([[1.0, -1.0], [1.0, 1.0]], [0.1, -0.2]), DenseLayer([[1.0, -2.0]], [0.0], "linear")],
        input_bounds=[(-1, 1)] * 2,
    )
    results = {}
    for initialize in (True, False):
        calls = _start_calls(monkeypatch)
        m = pe.ConcreteModel()
        m.x = pe.Var(range(2), bounds=(-1, 1), initialize=0.0)
        m.y = pe.Var()
        m.nn = ReLUNetBlock()
        m.nn.build(net, inputs=m.x, outputs=[m.y], initialize=initialize)
        m.obj = pe.Objective(expr=m.y, sense=pe.maximize)
        result = solve(m, "highs", time_limit=30)
        assert result.status == "optimal"
        results[initialize] = (calls, result.objective)
        monkeypatch.undo()
    assert results[True][0] and results[True][0][0] > 0  # the forward-pass start went in
    assert results[False][0] == []  # binaries without values: no partial start
    assert abs(results[True][1] - results[False][1]) < 1e-9
