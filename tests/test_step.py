"""Step activations (step, sign): convention at 0, exact MILP, sound bounds, readers, verifier."""

from __future__ import annotations

import itertools

import numpy as np
import pyomo.environ as pe
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock, solve, tighten
from pyomo_relu.errors import InvalidNetworkError, InvalidValueError, UnsupportedOperatorError
from pyomo_relu.step import binarized_layer, binarized_parts, step_lines


def _step_net(seed: int, n_in: int, kinds=("sign", "step", "relu", "sign", "step"), box=(0.0, 1.0)):
    rng = np.random.default_rng(seed)
    return NetworkDefinition(
        [
            DenseLayer(rng.normal(size=(len(kinds), n_in)), rng.normal(size=len(kinds)), list(kinds)),
            DenseLayer(rng.normal(size=(4, len(kinds))), 0.3 * rng.normal(size=4), "sign"),
            DenseLayer(rng.normal(size=(1, 4)), rng.normal(size=1), "linear"),
        ],
        input_bounds=[box] * n_in,
    )


def _optimum(net: NetworkDefinition, sense, binary: bool, equal=False, **build):
    m = pe.ConcreteModel()
    m.x = pe.Var(range(net.n_inputs), within=pe.Binary if binary else pe.Reals)
    m.y = pe.Var(range(net.n_outputs))
    if equal:  # x0 == x1 without fixing them (their bounds keep the neuron unstable)
        m.equal = pe.Constraint(expr=m.x[0] == m.x[1])
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=list(m.y.values()), **build)
    m.obj = pe.Objective(expr=m.y[0], sense=sense)
    result = solve(m, "highs")
    assert result.status == "optimal"
    x = np.array([m.x[i].value for i in range(net.n_inputs)])
    return result.objective, x, m


# ------------------------------------------------------------------ convention at 0
def test_convention_at_zero_forward():
    layer = DenseLayer(np.eye(4), np.zeros(4), ["sign", "step", "sign", "step"])
    out = layer.forward(np.array([[0.0, 0.0, -1e-300, -1e-300], [5.0, 5.0, -5.0, -5.0]]))
    np.testing.assert_array_equal(out, [[1, 1, -1, 0], [1, 1, -1, 0]])


@pytest.mark.parametrize("kind, level", [("sign", 1.0), ("step", 1.0)])
def test_convention_at_zero_milp_agrees(kind, level):
    """At z = x0 - x1 = 0, the MILP is forced to the level the forward pass gives (both senses)."""
    net = NetworkDefinition(
        [DenseLayer([[1.0, -1.0]], [0.0], kind), DenseLayer([[1.0]], [0.0], "linear")], input_bounds=[(0, 1), (0, 1)]
    )
    assert net.evaluate([1.0, 1.0])[0] == level
    for sense in (pe.minimize, pe.maximize):
        value, _, _ = _optimum(net, sense, binary=False, equal=True)
        assert value == pytest.approx(level)
    # with eps=0 the MILP is the closure: both levels are allowed at 0 (a sound relaxation)
    low, _, _ = _optimum(net, pe.minimize, binary=False, equal=True, formulation=("step", {"eps": 0}))
    assert low == pytest.approx(-1.0 if kind == "sign" else 0.0)


def test_convention_at_zero_reader_agrees():
    """torch.sign(0) = 0 is read exactly (two step neurons); torch.where(z >= 0, 1, -1) is +1 at 0."""
    torch = pytest.importorskip("torch")
    from pyomo_relu import load_torch

    class Signs(torch.nn.Module):
        def __init__(self, where: bool):
            super().__init__()
            self.fc, self.where = torch.nn.Linear(2, 3), where

        def forward(self, x):
            z = self.fc(x)
            return torch.where(z >= 0, 1.0, -1.0) if self.where else torch.sign(z)

    x = np.array([[0.0, 0.0], [1.0, -1.0], [0.5, 0.25]])
    for where in (False, True):
        module = Signs(where).eval()
        with torch.no_grad():
            module.fc.weight[:] = torch.tensor([[1.0, 1.0], [1.0, -2.0], [0.0, 1.0]])
            module.fc.bias[:] = 0.0
        net = load_torch(module, example_input=torch.zeros(1, 2))
        expected = module(torch.tensor(x, dtype=torch.float32)).detach().numpy()
        np.testing.assert_array_equal(net.evaluate(x), expected)
        assert expected[0, 0] == (1.0 if where else 0.0)
        # the MILP at x = 0 gives the same outputs as the reader and the forward pass
        m = pe.ConcreteModel()
        m.x = pe.Var(range(2), bounds=(-1, 1))
        m.y = pe.Var(range(3))
        m.x[0].fix(0.0)
        m.x[1].fix(0.0)
        m.nn = ReLUNetBlock()
        m.nn.build(net, inputs=m.x, outputs=list(m.y.values()))
        for sense in (pe.minimize, pe.maximize):
            m.obj = pe.Objective(expr=sum(m.y.values()), sense=sense)
            assert solve(m, "highs").status == "optimal"
            np.testing.assert_allclose([m.y[j].value for j in range(3)], expected[0], atol=1e-6)
            m.del_component(m.obj)


# ------------------------------------------------------------------ exact MILP
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_optimum_equals_brute_force(seed):
    n = 6
    net = _step_net(seed, n)
    grid = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    values = net.evaluate(grid)[:, 0]
    for sense, best in ((pe.maximize, values.max()), (pe.minimize, values.min())):
        value, x, m = _optimum(net, sense, binary=True, bounds="crown")
        assert value == pytest.approx(best, abs=1e-6)
        assert net.evaluate(x)[0] == pytest.approx(value, abs=1e-6)  # re-checked by the forward pass
        assert m.nn.get_error() < 1e-6
        stats = m.nn.stats()  # one binary per unstable step or ReLU neuron
        assert stats["binaries"] == sum(row["unstable"] for row in stats["layers"]) > 0


def test_binarized_layers_integral_eps_one():
    """A binarized network on binary inputs: integral pre-activations, eps=1 is exact."""
    rng = np.random.default_rng(5)
    n = 7
    net = NetworkDefinition(
        [
            binarized_layer(rng.choice([-1, 1], size=(5, n)), rng.integers(-2, 3, 5).astype(float)),
            binarized_layer(rng.choice([-1, 0, 1], size=(1, 5)), [0.0], "linear", ternary=True),
        ],
        input_bounds=[(0, 1)] * n,
    )
    grid = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    values = net.evaluate(grid)[:, 0]
    value, x, _ = _optimum(net, pe.maximize, binary=True, formulation=("step", {"eps": 1}))
    assert value == pytest.approx(values.max()) and net.evaluate(x)[0] == pytest.approx(value)
    signs, scale = binarized_parts(net.layers[0], ternary=False)
    np.testing.assert_array_equal(scale, 1.0)
    assert set(np.unique(signs)) <= {-1.0, 1.0}


def test_binarized_layer_refuses_other_weights():
    with pytest.raises(InvalidNetworkError, match="ternary=True"):
        binarized_layer([[1, 0]], [0.0])
    with pytest.raises(InvalidNetworkError, match="positive"):
        binarized_layer([[1, -1]], [0.0], scale=-1.0)
    assert binarized_parts(DenseLayer([[0.5, 0.25]], [0.0])) is None


def test_step_option_is_checked():
    net = _step_net(0, 3)
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(InvalidValueError, match="eps"):
        m.nn.build(net, formulation=("step", {"eps": -1}))


# ------------------------------------------------------------------ bounds
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_in=st.integers(1, 4))
def test_bounds_sound_on_random_step_networks(seed, n_in):
    net = _step_net(seed, n_in, box=(-1.0, 1.0))
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.uniform(-1, 1, size=(400, n_in)), np.array(list(itertools.product([-1.0, 1.0], repeat=n_in)))])
    pres = net.preactivations(X)
    for method in ("interval", "crown", "lp"):
        bounds = tighten(net, method)
        for pre, low, high in zip(pres, bounds.lower, bounds.upper):
            assert np.all(pre >= low - 1e-7) and np.all(pre <= high + 1e-7), method


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(["step", "sign"]),
    low=st.floats(-5, 5) | st.sampled_from([-5e-324, 0.0, -1.0]),
    width=st.floats(0, 10) | st.sampled_from([1e-320, 5e-324]),
    z=st.floats(0, 1),
)
def test_step_lines_sound(kind, low, width, z):
    lower, upper = np.array([low]), np.array([low + width])
    point = lower + z * (upper - lower)
    a_u, c_u, a_l, c_l = step_lines(np.array([kind]), lower, upper)
    h = DenseLayer([[1.0]], [0.0], kind).activate(point)
    assert a_l * point + c_l <= h + 1e-12 and h <= a_u * point + c_u + 1e-12


def test_milp_bounds_are_exact_on_a_small_net():
    net = _step_net(3, 3, box=(-1.0, 1.0))
    bounds = tighten(net, "milp")
    X = np.random.default_rng(0).uniform(-1, 1, size=(20000, 3))
    out = net.preactivations(X)[-1]
    assert np.all(out >= bounds.lower[-1] - 1e-7) and np.all(out <= bounds.upper[-1] + 1e-7)


# ------------------------------------------------------------------ verifier
def test_verifier_on_a_sign_network():
    from pyomo_relu.verify import robustness_property, verify

    rng = np.random.default_rng(2)
    net = NetworkDefinition(
        [
            DenseLayer(rng.normal(size=(8, 4)), rng.normal(size=8), "sign"),
            DenseLayer(rng.normal(size=(3, 8)), rng.normal(size=3), "linear"),
        ],
        input_bounds=[(-1, 1)] * 4,
    )
    x0 = rng.uniform(-1, 1, 4)
    label = int(np.argmax(net.evaluate(x0)))
    assert verify(net, robustness_property(x0, 0.01, label, 3), time_limit=30).status == "unsat"
    result = verify(net, robustness_property(x0, 0.5, label, 3), time_limit=30)
    assert result.status == "sat"
    x = result.counterexample[0]
    assert np.all(np.abs(x - x0) <= 0.5 + 1e-9)
    assert int(np.argmax(net.evaluate(x))) != label


# ------------------------------------------------------------------ readers
def _torch_net(kind: str):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            z = self.a(x)
            h = {
                "sign": lambda: torch.sign(z),
                "ste": lambda: z + (torch.sign(z) - z).detach(),
                "heaviside": lambda: (z > 0).float(),
                "le": lambda: (z <= 0.5).float(),
                "lt": lambda: (z < 0.25).float(),
                "where": lambda: torch.where(z >= 0, 1.0, -1.0),
                "round": lambda: torch.round(z),
                "eq": lambda: (z == 0).float(),
            }[kind]()
            return self.b(h)

    torch.manual_seed(0)
    module = Net().eval()
    with torch.no_grad():
        module.a.bias[:] = 0.0  # x = 0 puts every pre-activation at 0
    return torch, module


@pytest.mark.parametrize("kind", ["sign", "ste", "heaviside", "le", "lt", "where"])
def test_torch_step_patterns_match_torch(kind):
    from pyomo_relu import load_torch

    torch, module = _torch_net(kind)
    X = torch.cat([torch.randn(300, 3), torch.zeros(1, 3)])
    net = load_torch(module, example_input=X[:1])
    assert any(layer.step_mask.any() for layer in net.canonical_layers)
    np.testing.assert_allclose(net.evaluate(X.numpy().astype(float)), module(X).detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("kind, op", [("round", "Round"), ("eq", "Equal")])
def test_unsupported_step_forms_are_refused_by_name(kind, op):
    from pyomo_relu import load_torch

    torch, module = _torch_net(kind)
    with pytest.raises(UnsupportedOperatorError, match=op):
        load_torch(module, example_input=torch.zeros(1, 3))


def test_onnx_where_with_input_branches_is_refused():
    from onnx import TensorProto, helper

    from pyomo_relu import load_onnx

    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    graph = helper.make_graph(
        [
            helper.make_node("GreaterOrEqual", ["x", "zero"], ["c"], name="ge"),
            helper.make_node("Where", ["c", "x", "zero"], ["y"], name="where"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOperatorError, match="where"):
        load_onnx(model)
