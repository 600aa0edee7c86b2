"""Read Keras models (in memory, ``.keras`` archives, legacy ``.h5`` files).

Plain chains of affine maps and ReLUs are read directly::

    InputLayer, Dense(activation relu | linear), ReLU() (plain), Activation(relu | linear),
    Flatten, Dropout (identity at inference), BatchNormalization (inference: moving stats)

Any other Sequential or functional model (convolutions, pooling, ``Add``/``Concatenate``
merges, LeakyReLU, PReLU, ...) is translated to an ONNX graph in memory by
:mod:`pyomo_relu.io.keras_graph` and read by the ONNX reader.

``BatchNormalization`` is the affine per-channel map Keras applies at inference,
``(x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta`` (``gamma = 1``
without ``scale``, ``beta = 0`` without ``center``), along its ``axis``.

Consecutive affine pieces are composed: ``Dense(linear) -> Dense`` becomes one
:class:`~pyomo_relu.network.DenseLayer`, ``Dense(linear) -> ReLU`` a ReLU layer.

Security: files are loaded with ``keras.saving.load_model(..., safe_mode=True)`` only.
When Keras 3 cannot read a legacy ``.h5`` file, it is read with h5py: the ``model_config``
JSON attribute and the weight arrays, nothing in the file is ever executed.

Keras is an optional dependency (``pip install pyomo_relu[keras]``); it is imported only
when :func:`load_keras` is called, with ``KERAS_BACKEND`` defaulting to ``torch``.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyomo_relu.errors import (
    ModelLoadError,
    ShapeMismatchError,
    UnsupportedOperatorError,
)
from pyomo_relu.network import DenseLayer, NetworkDefinition

logger = logging.getLogger(__name__)

__all__ = ["load_keras", "SUPPORTED_LAYERS"]

#: Human-readable list used in error messages.
SUPPORTED_LAYERS = (
    "InputLayer, Dense (activation 'relu' or 'linear'/None), ReLU (max_value=None, "
    "negative_slope=0, threshold=0), Activation('relu' | 'linear'), Flatten, Dropout, "
    "BatchNormalization"
)

_H5_SUFFIXES = (".h5", ".hdf5")
_MODEL_CLASSES = ("Sequential", "Functional", "Model")
_MAX_CONFIG_BYTES = 64 * 2**20


class KerasNotInstalledError(ModelLoadError, ImportError):
    """Keras (3) is needed to read this model but is not installed."""


# --------------------------------------------------------------------------- steps
@dataclass
class _Step:
    """One Keras layer, reduced to what the network needs.

    ``kind`` is ``"dense"`` (``kernel`` in Keras layout ``(n_in, n_out)``), ``"relu"``,
    ``"flatten"``, ``"identity"`` or ``"batchnorm"`` (``kernel`` the per-channel factor,
    ``bias`` the shift, ``axis`` the channel axis counted with the batch axis, as Keras).
    """

    name: str
    kind: str
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None
    activation: str = "linear"
    channels_first: bool = False
    axis: int = -1


@dataclass
class _Affine:
    """A pending affine map ``x -> weights @ x + bias`` not yet given an activation."""

    weights: np.ndarray
    bias: np.ndarray
    names: list[str] = field(default_factory=list)

    def then(self, weights: np.ndarray, bias: np.ndarray, name: str) -> _Affine:
        """Compose: apply ``self`` first, then ``(weights, bias)``."""
        return _Affine(weights @ self.weights, weights @ self.bias + bias, self.names + [name])


def _unsupported(name: str, class_name: str, activation: object = None) -> UnsupportedOperatorError:
    act = "no activation" if activation is None else f"activation {activation!r}"
    return UnsupportedOperatorError(
        f"Keras layer {name!r} ({class_name}, {act}) is not supported: pyomo_relu reads "
        f"single chains of {SUPPORTED_LAYERS}. Other activations (tanh, sigmoid, softmax, "
        "...) and layer types (Conv2D, Add, Lambda, ...) have no exact MILP encoding here; "
        "cut the model before them or replace them"
    )


def _dense_activation(name: str, activation: str, class_name: str = "Dense") -> str:
    """Validate a Dense/Activation activation name, returning ``"relu"`` or ``"linear"``."""
    if activation in ("relu", "linear"):
        return activation
    raise _unsupported(name, class_name, activation)


def _check_plain_relu(name: str, max_value: Any, negative_slope: Any, threshold: Any) -> None:
    """Refuse ReLU layers that are not ``max(x, 0)``, naming the offending attribute."""
    problems = []
    if max_value is not None:
        problems.append(f"max_value={max_value!r} (must be None)")
    if negative_slope not in (None, 0, 0.0):
        problems.append(f"negative_slope={negative_slope!r} (must be 0)")
    if threshold not in (None, 0, 0.0):
        problems.append(f"threshold={threshold!r} (must be 0)")
    if problems:
        raise UnsupportedOperatorError(
            f"Keras layer {name!r} (ReLU) has {', '.join(problems)}; only the plain "
            f"ReLU max(x, 0) is supported. Supported layers: {SUPPORTED_LAYERS}"
        )


def _batchnorm_step(
    name: str,
    axis: Any,
    epsilon: float,
    moving_mean: np.ndarray,
    moving_variance: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
) -> _Step:
    """A BatchNormalization layer at inference as a per-channel ``x * factor + shift``."""
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise UnsupportedOperatorError(
                f"Keras layer {name!r} (BatchNormalization) normalises over axes {list(axis)}; "
                "only one channel axis is supported"
            )
        axis = axis[0]
    mean = np.asarray(moving_mean, dtype=np.float64).reshape(-1)
    variance = np.asarray(moving_variance, dtype=np.float64).reshape(-1)
    if np.any(variance + float(epsilon) <= 0):
        raise ModelLoadError(f"Keras layer {name!r} (BatchNormalization): moving_variance + epsilon is not positive")
    factor = 1.0 / np.sqrt(variance + float(epsilon))
    if gamma is not None:
        factor = factor * np.asarray(gamma, dtype=np.float64).reshape(-1)
    shift = -mean * factor
    if beta is not None:
        shift = shift + np.asarray(beta, dtype=np.float64).reshape(-1)
    return _Step(name, "batchnorm", factor, shift, axis=int(axis))


def _batchnorm_affine(step: _Step, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The diagonal affine map of a batchnorm step on a flat tensor of ``shape``."""
    assert step.kernel is not None and step.bias is not None
    rank = len(shape)
    axis = step.axis + rank + 1 if step.axis < 0 else step.axis  # counted with the batch axis
    if not 1 <= axis <= rank or shape[axis - 1] != step.kernel.size:
        raise ShapeMismatchError(
            f"Keras layer {step.name!r} (BatchNormalization) has {step.kernel.size} channels "
            f"on axis {step.axis}, but receives a tensor of shape (None, "
            f"{', '.join(map(str, shape))})"
        )
    channel_shape = [1] * rank
    channel_shape[axis - 1] = step.kernel.size
    factor = np.broadcast_to(step.kernel.reshape(channel_shape), shape).ravel()
    shift = np.broadcast_to(step.bias.reshape(channel_shape), shape).ravel()
    return np.diag(factor), shift.copy()


# ------------------------------------------------------------------ composition
def _identity(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.eye(size), np.zeros(size)


def _build_layers(steps: Sequence[_Step], input_shape: tuple[int, ...]) -> list[DenseLayer]:
    """Turn steps into DenseLayers, composing consecutive affine pieces."""
    shape = tuple(input_shape)
    layers: list[DenseLayer] = []
    pending: _Affine | None = None

    def size() -> int:
        return int(np.prod(shape)) if shape else 1

    def emit(activation: str, fallback_name: str) -> None:
        nonlocal pending
        if pending is None:
            weights, bias = _identity(size())
            pending = _Affine(weights, bias, [fallback_name])
        name = "+".join(pending.names)
        layers.append(DenseLayer(pending.weights, pending.bias, activation, name))
        logger.debug("layer %d: %s %s", len(layers) - 1, "+".join(pending.names), activation)
        pending = None

    for step in steps:
        if step.kind == "identity":
            continue
        if step.kind == "flatten":
            if step.channels_first and len(shape) > 1:
                # Keras moves the channel axis last before flattening: a permutation.
                order = np.arange(size()).reshape(shape)
                order = np.moveaxis(order, 0, -1).ravel()
                permutation = np.eye(size())[order]
                start = pending or _Affine(*_identity(size()))
                pending = start.then(permutation, np.zeros(size()), step.name)
            shape = (size(),)
            continue
        if step.kind == "batchnorm":
            weights, bias = _batchnorm_affine(step, shape)
            start = pending or _Affine(*_identity(size()))
            pending = start.then(weights, bias, step.name)
            continue
        if step.kind == "relu":
            if pending is None and layers and layers[-1].activation == "relu":
                logger.debug("ReLU layer %r after a ReLU is a no-op", step.name)
                continue
            if pending is not None:
                pending.names.append(step.name)
            emit("relu", step.name)
            continue
        # dense
        assert step.kernel is not None
        if len(shape) != 1:
            raise UnsupportedOperatorError(
                f"Keras layer {step.name!r} (Dense) is applied to a tensor of shape {shape}; "
                "Keras then acts on the last axis only. Add a Flatten layer before it"
            )
        kernel = np.asarray(step.kernel, dtype=np.float64)
        if kernel.ndim != 2 or kernel.shape[0] != shape[0]:
            raise ShapeMismatchError(
                f"Keras layer {step.name!r} (Dense) has a kernel of shape {kernel.shape} but receives {shape[0]} inputs"
            )
        bias = np.zeros(kernel.shape[1]) if step.bias is None else np.asarray(step.bias, dtype=np.float64).reshape(-1)
        if bias.shape != (kernel.shape[1],):
            raise ShapeMismatchError(
                f"Keras layer {step.name!r} (Dense): bias has {bias.size} entries, kernel {kernel.shape[1]} units"
            )
        if pending is None:
            pending = _Affine(kernel.T.copy(), bias, [step.name])
        else:
            pending = pending.then(kernel.T, bias, step.name)
        shape = (kernel.shape[1],)
        if step.activation == "relu":
            emit("relu", step.name)
    if pending is not None:
        emit("linear", "")
    if not layers:
        emit("linear", "identity")
    return layers


# ------------------------------------------------------------- config structure
def _config_name(entry: dict) -> str:
    config = entry.get("config")
    name = entry.get("name") or (config.get("name") if isinstance(config, dict) else None)
    return str(name) if name is not None else "?"


def _history_refs(value: Any) -> list[tuple[str, int, int]]:
    """``input_layers``/``output_layers`` in Keras 2 (nested) or Keras 3 (flat) form."""
    if not value:
        return []
    if isinstance(value[0], str):
        return [(value[0], int(value[1]), int(value[2]))]
    return [(str(v[0]), int(v[1]), int(v[2])) for v in value]


def _node_sources(node: Any) -> list[tuple[str, int, int]]:
    """Tensors a call node reads: Keras 3 ``{"args", "kwargs"}`` or Keras 2 lists."""
    found: list[tuple[str, int, int]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                history = value.get("config", {}).get("keras_history", ["?", 0, 0])
                found.append((str(history[0]), int(history[1]), int(history[2])))
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    if isinstance(node, dict):
        walk(node)
    else:  # Keras 2: [[layer_name, node_index, tensor_index, kwargs], ...]
        for ref in node:
            if isinstance(ref, (list, tuple)) and ref and isinstance(ref[0], str):
                found.append((ref[0], int(ref[1]), int(ref[2])))
                if len(ref) > 3:
                    walk(ref[3])
            else:
                walk(ref)
    return found


def _chain_entries(class_name: str, config: Any) -> list[dict]:
    """The layer entries of a Sequential/functional config, checked to form one chain."""
    if class_name == "Sequential":
        entries = config["layers"] if isinstance(config, dict) else config
        return list(entries)
    if class_name not in ("Functional", "Model"):
        raise ModelLoadError(f"unknown Keras model class {class_name!r}")
    entries = list(config["layers"])
    inputs = _history_refs(config.get("input_layers"))
    outputs = _history_refs(config.get("output_layers"))
    if len(inputs) != 1:
        raise UnsupportedOperatorError(
            f"the Keras model has {len(inputs)} inputs ({', '.join(r[0] for r in inputs)}); "
            "only single-input chains are supported"
        )
    if len(outputs) != 1:
        raise UnsupportedOperatorError(
            f"the Keras model has {len(outputs)} outputs ({', '.join(r[0] for r in outputs)}); "
            "only single-output chains are supported"
        )
    previous: str | None = None
    for entry in entries:
        name, cls = _config_name(entry), entry.get("class_name", "?")
        nodes = entry.get("inbound_nodes") or []
        if cls == "InputLayer" and not nodes:
            if name != inputs[0][0]:
                raise UnsupportedOperatorError(f"input layer {name!r} is not the model input")
            previous = name
            continue
        if len(nodes) != 1:
            raise UnsupportedOperatorError(
                f"Keras layer {name!r} ({cls}) is called {len(nodes)} times in the model; "
                "only single chains (each layer used once) are supported"
            )
        sources = _node_sources(nodes[0])
        if len(sources) != 1 or sources[0][0] != previous or sources[0][2] != 0:
            from_ = ", ".join(repr(s[0]) for s in sources) or "nothing"
            raise UnsupportedOperatorError(
                f"Keras layer {name!r} ({cls}) reads from {from_}, not just from the previous "
                f"layer {previous!r}: the model branches or merges. Only single chains "
                "(each layer's only input is the previous layer's output) are supported"
            )
        previous = name
    if outputs[0][0] != previous:
        raise UnsupportedOperatorError(
            f"the Keras model output comes from layer {outputs[0][0]!r}, not from the last "
            f"layer of the chain {previous!r}; only single chains are supported"
        )
    return entries


def _config_input_shape(model_config: dict) -> tuple[int, ...] | None:
    """The input shape (without batch) recorded in a model config, if fully known."""
    config = model_config.get("config")
    entries = config.get("layers") if isinstance(config, dict) else config
    if not entries:
        return None
    first = entries[0].get("config", {})
    shape = first.get("batch_shape") or first.get("batch_input_shape")
    if shape is None and isinstance(config, dict):
        shape = config.get("build_input_shape")
    if shape is None or any(d is None for d in shape[1:]):
        return None
    return tuple(int(d) for d in shape[1:])


# ------------------------------------------------------------- in-memory models
def _activation_name(function: Any, keras: Any) -> str:
    if function is keras.activations.relu:
        return "relu"
    if function is keras.activations.linear or function is None:
        return "linear"
    name = getattr(function, "__name__", type(function).__name__)
    module = getattr(function, "__module__", "") or ""
    return name if module.startswith("keras") else f"{module}.{name}".lstrip(".")


def _steps_from_layer(layer: Any, keras: Any) -> list[_Step]:
    layers = keras.layers
    kind, name = type(layer), layer.name
    if isinstance(layer, keras.Model):
        return _steps_from_model(layer, keras)
    if kind is layers.InputLayer or kind is layers.Dropout:
        return []
    if kind is layers.Dense:
        activation = _activation_name(layer.activation, keras)
        _dense_activation(name, activation)
        if getattr(layer, "quantization_mode", None):
            raise UnsupportedOperatorError(
                f"Keras layer {name!r} (Dense) is quantized ({layer.quantization_mode}); "
                "only float Dense layers are supported"
            )
        if not layer.built:
            raise ModelLoadError(f"Keras layer {name!r} (Dense) is not built (no weights yet)")
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
        return [_Step(name, "dense", kernel, bias, activation)]
    if kind is layers.ReLU:
        _check_plain_relu(name, layer.max_value, layer.negative_slope, layer.threshold)
        return [_Step(name, "relu")]
    if kind is layers.Activation:
        activation = _dense_activation(name, _activation_name(layer.activation, keras), "Activation")
        return [_Step(name, "relu" if activation == "relu" else "identity")]
    if kind is layers.Flatten:
        return [_Step(name, "flatten", channels_first=layer.data_format == "channels_first")]
    if kind is layers.BatchNormalization:
        if not layer.built:
            raise ModelLoadError(f"Keras layer {name!r} (BatchNormalization) is not built (no weights yet)")
        numpy = keras.ops.convert_to_numpy
        return [
            _batchnorm_step(
                name,
                layer.axis,
                layer.epsilon,
                numpy(layer.moving_mean),
                numpy(layer.moving_variance),
                numpy(layer.gamma) if layer.scale else None,
                numpy(layer.beta) if layer.center else None,
            )
        ]
    activation = getattr(layer, "activation", None)
    raise _unsupported(name, kind.__name__, None if activation is None else _activation_name(activation, keras))


def _functional_class(keras: Any) -> type | None:
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # pragma: no cover - layout of Keras internals changed
        return None
    return Functional


def _steps_from_model(model: Any, keras: Any) -> list[_Step]:
    """Steps of a Sequential or functional model (nested models are inlined)."""
    if isinstance(model, keras.Sequential):
        if type(model).call is not keras.Sequential.call:
            raise UnsupportedOperatorError(
                f"Keras model {model.name!r} ({type(model).__name__}) overrides call(); "
                "only plain Sequential or functional models can be read"
            )
        steps: list[_Step] = []
        for layer in model.layers:
            steps.extend(_steps_from_layer(layer, keras))
        return steps
    functional = _functional_class(keras)
    plain = functional is not None and isinstance(model, functional)
    if not plain or type(model).call is not functional.call:
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
    for entry in _chain_entries("Functional", config):
        if entry.get("class_name") == "InputLayer" and not entry.get("inbound_nodes"):
            continue
        steps.extend(_steps_from_layer(model.get_layer(_config_name(entry)), keras))
    return steps


def _model_input_shape(model: Any) -> tuple[int, ...]:
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


# ------------------------------------------------------------------ h5py reader
def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_h5_model_config(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
            has_weights = "model_weights" in handle
    except OSError as exc:
        raise ModelLoadError(f"{path} is not a readable HDF5 file: {exc}") from exc
    if raw is None:
        hint = " (it looks like a weights-only file)" if not has_weights else ""
        raise ModelLoadError(
            f"{path} has no 'model_config' attribute, so it is not a saved Keras model{hint}; "
            "save the whole model with model.save(...)"
        )
    try:
        config = json.loads(_decode(raw))
    except ValueError as exc:
        raise ModelLoadError(f"{path}: 'model_config' is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelLoadError(f"{path}: 'model_config' does not describe a Keras model")
    return config


def _h5_activation(name: str, value: Any, class_name: str) -> str:
    if value is None:
        return "linear"
    if isinstance(value, dict):  # Keras 3 style serialized function
        builtin = value.get("module") in ("keras.activations", None)
        if builtin and isinstance(value.get("config"), str):
            value = value["config"]
        else:
            raise _unsupported(name, class_name, value.get("config", value))
    return _dense_activation(name, str(value), class_name)


def _h5_dense_weights(group: Any, name: str, use_bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    if name not in group:
        raise ModelLoadError(f"no weights for Keras layer {name!r} in the file's 'model_weights'")
    layer_group = group[name]
    names = [_decode(n) for n in layer_group.attrs.get("weight_names", [])]
    found: dict[str, np.ndarray] = {}
    for weight_name in names:
        dataset = layer_group[weight_name]
        if dataset.dtype.kind not in "fiu":
            raise ModelLoadError(f"weight {weight_name!r} of Keras layer {name!r} has dtype {dataset.dtype}")
        key = weight_name.rsplit("/", 1)[-1].split(":")[0]
        found[key] = np.asarray(dataset[()], dtype=np.float64)
    unexpected = set(found) - {"kernel", "bias"}
    if "kernel" not in found or (use_bias and "bias" not in found) or unexpected:
        raise ModelLoadError(
            f"Keras layer {name!r} (Dense) stores weights {names}; expected a kernel"
            + (" and a bias" if use_bias else "")
        )
    return found["kernel"], found.get("bias")


def _h5_batchnorm_step(group: Any, name: str, config: dict) -> _Step:
    """A BatchNormalization layer of a legacy ``.h5`` file (config and weight arrays)."""
    if name not in group:
        raise ModelLoadError(f"no weights for Keras layer {name!r} in the file's 'model_weights'")
    layer_group = group[name]
    names = [_decode(n) for n in layer_group.attrs.get("weight_names", [])]
    found = {n.rsplit("/", 1)[-1].split(":")[0]: np.asarray(layer_group[n][()], dtype=np.float64) for n in names}
    center, scale = bool(config.get("center", True)), bool(config.get("scale", True))
    needed = ["moving_mean", "moving_variance"] + ["gamma"] * scale + ["beta"] * center
    if any(key not in found for key in needed):
        raise ModelLoadError(
            f"Keras layer {name!r} (BatchNormalization) stores weights {names}; expected {', '.join(needed)}"
        )
    return _batchnorm_step(
        name,
        config.get("axis", -1),
        float(config.get("epsilon", 1e-3)),
        found["moving_mean"],
        found["moving_variance"],
        found.get("gamma") if scale else None,
        found.get("beta") if center else None,
    )


def _steps_from_h5(path: Path, model_config: dict) -> list[_Step]:
    """Steps of a legacy ``.h5`` model read with h5py only (no Keras deserialization)."""
    import h5py

    class_name = model_config["class_name"]
    if class_name not in _MODEL_CLASSES:
        raise UnsupportedOperatorError(
            f"{path}: the saved model is a {class_name!r}; only Sequential or functional models can be read"
        )
    entries = _chain_entries(class_name, model_config.get("config"))
    steps: list[_Step] = []
    with h5py.File(path, "r") as handle:
        if "model_weights" not in handle:
            raise ModelLoadError(f"{path} has a model config but no 'model_weights' group")
        weights = handle["model_weights"]
        for entry in entries:
            cls, name = entry.get("class_name"), _config_name(entry)
            config = entry.get("config") or {}
            if cls in ("InputLayer", "Dropout"):
                continue
            if cls == "Dense":
                activation = _h5_activation(name, config.get("activation"), "Dense")
                if config.get("quantization_config") or config.get("lora_rank"):
                    raise UnsupportedOperatorError(
                        f"Keras layer {name!r} (Dense) is quantized or uses LoRA; unsupported"
                    )
                use_bias = bool(config.get("use_bias", True))
                kernel, bias = _h5_dense_weights(weights, name, use_bias)
                steps.append(_Step(name, "dense", kernel, bias if use_bias else None, activation))
            elif cls == "ReLU":
                _check_plain_relu(
                    name,
                    config.get("max_value"),
                    config.get("negative_slope", 0.0),
                    config.get("threshold", 0.0),
                )
                steps.append(_Step(name, "relu"))
            elif cls == "Activation":
                activation = _h5_activation(name, config.get("activation"), "Activation")
                steps.append(_Step(name, "relu" if activation == "relu" else "identity"))
            elif cls == "Flatten":
                channels_first = config.get("data_format") == "channels_first"
                steps.append(_Step(name, "flatten", channels_first=channels_first))
            elif cls == "BatchNormalization":
                steps.append(_h5_batchnorm_step(weights, name, config))
            elif cls in _MODEL_CLASSES:
                raise UnsupportedOperatorError(
                    f"Keras layer {name!r} is a nested {cls} model; nested models in legacy "
                    ".h5 files are only read through Keras 3"
                )
            else:
                raise _unsupported(name, str(cls), config.get("activation"))
    return steps


# ----------------------------------------------------------------- file loading
def _import_keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as exc:
        raise KerasNotInstalledError(
            "reading Keras models needs Keras 3 (with a backend such as PyTorch) and h5py: "
            "pip install pyomo_relu[keras]"
        ) from exc
    major = int(str(getattr(keras, "__version__", "0")).split(".")[0] or 0)
    if major < 3:
        raise KerasNotInstalledError(
            f"Keras {keras.__version__} is installed but pyomo_relu needs Keras 3: pip install pyomo_relu[keras]"
        )
    return keras


def _lambda_layers(path: Path) -> list[str]:
    """Names of Lambda layers in a ``.keras`` archive's config (JSON only), best effort."""
    names: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("class_name") == "Lambda":
                names.append(_config_name(value))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size <= _MAX_CONFIG_BYTES:
                walk(json.loads(archive.read(info)))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    return names


def _load_keras_file(keras: Any, path: Path) -> Any:
    """``keras.saving.load_model`` with safe_mode on, errors wrapped in ModelLoadError."""
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        message = f"Keras could not load {path} (safe_mode=True): {type(exc).__name__}: {exc}"
        lambdas = _lambda_layers(path) if path.suffix.lower() == ".keras" else []
        if lambdas or "safe_mode" in str(exc) or "Lambda" in str(exc):
            which = f" Lambda layer(s) {', '.join(map(repr, lambdas))}" if lambdas else ""
            message = (
                f"Keras refused to load {path}: the model contains{which or ' code'} that would "
                "have to be deserialized and executed (Lambda layers, pickled functions). "
                "safe_mode is on and pyomo_relu never turns it off. Rebuild the model from "
                f"supported layers ({SUPPORTED_LAYERS}). Keras said: {exc}"
            )
        raise ModelLoadError(message) from exc


def _load_path(path: Path) -> tuple[list[_Step], tuple[int, ...]]:
    if not path.exists():
        raise ModelLoadError(f"Keras model file not found: {path}")
    if path.is_dir():
        raise ModelLoadError(
            f"{path} is a directory; TensorFlow SavedModel directories are not supported, "
            "save the model as a .keras (or legacy .h5) file"
        )
    suffix = path.suffix.lower()
    if suffix not in (".keras",) + _H5_SUFFIXES:
        raise ModelLoadError(f"{path}: expected a Keras 3 '.keras' file or a legacy '.h5'/'.hdf5' file")
    keras = _import_keras()
    if suffix == ".keras":
        if not zipfile.is_zipfile(path):
            raise ModelLoadError(f"{path} is not a zip archive, so not a Keras 3 .keras file")
        model = _load_keras_file(keras, path)
        try:
            return _steps_from_model(model, keras), _model_input_shape(model)
        except UnsupportedOperatorError as chain_error:
            raise _GraphModel(model, chain_error) from None

    import h5py

    if not h5py.is_hdf5(path):
        raise ModelLoadError(f"{path} is not an HDF5 file, so not a legacy Keras .h5 model")
    model_config = _read_h5_model_config(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        logger.warning(
            "Keras 3 cannot load %s (%s: %s); reading its config and weights with h5py",
            path,
            type(exc).__name__,
            exc,
        )
        steps = _steps_from_h5(path, model_config)
        shape = _config_input_shape(model_config)
        if shape is None:
            first = next((s for s in steps if s.kind == "dense"), None)
            if first is None or first.kernel is None:
                raise ModelLoadError(f"{path}: cannot determine the model's input shape") from exc
            shape = (int(first.kernel.shape[0]),)
        return steps, shape
    steps = _steps_from_model(model, keras)
    # Keras 3 may add an unknown axis to Keras 2 input shapes; the file's own is authoritative.
    shape = _config_input_shape(model_config) or _model_input_shape(model)
    return steps, shape


class _GraphModel(Exception):
    """A loaded model that the chain reader refused: read it through the graph route."""

    def __init__(self, model: Any, chain_error: UnsupportedOperatorError) -> None:
        super().__init__(str(chain_error))
        self.model, self.chain_error = model, chain_error


def _load_graph(
    model: Any, keras: Any, input_bounds: object, source: str, chain_error: UnsupportedOperatorError
) -> NetworkDefinition:
    """Models beyond plain chains (convolutions, pooling, merges): Keras -> ONNX graph -> reader."""
    from pyomo_relu.io.keras_graph import keras_to_onnx
    from pyomo_relu.io.onnx import load_onnx

    functional = _functional_class(keras)
    plain = (
        isinstance(model, keras.Sequential)
        and type(model).call is keras.Sequential.call
        or (functional is not None and isinstance(model, functional) and type(model).call is functional.call)
    )
    if not plain or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise chain_error  # subclassed, several inputs or outputs: the chain reader said why
    logger.info("Keras model %s is not a plain chain (%s); reading it as a graph", source, chain_error)
    input_shape = _model_input_shape(model)
    network = load_onnx(keras_to_onnx(model, keras, input_shape))
    return NetworkDefinition(network.layers, input_bounds=input_bounds, input_shape=input_shape, source=source)


def load_keras(model_or_path: Any, input_bounds: object = None) -> NetworkDefinition:
    """Read a Keras model into a :class:`~pyomo_relu.network.NetworkDefinition`.

    ``model_or_path`` is an in-memory Keras 3 model (Sequential or functional chain) or a
    path to a ``.keras`` / legacy ``.h5`` file.  ``input_bounds`` accepts the forms of
    :class:`~pyomo_relu.network.NetworkDefinition`.

    Raises :class:`~pyomo_relu.errors.UnsupportedOperatorError` for layers, activations or
    graph shapes that are not plain ReLU chains, and
    :class:`~pyomo_relu.errors.ModelLoadError` when a file cannot be read (missing, not a
    model, refused by Keras' safe mode, Keras not installed).
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        source = os.fspath(model_or_path)
        try:
            steps, input_shape = _load_path(Path(source))
        except _GraphModel as found:
            return _load_graph(found.model, _import_keras(), input_bounds, source, found.chain_error)
    else:
        keras = _import_keras()
        if not isinstance(model_or_path, keras.Model):
            raise ModelLoadError(
                f"expected a Keras model or a path to a .keras/.h5 file, got {type(model_or_path).__name__}"
            )
        source = "<keras model>"
        try:
            steps = _steps_from_model(model_or_path, keras)
        except UnsupportedOperatorError as chain_error:
            return _load_graph(model_or_path, keras, input_bounds, source, chain_error)
        input_shape = _model_input_shape(model_or_path)
    layers = _build_layers(steps, input_shape)
    network = NetworkDefinition(layers, input_bounds=input_bounds, input_shape=input_shape or None, source=source)
    logger.info(
        "read Keras model %s: %d layers, %d inputs -> %d outputs",
        source,
        len(network.layers),
        network.n_inputs,
        network.n_outputs,
    )
    return network
