r"""``optimize``: the provably global optimum of a network's output over an input box.

>>> import numpy as np
>>> from pyomo_relu import DenseLayer, NetworkDefinition, optimize
>>> net = NetworkDefinition([DenseLayer([[1.0, 1.0], [1.0, -1.0]], [0.0, 0.0]),
...                          DenseLayer([[1.0, 1.0]], [-1.0], "linear")], input_bounds=[(-1, 1), (-1, 1)])
>>> r = optimize(net, 0, sense="maximize", progress=False)       # relu(x0+x1) + relu(x0-x1) - 1
>>> r.status, round(r.objective, 9), round(r.bound, 5), bool(r.gap <= 1e-6)   # bound within the gap
('optimal', 1.0, 1.0, True)
>>> r = optimize(net, 0, constraints={"A_x": [[-1.0, 0.0]], "b": [-0.5]}, progress=False)  # x0 >= 0.5
>>> r.status, round(r.objective, 9), bool(r.x[0] >= 0.5)
('optimal', 0.0, True)

The search is :func:`pyomo_relu.search.engine.branch_and_bound` over sub-boxes of the
inputs (batched CROWN bounds, incumbents from forward passes and a gradient attack, leaf
MILPs with HiGHS for boxes with few unstable neurons).  Every reported point is re-checked
with :meth:`NetworkDefinition.evaluate`; the bound is proven.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyomo_relu.errors import MissingBoundsError, PyomoReluError
from pyomo_relu.network import NetworkDefinition
from pyomo_relu.options import strict_keywords
from pyomo_relu.parallel import ExecutorSpec
from pyomo_relu.search.engine import SearchResult, branch_and_bound
from pyomo_relu.search.nodes import OPTIMIZE_LOPSIDED
from pyomo_relu.search.problem import LinearConstraints, SearchProblem, unit_objective

logger = logging.getLogger(__name__)

__all__ = ["FEASIBILITY_TOLERANCE", "OptimizeResult", "optimize"]

#: How far (absolute) a point may violate a row of ``constraints`` by the exact forward pass.
FEASIBILITY_TOLERANCE = 1e-6


@dataclass
class OptimizeResult:
    """What :func:`optimize` found and proved.

    ``status``: ``"optimal"`` (``gap <= `` the requested gap), ``"time_limit"`` (stopped early:
    ``x`` is the best point found, maybe ``None``, and ``bound`` what is proven),
    ``"infeasible"`` (proven: no input in the box meets the constraints) or ``"interrupted"``
    (Ctrl-C; as ``time_limit``).  ``x`` and ``y = net.evaluate(x)`` (re-checked), ``objective``
    the objective at ``x``; ``bound`` a proven bound of the optimum (a lower bound when
    minimising, upper when maximising; ``None`` when none is known); ``gap`` ``|objective -
    bound|``; ``nodes`` the sub-boxes bounded, ``leaves`` the leaf MILPs solved.
    """

    status: str
    x: np.ndarray | None
    y: np.ndarray | None
    objective: float | None
    bound: float | None
    gap: float | None
    nodes: int
    seconds: float
    leaves: int = 0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        as_list = lambda v: None if v is None else [float(a) for a in v]  # noqa: E731
        return {
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "x": as_list(self.x),
            "y": as_list(self.y),
            "nodes": self.nodes,
            "leaves": self.leaves,
            "seconds": round(self.seconds, 4),
            "message": self.message,
        }


@strict_keywords
def optimize(
    net: NetworkDefinition,
    objective: int | Any,
    *,
    sense: str = "minimize",
    input_bounds: object = None,
    constraints: LinearConstraints | dict | None = None,
    gap: float = 1e-6,
    time_limit: float | None = None,
    executor: ExecutorSpec = None,
    progress: bool = True,
) -> OptimizeResult:
    """The global optimum of ``c @ y`` over the input box, ``y = net(x)``, by branch and bound.

    Args:
        net: the network (its input bounds, intersected with ``input_bounds``, are the box).
        objective: an output index (``c`` is that unit vector) or a vector ``c`` of one
            coefficient per output.
        sense: ``"minimize"`` or ``"maximize"``.
        input_bounds: extra input bounds, any form :class:`NetworkDefinition` accepts.
        constraints: linear constraints ``A_x x + A_y y <= b`` on inputs and outputs, as a
            :class:`~pyomo_relu.search.problem.LinearConstraints` or a dict, e.g. a purity
            spec ``y[1] >= 0.95``: ``{"A_y": [[0, -1]], "b": [-0.95]}``.  A point counts as
            feasible when it violates no row by more than :data:`FEASIBILITY_TOLERANCE`.
        gap: absolute optimality gap.
        time_limit: wall-clock seconds; at the limit the incumbent, the bound and the gap so
            far are returned (``status="time_limit"``).  The bounding step running at the
            deadline finishes first: measured past the limit, at most 0.69 s on networks up to
            4 M weights (``benchmarks/RESULTS.md``, "Scale: time limits").
        executor: ``None``, a number of worker processes, or a ``concurrent.futures.Executor``
            (e.g. ``dask.distributed.Client(...).get_executor()``).
        progress: a tqdm bar of the incumbent and the bound on runs longer than a second.

    Returns:
        :class:`OptimizeResult`.  Infeasible constraints give ``status="infeasible"`` (every
        sub-box proven to hold no feasible point), never a made-up point.
    """
    began = time.perf_counter()
    if not (isinstance(gap, (int, float)) and gap >= 0):
        raise PyomoReluError(f"gap must be a non-negative number, got {gap!r}")
    lower, upper = _box(net, input_bounds)
    c_y, c_x, sign = unit_objective(net.n_outputs, net.n_inputs, objective, sense)
    region = LinearConstraints.of(constraints, net.n_inputs, net.n_outputs)
    problem = SearchProblem(
        net.canonical_layers, lower, upper, (sign * c_y, sign * c_x), (region,), FEASIBILITY_TOLERANCE
    )

    def check(points: np.ndarray) -> np.ndarray:
        points = np.atleast_2d(points)
        return problem.values(points, net.evaluate(points))

    limits: dict[str, Any] = {"gap": gap, "time_limit": time_limit, "executor": executor, "progress": progress}
    found = branch_and_bound(problem, check, lopsided=OPTIMIZE_LOPSIDED, **limits)
    return _result(net, found, sign, c_y, region, time.perf_counter() - began)


def _box(net: NetworkDefinition, input_bounds: object) -> tuple[np.ndarray, np.ndarray]:
    lower, upper = net.input_lower, net.input_upper
    if input_bounds is not None:
        more = net.with_input_bounds(input_bounds)
        lower, upper = np.maximum(lower, more.input_lower), np.minimum(upper, more.input_upper)
    missing = np.flatnonzero(~(np.isfinite(lower) & np.isfinite(upper)))
    if missing.size:
        raise MissingBoundsError(
            f"input {int(missing[0])} has no finite {'lower' if not np.isfinite(lower[missing[0]]) else 'upper'} "
            f"bound{f' (and {missing.size - 1} more)' if missing.size > 1 else ''}; optimize() searches a bounded "
            "box: pass input_bounds= (or bounds to the reader)"
        )
    crossed = np.flatnonzero(lower > upper)
    if crossed.size:
        i = int(crossed[0])
        raise PyomoReluError(f"input {i}: the network's box and input_bounds do not overlap ({lower[i]} > {upper[i]})")
    return np.asarray(lower, float), np.asarray(upper, float)


def _result(
    net: NetworkDefinition, found: SearchResult, sign: float, c_y: np.ndarray, region: LinearConstraints, seconds: float
) -> OptimizeResult:
    status = {"optimal": "optimal", "infeasible": "infeasible", "interrupted": "interrupted"}.get(
        found.status, "time_limit"
    )
    x = y = objective = None
    if found.x is not None:
        x = np.asarray(found.x, float)
        y = net.evaluate(x)  # the reported point, re-checked on its own
        objective = float(c_y @ y)
        violation = region.violation(x, y)
        if violation.size and violation.max() > FEASIBILITY_TOLERANCE:  # cannot happen: check() said feasible
            raise PyomoReluError(f"internal error: the incumbent violates {region.name(int(np.argmax(violation)))}")
    if status == "optimal" and x is None:  # never an "optimal" without a checked point
        logger.warning("optimize: the search ended without a point; reported as time_limit, not optimal")
        status = "time_limit"
    bound = None if not np.isfinite(found.bound) else float(sign * found.bound)
    if status == "infeasible":
        bound = None
    gap = None if objective is None or bound is None else float(abs(objective - bound))
    message = found.reason
    if found.status in ("node_limit", "unresolved"):
        message = found.reason
    logger.info(
        "optimize: %s objective=%s bound=%s gap=%s in %.2f s (%d boxes)",
        status,
        objective,
        bound,
        gap,
        seconds,
        found.nodes,
    )
    return OptimizeResult(
        status,
        x,
        y,
        objective,
        bound,
        gap,
        found.nodes,
        seconds,
        found.leaves,
        message,
        {"engine_status": found.status, "max_depth": found.max_depth},
    )
