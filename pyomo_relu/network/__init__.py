"""The network description every other part of pyomo_relu reads.

A :class:`NetworkDefinition` is an immutable chain of layers working on flat float64
vectors, with optional input bounds and optional input/output scaling.  It is pure numpy:
readers (``pyomo_relu.io``) produce it, bounds and formulations consume it.  Where each part
lives:

* :mod:`~pyomo_relu.network.layers`: :class:`DenseLayer`, :class:`MaxLayer` and their forward maths;
* :mod:`~pyomo_relu.network.activations`: activation names, the smooth activations' maths;
* :mod:`~pyomo_relu.network.lowering`: canonical layers (scalings folded, LeakyReLU/Clip lowered);
* :mod:`~pyomo_relu.network.scaling`: :class:`Scaling`;
* :mod:`~pyomo_relu.network.boxes`: the accepted spellings of input bounds;
* :mod:`~pyomo_relu.network.definition`: :class:`NetworkDefinition`;
* :mod:`~pyomo_relu.network.serialise`: networks and layers as JSON-ready data.
"""

from __future__ import annotations

from pyomo_relu.network.activations import (
    ACTIVATIONS,
    CANONICAL_ACTIVATIONS,
    PIECEWISE_LINEAR_ACTIVATIONS,
    SMOOTH_ACTIVATIONS,
    smooth_lines,
    smooth_slope,
    smooth_value,
)
from pyomo_relu.network.boxes import as_bounds_pair, check_box
from pyomo_relu.network.definition import NetworkDefinition
from pyomo_relu.network.layers import DenseLayer, GroupOrder, Layer, MaxLayer, group_max, group_order
from pyomo_relu.network.lowering import Affine, Canonical, Lowering, canonicalize, lower_layer
from pyomo_relu.network.scaling import Scaling
from pyomo_relu.network.serialise import layer_from_dict, layer_to_dict, network_from_dict, network_to_dict

__all__ = [
    "ACTIVATIONS",
    "CANONICAL_ACTIVATIONS",
    "PIECEWISE_LINEAR_ACTIVATIONS",
    "SMOOTH_ACTIVATIONS",
    "Affine",
    "Canonical",
    "DenseLayer",
    "GroupOrder",
    "Layer",
    "Lowering",
    "MaxLayer",
    "NetworkDefinition",
    "Scaling",
    "as_bounds_pair",
    "canonicalize",
    "check_box",
    "group_max",
    "group_order",
    "layer_from_dict",
    "layer_to_dict",
    "lower_layer",
    "network_from_dict",
    "network_to_dict",
    "smooth_lines",
    "smooth_slope",
    "smooth_value",
]
