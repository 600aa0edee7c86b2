"""Read scikit-learn multi-layer perceptrons into a NetworkDefinition.

Accepted estimators (fitted):

* ``MLPRegressor`` and ``MLPClassifier`` with ``activation="relu"`` (or ``"identity"``;
  ``"tanh"`` and ``"logistic"`` are read as smooth activations, for NLP solvers only);
* a ``Pipeline`` whose last step is one of those and whose other steps are
  ``StandardScaler`` or ``MinMaxScaler`` (``clip=False``) or ``"passthrough"``; the
  scalers are affine and become the network's input :class:`~pyomo_relu.network.Scaling`
  (several compose into one);
* a ``TransformedTargetRegressor`` around either of those, whose transformer is a
  ``StandardScaler`` or ``MinMaxScaler`` (or none): it becomes the output scaling, so the
  network outputs are in the units of ``predict``.

Outputs.  A regressor gives ``predict`` (its output activation must be the identity; the
``loss="poisson"`` regressor, whose output is ``exp``, is refused).  A classifier gives
its **logits**, the values before the output ``softmax``/``logistic``, since those are
not piecewise linear:

* multiclass (``softmax``): one logit per class in ``classes_`` order; ``predict`` is the
  class of the largest logit, so constraints on the decision are written on the logits;
* binary (``logistic``): **one** logit ``z``; ``predict`` is ``classes_[1]`` when
  ``z > 0`` and ``classes_[0]`` otherwise, and ``predict_proba[:, 1] = 1 / (1 + exp(-z))``;
* multilabel (``logistic`` with several outputs): one logit per label, its sign decides.

Any other estimator or pipeline step raises
:class:`~pyomo_relu.errors.UnsupportedOperatorError` naming it.  scikit-learn is imported
only when :func:`load_sklearn` is called (``pip install pyomo_relu[sklearn]``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pyomo_relu.errors import ModelLoadError, OptionalDependencyError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.affine import AffineMap
from pyomo_relu.network import DenseLayer, NetworkDefinition, Scaling

logger = logging.getLogger(__name__)

__all__ = ["SUPPORTED_ESTIMATORS", "load_sklearn"]

#: Human-readable list used in error messages.
SUPPORTED_ESTIMATORS = (
    "MLPRegressor or MLPClassifier with activation='relu' (or 'identity'; 'tanh' and 'logistic' "
    "for NLP solvers only), optionally in a "
    "Pipeline after StandardScaler / MinMaxScaler(clip=False) steps, optionally inside a "
    "TransformedTargetRegressor with a StandardScaler / MinMaxScaler transformer"
)

_HIDDEN_ACTIVATIONS = {"relu": "relu", "identity": "linear", "tanh": "tanh", "logistic": "sigmoid"}


def _import_sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
    except ImportError as exc:
        raise OptionalDependencyError("scikit-learn", "reading scikit-learn models", "sklearn") from exc
    return {
        "MLPClassifier": MLPClassifier,
        "MLPRegressor": MLPRegressor,
        "Pipeline": Pipeline,
        "StandardScaler": StandardScaler,
        "MinMaxScaler": MinMaxScaler,
        "TransformedTargetRegressor": TransformedTargetRegressor,
        "FunctionTransformer": FunctionTransformer,
    }


def _where(estimator: Any, step: str | None = None) -> str:
    label = type(estimator).__name__
    return f"pipeline step {step!r} ({label})" if step is not None else label


def _unsupported(what: str, reason: str) -> UnsupportedOperatorError:
    return UnsupportedOperatorError(
        f"{what} {reason}. pyomo_relu reads {SUPPORTED_ESTIMATORS}; other activations "
        "(tanh, logistic) have no exact MILP encoding"
    )


def _require_fitted(estimator: Any, attribute: str, what: str) -> None:
    if getattr(estimator, attribute, None) is None:
        raise ModelLoadError(f"{what} is not fitted (no {attribute}); call fit() first")


# ---------------------------------------------------------------------- scalers
def _plain(estimator: Any, cls: type) -> bool:
    return type(estimator) is cls


def _scaler_scaling(scaler: Any, what: str, sk: dict) -> Scaling:
    """The :class:`Scaling` ``(x - offset) / factor`` equal to ``scaler.transform``."""
    if _plain(scaler, sk["StandardScaler"]):
        _require_fitted(scaler, "n_features_in_", what)
        size = int(scaler.n_features_in_)
        offset = np.asarray(scaler.mean_, dtype=np.float64) if scaler.with_mean else np.zeros(size)
        if scaler.with_std:
            factor = np.asarray(scaler.scale_, dtype=np.float64).copy()
            factor[factor == 0] = 1.0  # sklearn stores 1 for constant features already
        else:
            factor = np.ones(size)
        return Scaling(offset, factor)
    if _plain(scaler, sk["MinMaxScaler"]):
        _require_fitted(scaler, "scale_", what)
        if scaler.clip:
            raise _unsupported(
                what,
                "has clip=True, which clips to feature_range (not affine); refit with "
                "clip=False and bound the inputs to the training range instead",
            )
        scale = np.asarray(scaler.scale_, dtype=np.float64)
        if np.any(scale == 0):
            raise ModelLoadError(f"{what} has a zero scale_ entry")
        # transform: x * scale_ + min_  ==  (x - (-min_ / scale_)) / (1 / scale_)
        return Scaling(-np.asarray(scaler.min_, dtype=np.float64) / scale, 1.0 / scale)
    raise _unsupported(
        what,
        "is not supported as a preprocessing step (only StandardScaler and MinMaxScaler(clip=False), which are affine)",
    )


def _compose(first: Scaling | None, second: Scaling) -> Scaling:
    """The scaling that applies ``first`` then ``second``."""
    if first is None:
        return second
    if first.size != second.size:
        raise ShapeMismatchError(f"consecutive scalers have {first.size} and {second.size} features")
    # ((x - o1) / f1 - o2) / f2 == (x - (o1 + o2 f1)) / (f1 f2)
    return Scaling(first.offset + second.offset * first.factor, first.factor * second.factor)


# ----------------------------------------------------------------------- MLPs
def _mlp_layers(mlp: Any, what: str, sk: dict) -> list[DenseLayer]:
    """DenseLayers of a fitted MLP; the output layer is linear (logits for classifiers)."""
    is_classifier = _plain(mlp, sk["MLPClassifier"])
    _require_fitted(mlp, "coefs_", what)
    activation = str(mlp.activation)
    if activation not in _HIDDEN_ACTIVATIONS:
        raise _unsupported(what, f"has activation={activation!r}; only 'relu', 'identity', 'tanh', 'logistic'")
    output_activation = str(getattr(mlp, "out_activation_", "identity"))
    allowed = ("softmax", "logistic") if is_classifier else ("identity",)
    if output_activation not in allowed:
        raise _unsupported(
            what,
            f"has output activation {output_activation!r} (loss={mlp.loss!r}); only "
            "the identity output of the squared-error loss is supported for regressors",
        )
    hidden = _HIDDEN_ACTIVATIONS[activation]
    layers: list[DenseLayer] = []
    pending: AffineMap | None = None  # linear hidden layers (activation='identity') compose
    count = len(mlp.coefs_)
    for index, (coef, intercept) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        weights = np.asarray(coef, dtype=np.float64).T  # sklearn stores (n_in, n_out)
        bias = np.asarray(intercept, dtype=np.float64).reshape(-1)
        piece = AffineMap(weights, bias) if pending is None else pending.then(weights, bias)
        pending = None
        name = f"{type(mlp).__name__}.coefs_[{index}]"
        if index == count - 1:
            layers.append(piece.layer("linear", name + (" (logits)" if is_classifier else "")))
        elif hidden != "linear":
            layers.append(piece.layer(hidden, name))
        else:
            pending = piece
    return layers


def _classifier_output_names(mlp: Any, sk: dict) -> list[str] | None:
    if not _plain(mlp, sk["MLPClassifier"]):
        return None
    n_out = int(mlp.coefs_[-1].shape[1])
    classes = getattr(mlp, "classes_", None)
    if classes is None:
        return None
    if mlp.out_activation_ == "softmax" and len(classes) == n_out:
        return [f"logit[{c}]" for c in classes]
    if n_out == 1 and len(classes) == 2:
        return [f"logit[{classes[1]} vs {classes[0]}]"]
    return None


# -------------------------------------------------------------------- unpacking
def _unpack(model: Any, sk: dict) -> tuple[Any, Scaling | None, Scaling | None, Any]:
    """``(mlp, input scaling, output scaling, estimator with feature names)``."""
    output_scaling = None
    if _plain(model, sk["TransformedTargetRegressor"]):
        _require_fitted(model, "regressor_", "TransformedTargetRegressor")
        transformer = model.transformer_
        if _plain(transformer, sk["FunctionTransformer"]):
            if transformer.func is not None or transformer.inverse_func is not None:
                raise _unsupported(
                    "TransformedTargetRegressor",
                    "transforms the target with func/inverse_func, which cannot be read; use "
                    "transformer=StandardScaler() or MinMaxScaler()",
                )
        else:
            scaling = _scaler_scaling(
                transformer, f"TransformedTargetRegressor transformer ({type(transformer).__name__})", sk
            )
            output_scaling = scaling  # y = y_scaled * factor + offset
        inner = model.regressor_
        if _plain(inner, sk["MLPClassifier"]):
            raise _unsupported("TransformedTargetRegressor", "wraps a classifier")
        mlp, input_scaling, _, named = _unpack(inner, sk)
        return mlp, input_scaling, output_scaling, named
    if _plain(model, sk["Pipeline"]):
        steps = list(model.steps)
        if not steps:
            raise ModelLoadError("the Pipeline has no steps")
        input_scaling = None
        for name, step in steps[:-1]:
            if step is None or step == "passthrough":
                continue
            input_scaling = _compose(input_scaling, _scaler_scaling(step, _where(step, name), sk))
        name, last = steps[-1]
        if not (_plain(last, sk["MLPRegressor"]) or _plain(last, sk["MLPClassifier"])):
            raise _unsupported(_where(last, name), "is not a supported final estimator")
        return last, input_scaling, None, model
    if _plain(model, sk["MLPRegressor"]) or _plain(model, sk["MLPClassifier"]):
        return model, None, None, model
    raise _unsupported(type(model).__name__, "is not a supported estimator")


# ------------------------------------------------------------------------ API
def load_sklearn(model: Any, input_bounds: object = None) -> NetworkDefinition:
    """Read a fitted scikit-learn MLP (or Pipeline, TransformedTargetRegressor) into a
    :class:`~pyomo_relu.network.NetworkDefinition`.

    The outputs are ``predict`` for a regressor and the logits for a classifier (see the
    module docstring: for a binary classifier, one logit whose sign decides the class).
    ``input_bounds`` accepts the forms of :class:`NetworkDefinition`, in the user's units
    (before any scaler).

    >>> from sklearn.neural_network import MLPRegressor
    >>> X = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    >>> mlp = MLPRegressor(hidden_layer_sizes=(4,), solver="lbfgs", random_state=0)
    >>> mlp = mlp.fit(X, [0.0, 1.0, 1.0, 2.0])
    >>> net = load_sklearn(mlp, input_bounds=[(0, 1), (0, 1)])
    >>> [layer.activation for layer in net.layers]
    ['relu', 'linear']
    >>> bool(abs(net.evaluate([[0.5, 0.5]])[0, 0] - mlp.predict([[0.5, 0.5]])[0]) < 1e-9)
    True
    """
    sk = _import_sklearn()
    mlp, input_scaling, output_scaling, named = _unpack(model, sk)
    what = type(mlp).__name__
    layers = _mlp_layers(mlp, what, sk)
    n_in = layers[0].n_inputs
    if input_scaling is not None and input_scaling.size != n_in:
        raise ShapeMismatchError(f"the scalers see {input_scaling.size} features but {what} takes {n_in}")
    names = getattr(named, "feature_names_in_", None)
    if names is None:
        names = getattr(mlp, "feature_names_in_", None)
    network = NetworkDefinition(
        layers,
        input_bounds,
        input_scaling=input_scaling,
        output_scaling=output_scaling,
        input_names=[str(n) for n in names] if names is not None and len(names) == n_in else None,
        output_names=_classifier_output_names(mlp, sk),
        source=f"<sklearn {type(model).__name__}>",
    )
    logger.info("read scikit-learn %s: %s", type(model).__name__, network)
    return network
