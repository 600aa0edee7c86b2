"""Neuron bounds: pure numpy (and highspy for optimisation-based methods), no Pyomo.

``tighten(net, method=[...])`` chains methods; each returns a :class:`Bounds`.
"""

from __future__ import annotations

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.interval import interval_bounds
from pyomo_relu.bounds.chain import METHODS, tighten

__all__ = ["METHODS", "Bounds", "interval_bounds", "tighten"]
