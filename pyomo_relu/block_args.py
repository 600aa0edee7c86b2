"""The arguments of ``ReLUNetBlock.build``/``declare``: the user's variables and the input and output boxes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from pyomo.core.base.var import IndexedVar, ScalarVar, VarData

from pyomo_relu.errors import MissingBoundsError, PyomoReluError, ShapeMismatchError
from pyomo_relu.network import NetworkDefinition

__all__ = [
    "as_var_list",
    "bound_value",
    "finite",
    "input_box",
    "is_default_bounds",
    "output_box",
    "require_finite_inputs",
]


def as_var_list(obj: Any, size: int, what: str) -> list[VarData] | None:
    """Normalise the user's ``inputs``/``outputs`` argument to a list of VarData."""
    if obj is None:
        return None
    if isinstance(obj, IndexedVar):
        items = list(obj.values())
    elif isinstance(obj, (ScalarVar, VarData)):
        items = [obj]
    elif isinstance(obj, Iterable):
        items = list(obj)
    else:
        raise PyomoReluError(f"{what} must be a Pyomo Var or a list of VarData, not {type(obj).__name__}")
    for item in items:
        if not isinstance(item, VarData):
            raise PyomoReluError(
                f"{what} must contain Pyomo variables; got {describe_item(item)} ({type(item).__name__}). "
                "For an expression, add a variable and an equality constraint for it"
            )
    if len(items) != size:
        names = ", ".join(v.name for v in items[:4]) + (", ..." if len(items) > 4 else "")
        raise ShapeMismatchError(f"{what} has {len(items)} variables ({names}) but the network has {size} {what}")
    return items


def input_box(net: NetworkDefinition, input_vars: list[VarData] | None, extra: object) -> tuple[np.ndarray, np.ndarray]:
    """The tightest of the network's bounds, ``extra`` and the input variables' own bounds."""
    lower, upper = net.input_lower.copy(), net.input_upper.copy()
    if extra is not None:
        more = net.with_input_bounds(extra)
        lower, upper = np.maximum(lower, more.input_lower), np.minimum(upper, more.input_upper)
    if input_vars is not None:
        for i, var in enumerate(input_vars):
            lb, ub = (var.value, var.value) if var.fixed else (var.lb, var.ub)
            lower[i] = max(lower[i], bound_value(lb, -np.inf))
            upper[i] = min(upper[i], bound_value(ub, np.inf))
    crossed = np.flatnonzero(lower > upper)
    if crossed.size:
        i = int(crossed[0])
        where = f" (variable {input_vars[i].name})" if input_vars is not None else ""
        raise MissingBoundsError(
            f"input {i}{where}: the network's box and the variable's bounds do not overlap "
            f"(lower {lower[i]} > upper {upper[i]})"
        )
    return lower, upper


def output_box(
    net: NetworkDefinition, output_vars: list[VarData] | None, extra: object
) -> tuple[np.ndarray, np.ndarray]:
    """Output bounds from ``extra`` and the user's output variables (±inf where none)."""
    lower, upper = np.full(net.n_outputs, -np.inf), np.full(net.n_outputs, np.inf)
    if extra is not None:
        from pyomo_relu.bounds.chain import output_box as parse_output_box

        box = parse_output_box(net, extra)
        if box is not None:
            lower, upper = box
    if output_vars is not None:
        for j, var in enumerate(output_vars):
            lb, ub = (var.value, var.value) if var.fixed else (var.lb, var.ub)
            lower[j] = max(lower[j], bound_value(lb, -np.inf))
            upper[j] = min(upper[j], bound_value(ub, np.inf))
    return lower, upper


def require_finite_inputs(
    net: NetworkDefinition, lower: np.ndarray, upper: np.ndarray, input_vars: list[VarData] | None
) -> None:
    if all(layer.is_linear for layer in net.canonical_layers):
        return
    missing = np.flatnonzero(~np.isfinite(lower) | ~np.isfinite(upper))
    if missing.size == 0:
        return
    i = int(missing[0])
    side = "lower" if not np.isfinite(lower[i]) else "upper"
    more = f" (and {missing.size - 1} more)" if missing.size > 1 else ""
    if input_vars is not None:
        where = f"input {i} (variable {input_vars[i].name})"
        fix = f"set {input_vars[i].name}.setlb()/.setub(), or pass input_bounds= to build() or to the reader"
    else:
        where = f"input {i}"
        fix = "pass input_bounds= to build() or to the reader (e.g. load_onnx(path, input_bounds=...))"
    raise MissingBoundsError(f"{where} has no {side} bound{more}; ReLU formulations need a bounded input box: {fix}")


def is_default_bounds(bounds: Any) -> bool:
    return isinstance(bounds, str) and bounds == "auto"


def describe_item(item: Any) -> str:
    """Pyomo expressions print as algebra (``x[1] + 1``), anything else by repr."""
    return str(item) if hasattr(item, "is_expression_type") else repr(item)


def bound_value(value: Any, default: float) -> float:
    return default if value is None else float(value)


def finite(value: float | np.generic | np.ndarray) -> float | None:
    """``value`` as a float, ``None`` when infinite (Pyomo: no bound)."""
    return float(value) if np.isfinite(value) else None
