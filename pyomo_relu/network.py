"""The network description every other part of pyomo_relu reads.

A :class:`NetworkDefinition` is an immutable chain of layers working on flat float64
vectors, with optional input bounds and optional input/output scaling.  It is pure numpy:
readers (``pyomo_relu.io``) produce it, bounds and formulations consume it.

Conventions
-----------
* Vectors are flat.  A reader that sees a tensor input (``[1, 784, 1]``) records the shape
  in ``input_shape`` and flattens it in row-major (C) order.
* Scaling follows OMLT's ``OffsetScaling`` and allows negative factors::

      x_scaled = (x - input_offset) / input_factor        # what the first layer sees
      y        = y_scaled * output_factor + output_offset # what the user sees

* Input bounds are in the user's (unscaled) space, like the user's own variables.
* :meth:`NetworkDefinition.canonical_layers` folds the scalings into the affine maps, so
  bounds and formulations work on one chain from user inputs to user outputs.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Union

import numpy as np

from pyomo_relu.errors import InvalidNetworkError, InvalidValueError, ShapeMismatchError, UnknownLayerError
from pyomo_relu.sparse import Weights, as_weights, content_bytes, is_sparse, matmul, scale_columns, scale_rows
from pyomo_relu.step import STEP_ACTIVATIONS, step_forward


def _frozen_weights(values: object, what: str) -> Weights:
    """Dense weights as :func:`_frozen_array`; ``scipy.sparse`` ones as a checked read-only CSR array."""
    if not is_sparse(values):
        return _frozen_array(values, what, 2)
    matrix = as_weights(values, sparse=True)
    if not np.all(np.isfinite(matrix.data)):
        raise InvalidNetworkError(f"{what} contains NaN or Inf; check the exported model or the training run")
    for array in (matrix.data, matrix.indices, matrix.indptr):
        array.setflags(write=False)
    return matrix


def _frozen_array(values: object, what: str, ndim: int) -> np.ndarray:
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


#: Activations a :class:`DenseLayer` neuron may have.
ACTIVATIONS = ("relu", "linear", "leaky_relu", "clip", "sigmoid", "tanh", "softplus") + STEP_ACTIVATIONS
#: Smooth activations: read and evaluated, formulated for NLP solvers only.
SMOOTH_ACTIVATIONS = ("sigmoid", "tanh", "softplus")
#: Activations with a MILP formulation.
PIECEWISE_LINEAR_ACTIVATIONS = ("relu", "linear", "leaky_relu", "clip")
#: What canonical layers contain: LeakyReLU and Clip are lowered to ReLU + linear neurons.
CANONICAL_ACTIVATIONS = ("relu", "linear") + SMOOTH_ACTIVATIONS + STEP_ACTIVATIONS


def _per_neuron(values: object, n: int, fill: float, what: str) -> np.ndarray:
    """Broadcast a scalar or per-neuron parameter to ``n`` read-only floats."""
    array = np.full(n, fill, dtype=np.float64) if values is None else np.array(values, dtype=np.float64)
    try:
        array = np.broadcast_to(array, (n,)).copy()
    except ValueError:
        raise ShapeMismatchError(f"{what} has {array.size} entries, the layer has {n} neurons") from None
    if np.any(np.isnan(array)):
        raise InvalidNetworkError(f"{what} contains NaN")
    return array


def _smooth(kind: str, z: np.ndarray) -> np.ndarray:
    """The smooth activations, numerically stable for large ``|z|``."""
    if kind == "sigmoid":
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if kind == "tanh":
        return np.tanh(z)
    return np.logaddexp(0.0, z)  # softplus


def _smooth_slope(kind: str, z: np.ndarray) -> np.ndarray:
    """Derivative of a smooth activation."""
    if kind == "tanh":
        return 1.0 - np.tanh(z) ** 2
    s = _smooth("sigmoid", z)
    return s * (1.0 - s) if kind == "sigmoid" else s  # softplus' = sigmoid


def smooth_lines(kinds: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sound lines ``λ z + c_L <= f(z) <= λ z + c_U`` on ``[lower, upper]`` for smooth ``kinds``.

    ``λ = min(f'(l), f'(u))`` is the least slope of ``f`` on the interval (``f'`` of sigmoid
    and tanh is largest at 0, softplus' is increasing), so ``f(z) >= f(l) + λ (z - l)`` and
    ``f(z) <= f(u) - λ (u - z)``.  Infinite ends give ``λ = 0`` (constant lines) or a
    vacuous upper line.  Returns ``(λ, c_L, c_U)``; entries of other kinds are 0.  ``lower``
    and ``upper`` may have leading batch axes (``kinds`` runs along the last one).

    >>> lam, c_lo, c_hi = smooth_lines(np.array(["sigmoid"]), np.array([-1.0]), np.array([1.0]))
    >>> round(float(lam[0]), 4), bool(c_lo[0] < 0.5 < c_hi[0])
    (0.1966, True)
    """
    lam, c_lo, c_hi = (np.zeros(lower.shape) for _ in range(3))
    for kind in SMOOTH_ACTIVATIONS:
        cols = np.flatnonzero(kinds == kind)
        if not cols.size:
            continue
        lo, hi = lower[..., cols], upper[..., cols]
        with np.errstate(invalid="ignore", over="ignore"):
            slope = np.minimum(_smooth_slope(kind, lo), _smooth_slope(kind, hi))
            slope = np.where(np.isfinite(lo) & np.isfinite(hi), slope, 0.0)
            f_lo, f_hi = _smooth(kind, lo), _smooth(kind, hi)
            lam[..., cols] = slope
            c_lo[..., cols] = np.where(slope > 0, f_lo - slope * lo, f_lo)
            c_hi[..., cols] = np.where(slope > 0, f_hi - slope * hi, f_hi)
    return lam, c_lo, c_hi


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """``output = activation(weights @ input + bias)``, neuron by neuron.

    ``weights`` has shape ``(n_outputs, n_inputs)`` (the PyTorch / ONNX ``transB=1``
    convention).  ``activation`` is one name for every neuron or a sequence of names, one
    per neuron (``"mixed"`` is then reported): ``relu``, ``linear``, ``leaky_relu``
    (``max(z, alpha z)`` with ``alpha`` per neuron or scalar; PReLU is a per-neuron
    ``alpha``), ``clip`` (``min(max(z, clip_low), clip_high)``: ReLU6, hardtanh; an infinite
    side is no bound), the smooth ``sigmoid``, ``tanh``, ``softplus`` (NLP only) and the
    step activations ``step`` (0/1) and ``sign`` (-1/+1), both taking the upper level at
    ``z = 0`` (:mod:`pyomo_relu.step`).
    ``name`` is the name of the layer or node it came from, used in messages.

    >>> layer = DenseLayer(np.eye(3), np.zeros(3), ["relu", "leaky_relu", "clip"],
    ...                    alpha=0.1, clip_low=0.0, clip_high=6.0)
    >>> layer.activation, layer.forward(np.array([[-2.0, -2.0, 7.0]]))
    ('mixed', array([[ 0. , -0.2,  6. ]]))
    """

    weights: np.ndarray
    bias: np.ndarray
    activation: str | Sequence[str] = "relu"
    name: str = ""
    alpha: object = None
    clip_low: object = None
    clip_high: object = None

    def __post_init__(self) -> None:
        label = f"layer {self.name!r}" if self.name else "dense layer"
        set_ = partial(object.__setattr__, self)
        set_("weights", _frozen_weights(self.weights, f"weights of {label}"))
        set_("bias", _frozen_array(self.bias, f"bias of {label}", 1))
        n = self.bias.shape[0]
        if n != self.weights.shape[0]:
            raise ShapeMismatchError(
                f"{label}: bias has {n} entries but weights have "
                f"{self.weights.shape[0]} rows (weights must be (n_outputs, n_inputs))"
            )
        kinds = np.array(
            [self.activation] * n if isinstance(self.activation, str) else list(self.activation), dtype="<U10"
        )
        if kinds.shape != (n,):
            raise ShapeMismatchError(f"{label}: {kinds.size} activations for {n} neurons")
        unknown = sorted(set(kinds.tolist()) - set(ACTIVATIONS))
        if unknown:
            raise InvalidNetworkError(f"{label}: activation {unknown[0]!r} is not one of {ACTIVATIONS}")
        kinds.setflags(write=False)
        set_("_kinds", kinds)
        uniform = set(kinds.tolist())
        if len(uniform) == 1:
            set_("activation", uniform.pop())
        elif n:
            set_("activation", "mixed")  # an empty layer keeps the name it was given
        leaky = kinds == "leaky_relu"
        if leaky.any() and self.alpha is None:
            raise InvalidNetworkError(f"{label}: leaky_relu neurons need alpha= (the negative slope)")
        clip = kinds == "clip"  # parameters of other neurons are normalised away (hash, equality)
        for name, used, fill in (("alpha", leaky, 0.0), ("clip_low", clip, -np.inf), ("clip_high", clip, np.inf)):
            values = np.where(used, _per_neuron(getattr(self, name), n, fill, f"{name} of {label}"), fill)
            values.setflags(write=False)
            set_(name, values)
        if not np.all(np.isfinite(self.alpha)):
            raise InvalidNetworkError(f"{label}: alpha contains Inf")
        crossed = np.flatnonzero((kinds == "clip") & (self.clip_low > self.clip_high))
        if crossed.size:
            j = int(crossed[0])
            raise InvalidNetworkError(
                f"{label}, neuron {j}: clip_low {self.clip_low[j]} > clip_high {self.clip_high[j]}"
            )

    @property
    def n_inputs(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_pre(self) -> int:
        """Number of pre-activations (rows of the affine map): one per neuron."""
        return self.n_outputs

    @property
    def kinds(self) -> np.ndarray:
        """The activation of every neuron (read-only array of names)."""
        return self._kinds  # type: ignore[attr-defined]

    @property
    def relu_mask(self) -> np.ndarray:
        """Neurons with a ReLU activation."""
        return self.kinds == "relu"

    @property
    def smooth_mask(self) -> np.ndarray:
        """Neurons with a smooth (NLP-only) activation."""
        return np.isin(self.kinds, SMOOTH_ACTIVATIONS)

    @property
    def step_mask(self) -> np.ndarray:
        """Neurons with a step activation (``step``, ``sign``; :mod:`pyomo_relu.step`)."""
        return np.isin(self.kinds, STEP_ACTIVATIONS)

    @property
    def is_linear(self) -> bool:
        """True when every neuron is linear."""
        return bool(np.all(self.kinds == "linear"))

    @property
    def is_canonical(self) -> bool:
        """True when every neuron is relu, linear or smooth (no lowering needed)."""
        return bool(np.all(np.isin(self.kinds, CANONICAL_ACTIVATIONS)))

    def preactivation(self, inputs: np.ndarray) -> np.ndarray:
        """Affine part for a batch ``(batch, n_inputs)`` -> ``(batch, n_outputs)``."""
        return inputs @ self.weights.T + self.bias

    def activate(self, preactivation: np.ndarray) -> np.ndarray:
        """Apply each neuron's activation."""
        kind = self.activation
        if kind == "relu":
            return np.maximum(preactivation, 0.0)
        if kind == "linear":
            return preactivation
        out = np.array(preactivation, dtype=np.float64, copy=True)
        kinds = self.kinds
        for name in set(kinds.tolist()) - {"linear"}:
            cols = np.flatnonzero(kinds == name)
            z = preactivation[..., cols]
            if name == "relu":
                out[..., cols] = np.maximum(z, 0.0)
            elif name == "leaky_relu":
                out[..., cols] = np.where(z > 0, z, self.alpha[cols] * z)
            elif name == "clip":
                out[..., cols] = np.clip(z, self.clip_low[cols], self.clip_high[cols])
            elif name in STEP_ACTIVATIONS:
                out[..., cols] = step_forward(name, z)
            else:
                out[..., cols] = _smooth(name, z)
        return out

    def output_bounds(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the outputs for pre-activations in ``[lower, upper]`` (exact per neuron)."""
        if self.activation == "linear":
            return lower, upper
        with np.errstate(invalid="ignore", over="ignore"):
            ends = np.stack([self.activate(lower), self.activate(upper)])
        low, high = ends.min(axis=0), ends.max(axis=0)
        leaky = self.kinds == "leaky_relu"
        straddle = leaky & (lower < 0) & (upper > 0) & (self.alpha < 0)
        low = np.where(straddle, np.minimum(low, 0.0), low)  # max(z, alpha z) with alpha < 0
        return low, high

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        return self.activate(self.preactivation(inputs))

    def with_affine(self, weights: np.ndarray, bias: np.ndarray) -> DenseLayer:
        """The same layer with another affine map (used to fold scalings)."""
        return DenseLayer(
            weights,
            bias,
            tuple(self.kinds.tolist()) if self.activation == "mixed" else self.activation,
            self.name,
            self.alpha,
            self.clip_low,
            self.clip_high,
        )

    def hash_parts(self) -> list[bytes]:
        """What the network hash covers for this layer."""
        parts = [
            f"DenseLayer:{self.activation}:".encode(),
            *content_bytes(self.weights),
            self.bias.astype("<f8").tobytes(),
        ]
        if self.activation not in ("relu", "linear"):
            parts += [
                ",".join(self.kinds.tolist()).encode(),
                self.alpha.astype("<f8").tobytes(),
                self.clip_low.astype("<f8").tobytes(),
                self.clip_high.astype("<f8").tobytes(),
            ]
        return parts


def group_order(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, starts)``: the rows sorted by group (stable) and where each group begins."""
    order = np.argsort(groups, kind="stable")
    return order, np.searchsorted(groups[order], np.arange(int(groups.max()) + 1 if groups.size else 0))


def group_max(values: np.ndarray, groups: np.ndarray, order: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Maximum over each group of the last axis of ``values`` (any leading batch axes).

    ``order`` is :func:`group_order` of ``groups``, when already known.
    """
    rows, starts = group_order(groups) if order is None else order
    return np.maximum.reduceat(np.take(values, rows, axis=-1), starts, axis=-1)


@dataclass(frozen=True, eq=False)
class MaxLayer:
    """Max of affine functions: ``output[g] = max(z[i] for i with groups[i] == g)``, ``z = W h + b``.

    Max pooling is the case where every row of ``weights`` selects one input (a window
    entry); a general max-of-affine unit (Anderson et al. 2020) has arbitrary rows.  A
    group of one row is a plain linear output.  Groups are numbered ``0 .. n_outputs-1``,
    every one non-empty.

    >>> pool = MaxLayer(np.eye(4), np.zeros(4), [0, 0, 1, 1])
    >>> pool.forward(np.array([[1.0, 3.0, -2.0, -5.0]]))
    array([[ 3., -2.]])
    """

    weights: np.ndarray
    bias: np.ndarray
    groups: np.ndarray
    name: str = ""

    activation = "max"

    def __post_init__(self) -> None:
        label = f"max layer {self.name!r}" if self.name else "max layer"
        set_ = partial(object.__setattr__, self)
        set_("weights", _frozen_weights(self.weights, f"weights of {label}"))
        set_("bias", _frozen_array(self.bias, f"bias of {label}", 1))
        groups = np.array(self.groups, dtype=np.int64).ravel()
        if groups.size != self.weights.shape[0] or self.bias.size != self.weights.shape[0]:
            raise ShapeMismatchError(
                f"{label}: {self.weights.shape[0]} weight rows, {self.bias.size} biases and "
                f"{groups.size} group labels must agree"
            )
        n_groups = int(groups.max()) + 1 if groups.size else 0
        if groups.size and (groups.min() < 0 or np.bincount(groups, minlength=n_groups).min() == 0):
            raise InvalidNetworkError(f"{label}: groups must number 0 .. n_outputs-1 with none empty")
        groups.setflags(write=False)
        set_("groups", groups)
        set_("_order", group_order(groups))
        set_("_n_groups", n_groups)

    @property
    def n_inputs(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self._n_groups)  # type: ignore[attr-defined]

    @property
    def n_pre(self) -> int:
        return int(self.weights.shape[0])

    @property
    def kinds(self) -> np.ndarray:
        return np.full(self.n_pre, "max")

    @property
    def relu_mask(self) -> np.ndarray:
        return np.zeros(self.n_pre, dtype=bool)

    @property
    def smooth_mask(self) -> np.ndarray:
        return np.zeros(self.n_pre, dtype=bool)

    step_mask = smooth_mask

    is_linear = False
    is_canonical = True

    def group_max(self, values: np.ndarray) -> np.ndarray:
        """Maximum over each group of the last axis of ``values``."""
        return group_max(values, self.groups, self._order)  # type: ignore[attr-defined]

    def candidates(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows that can be their group's maximum (``u_i >= max_k l_k``), split by group.

        Returns ``(single, several)``: the rows alone among their group's candidates (the
        output equals them) and the rows of groups where several can win (a choice to model).
        """
        candidate = upper >= self.group_max(lower)[self.groups]
        count = np.bincount(self.groups[candidate], minlength=self.n_outputs)
        return (
            np.flatnonzero(candidate & (count[self.groups] == 1)),
            np.flatnonzero(candidate & (count[self.groups] > 1)),
        )

    def preactivation(self, inputs: np.ndarray) -> np.ndarray:
        return inputs @ self.weights.T + self.bias

    def activate(self, preactivation: np.ndarray) -> np.ndarray:
        return self.group_max(preactivation)

    def output_bounds(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.group_max(lower), self.group_max(upper)

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        return self.activate(self.preactivation(inputs))

    def with_affine(self, weights: np.ndarray, bias: np.ndarray) -> MaxLayer:
        return MaxLayer(weights, bias, self.groups, self.name)

    def hash_parts(self) -> list[bytes]:
        return [
            b"MaxLayer:",
            *content_bytes(self.weights),
            self.bias.astype("<f8").tobytes(),
            self.groups.astype("<i8").tobytes(),
        ]


Layer = Union[DenseLayer, MaxLayer]


def lower_layer(layer: Layer) -> tuple[list[Layer], tuple[np.ndarray, np.ndarray] | None]:
    """Canonical layers computing ``layer``, and the affine map ``(R, r)`` from their output.

    The layer's output is ``R @ h + r`` where ``h`` is the output of the last returned
    layer (``None`` when ``h`` is the output itself).  Exact rewritings by ReLUs::

        leaky_relu(z) = (1 - alpha) relu(z) + alpha z
        clip(z, lo, +inf) = lo + relu(z - lo)        clip(z, -inf, hi) = hi - relu(hi - z)
        clip(z, lo, hi)   = hi - relu((hi - lo) - relu(z - lo))       (two layers)

    The nested form for a two-sided clip keeps interval bounds exact (each step is monotone).

    >>> layers, (R, r) = lower_layer(DenseLayer([[2.0]], [0.0], "leaky_relu", alpha=0.1))
    >>> [l.kinds.tolist() for l in layers], R, r
    ([['relu', 'linear']], array([[0.9, 0.1]]), array([0.]))
    """
    if layer.is_canonical:
        return [layer], None
    assert isinstance(layer, DenseLayer)
    n, kinds = layer.n_outputs, layer.kinds
    lo, hi = layer.clip_low, layer.clip_high
    leaky = kinds == "leaky_relu"
    clip = kinds == "clip"
    both = clip & np.isfinite(lo) & np.isfinite(hi)  # hi - relu((hi - lo) - relu(z - lo))
    low_only = clip & np.isfinite(lo) & ~np.isfinite(hi)  # lo + relu(z - lo)
    high_only = clip & ~np.isfinite(lo) & np.isfinite(hi)  # hi - relu(hi - z)
    # Neuron j expands into rows start[j] (and start[j] + 1 for leaky_relu: its linear copy z).
    # Each row's affine map is sign * (w_j h + b_j) + shift.
    start = np.r_[0, np.cumsum(1 + leaky)[:-1]]
    source = np.repeat(np.arange(n), 1 + leaky)
    copy = np.zeros(source.size, dtype=bool)
    copy[start[leaky] + 1] = True
    sign = np.where(high_only[source] & ~copy, -1.0, 1.0)
    shift = np.where(
        copy, 0.0, np.where((both | low_only)[source], -lo[source], np.where(high_only[source], hi[source], 0.0))
    )
    row_kinds = np.where(
        copy,
        "linear",
        np.where(
            (leaky | both | low_only | high_only)[source], "relu", np.where(clip[source], "linear", kinds[source])
        ),
    )
    select = np.zeros((source.size, n))
    select[np.arange(source.size), source] = sign
    if is_sparse(layer.weights):
        select = as_weights(select, sparse=True)
    first = DenseLayer(
        matmul(select, layer.weights), sign * layer.bias[source] + shift, tuple(row_kinds.tolist()), layer.name
    )
    # The output: R @ h + offset.
    R = np.zeros((n, source.size))
    R[np.arange(n), start] = np.where(leaky, 1.0 - layer.alpha, np.where(both | high_only, -1.0, 1.0))
    R[np.flatnonzero(leaky), start[leaky] + 1] = layer.alpha[leaky]
    offset = np.where(both | high_only, hi, np.where(low_only, lo, 0.0))
    if not both.any():
        return [first], (R, offset)
    # Second stage of the two-sided clips: v = relu((hi - lo) - u); the others pass through.
    second = start[both]
    diagonal, bias = np.ones(source.size), np.zeros(source.size)
    diagonal[second], bias[second] = -1.0, (hi - lo)[both]
    stage_kinds = np.full(source.size, "linear", dtype="<U10")
    stage_kinds[second] = "relu"
    weights = as_weights(np.diag(diagonal), sparse=True) if is_sparse(layer.weights) else np.diag(diagonal)
    return [first, DenseLayer(weights, bias, tuple(stage_kinds.tolist()), f"{layer.name}:clip")], (R, offset)


@dataclass(frozen=True, eq=False)
class Scaling:
    """Affine scaling ``scaled = (value - offset) / factor``; factors may be negative."""

    offset: np.ndarray
    factor: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "offset", _frozen_array(self.offset, "scaling offset", 1))
        object.__setattr__(self, "factor", _frozen_array(self.factor, "scaling factor", 1))
        if self.offset.shape != self.factor.shape:
            raise ShapeMismatchError(f"scaling offset has {self.offset.size} entries, factor {self.factor.size}")
        if np.any(self.factor == 0):
            raise InvalidNetworkError(
                f"scaling factor is zero at index {int(np.flatnonzero(self.factor == 0)[0])}; "
                "a factor must be non-zero (negative values are allowed)"
            )

    @property
    def size(self) -> int:
        return int(self.offset.size)

    def scale(self, values: np.ndarray) -> np.ndarray:
        return (values - self.offset) / self.factor

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.factor + self.offset


def _as_bounds_pair(input_bounds: object, n_inputs: int, what: str = "input") -> tuple[np.ndarray, np.ndarray] | None:
    """Normalise the accepted spellings of input bounds to ``(lower, upper)`` arrays.

    Accepted forms (``None`` for an absent side, which becomes ``∓inf``):

    * a sequence of ``(lb, ub)`` pairs, one per input (lists or tuples), or an
      array of shape ``(n_inputs, 2)``;
    * a dict ``{input_index: (lb, ub)}`` (inputs not named have no bounds);
    * a pair ``(lower, upper)`` of numpy arrays or scalars (scalars apply to every input).

    Malformed values raise :class:`ShapeMismatchError` (wrong count, index or pair) or
    :class:`InvalidValueError` (not a number), naming the ``what`` index.  NaN is kept, for
    the caller to refuse with its own words (:func:`_check_input_box`).
    """
    if input_bounds is None:
        return None
    name = f"{what}_bounds"
    lower = np.full(n_inputs, -np.inf)
    upper = np.full(n_inputs, np.inf)
    if isinstance(input_bounds, Mapping):
        items: Iterable = input_bounds.items()
    elif _is_lower_upper_pair(input_bounds):
        return tuple(
            _bounds_side(side, n_inputs, fill, f"{name} ({side_name})")  # type: ignore[return-value]
            for side, fill, side_name in zip(input_bounds, (-np.inf, np.inf), ("lower", "upper"))
        )
    elif isinstance(input_bounds, (str, bytes)) or not isinstance(input_bounds, Iterable):
        raise InvalidValueError(
            f"{name} must be (lb, ub) pairs, a dict {{index: (lb, ub)}} or a (lower, upper) pair of "
            f"arrays, not {type(input_bounds).__name__} {input_bounds!r:.60}"
        )
    else:
        pairs = list(input_bounds)
        if len(pairs) != n_inputs:
            raise ShapeMismatchError(f"{name} has {len(pairs)} entries but the network has {n_inputs} {what}s")
        items = enumerate(pairs)
    for key, pair in items:
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) or not 0 <= key < n_inputs:
            raise ShapeMismatchError(
                f"{name} names {what} {key!r}, but the network has {n_inputs} {what}s (0 .. {n_inputs - 1})"
            )
        index = int(key)
        lb, ub = _pair(pair, f"{name}, {what} {index}")
        lower[index] = _bound_value(lb, -np.inf, f"{name}, {what} {index}, lower bound")
        upper[index] = _bound_value(ub, np.inf, f"{name}, {what} {index}, upper bound")
    return lower, upper


def _is_lower_upper_pair(value: object) -> bool:
    """True for ``(lower, upper)`` given as two numpy arrays or two scalars."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return False
    return all(isinstance(side, np.ndarray) or side is None or np.isscalar(side) for side in value)


def _pair(pair: object, where: str) -> tuple[object, object]:
    """``(lb, ub)`` from a two-element sequence or array."""
    try:
        items = None if isinstance(pair, (str, bytes)) else list(pair)  # type: ignore[call-overload]
    except TypeError:
        items = None
    if items is None or len(items) != 2:
        raise ShapeMismatchError(f"{where}: expected a pair (lb, ub), got {pair!r:.60}")
    return items[0], items[1]


def _bound_value(value: object, fill: float, where: str) -> float:
    """``value`` as a float (``fill`` for ``None``); NaN is kept for the caller to refuse."""
    if value is None:
        return fill
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidValueError(f"{where}: {value!r:.40} is not a number (use None for no bound)") from None


def _bounds_side(value: object, n: int, fill: float, where: str) -> np.ndarray:
    """One side of a ``(lower, upper)`` pair: ``None``, a scalar or ``n`` values (``None`` entries allowed)."""
    if value is None:
        return np.full(n, fill)
    flat = [value] if np.isscalar(value) else np.ravel(np.asarray(value, dtype=object)).tolist()
    values = np.array([_bound_value(v, fill, f"{where}, entry {i}") for i, v in enumerate(flat)], dtype=float)
    if values.size not in (1, n):
        raise ShapeMismatchError(f"{where} has {values.size} entries but the network has {n}")
    return np.broadcast_to(values, (n,)).copy()


def _check_input_box(lower: np.ndarray, upper: np.ndarray, what: str = "input") -> None:
    """Refuse NaN, a lower bound of ``+inf``, an upper bound of ``-inf`` and crossed bounds."""
    for side, values, wrong in (("lower", lower, np.inf), ("upper", upper, -np.inf)):
        bad = np.flatnonzero(np.isnan(values) | (values == wrong))
        if bad.size:
            i = int(bad[0])
            raise InvalidValueError(
                f"{what}_bounds: {what} {i} has {side} bound {values[i]}; give a finite number, or None (or "
                f"{'-' if side == 'lower' else '+'}inf) for no bound"
            )
    crossed = np.flatnonzero(lower > upper)
    if crossed.size:
        i = int(crossed[0])
        raise InvalidNetworkError(f"{what} {i} has lower bound {lower[i]} > upper bound {upper[i]}")


class NetworkDefinition:
    """An immutable feed-forward network: layers, input box and scalings.

    >>> import numpy as np
    >>> net = NetworkDefinition(
    ...     [DenseLayer([[1.0, -1.0], [0.5, 0.5]], [0.0, -1.0], "relu"),
    ...      DenseLayer([[1.0, 2.0]], [0.5], "linear")],
    ...     input_bounds=[(-1, 1), (-1, 1)])
    >>> net.evaluate([[1.0, 0.0], [0.0, 1.0]])
    array([[1.5],
           [0.5]])
    >>> net.n_inputs, net.n_outputs, [layer.activation for layer in net.layers]
    (2, 1, ['relu', 'linear'])
    """

    layers: tuple[Layer, ...]
    input_bounds: tuple[np.ndarray, np.ndarray] | None
    input_scaling: Scaling | None
    output_scaling: Scaling | None
    input_shape: tuple[int, ...] | None
    input_names: tuple[str, ...] | None
    output_names: tuple[str, ...] | None
    source: str

    def __init__(
        self,
        layers: Sequence[Layer],
        input_bounds: object = None,
        input_scaling: Scaling | None = None,
        output_scaling: Scaling | None = None,
        input_shape: Sequence[int] | None = None,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        source: str = "",
    ) -> None:
        layers = tuple(layers)
        if not layers:
            raise InvalidNetworkError("a network needs at least one layer")
        for index in range(1, len(layers)):
            before, after = layers[index - 1], layers[index]
            if after.n_inputs != before.n_outputs:
                raise ShapeMismatchError(
                    f"layer {index} ({after.name or type(after).__name__}) takes "
                    f"{after.n_inputs} inputs but layer {index - 1} "
                    f"({before.name or type(before).__name__}) gives {before.n_outputs}"
                )
        n_in, n_out = layers[0].n_inputs, layers[-1].n_outputs
        pair = _as_bounds_pair(input_bounds, n_in)
        if pair is not None:
            _check_input_box(*pair)
            for array in pair:
                array.setflags(write=False)
        for scaling, size, what in ((input_scaling, n_in, "input"), (output_scaling, n_out, "output")):
            if scaling is not None and scaling.size != size:
                raise ShapeMismatchError(
                    f"{what} scaling has {scaling.size} entries but the network has {size} {what}s"
                )
        if input_shape is not None and int(np.prod(input_shape)) != n_in:
            raise ShapeMismatchError(
                f"input_shape {tuple(input_shape)} has {int(np.prod(input_shape))} entries, "
                f"the first layer takes {n_in}"
            )
        for names, size, what in ((input_names, n_in, "input"), (output_names, n_out, "output")):
            if names is not None and len(names) != size:
                raise ShapeMismatchError(f"{len(names)} {what} names for {size} {what}s")
        setattr_ = object.__setattr__  # instances are read-only after __init__
        setattr_(self, "layers", layers)
        setattr_(self, "input_bounds", pair)
        setattr_(self, "input_scaling", input_scaling)
        setattr_(self, "output_scaling", output_scaling)
        setattr_(self, "input_shape", tuple(int(d) for d in input_shape) if input_shape else None)
        setattr_(self, "input_names", tuple(input_names) if input_names else None)
        setattr_(self, "output_names", tuple(output_names) if output_names else None)
        setattr_(self, "source", source)
        setattr_(self, "_cache", {})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("NetworkDefinition is immutable; use with_input_bounds() or build a new one")

    # ------------------------------------------------------------------ shape
    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_inputs

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_outputs

    @property
    def n_relu_neurons(self) -> int:
        return sum(int(layer.relu_mask.sum()) for layer in self.canonical_layers)

    # ---------------------------------------------------------------- bounds
    @property
    def input_lower(self) -> np.ndarray:
        """Lower input bounds (``-inf`` where absent)."""
        return self.input_bounds[0] if self.input_bounds else np.full(self.n_inputs, -np.inf)

    @property
    def input_upper(self) -> np.ndarray:
        """Upper input bounds (``+inf`` where absent)."""
        return self.input_bounds[1] if self.input_bounds else np.full(self.n_inputs, np.inf)

    def with_input_bounds(self, input_bounds: object) -> NetworkDefinition:
        """A copy of this network with other input bounds (same accepted forms)."""
        return NetworkDefinition(
            self.layers,
            input_bounds,
            self.input_scaling,
            self.output_scaling,
            self.input_shape,
            self.input_names,
            self.output_names,
            self.source,
        )

    # --------------------------------------------------------------- forward
    def evaluate(self, inputs: object) -> np.ndarray:
        """Batched forward pass in the user's units: ``(batch, n_in) -> (batch, n_out)``.

        A 1-D input is treated as one sample and gives a 1-D output.
        """
        values, single = self._as_batch(inputs)
        if self.input_scaling is not None:
            values = self.input_scaling.scale(values)
        for layer in self.layers:
            values = layer.forward(values)
        if self.output_scaling is not None:
            values = self.output_scaling.unscale(values)
        return values[0] if single else values

    def preactivations(self, inputs: object) -> list[np.ndarray]:
        """Pre-activation values of every canonical layer for a batch of inputs."""
        values, _ = self._as_batch(inputs)
        result = []
        for layer in self.canonical_layers:
            pre = layer.preactivation(values)
            result.append(pre)
            values = layer.activate(pre)
        return result

    def _as_batch(self, inputs: object) -> tuple[np.ndarray, bool]:
        """``inputs`` as a ``(batch, n_inputs)`` float array; refuses NaN, Inf and non-numbers."""
        try:
            values = np.asarray(inputs, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidValueError(
                f"network inputs must be numbers of shape (batch, {self.n_inputs}) or ({self.n_inputs},): {error}"
            ) from None
        single = values.ndim == 1
        if single:
            values = values[None, :]
        if values.ndim != 2 or values.shape[1] != self.n_inputs:
            raise ShapeMismatchError(
                f"expected inputs of shape (batch, {self.n_inputs}) or ({self.n_inputs},), got {np.shape(inputs)}"
            )
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            row, col = (int(v) for v in bad[0])
            where = f"input {col}" if single else f"sample {row}, input {col}"
            raise InvalidValueError(
                f"network inputs contain {values[row, col]} ({where}; {len(bad)} non-finite value(s) "
                "in all): the forward pass needs finite numbers"
            )
        return values, single

    # ------------------------------------------------------------- canonical
    @property
    def canonical_layers(self) -> tuple[Layer, ...]:
        """Layers with the scalings folded in and every activation lowered to ReLU/linear.

        Canonical layers are what bounds and formulations work on: a chain from user
        inputs to user outputs whose neurons are ``relu``, ``linear`` or smooth, plus
        :class:`MaxLayer` s.  LeakyReLU, PReLU and Clip neurons are rewritten exactly with
        ReLUs (:func:`lower_layer`), the recombination being folded into the next layer's
        affine map.  The input scaling is folded into the first affine map; the output
        scaling into the last layer when it is linear, otherwise it is appended as a
        diagonal linear layer.  Folding never changes a ReLU's pre-activation, so bounds
        computed on the canonical chain hold for the original network.
        :attr:`canonical_origin` says which of :attr:`layers` each one comes from.
        """
        return self._canonical[0]

    @property
    def canonical_origin(self) -> tuple[int, ...]:
        """For each canonical layer, the index in :attr:`layers` of the layer it computes.

        A lowered two-sided clip gives two canonical layers with the same origin; the
        recombination layer a lowered last layer needs and an appended output-scaling
        layer belong to the last layer.

        >>> net = NetworkDefinition([DenseLayer(np.eye(2), np.zeros(2), "clip", "c", clip_low=0, clip_high=1),
        ...                          DenseLayer(np.ones((1, 2)), [0.0], "linear", "out")])
        >>> net.canonical_origin, net.canonical_indices("c")
        ((0, 0, 1), (0, 1))
        """
        return self._canonical[1]

    @cached_property
    def _canonical(self) -> tuple[tuple[Layer, ...], tuple[int, ...]]:
        layers = list(self.layers)
        if self.input_scaling is not None:
            first, scaling = layers[0], self.input_scaling
            weights = scale_columns(first.weights, 1.0 / scaling.factor)
            layers[0] = first.with_affine(weights, first.bias - weights @ scaling.offset)
        canonical: list[Layer] = []
        origin: list[int] = []
        pending: tuple[np.ndarray, np.ndarray] | None = None
        for index, layer in enumerate(layers):
            if pending is not None:
                R, r = pending
                if is_sparse(layer.weights):
                    R = as_weights(R, sparse=True)
                layer = layer.with_affine(matmul(layer.weights, R), layer.bias + layer.weights @ r)
            lowered, pending = lower_layer(layer)
            canonical.extend(lowered)
            origin.extend([index] * len(lowered))
        last = len(layers) - 1
        if pending is not None:
            canonical.append(DenseLayer(pending[0], pending[1], "linear", f"{layers[-1].name}:combine"))
            origin.append(last)
        if self.output_scaling is not None:
            final, scaling = canonical[-1], self.output_scaling
            if final.is_linear:
                canonical[-1] = final.with_affine(
                    scale_rows(final.weights, scaling.factor), final.bias * scaling.factor + scaling.offset
                )
            else:
                canonical.append(DenseLayer(np.diag(scaling.factor), scaling.offset, "linear", "output_scaling"))
                origin.append(last)
        return tuple(canonical), tuple(origin)

    # ------------------------------------------------------------ user layers
    def layer_index(self, key: object) -> int:
        """The index in :attr:`layers` of ``key``: that index itself, or a layer's name.

        Names are those the reader gave (ONNX node names, Keras layer names); see
        :meth:`summary`.  A name without ``:`` also matches the layers named ``name:...``
        (Keras layers read through the ONNX translation are named ``layer:op``).  A key that names no layer (or two) raises
        :class:`~pyomo_relu.errors.UnknownLayerError` listing the valid keys.
        """
        n = len(self.layers)
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            if 0 <= int(key) < n:
                return int(key)
            raise UnknownLayerError(
                f"layer {int(key)} does not exist: the network has {n} layer(s), numbered 0 .. {n - 1} "
                f"as in net.layers (before lowering); valid keys: {self._layer_keys()}"
            )
        if isinstance(key, str):
            matches = [i for i, layer in enumerate(self.layers) if layer.name == key]
            if not matches:  # "fc" for "fc:Relu": Keras layers read through ONNX are named layer:op
                matches = [i for i, layer in enumerate(self.layers) if layer.name.split(":")[0] == key]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise UnknownLayerError(f"layer name {key!r} is ambiguous: layers {matches} all have it; use the index")
            close = difflib.get_close_matches(key, [layer.name for layer in self.layers if layer.name], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownLayerError(f"no layer is named {key!r}{hint}; valid keys: {self._layer_keys()}")
        raise UnknownLayerError(
            f"a layer is named by its index in net.layers or its name, not by {type(key).__name__} "
            f"{key!r}; valid keys: {self._layer_keys()}"
        )

    def canonical_indices(self, key: object) -> tuple[int, ...]:
        """The canonical layers that layer ``key`` (an index or a name, see :meth:`layer_index`) became."""
        index = self.layer_index(key)
        return tuple(k for k, origin in enumerate(self.canonical_origin) if origin == index)

    def _layer_keys(self) -> str:
        return ", ".join(f"{i}" + (f" ({layer.name!r})" if layer.name else "") for i, layer in enumerate(self.layers))

    @property
    def has_smooth_activations(self) -> bool:
        """True when some neuron is sigmoid, tanh or softplus (no MILP formulation)."""
        return any(layer.smooth_mask.any() for layer in self.canonical_layers)

    # ------------------------------------------------------------------ hash
    def content_hash(self) -> str:
        """SHA-256 of the structure, weights and scalings (not the input bounds)."""
        if "hash" not in self._cache:
            digest = hashlib.sha256()
            for layer in self.layers:
                for part in layer.hash_parts():
                    digest.update(part)
            for scaling in (self.input_scaling, self.output_scaling):
                digest.update(b"scaling:")
                if scaling is not None:
                    digest.update(scaling.offset.astype("<f8").tobytes())
                    digest.update(scaling.factor.astype("<f8").tobytes())
            self._cache["hash"] = digest.hexdigest()
        return self._cache["hash"]

    def summary(self) -> str:
        """A table of :attr:`layers`: index, name, kind, sizes and the canonical layers each became.

        The index and the name are the keys of per-layer choices such as
        ``build(formulation={"default": "bigm", 1: "extended"})``.

        >>> net = NetworkDefinition([DenseLayer(np.eye(2), np.zeros(2), "relu", "hidden"),
        ...                          DenseLayer(np.eye(2), np.zeros(2), "clip", "relu6", clip_low=0, clip_high=6),
        ...                          DenseLayer(np.ones((1, 2)), [0.0], "linear", "out")])
        >>> print(net.summary())
        NetworkDefinition: 2 inputs -> 1 output, 3 layers (4 canonical)
        index  name    kind          inputs  outputs  canonical
            0  hidden  dense relu         2        2  0
            1  relu6   dense clip         2        2  1-2
            2  out     dense linear       2        1  3
        """
        counts: dict[int, list[int]] = {}
        for k, origin in enumerate(self.canonical_origin):
            counts.setdefault(origin, []).append(k)
        rows = [("index", "name", "kind", "inputs", "outputs", "canonical")]
        for index, layer in enumerate(self.layers):
            ks = counts[index]
            rows.append(
                (
                    str(index),
                    layer.name or "-",
                    _layer_kind(layer),
                    str(layer.n_inputs),
                    str(layer.n_outputs),
                    f"{ks[0]}" if len(ks) == 1 else f"{ks[0]}-{ks[-1]}",
                )
            )
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        right = (True, False, False, True, True, False)
        lines = [
            f"NetworkDefinition: {self.n_inputs} input{'s' * (self.n_inputs != 1)} -> "
            f"{self.n_outputs} output{'s' * (self.n_outputs != 1)}, {len(self.layers)} "
            f"layer{'s' * (len(self.layers) != 1)} ({len(self.canonical_layers)} canonical)"
        ]
        for row in rows:
            cells = [cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right)]
            lines.append("  ".join(cells).rstrip())
        for what, scaling in (("input", self.input_scaling), ("output", self.output_scaling)):
            if scaling is not None:
                lines.append(f"{what} scaling: {scaling.size} offsets and factors (folded into the canonical layers)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        sizes = "-".join([str(self.n_inputs)] + [str(layer.n_outputs) for layer in self.layers])
        return f"<NetworkDefinition {sizes} hash={self.content_hash()[:12]}>"


def _layer_kind(layer: Layer) -> str:
    """``dense relu``, ``dense mixed (relu 8, linear 2)`` or ``max (4 groups of 9 rows)``."""
    if isinstance(layer, MaxLayer):
        return f"max ({layer.n_outputs} groups of {layer.n_pre} rows)"
    if layer.activation != "mixed":
        return f"dense {layer.activation}"
    names, counts = np.unique(layer.kinds, return_counts=True)
    return "dense mixed (" + ", ".join(f"{n} {c}" for n, c in zip(names.tolist(), counts.tolist())) + ")"


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def layer_to_dict(layer: Layer) -> dict:
    """A layer as JSON-ready data (floats round-trip exactly; ±inf clip bounds as ``None``)."""
    if is_sparse(layer.weights):
        w = layer.weights
        data: dict = {
            "sparse_weights": {
                "shape": list(w.shape),
                "indptr": w.indptr.tolist(),
                "indices": w.indices.tolist(),
                "data": w.data.tolist(),
            }
        }
    else:
        data = {"weights": layer.weights.tolist()}
    data.update(bias=layer.bias.tolist(), name=layer.name)
    if isinstance(layer, MaxLayer):
        data.update(kind="max", groups=layer.groups.tolist())
        return data
    data["activation"] = layer.kinds.tolist() if layer.activation == "mixed" else layer.activation
    if np.any(layer.kinds == "leaky_relu"):
        data["alpha"] = layer.alpha.tolist()
    if np.any(layer.kinds == "clip"):
        data["clip_low"], data["clip_high"] = _json_floats(layer.clip_low), _json_floats(layer.clip_high)
    return data


def layer_from_dict(data: dict) -> Layer:
    """Inverse of :func:`layer_to_dict`."""
    if "sparse_weights" in data:
        import scipy.sparse as sp

        w = data["sparse_weights"]
        weights = sp.csr_array(
            (np.array(w["data"], float), np.array(w["indices"], np.int64), np.array(w["indptr"], np.int64)),
            shape=tuple(w["shape"]),
        )
    else:
        weights = np.array(data["weights"], dtype=float).reshape(len(data["bias"]), -1)
    if data.get("kind") == "max":
        return MaxLayer(weights, data["bias"], data["groups"], data.get("name", ""))
    side = lambda key, fill: None if key not in data else [fill if v is None else v for v in data[key]]  # noqa: E731
    return DenseLayer(
        weights,
        data["bias"],
        data.get("activation", "relu"),
        data.get("name", ""),
        data.get("alpha"),
        side("clip_low", -np.inf),
        side("clip_high", np.inf),
    )
