"""Keras functional and Sequential models beyond plain chains: Conv2D, pooling, BatchNorm,
Add/Concatenate merges, LeakyReLU/PReLU/ReLU(max_value).  ``net.evaluate`` must equal
``model.predict`` within 1e-5, also after a ``.keras`` round trip, and the MILP optimum is
attained at its solution."""

from __future__ import annotations

import os

import numpy as np
import pyomo.environ as pe
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from pyomo_relu import ReLUNetBlock, load_keras, solve  # noqa: E402
from pyomo_relu.errors import UnsupportedOperatorError  # noqa: E402


def _functional_cnn() -> keras.Model:
    keras.utils.set_random_seed(4)
    x = keras.Input(shape=(6, 6, 1))
    c = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv1")(x)
    c = keras.layers.BatchNormalization(name="bn")(c)
    p = keras.layers.MaxPooling2D(2, padding="same", name="pool")(c)
    d = keras.layers.Conv2D(3, 2, padding="same", strides=1, name="conv2")(p)
    d = keras.layers.LeakyReLU(negative_slope=0.1, name="leaky")(d)
    s = keras.layers.Add(name="residual")([p, d])
    a = keras.layers.AveragePooling2D(2, name="avg")(s)
    g = keras.layers.GlobalMaxPooling2D(name="gmax")(s)
    f = keras.layers.Concatenate(name="cat")([keras.layers.Flatten(name="flat")(a), g])
    h = keras.layers.Dense(5, name="hidden")(f)
    h = keras.layers.PReLU(name="prelu")(h)
    h = keras.layers.ReLU(max_value=2.0, name="relu_cap")(h)
    y = keras.layers.Dense(2, name="out")(h)
    model = keras.Model(x, y)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.array([0.1, -0.2, 0.3], dtype="float32"))
    bn.moving_variance.assign(np.array([0.5, 1.5, 2.0], dtype="float32"))
    model.get_layer("prelu").alpha.assign(np.linspace(-0.3, 0.4, 5).astype("float32"))
    return model


def test_functional_cnn_matches_predict_and_optimises(tmp_path, rng: np.random.Generator) -> None:
    model = _functional_cnn()
    net = load_keras(model)
    x = rng.uniform(0, 1, size=(100, 36)).astype("float32")
    expected = model.predict(x.reshape(-1, 6, 6, 1), verbose=0)
    np.testing.assert_allclose(net.evaluate(x.astype(float)), expected, atol=1e-5)
    assert sum(type(layer).__name__ == "MaxLayer" for layer in net.layers) == 2
    path = tmp_path / "cnn.keras"
    model.save(path)
    again = load_keras(path)
    assert again.content_hash() == net.content_hash()
    box = net.with_input_bounds((np.clip(x[0] - 0.05, 0, 1), np.clip(x[0] + 0.05, 0, 1)))
    samples = box.evaluate(rng.uniform(box.input_lower, box.input_upper, size=(3000, 36)))[:, 1]
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(box, bounds=["interval", "crown"])
    m.obj = pe.Objective(expr=m.nn.outputs[1], sense=pe.maximize)
    result = solve(m, "highs", time_limit=120)
    assert result.status == "optimal"
    assert result.objective >= samples.max() - 1e-6 and m.nn.get_error() < 1e-5


def test_sequential_conv_model(rng: np.random.Generator) -> None:
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 2)),
            keras.layers.Conv1D(3, 3, strides=2, activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    net = load_keras(model)
    x = rng.uniform(-1, 1, size=(50, 16)).astype("float32")
    np.testing.assert_allclose(net.evaluate(x.astype(float)), model.predict(x.reshape(-1, 8, 2), verbose=0), atol=1e-5)


def test_unsupported_keras_layer_is_named() -> None:
    x = keras.Input(shape=(4,))
    y = keras.layers.Dense(2, name="d")(keras.layers.LayerNormalization(name="norm")(x))
    with pytest.raises(UnsupportedOperatorError, match=r"'norm' \(LayerNormalization\) is not supported"):
        load_keras(keras.Model(x, y))
