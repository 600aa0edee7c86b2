"""Input and output scalings (OMLT's ``OffsetScaling``, negative factors allowed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyomo_relu.errors import InvalidNetworkError, ShapeMismatchError
from pyomo_relu.network.arrays import frozen_array


@dataclass(frozen=True, eq=False, init=False)
class Scaling:
    """Affine scaling ``scaled = (value - offset) / factor``; factors may be negative.

    >>> s = Scaling([1.0, 0.0], [2.0, -1.0])
    >>> s.scale(np.array([3.0, 4.0])), s.unscale(np.array([1.0, -4.0]))
    (array([ 1., -4.]), array([3., 4.]))
    """

    offset: np.ndarray
    factor: np.ndarray

    def __init__(self, offset: object, factor: object) -> None:
        object.__setattr__(self, "offset", frozen_array(offset, "scaling offset", 1))
        object.__setattr__(self, "factor", frozen_array(factor, "scaling factor", 1))
        if self.offset.shape != self.factor.shape:
            raise ShapeMismatchError(f"scaling offset has {self.offset.size} entries, factor {self.factor.size}")
        if np.any(self.factor == 0):
            raise InvalidNetworkError(
                f"scaling factor is zero at index {int(np.flatnonzero(self.factor == 0)[0])}; "
                "a factor must be non-zero (negative values are allowed)"
            )

    @property
    def size(self) -> int:
        return int(self.offset.size)

    def scale(self, values: np.ndarray) -> np.ndarray:
        return (values - self.offset) / self.factor

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.factor + self.offset
