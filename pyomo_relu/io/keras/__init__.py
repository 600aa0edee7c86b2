"""Read Keras models (in memory, ``.keras`` archives, legacy ``.h5`` files).

Plain chains of affine maps and ReLUs are read directly::

    InputLayer, Dense(activation relu | linear), ReLU() (plain), Activation(relu | linear),
    Flatten, Dropout (identity at inference), BatchNormalization (inference: moving stats)

Any other Sequential or functional model (convolutions, pooling, ``Add``/``Concatenate``
merges, LeakyReLU, PReLU, ...) is translated to an ONNX graph in memory by
:mod:`pyomo_relu.io.keras.graph` and read by the ONNX reader.

``BatchNormalization`` is the affine per-channel map Keras applies at inference.
Consecutive affine pieces are composed (:mod:`pyomo_relu.io.keras.steps`):
``Dense(linear) -> Dense`` becomes one :class:`~pyomo_relu.network.DenseLayer`.

Security: files are loaded with ``keras.saving.load_model(..., safe_mode=True)`` only.
When Keras 3 cannot read a legacy ``.h5`` file, it is read with h5py: the ``model_config``
JSON attribute and the weight arrays, nothing in the file is ever executed.

Keras is an optional dependency (``pip install pyomo_relu[keras]``); it is imported only
when :func:`load_keras` is called, with ``KERAS_BACKEND`` defaulting to ``torch``.

Where each concern lives: :mod:`~pyomo_relu.io.keras.steps` (layers as steps, composed into
layers), :mod:`~pyomo_relu.io.keras.config` (saved config structure),
:mod:`~pyomo_relu.io.keras.memory` (in-memory models), :mod:`~pyomo_relu.io.keras.h5`
(legacy files with h5py), :mod:`~pyomo_relu.io.keras.files` (file loading, safe mode) and
:mod:`~pyomo_relu.io.keras.graph` (everything else, through an ONNX graph).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pyomo_relu.errors import ModelLoadError, UnsupportedOperatorError
from pyomo_relu.io.keras.files import GraphRoute, import_keras, load_path
from pyomo_relu.io.keras.memory import model_input_shape, steps_from_model
from pyomo_relu.io.keras.steps import SUPPORTED_LAYERS, build_layers
from pyomo_relu.network import NetworkDefinition

logger = logging.getLogger(__name__)

__all__ = ["SUPPORTED_LAYERS", "load_keras"]


def _read_graph(
    model: Any, keras: Any, input_bounds: object, source: str, chain_error: UnsupportedOperatorError
) -> NetworkDefinition:
    """The graph route (:mod:`~pyomo_relu.io.keras.graph`, imported only when needed)."""
    from pyomo_relu.io.keras.graph import read_graph

    return read_graph(model, keras, input_bounds, source, chain_error)


def load_keras(model_or_path: Any, input_bounds: object = None) -> NetworkDefinition:
    """Read a Keras model into a :class:`~pyomo_relu.network.NetworkDefinition`.

    ``model_or_path`` is an in-memory Keras 3 model (Sequential or functional chain) or a
    path to a ``.keras`` / legacy ``.h5`` file.  ``input_bounds`` accepts the forms of
    :class:`~pyomo_relu.network.NetworkDefinition`.

    Raises :class:`~pyomo_relu.errors.UnsupportedOperatorError` for layers, activations or
    graph shapes that are not plain ReLU chains, and
    :class:`~pyomo_relu.errors.ModelLoadError` when a file cannot be read (missing, not a
    model, refused by Keras' safe mode), and
    :class:`~pyomo_relu.errors.OptionalDependencyError` when Keras 3 is not installed.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        source = os.fspath(model_or_path)
        loaded = load_path(Path(source))
        if isinstance(loaded, GraphRoute):
            return _read_graph(loaded.model, import_keras(), input_bounds, source, loaded.chain_error)
        steps, input_shape = loaded
    else:
        keras = import_keras()
        if not isinstance(model_or_path, keras.Model):
            raise ModelLoadError(
                f"expected a Keras model or a path to a .keras/.h5 file, got {type(model_or_path).__name__}"
            )
        source = "<keras model>"
        try:
            steps = steps_from_model(model_or_path, keras)
        except UnsupportedOperatorError as chain_error:
            return _read_graph(model_or_path, keras, input_bounds, source, chain_error)
        input_shape = model_input_shape(model_or_path)
    layers = build_layers(steps, input_shape)
    network = NetworkDefinition(layers, input_bounds=input_bounds, input_shape=input_shape or None, source=source)
    logger.info(
        "read Keras model %s: %d layers, %d inputs -> %d outputs",
        source,
        len(network.layers),
        network.n_inputs,
        network.n_outputs,
    )
    return network
