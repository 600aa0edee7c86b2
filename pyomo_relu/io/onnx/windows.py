"""Sliding windows of ``Conv`` and the pooling operators: geometry (strides, dilations,
padding, ``auto_pad``, ``ceil_mode``), the dense window sums, and the sparse (CSR) operators
of convolution and average pooling built from index arithmetic."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from pyomo_relu.errors import ModelLoadError, ShapeMismatchError
from pyomo_relu.io.onnx.node import Node

__all__ = ["Window", "conv_operator", "pad", "pool_operator", "window_geometry", "window_members", "window_sums"]


@dataclass(frozen=True)
class Window:
    """A sliding window: ``pad_end`` includes, for ``ceil_mode``, the extra zeros read by the last window."""

    kernel: tuple[int, ...]
    strides: list[int]
    dilations: list[int]
    pad_begin: list[int]
    pad_end: list[int]
    out: list[int]


def _int_list(node: Node, name: str, default: Sequence[int], length: int) -> list[int]:
    values = node.attr_ints(name)
    values = [int(v) for v in default] if values is None else values
    if len(values) != length:
        raise ShapeMismatchError(f"{node.where()}: attribute {name}={values} should have {length} entries")
    return values


def _pads(node: Node, spatial: Sequence[int], strides: list[int], span: list[int]) -> tuple[list[int], list[int]]:
    """``(begin, end)`` padding from ``pads`` or ``auto_pad``."""
    dims = len(spatial)
    auto_pad = node.attr_str("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = _int_list(node, "pads", [0] * 2 * dims, 2 * dims)
        return pads[:dims], pads[dims:]
    if auto_pad == "VALID":
        return [0] * dims, [0] * dims
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ModelLoadError(f"{node.where()}: unknown auto_pad {auto_pad!r}")
    begin, end = [], []
    for size, stride, extent in zip(spatial, strides, span):
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + extent - size)
        small, large = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else large)
        end.append(large if auto_pad == "SAME_UPPER" else small)
    return begin, end


def window_geometry(node: Node, spatial: Sequence[int], kernel: Sequence[int], *, ceil_mode: bool = False) -> Window:
    """The window of a sliding-window node over an input of spatial shape ``spatial``."""
    dims = len(spatial)
    strides = _int_list(node, "strides", [1] * dims, dims)
    dilations = _int_list(node, "dilations", [1] * dims, dims)
    if any(v < 1 for v in strides + dilations + list(kernel)):
        raise ShapeMismatchError(
            f"{node.where()}: kernel {list(kernel)}, strides {strides} and dilations {dilations} must be positive"
        )
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    begin, end = _pads(node, spatial, strides, span)
    if any(p < 0 for p in begin + end):
        raise ShapeMismatchError(f"{node.where()}: negative pads {begin + end}")
    explicit = node.attr_str("auto_pad", "NOTSET") in ("NOTSET", "")
    out_shape, end_total = [], []
    for size, stride, extent, b, e in zip(spatial, strides, span, begin, end):
        room = size + b + e - extent
        if room < 0:
            raise ShapeMismatchError(
                f"{node.where()}: the window (extent {extent}) is larger than the padded "
                f"input (size {size + b + e}) along a spatial axis"
            )
        count = room // stride + 1
        if ceil_mode and explicit:
            count = -(-room // stride) + 1
            if (count - 1) * stride >= size + b:  # the last window must start inside
                count -= 1
        out_shape.append(count)
        end_total.append(max(e, (count - 1) * stride + extent - size - b))
    return Window(tuple(int(k) for k in kernel), strides, dilations, begin, end_total, out_shape)


def _offsets(window: Window) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Every kernel offset with the slices of the padded input its window entries read."""
    found = []
    for offset in itertools.product(*(range(k) for k in window.kernel)):
        index = tuple(
            slice(o * d, o * d + s * (n - 1) + 1, s)
            for o, d, s, n in zip(offset, window.dilations, window.strides, window.out)
        )
        found.append((offset, index))
    return found


def window_sums(data: np.ndarray, window: Window, weights: np.ndarray | None = None, groups: int = 1) -> np.ndarray:
    """Sliding-window sums of ``data`` (already padded), shape ``(R, C, *spatial)``.

    Without ``weights``: per-channel window sums, shape ``(R, C, *out)``.  With ``weights``
    of shape ``(M, C // groups, *kernel)``: the grouped convolution, shape
    ``(R, M, *out)``.  Loops only over the kernel offsets; each step is one vectorised
    contraction over all rows (basis columns), channels and output positions.
    """
    rows, channels = data.shape[:2]
    if weights is None:
        result = np.zeros((rows, channels, *window.out))
    else:
        per_group_in, per_group_out = channels // groups, weights.shape[0] // groups
        grouped_w = weights.reshape(groups, per_group_out, per_group_in, *window.kernel)
        result = np.zeros((rows, groups, per_group_out, *window.out))
    for offset, index in _offsets(window):
        entries = data[(slice(None), slice(None)) + index]
        if weights is None:
            result += entries
        else:
            entries = entries.reshape(rows, groups, per_group_in, -1)
            w = grouped_w[(Ellipsis,) + offset]  # (groups, out per group, in per group)
            result += np.matmul(w, entries).reshape(result.shape)  # (R, G, M/G, positions)
    return result.reshape(rows, -1, *window.out)


def conv_operator(
    weights: np.ndarray, channels: int, spatial: Sequence[int], groups: int, window: Window
) -> sp.csr_array:
    """The convolution as a CSR matrix ``(maps * prod(out), channels * prod(spatial))``.

    Built from index arithmetic, one kernel offset and input channel at a time: never a
    dense matrix.  Positions in the padding contribute nothing.
    """
    maps, per_in = weights.shape[0], weights.shape[1]
    per_out = maps // groups
    grid = np.indices(window.out).reshape(len(window.out), -1)
    positions, in_size = grid.shape[1], int(np.prod(spatial))
    maps_index = np.arange(maps)
    rows, cols, values = [], [], []
    for offset, _ in _offsets(window):
        shift = np.asarray(offset) * np.asarray(window.dilations) - np.asarray(window.pad_begin)
        coords = grid * np.asarray(window.strides)[:, None] + shift[:, None]
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
    shape = (maps * positions, channels * in_size)
    return sp.csr_array((_cat(values, float), (_cat(rows, np.int64), _cat(cols, np.int64))), shape=shape)


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def pool_operator(members: np.ndarray, divisor: np.ndarray, n_inputs: int) -> sp.csr_array:
    """Average pooling as a CSR matrix: row ``r`` averages ``members[r]`` (``-1`` = padding) by ``divisor[r]``."""
    valid = members >= 0
    rows = np.repeat(np.arange(members.shape[0]), valid.sum(axis=1))
    values = np.repeat(1.0 / divisor, valid.sum(axis=1))
    return sp.csr_array((values, (rows, members[valid])), shape=(members.shape[0], n_inputs))


def window_members(spatial: Sequence[int], channels: int, window: Window) -> np.ndarray:
    """``(C * prod(out), K)``: flat input index of every window entry, ``-1`` in the padding."""
    index = np.arange(channels * int(np.prod(spatial))).reshape(channels, *spatial)
    padded = pad(index[None], window.pad_begin, window.pad_end, value=-1)[0]
    entries = [padded[(slice(None),) + where].reshape(-1) for _, where in _offsets(window)]
    return np.stack(entries, axis=1)


def pad(data: np.ndarray, begin: Sequence[int], end: Sequence[int], value: float = 0) -> np.ndarray:
    """``data`` of shape ``(R, C, *spatial)`` padded along the spatial axes with ``value``."""
    if not any(begin) and not any(end):
        return data
    widths = [(0, 0), (0, 0)] + [(int(b), int(e)) for b, e in zip(begin, end)]
    return np.pad(data, widths, constant_values=value)
