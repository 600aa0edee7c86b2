"""Walks of the Pyomo component tree that the block, the transformations and IDAES share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["within"]


def within(component: Any, blocks: Iterable[Any]) -> bool:
    """Whether ``component`` is one of ``blocks`` or lies, at any depth, inside one of them.

    ``component`` is any Pyomo component or component data (a variable, a constraint, a
    block); ``blocks`` any collection of blocks (compared by identity).

    >>> import pyomo.environ as pe
    >>> m = pe.ConcreteModel()
    >>> m.b = pe.Block()
    >>> m.b.x = pe.Var()
    >>> m.y = pe.Var()
    >>> within(m.b.x, [m.b]), within(m.y, [m.b]), within(m.b, [m.b]), within(m.b.x, [m])
    (True, False, True, True)
    """
    ids = {id(block) for block in blocks}
    node = component
    while node is not None:
        if id(node) in ids:
            return True
        node = node.parent_block()
    return False
