"""Tests of pyomo_relu.io.sklearn: MLPs, scaler pipelines, target transforms, a MILP."""

from __future__ import annotations

import builtins
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
import pyomo.environ as pe  # noqa: E402
from sklearn.compose import TransformedTargetRegressor  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_regression  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402
from sklearn.svm import SVR  # noqa: E402

from pyomo_relu.block import ReLUNetBlock  # noqa: E402
from pyomo_relu.errors import ModelLoadError, OptionalDependencyError, UnsupportedOperatorError  # noqa: E402
from pyomo_relu.io.sklearn import load_sklearn  # noqa: E402
from pyomo_relu.solvers import solve  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


@pytest.fixture(scope="module")
def regression_data():
    X, y = make_regression(n_samples=200, n_features=4, noise=0.1, random_state=0)
    X = X * np.array([1.0, 10.0, 0.1, 3.0]) + np.array([0.0, 50.0, -2.0, 1.0])
    return X, y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


def _mlp(kind=MLPRegressor, **kwargs):
    params = dict(hidden_layer_sizes=(16, 16), max_iter=300, random_state=0)
    params.update(kwargs)
    return kind(**params)


def _probe(X: np.ndarray, n: int = 100, seed: int = 0) -> np.ndarray:
    """100 random inputs spread over (and a little beyond) the data's range."""
    rng = np.random.default_rng(seed)
    lo, hi = X.min(axis=0), X.max(axis=0)
    width = hi - lo
    return rng.uniform(lo - 0.1 * width, hi + 0.1 * width, size=(n, X.shape[1]))


def _logits(mlp: MLPClassifier, X: np.ndarray) -> np.ndarray:
    """The MLP's pre-output-activation values, by sklearn's own forward pass."""
    hidden = X
    for coef, intercept in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1]):
        hidden = np.maximum(hidden @ coef + intercept, 0.0)
    return hidden @ mlp.coefs_[-1] + mlp.intercepts_[-1]


# ------------------------------------------------------------------ regressors
def test_mlp_regressor_matches_predict(regression_data) -> None:
    X, y = regression_data
    model = _fit(_mlp(), X, y)
    net = load_sklearn(model)
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "linear"]
    assert net.n_inputs == 4 and net.n_outputs == 1
    x = _probe(X)
    expected = model.predict(x)
    np.testing.assert_allclose(net.evaluate(x)[:, 0], expected, rtol=0, atol=1e-6)
    assert np.ptp(expected) > 1.0


def test_multi_output_regressor_and_identity_hidden(regression_data) -> None:
    X, y = regression_data
    Y = np.column_stack([y, -0.5 * y + X[:, 0]])
    model = _fit(_mlp(activation="identity", hidden_layer_sizes=(8, 6)), X, Y)
    net = load_sklearn(model)
    assert [layer.activation for layer in net.layers] == ["linear"]  # composed into one
    x = _probe(X)
    np.testing.assert_allclose(net.evaluate(x), model.predict(x), rtol=0, atol=1e-6)


def test_pipeline_with_scalers_is_folded(regression_data) -> None:
    X, y = regression_data
    for scalers in (
        [StandardScaler()],
        [MinMaxScaler()],
        [MinMaxScaler(feature_range=(-1, 2)), "passthrough", StandardScaler()],
        [StandardScaler(with_mean=False)],
        [StandardScaler(with_std=False)],
    ):
        pipeline = _fit(make_pipeline(*scalers, _mlp()), X, y)
        net = load_sklearn(pipeline, input_bounds=[(-1, 1)] * 4)
        assert net.input_scaling is not None
        x = _probe(X)
        expected = pipeline.predict(x)
        np.testing.assert_allclose(net.evaluate(x)[:, 0], expected, rtol=0, atol=1e-6)
        assert np.ptp(expected) > 1.0
        # canonical layers (used by bounds and formulations) give the same outputs
        h = x
        for layer in net.canonical_layers:
            h = layer.forward(h)
        np.testing.assert_allclose(h[:, 0], expected, rtol=0, atol=1e-6)


def test_constant_feature_scaled_like_sklearn(regression_data) -> None:
    X, y = regression_data
    X = X.copy()
    X[:, 2] = 3.0  # zero variance: sklearn uses scale 1
    pipeline = _fit(make_pipeline(StandardScaler(), _mlp()), X, y)
    net = load_sklearn(pipeline)
    x = _probe(X)
    x[:, 2] = np.linspace(2.0, 4.0, len(x))  # off the constant value too
    np.testing.assert_allclose(net.evaluate(x)[:, 0], pipeline.predict(x), rtol=0, atol=1e-6)


def test_transformed_target_regressor(regression_data) -> None:
    X, y = regression_data
    for transformer in (StandardScaler(), MinMaxScaler(), None):
        model = _fit(
            TransformedTargetRegressor(make_pipeline(StandardScaler(), _mlp()), transformer=transformer),
            X,
            y * 100 + 1000,
        )
        net = load_sklearn(model)
        assert (net.output_scaling is None) == (transformer is None)
        x = _probe(X)
        expected = model.predict(x)
        np.testing.assert_allclose(net.evaluate(x)[:, 0], expected, rtol=1e-10, atol=1e-6)
        assert np.ptp(expected) > 100


def test_feature_names_become_input_names(regression_data) -> None:
    pd = pytest.importorskip("pandas")
    X, y = regression_data
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    net = load_sklearn(_fit(make_pipeline(StandardScaler(), _mlp()), frame, y))
    assert net.input_names == ("a", "b", "c", "d")


# ----------------------------------------------------------------- classifiers
def test_multiclass_classifier_logits(digits) -> None:
    X, y = digits
    model = _fit(_mlp(MLPClassifier, max_iter=200), X, y)
    net = load_sklearn(model)
    assert net.n_outputs == 10
    assert net.output_names[3] == "logit[3]"
    x = np.vstack([X[:50], _probe(X, 50)])
    logits = net.evaluate(x)
    np.testing.assert_allclose(logits, _logits(model, x), rtol=0, atol=1e-6)
    proba = model.predict_proba(x)
    assert np.array_equal(np.argmax(logits, axis=1), np.argmax(proba, axis=1))
    assert np.array_equal(model.classes_[np.argmax(logits, axis=1)], model.predict(x))
    # softmax of the logits is predict_proba
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(shifted / shifted.sum(axis=1, keepdims=True), proba, atol=1e-6)
    assert len(set(model.predict(X[:50]))) > 3


def test_binary_classifier_single_logit_sign() -> None:
    X, y = make_classification(n_samples=300, n_features=5, random_state=1)
    labels = np.where(y == 1, "yes", "no")
    model = _fit(make_pipeline(MinMaxScaler(), _mlp(MLPClassifier)), X, labels)
    net = load_sklearn(model)
    assert net.n_outputs == 1
    assert net.output_names == ("logit[yes vs no]",)
    x = _probe(X, 200)
    z = net.evaluate(x)[:, 0]
    proba = model.predict_proba(x)[:, 1]
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-z)), proba, atol=1e-6)
    predicted = model.predict(x)
    assert np.array_equal(np.where(z > 0, "yes", "no"), predicted)
    assert set(predicted) == {"yes", "no"}


# -------------------------------------------------------------------- refusals
def test_tanh_and_logistic_are_read_as_smooth(regression_data) -> None:
    X, y = regression_data
    for activation, kind in (("tanh", "tanh"), ("logistic", "sigmoid")):
        model = _fit(_mlp(activation=activation, max_iter=50), X, y)
        net = load_sklearn(model)
        assert net.layers[0].activation == kind and net.has_smooth_activations
        np.testing.assert_allclose(net.evaluate(X), model.predict(X).reshape(len(X), -1), atol=1e-8)
    pipeline = _fit(
        Pipeline([("scale", StandardScaler()), ("net", _mlp(MLPClassifier, activation="tanh", max_iter=50))]), X, y > 0
    )
    assert load_sklearn(pipeline).has_smooth_activations


def test_poisson_regressor_refused(regression_data) -> None:
    X, y = regression_data
    model = _fit(_mlp(loss="poisson", max_iter=5), X, np.abs(y))
    with pytest.raises(UnsupportedOperatorError, match=r"output activation 'exp'"):
        load_sklearn(model)


def test_unsupported_steps_and_estimators_refused(regression_data) -> None:
    X, y = regression_data
    pipeline = _fit(Pipeline([("scale", StandardScaler()), ("pca", PCA(3)), ("mlp", _mlp())]), X, y)
    with pytest.raises(UnsupportedOperatorError, match=r"step 'pca' \(PCA\)"):
        load_sklearn(pipeline)
    pipeline = _fit(Pipeline([("scale", StandardScaler()), ("svr", SVR())]), X, y)
    with pytest.raises(UnsupportedOperatorError, match=r"step 'svr' \(SVR\)"):
        load_sklearn(pipeline)
    with pytest.raises(UnsupportedOperatorError, match=r"SVR is not a supported estimator"):
        load_sklearn(_fit(SVR(), X, y))
    clipped = _fit(make_pipeline(MinMaxScaler(clip=True), _mlp(max_iter=5)), X, y)
    with pytest.raises(UnsupportedOperatorError, match=r"MinMaxScaler.*clip=True"):
        load_sklearn(clipped)
    logged = _fit(TransformedTargetRegressor(_mlp(max_iter=5), func=np.log1p, inverse_func=np.expm1), X, np.abs(y))
    with pytest.raises(UnsupportedOperatorError, match=r"func/inverse_func"):
        load_sklearn(logged)
    with pytest.raises(ModelLoadError, match="not fitted"):
        load_sklearn(_mlp())


def test_public_exports() -> None:
    import pyomo_relu
    import pyomo_relu.io

    assert pyomo_relu.load_sklearn is load_sklearn
    assert pyomo_relu.io.load_sklearn is load_sklearn


def test_missing_sklearn_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(sys.modules, "sklearn")
    with pytest.raises(OptionalDependencyError, match=r"pip install 'pyomo_relu\[sklearn\]'"):
        load_sklearn(None)


# ------------------------------------------------------------- end to end MILP
def test_milp_maximum_of_sklearn_regressor() -> None:
    X, y = make_regression(n_samples=200, n_features=2, noise=0.5, random_state=3)
    y = y + 30 * np.sin(X[:, 0]) * np.cos(X[:, 1])  # a bumpy target, several local maxima
    pipeline = _fit(make_pipeline(StandardScaler(), _mlp(hidden_layer_sizes=(10, 10))), X, y)
    box = [(-1.5, 1.0), (-0.5, 2.0)]
    net = load_sklearn(pipeline, input_bounds=box)

    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, formulation="bigm")
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=pe.maximize)
    result = solve(m, "highs", mip_gap=1e-9)
    assert result.status == "optimal"

    argmax = np.array([m.nn.inputs[i].value for i in range(2)])
    assert all(lo - 1e-7 <= v <= hi + 1e-7 for v, (lo, hi) in zip(argmax, box))
    samples = np.random.default_rng(0).uniform([b[0] for b in box], [b[1] for b in box], size=(10_000, 2))
    sampled_max = pipeline.predict(samples).max()
    assert result.objective >= sampled_max - 1e-6
    assert result.objective == pytest.approx(net.evaluate(argmax)[0], abs=1e-5)
    assert result.objective == pytest.approx(pipeline.predict(argmax[None, :])[0], abs=1e-5)
    assert np.ptp(pipeline.predict(samples)) > 1.0  # the maximum is not trivial
