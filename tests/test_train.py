"""MIP training of binarized networks (pyomo_relu.train) and both training examples."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe
import pytest

from pyomo_relu import ReLUNetBlock, solve
from pyomo_relu.errors import InvalidValueError
from pyomo_relu.train import count_correct, train_bnn


def _data(n: int = 40, seed: int = 0):
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.isin(digits.target, [0, 1])
    X = (digits.images[keep][:, ::2, ::2].reshape(-1, 16) > 7).astype(float)  # 4x4, binary
    y = (digits.target[keep] == 1).astype(int)
    order = np.random.default_rng(seed).permutation(len(y))[:n]
    return X[order], y[order]


@pytest.mark.parametrize("solver", ["highs", "scip"])
def test_training_accuracy_equals_the_solver_objective(solver):
    X, y = _data(30)
    result = train_bnn(X, y, hidden=(2,), solver=solver, time_limit=60)
    assert result.status == "optimal"
    assert result.correct == round(result.objective) == count_correct(result.network, X, y)
    assert result.gap == pytest.approx(0.0, abs=1e-6)
    layer = result.network.layers[0]
    assert layer.activation == "sign" and set(np.unique(layer.weights)) <= {-1.0, 0.0, 1.0}


def test_noisy_labels_cannot_all_be_fitted():
    """Two identical inputs with different labels: the optimum is below the data size, and proven."""
    X, y = _data(20)
    X, y = np.vstack([X, X[:1]]), np.r_[y, 1 - y[:1]]
    result = train_bnn(X, y, hidden=(2,), time_limit=60)
    assert result.status == "optimal" and result.bound <= len(y) - 1 + 1e-6
    assert result.correct == round(result.objective) == len(y) - 1


def test_sparsity_keeps_accuracy_and_uses_fewer_weights():
    X, y = _data(30)
    dense = train_bnn(X, y, hidden=(2,), time_limit=60)
    sparse = train_bnn(X, y, hidden=(2,), time_limit=60, sparsity=True)
    assert sparse.correct == dense.correct
    assert sparse.sparsity.status == "optimal"
    assert sparse.n_nonzero == round(sparse.sparsity.objective) <= dense.n_nonzero


def test_trained_network_embeds_like_any_other():
    """The trained network's MILP (step formulation, eps=1: integral) reproduces its forward pass."""
    X, y = _data(20)
    net = train_bnn(X, y, hidden=(2,), time_limit=60).network
    m = pe.ConcreteModel()
    m.x = pe.Var(range(net.n_inputs), within=pe.Binary)
    m.y = pe.Var(range(2))
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=list(m.y.values()), formulation=("step", {"eps": 1}))
    m.obj = pe.Objective(expr=m.y[1] - m.y[0], sense=pe.maximize)
    assert solve(m, "highs").status == "optimal"
    x = np.array([m.x[i].value for i in range(net.n_inputs)])
    out = net.evaluate(x)
    assert out[1] - out[0] == pytest.approx(pe.value(m.obj))


def test_refuses_non_binary_inputs_and_bad_labels():
    with pytest.raises(InvalidValueError, match="binary"):
        train_bnn([[0.5, 1.0]], [0])
    with pytest.raises(InvalidValueError, match="two classes"):
        train_bnn([[0.0, 1.0]], [0])


def _example(name: str):
    """The module ``examples/<name>.py``."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_reduced():
    """examples/train_bnn_mip.py on 20 images (a few seconds)."""
    module = _example("train_bnn_mip")
    out = module.main(["--train", "20", "--hidden", "2", "--time-limit", "30", "--robust", "2", "--sparsity"])
    result = out["result"]
    assert result.status == "optimal" and result.correct == round(result.objective)
    assert out["test_correct"] >= 100  # of 200 test images: better than chance on 0 vs 1
    assert len(out["robust"]) == 2


def test_relu_example_reduced():
    """examples/train_relu_mip.py on 30 images (sparsity for 10 s)."""
    out = _example("train_relu_mip").main(
        ["--train", "30", "--hidden", "2", "--time-limit", "10", "--verify", "2", "--sparsity"]
    )
    result = out["result"]
    assert result.status == "optimal" and result.correct == round(result.objective)
    assert out["test_correct"] >= 120  # of 200 test images: better than chance on 3 vs 8
    assert len(out["margins"]) == 2
