r"""Adversaries: a fast heuristic attack and the optimal adversary of Tsay et al. (2021).

Projected sign-gradient ascent (:func:`pgd_attack`)
---------------------------------------------------
For an unsafe polytope ``A y <= b`` the attack maximises the margin
``m(x) = min_i (b_i - A_i f(x))`` over a box.  A ReLU network is piecewise linear, so on the
linear piece of ``x`` the gradient is exact: with the activation masks ``D_k`` of the
forward pass and the row ``i*`` that attains the minimum,

.. math::

    \nabla_x m(x) = -A_{i^*} W_L D_{L-1} W_{L-1} \cdots D_0 W_0 ,

computed backwards as vector-matrix products.  The step is
``x <- clip(x + α_t (u - l) ⊙ sign ∇m, l, u)`` with ``α_t`` decreasing from 0.1 to 0.01 of
the box width; every polytope gets its own batch of starting points (the centre and
random points), and all are run at once.  Whatever it finds is only a candidate: callers
confirm it with :meth:`NetworkDefinition.evaluate`.

Optimal adversary (:func:`min_margin`)
--------------------------------------
For an input ``x0`` with label ``ℓ`` the worst-case margin over the ball
``B = {x : ||x - x0|| <= eps} ∩ [input_lower, input_upper]`` is

.. math::

    \min_{x \in B} \min_{j \ne \ell} \, (y_\ell - y_j) \;=\;
    -\max_{j \ne \ell} \max_{x \in B} \, (y_j - y_\ell),

one MILP per target class ``j`` (the big-M network of :class:`pyomo_relu.search.leaf.NetworkMilp`).
The ``l_inf`` ball is a box; the ``l_1`` ball adds ``d_i >= x_i - x0_i``,
``d_i >= x0_i - x_i``, ``sum_i d_i <= eps`` with auxiliary ``d`` (Tsay et al., *Partition-based
formulations for mixed-integer optimization of trained ReLU neural networks*, NeurIPS 2021),
inside the box ``x0 ± eps`` on which the neuron bounds are computed; the first layer's
bounds are also cut to ``W_j x0 + b_j ± eps max_i |W_ji|`` (the dual norm of ``l_1``), which
the later layers' CROWN bounds inherit.  Targets are solved in
the order of their CROWN bounds, and each MILP only searches above the best margin found
so far (HiGHS ``objective_bound``), so hopeless targets are pruned at the root.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pyomo_relu.bounds.crown import batch_crown, linear_bounds
from pyomo_relu.errors import PyomoReluError, ShapeMismatchError
from pyomo_relu.network import Layer, NetworkDefinition
from pyomo_relu.parallel import ExecutorSpec
from pyomo_relu.search.attack import descend
from pyomo_relu.search.leaf import NetworkMilp
from pyomo_relu.search.problem import SearchProblem, as_regions
from pyomo_relu.sparse import is_sparse
from pyomo_relu.verify.vnnlib import Case, Polytope, Specification

logger = logging.getLogger(__name__)

__all__ = ["AdversaryResult", "min_margin", "pgd_attack", "robustness_property", "target_polytopes"]


# ------------------------------------------------------------------ attack
def pgd_attack(
    net: NetworkDefinition,
    polytopes: Sequence[Polytope],
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    restarts: int = 6,
    steps: int = 40,
    seed: int = 0,
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate points of the unsafe ``polytopes`` in the box: ``(X, margins)``, best first.

    ``margins`` is ``max_p margin_p(f(x))`` by the canonical forward pass; only entries
    ``>= 0`` are candidates, to be confirmed with :meth:`NetworkDefinition.evaluate`.
    The search is :func:`pyomo_relu.search.attack.descend` (sign-gradient ascent on the margin).
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    if not polytopes:
        return lower[None, :], np.array([-np.inf])
    problem = SearchProblem(
        net.canonical_layers, lower, upper, None, as_regions(polytopes, net.n_inputs, net.n_outputs)
    )
    points = descend(problem, lower, upper, restarts=restarts, steps=steps, seed=seed, deadline=deadline)
    margins = problem.region_margins(points, problem.forward(points)).max(axis=1)
    order = np.argsort(-margins, kind="stable")
    return points[order], margins[order]


# --------------------------------------------------------- optimal adversary
@dataclass
class AdversaryResult:
    """Worst-case margin over a norm ball.

    ``margin`` is ``y_label - max_{j != label} y_j`` at ``x`` (by ``net.evaluate``): an upper
    bound of the true minimum, attained.  ``bound`` is a proven lower bound of it; both
    agree (to ``1e-6``) when ``optimal``.  ``target`` is the class ``j`` that comes
    closest.  ``status`` is ``"optimal"``, ``"time_limit"`` or ``"gap"`` (every MILP
    finished but the margin and the bound differ by more than ``1e-6``).
    """

    margin: float
    bound: float
    x: np.ndarray
    y: np.ndarray
    target: int
    optimal: bool
    status: str
    seconds: float
    milps: int


def target_polytopes(n_outputs: int, label: int) -> list[Polytope]:
    """``{y : y_j >= y_label}`` for every ``j != label`` (margin ``y_j - y_label``)."""
    polytopes = []
    for j in range(n_outputs):
        if j != label:
            A = np.zeros((1, n_outputs))
            A[0, label], A[0, j] = 1.0, -1.0
            polytopes.append(Polytope(A, np.zeros(1)))
    return polytopes


def robustness_property(
    x0: Sequence[float],
    eps: float,
    label: int,
    n_outputs: int,
    lower: float | None = 0.0,
    upper: float | None = 1.0,
) -> Specification:
    """Local robustness of ``x0`` as a :class:`Specification`, ready for :func:`verify`.

    The input box is the L-inf ball of radius ``eps`` around ``x0`` clipped to
    ``[lower, upper]`` (``None``: no clipping); the unsafe set is "some class ``j != label``
    scores at least as high as ``label``".  ``sat`` then means "not robust", with a
    counterexample.

    >>> spec = robustness_property([0.5, 0.95], 0.1, label=0, n_outputs=3)
    >>> spec.cases[0].upper.tolist(), len(spec.cases[0].polytopes)
    ([0.6, 1.0], 2)
    """
    x = np.asarray(x0, dtype=float).ravel()
    box_lower = x - eps if lower is None else np.maximum(x - eps, lower)
    box_upper = x + eps if upper is None else np.minimum(x + eps, upper)
    case = Case(box_lower, box_upper, tuple(target_polytopes(n_outputs, label)))
    return Specification(x.size, n_outputs, (case,), f"robustness of label {label}, eps {eps}")


def min_margin(
    net: NetworkDefinition,
    x0: Sequence[float],
    eps: float,
    label: int,
    norm: str = "linf",
    input_lower: Sequence[float] | float | None = None,
    input_upper: Sequence[float] | float | None = None,
    *,
    bounds: Sequence[str] = ("interval", "crown", "lp"),
    time_limit: float | None = None,
    executor: ExecutorSpec = None,
) -> AdversaryResult:
    """Worst-case classification margin ``min_{x in ball} min_{j != label} (y_label - y_j)``.

    ``norm`` is ``"linf"`` or ``"l1"``; ``input_lower``/``input_upper`` (scalars or arrays)
    clip the ball, e.g. ``0`` and ``1`` for pixels.  A negative margin means an adversarial
    example exists (``x`` is one, checked by ``net.evaluate``).
    """
    from pyomo_relu.verify.milp_route import resolve_bounds_on_box

    start = time.perf_counter()
    deadline = None if time_limit is None else start + float(time_limit)
    centre = np.asarray(x0, dtype=float).ravel()
    lower, upper = _ball_box(net, centre, eps, norm, input_lower, input_upper)
    if not 0 <= label < net.n_outputs or net.n_outputs < 2:
        raise PyomoReluError(f"label {label} is not one of the {net.n_outputs} outputs (need at least 2)")
    ball = _Ball(centre, float(eps), norm, lower, upper)
    polytopes = target_polytopes(net.n_outputs, label)
    layers = net.canonical_layers
    problem = SearchProblem(layers, lower, upper, None, as_regions(polytopes, net.n_inputs, net.n_outputs))
    # An incumbent from the attack (l_inf ball) or the centre.
    if norm == "l1":
        best_x = np.clip(centre, lower, upper)
    else:
        best_x = pgd_attack(net, polytopes, lower, upper, deadline=deadline)[0][0]
    pre_lower, pre_upper = resolve_bounds_on_box(net, lower, upper, bounds, deadline, executor)
    if norm == "l1":
        _l1_first_layer(layers[0], ball, pre_lower, pre_upper)
    crown = batch_crown(layers, lower[None], upper[None], ([a[None] for a in pre_lower], [a[None] for a in pre_upper]))
    row_lower = linear_bounds(crown, problem.rows_y, problem.rows_x)[1]
    search = _TargetMilps(net, problem, ball, label, ([a[0] for a in crown.lower], [a[0] for a in crown.upper]))
    search.run(_achieved(net, best_x, label), (problem.rhs - row_lower[0]).copy(), deadline)
    return search.result(time.perf_counter() - start)


@dataclass(frozen=True)
class _Ball:
    """The norm ball ``||x - centre|| <= eps`` clipped to the box ``[lower, upper]``."""

    centre: np.ndarray
    eps: float
    norm: str
    lower: np.ndarray
    upper: np.ndarray

    def inside(self, x: np.ndarray) -> np.ndarray:
        """A solver's point moved into the ball (clipped to the box, pulled into the ``l_1`` ball)."""
        x = np.clip(x, self.lower, self.upper)
        return _into_l1_ball(x, self.centre, self.eps) if self.norm == "l1" else x


def _l1_first_layer(layer: Layer, ball: _Ball, pre_lower: list[np.ndarray], pre_upper: list[np.ndarray]) -> None:
    """``W (x - x0)`` over the ``l_1`` ball is at most ``eps * max_i |W_ji|`` either way: tighten layer 0."""
    weights = layer.weights
    centre = weights @ ball.centre + layer.bias
    largest = abs(weights).max(axis=1).toarray().ravel() if is_sparse(weights) else np.abs(weights).max(axis=1)
    pre_lower[0] = np.maximum(pre_lower[0], centre - ball.eps * largest)
    pre_upper[0] = np.minimum(pre_upper[0], centre + ball.eps * largest)


class _TargetMilps:
    """One margin MILP per target class ``j``, largest bound first, each with the incumbent as cutoff."""

    def __init__(
        self,
        net: NetworkDefinition,
        problem: SearchProblem,
        ball: _Ball,
        label: int,
        pre: tuple[list[np.ndarray], list[np.ndarray]],
    ) -> None:
        self.net, self.problem, self.ball, self.label, self.pre = net, problem, ball, label, pre
        self.milps, self.complete = 0, True
        self.best: tuple[float, np.ndarray] = (np.inf, ball.centre)
        self.proven = np.zeros(0)

    def run(self, best: tuple[float, np.ndarray], upper_bounds: np.ndarray, deadline: float | None) -> None:
        """Solve the targets whose bound ``max_x (y_j - y_label) <= upper_bounds[j]`` can beat the incumbent."""
        self.best, self.proven = best, upper_bounds.copy()
        for p in np.argsort(-upper_bounds):
            if upper_bounds[p] <= -self.best[0]:
                continue  # this target cannot beat the incumbent
            left = None if deadline is None else deadline - time.perf_counter()
            if left is not None and left <= 0:
                self.complete = False
                break
            milp = NetworkMilp(self.problem.layers, self.pre[0], self.pre[1], self.ball.lower, self.ball.upper)
            if self.ball.norm == "l1":
                milp.add_l1_ball(self.ball.centre, self.ball.eps)
            outcome = milp.maximize_margin(self.problem.regions[p], cutoff=-self.best[0], time_limit=left, gap=1e-7)
            self.milps += 1
            self.proven[p] = min(self.proven[p], outcome.bound if outcome.bound is not None else np.inf)
            if outcome.x is not None:
                candidate = _achieved(self.net, self.ball.inside(outcome.x), self.label)
                if candidate[0] < self.best[0]:
                    self.best = candidate
            if outcome.status not in ("optimal", "infeasible"):
                self.complete = False

    def result(self, seconds: float) -> AdversaryResult:
        """The incumbent's margin (by ``net.evaluate``) and the proven bound."""
        margin, x = self.best
        bound = float(-np.max(np.maximum(self.proven, -margin)))
        y = self.net.evaluate(x)
        targets = [j for j in range(self.net.n_outputs) if j != self.label]
        target = targets[int(np.argmax(np.delete(y, self.label)))]
        optimal = self.complete and margin - bound <= 1e-6 * max(1.0, abs(margin))
        status = "optimal" if optimal else "time_limit" if not self.complete else "gap"
        logger.info("min_margin: margin %.6g, bound %.6g, %d MILP(s), %s", margin, bound, self.milps, status)
        return AdversaryResult(float(margin), bound, x, y, target, optimal, status, seconds, self.milps)


def _achieved(net: NetworkDefinition, x: np.ndarray, label: int) -> tuple[float, np.ndarray]:
    y = net.evaluate(x)
    return float(y[label] - np.max(np.delete(y, label))), x


def _into_l1_ball(x: np.ndarray, x0: np.ndarray, eps: float) -> np.ndarray:
    """``x`` pulled towards ``x0`` if solver tolerances left it (slightly) outside the ``l_1`` ball.

    Moving along the segment keeps a point of the clip box in it (``x0`` is in it too).
    """
    size = np.abs(x - x0).sum()
    return x if size <= eps else x0 + (x - x0) * (eps / size)


def _ball_box(
    net: NetworkDefinition,
    x0: np.ndarray,
    eps: float,
    norm: str,
    input_lower: Sequence[float] | float | None,
    input_upper: Sequence[float] | float | None,
) -> tuple[np.ndarray, np.ndarray]:
    if norm not in ("linf", "l1"):
        raise PyomoReluError(f"norm must be 'linf' or 'l1', not {norm!r}")
    if x0.size != net.n_inputs:
        raise ShapeMismatchError(f"x0 has {x0.size} entries, the network has {net.n_inputs} inputs")
    if not eps >= 0:
        raise PyomoReluError(f"eps must be non-negative, got {eps}")
    lower = np.maximum(x0 - eps, net.input_lower)
    upper = np.minimum(x0 + eps, net.input_upper)
    if input_lower is not None:
        lower = np.maximum(lower, np.broadcast_to(np.asarray(input_lower, float), x0.shape))
    if input_upper is not None:
        upper = np.minimum(upper, np.broadcast_to(np.asarray(input_upper, float), x0.shape))
    if np.any(lower > upper):
        i = int(np.flatnonzero(lower > upper)[0])
        raise PyomoReluError(
            f"the ball around x0 does not meet the input bounds at input {i} "
            f"([{x0[i] - eps}, {x0[i] + eps}] vs the clip box)"
        )
    if norm == "l1" and np.abs(np.clip(x0, lower, upper) - x0).sum() > eps:
        raise PyomoReluError("x0 is farther than eps (in l1) from the input bounds; the ball misses them")
    return lower, upper
