r"""Step activations (``step``, ``sign``) and binarized layers: the numpy side.

A step neuron outputs one of two levels::

    step(z) = 1 if z >= 0 else 0          (Heaviside)
    sign(z) = +1 if z >= 0 else -1        (the BNN sign)

**The convention at 0.**  Both are *closed at 0 on the upper level*: ``step(0) = 1`` and
``sign(0) = +1``, the convention of binarized networks (Courbariaux et al.; Larq's
``ste_sign``; the MIP training of Aftabi et al.), where every neuron must be ±1.  The
frameworks' ``torch.sign`` and ONNX ``Sign`` give ``sign(0) = 0`` instead; the readers keep
their meaning exactly by writing such a sign as two step neurons,
``sign0(z) = step(z) - step(-z)`` (1, 0, -1 for ``z > 0``, ``= 0``, ``< 0``).  Comparisons
are exact too: ``x >= c`` is ``step(x - c)``, ``x > c`` is ``1 - step(c - x)``.

With the lower level ``a`` and the upper level ``b`` (``LEVELS``), a step neuron is
``h = a + (b - a) σ`` with ``σ = [z >= 0]``.  On pre-activation bounds ``[l, u]`` it is
*stable* when ``l >= 0`` (``h = b``) or ``u < 0`` (``h = a``) and *unstable* otherwise
(``l < 0 <= u``).  The linear relaxation of an unstable neuron is the convex hull of its
graph's closure, ``a + d·z/u <= h <= b + d·z/(-l)`` (``d = b - a``) together with
``a <= h <= b``; :func:`step_lines` picks, on each side, the line or the constant whose
area over ``[l, u]`` is smaller (CROWN's choice for ReLUs).

A **binarized layer** has weights ``s_j · B`` with ``B`` in ``{-1, +1}`` (or ``{-1, 0, +1}``
for ternary weights) and a per-neuron scale ``s_j > 0``: :func:`binarized_layer` builds one
as an ordinary :class:`~pyomo_relu.network.DenseLayer`, :func:`binarized_parts` recovers
``B`` and ``s``.

>>> step_forward("sign", np.array([-2.0, 0.0, 3.0]))
array([-1.,  1.,  1.])
>>> step_forward("step", np.array([-1e-12, 0.0]))
array([0., 1.])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pyomo_relu.errors import InvalidNetworkError
from pyomo_relu.sparse import dense

if TYPE_CHECKING:  # pyomo_relu.network imports this module
    from pyomo_relu.network import DenseLayer, Layer

#: Step activations and their two levels ``(below 0, at and above 0)``.
LEVELS: dict[str, tuple[float, float]] = {"step": (0.0, 1.0), "sign": (-1.0, 1.0)}
STEP_ACTIVATIONS = tuple(LEVELS)


def levels(kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper level of every neuron of ``kinds`` (0 and 0 for other kinds)."""
    low, high = np.zeros(kinds.shape), np.zeros(kinds.shape)
    for kind, (a, b) in LEVELS.items():
        low[kinds == kind], high[kinds == kind] = a, b
    return low, high


def step_forward(kind: str, z: np.ndarray) -> np.ndarray:
    """``kind``'s output for pre-activations ``z``: the upper level where ``z >= 0`` (see module doc)."""
    a, b = LEVELS[kind]
    return np.where(np.asarray(z) >= 0, b, a)


def unstable_step(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Where a step neuron with pre-activation in ``[lower, upper]`` can take both levels."""
    return (lower < 0) & (upper >= 0)


def step_lines(
    kinds: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sound lines ``a_L z + c_L <= h <= a_U z + c_U`` on ``[lower, upper]`` for step ``kinds``.

    Returns ``(a_U, c_U, a_L, c_L)``; stable neurons get constant lines at their level,
    unstable ones the line or constant of smaller area on each side (module doc); entries
    of other kinds are 0.  ``lower``/``upper`` may have leading batch axes.

    >>> step_lines(np.array(["step", "sign"]), np.array([-4.0, -1.0]), np.array([1.0, 3.0]))
    (array([0.25, 0.  ]), array([1., 1.]), array([0.        , 0.66666667]), array([ 0., -1.]))
    """
    low, high = levels(kinds)
    low, high = np.broadcast_to(low, lower.shape), np.broadcast_to(high, lower.shape)
    is_step = np.broadcast_to(np.isin(kinds, STEP_ACTIVATIONS), lower.shape)
    rise = high - low
    loose = unstable_step(lower, upper)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        upper_line = loose & np.isfinite(lower) & (-lower > upper)  # through (l, a) and (0, b)
        lower_line = loose & np.isfinite(upper) & (upper > -lower)  # through (0, a) and (u, b)
        slope_u = np.where(upper_line, rise / -lower, 0.0)
        slope_l = np.where(lower_line, rise / upper, 0.0)
    # a subnormal bound overflows the slope: the constant line is sound there
    slope_u, slope_l = np.where(np.isfinite(slope_u), slope_u, 0.0), np.where(np.isfinite(slope_l), slope_l, 0.0)
    intercept_u = np.where(lower >= 0, high, np.where(upper < 0, low, high))
    intercept_l = np.where(lower >= 0, high, low)
    zero = np.zeros(lower.shape)
    return (
        np.where(is_step, slope_u, zero),
        np.where(is_step, intercept_u, zero),
        np.where(is_step, slope_l, zero),
        np.where(is_step, intercept_l, zero),
    )


def binarized_layer(
    signs: object,
    bias: object,
    activation: str | Sequence[str] = "sign",
    scale: object = None,
    name: str = "",
    ternary: bool = False,
) -> DenseLayer:
    """A :class:`~pyomo_relu.network.DenseLayer` with weights ``scale[j] * signs[j, i]``.

    ``signs`` must hold only -1 and +1 (also 0 with ``ternary=True``); ``scale`` (scalar or
    one per neuron, positive) defaults to 1.

    >>> layer = binarized_layer([[1, -1], [-1, -1]], [0.0, 1.0], scale=[2.0, 0.5])
    >>> layer.weights.tolist(), layer.forward(np.array([[1.0, 1.0]])).tolist()
    ([[2.0, -2.0], [-0.5, -0.5]], [[1.0, 1.0]])
    """
    from pyomo_relu.network import DenseLayer

    matrix = np.asarray(signs, dtype=np.float64)
    allowed = (-1.0, 0.0, 1.0) if ternary else (-1.0, 1.0)
    if matrix.ndim != 2 or not np.all(np.isin(matrix, allowed)):
        raise InvalidNetworkError(
            f"binarized layer {name!r}: signs must be a 2-D array of {allowed} "
            f"(pass ternary=True to allow 0); got shape {matrix.shape}"
        )
    factors = np.broadcast_to(np.asarray(1.0 if scale is None else scale, dtype=np.float64), (matrix.shape[0],))
    if not np.all(factors > 0):
        raise InvalidNetworkError(f"binarized layer {name!r}: scales must be positive, got {factors.tolist()}")
    return DenseLayer(matrix * factors[:, None], bias, activation, name)


def binarized_parts(layer: Layer, ternary: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
    """``(signs, scale)`` when ``layer``'s weights are ``scale[j] * signs[j, i]``, else ``None``.

    Ternary signs (zeros) are accepted unless ``ternary=False``.
    """
    weights = dense(layer.weights)
    scale = np.abs(weights).max(axis=1) if weights.size else np.ones(weights.shape[0])
    scale = np.where(scale > 0, scale, 1.0)
    signs = weights / scale[:, None]
    allowed = (-1.0, 0.0, 1.0) if ternary else (-1.0, 1.0)
    if not np.all(np.isin(signs, allowed)):
        return None
    return signs, scale
