"""Readers for the layer types beyond Dense/ReLU: activations, max pooling, residual DAGs.

Every model is built here with random weights (torch modules, hand-made ONNX graphs):
``net.evaluate`` must equal the framework's own prediction within 1e-5, and the MILP's
min and max of an output over a small box must be attained by the forward pass at the
solution and be at least as good as every sampled input.
"""

from __future__ import annotations

import numpy as np
import onnx
import pyomo.environ as pe
import pytest
from onnx import TensorProto, helper, numpy_helper

from pyomo_relu import ReLUNetBlock, load_onnx, solve
from pyomo_relu.errors import UnsupportedOperatorError

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
nn = torch.nn

from pyomo_relu.io.torch import load_torch  # noqa: E402


def _torch_outputs(module: nn.Module, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    with torch.no_grad():
        return (
            module.eval()(torch.tensor(x.reshape(-1, *shape), dtype=torch.float32)).double().numpy().reshape(len(x), -1)
        )


def _milp_matches_samples(net, rng, output: int = 0, n_samples: int = 4000, time_limit: float = 120) -> None:
    """min and max of one output by MILP: attained at the solution, no sample beats them."""
    lower, upper = net.input_lower, net.input_upper
    samples = net.evaluate(rng.uniform(lower, upper, size=(n_samples, net.n_inputs)))[:, output]
    for sense in (pe.minimize, pe.maximize):
        m = pe.ConcreteModel()
        m.nn = ReLUNetBlock()
        m.nn.build(net, bounds=["interval", "crown"])
        m.obj = pe.Objective(expr=m.nn.outputs[output], sense=sense)
        result = solve(m, "highs", time_limit=time_limit)
        assert result.status == "optimal", result
        x = np.array([m.nn.inputs[i].value for i in range(net.n_inputs)])
        assert abs(net.evaluate(x)[output] - result.objective) < 1e-5
        assert m.nn.get_error() < 1e-5
        if sense == pe.minimize:
            assert result.objective <= samples.min() + 1e-6
        else:
            assert result.objective >= samples.max() - 1e-6


# ------------------------------------------------------------------- torch
ACTIVATIONS = {
    "LeakyReLU": lambda: nn.LeakyReLU(0.07),
    "PReLU": lambda: nn.PReLU(4, init=0.3),
    "ReLU6": nn.ReLU6,
    "Hardtanh": lambda: nn.Hardtanh(-0.5, 0.8),
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "Softplus": nn.Softplus,
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("route", ["direct", "onnx"])
def test_torch_activation_matches_the_module(name: str, route: str, rng: np.random.Generator) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), ACTIVATIONS[name](), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        if name == "PReLU":
            model[1].weight.copy_(torch.tensor([0.3, -0.2, 0.5, 1.5]))
        model[0].weight.mul_(4.0)  # reach the clipped / saturated parts
    if route == "onnx":
        model = nn.Sequential(nn.Unflatten(1, (3,)), *model)  # Unflatten forces the ONNX route
        net = load_torch(model, example_input=torch.zeros(1, 3), input_bounds=[(-1, 1)] * 3)
    else:
        net = load_torch(model, input_bounds=[(-1, 1)] * 3)
    x = rng.uniform(-1, 1, size=(300, 3))
    np.testing.assert_allclose(net.evaluate(x), _torch_outputs(model, x, (3,)), atol=1e-5)
    if name not in ("Sigmoid", "Tanh", "Softplus"):
        _milp_matches_samples(net, rng)
    else:
        assert net.has_smooth_activations


class _Residual(nn.Module):
    """Two residual blocks (Add of a skip), a concatenation branch and a LeakyReLU head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(3, 6)
        self.block1 = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6))
        self.block2 = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 6))
        self.side = nn.Linear(3, 2)
        self.head = nn.Linear(8, 2)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.block1(h))
        h = h + self.block2(h)
        return self.head(self.act(torch.cat([h, self.side(x)], dim=1)))


def test_residual_network_matches_and_optimises(rng: np.random.Generator) -> None:
    torch.manual_seed(2)
    model = _Residual()
    net = load_torch(model, example_input=torch.zeros(1, 3), input_bounds=[(-1, 1)] * 3)
    x = rng.uniform(-1, 1, size=(300, 3))
    np.testing.assert_allclose(net.evaluate(x), _torch_outputs(model, x, (3,)), atol=1e-5)
    assert any(layer.activation == "mixed" for layer in net.layers)  # skips ride as linear neurons
    _milp_matches_samples(net, rng, output=1)


class _SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1, stride=1),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.MaxPool2d(2, stride=2, padding=1),
            nn.Conv2d(3, 4, 2, stride=1, dilation=1, groups=1),
            nn.LeakyReLU(0.05),
            nn.MaxPool2d(2, stride=1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 2 * 2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_cnn_with_max_pooling_matches_and_optimises(rng: np.random.Generator) -> None:
    torch.manual_seed(3)
    model = _SmallCNN()
    with torch.no_grad():
        bn = model.features[1]
        bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.05]))
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.2]))
    centre = rng.uniform(0, 1, size=(1, 1, 6, 6))
    net = load_torch(model, example_input=torch.zeros(1, 1, 6, 6))
    assert sum(type(layer).__name__ == "MaxLayer" for layer in net.layers) == 2
    x = rng.uniform(0, 1, size=(200, 36))
    np.testing.assert_allclose(net.evaluate(x), _torch_outputs(model, x, (1, 6, 6)), atol=1e-5)
    box = net.with_input_bounds((np.clip(centre.ravel() - 0.1, 0, 1), np.clip(centre.ravel() + 0.1, 0, 1)))
    _milp_matches_samples(box, rng, output=2)


def test_torch_refuses_softplus_with_beta() -> None:
    with pytest.raises(UnsupportedOperatorError, match="beta"):
        load_torch(nn.Sequential(nn.Linear(2, 2), nn.Softplus(beta=2.0)))


# -------------------------------------------------------------------- ONNX
def _model(nodes, in_shape, out_shape, inits=(), opset: int = 17) -> onnx.ModelProto:
    info = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape])  # noqa: E731
    graph = helper.make_graph(
        nodes,
        "layers",
        [info("x", in_shape)],
        [info("y", out_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _check_ort(model: onnx.ModelProto, rng: np.random.Generator, low: float = -2, high: float = 2):
    net = load_onnx(model)
    x = rng.uniform(low, high, size=(200, net.n_inputs)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x.reshape(-1, *net.input_shape[1:])})[0].reshape(len(x), -1)
    np.testing.assert_allclose(net.evaluate(x.astype(float)), expected, atol=1e-5)
    return net


@pytest.mark.parametrize(
    "node, inits, opset",
    [
        (helper.make_node("LeakyRelu", ["h"], ["a"], alpha=0.2), [], 17),
        (helper.make_node("PRelu", ["h", "slope"], ["a"]), [("slope", [0.1, -0.3, 0.7, 0.0])], 17),
        (helper.make_node("Clip", ["h", "lo", "hi"], ["a"]), [("lo", -0.5), ("hi", 0.7)], 17),
        (helper.make_node("Clip", ["h", "", "hi"], ["a"]), [("hi", 0.3)], 17),
        (helper.make_node("Clip", ["h"], ["a"], min=0.0, max=6.0), [], 10),
        (helper.make_node("HardSigmoid", ["h"], ["a"], alpha=0.3, beta=0.4), [], 17),
        (helper.make_node("Sigmoid", ["h"], ["a"]), [], 17),
        (helper.make_node("Tanh", ["h"], ["a"]), [], 17),
        (helper.make_node("Softplus", ["h"], ["a"]), [], 17),
    ],
    ids=["leaky", "prelu", "clip", "clip-max-only", "clip-attrs", "hardsigmoid", "sigmoid", "tanh", "softplus"],
)
def test_onnx_activation_matches_onnxruntime(node, inits, opset, rng: np.random.Generator) -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], transB=1),
        node,
        helper.make_node("Gemm", ["a", "W2", "b2"], ["y"], transB=1),
    ]
    inits = [
        ("W", rng.normal(size=(4, 3)) * 2),
        ("b", rng.normal(size=4)),
        ("W2", rng.normal(size=(2, 4))),
        ("b2", rng.normal(size=2)),
    ] + inits
    net = _check_ort(_model(nodes, [3], [2], inits, opset), rng)
    if node.op_type not in ("Sigmoid", "Tanh", "Softplus"):
        _milp_matches_samples(net.with_input_bounds([(-1, 1)] * 3), rng)


@pytest.mark.parametrize(
    "attrs",
    [
        {"kernel_shape": [2, 2]},
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
        {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
        {"kernel_shape": [2, 3], "dilations": [2, 1]},
    ],
    ids=["plain", "pads-strides", "ceil", "dilated"],
)
def test_onnx_max_pool_matches_onnxruntime(attrs: dict, rng: np.random.Generator) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "K"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c"], ["p"], **attrs),
        helper.make_node("Flatten", ["p"], ["y"]),
    ]
    model = _model(nodes, [1, 5, 5], [None], [("K", rng.normal(size=(2, 1, 3, 3)))], 17)
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "F"
    net = _check_ort(model, rng)
    _milp_matches_samples(net.with_input_bounds([(-1, 1)] * 25), rng, output=1, n_samples=1000)


def test_onnx_global_max_pool_and_residual_add(rng: np.random.Generator) -> None:
    """``y = flatten(globalmaxpool(relu(conv(x)) + conv(x)))``: a skip around a ReLU, then a max."""
    nodes = [
        helper.make_node("Conv", ["x", "K"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Add", ["r", "c"], ["s"]),
        helper.make_node("GlobalMaxPool", ["s"], ["g"]),
        helper.make_node("Flatten", ["g"], ["y"]),
    ]
    net = _check_ort(_model(nodes, [1, 4, 4], [2], [("K", rng.normal(size=(2, 1, 2, 2)))]), rng)
    assert [type(layer).__name__ for layer in net.layers] == ["DenseLayer", "MaxLayer"]
    _milp_matches_samples(net.with_input_bounds([(-1, 1)] * 16), rng)


def test_unsupported_activation_is_named(rng: np.random.Generator) -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], transB=1),
        helper.make_node("Elu", ["h"], ["y"], name="elu"),
    ]
    model = _model(nodes, [2], [2], [("W", np.eye(2)), ("b", np.zeros(2))])
    with pytest.raises(UnsupportedOperatorError, match=r"'elu' \(op Elu\) is not supported"):
        load_onnx(model)
