"""Neuron bounds: pure numpy (and highspy for optimisation-based methods), no Pyomo.

``tighten(net, method=[...])`` chains methods; each returns a :class:`Bounds`.
Methods: ``"interval"``, ``"crown"``, ``"lp"`` and ``"milp"`` (:mod:`pyomo_relu.bounds.obbt`).
"""

from __future__ import annotations

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.chain import METHODS, tighten
from pyomo_relu.bounds.crown import crown_bounds
from pyomo_relu.bounds.interval import interval_bounds
from pyomo_relu.bounds.obbt import lp_bounds, milp_bounds

__all__ = ["METHODS", "Bounds", "crown_bounds", "interval_bounds", "lp_bounds", "milp_bounds", "tighten"]
