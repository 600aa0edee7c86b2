"""S-expressions of VNN-LIB and counterexample files: tokens with their lines, nested lists, atoms.

>>> [describe(e) for e in parse_sexpressions("(assert (<= X_0 1)) ; a comment\\nsat")]
['(assert ...)', "'sat'"]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from pyomo_relu.errors import VnnlibError

__all__ = [
    "VARIABLE",
    "Atom",
    "Expr",
    "SList",
    "describe",
    "finite_number",
    "line_of",
    "parse_sexpressions",
    "tokens",
]

TOKEN = re.compile(r"\(|\)|[^\s()]+")
#: A variable name ``X_<i>`` or ``Y_<j>``.
VARIABLE = re.compile(r"([XY])_(\d+)$")


class SList:
    """A parenthesised s-expression with the line of its opening parenthesis."""

    __slots__ = ("items", "line")

    def __init__(self, line: int) -> None:
        self.items: list[Expr] = []
        self.line = line

    def head(self) -> str | None:
        first = self.items[0] if self.items else None
        return first[0] if isinstance(first, tuple) else None


Atom = tuple  # (text, line)
Expr = SList | Atom


def finite_number(text: str, where: str) -> float:
    """``float(text)``, or :class:`VnnlibError` ``"{where}: expected a (finite) number, found ..."``."""
    try:
        value = float(text)
    except ValueError:
        raise VnnlibError(f"{where}: expected a number, found {text!r}") from None
    if not math.isfinite(value):
        raise VnnlibError(f"{where}: expected a finite number, found {text!r}")
    return value


def tokens(lines: Iterable[tuple[int, str]]) -> list[tuple[str, int]]:
    """``(token, line)`` pairs; ``;`` starts a comment that runs to the end of the line."""
    tokens: list[tuple[str, int]] = []
    for line_number, line in lines:
        if ";" in line:
            line = line[: line.index(";")]
        tokens.extend([(token, line_number) for token in TOKEN.findall(line)])
    return tokens


def parse_sexpressions(text: str | Iterable[tuple[int, str]]) -> list[Expr]:
    """Top-level s-expressions of ``text`` (a string, or ``(line number, line)`` pairs).

    Unbalanced parentheses raise :class:`VnnlibError` naming the line.
    """
    lines = enumerate(text.split("\n"), 1) if isinstance(text, str) else text
    stack: list[SList] = []
    top: list[Expr] = []
    for token, line in tokens(lines):
        if token == "(":
            stack.append(SList(line))
        elif token == ")":
            if not stack:
                raise VnnlibError(f"line {line}: unexpected ')' with no matching '('")
            node = stack.pop()
            (stack[-1].items if stack else top).append(node)
        else:
            (stack[-1].items if stack else top).append((token, line))
    if stack:
        raise VnnlibError(f"line {stack[-1].line}: '(' is never closed (expected ')' before the end of the file)")
    return top


def describe(expr: Expr) -> str:
    if isinstance(expr, tuple):
        return repr(expr[0])
    head = expr.head()
    return f"({head} ...)" if head else "a parenthesised expression"


def line_of(expr: Expr) -> int:
    return expr[1] if isinstance(expr, tuple) else expr.line
