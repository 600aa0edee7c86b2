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

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from pyomo_relu.errors import UnsupportedOperatorError
from pyomo_relu.io.onnx import Inputs, _add, _Affine, _mul, _Node

if TYPE_CHECKING:
    from pyomo_relu.io.onnx import _GraphConverter


def _stack_signed(value: _Affine) -> _Affine:
    """``[value; -value]`` as one flat affine tensor."""
    matrix, const = value.rows()
    both = sp.vstack([sp.csr_array(matrix), -sp.csr_array(matrix)], format="csr")
    return value.with_rows(both, np.concatenate([const, -const]), (2 * value.size,))


def _op_sign(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    x = inputs[0]
    if not isinstance(x, _Affine):
        return cv.fold(node, inputs)
    h = cv.emit_activation(node, _stack_signed(x), "step")
    matrix, const = h.rows()
    n = x.size
    return [h.with_rows(matrix[:n] - matrix[n:], const[:n] - const[n:], x.shape)]


def _comparison(negate: bool, strict: bool):
    """``a >= b`` family: ``step(a - b)`` (``step(b - a)`` when ``negate``), ``1 - step`` when ``strict``."""

    def handler(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
        a, b = inputs
        if not isinstance(a, _Affine) and not isinstance(b, _Affine):
            return cv.fold(node, inputs)
        difference = _add(node, a, _mul(node, b, np.float64(-1.0)))  # a - b
        if negate:
            difference = _mul(node, difference, np.float64(-1.0))
        h = cv.emit_activation(node, difference, "step")
        return [_add(node, np.float64(1.0), _mul(node, h, np.float64(-1.0)))] if strict else [h]

    return handler


def _op_where(cv: _GraphConverter, node: _Node, inputs: Inputs) -> Inputs:
    condition, then, otherwise = inputs
    if not isinstance(condition, _Affine) and not isinstance(then, _Affine) and not isinstance(otherwise, _Affine):
        return cv.fold(node, inputs)
    if isinstance(then, _Affine) or isinstance(otherwise, _Affine) or not isinstance(condition, _Affine):
        raise UnsupportedOperatorError(
            f"{node.where()}: Where is read only with a condition computed from the input "
            "(a comparison) and constant branches, e.g. torch.where(x >= 0, 1.0, -1.0)"
        )
    then, otherwise = np.asarray(then, np.float64), np.asarray(otherwise, np.float64)
    return [_add(node, otherwise, _mul(node, condition, then - otherwise))]


#: The handlers :mod:`pyomo_relu.io.onnx` adds to its table.
STEP_HANDLERS = {
    "Sign": _op_sign,
    "GreaterOrEqual": _comparison(negate=False, strict=False),  # step(a - b)
    "Greater": _comparison(negate=True, strict=True),  # 1 - step(b - a)
    "LessOrEqual": _comparison(negate=True, strict=False),  # step(b - a)
    "Less": _comparison(negate=False, strict=True),  # 1 - step(a - b)
    "Where": _op_where,
}
