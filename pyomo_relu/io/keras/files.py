"""Keras model files: ``.keras`` archives loaded by Keras with ``safe_mode=True`` (never
turned off; Lambda layers are named in the refusal) and legacy ``.h5`` files (through Keras
3 when it can read them, else with :mod:`~pyomo_relu.io.keras.h5`)."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyomo_relu.errors import ModelLoadError, OptionalDependencyError, UnsupportedOperatorError
from pyomo_relu.io.keras.config import config_input_shape, config_name
from pyomo_relu.io.keras.h5 import read_h5_model_config, steps_from_h5
from pyomo_relu.io.keras.memory import model_input_shape, steps_from_model
from pyomo_relu.io.keras.steps import SUPPORTED_LAYERS, Step

logger = logging.getLogger(__name__)

__all__ = ["GraphRoute", "import_keras", "load_path"]

_H5_SUFFIXES = (".h5", ".hdf5")
_MAX_CONFIG_BYTES = 64 * 2**20


def import_keras() -> Any:
    """The ``keras`` module (Keras 3; ``KERAS_BACKEND`` defaults to ``torch``)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    needed_for = "reading Keras models (with a backend such as PyTorch, and h5py)"
    try:
        import keras
    except ImportError as exc:
        raise OptionalDependencyError("keras", needed_for, "keras") from exc
    version = str(getattr(keras, "__version__", "0"))
    if int(version.split(".")[0] or 0) < 3:
        raise OptionalDependencyError(f"keras>=3 (found {version})", needed_for, "keras")
    return keras


def _lambda_layers(path: Path) -> list[str]:
    """Names of Lambda layers in a ``.keras`` archive's config (JSON only), best effort."""
    names: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("class_name") == "Lambda":
                names.append(config_name(value))
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


@dataclass(frozen=True)
class GraphRoute:
    """A loaded model that the chain reader refused (``chain_error`` says why): for the graph route."""

    model: Any
    chain_error: UnsupportedOperatorError


def load_path(path: Path) -> tuple[list[Step], tuple[int, ...]] | GraphRoute:
    """``(steps, input shape)`` of a ``.keras`` or ``.h5`` file, or the loaded model when it is
    not a plain chain (:class:`GraphRoute`)."""
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
    keras = import_keras()
    if suffix != ".keras":
        return _load_h5(keras, path)
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path} is not a zip archive, so not a Keras 3 .keras file")
    model = _load_keras_file(keras, path)
    try:
        return steps_from_model(model, keras), model_input_shape(model)
    except UnsupportedOperatorError as chain_error:
        return GraphRoute(model, chain_error)


def _load_h5(keras: Any, path: Path) -> tuple[list[Step], tuple[int, ...]]:
    """A legacy ``.h5`` file: through Keras 3 when it can load it, else with h5py only."""
    import h5py

    if not h5py.is_hdf5(path):
        raise ModelLoadError(f"{path} is not an HDF5 file, so not a legacy Keras .h5 model")
    model_config = read_h5_model_config(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        logger.warning(
            "Keras 3 cannot load %s (%s: %s); reading its config and weights with h5py",
            path,
            type(exc).__name__,
            exc,
        )
        steps = steps_from_h5(path, model_config)
        shape = config_input_shape(model_config)
        if shape is None:
            first = next((s for s in steps if s.kind == "dense"), None)
            if first is None or first.kernel is None:
                raise ModelLoadError(f"{path}: cannot determine the model's input shape") from exc
            shape = (int(first.kernel.shape[0]),)
        return steps, shape
    steps = steps_from_model(model, keras)
    # Keras 3 may add an unknown axis to Keras 2 input shapes; the file's own is authoritative.
    shape = config_input_shape(model_config) or model_input_shape(model)
    return steps, shape
