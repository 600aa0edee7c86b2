"""Honest failures (issue 14): a missing or crashing solver is one clear error naming it, and
no ``optimal`` (``SolveResult``, ``OptimizeResult``) or ``sat`` (``VerifyResult``) stands
without a solution re-checked by the numpy forward pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyomo.environ as pe
import pytest

from pyomo_relu import ReLUNetBlock, load_onnx, solve, solvers
from pyomo_relu.errors import SolverError

PEAKS = Path(__file__).parent / "data" / "relumip" / "peaks_3x10.onnx"


def peaks_model(sense=pe.minimize) -> pe.ConcreteModel:
    net = load_onnx(PEAKS, input_bounds=[(-3, 3), (-3, 3)])
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2))
    m.y = pe.Var()
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=[m.y], bounds="interval")
    m.obj = pe.Objective(expr=m.y, sense=sense)
    return m


def test_missing_solvers_are_named(monkeypatch) -> None:
    m = peaks_model()
    monkeypatch.setattr(solvers._HighsWithStart, "available", lambda self, *a, **k: False)
    with pytest.raises(SolverError, match="solver highs is not available"):
        solve(m, "highs", handoff="pyomo")  # the bulk route needs only highspy, which is installed

    class Absent:
        options: dict = {}

        def available(self, exception_flag=True):
            return False

    monkeypatch.setattr(solvers.pe, "SolverFactory", lambda name: Absent())
    for name in ("glpk", "cbc"):
        with pytest.raises(SolverError, match=f"solver {name} is not on the PATH"):
            solve(m, name)
    with pytest.raises(SolverError, match="unknown solver 'gurobi'; choose one of highs, scip, glpk, cbc"):
        solve(m, "gurobi")


def test_a_crashing_solver_is_one_error_naming_it(monkeypatch) -> None:
    m = peaks_model()

    def crash(self, model, **config):
        raise RuntimeError("HiGHS aborted: out of memory")

    monkeypatch.setattr(solvers._HighsWithStart, "solve", crash)
    with pytest.raises(SolverError, match=r"solver highs failed: RuntimeError: HiGHS aborted: out of memory"):
        solve(m, "highs", handoff="pyomo")
    import pyomo_relu.handoff as handoff

    monkeypatch.setattr(handoff, "run_highs", lambda *a, **k: crash(None, None))
    with pytest.raises(SolverError, match=r"solver highs failed: RuntimeError: HiGHS aborted: out of memory"):
        solve(m, "highs", handoff="bulk")


def test_optimal_needs_the_forward_pass_to_agree() -> None:
    m = peaks_model(pe.maximize)
    good = solve(m, "highs", time_limit=60)
    assert good.status == "optimal" and good.forward_error is not None and good.forward_error < 1e-6
    # a constraint of the network lost: the solver's "optimum" is no network point
    m.nn.layer[3].deactivate()  # the output layer's affine rows
    m.y.setub(100.0)
    bad = solve(m, "highs", time_limit=60)
    assert bad.has_solution and bad.forward_error > solvers.FORWARD_TOLERANCE
    assert bad.status == "error" and "forward pass" in bad.message


def test_optimize_never_optimal_without_a_point(monkeypatch) -> None:
    import importlib

    from pyomo_relu.search.engine import SearchResult

    optimize_module = importlib.import_module("pyomo_relu.search.optimize")

    net = load_onnx(PEAKS, input_bounds=[(-3, 3), (-3, 3)])
    empty = SearchResult("optimal", None, np.inf, -7.3, 1, 0, 0.0, 0, 0, "", -np.inf)
    monkeypatch.setattr(optimize_module, "branch_and_bound", lambda *a, **k: empty)
    result = optimize_module.optimize(net, 0, progress=False)
    assert result.status != "optimal" and result.x is None
