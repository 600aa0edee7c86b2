"""pyomo_relu: trained ReLU networks as mixed-integer constraints in Pyomo models.

The pipeline reads a model file into a :class:`NetworkDefinition` (``pyomo_relu.io``),
computes neuron bounds (``pyomo_relu.bounds``), and builds a :class:`ReLUNetBlock` with
a chosen formulation (``pyomo_relu.formulations``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pyomo_relu.errors import (
    BoundsMismatchError,
    InvalidNetworkError,
    InvalidValueError,
    MissingBoundsError,
    ModelLoadError,
    PyomoReluError,
    ShapeMismatchError,
    SolverError,
    UnknownLayerError,
    UnsupportedOperatorError,
    UsageError,
)
from pyomo_relu.network import DenseLayer, MaxLayer, NetworkDefinition, Scaling

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Bounds",
    "BoundsMismatchError",
    "DenseLayer",
    "MaxLayer",
    "InvalidNetworkError",
    "InvalidValueError",
    "MissingBoundsError",
    "ModelLoadError",
    "NetworkDefinition",
    "PyomoReluError",
    "ReLUNetBlock",
    "Scaling",
    "ShapeMismatchError",
    "SolveResult",
    "SolverError",
    "UnknownLayerError",
    "UnsupportedOperatorError",
    "UsageError",
    "LinearConstraints",
    "OptimizeResult",
    "ReLUSurrogate",
    "__version__",
    "load_keras",
    "load_onnx",
    "load_sklearn",
    "load_torch",
    "optimize",
    "register_formulation",
    "solve",
    "tighten",
    "verify",
]


#: The exports imported on first use (readers, the Pyomo block, solvers): name -> module.
_LAZY = {
    "load_onnx": "pyomo_relu.io.onnx",
    "load_keras": "pyomo_relu.io.keras",
    "load_torch": "pyomo_relu.io.torch",
    "load_sklearn": "pyomo_relu.io.sklearn",
    "ReLUNetBlock": "pyomo_relu.block",
    "register_formulation": "pyomo_relu.formulations",
    "Bounds": "pyomo_relu.bounds",
    "tighten": "pyomo_relu.bounds",
    "solve": "pyomo_relu.solvers",
    "SolveResult": "pyomo_relu.solvers",
    "optimize": "pyomo_relu.search",
    "OptimizeResult": "pyomo_relu.search",
    "LinearConstraints": "pyomo_relu.search",
    "ReLUSurrogate": "pyomo_relu.idaes",
}

if TYPE_CHECKING:  # what the lazy exports are, for type checkers and IDEs
    from pyomo.core.base.block import Block

    from pyomo_relu import verify
    from pyomo_relu.bounds import Bounds, tighten
    from pyomo_relu.formulations import register_formulation
    from pyomo_relu.idaes import ReLUSurrogate
    from pyomo_relu.io.keras import load_keras
    from pyomo_relu.io.onnx import load_onnx
    from pyomo_relu.io.sklearn import load_sklearn
    from pyomo_relu.io.torch import load_torch
    from pyomo_relu.search import LinearConstraints, OptimizeResult, optimize
    from pyomo_relu.solvers import SolveResult, solve

    #: Made by Pyomo's ``declare_custom_block`` when pyomo_relu.block is imported.
    ReLUNetBlock: type[Block]


#: Subpackages exported by name.  ``pyomo_relu.verify`` is always the verification package
#: (its function is ``pyomo_relu.verify.verify``): one name, one thing, whatever was imported first.
_SUBPACKAGES = ("verify",)


def __getattr__(name: str) -> Any:
    """Import the heavier parts (readers, Pyomo block, solvers) only when used."""
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'pyomo_relu' has no attribute {name!r}")
