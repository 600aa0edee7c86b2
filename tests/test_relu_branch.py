"""ReLU-phase branch and bound (search/relu_branch.py) and beta-CROWN's split multipliers."""

from __future__ import annotations

import numpy as np
import pytest
from test_float_soundness import attained, threshold_spec

from pyomo_relu.bounds import crown_bounds
from pyomo_relu.bounds.alpha import _backward, _forward, expand, initial_slopes
from pyomo_relu.bounds.crown import batch_crown, box_maximum
from pyomo_relu.network import DenseLayer, NetworkDefinition
from pyomo_relu.search.optimize import optimize
from pyomo_relu.search.problem import SearchProblem, as_regions
from pyomo_relu.search.relu_branch import relu_branch_and_bound
from pyomo_relu.verify import Polytope, verify
from pyomo_relu.verify.results import ExactMargin


def _net(seed: int, n_in: int = 20) -> NetworkDefinition:
    rng = np.random.default_rng(seed)
    sizes = (n_in, 16, 16, 2)
    layers = [
        DenseLayer(
            rng.normal(size=(sizes[k + 1], sizes[k])),
            rng.normal(size=sizes[k + 1]) * 0.3,
            "linear" if k == 2 else "relu",
        )
        for k in range(3)
    ]
    return NetworkDefinition(layers, input_bounds=[(-1.0, 1.0)] * n_in)


def _search(net: NetworkDefinition, threshold: float, seconds: float = 20.0, beta: bool = True):
    spec = threshold_spec(net, threshold)
    case = spec.cases[0]
    problem = SearchProblem(
        net.canonical_layers, case.lower, case.upper, None, as_regions(case.polytopes, net.n_inputs, net.n_outputs)
    )
    root = batch_crown(problem.layers, problem.lower[None], problem.upper[None])
    import time

    return relu_branch_and_bound(
        problem,
        ExactMargin(net, case),
        ([a[0] for a in root.lower], [a[0] for a in root.upper]),
        deadline=time.perf_counter() + seconds,
        beta=beta,
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_relu_branching_agrees_with_the_exact_milp(seed: int) -> None:
    """Thresholds between an attained value and CROWN's bound: decisions match the MILP's."""
    net = _net(seed)
    value = attained(net, seed)
    for threshold in (value, value + 0.5, value + 2.0):
        exact = verify(net, threshold_spec(net, threshold), time_limit=60, relu_split=False)
        assert exact.status in ("sat", "unsat")
        for beta in (True, False):
            found = _search(net, threshold, beta=beta)
            if found.status == "feasible":
                assert exact.status == "sat"
                y = net.evaluate(found.x)
                assert y[0] - y[1] >= threshold
            elif found.status == "infeasible":
                assert exact.status == "unsat", (seed, threshold, beta)
        assert threshold > value or _search(net, threshold).status != "infeasible"


def test_beta_tightens_split_domains() -> None:
    """The same split domains bounded with and without the split multipliers: beta is never looser."""
    net = _net(5, n_in=6)
    best = optimize(net, [1.0, -1.0], sense="maximize", time_limit=60, progress=False)
    assert best.status == "optimal"
    crown = crown_bounds(net)
    high = float(crown.upper[-1][0] - crown.lower[-1][1])
    threshold = best.objective + 0.2 * (high - best.objective)  # unsafe set empty, CROWN cannot show it
    assert verify(net, threshold_spec(net, threshold), time_limit=1, relu_split=False, split=False).status != "sat"
    with_beta = _search(net, threshold, seconds=20, beta=True)
    without = _search(net, threshold, seconds=20, beta=False)
    assert with_beta.status == "infeasible" and without.status != "feasible"
    assert with_beta.domains > 1
    if without.status == "infeasible":
        assert with_beta.domains <= without.domains


def test_beta_gradient_matches_finite_differences() -> None:
    net = _net(6, n_in=4)
    layers = net.canonical_layers
    bounds = batch_crown(layers, net.input_lower[None], net.input_upper[None])
    rng = np.random.default_rng(0)
    signs = [np.zeros((1, layer.n_outputs)) for layer in layers]
    unstable = np.flatnonzero(bounds.relaxations[1].unstable[0])
    signs[1][0, bounds.relaxations[1].keep[unstable[:2]]] = [-1.0, 1.0]
    relaxations = [expand(r, layer) for r, layer in zip(bounds.relaxations, layers)]
    widths = [layer.n_outputs for layer in layers]
    slopes = initial_slopes(relaxations, 1, widths)
    betas = [None, rng.uniform(0.1, 1.0, size=(1, 1, widths[1])), None]
    coef = np.broadcast_to(np.array([[-1.0, 1.0]]), (1, 1, 2))
    lo, hi = bounds.input_lower, bounds.input_upper

    def value(b):
        form, offset, _ = _forward(relaxations, coef, np.zeros((1, 1)), slopes, b, signs)
        return box_maximum(form, offset, lo, hi)[0, 0]

    form, _, tape = _forward(relaxations, coef, np.zeros((1, 1)), slopes, betas, signs)
    _, d_beta = _backward(tape, np.where(form > 0, hi[:, None, :], lo[:, None, :]), widths)
    for j in np.flatnonzero(signs[1][0]):
        step = np.zeros_like(betas[1])
        step[0, 0, j] = 1e-6
        numeric = (value([None, betas[1] + step, None]) - value([None, betas[1] - step, None])) / 2e-6
        assert d_beta[1][0, 0, j] == pytest.approx(numeric, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
def test_regions_reported_closed_are_infeasible_on_the_whole_box(seed: int) -> None:
    """A search stopped early: every region it reports closed lies above the network's maximum.

    Regions ``y0 - y1 >= best + d`` for offsets below and above the true maximum ``best``
    (from the exact MILP); the check never confirms a point, so the search cannot stop on a
    counterexample and must report which regions some open domain still holds.
    """
    net = _net(seed, n_in=6)
    best = optimize(net, [1.0, -1.0], sense="maximize", time_limit=60, progress=False)
    assert best.status == "optimal"
    crown = crown_bounds(net)
    gap = float(crown.upper[-1][0] - crown.lower[-1][1]) - best.objective  # CROWN's loosest estimate
    offsets = (-0.5, -0.05, 0.05, 0.3 * gap, 0.6 * gap, 0.9 * gap)
    polytopes = [Polytope(np.array([[-1.0, 1.0]]), np.array([-(best.objective + d)])) for d in offsets]
    problem = SearchProblem(
        net.canonical_layers, net.input_lower, net.input_upper, None, as_regions(polytopes, net.n_inputs, 2)
    )
    root = batch_crown(problem.layers, problem.lower[None], problem.upper[None])
    result = relu_branch_and_bound(
        problem,
        lambda points: np.full(len(points), -np.inf),
        ([a[0] for a in root.lower], [a[0] for a in root.upper]),
        max_domains=40,
    )
    assert result.status == "unknown" and result.open_regions is not None
    closed = [d for d, still_open in zip(offsets, result.open_regions) if not still_open]
    assert all(d > 0 for d in closed), (closed, best.objective)
    assert result.open_regions[0] and result.open_regions[1]  # feasible regions are never closed
    assert not result.open_regions[-1], result.open_regions  # far above the maximum: closed by the bounds
