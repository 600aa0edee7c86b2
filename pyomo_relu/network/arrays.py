"""Checked, read-only copies of the arrays a layer or a scaling is made of."""

from __future__ import annotations

import numpy as np

from pyomo_relu.errors import InvalidNetworkError, ShapeMismatchError
from pyomo_relu.sparse import Weights, as_weights, is_sparse


def frozen_array(values: object, what: str, ndim: int) -> np.ndarray:
    """Copy ``values`` to a read-only float64 array, checking rank and finiteness."""
    array = np.array(values, dtype=np.float64, copy=True)
    if array.ndim != ndim:
        raise ShapeMismatchError(f"{what} must have {ndim} dimension(s), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise InvalidNetworkError(
            f"{what} contains NaN or Inf (first at index {tuple(int(i) for i in bad)}); "
            "check the exported model or the training run"
        )
    array.setflags(write=False)
    return array


def frozen_weights(values: object, what: str) -> Weights:
    """Dense weights as :func:`frozen_array`; ``scipy.sparse`` ones as a checked read-only CSR array."""
    if not is_sparse(values):
        return frozen_array(values, what, 2)
    matrix = as_weights(values, sparse=True)
    if not np.all(np.isfinite(matrix.data)):
        raise InvalidNetworkError(f"{what} contains NaN or Inf; check the exported model or the training run")
    for array in (matrix.data, matrix.indices, matrix.indptr):
        array.setflags(write=False)
    return matrix


def per_neuron(values: object, n: int, fill: float, what: str) -> np.ndarray:
    """Broadcast a scalar or per-neuron parameter to ``n`` floats (``fill`` when ``None``)."""
    array = np.full(n, fill, dtype=np.float64) if values is None else np.array(values, dtype=np.float64)
    try:
        array = np.broadcast_to(array, (n,)).copy()
    except ValueError:
        raise ShapeMismatchError(f"{what} has {array.size} entries, the layer has {n} neurons") from None
    if np.any(np.isnan(array)):
        raise InvalidNetworkError(f"{what} contains NaN")
    return array
