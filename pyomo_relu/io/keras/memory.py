"""In-memory Keras 3 models (Sequential or functional chains, nested models inlined) read
into :class:`~pyomo_relu.io.keras.steps.Step` objects."""

from __future__ import annotations

from typing import Any

from pyomo_relu.errors import ModelLoadError, UnsupportedOperatorError
from pyomo_relu.io.keras.config import chain_entries, config_name
from pyomo_relu.io.keras.steps import Step, batchnorm_step, check_plain_relu, dense_activation, unsupported

__all__ = ["is_plain_functional", "is_plain_sequential", "model_input_shape", "steps_from_model"]


def _activation_name(function: Any, keras: Any) -> str:
    if function is keras.activations.relu:
        return "relu"
    if function is keras.activations.linear or function is None:
        return "linear"
    name = getattr(function, "__name__", type(function).__name__)
    module = getattr(function, "__module__", "") or ""
    return name if module.startswith("keras") else f"{module}.{name}".lstrip(".")


def _steps_from_layer(layer: Any, keras: Any) -> list[Step]:
    layers = keras.layers
    kind, name = type(layer), layer.name
    if isinstance(layer, keras.Model):
        return steps_from_model(layer, keras)
    if kind is layers.InputLayer or kind is layers.Dropout:
        return []
    if kind is layers.Dense:
        activation = _activation_name(layer.activation, keras)
        dense_activation(name, activation)
        if getattr(layer, "quantization_mode", None):
            raise UnsupportedOperatorError(
                f"Keras layer {name!r} (Dense) is quantized ({layer.quantization_mode}); "
                "only float Dense layers are supported"
            )
        if not layer.built:
            raise ModelLoadError(f"Keras layer {name!r} (Dense) is not built (no weights yet)")
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
        return [Step(name, "dense", kernel, bias, activation)]
    if kind is layers.ReLU:
        check_plain_relu(name, layer.max_value, layer.negative_slope, layer.threshold)
        return [Step(name, "relu")]
    if kind is layers.Activation:
        activation = dense_activation(name, _activation_name(layer.activation, keras), "Activation")
        return [Step(name, "relu" if activation == "relu" else "identity")]
    if kind is layers.Flatten:
        return [Step(name, "flatten", channels_first=layer.data_format == "channels_first")]
    if kind is layers.BatchNormalization:
        if not layer.built:
            raise ModelLoadError(f"Keras layer {name!r} (BatchNormalization) is not built (no weights yet)")
        numpy = keras.ops.convert_to_numpy
        return [
            batchnorm_step(
                name,
                layer.axis,
                layer.epsilon,
                numpy(layer.moving_mean),
                numpy(layer.moving_variance),
                numpy(layer.gamma) if layer.scale else None,
                numpy(layer.beta) if layer.center else None,
            )
        ]
    function = getattr(layer, "activation", None)
    raise unsupported(name, kind.__name__, None if function is None else _activation_name(function, keras))


def _functional_class() -> type[Any] | None:
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # pragma: no cover - layout of Keras internals changed
        return None
    return Functional


def _own_call(model: Any, cls: type[Any]) -> bool:
    """``model`` is a ``cls`` whose ``call`` is the library's own."""
    return isinstance(model, cls) and getattr(type(model), "call", None) is getattr(cls, "call", None)


def is_plain_sequential(model: Any, keras: Any) -> bool:
    """``model`` is a ``keras.Sequential`` that does not override ``call``."""
    return _own_call(model, keras.Sequential)


def is_plain_functional(model: Any) -> bool:
    """``model`` is a functional model that does not override ``call``."""
    functional = _functional_class()
    return functional is not None and _own_call(model, functional)


def steps_from_model(model: Any, keras: Any) -> list[Step]:
    """Steps of a Sequential or functional model (nested models are inlined)."""
    if isinstance(model, keras.Sequential):
        if not is_plain_sequential(model, keras):
            raise UnsupportedOperatorError(
                f"Keras model {model.name!r} ({type(model).__name__}) overrides call(); "
                "only plain Sequential or functional models can be read"
            )
        steps: list[Step] = []
        for layer in model.layers:
            steps.extend(_steps_from_layer(layer, keras))
        return steps
    if not is_plain_functional(model):
        raise UnsupportedOperatorError(
            f"Keras model {model.name!r} ({type(model).__name__}) is a subclassed model whose "
            "computation cannot be inspected; rebuild it as a Sequential or functional model"
        )
    try:
        config = model.get_config()
    except Exception as exc:  # custom layers without get_config: name the culprit
        for layer in model.layers:
            _steps_from_layer(layer, keras)
        raise ModelLoadError(f"cannot read the structure of Keras model {model.name!r}: {exc}") from exc
    steps = []
    for entry in chain_entries("Functional", config):
        if entry.get("class_name") == "InputLayer" and not entry.get("inbound_nodes"):
            continue
        steps.extend(_steps_from_layer(model.get_layer(config_name(entry)), keras))
    return steps


def model_input_shape(model: Any) -> tuple[int, ...]:
    """Input shape of a built Keras model, without the batch dimension."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError) as exc:
        raise ModelLoadError(
            f"Keras model {model.name!r} has no defined input (it was never built); "
            "start it with keras.Input(shape=...) or call it on data first"
        ) from exc
    if isinstance(shape, list) or (shape and isinstance(shape[0], (tuple, list))):
        raise UnsupportedOperatorError(f"Keras model {model.name!r} has {len(shape)} inputs; only one is supported")
    dims = tuple(shape[1:])
    if any(d is None for d in dims):
        raise UnsupportedOperatorError(
            f"Keras model {model.name!r} has input shape {tuple(shape)} with unknown "
            "dimensions besides the batch; pyomo_relu needs a fixed input shape"
        )
    return tuple(int(d) for d in dims)
