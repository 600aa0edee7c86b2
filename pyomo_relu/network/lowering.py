"""Canonical layers: scalings folded into the affine maps, LeakyReLU and Clip lowered to ReLUs.

:func:`lower_layer` rewrites one layer exactly with ReLU and linear neurons, returning a
:class:`Lowering` (the canonical layers and the :class:`Affine` map from their output to
the layer's); :func:`canonicalize` folds those maps and the scalings into a chain of
canonical layers (:class:`Canonical`), which is what
:attr:`~pyomo_relu.network.NetworkDefinition.canonical_layers` returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pyomo_relu.network.layers import DenseLayer, Layer
from pyomo_relu.network.scaling import Scaling
from pyomo_relu.sparse import as_weights, is_sparse, matmul, scale_columns, scale_rows


@dataclass(frozen=True)
class Affine:
    """The affine map ``h -> matrix @ h + offset``."""

    matrix: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True)
class Lowering:
    """What :func:`lower_layer` makes of a layer.

    ``layers`` compute it; its output is ``output.matrix @ h + output.offset`` with ``h``
    the output of the last of them, or ``h`` itself when ``output`` is ``None``.
    """

    layers: tuple[Layer, ...]
    output: Affine | None


@dataclass(frozen=True)
class Canonical:
    """Canonical layers and, for each, the index of the user's layer it computes."""

    layers: tuple[Layer, ...]
    origin: tuple[int, ...]


@dataclass(frozen=True)
class _Rows:
    """How the neurons of a non-canonical layer expand into the rows of its first canonical layer.

    Neuron ``j`` gives row ``start[j]`` (and ``start[j] + 1`` for a LeakyReLU: its linear
    copy ``z``); ``source`` is the neuron of each row, ``copy`` marks the linear copies.
    """

    leaky: np.ndarray
    clip: np.ndarray
    both: np.ndarray  # hi - relu((hi - lo) - relu(z - lo))
    low_only: np.ndarray  # lo + relu(z - lo)
    high_only: np.ndarray  # hi - relu(hi - z)
    start: np.ndarray
    source: np.ndarray
    copy: np.ndarray

    @classmethod
    def of(cls, layer: DenseLayer) -> _Rows:
        kinds, lo, hi = layer.kinds, layer.clip_low, layer.clip_high
        leaky, clip = kinds == "leaky_relu", kinds == "clip"
        start = np.r_[0, np.cumsum(1 + leaky)[:-1]].astype(np.int64)
        source = np.repeat(np.arange(layer.n_outputs), 1 + leaky)
        copy = np.zeros(source.size, dtype=bool)
        copy[start[leaky] + 1] = True
        return cls(
            leaky,
            clip,
            clip & np.isfinite(lo) & np.isfinite(hi),
            clip & np.isfinite(lo) & ~np.isfinite(hi),
            clip & ~np.isfinite(lo) & np.isfinite(hi),
            start,
            source,
            copy,
        )


def lower_layer(layer: Layer) -> Lowering:
    """Canonical layers computing ``layer``, and the affine map from their output to its output.

    Exact rewritings by ReLUs::

        leaky_relu(z) = (1 - alpha) relu(z) + alpha z
        clip(z, lo, +inf) = lo + relu(z - lo)        clip(z, -inf, hi) = hi - relu(hi - z)
        clip(z, lo, hi)   = hi - relu((hi - lo) - relu(z - lo))       (two layers)

    The nested form for a two-sided clip keeps interval bounds exact (each step is monotone).

    >>> lowered = lower_layer(DenseLayer([[2.0]], [0.0], "leaky_relu", alpha=0.1))
    >>> [l.kinds.tolist() for l in lowered.layers], lowered.output.matrix, lowered.output.offset
    ([['relu', 'linear']], array([[0.9, 0.1]]), array([0.]))
    """
    if layer.is_canonical:
        return Lowering((layer,), None)
    assert isinstance(layer, DenseLayer)
    rows = _Rows.of(layer)
    first = _first_stage(layer, rows)
    output = _recombination(layer, rows)
    if not rows.both.any():
        return Lowering((first,), output)
    return Lowering((first, _clip_stage(layer, rows)), output)


def _first_stage(layer: DenseLayer, rows: _Rows) -> DenseLayer:
    """Row ``r`` computes ``sign * (w_j h + b_j) + shift`` for its neuron ``j = source[r]``."""
    lo, hi, kinds, source, copy = layer.clip_low, layer.clip_high, layer.kinds, rows.source, rows.copy
    sign = np.where(rows.high_only[source] & ~copy, -1.0, 1.0)
    shift = np.where(
        copy,
        0.0,
        np.where((rows.both | rows.low_only)[source], -lo[source], np.where(rows.high_only[source], hi[source], 0.0)),
    )
    relu = (rows.leaky | rows.both | rows.low_only | rows.high_only)[source]
    row_kinds = np.where(copy, "linear", np.where(relu, "relu", np.where(rows.clip[source], "linear", kinds[source])))
    select = np.zeros((source.size, layer.n_outputs))
    select[np.arange(source.size), source] = sign
    selection = as_weights(select, sparse=True) if is_sparse(layer.weights) else select
    return DenseLayer(
        matmul(selection, layer.weights), sign * layer.bias[source] + shift, tuple(row_kinds.tolist()), layer.name
    )


def _recombination(layer: DenseLayer, rows: _Rows) -> Affine:
    """The layer's output as an affine map of the canonical rows' outputs."""
    lo, hi, alpha, start, leaky = layer.clip_low, layer.clip_high, layer.alpha, rows.start, rows.leaky
    n = layer.n_outputs
    matrix = np.zeros((n, rows.source.size))
    matrix[np.arange(n), start] = np.where(leaky, 1.0 - alpha, np.where(rows.both | rows.high_only, -1.0, 1.0))
    matrix[np.flatnonzero(leaky), start[leaky] + 1] = alpha[leaky]
    return Affine(matrix, np.where(rows.both | rows.high_only, hi, np.where(rows.low_only, lo, 0.0)))


def _clip_stage(layer: DenseLayer, rows: _Rows) -> DenseLayer:
    """Second stage of the two-sided clips: ``v = relu((hi - lo) - u)``; the other rows pass through."""
    size = rows.source.size
    second = rows.start[rows.both]
    diagonal, bias = np.ones(size), np.zeros(size)
    diagonal[second], bias[second] = -1.0, (layer.clip_high - layer.clip_low)[rows.both]
    stage_kinds = np.full(size, "linear", dtype="<U10")
    stage_kinds[second] = "relu"
    weights = as_weights(np.diag(diagonal), sparse=True) if is_sparse(layer.weights) else np.diag(diagonal)
    return DenseLayer(weights, bias, tuple(stage_kinds.tolist()), f"{layer.name}:clip")


def canonicalize(
    layers: Sequence[Layer], input_scaling: Scaling | None = None, output_scaling: Scaling | None = None
) -> Canonical:
    """The canonical chain of ``layers`` between user inputs and user outputs.

    The input scaling is folded into the first affine map, each lowering's output map into
    the next layer's, and the output scaling into the last layer when it is linear
    (otherwise it is appended as a diagonal linear layer).

    >>> chain = canonicalize([DenseLayer([[1.0]], [0.0], "clip", "c", clip_low=0, clip_high=1)])
    >>> [layer.name for layer in chain.layers], chain.origin
    (['c', 'c:clip', 'c:combine'], (0, 0, 0))
    """
    folded = list(layers)
    if input_scaling is not None:
        first = folded[0]
        weights = scale_columns(first.weights, 1.0 / input_scaling.factor)
        folded[0] = first.with_affine(weights, first.bias - weights @ input_scaling.offset)
    canonical: list[Layer] = []
    origin: list[int] = []
    pending: Affine | None = None
    for index, layer in enumerate(folded):
        if pending is not None:
            layer = _after(layer, pending)
        lowered = lower_layer(layer)
        canonical.extend(lowered.layers)
        origin.extend([index] * len(lowered.layers))
        pending = lowered.output
    last = len(folded) - 1
    if pending is not None:
        canonical.append(DenseLayer(pending.matrix, pending.offset, "linear", f"{folded[-1].name}:combine"))
        origin.append(last)
    if output_scaling is not None:
        final = canonical[-1]
        if final.is_linear:
            canonical[-1] = final.with_affine(
                scale_rows(final.weights, output_scaling.factor),
                final.bias * output_scaling.factor + output_scaling.offset,
            )
        else:
            canonical.append(
                DenseLayer(np.diag(output_scaling.factor), output_scaling.offset, "linear", "output_scaling")
            )
            origin.append(last)
    return Canonical(tuple(canonical), tuple(origin))


def _after(layer: Layer, before: Affine) -> Layer:
    """``layer`` applied to ``before.matrix @ h + before.offset``: the map folded into its weights."""
    matrix = as_weights(before.matrix, sparse=True) if is_sparse(layer.weights) else before.matrix
    return layer.with_affine(matmul(layer.weights, matrix), layer.bias + layer.weights @ before.offset)
