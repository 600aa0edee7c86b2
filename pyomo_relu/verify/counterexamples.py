"""VNN-COMP counterexample blocks ``((X_0 v) ... (Y_0 v) ...)``: written and read back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pyomo_relu.errors import VnnlibError
from pyomo_relu.verify.sexpr import VARIABLE, SList, finite_number, line_of, parse_sexpressions

__all__ = ["format_counterexample", "parse_counterexample", "read_counterexample"]


def format_counterexample(x: Sequence[float], y: Sequence[float]) -> str:
    """The VNN-COMP counterexample block ``((X_0 v)\\n(X_1 v)\\n...(Y_0 v)...)``.

    >>> print(format_counterexample([0.5, 1.0], [-2.0]))
    ((X_0 0.5)
    (X_1 1.0)
    (Y_0 -2.0))
    """
    entries = [f"(X_{i} {float(v)!r})" for i, v in enumerate(x)]
    entries += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(y)]
    return "(" + "\n".join(entries) + ")"


def parse_counterexample(text: str, source: str = "<string>") -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from a counterexample block (a leading ``sat`` line is allowed).

    >>> parse_counterexample("sat\\n((X_0 0.5)\\n(X_1 1.0)\\n(Y_0 -2.0))")
    (array([0.5, 1. ]), array([-2.]))
    """
    values: dict[str, dict[int, float]] = {"X": {}, "Y": {}}
    exprs = [e for e in parse_sexpressions(text) if not (isinstance(e, tuple) and e[0] in ("sat", "violated"))]
    if len(exprs) != 1 or not isinstance(exprs[0], SList):
        raise VnnlibError(f"{source}: expected one block ((X_0 value) ... (Y_0 value) ...)")
    for entry in exprs[0].items:
        pair = entry.items if isinstance(entry, SList) else []
        if not (len(pair) == 2 and isinstance(pair[0], tuple) and isinstance(pair[1], tuple)):
            raise VnnlibError(f"{source}: line {line_of(entry)}: expected (NAME VALUE)")
        (name, line), (text_value, _) = pair[0], pair[1]
        match = VARIABLE.match(name)
        if not match:
            raise VnnlibError(f"{source}: line {line}: expected X_<i> or Y_<j>, found {name!r}")
        values[match.group(1)][int(match.group(2))] = finite_number(text_value, f"{source}: line {line}")
    return _dense(values["X"], "X", source), _dense(values["Y"], "Y", source)


def _dense(values: dict[int, float], prefix: str, source: str) -> np.ndarray:
    if sorted(values) != list(range(len(values))):
        raise VnnlibError(f"{source}: the {prefix} values are not numbered {prefix}_0 .. {prefix}_{len(values) - 1}")
    return np.array([values[i] for i in range(len(values))], dtype=float)


def read_counterexample(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from a VNN-COMP counterexample or result file."""
    return parse_counterexample(Path(path).read_text(), str(path))
