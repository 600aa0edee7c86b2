"""Tests of pyomo_relu.io.onnx.load_onnx against onnxruntime, torch and reference values."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from pyomo_relu import NetworkDefinition, Scaling
from pyomo_relu.errors import (
    InvalidNetworkError,
    ModelLoadError,
    ShapeMismatchError,
    UnsupportedOperatorError,
)
from pyomo_relu.io.onnx import load_onnx

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "omlt_models" / "reference_values.json").read_text())
OPSETS = (8, 9, 11, 13, 17, 21)

# --------------------------------------------------------------------------- helpers


def _tensor(name: str, values: object) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


def _int_tensor(name: str, values: object) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _info(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _model(nodes, inputs, outputs, initializers=(), opset: int = 13) -> onnx.ModelProto:
    """A model from lists of nodes and value infos (``inputs``/``outputs`` are (name, shape))."""
    graph = helper.make_graph(
        nodes,
        "test",
        [_info(*i) for i in inputs],
        [_info(*o) for o in outputs],
        initializer=list(initializers),
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    if model.ir_version < 4:  # IR 3 requires initializers to be listed as graph inputs too
        model.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in initializers)
    return model


def _ort_outputs(model: onnx.ModelProto | Path, inputs: np.ndarray, shape: tuple) -> np.ndarray:
    """onnxruntime outputs, one sample at a time (some files fix the batch size to 1)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.stack([session.run(None, {name: x.reshape(shape)})[0].ravel() for x in inputs])


def _assert_close(actual: np.ndarray, expected: np.ndarray, tol: float = 1e-5) -> None:
    """Absolute error for small values, relative for large ones."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    error = np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))
    assert error.max() <= tol, f"max scaled error {error.max():.3g} > {tol}"


def _check_against_ort(model, net: NetworkDefinition, low, high, rng, n: int = 200) -> None:
    x = rng.uniform(low, high, (n, net.n_inputs)).astype(np.float32)
    expected = _ort_outputs(model, x, net.input_shape)
    _assert_close(net.evaluate(x.astype(np.float64)), expected)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _sequence(ops: list[tuple]) -> list[onnx.NodeProto]:
    """Nodes ``(op, inputs[, attributes])`` from "x" to "y"; "@" is the previous output."""
    nodes, previous = [], "x"
    for k, (op, inputs, *attrs) in enumerate(ops):
        output = "y" if k == len(ops) - 1 else f"t{k}"
        inputs = [previous if name == "@" else name for name in inputs]
        nodes.append(helper.make_node(op, inputs, [output], name=f"{op}{k}", **(attrs or [{}])[0]))
        previous = output
    return nodes


def _mlp(rng, sizes, *, names: bool = True, opset: int = 13, relu_last: bool = False):
    """Gemm(+Relu) chain ``sizes[0] -> ... -> sizes[-1]`` with a batch input [N, sizes[0]]."""
    nodes, inits, current = [], [], "x"
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        inits += [_tensor(f"W{k}", rng.normal(size=(n_out, n_in))), _tensor(f"b{k}", rng.normal(size=n_out))]
        nodes.append(
            helper.make_node("Gemm", [current, f"W{k}", f"b{k}"], [f"g{k}"], name=f"gemm{k}" if names else "", transB=1)
        )
        current = f"g{k}"
        if k < len(sizes) - 2 or relu_last:
            nodes.append(helper.make_node("Relu", [current], [f"r{k}"], name=f"relu{k}" if names else ""))
            current = f"r{k}"
    nodes.append(helper.make_node("Identity", [current], ["y"], name="out" if names else ""))
    return _model(nodes, [("x", ["N", sizes[0]])], [("y", ["N", sizes[-1]])], inits, opset)


# ------------------------------------------------------------------- reference files
BOXES = {  # sensible input boxes (in the units the ONNX file expects)
    "peaks_3x10.onnx": (-3.0, 3.0),
    "mnist-net_256x2.onnx": (0.0, 1.0),
    "keras_linear_131_relu.onnx": (-4.0, 5.0),
    "gemm.onnx": (0.0, 1.0),
    "keras_conv_7x7_relu.onnx": (0.0, 1.0),
    "convx1_gemmx1.onnx": (0.0, 1.0),
}
ACAS_BOX = (-0.5, 0.5)
CONV_FILES = {  # loaded and checked in detail in test_io_conv.py
    "keras_conv_7x7_relu.onnx": "keras_conv_7x7_relu/conv2d/Conv2D",
    "convx1_gemmx1.onnx": "Conv_0",
}
SOFTMAX_FILES = {"gemm.onnx": "LogSoftmax_5"}
EXPECTED_LAYERS = {  # activations of the loaded layers
    "peaks_3x10.onnx": ["relu"] * 3 + ["linear"],
    "mnist-net_256x2.onnx": ["relu"] * 2 + ["linear"],
    "keras_linear_131_relu.onnx": ["relu", "linear"],
    "gemm_transB.onnx": ["relu", "linear"],
    "gemm_not_transB.onnx": ["relu", "linear"],
    "gemm.onnx": ["relu"] * 2 + ["linear"],
    "keras_conv_7x7_relu.onnx": ["relu"],
    "convx1_gemmx1.onnx": ["relu"],
    "ACASXU_run2a_1_1_batch_2000.onnx": ["relu"] * 6 + ["linear"],
    "ACASXU_run2a_2_1_batch_2000.onnx": ["relu"] * 6 + ["linear"],
    "net_Calcite_ST.onnx": ["tanh"] * 5 + ["linear"],  # idaes-pse's test model (tests/data/idaes)
}
ONNX_FILES = sorted(DATA.rglob("*.onnx"))


def test_the_data_directory_holds_the_expected_files():
    names = {path.name for path in ONNX_FILES}
    assert set(EXPECTED_LAYERS) | set(CONV_FILES) == names


@pytest.mark.parametrize("path", ONNX_FILES, ids=lambda p: str(p.relative_to(DATA)))
def test_every_data_file_loads_and_matches_onnxruntime_or_is_refused(path, rng):
    drop = path.name in SOFTMAX_FILES
    net = load_onnx(path, drop_softmax=drop)
    assert [layer.activation for layer in net.layers] == EXPECTED_LAYERS[path.name]
    assert net.source == str(path)
    assert all(layer.weights.dtype == np.float64 for layer in net.layers)
    low, high = ACAS_BOX if "acasxu" in path.parts else BOXES.get(path.name, (-1.0, 1.0))
    x = rng.uniform(low, high, (200, net.n_inputs)).astype(np.float32)
    expected = _ort_outputs(path, x, net.input_shape)
    actual = net.evaluate(x.astype(np.float64))
    _assert_close(_log_softmax(actual) if drop else actual, expected)


def test_input_shapes_of_tensor_inputs_are_recorded():
    assert load_onnx(DATA / "mnist_fc/onnx/mnist-net_256x2.onnx").input_shape == (1, 784, 1)
    acas = load_onnx(DATA / "acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx")
    assert acas.input_shape == (1, 1, 1, 5)
    assert load_onnx(DATA / "relumip/peaks_3x10.onnx").input_shape == (1, 2)


def test_acasxu_normalisation_is_folded_into_the_first_layer():
    """Sub(AvgImg) -> Flatten -> MatMul -> Add is one layer: W^T and b - W^T @ avg."""
    path = DATA / "acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx"
    model = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t).astype(float) for t in model.graph.initializer}
    first = load_onnx(path).layers[0]
    weights = init["Operation_1_MatMul_W"].T
    np.testing.assert_allclose(first.weights, weights)
    np.testing.assert_allclose(
        first.bias, init["Operation_1_Add_B"] - weights @ init["input_AvgImg"].ravel(), atol=1e-12
    )
    assert first.name == "relu_1"


def test_keras_linear_131_fixed_inputs_with_omlt_scaling():
    ref = REFERENCE["keras_linear_131_relu.onnx"]["fixed_input_reference"]
    net = load_onnx(DATA / "omlt_models/keras_linear_131_relu.onnx")
    x_scaled = np.array([[r["x_scaled"]] for r in ref])
    _assert_close(net.evaluate(x_scaled)[:, 0], [r["y_scaled_onnxruntime"] for r in ref])
    scaled = NetworkDefinition(
        net.layers, input_scaling=Scaling([1.0], [0.5]), output_scaling=Scaling([-0.25], [0.125])
    )
    x = np.array([[r["x_unscaled"]] for r in ref])
    _assert_close(scaled.evaluate(x)[:, 0], [r["y_unscaled"] for r in ref])


@pytest.mark.parametrize("name", ["gemm_transB.onnx", "gemm_not_transB.onnx"])
def test_gemm_trans_b_fixed_inputs(name):
    net = load_onnx(DATA / "omlt_models" / name)
    for ref in REFERENCE[name]["fixed_input_reference"]:
        _assert_close(net.evaluate(ref["x"]), [ref["y_onnxruntime"]])


def test_gemm_trans_b_files_are_different_functions():
    with_t = load_onnx(DATA / "omlt_models/gemm_transB.onnx")
    without = load_onnx(DATA / "omlt_models/gemm_not_transB.onnx")
    np.testing.assert_array_equal(with_t.layers[0].weights, without.layers[0].weights.T)
    assert not np.allclose(with_t.layers[0].weights, without.layers[0].weights)
    x = np.array([[-1.0, -1.0]])
    assert abs(with_t.evaluate(x)[0, 0] - without.evaluate(x)[0, 0]) > 0.1


def test_gemm_onnx_drops_log_softmax_only_when_asked():
    path = DATA / "omlt_models/gemm.onnx"
    message = r"'LogSoftmax_5' \(op LogSoftmax\).*pass drop_softmax=True to drop it"
    with pytest.raises(UnsupportedOperatorError, match=message):
        load_onnx(path)
    net = load_onnx(path, drop_softmax=True)
    ref = REFERENCE["gemm.onnx"]["fixed_input_reference"]["y_onnxruntime_logsoftmax"]
    _assert_close(_log_softmax(net.evaluate(np.zeros(784))), ref)
    assert [layer.weights.shape for layer in net.layers] == [(75, 784), (75, 75), (10, 75)]


def _read_counterexample(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pairs = re.findall(r"\(([XY])_(\d+) ([-+0-9.eE]+)\)", path.read_text())
    xs = [float(v) for kind, _, v in pairs if kind == "X"]
    ys = [float(v) for kind, _, v in pairs if kind == "Y"]
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize(
    "counterexample, network",
    [
        (
            "acasxu/counterexamples/ACASXU_run2a_2_1_batch_2000_prop_2.counterexample.txt",
            "acasxu/onnx/ACASXU_run2a_2_1_batch_2000.onnx",
        ),
        (
            "mnist_fc/counterexamples/mnist-net_256x2_prop_1_0.03.counterexample.txt",
            "mnist_fc/onnx/mnist-net_256x2.onnx",
        ),
    ],
)
def test_vnncomp_counterexample_outputs(counterexample, network):
    x, y = _read_counterexample(DATA / counterexample)
    net = load_onnx(DATA / network)
    assert x.size == net.n_inputs and y.size == net.n_outputs
    _assert_close(net.evaluate(x), y)


# ------------------------------------------------------------------ synthetic models
def _opset_model(opset: int, rng) -> onnx.ModelProto:
    """Normalisation, Flatten, Gemm, Relu, (Un)squeeze, MatMul+Add, Reshape, Dropout, Gemm."""
    axes_as_input = opset >= 13
    inits = [
        _tensor("mean", rng.normal(size=(1, 1, 1, 5))),
        _tensor("std", rng.uniform(0.5, 2, 5)),
        _tensor("W1", rng.normal(size=(8, 5))),
        _tensor("b1", rng.normal(size=8)),
        _tensor("W2", rng.normal(size=(8, 6))),
        _tensor("b2", rng.normal(size=6)),
        _tensor("W3", rng.normal(size=(6, 3))),
        _tensor("b3", rng.normal(size=3)),
        _int_tensor("target", [0, -1]),
    ] + ([_int_tensor("axes", [1])] if axes_as_input else [])
    axes = {"inputs": ["axes"]} if axes_as_input else {"attrs": {"axes": [1]}}

    def squeeze_node(op, src, dst):
        return helper.make_node(op, [src] + axes.get("inputs", []), [dst], name=op.lower(), **axes.get("attrs", {}))

    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"], name="sub"),
        helper.make_node("Div", ["s", "std"], ["d"], name="div"),
        helper.make_node("Flatten", ["d"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "W1", "b1"], ["g1"], name="gemm1", transB=1),
        helper.make_node("Relu", ["g1"], ["r1"], name="relu1"),
        squeeze_node("Unsqueeze", "r1", "u"),
        squeeze_node("Squeeze", "u", "q"),
        helper.make_node("MatMul", ["q", "W2"], ["m2"], name="matmul2"),
        helper.make_node("Add", ["m2", "b2"], ["a2"], name="add2"),
        helper.make_node("Relu", ["a2"], ["r2"], name="relu2"),
        helper.make_node("Reshape", ["r2", "target"], ["rs"], name="reshape"),
        helper.make_node("Dropout", ["rs"], ["dr"], name="dropout"),
        helper.make_node("Gemm", ["dr", "W3", "b3"], ["g3"], name="gemm3"),
        helper.make_node("Identity", ["g3"], ["y"], name="out"),
    ]
    return _model(nodes, [("x", [1, 1, 1, 5])], [("y", [1, 3])], inits, opset)


@pytest.mark.parametrize("opset", OPSETS)
def test_opsets(opset, rng):
    model = _opset_model(opset, rng)
    net = load_onnx(model)
    assert net.source == "<ModelProto>"
    assert net.input_shape == (1, 1, 1, 5)
    assert [(layer.name, layer.activation) for layer in net.layers] == [
        ("relu1", "relu"),
        ("relu2", "relu"),
        ("out", "linear"),
    ]
    _check_against_ort(model, net, -2, 2, rng)


GEMM_CASES = {
    # name: (input shape, A input, B (stored), C (stored or None), attributes)
    "defaults": ([1, 3], "x", (3, 4), (4,), {}),
    "transA": ([3, 1], "x", (3, 4), (4,), {"transA": 1}),
    "alpha_beta_transB": (["N", 3], "x", (4, 3), (1, 4), {"alpha": 0.5, "beta": -2.0, "transB": 1}),
    "without_C": (["N", 3], "x", (3, 4), None, {"alpha": 1.5}),
    "scalar_C": (["N", 3], "x", (3, 4), (1,), {"beta": 3.0}),
    "input_as_B": ([3, 1], "W", (4, 3), (4, 1), {}),
    "input_as_B_transposed": ([1, 3], "W", (3, 4), (4, 1), {"transA": 1, "transB": 1}),
}


@pytest.mark.parametrize("case", GEMM_CASES)
def test_gemm_variants(case, rng):
    shape, first, b_shape, c_shape, attrs = GEMM_CASES[case]
    inits = [_tensor("W", rng.normal(size=b_shape))]
    gemm_inputs = ["x", "W"] if first == "x" else ["W", "x"]
    if c_shape is not None:
        inits.append(_tensor("C", rng.normal(size=c_shape)))
        gemm_inputs.append("C")
    nodes = [
        helper.make_node("Gemm", gemm_inputs, ["g"], name="gemm", **attrs),
        helper.make_node("Relu", ["g"], ["y"], name="relu"),
    ]
    model = _model(nodes, [("x", shape)], [("y", None)], inits)
    net = load_onnx(model)
    assert [layer.activation for layer in net.layers] == ["relu"]  # no linear tail
    _check_against_ort(model, net, -2, 2, rng)


MATMUL_CASES = {
    # weight on the left of a column vector, then a Flatten back to a row
    "weight_left": (
        [1, 4],
        [
            ("Transpose", ["x"], {}),
            ("MatMul", ["W", "@"], {}),
            ("Add", ["@", "b"], {}),
            ("Relu", ["@"], {}),
            ("Flatten", ["@"], {"axis": 0}),
            ("MatMul", ["@", "V"], {}),
        ],
        {"W": (3, 4), "b": (3, 1), "V": (3, 2)},
    ),
    # 1-D tensors on either side
    "vectors": (
        [1, 4],
        [
            ("Reshape", ["x", "flat"], {}),
            ("MatMul", ["W", "@"], {}),
            ("Add", ["b", "@"], {}),
            ("Relu", ["@"], {}),
            ("MatMul", ["@", "V"], {}),
            ("MatMul", ["@", "u"], {}),
        ],
        {"W": (3, 4), "b": (3,), "V": (3, 2), "u": (2,)},
    ),
    # stacked weights broadcast over a rank-3 input, on the right and on the left
    "broadcast": (
        [1, 2, 3],
        [("MatMul", ["x", "W"], {}), ("Relu", ["@"], {}), ("MatMul", ["V", "@"], {})],
        {"W": (2, 4, 3, 5), "V": (2, 2)},
    ),
}


@pytest.mark.parametrize("case", MATMUL_CASES)
def test_matmul_variants(case, rng):
    shape, ops, weights = MATMUL_CASES[case]
    inits = [_tensor(name, rng.normal(size=s)) for name, s in weights.items()]
    inits.append(_int_tensor("flat", [-1]))
    model = _model(_sequence(ops), [("x", shape)], [("y", None)], inits)
    net = load_onnx(model)
    n_relu = sum(op == "Relu" for op, _, _ in ops)
    assert [layer.activation for layer in net.layers] == ["relu"] * n_relu + ["linear"]
    _check_against_ort(model, net, -2, 2, rng)


LAYOUT_CASES = {  # layout ops on a [1, 2, 3, 2] input
    "reshape_copy_zero": [("Reshape", ["@", "zero_zero_minus1"], {})],  # (1, 2, 6)
    "reshape_infer_first": [("Reshape", ["@", "minus1_6"], {})],  # (2, 6)
    "unsqueeze_negative_squeeze_all": [("Unsqueeze", ["@", "axes"], {}), ("Squeeze", ["@"], {})],
    "squeeze_axis": [("Squeeze", ["@", "axis0"], {})],  # (2, 3, 2)
    "transpose_perm": [("Transpose", ["@"], {"perm": [0, 3, 1, 2]})],  # (1, 2, 2, 3)
    "flatten_negative_axis": [("Flatten", ["@"], {"axis": -1})],  # (6, 2)
    "identity_cast": [
        ("Identity", ["@"], {}),
        ("Cast", ["@"], {"to": TensorProto.DOUBLE}),
        ("Cast", ["@"], {"to": TensorProto.FLOAT}),
    ],
}


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_layout_ops(case, rng):
    """Each case, then Transpose (so the intermediate shape matters), Flatten, MatMul, Relu."""
    ops = LAYOUT_CASES[case] + [
        ("Transpose", ["@"], {}),
        ("Flatten", ["@"], {"axis": 0}),
        ("MatMul", ["@", "W"], {}),
        ("Relu", ["@"], {}),
    ]
    inits = [
        _int_tensor("zero_zero_minus1", [0, 0, -1]),
        _int_tensor("minus1_6", [-1, 6]),
        _int_tensor("axes", [-1, 0]),
        _int_tensor("axis0", [0]),
        _tensor("W", rng.normal(size=(12, 4))),
    ]
    model = _model(_sequence(ops), [("x", [1, 2, 3, 2])], [("y", [1, 4])], inits)
    net = load_onnx(model)
    assert len(net.layers) == 1
    _check_against_ort(model, net, -2, 2, rng, n=50)


def test_invalid_reshape_target_is_reported():
    nodes = [helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape")]
    model = _model(nodes, [("x", [1, 2, 3])], [("y", None)], [_int_tensor("target", [4, -1])])
    message = r"'reshape' \(op Reshape\): cannot reshape \(1, 2, 3\)"
    with pytest.raises(ShapeMismatchError, match=message):
        load_onnx(model)


def test_normalisation_with_constants_on_either_side(rng):
    inits = [
        _tensor("c", rng.normal(size=6)),
        _tensor("k", rng.uniform(0.5, 2, 6)),
        _tensor("s", rng.uniform(0.5, 2, (1, 6))),
        _tensor("c2", rng.normal(size=(1, 6))),
        _tensor("two", 2.0),
        _tensor("W", rng.normal(size=(6, 4))),
        _tensor("b", rng.normal(size=4)),
        _tensor("V", rng.normal(size=(4, 2))),
    ]
    chain = [
        ("Sub", ["c", "@"]),
        ("Mul", ["k", "@"]),
        ("Div", ["@", "s"]),
        ("Neg", ["@"]),
        ("Add", ["c2", "@"]),
        ("Mul", ["@", "two"]),
        ("Sub", ["@", "c"]),
        ("Flatten", ["@"]),
        ("MatMul", ["@", "W"]),
        ("Add", ["@", "b"]),
        ("Relu", ["@"]),
        ("MatMul", ["@", "V"]),
        ("Div", ["@", "two"]),
    ]
    model = _model(_sequence(chain), [("x", ["N", 6])], [("y", ["N", 2])], inits)
    net = load_onnx(model)
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]
    _check_against_ort(model, net, -3, 3, rng)


def test_constant_nodes_as_weights_and_unnamed_nodes(rng):
    w1, b1, w2 = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=(5, 2))
    nodes = [
        helper.make_node("Constant", [], ["W1"], value=_tensor("w1", w1)),
        helper.make_node("Constant", [], ["b1"], value_floats=b1.tolist()),
        helper.make_node("Constant", [], ["shape"], value_ints=[1, 3]),
        helper.make_node("Constant", [], ["W2"], value=_tensor("w2", w2)),
        helper.make_node("Constant", [], ["half"], value_float=0.5),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("MatMul", ["r", "W1"], ["m"]),
        helper.make_node("Add", ["m", "b1"], ["a"]),
        helper.make_node("Relu", ["a"], ["h"]),
        helper.make_node("MatMul", ["h", "W2"], ["o"]),
        helper.make_node("Mul", ["o", "half"], ["y"]),
    ]
    model = _model(nodes, [("x", [1, 3, 1])], [("y", [1, 2])])
    net = load_onnx(model)
    assert [layer.name for layer in net.layers] == ["Relu_8", "Mul_10"]
    assert net.input_shape == (1, 3, 1)
    _check_against_ort(model, net, -2, 2, rng)


def test_shape_computation_is_constant_folded(rng):
    """Old torch exports of ``x.view(x.size(0), -1)``: Shape -> Gather -> Unsqueeze -> Concat."""
    for opset in (9, 13):
        axes = {"axes": [0]} if opset < 13 else {}
        nodes = [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
            helper.make_node("Unsqueeze", ["batch", "axes0"][: 1 + (opset >= 13)], ["b1"], **axes),
            helper.make_node("Concat", ["b1", "minus_one"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["flat"]),
            helper.make_node("Sqrt", ["var"], ["std"]),  # a nonlinear op on constants only
            helper.make_node("Div", ["flat", "std"], ["z"]),
            helper.make_node("Relu", ["b_raw"], ["b"]),  # a ReLU on a constant is no layer
            helper.make_node("Gemm", ["z", "W", "b"], ["g"], transB=1),
            helper.make_node("Relu", ["g"], ["y"]),
        ]
        inits = [
            _int_tensor("zero", 0),
            _int_tensor("axes0", [0]),
            _int_tensor("minus_one", [-1]),
            _tensor("var", rng.uniform(0.5, 2, 6)),
            _tensor("W", rng.normal(size=(4, 6))),
            _tensor("b_raw", rng.normal(size=4)),
        ]
        model = _model(nodes, [("x", ["N", 2, 3])], [("y", ["N", 4])], inits, opset)
        net = load_onnx(model)
        assert len(net.layers) == 1 and net.input_shape == (1, 2, 3)
        _check_against_ort(model, net, -2, 2, rng, n=50)


def test_reshape_shape_attribute_of_old_opsets(rng):
    nodes = [
        helper.make_node("Reshape", ["x"], ["r"], shape=[1, 6]),
        helper.make_node("MatMul", ["r", "W"], ["y"]),
    ]  # onnxruntime has no Relu-1
    inits = [_tensor("W", rng.normal(size=(6, 3)))]
    model = _model(nodes, [("x", [1, 2, 3])], [("y", [1, 3])], inits, opset=4)
    net = load_onnx(model)
    _check_against_ort(model, net, -2, 2, rng, n=50)


def test_weights_listed_as_graph_inputs_like_old_exporters(rng):
    model = _mlp(rng, [3, 4, 2])
    model.graph.input.extend([_info(t.name, list(t.dims)) for t in model.graph.initializer])
    model.graph.input.reverse()  # the real input is not first
    net = load_onnx(model)
    assert net.n_inputs == 3
    _check_against_ort(model, net, -2, 2, rng, n=50)


def test_torch_export(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(6, 8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(8, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    ).eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        (torch.zeros(1, 2, 3),),
        buffer,
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}},
    )
    net = load_onnx(onnx.load_from_string(buffer.getvalue()))
    assert net.input_shape == (1, 2, 3)
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "linear"]
    x = rng.uniform(-2, 2, (200, 2, 3)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    _assert_close(net.evaluate(x.reshape(200, 6).astype(np.float64)), expected)


@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    opset=st.sampled_from(OPSETS),
    relu_last=st.booleans(),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=15, deadline=None)
def test_random_mlps_match_onnxruntime(sizes, opset, relu_last, seed):
    rng = np.random.default_rng(seed)
    model = _mlp(rng, sizes, opset=opset, relu_last=relu_last)
    net = load_onnx(model)
    n_relu = len(sizes) - 2 + relu_last
    assert len(net.layers) == n_relu + (not relu_last)
    _check_against_ort(model, net, -2, 2, rng, n=20)


# -------------------------------------------------------------------- layer counting
def _chain(ops: list[str], rng, width: int = 3) -> onnx.ModelProto:
    nodes, inits, previous = [], [], "x"
    for k, op in enumerate(ops):
        output = "y" if k == len(ops) - 1 else f"t{k}"
        inputs = [previous]
        if op == "Gemm":
            inits += [_tensor(f"W{k}", rng.normal(size=(width, width))), _tensor(f"b{k}", rng.normal(size=width))]
            inputs += [f"W{k}", f"b{k}"]
        nodes.append(helper.make_node(op, inputs, [output], name=f"{op.lower()}{k}"))
        previous = output
    return _model(nodes, [("x", ["N", width])], [("y", ["N", width])], inits)


@pytest.mark.parametrize(
    "ops",
    [
        ["Gemm", "Gemm"],
        ["Gemm", "Relu", "Gemm", "Gemm"],
        ["Gemm", "Relu"],
        ["Gemm", "Relu", "Relu"],
        ["Identity"],
        ["Relu", "Gemm", "Gemm", "Gemm", "Relu", "Gemm"],
    ],
    ids="-".join,
)
def test_number_of_layers(ops, rng):
    model = _chain(ops, rng)
    net = load_onnx(model)
    tail = ops[-1] != "Relu"
    assert len(net.layers) == ops.count("Relu") + tail
    expected = ["relu"] * ops.count("Relu") + ["linear"] * tail
    assert [layer.activation for layer in net.layers] == expected
    _check_against_ort(model, net, -2, 2, rng, n=50)


def test_gemm_gemm_composes_to_one_layer(rng):
    model = _chain(["Gemm", "Gemm"], rng)
    (layer,) = load_onnx(model).layers
    init = {t.name: numpy_helper.to_array(t).astype(float) for t in model.graph.initializer}
    np.testing.assert_allclose(layer.weights, (init["W0"] @ init["W1"]).T)
    np.testing.assert_allclose(layer.bias, init["b0"] @ init["W1"] + init["b1"])
    assert layer.name == "gemm1"


def test_nodes_not_feeding_the_output_are_ignored(rng):
    model = _mlp(rng, [3, 4, 2])
    model.graph.node.append(helper.make_node("Relu", ["x"], ["dead"], name="dead_relu"))
    model.graph.node.append(helper.make_node("Tanh", ["dead"], ["dead2"], name="dead_tanh"))
    assert len(load_onnx(model).layers) == 2


def test_nodes_out_of_order_are_sorted(rng):
    model = _mlp(rng, [3, 4, 2])
    shuffled = onnx.ModelProto()
    shuffled.CopyFrom(model)
    del shuffled.graph.node[:]
    shuffled.graph.node.extend(reversed(model.graph.node))
    net = load_onnx(shuffled)  # the checker complains (logged), the loader sorts
    assert [layer.name for layer in net.layers] == ["relu0", "out"]
    _check_against_ort(model, net, -1, 1, rng, n=20)


def test_input_bounds_and_sources(tmp_path, rng):
    model = _mlp(rng, [2, 3, 1])
    path = tmp_path / "mlp.onnx"
    onnx.save(model, path)
    net = load_onnx(path, [(-1, 1), (0, 2)])
    np.testing.assert_array_equal(net.input_lower, [-1, 0])
    np.testing.assert_array_equal(net.input_upper, [1, 2])
    other = load_onnx(str(path), (np.zeros(2), np.ones(2)))
    np.testing.assert_array_equal(other.input_upper, [1, 1])
    assert net.source == other.source == str(path)
    assert load_onnx(model).content_hash() == net.content_hash()
    with pytest.raises(ShapeMismatchError):
        load_onnx(model, [(0, 1)] * 3)


# ------------------------------------------------------------------------- errors
def test_unsupported_op_names_node_and_op(rng):
    model = _chain(["Gemm", "Elu", "Gemm"], rng)
    message = r"ONNX node 'elu1' \(op Elu\) is not supported; supported ops: .*Gemm.*LeakyRelu.*MaxPool.*Relu"
    with pytest.raises(UnsupportedOperatorError, match=message):
        load_onnx(model)


def test_unsupported_op_of_unnamed_node_is_named_by_position(rng):
    model = _chain(["Gemm", "Selu"], rng)
    for node in model.graph.node:
        node.name = ""
    with pytest.raises(UnsupportedOperatorError, match=r"ONNX node 'Selu_1' \(op Selu\)"):
        load_onnx(model)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_trailing_softmax(op, rng):
    model = _chain(["Gemm", "Relu", "Gemm", op], rng)
    message = rf"'{op.lower()}3' \(op {op}\).*pass drop_softmax=True to drop it"
    with pytest.raises(UnsupportedOperatorError, match=message):
        load_onnx(model)
    net = load_onnx(model, drop_softmax=True)
    logits = load_onnx(_chain(["Gemm", "Relu", "Gemm"], np.random.default_rng(20261122)))
    assert net.content_hash() == logits.content_hash()


def test_softmax_inside_the_network_is_refused_even_with_drop_softmax(rng):
    model = _chain(["Gemm", "Softmax", "Gemm"], rng)
    with pytest.raises(UnsupportedOperatorError, match=r"'softmax1' \(op Softmax\).*last node"):
        load_onnx(model, drop_softmax=True)


def test_nan_initializer_is_named(rng):
    model = _mlp(rng, [3, 4, 2])
    weights = numpy_helper.to_array(model.graph.initializer[2]).copy()
    weights[0, 1] = np.nan
    model.graph.initializer[2].CopyFrom(_tensor("W1", weights))
    with pytest.raises(InvalidNetworkError, match=r"initializer 'W1' .*NaN or Inf"):
        load_onnx(model)


def test_inf_constant_node_is_named(rng):
    weights = _tensor("w", [[1.0], [np.inf]])
    nodes = [
        helper.make_node("Constant", [], ["W"], name="weights", value=weights),
        helper.make_node("MatMul", ["x", "W"], ["y"]),
    ]
    with pytest.raises(InvalidNetworkError, match=r"'weights' \(op Constant\) produces NaN or Inf"):
        load_onnx(_model(nodes, [("x", ["N", 2])], [("y", ["N", 1])]))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError, match=re.escape(str(path))):
        load_onnx(path)
    with pytest.raises(ModelLoadError, match="does not exist or is not a file"):
        load_onnx(tmp_path)


@pytest.mark.parametrize("content", [b"\x00\xff garbage \x13\x37" * 50, b"", b"not an onnx model"])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=re.escape(str(path))):
        load_onnx(path)


def test_wrong_argument_type():
    with pytest.raises(TypeError, match="path or an onnx.ModelProto"):
        load_onnx(42)


def test_two_graph_inputs(rng):
    nodes = [helper.make_node("Add", ["a", "b"], ["y"])]
    model = _model(nodes, [("a", ["N", 2]), ("b", ["N", 2])], [("y", ["N", 2])])
    with pytest.raises(UnsupportedOperatorError, match=r"2 graph inputs \('a', 'b'\)"):
        load_onnx(model)


def test_two_graph_outputs(rng):
    model = _mlp(rng, [3, 4, 2])
    model.graph.output.append(_info("r0", ["N", 4]))
    with pytest.raises(UnsupportedOperatorError, match=r"2 graph outputs \('y', 'r0'\)"):
        load_onnx(model)


def test_matmul_shape_mismatch_names_node(rng):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="bad_matmul")]
    model = _model(nodes, [("x", ["N", 3])], [("y", ["N", 2])], [_tensor("W", np.ones((4, 2)))])
    message = r"'bad_matmul' \(op MatMul\).*\(1, 3\) and \(4, 2\)"
    with pytest.raises(ShapeMismatchError, match=message):
        load_onnx(model)


def test_skip_connection_is_carried_through_the_relu(rng):
    """``y = relu(h) + h``: ``h`` rides through the ReLU layer as linear neurons."""
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="gemm"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "h"], ["y"], name="residual"),
    ]
    inits = [_tensor("W", rng.normal(size=(2, 2))), _tensor("b", rng.normal(size=2))]
    model = _model(nodes, [("x", ["N", 2])], [("y", ["N", 2])], inits)
    net = load_onnx(model)
    assert net.layers[0].kinds.tolist() == ["relu", "relu", "linear", "linear"]
    _check_against_ort(model, net, -2, 2, rng, n=200)


def test_sum_of_two_affine_tensors_in_one_basis_is_linear(rng):
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"]),
        helper.make_node("Sub", ["h", "x"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    inits = [_tensor("W", rng.normal(size=(2, 2))), _tensor("b", rng.normal(size=2))]
    model = _model(nodes, [("x", ["N", 2])], [("y", ["N", 2])], inits)
    net = load_onnx(model)
    _check_against_ort(model, net, -2, 2, rng, n=20)


@pytest.mark.parametrize(
    "op, inputs, message",
    [
        ("Mul", ["x", "x"], "multiplies two input-dependent tensors"),
        ("MatMul", ["x", "xt"], "multiplies two input-dependent tensors"),
        ("Div", ["two", "x"], "divides by an input-dependent tensor"),
    ],
)
def test_nonlinear_arithmetic_is_refused(op, inputs, message):
    nodes = [helper.make_node("Transpose", ["x"], ["xt"]), helper.make_node(op, inputs, ["y"], name="nl")]
    model = _model(nodes, [("x", [2, 2])], [("y", None)], [_tensor("two", 2.0)])
    with pytest.raises(UnsupportedOperatorError, match=rf"'nl' \(op {op}\) {message}"):
        load_onnx(model)


def test_division_by_zero_constant(rng):
    nodes = [helper.make_node("Div", ["x", "s"], ["y"], name="normalise")]
    model = _model(nodes, [("x", ["N", 2])], [("y", ["N", 2])], [_tensor("s", [1.0, 0.0])])
    message = r"'normalise' \(op Div\) divides by a constant that contains zeros"
    with pytest.raises(InvalidNetworkError, match=message):
        load_onnx(model)


def test_symbolic_non_batch_dimension_is_refused():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = _model(nodes, [("x", ["N", "M"])], [("y", ["N", "M"])])
    with pytest.raises(ShapeMismatchError, match=r"'x' has an unknown size at axis 1 \(M\)"):
        load_onnx(model)


def test_custom_domain_is_refused():
    nodes = [helper.make_node("FusedGemm", ["x", "x"], ["y"], name="fused", domain="com.microsoft")]
    model = _model(nodes, [("x", ["N", 2])], [("y", ["N", 2])])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    message = r"'fused' \(op FusedGemm\) is in domain 'com.microsoft'"
    with pytest.raises(UnsupportedOperatorError, match=message):
        load_onnx(model)


def test_unknown_tensor_is_reported():
    nodes = [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")]
    model = _model(nodes, [("x", ["N", 2])], [("y", ["N", 2])])
    with pytest.raises(ModelLoadError, match=r"'add' \(op Add\).*reads tensor 'ghost'"):
        load_onnx(model)


def test_node_with_missing_inputs_is_reported():
    nodes = [helper.make_node("Gemm", ["x"], ["y"], name="gemm")]
    model = _model(nodes, [("x", ["N", 2])], [("y", ["N", 2])])
    with pytest.raises(ModelLoadError, match=r"'gemm' \(op Gemm\).*needs 2 input"):
        load_onnx(model)
