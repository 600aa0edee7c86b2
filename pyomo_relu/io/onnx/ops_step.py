"""ONNX operators read as step neurons: ``Sign``, comparisons, ``Where``.

The package's step neuron is ``step(z) = [z >= 0]`` (:mod:`pyomo_relu.step`).  Every form
below is translated *exactly*, with the meaning ONNX gives it, including at 0:

* ``Sign(x)`` (``torch.sign``: 0 at 0) is ``step(x) - step(-x)``: two step neurons a value.
* ``GreaterOrEqual(a, b)`` is ``step(a - b)``, ``LessOrEqual(a, b)`` is ``step(b - a)``,
  ``Greater(a, b)`` is ``1 - step(b - a)`` and ``Less(a, b)`` is ``1 - step(a - b)``: one
  step neuron each (a 0/1 tensor, which a ``Cast`` to float passes through).
* ``Where(c, t, f)`` with a 0/1 condition and constant branches is ``f + (t - f) c``.

So the patterns exporters write for binarized networks read directly: ``torch.where(x >= 0,
1., -1.)`` (the BNN sign, +1 at 0), ``(x >= 0).float()`` (Heaviside), ``torch.sign`` and the
straight-through estimator ``x + (sign(x) - x).detach()`` (``detach`` vanishes on export;
the ``Sub`` and ``Add`` are affine and fold away, the carried ``x`` with them).  ``Equal``,
``Not``, ``And``, ``Or``, ``Xor``, ``Round``, ``Floor``, ``Ceil`` on input-dependent tensors
are refused by name (they are not in the reader's table), as is a ``Where`` whose branches
depend on the input.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from pyomo_relu.errors import UnsupportedOperatorError
from pyomo_relu.io.onnx.algebra import add, mul, negate
from pyomo_relu.io.onnx.node import Emitter, Handler, Inputs, Node, Outputs
from pyomo_relu.io.onnx.tensor import AffineTensor

__all__ = ["HANDLERS", "REQUIRED_INPUTS"]


def _stack_signed(value: AffineTensor) -> AffineTensor:
    """``[value; -value]`` as one flat affine tensor."""
    matrix, const = value.rows()
    both = sp.vstack([sp.csr_array(matrix), -sp.csr_array(matrix)], format="csr")
    return value.with_rows(both, np.concatenate([const, -const]), (2 * value.size,))


def _op_sign(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    x = inputs[0]
    if not isinstance(x, AffineTensor):
        return cv.fold(node, inputs)
    h = cv.emit_activation(node, _stack_signed(x), "step")
    matrix, const = h.rows()
    n = x.size
    return [h.with_rows(matrix[:n] - matrix[n:], const[:n] - const[n:], x.shape)]


def _comparison(negated: bool, strict: bool) -> Handler:
    """``a >= b`` family: ``step(a - b)`` (``step(b - a)`` when ``negated``), ``1 - step`` when ``strict``."""

    def handler(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
        a, b = inputs[0], inputs[1]
        if inputs.all_constant():
            return cv.fold(node, inputs)
        difference = add(node, a, negate(node, b))  # a - b
        if negated:
            difference = negate(node, difference)
        assert isinstance(difference, AffineTensor)
        h = cv.emit_activation(node, difference, "step")
        return [add(node, np.asarray(1.0), negate(node, h))] if strict else [h]

    return handler


def _op_where(cv: Emitter, node: Node, inputs: Inputs) -> Outputs:
    condition, then, otherwise = inputs[0], inputs[1], inputs[2]
    if inputs.all_constant():
        return cv.fold(node, inputs)
    if isinstance(then, AffineTensor) or isinstance(otherwise, AffineTensor) or not isinstance(condition, AffineTensor):
        raise UnsupportedOperatorError(
            f"{node.where()}: Where is read only with a condition computed from the input "
            "(a comparison) and constant branches, e.g. torch.where(x >= 0, 1.0, -1.0)"
        )
    then, otherwise = np.asarray(then, np.float64), np.asarray(otherwise, np.float64)
    return [add(node, otherwise, mul(node, condition, then - otherwise))]


HANDLERS: dict[str, Handler] = {
    "Sign": _op_sign,
    "GreaterOrEqual": _comparison(negated=False, strict=False),  # step(a - b)
    "Greater": _comparison(negated=True, strict=True),  # 1 - step(b - a)
    "LessOrEqual": _comparison(negated=True, strict=False),  # step(b - a)
    "Less": _comparison(negated=False, strict=True),  # 1 - step(a - b)
    "Where": _op_where,
}

#: Inputs each operator needs (1 when not listed).
REQUIRED_INPUTS = {"Where": 3, "GreaterOrEqual": 2, "Greater": 2, "LessOrEqual": 2, "Less": 2}
