"""Read an ONNX model of a ReLU network (dense or convolutional) into a NetworkDefinition.

Supported operators (default ONNX domain, opsets 8 to 21):

* affine: ``Gemm`` (``alpha``, ``beta``, ``transA``, ``transB``, with or without ``C``),
  ``MatMul`` (the input-dependent tensor on either side), ``Add``, ``Sub`` (constants on
  either side, with broadcasting), ``Mul``, ``Div`` (by constants), ``Neg``;
* layout: ``Flatten``, ``Reshape`` (shape input or, in old opsets, attribute; ``0`` and
  ``-1`` entries), ``Squeeze``, ``Unsqueeze`` (axes attribute or input), ``Transpose``,
  ``Identity``, ``Dropout`` (inference), ``Cast`` (to a float type), ``Shape``;
* ``BatchNormalization`` in inference mode (an affine per-channel map from the stored
  mean and variance; ``training_mode=1`` is refused);
* convolution and pooling: ``Conv`` (1-D, 2-D or 3-D; ``pads``, ``auto_pad``, ``strides``,
  ``dilations``, ``group``, optional bias; constant weights), ``AveragePool`` (``pads``,
  ``auto_pad``, ``strides``, ``dilations``, ``count_include_pad``, ``ceil_mode``),
  ``GlobalAveragePool`` and ``Concat`` (of input-dependent tensors and constants) are
  linear maps, kept *sparse* (CSR) from the input to the emitted layer; ``MaxPool`` (the
  same attributes; padding never wins) and ``GlobalMaxPool`` become a
  :class:`~pyomo_relu.network.MaxLayer` (a max of affine functions);
* activations: ``Relu``, ``LeakyRelu``, ``PRelu`` (constant slope, broadcast), ``Clip``
  (attributes before opset 11, constant inputs after), ``HardSigmoid`` (an affine map and
  a clip), and ``Sigmoid``, ``Tanh``, ``Softplus`` (smooth: NLP formulations only);
  ``Sign``, ``Greater``/``GreaterOrEqual``/``Less``/``LessOrEqual`` and ``Where`` as step
  neurons, exactly (:mod:`pyomo_relu.io.onnx_step`);
* residual and skip connections: a tensor read after an activation (``Add`` of a skip,
  ``Concat`` of branches) is carried through the activation layer as linear neurons;
* ``Constant``;
* any other operator whose inputs are all constant (folded with :mod:`onnx.reference`);
* a trailing ``Softmax`` or ``LogSoftmax``, dropped only with ``drop_softmax=True``.

How it works: the graph is walked in topological order.  Every tensor is either a numpy
constant or an affine function ``value = A @ basis + c`` of the current *basis*, which is
the flattened network input at first and the output of the last activation afterwards.
Each activation (or max pooling) on an affine tensor emits one layer and starts a new basis;
a non-trivial affine map left at the graph output becomes a final ``"linear"`` layer.  So
consecutive linear operators (normalisation, ``Flatten``, ``MatMul`` and ``Add``, two
``Gemm`` in a row, ...) compose into a single layer.  The batch dimension (the first one
when symbolic) is taken as 1 and tensors are flattened in C order.

An affine tensor of shape ``S`` is stored sparse (a CSR matrix ``A`` over the basis and
``c``; every basis starts as a sparse identity) or dense, as one array ``stack`` of shape
``(1 + n, *S)`` whose ``stack[0]`` is ``c`` and ``stack[1 + j]`` the coefficients of basis
entry ``j``, so that operators without a sparse form act on ``stack`` exactly as they act
on a tensor, with one leading batch axis.  Densifying is refused, naming the node, beyond
``MAX_DENSE_ENTRIES`` coefficients.
"""

from __future__ import annotations

import functools
import heapq
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx
import scipy.sparse as sp
from onnx import helper, numpy_helper

from pyomo_relu.errors import (
    InvalidNetworkError,
    ModelLoadError,
    PyomoReluError,
    ShapeMismatchError,
    UnsupportedOperatorError,
)
from pyomo_relu.network import DenseLayer, Layer, MaxLayer, NetworkDefinition
from pyomo_relu.sparse import as_weights

logger = logging.getLogger(__name__)

__all__ = ["MAX_DENSE_ENTRIES", "SUPPORTED_OPS", "load_onnx"]

#: Largest network input (entries of the flattened input tensor) the reader accepts.
MAX_INPUT_SIZE = 10_000_000

#: Largest number of coefficients (``n_basis x numel``) a Conv/pooling/Concat node may
#: produce; beyond it the node is refused instead of allocating gigabytes of dense weights.
MAX_DENSE_ENTRIES = 200_000_000

_DEFAULT_DOMAINS = ("", "ai.onnx")
_SOFTMAX_OPS = ("Softmax", "LogSoftmax")


class _DenseTooLarge(UnsupportedOperatorError):
    """A sparse affine tensor would need a dense representation too large to allocate."""


class _Affine:
    """``value = A @ basis + c`` in basis number ``basis``, dense or sparse.

    Dense: ``stack`` of shape ``(1 + n, *S)``, ``stack[0] = c`` and ``stack[1 + j]`` the
    coefficients of basis entry ``j``.  Sparse: ``matrix`` (CSR, ``(size, n)``) and
    ``const`` (``(size,)``) over the C-order flattening of shape ``S``.  Operators with a
    sparse implementation (convolution, pooling, per-channel maps, layout changes, sums,
    concatenation) keep the sparse form; any other reads :attr:`stack`, which densifies.
    """

    __slots__ = ("_stack", "basis", "_matrix", "_const", "_shape")

    def __init__(
        self,
        stack: np.ndarray | None,
        basis: int,
        *,
        matrix: Any = None,
        const: np.ndarray | None = None,
        shape: Sequence[int] | None = None,
    ) -> None:
        self._stack, self.basis = stack, basis
        self._matrix, self._const = matrix, const
        self._shape = tuple(stack.shape[1:]) if stack is not None else tuple(int(d) for d in shape)

    @classmethod
    def sparse(cls, matrix: Any, const: np.ndarray, shape: Sequence[int], basis: int) -> _Affine:
        return cls(None, basis, matrix=sp.csr_array(matrix), const=np.asarray(const, float), shape=shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def is_sparse(self) -> bool:
        return self._stack is None

    @property
    def size(self) -> int:
        return int(np.prod(self._shape))

    @property
    def stack(self) -> np.ndarray:
        if self._stack is None:
            n = self._matrix.shape[1]
            if (n + 1) * self.size > MAX_DENSE_ENTRIES:
                raise _DenseTooLarge(
                    f"a dense map of {n} basis entries x {self.size} outputs (more than "
                    f"MAX_DENSE_ENTRIES = {MAX_DENSE_ENTRIES}) would be needed; this operator has no "
                    "sparse implementation here (Conv, pooling, BatchNormalization, Add/Mul by constants, "
                    "Concat, Flatten/Reshape/Transpose and the activations do)"
                )
            stack = np.empty((n + 1, self.size))
            stack[0] = self._const
            stack[1:] = self._matrix.T.toarray()
            self._stack = stack.reshape((n + 1, *self._shape))
        return self._stack

    def rows(self) -> tuple[Any, np.ndarray]:
        """``(A, c)`` with ``A`` of shape ``(size, n)`` (CSR when sparse)."""
        if self._stack is None:
            return self._matrix, self._const
        n = self._stack.shape[0] - 1
        return self._stack[1:].reshape(n, -1).T, self._stack[0].reshape(-1)

    def with_stack(self, stack: np.ndarray) -> _Affine:
        return _Affine(stack, self.basis)

    def with_rows(self, matrix: Any, const: np.ndarray, shape: Sequence[int]) -> _Affine:
        return _Affine.sparse(matrix, const, shape, self.basis)


Value = Union[np.ndarray, _Affine]
Inputs = list[Value | None]  # a node's inputs, None for an absent optional input


@dataclass(frozen=True)
class _Node:
    """A node with the label used in messages and layer names."""

    proto: onnx.NodeProto
    label: str
    opset: int

    @property
    def op(self) -> str:
        return self.proto.op_type

    def attr(self, name: str, default: object = None) -> object:
        """The attribute's value, checked against the operator's schema (type), or ``default``."""
        for attribute in self.proto.attribute:
            if attribute.name == name:
                expected = _attribute_type(self.op, self.opset, name)
                if expected is not None and attribute.type != expected:
                    raise ModelLoadError(
                        f"{self.where()}: attribute {name!r} must be of type "
                        f"{onnx.AttributeProto.AttributeType.Name(expected)}, the file has "
                        f"{onnx.AttributeProto.AttributeType.Name(attribute.type)}; re-export the model"
                    )
                return helper.get_attribute_value(attribute)
        return default

    def where(self) -> str:
        return f"ONNX node {self.label!r} (op {self.op})"


@functools.cache
def _attribute_type(op: str, opset: int, name: str) -> int | None:
    """The attribute type the ONNX schema of ``op`` (at ``opset``) declares for ``name``, if any."""
    try:
        schema = onnx.defs.get_schema(op, max_inclusive_version=max(1, opset), domain="")
    except Exception:  # noqa: BLE001 - no schema (unknown op or opset): nothing to check against
        return None
    attribute = schema.attributes.get(name)
    return None if attribute is None else int(attribute.type)


# --------------------------------------------------------------------------- helpers
def _as_float(value: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _lift(stack: np.ndarray, ndim: int) -> np.ndarray:
    """Insert unit axes after the leading axis so the tensor part has ``ndim`` axes."""
    extra = ndim - (stack.ndim - 1)
    if extra <= 0:
        return stack
    return stack.reshape(stack.shape[:1] + (1,) * extra + stack.shape[1:])


def _broadcast_shape(node: _Node, *shapes: Sequence[int]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        raise ShapeMismatchError(
            f"{node.where()}: cannot broadcast shapes {' and '.join(str(tuple(s)) for s in shapes)}"
        ) from None


def _shape_of(value: Value) -> tuple[int, ...]:
    return value.shape if isinstance(value, _Affine) else tuple(np.shape(value))


def _add(node: _Node, a: Value, b: Value) -> Value:
    """``a + b`` with ONNX (numpy) broadcasting."""
    out_shape = _broadcast_shape(node, _shape_of(a), _shape_of(b))
    if not isinstance(a, _Affine) and not isinstance(b, _Affine):
        return np.add(a, b)
    if isinstance(a, _Affine) and isinstance(b, _Affine):
        if (a.is_sparse or b.is_sparse) and a.shape == b.shape == out_shape:
            (ma, ca), (mb, cb) = _sparse_rows(a), _sparse_rows(b)
            return a.with_rows(ma + mb, ca + cb, out_shape)
        return a.with_stack(_lift(a.stack, len(out_shape)) + _lift(b.stack, len(out_shape)))
    affine, constant = (a, b) if isinstance(a, _Affine) else (b, a)
    if affine.is_sparse and affine.shape == out_shape:
        matrix, const = affine.rows()
        return affine.with_rows(matrix, const + np.broadcast_to(_as_float(constant), out_shape).ravel(), out_shape)
    rows = affine.stack.shape[0]
    stack = np.broadcast_to(_lift(affine.stack, len(out_shape)), (rows, *out_shape)).copy()
    stack[0] += _as_float(constant)
    return affine.with_stack(stack)


def _mul(node: _Node, a: Value, b: Value) -> Value:
    """``a * b`` where at most one side depends on the network input."""
    out_shape = _broadcast_shape(node, _shape_of(a), _shape_of(b))
    if not isinstance(a, _Affine) and not isinstance(b, _Affine):
        return np.multiply(a, b)
    if isinstance(a, _Affine) and isinstance(b, _Affine):
        raise UnsupportedOperatorError(
            f"{node.where()} multiplies two input-dependent tensors, which is not linear; "
            "only products with constants are supported"
        )
    affine, constant = (a, b) if isinstance(a, _Affine) else (b, a)
    if affine.is_sparse and affine.shape == out_shape:
        factor = np.broadcast_to(_as_float(constant), out_shape).ravel()
        matrix, const = affine.rows()
        return affine.with_rows(sp.diags_array(factor) @ matrix, const * factor, out_shape)
    return affine.with_stack(_lift(affine.stack, len(out_shape)) * _as_float(constant))


def _div(node: _Node, a: Value, b: Value) -> Value:
    """``a / b`` for a constant divisor (integer constants divide like ONNX: truncation)."""
    if isinstance(b, _Affine):
        raise UnsupportedOperatorError(
            f"{node.where()} divides by an input-dependent tensor, which is not linear; "
            "only division by constants is supported"
        )
    if not isinstance(a, _Affine):
        if np.issubdtype(np.result_type(a, b), np.integer):
            return np.trunc(np.true_divide(a, b)).astype(np.result_type(a, b))
        return np.divide(a, b)
    divisor = _as_float(b)
    if np.any(divisor == 0):
        raise InvalidNetworkError(f"{node.where()} divides by a constant that contains zeros")
    return _mul(node, a, 1.0 / divisor)


def _matmul(node: _Node, a: Value, b: Value) -> Value:
    """numpy/ONNX ``matmul`` where at most one side depends on the network input."""
    if isinstance(a, _Affine) and isinstance(b, _Affine):
        raise UnsupportedOperatorError(
            f"{node.where()} multiplies two input-dependent tensors, which is not linear; "
            "only products with constant weights are supported"
        )
    try:
        if not isinstance(a, _Affine) and not isinstance(b, _Affine):
            return np.matmul(a, b)
        if isinstance(a, _Affine) and a.is_sparse and len(a.shape) == 2 and a.shape[0] == 1 and np.ndim(b) == 2:
            weights = _as_float(b)  # (1, k) @ (k, m): A' = W^T A, computed as (A^T W)^T
            matrix, const = a.rows()
            stack = np.concatenate([(const @ weights)[None], np.asarray(matrix.T @ weights)])
            return a.with_stack(stack.reshape(stack.shape[0], 1, weights.shape[1]))
        if isinstance(a, _Affine):
            return a.with_stack(_matmul_variable_left(a.stack, _as_float(b)))
        return b.with_stack(_matmul_variable_right(_as_float(a), b.stack))
    except _DenseTooLarge:
        raise
    except ValueError:
        raise ShapeMismatchError(
            f"{node.where()}: cannot multiply matrices of shapes {_shape_of(a)} and {_shape_of(b)}"
        ) from None


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
    return np.matmul(_lift(stack, weights.ndim), weights)


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
    return np.matmul(weights, _lift(stack, weights.ndim))


def _reshape(value: Value, shape: Sequence[int]) -> Value:
    shape = tuple(int(d) for d in shape)
    if isinstance(value, _Affine) and value.is_sparse:
        return value.with_rows(*value.rows(), shape)  # C order: the rows stay as they are
    if isinstance(value, _Affine):
        return value.with_stack(value.stack.reshape(value.stack.shape[:1] + shape))
    return np.reshape(value, shape)


def _transpose(value: Value, perm: Sequence[int]) -> Value:
    if isinstance(value, _Affine) and value.is_sparse:
        order = np.arange(value.size).reshape(value.shape).transpose(perm)
        matrix, const = value.rows()
        return value.with_rows(matrix[order.ravel()], const[order.ravel()], order.shape)
    if isinstance(value, _Affine):
        return value.with_stack(value.stack.transpose((0, *(int(p) + 1 for p in perm))))
    return np.transpose(value, perm)


def _sparse_rows(value: _Affine) -> tuple[Any, np.ndarray]:
    matrix, const = value.rows()
    return sp.csr_array(matrix), const


def _apply_rows(value: _Affine, operator: Any, offset: np.ndarray, shape: Sequence[int]) -> _Affine:
    """``operator @ value + offset`` for a sparse linear ``operator`` on the flattened tensor."""
    matrix, const = value.rows()
    return value.with_rows(sp.csr_array(operator @ sp.csr_array(matrix)), operator @ const + offset, shape)


def _constant_input(node: _Node, value: Value | None, what: str) -> np.ndarray | None:
    if isinstance(value, _Affine):
        raise UnsupportedOperatorError(
            f"{node.where()}: its {what} depends on the network input; it must be a constant"
        )
    return value


def _normalise_axes(node: _Node, axes: Sequence[int], rank: int) -> list[int]:
    result = []
    for axis in axes:
        axis = int(axis)
        if not -rank <= axis < rank:
            raise ShapeMismatchError(f"{node.where()}: axis {axis} is out of range for rank {rank}")
        result.append(axis % rank)
    if len(set(result)) != len(result):
        raise ShapeMismatchError(f"{node.where()}: axes {list(axes)} name an axis twice")
    return result


def _reshape_target(node: _Node, in_shape: tuple[int, ...], spec: Sequence[int]) -> tuple[int, ...]:
    """Resolve ONNX Reshape's ``0`` (copy, unless ``allowzero``) and ``-1`` (infer)."""
    allowzero = bool(node.attr("allowzero", 0))
    out = []
    for index, dim in enumerate(int(d) for d in spec):
        if dim == 0 and not allowzero:
            if index >= len(in_shape):
                raise ShapeMismatchError(
                    f"{node.where()}: shape entry {index} is 0 (copy) but the input has rank {len(in_shape)}"
                )
            dim = in_shape[index]
        out.append(dim)
    total = int(np.prod(in_shape))
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise ShapeMismatchError(f"{node.where()}: invalid target shape {list(spec)}")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        if known == 0 or total % known:
            raise ShapeMismatchError(f"{node.where()}: cannot reshape {in_shape} ({total} entries) to {list(spec)}")
        out[out.index(-1)] = total // known
    if int(np.prod(out)) != total:
        raise ShapeMismatchError(f"{node.where()}: cannot reshape {in_shape} ({total} entries) to {tuple(out)}")
    return tuple(out)


def _check_finite(node: _Node, values: list[Value]) -> None:
    for value in values:
        if isinstance(value, _Affine) and value.is_sparse:
            matrix, const = value.rows()
            array = np.concatenate([matrix.data, const])
        else:
            array = value.stack if isinstance(value, _Affine) else np.asarray(value)
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise InvalidNetworkError(f"{node.where()} produces NaN or Inf values; check the exported weights")


# ------------------------------------------------------------------ op handlers
# Each handler takes (converter, node, inputs) and returns the node's outputs in order.
Handler = Callable[["_GraphConverter", _Node, Inputs], Inputs]


def _op_gemm(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    for name, value in (("A", a), ("B", b)):
        if len(_shape_of(value)) != 2:
            raise ShapeMismatchError(f"{node.where()}: input {name} must be 2-D, got shape {_shape_of(value)}")
    if node.attr("transA", 0):
        a = _transpose(a, (1, 0))
    if node.attr("transB", 0):
        b = _transpose(b, (1, 0))
    result = _matmul(node, a, b)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if alpha != 1.0:
        result = _mul(node, result, np.float64(alpha))
    if c is not None:
        result = _add(node, result, _mul(node, c, np.float64(beta)) if beta != 1.0 else c)
    return [result]


def _op_matmul(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    return [_matmul(node, inputs[0], inputs[1])]


def _op_add(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    return [_add(node, inputs[0], inputs[1])]


def _op_sub(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    a, b = inputs
    if not isinstance(a, _Affine) and not isinstance(b, _Affine):
        return [np.subtract(a, b)]
    return [_add(node, a, _mul(node, b, np.float64(-1.0)))]


def _op_mul(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    return [_mul(node, inputs[0], inputs[1])]


def _op_div(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    return [_div(node, inputs[0], inputs[1])]


def _op_neg(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    value = inputs[0]
    if isinstance(value, _Affine):
        return [_mul(node, value, np.float64(-1.0))]
    return [np.negative(value)]


def _op_flatten(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    shape = _shape_of(inputs[0])
    axis = int(node.attr("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        raise ShapeMismatchError(f"{node.where()}: axis {axis} is out of range for shape {shape}")
    if axis < 0:
        axis += len(shape)
    return [_reshape(inputs[0], (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))]


def _op_reshape(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    if len(inputs) > 1 and inputs[1] is not None:
        spec = _constant_input(node, inputs[1], "target shape")
    else:  # opsets 1-4: the target shape is an attribute
        spec = node.attr("shape")
        if spec is None:
            raise ModelLoadError(f"{node.where()} has no target shape")
    return [_reshape(inputs[0], _reshape_target(node, _shape_of(inputs[0]), np.ravel(spec)))]


def _axes(node: _Node, inputs: Inputs) -> list[int] | None:
    """Axes of Squeeze/Unsqueeze: an input from opset 13, an attribute before."""
    if len(inputs) > 1 and inputs[1] is not None:
        return [int(a) for a in np.ravel(_constant_input(node, inputs[1], "axes"))]
    axes = node.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def _op_squeeze(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    shape = _shape_of(inputs[0])
    axes = _axes(node, inputs)
    if axes is None:
        drop = [i for i, d in enumerate(shape) if d == 1]
    else:
        drop = _normalise_axes(node, axes, len(shape))
        if any(shape[i] != 1 for i in drop):
            raise ShapeMismatchError(f"{node.where()}: cannot squeeze axes {axes} of shape {shape} (size is not 1)")
    return [_reshape(inputs[0], [d for i, d in enumerate(shape) if i not in drop])]


def _op_unsqueeze(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    shape = _shape_of(inputs[0])
    axes = _axes(node, inputs)
    if axes is None:
        raise ModelLoadError(f"{node.where()} has no axes")
    rank = len(shape) + len(axes)
    positions = set(_normalise_axes(node, axes, rank))
    dims = iter(shape)
    return [_reshape(inputs[0], [1 if i in positions else next(dims) for i in range(rank)])]


def _op_transpose(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    rank = len(_shape_of(inputs[0]))
    perm = node.attr("perm") or list(reversed(range(rank)))
    return [_transpose(inputs[0], perm)]


def _op_identity(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    return [inputs[0]]


def _op_dropout(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    training = inputs[2] if len(inputs) > 2 else None
    if training is not None and bool(np.any(_constant_input(node, training, "training_mode"))):
        raise UnsupportedOperatorError(f"{node.where()} is in training mode; export the model in inference mode")
    return [inputs[0], np.ones(_shape_of(inputs[0]), dtype=bool)]


def _op_cast(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    to = node.attr("to")
    if to is None:
        raise ModelLoadError(f"{node.where()} has no 'to' attribute (the target type)")
    try:
        dtype = helper.tensor_dtype_to_np_dtype(int(to))
    except KeyError:
        raise ModelLoadError(f"{node.where()}: 'to' = {to} is not an ONNX tensor type") from None
    if not isinstance(inputs[0], _Affine):
        return [np.asarray(inputs[0]).astype(dtype)]
    if not np.issubdtype(dtype, np.floating):
        raise UnsupportedOperatorError(
            f"{node.where()} casts an input-dependent tensor to {dtype}; only float casts are supported"
        )
    return [inputs[0]]


def _op_shape(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    shape = _shape_of(inputs[0])
    start, end = node.attr("start", 0), node.attr("end")
    return [np.array(shape[start:end], dtype=np.int64)]


def _op_constant(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    for attribute in node.proto.attribute:
        if attribute.name == "value":
            return [numpy_helper.to_array(attribute.t)]
        if attribute.name in ("value_float", "value_floats"):
            return [np.array(helper.get_attribute_value(attribute), dtype=np.float32)]
        if attribute.name in ("value_int", "value_ints"):
            return [np.array(helper.get_attribute_value(attribute), dtype=np.int64)]
    return cv.fold(node, inputs)  # sparse or string constants


def _op_batchnorm(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    """Inference BatchNormalization: ``(x - mean) / sqrt(var + eps) * scale + B`` per channel."""
    if node.attr("training_mode", 0):
        raise UnsupportedOperatorError(
            f"{node.where()} has training_mode=1: it normalises with the statistics of each "
            "batch, which is not a fixed affine map; export the model in inference (eval) mode"
        )
    x = inputs[0]
    shape = _shape_of(x)
    if len(shape) < 2:
        raise ShapeMismatchError(f"{node.where()}: input must be (N, C, ...), got shape {shape}")
    channel_shape = (shape[1],) + (1,) * (len(shape) - 2)
    params = []
    for what, value in zip(("scale", "B", "mean", "var"), inputs[1:5]):
        array = _as_float(_constant_input(node, value, what))
        if array.ndim == 1:  # per channel (or the per-activation shape of spatial=0)
            array = array.reshape(channel_shape) if array.size == shape[1] else array
        try:
            np.broadcast_shapes(array.shape, shape[1:])
        except ValueError:
            raise ShapeMismatchError(
                f"{node.where()}: {what} has shape {np.shape(value)}, which does not fit an input of shape {shape}"
            ) from None
        params.append(array)
    scale, bias, mean, var = params
    epsilon = float(node.attr("epsilon", 1e-5))
    if np.any(var + epsilon <= 0):
        raise InvalidNetworkError(f"{node.where()}: var + epsilon is not positive")
    factor = scale / np.sqrt(var + epsilon)
    result = _add(node, _mul(node, x, factor), bias - mean * factor)
    extra = [inputs[3], inputs[4]][: max(len(node.proto.output) - 1, 0)]
    return [result, *extra]


def _op_relu(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    if not isinstance(inputs[0], _Affine):
        return [np.maximum(inputs[0], 0)]
    return [cv.emit_activation(node, inputs[0], "relu")]


def _op_leaky_relu(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    if not isinstance(inputs[0], _Affine):
        return cv.fold(node, inputs)
    return [cv.emit_activation(node, inputs[0], "leaky_relu", alpha=float(node.attr("alpha", 0.01)))]


def _op_prelu(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    x = inputs[0]
    if not isinstance(x, _Affine):
        return cv.fold(node, inputs)
    slope = _constant_input(node, inputs[1], "slope")
    if slope is None:
        raise UnsupportedOperatorError(f"{node.where()}: the slope must be a constant")
    try:
        alpha = np.broadcast_to(_as_float(slope), x.shape)
    except ValueError:
        raise ShapeMismatchError(
            f"{node.where()}: slope of shape {np.shape(slope)} does not broadcast to {x.shape}"
        ) from None
    return [cv.emit_activation(node, x, "leaky_relu", alpha=alpha.reshape(-1))]


def _op_clip(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    x = inputs[0]
    if not isinstance(x, _Affine):
        return cv.fold(node, inputs)
    if node.opset < 11:
        low, high = node.attr("min", -np.inf), node.attr("max", np.inf)
    else:
        sides = [
            None if len(inputs) <= k or inputs[k] is None else _constant_input(node, inputs[k], name)
            for k, name in ((1, "min"), (2, "max"))
        ]
        if any(len(inputs) > k and inputs[k] is not None and side is None for k, side in zip((1, 2), sides)):
            raise UnsupportedOperatorError(f"{node.where()}: min and max must be constants")
        low = -np.inf if sides[0] is None else float(np.asarray(sides[0]).reshape(-1)[0])
        high = np.inf if sides[1] is None else float(np.asarray(sides[1]).reshape(-1)[0])
    low, high = _finite_or_inf(float(low)), _finite_or_inf(float(high))
    if low > high:
        raise InvalidNetworkError(f"{node.where()}: min {low} > max {high}")
    return [cv.emit_activation(node, x, "clip", clip_low=low, clip_high=high)]


def _finite_or_inf(value: float) -> float:
    """float32's extreme values (the defaults of old Clip) mean no bound."""
    if abs(value) >= float(np.finfo(np.float32).max):
        return float(np.sign(value) * np.inf)
    return value


def _op_hard_sigmoid(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    x = inputs[0]
    if not isinstance(x, _Affine):
        return cv.fold(node, inputs)
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    scaled = x.with_stack(x.stack * alpha)
    scaled.stack[0] += beta
    return [cv.emit_activation(node, scaled, "clip", clip_low=0.0, clip_high=1.0)]


def _smooth_handler(kind: str) -> Handler:
    def handler(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
        if not isinstance(inputs[0], _Affine):
            return cv.fold(node, inputs)
        return [cv.emit_activation(node, inputs[0], kind)]

    return handler


# ------------------------------------------------------- convolution and pooling
def _check_dense_size(node: _Node, rows: int, out_shape: Sequence[int]) -> None:
    entries = (rows - 1) * int(np.prod(out_shape))
    if entries > MAX_DENSE_ENTRIES:
        raise UnsupportedOperatorError(
            f"{node.where()} would produce a dense affine map with {entries:.3g} coefficients "
            f"({rows - 1} basis entries x {int(np.prod(out_shape))} outputs, more than "
            f"MAX_DENSE_ENTRIES={MAX_DENSE_ENTRIES:.3g}); convolutional layers are stored as "
            "dense matrices for now (sparse convolution layers are planned): use a smaller "
            "input or fewer channels"
        )


def _int_list(node: _Node, name: str, default: Sequence[int], length: int) -> list[int]:
    value = node.attr(name)
    values = [int(v) for v in (default if value is None else value)]
    if len(values) != length:
        raise ShapeMismatchError(f"{node.where()}: attribute {name}={values} should have {length} entries")
    return values


def _window_geometry(
    node: _Node, spatial: Sequence[int], kernel: Sequence[int], *, ceil_mode: bool = False
) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """``(strides, dilations, pad_begin, pad_end, out)`` of a sliding-window node.

    ``pad_end`` includes, for ``ceil_mode``, the extra zeros read by the last window.
    """
    dims = len(spatial)
    strides = _int_list(node, "strides", [1] * dims, dims)
    dilations = _int_list(node, "dilations", [1] * dims, dims)
    if any(v < 1 for v in strides + dilations + list(kernel)):
        raise ShapeMismatchError(
            f"{node.where()}: kernel {list(kernel)}, strides {strides} and dilations {dilations} must be positive"
        )
    auto_pad = node.attr("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad in ("NOTSET", ""):
        pads = _int_list(node, "pads", [0] * 2 * dims, 2 * dims)
        begin, end = pads[:dims], pads[dims:]
    elif auto_pad == "VALID":
        begin, end = [0] * dims, [0] * dims
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, stride, extent in zip(spatial, strides, span):
            out = -(-size // stride)
            total = max(0, (out - 1) * stride + extent - size)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
    else:
        raise ModelLoadError(f"{node.where()}: unknown auto_pad {auto_pad!r}")
    if any(p < 0 for p in begin + end):
        raise ShapeMismatchError(f"{node.where()}: negative pads {begin + end}")
    out_shape, end_total = [], []
    for size, stride, extent, b, e in zip(spatial, strides, span, begin, end):
        room = size + b + e - extent
        if room < 0:
            raise ShapeMismatchError(
                f"{node.where()}: the window (extent {extent}) is larger than the padded "
                f"input (size {size + b + e}) along a spatial axis"
            )
        count = room // stride + 1
        if ceil_mode and auto_pad in ("NOTSET", ""):
            count = -(-room // stride) + 1
            if (count - 1) * stride >= size + b:  # the last window must start inside
                count -= 1
        out_shape.append(count)
        end_total.append(max(e, (count - 1) * stride + extent - size - b))
    return strides, dilations, begin, end_total, out_shape


def _window_sums(
    data: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    out_shape: Sequence[int],
    weights: np.ndarray | None = None,
    groups: int = 1,
) -> np.ndarray:
    """Sliding-window sums of ``data`` (already padded), shape ``(R, C, *spatial)``.

    Without ``weights``: per-channel window sums, shape ``(R, C, *out)``.  With ``weights``
    of shape ``(M, C // groups, *kernel)``: the grouped convolution, shape
    ``(R, M, *out)``.  Loops only over the kernel offsets; each step is one vectorised
    contraction over all rows (basis columns), channels and output positions.
    """
    import itertools

    rows, channels = data.shape[:2]
    if weights is None:
        result = np.zeros((rows, channels, *out_shape))
    else:
        maps = weights.shape[0]
        per_group_in, per_group_out = channels // groups, maps // groups
        grouped_w = weights.reshape(groups, per_group_out, per_group_in, *kernel)
        result = np.zeros((rows, groups, per_group_out, *out_shape))
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = tuple(
            slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(offset, dilations, strides, out_shape)
        )
        window = data[(slice(None), slice(None)) + index]
        if weights is None:
            result += window
        else:
            window = window.reshape(rows, groups, per_group_in, -1)
            w = grouped_w[(Ellipsis,) + offset]  # (groups, out per group, in per group)
            result += np.matmul(w, window).reshape(result.shape)  # (R, G, M/G, positions)
    return result.reshape(rows, -1, *out_shape)


def _spatial_shape(node: _Node, value: _Affine) -> tuple[int, int, tuple[int, ...]]:
    """``(rows, channels, spatial)`` of an ``(1, C, *spatial)`` tensor, without densifying it."""
    shape = value.shape
    if len(shape) < 3:
        raise ShapeMismatchError(f"{node.where()}: input must be (N, C, D1, ...), got shape {shape}")
    if shape[0] != 1:
        raise ShapeMismatchError(
            f"{node.where()}: batch dimension of the input is {shape[0]}; only batch size 1 "
            "(or a symbolic batch) is supported"
        )
    rows = value.rows()[0].shape[1] + 1
    return rows, int(shape[1]), tuple(int(d) for d in shape[2:])


def _conv_operator(
    weights: np.ndarray,
    channels: int,
    spatial: Sequence[int],
    groups: int,
    strides: Sequence[int],
    dilations: Sequence[int],
    begin: Sequence[int],
    out: Sequence[int],
) -> Any:
    """The convolution as a CSR matrix ``(maps * prod(out), channels * prod(spatial))``.

    Built from index arithmetic, one kernel offset and input channel at a time: never a
    dense matrix.  Positions in the padding contribute nothing.
    """
    import itertools

    maps, per_in = weights.shape[0], weights.shape[1]
    per_out = maps // groups
    grid = np.indices(out).reshape(len(out), -1)
    positions, in_size = grid.shape[1], int(np.prod(spatial))
    maps_index = np.arange(maps)
    rows, cols, values = [], [], []
    for offset in itertools.product(*(range(k) for k in weights.shape[2:])):
        coords = (
            grid * np.asarray(strides)[:, None]
            + (np.asarray(offset) * np.asarray(dilations) - np.asarray(begin))[:, None]
        )
        valid = np.all((coords >= 0) & (coords < np.asarray(spatial)[:, None]), axis=0)
        if not valid.any():
            continue
        flat_in = np.ravel_multi_index(tuple(coords[:, valid]), tuple(spatial))
        where = np.flatnonzero(valid)
        for ci in range(per_in):
            channel = (maps_index // per_out) * per_in + ci
            w = weights[(maps_index, ci) + offset]
            keep = w != 0
            rows.append((maps_index[keep, None] * positions + where[None, :]).ravel())
            cols.append((channel[keep, None] * in_size + flat_in[None, :]).ravel())
            values.append(np.repeat(w[keep], where.size))
    cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
    return sp.csr_array(
        (cat(values, float), (cat(rows, np.int64), cat(cols, np.int64))), shape=(maps * positions, channels * in_size)
    )


def _pool_operator(members: np.ndarray, divisor: np.ndarray, n_inputs: int) -> Any:
    """Average pooling as a CSR matrix: row ``r`` averages ``members[r]`` (``-1`` = padding) by ``divisor[r]``."""
    valid = members >= 0
    rows = np.repeat(np.arange(members.shape[0]), valid.sum(axis=1))
    values = np.repeat(1.0 / divisor, valid.sum(axis=1))
    return sp.csr_array((values, (rows, members[valid])), shape=(members.shape[0], n_inputs))


def _spatial_input(node: _Node, value: _Affine, what: str = "input") -> np.ndarray:
    """The stack of an ``(1, C, *spatial)`` tensor as ``(R, C, *spatial)``."""
    shape = value.shape
    if len(shape) < 3:
        raise ShapeMismatchError(f"{node.where()}: {what} must be (N, C, D1, ...), got shape {shape}")
    if shape[0] != 1:
        raise ShapeMismatchError(
            f"{node.where()}: batch dimension of the {what} is {shape[0]}; only batch size 1 "
            "(or a symbolic batch) is supported"
        )
    return value.stack[:, 0]


def _pad(data: np.ndarray, begin: Sequence[int], end: Sequence[int]) -> np.ndarray:
    if not any(begin) and not any(end):
        return data
    return np.pad(data, [(0, 0), (0, 0)] + [(int(b), int(e)) for b, e in zip(begin, end)])


def _op_conv(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    x = inputs[0]
    if not isinstance(x, _Affine):
        return cv.fold(node, inputs)
    weights = _as_float(_constant_input(node, inputs[1], "weight W"))
    bias = inputs[2] if len(inputs) > 2 else None
    bias = None if bias is None else _as_float(_constant_input(node, bias, "bias B"))
    rows, channels, spatial = _spatial_shape(node, x)
    groups = int(node.attr("group", 1))
    if weights.ndim != len(spatial) + 2:
        raise ShapeMismatchError(
            f"{node.where()}: weight W of shape {weights.shape} does not fit an input of shape {x.shape}"
        )
    maps, kernel = weights.shape[0], tuple(weights.shape[2:])
    declared = node.attr("kernel_shape")
    if declared is not None and tuple(int(k) for k in declared) != kernel:
        raise ShapeMismatchError(
            f"{node.where()}: kernel_shape {list(declared)} differs from the weight shape {weights.shape}"
        )
    if groups < 1 or channels % groups or maps % groups or weights.shape[1] * groups != channels:
        raise ShapeMismatchError(
            f"{node.where()}: input with {channels} channels, weight W of shape "
            f"{weights.shape} and group={groups} do not fit together"
        )
    if bias is not None and bias.shape != (maps,):
        raise ShapeMismatchError(f"{node.where()}: bias B has shape {bias.shape}, expected ({maps},)")
    strides, dilations, begin, end, out = _window_geometry(node, spatial, kernel)
    if x.is_sparse:
        operator = _conv_operator(weights, channels, spatial, groups, strides, dilations, begin, out)
        offset = np.zeros(operator.shape[0]) if bias is None else np.repeat(bias, int(np.prod(out)))
        return [_apply_rows(x, operator, offset, (1, maps, *out))]
    data = x.stack[:, 0]
    _check_dense_size(node, rows, [maps, *out])
    result = _window_sums(_pad(data, begin, end), kernel, strides, dilations, out, weights, groups)
    if bias is not None:
        result[0] += bias.reshape((maps,) + (1,) * len(out))
    return [x.with_stack(result[:, None])]


def _op_average_pool(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    x = inputs[0]
    if not isinstance(x, _Affine):
        return cv.fold(node, inputs)
    rows, channels, spatial = _spatial_shape(node, x)
    kernel = node.attr("kernel_shape")
    if kernel is None:
        raise ModelLoadError(f"{node.where()} has no kernel_shape")
    kernel = [int(k) for k in kernel]
    if len(kernel) != len(spatial):
        raise ShapeMismatchError(f"{node.where()}: kernel_shape {kernel} does not fit an input of shape {x.shape}")
    ceil_mode = bool(node.attr("ceil_mode", 0))
    include_pad = bool(node.attr("count_include_pad", 0))
    strides, dilations, begin, end, out = _window_geometry(node, spatial, kernel, ceil_mode=ceil_mode)
    # the divisor: the window positions inside the input (or inside input + explicit pads
    # with count_include_pad), counted by the same sliding window over an indicator array
    if include_pad:
        explicit = _window_geometry(node, spatial, kernel)[3]  # pads without ceil overhang
        padded = [n + b + e for n, b, e in zip(spatial, begin, explicit)]
        indicator = _pad(np.ones((1, 1, *padded)), [0] * len(end), [e - p for e, p in zip(end, explicit)])
    else:
        indicator = _pad(np.ones((1, 1, *spatial)), begin, end)
    counts = _window_sums(indicator, kernel, strides, dilations, out)[0, 0]
    if np.any(counts == 0):
        raise ShapeMismatchError(f"{node.where()}: a pooling window lies entirely in the padding")
    if x.is_sparse:
        members = _window_members(spatial, channels, kernel, strides, dilations, begin, end, out)
        operator = _pool_operator(members, np.tile(counts.ravel(), channels), channels * int(np.prod(spatial)))
        return [_apply_rows(x, operator, np.zeros(operator.shape[0]), (1, channels, *out))]
    data = x.stack[:, 0]
    _check_dense_size(node, rows, [channels, *out])
    sums = _window_sums(_pad(data, begin, end), kernel, strides, dilations, out)
    return [x.with_stack((sums / counts)[:, None])]


def _global_window(node: _Node, x: _Affine) -> tuple[int, tuple[int, ...], np.ndarray]:
    """``(channels, spatial, members)`` of a global pooling: one window per channel, all of it."""
    _, channels, spatial = _spatial_shape(node, x)
    size = int(np.prod(spatial))
    return channels, spatial, np.arange(channels * size).reshape(channels, size)


def _op_global_average_pool(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    x = inputs[0]
    if not isinstance(x, _Affine):
        return cv.fold(node, inputs)
    channels, spatial, members = _global_window(node, x)
    if x.is_sparse:
        operator = _pool_operator(members, np.full(channels, float(members.shape[1])), members.size)
        return [_apply_rows(x, operator, np.zeros(channels), (1, channels) + (1,) * len(spatial))]
    data = x.stack[:, 0]
    axes = tuple(range(2, data.ndim))
    return [x.with_stack(data.mean(axis=axes, keepdims=True)[:, None])]


def _op_concat(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    values = [v for v in inputs if v is not None]
    if not any(isinstance(v, _Affine) for v in values):
        return cv.fold(node, inputs)
    shapes = [_shape_of(v) for v in values]
    rank = len(shapes[0])
    if rank == 0 or any(len(s) != rank for s in shapes):
        raise ShapeMismatchError(f"{node.where()}: cannot concatenate shapes {shapes}")
    axis = node.attr("axis")
    if axis is None:
        raise ModelLoadError(f"{node.where()} has no axis")
    axis = _normalise_axes(node, [int(axis)], rank)[0]
    if any(s[:axis] + s[axis + 1 :] != shapes[0][:axis] + shapes[0][axis + 1 :] for s in shapes):
        raise ShapeMismatchError(f"{node.where()}: cannot concatenate shapes {shapes} along axis {axis}")
    affine = next(v for v in values if isinstance(v, _Affine))
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    if any(isinstance(v, _Affine) and v.is_sparse for v in values):
        return [_sparse_concat(affine, values, shapes, axis, out_shape)]
    rows = affine.stack.shape[0]
    _check_dense_size(node, rows, out_shape)
    stacks = []
    for value in values:
        if isinstance(value, _Affine):
            stacks.append(value.stack)
        else:
            stack = np.zeros((rows, *np.shape(value)))
            stack[0] = _as_float(value)
            stacks.append(stack)
    return [affine.with_stack(np.concatenate(stacks, axis=axis + 1))]


def _sparse_concat(affine: _Affine, values: list, shapes: list, axis: int, out_shape: list) -> _Affine:
    """Concat as a row permutation of the stacked parts (constants are rows without coefficients)."""
    n_basis = affine.rows()[0].shape[1]
    blocks, consts, ids, offset = [], [], [], 0
    for value, shape in zip(values, shapes):
        size = int(np.prod(shape))
        if isinstance(value, _Affine):
            matrix, const = value.rows()
            blocks.append(sp.csr_array(matrix))
            consts.append(const)
        else:
            blocks.append(sp.csr_array((size, n_basis)))
            consts.append(np.broadcast_to(_as_float(value), shape).ravel())
        ids.append(offset + np.arange(size).reshape(shape))
        offset += size
    order = np.concatenate(ids, axis=axis).ravel()
    return affine.with_rows(sp.csr_array(sp.vstack(blocks))[order], np.concatenate(consts)[order], out_shape)


def _window_members(
    spatial: Sequence[int],
    channels: int,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    begin: Sequence[int],
    end: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:
    """``(C * prod(out), K)``: flat input index of every window entry, ``-1`` in the padding."""
    import itertools

    index = np.arange(channels * int(np.prod(spatial))).reshape(channels, *spatial)
    padded = np.pad(index, [(0, 0)] + [(int(b), int(e)) for b, e in zip(begin, end)], constant_values=-1)
    entries = []
    for offset in itertools.product(*(range(k) for k in kernel)):
        where = tuple(slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(offset, dilations, strides, out))
        entries.append(padded[(slice(None),) + where].reshape(-1))
    return np.stack(entries, axis=1)


def _op_max_pool(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    x = inputs[0]
    if not isinstance(x, _Affine):
        return cv.fold(node, inputs)
    if len(node.proto.output) > 1 and node.proto.output[1]:
        raise UnsupportedOperatorError(f"{node.where()}: the Indices output of MaxPool is not supported")
    _, channels, spatial = _spatial_shape(node, x)
    kernel = [int(k) for k in (node.attr("kernel_shape") or [])]
    if len(kernel) != len(spatial):
        raise ShapeMismatchError(f"{node.where()}: kernel_shape {kernel} does not fit an input of shape {x.shape}")
    strides, dilations, begin, end, out = _window_geometry(
        node, spatial, kernel, ceil_mode=bool(node.attr("ceil_mode", 0))
    )
    members = _window_members(spatial, channels, kernel, strides, dilations, begin, end, out)
    return [cv.emit_max(node, x, members, (1, channels, *out))]


def _op_global_max_pool(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    x = inputs[0]
    if not isinstance(x, _Affine):
        return cv.fold(node, inputs)
    channels, spatial, members = _global_window(node, x)
    return [cv.emit_max(node, x, members, (1, channels) + (1,) * len(spatial))]


_HANDLERS: dict[str, Handler] = {
    "AveragePool": _op_average_pool,
    "Concat": _op_concat,
    "Conv": _op_conv,
    "GlobalAveragePool": _op_global_average_pool,
    "MaxPool": _op_max_pool,
    "GlobalMaxPool": _op_global_max_pool,
    "LeakyRelu": _op_leaky_relu,
    "PRelu": _op_prelu,
    "Clip": _op_clip,
    "HardSigmoid": _op_hard_sigmoid,
    "Sigmoid": _smooth_handler("sigmoid"),
    "Tanh": _smooth_handler("tanh"),
    "Softplus": _smooth_handler("softplus"),
    "Add": _op_add,
    "BatchNormalization": _op_batchnorm,
    "Cast": _op_cast,
    "Constant": _op_constant,
    "Div": _op_div,
    "Dropout": _op_dropout,
    "Flatten": _op_flatten,
    "Gemm": _op_gemm,
    "Identity": _op_identity,
    "MatMul": _op_matmul,
    "Mul": _op_mul,
    "Neg": _op_neg,
    "Relu": _op_relu,
    "Reshape": _op_reshape,
    "Shape": _op_shape,
    "Squeeze": _op_squeeze,
    "Sub": _op_sub,
    "Transpose": _op_transpose,
    "Unsqueeze": _op_unsqueeze,
}

from pyomo_relu.io.onnx_step import STEP_HANDLERS  # noqa: E402  (needs the names above)

_HANDLERS.update(STEP_HANDLERS)

_REQUIRED_INPUTS = {
    "Constant": 0,
    "Add": 2,
    "Sub": 2,
    "Mul": 2,
    "Div": 2,
    "MatMul": 2,
    "Gemm": 2,
    "BatchNormalization": 5,
    "Conv": 2,
    "PRelu": 2,
    "Where": 3,
    "GreaterOrEqual": 2,
    "Greater": 2,
    "LessOrEqual": 2,
    "Less": 2,
}

#: Operators accepted on input-dependent tensors (Softmax/LogSoftmax only at the output).
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(_HANDLERS)) + tuple(
    f"{op} (last node, with drop_softmax=True)" for op in _SOFTMAX_OPS
)


def _unsupported(node: _Node) -> UnsupportedOperatorError:
    return UnsupportedOperatorError(
        f"{node.where()} is not supported; supported ops: {', '.join(SUPPORTED_OPS)}; "
        "other ops only when all their inputs are constant"
    )


# ------------------------------------------------------------------- converter
class _GraphConverter:
    """Walks one ONNX graph and collects the DenseLayers."""

    def __init__(self, model: onnx.ModelProto, source: str, drop_softmax: bool) -> None:
        self.graph = model.graph
        self.source = source
        self.drop_softmax = drop_softmax
        self.opset = _default_opset(model, source)
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.input_info = _single_input(self.graph, self.initializers, source)
        self.output_name = _single_output(self.graph, source)
        self.input_shape = _static_input_shape(self.input_info)
        if int(np.prod(self.input_shape, dtype=float)) > MAX_INPUT_SIZE:
            raise ShapeMismatchError(
                f"graph input {self.input_info.name!r} of {source!r} has shape {self.input_shape}, more than "
                f"MAX_INPUT_SIZE = {MAX_INPUT_SIZE} entries; is the shape in the file right?"
            )
        self.values: dict[str, Value] = {}
        self.producer_label: dict[str, str] = {}
        self.layers: list[Layer] = []
        self.last_use: dict[str, float] = {}
        self.position = 0
        self.basis = 0
        self.basis_size = int(np.prod(self.input_shape))
        self.basis_label = "the network input"

    # ------------------------------------------------------------------ public
    def convert(self) -> list[Layer]:
        self.values[self.input_info.name] = self._identity_affine(self.input_shape)
        nodes = self._ordered_nodes()
        self.last_use = _last_uses(nodes, self.output_name)
        for position, node in enumerate(nodes):
            self.position = position
            inputs = [self._read(node, name) if name else None for name in node.proto.input]
            outputs = self._evaluate(node, inputs)
            _check_finite(node, [v for v in outputs if v is not None])
            for name, value in zip(node.proto.output, outputs):
                if name:
                    self.values[name] = value
                    self.producer_label[name] = node.label
        self._finish()
        return self.layers

    def emit_layer(self, value: _Affine, activation: str, name: str, new_basis: bool) -> _Affine:
        """Append ``activation(A @ basis + c)`` (the final linear layer: ``new_basis=False``)."""
        weights, bias = value.rows()
        self.layers.append(DenseLayer(_layer_weights(weights), bias, activation, name))
        logger.debug("layer %s: %d -> %d, %s", name, weights.shape[1], bias.size, activation)
        return value

    def emit_activation(
        self,
        node: _Node,
        value: _Affine,
        kind: str,
        *,
        alpha: object = None,
        clip_low: float = -np.inf,
        clip_high: float = np.inf,
    ) -> _Affine:
        """Append ``kind(value)`` as a layer and make its output the new basis.

        Tensors of the current basis that later nodes still read (skip and residual
        connections) are carried through the layer as linear neurons, so the network stays a
        chain of layers while the graph is a DAG.
        """
        live = self._live(node)
        parts = [value] + [tensor for tensor, _ in live]
        blocks = [part.rows() for part in parts]
        weights = _layer_weights(_stack_rows([w for w, _ in blocks]))
        bias = np.concatenate([b for _, b in blocks])
        n_act, n = _size(value), bias.size
        kinds = [kind] * n_act + ["linear"] * (n - n_act)
        alphas = np.zeros(n)
        alphas[:n_act] = 0.0 if alpha is None else alpha
        lows, highs = np.full(n, -np.inf), np.full(n, np.inf)
        lows[:n_act], highs[:n_act] = clip_low, clip_high
        layer = DenseLayer(
            weights,
            bias,
            tuple(kinds) if live else kind,
            node.label,
            alphas if kind == "leaky_relu" else None,
            lows,
            highs,
        )
        return self._start_basis(node, layer, [value.shape] + [t.shape for t, _ in live], live)

    def emit_max(self, node: _Node, value: _Affine, members: np.ndarray, shape: tuple[int, ...]) -> _Affine:
        """Append a :class:`MaxLayer`: output ``g`` is the max of ``value`` over ``members[g]``."""
        valid = members >= 0
        if not valid.any(axis=1).all():
            raise ShapeMismatchError(f"{node.where()}: a pooling window lies entirely in the padding")
        weights, bias = value.rows()
        groups = np.repeat(np.arange(members.shape[0]), valid.sum(axis=1))
        rows = members[valid]
        live = self._live(node)
        extra = [tensor.rows() for tensor, _ in live]
        first = members.shape[0]
        sizes = [w.shape[0] for w, _ in extra]
        groups = np.concatenate([groups, first + np.arange(sum(sizes), dtype=np.int64)])
        layer = MaxLayer(
            _layer_weights(_stack_rows([weights[rows]] + [w for w, _ in extra])),
            np.concatenate([bias[rows]] + [b for _, b in extra]),
            groups,
            node.label,
        )
        return self._start_basis(node, layer, [shape] + [t.shape for t, _ in live], live)

    def _live(self, node: _Node) -> list[tuple[_Affine, list[str]]]:
        """Tensors of the current basis that nodes after ``node`` (or the output) still read."""
        own = set(node.proto.output)
        groups: dict[int, tuple[_Affine, list[str]]] = {}
        for name, value in self.values.items():
            if (
                isinstance(value, _Affine)
                and value.basis == self.basis
                and name not in own
                and self.last_use.get(name, -1) > self.position
            ):
                groups.setdefault(id(value), (value, []))[1].append(name)
        return list(groups.values())

    def _start_basis(
        self, node: _Node, layer: Layer, shapes: list[tuple[int, ...]], live: list[tuple[_Affine, list[str]]]
    ) -> _Affine:
        """Append ``layer``; its outputs become the basis, split into the node's output and the carried tensors."""
        self.layers.append(layer)
        self.basis += 1
        self.basis_size = layer.n_outputs
        self.basis_label = f"node {node.label!r}"
        logger.debug(
            "layer %s: %d -> %d (%d carried)",
            node.label,
            layer.n_inputs,
            layer.n_outputs,
            sum(_size(t) for t, _ in live),
        )
        offset = 0
        pieces = []
        for shape in shapes:
            size = int(np.prod(shape))
            select = sp.csr_array(
                (np.ones(size), (np.arange(size), offset + np.arange(size))), shape=(size, self.basis_size)
            )
            pieces.append(_Affine.sparse(select, np.zeros(size), shape, self.basis))
            offset += size
        for piece, (_, names) in zip(pieces[1:], live):
            for name in names:
                self.values[name] = piece
        return pieces[0]

    def fold(self, node: _Node, inputs: Inputs) -> Inputs:
        """Evaluate a node whose inputs are all constant with onnx's reference runtime."""
        from onnx.reference import ReferenceEvaluator

        feeds = {name: value for name, value in zip(node.proto.input, inputs) if name}
        try:
            evaluator = ReferenceEvaluator(node.proto, opsets={"": node.opset})
            results = evaluator.run(None, feeds)
        except Exception as exc:  # the reference runtime raises many types
            raise UnsupportedOperatorError(
                f"{node.where()} has only constant inputs but could not be constant-folded "
                f"({type(exc).__name__}: {exc}); supported ops: {', '.join(SUPPORTED_OPS)}"
            ) from exc
        arrays = [np.asarray(r) for r in results]
        if len(arrays) == len(node.proto.output):
            return arrays
        outputs = iter(arrays)  # results only for the outputs that are named
        return [next(outputs) if name else None for name in node.proto.output]

    # ----------------------------------------------------------------- private
    def _identity_affine(self, shape: tuple[int, ...]) -> _Affine:
        size = int(np.prod(shape))
        return _Affine.sparse(sp.eye_array(size, format="csr"), np.zeros(size), shape, self.basis)

    def _evaluate(self, node: _Node, inputs: Inputs) -> Inputs:
        if node.proto.domain not in _DEFAULT_DOMAINS:
            raise UnsupportedOperatorError(
                f"{node.where()} is in domain {node.proto.domain!r}; only the default ONNX "
                f"domain is supported; supported ops: {', '.join(SUPPORTED_OPS)}"
            )
        if node.op in _HANDLERS:
            required = _REQUIRED_INPUTS.get(node.op, 1)
            if len(inputs) < required or any(v is None for v in inputs[:required]):
                raise ModelLoadError(
                    f"{node.where()} in {self.source!r} needs {required} input(s), got {list(node.proto.input)}"
                )
            try:
                return _HANDLERS[node.op](self, node, inputs)
            except _DenseTooLarge as exc:
                raise UnsupportedOperatorError(f"{node.where()}: {exc}") from None
            except PyomoReluError:
                raise
            except (
                ValueError,
                TypeError,
                IndexError,
                KeyError,
                ZeroDivisionError,
                OverflowError,
                StopIteration,
                MemoryError,
            ) as exc:  # attribute values or shapes outside what the operator allows
                raise ModelLoadError(
                    f"{node.where()} in {self.source!r} cannot be read: its attributes or input shapes "
                    f"are invalid for this operator ({type(exc).__name__}: {exc}); check the node in the "
                    "exported model"
                ) from None
        if node.op in _SOFTMAX_OPS and isinstance(inputs[0], _Affine):
            return self._softmax(node, inputs)
        if all(not isinstance(v, _Affine) for v in inputs):
            return self.fold(node, inputs)
        raise _unsupported(node)

    def _softmax(self, node: _Node, inputs: Inputs) -> Inputs:
        if node.proto.output[0] != self.output_name:
            raise UnsupportedOperatorError(
                f"{node.where()} is not piecewise linear; it can only be dropped (with "
                "drop_softmax=True) when it is the last node of the graph, but here its output "
                "feeds other nodes"
            )
        if not self.drop_softmax:
            raise UnsupportedOperatorError(
                f"{node.where()} at the network output is not piecewise linear and cannot be "
                "embedded in a MILP; pass drop_softmax=True to drop it, the network outputs are "
                "then the logits it receives (same argmax)"
            )
        logger.info("dropping %s at the output of %s", node.where(), self.source)
        return [inputs[0]]

    def _read(self, node: _Node, name: str) -> Value:
        if name not in self.values:
            if name not in self.initializers:
                raise ModelLoadError(
                    f"{node.where()} in {self.source!r} reads tensor {name!r}, which no node, "
                    "initializer or graph input provides"
                )
            self.values[name] = self._initializer(name)
        value = self.values[name]
        if isinstance(value, _Affine) and value.basis != self.basis:
            raise UnsupportedOperatorError(
                f"{node.where()} reads tensor {name!r}, computed before {self.basis_label}; "
                "skip/residual connections around a ReLU are not supported"
            )
        return value

    def _initializer(self, name: str) -> np.ndarray:
        try:
            array = numpy_helper.to_array(self.initializers[name])
        except Exception as exc:
            raise ModelLoadError(f"cannot read initializer {name!r} of {self.source!r}: {exc}") from exc
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise InvalidNetworkError(
                f"ONNX initializer {name!r} in {self.source!r} contains NaN or Inf; "
                "check the exported model or the training run"
            )
        return array

    def _ordered_nodes(self) -> list[_Node]:
        """The nodes the output depends on, in topological order (ties by file order)."""
        nodes = list(self.graph.node)
        producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
        needed: set[int] = set()
        pending = [self.output_name]
        while pending:
            index = producer.get(pending.pop())
            if index is not None and index not in needed:
                needed.add(index)
                pending.extend(name for name in nodes[index].input if name)
        deps = {i: {producer[n] for n in nodes[i].input if n in producer and producer[n] != i} for i in needed}
        users: dict[int, list[int]] = {i: [] for i in needed}
        for i, before in deps.items():
            for j in before:
                users[j].append(i)
        ready = [i for i in needed if not deps[i]]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for j in users[i]:
                deps[j].discard(i)
                if not deps[j]:
                    heapq.heappush(ready, j)
        if len(order) != len(needed):
            raise ModelLoadError(f"the graph of {self.source!r} has a cycle")
        skipped = len(nodes) - len(order)
        if skipped:
            logger.debug("%d node(s) do not feed the output and are ignored", skipped)
        return [_Node(nodes[i], nodes[i].name or f"{nodes[i].op_type}_{i}", self.opset) for i in order]

    def _finish(self) -> None:
        """Turn what is left at the graph output into a final linear layer if needed."""
        name = self.output_name
        if name not in self.values and name in self.initializers:
            self.values[name] = self._initializer(name)
        value = self.values.get(name)
        if value is None:
            raise ModelLoadError(f"no node of {self.source!r} produces the output {name!r}")
        label = self.producer_label.get(name, name)
        if not isinstance(value, _Affine):
            logger.warning("the output %r of %s does not depend on the input", name, self.source)
            constant = _as_float(value)
            zeros = np.zeros((self.basis_size, *constant.shape))
            value = _Affine(np.concatenate([constant[None], zeros]), self.basis)
        if value.basis != self.basis:
            raise UnsupportedOperatorError(
                f"the output {name!r} was computed before {self.basis_label}; "
                "skip/residual connections around a ReLU are not supported"
            )
        if not self.layers or not _is_identity(value):
            self.emit_layer(value, "linear", label, new_basis=False)


def _stack_rows(parts: Sequence[Any]) -> Any:
    """Row blocks stacked; CSR when any block is sparse."""
    if any(sp.issparse(p) for p in parts):
        return sp.csr_array(sp.vstack([sp.csr_array(p) for p in parts]))
    return np.concatenate(parts)


def _layer_weights(weights: Any) -> Any:
    """CSR weights stay sparse when sparse enough to be worth it (see :mod:`pyomo_relu.sparse`)."""
    return as_weights(weights) if sp.issparse(weights) else weights


def _size(value: _Affine) -> int:
    return int(np.prod(value.shape))


def _last_uses(nodes: Sequence[_Node], output: str) -> dict[str, float]:
    """Position of the last node reading each tensor (``inf`` for the graph output)."""
    last: dict[str, float] = {}
    for position, node in enumerate(nodes):
        for name in node.proto.input:
            if name:
                last[name] = position
    last[output] = np.inf
    return last


def _is_identity(value: _Affine) -> bool:
    size = int(np.prod(value.shape))
    if value.is_sparse:
        matrix, const = value.rows()
        return (
            matrix.shape == (size, size)
            and matrix.nnz == size
            and not np.any(const)
            and bool(np.all(matrix.diagonal() == 1.0))
        )
    if value.stack.shape[0] != size + 1 or np.any(value.stack[0]):
        return False
    return bool(np.array_equal(value.stack[1:].reshape(size, size), np.eye(size)))


# ---------------------------------------------------------------- model checks
def _default_opset(model: onnx.ModelProto, source: str) -> int:
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return int(entry.version)
    latest = onnx.defs.onnx_opset_version()
    logger.warning("%s declares no default-domain opset; assuming opset %d", source, latest)
    return latest


def _single_input(graph: onnx.GraphProto, initializers: dict, source: str) -> onnx.ValueInfoProto:
    """The one graph input that is not an initializer (old exporters list weights too)."""
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs:
        raise ModelLoadError(f"the graph of {source!r} has no input")
    if len(inputs) > 1:
        raise UnsupportedOperatorError(
            f"the graph of {source!r} has {len(inputs)} graph inputs "
            f"({', '.join(repr(i.name) for i in inputs)}); only single-input networks are "
            "supported (concatenate the inputs into one tensor before export)"
        )
    return inputs[0]


def _single_output(graph: onnx.GraphProto, source: str) -> str:
    outputs = [o.name for o in graph.output]
    if not outputs:
        raise ModelLoadError(f"the graph of {source!r} has no output")
    if len(outputs) > 1:
        raise UnsupportedOperatorError(
            f"the graph of {source!r} has {len(outputs)} graph outputs "
            f"({', '.join(map(repr, outputs))}); only single-output networks are supported"
        )
    return outputs[0]


def _static_input_shape(info: onnx.ValueInfoProto) -> tuple[int, ...]:
    """The input's shape with the batch dimension (first, when symbolic) set to 1."""
    if not info.type.HasField("tensor_type") or not info.type.tensor_type.HasField("shape"):
        raise ShapeMismatchError(f"graph input {info.name!r} has no shape information; export with a static shape")
    dims = list(info.type.tensor_type.shape.dim)
    shape = []
    for axis, dim in enumerate(dims):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(int(dim.dim_value))
        elif axis == 0 and len(dims) > 1:
            shape.append(1)  # batch dimension
        else:
            raise ShapeMismatchError(
                f"graph input {info.name!r} has an unknown size at axis {axis} "
                f"({dim.dim_param or '?'}); only the first (batch) dimension may be symbolic"
            )
    return tuple(shape)


def _read_model(model: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        proto, source = model, "<ModelProto>"
    elif isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        if not Path(source).is_file():
            raise ModelLoadError(f"ONNX file {source!r} does not exist or is not a file")
        try:
            proto = onnx.load(source)
        except Exception as exc:  # protobuf DecodeError, OSError, external data errors
            raise ModelLoadError(f"cannot read ONNX file {source!r}: {type(exc).__name__}: {exc}") from exc
    else:
        raise TypeError(f"load_onnx expects a path or an onnx.ModelProto, got {type(model).__name__}")
    if not proto.HasField("graph") or not proto.graph.output:
        raise ModelLoadError(f"{source!r} is not an ONNX model (it holds no graph)")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # informative only: real exporters sometimes trip the checker
        logger.warning("onnx.checker reports a problem in %s (loading anyway): %s", source, exc)
    return proto, source


# ------------------------------------------------------------------------ API
def load_onnx(
    model: str | os.PathLike | onnx.ModelProto,
    input_bounds: object = None,
    *,
    drop_softmax: bool = False,
) -> NetworkDefinition:
    """Read a ReLU network (dense or convolutional) from an ONNX file or ``ModelProto``.

    ``input_bounds`` is passed to :class:`NetworkDefinition` (any form it accepts), in the
    order of the flattened (C-order) input.  A trailing ``Softmax``/``LogSoftmax`` is
    dropped when ``drop_softmax`` is true, so the outputs are its input (the logits).

    Raises :class:`ModelLoadError` (missing or unreadable file, malformed graph),
    :class:`UnsupportedOperatorError` (operators or structures outside the list in the
    module docstring, several graph inputs or outputs, a trailing softmax without
    ``drop_softmax``), :class:`InvalidNetworkError` (NaN/Inf weights) and
    :class:`ShapeMismatchError` (inconsistent shapes, symbolic non-batch dimensions).

    >>> from onnx import TensorProto, helper
    >>> graph = helper.make_graph(
    ...     [helper.make_node("MatMul", ["x", "W"], ["h"]),
    ...      helper.make_node("Relu", ["h"], ["y"], name="relu")],
    ...     "tiny",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    ...     [helper.make_tensor("W", TensorProto.FLOAT, [2, 1], [1.0, -1.0])])
    >>> net = load_onnx(helper.make_model(graph), input_bounds=[(0, 1), (0, 1)])
    >>> print(net.summary())
    NetworkDefinition: 2 inputs -> 1 output, 1 layer (1 canonical)
    index  name  kind        inputs  outputs  canonical
        0  relu  dense relu       2        1  0
    >>> net.evaluate([[1.0, 0.25]]), net.input_shape
    (array([[0.75]]), (1, 2))
    """
    proto, source = _read_model(model)
    converter = _GraphConverter(proto, source, drop_softmax)
    layers = converter.convert()
    network = NetworkDefinition(layers, input_bounds, input_shape=converter.input_shape, source=source)
    logger.info("loaded %s from %s", network, source)
    return network
