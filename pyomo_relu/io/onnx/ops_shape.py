"""Handlers of the layout and bookkeeping operators: ``Flatten``, ``Reshape``, ``Squeeze``,
``Unsqueeze``, ``Transpose``, ``Concat``, ``Identity``, ``Dropout`` (inference), ``Cast``,
``Shape`` and ``Constant``.  On a sparse affine tensor each is a row permutation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from onnx import helper, numpy_helper

from pyomo_relu.errors import ModelLoadError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.onnx.algebra import reshape, transpose
from pyomo_relu.io.onnx.node import Emitter, Handler, Inputs, Node, Outputs, normalise_axes
from pyomo_relu.io.onnx.tensor import AffineTensor, Value, as_float, check_dense_size, shape_of

__all__ = ["HANDLERS", "REQUIRED_INPUTS"]


def _op_flatten(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    shape = shape_of(inputs[0])
    axis = node.attr_int("axis", 1)
    if not -len(shape) <= axis <= len(shape):
        raise ShapeMismatchError(f"{node.where()}: axis {axis} is out of range for shape {shape}")
    if axis < 0:
        axis += len(shape)
    return [reshape(inputs[0], (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))]


def _reshape_target(node: Node, in_shape: tuple[int, ...], spec: Sequence[int]) -> tuple[int, ...]:
    """Resolve ONNX Reshape's ``0`` (copy, unless ``allowzero``) and ``-1`` (infer)."""
    allowzero = bool(node.attr_int("allowzero", 0))
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


def _op_reshape(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    constant = inputs.constant(1, "target shape")
    spec = None if constant is None else [int(d) for d in np.ravel(constant)]
    if spec is None:  # opsets 1-4: the target shape is an attribute
        spec = node.attr_ints("shape")
        if spec is None:
            raise ModelLoadError(f"{node.where()} has no target shape")
    return [reshape(inputs[0], _reshape_target(node, shape_of(inputs[0]), spec))]


def _axes(node: Node, inputs: Inputs) -> list[int] | None:
    """Axes of Squeeze/Unsqueeze: an input from opset 13, an attribute before."""
    axes = inputs.constant(1, "axes")
    if axes is not None:
        return [int(a) for a in np.ravel(axes)]
    return node.attr_ints("axes")


def _op_squeeze(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    shape = shape_of(inputs[0])
    axes = _axes(node, inputs)
    if axes is None:
        drop = [i for i, d in enumerate(shape) if d == 1]
    else:
        drop = normalise_axes(node, axes, len(shape))
        if any(shape[i] != 1 for i in drop):
            raise ShapeMismatchError(f"{node.where()}: cannot squeeze axes {axes} of shape {shape} (size is not 1)")
    return [reshape(inputs[0], [d for i, d in enumerate(shape) if i not in drop])]


def _op_unsqueeze(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    shape = shape_of(inputs[0])
    axes = _axes(node, inputs)
    if axes is None:
        raise ModelLoadError(f"{node.where()} has no axes")
    rank = len(shape) + len(axes)
    positions = set(normalise_axes(node, axes, rank))
    dims = iter(shape)
    return [reshape(inputs[0], [1 if i in positions else next(dims) for i in range(rank)])]


def _op_transpose(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    rank = len(shape_of(inputs[0]))
    perm = node.attr_ints("perm") or list(reversed(range(rank)))
    return [transpose(inputs[0], perm)]


def _op_identity(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    return [inputs[0]]


def _op_dropout(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    training = inputs.constant(2, "training_mode")
    if training is not None and bool(np.any(training)):
        raise UnsupportedOperatorError(f"{node.where()} is in training mode; export the model in inference mode")
    return [inputs[0], np.ones(shape_of(inputs[0]), dtype=bool)]


def _op_cast(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    to = node.attr("to")
    if to is None:
        raise ModelLoadError(f"{node.where()} has no 'to' attribute (the target type)")
    try:
        dtype = helper.tensor_dtype_to_np_dtype(node.attr_int("to", 0))
    except KeyError:
        raise ModelLoadError(f"{node.where()}: 'to' = {to} is not an ONNX tensor type") from None
    if not isinstance(inputs[0], AffineTensor):
        return [np.asarray(inputs[0]).astype(dtype)]
    if not np.issubdtype(dtype, np.floating):
        raise UnsupportedOperatorError(
            f"{node.where()} casts an input-dependent tensor to {dtype}; only float casts are supported"
        )
    return [inputs[0]]


def _op_shape(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    shape = shape_of(inputs[0])
    end = node.attr("end")
    stop = None if end is None else node.attr_int("end", 0)
    return [np.array(shape[node.attr_int("start", 0) : stop], dtype=np.int64)]


def _op_constant(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    for attribute in node.proto.attribute:
        if attribute.name == "value":
            return [numpy_helper.to_array(attribute.t)]
        if attribute.name in ("value_float", "value_floats"):
            return [np.array(helper.get_attribute_value(attribute), dtype=np.float32)]
        if attribute.name in ("value_int", "value_ints"):
            return [np.array(helper.get_attribute_value(attribute), dtype=np.int64)]
    return cv.fold(node, inputs)  # sparse or string constants


def _concat_axis(node: Node, shapes: list[tuple[int, ...]]) -> int:
    """The (non-negative) axis of a Concat of tensors of ``shapes``, checked."""
    rank = len(shapes[0])
    if rank == 0 or any(len(s) != rank for s in shapes):
        raise ShapeMismatchError(f"{node.where()}: cannot concatenate shapes {shapes}")
    if node.attr("axis") is None:
        raise ModelLoadError(f"{node.where()} has no axis")
    axis = normalise_axes(node, [node.attr_int("axis", 0)], rank)[0]
    if any(s[:axis] + s[axis + 1 :] != shapes[0][:axis] + shapes[0][axis + 1 :] for s in shapes):
        raise ShapeMismatchError(f"{node.where()}: cannot concatenate shapes {shapes} along axis {axis}")
    return axis


def _op_concat(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    values = [v for v in inputs if v is not None]
    if inputs.all_constant():
        return cv.fold(node, inputs)
    shapes = [shape_of(v) for v in values]
    axis = _concat_axis(node, shapes)
    affine = next(v for v in values if isinstance(v, AffineTensor))
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    if any(isinstance(v, AffineTensor) and v.is_sparse for v in values):
        return [_sparse_concat(affine, values, shapes, axis, out_shape)]
    rows = affine.stack.shape[0]
    check_dense_size(node.where(), rows, out_shape)
    stacks = []
    for value in values:
        if isinstance(value, AffineTensor):
            stacks.append(value.stack)
        else:
            stack = np.zeros((rows, *np.shape(value)))
            stack[0] = as_float(value)
            stacks.append(stack)
    return [affine.with_stack(np.concatenate(stacks, axis=axis + 1))]


def _sparse_concat(
    affine: AffineTensor, values: list[Value], shapes: list[tuple[int, ...]], axis: int, out_shape: list[int]
) -> AffineTensor:
    """Concat as a row permutation of the stacked parts (constants are rows without coefficients)."""
    n_basis = affine.n_basis
    blocks, consts, ids, offset = [], [], [], 0
    for value, shape in zip(values, shapes):
        size = int(np.prod(shape))
        if isinstance(value, AffineTensor):
            matrix, const = value.rows()
            blocks.append(sp.csr_array(matrix))
            consts.append(const)
        else:
            blocks.append(sp.csr_array((size, n_basis)))
            consts.append(np.broadcast_to(as_float(value), shape).ravel())
        ids.append(offset + np.arange(size).reshape(shape))
        offset += size
    order = np.concatenate(ids, axis=axis).ravel()
    return affine.with_rows(sp.csr_array(sp.vstack(blocks))[order], np.concatenate(consts)[order], out_shape)


HANDLERS: dict[str, Handler] = {
    "Cast": _op_cast,
    "Concat": _op_concat,
    "Constant": _op_constant,
    "Dropout": _op_dropout,
    "Flatten": _op_flatten,
    "Identity": _op_identity,
    "Reshape": _op_reshape,
    "Shape": _op_shape,
    "Squeeze": _op_squeeze,
    "Transpose": _op_transpose,
    "Unsqueeze": _op_unsqueeze,
}

#: Inputs each operator needs (1 when not listed).
REQUIRED_INPUTS = {"Constant": 0}
