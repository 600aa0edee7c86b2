"""The table of operator handlers, by family (one module each), and what each needs.

To add an operator: write ``handler(emitter, node, inputs) -> outputs`` in the module of its
family (:mod:`~pyomo_relu.io.onnx.node` describes the interface), add it to that module's
``HANDLERS`` (and to ``REQUIRED_INPUTS`` if it needs more than one input), list it in the
docstring of :mod:`pyomo_relu.io.onnx`, and test it against onnxruntime.
"""

from __future__ import annotations

from pyomo_relu.io.onnx import ops_activation, ops_conv, ops_linear, ops_shape, ops_step
from pyomo_relu.io.onnx.node import Handler

__all__ = ["HANDLERS", "REQUIRED_INPUTS", "SOFTMAX_OPS", "SUPPORTED_OPS"]

_FAMILIES = (ops_linear, ops_shape, ops_activation, ops_conv, ops_step)

#: Handler of every operator accepted on input-dependent tensors.
HANDLERS: dict[str, Handler] = {op: handler for family in _FAMILIES for op, handler in family.HANDLERS.items()}

#: Inputs each operator needs (1 when not listed).
REQUIRED_INPUTS: dict[str, int] = {op: n for family in _FAMILIES for op, n in family.REQUIRED_INPUTS.items()}

#: Dropped at the graph output with ``drop_softmax=True``, refused elsewhere.
SOFTMAX_OPS = ("Softmax", "LogSoftmax")

#: Operators accepted on input-dependent tensors (Softmax/LogSoftmax only at the output).
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(HANDLERS)) + tuple(
    f"{op} (last node, with drop_softmax=True)" for op in SOFTMAX_OPS
)
