"""Handlers of the linear operators: ``Gemm``, ``MatMul``, ``Add``, ``Sub``, ``Mul``,
``Div``, ``Neg`` and inference ``BatchNormalization``."""

from __future__ import annotations

import numpy as np

from pyomo_relu.errors import InvalidNetworkError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.onnx.algebra import add, div, matmul, mul, negate, transpose
from pyomo_relu.io.onnx.node import Emitter, Handler, Inputs, Node, Outputs
from pyomo_relu.io.onnx.tensor import AffineTensor, as_float, shape_of

__all__ = ["HANDLERS", "REQUIRED_INPUTS"]


def _op_gemm(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    a, b, c = inputs[0], inputs[1], inputs.get(2)
    for name, value in (("A", a), ("B", b)):
        if len(shape_of(value)) != 2:
            raise ShapeMismatchError(f"{node.where()}: input {name} must be 2-D, got shape {shape_of(value)}")
    if node.attr_int("transA", 0):
        a = transpose(a, (1, 0))
    if node.attr_int("transB", 0):
        b = transpose(b, (1, 0))
    result = matmul(node, a, b)
    alpha, beta = node.attr_float("alpha", 1.0), node.attr_float("beta", 1.0)
    if alpha != 1.0:
        result = mul(node, result, alpha)
    if c is not None:
        result = add(node, result, mul(node, c, beta) if beta != 1.0 else c)
    return [result]


def _op_matmul(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    return [matmul(node, inputs[0], inputs[1])]


def _op_add(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    return [add(node, inputs[0], inputs[1])]


def _op_sub(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    a, b = inputs[0], inputs[1]
    if not isinstance(a, AffineTensor) and not isinstance(b, AffineTensor):
        return [np.subtract(a, b)]
    return [add(node, a, negate(node, b))]


def _op_mul(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    return [mul(node, inputs[0], inputs[1])]


def _op_div(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    return [div(node, inputs[0], inputs[1])]


def _op_neg(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    value = inputs[0]
    if isinstance(value, AffineTensor):
        return [negate(node, value)]
    return [np.negative(value)]


def _batchnorm_parameters(node: Node, inputs: Inputs, shape: tuple[int, ...]) -> list[np.ndarray]:
    """``scale, B, mean, var``, each broadcastable to the input's shape without the batch."""
    channel_shape = (shape[1],) + (1,) * (len(shape) - 2)
    params = []
    for index, what in enumerate(("scale", "B", "mean", "var"), start=1):
        array = as_float(inputs.constant(index, what))
        given = array.shape
        if array.ndim == 1:  # per channel (or the per-activation shape of spatial=0)
            array = array.reshape(channel_shape) if array.size == shape[1] else array
        try:
            np.broadcast_shapes(array.shape, shape[1:])
        except ValueError:
            raise ShapeMismatchError(
                f"{node.where()}: {what} has shape {given}, which does not fit an input of shape {shape}"
            ) from None
        params.append(array)
    return params


def _op_batchnorm(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    """Inference BatchNormalization: ``(x - mean) / sqrt(var + eps) * scale + B`` per channel."""
    if node.attr_int("training_mode", 0):
        raise UnsupportedOperatorError(
            f"{node.where()} has training_mode=1: it normalises with the statistics of each "
            "batch, which is not a fixed affine map; export the model in inference (eval) mode"
        )
    x = inputs[0]
    shape = shape_of(x)
    if len(shape) < 2:
        raise ShapeMismatchError(f"{node.where()}: input must be (N, C, ...), got shape {shape}")
    scale, bias, mean, var = _batchnorm_parameters(node, inputs, shape)
    epsilon = node.attr_float("epsilon", 1e-5)
    if np.any(var + epsilon <= 0):
        raise InvalidNetworkError(f"{node.where()}: var + epsilon is not positive")
    factor = scale / np.sqrt(var + epsilon)
    result = add(node, mul(node, x, factor), bias - mean * factor)
    extra = [inputs.get(3), inputs.get(4)][: max(len(node.proto.output) - 1, 0)]
    return [result, *extra]


HANDLERS: dict[str, Handler] = {
    "Add": _op_add,
    "BatchNormalization": _op_batchnorm,
    "Div": _op_div,
    "Gemm": _op_gemm,
    "MatMul": _op_matmul,
    "Mul": _op_mul,
    "Neg": _op_neg,
    "Sub": _op_sub,
}

#: Inputs each operator needs (1 when not listed).
REQUIRED_INPUTS = {"Add": 2, "Sub": 2, "Mul": 2, "Div": 2, "MatMul": 2, "Gemm": 2, "BatchNormalization": 5}
