r"""Gradient attacks: incumbents for the search engine and counterexamples for the verifier.

A ReLU network is piecewise linear, so on the linear piece of ``x`` the gradient of a row
``r·f(x)`` is exact: with the activation masks ``D_k`` of the forward pass,

.. math::

    \nabla_x\, r \cdot f(x) = r\, W_L D_{L-1} W_{L-1} \cdots D_0 W_0 ,

computed backwards as vector-matrix products (:func:`input_gradient`; max layers pass the
gradient through the first maximising row, smooth neurons through ``σ'(z)``).

:func:`descend` minimises, from many starting points at once, the score

.. math::

    s(x) = c \cdot (f(x), x) \;+\; \rho \max\big(0, \max_{i \in p} (g_i(x) - b_i)\big)

for a problem with an objective (``ρ`` makes a violated region row dominate), and the
negative margin ``max_{i in p} (g_i(x) - b_i)`` of its own region ``p`` for a feasibility
problem, by projected sign-gradient steps ``x <- clip(x - α_t (u - l) ⊙ sign ∇s, l, u)``
with ``α_t`` decreasing from 0.1 to 0.01 of the box width.  Whatever it finds is only a
candidate: the engine confirms it with the exact forward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from pyomo_relu.bounds.crown import first_argmax
from pyomo_relu.network import Layer, MaxLayer, group_max, smooth_slope
from pyomo_relu.search.problem import SearchProblem

__all__ = ["descend", "forward_with_masks", "input_gradient", "pgd"]

#: Weight of a violated region row against the objective in :func:`descend`.
PENALTY = 1e3


def forward_with_masks(layers: Sequence[Layer], x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The canonical forward pass and, per layer, the local derivative of its activation."""
    masks: list[np.ndarray] = []
    for layer in layers:
        z = layer.preactivation(x)
        if isinstance(layer, MaxLayer):  # the gradient flows through the first maximising row
            masks.append(first_argmax(z, layer.groups).astype(float))
            x = group_max(z, layer.groups)
            continue
        derivative = np.where(layer.relu_mask, (z > 0).astype(float), 1.0)
        smooth = layer.smooth_mask
        if smooth.any():
            for kind in set(layer.kinds[smooth].tolist()):
                cols = np.flatnonzero(layer.kinds == kind)
                derivative[:, cols] = smooth_slope(kind, z[:, cols])
        masks.append(derivative)
        x = layer.activate(z)
    return x, masks


def input_gradient(layers: Sequence[Layer], masks: list[np.ndarray], g: np.ndarray) -> np.ndarray:
    """``g · ∂f/∂x`` for each row of ``g`` (``(N, n_out)``) on the linear piece of each point."""
    for layer, mask in zip(reversed(layers), reversed(masks)):
        if isinstance(layer, MaxLayer):
            g = g[:, layer.groups]
        g = np.asarray((g * mask) @ layer.weights)
    return g


def descend(
    problem: SearchProblem,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    restarts: int = 8,
    steps: int = 40,
    seed: int = 0,
    deadline: float | None = None,
    starts: np.ndarray | None = None,
    step_range: tuple[float, float] = (0.1, 0.01),
) -> np.ndarray:
    """Candidate points of ``problem`` in ``[lower, upper]`` (best score first).

    ``restarts`` points per region (the box centre, ``starts`` if given, and uniform random
    points from ``seed``) descend the score of the module docstring for ``steps`` steps,
    the step falling linearly over ``step_range`` (fractions of the box width); the best
    point each one visited is returned.
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    rng = np.random.default_rng(seed)
    n_regions = problem.n_regions
    owner = np.repeat(np.arange(n_regions), restarts)
    x = rng.uniform(lower, upper, size=(owner.size, lower.size))
    x[::restarts] = 0.5 * (lower + upper)
    if starts is not None and len(starts):
        given = np.clip(np.atleast_2d(starts), lower, upper)[: max(0, restarts - 1)]
        for p in range(n_regions):
            x[p * restarts + 1 : p * restarts + 1 + len(given)] = given
    width = upper - lower
    best_x, best = x.copy(), np.full(owner.size, np.inf)
    own = problem.owner[None, :] == owner[:, None]  # (N, r): rows of each point's region
    objective = problem.objective
    for t in range(steps + 1):
        y, masks = forward_with_masks(problem.layers, x)
        excess = y @ problem.rows_y.T + x @ problem.rows_x.T - problem.rhs  # (N, r), g_i - b_i
        excess = np.where(own, excess, -np.inf)
        row = np.argmax(excess, axis=1)
        worst = excess[np.arange(owner.size), row]
        has_rows = np.isfinite(worst)
        if objective is None:
            score = np.where(has_rows, worst, 0.0)
            weight = has_rows.astype(float)
        else:
            violated = has_rows & (worst > 0)
            score = y @ objective[0] + x @ objective[1] + PENALTY * np.where(violated, worst, 0.0)
            weight = PENALTY * violated
        better = score < best
        best[better], best_x[better] = score[better], x[better]
        if t == steps or (deadline is not None and time.perf_counter() > deadline):
            break
        g_y = weight[:, None] * problem.rows_y[row]
        g_x = weight[:, None] * problem.rows_x[row]
        if objective is not None:
            g_y, g_x = g_y + objective[0], g_x + objective[1]
        gradient = input_gradient(problem.layers, masks, g_y) + g_x
        alpha = step_range[1] + (step_range[0] - step_range[1]) * (1.0 - t / steps)
        x = np.clip(x - alpha * width * np.sign(gradient), lower, upper)
    return best_x[np.argsort(best, kind="stable")]


def pgd(
    problem: SearchProblem,
    lower: np.ndarray,
    upper: np.ndarray,
    check: Callable[[np.ndarray], np.ndarray],
    *,
    rounds: int = 4,
    restarts: int = 8,
    steps: int = 50,
    seed: int = 0,
    deadline: float | None = None,
    keep: int = 16,
) -> np.ndarray | None:
    r"""A confirmed point of a feasibility problem by PGD with seeded random restarts, or ``None``.

    Round ``k`` (``0 .. rounds-1``) runs :func:`descend` on the margin of every region with
    ``restarts · 2^k`` points per region, from seed ``seed + k`` (uniform random restarts)
    and from the ``keep`` best points of the rounds before, with a step that starts at
    ``0.1 / 2^k`` of the box width (later rounds refine).  The points whose canonical margin
    is within ``1e-6`` of feasible are passed to ``check`` (the exact forward pass: ``>= 0``
    confirms); the first confirmed one (the largest margin) is returned.
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    best: np.ndarray | None = None
    for k in range(max(1, rounds)):
        if k and deadline is not None and time.perf_counter() > deadline:
            break
        high = 0.1 / 2**k
        points = descend(
            problem,
            lower,
            upper,
            restarts=restarts * 2**k,
            steps=steps,
            seed=seed + k,
            deadline=deadline,
            starts=best,
            step_range=(high, high / 20),
        )
        margins = problem.region_margins(points, problem.forward(points)).max(axis=1)
        order = np.argsort(-margins, kind="stable")
        promising = points[order[margins[order] >= -1e-6]][:keep]
        if promising.size:
            confirmed = np.asarray(check(promising), float)
            good = np.flatnonzero(confirmed >= 0)
            if good.size:
                return promising[good[np.argmax(confirmed[good])]]
        best = points[order[:keep]]
    return None
