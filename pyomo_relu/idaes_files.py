r"""IDAES's saved surrogates: read ``KerasSurrogate``/``ONNXSurrogate`` folders, write the ONNX pair.

IDAES saves its OMLT surrogates in two layouts:

* ``KerasSurrogate.save_to_folder(location, keras_model_name="idaes_keras_model")``:
  ``<location>/<model_name>.keras`` and ``<location>/idaes_info.json``;
* ``ONNXSurrogate.save_to_folder(location, model_name)``: ``<location>/<model_name>.onnx``
  and ``<location>/<model_name>_idaes_info.json``.

The JSON holds ``input_labels``, ``output_labels``, ``input_bounds`` (``{label: [lb, ub]}``)
and the ``input_scaler``/``output_scaler`` of IDAES's ``OffsetScaler.to_dict()``
(``{"expected_columns": [...], "offset": {label: v}, "factor": {label: v}}``, with
``scaled = (value - offset) / factor``, the convention of
:class:`~pyomo_relu.network.Scaling`).  :func:`read_idaes` turns either layout into the
arguments of :class:`~pyomo_relu.idaes.ReLUSurrogate` (``ReLUSurrogate.from_idaes``);
:func:`write_idaes_onnx` writes the ONNX pair that IDAES's
``ONNXSurrogate.load_onnx_model`` reads (``ReLUSurrogate.to_idaes``).

Keras files are read by :func:`~pyomo_relu.io.keras.load_keras` with ``safe_mode=True``
(a ``Lambda`` layer or a custom object is refused with :class:`ModelLoadError`); no
pickle, no code from the folder is run.  IDAES itself needs TensorFlow to *load* a
``KerasSurrogate`` folder; reading it here needs only Keras 3 (any backend).

>>> import json, tempfile, numpy as np
>>> from pyomo_relu import DenseLayer, NetworkDefinition
>>> net = NetworkDefinition([DenseLayer([[1.0, -2.0], [0.5, 0.5]], [0.0, 0.1], "tanh"),
...                          DenseLayer([[1.0, 1.0]], [0.0], "linear")])
>>> folder = tempfile.mkdtemp()
>>> paths = write_idaes_onnx(folder, "conv", net, ["T", "P"], ["X"], {"T": (300.0, 400.0), "P": (1.0, 5.0)},
...                          (np.array([350.0, 3.0]), np.array([50.0, 2.0])), (np.array([0.5]), np.array([0.1])))
>>> info = json.load(open(f"{folder}/conv_idaes_info.json"))
>>> info["input_scaler"]["offset"], info["input_bounds"]["P"]
({'T': 350.0, 'P': 3.0}, [1.0, 5.0])
>>> spec = read_idaes(folder, "conv")
>>> spec["input_labels"], spec["network"].layers[0].activation, spec["input_scaling"].factor.tolist()
(['T', 'P'], 'tanh', [50.0, 2.0])
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pyomo_relu.errors import ModelLoadError, UnsupportedOperatorError
from pyomo_relu.network import DenseLayer, NetworkDefinition, Scaling

logger = logging.getLogger(__name__)

__all__ = ["read_idaes", "write_idaes_onnx", "network_to_onnx", "KERAS_MODEL_NAME"]

#: ``KerasSurrogate.save_to_folder``'s default model name.
KERAS_MODEL_NAME = "idaes_keras_model"

_ONNX_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus"}


def idaes_paths(location: Any, model_name: str) -> dict[str, tuple[str, str]]:
    """The two layouts' ``(model file, info file)`` paths under ``location``."""
    location = os.fspath(location)
    return {
        "keras": (os.path.join(location, f"{model_name}.keras"), os.path.join(location, "idaes_info.json")),
        "onnx": (os.path.join(location, f"{model_name}.onnx"), os.path.join(location, f"{model_name}_idaes_info.json")),
    }


def read_idaes(location: Any, model_name: str = KERAS_MODEL_NAME, format: str | None = None) -> dict[str, Any]:
    """Read an IDAES surrogate folder: the network, labels, bounds and scalings.

    ``format`` is ``"keras"``, ``"onnx"`` or ``None`` (whichever layout is present;
    both present is refused as ambiguous).  Returns a dict with ``network``,
    ``input_labels``, ``output_labels``, ``input_bounds`` (``{label: (lb, ub)}`` or
    ``None``), ``input_scaling`` and ``output_scaling`` (:class:`Scaling` or ``None``).
    """
    paths = idaes_paths(location, model_name)
    if format is not None and format not in paths:
        raise ModelLoadError(f"from_idaes: format must be 'keras', 'onnx' or None, not {format!r}")
    present = [k for k, (model, info) in paths.items() if os.path.isfile(model) and os.path.isfile(info)]
    if format is None:
        if not present:
            looked = "; ".join(f"{k}: {m} + {i}" for k, (m, i) in paths.items())
            raise ModelLoadError(
                f"no IDAES surrogate named {model_name!r} in {os.fspath(location)} (looked for {looked}); "
                "give the folder and the model name used with save_to_folder"
            )
        if len(present) > 1:
            raise ModelLoadError(
                f"{os.fspath(location)} holds both a KerasSurrogate and an ONNXSurrogate named {model_name!r}; "
                "pass format='keras' or format='onnx'"
            )
        format = present[0]
    model_path, info_path = paths[format]
    for path in (model_path, info_path):
        if not os.path.isfile(path):
            raise ModelLoadError(f"from_idaes(format={format!r}): {path} does not exist")
    info = _read_info(info_path)
    if format == "keras":
        from pyomo_relu.io.keras import load_keras

        net = load_keras(model_path)
    else:
        from pyomo_relu.io.onnx import load_onnx

        net = load_onnx(model_path)
    inputs, outputs = info["input_labels"], info["output_labels"]
    for labels, size, what in ((inputs, net.n_inputs, "input"), (outputs, net.n_outputs, "output")):
        if len(labels) != size:
            raise ModelLoadError(f"{info_path}: {len(labels)} {what}_labels but {model_path} has {size} {what}s")
    return {
        "network": net,
        "input_labels": inputs,
        "output_labels": outputs,
        "input_bounds": _bounds(info.get("input_bounds"), inputs, info_path),
        "input_scaling": _scaler(info.get("input_scaler"), inputs, info_path, "input"),
        "output_scaling": _scaler(info.get("output_scaler"), outputs, info_path, "output"),
    }


def _read_info(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as stream:
            info = json.load(stream)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a readable IDAES info JSON file ({exc})") from None
    if not isinstance(info, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {type(info).__name__}")
    for key in ("input_labels", "output_labels"):
        if not isinstance(info.get(key), list) or not info[key]:
            raise ModelLoadError(f"{path}: no {key} list (is this an IDAES idaes_info.json?)")
    return info


def _bounds(data: Any, labels: list, path: str) -> dict[Any, tuple] | None:
    if data is None:
        return None
    if not isinstance(data, Mapping) or sorted(map(str, data)) != sorted(map(str, labels)):
        raise ModelLoadError(
            f"{path}: input_bounds must name every input label {labels}, "
            f"got {list(data) if isinstance(data, Mapping) else data!r}"
        )
    out = {}
    for label in labels:
        pair = data[label]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ModelLoadError(f"{path}: input_bounds[{label!r}] must be [lb, ub], got {pair!r}")
        out[label] = tuple(None if v is None else float(v) for v in pair)
    return out


def _scaler(data: Any, labels: list, path: str, what: str) -> Scaling | None:
    """IDAES ``OffsetScaler.to_dict()`` -> :class:`Scaling` in label order."""
    if data is None:
        return None
    try:
        columns, offset, factor = data["expected_columns"], data["offset"], data["factor"]
    except (KeyError, TypeError):
        raise ModelLoadError(f"{path}: {what}_scaler needs expected_columns, offset and factor") from None
    if list(columns) != list(labels):
        raise ModelLoadError(
            f"{path}: {what}_scaler expected_columns {list(columns)} do not match {what}_labels {labels}"
        )
    missing = [k for k in labels if k not in offset or k not in factor]
    if missing:
        raise ModelLoadError(f"{path}: {what}_scaler has no offset/factor for {missing}")
    return Scaling(np.array([float(offset[k]) for k in labels]), np.array([float(factor[k]) for k in labels]))


# ------------------------------------------------------------------- writing
def network_to_onnx(net: NetworkDefinition, name: str = "pyomo_relu") -> Any:
    """An ONNX ``ModelProto`` of ``net``'s layers (not its scalings): ``Gemm`` + activation each.

    Weights are written as doubles, so reading the file back gives the same network.
    Layers must have one activation for all neurons among relu, linear, tanh, sigmoid,
    softplus (what OMLT reads); others are refused by name.
    """
    import scipy.sparse as sp
    from onnx import TensorProto, helper, numpy_helper

    from pyomo_relu.sparse import is_sparse

    nodes, initializers = [], []
    current = "input"
    for k, layer in enumerate(net.layers):
        label = f"layer {k} ({layer.name or type(layer).__name__})"
        if not isinstance(layer, DenseLayer):
            raise UnsupportedOperatorError(f"{label}: only dense layers can be written for IDAES/OMLT")
        if layer.activation not in ("linear",) + tuple(_ONNX_ACTIVATIONS):
            raise UnsupportedOperatorError(
                f"{label}: activation {layer.activation!r} cannot be written for IDAES/OMLT (relu, linear, "
                "tanh, sigmoid or softplus for every neuron of a layer)"
            )
        weights = sp.csr_array(layer.weights).toarray() if is_sparse(layer.weights) else np.asarray(layer.weights)
        initializers += [
            numpy_helper.from_array(weights.astype(np.float64), f"W{k}"),
            numpy_helper.from_array(layer.bias.astype(np.float64), f"b{k}"),
        ]
        last = k == len(net.layers) - 1
        linear = layer.activation == "linear"
        out = "output" if last and linear else f"z{k}"
        nodes.append(
            helper.make_node(
                "Gemm", [current, f"W{k}", f"b{k}"], [out], name=f"dense_{k}", alpha=1.0, beta=1.0, transA=0, transB=1
            )
        )  # OMLT reads all four
        current = out
        if not linear:
            act = "output" if last else f"h{k}"
            nodes.append(helper.make_node(_ONNX_ACTIVATIONS[layer.activation], [current], [act], name=f"act_{k}"))
            current = act
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, ["batch_size", net.n_inputs])],
        [helper.make_tensor_value_info("output", TensorProto.DOUBLE, ["batch_size", net.n_outputs])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="pyomo_relu")
    model.ir_version = 7
    return model


def write_idaes_onnx(
    location: Any,
    model_name: str,
    net: NetworkDefinition,
    input_labels: Sequence[Any],
    output_labels: Sequence[Any],
    input_bounds: Mapping[Any, tuple] | None,
    input_scaling: tuple[np.ndarray, np.ndarray] | None,
    output_scaling: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[str, str]:
    """Write ``<model_name>.onnx`` and ``<model_name>_idaes_info.json`` (IDAES's ONNX layout).

    ``net`` is the network *without* scalings; the scalings are ``(offsets, factors)`` in
    label order.  Returns the two paths.
    """
    import onnx

    location = os.fspath(location)
    os.makedirs(location, exist_ok=True)
    model_path, info_path = idaes_paths(location, model_name)["onnx"]
    onnx.save(network_to_onnx(net, model_name), model_path)

    def scaler(labels: Sequence[Any], scaling: tuple[np.ndarray, np.ndarray] | None) -> dict | None:
        if scaling is None:
            return None
        offset, factor = scaling
        return {
            "expected_columns": list(labels),
            "offset": {k: float(v) for k, v in zip(labels, offset)},
            "factor": {k: float(v) for k, v in zip(labels, factor)},
        }

    def finite(value: Any) -> float | None:
        return None if value is None or not math.isfinite(float(value)) else float(value)

    info = {
        "input_scaler": scaler(input_labels, input_scaling),
        "output_scaler": scaler(output_labels, output_scaling),
        "input_labels": list(input_labels),
        "output_labels": list(output_labels),
        "input_bounds": None
        if input_bounds is None
        else {k: [finite(input_bounds[k][0]), finite(input_bounds[k][1])] for k in input_labels},
    }
    with open(info_path, "w", encoding="utf-8") as stream:
        json.dump(info, stream)
    logger.info("wrote IDAES ONNX surrogate %s and %s", model_path, info_path)
    return model_path, info_path
