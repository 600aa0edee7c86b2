"""Readers: thin adapters that validate a framework's model up front, then translate it
to a :class:`~pyomo_relu.network.NetworkDefinition`.

Each reader is imported on first use (the frameworks are optional extras); every one
composes affine pieces with :mod:`pyomo_relu.io.affine`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy exports are, for type checkers
    from pyomo_relu.io.keras import load_keras
    from pyomo_relu.io.onnx import load_onnx
    from pyomo_relu.io.sklearn import load_sklearn
    from pyomo_relu.io.torch import load_torch

__all__ = ["load_keras", "load_onnx", "load_sklearn", "load_torch"]

_MODULES = {
    "load_onnx": "pyomo_relu.io.onnx",
    "load_keras": "pyomo_relu.io.keras",
    "load_torch": "pyomo_relu.io.torch",
    "load_sklearn": "pyomo_relu.io.sklearn",
}


def __getattr__(name: str) -> object:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'pyomo_relu.io' has no attribute {name!r}")
