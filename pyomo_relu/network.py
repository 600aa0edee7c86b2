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

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from pyomo_relu.errors import InvalidNetworkError, ShapeMismatchError

#: Activations that have a MILP formulation.
PIECEWISE_LINEAR_ACTIVATIONS = ("relu", "linear")
ACTIVATIONS = PIECEWISE_LINEAR_ACTIVATIONS


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


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """``output = activation(weights @ input + bias)``.

    ``weights`` has shape ``(n_outputs, n_inputs)`` (the PyTorch / ONNX ``transB=1``
    convention).  ``name`` is the name of the layer or node it came from, used in messages.
    """

    weights: np.ndarray
    bias: np.ndarray
    activation: str = "relu"
    name: str = ""

    def __post_init__(self) -> None:
        label = f"layer {self.name!r}" if self.name else "dense layer"
        object.__setattr__(self, "weights", _frozen_array(self.weights, f"weights of {label}", 2))
        object.__setattr__(self, "bias", _frozen_array(self.bias, f"bias of {label}", 1))
        if self.bias.shape[0] != self.weights.shape[0]:
            raise ShapeMismatchError(
                f"{label}: bias has {self.bias.shape[0]} entries but weights have "
                f"{self.weights.shape[0]} rows (weights must be (n_outputs, n_inputs))"
            )
        if self.activation not in ACTIVATIONS:
            raise InvalidNetworkError(
                f"{label}: activation {self.activation!r} is not one of {ACTIVATIONS}"
            )

    @property
    def n_inputs(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.weights.shape[0])

    def preactivation(self, inputs: np.ndarray) -> np.ndarray:
        """Affine part for a batch ``(batch, n_inputs)`` -> ``(batch, n_outputs)``."""
        return inputs @ self.weights.T + self.bias

    def activate(self, preactivation: np.ndarray) -> np.ndarray:
        """Apply the activation elementwise."""
        if self.activation == "relu":
            return np.maximum(preactivation, 0.0)
        return preactivation

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        return self.activate(self.preactivation(inputs))

    def with_affine(self, weights: np.ndarray, bias: np.ndarray) -> "DenseLayer":
        """The same layer with another affine map (used to fold scalings)."""
        return DenseLayer(weights, bias, self.activation, self.name)


@dataclass(frozen=True, eq=False)
class Scaling:
    """Affine scaling ``scaled = (value - offset) / factor``; factors may be negative."""

    offset: np.ndarray
    factor: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "offset", _frozen_array(self.offset, "scaling offset", 1))
        object.__setattr__(self, "factor", _frozen_array(self.factor, "scaling factor", 1))
        if self.offset.shape != self.factor.shape:
            raise ShapeMismatchError(
                f"scaling offset has {self.offset.size} entries, factor {self.factor.size}"
            )
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


def _as_bounds_pair(
    input_bounds: object, n_inputs: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Normalise the accepted spellings of input bounds to ``(lower, upper)`` arrays.

    Accepted forms (``None`` or NaN for an absent side, which becomes ``∓inf``):

    * a sequence of ``(lb, ub)`` pairs, one per input (lists or tuples), or an
      array of shape ``(n_inputs, 2)``;
    * a dict ``{input_index: (lb, ub)}`` (inputs not named have no bounds);
    * a pair ``(lower, upper)`` of numpy arrays or scalars (scalars apply to every input).
    """
    if input_bounds is None:
        return None
    lower = np.full(n_inputs, -np.inf)
    upper = np.full(n_inputs, np.inf)
    if isinstance(input_bounds, dict):
        items: Iterable = input_bounds.items()
    elif _is_lower_upper_pair(input_bounds):
        lo, hi = (np.broadcast_to(_nan_for_none(side), (n_inputs,)) for side in input_bounds)
        items = enumerate(zip(lo, hi))
    else:
        pairs = list(input_bounds)  # type: ignore[call-overload]
        if len(pairs) != n_inputs:
            raise ShapeMismatchError(
                f"input_bounds has {len(pairs)} entries but the network has {n_inputs} inputs"
            )
        items = enumerate(pairs)
    for index, pair in items:
        if not 0 <= int(index) < n_inputs:
            raise ShapeMismatchError(
                f"input_bounds names input {index}, but the network has {n_inputs} inputs"
            )
        lb, ub = pair
        if lb is not None and not np.isnan(lb):
            lower[int(index)] = float(lb)
        if ub is not None and not np.isnan(ub):
            upper[int(index)] = float(ub)
    return lower, upper


def _is_lower_upper_pair(value: object) -> bool:
    """True for ``(lower, upper)`` given as two numpy arrays or two scalars."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return False
    return all(
        isinstance(side, np.ndarray) or side is None or np.isscalar(side) for side in value
    )


def _nan_for_none(value: object) -> np.ndarray:
    if value is None:
        return np.array(np.nan)
    if np.isscalar(value):
        return np.array(float(value))
    return np.array([np.nan if v is None else v for v in np.ravel(value)], dtype=float)


def _check_input_box(lower: np.ndarray, upper: np.ndarray) -> None:
    if np.any(np.isnan(lower)) or np.any(np.isnan(upper)):
        raise InvalidNetworkError("input bounds contain NaN; use None or ±inf for no bound")
    crossed = np.flatnonzero(lower > upper)
    if crossed.size:
        i = int(crossed[0])
        raise InvalidNetworkError(
            f"input {i} has lower bound {lower[i]} > upper bound {upper[i]}"
        )


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

    layers: tuple[DenseLayer, ...]
    input_bounds: tuple[np.ndarray, np.ndarray] | None
    input_scaling: Scaling | None
    output_scaling: Scaling | None
    input_shape: tuple[int, ...] | None
    input_names: tuple[str, ...] | None
    output_names: tuple[str, ...] | None
    source: str

    def __init__(
        self,
        layers: Sequence[DenseLayer],
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
        return sum(layer.n_outputs for layer in self.canonical_layers if layer.activation == "relu")

    # ---------------------------------------------------------------- bounds
    @property
    def input_lower(self) -> np.ndarray:
        """Lower input bounds (``-inf`` where absent)."""
        return self.input_bounds[0] if self.input_bounds else np.full(self.n_inputs, -np.inf)

    @property
    def input_upper(self) -> np.ndarray:
        """Upper input bounds (``+inf`` where absent)."""
        return self.input_bounds[1] if self.input_bounds else np.full(self.n_inputs, np.inf)

    def with_input_bounds(self, input_bounds: object) -> "NetworkDefinition":
        """A copy of this network with other input bounds (same accepted forms)."""
        return NetworkDefinition(
            self.layers, input_bounds, self.input_scaling, self.output_scaling,
            self.input_shape, self.input_names, self.output_names, self.source,
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
        values = np.asarray(inputs, dtype=np.float64)
        single = values.ndim == 1
        if single:
            values = values[None, :]
        if values.ndim != 2 or values.shape[1] != self.n_inputs:
            raise ShapeMismatchError(
                f"expected inputs of shape (batch, {self.n_inputs}) or ({self.n_inputs},), "
                f"got {np.shape(inputs)}"
            )
        return values, single

    # ------------------------------------------------------------- canonical
    @cached_property
    def canonical_layers(self) -> tuple[DenseLayer, ...]:
        """Layers with the scalings folded in: user inputs in, user outputs out.

        The input scaling is folded into the first affine map.  The output scaling is
        folded into the last layer when it is linear, otherwise appended as a diagonal
        linear layer.  Pre-activations of every ReLU layer are unchanged by folding, so
        bounds computed on the canonical chain hold for the original network.
        """
        layers = list(self.layers)
        if self.input_scaling is not None:
            first, scaling = layers[0], self.input_scaling
            weights = first.weights / scaling.factor[None, :]
            bias = first.bias - weights @ scaling.offset
            layers[0] = first.with_affine(weights, bias)
        if self.output_scaling is not None:
            last, scaling = layers[-1], self.output_scaling
            if last.activation == "linear":
                layers[-1] = last.with_affine(
                    last.weights * scaling.factor[:, None], last.bias * scaling.factor + scaling.offset
                )
            else:
                layers.append(
                    DenseLayer(np.diag(scaling.factor), scaling.offset, "linear", "output_scaling")
                )
        return tuple(layers)

    # ------------------------------------------------------------------ hash
    def content_hash(self) -> str:
        """SHA-256 of the structure, weights and scalings (not the input bounds)."""
        if "hash" not in self._cache:
            digest = hashlib.sha256()
            for layer in self.layers:
                digest.update(f"{type(layer).__name__}:{layer.activation}:".encode())
                digest.update(np.ascontiguousarray(layer.weights, dtype="<f8").tobytes())
                digest.update(np.ascontiguousarray(layer.bias, dtype="<f8").tobytes())
            for scaling in (self.input_scaling, self.output_scaling):
                digest.update(b"scaling:")
                if scaling is not None:
                    digest.update(scaling.offset.astype("<f8").tobytes())
                    digest.update(scaling.factor.astype("<f8").tobytes())
            self._cache["hash"] = digest.hexdigest()
        return self._cache["hash"]

    def summary(self) -> str:
        """One line per layer: sizes and activation."""
        lines = [f"NetworkDefinition({self.n_inputs} inputs -> {self.n_outputs} outputs)"]
        for index, layer in enumerate(self.layers):
            lines.append(
                f"  {index}: {type(layer).__name__} {layer.n_inputs}->{layer.n_outputs} "
                f"{layer.activation}" + (f" ({layer.name})" if layer.name else "")
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        sizes = "-".join([str(self.n_inputs)] + [str(layer.n_outputs) for layer in self.layers])
        return f"<NetworkDefinition {sizes} hash={self.content_hash()[:12]}>"
