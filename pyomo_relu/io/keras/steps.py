"""Keras layers reduced to *steps* (dense, ReLU, flatten, batchnorm, identity), and the steps
composed into :class:`~pyomo_relu.network.DenseLayer` objects by the shared
:class:`~pyomo_relu.io.affine.LayerChain`: ``Dense(linear) -> Dense`` becomes one layer,
``Dense(linear) -> ReLU`` a ReLU layer.

``BatchNormalization`` is the affine per-channel map Keras applies at inference,
``(x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta`` (``gamma = 1``
without ``scale``, ``beta = 0`` without ``center``), along its ``axis``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyomo_relu.errors import ModelLoadError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.affine import LayerChain
from pyomo_relu.network import DenseLayer

__all__ = ["SUPPORTED_LAYERS", "Step", "batchnorm_step", "build_layers", "check_plain_relu", "dense_activation"]

#: Human-readable list used in error messages.
SUPPORTED_LAYERS = (
    "InputLayer, Dense (activation 'relu' or 'linear'/None), ReLU (max_value=None, "
    "negative_slope=0, threshold=0), Activation('relu' | 'linear'), Flatten, Dropout, "
    "BatchNormalization"
)


@dataclass
class Step:
    """One Keras layer, reduced to what the network needs.

    ``kind`` is ``"dense"`` (``kernel`` in Keras layout ``(n_in, n_out)``), ``"relu"``,
    ``"flatten"``, ``"identity"`` or ``"batchnorm"`` (``kernel`` the per-channel factor,
    ``bias`` the shift, ``axis`` the channel axis counted with the batch axis, as Keras).
    """

    name: str
    kind: str
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None
    activation: str = "linear"
    channels_first: bool = False
    axis: int = -1


def unsupported(name: str, class_name: str, activation: object = None) -> UnsupportedOperatorError:
    """The error for a Keras layer (or activation) the chain readers do not read."""
    act = "no activation" if activation is None else f"activation {activation!r}"
    return UnsupportedOperatorError(
        f"Keras layer {name!r} ({class_name}, {act}) is not supported: pyomo_relu reads "
        f"single chains of {SUPPORTED_LAYERS}. Other activations (tanh, sigmoid, softmax, "
        "...) and layer types (Conv2D, Add, Lambda, ...) have no exact MILP encoding here; "
        "cut the model before them or replace them"
    )


def dense_activation(name: str, activation: str, class_name: str = "Dense") -> str:
    """Validate a Dense/Activation activation name, returning ``"relu"`` or ``"linear"``."""
    if activation in ("relu", "linear"):
        return activation
    raise unsupported(name, class_name, activation)


def check_plain_relu(name: str, max_value: Any, negative_slope: Any, threshold: Any) -> None:
    """Refuse ReLU layers that are not ``max(x, 0)``, naming the offending attribute."""
    problems = []
    if max_value is not None:
        problems.append(f"max_value={max_value!r} (must be None)")
    if negative_slope not in (None, 0, 0.0):
        problems.append(f"negative_slope={negative_slope!r} (must be 0)")
    if threshold not in (None, 0, 0.0):
        problems.append(f"threshold={threshold!r} (must be 0)")
    if problems:
        raise UnsupportedOperatorError(
            f"Keras layer {name!r} (ReLU) has {', '.join(problems)}; only the plain "
            f"ReLU max(x, 0) is supported. Supported layers: {SUPPORTED_LAYERS}"
        )


def batchnorm_step(
    name: str,
    axis: Any,
    epsilon: float,
    moving_mean: np.ndarray,
    moving_variance: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
) -> Step:
    """A BatchNormalization layer at inference as a per-channel ``x * factor + shift``."""
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise UnsupportedOperatorError(
                f"Keras layer {name!r} (BatchNormalization) normalises over axes {list(axis)}; "
                "only one channel axis is supported"
            )
        axis = axis[0]
    mean = np.asarray(moving_mean, dtype=np.float64).reshape(-1)
    variance = np.asarray(moving_variance, dtype=np.float64).reshape(-1)
    if np.any(variance + float(epsilon) <= 0):
        raise ModelLoadError(f"Keras layer {name!r} (BatchNormalization): moving_variance + epsilon is not positive")
    factor = 1.0 / np.sqrt(variance + float(epsilon))
    if gamma is not None:
        factor = factor * np.asarray(gamma, dtype=np.float64).reshape(-1)
    shift = -mean * factor
    if beta is not None:
        shift = shift + np.asarray(beta, dtype=np.float64).reshape(-1)
    return Step(name, "batchnorm", factor, shift, axis=int(axis))


def _batchnorm_affine(step: Step, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The diagonal affine map of a batchnorm step on a flat tensor of ``shape``."""
    assert step.kernel is not None and step.bias is not None
    rank = len(shape)
    axis = step.axis + rank + 1 if step.axis < 0 else step.axis  # counted with the batch axis
    if not 1 <= axis <= rank or shape[axis - 1] != step.kernel.size:
        raise ShapeMismatchError(
            f"Keras layer {step.name!r} (BatchNormalization) has {step.kernel.size} channels "
            f"on axis {step.axis}, but receives a tensor of shape (None, "
            f"{', '.join(map(str, shape))})"
        )
    channel_shape = [1] * rank
    channel_shape[axis - 1] = step.kernel.size
    factor = np.broadcast_to(step.kernel.reshape(channel_shape), shape).ravel()
    shift = np.broadcast_to(step.bias.reshape(channel_shape), shape).ravel()
    return np.diag(factor), shift.copy()


def _flatten(chain: LayerChain, step: Step) -> None:
    if step.channels_first and len(chain.shape) > 1:
        # Keras moves the channel axis last before flattening: a permutation.
        order = np.moveaxis(np.arange(chain.size).reshape(chain.shape), 0, -1).ravel()
        chain.affine(np.eye(chain.size)[order], np.zeros(chain.size), step.name)
    chain.shape = (chain.size,)


def _dense(chain: LayerChain, step: Step) -> None:
    assert step.kernel is not None
    shape = chain.shape
    if len(shape) != 1:
        raise UnsupportedOperatorError(
            f"Keras layer {step.name!r} (Dense) is applied to a tensor of shape {shape}; "
            "Keras then acts on the last axis only. Add a Flatten layer before it"
        )
    kernel = np.asarray(step.kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != shape[0]:
        raise ShapeMismatchError(
            f"Keras layer {step.name!r} (Dense) has a kernel of shape {kernel.shape} but receives {shape[0]} inputs"
        )
    bias = np.zeros(kernel.shape[1]) if step.bias is None else np.asarray(step.bias, dtype=np.float64).reshape(-1)
    if bias.shape != (kernel.shape[1],):
        raise ShapeMismatchError(
            f"Keras layer {step.name!r} (Dense): bias has {bias.size} entries, kernel {kernel.shape[1]} units"
        )
    chain.affine(kernel.T.copy(), bias, step.name)
    chain.shape = (kernel.shape[1],)
    if step.activation == "relu":
        chain.close("relu")


def build_layers(steps: Sequence[Step], input_shape: tuple[int, ...]) -> list[DenseLayer]:
    """Turn steps into DenseLayers, composing consecutive affine pieces."""
    chain = LayerChain(tuple(input_shape))
    for step in steps:
        if step.kind == "flatten":
            _flatten(chain, step)
        elif step.kind == "batchnorm":
            chain.affine(*_batchnorm_affine(step, chain.shape), step.name)
        elif step.kind == "relu":
            chain.activation(step.name, "relu")
        elif step.kind == "dense":
            _dense(chain, step)
    return chain.finish()
