"""BatchNormalization in the ONNX and Keras readers (inference: a per-channel affine map)."""

from __future__ import annotations

import io
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pyomo_relu.errors import ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.onnx import load_onnx

ort = pytest.importorskip("onnxruntime")


def _run_onnxruntime(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.astype(np.float32)})[0]


def _compare_onnx(proto: onnx.ModelProto, shape: tuple[int, ...], seed: int = 0) -> None:
    net = load_onnx(proto)
    x = np.random.default_rng(seed).uniform(-2, 2, (100, *shape)).astype(np.float32)
    expected = _run_onnxruntime(proto, x).reshape(100, -1)
    got = net.evaluate(x.reshape(100, -1).astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 1e-2


# ------------------------------------------------------------------------ ONNX
def _torch_bn_model(seed: int, with_channels: bool = False):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(seed)
    if with_channels:  # BatchNorm1d on (N, C, L)
        model = nn.Sequential(nn.BatchNorm1d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
        bns = [model[0]]
    else:
        model = nn.Sequential(
            nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3), nn.BatchNorm1d(3, affine=False)
        )
        bns = [model[1], model[4]]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in bns:
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) * 3 + 0.2)
            if bn.affine:
                bn.weight.copy_(torch.randn(bn.num_features, generator=g))
                bn.bias.copy_(torch.randn(bn.num_features, generator=g))
    return torch, model.eval()


def _export(torch, model, example) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (example,),
        buffer,
        dynamo=False,
        opset_version=17,
        do_constant_folding=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_from_torch_linear_batchnorm_relu_matches_onnxruntime() -> None:
    torch, model = _torch_bn_model(0)
    proto = _export(torch, model, torch.zeros(1, 4))
    assert "BatchNormalization" in {node.op_type for node in proto.graph.node}
    net = load_onnx(proto)
    # Gemm + BatchNormalization fold into the ReLU layer, the second pair into the output
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]
    _compare_onnx(proto, (4,))
    x = np.random.default_rng(1).normal(size=(20, 4))
    with torch.no_grad():
        expected = model(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(net.evaluate(x), expected, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_batchnorm_on_channels_and_length() -> None:
    torch, model = _torch_bn_model(1, with_channels=True)
    proto = _export(torch, model, torch.zeros(1, 3, 4))
    assert "BatchNormalization" in {node.op_type for node in proto.graph.node}
    _compare_onnx(proto, (3, 4))


def _handmade_bn_graph(
    training_mode: int | None = None, opset: int = 15, x_shape=("N", 3), param_shape=(3,)
) -> onnx.ModelProto:
    rng = np.random.default_rng(5)
    params = {
        "scale": rng.normal(size=param_shape),
        "B": rng.normal(size=param_shape),
        "mean": rng.normal(size=param_shape),
        "var": rng.uniform(0.1, 2.0, size=param_shape),
    }
    attrs = {"epsilon": 1e-3}
    if training_mode is not None:
        attrs["training_mode"] = training_mode
    bn = helper.make_node("BatchNormalization", ["x", "scale", "B", "mean", "var"], ["h"], name="bn", **attrs)
    relu = helper.make_node("Relu", ["h"], ["y"], name="relu")
    graph = helper.make_graph(
        [bn, relu],
        "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x_shape))],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in params.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_onnx_handmade_batchnorm_matches_onnxruntime() -> None:
    proto = _handmade_bn_graph(training_mode=0)
    net = load_onnx(proto)
    assert [layer.activation for layer in net.layers] == ["relu"]
    assert np.count_nonzero(net.layers[0].weights - np.diag(np.diag(net.layers[0].weights))) == 0
    _compare_onnx(proto, (3,))
    _compare_onnx(_handmade_bn_graph(opset=9), (3,))  # no training_mode attribute


def test_onnx_batchnorm_training_mode_refused() -> None:
    with pytest.raises(UnsupportedOperatorError, match=r"'bn' \(op BatchNormalization\).*training_mode=1"):
        load_onnx(_handmade_bn_graph(training_mode=1))


def test_onnx_batchnorm_bad_parameter_shape() -> None:
    with pytest.raises(ShapeMismatchError, match=r"'bn'.*scale"):
        load_onnx(_handmade_bn_graph(param_shape=(4,)))


# ----------------------------------------------------------------------- Keras
keras_required = pytest.mark.filterwarnings("ignore::UserWarning")


def _keras():
    return pytest.importorskip("keras")


def _set_bn_weights(layer, seed: int) -> None:
    """Non-trivial moving statistics (and gamma/beta where present)."""
    rng = np.random.default_rng(seed)
    values = []
    for weight in layer.weights:
        name = weight.path.rsplit("/", 1)[-1]
        size = weight.shape
        if name == "moving_variance":
            values.append(rng.uniform(0.2, 3.0, size))
        else:
            values.append(rng.normal(0.0, 1.5, size))
    layer.set_weights([v.astype("float32") for v in values])


def _check_keras(net, model, seed: int = 0) -> None:
    shape = tuple(model.input_shape[1:])
    x = np.random.default_rng(seed).uniform(-2.0, 2.0, (100, *shape)).astype("float32")
    expected = model.predict(x, verbose=0).reshape(100, -1)
    got = net.evaluate(x.reshape(100, -1).astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 1e-2


@keras_required
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False), (False, False)])
def test_keras_dense_batchnorm_relu_matches_predict(center: bool, scale: bool) -> None:
    from pyomo_relu.io.keras import load_keras

    keras = _keras()
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((4,)),
            L.Dense(6, name="dense"),
            L.BatchNormalization(center=center, scale=scale, epsilon=0.01, name="bn"),
            L.ReLU(name="relu"),
            L.Dense(2, name="out"),
        ]
    )
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            _set_bn_weights(layer, 4)
        else:
            layer.set_weights([rng.normal(0, 0.7, w.shape).astype("float32") for w in layer.weights])
    net = load_keras(model)
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]
    assert net.layers[0].name == "dense+bn+relu"
    _check_keras(net, model)


@keras_required
@pytest.mark.parametrize("axis", [-1, -2, 1, 2])
def test_keras_batchnorm_axis_on_tensor_then_flatten(axis: int) -> None:
    from pyomo_relu.io.keras import load_keras

    keras = _keras()
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((2, 3)),
            L.BatchNormalization(axis=axis, name="bn"),
            L.Flatten(),
            L.Dense(5, activation="relu"),
            L.Dense(1),
        ]
    )
    _set_bn_weights(model.layers[0], 6)
    dense = model.layers[2:]
    rng = np.random.default_rng(7)
    for layer in dense:
        layer.set_weights([rng.normal(0, 0.7, w.shape).astype("float32") for w in layer.weights])
    _check_keras(load_keras(model), model)


@keras_required
def test_keras_batchnorm_h5_file_and_h5py_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyomo_relu.io.keras import load_keras

    keras = _keras()
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((3,)),
            L.Dense(5, name="d1"),
            L.BatchNormalization(scale=False, name="bn"),
            L.Activation("relu", name="act"),
            L.Dense(2, name="d2"),
        ]
    )
    _set_bn_weights(model.get_layer("bn"), 8)
    rng = np.random.default_rng(9)
    for name in ("d1", "d2"):
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(0, 0.7, w.shape).astype("float32") for w in layer.weights])
    path = tmp_path / "bn.h5"
    model.save(path)
    _check_keras(load_keras(path), model)

    def refuse(*args: object, **kwargs: object) -> None:
        raise ValueError("simulated: Keras 3 cannot read this file")

    monkeypatch.setattr(keras.saving, "load_model", refuse)
    net = load_keras(path)  # read with h5py: config and weight arrays only
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]
    _check_keras(net, model)


def test_keras_batchnorm_channel_mismatch_refused() -> None:
    from pyomo_relu.io.keras import steps as keras_steps

    step = keras_steps.batchnorm_step("bn", 1, 1e-3, np.zeros(4), np.ones(4), None, None)
    with pytest.raises(ShapeMismatchError, match=r"'bn' \(BatchNormalization\) has 4 channels"):
        keras_steps.build_layers([step], (2, 3))
    batch_axis = keras_steps.batchnorm_step("bn", 0, 1e-3, np.zeros(2), np.ones(2), None, None)
    with pytest.raises(ShapeMismatchError, match="axis 0"):
        keras_steps.build_layers([batch_axis], (2, 3))
    with pytest.raises(UnsupportedOperatorError, match=r"axes \[1, 2\]"):
        keras_steps.batchnorm_step("bn", [1, 2], 1e-3, np.zeros(2), np.ones(2), None, None)
