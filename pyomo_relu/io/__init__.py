"""Readers: thin adapters that validate a framework's model up front, then translate it
to a :class:`~pyomo_relu.network.NetworkDefinition`."""

from __future__ import annotations


def __getattr__(name: str) -> object:
    import importlib

    modules = {
        "load_onnx": "pyomo_relu.io.onnx",
        "load_keras": "pyomo_relu.io.keras",
        "load_torch": "pyomo_relu.io.torch",
        "load_sklearn": "pyomo_relu.io.sklearn",
    }
    if name in modules:
        return getattr(importlib.import_module(modules[name]), name)
    raise AttributeError(f"module 'pyomo_relu.io' has no attribute {name!r}")
