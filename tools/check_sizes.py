"""Report modules over MAX_MODULE_LINES and functions over MAX_FUNCTION_LINES in the package.

    python tools/check_sizes.py [paths...]      # exit status 1 when any is over

The limits are the project's (docs/design.md): a module holds one concern, a function does one
job.  Lines are counted from the ``def`` to the last line of the body, docstring included.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
ROOT = Path(__file__).resolve().parents[1]


def oversized(paths: list[Path]) -> list[str]:
    """One line per module or function over its limit, largest first."""
    found: list[tuple[int, str]] = []
    for path in paths:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            source = file.read_text()
            name = file.relative_to(ROOT) if file.is_relative_to(ROOT) else file
            lines = source.count("\n")
            if lines > MAX_MODULE_LINES:
                found.append((lines, f"{name}: module of {lines} lines (limit {MAX_MODULE_LINES})"))
            for node in ast.walk(ast.parse(source, filename=str(file))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found.append(
                            (
                                length,
                                f"{name}:{node.lineno}: function {node.name} of {length} lines "
                                f"(limit {MAX_FUNCTION_LINES})",
                            )
                        )
    return [text for _, text in sorted(found, reverse=True)]


def main(argv: list[str]) -> int:
    paths = [Path(arg).resolve() for arg in argv] or [ROOT / "pyomo_relu"]
    report = oversized(paths)
    for line in report:
        print(line)
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
