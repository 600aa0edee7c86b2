r"""Training a ReLU network with bounded continuous weights by mixed-integer programming.

The network applied to every training example ``x_i`` is a set of constraints over the
weights.  Layer ``l`` maps ``n_in -> n_out``; hidden layers are ReLU, the last layer gives one
linear score per class::

    layer 0:   W[0] ∈ [-R_0, R_0] continuous,  b[0] ∈ [-B_0, B_0] continuous
               z[i,j] = Σ_k W[j,k] x[i,k] + b[j]                     (x are data: linear)
    layer l>0: W[l] = (R_l / Q) n,  n ∈ {-Q..Q} integer,  n + Q = Σ_t 2^t β[t]  (β binary)
               z[i,j] = (R_l / Q) (Σ_{k,t} 2^t p[i,j,k,t] - Q Σ_k h[i,k]) + b[j],
               p = β[j,k,t] h[i,k] exactly (0 <= h <= H):
                   0 <= p <= H β,   h - H (1 - β) <= p <= h
    ReLU:      h >= z,  h >= 0,  h <= z - L (1 - σ),  h <= U σ     (σ binary, L < 0 < U)
    correct:   z_out[i,y_i] - z_out[i,c] >= margin - M (1 - ok_i),  M = margin - (L_y - U_c)

The bounds come from the weight and data bounds by interval arithmetic
(:func:`activation_bounds`): ``U = R_0 Σ_k |x[i,k]| + B_0`` on layer 0, ``U = R_l Σ_k H[i,k] +
B_l`` after, ``L = -U``, ``H = max(U, 0)``; a neuron with ``U <= 0`` is fixed at 0 (no ``σ``),
one with ``L >= 0`` is ``h = z``.  Objective: maximise ``Σ ok`` (correct examples); with
``sparsity=True`` a second solve keeps that count and minimises the nonzero weights
(``|W| <= R s``, ``s`` binary).

**What is exact.**  The product of a continuous weight and a variable activation is
bilinear, so the layers after the first take their weights on the grid ``(R_l / Q) {-Q..Q}``
(``weight_levels=Q``).  For that weight set the MIP is exact: every product is linearised
without relaxation (binary expansion of ``n``, each binary x bounded activation by the four
rows above), so the MIP's optimum is the best training accuracy over the continuous
first-layer weights and biases (all biases are continuous) and the gridded later weights.
With **one hidden layer and two classes** nothing is lost even against continuous output
weights in ``[-R_1, R_1]``: only ``d = s_0 - s_1 = Σ_j a_j relu(W_j x + b_j) + c`` matters,
and by positive homogeneity ``a_j relu(W_j x + b_j) = sign(a_j) 2 R_1 relu(t W_j x + t b_j)``
with ``t = |a_j| / (2 R_1) <= 1`` keeps the first layer in its box, so ``a_j ∈ {-2 R_1, 0,
2 R_1}`` (``Q = 1``) reaches every such ``d``.  The MIP then trains the continuous network
exactly.  Deeper or multi-class networks are exact for the grid only (raise ``Q`` for a
finer one: ``ceil(log2(2 Q + 1))`` binaries per weight and example).

``weight_levels=None`` keeps every weight continuous and writes each product after the
first layer as the bilinear term ``W[j,k] h[i,k]`` itself: a nonconvex MIQCP that SCIP solves
to global optimality (spatial branch and bound), exact for continuous weights in any
architecture, but much slower; HiGHS refuses it.

Two things help the solver without changing the optimum: the biases of each hidden layer
are kept in decreasing order (hidden neurons are interchangeable), and by default a start
network trained by numpy gradient descent inside the boxes
(:mod:`pyomo_relu.train.start`), projected onto the grid, is completed into a MIP start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pyomo_relu.errors import InvalidValueError
from pyomo_relu.network import DenseLayer, NetworkDefinition
from pyomo_relu.train.program import Coef, TrainingProgram
from pyomo_relu.train.result import TrainResult, check_data, fit, report
from pyomo_relu.train.start import gradient_start

logger = logging.getLogger(__name__)

__all__ = ["activation_bounds", "build_relu_program", "train_relu_mip"]

#: An example counts as correct in the forward pass when its margin is at least
#: ``margin * (1 - MARGIN_TOLERANCE)``: the solver's integrality and feasibility tolerances
#: (1e-6 times big-M coefficients) move the scores of its own solution by far less.
MARGIN_TOLERANCE = 1e-2


def activation_bounds(
    X: np.ndarray, sizes: Sequence[int], weight_range: Sequence[float], bias_range: Sequence[float]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer, the pre-activation bounds ``(L, U)`` of shape ``(examples, n_out)`` (module doc).

    Sound for every weight ``|W[l]| <= weight_range[l]`` and bias ``|b[l]| <= bias_range[l]``:
    the hidden activations are ``relu(z) ∈ [0, max(U, 0)]``.
    """
    out = []
    size = np.abs(np.asarray(X, float)).sum(axis=1)
    for l in range(len(sizes) - 1):
        upper = np.broadcast_to((weight_range[l] * size + bias_range[l])[:, None], (len(X), sizes[l + 1]))
        out.append((-upper, upper))
        size = np.maximum(upper, 0.0).sum(axis=1)
    return out


@dataclass
class ReluColumns:
    """Where the weights are: ``weights[l]`` columns ``(n_out, n_in)``, integers times ``scales[l]``
    (``None``: continuous), their
    sparsity binaries ``support[l]``, ``biases[l]``; ``box`` the trained network's input bounds
    (``None``: none), ``ranges`` the weight and bias bounds per layer.
    """

    weights: list[np.ndarray]
    scales: list[float | None]
    support: list[np.ndarray]
    biases: list[np.ndarray]
    box: object
    ranges: tuple[Sequence[float], Sequence[float]]

    def network(self, values: np.ndarray) -> NetworkDefinition:
        """The trained network: ReLU hidden layers, linear scores; gridded weights rounded to the grid."""
        depth = len(self.weights)
        layers = []
        for l, (w, scale, s, b) in enumerate(zip(self.weights, self.scales, self.support, self.biases)):
            W = values[w] if scale is None else scale * np.round(values[w])
            W = np.where(np.round(values[s]).reshape(W.shape) == 0, 0.0, W)  # switched off by s = 0: |W| <= R s
            kind = "linear" if l == depth - 1 else "relu"
            layers.append(DenseLayer(W, values[b], kind, f"{'out' if kind == 'linear' else 'relu'}{l}"))
        return NetworkDefinition(layers, input_bounds=self.box, source="train_relu_mip")

    def fixing(self, net: NetworkDefinition) -> tuple[np.ndarray, np.ndarray]:
        """The weight and bias columns and their values for ``net`` (same architecture), as a MIP start.

        Each hidden neuron is rescaled (ReLU is positively homogeneous: the function stays) so
        that its largest outgoing weight reaches the bound, then the weights are clipped to
        their boxes and rounded to the grid, and the hidden neurons are sorted by decreasing
        bias (:meth:`~pyomo_relu.train.program.TrainingProgram.break_symmetry`).
        """
        if [layer.weights.shape for layer in net.layers] != [w.shape for w in self.weights]:
            raise InvalidValueError("the start network must have the architecture being trained")
        W = [np.array(layer.weights, dtype=float) for layer in net.layers]
        b = [np.array(layer.bias, dtype=float) for layer in net.layers]
        (R, B), cols, values = self.ranges, [], []
        for l in range(len(W) - 1):
            c = np.abs(W[l + 1]).max(axis=0) / R[l + 1]
            c = np.where(c > 0, c, 1.0)
            W[l], b[l], W[l + 1] = W[l] * c[:, None], b[l] * c, W[l + 1] / c[None, :]
            order = np.argsort(-b[l], kind="stable")
            W[l], b[l], W[l + 1] = W[l][order], b[l][order], W[l + 1][:, order]
        for l, scale in enumerate(self.scales):
            if scale is None:
                grid = np.clip(W[l], -R[l], R[l])
            else:
                levels = round(R[l] / scale)
                grid = np.clip(np.round(W[l] / scale), -levels, levels)
            cols += [self.weights[l].ravel(), self.biases[l]]
            values += [grid.ravel(), np.clip(b[l], -B[l], B[l])]
        return np.concatenate(cols), np.concatenate(values)


def _relu_rows(program: TrainingProgram, z: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``h = relu(z)`` by big-M with one binary per unstable neuron and example; returns ``h``."""
    h = program.add_cols(np.zeros(z.size), np.maximum(upper, 0.0).ravel()).reshape(z.shape)
    zf, hf, lo, hi = z.ravel(), h.ravel(), lower.ravel(), upper.ravel()
    program.at_least(np.zeros(z.size), [(hf, 1.0), (zf, -1.0)])  # h >= z
    active = np.flatnonzero(lo >= 0)  # h = z
    program.at_most(np.zeros(active.size), [(hf[active], 1.0), (zf[active], -1.0)])
    loose = np.flatnonzero((lo < 0) & (hi > 0))
    sigma = program.add_cols(np.zeros(loose.size), np.ones(loose.size), integer=True)
    program.at_most(-lo[loose], [(hf[loose], 1.0), (zf[loose], -1.0), (sigma, -lo[loose])])
    program.at_most(np.zeros(loose.size), [(hf[loose], 1.0), (sigma, -hi[loose])])
    return h


def _gridded_layer(
    program: TrainingProgram, h: np.ndarray, high: np.ndarray, n_out: int, levels: int
) -> tuple[np.ndarray, list[tuple[np.ndarray, Coef]]]:
    """Integer weights ``n ∈ {-Q..Q}`` and the terms of ``Σ_k n[j,k] h[i,k]`` (exact, module doc)."""
    N, n_in = h.shape
    bits = int(np.ceil(np.log2(2 * levels + 1)))
    n = program.weights((n_out, n_in), levels, integer=True)
    beta = program.add_cols(np.zeros(n.size * bits), np.ones(n.size * bits), integer=True).reshape(n_out, n_in, bits)
    program.sums(n, [(beta, 2.0 ** np.arange(bits))], -float(levels))  # n + Q = Σ 2^t β
    p = program.products(beta[None], h[:, None, :, None], np.zeros(1), high[:, None, :, None])
    terms: list[tuple[np.ndarray, Coef]] = [
        (p.reshape(N, n_out, n_in * bits), np.tile(2.0 ** np.arange(bits), n_in)),
        (np.broadcast_to(h[:, None, :], (N, n_out, n_in)), -float(levels)),
    ]
    return n, terms


def build_relu_program(
    X: np.ndarray,
    y: np.ndarray,
    sizes: Sequence[int],
    ranges: tuple[Sequence[float], Sequence[float]],
    levels: int | None,
    margin: float,
) -> tuple[TrainingProgram, ReluColumns]:
    """The MIP of the module doc, built in bulk; ``ranges`` are the weight and bias bounds per layer.

    ``levels=None``: continuous weights everywhere, the products after the first layer as
    bilinear terms (:meth:`~pyomo_relu.train.program.TrainingProgram.bilinear`; SCIP only).
    """
    N = X.shape[0]
    program = TrainingProgram()
    cols = ReluColumns([], [], [], [], None, ranges)
    h = high = None
    terms: list[tuple[np.ndarray, Coef]]
    scale: float | None
    for l, (lower, upper) in enumerate(activation_bounds(X, sizes, *ranges)):
        n_in, n_out, R, B = sizes[l], sizes[l + 1], ranges[0][l], ranges[1][l]
        b = program.add_cols(np.full(n_out, -float(B)), np.full(n_out, float(B)))
        z = program.add_cols(lower, upper).reshape(N, n_out)
        shape = (N, n_out, n_in)
        if h is None or high is None or levels is None:  # continuous weights
            W, scale = program.weights((n_out, n_in), R, integer=False), None
            terms = [] if h is not None else [(np.broadcast_to(W, shape), np.broadcast_to(X[:, None, :], shape))]
        else:
            W, terms = _gridded_layer(program, h, high, n_out, levels)
            scale = R / levels
        factor = 1.0 if scale is None else scale
        rows = program.sums(
            z, [(c, factor * np.asarray(coef)) for c, coef in terms] + [(np.broadcast_to(b, (N, n_out)), 1.0)]
        )
        if h is not None and scale is None:  # z = Σ W h + b, bilinear (the nonconvex model, for SCIP)
            program.bilinear(rows[:, :, None], W[None, :, :], h[:, None, :], -1.0)
        cols.weights.append(W)
        cols.scales.append(scale)
        cols.support.append(program.support[-1])
        cols.biases.append(b)
        if l < len(sizes) - 2:
            h, high = _relu_rows(program, z, lower, upper), np.maximum(upper, 0.0)
            program.break_symmetry(b)
        else:
            program.margins(z, lower, upper, y, margin)
    return program, cols


def _start_network(
    start: NetworkDefinition | str | None,
    X: np.ndarray,
    y: np.ndarray,
    sizes: Sequence[int],
    ranges: tuple[Sequence[float], Sequence[float]],
    levels: int | None,
) -> NetworkDefinition | None:
    """The start network of :func:`train_relu_mip` (``"gradient"``: :func:`gradient_start`; bilinear: none)."""
    if not isinstance(start, str):
        return start
    if start != "gradient":
        raise InvalidValueError(f"start={start!r}: give a NetworkDefinition, 'gradient' or None")
    return None if levels is None else gradient_start(X, y, sizes, ranges)


def train_relu_mip(
    X: object,
    y: object,
    hidden: Sequence[int] = (3,),
    *,
    n_classes: int | None = None,
    weight_range: float | Sequence[float] = 1.0,
    bias_range: float | Sequence[float] | None = None,
    weight_levels: int | None = 1,
    margin: float = 0.1,
    sparsity: bool = False,
    solver: str = "highs",
    time_limit: float | None = 60.0,
    sparsity_time_limit: float | None = None,
    mip_gap: float | None = None,
    start: NetworkDefinition | str | None = "gradient",
    input_bounds: object = None,
) -> TrainResult:
    """Train a ReLU network on ``X`` (examples x inputs) and labels ``y`` by MIP (module doc).

    ``hidden`` lists the widths of the ReLU layers.  Weights of layer ``l`` lie in
    ``[-weight_range[l], weight_range[l]]`` (one number for all layers): continuous on the
    first layer, on the grid of ``2 weight_levels + 1`` values after (``None``: continuous,
    the bilinear model, ``solver="scip"`` only); biases are continuous
    within ``bias_range`` (default: the weight range times the layer's fan-in).  An example is
    correct when its class's score beats every other by ``margin``.  ``sparsity=True`` then
    minimises the nonzero weights keeping the number of correct examples.  ``solver`` is
    ``"highs"`` or ``"scip"``; the result holds the network (ReLU hidden layers, linear
    scores), the solver's status, bound and gap, the forward pass's count of correct examples
    (margin within :data:`MARGIN_TOLERANCE`) and, in ``size``, the MIP's binaries.  The
    network has the ``input_bounds`` given (any form ``NetworkDefinition`` takes; ``None``:
    none, give them when embedding it).  ``start`` (a network of
    the same architecture, e.g. trained by gradient) is projected onto the weight boxes and
    the grid and given to the solver as a MIP start (:meth:`ReluColumns.fixing`);
    ``"gradient"`` (default) trains one by numpy gradient descent first
    (:func:`~pyomo_relu.train.start.gradient_start`, milliseconds), ``None`` gives no start
    (the bilinear model never takes one).
    """
    X, y, k = check_data(X, y, n_classes)
    sizes = [X.shape[1], *hidden, k]
    depth = len(sizes) - 1
    weights = [float(r) for r in np.broadcast_to(np.asarray(weight_range, float), (depth,))]
    biases = [w * n for w, n in zip(weights, sizes[:-1])] if bias_range is None else bias_range
    bounds = [float(r) for r in np.broadcast_to(np.asarray(biases, float), (depth,))]
    grid = weight_levels is None or (int(weight_levels) == weight_levels and weight_levels >= 1)
    if min(weights) <= 0 or min(bounds) < 0 or margin <= 0 or not grid:
        raise InvalidValueError(
            "weight_range > 0, bias_range >= 0, margin > 0 and an integer weight_levels >= 1 (or None)"
        )
    began = time.perf_counter()
    levels = None if weight_levels is None else int(weight_levels)
    program, cols = build_relu_program(X, y, sizes, (weights, bounds), levels, float(margin))
    cols.box = input_bounds
    built = time.perf_counter() - began
    logger.info("train_relu_mip: %d examples, layers %s, %s, built in %.3f s", len(y), sizes, program.count(), built)
    start = _start_network(start, X, y, sizes, (weights, bounds), levels)
    fixing = None if start is None else cols.fixing(start)
    solved = fit(program, solver, time_limit, sparsity, sparsity_time_limit, mip_gap, fixing)
    data = (X, y, float(margin), MARGIN_TOLERANCE * float(margin))
    return report(program, solved, cols.network, data, (began, built))
