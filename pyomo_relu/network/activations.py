"""Activation names and the pointwise maths of the smooth activations.

The piecewise-linear enclosures of smooth neurons (formulation ``pwl``) are in
:mod:`pyomo_relu.smooth`; the step activations in :mod:`pyomo_relu.step`.
"""

from __future__ import annotations

import numpy as np

from pyomo_relu.step import STEP_ACTIVATIONS

#: Activations a :class:`~pyomo_relu.network.DenseLayer` neuron may have.
ACTIVATIONS = ("relu", "linear", "leaky_relu", "clip", "sigmoid", "tanh", "softplus") + STEP_ACTIVATIONS
#: Smooth activations: read and evaluated, formulated for NLP solvers only.
SMOOTH_ACTIVATIONS = ("sigmoid", "tanh", "softplus")
#: Activations with a MILP formulation.
PIECEWISE_LINEAR_ACTIVATIONS = ("relu", "linear", "leaky_relu", "clip")
#: What canonical layers contain: LeakyReLU and Clip are lowered to ReLU + linear neurons.
CANONICAL_ACTIVATIONS = ("relu", "linear") + SMOOTH_ACTIVATIONS + STEP_ACTIVATIONS


def smooth_value(kind: str, z: np.ndarray) -> np.ndarray:
    """The smooth activation ``kind`` at ``z``, numerically stable for large ``|z|``.

    >>> smooth_value("sigmoid", np.array([-800.0, 0.0])).tolist(), smooth_value("softplus", np.array([0.0]))
    ([0.0, 0.5], array([0.69314718]))
    """
    if kind == "sigmoid":
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if kind == "tanh":
        return np.tanh(z)
    return np.logaddexp(0.0, z)  # softplus


def smooth_slope(kind: str, z: np.ndarray) -> np.ndarray:
    """Derivative of the smooth activation ``kind`` at ``z``."""
    if kind == "tanh":
        return 1.0 - np.tanh(z) ** 2
    s = smooth_value("sigmoid", z)
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
            slope = np.minimum(smooth_slope(kind, lo), smooth_slope(kind, hi))
            slope = np.where(np.isfinite(lo) & np.isfinite(hi), slope, 0.0)
            f_lo, f_hi = smooth_value(kind, lo), smooth_value(kind, hi)
            lam[..., cols] = slope
            c_lo[..., cols] = np.where(slope > 0, f_lo - slope * lo, f_lo)
            c_hi[..., cols] = np.where(slope > 0, f_hi - slope * hi, f_hi)
    return lam, c_lo, c_hi
