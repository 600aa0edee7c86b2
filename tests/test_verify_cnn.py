"""Local robustness of a small CNN (two convolutions, max pooling, dense head) trained here on
scikit-learn's 8x8 digits, verified with :func:`pyomo_relu.verify.verify`.

Every verdict is checked independently: a ``sat`` counterexample must lie in the box and be
misclassified by the *torch* model itself; an ``unsat`` box must hold no misclassified point
among random samples and a torch gradient attack.  Both verdicts must occur on the grid.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
nn = torch.nn

from sklearn.datasets import load_digits  # noqa: E402

from pyomo_relu.io.torch import load_torch  # noqa: E402
from pyomo_relu.verify import parse_vnnlib, robustness_property, verify  # noqa: E402


def robustness_vnnlib(x0: np.ndarray, eps: float, label: int, n_out: int) -> str:
    """VNN-LIB: the L-inf ball (clipped to [0, 1]) and "some other class scores at least as high"."""
    lines = [f"(declare-const X_{i} Real)" for i in range(x0.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, v in enumerate(x0):
        lines += [
            f"(assert (>= X_{i} {float(max(0.0, v - eps))!r}))",
            f"(assert (<= X_{i} {float(min(1.0, v + eps))!r}))",
        ]
    others = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(n_out) if j != label)
    lines.append(f"(assert (or {others}))")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def trained() -> tuple:
    torch.set_num_threads(1)  # a tiny model: thread start-up would dominate, and xdist runs 2 workers
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 10),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=0.03)
    inputs, targets = torch.tensor(X[:1200]), torch.tensor(y[:1200])
    for _ in range(30):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimiser.step()
    model.eval()
    accuracy = (model(torch.tensor(X[1400:])).argmax(1).numpy() == y[1400:]).mean()
    assert accuracy > 0.6
    return model, X, y


def _torch_labels(model: nn.Module, points: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(points.reshape(-1, 1, 8, 8), dtype=torch.float32)).argmax(1).numpy()


def _torch_attack(model: nn.Module, lower: np.ndarray, upper: np.ndarray, label: int) -> np.ndarray:
    """Projected gradient steps on the margin from 8 random starts."""
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.uniform(lower, upper, size=(8, lower.size)), dtype=torch.float32, requires_grad=True)
    lo, hi = torch.tensor(lower, dtype=torch.float32), torch.tensor(upper, dtype=torch.float32)
    for _ in range(40):
        scores = model(x.view(-1, 1, 8, 8))
        others = scores.clone()
        others[:, label] = -np.inf
        margin = others.max(1).values - scores[:, label]
        (grad,) = torch.autograd.grad(margin.sum(), x)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x + 0.25 * (hi - lo) * grad.sign(), lo), hi).requires_grad_(True)
    return x.detach().double().numpy()


def test_cnn_local_robustness_verdicts_are_confirmed(trained: tuple) -> None:
    model, X, y = trained
    net = load_torch(model, example_input=torch.zeros(1, 1, 8, 8))
    assert [type(layer).__name__ for layer in net.layers] == ["DenseLayer", "MaxLayer", "DenseLayer", "DenseLayer"]
    rng = np.random.default_rng(1)
    verdicts = []
    for index in range(1400, 1406):
        x0, label = X[index].ravel().astype(float), int(y[index])
        if _torch_labels(model, x0)[0] != label:
            continue
        for eps in (0.01, 0.05, 0.2):
            spec = parse_vnnlib(robustness_vnnlib(x0, eps, label, 10))
            direct = robustness_property(x0, eps, label, 10)  # the same property, without text
            assert np.array_equal(direct.cases[0].lower, spec.cases[0].lower)
            assert {p.key() for p in direct.polytopes} == {p.key() for p in spec.polytopes}
            result = verify(net, spec, time_limit=60)
            lower, upper = spec.cases[0].lower, spec.cases[0].upper
            verdicts.append(result.status)
            if result.status == "sat":
                x, _ = result.counterexample
                assert np.all(x >= lower - 1e-9) and np.all(x <= upper + 1e-9)
                scores = net.evaluate(x)
                assert np.delete(scores, label).max() >= scores[label] - 1e-9
                with torch.no_grad():
                    theirs = model(torch.tensor(x.reshape(1, 1, 8, 8), dtype=torch.float32))[0].double().numpy()
                assert np.delete(theirs, label).max() >= theirs[label] - 1e-4  # the torch model agrees
            elif result.status == "unsat":
                points = np.vstack(
                    [rng.uniform(lower, upper, size=(2000, 64)), _torch_attack(model, lower, upper, label)]
                )
                assert np.all(_torch_labels(model, points) == label), (index, eps)
    assert "sat" in verdicts and "unsat" in verdicts, verdicts
