"""Weights that are either dense numpy arrays or ``scipy.sparse`` CSR arrays.

Convolutions are sparse affine maps (each output reads ``k·k·C`` of the inputs), so the
readers hand them over as CSR arrays and every consumer (bounds, LP rows, Pyomo rows)
works on the non-zeros only.  These helpers keep the two representations interchangeable.

>>> import numpy as np
>>> W = as_weights(np.array([[0.0, 2.0], [1.0, 0.0]]), sparse=True)
>>> is_sparse(W), rows_dense(W, [1]).tolist(), positive_part(W).toarray().tolist()
(True, [[1.0, 0.0]], [[0.0, 2.0], [1.0, 0.0]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

#: Weights with at most this share of non-zeros (and enough entries) are stored as CSR.
SPARSE_DENSITY = 0.25
SPARSE_MIN_ENTRIES = 10_000

Weights = Any  # np.ndarray | scipy.sparse.csr_array


def is_sparse(weights: Weights) -> bool:
    return sp.issparse(weights)


def as_weights(weights: Weights, sparse: bool | None = None) -> Weights:
    """Float64 weights, CSR when ``sparse`` (``None``: when sparse enough to be worth it)."""
    if sparse is None:
        size = int(np.prod(weights.shape))
        nnz = weights.nnz if is_sparse(weights) else int(np.count_nonzero(weights))
        sparse = size >= SPARSE_MIN_ENTRIES and nnz <= SPARSE_DENSITY * size
    if sparse:
        matrix = sp.csr_array(weights, dtype=np.float64)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        matrix.sort_indices()
        return matrix
    return weights.toarray().astype(np.float64) if is_sparse(weights) else np.asarray(weights, dtype=np.float64)


def dense(weights: Weights) -> np.ndarray:
    return weights.toarray() if is_sparse(weights) else np.asarray(weights)


def rows_dense(weights: Weights, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """The rows ``rows`` as a dense array."""
    rows = np.asarray(rows, dtype=np.int64)
    return weights[rows].toarray() if is_sparse(weights) else np.asarray(weights)[rows]


def positive_part(weights: Weights) -> Weights:
    return weights.maximum(0.0) if is_sparse(weights) else np.maximum(weights, 0.0)


def negative_part(weights: Weights) -> Weights:
    return weights.minimum(0.0) if is_sparse(weights) else np.minimum(weights, 0.0)


def scale_rows(weights: Weights, factor: np.ndarray) -> Weights:
    return sp.csr_array(sp.diags_array(factor) @ weights) if is_sparse(weights) else weights * factor[:, None]


def scale_columns(weights: Weights, factor: np.ndarray) -> Weights:
    return sp.csr_array(weights @ sp.diags_array(factor)) if is_sparse(weights) else weights * factor[None, :]


def matmul(left: Weights, right: Weights) -> Weights:
    """``left @ right``, CSR when both are sparse."""
    if is_sparse(left) and is_sparse(right):
        return sp.csr_array(left @ right)
    if is_sparse(left) or is_sparse(right):
        return np.asarray(left @ right)
    return left @ right


def triplets(weights: Weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, values)`` of the non-zeros."""
    if is_sparse(weights):
        coo = sp.coo_array(weights)
        return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
    r, c = np.nonzero(weights)
    return r, c, weights[r, c]


def row_entries(weights: Weights, row: int) -> tuple[np.ndarray, np.ndarray]:
    """``(columns, values)`` of the non-zeros of one row."""
    if is_sparse(weights):
        start, end = weights.indptr[row], weights.indptr[row + 1]
        return weights.indices[start:end], weights.data[start:end]
    values = np.asarray(weights)[row]
    columns = np.flatnonzero(values)
    return columns, values[columns]


def content_bytes(weights: Weights) -> list[bytes]:
    """What a hash covers: dense bytes, or the CSR structure and values."""
    if is_sparse(weights):
        return [
            b"csr",
            np.asarray(weights.shape, "<i8").tobytes(),
            weights.indptr.astype("<i8").tobytes(),
            weights.indices.astype("<i8").tobytes(),
            weights.data.astype("<f8").tobytes(),
        ]
    return [np.ascontiguousarray(weights, dtype="<f8").tobytes()]
