"""Train a binarized network (sign activations, weights in {-1, 0, +1}) by MIP on the 8x8 digits.

Usage::

    python examples/train_bnn_mip.py                 # 0 vs 1, 100 training images, 16-3-2
    python examples/train_bnn_mip.py --classes 3 8 --train 60 --hidden 4 --time-limit 60 --sparsity

The images are pooled to 4x4 and thresholded to 0/1 (``pyomo_relu.train.data.binary_digits``);
``train_bnn`` maximises the correctly classified training images (margin constraints), then,
with ``--sparsity``, minimises the nonzero weights at that accuracy.  The accuracy is
re-computed by the forward pass, and the trained network is used as any other: here its
robustness to flipping one pixel of a test image is checked by a MILP.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pyomo.environ as pe

from pyomo_relu import ReLUNetBlock, solve
from pyomo_relu.train import count_correct, train_bnn
from pyomo_relu.train.data import binary_digits


def one_flip_robust(net, x: np.ndarray, label: int) -> bool:
    """True when no image within one flipped pixel of ``x`` makes another class score at least as high."""
    m = pe.ConcreteModel()
    m.x = pe.Var(range(net.n_inputs), within=pe.Binary)
    m.y = pe.Var(range(net.n_outputs))
    m.flips = pe.Constraint(expr=sum(1 - m.x[i] if x[i] else m.x[i] for i in range(net.n_inputs)) <= 1)
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=list(m.y.values()), formulation=("step", {"eps": 1}))
    worst = np.inf
    for other in (c for c in range(net.n_outputs) if c != label):
        m.obj = pe.Objective(expr=m.y[label] - m.y[other])
        result = solve(m, "highs")
        found = np.array([round(m.x[i].value) for i in range(net.n_inputs)], dtype=float)
        scores = net.evaluate(found)  # the MILP's answer, re-checked by the forward pass
        if result.status != "optimal" or abs(scores[label] - scores[other] - result.objective) > 1e-6:
            raise RuntimeError(f"MILP ({result.status}, {result.objective}) and forward pass disagree")
        worst = min(worst, scores[label] - scores[other])
        m.del_component(m.obj)
    return bool(worst >= 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train", type=int, default=100)
    parser.add_argument("--hidden", type=int, nargs="+", default=[3])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--solver", default="highs")
    parser.add_argument("--sparsity", action="store_true")
    parser.add_argument("--robust", type=int, default=5, help="test images checked against one flipped pixel")
    args = parser.parse_args(argv)
    X, y, X_test, y_test = binary_digits(args.classes, args.train, 200)
    result = train_bnn(X, y, hidden=args.hidden, solver=args.solver, time_limit=args.time_limit, sparsity=args.sparsity)
    net = result.network
    test = count_correct(net, X_test, y_test)
    print(
        f"status {result.status}, solver objective {result.objective:.0f} (bound {result.bound:.1f}, "
        f"gap {result.gap:.3g}); forward pass: {result.correct}/{len(y)} training, "
        f"{test}/{len(y_test)} test; {result.n_nonzero}/{result.n_weights} nonzero weights; {result.seconds:.1f} s"
    )
    correct = np.flatnonzero(net.evaluate(X_test).argmax(axis=1) == y_test)[: args.robust]
    robust = [one_flip_robust(net, X_test[i], int(y_test[i])) for i in correct]
    print(f"robust to one flipped pixel: {sum(robust)}/{len(robust)} correctly classified test images")
    return {"result": result, "test_correct": test, "robust": robust}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
