"""Input boxes as the user spells them: pairs, dicts, ``(lower, upper)`` arrays, ``None`` sides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeGuard

import numpy as np

from pyomo_relu.errors import InvalidNetworkError, InvalidValueError, ShapeMismatchError


def as_bounds_pair(input_bounds: object, n_inputs: int, what: str = "input") -> tuple[np.ndarray, np.ndarray] | None:
    """Normalise the accepted spellings of input bounds to ``(lower, upper)`` arrays.

    Accepted forms (``None`` for an absent side, which becomes ``∓inf``):

    * a sequence of ``(lb, ub)`` pairs, one per input (lists or tuples), or an
      array of shape ``(n_inputs, 2)``;
    * a dict ``{input_index: (lb, ub)}`` (inputs not named have no bounds);
    * a pair ``(lower, upper)`` of numpy arrays or scalars (scalars apply to every input).

    Malformed values raise :class:`ShapeMismatchError` (wrong count, index or pair) or
    :class:`InvalidValueError` (not a number), naming the ``what`` index.  NaN is kept, for
    the caller to refuse with its own words (:func:`check_box`).
    """
    if input_bounds is None:
        return None
    name = f"{what}_bounds"
    lower = np.full(n_inputs, -np.inf)
    upper = np.full(n_inputs, np.inf)
    if isinstance(input_bounds, Mapping):
        items: Iterable = input_bounds.items()
    elif _is_lower_upper_pair(input_bounds):
        low, high = input_bounds
        return _bounds_side(low, n_inputs, -np.inf, f"{name} (lower)"), _bounds_side(
            high, n_inputs, np.inf, f"{name} (upper)"
        )
    elif isinstance(input_bounds, (str, bytes)) or not isinstance(input_bounds, Iterable):
        raise InvalidValueError(
            f"{name} must be (lb, ub) pairs, a dict {{index: (lb, ub)}} or a (lower, upper) pair of "
            f"arrays, not {type(input_bounds).__name__} {input_bounds!r:.60}"
        )
    else:
        pairs = list(input_bounds)
        if len(pairs) != n_inputs:
            raise ShapeMismatchError(f"{name} has {len(pairs)} entries but the network has {n_inputs} {what}s")
        items = enumerate(pairs)
    for key, pair in items:
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) or not 0 <= key < n_inputs:
            raise ShapeMismatchError(
                f"{name} names {what} {key!r}, but the network has {n_inputs} {what}s (0 .. {n_inputs - 1})"
            )
        index = int(key)
        lb, ub = _pair(pair, f"{name}, {what} {index}")
        lower[index] = _bound_value(lb, -np.inf, f"{name}, {what} {index}, lower bound")
        upper[index] = _bound_value(ub, np.inf, f"{name}, {what} {index}, upper bound")
    return lower, upper


def _is_lower_upper_pair(value: object) -> TypeGuard[Sequence[object]]:
    """True for ``(lower, upper)`` given as two numpy arrays or two scalars."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return False
    return all(isinstance(side, np.ndarray) or side is None or np.isscalar(side) for side in value)


def _pair(pair: object, where: str) -> tuple[object, object]:
    """``(lb, ub)`` from a two-element sequence or array."""
    try:
        items = None if isinstance(pair, (str, bytes)) else list(pair)  # type: ignore[call-overload]
    except TypeError:
        items = None
    if items is None or len(items) != 2:
        raise ShapeMismatchError(f"{where}: expected a pair (lb, ub), got {pair!r:.60}")
    return items[0], items[1]


def _bound_value(value: object, fill: float, where: str) -> float:
    """``value`` as a float (``fill`` for ``None``); NaN is kept for the caller to refuse."""
    if value is None:
        return fill
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidValueError(f"{where}: {value!r:.40} is not a number (use None for no bound)") from None


def _bounds_side(value: object, n: int, fill: float, where: str) -> np.ndarray:
    """One side of a ``(lower, upper)`` pair: ``None``, a scalar or ``n`` values (``None`` entries allowed)."""
    if value is None:
        return np.full(n, fill)
    flat = [value] if np.isscalar(value) else np.ravel(np.asarray(value, dtype=object)).tolist()
    values = np.array([_bound_value(v, fill, f"{where}, entry {i}") for i, v in enumerate(flat)], dtype=float)
    if values.size not in (1, n):
        raise ShapeMismatchError(f"{where} has {values.size} entries but the network has {n}")
    return np.broadcast_to(values, (n,)).copy()


def check_box(lower: np.ndarray, upper: np.ndarray, what: str = "input") -> None:
    """Refuse NaN, a lower bound of ``+inf``, an upper bound of ``-inf`` and crossed bounds."""
    for side, values, wrong in (("lower", lower, np.inf), ("upper", upper, -np.inf)):
        bad = np.flatnonzero(np.isnan(values) | (values == wrong))
        if bad.size:
            i = int(bad[0])
            raise InvalidValueError(
                f"{what}_bounds: {what} {i} has {side} bound {values[i]}; give a finite number, or None (or "
                f"{'-' if side == 'lower' else '+'}inf) for no bound"
            )
    crossed = np.flatnonzero(lower > upper)
    if crossed.size:
        i = int(crossed[0])
        raise InvalidNetworkError(f"{what} {i} has lower bound {lower[i]} > upper bound {upper[i]}")
