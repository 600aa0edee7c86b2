"""MIP training of ReLU networks with bounded continuous weights (pyomo_relu.train.relu)."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyomo_relu import ReLUNetBlock, solve
from pyomo_relu.errors import InvalidValueError
from pyomo_relu.train import count_correct, train_relu_mip
from pyomo_relu.train.relu import MARGIN_TOLERANCE, activation_bounds

XOR = (np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]), np.array([0, 0, 1, 1]))


def _digits(n: int, classes=(3, 8), seed: int = 0):
    """4x4 mean-pooled digits scaled to [0, 1] (continuous inputs)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.isin(digits.target, classes)
    X = digits.images[keep].reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16) / 16.0
    y = np.searchsorted(np.asarray(classes), digits.target[keep])
    order = np.random.default_rng(seed).permutation(len(y))[:n]
    return X[order], y[order]


def _noisy(n: int = 14, seed: int = 3):
    """Two overlapping classes in the plane: no classifier fits them all."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, size=(n, 2))
    y = (X[:, 0] + 0.3 * rng.standard_normal(n) > 0.5).astype(int)
    return X, y


@pytest.mark.parametrize("solver", ["highs", "scip"])
def test_training_accuracy_equals_the_solver_objective(solver):
    X, y = _digits(30)
    result = train_relu_mip(X, y, hidden=(2,), solver=solver, time_limit=60)
    assert result.status == "optimal" and result.gap == pytest.approx(0.0, abs=1e-6)
    recount = count_correct(result.network, X, y, 0.1, MARGIN_TOLERANCE * 0.1)
    assert result.correct == round(result.objective) == recount
    assert result.size["binaries"] >= 30 * 2  # one σ per hidden neuron and example (none stable here)
    first = result.network.layers[0]
    assert first.activation == "relu" and np.abs(first.weights).max() <= 1.0 + 1e-6
    assert set(np.unique(result.network.layers[1].weights)) <= {-1.0, 0.0, 1.0}


def test_xor_needs_the_hidden_layer_and_is_fitted_exactly():
    """XOR: 4/4 with two hidden ReLUs (proven), 3/4 at best without (proven): the hidden layer is real."""
    X, y = XOR
    deep = train_relu_mip(X, y, hidden=(2,), time_limit=60)
    assert deep.status == "optimal" and deep.correct == round(deep.objective) == 4
    assert (deep.network.evaluate(X).argmax(axis=1) == y).all()
    flat = train_relu_mip(X, y, hidden=(), time_limit=60)
    assert flat.status == "optimal" and flat.bound <= 3 + 1e-6 and flat.correct == 3


def test_noisy_labels_are_not_all_fitted_and_the_optimum_is_proven():
    X, y = _noisy()
    result = train_relu_mip(X, y, hidden=(2,), time_limit=60)
    assert result.status == "optimal"
    assert result.correct == round(result.objective) == round(result.bound) < len(y)


def test_a_finer_output_grid_gains_nothing_with_one_hidden_layer_and_two_classes():
    """The homogeneity argument of the module doc: the grid {-R, 0, R} already is the continuous optimum."""
    X, y = _noisy(8, seed=1)
    coarse = train_relu_mip(X, y, hidden=(2,), time_limit=60, weight_levels=1)
    assert coarse.status == "optimal" and round(coarse.objective) == coarse.correct == 7
    fine = train_relu_mip(X, y, hidden=(2,), time_limit=20, weight_levels=2)  # also ±R/2: 13 s to prove when idle
    assert fine.correct == round(fine.objective) <= coarse.correct  # a better fine incumbent would refute the claim
    if fine.status == "optimal":
        assert fine.correct == coarse.correct


def test_sparsity_keeps_accuracy_and_uses_fewer_weights():
    X, y = _digits(20)
    dense = train_relu_mip(X, y, hidden=(2,), time_limit=60)
    sparse = train_relu_mip(X, y, hidden=(2,), time_limit=60, sparsity=True, sparsity_time_limit=60)
    assert sparse.correct == dense.correct == round(dense.objective)
    assert sparse.sparsity is not None and sparse.sparsity.has_solution
    assert sparse.n_nonzero <= round(sparse.sparsity.objective) and sparse.n_nonzero < dense.n_weights
    if sparse.sparsity.status == "optimal":
        assert sparse.n_nonzero >= sparse.sparsity.bound - 1e-6


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 6),
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
    st.floats(0.1, 3.0),
    st.floats(0.0, 3.0),
    st.integers(0, 2**31 - 1),
)
def test_pre_activation_bounds_are_sound(n_in, widths, weight_range, bias_range, seed):
    """Every network with weights and biases in their boxes stays inside activation_bounds."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2.0, 2.0, size=(5, n_in))
    sizes = [n_in, *widths]
    depth = len(sizes) - 1
    bounds = activation_bounds(X, sizes, [weight_range] * depth, [bias_range] * depth)
    for _ in range(10):
        h = X
        for l, (lower, upper) in enumerate(bounds):
            W = rng.choice([-1.0, 1.0], size=(sizes[l + 1], sizes[l])) * weight_range * rng.uniform(0.5, 1.0)
            b = rng.choice([-1.0, 1.0], size=sizes[l + 1]) * bias_range * rng.uniform(0.5, 1.0)
            z = h @ W.T + b
            assert np.all(z >= lower - 1e-9) and np.all(z <= upper + 1e-9)
            h = np.maximum(z, 0.0)


def test_first_layer_bound_is_attained():
    """On layer 0 the interval bound is exact: weights sign(x) R and bias B reach it."""
    X = np.array([[0.5, -1.0, 0.0], [2.0, 1.0, 3.0]])
    (lower, upper), *_ = activation_bounds(X, [3, 2, 2], [1.5, 1.0], [0.5, 1.0])
    reached = np.abs(X).sum(axis=1) * 1.5 + 0.5
    assert np.allclose(upper[:, 0], reached) and np.allclose(lower, -upper)


def test_trained_network_embeds_like_any_other():
    """The trained network's big-M MILP over its input box reproduces its forward pass."""
    X, y = _digits(15)
    net = train_relu_mip(X, y, hidden=(2,), time_limit=60, input_bounds=(np.zeros(16), np.ones(16))).network
    assert np.array_equal(net.input_upper, np.ones(16))
    m = pe.ConcreteModel()
    m.x = pe.Var(range(net.n_inputs))
    m.y = pe.Var(range(2))
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=list(m.y.values()))
    m.obj = pe.Objective(expr=m.y[1] - m.y[0], sense=pe.maximize)
    assert solve(m, "highs").status == "optimal"
    out = net.evaluate(np.array([m.x[i].value for i in range(net.n_inputs)]))
    assert out[1] - out[0] == pytest.approx(pe.value(m.obj), abs=1e-5)


def test_refuses_bad_options():
    X, y = XOR
    with pytest.raises(InvalidValueError, match="margin"):
        train_relu_mip(X, y, margin=0.0)
    with pytest.raises(InvalidValueError, match="weight_levels"):
        train_relu_mip(X, y, weight_levels=0)
    with pytest.raises(InvalidValueError, match="two classes"):
        train_relu_mip(X, np.zeros(4, dtype=int))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_with_the_weights_fixed_the_mip_is_the_forward_pass(seed):
    """Any network (3 classes, 2 hidden layers, a finer grid) completed by the MIP: its count is the forward pass's."""
    from pyomo_relu import DenseLayer, NetworkDefinition
    from pyomo_relu.train.program import complete_start
    from pyomo_relu.train.relu import build_relu_program

    rng = np.random.default_rng(seed)
    X, y = rng.uniform(0.0, 1.0, size=(25, 4)), rng.integers(0, 3, size=25)
    sizes = [4, 3, 2, 3]
    program, cols = build_relu_program(X, y, sizes, ([1.0, 2.0, 1.0], [4.0, 6.0, 2.0]), 2, 0.05)
    layers = [
        DenseLayer(rng.uniform(-1.5, 1.5, size=(sizes[l + 1], sizes[l])), rng.uniform(-1, 1, sizes[l + 1]), kind)
        for l, kind in enumerate(("relu", "relu", "linear"))
    ]
    lp = program.finish()
    cost, maximize = program.objective("accuracy")
    values = complete_start(lp, cost, maximize, *cols.fixing(NetworkDefinition(layers)), 30.0)
    assert values is not None
    net = cols.network(values)
    assert set(np.unique(net.layers[1].weights)) <= {-2.0, -1.0, 0.0, 1.0, 2.0}  # the grid (R / Q) {-Q..Q}
    assert 0 < round(values @ cost) == count_correct(net, X, y, 0.05, MARGIN_TOLERANCE * 0.05) < len(y)


def test_a_start_network_is_used():
    """XOR from a hand-made 100% network: the MIP keeps (at least) it and proves 4/4."""
    from pyomo_relu import DenseLayer, NetworkDefinition

    X, y = XOR
    W0, W1 = np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([[-1.0, -1.0], [1.0, 1.0]])
    hand = NetworkDefinition([DenseLayer(W0, np.zeros(2), "relu"), DenseLayer(W1, np.array([0.5, -0.5]), "linear")])
    assert count_correct(hand, X, y, 0.1) == 4
    result = train_relu_mip(X, y, hidden=(2,), time_limit=30, start=hand)
    assert result.status == "optimal" and result.correct == round(result.objective) == 4
    with pytest.raises(InvalidValueError, match="architecture"):
        train_relu_mip(X, y, hidden=(3,), start=hand)


def test_bilinear_model_with_scip():
    """weight_levels=None: continuous weights everywhere, SCIP's global MIQCP; HiGHS refuses it."""
    X, y = XOR
    result = train_relu_mip(X, y, hidden=(2,), time_limit=60, weight_levels=None, solver="scip")
    assert result.status == "optimal" and result.correct == round(result.objective) == 4
    with pytest.raises(InvalidValueError, match="scip"):
        train_relu_mip(X, y, hidden=(2,), weight_levels=None)
    X, y = _noisy(8, seed=1)  # the grid {-R, 0, R} proves 7 of 8 (test above): no continuous net does better
    continuous = train_relu_mip(X, y, hidden=(2,), time_limit=10, weight_levels=None, solver="scip")
    assert continuous.correct == round(continuous.objective) <= 7


def test_gradient_start_fits_within_the_boxes():
    """The numpy start network: deterministic, inside the weight and bias boxes, better than chance."""
    from pyomo_relu.train.start import gradient_start

    X, y = _digits(40)
    nets = [gradient_start(X, y, [16, 3, 2], ([0.5, 1.0], [2.0, 1.0])) for _ in range(2)]
    for a, b in zip(nets[0].layers, nets[1].layers):
        assert np.array_equal(a.weights, b.weights)
    for layer, R, B in zip(nets[0].layers, (0.5, 1.0), (2.0, 1.0)):
        assert np.abs(layer.weights).max() <= R and np.abs(layer.bias).max() <= B
    assert (nets[0].evaluate(X).argmax(axis=1) == y).mean() >= 0.9
