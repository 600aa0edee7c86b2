"""Soundness of every network-only bounds method on random networks (hypothesis).

For random networks (2-4 layers, widths 1-12, weights with exact zeros, relu and linear
hidden layers, optional input/output scalings with negative factors) and random boxes
(some inputs of zero width), every canonical pre-activation of 2000 inputs of the box,
the corners included, must lie within the bounds.
"""

from __future__ import annotations

import numpy as np
from helpers import assert_contains, sample_box
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyomo_relu.bounds import Bounds, crown_bounds, interval_bounds, tighten
from pyomo_relu.network import DenseLayer, NetworkDefinition, Scaling

N_SAMPLES = 2000

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

weight_values = st.one_of(st.just(0.0), st.floats(-3.0, 3.0, allow_nan=False, width=64))
factor_values = st.one_of(st.floats(0.2, 5.0), st.floats(-5.0, -0.2))


@st.composite
def networks(draw: st.DrawFn) -> NetworkDefinition:
    """A random network with a finite input box (some inputs of zero width)."""
    n_layers = draw(st.integers(2, 4))
    widths = draw(st.lists(st.integers(1, 12), min_size=n_layers + 1, max_size=n_layers + 1))
    layers = []
    for k in range(n_layers):
        weights = draw(hnp.arrays(np.float64, (widths[k + 1], widths[k]), elements=weight_values))
        bias = draw(hnp.arrays(np.float64, (widths[k + 1],), elements=weight_values))
        last = k == n_layers - 1
        activation = draw(st.sampled_from(["relu", "linear"] if last else ["relu", "relu", "linear"]))
        layers.append(DenseLayer(weights, bias, activation, f"L{k}"))
    n_in, n_out = widths[0], widths[-1]
    lower = draw(hnp.arrays(np.float64, (n_in,), elements=st.floats(-2.0, 2.0)))
    width = draw(hnp.arrays(np.float64, (n_in,), elements=st.one_of(st.just(0.0), st.floats(0.0, 3.0))))
    input_scaling = output_scaling = None
    if draw(st.booleans()):
        input_scaling = Scaling(
            draw(hnp.arrays(np.float64, (n_in,), elements=st.floats(-2.0, 2.0))),
            draw(hnp.arrays(np.float64, (n_in,), elements=factor_values)),
        )
    if draw(st.booleans()):
        output_scaling = Scaling(
            draw(hnp.arrays(np.float64, (n_out,), elements=st.floats(-2.0, 2.0))),
            draw(hnp.arrays(np.float64, (n_out,), elements=factor_values)),
        )
    return NetworkDefinition(
        layers,
        input_bounds=(lower, lower + width),
        input_scaling=input_scaling,
        output_scaling=output_scaling,
    )


def assert_subset(inner: Bounds, outer: Bounds, what: str) -> None:
    """``inner`` within ``outer`` up to round-off (a constant neuron's two sound bounds may cross by an ulp)."""
    for k in range(outer.n_layers):
        slack = 1e-12 * np.maximum(1.0, np.abs(outer.lower[k]))
        assert np.all(inner.lower[k] >= outer.lower[k] - slack), f"{what}: layer {k} lower looser"
        slack = 1e-12 * np.maximum(1.0, np.abs(outer.upper[k]))
        assert np.all(inner.upper[k] <= outer.upper[k] + slack), f"{what}: layer {k} upper looser"


@SETTINGS
@given(networks())
def test_interval_and_crown_contain_sampled_preactivations(net: NetworkDefinition) -> None:
    X = sample_box(net.input_lower, net.input_upper, N_SAMPLES)
    interval = interval_bounds(net)
    crown = crown_bounds(net)
    assert interval.n_layers == crown.n_layers == len(net.canonical_layers)
    assert_contains(interval, net, X, "interval")
    assert_contains(crown, net, X, "crown")
    assert_subset(crown, interval, "crown vs interval")
    for k in range(crown.n_layers):
        assert np.all(crown.lower[k] <= crown.upper[k])


@SETTINGS
@given(networks())
def test_chain_is_sound_and_never_looser(net: NetworkDefinition) -> None:
    interval = interval_bounds(net)
    chained = tighten(net, ["interval", "crown"])
    assert chained.methods == ("interval", "crown")
    assert_subset(chained, interval, "interval+crown vs interval")
    assert_contains(chained, net, sample_box(net.input_lower, net.input_upper, N_SAMPLES, 1), "chain")
    # Starting from crown bounds, crown cannot get looser than its start.
    again = crown_bounds(net, start=chained)
    assert_subset(again, chained, "crown(start=crown) vs start")
    assert again.methods == ("interval", "crown", "crown")


@SETTINGS
@given(networks(), st.data())
def test_crown_on_a_sub_box_is_sound(net: NetworkDefinition, data: st.DataObject) -> None:
    """Bounds of a larger box used as ``start`` on a smaller one stay sound and get tighter."""
    lo, hi = net.input_lower, net.input_upper
    t = data.draw(hnp.arrays(np.float64, (2, lo.size), elements=st.floats(0.0, 1.0)))
    sub_lo = lo + np.minimum(t[0], t[1]) * (hi - lo)
    sub_hi = lo + np.maximum(t[0], t[1]) * (hi - lo)
    sub_lo, sub_hi = np.clip(sub_lo, lo, hi), np.clip(sub_hi, lo, hi)
    big = crown_bounds(net)
    small = crown_bounds(net, sub_lo, sub_hi, start=big)
    assert_subset(small, big, "sub-box vs box")
    assert_subset(small, interval_bounds(net, sub_lo, sub_hi), "sub-box crown vs interval")
    assert_contains(small, net, sample_box(sub_lo, sub_hi, N_SAMPLES, 2), "sub-box crown")


def test_tiny_matrix_entries_move_into_the_row_bounds() -> None:
    """An entry HiGHS would drop (|a| <= 1e-9) widens its row instead: a relaxation, never a cut."""
    from pyomo_relu.bounds.rows import LinearProgram, without_tiny_entries

    lp = LinearProgram(
        col_lower=np.array([0.0, -3.0]),
        col_upper=np.array([2.0, 1.0]),
        row_lower=np.array([-np.inf, 1.0]),
        row_upper=np.array([0.0, 1.0]),
        start=np.array([0, 2, 4]),
        index=np.array([0, 1, 0, 1]),
        value=np.array([1.0, 1e-10, 2.0, -5e-10]),
        integer=np.zeros(0, int),
    )
    out = without_tiny_entries(lp)
    assert out.value.tolist() == [1.0, 2.0] and out.index.tolist() == [0, 0] and out.start.tolist() == [0, 1, 2]
    assert out.row_upper[0] >= 0.0 + 1e-10 * 3.0 and out.row_lower[0] == -np.inf
    assert out.row_lower[1] <= 1.0 - 5e-10 * 3.0 and out.row_upper[1] >= 1.0 + 5e-10 * 3.0
    # every point of the original rows satisfies the widened ones
    rng = np.random.default_rng(0)
    x = rng.uniform(lp.col_lower, lp.col_upper, size=(1000, 2))
    original = np.stack([x[:, 0] + 1e-10 * x[:, 1], 2.0 * x[:, 0] - 5e-10 * x[:, 1]], axis=1)
    widened = np.stack([x[:, 0], 2.0 * x[:, 0]], axis=1)
    inside = np.all((original >= lp.row_lower) & (original <= lp.row_upper), axis=1)
    assert np.all((widened[inside] >= out.row_lower) & (widened[inside] <= out.row_upper))
    assert without_tiny_entries(out) is out
