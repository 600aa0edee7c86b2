"""The two layer kinds: :class:`DenseLayer` (an activation per neuron) and :class:`MaxLayer`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np

from pyomo_relu.errors import InvalidNetworkError, ShapeMismatchError
from pyomo_relu.network.activations import ACTIVATIONS, CANONICAL_ACTIVATIONS, SMOOTH_ACTIVATIONS, smooth_value
from pyomo_relu.network.arrays import frozen_array, frozen_weights, per_neuron
from pyomo_relu.sparse import Weights, content_bytes
from pyomo_relu.step import STEP_ACTIVATIONS, step_forward


@dataclass(frozen=True, eq=False, init=False)
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
    ``name`` is the name of the layer or node it came from, used in messages.  After
    construction ``alpha``, ``clip_low`` and ``clip_high`` are read-only arrays of one
    value per neuron (``0``, ``-inf``, ``+inf`` for the neurons they do not apply to).

    >>> layer = DenseLayer(np.eye(3), np.zeros(3), ["relu", "leaky_relu", "clip"],
    ...                    alpha=0.1, clip_low=0.0, clip_high=6.0)
    >>> layer.activation, layer.forward(np.array([[-2.0, -2.0, 7.0]]))
    ('mixed', array([[ 0. , -0.2,  6. ]]))
    """

    weights: Weights
    bias: np.ndarray
    activation: str
    name: str
    alpha: np.ndarray
    clip_low: np.ndarray
    clip_high: np.ndarray
    _kinds: np.ndarray

    def __init__(
        self,
        weights: object,
        bias: object,
        activation: str | Sequence[str] = "relu",
        name: str = "",
        alpha: object = None,
        clip_low: object = None,
        clip_high: object = None,
    ) -> None:
        label = f"layer {name!r}" if name else "dense layer"
        set_ = partial(object.__setattr__, self)
        set_("name", name)
        set_("weights", frozen_weights(weights, f"weights of {label}"))
        set_("bias", frozen_array(bias, f"bias of {label}", 1))
        n = self.bias.shape[0]
        if n != self.weights.shape[0]:
            raise ShapeMismatchError(
                f"{label}: bias has {n} entries but weights have "
                f"{self.weights.shape[0]} rows (weights must be (n_outputs, n_inputs))"
            )
        kinds = _neuron_kinds(activation, n, label)
        set_("_kinds", kinds)
        uniform = set(kinds.tolist())
        if len(uniform) == 1:
            set_("activation", uniform.pop())
        else:  # an empty layer keeps the name it was given
            set_("activation", "mixed" if n or not isinstance(activation, str) else activation)
        for key, values in _activation_parameters(kinds, alpha, clip_low, clip_high, label).items():
            set_(key, values)

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
        return self._kinds

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
        if self.activation == "relu":
            return np.maximum(preactivation, 0.0)
        if self.activation == "linear":
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
                out[..., cols] = smooth_value(name, z)
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

    def with_affine(self, weights: Weights, bias: np.ndarray) -> DenseLayer:
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


def _neuron_kinds(activation: str | Sequence[str], n: int, label: str) -> np.ndarray:
    """The activation name of each of ``n`` neurons, checked, as a read-only array."""
    kinds = np.array([activation] * n if isinstance(activation, str) else list(activation), dtype="<U10")
    if kinds.shape != (n,):
        raise ShapeMismatchError(f"{label}: {kinds.size} activations for {n} neurons")
    unknown = sorted(set(kinds.tolist()) - set(ACTIVATIONS))
    if unknown:
        raise InvalidNetworkError(f"{label}: activation {unknown[0]!r} is not one of {ACTIVATIONS}")
    kinds.setflags(write=False)
    return kinds


def _activation_parameters(
    kinds: np.ndarray, alpha: object, clip_low: object, clip_high: object, label: str
) -> dict[str, np.ndarray]:
    """``alpha``, ``clip_low``, ``clip_high`` per neuron, checked; those of other neurons normalised away."""
    n = kinds.size
    leaky, clip = kinds == "leaky_relu", kinds == "clip"  # normalised: the hash and equality ignore them
    if leaky.any() and alpha is None:
        raise InvalidNetworkError(f"{label}: leaky_relu neurons need alpha= (the negative slope)")
    result = {}
    for key, given, used, fill in (
        ("alpha", alpha, leaky, 0.0),
        ("clip_low", clip_low, clip, -np.inf),
        ("clip_high", clip_high, clip, np.inf),
    ):
        values = np.where(used, per_neuron(given, n, fill, f"{key} of {label}"), fill)
        values.setflags(write=False)
        result[key] = values
    if not np.all(np.isfinite(result["alpha"])):
        raise InvalidNetworkError(f"{label}: alpha contains Inf")
    crossed = np.flatnonzero(clip & (result["clip_low"] > result["clip_high"]))
    if crossed.size:
        j = int(crossed[0])
        raise InvalidNetworkError(
            f"{label}, neuron {j}: clip_low {result['clip_low'][j]} > clip_high {result['clip_high'][j]}"
        )
    return result


class GroupOrder(NamedTuple):
    """The rows sorted by group (stable) and where each group begins in that order."""

    rows: np.ndarray
    starts: np.ndarray


def group_order(groups: np.ndarray) -> GroupOrder:
    """``(rows, starts)``: the rows sorted by group (stable) and where each group begins."""
    order = np.argsort(groups, kind="stable")
    return GroupOrder(order, np.searchsorted(groups[order], np.arange(int(groups.max()) + 1 if groups.size else 0)))


def group_max(values: np.ndarray, groups: np.ndarray, order: GroupOrder | None = None) -> np.ndarray:
    """Maximum over each group of the last axis of ``values`` (any leading batch axes).

    ``order`` is :func:`group_order` of ``groups``, when already known.

    >>> group_max(np.array([[1.0, 5.0, 2.0]]), np.array([0, 1, 0]))
    array([[2., 5.]])
    """
    rows, starts = group_order(groups) if order is None else order
    return np.maximum.reduceat(np.take(values, rows, axis=-1), starts, axis=-1)


@dataclass(frozen=True, eq=False, init=False)
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

    weights: Weights
    bias: np.ndarray
    groups: np.ndarray
    name: str
    _order: GroupOrder
    _n_groups: int

    activation = "max"
    is_linear = False
    is_canonical = True

    def __init__(self, weights: object, bias: object, groups: object, name: str = "") -> None:
        label = f"max layer {name!r}" if name else "max layer"
        set_ = partial(object.__setattr__, self)
        set_("name", name)
        set_("weights", frozen_weights(weights, f"weights of {label}"))
        set_("bias", frozen_array(bias, f"bias of {label}", 1))
        labels = np.array(groups, dtype=np.int64).ravel()
        if labels.size != self.weights.shape[0] or self.bias.size != self.weights.shape[0]:
            raise ShapeMismatchError(
                f"{label}: {self.weights.shape[0]} weight rows, {self.bias.size} biases and "
                f"{labels.size} group labels must agree"
            )
        n_groups = int(labels.max()) + 1 if labels.size else 0
        if labels.size and (labels.min() < 0 or np.bincount(labels, minlength=n_groups).min() == 0):
            raise InvalidNetworkError(f"{label}: groups must number 0 .. n_outputs-1 with none empty")
        labels.setflags(write=False)
        set_("groups", labels)
        set_("_order", group_order(labels))
        set_("_n_groups", n_groups)

    @property
    def n_inputs(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_outputs(self) -> int:
        return self._n_groups

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

    def group_max(self, values: np.ndarray) -> np.ndarray:
        """Maximum over each group of the last axis of ``values``."""
        return group_max(values, self.groups, self._order)

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

    def with_affine(self, weights: Weights, bias: np.ndarray) -> MaxLayer:
        return MaxLayer(weights, bias, self.groups, self.name)

    def hash_parts(self) -> list[bytes]:
        return [
            b"MaxLayer:",
            *content_bytes(self.weights),
            self.bias.astype("<f8").tobytes(),
            self.groups.astype("<i8").tobytes(),
        ]


Layer = DenseLayer | MaxLayer
