"""Affine-tensor algebra: ONNX's linear operators on constants and affine tensors.

Each function acts like its numpy counterpart when every operand is a constant, and on the
affine form (:class:`~pyomo_relu.io.onnx.tensor.AffineTensor`) otherwise, keeping the
sparse form where the operator has one.  At most one operand of a product may depend on the
network input (anything else is not linear and is refused, naming the node).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from pyomo_relu.errors import DenseTooLargeError, InvalidNetworkError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.onnx.node import Node
from pyomo_relu.io.onnx.tensor import AffineTensor, Value, as_float, shape_of

__all__ = ["add", "div", "matmul", "mul", "reshape", "transpose"]


def lift(stack: np.ndarray, ndim: int) -> np.ndarray:
    """Insert unit axes after the leading axis so the tensor part has ``ndim`` axes."""
    extra = ndim - (stack.ndim - 1)
    if extra <= 0:
        return stack
    return stack.reshape(stack.shape[:1] + (1,) * extra + stack.shape[1:])


def broadcast_shape(node: Node, *shapes: Sequence[int]) -> tuple[int, ...]:
    """The numpy broadcast of ``shapes``, refused naming ``node``."""
    try:
        return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        raise ShapeMismatchError(
            f"{node.where()}: cannot broadcast shapes {' and '.join(str(tuple(s)) for s in shapes)}"
        ) from None


def add(node: Node, a: Value, b: Value) -> Value:
    """``a + b`` with ONNX (numpy) broadcasting."""
    out_shape = broadcast_shape(node, shape_of(a), shape_of(b))
    if not isinstance(a, AffineTensor) and not isinstance(b, AffineTensor):
        return np.add(a, b)
    if isinstance(a, AffineTensor) and isinstance(b, AffineTensor):
        if (a.is_sparse or b.is_sparse) and a.shape == b.shape == out_shape:
            (ma, ca), (mb, cb) = a.rows(), b.rows()
            return a.with_rows(sp.csr_array(ma) + sp.csr_array(mb), ca + cb, out_shape)
        return a.with_stack(lift(a.stack, len(out_shape)) + lift(b.stack, len(out_shape)))
    affine, constant = (a, b) if isinstance(a, AffineTensor) else (b, a)
    assert isinstance(affine, AffineTensor)
    if affine.is_sparse and affine.shape == out_shape:
        matrix, const = affine.rows()
        return affine.with_rows(matrix, const + np.broadcast_to(as_float(constant), out_shape).ravel(), out_shape)
    rows = affine.stack.shape[0]
    stack = np.broadcast_to(lift(affine.stack, len(out_shape)), (rows, *out_shape)).copy()
    stack[0] += as_float(constant)
    return affine.with_stack(stack)


def mul(node: Node, a: Value, b: Value | float) -> Value:
    """``a * b`` where at most one side depends on the network input."""
    if not isinstance(b, (np.ndarray, AffineTensor)):
        b = np.asarray(b, dtype=np.float64)
    out_shape = broadcast_shape(node, shape_of(a), shape_of(b))
    if not isinstance(a, AffineTensor) and not isinstance(b, AffineTensor):
        return np.multiply(a, b)
    if isinstance(a, AffineTensor) and isinstance(b, AffineTensor):
        raise UnsupportedOperatorError(
            f"{node.where()} multiplies two input-dependent tensors, which is not linear; "
            "only products with constants are supported"
        )
    affine, constant = (a, b) if isinstance(a, AffineTensor) else (b, a)
    assert isinstance(affine, AffineTensor)
    if affine.is_sparse and affine.shape == out_shape:
        factor = np.broadcast_to(as_float(constant), out_shape).ravel()
        return affine.then(sp.diags_array(factor), np.zeros(factor.size), out_shape)
    return affine.with_stack(lift(affine.stack, len(out_shape)) * as_float(constant))


def negate(node: Node, value: Value) -> Value:
    """``-value``."""
    return mul(node, value, -1.0)


def div(node: Node, a: Value, b: Value) -> Value:
    """``a / b`` for a constant divisor (integer constants divide like ONNX: truncation)."""
    if isinstance(b, AffineTensor):
        raise UnsupportedOperatorError(
            f"{node.where()} divides by an input-dependent tensor, which is not linear; "
            "only division by constants is supported"
        )
    if not isinstance(a, AffineTensor):
        if np.issubdtype(np.result_type(a, b), np.integer):
            return np.trunc(np.true_divide(a, b)).astype(np.result_type(a, b))
        return np.divide(a, b)
    divisor = as_float(b)
    if np.any(divisor == 0):
        raise InvalidNetworkError(f"{node.where()} divides by a constant that contains zeros")
    return mul(node, a, 1.0 / divisor)


def matmul(node: Node, a: Value, b: Value) -> Value:
    """numpy/ONNX ``matmul`` where at most one side depends on the network input."""
    if isinstance(a, AffineTensor) and isinstance(b, AffineTensor):
        raise UnsupportedOperatorError(
            f"{node.where()} multiplies two input-dependent tensors, which is not linear; "
            "only products with constant weights are supported"
        )
    try:
        if isinstance(a, AffineTensor):
            weights = as_float(b)
            if a.is_sparse and len(a.shape) == 2 and a.shape[0] == 1 and weights.ndim == 2:
                return _row_times_weights(a, weights)
            return a.with_stack(_matmul_variable_left(a.stack, weights))
        if isinstance(b, AffineTensor):
            return b.with_stack(_matmul_variable_right(as_float(a), b.stack))
        return np.matmul(a, b)
    except DenseTooLargeError:
        raise
    except ValueError:
        raise ShapeMismatchError(
            f"{node.where()}: cannot multiply matrices of shapes {shape_of(a)} and {shape_of(b)}"
        ) from None


def _row_times_weights(a: AffineTensor, weights: np.ndarray) -> AffineTensor:
    """``(1, k) @ (k, m)`` for a sparse ``a``: ``A' = W^T A``, computed as ``(A^T W)^T``."""
    matrix, const = a.rows()
    stack = np.concatenate([(const @ weights)[None], np.asarray(matrix.T @ weights)])
    return a.with_stack(stack.reshape(stack.shape[0], 1, weights.shape[1]))


def _matmul_variable_left(stack: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``x @ W`` applied to every slice ``stack[i]``."""
    rows, rank = stack.shape[0], stack.ndim - 1
    if rank == 0 or weights.ndim == 0:
        raise ValueError("matmul of a scalar")
    if weights.ndim == 1:
        return stack @ weights
    if rank == 1:  # a vector is a (1, k) matrix whose row axis is dropped afterwards
        lifted = stack.reshape((rows,) + (1,) * (weights.ndim - 2) + (1, stack.shape[1]))
        return np.matmul(lifted, weights)[..., 0, :]
    return np.matmul(lift(stack, weights.ndim), weights)


def _matmul_variable_right(weights: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """``W @ x`` applied to every slice ``stack[i]``."""
    rows, rank = stack.shape[0], stack.ndim - 1
    if rank == 0 or weights.ndim == 0:
        raise ValueError("matmul of a scalar")
    if rank == 1:  # a vector is a (k, 1) matrix whose column axis is dropped afterwards
        lifted = stack.reshape((rows,) + (1,) * max(weights.ndim - 2, 0) + (stack.shape[1], 1))
        return np.matmul(weights, lifted)[..., 0]
    if weights.ndim == 1:
        return np.matmul(weights, stack)
    return np.matmul(weights, lift(stack, weights.ndim))


def reshape(value: Value, shape: Sequence[int]) -> Value:
    """``value`` reshaped (C order) to ``shape``."""
    shape = tuple(int(d) for d in shape)
    if isinstance(value, AffineTensor) and value.is_sparse:
        return value.with_rows(*value.rows(), shape)  # C order: the rows stay as they are
    if isinstance(value, AffineTensor):
        return value.with_stack(value.stack.reshape(value.stack.shape[:1] + shape))
    return np.reshape(value, shape)


def transpose(value: Value, perm: Sequence[int]) -> Value:
    """``value`` with its axes permuted by ``perm``."""
    if isinstance(value, AffineTensor) and value.is_sparse:
        order = np.arange(value.size).reshape(value.shape).transpose(perm)
        matrix, const = value.rows()
        return value.with_rows(matrix[order.ravel()], const[order.ravel()], order.shape)
    if isinstance(value, AffineTensor):
        return value.with_stack(value.stack.transpose((0, *(int(p) + 1 for p in perm))))
    return np.transpose(value, perm)
