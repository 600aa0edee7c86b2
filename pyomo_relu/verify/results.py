"""What :func:`~pyomo_relu.verify.verify` returns, and the reference check of every counterexample.

* :class:`VerifyResult`: the verdict, its counterexample or proven bound, and what decided it;
* :func:`check_counterexample` / :class:`CounterexampleCheck`: is ``x`` a counterexample of a
  specification by the exact forward pass (:meth:`NetworkDefinition.evaluate`)?
* :class:`ExactMargin`: the batched form of that check for one case, as the search needs it
  (a plain object, so it pickles to worker processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyomo_relu.network import NetworkDefinition
from pyomo_relu.verify.vnnlib import Case, Specification

__all__ = ["CounterexampleCheck", "ExactMargin", "VerifyResult", "check_counterexample"]


@dataclass
class VerifyResult:
    """The verdict on a property.

    ``status``: ``"sat"`` (the property is violated: ``counterexample`` is ``(x, y)`` with
    ``y = net.evaluate(x)``, and ``details["margin"]`` its margin), ``"unsat"`` (it holds) or
    ``"unknown"`` (``reason`` says why, e.g. ``"time limit"``).  ``proven_bound`` is a proven
    upper bound of the best margin ``max min_i (b_i - A_i y)`` over the cases (negative for
    ``unsat``; ``None`` for ``sat`` and when no bound is known).  ``subproblems`` counts the
    sub-boxes bounded by splitting plus the MILPs solved.  ``method`` names what decided:
    ``"attack"``, ``"bounds"``, ``"split"``, ``"relu-split"``, ``"milp"``.
    """

    status: str
    counterexample: tuple[np.ndarray, np.ndarray] | None = None
    proven_bound: float | None = None
    seconds: float = 0.0
    subproblems: int = 0
    method: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def timed_out(self) -> bool:
        """``unknown`` because the time limit was reached."""
        return self.status == "unknown" and self.reason == "time limit"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (counterexample as lists or ``None``)."""
        counterexample = None
        if self.counterexample is not None:
            x, y = self.counterexample
            counterexample = {"x": [float(v) for v in x], "y": [float(v) for v in y]}
        return {
            "status": self.status,
            "counterexample": counterexample,
            "proven_bound": self.proven_bound,
            "seconds": round(self.seconds, 4),
            "subproblems": self.subproblems,
            "method": self.method,
            "reason": self.reason,
        }


@dataclass
class CounterexampleCheck:
    """Whether ``x`` is a counterexample: inside a case's box and unsafe by the forward pass.

    ``margin`` is the best ``max_p margin_p(y)`` over the cases whose box holds ``x``
    (``-inf`` if none does); ``box_violation`` how far ``x`` lies outside the nearest box.
    """

    valid: bool
    y: np.ndarray
    margin: float
    box_violation: float
    case: int | None
    polytope: int | None


def check_counterexample(
    net: NetworkDefinition,
    spec: Specification,
    x: Sequence[float] | np.ndarray,
    *,
    input_tol: float = 0.0,
    output_tol: float = 0.0,
) -> CounterexampleCheck:
    """Check ``x`` with :meth:`NetworkDefinition.evaluate`.

    Valid when ``x`` is within ``input_tol`` of some case's box and the output's margin
    in one of its polytopes is ``>= -output_tol``.  The defaults (zero) are what
    :func:`~pyomo_relu.verify.verify` demands of its own answers; counterexamples written in
    float32 by other tools may need ``input_tol`` / ``output_tol`` around ``1e-6``.
    """
    spec.check_network(net.n_inputs, net.n_outputs)
    point = np.asarray(x, dtype=float).ravel()
    y = net.evaluate(point)
    best: tuple[float, int | None, int | None] = (-np.inf, None, None)
    nearest = np.inf
    for c, case in enumerate(spec.cases):
        violation = float(max(0.0, np.max(case.lower - point), np.max(point - case.upper)))
        nearest = min(nearest, violation)
        if violation > input_tol:
            continue
        for p, polytope in enumerate(case.polytopes):
            margin = float(polytope.margin(y))
            if margin > best[0]:
                best = (margin, c, p)
    return CounterexampleCheck(bool(best[0] >= -output_tol), y, best[0], nearest, best[1], best[2])


@dataclass(frozen=True, eq=False)
class ExactMargin:
    """``X -> max_p margin_p(net.evaluate(x))`` for one case: the reference check of every candidate.

    Points outside the case's box get ``-inf``.  A point that passes in the batch is
    evaluated again on its own, as :func:`check_counterexample` will do (a batched and a
    single matrix product may differ in the last bit), and must pass both times.
    """

    net: NetworkDefinition
    case: Case

    def __call__(self, points: np.ndarray) -> np.ndarray:
        points = np.atleast_2d(points)
        case = self.case
        inside = np.all((points >= case.lower) & (points <= case.upper), axis=1)
        margins = np.where(inside, np.atleast_1d(case.margin(self.net.evaluate(points))), -np.inf)
        for i in np.flatnonzero(margins >= 0):
            margins[i] = min(margins[i], float(case.margin(self.net.evaluate(points[i]))))
        return margins

    def feasibility(self, points: np.ndarray) -> np.ndarray:
        """The search engine's value of a feasibility problem: ``0`` for a confirmed point, else ``+inf``."""
        return np.where(self(points) >= 0, 0.0, np.inf)
