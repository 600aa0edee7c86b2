"""Soundness under floating point: weights over 1e6, float32 inputs, thresholds at attained values.

A property whose unsafe set holds a sampled point (threshold at or just below a value the
network attains) must never be called ``unsat``; every ``sat`` carries a counterexample that
the float64 forward pass confirms.  Both verification routes are exercised: input splitting
(5 inputs) and, for 20 inputs, alpha-CROWN at the root, ReLU branching and the MILPs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyomo_relu.bounds import crown_bounds
from pyomo_relu.bounds.alpha import alpha_crown_bounds
from pyomo_relu.network import DenseLayer, NetworkDefinition
from pyomo_relu.verify import check_counterexample, verify
from pyomo_relu.verify.vnnlib import Case, Polytope, Specification

FLOAT_SETTINGS = settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def scaled_net(seed: int, n_in: int, scale: float, dtype=np.float64) -> NetworkDefinition:
    """A 3-layer ReLU network whose first-layer weights and biases are of order ``scale``."""
    rng = np.random.default_rng(seed)
    sizes = (n_in, 12, 12, 2)
    layers = []
    for k in range(3):
        factor = scale if k == 0 else 1.0
        weights = (rng.normal(size=(sizes[k + 1], sizes[k])) * factor).astype(dtype)
        bias = (rng.normal(size=sizes[k + 1]) * factor * 0.3).astype(dtype)
        layers.append(DenseLayer(weights, bias, "linear" if k == 2 else "relu"))
    return NetworkDefinition(layers, input_bounds=[(-1.0, 1.0)] * n_in)


def threshold_spec(net: NetworkDefinition, threshold: float) -> Specification:
    """Unsafe: ``y0 - y1 >= threshold`` on the network's box."""
    polytope = Polytope(np.array([[-1.0, 1.0]]), np.array([-threshold]))
    return Specification(net.n_inputs, 2, (Case(net.input_lower, net.input_upper, (polytope,)),))


def attained(net: NetworkDefinition, seed: int) -> float:
    """The largest ``y0 - y1`` over random points of the box (a value the network attains)."""
    X = np.random.default_rng(seed).uniform(net.input_lower, net.input_upper, size=(4000, net.n_inputs))
    y = net.evaluate(X)
    return float(np.max(y[:, 0] - y[:, 1]))


def assert_no_wrong_verdict(net: NetworkDefinition, threshold: float, time_limit: float) -> None:
    spec = threshold_spec(net, threshold)
    result = verify(net, spec, time_limit=time_limit)
    assert result.status != "unsat", f"unsat although a point reaches {threshold!r} ({result.method})"
    if result.status == "sat":
        x, y = result.counterexample
        assert check_counterexample(net, spec, x).valid
        assert y[0] - y[1] >= threshold


@FLOAT_SETTINGS
@given(st.integers(0, 10_000), st.sampled_from([1e6, 3e6, 1e7]), st.sampled_from([0.0, 1e-12, 1e-9]))
def test_large_weights_never_give_a_wrong_unsat_by_splitting(seed: int, scale: float, below: float) -> None:
    net = scaled_net(seed, 5, scale)
    value = attained(net, seed)
    assert_no_wrong_verdict(net, value - below * abs(value), time_limit=10.0)


@FLOAT_SETTINGS
@given(st.integers(0, 10_000), st.sampled_from([1e6, 1e7]))
def test_large_weights_never_give_a_wrong_unsat_in_high_dimension(seed: int, scale: float) -> None:
    net = scaled_net(seed, 20, scale)
    value = attained(net, seed)
    assert_no_wrong_verdict(net, value, time_limit=10.0)


@pytest.mark.parametrize("scale", [1e6, 1e8])
def test_bounds_of_large_weight_networks_contain_every_sample(scale: float) -> None:
    net = scaled_net(7, 6, scale)
    X = np.random.default_rng(1).uniform(-1.0, 1.0, size=(20_000, 6))
    for bounds in (crown_bounds(net), alpha_crown_bounds(net)):
        for k, pre in enumerate(net.preactivations(X)):
            assert np.all(pre >= bounds.lower[k]) and np.all(pre <= bounds.upper[k]), (bounds.methods, k)


def test_float32_networks_are_evaluated_in_float64() -> None:
    single = scaled_net(3, 5, 1e6, dtype=np.float32)
    assert all(layer.weights.dtype == np.float64 for layer in single.canonical_layers)
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, 5))
    assert single.evaluate(x).dtype == np.float64
    value = attained(single, 3)
    assert_no_wrong_verdict(single, value, time_limit=10.0)


@pytest.mark.parametrize("n_in", [5, 20])
def test_thresholds_just_above_the_attained_value_give_only_checked_answers(n_in: int) -> None:
    """Just above a sampled value the truth is unknown here: ``sat`` must be confirmed, and a
    threshold beyond CROWN's upper bound of ``y0 - y1`` must be proven ``unsat`` from bounds."""
    net = scaled_net(11, n_in, 1e6)
    value = attained(net, 11)
    spec = threshold_spec(net, value * (1 + 1e-9) + 1e-9)
    result = verify(net, spec, time_limit=10.0)
    if result.status == "sat":
        assert check_counterexample(net, spec, result.counterexample[0]).valid
    crown = crown_bounds(net)
    high = float(crown.upper[-1][0] - crown.lower[-1][1])
    proven = verify(net, threshold_spec(net, high * (1 + 1e-6) + 1.0), time_limit=10.0)
    assert proven.status == "unsat" and proven.proven_bound is not None and proven.proven_bound < 0
