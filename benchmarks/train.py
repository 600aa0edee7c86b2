"""MIP-trained binarized networks vs the same architecture trained by gradient (straight-through).

Usage::

    python benchmarks/train.py            # both cases, MIP time limit 60 s
    python benchmarks/train.py --write    # also update "## BNN training" in RESULTS.md and docs/bnn_weights.png

Data: scikit-learn's 8x8 digits pooled to 4x4 and thresholded to 0/1
(``pyomo_relu.train.data.binary_digits``, seed 0), 100 training and 200 test images of two
classes.  Architecture 16-3-2: sign hidden neurons, weights in {-1, 0, +1}, integer biases,
two linear class scores; an image is correct when its class's score is larger by at least 1
(the scores are integers: a strict argmax), counted by ``count_correct`` (the forward pass)
for both methods.

* MIP: ``train_bnn(..., time_limit=60)`` with HiGHS (maximise correct training images),
  then ``sparsity=True`` (fewest nonzero weights at that accuracy, 30 s more).
* Gradient: PyTorch, latent real weights quantised to {-1, 0, +1} (``round(clamp(w))``) and
  biases to integers, sign activations, all with the straight-through estimator
  (``x + (q(x) - x).detach()``); Adam (lr 0.01), full batch, 400 epochs, cross-entropy on the
  scores; 5 seeds, the one with the best training accuracy reported (the time is for all 5).

The ratio column is the time over the gradient run's time in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import ROOT, write_section

from pyomo_relu import DenseLayer, NetworkDefinition
from pyomo_relu.train import count_correct, train_bnn
from pyomo_relu.train.data import binary_digits
from pyomo_relu.train.plots import plot_first_layer

SECTION = "## BNN training"
CASES = (((0, 1), "0 vs 1"), ((3, 8), "3 vs 8"))
HIDDEN = 3


def train_ste(X: np.ndarray, y: np.ndarray, seed: int, epochs: int = 400) -> NetworkDefinition:
    """The gradient baseline of the module doc, returned as a NetworkDefinition (quantised weights)."""
    import torch

    torch.manual_seed(seed)
    sizes = [X.shape[1], HIDDEN, 2]
    weights = [torch.nn.Parameter(0.5 * torch.randn(sizes[l + 1], sizes[l])) for l in range(2)]
    biases = [torch.nn.Parameter(torch.zeros(sizes[l + 1])) for l in range(2)]
    ste = lambda x, q: x + (q - x).detach()  # noqa: E731
    quant_w = lambda w: torch.clamp(torch.round(w), -1, 1)  # noqa: E731
    quant_b = [lambda b, r=sizes[l]: torch.clamp(torch.round(b), -r, r) for l in range(2)]
    data, target = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    optimizer = torch.optim.Adam(weights + biases, lr=0.01)

    def scores() -> torch.Tensor:
        z = data @ ste(weights[0], quant_w(weights[0])).T + ste(biases[0], quant_b[0](biases[0]))
        h = ste(z, torch.where(z >= 0, 1.0, -1.0))
        return h @ ste(weights[1], quant_w(weights[1])).T + ste(biases[1], quant_b[1](biases[1]))

    for _ in range(epochs):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(scores(), target).backward()
        optimizer.step()
    with torch.no_grad():
        layers = [
            DenseLayer(
                quant_w(weights[l]).numpy().astype(float),
                quant_b[l](biases[l]).numpy().astype(float),
                "sign" if l == 0 else "linear",
            )
            for l in range(2)
        ]
    return NetworkDefinition(layers, input_bounds=[(0.0, 1.0)] * X.shape[1])


def nonzero(net: NetworkDefinition) -> str:
    return f"{sum(int(np.count_nonzero(l.weights)) for l in net.layers)}/{sum(l.weights.size for l in net.layers)}"


def run_case(classes, label: str, time_limit: float) -> tuple[list[str], dict]:
    X, y, X_test, y_test = binary_digits(classes, 100, 200)
    start = time.perf_counter()
    runs = [train_ste(X, y, seed) for seed in range(5)]
    ste_seconds = time.perf_counter() - start
    ste = max(runs, key=lambda net: count_correct(net, X, y))
    mip = train_bnn(X, y, hidden=(HIDDEN,), time_limit=time_limit)
    sparse = train_bnn(X, y, hidden=(HIDDEN,), time_limit=time_limit, sparsity=True, sparsity_time_limit=30)
    n, m = len(y), len(y_test)
    rows = [
        f"| {label} | gradient (STE, best of 5) | {count_correct(ste, X, y)}/{n} | {count_correct(ste, X_test, y_test)}/{m} "
        f"| {nonzero(ste)} | {ste_seconds:.1f} | 1.0x | - |",
        f"| {label} | MIP (HiGHS, accuracy) | {mip.correct}/{n} | {count_correct(mip.network, X_test, y_test)}/{m} "
        f"| {mip.n_nonzero}/{mip.n_weights} | {mip.seconds:.1f} | {mip.seconds / ste_seconds:.1f}x "
        f"| {mip.status}, bound {mip.bound:.1f}, gap {mip.gap:.3f} |",
        f"| {label} | MIP + sparsity | {sparse.correct}/{n} | {count_correct(sparse.network, X_test, y_test)}/{m} "
        f"| {sparse.n_nonzero}/{sparse.n_weights} | {sparse.seconds:.1f} | {sparse.seconds / ste_seconds:.1f}x "
        f"| accuracy {sparse.status} gap {sparse.gap:.3f}; sparsity {sparse.sparsity.status}, "
        f"bound {sparse.sparsity.bound:.1f} |",
    ]
    return rows, {"MIP": mip.network, "MIP sparse": sparse.network, "STE": ste}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    header = [
        "| digits | training | train correct | test correct | nonzero weights | seconds | time / STE | MIP status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows, pictures = [], []
    for classes, label in CASES:
        case_rows, nets = run_case(classes, label, args.time_limit)
        rows += case_rows
        print("\n".join(case_rows), flush=True)
        pictures += [(f"{label} {name}", net) for name, net in nets.items()]
    text = (
        f"`python benchmarks/train.py --write` (MIP time limit {args.time_limit:g} s, HiGHS, 2 shared cores). "
        "16-3-2 sign network, weights in {-1, 0, +1}, 4x4 binary digits, 100 training / 200 test images; "
        "correct = true-class score larger by >= 1, counted by the forward pass for every row.  First-layer "
        "weights: `docs/bnn_weights.png`.\n\n" + "\n".join(header + rows)
    )
    if args.write:
        write_section(SECTION, text)
        plot_first_layer(pictures, (4, 4), ROOT / "docs" / "bnn_weights.png")
    print(text)


if __name__ == "__main__":
    main()
