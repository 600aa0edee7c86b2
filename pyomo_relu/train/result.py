"""What every MIP trainer shares: checking the data, the two solves (accuracy, then sparsity) and the result."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pyomo_relu.errors import InvalidValueError
from pyomo_relu.network import NetworkDefinition
from pyomo_relu.solvers import SolveResult
from pyomo_relu.train.program import Solution, TrainingProgram, complete_start, solve_program

logger = logging.getLogger(__name__)

__all__ = ["Fit", "TrainResult", "check_data", "count_correct", "fit", "report"]


@dataclass
class TrainResult:
    """A MIP-trained network and what the solver said.

    ``status``/``objective``/``bound``/``gap`` are those of the accuracy solve (``objective``
    and ``bound`` count examples); ``correct`` is the forward pass's count on the training set;
    ``sparsity`` is the second solve's :class:`~pyomo_relu.solvers.SolveResult` (or ``None``).
    ``build_seconds`` is the time to build the MIP's arrays and ``size`` its columns, rows,
    binaries and integer columns (binaries included).
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
    build_seconds: float = 0.0
    size: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n_examples


def count_correct(
    net: NetworkDefinition, X: np.ndarray, y: np.ndarray, margin: float = 1.0, tolerance: float = 1e-9
) -> int:
    """Examples whose true-class score beats every other by at least ``margin - tolerance`` (forward pass)."""
    scores = net.evaluate(np.asarray(X, dtype=float))
    true = scores[np.arange(len(y)), y]
    others = np.where(np.arange(scores.shape[1])[None, :] == np.asarray(y)[:, None], -np.inf, scores)
    return int(np.sum(true - others.max(axis=1) >= margin - tolerance))


def check_data(X: object, y: object, n_classes: int | None, binary: str = "") -> tuple[np.ndarray, np.ndarray, int]:
    """``X`` as floats ``(examples, inputs)``, ``y`` as class numbers, and the number of classes.

    ``binary`` (the caller's name) requires 0/1 inputs.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise InvalidValueError(f"X must be (examples, inputs) and y (examples,), got {X.shape} and {y.shape}")
    if not np.all(np.isfinite(X)):
        raise InvalidValueError("X must be finite")
    if binary and not np.all(np.isin(X, (0.0, 1.0))):
        raise InvalidValueError(f"{binary} needs binary inputs (0/1): threshold the data first, e.g. X > 0.5")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise InvalidValueError("y must hold class numbers 0, 1, ... (integers)")
    k = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if k < 2 or y.max() >= k:
        raise InvalidValueError(f"need at least two classes and labels below n_classes={k}")
    return X, y.astype(int), k


@dataclass
class Fit:
    """The solves of :func:`fit`: ``accuracy`` and (with sparsity) ``sparsity``; ``values`` are the columns to read."""

    accuracy: Solution
    sparsity: Solution | None
    values: np.ndarray


def fit(
    program: TrainingProgram,
    solver: str,
    time_limit: float | None,
    sparsity: bool,
    sparsity_time_limit: float | None,
    mip_gap: float | None,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> Fit:
    """Maximise the correct examples, then (``sparsity``) minimise the nonzero weights at that count.

    ``start`` is ``(columns, values)`` of the weights of a start network (completed by
    :func:`~pyomo_relu.train.program.complete_start`, its time counted in ``time_limit``).
    """
    began = time.perf_counter()
    lp = program.finish()
    cost, maximize = program.objective("accuracy")
    values, bilinear = None, program.bilinear_terms()
    if start is not None and bilinear is not None:
        raise InvalidValueError("a start network needs the MILP (weights on a grid), not the bilinear model")
    if start is not None:
        values = complete_start(lp, cost, maximize, *start, min(10.0, time_limit or 10.0))
        logger.info("start network: %s correct", None if values is None else int(values @ cost))
        if time_limit is not None:
            time_limit = max(1e-3, time_limit - (time.perf_counter() - began))
    first = solve_program(lp, cost, maximize, solver, time_limit, mip_gap, values, bilinear)
    if first.values is None:
        raise InvalidValueError(f"the training MIP found no solution ({first.result.status}); give a longer time_limit")
    if not sparsity:
        return Fit(first, None, first.values)
    program.keep_accuracy(round(first.result.objective or 0.0))
    lp = program.finish()
    cost, maximize = program.objective("sparsity")
    polished = program.sparse_start(first.values)
    second = solve_program(lp, cost, maximize, solver, sparsity_time_limit or time_limit, mip_gap, polished, bilinear)
    if second.values is None:
        raise InvalidValueError(
            f"the sparsity solve found no solution ({second.result.status}); give it a longer sparsity_time_limit"
        )
    return Fit(first, second, second.values)


def report(
    program: TrainingProgram,
    solved: Fit,
    network: Callable[[np.ndarray], NetworkDefinition],
    data: tuple[np.ndarray, np.ndarray, float, float],
    times: tuple[float, float],
) -> TrainResult:
    """The :class:`TrainResult` of ``solved``: ``network(values)``, re-counted on ``data = (X, y, margin, tolerance)``.

    ``times`` are ``perf_counter`` at the start and the build's seconds.
    """
    X, y, margin, tolerance = data
    net = network(solved.values)
    first = solved.accuracy.result
    result = TrainResult(
        net,
        first.status,
        first.objective,
        first.bound,
        first.gap,
        time.perf_counter() - times[0],
        count_correct(net, X, y, margin, tolerance),
        len(y),
        sum(int(np.count_nonzero(layer.weights)) for layer in net.layers),
        sum(int(layer.weights.size) for layer in net.layers),
        None if solved.sparsity is None else solved.sparsity.result,
        times[1],
        program.count(),
    )
    logger.info(
        "%s: %s, %d/%d correct (solver %s), %d binaries, built in %.3f s",
        net.source,
        result.status,
        result.correct,
        result.n_examples,
        result.objective,
        result.size["binaries"],
        result.build_seconds,
    )
    return result
