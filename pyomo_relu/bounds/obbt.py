r"""Optimisation-based bound tightening (OBBT): the ``"lp"`` and ``"milp"`` bounds methods.

The linear program
------------------
For canonical layers ``z_i = W_i h_{i-1} + b_i``, ``h_i = relu(z_i)`` (or ``h_i = z_i`` for a
linear layer), ``h_{-1} = x`` and the current bounds ``l_i <= z_i <= u_i``, the bounds of
neuron ``j`` of layer ``k`` are ``min`` and ``max`` of ``W_k[j] h_{k-1} + b_k[j]`` over

.. math::

    x_{lo} \le x \le x_{hi}, \qquad \text{and for every layer } i < k:

    h_{ij} = z_{ij} = W_i[j] h_{i-1} + b_{ij},\; l_{ij} \le h_{ij} \le u_{ij}
        \quad \text{(linear layer, or stable active } l_{ij} \ge 0)

    h_{ij} = 0 \text{ (dropped)} \quad \text{(stable inactive } u_{ij} \le 0)

    z_{ij} = W_i[j] h_{i-1} + b_{ij},\; l_{ij} \le z_{ij} \le u_{ij},\;
        h_{ij} \ge z_{ij},\; 0 \le h_{ij},\;
        h_{ij} \le \tfrac{u_{ij}}{u_{ij} - l_{ij}} (z_{ij} - l_{ij})
        \quad \text{(unstable: the triangle)}

The triangle is the LP relaxation of the big-M formulation
(:mod:`pyomo_relu.formulations.bigm`).  The ``"milp"`` method keeps the big-M rows
``h <= z - l (1 - σ)``, ``h <= u σ`` with binary ``σ`` instead, so it computes the exact
range (or, on a time-out, a proven bound).  Layers are processed in order and each
layer's LP is built once, with the bounds already tightened for the layers before it.
In this forward pass layer 0 is skipped (over a box interval arithmetic is exact there),
and so are neurons already proven stable (``all_neurons=True`` tightens those too).  The
maximum is solved first, and a ReLU neuron whose maximum is ``<= 0`` needs no minimum.

Output bounds
-------------
With ``output_bounds`` the final layer's pre-activation bounds are intersected with the
box the outputs must lie in, and after the forward pass a second sweep re-tightens the
inputs and every layer over the LP of the *whole* network, in which those output bounds
are constraints.  Bounds (and the implied input box) computed this way are valid **only
for models that enforce the output bounds**; they are recorded in
:attr:`Bounds.output_lower` / :attr:`Bounds.output_upper`.

Soundness
---------
HiGHS solves with feasibility tolerances of ``1e-9`` and no result is trusted to the last
digit:

* an LP optimum ``v`` gives the lower bound ``min(v - tol·max(1, |v|), s)`` where ``s`` is
  the safe dual bound of Neumaier & Shcherbina (2004) recomputed in numpy from HiGHS' row
  duals ``y``: ``s = min_{x in cols} (c - Aᵀy)ᵀx + min_{r in rows} yᵀr``, which is a valid
  bound for *any* ``y``;
* a MILP gives its proven dual bound (``mip_dual_bound``), not its incumbent, widened by
  ``tol·max(1, |v|)``, so a time-out still gives a valid bound;
* a solve that ends without an optimum (or a dual bound) leaves that bound unchanged, and
  a new bound is always intersected with the old one;
* the neuron bounds enter the LP as column bounds loosened by ``1e-8·max(1, |b|)`` (a
  relaxation), so that nearly degenerate bounds cannot make the LP spuriously
  infeasible; a solver's "infeasible" is re-checked with HiGHS' defaults before
  :class:`~pyomo_relu.errors.PyomoReluError` says that the box and the output bounds admit
  no point (without output bounds it is only logged, and the bounds are kept).

Parallel scheme
---------------
The neurons of one layer are independent.  The layer's LP is built once as numpy arrays
(row-wise CSR) in the calling process; the neurons are split into chunks (about three per
worker) and :func:`solve_chunk`, a module-level function of numpy arrays and plain data,
builds one ``highspy.Highs`` model per chunk and only changes the objective between
solves, so HiGHS warm-starts from the previous basis.  ``executor`` may be ``None``
(serial), an ``int`` (a process pool created and shut down here) or any
:class:`concurrent.futures.Executor`, e.g. ``dask.distributed.Client.get_executor()``.
The ``int`` pool uses ``fork`` on Linux.  ``time_limit`` becomes an absolute wall-clock
deadline (``time.time()``) that workers check between solves and pass to HiGHS; neurons
not reached keep their bounds.

Model constraints (``tighten(mode="model")``)
--------------------------------------------
``side_constraints`` (a :class:`SideConstraints`, built from the linear constraints of
the surrounding Pyomo model by :func:`pyomo_relu.bounds.model.linear_side_constraints`
in the calling process) are rows over the network inputs, the network outputs and
*extra* columns (other model variables, integrality relaxed).  :func:`build_lp` appends
the extra columns to every LP; rows that touch no output enter every LP (so also the
forward pass, which then starts by tightening the inputs and layer 0), rows that touch an
output (``columns[-1]``, the final layer's post-activation) only the whole-network LP.
A second sweep over the whole network then runs exactly as with output bounds.  The
resulting bounds (and :attr:`Bounds.implied_input_lower`/``upper``) are valid **only for
points that satisfy those constraints**; ``"model"`` is added to :attr:`Bounds.methods`.
If the constraints, the box and the network admit no point, a
:class:`~pyomo_relu.errors.PyomoReluError` is raised as for output bounds.

This module imports numpy and highspy only, never Pyomo.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.interval import interval_bounds
from pyomo_relu.bounds.rows import (
    HIGHS_TIME_LIMIT_OPTIONS,
    TRUSTED_BIG_M_ERROR,
    LinearProgram,
    SideConstraints,
    build_lp,
    highs_model,
    largest_big_m,
)
from pyomo_relu.errors import EmptyBoxError, SolverError
from pyomo_relu.network import Layer, MaxLayer, NetworkDefinition
from pyomo_relu.parallel import Workers
from pyomo_relu.sparse import rows_dense

logger = logging.getLogger(__name__)

#: Relative widening of every bound found by a solver (see "Soundness").
DEFAULT_TOLERANCE = 1e-7
#: Feasibility tolerance given to HiGHS (well below :data:`DEFAULT_TOLERANCE`).
SOLVER_FEASIBILITY_TOLERANCE = 1e-9
#: Chunks per worker when neurons are spread over an executor.
CHUNKS_PER_WORKER = 3
MIN_CHUNK = 4


@dataclass(frozen=True)
class SolveSettings:
    """What a worker needs besides the LP; plain data so that it pickles cheaply."""

    integer: bool
    tolerance: float = DEFAULT_TOLERANCE
    deadline: float | None = None  # absolute ``time.time()``
    time_per_solve: float | None = None
    mip_gap: float = 1e-6


# ------------------------------------------------------------------- worker
def solve_chunk(
    lp: LinearProgram,
    cols: np.ndarray,
    coefficients: np.ndarray,
    constants: np.ndarray,
    skip_lower_if_inactive: np.ndarray,
    settings: SolveSettings,
    callback: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Bounds of ``coefficients[t] @ x[cols] + constants[t]`` over ``lp`` for every row ``t``.

    The maximum is computed first; where ``skip_lower_if_inactive[t]`` and it is ``<= 0``
    the minimum is not needed and not computed.  Returns ``(lower, upper, infeasible)``
    with NaN where no bound was found and the number of solves that proved ``lp``
    infeasible.  ``callback(1)`` is called after each target (serial progress bars).
    """
    highs = _make_highs(lp, settings)
    solver = _ChunkSolver(highs, lp, cols, settings)
    n = constants.size
    lower, upper = np.full(n, np.nan), np.full(n, np.nan)
    infeasible = 0
    for t in range(n):
        if _expired(settings.deadline):
            break
        top, bad = solver.minimum(-coefficients[t])
        upper[t] = constants[t] - top
        infeasible += bad
        if not (skip_lower_if_inactive[t] and upper[t] <= 0):
            bottom, bad = solver.minimum(coefficients[t])
            lower[t] = constants[t] + bottom
            infeasible += bad
        if callback is not None:
            callback(1)
    return lower, upper, infeasible


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def _make_highs(lp: LinearProgram, settings: SolveSettings) -> Any:
    import highspy

    model = highs_model(lp, settings.integer)
    highs = highspy.Highs()
    options: dict[str, Any] = {
        "output_flag": False,
        "primal_feasibility_tolerance": SOLVER_FEASIBILITY_TOLERANCE,
        "dual_feasibility_tolerance": SOLVER_FEASIBILITY_TOLERANCE,
    }
    if settings.integer and lp.integer.size:
        options.update(
            mip_feasibility_tolerance=SOLVER_FEASIBILITY_TOLERANCE,
            mip_rel_gap=settings.mip_gap,
            mip_abs_gap=settings.mip_gap,
            **HIGHS_TIME_LIMIT_OPTIONS,
        )
    else:
        options["presolve"] = "off"  # keep the basis between solves
    for key, value in options.items():
        highs.setOptionValue(key, value)
    # kWarning: e.g. HiGHS dropped |coefficients| < 1e-9 (the safe dual bound still uses them)
    if highs.passModel(model) == highspy.HighsStatus.kError:
        raise SolverError("HiGHS rejected the bound-tightening LP")
    return highs


class _ChunkSolver:
    """One HiGHS model whose objective changes between solves."""

    def __init__(self, highs: Any, lp: LinearProgram, cols: np.ndarray, settings: SolveSettings) -> None:
        import highspy

        self.highs, self.lp, self.settings = highs, lp, settings
        self.cols = np.ascontiguousarray(cols, dtype=np.int32)
        self.mip = settings.integer and lp.integer.size > 0
        self.status = highspy.HighsModelStatus
        self.row_of_entry = np.repeat(np.arange(lp.n_rows), np.diff(lp.start))

    def minimum(self, coefficients: np.ndarray) -> tuple[float, int]:
        """A proven lower bound of ``min coefficients @ x[cols]`` (NaN if none) and 1 if infeasible."""
        highs = self.highs
        highs.changeColsCost(self.cols.size, self.cols, np.ascontiguousarray(coefficients, float))
        # HiGHS (1.15) checks an LP's time_limit against the model's cumulative run time but
        # a MIP's against the current run's
        offset = 0.0 if self.mip else highs.getRunTime()
        highs.setOptionValue("time_limit", offset + self._time_budget())
        highs.run()
        status = highs.getModelStatus()
        if status == self.status.kInfeasible:
            return np.nan, 1
        if self.mip:
            return self._widen(highs.getInfo().mip_dual_bound), 0
        if status != self.status.kOptimal:
            return np.nan, 0
        value = self._widen(highs.getInfo().objective_function_value)
        safe = self._safe_bound(coefficients)
        return (min(value, safe) if np.isfinite(safe) else value), 0

    def _time_budget(self) -> float:
        budget = np.inf
        if self.settings.time_per_solve is not None:
            budget = self.settings.time_per_solve
        if self.settings.deadline is not None:
            budget = min(budget, max(self.settings.deadline - time.time(), 1e-3))
        return float(budget)

    def _widen(self, value: float) -> float:
        if not np.isfinite(value):
            return np.nan
        return float(value - self.settings.tolerance * max(1.0, abs(value)))

    def _safe_bound(self, coefficients: np.ndarray) -> float:
        """Neumaier–Shcherbina bound ``min (c - Aᵀy)ᵀx + min yᵀr`` from HiGHS' row duals."""
        lp = self.lp
        duals = np.asarray(self.highs.getSolution().row_dual, float)
        if duals.size != lp.n_rows:
            return -np.inf
        cost = np.zeros(lp.n_cols)
        cost[self.cols] = coefficients
        reduced = cost - np.bincount(lp.index, lp.value * duals[self.row_of_entry], minlength=lp.n_cols)
        return _box_minimum(reduced, lp.col_lower, lp.col_upper) + _box_minimum(duals, lp.row_lower, lp.row_upper)


def _box_minimum(coefficients: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """``min coefficients @ v`` over ``lower <= v <= upper`` (``-inf`` if unbounded)."""
    with np.errstate(invalid="ignore"):
        terms = np.where(coefficients > 0, coefficients * lower, coefficients * upper)
    terms[coefficients == 0] = 0.0
    return float(terms.sum())


# ---------------------------------------------------------------- scheduling
class _Progress:
    """A tqdm bar over neurons, shown after a second (or at once with ``progress=True``)."""

    def __init__(self, progress: bool | None, total: int, desc: str) -> None:
        self.bar: Any = None
        if progress is False or total == 0:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # optional dependency: no bar
            return
        self.bar = tqdm(
            total=total, desc=desc, unit="neuron", leave=False, delay=0.0 if progress else 1.0, dynamic_ncols=True
        )

    def update(self, n: int = 1) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Runner:
    """Solves the targets of one layer serially or on an executor (:class:`~pyomo_relu.parallel.Workers`)."""

    def __init__(self, executor: Executor | int | None, settings: SolveSettings, progress: _Progress) -> None:
        self.settings, self.progress = settings, progress
        self.pool = Workers(executor)
        self.executor: Executor | None = self.pool.executor
        self.workers = self.pool.count

    def close(self, cancel: bool = False) -> None:
        """Shut down a pool of our own (``cancel``: at once, stopping busy workers)."""
        self.pool.close(cancel=cancel)

    def solve(
        self,
        lp: LinearProgram,
        cols: np.ndarray,
        coefficients: np.ndarray,
        constants: np.ndarray,
        skip_lower: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        if self.executor is None:
            return solve_chunk(lp, cols, coefficients, constants, skip_lower, self.settings, self.progress.update)
        n = constants.size
        n_chunks = max(1, min(CHUNKS_PER_WORKER * self.workers, n // MIN_CHUNK))
        futures: dict[Future, np.ndarray] = {}
        for part in np.array_split(np.arange(n), n_chunks):
            future = self.executor.submit(
                solve_chunk, lp, cols, coefficients[part], constants[part], skip_lower[part], self.settings
            )
            futures[future] = part
        lower, upper, infeasible = np.full(n, np.nan), np.full(n, np.nan), 0
        for future in as_completed(futures):
            part = futures[future]
            lower[part], upper[part], bad = future.result()
            infeasible += bad
            self.progress.update(part.size)
        return lower, upper, infeasible


# -------------------------------------------------------------------- driver
def apply_output_bounds(
    net: NetworkDefinition, bounds: Bounds, output_lower: np.ndarray, output_upper: np.ndarray
) -> Bounds:
    """``bounds`` with the final layer intersected with the output box, recording that box.

    A final ReLU layer ``y = max(0, z)`` turns ``y <= b`` into ``z <= b`` and ``y >= a > 0``
    into ``z >= a``.  Raises :class:`PyomoReluError` when no output can satisfy them.
    """
    out_lo, out_hi = np.asarray(output_lower, float), np.asarray(output_upper, float)
    if bounds.output_lower is not None:
        out_lo, out_hi = np.maximum(out_lo, bounds.output_lower), np.minimum(out_hi, bounds.output_upper)
    lower, upper = list(bounds.lower), list(bounds.upper)
    lower[-1], upper[-1] = _final_preactivation_box(net.canonical_layers[-1], lower[-1], upper[-1], out_lo, out_hi)
    return Bounds(
        lower,
        upper,
        bounds.input_lower,
        bounds.input_upper,
        bounds.network_hash,
        bounds.methods,
        out_lo,
        out_hi,
        bounds.implied_input_lower,
        bounds.implied_input_upper,
    )


def _final_preactivation_box(
    layer: Layer, lower: np.ndarray, upper: np.ndarray, out_lo: np.ndarray, out_hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What output bounds say of the last layer's pre-activations.

    Linear: the same box.  ReLU ``y = max(0, z)``: ``y <= b`` gives ``z <= b`` and
    ``y >= a > 0`` gives ``z >= a``.  Max ``y_g = max_i z_i``: ``y_g <= b`` gives every
    ``z_i <= b``.  Smooth and step activations: nothing.
    """
    if isinstance(layer, MaxLayer):
        pre_lo, pre_hi = np.full(lower.size, -np.inf), out_hi[layer.groups]
        low_y, _ = layer.output_bounds(lower, upper)
        if np.any(low_y > out_hi):
            i = int(np.flatnonzero(low_y > out_hi)[0])
            _raise_empty(f"output {i} (a max) is at least {low_y[i]:.6g} but must be <= {out_hi[i]:.6g}")
    else:
        relu, smooth = layer.relu_mask, layer.smooth_mask | layer.step_mask  # steps: nothing either
        if np.any(relu & (out_hi < 0)):
            i = int(np.flatnonzero(relu & (out_hi < 0))[0])
            _raise_empty(f"output {i} is a ReLU, never negative, but must be <= {out_hi[i]:.6g}")
        pre_lo = np.where(relu & (out_lo <= 0), -np.inf, out_lo)
        pre_lo = np.where(smooth, -np.inf, pre_lo)
        pre_hi = np.where(smooth, np.inf, out_hi)
    new_lower, new_upper = np.maximum(lower, pre_lo), np.minimum(upper, pre_hi)
    crossed = np.flatnonzero(new_lower > new_upper)
    if crossed.size:
        i = int(crossed[0])
        _raise_empty(
            f"output {i} lies in [{lower[i]:.6g}, {upper[i]:.6g}] over the input box, "
            f"outside the output bounds [{pre_lo[i]:.6g}, {pre_hi[i]:.6g}]"
        )
    return new_lower, new_upper


def _raise_empty(why: str, model: bool = False) -> None:
    if model:
        raise EmptyBoxError(
            f"the input box, the output bounds and the linear constraints of the model admit no "
            f"point of the network ({why}); the model is infeasible: check its constraints on the "
            "network's inputs and outputs, or enlarge the input box"
        )
    raise EmptyBoxError(
        f"the input box and output bounds admit no point ({why}); loosen the output bounds or enlarge the input box"
    )


@dataclass
class _State:
    """Bounds being tightened, shared by the passes."""

    layers: tuple[Layer, ...]
    lower: list[np.ndarray]
    upper: list[np.ndarray]
    input_lower: np.ndarray
    input_upper: np.ndarray
    with_outputs: bool
    all_neurons: bool
    integer: bool
    side: SideConstraints | None = None


def obbt_bounds(
    net: NetworkDefinition,
    lower: np.ndarray,
    upper: np.ndarray,
    start: Bounds | None,
    *,
    integer: bool,
    output_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    time_limit: float | None = None,
    executor: Executor | int | None = None,
    progress: bool | None = None,
    time_limit_per_neuron: float | None = None,
    all_neurons: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    mip_gap: float = 1e-6,
    side_constraints: SideConstraints | None = None,
) -> Bounds:
    """LP (``integer=False``) or MILP (``integer=True``) bound tightening; see the module docstring."""
    if side_constraints is not None:
        side_constraints.check(net.n_inputs, net.n_outputs)
        if side_constraints.n_rows == 0:
            side_constraints = None
    deadline = None if time_limit is None else time.time() + float(time_limit)
    bounds = start if start is not None else interval_bounds(net, lower, upper)
    if output_bounds is not None:
        bounds = apply_output_bounds(net, bounds, *output_bounds)
    state = _State(
        net.canonical_layers,
        [a.copy() for a in bounds.lower],
        [a.copy() for a in bounds.upper],
        np.array(lower, float),
        np.array(upper, float),
        output_bounds is not None,
        all_neurons,
        integer,
        side_constraints,
    )
    if bounds.implied_input_lower is not None:
        state.input_lower = np.maximum(state.input_lower, bounds.implied_input_lower)
        state.input_upper = np.minimum(state.input_upper, bounds.implied_input_upper)
    settings = SolveSettings(integer, tolerance, deadline, time_limit_per_neuron if integer else None, mip_gap)
    name = "milp" if integer else "lp"
    stages = list(_stages(state))
    planned = [_targets(state, k).size for k, _ in stages]  # neurons only become stable
    progress_bar = _Progress(progress, sum(planned), f"{name} bounds")
    runner = _Runner(executor, settings, progress_bar)
    interrupted = False
    try:
        for stage, n_planned in zip(stages, planned):
            if _expired(deadline):
                logger.info("%s bounds: time limit reached; later neurons keep their bounds", name)
                break
            progress_bar.update(n_planned - _run_stage(state, stage, runner))
    except KeyboardInterrupt:  # the stages finished so far only ever tightened sound bounds
        interrupted = True
        logger.warning(
            "%s bounds interrupted (Ctrl-C): returning the bounds tightened so far (sound); "
            "later neurons keep their bounds",
            name,
        )
    finally:
        runner.close(cancel=interrupted)
        progress_bar.close()
    return _result(net, bounds, state, lower, upper, name + ("(interrupted)" if interrupted else ""))


def _stages(state: _State) -> Iterator[tuple[int, int]]:
    """``(layer, layers in the LP)``: forward pass, then (with output bounds) the sweep.

    Layer ``-1`` stands for the inputs.  Side constraints over the inputs (and extra
    variables) only make the inputs and layer 0 worth tightening in the forward pass too.
    """
    n = len(state.layers)
    first = 1
    if state.side is not None and not np.all(state.side.touches_outputs()):
        yield -1, 0
        first = 0
    for k in range(first, n):
        yield k, k
    if state.with_outputs or state.side is not None:
        for k in range(-1, n):
            yield k, n


def _targets(state: _State, k: int) -> np.ndarray:
    """Neurons of layer ``k`` worth tightening (inputs for ``k = -1``)."""
    if k < 0:
        return np.flatnonzero(state.input_lower < state.input_upper)
    lower, upper = state.lower[k], state.upper[k]
    layer = state.layers[k]
    if isinstance(layer, MaxLayer):  # rows of groups where more than one row can be the max
        if state.all_neurons:
            return np.flatnonzero(lower < upper)
        several = layer.candidates(lower, upper)[1]
        return several[lower[several] < upper[several]]
    if state.all_neurons:
        return np.flatnonzero(lower < upper)
    relu = layer.relu_mask
    return np.flatnonzero((relu & (lower < 0) & (upper > 0)) | (~relu & (lower < upper)))


def _run_stage(state: _State, stage: tuple[int, int], runner: _Runner) -> int:
    """Tighten the targets of one stage; returns their number."""
    k, n_layers = stage
    targets = _targets(state, k)
    if targets.size == 0:
        return 0
    if (
        runner.settings.integer
        and largest_big_m(state.lower[: max(n_layers, 0)], state.upper[: max(n_layers, 0)])
        * SOLVER_FEASIBILITY_TOLERANCE
        > TRUSTED_BIG_M_ERROR
    ):
        logger.info("milp bounds: layer %d kept (big-M too large for the solver's tolerances)", k)
        return int(targets.size)
    lp, columns = build_lp(
        state.layers,
        state.lower,
        state.upper,
        state.input_lower,
        state.input_upper,
        n_layers,
        runner.settings.integer,
        state.side,
    )
    if k < 0:
        lower, upper, bad = _solve_inputs(runner, lp, columns[0][targets])
    else:
        previous = columns[k]
        kept = previous >= 0
        layer = state.layers[k]
        coefficients = rows_dense(layer.weights, targets)[:, kept]
        constants = layer.bias[targets]
        skip = layer.relu_mask[targets] & (not state.all_neurons)
        lower, upper, bad = runner.solve(lp, previous[kept], coefficients, constants, skip)
    crossed = _update(state, k, targets, lower, upper)
    if bad or crossed:
        _infeasible(state, k, lp, proven=crossed > 0)
    return int(targets.size)


def _solve_inputs(runner: _Runner, lp: LinearProgram, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Range of each input column: objectives are unit vectors over all target columns."""
    eye = np.eye(cols.size)
    return runner.solve(lp, cols, eye, np.zeros(cols.size), np.zeros(cols.size, dtype=bool))


def _update(state: _State, k: int, targets: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> int:
    """Intersect (NaN = no new bound); returns how many crossed (then left unchanged)."""
    if k < 0:
        old_lo, old_hi = state.input_lower, state.input_upper
    else:
        old_lo, old_hi = state.lower[k], state.upper[k]
    new_lo = np.fmax(old_lo[targets], lower)
    new_hi = np.fmin(old_hi[targets], upper)
    ok = new_lo <= new_hi  # a minimum above the maximum: the LP has no point
    old_lo[targets[ok]], old_hi[targets[ok]] = new_lo[ok], new_hi[ok]
    return int(np.count_nonzero(~ok))


def _infeasible(state: _State, k: int, lp: LinearProgram, proven: bool) -> None:
    """Raise if output bounds leave no point, else warn and carry on.

    ``proven``: new (sound) bounds crossed the bounds known so far, which with output
    bounds hold only for points meeting them; otherwise a solver's "infeasible" is re-checked.
    """
    where = "the inputs" if k < 0 else f"layer {k}"
    what = "MILP" if state.integer else "LP relaxation"
    assumed = state.with_outputs or state.side is not None
    model = state.side is not None
    if assumed and proven:
        _raise_empty(
            f"the {what} bounds of {where} contradict the "
            + ("output bounds or the model's constraints" if model else "output bounds"),
            model,
        )
    if assumed and _confirm_empty(lp, state.integer):
        _raise_empty(f"the {what} is infeasible, proven while tightening {where}", model)
    logger.warning(
        "the bound-tightening %s for %s looks infeasible%s; the bounds concerned are left unchanged",
        what,
        where,
        " but a re-check did not confirm it" if assumed else " (inconsistent starting bounds or numerical trouble)",
    )


def _confirm_empty(lp: LinearProgram, integer: bool, time_limit: float = 60.0) -> bool:
    """Re-solve ``lp`` with a zero objective and HiGHS' defaults (presolve, tolerances)."""
    import highspy

    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("time_limit", time_limit)
    highs.passModel(highs_model(lp, integer))
    highs.run()
    return highs.getModelStatus() == highspy.HighsModelStatus.kInfeasible


def _result(
    net: NetworkDefinition, bounds: Bounds, state: _State, lower: np.ndarray, upper: np.ndarray, name: str
) -> Bounds:
    implied = (None, None)
    if state.with_outputs or state.side is not None or bounds.implied_input_lower is not None:
        implied = (state.input_lower, state.input_upper)
    methods = bounds.methods + (name,)
    if state.side is not None and "model" not in methods:
        methods += ("model",)
    return Bounds(
        state.lower,
        state.upper,
        lower,
        upper,
        net.content_hash(),
        methods,
        bounds.output_lower,
        bounds.output_upper,
        *implied,
    )


def lp_bounds(
    net: NetworkDefinition,
    lower: np.ndarray,
    upper: np.ndarray,
    start: Bounds | None,
    *,
    output_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    time_limit: float | None = None,
    executor: Executor | int | None = None,
    progress: bool | None = None,
    all_neurons: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    side_constraints: SideConstraints | None = None,
) -> Bounds:
    """LP-based bound tightening over the triangle relaxation (registered as ``"lp"``).

    Args:
        output_bounds: ``(lower, upper)`` arrays the outputs must lie in (``∓inf`` for
            none).  The resulting bounds are then valid only in models that enforce them.
        time_limit: wall-clock seconds; neurons not reached keep their bounds.
        executor: ``None`` (serial), a number of processes, or a ``concurrent.futures``
            executor (e.g. ``dask.distributed.Client.get_executor()``).
        progress: ``None`` shows a tqdm bar if tightening takes more than a second,
            ``True`` shows it at once, ``False`` never.
        all_neurons: also tighten neurons already proven stable, and both sides of each.
        tolerance: relative widening of every solver result.
        side_constraints: linear constraints of the surrounding model over the inputs,
            outputs and other variables (:func:`pyomo_relu.bounds.model.linear_side_constraints`);
            the bounds are then valid only for points that satisfy them (``"model"`` is
            added to :attr:`Bounds.methods`).
    """
    return obbt_bounds(
        net,
        lower,
        upper,
        start,
        integer=False,
        output_bounds=output_bounds,
        time_limit=time_limit,
        executor=executor,
        progress=progress,
        all_neurons=all_neurons,
        tolerance=tolerance,
        side_constraints=side_constraints,
    )


def milp_bounds(
    net: NetworkDefinition,
    lower: np.ndarray,
    upper: np.ndarray,
    start: Bounds | None,
    *,
    output_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    time_limit: float | None = None,
    executor: Executor | int | None = None,
    progress: bool | None = None,
    time_limit_per_neuron: float | None = 1.0,
    all_neurons: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    mip_gap: float = 1e-6,
    side_constraints: SideConstraints | None = None,
) -> Bounds:
    """MILP-based bound tightening with the big-M binaries kept (registered as ``"milp"``).

    Same arguments as :func:`lp_bounds`, plus ``time_limit_per_neuron`` (seconds for each
    of the two solves of a neuron; the proven dual bound is used when it runs out) and
    ``mip_gap`` (relative and absolute gap at which HiGHS stops).
    """
    return obbt_bounds(
        net,
        lower,
        upper,
        start,
        integer=True,
        output_bounds=output_bounds,
        time_limit=time_limit,
        executor=executor,
        progress=progress,
        time_limit_per_neuron=time_limit_per_neuron,
        all_neurons=all_neurons,
        tolerance=tolerance,
        mip_gap=mip_gap,
        side_constraints=side_constraints,
    )
