"""ReLUNetBlock with the big-M formulation: optima, structure, user variables, warm start, errors.

Every optimum is checked against something computed without the MILP: the exact optimum of
the relumip peaks network (tests/data/relumip/peaks_3x10_ground_truth.json) or the best of
10^5 random samples evaluated by ``NetworkDefinition.evaluate``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import helpers
import numpy as np
import pyomo.environ as pe
import pytest
from helpers import FORWARD_TOLERANCE, random_net
from pyomo.core.expr.visitor import identify_variables

from pyomo_relu import (
    DenseLayer,
    InvalidNetworkError,
    MissingBoundsError,
    NetworkDefinition,
    PyomoReluError,
    ReLUNetBlock,
    Scaling,
    ShapeMismatchError,
    solve,
)

DATA = Path(__file__).parent / "data"
PEAKS_TRUTH = json.loads((DATA / "relumip" / "peaks_3x10_ground_truth.json").read_text())
PEAKS_BOX = [(-3.0, 3.0), (-3.0, 3.0)]
PEAKS_MIN = PEAKS_TRUTH["derived_exact_network_min"]
PEAKS_MAX = PEAKS_TRUTH["derived_exact_network_max"]

GAP = 1e-9  # solvers' default relative MIP gaps (1e-4 for HiGHS) are too loose for 1e-5 checks
N_SAMPLES = 100_000


# ---------------------------------------------------------------------- helpers
def sample_points(net: NetworkDefinition, seed: int = 0, n: int = N_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of the input box (:func:`helpers.sample_box`) and the network's outputs there."""
    x = helpers.sample_box(net.input_lower, net.input_upper, n, seed)
    return x, net.evaluate(x)


def optimise(net: NetworkDefinition, objective, sense=pe.minimize, solver: str = "highs", **build):
    """Model with user inputs ``m.x`` (network box) and outputs ``m.y``; ``objective(y)``."""
    m = pe.ConcreteModel()
    m.x = pe.Var(range(net.n_inputs), bounds=lambda m, i: (net.input_lower[i], net.input_upper[i]))
    m.y = pe.Var(range(net.n_outputs))
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=m.y, **build)
    m.obj = pe.Objective(expr=objective(m.y), sense=sense)
    result = solve(m, solver, mip_gap=GAP)
    return m, result


def values(var) -> np.ndarray:
    return np.array([v.value for v in var.values()], dtype=float)


def assert_feasible(model, tol: float = 1e-7) -> None:
    """Every active constraint and every variable bound/domain holds at the current values."""
    for con in model.component_data_objects(pe.Constraint, active=True, descend_into=True):
        body = pe.value(con.body)
        if con.has_lb():
            assert body >= pe.value(con.lower) - tol, f"{con.name}: {body} < {pe.value(con.lower)}"
        if con.has_ub():
            assert body <= pe.value(con.upper) + tol, f"{con.name}: {body} > {pe.value(con.upper)}"
    for var in model.component_data_objects(pe.Var, descend_into=True):
        assert var.value is not None, f"{var.name} has no value"
        if var.lb is not None:
            assert var.value >= var.lb - tol, var.name
        if var.ub is not None:
            assert var.value <= var.ub + tol, var.name
        if var.is_integer():
            assert abs(var.value - round(var.value)) <= tol, var.name


def block_vars(block, fixed: bool | None = None) -> list:
    return [v for v in block.component_data_objects(pe.Var, descend_into=True) if fixed is None or v.fixed == fixed]


def block_constraints(block) -> list:
    return list(block.component_data_objects(pe.Constraint, active=True, descend_into=True))


def expected_constraints(net: NetworkDefinition, bounds, input_box: int = 0) -> int:
    """Affine rows (all but stable-inactive neurons) + 3 per unstable neuron (+ links)."""
    count = input_box
    layers = net.canonical_layers
    for k, layer in enumerate(layers):
        if layer.activation == "relu":
            count += layer.n_outputs - int(bounds.stable_inactive(k).sum()) + 3 * int(bounds.unstable(k).sum())
        else:
            count += layer.n_outputs
    if layers[-1].activation == "relu":
        count += net.n_outputs
    return count


# ------------------------------------------------------------------ peaks optimum
@pytest.mark.parametrize("solver", ["highs", "glpk", "cbc", "scip"])
@pytest.mark.parametrize(
    "sense, truth",
    [
        (pe.minimize, (PEAKS_MIN["value"], PEAKS_MIN["argmin"])),
        (pe.maximize, (PEAKS_MAX["value"], PEAKS_MAX["argmax"])),
    ],
    ids=["min", "max"],
)
def test_peaks_optimum_every_solver(peaks, solver, sense, truth):
    value, argopt = truth
    m, result = optimise(peaks, lambda y: y[0], sense, solver)
    assert result.status == "optimal", result
    assert result.has_solution
    assert result.objective == pytest.approx(value, abs=1e-5)
    assert result.bound == pytest.approx(result.objective, abs=1e-5)
    assert values(m.x) == pytest.approx(argopt, abs=1e-4)
    assert m.y[0].value == pytest.approx(value, abs=1e-5)
    # the solvers' feasibility/integrality tolerances (1e-6 for SCIP, CBC, glpk) times a big-M of
    # a few units: a correct solution's forward error reaches ~4e-6 (SCIP, seen on a loaded CI run)
    assert m.nn.get_error() < 1e-5
    assert m.nn.forward() == pytest.approx([m.y[0].value], abs=1e-5)


def test_peaks_structure(peaks):
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(peaks)
    stats = m.nn.stats()
    # interval bounds leave all 30 hidden neurons of peaks unstable over [-3, 3]^2
    assert [row["unstable"] for row in stats["layers"]] == [10, 10, 10, 0]
    assert stats["binaries"] == 30
    # 2 inputs + 1 output + 3 x (10 post + 10 pre + 10 binaries); the linear output is m.nn.outputs
    assert stats["variables"] == 2 + 1 + 3 * 30
    assert stats["constraints"] == 3 * (10 + 3 * 10) + 1
    assert stats["bounds_methods"] == ["interval", "crown", "lp", "milp"]  # the default "auto" chain


def test_auto_bounds_are_the_default_and_at_least_as_tight_as_crown(peaks):
    from pyomo_relu.bounds import tighten

    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(peaks)
    crown = tighten(peaks, ["interval", "crown"])
    auto = m.nn.neuron_bounds
    assert auto.methods == ("interval", "crown", "lp", "milp")
    for k in range(crown.n_layers):
        assert np.all(auto.lower[k] >= crown.lower[k] - 1e-9) and np.all(auto.upper[k] <= crown.upper[k] + 1e-9)
    assert sum(float(auto.width(k).sum()) for k in range(3)) < 0.9 * sum(float(crown.width(k).sum()) for k in range(3))


# ------------------------------------------------------------ random networks
RANDOM_CASES = {
    "3-8-8-2": (11, [3, 8, 8, 2], [(-1.0, 1.0), (-2.0, 0.5), (0.0, 3.0)]),
    "4-12-1": (12, [4, 12, 1], [(-1.0, 1.0)] * 4),
}


@pytest.mark.parametrize("case", list(RANDOM_CASES))
def test_random_network_beats_sampling(case):
    seed, sizes, box = RANDOM_CASES[case]
    net = random_net(seed, sizes, box)
    x_samples, y_samples = sample_points(net, seed)
    for output in range(net.n_outputs):
        for sense in (pe.minimize, pe.maximize):
            m, result = optimise(net, lambda y, output=output: y[output], sense)
            assert result.status == "optimal"
            x = values(m.x)
            assert np.all(x >= net.input_lower - 1e-9) and np.all(x <= net.input_upper + 1e-9)
            assert m.nn.get_error() < FORWARD_TOLERANCE
            assert values(m.y) == pytest.approx(net.evaluate(x), abs=FORWARD_TOLERANCE)
            if sense == pe.minimize:
                assert result.objective <= y_samples[:, output].min() + 1e-6
            else:
                assert result.objective >= y_samples[:, output].max() - 1e-6
            assert result.objective == pytest.approx(net.evaluate(x)[output], abs=1e-6)


# ------------------------------------------------------------ stable neurons
def stable_net() -> NetworkDefinition:
    """Over [0, 1]^2: layer 0 has neuron 0 active, 1 and 3 inactive, 2 and 4 unstable;
    layer 1 has neuron 0 active, 1 inactive, 2 unstable (hand-checked interval bounds)."""
    hidden0 = DenseLayer(
        [[1, 1], [1, 1], [1, -1], [-1, -1], [2, -1]],
        [1.0, -5.0, 0.0, -0.5, 0.5],
    )  # pre ranges: [1,3] [-5,-3] [-1,1] [-2.5,-0.5] [-0.5,2.5]
    hidden1 = DenseLayer(
        [[1, 0, 1, 0, 1], [-1, 5, 0, 5, 0], [1, 0, -1, 0, -1]],
        [0.0, 0.5, -2.0],
    )  # post ranges [1,3] 0 [0,1] 0 [0,2.5] -> pre ranges [1,6.5] [-2.5,-0.5] [-4.5,1]
    out = DenseLayer([[1.0, -2.0, 3.0]], [0.25], "linear")
    return NetworkDefinition([hidden0, hidden1, out], input_bounds=[(0, 1), (0, 1)])


def test_stable_neurons_have_no_binaries():
    net = stable_net()
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net)
    stats = m.nn.stats()
    assert [(r["stable_active"], r["stable_inactive"], r["unstable"]) for r in stats["layers"]] == [
        (1, 2, 2),
        (1, 1, 1),
        (0, 0, 0),
    ]
    layer0, layer1 = m.nn.layer[0], m.nn.layer[1]
    assert sorted(layer0.is_active.keys()) == [2, 4]
    assert sorted(layer1.is_active.keys()) == [2]
    assert sorted(layer0.pre.keys()) == [2, 4]
    assert sorted(layer1.pre.keys()) == [2]
    assert not hasattr(m.nn.layer[2], "is_active")
    for layer, inactive in ((layer0, [1, 3]), (layer1, [1])):
        for j in inactive:
            assert layer.post[j].fixed and layer.post[j].value == 0
        for j in set(layer.post.keys()) - set(inactive):
            assert not layer.post[j].fixed
        assert sorted(layer.affine.keys()) == sorted(set(layer.post.keys()) - set(inactive))
    # fixed-at-zero neurons feed nothing: no constraint mentions them
    used = {id(v) for c in block_constraints(m.nn) for v in identify_variables(c.body)}
    assert id(layer0.post[1]) not in used and id(layer0.post[3]) not in used and id(layer1.post[1]) not in used
    # a stable-active neuron is post = affine, without pre
    assert id(layer0.post[0]) in used and 0 not in layer0.pre

    # totals: 2 inputs + layer0 (3 free post + 2 pre + 2 bin) + layer1 (2 + 1 + 1) + 1 output
    assert stats["variables"] == 2 + 7 + 4 + 1 == len(block_vars(m.nn, fixed=False))
    assert len(block_vars(m.nn)) == stats["variables"] + 3  # the three fixed post vars
    assert stats["binaries"] == 3 == sum(v.is_binary() for v in block_vars(m.nn, fixed=False))
    # affine rows 3 + 2 + 1, big-M rows 3 x 3
    assert stats["constraints"] == 6 + 9 == len(block_constraints(m.nn))
    assert stats["constraints"] == expected_constraints(net, m.nn.neuron_bounds)


def test_neurons_on_the_stability_boundary():
    """upper == 0 is inactive, lower == 0 is active, a sliver above 0 is still unstable."""
    net = NetworkDefinition(
        [
            DenseLayer([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [-0.95, -1.0, 0.0]),  # [-.95,.05] [-1,0] [0,1]
            DenseLayer([[100.0, 7.0, 1.0]], [0.0], "linear"),
        ],
        input_bounds=[(0, 1), (0, 1)],
    )
    m, result = optimise(net, lambda y: y[0], pe.maximize)
    row = m.nn.stats()["layers"][0]
    assert (row["stable_active"], row["stable_inactive"], row["unstable"]) == (1, 1, 1)
    assert sorted(m.nn.layer[0].is_active.keys()) == [0]
    assert m.nn.layer[0].post[1].fixed and not m.nn.layer[0].post[2].fixed
    assert result.objective == pytest.approx(100 * 0.05 + 1.0, abs=1e-6)
    assert m.x[0].value == pytest.approx(1.0, abs=1e-9)
    assert m.nn.get_error() < FORWARD_TOLERANCE


def test_stable_network_optimum_matches_sampling():
    net = stable_net()
    _, y_samples = sample_points(net)
    for sense, best in ((pe.minimize, y_samples.min()), (pe.maximize, y_samples.max())):
        m, result = optimise(net, lambda y: y[0], sense)
        assert result.status == "optimal"
        assert m.nn.get_error() < FORWARD_TOLERANCE
        assert (result.objective <= best + 1e-6) if sense == pe.minimize else (result.objective >= best - 1e-6)


# ------------------------------------------------------------ user variables
def _user_state(m) -> dict:
    """Everything about the user's components that build() must not change (values aside)."""
    state = {}
    for var in m.component_data_objects(pe.Var, descend_into=False):
        state[var.name] = (var.lb, var.ub, var.domain, var.fixed)
    for obj in m.component_data_objects(pe.Objective, descend_into=False):
        state[obj.name] = (str(obj.expr), obj.sense, obj.active)
    for con in m.component_data_objects(pe.Constraint, descend_into=False):
        state[con.name] = (str(con.expr), con.active)
    return state


def _top_level(m) -> list[tuple[str, object]]:
    return [(name, comp.ctype) for name, comp in m.component_map().items()]


def test_indexed_var_inputs_and_outputs_are_used_directly(peaks):
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-3, 3))
    m.y = pe.Var(range(1))
    m.obj = pe.Objective(expr=m.y[0])
    m.nn = ReLUNetBlock()
    before, state = _top_level(m), _user_state(m)
    m.nn.build(peaks, inputs=m.x, outputs=m.y)
    assert _top_level(m) == before
    assert _user_state(m) == state
    assert not hasattr(m.nn, "inputs") and not hasattr(m.nn, "outputs")
    assert not hasattr(m.nn, "input_box") and not hasattr(m.nn, "outputs_link")
    first = {v.name for c in m.nn.layer[0].affine.values() for v in identify_variables(c.body)}
    assert {"x[0]", "x[1]"} <= first
    last = {v.name for c in m.nn.layer[3].affine.values() for v in identify_variables(c.body)}
    assert "y[0]" in last
    # no linking rows: exactly affine + big-M rows
    assert len(block_constraints(m.nn)) == expected_constraints(peaks, m.nn.neuron_bounds)
    assert m.nn.input_vars == [m.x[0], m.x[1]] and m.nn.output_vars == [m.y[0]]
    result = solve(m, mip_gap=GAP)
    assert result.objective == pytest.approx(PEAKS_MIN["value"], abs=1e-5)


def test_list_of_vardata_and_scalar_var(peaks):
    m = pe.ConcreteModel()
    m.a = pe.Var(bounds=(-3, 3))
    m.b = pe.Var(bounds=(-3, 3))
    m.z = pe.Var()
    m.obj = pe.Objective(expr=m.z, sense=pe.maximize)
    m.nn = ReLUNetBlock()
    m.nn.build(peaks, inputs=[m.a, m.b], outputs=m.z)
    assert m.nn.input_vars == [m.a, m.b] and m.nn.output_vars == [m.z]
    result = solve(m, mip_gap=GAP)
    assert result.objective == pytest.approx(PEAKS_MAX["value"], abs=1e-5)
    assert [m.a.value, m.b.value] == pytest.approx(PEAKS_MAX["argmax"], abs=1e-4)
    assert m.nn.get_error() < FORWARD_TOLERANCE


def test_scalar_var_single_input():
    net = random_net(5, [1, 6, 6, 1], [(-2.0, 2.0)])
    grid = np.linspace(-2, 2, 200_001)[:, None]
    y = net.evaluate(grid)[:, 0]
    m = pe.ConcreteModel()
    m.t = pe.Var(bounds=(-2, 2))
    m.out = pe.Var()
    m.obj = pe.Objective(expr=m.out)
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.t, outputs=m.out)
    result = solve(m, mip_gap=GAP)
    assert result.status == "optimal"
    assert result.objective <= y.min() + 1e-6
    assert result.objective == pytest.approx(y.min(), abs=1e-3)  # the grid is fine enough
    assert m.nn.get_error() < FORWARD_TOLERANCE


def test_looser_user_bounds_get_input_box(peaks):
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-10, 10))
    m.x[1].setlb(None)
    m.x[1].setub(None)
    m.y = pe.Var()
    m.obj = pe.Objective(expr=m.y)
    m.nn = ReLUNetBlock()
    before, state = _top_level(m), _user_state(m)
    m.nn.build(peaks, inputs=m.x, outputs=[m.y])
    assert _top_level(m) == before and _user_state(m) == state
    assert (m.x[0].lb, m.x[0].ub, m.x[1].lb, m.x[1].ub) == (-10, 10, None, None)
    assert sorted(m.nn.input_box.keys()) == [0, 1]
    for i in range(2):
        con = m.nn.input_box[i]
        assert (pe.value(con.lower), pe.value(con.upper)) == (-3.0, 3.0)
    assert len(block_constraints(m.nn)) == expected_constraints(peaks, m.nn.neuron_bounds, input_box=2)
    result = solve(m, mip_gap=GAP)
    assert result.objective == pytest.approx(PEAKS_MIN["value"], abs=1e-5)
    assert values(m.x) == pytest.approx(PEAKS_MIN["argmin"], abs=1e-4)


def test_tighter_user_bounds_are_used():
    seed, sizes, box = RANDOM_CASES["3-8-8-2"]
    net = random_net(seed, sizes, box)
    wide = pe.ConcreteModel()
    wide.nn = ReLUNetBlock()
    wide.nn.build(net)
    unstable_wide = sum(r["unstable"] for r in wide.nn.stats()["layers"])

    tight_lo, tight_hi = [0.0, -0.5, 1.0], [0.3, -0.2, 1.4]
    m = pe.ConcreteModel()
    m.x = pe.Var(range(3), bounds=lambda m, i: (tight_lo[i], tight_hi[i]))
    m.y = pe.Var(range(2))
    m.obj = pe.Objective(expr=m.y[0] - m.y[1])
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=m.y)
    assert not hasattr(m.nn, "input_box")
    assert list(m.nn.neuron_bounds.input_lower) == tight_lo
    assert list(m.nn.neuron_bounds.input_upper) == tight_hi
    unstable_tight = sum(r["unstable"] for r in m.nn.stats()["layers"])
    assert unstable_tight < unstable_wide
    assert m.nn.stats()["binaries"] == unstable_tight

    result = solve(m, mip_gap=GAP)
    rng = np.random.default_rng(3)
    y = net.evaluate(rng.uniform(tight_lo, tight_hi, size=(N_SAMPLES, 3)))
    assert result.objective <= (y[:, 0] - y[:, 1]).min() + 1e-6
    assert np.all(values(m.x) >= np.array(tight_lo) - 1e-9) and np.all(values(m.x) <= np.array(tight_hi) + 1e-9)
    assert m.nn.get_error() < FORWARD_TOLERANCE


def test_input_bounds_argument_tightens_box():
    seed, sizes, box = RANDOM_CASES["4-12-1"]
    net = random_net(seed, sizes, box)
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, input_bounds={2: (0.0, 0.5)})
    assert m.nn.neuron_bounds.input_lower[2] == 0.0 and m.nn.neuron_bounds.input_upper[2] == 0.5
    assert (m.nn.inputs[2].lb, m.nn.inputs[2].ub) == (0.0, 0.5)
    assert (m.nn.inputs[0].lb, m.nn.inputs[0].ub) == (-1.0, 1.0)


def test_fixed_input_variable():
    net = random_net(21, [2, 10, 10, 1], [(-1.0, 1.0), (-1.0, 1.0)])
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-5, 5))
    m.x[0].fix(0.25)
    m.y = pe.Var()
    m.obj = pe.Objective(expr=m.y)
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=[m.y])
    # the fixed input is a point in the box; only the free, looser input needs input_box
    assert sorted(m.nn.input_box.keys()) == [1]
    assert m.nn.neuron_bounds.input_lower[0] == m.nn.neuron_bounds.input_upper[0] == 0.25
    result = solve(m, mip_gap=GAP)
    assert result.status == "optimal"
    assert m.x[0].fixed and m.x[0].value == 0.25
    grid = np.column_stack([np.full(N_SAMPLES, 0.25), np.linspace(-1, 1, N_SAMPLES)])
    y = net.evaluate(grid)[:, 0]
    assert result.objective <= y.min() + 1e-6
    assert result.objective == pytest.approx(y.min(), abs=1e-3)
    assert -1 - 1e-6 <= m.x[1].value <= 1 + 1e-6  # within the solver's feasibility tolerance
    assert m.nn.get_error() < FORWARD_TOLERANCE


def test_fixed_input_outside_box_is_rejected():
    net = random_net(21, [2, 10, 10, 1], [(-1.0, 1.0), (-1.0, 1.0)])
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2))
    m.x[0].fix(3.0)
    m.nn = ReLUNetBlock()
    with pytest.raises(MissingBoundsError, match=r"input 0 \(variable x\[0\]\).*do not overlap"):
        m.nn.build(net, inputs=m.x)


# ------------------------------------------------------------ indexed blocks
def test_indexed_block_three_periods(peaks):
    m = pe.ConcreteModel()
    m.T = pe.Set(initialize=range(3))
    m.x = pe.Var(m.T, range(2), bounds=(-3, 3))
    m.y = pe.Var(m.T)
    m.nn = ReLUNetBlock(m.T)
    before = _top_level(m)
    for t in m.T:
        m.nn[t].build(peaks, inputs=[m.x[t, 0], m.x[t, 1]], outputs=[m.y[t]])
    assert _top_level(m) == before
    m.obj = pe.Objective(expr=sum(m.y[t] for t in m.T))
    # SCIP: its components presolver splits the three independent periods (about 5 s);
    # HiGHS and CBC branch on the product of the three trees and need minutes here.
    result = solve(m, "scip", mip_gap=GAP)
    assert result.status == "optimal"
    assert result.objective == pytest.approx(3 * PEAKS_MIN["value"], abs=3e-5)
    for t in m.T:
        assert m.y[t].value == pytest.approx(PEAKS_MIN["value"], abs=1e-5)
        assert [m.x[t, 0].value, m.x[t, 1].value] == pytest.approx(PEAKS_MIN["argmin"], abs=1e-4)
        assert m.nn[t].get_error() < FORWARD_TOLERANCE
        assert m.nn[t].stats()["binaries"] == 30
        assert m.nn[t].input_vars == [m.x[t, 0], m.x[t, 1]]


def test_two_networks_share_inputs(peaks):
    other = random_net(31, [2, 8, 1], PEAKS_BOX)
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-3, 3))
    m.y = pe.Var(range(2))
    m.a = ReLUNetBlock()
    m.b = ReLUNetBlock()
    m.a.build(peaks, inputs=m.x, outputs=[m.y[0]])
    m.b.build(other, inputs=m.x, outputs=[m.y[1]])
    m.obj = pe.Objective(expr=m.y[0] + m.y[1])
    result = solve(m, mip_gap=GAP)
    assert result.status == "optimal"
    assert m.a.get_error() < FORWARD_TOLERANCE and m.b.get_error() < FORWARD_TOLERANCE
    x, _ = sample_points(peaks)
    best = (peaks.evaluate(x) + other.evaluate(x)).min()
    assert result.objective <= best + 1e-6
    point = values(m.x)
    assert result.objective == pytest.approx(peaks.evaluate(point)[0] + other.evaluate(point)[0], abs=1e-6)
    # the blocks are independent: each has its own layers and its own network
    assert m.a.network is peaks and m.b.network is other
    assert m.a.stats()["binaries"] + m.b.stats()["binaries"] == sum(
        1 for v in m.component_data_objects(pe.Var) if v.is_binary()
    )


# ------------------------------------------------------------ warm start
def _assert_consistent_with_forward(block, x) -> None:
    net = block.network
    pres = net.preactivations(np.asarray(x, float)[None, :])
    for k, (layer, pre) in enumerate(zip(net.canonical_layers, pres)):
        pre = pre[0]
        post = layer.activate(pre)
        sub = block.layer[k]
        posts = sub.post if hasattr(sub, "post") else block.output_vars
        for j in range(layer.n_outputs):
            assert posts[j].value == pytest.approx(post[j], abs=1e-9), (k, j)
        for j in sub.pre:
            assert sub.pre[j].value == pytest.approx(pre[j], abs=1e-9)
        if hasattr(sub, "is_active"):
            for j in sub.is_active:
                assert sub.is_active[j].value == (1 if pre[j] > 0 else 0)
    assert [v.value for v in block.output_vars] == pytest.approx(net.evaluate(np.asarray(x, float)), abs=1e-9)


def test_warm_start_from_input_values_is_feasible(peaks):
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-3, 3), initialize={0: 0.3, 1: -1.2})
    m.y = pe.Var()
    m.nn = ReLUNetBlock()
    m.nn.build(peaks, inputs=m.x, outputs=[m.y])
    assert values(m.x) == pytest.approx([0.3, -1.2])  # user values kept
    _assert_consistent_with_forward(m.nn, [0.3, -1.2])
    assert m.nn.get_error() < 1e-12
    assert_feasible(m)


@pytest.mark.parametrize("which", ["stable", "relu_last_scaled", "peaks_block_inputs"])
def test_warm_start_feasible_for_other_networks(which, peaks):
    if which == "stable":
        net, x = stable_net(), [0.7, 0.2]
    elif which == "relu_last_scaled":
        net, x = scaled_net("relu"), [1.5, 0.4, -2.0]
    else:
        net, x = peaks, None
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net)
    if x is None:  # no values anywhere: the centre of the box
        x = (net.input_lower + net.input_upper) / 2
    else:
        m.nn.initialize(x)
    assert values(m.nn.inputs) == pytest.approx(x)
    _assert_consistent_with_forward(m.nn, x)
    assert_feasible(m)
    # re-initialising at another point keeps the incumbent feasible
    other = net.input_lower + 0.3 * (net.input_upper - net.input_lower)
    m.nn.initialize(other)
    _assert_consistent_with_forward(m.nn, other)
    assert_feasible(m)


def test_warm_start_is_kept_by_initialize_false(peaks):
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(peaks, initialize=False)
    assert all(v.value is None for v in block_vars(m.nn, fixed=False))
    with pytest.raises(PyomoReluError, match="no value"):
        m.nn.forward()


# ------------------------------------------------------------ scaling
def scaled_net(last: str) -> NetworkDefinition:
    n_out = 2
    return random_net(
        41,
        [3, 8, 6, n_out],
        [(0.0, 2.0), (-1.0, 1.0), (-4.0, 1.0)],
        last=last,
        input_scaling=Scaling([1.0, 0.0, -1.5], [0.5, -2.0, -1.25]),
        output_scaling=Scaling([3.0, -1.0], [-2.5, 0.75]),
    )


@pytest.mark.parametrize("last", ["linear", "relu"])
def test_scaled_network_optimum_matches_sampling(last):
    net = scaled_net(last)
    # folding scalings into the chain must not change the function
    x_samples, y_samples = sample_points(net, 7)
    unfolded = x_samples
    scaled = net.input_scaling.scale(unfolded)
    for layer in net.layers:
        scaled = layer.forward(scaled)
    assert net.output_scaling.unscale(scaled) == pytest.approx(y_samples)
    for output in range(net.n_outputs):
        for sense in (pe.minimize, pe.maximize):
            m, result = optimise(net, lambda y, output=output: y[output], sense)
            assert result.status == "optimal"
            # HiGHS's integrality tolerance (1e-6) times a big-M of a few units times the output
            # scale (2.5): the forward error of a correct MILP solution reaches ~2e-6 when the
            # time-budgeted default bounds come out looser on a loaded machine.
            tolerance = 1e-5
            assert m.nn.get_error() < tolerance
            best = y_samples[:, output].min() if sense == pe.minimize else y_samples[:, output].max()
            if sense == pe.minimize:
                assert result.objective <= best + tolerance
            else:
                assert result.objective >= best - tolerance
            x = values(m.x)
            assert result.objective == pytest.approx(net.evaluate(x)[output], abs=tolerance)


def test_relu_last_layer_has_output_link():
    net = random_net(51, [2, 8, 3], [(-1.0, 1.0), (-1.0, 1.0)], last="relu")
    m, result = optimise(net, lambda y: y[0] - y[1] + 0.5 * y[2], pe.maximize)
    assert sorted(m.nn.outputs_link.keys()) == [0, 1, 2]
    last = m.nn.layer[1]
    for j in range(3):
        names = {v.name for v in identify_variables(m.nn.outputs_link[j].body)}
        assert names == {f"y[{j}]", last.post[j].name}
    assert result.status == "optimal"
    assert m.nn.get_error() < FORWARD_TOLERANCE
    _, y = sample_points(net)
    assert result.objective >= (y[:, 0] - y[:, 1] + 0.5 * y[:, 2]).max() - 1e-6
    assert len(block_constraints(m.nn)) == expected_constraints(net, m.nn.neuron_bounds)


def test_relu_last_with_output_scaling_appends_linear_layer():
    net = scaled_net("relu")
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net)
    assert len(net.canonical_layers) == len(net.layers) + 1
    assert [r["activation"] for r in m.nn.stats()["layers"]] == ["relu", "relu", "relu", "linear"]
    assert not hasattr(m.nn, "outputs_link")


# ------------------------------------------------------------ errors
def _two_input_net(bounds=None) -> NetworkDefinition:
    return NetworkDefinition(
        [DenseLayer([[1.0, -1.0], [1.0, 1.0]], [0.0, 0.0]), DenseLayer([[1.0, -2.0]], [0.0], "linear")],
        input_bounds=bounds,
    )


def test_missing_input_bound_names_index_and_variable():
    m = pe.ConcreteModel()
    m.flow = pe.Var(["a", "b"], bounds=(0, 1))
    m.flow["b"].setub(None)
    m.nn = ReLUNetBlock()
    with pytest.raises(MissingBoundsError, match=r"input 1 \(variable flow\[b\]\) has no upper bound"):
        m.nn.build(_two_input_net(), inputs=m.flow)
    assert list(m.nn.component_objects()) == []


def test_missing_input_bound_without_variables():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(MissingBoundsError, match=r"input 0 has no lower bound \(and 1 more\).*input_bounds="):
        m.nn.build(_two_input_net())


def test_wrong_number_of_input_vars():
    m = pe.ConcreteModel()
    m.x = pe.Var(range(3), bounds=(0, 1))
    m.nn = ReLUNetBlock()
    with pytest.raises(
        ShapeMismatchError, match=r"inputs has 3 variables \(x\[0\], x\[1\], x\[2\]\) but the network has 2"
    ):
        m.nn.build(_two_input_net(), inputs=m.x)
    with pytest.raises(ShapeMismatchError, match=r"outputs has 2 variables .* network has 1"):
        m.nn.build(_two_input_net(), inputs=[m.x[0], m.x[1]], outputs=[m.x[2], m.x[0]])


def test_building_twice():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    net = _two_input_net([(0, 1), (0, 1)])
    m.nn.build(net)
    with pytest.raises(PyomoReluError, match=r"block nn is already built"):
        m.nn.build(net)


def test_unknown_formulation_leaves_block_empty():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    net = _two_input_net([(0, 1), (0, 1)])
    with pytest.raises(PyomoReluError, match=r"unknown formulation 'hull'; available: .*bigm"):
        m.nn.build(net, formulation="hull")
    with pytest.raises(PyomoReluError, match=r"unknown formulation 'nope'"):
        m.nn.build(net, formulation={"default": "bigm", 1: "nope"})
    assert list(m.nn.component_objects()) == []
    m.nn.build(net)  # the failed calls left nothing behind
    assert m.nn.stats()["binaries"] == 1  # x0 - x1 straddles 0 on [0, 1]^2, x0 + x1 does not


def test_unknown_bounds_method():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(PyomoReluError, match=r"unknown bounds method 'magic'"):
        m.nn.build(_two_input_net([(0, 1), (0, 1)]), bounds="magic")
    assert list(m.nn.component_objects()) == []


def test_non_variable_inputs():
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(0, 1))
    m.nn = ReLUNetBlock()
    net = _two_input_net([(0, 1), (0, 1)])
    with pytest.raises(PyomoReluError, match=r"inputs must contain Pyomo variables; got .*x\[1\] \+ 1"):
        m.nn.build(net, inputs=[m.x[0], m.x[1] + 1])
    with pytest.raises(PyomoReluError, match=r"inputs must contain Pyomo variables; got 0.5 \(float\)"):
        m.nn.build(net, inputs=[m.x[0], 0.5])
    with pytest.raises(PyomoReluError, match=r"inputs must be a Pyomo Var or a list of VarData, not float"):
        m.nn.build(net, inputs=3.0)
    assert list(m.nn.component_objects()) == []


def test_nan_weights():
    with pytest.raises(
        InvalidNetworkError, match=re.escape("weights of layer 'fc1' contains NaN or Inf (first at index (1, 0))")
    ):
        DenseLayer([[1.0, 2.0], [np.nan, 0.0]], [0.0, 0.0], name="fc1")
    with pytest.raises(InvalidNetworkError, match=r"bias of dense layer contains NaN or Inf"):
        DenseLayer([[1.0]], [np.inf])


def test_crossed_input_bounds():
    with pytest.raises(InvalidNetworkError, match=r"input 1 has lower bound 2.0 > upper bound 1.0"):
        _two_input_net([(0, 1), (2, 1)])


def test_layer_size_mismatch():
    with pytest.raises(ShapeMismatchError, match=r"layer 1 \(out\) takes 3 inputs but layer 0 \(hidden\) gives 2"):
        NetworkDefinition(
            [
                DenseLayer(np.ones((2, 2)), np.zeros(2), name="hidden"),
                DenseLayer(np.ones((1, 3)), np.zeros(1), "linear", name="out"),
            ]
        )


def test_unbuilt_block():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(PyomoReluError, match=r"block nn is not built yet"):
        m.nn.stats()
