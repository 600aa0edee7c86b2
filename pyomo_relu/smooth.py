r"""Certified piecewise-linear enclosures of the smooth activations, and how far they stray.

For a neuron ``y = f(z)`` with ``f`` one of ``tanh``, ``sigmoid``, ``softplus`` and its
pre-activation bounded by ``[l, u]``, :func:`enclosure` returns breakpoints
``l = b_0 < b_1 < ... < b_K = u`` and two continuous piecewise-linear functions, linear
between the breakpoints,

.. math::  g_L(z) <= f(z) <= g_U(z)  on [l, u],    g_U(b_k) = f(b_k) + e^U_k,
           g_L(b_k) = f(b_k) - e^L_k,

with ``max (g_U - g_L) <= tolerance`` (option ``tolerance``) or at most ``pieces``
segments (option ``pieces``, the tolerance then chosen per neuron).

**Why it is sound.**  On a segment ``[a, b]`` let ``c(z)`` be the chord through
``(a, f(a))`` and ``(b, f(b))``.  ``f - c`` vanishes at both ends, so its extremes are at
the points where ``f'(z) = (f(b) - f(a)) / (b - a)``; these have closed forms
(:func:`stationary_points`), so ``δ⁺ = max (f - c)`` and ``δ⁻ = max (c - f)`` are exact
(up to rounding, covered by a margin of ``1e-12 (1 + |f(a)| + |f(b)|)``).  Each breakpoint
gets the largest ``δ⁺`` (``δ⁻``) of the segments next to it as ``e^U`` (``e^L``); on a
segment the offsets interpolate to at least ``min(e_a, e_b) >= δ``, so
``c - δ⁻ <= f <= c + δ⁺`` gives ``g_L <= f <= g_U``.

**Where the breakpoints go.**  ``tanh`` and ``sigmoid`` are convex left of 0 and concave
right of it; ``softplus`` is convex.  A breakpoint is put at the inflection point when
``l < 0 < u``, so every segment lies where ``f`` is convex (the chord is the upper side,
exact at the breakpoints, the lower side is offset by ``δ⁻``) or concave (the other way
round).  Then, from the inflection point outwards (or from ``l`` to ``u``), each segment
is the longest whose band fits: width ``δ <= tolerance``, and ``δ <= tolerance / 2`` for
the two segments meeting at the inflection point, where both sides are offset.  The width
``g_U - g_L`` is linear on each segment, so it is at most ``tolerance`` everywhere.
Saturated regions get long segments, the curved middle short ones.

:func:`propagate_error` bounds, per network output, how far the output of a relaxed
model (each neuron's post-activation anywhere in its band) can be from the network's
output at the same input: an interval propagation of the post-activation differences
through the layers, using the range of ``f'`` over each neuron's ``[l, u]``.

>>> import numpy as np
>>> enc = enclosure("tanh", np.array([-3.0]), np.array([3.0]), tolerance=0.01)
>>> int(enc.pieces[0]), bool(enc.width[0] <= 0.01)
(12, True)
>>> z = np.linspace(-3, 3, 1001)
>>> bool(np.all(enc.lower_at(0, z) <= np.tanh(z)) and np.all(np.tanh(z) <= enc.upper_at(0, z)))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyomo_relu.errors import MissingBoundsError, PyomoReluError
from pyomo_relu.network import SMOOTH_ACTIVATIONS, MaxLayer, group_max, smooth_slope, smooth_value
from pyomo_relu.sparse import negative_part, positive_part

__all__ = ["Enclosure", "enclosure", "propagate_error", "slope_range", "stationary_points", "chord_deviation"]

#: Inflection point of each smooth activation (``None``: convex everywhere).
INFLECTION = {"tanh": 0.0, "sigmoid": 0.0, "softplus": None}
#: More segments than this for one neuron means a tolerance too small for its bounds.
MAX_PIECES = 2000
_BISECTIONS = 44


def stationary_points(kind: str, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points where ``f'(z) = slope`` (two for tanh and sigmoid, one for softplus).

    Slopes outside the range of ``f'`` give the nearest point (0 at the peak of ``f'``,
    ``±inf`` where ``f'`` tends to the slope); callers clip to their interval.
    """
    s = np.asarray(slope, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "tanh":  # 1 - tanh(z)^2 = s
            z = np.arctanh(np.sqrt(np.clip(1.0 - s, 0.0, 1.0)))
            return -z, z
        if kind == "sigmoid":  # σ(1 - σ) = s  ->  z = ±2 atanh(sqrt(1 - 4 s))
            z = 2.0 * np.arctanh(np.sqrt(np.clip(1.0 - 4.0 * s, 0.0, 1.0)))
            return -z, z
        if kind == "softplus":  # σ(z) = s
            p = np.clip(s, 0.0, 1.0)
            z = np.log(p) - np.log1p(-p)
            return z, z
    raise PyomoReluError(f"no piecewise-linear enclosure for activation {kind!r}; use one of {SMOOTH_ACTIVATIONS}")


def chord_deviation(kind: str, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(max (f - chord), max (chord - f))`` over ``[a, b]`` (both ``>= 0``, rounding margin added).

    ``a <= b`` elementwise; the chord joins ``(a, f(a))`` and ``(b, f(b))``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    fa, fb = smooth_value(kind, a), smooth_value(kind, b)
    width = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(width > 0, (fb - fa) / np.where(width > 0, width, 1.0), smooth_slope(kind, a))
    above = np.zeros(a.shape)
    below = np.zeros(a.shape)
    for z in stationary_points(kind, slope):
        z = np.clip(np.nan_to_num(z, nan=0.0), a, b)
        gap = smooth_value(kind, z) - (fa + slope * (z - a))
        above = np.maximum(above, gap)
        below = np.maximum(below, -gap)
    margin = 1e-12 * (1.0 + np.abs(fa) + np.abs(fb))
    return above + margin, below + margin


@dataclass(frozen=True)
class Enclosure:
    """Piecewise-linear bounds ``lower_k <= f <= upper_k`` at ``breakpoints`` of each neuron.

    ``breakpoints[i]``, ``upper[i]`` and ``lower[i]`` are arrays of ``pieces[i] + 1``
    values for neuron ``i``; both bounding functions are linear between breakpoints.
    ``width[i]`` is ``max (upper - lower)``; ``above[i]`` and ``below[i]`` bound
    ``g_U - f`` and ``f - g_L`` over the whole interval: on a segment ``g_U - f`` is the
    interpolated offset plus ``chord - f``, so at most ``max(e^U_a, e^U_b) + δ⁻`` (and
    never more than the width).
    """

    kind: str
    breakpoints: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    lower: tuple[np.ndarray, ...]

    @property
    def pieces(self) -> np.ndarray:
        return np.array([len(b) - 1 for b in self.breakpoints], dtype=int)

    @property
    def width(self) -> np.ndarray:
        return np.array([float(np.max(u - lo)) for u, lo in zip(self.upper, self.lower)])

    @property
    def above(self) -> np.ndarray:
        return self._stray(self.upper, 1)

    @property
    def below(self) -> np.ndarray:
        return self._stray(self.lower, 0)

    def _stray(self, sides: tuple[np.ndarray, ...], other: int) -> np.ndarray:
        """Per neuron, the largest ``|side - f|``: endpoint offsets plus the chord's deviation the other way."""
        out = []
        for side, b, u, lo in zip(sides, self.breakpoints, self.upper, self.lower):
            offset = np.abs(side - smooth_value(self.kind, b))
            deviation = chord_deviation(self.kind, b[:-1], b[1:])[other]
            worst = np.maximum(offset[:-1], offset[1:]) + deviation
            out.append(float(min(np.max(worst), np.max(u - lo))))
        return np.array(out)

    def upper_at(self, i: int, z: np.ndarray) -> np.ndarray:
        """``g_U`` of neuron ``i`` at the points ``z`` (inside its interval)."""
        return np.interp(z, self.breakpoints[i], self.upper[i])

    def lower_at(self, i: int, z: np.ndarray) -> np.ndarray:
        return np.interp(z, self.breakpoints[i], self.lower[i])


def enclosure(
    kind: str, lower: np.ndarray, upper: np.ndarray, *, tolerance: float | None = None, pieces: int | None = None
) -> Enclosure:
    """Enclose ``f = kind`` on each ``[lower[i], upper[i]]`` (see the module docstring).

    Exactly one of ``tolerance`` (the largest width ``g_U - g_L``) and ``pieces`` (the
    most segments per neuron; the tolerance is then the smallest that fits, found by
    bisection per neuron) is given.
    """
    if kind not in SMOOTH_ACTIVATIONS:
        stationary_points(kind, np.zeros(0))  # raises the error naming the activations
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(lower) | ~np.isfinite(upper))
    if bad.size:
        raise MissingBoundsError(
            f"{kind} neuron {int(bad[0])} has an infinite pre-activation bound; the piecewise-linear "
            "enclosure needs a bounded input box (give input bounds)"
        )
    if (tolerance is None) == (pieces is None):
        raise PyomoReluError("enclosure: give exactly one of tolerance= and pieces=")
    if tolerance is not None:
        if not float(tolerance) >= 1e-8:
            raise PyomoReluError(f"enclosure: tolerance must be at least 1e-8, not {tolerance}")
        # the rounding margins of chord_deviation are inside the tolerance, not on top of it
        scale = 1.0 + np.abs(smooth_value(kind, lower)) + np.abs(smooth_value(kind, upper))
        tol = float(tolerance) - 1e-11 * scale
        points, counts = _breakpoints(kind, lower, upper, tol, MAX_PIECES)
        if np.any(counts > MAX_PIECES):
            worst = int(np.argmax(counts))
            raise PyomoReluError(
                f"{kind} neuron {worst} on [{lower[worst]:.6g}, {upper[worst]:.6g}] needs more than "
                f"{MAX_PIECES} pieces for tolerance {tolerance:g}; use a larger tolerance or tighter bounds"
            )
    elif pieces is not None:
        if isinstance(pieces, bool) or int(pieces) != pieces or pieces < 1:
            raise PyomoReluError(f"enclosure: pieces must be a positive integer, not {pieces!r}")
        points = _fit_pieces(kind, lower, upper, int(pieces))
    return _offsets(kind, points)


def _fit_pieces(kind: str, lower: np.ndarray, upper: np.ndarray, pieces: int) -> list[np.ndarray]:
    """Breakpoints with at most ``pieces`` segments per neuron and the smallest tolerance that fits."""
    if pieces == 1 or lower.size == 0:
        return [np.array([lo, up]) for lo, up in zip(lower, upper)]
    above, below = chord_deviation(kind, lower, upper)
    hi = np.maximum(above + below, 1e-15)  # one chord across [l, u] always fits this
    lo = hi * 1e-9
    best, _ = _breakpoints(kind, lower, upper, hi, pieces)
    for _ in range(30):  # bisection on log(tolerance), every neuron at once
        mid = np.sqrt(lo * hi)
        points, counts = _breakpoints(kind, lower, upper, mid, pieces)
        fits = counts <= pieces
        for i in np.flatnonzero(fits):
            best[i] = points[i]
        hi = np.where(fits, mid, hi)
        lo = np.where(fits, lo, mid)
    # a neuron whose two half-bands never fitted (spanning the inflection point): one chord
    return [b if len(b) - 1 <= pieces else np.array([lower[i], upper[i]]) for i, b in enumerate(best)]


def _breakpoints(
    kind: str, lower: np.ndarray, upper: np.ndarray, tol: np.ndarray, cap: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Greedy breakpoints per neuron for per-neuron tolerances ``tol``; ``(points, counts)``.

    A neuron needing more than ``cap`` segments stops there with ``counts > cap`` (its
    points are then meaningless).
    """
    c = INFLECTION[kind]
    spans = np.zeros(lower.shape, dtype=bool) if c is None else (lower < c) & (upper > c)
    n = lower.size
    # marches: (neuron, start, stop, first target); spanning neurons march from c both ways
    right_start = np.where(spans, c if c is not None else 0.0, lower)
    first = np.where(spans, tol / 2.0, tol)
    starts = np.concatenate([right_start, np.full(int(spans.sum()), c if c is not None else 0.0)])
    stops = np.concatenate([upper, lower[spans]])
    firsts = np.concatenate([first, first[spans]])
    rests = np.concatenate([tol, tol[spans]])
    owner = np.concatenate([np.arange(n), np.flatnonzero(spans)])
    paths, steps = _march(kind, starts, stops, firsts, rests, cap)
    counts = np.zeros(n, dtype=int)
    np.add.at(counts, owner, steps)
    points = []
    for i in range(n):
        right = paths[i]
        if spans[i]:
            left = paths[n + int(np.searchsorted(np.flatnonzero(spans), i))]
            points.append(np.concatenate([left[::-1], right[1:]]))
        else:
            points.append(right)
    return points, counts


def _march(
    kind: str, start: np.ndarray, stop: np.ndarray, first: np.ndarray, rest: np.ndarray, cap: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """From ``start`` towards ``stop``, the longest segments whose band width fits the target."""
    paths: list[list[float]] = [[float(s)] for s in start]
    current, target = start.astype(np.float64).copy(), first.astype(np.float64).copy()
    steps = np.zeros(start.size, dtype=int)
    active = current != stop
    while active.any():
        idx = np.flatnonzero(active)
        nxt = _longest_step(kind, current[idx], stop[idx], target[idx])
        for i, z in zip(idx.tolist(), nxt.tolist()):
            paths[i].append(z)
        current[idx] = nxt
        target[idx] = rest[idx]
        steps[idx] += 1
        active[idx] = (nxt != stop[idx]) & (steps[idx] <= cap)
    return [np.array(p) for p in paths], steps


def _band(kind: str, a: np.ndarray, z: np.ndarray) -> np.ndarray:
    above, below = chord_deviation(kind, np.minimum(a, z), np.maximum(a, z))
    return above + below


def _longest_step(kind: str, a: np.ndarray, stop: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The farthest point towards ``stop`` whose segment from ``a`` has band width <= ``target``."""
    whole = _band(kind, a, stop) <= target
    lo, hi = np.zeros(a.shape), np.ones(a.shape)
    for _ in range(_BISECTIONS):  # the band width grows with the segment on one side of c
        mid = 0.5 * (lo + hi)
        ok = _band(kind, a, a + mid * (stop - a)) <= target
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    step = a + np.maximum(lo, 2.0**-_BISECTIONS) * (stop - a)
    return np.where(whole, stop, step)


def _offsets(kind: str, points: list[np.ndarray]) -> Enclosure:
    """Offsets ``e^U``, ``e^L`` at every breakpoint: the largest deviation of the segments next to it."""
    uppers, lowers = [], []
    for b in points:
        above, below = chord_deviation(kind, b[:-1], b[1:])
        e_up = np.maximum(np.r_[above, 0.0], np.r_[0.0, above])
        e_lo = np.maximum(np.r_[below, 0.0], np.r_[0.0, below])
        f = smooth_value(kind, b)
        uppers.append(f + e_up)
        lowers.append(f - e_lo)
    return Enclosure(kind, tuple(points), tuple(uppers), tuple(lowers))


# ----------------------------------------------------------- error propagation
def slope_range(kinds: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(min f', max f')`` of each neuron's activation over its ``[lower, upper]``.

    ReLU: 1 when proven active, 0 when proven inactive, ``[0, 1]`` otherwise; linear: 1.
    tanh and sigmoid have ``f'`` largest at 0, softplus' is increasing.
    """
    low, high = np.ones(lower.shape), np.ones(lower.shape)
    relu = kinds == "relu"
    low[relu] = np.where(lower[relu] >= 0, 1.0, 0.0)
    high[relu] = np.where(upper[relu] <= 0, 0.0, 1.0)
    for kind in SMOOTH_ACTIVATIONS:
        cols = np.flatnonzero(kinds == kind)
        if not cols.size:
            continue
        lo, up = lower[cols], upper[cols]
        ends = np.minimum(smooth_slope(kind, lo), smooth_slope(kind, up))
        if kind == "softplus":
            low[cols], high[cols] = smooth_slope(kind, lo), smooth_slope(kind, up)
        else:
            low[cols], high[cols] = ends, smooth_slope(kind, np.clip(0.0, lo, up))
    return low, high


def propagate_error(
    layers: list,
    lower: list[np.ndarray],
    upper: list[np.ndarray],
    neuron_error: list[tuple[np.ndarray, np.ndarray] | None],
) -> tuple[np.ndarray, np.ndarray]:
    """Interval of ``relaxed output - network output`` per output, at any common input.

    ``layers`` are canonical layers with pre-activation bounds ``lower[k]``, ``upper[k]``
    (which the relaxed pre-activations obey too); ``neuron_error[k] = (below, above)``
    says a relaxed post-activation lies in ``[f(z) - below, f(z) + above]`` at its own
    pre-activation ``z`` (``None``: exact).  The difference of pre-activations is
    ``W d`` for the difference ``d`` of the previous layer; ``f(z̃) - f(z)`` is ``f'(ξ)
    (z̃ - z)`` with ``f'(ξ)`` in :func:`slope_range`; both relaxed and true
    post-activations lie in the layer's exact output bounds, which caps the result.
    """
    d_lo = d_hi = np.zeros(layers[0].n_inputs)
    for k, layer in enumerate(layers):
        pos, neg = positive_part(layer.weights), negative_part(layer.weights)
        delta_lo = np.asarray(pos @ d_lo + neg @ d_hi).ravel()
        delta_hi = np.asarray(pos @ d_hi + neg @ d_lo).ravel()
        lo_k, up_k = lower[k], upper[k]
        if isinstance(layer, MaxLayer):
            d_lo = -group_max(-delta_lo, layer.groups)
            d_hi = group_max(delta_hi, layer.groups)
        else:
            m, big_m = slope_range(layer.kinds, lo_k, up_k)
            d_lo = np.minimum(m * delta_lo, big_m * delta_lo)
            d_hi = np.maximum(m * delta_hi, big_m * delta_hi)
            error = neuron_error[k]
            if error is not None:
                below, above = error
                d_lo, d_hi = d_lo - below, d_hi + above
        out_lo, out_up = layer.output_bounds(lo_k, up_k)
        with np.errstate(invalid="ignore"):
            spread = np.where(np.isfinite(out_up - out_lo), out_up - out_lo, np.inf)
        d_lo, d_hi = np.maximum(d_lo, -spread), np.minimum(d_hi, spread)
    return d_lo, d_hi
