"""Conv, AveragePool, GlobalAveragePool and Concat in the ONNX reader (affine tracking).

Compared with onnxruntime (the OMLT conv files, hand-built graphs) and with torch (modules
exported by ``torch.onnx.export(..., dynamo=False)``), plus one MILP optimum.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyomo.environ as pe
import pytest
import scipy.sparse as sp
from onnx import TensorProto, helper, numpy_helper

import pyomo_relu.io.onnx.tensor as onnx_tensor
from pyomo_relu.block import ReLUNetBlock
from pyomo_relu.errors import ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.onnx import load_onnx
from pyomo_relu.solvers import solve

torch = pytest.importorskip("torch")
nn = torch.nn

DATA = Path(__file__).parent / "data" / "omlt_models"
REFERENCE = json.loads((DATA / "reference_values.json").read_text())
TOL = 1e-5


# --------------------------------------------------------------------------- helpers
def _assert_close(actual, expected, tol: float = TOL) -> None:
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected), initial=0.0) <= tol


def _ort(model: str | Path | onnx.ModelProto, x: np.ndarray, shape) -> np.ndarray:
    """onnxruntime outputs, one sample at a time, flattened to rows."""
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rows = [session.run(None, {name: row.reshape(shape).astype(np.float32)})[0] for row in x]
    return np.stack([np.ravel(r) for r in rows])


def _export(module, example) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
    return onnx.load_from_string(buffer.getvalue())


def _check_against_torch(module, in_shape, rng, n: int = 64, ops: set[str] | None = None):
    """Export ``module``, load it, compare with torch on ``n`` random inputs; return net."""
    torch.manual_seed(0)
    model = _export(module, torch.zeros(1, *in_shape))
    if ops is not None:
        assert ops <= {node.op_type for node in model.graph.node}
    net = load_onnx(model)
    assert net.input_shape == (1, *in_shape)
    x = rng.uniform(-1, 1, (n, *in_shape)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy().reshape(n, -1)
    _assert_close(net.evaluate(x.reshape(n, -1).astype(np.float64)), expected)
    return net


def _info(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _graph_model(nodes, in_shape, out_shape, inits=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "conv-test",
        [_info("x", ["N", *in_shape])],
        [_info("y", ["N", *out_shape])],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _check_against_ort(model: onnx.ModelProto, rng, n: int = 50):
    net = load_onnx(model)
    x = rng.uniform(-1, 1, (n, net.n_inputs))
    _assert_close(net.evaluate(x), _ort(model, x, net.input_shape))
    return net


# ------------------------------------------------------------------ OMLT conv files
@pytest.mark.parametrize("name", ["keras_conv_7x7_relu.onnx", "convx1_gemmx1.onnx"])
def test_omlt_conv_files_match_onnxruntime(name, rng):
    path = DATA / name
    net = load_onnx(path)
    assert net.input_shape == (1, 1, 7, 7)
    assert [layer.activation for layer in net.layers] == ["relu"]
    x = rng.uniform(0, 1, (200, 49))
    _assert_close(net.evaluate(x), _ort(path, x, (1, 1, 7, 7)))


def test_keras_conv_fixed_input_reference():
    ref = REFERENCE["keras_conv_7x7_relu.onnx"]
    net = load_onnx(DATA / "keras_conv_7x7_relu.onnx")
    assert net.n_outputs == 36
    y = net.evaluate(np.eye(7).reshape(1, 49))
    _assert_close(y.reshape(6, 6), ref["fixed_input_reference"]["y_onnxruntime"])
    # the first (only) layer is exactly the 2x2 kernel slid over the 7x7 image
    kernel = np.array(ref["kernel"])
    weights = net.layers[0].weights.reshape(6, 6, 7, 7)
    np.testing.assert_allclose(weights[2, 3, 2:4, 3:5], kernel, rtol=1e-6)
    assert np.count_nonzero(weights[2, 3]) == 4
    assert not np.any(net.layers[0].bias)


def test_convx1_gemmx1_fixed_input_reference():
    ref = REFERENCE["convx1_gemmx1.onnx"]["fixed_input_reference"]
    net = load_onnx(DATA / "convx1_gemmx1.onnx")
    (layer,) = net.layers
    _assert_close(layer.bias, [ref["pre_relu"]])
    _assert_close(net.evaluate(np.zeros((1, 49))), [[ref["y_onnxruntime"]]])


@pytest.mark.parametrize(
    "name, key, bound_key, output",
    [
        ("convx1_gemmx1.onnx", "derived_exact_over_box[0,1]^49", "max_y", 0),
        ("keras_conv_7x7_relu.onnx", "derived_exact_over_bounds[0,1]^49", "each_output_max", 14),
    ],
)
def test_milp_maximum_over_the_unit_box_matches_the_derived_optimum(name, key, bound_key, output):
    expected = REFERENCE[name][key][bound_key]
    net = load_onnx(DATA / name, input_bounds=[(0.0, 1.0)] * 49)
    m = pe.ConcreteModel()
    m.x = pe.Var(range(49), bounds=(0.0, 1.0))
    m.y = pe.Var(range(net.n_outputs))
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=m.y)
    m.obj = pe.Objective(expr=m.y[output], sense=pe.maximize)
    result = solve(m, "highs")
    assert abs(result.objective - expected) <= TOL
    x = np.array([m.x[i].value for i in range(49)])
    assert abs(net.evaluate(x[None])[0, output] - expected) <= TOL


# ------------------------------------------------------------- torch-exported models
CONV2D_CASES = {  # Conv2d keyword arguments (in 4 channels, 6 out, 9x8 image)
    "plain": dict(kernel_size=3),
    "no-bias": dict(kernel_size=3, bias=False),
    "pad1": dict(kernel_size=3, padding=1),
    "stride2-pad2": dict(kernel_size=(3, 2), stride=2, padding=(2, 1)),
    "dilation2": dict(kernel_size=3, dilation=2, padding=1),
    "groups2-stride": dict(kernel_size=2, groups=2, stride=(1, 2)),
    "depthwise": dict(kernel_size=3, groups=2, padding="same", bias=False),
    "same-dilated": dict(kernel_size=(2, 3), dilation=(2, 1), padding="same"),
    "1x1": dict(kernel_size=1, stride=3),
}


@pytest.mark.parametrize("kwargs", CONV2D_CASES.values(), ids=CONV2D_CASES.keys())
def test_conv2d_matches_torch(kwargs, rng):
    torch.manual_seed(1)
    out = 4 if kwargs.get("groups") == 2 and kwargs.get("bias") is False else 6
    module = nn.Conv2d(4, out, **kwargs)
    with torch.no_grad():
        module.weight.mul_(3.0)
    net = _check_against_torch(module, (4, 9, 8), rng, ops={"Conv"})
    assert [layer.activation for layer in net.layers] == ["linear"]


def test_conv1d_matches_torch(rng):
    torch.manual_seed(2)
    module = nn.Sequential(
        nn.Conv1d(3, 5, 4, stride=2, padding=3, dilation=2),
        nn.ReLU(),
        nn.Conv1d(5, 2, 3, groups=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * 7, 2),
    )
    net = _check_against_torch(module, (3, 17), rng, ops={"Conv"})
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "linear"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2),
        dict(kernel_size=3, stride=2, padding=1),  # count_include_pad=True by default
        dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
        dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), count_include_pad=False),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        dict(kernel_size=2, stride=2, ceil_mode=True),
        dict(kernel_size=2, stride=3, padding=1, ceil_mode=True),  # last window dropped
    ],
    ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()),
)
def test_avgpool2d_matches_torch(kwargs, rng):
    module = nn.Sequential(nn.Conv2d(2, 3, 2), nn.AvgPool2d(**kwargs))
    _check_against_torch(module, (2, 8, 9), rng, ops={"AveragePool"})


def test_adaptive_avgpool_becomes_global_average_pool(rng):
    torch.manual_seed(3)
    module = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    net = _check_against_torch(module, (3, 6, 5), rng, ops={"GlobalAveragePool"})
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]


@pytest.mark.parametrize("pool", [False, True])
def test_conv_relu_conv_relu_flatten_linear_chain(pool, rng):
    torch.manual_seed(4)
    layers = [nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()]
    if pool:
        layers.append(nn.AvgPool2d(2))
    layers += [nn.Conv2d(4, 3, 2, stride=2 if not pool else 1), nn.ReLU(), nn.Flatten()]
    module = nn.Sequential(*layers)
    with torch.no_grad():
        flat = module(torch.zeros(1, 1, 8, 8)).shape[1]
    module.append(nn.Linear(flat, 3))
    net = _check_against_torch(module, (1, 8, 8), rng, n=100)
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "linear"]
    assert net.layers[0].weights.shape == (4 * 8 * 8, 64)


def test_load_torch_sequential_with_conv_goes_through_onnx(rng):
    from pyomo_relu.io.torch import load_torch

    torch.manual_seed(5)
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 1))
    net = load_torch(module, example_input=torch.zeros(1, 1, 8, 8))
    x = rng.uniform(0, 1, (50, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    _assert_close(net.evaluate(x.reshape(50, -1).astype(np.float64)), expected)


# ------------------------------------------------------------- hand-built ONNX graphs
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad_matches_onnxruntime(auto_pad, rng):
    w = rng.normal(size=(3, 2, 2, 3))
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], auto_pad=auto_pad, strides=[2, 2], name="conv")
    out = {"VALID": [3, 3, 3], "SAME_UPPER": [3, 4, 4], "SAME_LOWER": [3, 4, 4]}[auto_pad]
    model = _graph_model([node], [2, 7, 8], out, [("W", w), ("B", rng.normal(size=3))])
    _check_against_ort(model, rng)


def test_conv_asymmetric_pads_and_avgpool_same_lower_match_onnxruntime(rng):
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[0, 2, 1, 0], name="conv"),
        helper.make_node(
            "AveragePool", ["c"], ["y"], kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_LOWER", name="pool"
        ),
    ]
    model = _graph_model(nodes, [1, 5, 6], [2, 3, 4], [("W", rng.normal(size=(2, 1, 2, 2)))])
    _check_against_ort(model, rng)


def test_concat_of_affine_tensors_and_constants_matches_onnxruntime(rng):
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["a"], pads=[1, 1, 1, 1], name="conv_same"),
        helper.make_node("Concat", ["a", "K", "x"], ["y0"], axis=1, name="cat"),
        helper.make_node("Relu", ["y0"], ["r"], name="relu"),
        helper.make_node("Concat", ["r", "r"], ["y"], axis=-1, name="cat2"),
    ]
    inits = [("W1", rng.normal(size=(2, 1, 3, 3))), ("K", rng.normal(size=(1, 1, 4, 4)))]
    model = _graph_model(nodes, [1, 4, 4], [4, 4, 8], inits)
    net = _check_against_ort(model, rng)
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]


def test_global_average_pool_on_hand_built_graph(rng):
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], group=2, name="conv"),
        helper.make_node("GlobalAveragePool", ["c"], ["y"], name="gap"),
    ]
    model = _graph_model(nodes, [4, 5, 5], [6, 1, 1], [("W", rng.normal(size=(6, 2, 2, 2))), ("B", rng.normal(size=6))])
    net = _check_against_ort(model, rng)
    assert net.n_outputs == 6


def test_conv_with_constant_input_is_folded(rng):
    nodes = [
        helper.make_node("Conv", ["K", "W"], ["k"], name="const_conv"),
        helper.make_node("Add", ["x", "k"], ["y"], name="add"),
    ]
    model = _graph_model(
        nodes, [1, 3, 3], [1, 3, 3], [("K", rng.normal(size=(1, 1, 4, 4))), ("W", rng.normal(size=(1, 1, 2, 2)))]
    )
    _check_against_ort(model, rng)


# ---------------------------------------------------------------------------- errors
def test_maxpool_indices_output_is_refused_with_the_node_named():
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "idx"], name="pool", kernel_shape=[2, 2])]
    model = _graph_model(nodes, [1, 4, 4], [1, 2, 2], [])
    with pytest.raises(UnsupportedOperatorError, match=r"'pool' \(op MaxPool\).*Indices"):
        load_onnx(model)


def test_conv_is_built_sparse_without_dense_maps(monkeypatch, rng):
    """With dense maps capped at 1000 entries, a conv on 64 inputs still loads: it is sparse."""
    import pyomo_relu.sparse

    monkeypatch.setattr(onnx_tensor, "MAX_DENSE_ENTRIES", 1000)
    monkeypatch.setattr(pyomo_relu.sparse, "SPARSE_MIN_ENTRIES", 0)  # keep even this small layer CSR
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="big_conv", pads=[1, 0, 1, 0], strides=[1, 2]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
        helper.make_node("Relu", ["n"], ["y"]),
    ]
    inits = [
        ("W", rng.normal(size=(4, 1, 3, 3))),
        ("B", rng.normal(size=4)),
        ("s", rng.uniform(0.5, 2, 4)),
        ("b", rng.normal(size=4)),
        ("m", rng.normal(size=4)),
        ("v", rng.uniform(0.5, 2, 4)),
    ]
    model = _graph_model(nodes, [1, 8, 8], [4, 8, 3], inits)
    net = _check_against_ort(model, rng)
    weights = net.layers[0].weights
    assert sp.issparse(weights) and weights.nnz <= 4 * 8 * 3 * 9


def test_op_without_sparse_form_is_refused_when_too_dense(monkeypatch, rng):
    monkeypatch.setattr(onnx_tensor, "MAX_DENSE_ENTRIES", 1000)
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
        helper.make_node("MatMul", ["c", "M"], ["y"], name="big_matmul"),
    ]
    model = _graph_model(
        nodes, [1, 8, 8], [4, 6, 6], [("W", rng.normal(size=(4, 1, 3, 3))), ("M", rng.normal(size=(6, 6)))]
    )
    with pytest.raises(UnsupportedOperatorError, match=r"'big_matmul' \(op MatMul\).*dense"):
        load_onnx(model)


def test_conv_with_mismatched_channels_is_a_shape_error(rng):
    node = helper.make_node("Conv", ["x", "W"], ["y"], name="bad_conv")
    model = _graph_model([node], [3, 5, 5], [2, 3, 3], [("W", rng.normal(size=(2, 2, 3, 3)))])
    with pytest.raises(ShapeMismatchError, match="bad_conv"):
        load_onnx(model)
