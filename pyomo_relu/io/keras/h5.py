"""Legacy Keras ``.h5`` files read with h5py only: the ``model_config`` JSON attribute and the
weight arrays, nothing in the file is ever deserialized or executed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pyomo_relu.errors import ModelLoadError, UnsupportedOperatorError
from pyomo_relu.io.keras.config import MODEL_CLASSES, chain_entries, config_name
from pyomo_relu.io.keras.steps import Step, batchnorm_step, check_plain_relu, dense_activation, unsupported

__all__ = ["read_h5_model_config", "steps_from_h5"]


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_h5_model_config(path: Path) -> dict:
    """The ``model_config`` JSON attribute of a legacy ``.h5`` file, checked to describe a model."""
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
            raise unsupported(name, class_name, value.get("config", value))
    return dense_activation(name, str(value), class_name)


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


def _h5_batchnorm_step(group: Any, name: str, config: dict) -> Step:
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
    return batchnorm_step(
        name,
        config.get("axis", -1),
        float(config.get("epsilon", 1e-3)),
        found["moving_mean"],
        found["moving_variance"],
        found.get("gamma") if scale else None,
        found.get("beta") if center else None,
    )


def steps_from_h5(path: Path, model_config: dict) -> list[Step]:
    """Steps of a legacy ``.h5`` model read with h5py only (no Keras deserialization)."""
    import h5py

    class_name = model_config["class_name"]
    if class_name not in MODEL_CLASSES:
        raise UnsupportedOperatorError(
            f"{path}: the saved model is a {class_name!r}; only Sequential or functional models can be read"
        )
    entries = chain_entries(class_name, model_config.get("config"))
    steps: list[Step] = []
    with h5py.File(path, "r") as handle:
        if "model_weights" not in handle:
            raise ModelLoadError(f"{path} has a model config but no 'model_weights' group")
        weights = handle["model_weights"]
        for entry in entries:
            cls, name = entry.get("class_name"), config_name(entry)
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
                steps.append(Step(name, "dense", kernel, bias if use_bias else None, activation))
            elif cls == "ReLU":
                check_plain_relu(
                    name,
                    config.get("max_value"),
                    config.get("negative_slope", 0.0),
                    config.get("threshold", 0.0),
                )
                steps.append(Step(name, "relu"))
            elif cls == "Activation":
                activation = _h5_activation(name, config.get("activation"), "Activation")
                steps.append(Step(name, "relu" if activation == "relu" else "identity"))
            elif cls == "Flatten":
                channels_first = config.get("data_format") == "channels_first"
                steps.append(Step(name, "flatten", channels_first=channels_first))
            elif cls == "BatchNormalization":
                steps.append(_h5_batchnorm_step(weights, name, config))
            elif cls in MODEL_CLASSES:
                raise UnsupportedOperatorError(
                    f"Keras layer {name!r} is a nested {cls} model; nested models in legacy "
                    ".h5 files are only read through Keras 3"
                )
            else:
                raise unsupported(name, str(cls), config.get("activation"))
    return steps
