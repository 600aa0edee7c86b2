"""``solve(model, strategy="split")``: the same optimum as one MILP, on models with several
networks, indexed blocks and every MILP formulation; the user's model left as it was."""

from __future__ import annotations

import pyomo.environ as pe
import pytest
from helpers import random_net

from pyomo_relu import ReLUNetBlock, solve
from pyomo_relu.errors import PyomoReluError, SolverError


def coupled_model(formulation: object = "bigm", bounds: object = "interval") -> pe.ConcreteModel:
    """Two networks, a balance between the first's output and the second's input, a spec."""
    a, b = random_net(1, (2, 8, 8, 1)), random_net(2, (2, 8, 1), box=3.0)
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-1, 1))
    m.u = pe.Var(range(2), bounds=(-3, 3))
    m.ya, m.yb = pe.Var(), pe.Var()
    m.a = ReLUNetBlock()
    m.a.build(a, inputs=m.x, outputs=[m.ya], formulation=formulation, bounds=bounds)
    m.b = ReLUNetBlock()
    m.b.build(b, inputs=m.u, outputs=[m.yb], formulation=formulation, bounds=bounds)
    m.balance = pe.Constraint(expr=m.u[0] == m.ya)
    m.link = pe.Constraint(expr=m.u[1] == m.x[0] - m.x[1])
    m.spec = pe.Constraint(expr=m.yb >= -1.0)
    m.obj = pe.Objective(expr=m.yb + 0.5 * m.ya)
    return m


def reference_optimum(formulation: object = "bigm") -> float:
    m = coupled_model(formulation)
    result = solve(m, "highs", mip_gap=0.0)
    assert result.status == "optimal"
    return float(result.objective)


@pytest.mark.parametrize("formulation", ["bigm", "gdp.bigm", "gdp.hull", "partition", "ideal_cuts", "extended"])
def test_same_optimum_as_one_milp_for_every_formulation(formulation):
    truth = reference_optimum("bigm")
    m = coupled_model(formulation)
    result = solve(m, "highs", strategy="split", mip_gap=1e-7)
    assert result.status == "optimal", result
    assert result.objective == pytest.approx(truth, abs=1e-5)
    assert result.bound <= result.objective + 1e-9 and result.bound >= truth - 1e-5
    # the values loaded into the model: the networks re-evaluated at them, the constraints held
    x, u = [m.x[i].value for i in range(2)], [m.u[i].value for i in range(2)]
    assert m.a.forward() == pytest.approx([m.ya.value], abs=1e-5)
    assert m.b.forward() == pytest.approx([m.yb.value], abs=1e-5)
    assert u[0] == pytest.approx(m.ya.value, abs=1e-5) and u[1] == pytest.approx(x[0] - x[1], abs=1e-5)
    assert m.yb.value >= -1.0 - 1e-5
    assert pe.value(m.obj) == pytest.approx(truth, abs=1e-4)


def test_user_model_is_left_as_it_was():
    m = coupled_model()
    before = {c.name for c in m.component_data_objects(descend_into=True)}
    bounds = {v.name: v.bounds for v in m.component_data_objects(pe.Var, descend_into=True)}
    binaries = [v for v in m.component_data_objects(pe.Var, descend_into=True) if v.is_binary()]
    result = solve(m, "highs", strategy="split", mip_gap=1e-7)
    assert result.status == "optimal"
    assert {c.name for c in m.component_data_objects(descend_into=True)} == before
    assert {v.name: v.bounds for v in m.component_data_objects(pe.Var, descend_into=True)} == bounds
    assert all(v.is_binary() and not v.fixed for v in binaries)
    assert m.a.neuron_bounds.methods == ("interval",)


def test_indexed_block_and_shared_inputs():
    net = random_net(4, (2, 6, 6, 1))
    m = pe.ConcreteModel()
    m.T = pe.Set(initialize=[0, 1, 2])
    m.x = pe.Var(m.T, range(2), bounds=(-1, 1))
    m.nn = ReLUNetBlock(m.T)
    for t in m.T:
        m.nn[t].build(net, inputs=[m.x[t, 0], m.x[t, 1]], bounds="interval")
    m.ramp = pe.Constraint([1, 2], rule=lambda m, t: m.x[t, 0] - m.x[t - 1, 0] <= 0.3)
    m.obj = pe.Objective(expr=sum(m.nn[t].outputs[0] for t in m.T), sense=pe.maximize)
    truth = solve(m.clone(), "highs", mip_gap=0.0).objective
    result = solve(m, "highs", strategy="split", mip_gap=1e-7)
    assert result.status == "optimal"
    assert result.objective == pytest.approx(truth, abs=1e-5)
    for t in m.T:
        assert m.nn[t].forward() == pytest.approx([m.nn[t].outputs[0].value], abs=1e-5)


def test_infeasible_model_is_proven_infeasible():
    m = coupled_model()
    m.spec.deactivate()
    high = 1e3
    m.impossible = pe.Constraint(expr=m.yb >= high)
    result = solve(m, "highs", strategy="split")
    assert result.status == "infeasible" and not result.has_solution


def test_parallel_workers_give_the_same_answer():
    serial = solve(coupled_model(), "highs", strategy="split", mip_gap=1e-7)
    parallel = solve(coupled_model(), "highs", strategy="split", mip_gap=1e-7, executor=2)
    assert serial.status == parallel.status == "optimal"
    assert parallel.objective == pytest.approx(serial.objective, abs=1e-6)


def test_dask_executor():
    distributed = pytest.importorskip("distributed")
    serial = solve(coupled_model(), "highs", strategy="split", mip_gap=1e-7)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        result = solve(coupled_model(), "highs", strategy="split", mip_gap=1e-7, executor=client.get_executor())
    assert result.status == "optimal"
    assert result.objective == pytest.approx(serial.objective, abs=1e-6)


def test_time_limit_reports_incumbent_and_bound():
    m = coupled_model()
    result = solve(m, "highs", strategy="split", time_limit=0.0)
    assert result.status in ("time_limit", "optimal")
    if result.has_solution:
        assert result.bound is None or result.bound <= result.objective + 1e-9


def test_refusals():
    m = coupled_model()
    m.bad = pe.Constraint(expr=m.x[0] * m.x[1] <= 0.5)
    with pytest.raises(SolverError, match="constraint bad is nonlinear"):
        solve(m, "highs", strategy="split")
    plain = pe.ConcreteModel()
    plain.x = pe.Var(bounds=(0, 1))
    plain.obj = pe.Objective(expr=plain.x)
    with pytest.raises(PyomoReluError, match="no built one"):
        solve(plain, "highs", strategy="split")
    with pytest.raises(SolverError, match="unknown strategy"):
        solve(plain, "highs", strategy="splitt")
    with pytest.raises(SolverError, match="executor= needs strategy='split'"):
        solve(plain, "highs", executor=2)


@pytest.mark.parametrize("formulation", ["bigm", "gdp.hull"])
def test_deep_branching_keeps_the_optimum(monkeypatch, formulation):
    """Sub-MILPs only for boxes with at most 4 unstable neurons: the search must split down to them."""
    import pyomo_relu.split as split

    monkeypatch.setattr(split, "LEAF_UNSTABLE", 4)
    truth = reference_optimum("bigm")
    result = solve(coupled_model(formulation), "highs", strategy="split", mip_gap=1e-7)
    assert result.status == "optimal", result
    assert result.raw["nodes"] > 3 and result.raw["max_depth"] >= 2
    assert result.objective == pytest.approx(truth, abs=1e-5)
    assert result.bound >= truth - 1e-5


def random_flowsheet(seed: int) -> pe.ConcreteModel:
    """Two random networks, a random linear balance between them, a spec and a random objective."""
    import numpy  # here, not at the top: the module's own imports are being shared (tests/helpers.py)

    rng = numpy.random.default_rng(100 + seed)
    a, b = random_net(10 + seed, (2, 10, 6, 1)), random_net(20 + seed, (2, 8, 1), box=2.0)
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-1, 1))
    m.u = pe.Var(range(2), bounds=(-2, 2))
    m.ya, m.yb = pe.Var(), pe.Var()
    m.a = ReLUNetBlock()
    m.a.build(a, inputs=m.x, outputs=[m.ya], bounds="interval")
    m.b = ReLUNetBlock()
    m.b.build(b, inputs=m.u, outputs=[m.yb], bounds="interval")
    w = rng.normal(size=3)
    m.balance = pe.Constraint(expr=m.u[0] == 0.5 * m.ya + w[0] * m.x[1])
    m.link = pe.Constraint(expr=m.u[1] == 0.5 * (m.x[0] - m.x[1]))
    m.spec = pe.Constraint(expr=m.ya >= float(numpy.quantile(a.evaluate(rng.uniform(-1, 1, (200, 2))), 0.3)))
    m.obj = pe.Objective(expr=m.yb + w[1] * m.ya + w[2] * m.x[0], sense=pe.minimize if seed % 2 else pe.maximize)
    return m


@pytest.mark.parametrize("seed", range(6))
def test_split_optimum_equals_the_milp_optimum_on_random_flowsheets(seed, monkeypatch):
    """Soundness of the box LP pruning and bounds: the same proven optimum as one MILP.

    Sub-MILPs only for boxes with at most 2 unstable neurons, so that most boxes are
    bounded, pruned and split by their LP."""
    import pyomo_relu.split as split

    monkeypatch.setattr(split, "LEAF_UNSTABLE", 2)
    truth = solve(random_flowsheet(seed), "highs", mip_gap=0.0)
    m = random_flowsheet(seed)
    result = solve(m, "highs", strategy="split", mip_gap=1e-7)
    assert truth.status == "optimal" and result.status == "optimal", (truth, result)
    assert result.objective == pytest.approx(truth.objective, abs=1e-5)
    minimise = m.obj.sense == pe.minimize
    # the proven bound never passes the true optimum
    assert (result.bound <= truth.objective + 1e-5) if minimise else (result.bound >= truth.objective - 1e-5)
    assert result.raw["nodes"] > 3  # the LP bounded and split boxes
    assert m.a.forward() == pytest.approx([m.ya.value], abs=1e-5)
    assert m.b.forward() == pytest.approx([m.yb.value], abs=1e-5)


def test_pseudo_costs_prefer_inputs_whose_splits_moved_the_bound():
    """Untried inputs score 1; a tried input scores by its mean gain relative to the mean."""
    import numpy

    from pyomo_relu.split import _Search

    state = _Search(1.0, 1e-6)
    assert numpy.array_equal(state.scores(3), numpy.ones(3))  # nothing known yet
    state.gains[0] += [2.0, 4.0]  # mean 3
    state.gains[1] += [1.0]  # mean 1
    scores = state.scores(3)
    assert scores[0] == pytest.approx(0.1 + 1.5) and scores[1] == pytest.approx(0.1 + 0.5)
    assert scores[2] == 1.0
    state.gains[0][:], state.gains[1][:] = [0.0], [0.0]  # splits that never moved the bound
    assert numpy.array_equal(state.scores(3), numpy.ones(3))


def test_before_the_first_incumbent_the_search_dives() -> None:
    import numpy as np

    from pyomo_relu.split import _Box, _next_box, _Search

    state = _Search(1.0, 1e-6)
    for order, (bound, depth) in enumerate([(-5.0, 0), (-1.0, 3), (-2.0, 3), (-9.0, 1)]):
        state.push(_Box(bound, order, np.zeros(1), np.ones(1), depth))
    first = _next_box(state)
    assert first is not None and (first.depth, first.bound) == (3, -2.0)  # deepest, then least bound
    state.incumbent = 0.0  # with an incumbent: best bound first
    second = _next_box(state)
    assert second is not None and second.bound == -9.0
