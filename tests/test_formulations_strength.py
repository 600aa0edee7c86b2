"""Partition, extended and ideal-cut formulations: same MILP optima, LP bounds ordered by theory.

Small random networks (seeded) on the box [-1, 1]^n with interval bounds.  Every
formulation must give big-M's MILP optimum (min and max of the output) with a solution
that ``net.evaluate`` reproduces; the LP relaxations (binaries relaxed with
``core.relax_integer_vars`` on a clone) must be ordered

    bigm == partition(N=1) <= partition(N=2) <= partition(N=4) <= extended == partition(N=fan-in)

for minimisation (reversed for maximisation), and the ideal-cut loop must end between
big-M's LP bound and the MILP optimum without changing the MILP optimum.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe
import pytest
from helpers import random_net

from pyomo_relu import NetworkDefinition, PyomoReluError, ReLUNetBlock, solve
from pyomo_relu.formulations import get_formulation
from pyomo_relu.formulations.ideal_cuts import add_ideal_cuts, most_violated
from pyomo_relu.formulations.partition import partition_inputs

GAP = 1e-9
LP_TOL = 1e-7
ALL_INPUTS = 10_000  # partition "n" larger than any fan-in: one group per input


NETS = {
    "4-8-8-1": random_net(1, [4, 8, 8, 1], fan_in=True, bias_scale=0.3),
    "6-10-1": random_net(2, [6, 10, 1], fan_in=True, bias_scale=0.3),
}

FORMULATIONS = {
    "bigm": "bigm",
    "partition1": ("partition", {"n": 1}),
    "partition2": ("partition", {"n": 2}),
    "partition4": ("partition", {"n": 4}),
    "partition_all": ("partition", {"n": ALL_INPUTS}),
    "partition_range3": ("partition", {"n": 3, "strategy": "equal_range"}),
    "partition_random2": ("partition", {"n": 2, "strategy": "random", "seed": 7}),
    "partition_magnitude3": ("partition", {"n": 3, "strategy": "uneven_magnitude"}),
    "extended": "extended",
    "ideal_cuts": "ideal_cuts",
}


def model_for(net: NetworkDefinition, formulation, sense=pe.minimize) -> pe.ConcreteModel:
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, formulation=formulation, bounds="interval")  # loose bounds: relaxations differ
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=sense)
    return m


def milp(net, formulation, sense) -> tuple[float, pe.ConcreteModel]:
    m = model_for(net, formulation, sense)
    result = solve(m, mip_gap=GAP)
    assert result.status == "optimal", result
    return result.objective, m


def lp_bound(model: pe.ConcreteModel) -> float:
    """Optimum of the model with every integer variable relaxed (on a clone)."""
    relaxed = model.clone()
    pe.TransformationFactory("core.relax_integer_vars").apply_to(relaxed)
    assert not any(v.is_integer() for v in relaxed.component_data_objects(pe.Var))
    result = solve(relaxed)
    assert result.status == "optimal", result
    return result.objective


def lp(net, formulation, sense=pe.minimize) -> float:
    return lp_bound(model_for(net, formulation, sense))


def close(a: float, b: float, tol: float = LP_TOL) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def at_most(a: float, b: float, tol: float = LP_TOL) -> bool:
    return a <= b + tol * max(1.0, abs(a), abs(b))


@pytest.fixture(scope="module")
def bigm_optima() -> dict:
    return {
        (name, sense): milp(net, "bigm", sense)[0] for name, net in NETS.items() for sense in (pe.minimize, pe.maximize)
    }


# ------------------------------------------------------------------ registry
def test_registered():
    for name in ("partition", "extended", "ideal_cuts"):
        assert get_formulation(name).name == name


# ---------------------------------------------------------------- MILP optima
@pytest.mark.parametrize("net_name", NETS)
@pytest.mark.parametrize("form", [f for f in FORMULATIONS if f != "bigm"])
def test_milp_optimum_equals_bigm(net_name, form, bigm_optima):
    net = NETS[net_name]
    for sense in (pe.minimize, pe.maximize):
        m = model_for(net, FORMULATIONS[form], sense)
        if form == "ideal_cuts":
            report = add_ideal_cuts(m)
            assert report.total_cuts > 0
        result = solve(m, mip_gap=GAP)
        assert result.status == "optimal"
        expected = bigm_optima[net_name, sense]
        assert abs(result.objective - expected) <= 1e-6 * max(1.0, abs(expected)), (form, sense)
        assert m.nn.get_error() < 1e-6
        # the optimum is attained by the network itself
        assert abs(float(m.nn.forward()[0]) - expected) <= 1e-6 * max(1.0, abs(expected))


def test_bigm_optimum_matches_sampling(bigm_optima):
    """Anchor: big-M's optima bracket every sampled value (and are attained: see above)."""
    rng = np.random.default_rng(0)
    for name, net in NETS.items():
        x = rng.uniform(-1.0, 1.0, size=(50_000, net.n_inputs))
        values = net.evaluate(x)[:, 0]
        low, high = bigm_optima[name, pe.minimize], bigm_optima[name, pe.maximize]
        assert low <= values.min() + 1e-9 and values.max() <= high + 1e-9


# ------------------------------------------------------------ warm start
@pytest.mark.parametrize("form", ["partition2", "partition_all", "partition_magnitude3", "extended"])
def test_warm_start_is_feasible(form):
    net = NETS["4-8-8-1"]
    m = model_for(net, FORMULATIONS[form])
    worst = 0.0
    for con in m.nn.component_data_objects(pe.Constraint, active=True):
        body = pe.value(con.body)
        if con.has_lb():
            worst = max(worst, pe.value(con.lower) - body)
        if con.has_ub():
            worst = max(worst, body - pe.value(con.upper))
    assert worst < 1e-9
    for var in m.nn.component_data_objects(pe.Var):
        assert var.value is not None
        assert var.lb is None or var.value >= var.lb - 1e-9
        assert var.ub is None or var.value <= var.ub + 1e-9


# -------------------------------------------------------------- LP ordering
@pytest.mark.parametrize("net_name", NETS)
@pytest.mark.parametrize("sense", [pe.minimize, pe.maximize], ids=["min", "max"])
def test_lp_relaxations_are_ordered(net_name, sense):
    net = NETS[net_name]
    s = 1.0 if sense == pe.minimize else -1.0  # s * bound only grows with strength
    b = {
        form: s * lp(net, FORMULATIONS[form], sense)
        for form in ("bigm", "partition1", "partition2", "partition4", "partition_all", "extended")
    }
    opt = s * milp(net, "bigm", sense)[0]
    assert close(b["partition1"], b["bigm"]), b
    assert at_most(b["bigm"], b["partition2"]), b
    assert at_most(b["partition2"], b["partition4"]), b
    assert at_most(b["partition4"], b["extended"]), b
    assert close(b["partition_all"], b["extended"]), b
    assert at_most(b["extended"], opt), (b, opt)
    # not vacuous: the convex hull of each neuron is strictly tighter than big-M here
    assert b["extended"] > b["bigm"] + 1e-3, b


def test_partition_groups_are_nested():
    """equal_size with N=4 splits each N=2 group (what the LP ordering above relies on)."""
    for net in NETS.values():
        m2 = model_for(net, FORMULATIONS["partition2"])
        m4 = model_for(net, FORMULATIONS["partition4"])
        for k in range(len(net.canonical_layers) - 1):
            g2, g4 = m2.nn.layer[k].partition_groups, m4.nn.layer[k].partition_groups
            assert g2.keys() == g4.keys() and g2
            for j in g2:
                assert len(g2[j]) == 2 and len(g4[j]) == min(4, net.canonical_layers[k].n_inputs)
                for big in g2[j]:
                    inside = [g for g in g4[j] if set(g) <= set(big)]
                    assert sorted(i for g in inside for i in g) == sorted(big)


def test_partition_strategies_cover_inputs():
    rng = np.random.default_rng(3)
    weights = rng.normal(size=9)
    lower, upper = -np.ones(9), np.ones(9)
    for strategy in ("equal_size", "equal_range", "random", "uneven_magnitude"):
        for n in (1, 2, 3, 9, 20):
            groups = partition_inputs(weights, n, strategy, lower=lower, upper=upper, rng=np.random.default_rng(0))
            flat = sorted(int(i) for g in groups for i in g)
            assert flat == list(range(9)), (strategy, n)
            assert 1 <= len(groups) <= min(n, 9) and all(len(g) for g in groups)
    sizes = [len(g) for g in partition_inputs(weights, 3, "uneven_magnitude", lower=lower, upper=upper)]
    assert sizes == [1, 1, 7]
    assert [len(g) for g in partition_inputs(weights, 2)] == [4, 5]
    with pytest.raises(PyomoReluError):
        model_for(NETS["6-10-1"], ("partition", {"n": 2, "strategy": "nope"}))
    with pytest.raises(PyomoReluError):
        model_for(NETS["6-10-1"], ("partition", {"groups": 2}))


def test_per_layer_partition_sizes():
    net = NETS["4-8-8-1"]
    m = model_for(net, {"default": ("partition", {"n": 2}), 1: ("partition", {"n": 4})})
    assert all(len(g) == 2 for g in m.nn.layer[0].partition_groups.values())
    assert all(len(g) == 4 for g in m.nn.layer[1].partition_groups.values())


def test_extended_size():
    net = NETS["6-10-1"]
    m = model_for(net, "extended")
    layer = m.nn.layer[0]
    unstable = len(layer.is_active)
    assert unstable > 0
    assert len(layer.active_copy) == unstable * 6  # dense weights: one copy per input
    m_bigm = model_for(net, "bigm")
    assert m.nn.stats()["binaries"] == m_bigm.nn.stats()["binaries"]


def test_tighter_bounds_keep_bigm_rows():
    """With bounds tighter than interval arithmetic, hull formulations stay >= big-M."""
    net = NETS["4-8-8-1"]
    results = {}
    for form in ("bigm", "partition1", "partition2", "extended"):
        m = pe.ConcreteModel()
        m.nn = ReLUNetBlock()
        m.nn.build(net, formulation=FORMULATIONS[form], bounds=["interval", "crown"])
        m.obj = pe.Objective(expr=m.nn.outputs[0])
        results[form] = lp_bound(m)
        if form == "extended":
            assert hasattr(m.nn.layer[1], "post_zero_when_inactive")
    assert close(results["partition1"], results["bigm"]), results
    assert at_most(results["bigm"], results["partition2"]), results
    assert at_most(results["bigm"], results["extended"]), results


# --------------------------------------------------------------- ideal cuts
@pytest.mark.parametrize("net_name", NETS)
@pytest.mark.parametrize("sense", [pe.minimize, pe.maximize], ids=["min", "max"])
def test_ideal_cut_loop(net_name, sense):
    net = NETS[net_name]
    s = 1.0 if sense == pe.minimize else -1.0
    bigm_lp = s * lp(net, "bigm", sense)
    extended_lp = s * lp(net, "extended", sense)
    opt = s * milp(net, "bigm", sense)[0]

    m = model_for(net, "ideal_cuts", sense)
    warm = {v.name: v.value for v in m.component_data_objects(pe.Var)}
    report = add_ideal_cuts(m, max_rounds=20, tol=1e-4)
    before, after = s * report.lp_bound_before, s * report.lp_bound_after
    assert close(before, bigm_lp)
    assert at_most(bigm_lp, after) and at_most(after, opt) and at_most(after, extended_lp)
    assert after > bigm_lp + 1e-3  # the cuts do something on these networks
    # the report is consistent with itself and with the model
    assert report.rounds == len(report.cuts_per_round) == len(report.lp_bounds) - 1
    assert 1 <= report.rounds <= 20 and report.lp_solves == report.rounds + 1
    assert all(c > 0 for c in report.cuts_per_round)
    n_cuts = sum(len(m.nn.layer[k].ideal_cuts) for k in m.nn.layer if hasattr(m.nn.layer[k], "ideal_cuts"))
    assert report.total_cuts == n_cuts
    assert all(at_most(s * a, s * b) for a, b in zip(report.lp_bounds, report.lp_bounds[1:]))
    # the reason given is the one the bounds show: the last round's gain was small, all 20
    # rounds ran, or else a round found no violated cut
    last = s * (report.lp_bounds[-1] - report.lp_bounds[-2])
    if last <= 1e-4 * max(1.0, abs(report.lp_bounds[-2])):
        assert report.stopped == "small_improvement"
    else:
        assert report.stopped == ("max_rounds" if report.rounds == 20 else "no_violated_cut")
    assert report.seconds > 0
    # integrality and the warm start are back
    assert all(
        v.is_binary()
        for k in m.nn.layer
        if hasattr(m.nn.layer[k], "is_active")
        for v in m.nn.layer[k].is_active.values()
    )
    assert {v.name: v.value for v in m.component_data_objects(pe.Var)} == warm
    # a second call finds little or nothing new, and the MILP optimum is unchanged
    result = solve(m, mip_gap=GAP)
    assert result.status == "optimal" and close(s * result.objective, opt, 1e-6)
    assert m.nn.get_error() < 1e-6


def test_ideal_cuts_are_valid_on_network_points():
    """Every cut holds at forward passes of the network (valid, not only at the optimum)."""
    net = NETS["4-8-8-1"]
    m = model_for(net, "ideal_cuts", pe.maximize)
    add_ideal_cuts(m, max_rounds=5)
    cuts = [c for k in m.nn.layer if hasattr(m.nn.layer[k], "ideal_cuts") for c in m.nn.layer[k].ideal_cuts.values()]
    assert cuts
    rng = np.random.default_rng(5)
    worst = -np.inf
    for x in rng.uniform(-1, 1, size=(300, net.n_inputs)):
        m.nn.initialize(x)
        worst = max(worst, max(pe.value(c.body) - pe.value(c.upper) for c in cuts))
    assert worst <= 1e-9


def test_most_violated_is_the_minimum_over_all_subsets():
    rng = np.random.default_rng(11)
    for _ in range(50):
        k = 5
        w = rng.normal(size=k)
        lo, hi = -rng.uniform(0.1, 2, size=k), rng.uniform(0.1, 2, size=k)
        low, high = np.where(w >= 0, lo, hi), np.where(w >= 0, hi, lo)
        b = float(rng.normal())
        x, sigma, y = rng.uniform(lo, hi), float(rng.uniform()), float(rng.uniform(0, 3))
        mask, violation = most_violated(w, low, high, b, x, y, sigma)
        best = np.inf
        for bits in range(2**k):
            subset = np.array([(bits >> i) & 1 for i in range(k)], dtype=bool)
            rhs = w[subset] @ (x[subset] - low[subset] * (1 - sigma)) + (b + w[~subset] @ high[~subset]) * sigma
            best = min(best, rhs)
        assert abs(violation - (y - best)) < 1e-12


def test_add_ideal_cuts_needs_registered_layers():
    m = model_for(NETS["6-10-1"], "bigm")
    with pytest.raises(PyomoReluError, match="ideal_cuts"):
        add_ideal_cuts(m)
