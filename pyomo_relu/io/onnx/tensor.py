"""The ONNX reader's values: numpy constants and affine tensors over the current basis.

An affine tensor of shape ``S`` is ``value = A @ basis + c`` where *basis* is the flattened
network input at first and the output of the last emitted layer afterwards.  It is stored
sparse, as an :class:`~pyomo_relu.io.affine.AffineMap` ``(A, c)`` over the C-order
flattening of ``S`` (every basis starts as a sparse identity), or dense, as one array
``stack`` of shape ``(1 + n, *S)`` whose ``stack[0]`` is ``c`` and ``stack[1 + j]`` the
coefficients of basis entry ``j``, so that operators without a sparse form act on ``stack``
exactly as they act on a tensor, with one leading batch axis.  Densifying is refused beyond
:data:`MAX_DENSE_ENTRIES` coefficients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import scipy.sparse as sp

from pyomo_relu.errors import DenseTooLargeError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.affine import AffineMap
from pyomo_relu.sparse import Weights

__all__ = ["MAX_DENSE_ENTRIES", "AffineTensor", "Value", "as_float", "check_dense_size", "shape_of"]

#: Largest number of coefficients (``n_basis x numel``) a dense affine tensor may have; beyond
#: it the node is refused instead of allocating gigabytes of dense weights.  Read at call
#: time: set ``pyomo_relu.io.onnx.tensor.MAX_DENSE_ENTRIES`` to change it.
MAX_DENSE_ENTRIES = 200_000_000


class AffineTensor:
    """``value = A @ basis + c`` in basis number ``basis``, dense or sparse (module docstring).

    Operators with a sparse implementation (convolution, pooling, per-channel maps, layout
    changes, sums, concatenation) keep the sparse form; any other reads :attr:`stack`,
    which densifies.
    """

    __slots__ = ("_stack", "basis", "_map", "_shape")

    def __init__(
        self,
        stack: np.ndarray | None,
        basis: int,
        *,
        affine: AffineMap | None = None,
        shape: Sequence[int] = (),
    ) -> None:
        self._stack, self.basis, self._map = stack, basis, affine
        self._shape = tuple(stack.shape[1:]) if stack is not None else tuple(int(d) for d in shape)

    @classmethod
    def sparse(cls, matrix: Weights, const: np.ndarray, shape: Sequence[int], basis: int) -> AffineTensor:
        """The tensor of shape ``shape`` whose flattening is ``matrix @ basis + const``."""
        affine = AffineMap(sp.csr_array(matrix), np.asarray(const, float))
        return cls(None, basis, affine=affine, shape=shape)

    @classmethod
    def identity(cls, shape: Sequence[int], basis: int) -> AffineTensor:
        """The basis itself, reshaped to ``shape`` (a sparse identity)."""
        size = int(np.prod(shape))
        return cls(None, basis, affine=AffineMap.identity(size, sparse=True), shape=shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's shape (without the leading basis axis of :attr:`stack`)."""
        return self._shape

    @property
    def is_sparse(self) -> bool:
        """Stored as CSR rows (not yet densified)."""
        return self._stack is None

    @property
    def size(self) -> int:
        """Entries of the tensor."""
        return int(np.prod(self._shape))

    @property
    def n_basis(self) -> int:
        """Entries of the basis the tensor is a function of."""
        if self._map is not None:
            return self._map.n_inputs
        assert self._stack is not None
        return self._stack.shape[0] - 1

    @property
    def stack(self) -> np.ndarray:
        """The dense form ``(1 + n, *shape)`` (computed once, refused when too large)."""
        if self._stack is None:
            assert self._map is not None
            n = self._map.n_inputs
            if (n + 1) * self.size > MAX_DENSE_ENTRIES:
                raise DenseTooLargeError(
                    f"a dense map of {n} basis entries x {self.size} outputs (more than "
                    f"MAX_DENSE_ENTRIES = {MAX_DENSE_ENTRIES}) would be needed; this operator has no "
                    "sparse implementation here (Conv, pooling, BatchNormalization, Add/Mul by constants, "
                    "Concat, Flatten/Reshape/Transpose and the activations do)"
                )
            stack = np.empty((n + 1, self.size))
            stack[0] = self._map.bias
            stack[1:] = self._map.weights.T.toarray()
            self._stack = stack.reshape((n + 1, *self._shape))
        return self._stack

    def as_map(self) -> AffineMap:
        """The flattened tensor as an :class:`AffineMap` of the basis (CSR weights when sparse)."""
        if self._map is not None:
            return self._map
        assert self._stack is not None
        n = self._stack.shape[0] - 1
        return AffineMap(self._stack[1:].reshape(n, -1).T, self._stack[0].reshape(-1))

    def rows(self) -> tuple[Weights, np.ndarray]:
        """``(A, c)`` with ``A`` of shape ``(size, n)`` (CSR when sparse)."""
        affine = self.as_map()
        return affine.weights, affine.bias

    def with_stack(self, stack: np.ndarray) -> AffineTensor:
        """A dense tensor in the same basis."""
        return AffineTensor(stack, self.basis)

    def with_rows(self, matrix: Weights, const: np.ndarray, shape: Sequence[int]) -> AffineTensor:
        """A sparse tensor of ``shape`` in the same basis, ``matrix @ basis + const`` flattened."""
        return AffineTensor.sparse(matrix, const, shape, self.basis)

    def then(self, operator: Weights, offset: np.ndarray, shape: Sequence[int]) -> AffineTensor:
        """``operator @ self + offset`` (``operator`` a sparse linear map of the flattened tensor)."""
        composed = self.as_map().then(sp.csr_array(operator), offset)
        return AffineTensor.sparse(composed.weights, composed.bias, shape, self.basis)


#: A tensor of the graph: a numpy constant or an affine function of the basis.
Value: TypeAlias = np.ndarray | AffineTensor


def as_float(value: object) -> np.ndarray:
    """``value`` as a float64 array."""
    return np.asarray(value, dtype=np.float64)


def shape_of(value: Value) -> tuple[int, ...]:
    """The shape of a constant or affine tensor."""
    return value.shape if isinstance(value, AffineTensor) else tuple(np.shape(value))


def check_dense_size(where: str, rows: int, out_shape: Sequence[int]) -> None:
    """Refuse a dense result of ``rows - 1`` basis entries x ``out_shape`` beyond :data:`MAX_DENSE_ENTRIES`."""
    entries = (rows - 1) * int(np.prod(out_shape))
    if entries > MAX_DENSE_ENTRIES:
        raise UnsupportedOperatorError(
            f"{where} would produce a dense affine map with {entries:.3g} coefficients "
            f"({rows - 1} basis entries x {int(np.prod(out_shape))} outputs, more than "
            f"MAX_DENSE_ENTRIES={MAX_DENSE_ENTRIES:.3g}); convolutional layers are stored as "
            "dense matrices for now (sparse convolution layers are planned): use a smaller "
            "input or fewer channels"
        )


def check_batch_one(where: str, shape: tuple[int, ...], what: str = "input") -> None:
    """``shape`` is ``(1, C, D1, ...)``: a spatial tensor of batch size 1."""
    if len(shape) < 3:
        raise ShapeMismatchError(f"{where}: {what} must be (N, C, D1, ...), got shape {shape}")
    if shape[0] != 1:
        raise ShapeMismatchError(
            f"{where}: batch dimension of the {what} is {shape[0]}; only batch size 1 "
            "(or a symbolic batch) is supported"
        )
