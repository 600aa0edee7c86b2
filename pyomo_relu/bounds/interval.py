"""Interval arithmetic: the cheapest sound bounds, a whole layer at a time.

For ``z = W h + b`` with ``h`` in ``[l, u]``::

    lower(z) = W⁺ l + W⁻ u + b        upper(z) = W⁺ u + W⁻ l + b

with ``W⁺ = max(W, 0)`` and ``W⁻ = min(W, 0)``; the box of ``h`` is the activation of
the previous layer's box.  Exact for the first layer; loose deeper in the network.
"""

from __future__ import annotations

import numpy as np

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.network import NetworkDefinition
from pyomo_relu.sparse import Weights, is_sparse, negative_part, positive_part


def affine_interval(
    weights: np.ndarray, bias: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact range of ``weights @ h + bias`` over the box ``lower <= h <= upper``.

    Infinite input bounds give infinite output bounds only where a non-zero weight meets
    them (``0 * inf`` is treated as 0).
    """
    positive, negative = positive_part(weights), negative_part(weights)
    with np.errstate(invalid="ignore"):
        low = _safe_matvec(positive, lower) + _safe_matvec(negative, upper) + bias
        high = _safe_matvec(positive, upper) + _safe_matvec(negative, lower) + bias
    return low, high


def _safe_matvec(matrix: Weights, vector: np.ndarray) -> np.ndarray:
    if np.all(np.isfinite(vector)):
        return np.asarray(matrix @ vector)
    finite = np.where(np.isfinite(vector), vector, 0.0)
    result = np.asarray(matrix @ finite)
    if is_sparse(matrix):  # a non-zero weight meeting an infinite bound: ±inf (both: nan, as dense)
        columns = np.flatnonzero(~np.isfinite(vector))
        signed = matrix[:, columns].multiply(np.sign(vector[columns])[None, :])
        plus = np.asarray((signed > 0).sum(axis=1)).ravel() > 0
        minus = np.asarray((signed < 0).sum(axis=1)).ravel() > 0
        with np.errstate(invalid="ignore"):
            return result + np.where(plus, np.inf, 0.0) + np.where(minus, -np.inf, 0.0)
    for j in np.flatnonzero(~np.isfinite(vector)):
        column = matrix[:, j]
        result = result + np.where(column != 0, column * vector[j], 0.0)
    return result


def interval_bounds(
    net: NetworkDefinition,
    input_lower: np.ndarray | None = None,
    input_upper: np.ndarray | None = None,
    start: Bounds | None = None,
) -> Bounds:
    """Interval bounds of every canonical layer; intersected with ``start`` if given.

    >>> from pyomo_relu.network import DenseLayer, NetworkDefinition
    >>> net = NetworkDefinition([DenseLayer([[1.0, -1.0]], [0.5]), DenseLayer([[2.0]], [0.0], "linear")],
    ...                         input_bounds=[(0, 1), (0, 1)])
    >>> b = interval_bounds(net)
    >>> b.lower, b.upper
    ((array([-0.5]), array([0.])), (array([1.5]), array([3.])))
    """
    lower = net.input_lower if input_lower is None else np.asarray(input_lower, float)
    upper = net.input_upper if input_upper is None else np.asarray(input_upper, float)
    pre_lower, pre_upper = [], []
    h_low, h_high = lower, upper
    for k, layer in enumerate(net.canonical_layers):
        low, high = affine_interval(layer.weights, layer.bias, h_low, h_high)
        if start is not None:
            low, high = np.maximum(low, start.lower[k]), np.minimum(high, start.upper[k])
        pre_lower.append(low)
        pre_upper.append(high)
        h_low, h_high = layer.output_bounds(low, high)
    methods = (start.methods if start is not None else ()) + ("interval",)
    return Bounds(pre_lower, pre_upper, lower, upper, net.content_hash(), methods)
