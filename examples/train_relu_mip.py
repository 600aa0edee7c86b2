"""Train a small ReLU network with bounded continuous weights by MIP on the 8x8 digits, then verify it.

Usage::

    python examples/train_relu_mip.py                  # 3 vs 8, 60 training images, 16-3-2
    python examples/train_relu_mip.py --classes 0 1 --train 100 --hidden 3 --time-limit 60 --sparsity

The images are pooled to 4x4 gray values in [0, 1] (``pyomo_relu.train.data.pooled_digits``);
``train_relu_mip`` maximises the training images classified with a margin (continuous
first-layer weights in [-1, 1], output weights in {-1, 0, 1}: exact for two classes and one
hidden layer), then, with ``--sparsity``, minimises the nonzero weights at that accuracy.  The
accuracy is re-computed by the forward pass, and the trained network is used as any other:
here a MILP finds, for a few test images, the worst score difference within ``--eps`` of the
image (L-infinity), re-checked by the forward pass.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pyomo.environ as pe

from pyomo_relu import ReLUNetBlock, solve
from pyomo_relu.train import train_relu_mip
from pyomo_relu.train.data import pooled_digits


def worst_margin(net, x: np.ndarray, label: int, eps: float) -> float:
    """The smallest ``score[label] - score[other]`` over the box ``|x' - x| <= eps`` within [0, 1] (MILP)."""
    m = pe.ConcreteModel()
    box = [(max(0.0, v - eps), min(1.0, v + eps)) for v in x]
    m.x = pe.Var(range(net.n_inputs), bounds=lambda m, i: box[i])
    m.y = pe.Var(range(net.n_outputs))
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=list(m.y.values()))
    m.obj = pe.Objective(expr=m.y[label] - m.y[1 - label])
    result = solve(m, "highs")
    found = np.array([m.x[i].value for i in range(net.n_inputs)])
    scores = net.evaluate(found)  # the MILP's answer, re-checked by the forward pass
    if result.status != "optimal" or abs(scores[label] - scores[1 - label] - result.objective) > 1e-5:
        raise RuntimeError(f"MILP ({result.status}, {result.objective}) and forward pass disagree")
    return float(result.objective)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs=2, default=[3, 8])
    parser.add_argument("--train", type=int, default=60)
    parser.add_argument("--hidden", type=int, nargs="+", default=[3])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--solver", default="highs")
    parser.add_argument("--sparsity", action="store_true")
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--verify", type=int, default=5, help="test images whose worst margin is computed")
    args = parser.parse_args(argv)
    X, y, X_test, y_test = pooled_digits(args.classes, args.train, 200)
    result = train_relu_mip(
        X,
        y,
        hidden=args.hidden,
        solver=args.solver,
        time_limit=args.time_limit,
        sparsity=args.sparsity,
        input_bounds=[(0.0, 1.0)] * X.shape[1],
    )
    net = result.network
    test = int(np.sum(net.evaluate(X_test).argmax(axis=1) == y_test))
    print(
        f"status {result.status}, solver objective {result.objective:.0f} (bound {result.bound:.1f}, "
        f"gap {result.gap:.3g}); forward pass: {result.correct}/{len(y)} training images with the margin, "
        f"{test}/{len(y_test)} test images right; {result.n_nonzero}/{result.n_weights} nonzero weights; "
        f"{result.size['binaries']} binaries; {result.seconds:.1f} s"
    )
    right = np.flatnonzero(net.evaluate(X_test).argmax(axis=1) == y_test)[: args.verify]
    margins = [worst_margin(net, X_test[i], int(y_test[i]), args.eps) for i in right]
    print(
        f"robust within eps={args.eps}: {sum(m > 0 for m in margins)}/{len(margins)} correctly classified test images"
    )
    return {"result": result, "test_correct": test, "margins": margins}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
