"""alpha-CROWN (bounds/alpha.py): sound on random networks, never looser than CROWN, exact gradients."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from test_bounds_soundness import N_SAMPLES, SETTINGS, assert_contains, assert_subset, networks, sample_box

from pyomo_relu.bounds import crown_bounds, tighten
from pyomo_relu.bounds.alpha import (
    _backward,
    _forward,
    alpha_crown_bounds,
    initial_slopes,
    optimise_rows,
    optimise_upper,
)
from pyomo_relu.bounds.crown import batch_crown, box_maximum, linear_bounds
from pyomo_relu.network import DenseLayer, MaxLayer, NetworkDefinition
from pyomo_relu.search.nodes import process_batch
from pyomo_relu.search.problem import LinearConstraints, SearchProblem


def _widths(net: NetworkDefinition) -> list[int]:
    return [layer.n_outputs for layer in net.canonical_layers]


def _net(rng: np.random.Generator, sizes=(4, 16, 16, 16, 3), to=np.asarray, pool: bool = False) -> NetworkDefinition:
    layers = []
    for k in range(len(sizes) - 1):
        last = k == len(sizes) - 2
        layers.append(
            DenseLayer(
                to(rng.normal(size=(sizes[k + 1], sizes[k]))),
                rng.normal(size=sizes[k + 1]) * 0.5,
                "linear" if last else "relu",
            )
        )
        if pool and k == 0:  # max over pairs of the first layer, then a dense layer reads the pooled values
            n = sizes[1]
            layers.append(MaxLayer(np.eye(n), np.zeros(n), np.repeat(np.arange(n // 2), 2)))
            layers.append(DenseLayer(rng.normal(size=(sizes[1], n // 2)), np.zeros(sizes[1]), "relu"))
    return NetworkDefinition(layers, input_bounds=[(-1.0, 1.0)] * sizes[0])


@SETTINGS
@given(networks())
def test_alpha_crown_contains_samples_and_is_never_looser_than_crown(net: NetworkDefinition) -> None:
    crown = crown_bounds(net)
    alpha = alpha_crown_bounds(net, steps=10)
    assert alpha.methods == ("alpha-crown",)
    assert_contains(alpha, net, sample_box(net.input_lower, net.input_upper, N_SAMPLES, 3), "alpha-crown")
    assert_subset(alpha, crown, "alpha-crown vs crown")


@SETTINGS
@given(networks(), st.integers(0, 2**31 - 1))
def test_optimised_rows_are_sound_lower_forms(net: NetworkDefinition, seed: int) -> None:
    """Every lower form of ``optimise_rows`` holds at sampled points, and its bound beats CROWN's adaptive one."""
    rng = np.random.default_rng(seed)
    layers = net.canonical_layers
    rows = rng.normal(size=(3, net.n_outputs))
    input_rows = rng.normal(size=(3, net.n_inputs))
    bounds = batch_crown(layers, net.input_lower[None], net.input_upper[None])
    (adaptive,), _ = linear_bounds(bounds, rows, input_rows, variants=("adaptive",))
    adaptive_lower = -box_maximum(-adaptive[0], -adaptive[1], bounds.input_lower, bounds.input_upper)
    _, lower, (coef, const) = optimise_rows(bounds, [l.n_outputs for l in layers], rows, input_rows, steps=15)
    slack = 1e-9 * (1.0 + np.abs(adaptive_lower))
    assert np.all(lower >= adaptive_lower - slack)
    X = sample_box(net.input_lower, net.input_upper, N_SAMPLES, 5)
    values = net.evaluate(X) @ rows.T + X @ input_rows.T
    forms = X @ coef[0].T + const[0]
    assert np.all(values >= forms - 1e-9 * (1.0 + np.abs(values)))
    assert np.all(values.min(axis=0) >= lower[0] - 1e-9 * (1.0 + np.abs(lower[0])))


@pytest.mark.parametrize("pool", [False, True])
def test_gradient_matches_finite_differences(pool: bool) -> None:
    """Reverse mode through the back-substitution equals central differences of the bound."""
    rng = np.random.default_rng(4)
    net = _net(rng, pool=pool)
    layers = net.canonical_layers
    bounds = batch_crown(layers, net.input_lower[None], net.input_upper[None])
    rows = -rng.normal(size=(2, net.n_outputs))
    coef = np.broadcast_to(rows, (1,) + rows.shape)
    const = np.zeros((1, 2))
    slopes = [
        None if s is None else rng.uniform(0.1, 0.9, size=s.shape)
        for s in initial_slopes(bounds.relaxations, 2, _widths(net))
    ]
    lo, hi = bounds.input_lower, bounds.input_upper

    def value(s):
        form, offset, _ = _forward(bounds.relaxations, coef, const, s)
        return box_maximum(form, offset, lo, hi)

    form, _, tape = _forward(bounds.relaxations, coef, const, slopes)
    grads, _ = _backward(tape, np.where(form > 0, hi[:, None, :], lo[:, None, :]), _widths(net))
    checked = 0
    for j, (s, g) in enumerate(zip(slopes, grads)):
        if s is None:
            assert g is None
            continue
        for index in np.argwhere(bounds.relaxations[j].unstable[0])[:3]:
            for r in range(2):
                step = np.zeros_like(s)
                step[0, r, bounds.relaxations[j].keep[index[0]]] = 1e-6
                plus = [t if k != j else t + step for k, t in enumerate(slopes)]
                minus = [t if k != j else t - step for k, t in enumerate(slopes)]
                numeric = (value(plus) - value(minus))[0, r] / 2e-6
                analytic = g[0, r, bounds.relaxations[j].keep[index[0]]]
                assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-6)
                checked += 1
    assert checked > 4


def test_alpha_tightens_a_deep_network_and_sparse_weights_agree() -> None:
    rng = np.random.default_rng(1)
    dense_net = _net(rng)
    rng = np.random.default_rng(1)
    sparse_net = _net(rng, to=sp.csr_array)
    crown = crown_bounds(dense_net)
    alpha = alpha_crown_bounds(dense_net)
    twin = alpha_crown_bounds(sparse_net)
    width = lambda b: np.mean(b.upper[-1] - b.lower[-1])  # noqa: E731
    assert width(alpha) < 0.9 * width(crown)
    for k in range(alpha.n_layers):
        np.testing.assert_allclose(twin.lower[k], alpha.lower[k], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(twin.upper[k], alpha.upper[k], rtol=1e-9, atol=1e-9)


def test_tighten_runs_alpha_crown_in_a_chain() -> None:
    net = _net(np.random.default_rng(2))
    b = tighten(net, ["interval", "crown", "alpha-crown", "lp"])
    assert b.methods == ("interval", "crown", "alpha-crown", "lp")
    assert_contains(b, net, sample_box(net.input_lower, net.input_upper, N_SAMPLES), "chain")
    assert_subset(b, tighten(net, ["interval", "crown"]), "chain vs crown")


def test_alpha_crown_time_limit_and_unbounded_box_keep_crown() -> None:
    net = _net(np.random.default_rng(3))
    crown = crown_bounds(net)
    quick = alpha_crown_bounds(net, time_limit=0.0)
    assert_subset(quick, crown, "no time")
    open_net = net.with_input_bounds([(-1.0, None)] + [(-1.0, 1.0)] * (net.n_inputs - 1))
    unbounded = alpha_crown_bounds(open_net, np.r_[-1.0, -np.ones(3)], np.r_[np.inf, np.ones(3)])
    reference = crown_bounds(open_net, np.r_[-1.0, -np.ones(3)], np.r_[np.inf, np.ones(3)])
    for k in range(reference.n_layers):
        np.testing.assert_array_equal(unbounded.upper[k], reference.upper[k])


def test_search_batches_use_alpha_and_warm_start_from_the_parent() -> None:
    net = _net(np.random.default_rng(5))
    row = np.array([[1.0, -1.0, 0.0]])
    _, crown_lower = linear_bounds(batch_crown(net.canonical_layers, net.input_lower[None], net.input_upper[None]), row)
    # y0 - y1 <= b just above CROWN's lower bound: CROWN cannot exclude the region, alpha-CROWN bounds it closer
    problem = SearchProblem(
        net.canonical_layers,
        net.input_lower,
        net.input_upper,
        None,
        (LinearConstraints(np.zeros((1, 4)), row, crown_lower[0] + 1.0),),
    )
    root = (net.input_lower[None], net.input_upper[None])
    width = net.input_upper - net.input_lower
    plain = process_batch(problem, *root, None, width, alpha_steps=0)
    alpha = process_batch(problem, *root, None, width, alpha_steps=20)
    assert plain.slopes is None and alpha.slopes is not None
    assert np.all(alpha.margin_bound <= plain.margin_bound + 1e-12)
    assert alpha.margin_bound[0, 0] < plain.margin_bound[0, 0] - 1e-6
    # a warm start from the optimised slopes is never worse than the optimisation from scratch
    again = process_batch(problem, *root, None, width, slopes=alpha.slopes, alpha_steps=1)
    assert again.margin_bound[0, 0] <= alpha.margin_bound[0, 0] + 1e-9
    # a box without a warm start (NaN) starts from CROWN's slopes
    blank = [None if s is None else np.full_like(s, np.nan) for s in alpha.slopes]
    fresh = process_batch(problem, *root, None, width, slopes=blank, alpha_steps=20)
    assert fresh.margin_bound[0, 0] == pytest.approx(alpha.margin_bound[0, 0], rel=1e-6, abs=1e-5)


def test_optimise_upper_step_zero_is_crown() -> None:
    net = _net(np.random.default_rng(6))
    layers = net.canonical_layers
    bounds = batch_crown(layers, net.input_lower[None], net.input_upper[None])
    rows = np.eye(net.n_outputs)
    (adaptive,), _ = linear_bounds(bounds, rows, variants=("adaptive",))
    coef = np.broadcast_to(-rows, (1,) + rows.shape)
    best = optimise_upper(
        bounds.relaxations, _widths(net), coef, np.zeros((1, 3)), bounds.input_lower, bounds.input_upper, steps=0
    )
    np.testing.assert_allclose(
        -best.upper, -box_maximum(-adaptive[0], -adaptive[1], bounds.input_lower, bounds.input_upper), rtol=1e-12
    )
