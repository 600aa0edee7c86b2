"""Handlers of the activations: ``Relu``, ``LeakyRelu``, ``PRelu``, ``Clip``, ``HardSigmoid``
and the smooth ``Sigmoid``, ``Tanh``, ``Softplus`` (NLP formulations only).  Each one on an
affine tensor emits a layer; on constants it is evaluated."""

from __future__ import annotations

import numpy as np

from pyomo_relu.errors import InvalidNetworkError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.onnx.node import Emitter, Handler, Inputs, Node, Outputs
from pyomo_relu.io.onnx.tensor import AffineTensor, as_float

__all__ = ["HANDLERS", "REQUIRED_INPUTS"]


def _op_relu(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return [np.maximum(x, 0)]
    return [cv.emit_activation(node, x, "relu")]


def _op_leaky_relu(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    return [cv.emit_activation(node, x, "leaky_relu", alpha=node.attr_float("alpha", 0.01))]


def _op_prelu(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    slope = inputs.constant(1, "slope")
    if slope is None:
        raise UnsupportedOperatorError(f"{node.where()}: the slope must be a constant")
    try:
        alpha = np.broadcast_to(as_float(slope), x.shape)
    except ValueError:
        raise ShapeMismatchError(
            f"{node.where()}: slope of shape {np.shape(slope)} does not broadcast to {x.shape}"
        ) from None
    return [cv.emit_activation(node, x, "leaky_relu", alpha=alpha.reshape(-1))]


def _clip_range(node: Node, inputs: Inputs) -> tuple[float, float]:
    """``(min, max)`` of a Clip: attributes before opset 11, constant inputs after."""
    if node.opset < 11:
        low, high = node.attr_float("min", -np.inf), node.attr_float("max", np.inf)
    else:
        sides = [inputs.constant(k, name) for k, name in ((1, "min"), (2, "max"))]
        low = -np.inf if sides[0] is None else float(np.asarray(sides[0]).reshape(-1)[0])
        high = np.inf if sides[1] is None else float(np.asarray(sides[1]).reshape(-1)[0])
    low, high = _finite_or_inf(low), _finite_or_inf(high)
    if low > high:
        raise InvalidNetworkError(f"{node.where()}: min {low} > max {high}")
    return low, high


def _op_clip(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    low, high = _clip_range(node, inputs)
    return [cv.emit_activation(node, x, "clip", clip_low=low, clip_high=high)]


def _finite_or_inf(value: float) -> float:
    """float32's extreme values (the defaults of old Clip) mean no bound."""
    if abs(value) >= float(np.finfo(np.float32).max):
        return float(np.sign(value) * np.inf)
    return value


def _op_hard_sigmoid(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    alpha, beta = node.attr_float("alpha", 0.2), node.attr_float("beta", 0.5)
    scaled = x.with_stack(x.stack * alpha)
    scaled.stack[0] += beta
    return [cv.emit_activation(node, scaled, "clip", clip_low=0.0, clip_high=1.0)]


def _smooth_handler(kind: str) -> Handler:
    def handler(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
        x = inputs[0]
        if not isinstance(x, AffineTensor):
            return cv.fold(node, inputs)
        return [cv.emit_activation(node, x, kind)]

    return handler


HANDLERS: dict[str, Handler] = {
    "Clip": _op_clip,
    "HardSigmoid": _op_hard_sigmoid,
    "LeakyRelu": _op_leaky_relu,
    "PRelu": _op_prelu,
    "Relu": _op_relu,
    "Sigmoid": _smooth_handler("sigmoid"),
    "Softplus": _smooth_handler("softplus"),
    "Tanh": _smooth_handler("tanh"),
}

#: Inputs each operator needs (1 when not listed).
REQUIRED_INPUTS = {"PRelu": 2}
