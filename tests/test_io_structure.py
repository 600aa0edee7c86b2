"""The structure of pyomo_relu.io: no import cycles, one handler per ONNX operator, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pyomo_relu.io
from pyomo_relu.io.onnx import ops

IO = Path(pyomo_relu.io.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(IO.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every io module and the io modules it imports (at any depth of the file, lazy ones too)."""
    modules = {_module_name(path): path for path in IO.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            found |= {target for target in targets if target in modules and target != name}
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                return path + [name, other]
            if other not in state and (found := visit(other, path + [name])):
                return found
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name, [])):
            return found
    return None


def test_io_modules_have_no_import_cycle() -> None:
    graph = _imports()
    assert "pyomo_relu.io.keras.graph" in graph and "pyomo_relu.io.onnx.converter" in graph
    # a package's __init__ importing its own submodules is fine; submodules must not import it back
    without_packages = {
        name: {other for other in targets if not name.startswith(other + ".")} for name, targets in graph.items()
    }
    assert _cycle(without_packages) is None


def test_every_onnx_operator_has_one_handler() -> None:
    families = ops._FAMILIES
    registered = [op for family in families for op in family.HANDLERS]
    assert len(registered) == len(set(registered)) == len(ops.HANDLERS)
    assert set(ops.REQUIRED_INPUTS) <= set(ops.HANDLERS)
    assert {"Conv", "Gemm", "Relu", "Sign", "Reshape", "MaxPool"} <= set(ops.HANDLERS)
