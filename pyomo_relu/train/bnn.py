r"""Training a binarized network by mixed-integer programming (Aftabi, Moradi & Mahroo).

The weights are the variables; the network applied to every training example is a set of
constraints.  For binary inputs ``x`` (0/1), hidden layers with ``sign`` activations
(:mod:`pyomo_relu.step`: +1 at 0) and a linear output layer (one score per class)::

    W[l] ∈ {-R..R} (integers),  b[l] ∈ {-B_l..B_l},   layer l maps n_in -> n_out
    layer 0:   z[i,j] = Σ_k W[j,k] x[i,k] + b[j]                (x are data: linear in W)
    layer l>0: z[i,j] = Σ_k W[j,k] (2 u[i,k] - 1) + b[j]
             = 2 Σ_k q[i,j,k] - Σ_k W[j,k] + b[j],  q = W u, exactly:
               -R u <= q <= R u,   W - R (1 - u) <= q <= W + R (1 - u)
    hidden:    z >= -M (1 - u),   z <= (M + 1) u - 1               (u = [z >= 0]: z is integral)
    correct:   z_out[i,y_i] - z_out[i,c] >= margin - M' (1 - ok_i)   for every class c != y_i

``M`` is the exact range of ``z`` (``R Σ_k x[i,k] + B`` on layer 0, ``R n_in + B`` after),
``M' = margin + 2 M``.  Objective: maximise ``Σ ok_i`` (the correctly classified examples).
With ``sparsity=True`` a second solve fixes ``Σ ok_i`` at the first one's value and
minimises the number of nonzero weights ``Σ s`` with ``|W| <= R s``, ``s`` binary.  Since all
values are integers and ``margin >= 1``, an example counted correct has a strictly largest
true score; :func:`train_bnn` re-counts them with the numpy forward pass.

The MIP is built in bulk (:class:`~pyomo_relu.train.program.TrainingProgram`: numpy index
arrays, one call per layer) and goes to highspy as arrays (HiGHS) or to Pyomo one
``LinearExpression`` per row (SCIP).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pyomo_relu.errors import InvalidValueError
from pyomo_relu.network import DenseLayer, NetworkDefinition
from pyomo_relu.train.program import TrainingProgram
from pyomo_relu.train.result import TrainResult, check_data, count_correct, fit, report

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "build_bnn_program", "count_correct", "train_bnn"]


@dataclass
class BnnColumns:
    """The columns of the weights ``W[l]`` ``(n_out, n_in)`` and biases ``b[l]`` of a :func:`build_bnn_program`."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    def network(self, values: np.ndarray) -> NetworkDefinition:
        """The trained weights as a NetworkDefinition (sign hidden layers, linear output)."""
        depth = len(self.weights)
        layers = []
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            kind = "linear" if l == depth - 1 else "sign"
            name = f"{'out' if kind == 'linear' else 'sign'}{l}"
            layers.append(DenseLayer(np.round(values[w]), np.round(values[b]), kind, name))
        return NetworkDefinition(layers, input_bounds=[(0.0, 1.0)] * self.weights[0].shape[1], source="train_bnn")


def _sign_rows(program: TrainingProgram, z: np.ndarray, big_m: np.ndarray) -> np.ndarray:
    """``u = [z >= 0]`` for integral ``z`` in ``[-M, M]``: ``z - M u >= -M``, ``z - (M + 1) u <= -1``."""
    u = program.add_cols(np.zeros(z.size), np.ones(z.size), integer=True).reshape(z.shape)
    m = np.broadcast_to(big_m, z.shape).ravel()
    program.at_least(-m, [(z.ravel(), 1.0), (u.ravel(), -m)])
    program.at_most(np.full(m.size, -1.0), [(z.ravel(), 1.0), (u.ravel(), -(m + 1.0))])
    return u


def build_bnn_program(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    hidden: Sequence[int],
    weight_range: int,
    bias_range: Sequence[int],
    margin: float,
) -> tuple[TrainingProgram, BnnColumns]:
    """The MIP of the module doc, built in bulk: the program and where its weights are."""
    sizes = [X.shape[1], *hidden, n_classes]
    N, R = X.shape[0], weight_range
    program = TrainingProgram()
    cols = BnnColumns([], [])
    u = None
    for l in range(len(sizes) - 1):
        n_in, n_out, B = sizes[l], sizes[l + 1], bias_range[l]
        W = program.weights((n_out, n_in), R, integer=True)
        b = program.add_cols(np.full(n_out, -float(B)), np.full(n_out, float(B)), integer=True)
        cols.weights.append(W)
        cols.biases.append(b)
        big_m = (R * X.sum(axis=1) + B)[:, None] if u is None else np.full((N, 1), float(R * n_in + B))
        z = program.add_cols(np.broadcast_to(-big_m, (N, n_out)), np.broadcast_to(big_m, (N, n_out)))
        z = z.reshape(N, n_out)
        bias = (np.broadcast_to(b, (N, n_out)), 1.0)
        if u is None:  # x are data: z = W x + b
            program.sums(
                z, [(np.broadcast_to(W, (N, n_out, n_in)), np.broadcast_to(X[:, None, :], (N, n_out, n_in))), bias]
            )
        else:  # z = 2 Σ q - Σ W + b with q = W u
            q = program.products(u[:, None, :], W[None, :, :], np.full(1, -float(R)), np.full(1, float(R)))
            program.sums(z, [(q, 2.0), (np.broadcast_to(W, (N, n_out, n_in)), -1.0), bias])
        if l < len(sizes) - 2:
            u = _sign_rows(program, z, big_m)
            program.break_symmetry(b)
        else:
            program.margins(z, np.broadcast_to(-big_m, (N, n_out)), np.broadcast_to(big_m, (N, n_out)), y, margin)
    return program, cols


def train_bnn(
    X: object,
    y: object,
    hidden: Sequence[int] = (4,),
    *,
    n_classes: int | None = None,
    weight_range: int = 1,
    bias_range: int | Sequence[int] | None = None,
    margin: float = 1.0,
    sparsity: bool = False,
    solver: str = "highs",
    time_limit: float | None = 60.0,
    sparsity_time_limit: float | None = None,
    mip_gap: float | None = None,
) -> TrainResult:
    """Train a BNN on binary ``X`` (examples x inputs, 0/1) and labels ``y`` by MIP (module doc).

    ``hidden`` lists the widths of the sign layers; weights are integers in
    ``[-weight_range, weight_range]`` (``{-1, 0, +1}`` by default), biases integers within
    ``bias_range`` (default: each layer's fan-in).  ``sparsity=True`` then minimises the nonzero
    weights keeping the number of correct examples (``sparsity_time_limit``, default
    ``time_limit``).  ``solver`` is ``"highs"`` or ``"scip"``.  The returned network has
    ``sign`` hidden layers and a linear output layer (class scores) and works with every part
    of the package.
    """
    X, y, k = check_data(X, y, n_classes, binary="train_bnn")
    if int(weight_range) != weight_range or weight_range < 1 or margin < 1:
        raise InvalidValueError("weight_range must be an integer >= 1 and margin >= 1 (scores are integers)")
    sizes = [X.shape[1], *hidden, k]
    ranges = list(sizes[:-1]) if bias_range is None else list(np.broadcast_to(bias_range, (len(sizes) - 1,)))
    start = time.perf_counter()
    program, cols = build_bnn_program(X, y, k, list(hidden), int(weight_range), [int(r) for r in ranges], margin)
    built = time.perf_counter() - start
    logger.info("train_bnn: %d examples, layers %s, %s, built in %.3f s", len(y), sizes, program.count(), built)
    solved = fit(program, solver, time_limit, sparsity, sparsity_time_limit, mip_gap)
    return report(program, solved, cols.network, (X, y, float(margin), 1e-9), (start, built))
