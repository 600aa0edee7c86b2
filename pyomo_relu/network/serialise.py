"""Networks and layers as JSON-ready data, and back (floats round-trip exactly)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pyomo_relu.network.definition import NetworkDefinition
from pyomo_relu.network.layers import DenseLayer, Layer, MaxLayer
from pyomo_relu.network.scaling import Scaling
from pyomo_relu.sparse import is_sparse


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def layer_to_dict(layer: Layer) -> dict[str, Any]:
    """A layer as JSON-ready data (floats round-trip exactly; ±inf clip bounds as ``None``).

    >>> layer_to_dict(DenseLayer([[1.0, 2.0]], [0.5], "clip", "c", clip_low=0.0))
    {'weights': [[1.0, 2.0]], 'bias': [0.5], 'name': 'c', 'activation': 'clip', 'clip_low': [0.0], 'clip_high': [None]}
    """
    data: dict[str, Any]
    if is_sparse(layer.weights):
        w = layer.weights
        data = {
            "sparse_weights": {
                "shape": list(w.shape),
                "indptr": w.indptr.tolist(),
                "indices": w.indices.tolist(),
                "data": w.data.tolist(),
            }
        }
    else:
        data = {"weights": layer.weights.tolist()}
    data.update(bias=layer.bias.tolist(), name=layer.name)
    if isinstance(layer, MaxLayer):
        data.update(kind="max", groups=layer.groups.tolist())
        return data
    data["activation"] = layer.kinds.tolist() if layer.activation == "mixed" else layer.activation
    if np.any(layer.kinds == "leaky_relu"):
        data["alpha"] = layer.alpha.tolist()
    if np.any(layer.kinds == "clip"):
        data["clip_low"], data["clip_high"] = _json_floats(layer.clip_low), _json_floats(layer.clip_high)
    return data


def layer_from_dict(data: Mapping[str, Any]) -> Layer:
    """Inverse of :func:`layer_to_dict`."""
    if "sparse_weights" in data:
        import scipy.sparse as sp

        w = data["sparse_weights"]
        weights = sp.csr_array(
            (np.array(w["data"], float), np.array(w["indices"], np.int64), np.array(w["indptr"], np.int64)),
            shape=tuple(w["shape"]),
        )
    else:
        weights = np.array(data["weights"], dtype=float).reshape(len(data["bias"]), -1)
    if data.get("kind") == "max":
        return MaxLayer(weights, data["bias"], data["groups"], data.get("name", ""))
    return DenseLayer(
        weights,
        data["bias"],
        data.get("activation", "relu"),
        data.get("name", ""),
        data.get("alpha"),
        _side(data, "clip_low", -np.inf),
        _side(data, "clip_high", np.inf),
    )


def _side(data: Mapping[str, Any], key: str, fill: float) -> list[float] | None:
    """A clip side from :func:`layer_to_dict`'s data (``None`` entries are ``fill``)."""
    return None if key not in data else [fill if v is None else v for v in data[key]]


def _scaling_to_dict(scaling: Scaling | None) -> dict[str, list[float]] | None:
    return None if scaling is None else {"offset": scaling.offset.tolist(), "factor": scaling.factor.tolist()}


def _scaling_from_dict(data: Mapping[str, Any] | None) -> Scaling | None:
    return None if data is None else Scaling(data["offset"], data["factor"])


def network_to_dict(net: NetworkDefinition) -> dict[str, Any]:
    """Layers and scalings of ``net`` as JSON-ready lists (exact: floats round-trip); not the input bounds.

    >>> net = NetworkDefinition([DenseLayer([[2.0]], [1.0], "relu", "h")], output_scaling=Scaling([0.0], [3.0]))
    >>> data = network_to_dict(net)
    >>> data["output_scaling"], network_from_dict(data).content_hash() == net.content_hash()
    ({'offset': [0.0], 'factor': [3.0]}, True)
    """
    return {
        "layers": [layer_to_dict(layer) for layer in net.layers],
        "input_scaling": _scaling_to_dict(net.input_scaling),
        "output_scaling": _scaling_to_dict(net.output_scaling),
        "input_shape": list(net.input_shape) if net.input_shape else None,
        "source": net.source,
    }


def network_from_dict(data: Mapping[str, Any]) -> NetworkDefinition:
    """Inverse of :func:`network_to_dict` (without input bounds)."""
    return NetworkDefinition(
        [layer_from_dict(layer) for layer in data["layers"]],
        None,
        _scaling_from_dict(data.get("input_scaling")),
        _scaling_from_dict(data.get("output_scaling")),
        data.get("input_shape"),
        source=data.get("source", ""),
    )
