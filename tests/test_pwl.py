"""Certified piecewise-linear relaxation of smooth networks (``formulation="pwl"``).

The true optimum of small tanh/sigmoid/softplus networks (dense sampling, and SCIP on the
exact NLP) must lie in the certified interval that ``solve`` reports; the enclosure must
hold everywhere (hypothesis) and tighter tolerances must shrink the interval.
"""

from __future__ import annotations

import helpers
import numpy as np
import pyomo.environ as pe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyomo_relu import DenseLayer, NetworkDefinition, PyomoReluError, ReLUNetBlock, UnsupportedOperatorError
from pyomo_relu.certify import certify_point
from pyomo_relu.network import smooth_value
from pyomo_relu.smooth import enclosure
from pyomo_relu.solvers import solve


def random_net(seed: int, kind: str, sizes=(2, 6, 6, 1), scale: float = 1.5) -> NetworkDefinition:
    return helpers.random_net(seed, sizes, 1.5, hidden=kind, weight_scale=scale)


def build(net: NetworkDefinition, formulation, sense=pe.minimize):
    m = pe.ConcreteModel()
    m.x = pe.Var(range(net.n_inputs), bounds=(-1.5, 1.5))
    m.y = pe.Var()
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=[m.y], formulation=formulation, bounds=["interval", "crown"])
    m.obj = pe.Objective(expr=m.y, sense=sense)
    return m


def sampled_optimum(net: NetworkDefinition, sense: str, n: int = 401) -> float:
    g = np.linspace(-1.5, 1.5, n)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    y = net.evaluate(grid)[:, 0]
    return float(y.min() if sense == "minimize" else y.max())


# ------------------------------------------------------------------ enclosure
@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["tanh", "sigmoid", "softplus"]),
    lo=st.floats(-12, 6),
    width=st.floats(0, 14),
    option=st.one_of(
        st.builds(lambda t: {"tolerance": t}, st.floats(1e-4, 0.5)),
        st.builds(lambda p: {"pieces": p}, st.integers(1, 9)),
    ),
)
def test_enclosure_is_sound_and_meets_its_tolerance(kind, lo, width, option):
    up = lo + width
    enc = enclosure(kind, np.array([lo]), np.array([up]), **option)
    z = np.concatenate([np.linspace(lo, up, 3001), enc.breakpoints[0]])
    f = smooth_value(kind, z)
    assert np.all(enc.lower_at(0, z) <= f) and np.all(f <= enc.upper_at(0, z))
    if "tolerance" in option:
        assert enc.width[0] <= option["tolerance"]
    else:
        assert enc.pieces[0] <= option["pieces"]
    assert np.all(np.diff(enc.breakpoints[0]) >= 0)


def test_breakpoint_at_the_inflection_point_and_fewer_pieces_where_saturated():
    enc = enclosure("tanh", np.array([-4.0, 3.0]), np.array([4.0, 11.0]), tolerance=0.01)
    assert 0.0 in enc.breakpoints[0]
    assert enc.pieces[1] < enc.pieces[0] / 3
    fine = enclosure("tanh", np.array([-4.0]), np.array([4.0]), tolerance=0.001)
    assert fine.pieces[0] > enc.pieces[0]


def test_bad_options_are_refused_before_building():
    net = random_net(0, "tanh")
    for options, match in (
        ({"tolerance": 0.0}, "tolerance"),
        ({"pieces": 0}, "pieces"),
        ({"pieces": 3, "tolerance": 0.1}, "not both"),
        ({"tol": 0.1}, "unknown option 'tol'; valid options: pieces, tolerance"),
    ):
        m = pe.ConcreteModel()
        m.nn = ReLUNetBlock()
        with pytest.raises(PyomoReluError, match=match):
            m.nn.build(net, formulation=("pwl", options))
        assert m.nn.component("layer") is None


def test_other_milp_formulations_point_to_pwl():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(UnsupportedOperatorError, match="pwl"):
        m.nn.build(random_net(0, "sigmoid"), formulation="bigm")


# ------------------------------------------------------------------ the block
def test_binaries_only_for_neurons_spanning_several_pieces():
    net = random_net(3, "tanh")
    m = build(net, ("pwl", {"tolerance": 0.05}))
    expected = sum(int(len(b) - 2) for k in range(2) for b in m.nn.layer[k]._pwl.breakpoints if len(b) > 2)
    assert m.nn.stats()["binaries"] == expected > 0
    coarse = build(net, ("pwl", {"pieces": 1}))
    assert coarse.nn.stats()["binaries"] == 0


def test_forward_pass_is_feasible_and_error_bound_holds():
    net = random_net(5, "sigmoid", sizes=(2, 5, 4, 2))
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, formulation=("pwl", {"tolerance": 0.02}))
    m.nn.initialize([0.3, -0.7])
    violated = [
        c.name
        for c in m.nn.component_data_objects(pe.Constraint, active=True, descend_into=True)
        if (c.lower is not None and pe.value(c.body) < pe.value(c.lower) - 1e-9)
        or (c.upper is not None and pe.value(c.body) > pe.value(c.upper) + 1e-9)
    ]
    assert not violated
    error = m.nn.approximation_error()
    assert error.shape == (2,) and np.all(error > 0)
    # push each output of the relaxation as far as possible from the network at fixed inputs
    rng = np.random.default_rng(0)
    for x in rng.uniform(-1.5, 1.5, (3, 2)):
        truth = net.evaluate(x)
        for j in range(2):
            for sense in (pe.minimize, pe.maximize):
                for i, v in enumerate(x):
                    m.nn.inputs[i].fix(float(v))
                m.obj = pe.Objective(expr=m.nn.outputs[j], sense=sense)
                r = solve(m)
                assert r.status == "optimal"
                assert abs(r.objective - truth[j]) <= error[j] + 1e-6
                m.del_component(m.obj)


@pytest.mark.parametrize(
    "kind,seed,sense",
    [("tanh", 1, "minimize"), ("sigmoid", 2, "maximize"), ("tanh", 4, "maximize"), ("softplus", 6, "minimize")],
)
def test_certified_interval_holds_the_true_optimum(kind, seed, sense):
    net = random_net(seed, kind)
    widths = []
    truth = sampled_optimum(net, sense)
    for tol in (0.2, 0.01):
        m = build(net, ("pwl", {"tolerance": tol}), pe.minimize if sense == "minimize" else pe.maximize)
        r = solve(m)
        cert = r.certified
        assert r.status == "optimal" and cert is not None and cert.sense == sense
        # the true optimum is at least as good as the best sample: the proven end must not pass it
        if sense == "minimize":
            assert cert.lower <= truth + 1e-6
        else:
            assert cert.upper >= truth - 1e-6
        assert cert.lower <= cert.upper + 1e-6
        # the feasible end is a real point of the network, checked by the forward pass
        x = cert.inputs["nn"]
        assert cert.value == pytest.approx(float(net.evaluate(x)[0]), abs=1e-7)
        assert m.nn.get_error() < 1e-7  # the true-feasible point is what the model now holds
        assert cert.max_violation < 1e-6
        # bound and value differ by the relaxed and the true output at one point (plus the MIP gap)
        assert cert.gap <= cert.approximation_error["nn"][0] + 1e-3 * max(1.0, abs(cert.value))
        widths.append(cert.gap)
    assert widths[1] < widths[0]


def test_scip_on_the_exact_nlp_lies_inside_the_interval():
    net = random_net(7, "tanh", sizes=(2, 5, 1))
    exact = build(net, "complementarity")
    r_exact = solve(exact, "scip", time_limit=60)
    assert r_exact.status == "optimal" and r_exact.certified is None
    relaxed = build(net, ("pwl", {"tolerance": 0.01}))
    cert = solve(relaxed).certified
    assert cert.lower - 1e-6 <= r_exact.objective <= cert.upper + 1e-6
    assert sampled_optimum(net, "minimize") >= cert.lower - 1e-6


def test_side_constraints_are_rechecked_at_the_true_outputs():
    net = random_net(1, "tanh")
    m = build(net, ("pwl", {"tolerance": 0.05}))
    m.z = pe.Var(bounds=(-10, 10))
    m.link = pe.Constraint(expr=m.z >= 2 * m.y + m.x[0])
    m.del_component(m.obj)
    m.obj = pe.Objective(expr=m.z)
    cert = solve(m).certified
    x, y = cert.inputs["nn"], cert.outputs["nn"]
    assert cert.value == pytest.approx(2 * y[0] + x[0], abs=1e-6)
    assert pe.value(m.z) == pytest.approx(cert.value)


def test_certify_point_is_plain_numpy():
    net = random_net(2, "sigmoid")
    cert = certify_point(net, [5.0, 0.0], bound=-10.0, sense="minimize", objective=lambda x, y: float(y[0]))
    assert cert.inputs["network"][0] == 1.5  # clipped to the box
    assert cert.value == pytest.approx(float(net.evaluate([1.5, 0.0])[0]))
    assert cert.lower == -10.0 and cert.gap == pytest.approx(cert.value + 10.0)
    assert "true optimum in" in str(cert)


def test_relu_networks_have_no_certificate_and_zero_error():
    net = NetworkDefinition(
        [DenseLayer([[1.0, -1.0]], [0.0]), DenseLayer([[1.0]], [0.0], "linear")], input_bounds=[(-1, 1), (-1, 1)]
    )
    m = build(net, "bigm")
    assert solve(m).certified is None
    assert m.nn.approximation_error().tolist() == [0.0]
    r = build(net, "relaxation")
    assert r.nn.approximation_error()[0] == pytest.approx(1.0)  # triangle height -l u / (u - l), z in [-2, 2]
    res = solve(r)
    assert res.certified is None  # relaxation blocks are solved for their bound alone
    from pyomo_relu.certify import certify_solution

    cert = certify_solution(r, res, blocks=[r.nn], load="relaxed")
    assert cert.lower <= 0.0 <= cert.upper + 1e-9  # min relu(x0 - x1) = 0
    assert cert.approximation_error["nn"][0] == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["tanh", "sigmoid", "softplus"]),
    lo=st.floats(-8, 4),
    width=st.floats(0.01, 10),
    tol=st.floats(1e-3, 0.3),
)
def test_above_and_below_bound_the_band_everywhere(kind, lo, width, tol):
    enc = enclosure(kind, np.array([lo]), np.array([lo + width]), tolerance=tol)
    z = np.linspace(lo, lo + width, 4001)
    f = smooth_value(kind, z)
    assert np.max(enc.upper_at(0, z) - f) <= enc.above[0] + 1e-12
    assert np.max(f - enc.lower_at(0, z)) <= enc.below[0] + 1e-12
    assert max(enc.above[0], enc.below[0]) <= enc.width[0] + 1e-15


def test_pieces_option_caps_the_pieces_of_every_neuron():
    net = random_net(8, "tanh")
    m = build(net, ("pwl", {"pieces": 3}))
    for k in range(2):
        assert all(len(b) - 1 <= 3 for b in m.nn.layer[k]._pwl.breakpoints)
    assert m.nn.stats()["binaries"] <= 2 * 12


def test_no_feasible_end_when_the_true_outputs_break_the_model():
    net = random_net(1, "tanh")
    truth = sampled_optimum(net, "minimize")
    m = build(net, ("pwl", {"tolerance": 0.3}))
    m.y.setub(truth - 0.05)  # a target only the relaxation can reach, if any
    r = solve(m)
    cert = r.certified
    if r.has_solution:
        assert cert.value is None and "no true-feasible point" in cert.message
        assert cert.upper == float("inf") and cert.gap is None
        assert m.nn.get_error() > 0  # the relaxed solution is restored
    else:
        assert r.status == "infeasible" and "infeasible" in cert.message
