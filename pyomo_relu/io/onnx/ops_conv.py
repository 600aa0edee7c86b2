"""Handlers of convolution and pooling: ``Conv``, ``AveragePool``, ``GlobalAveragePool``
(linear maps, kept sparse from the input to the emitted layer), ``MaxPool`` and
``GlobalMaxPool`` (a :class:`~pyomo_relu.network.MaxLayer`)."""

from __future__ import annotations

import numpy as np

from pyomo_relu.errors import ModelLoadError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.onnx.node import Emitter, Handler, Inputs, Node, Outputs
from pyomo_relu.io.onnx.tensor import AffineTensor, as_float, check_batch_one, check_dense_size
from pyomo_relu.io.onnx.windows import (
    Window,
    conv_operator,
    pad,
    pool_operator,
    window_geometry,
    window_members,
    window_sums,
)

__all__ = ["HANDLERS", "REQUIRED_INPUTS"]


def _spatial_shape(node: Node, value: AffineTensor) -> tuple[int, int, tuple[int, ...]]:
    """``(rows, channels, spatial)`` of an ``(1, C, *spatial)`` tensor, without densifying it."""
    check_batch_one(node.where(), value.shape)
    return value.n_basis + 1, int(value.shape[1]), tuple(int(d) for d in value.shape[2:])


def _conv_weights(node: Node, inputs: Inputs, x: AffineTensor) -> tuple[np.ndarray, np.ndarray | None, int]:
    """``(W, B, group)`` of a Conv, checked against its input."""
    weights = as_float(inputs.constant(1, "weight W"))
    bias_input = inputs.constant(2, "bias B")
    bias = None if bias_input is None else as_float(bias_input)
    check_batch_one(node.where(), x.shape)
    channels, spatial = int(x.shape[1]), x.shape[2:]
    groups = node.attr_int("group", 1)
    if weights.ndim != len(spatial) + 2:
        raise ShapeMismatchError(
            f"{node.where()}: weight W of shape {weights.shape} does not fit an input of shape {x.shape}"
        )
    maps, kernel = weights.shape[0], tuple(weights.shape[2:])
    declared = node.attr_ints("kernel_shape")
    if declared is not None and tuple(declared) != kernel:
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
    return weights, bias, groups


def _op_conv(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    weights, bias, groups = _conv_weights(node, inputs, x)
    rows, channels, spatial = _spatial_shape(node, x)
    maps = weights.shape[0]
    window = window_geometry(node, spatial, weights.shape[2:])
    if x.is_sparse:
        operator = conv_operator(weights, channels, spatial, groups, window)
        offset = np.zeros(operator.shape[0]) if bias is None else np.repeat(bias, int(np.prod(window.out)))
        return [x.then(operator, offset, (1, maps, *window.out))]
    data = x.stack[:, 0]
    check_dense_size(node.where(), rows, [maps, *window.out])
    result = window_sums(pad(data, window.pad_begin, window.pad_end), window, weights, groups)
    if bias is not None:
        result[0] += bias.reshape((maps,) + (1,) * len(window.out))
    return [x.with_stack(result[:, None])]


def _pool_kernel(node: Node, x: AffineTensor, spatial: tuple[int, ...], required: bool) -> list[int]:
    kernel = node.attr_ints("kernel_shape")
    if kernel is None and required:
        raise ModelLoadError(f"{node.where()} has no kernel_shape")
    kernel = kernel or []
    if len(kernel) != len(spatial):
        raise ShapeMismatchError(f"{node.where()}: kernel_shape {kernel} does not fit an input of shape {x.shape}")
    return kernel


def _pool_counts(node: Node, spatial: tuple[int, ...], window: Window) -> np.ndarray:
    """The divisor of every average-pooling window: its positions inside the input (or inside
    input + explicit pads with ``count_include_pad``), counted by the same sliding window."""
    begin, end = window.pad_begin, window.pad_end
    if node.attr_int("count_include_pad", 0):
        explicit = window_geometry(node, spatial, window.kernel).pad_end  # pads without ceil overhang
        padded = [n + b + e for n, b, e in zip(spatial, begin, explicit)]
        indicator = pad(np.ones((1, 1, *padded)), [0] * len(end), [e - p for e, p in zip(end, explicit)])
    else:
        indicator = pad(np.ones((1, 1, *spatial)), begin, end)
    counts = window_sums(indicator, window)[0, 0]
    if np.any(counts == 0):
        raise ShapeMismatchError(f"{node.where()}: a pooling window lies entirely in the padding")
    return counts


def _op_average_pool(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    rows, channels, spatial = _spatial_shape(node, x)
    kernel = _pool_kernel(node, x, spatial, required=True)
    window = window_geometry(node, spatial, kernel, ceil_mode=bool(node.attr_int("ceil_mode", 0)))
    counts = _pool_counts(node, spatial, window)
    if x.is_sparse:
        members = window_members(spatial, channels, window)
        operator = pool_operator(members, np.tile(counts.ravel(), channels), channels * int(np.prod(spatial)))
        return [x.then(operator, np.zeros(operator.shape[0]), (1, channels, *window.out))]
    data = x.stack[:, 0]
    check_dense_size(node.where(), rows, [channels, *window.out])
    sums = window_sums(pad(data, window.pad_begin, window.pad_end), window)
    return [x.with_stack((sums / counts)[:, None])]


def _global_window(node: Node, x: AffineTensor) -> tuple[int, tuple[int, ...], np.ndarray]:
    """``(channels, spatial, members)`` of a global pooling: one window per channel, all of it."""
    _, channels, spatial = _spatial_shape(node, x)
    size = int(np.prod(spatial))
    return channels, spatial, np.arange(channels * size).reshape(channels, size)


def _op_global_average_pool(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    channels, spatial, members = _global_window(node, x)
    if x.is_sparse:
        operator = pool_operator(members, np.full(channels, float(members.shape[1])), members.size)
        return [x.then(operator, np.zeros(channels), (1, channels) + (1,) * len(spatial))]
    data = x.stack[:, 0]
    axes = tuple(range(2, data.ndim))
    return [x.with_stack(data.mean(axis=axes, keepdims=True)[:, None])]


def _op_max_pool(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    if len(node.proto.output) > 1 and node.proto.output[1]:
        raise UnsupportedOperatorError(f"{node.where()}: the Indices output of MaxPool is not supported")
    _, channels, spatial = _spatial_shape(node, x)
    kernel = _pool_kernel(node, x, spatial, required=False)
    window = window_geometry(node, spatial, kernel, ceil_mode=bool(node.attr_int("ceil_mode", 0)))
    members = window_members(spatial, channels, window)
    return [cv.emit_max(node, x, members, (1, channels, *window.out))]


def _op_global_max_pool(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    channels, spatial, members = _global_window(node, x)
    return [cv.emit_max(node, x, members, (1, channels) + (1,) * len(spatial))]


HANDLERS: dict[str, Handler] = {
    "AveragePool": _op_average_pool,
    "Conv": _op_conv,
    "GlobalAveragePool": _op_global_average_pool,
    "GlobalMaxPool": _op_global_max_pool,
    "MaxPool": _op_max_pool,
}

#: Inputs each operator needs (1 when not listed).
REQUIRED_INPUTS = {"Conv": 2}
