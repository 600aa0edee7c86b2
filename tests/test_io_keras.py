"""Tests of pyomo_relu.io.keras (Keras 3 on the PyTorch backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

from pyomo_relu.errors import (  # noqa: E402
    ModelLoadError,
    OptionalDependencyError,
    PyomoReluError,
    UnsupportedOperatorError,
)
from pyomo_relu.io.keras import load_keras  # noqa: E402
from pyomo_relu.network import NetworkDefinition  # noqa: E402

DATA = Path(__file__).parent / "data"
OMLT = DATA / "omlt_models"
PEAKS_H5 = DATA / "relumip" / "peaks_3x10.h5"
PEAKS_ONNX = DATA / "relumip" / "peaks_3x10.onnx"
L = keras.layers

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# ------------------------------------------------------------------ helpers
def _randomize(model: keras.Model, seed: int) -> keras.Model:
    """Give every weight (biases included) seeded random non-zero values."""
    rng = np.random.default_rng(seed)
    values = [rng.normal(0.0, 0.7, w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(values)
    return model


def _check_matches_predict(net: NetworkDefinition, model: keras.Model, seed: int = 0) -> None:
    """``net.evaluate`` equals ``model.predict`` on 100 random inputs, within 1e-5."""
    shape = tuple(model.input_shape[1:])
    x = np.random.default_rng(seed).uniform(-2.0, 2.0, (100, *shape)).astype("float32")
    expected = model.predict(x, verbose=0).reshape(100, -1)
    got = net.evaluate(x.reshape(100, -1).astype(np.float64))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # the check must be able to fail: the network is not constant
    assert np.ptp(expected) > 1e-3


def _sequential(input_shape: tuple[int, ...], layers: list, seed: int = 1) -> keras.Model:
    return _randomize(keras.Sequential([keras.Input(input_shape), *layers]), seed)


def _force_h5py_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ValueError("simulated: Keras 3 cannot read this file")

    monkeypatch.setattr(keras.saving, "load_model", refuse)


# --------------------------------------------------------- reference files
@pytest.mark.parametrize(
    "filename, last_activation",
    [
        ("keras_linear_131_relu.keras", "linear"),
        ("keras_linear_131_relu_output_activation.keras", "relu"),
    ],
)
def test_omlt_keras_files_match_reference_values(filename: str, last_activation: str) -> None:
    reference = json.loads((OMLT / "reference_values.json").read_text())[filename]
    net = load_keras(OMLT / filename)
    assert [layer.activation for layer in net.layers] == ["relu", last_activation]
    assert [layer.weights.shape for layer in net.layers] == [(3, 1), (1, 3)]
    assert net.layers[0].weights.dtype == np.float64
    assert net.input_shape == (1,)
    assert net.source == str(OMLT / filename)
    for case in reference["fixed_input_reference"]:
        y = net.evaluate([case["x"]])
        assert y.shape == (1,)
        assert y[0] == pytest.approx(case["y_numpy_float64"], abs=1e-5)


def test_omlt_keras_file_takes_input_bounds() -> None:
    net = load_keras(str(OMLT / "keras_linear_131_relu.keras"), input_bounds=[(-1, 1)])
    np.testing.assert_array_equal(net.input_lower, [-1.0])
    np.testing.assert_array_equal(net.input_upper, [1.0])


def _peaks_points() -> np.ndarray:
    return np.random.default_rng(7).uniform(-3.0, 3.0, (200, 2))


def _onnx_peaks(x: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(PEAKS_ONNX), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.astype(np.float32)})[0]


def test_peaks_h5_matches_independent_onnx_and_keras() -> None:
    net = load_keras(PEAKS_H5)
    assert [(layer.n_inputs, layer.n_outputs, layer.activation) for layer in net.layers] == [
        (2, 10, "relu"),
        (10, 10, "relu"),
        (10, 10, "relu"),
        (10, 1, "linear"),
    ]
    assert net.input_shape == (2,)
    x = _peaks_points()
    y = net.evaluate(x)
    np.testing.assert_allclose(y, _onnx_peaks(x), rtol=0, atol=1e-5)
    try:
        model = keras.saving.load_model(PEAKS_H5, compile=False, safe_mode=True)
    except Exception:  # pragma: no cover - depends on the Keras version
        pytest.skip("this Keras cannot load the legacy .h5 file itself")
    # Keras 3 turns the Keras 2 ``batch_input_shape [null, 2]`` into (None, None, 2)
    keras_x = x.astype("float32").reshape((200,) + (1,) * (len(model.input_shape) - 2) + (2,))
    np.testing.assert_allclose(y, model.predict(keras_x, verbose=0).reshape(200, 1), rtol=0, atol=1e-5)


def test_peaks_h5_read_with_h5py_when_keras_cannot(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _force_h5py_fallback(monkeypatch)
    with caplog.at_level("WARNING", logger="pyomo_relu.io.keras"):
        net = load_keras(PEAKS_H5)
    assert "h5py" in caplog.text
    assert len(net.layers) == 4 and net.input_shape == (2,)
    x = _peaks_points()
    np.testing.assert_allclose(net.evaluate(x), _onnx_peaks(x), rtol=0, atol=1e-5)


def test_h5py_fallback_reads_functional_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = keras.Input((4, 3), name="x")
    h = L.Flatten(name="flat")(inputs)
    h = L.Dense(6, name="lin")(h)
    h = L.ReLU(name="act")(h)
    h = L.Dropout(0.5, name="drop")(h)
    h = L.Dense(5, activation="relu", use_bias=False, name="nobias")(h)
    h = L.Activation("linear", name="ident")(h)
    outputs = L.Dense(2, name="out")(h)
    model = _randomize(keras.Model(inputs, outputs), seed=3)
    path = tmp_path / "chain.h5"
    model.save(path)
    _force_h5py_fallback(monkeypatch)
    net = load_keras(path)
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "linear"]
    assert net.input_shape == (4, 3)
    _check_matches_predict(net, model)


def _keras2_functional_h5(path: Path, branch: bool = False) -> dict[str, np.ndarray]:
    """Write a Keras 2.3-style functional ``.h5`` by hand (nested node lists, ``:0`` names)."""
    rng = np.random.default_rng(21)
    arrays = {
        "h1/kernel:0": rng.normal(size=(2, 4)),
        "h1/bias:0": rng.normal(size=4),
        "o/kernel:0": rng.normal(size=(4, 1)),
        "o/bias:0": rng.normal(size=1),
    }

    def layer(cls: str, name: str, source: str, **config: object) -> dict:
        return {
            "class_name": cls,
            "name": name,
            "config": {"name": name, **config},
            "inbound_nodes": [[[source, 0, 0, {}]]],
        }

    layers = [
        {
            "class_name": "InputLayer",
            "name": "in",
            "inbound_nodes": [],
            "config": {"name": "in", "batch_input_shape": [None, 2], "dtype": "float32"},
        },
        layer("Dense", "h1", "in", units=4, activation="linear", use_bias=True),
        layer("ReLU", "act", "in" if branch else "h1", max_value=None, negative_slope=0.0, threshold=0.0),
        layer("Dense", "o", "act", units=1, activation="linear", use_bias=True),
    ]
    config = {
        "class_name": "Model",
        "config": {"name": "model_1", "layers": layers, "input_layers": [["in", 0, 0]], "output_layers": [["o", 0, 0]]},
    }
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = b"2.3.1"
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["model_config"] = json.dumps(config).encode()
        weights = handle.create_group("model_weights")
        weights.attrs["layer_names"] = [b"in", b"h1", b"act", b"o"]
        for name in ("in", "h1", "act", "o"):
            group = weights.create_group(name)
            names = [key for key in arrays if key.startswith(name + "/")]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for key in names:
                group[key] = arrays[key].astype("float32")
    return {k: v.astype("float32").astype(np.float64) for k, v in arrays.items()}


@pytest.mark.parametrize("fallback", [False, True])
def test_keras2_functional_h5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallback: bool) -> None:
    path = tmp_path / "keras2_functional.h5"
    w = _keras2_functional_h5(path)
    if fallback:
        _force_h5py_fallback(monkeypatch)
    net = load_keras(path)
    assert [(layer.name, layer.activation) for layer in net.layers] == [("h1+act", "relu"), ("o", "linear")]
    x = np.random.default_rng(22).uniform(-2, 2, (50, 2))
    hidden = np.maximum(x @ w["h1/kernel:0"] + w["h1/bias:0"], 0)
    expected = hidden @ w["o/kernel:0"] + w["o/bias:0"]
    np.testing.assert_allclose(net.evaluate(x), expected, rtol=0, atol=1e-5)


def test_keras2_functional_h5_branch_refused_by_h5py_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keras2_branch.h5"
    _keras2_functional_h5(path, branch=True)
    _force_h5py_fallback(monkeypatch)
    with pytest.raises(UnsupportedOperatorError, match=r"'act' \(ReLU\) reads from 'in'"):
        load_keras(path)


# --------------------------------------------------------- in-memory models
@pytest.mark.parametrize("widths", [[5], [8, 8], [3, 7, 4, 6]])
def test_sequential_dense_relu_chains(widths: list[int]) -> None:
    model = _sequential((3,), [L.Dense(w, activation="relu") for w in widths] + [L.Dense(2)])
    net = load_keras(model)
    assert [layer.n_outputs for layer in net.layers] == widths + [2]
    assert [layer.activation for layer in net.layers] == ["relu"] * len(widths) + ["linear"]
    assert net.source == "<keras model>"
    assert net.input_shape == (3,)
    # weights are the transposed Keras kernels
    np.testing.assert_array_equal(net.layers[0].weights, model.layers[0].get_weights()[0].T)
    _check_matches_predict(net, model)


def test_functional_chain() -> None:
    inputs = keras.Input((4,))
    h = L.Dense(6, activation="relu", name="a")(inputs)
    h = L.Dense(5, activation="relu", name="b")(h)
    outputs = L.Dense(3, activation=None, name="c")(h)
    model = _randomize(keras.Model(inputs, outputs), seed=4)
    net = load_keras(model)
    assert [layer.name for layer in net.layers] == ["a", "b", "c"]
    _check_matches_predict(net, model)


def test_relu_and_activation_layers() -> None:
    model = _sequential(
        (3,),
        [
            L.Dense(6, name="d1"),
            L.ReLU(name="r1"),
            L.Dense(5, name="d2"),
            L.Activation("relu", name="a2"),
            L.Activation("linear", name="noop"),
            L.Dense(4, activation="relu", name="d3"),
            L.ReLU(name="again"),
            L.Dense(1, name="d4"),
        ],
        seed=5,
    )
    net = load_keras(model)
    assert [(layer.name, layer.activation) for layer in net.layers] == [
        ("d1+r1", "relu"),
        ("d2+a2", "relu"),
        ("d3", "relu"),
        ("d4", "linear"),
    ]
    _check_matches_predict(net, model)


def test_relu_directly_on_input() -> None:
    model = _sequential((3,), [L.ReLU(name="first"), L.Dense(2, name="d")], seed=6)
    net = load_keras(model)
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]
    np.testing.assert_array_equal(net.layers[0].weights, np.eye(3))
    _check_matches_predict(net, model)


def test_flatten_on_2d_input() -> None:
    model = _sequential((4, 3), [L.Flatten(), L.Dense(7, activation="relu"), L.Dense(2)], seed=7)
    net = load_keras(model)
    assert net.input_shape == (4, 3) and net.n_inputs == 12
    _check_matches_predict(net, model)


def test_flatten_channels_first_permutes() -> None:
    model = _sequential(
        (2, 3, 4),
        [
            L.ReLU(),
            L.Flatten(data_format="channels_first"),
            L.Dense(5, activation="relu"),
            L.Dense(1),
        ],
        seed=8,
    )
    net = load_keras(model)
    assert net.input_shape == (2, 3, 4) and net.n_inputs == 24
    _check_matches_predict(net, model)


def test_dropout_is_identity() -> None:
    model = _sequential((3,), [L.Dense(8, activation="relu"), L.Dropout(0.9), L.Dense(2)], seed=9)
    net = load_keras(model)
    assert len(net.layers) == 2
    _check_matches_predict(net, model)


def test_dense_without_bias() -> None:
    model = _sequential((3,), [L.Dense(5, activation="relu", use_bias=False), L.Dense(2, use_bias=False)], seed=10)
    net = load_keras(model)
    assert all(np.all(layer.bias == 0) for layer in net.layers)
    _check_matches_predict(net, model)


def test_linear_dense_layers_compose_into_one() -> None:
    model = _sequential(
        (4,),
        [
            L.Dense(6, name="p"),
            L.Dense(5, activation="relu", name="q"),
            L.Dense(7, name="r"),
            L.Dense(3, name="s"),
        ],
        seed=11,
    )
    net = load_keras(model)
    assert len(net.layers) == 2
    assert [(layer.name, layer.activation) for layer in net.layers] == [("p+q", "relu"), ("r+s", "linear")]
    assert net.layers[0].weights.shape == (5, 4) and net.layers[1].weights.shape == (3, 5)
    _check_matches_predict(net, model)


def test_nested_sequential_is_inlined() -> None:
    inner = keras.Sequential([keras.Input((5,)), L.Dense(4, activation="relu", name="inner_a")], name="inner")
    inputs = keras.Input((3,))
    outputs = L.Dense(2, name="head")(inner(L.Dense(5, activation="relu", name="stem")(inputs)))
    model = _randomize(keras.Model(inputs, outputs), seed=12)
    net = load_keras(model)
    assert [layer.name for layer in net.layers] == ["stem", "inner_a", "head"]
    _check_matches_predict(net, model)


def test_saved_keras_file_round_trip(tmp_path: Path) -> None:
    model = _sequential((3,), [L.Dense(6, activation="relu"), L.ReLU(), L.Dense(4), L.Dense(2)], seed=13)
    path = tmp_path / "model.keras"
    model.save(path)
    net = load_keras(path)
    assert net.source == str(path)
    assert len(net.layers) == 2
    _check_matches_predict(net, model)
    assert net.content_hash() == load_keras(model).content_hash()


# ------------------------------------------------------------------ errors
def test_tanh_dense_is_read_for_nlp() -> None:
    model = _sequential((2,), [L.Dense(3, activation="tanh", name="squash"), L.Dense(1)])
    net = load_keras(model)
    assert net.has_smooth_activations
    _check_matches_predict(net, model)


def test_softmax_activation_layer_is_refused() -> None:
    model = _sequential((2,), [L.Dense(3), L.Activation("softmax", name="probs")])
    with pytest.raises(UnsupportedOperatorError, match=r"'probs'.*softmax"):
        load_keras(model)


@pytest.mark.parametrize(
    "layers",
    [
        [L.Conv2D(2, 3, name="conv"), L.Flatten(), L.Dense(1)],
        [L.Flatten(), L.Dense(3), L.ReLU(max_value=6.0, name="capped")],
        [L.Flatten(), L.Dense(3), L.ReLU(negative_slope=0.1, name="leaky")],
    ],
    ids=["conv2d", "relu6", "leaky"],
)
def test_layers_beyond_chains_are_read_as_a_graph(layers: list) -> None:
    model = _sequential((5, 5, 1), layers)
    _check_matches_predict(load_keras(model), model)


def test_branching_functional_model_is_read_as_a_graph() -> None:
    inputs = keras.Input((3,))
    left = L.Dense(4, activation="relu", name="left")(inputs)
    right = L.Dense(4, activation="relu", name="right")(inputs)
    outputs = L.Dense(1, name="out")(L.Add(name="merge")([left, right]))
    model = keras.Model(inputs, outputs)
    _check_matches_predict(load_keras(model), model)


def test_multiple_outputs_are_refused() -> None:
    inputs = keras.Input((3,))
    h = L.Dense(4, activation="relu", name="shared")(inputs)
    model = keras.Model(inputs, [L.Dense(1, name="y1")(h), L.Dense(1, name="y2")(h)])
    with pytest.raises(UnsupportedOperatorError, match=r"2 outputs.*y1.*y2"):
        load_keras(model)


def test_dense_on_unflattened_tensor_is_refused() -> None:
    model = _sequential((4, 3), [L.Dense(2, name="rowwise")])
    with pytest.raises(UnsupportedOperatorError, match=r"'rowwise'.*Flatten"):
        load_keras(model)


def test_subclassed_model_is_refused() -> None:
    class Custom(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="custom")
            self.dense = L.Dense(2)

        def call(self, x):  # type: ignore[override]
            return self.dense(x)

    model = Custom()
    model(np.zeros((1, 3), dtype="float32"))
    with pytest.raises(UnsupportedOperatorError, match=r"'custom'.*subclassed"):
        load_keras(model)


def test_not_a_model_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="expected a Keras model"):
        load_keras(L.Dense(3))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_keras(tmp_path / "nowhere.keras")


@pytest.mark.parametrize(
    "filename, content, message",
    [
        ("notes.keras", b"just some text", "not a zip archive"),
        ("notes.h5", b"just some text", "not an HDF5 file"),
        ("notes.txt", b"just some text", "expected a Keras 3 '.keras' file"),
    ],
)
def test_non_model_files(tmp_path: Path, filename: str, content: bytes, message: str) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message):
        load_keras(path)


def test_h5_without_model_config(tmp_path: Path) -> None:
    path = tmp_path / "weights_only.h5"
    with h5py.File(path, "w") as handle:
        handle["dense/kernel:0"] = np.ones((2, 3))
    with pytest.raises(ModelLoadError, match="model_config"):
        load_keras(path)


def test_keras_zip_that_is_not_a_model(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "fake.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ModelLoadError, match="Keras could not load"):
        load_keras(path)


def test_lambda_layer_refused_by_safe_mode(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((3,)), L.Dense(2), L.Lambda(lambda t: t * 2.0, name="doubler")])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelLoadError, match=r"'doubler'.*safe_mode is on") as info:
        load_keras(path)
    assert isinstance(info.value, PyomoReluError)


def test_lambda_in_h5_is_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = keras.Sequential([keras.Input((3,)), L.Dense(2), L.Lambda(lambda t: t * 2.0, name="doubler")])
    path = tmp_path / "lambda.h5"
    model.save(path)
    with pytest.raises(UnsupportedOperatorError, match=r"'doubler' \(Lambda"):
        load_keras(path)
    _force_h5py_fallback(monkeypatch)
    with pytest.raises(UnsupportedOperatorError, match=r"'doubler' \(Lambda"):
        load_keras(path)


def test_missing_keras_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'pyomo_relu\[keras\]'") as info:
        load_keras(OMLT / "keras_linear_131_relu.keras")
    assert isinstance(info.value, ImportError) and info.value.extra == "keras"


def test_package_imports_without_keras() -> None:
    code = (
        "import sys; import pyomo_relu, pyomo_relu.io, pyomo_relu.io.keras; "
        "assert 'keras' not in sys.modules and 'torch' not in sys.modules, 'keras imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
