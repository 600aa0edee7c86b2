"""MIP training vs gradient training of the same architecture, and the MIP's build time.

Usage::

    python benchmarks/train.py                 # everything, MIP time limit 60 s
    python benchmarks/train.py --only relu build   # or bnn
    python benchmarks/train.py --write         # also update RESULTS.md ("## BNN training",
                                               # "## ReLU training", "## Training MIP build time")
                                               # and docs/bnn_weights.png

Data: scikit-learn's 8x8 digits pooled to 4x4 (``pyomo_relu.train.data``, seed 0), 100
training and 200 test images of two classes (0 vs 1, 3 vs 8).

**BNNs** (``--only bnn``): inputs thresholded to 0/1 (``binary_digits``).  Architecture
16-3-2: sign hidden neurons, weights in {-1, 0, +1}, integer biases,
two linear class scores; an image is correct when its class's score is larger by at least 1
(the scores are integers: a strict argmax), counted by ``count_correct`` (the forward pass)
for both methods.

* MIP: ``train_bnn(..., time_limit=60)`` with HiGHS (maximise correct training images),
  then ``sparsity=True`` (fewest nonzero weights at that accuracy, 30 s more).
* Gradient: PyTorch, latent real weights quantised to {-1, 0, +1} (``round(clamp(w))``) and
  biases to integers, sign activations, all with the straight-through estimator
  (``x + (q(x) - x).detach()``); Adam (lr 0.01), full batch, 400 epochs, cross-entropy on the
  scores; 5 seeds, the one with the best training accuracy reported (the time is for all 5).

**ReLU networks** (``--only relu``): gray inputs in [0, 1] (``pooled_digits``), 16-3-2 ReLU,
weights in [-1, 1], biases within the fan-in.

* MIP: ``train_relu_mip(X, y, hidden=(3,), time_limit=60)`` (continuous first layer, output
  weights in {-1, 0, 1}: exact for continuous ones with one hidden layer and two classes,
  ``pyomo_relu.train.relu``), margin 0.1: with ``start=None`` (a cold MIP), with the default
  start (``"gradient"``: numpy gradient descent inside the boxes, then projected and
  completed into a MIP start), with ``start=`` the torch net below, and the default with
  ``sparsity=True`` (30 s more).
* Gradient: PyTorch ``Linear-ReLU-Linear``, Adam (lr 0.01), full batch, 400 epochs,
  cross-entropy, weights and biases clamped to the MIP's boxes after every step; 5 seeds,
  best training accuracy reported (time for all 5).

Correct = argmax on the true class (the MIP's own margin count is in the status column).

**Build time** (``--only build``): the training MIP of ``train_bnn`` as built before
(term by term, Pyomo rules; ``pyomo_relu/train/bnn.py`` at commit 59e9485, read with
``git show``) vs now (:class:`~pyomo_relu.train.program.TrainingProgram`: numpy arrays for
highspy; plus the Pyomo model made from them, the SCIP route).  Median of 3 alternating runs.

The ratio columns are times over the peer's time in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, write_section

from pyomo_relu import DenseLayer, NetworkDefinition
from pyomo_relu.train import count_correct, train_bnn, train_relu_mip
from pyomo_relu.train.bnn import build_bnn_program
from pyomo_relu.train.data import binary_digits, pooled_digits
from pyomo_relu.train.plots import plot_first_layer
from pyomo_relu.train.program import pyomo_model

SECTION = "## BNN training"
RELU_SECTION = "## ReLU training"
BUILD_SECTION = "## Training MIP build time"
OLD_BUILD = "59e9485"  # the last commit with the term-by-term training MIP
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
        f"| {label} | gradient (STE, best of 5) | {count_correct(ste, X, y)}/{n} "
        f"| {count_correct(ste, X_test, y_test)}/{m} | {nonzero(ste)} | {ste_seconds:.1f} | 1.0x | - |",
        f"| {label} | MIP (HiGHS, accuracy) | {mip.correct}/{n} | {count_correct(mip.network, X_test, y_test)}/{m} "
        f"| {mip.n_nonzero}/{mip.n_weights} | {mip.seconds:.1f} | {mip.seconds / ste_seconds:.1f}x "
        f"| {mip.status}, bound {mip.bound:.1f}, gap {mip.gap:.3f} |",
        f"| {label} | MIP + sparsity | {sparse.correct}/{n} | {count_correct(sparse.network, X_test, y_test)}/{m} "
        f"| {sparse.n_nonzero}/{sparse.n_weights} | {sparse.seconds:.1f} | {sparse.seconds / ste_seconds:.1f}x "
        f"| accuracy {sparse.status} gap {sparse.gap:.3f}; sparsity {sparse.sparsity.status}, "
        f"bound {sparse.sparsity.bound:.1f} |",
    ]
    return rows, {"MIP": mip.network, "MIP sparse": sparse.network, "STE": ste}


def bnn_section(time_limit: float) -> tuple[str, list]:
    """The BNN rows and the networks to picture."""
    header = [
        "| digits | training | train correct | test correct | nonzero weights | seconds | time / STE | MIP status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows, pictures = [], []
    for classes, label in CASES:
        case_rows, nets = run_case(classes, label, time_limit)
        rows += case_rows
        print("\n".join(case_rows), flush=True)
        pictures += [(f"{label} {name}", net) for name, net in nets.items()]
    text = (
        f"`python benchmarks/train.py --only bnn --write` (MIP time limit {time_limit:g} s, HiGHS, 2 shared cores). "
        "16-3-2 sign network, weights in {-1, 0, +1}, 4x4 binary digits, 100 training / 200 test images; "
        "correct = true-class score larger by >= 1, counted by the forward pass for every row.  First-layer "
        f"weights: `docs/bnn_weights.png`.  Load average at the end: {os.getloadavg()[0]:.1f}.\n\n"
        + "\n".join(header + rows)
    )
    return text, pictures


# ------------------------------------------------------------------ ReLU networks
def train_gradient(X: np.ndarray, y: np.ndarray, seed: int, epochs: int = 400) -> NetworkDefinition:
    """The gradient baseline for ReLU networks (module doc), weights clamped to the MIP's boxes."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 2))
    linear = [model[0], model[2]]
    data, target = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(data), target).backward()
        optimizer.step()
        with torch.no_grad():
            for layer in linear:
                layer.weight.clamp_(-1.0, 1.0)
                layer.bias.clamp_(-float(layer.in_features), float(layer.in_features))
    with torch.no_grad():
        layers = [
            DenseLayer(layer.weight.numpy().astype(float), layer.bias.numpy().astype(float), kind)
            for layer, kind in zip(linear, ("relu", "linear"))
        ]
    return NetworkDefinition(layers, input_bounds=[(0.0, 1.0)] * X.shape[1])


def argmax_correct(net: NetworkDefinition, X: np.ndarray, y: np.ndarray) -> int:
    return int(np.sum(net.evaluate(X).argmax(axis=1) == y))


def relu_case(classes, label: str, time_limit: float) -> list[str]:
    X, y, X_test, y_test = pooled_digits(classes, 100, 200)
    start = time.perf_counter()
    runs = [train_gradient(X, y, seed) for seed in range(5)]
    seconds = time.perf_counter() - start
    grad = max(runs, key=lambda net: argmax_correct(net, X, y))
    n, m = len(y), len(y_test)
    rows = [
        f"| {label} | gradient (torch, best of 5) | {argmax_correct(grad, X, y)}/{n} "
        f"| {argmax_correct(grad, X_test, y_test)}/{m} | {nonzero(grad)} | {seconds:.1f} | 1.0x | - |"
    ]
    runs = {
        "MIP, no start": {"start": None},
        "MIP (default: numpy gradient start)": {},
        "MIP started from the torch net": {"start": grad},
        "MIP (default start) + sparsity": {"sparsity": True, "sparsity_time_limit": 30},
    }
    for name, options in runs.items():
        r = train_relu_mip(X, y, hidden=(HIDDEN,), time_limit=time_limit, **options)
        status = f"{r.status}, margin-correct {r.correct}, bound {r.bound:.1f}, gap {r.gap:.3f}"
        if r.sparsity is not None:
            status += f"; sparsity {r.sparsity.status}, bound {r.sparsity.bound or 0:.1f}"
        train, test = argmax_correct(r.network, X, y), argmax_correct(r.network, X_test, y_test)
        rows.append(
            f"| {label} | {name} | {train}/{n} | {test}/{m} | {r.n_nonzero}/{r.n_weights} | {r.seconds:.1f} "
            f"| {r.seconds / seconds:.1f}x | {status}; {r.size['binaries']} binaries |"
        )
        print(rows[-1], flush=True)
    return rows


def relu_rows(time_limit: float) -> list[str]:
    header = [
        "| digits | training | train correct | test correct | nonzero weights | seconds | time / gradient | MIP |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for classes, label in CASES:
        rows += relu_case(classes, label, time_limit)
    return header + rows


# ------------------------------------------------------------------ build time
def old_builder():
    """``build_training_model`` of ``pyomo_relu/train/bnn.py`` at :data:`OLD_BUILD` (term by term)."""
    source = subprocess.run(
        ["git", "show", f"{OLD_BUILD}:pyomo_relu/train/bnn.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_bnn.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_bnn", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_bnn"] = module
    spec.loader.exec_module(module)
    return module.build_training_model


def build_rows() -> list[str]:
    old = old_builder()
    header = [
        "| BNN training MIP | columns / rows / binaries | before: Pyomo, term by term (s) | now: arrays (s) "
        "| before / now | now: Pyomo from the arrays, for SCIP (s) | before / that |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    rows = []
    for n, hidden in ((100, [3]), (300, [8, 4])):
        X, y, _, _ = binary_digits((3, 8), n, 0)
        args = (X, y, 2, hidden, 1, [16, *hidden], 1.0)

        def arrays(args=args):
            program, _ = build_bnn_program(*args)
            return program, program.finish()

        times = {"old": [], "new": [], "pyomo": []}
        for _ in range(3):
            start = time.perf_counter()
            old(*args)
            times["old"].append(time.perf_counter() - start)
            start = time.perf_counter()
            program, lp = arrays()
            times["new"].append(time.perf_counter() - start)
            pyomo_model(lp, *program.objective("accuracy"))
            times["pyomo"].append(time.perf_counter() - start)
        t = {key: statistics.median(value) for key, value in times.items()}
        size = program.count()
        rows.append(
            f"| {len(y)} images, 16-{'-'.join(map(str, hidden))}-2 | {size['columns']} / {size['rows']} / "
            f"{size['binaries']} | {t['old']:.3f} | {t['new']:.4f} | {t['old'] / t['new']:.0f}x | {t['pyomo']:.3f} "
            f"| {t['old'] / t['pyomo']:.1f}x |"
        )
        print(rows[-1], flush=True)
    return header + rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--only", nargs="+", choices=("bnn", "relu", "build"), default=["bnn", "relu", "build"])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if "bnn" in args.only:
        text, pictures = bnn_section(args.time_limit)
        if args.write:
            write_section(SECTION, text)
            plot_first_layer(pictures, (4, 4), ROOT / "docs" / "bnn_weights.png")
        print(text)
    load = f"Load average at the end of the run: {os.getloadavg()[0]:.1f} (2 cores)."
    if "relu" in args.only:
        text = (
            f"`python benchmarks/train.py --only relu --write` (MIP time limit {args.time_limit:g} s, HiGHS, "
            "2 shared cores).  16-3-2 ReLU network, weights in [-1, 1], 4x4 gray digits in [0, 1], 100 training "
            "/ 200 test images; correct = argmax (forward pass) for every row.\n\n"
            + "\n".join(relu_rows(args.time_limit))
            + f"\n\n{load}"
        )
        if args.write:
            write_section(RELU_SECTION, text)
        print(text)
    if "build" in args.only:
        text = (
            "`python benchmarks/train.py --only build --write`: the training MIP of `train_bnn` on 3 vs 8, "
            f"before (commit {OLD_BUILD}) and now, median of 3 alternating runs.\n\n"
            + "\n".join(build_rows())
            + f"\n\n{load}"
        )
        if args.write:
            write_section(BUILD_SECTION, text)
        print(text)


if __name__ == "__main__":
    sys.exit(main())
