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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pe

from pyomo_relu.errors import InvalidValueError
from pyomo_relu.network import DenseLayer, NetworkDefinition
from pyomo_relu.solvers import SolveResult, solve

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "train_bnn", "count_correct"]


@dataclass
class TrainResult:
    """A MIP-trained network and what the solver said.

    ``status``/``objective``/``bound``/``gap`` are those of the accuracy solve (``objective``
    and ``bound`` count examples); ``correct`` is the forward pass's count on the training set;
    ``sparsity`` is the second solve's :class:`~pyomo_relu.solvers.SolveResult` (or ``None``).
    """

    network: NetworkDefinition
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    correct: int
    n_examples: int
    n_nonzero: int
    n_weights: int
    sparsity: SolveResult | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.n_examples


def count_correct(net: NetworkDefinition, X: np.ndarray, y: np.ndarray, margin: float = 1.0) -> int:
    """Examples whose true-class score beats every other by at least ``margin`` (forward pass)."""
    scores = net.evaluate(np.asarray(X, dtype=float))
    true = scores[np.arange(len(y)), y]
    others = np.where(np.arange(scores.shape[1])[None, :] == np.asarray(y)[:, None], -np.inf, scores)
    return int(np.sum(true - others.max(axis=1) >= margin - 1e-9))


def _check_data(X: object, y: object, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise InvalidValueError(f"X must be (examples, inputs) and y (examples,), got {X.shape} and {y.shape}")
    if not np.all(np.isin(X, (0.0, 1.0))):
        raise InvalidValueError("train_bnn needs binary inputs (0/1): threshold the data first, e.g. X > 0.5")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise InvalidValueError("y must hold class numbers 0, 1, ... (integers)")
    k = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if k < 2 or y.max() >= k:
        raise InvalidValueError(f"need at least two classes and labels below n_classes={k}")
    return X, y.astype(int), k


def _add_layer_variables(m: pe.ConcreteModel, sizes: list[int], R: int, bias_range: Sequence[int]) -> None:
    layers = range(len(sizes) - 1)
    index = [(l, j, k) for l in layers for j in range(sizes[l + 1]) for k in range(sizes[l])]
    m.W = pe.Var(index, within=pe.Integers, bounds=(-R, R), initialize=0)
    m.s = pe.Var(index, within=pe.Binary, initialize=0)  # 1 where W may be nonzero
    m.nonzero_lo = pe.Constraint(index, rule=lambda m, *t: m.W[t] >= -R * m.s[t])
    m.nonzero_hi = pe.Constraint(index, rule=lambda m, *t: m.W[t] <= R * m.s[t])
    bias_index = [(l, j) for l in layers for j in range(sizes[l + 1])]
    m.b = pe.Var(bias_index, within=pe.Integers, bounds=lambda m, l, j: (-bias_range[l], bias_range[l]), initialize=0)


def _layer_expressions(m: pe.ConcreteModel, X: np.ndarray, sizes: list[int], R: int, bias_range: Sequence[int]) -> dict:
    """The pre-activations ``z[i, l, j]`` (Pyomo expressions) and their big-M ``M[i, l]``."""
    N, depth = X.shape[0], len(sizes) - 1
    z, big_m = {}, {}
    for i in range(N):
        active = np.flatnonzero(X[i])
        big_m[i, 0] = R * active.size + bias_range[0]
        for j in range(sizes[1]):
            z[i, 0, j] = sum(m.W[0, j, int(k)] for k in active) + m.b[0, j]
    for l in range(1, depth):
        n_in = sizes[l]
        index = [(i, l, j, k) for i in range(N) for j in range(sizes[l + 1]) for k in range(n_in)]
        q = pe.Var(index, bounds=(-R, R))
        setattr(m, f"q{l}", q)
        u = m.u
        rows = [
            lambda m, i, l, j, k: q[i, l, j, k] <= R * u[i, l - 1, k],
            lambda m, i, l, j, k: q[i, l, j, k] >= -R * u[i, l - 1, k],
            lambda m, i, l, j, k: q[i, l, j, k] <= m.W[l, j, k] + R * (1 - u[i, l - 1, k]),
            lambda m, i, l, j, k: q[i, l, j, k] >= m.W[l, j, k] - R * (1 - u[i, l - 1, k]),
        ]
        for r, rule in enumerate(rows):
            setattr(m, f"product{l}_{r}", pe.Constraint(index, rule=rule))
        for i in range(N):
            big_m[i, l] = R * n_in + bias_range[l]
            for j in range(sizes[l + 1]):
                z[i, l, j] = (
                    2 * sum(q[i, l, j, k] for k in range(n_in)) - sum(m.W[l, j, k] for k in range(n_in)) + m.b[l, j]
                )
    return {"z": z, "M": big_m}


def build_training_model(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    hidden: Sequence[int],
    weight_range: int,
    bias_range: Sequence[int],
    margin: float,
) -> pe.ConcreteModel:
    """The MIP of the module doc (accuracy objective ``m.accuracy``; ``m.n_nonzero`` deactivated)."""
    sizes = [X.shape[1], *hidden, n_classes]
    N, depth, R = X.shape[0], len(sizes) - 1, weight_range
    m = pe.ConcreteModel("train_bnn")
    _add_layer_variables(m, sizes, R, bias_range)
    hidden_index = [(i, l, j) for i in range(N) for l in range(depth - 1) for j in range(sizes[l + 1])]
    m.u = pe.Var(hidden_index, within=pe.Binary, initialize=1)  # 1: the sign neuron outputs +1
    exprs = _layer_expressions(m, X, sizes, R, bias_range)
    z, big_m = exprs["z"], exprs["M"]
    m.up = pe.Constraint(hidden_index, rule=lambda m, i, l, j: z[i, l, j] >= -big_m[i, l] * (1 - m.u[i, l, j]))
    m.down = pe.Constraint(hidden_index, rule=lambda m, i, l, j: z[i, l, j] <= (big_m[i, l] + 1) * m.u[i, l, j] - 1)
    m.ok = pe.Var(range(N), within=pe.Binary, initialize=0)
    last = depth - 1
    pairs = [(i, c) for i in range(N) for c in range(n_classes) if c != y[i]]
    m.margin = pe.Constraint(
        pairs,
        rule=lambda m, i, c: (
            z[i, last, int(y[i])] - z[i, last, c] >= margin - (margin + 2 * big_m[i, last]) * (1 - m.ok[i])
        ),
    )
    m.accuracy = pe.Objective(expr=sum(m.ok[i] for i in range(N)), sense=pe.maximize)
    m.n_nonzero = pe.Objective(expr=sum(m.s.values()), sense=pe.minimize)
    m.n_nonzero.deactivate()
    m._sizes = sizes
    return m


def _network(m: pe.ConcreteModel) -> NetworkDefinition:
    """The trained weights as a NetworkDefinition (sign hidden layers, linear output)."""
    sizes = m._sizes
    layers = []
    for l in range(len(sizes) - 1):
        W = np.array(
            [
                [round(pe.value(m.W[l, j, k], exception=False) or 0.0) for k in range(sizes[l])]
                for j in range(sizes[l + 1])
            ],
            dtype=float,
        )
        b = np.array([round(pe.value(m.b[l, j], exception=False) or 0.0) for j in range(sizes[l + 1])], dtype=float)
        kind = "linear" if l == len(sizes) - 2 else "sign"
        layers.append(DenseLayer(W, b, kind, f"{'out' if kind == 'linear' else 'sign'}{l}"))
    return NetworkDefinition(layers, input_bounds=[(0.0, 1.0)] * sizes[0], source="train_bnn")


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
    X, y, k = _check_data(X, y, n_classes)
    if int(weight_range) != weight_range or weight_range < 1 or margin < 1:
        raise InvalidValueError("weight_range must be an integer >= 1 and margin >= 1 (scores are integers)")
    sizes = [X.shape[1], *hidden, k]
    ranges = list(sizes[:-1]) if bias_range is None else list(np.broadcast_to(bias_range, (len(sizes) - 1,)))
    start = time.perf_counter()
    m = build_training_model(X, y, k, list(hidden), int(weight_range), [int(r) for r in ranges], float(margin))
    logger.info("train_bnn: %d examples, layers %s, model built in %.2f s", len(y), sizes, time.perf_counter() - start)
    result = solve(m, solver, time_limit=time_limit, mip_gap=mip_gap)
    second = None
    if sparsity and result.has_solution:
        m.keep_accuracy = pe.Constraint(expr=m.accuracy.expr >= round(result.objective))
        m.accuracy.deactivate()
        m.n_nonzero.activate()
        second = solve(m, solver, time_limit=sparsity_time_limit or time_limit, mip_gap=mip_gap)
        if not second.has_solution:
            raise InvalidValueError(
                f"the sparsity solve found no solution ({second.status}); give it a longer sparsity_time_limit"
            )
    if not result.has_solution:
        raise InvalidValueError(f"the training MIP found no solution ({result.status}); give a longer time_limit")
    net = _network(m)
    weights = sum(layer.weights.size for layer in net.layers)
    nonzero = sum(int(np.count_nonzero(layer.weights)) for layer in net.layers)
    return TrainResult(
        net,
        result.status,
        result.objective,
        result.bound,
        result.gap,
        time.perf_counter() - start,
        count_correct(net, X, y, margin),
        len(y),
        nonzero,
        weights,
        second,
    )
