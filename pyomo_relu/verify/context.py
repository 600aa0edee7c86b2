"""The state one :func:`~pyomo_relu.verify.verify` call shares between its routes, and their common steps.

* :class:`VerifyContext`: the network, the deadline, the options and what has been counted;
* :class:`CaseOutcome`: what a route decided for one case of the specification;
* :func:`root_bounds` / :func:`open_regions` / :func:`only_regions`: CROWN on a case's box,
  the unsafe polytopes it does not exclude, and the problem restricted to them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyomo_relu.bounds.crown import BatchBounds, batch_crown, linear_bounds
from pyomo_relu.network import Layer, NetworkDefinition
from pyomo_relu.search.nodes import safe_margin
from pyomo_relu.search.problem import SearchProblem

__all__ = ["CaseOutcome", "RootBounds", "VerifyContext", "only_regions", "open_regions", "root_bounds"]

#: Per-layer neuron bounds ``(lower, upper)`` valid on a whole box.
NeuronBounds = tuple[list[np.ndarray], list[np.ndarray]]
#: Linear lower forms ``(coef (B, r, n_in), const (B, r))`` of the specification rows.
RowForms = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class VerifyContext:
    """The options of one ``verify`` call, its deadline and its counters."""

    net: NetworkDefinition
    layers: tuple[Layer, ...]
    deadline: float | None
    bounds: Sequence[str]
    split: bool
    split_max_inputs: int
    executor: Executor | int | None
    seed: int
    relu_split: bool = True
    subproblems: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def left(self) -> float | None:
        """Seconds to the deadline (``None``: no limit)."""
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def expired(self) -> bool:
        """The deadline has passed."""
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def used(self, method: str) -> None:
        """Record that ``method`` took part in the verdict."""
        self.details.setdefault("methods", []).append(method)

    def count(self, key: str, amount: float) -> None:
        """Add ``amount`` to ``details[key]``."""
        self.details[key] = self.details.get(key, 0) + amount


@dataclass
class CaseOutcome:
    """A route's answer for one case: ``"sat"`` (with ``x``), ``"unsat"`` (with ``bound``) or ``"unknown"``."""

    status: str
    x: np.ndarray | None = None
    bound: float | None = None
    method: str = ""
    reason: str = ""


@dataclass
class RootBounds:
    """CROWN on a case's box: the batch bounds (one box), each row's lower bound and the row forms."""

    bounds: BatchBounds
    row_lower: np.ndarray
    forms: RowForms

    @property
    def neurons(self) -> NeuronBounds:
        """Every layer's neuron bounds on the box."""
        return [a[0] for a in self.bounds.lower], [a[0] for a in self.bounds.upper]


def root_bounds(problem: SearchProblem, start: NeuronBounds | None = None) -> RootBounds:
    """CROWN on the problem's box (from ``start`` neuron bounds when given), with the specification rows."""
    first = None if start is None else ([a[None] for a in start[0]], [a[None] for a in start[1]])
    bounds = batch_crown(problem.layers, problem.lower[None], problem.upper[None], first)
    forms, row_lower = linear_bounds(bounds, problem.rows_y, problem.rows_x)
    return RootBounds(bounds, row_lower, forms)


def open_regions(problem: SearchProblem, row_lower: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Regions whose margin bound does not exclude them, and every region's margin bound."""
    margin = problem.reduce_min(problem.rhs - row_lower)[0]
    excluded = problem.reduce_min(problem.rhs - row_lower + safe_margin(problem.rhs))[0] < 0
    return [p for p in range(problem.n_regions) if not excluded[p]], margin


def only_regions(problem: SearchProblem, regions: Sequence[int]) -> SearchProblem:
    """The same problem with only the regions ``regions``."""
    return SearchProblem(
        problem.layers,
        problem.lower,
        problem.upper,
        None,
        tuple(problem.regions[p] for p in regions),
        problem.feasibility_tol,
    )
