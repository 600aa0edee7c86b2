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

Soundness of every solve is :mod:`pyomo_relu.bounds.lp_solve`'s concern (safe dual bounds,
widened results) and the spreading of neurons over an executor is
:mod:`pyomo_relu.bounds.lp_schedule`'s.

Model constraints (``tighten(mode="model")``)
--------------------------------------------
``side_constraints`` (a :class:`SideConstraints`, built from the linear constraints of
the surrounding Pyomo model by :func:`pyomo_relu.model_bounds.linear_side_constraints`
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
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.interval import interval_bounds
from pyomo_relu.bounds.lp_schedule import ChunkRunner, NeuronProgress
from pyomo_relu.bounds.lp_solve import (
    DEFAULT_TOLERANCE,
    SOLVER_FEASIBILITY_TOLERANCE,
    SolveSettings,
    confirm_empty,
    expired,
)
from pyomo_relu.bounds.rows import TRUSTED_BIG_M_ERROR, LinearProgram, SideConstraints, build_lp, largest_big_m
from pyomo_relu.errors import EmptyBoxError
from pyomo_relu.network import Layer, MaxLayer, NetworkDefinition
from pyomo_relu.sparse import rows_dense

logger = logging.getLogger(__name__)


# -------------------------------------------------------------------- driver
def apply_output_bounds(
    net: NetworkDefinition, bounds: Bounds, output_lower: np.ndarray, output_upper: np.ndarray
) -> Bounds:
    """``bounds`` with the final layer intersected with the output box, recording that box.

    A final ReLU layer ``y = max(0, z)`` turns ``y <= b`` into ``z <= b`` and ``y >= a > 0``
    into ``z >= a``.  Raises :class:`PyomoReluError` when no output can satisfy them.
    """
    out_lo, out_hi = np.asarray(output_lower, float), np.asarray(output_upper, float)
    if bounds.output_lower is not None and bounds.output_upper is not None:
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
class _WorkingBounds:
    """The working copy of the bounds (layers and inputs) that the passes tighten in place, and what to tighten."""

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
    work = _working_bounds(net, bounds, lower, upper, output_bounds is not None, all_neurons, integer, side_constraints)
    settings = SolveSettings(integer, tolerance, deadline, time_limit_per_neuron if integer else None, mip_gap)
    name = "milp" if integer else "lp"
    interrupted = _run_stages(work, settings, executor, progress, name)
    return _result(net, bounds, work, lower, upper, name + ("(interrupted)" if interrupted else ""))


def _working_bounds(
    net: NetworkDefinition,
    bounds: Bounds,
    lower: np.ndarray,
    upper: np.ndarray,
    with_outputs: bool,
    all_neurons: bool,
    integer: bool,
    side: SideConstraints | None,
) -> _WorkingBounds:
    """A copy of ``bounds`` to tighten in place, its input box cut to the implied one if known."""
    work = _WorkingBounds(
        net.canonical_layers,
        [a.copy() for a in bounds.lower],
        [a.copy() for a in bounds.upper],
        np.array(lower, float),
        np.array(upper, float),
        with_outputs,
        all_neurons,
        integer,
        side,
    )
    if bounds.implied_input_lower is not None and bounds.implied_input_upper is not None:
        work.input_lower = np.maximum(work.input_lower, bounds.implied_input_lower)
        work.input_upper = np.minimum(work.input_upper, bounds.implied_input_upper)
    return work


def _run_stages(
    work: _WorkingBounds, settings: SolveSettings, executor: Executor | int | None, progress: bool | None, name: str
) -> bool:
    """Run every stage until done, the deadline or Ctrl-C; returns whether it was interrupted."""
    stages = list(_stages(work))
    planned = [_targets(work, k).size for k, _ in stages]  # neurons only become stable
    progress_bar = NeuronProgress(progress, sum(planned), f"{name} bounds")
    runner = ChunkRunner(executor, settings, progress_bar)
    interrupted = False
    try:
        for stage, n_planned in zip(stages, planned):
            if expired(settings.deadline):
                logger.info("%s bounds: time limit reached; later neurons keep their bounds", name)
                break
            progress_bar.update(n_planned - _run_stage(work, stage, runner))
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
    return interrupted


def _stages(work: _WorkingBounds) -> Iterator[tuple[int, int]]:
    """``(layer, layers in the LP)``: forward pass, then (with output bounds) the sweep.

    Layer ``-1`` stands for the inputs.  Side constraints over the inputs (and extra
    variables) only make the inputs and layer 0 worth tightening in the forward pass too.
    """
    n = len(work.layers)
    first = 1
    if work.side is not None and not np.all(work.side.touches_outputs()):
        yield -1, 0
        first = 0
    for k in range(first, n):
        yield k, k
    if work.with_outputs or work.side is not None:
        for k in range(-1, n):
            yield k, n


def _targets(work: _WorkingBounds, k: int) -> np.ndarray:
    """Neurons of layer ``k`` worth tightening (inputs for ``k = -1``)."""
    if k < 0:
        return np.flatnonzero(work.input_lower < work.input_upper)
    lower, upper = work.lower[k], work.upper[k]
    layer = work.layers[k]
    if isinstance(layer, MaxLayer):  # rows of groups where more than one row can be the max
        if work.all_neurons:
            return np.flatnonzero(lower < upper)
        several = layer.candidates(lower, upper)[1]
        return several[lower[several] < upper[several]]
    if work.all_neurons:
        return np.flatnonzero(lower < upper)
    relu = layer.relu_mask
    return np.flatnonzero((relu & (lower < 0) & (upper > 0)) | (~relu & (lower < upper)))


def _run_stage(work: _WorkingBounds, stage: tuple[int, int], runner: ChunkRunner) -> int:
    """Tighten the targets of one stage; returns their number."""
    k, n_layers = stage
    targets = _targets(work, k)
    if targets.size == 0:
        return 0
    if (
        runner.settings.integer
        and largest_big_m(work.lower[: max(n_layers, 0)], work.upper[: max(n_layers, 0)]) * SOLVER_FEASIBILITY_TOLERANCE
        > TRUSTED_BIG_M_ERROR
    ):
        logger.info("milp bounds: layer %d kept (big-M too large for the solver's tolerances)", k)
        return int(targets.size)
    lp, columns = build_lp(
        work.layers,
        work.lower,
        work.upper,
        work.input_lower,
        work.input_upper,
        n_layers,
        runner.settings.integer,
        work.side,
    )
    if k < 0:
        lower, upper, bad = _solve_inputs(runner, lp, columns[0][targets])
    else:
        previous = columns[k]
        kept = previous >= 0
        layer = work.layers[k]
        coefficients = rows_dense(layer.weights, targets)[:, kept]
        constants = layer.bias[targets]
        skip = layer.relu_mask[targets] & (not work.all_neurons)
        lower, upper, bad = runner.solve(lp, previous[kept], coefficients, constants, skip)
    crossed = _update(work, k, targets, lower, upper)
    if bad or crossed:
        _infeasible(work, k, lp, proven=crossed > 0)
    return int(targets.size)


def _solve_inputs(runner: ChunkRunner, lp: LinearProgram, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Range of each input column: objectives are unit vectors over all target columns."""
    eye = np.eye(cols.size)
    return runner.solve(lp, cols, eye, np.zeros(cols.size), np.zeros(cols.size, dtype=bool))


def _update(work: _WorkingBounds, k: int, targets: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> int:
    """Intersect (NaN = no new bound); returns how many crossed (then left unchanged)."""
    if k < 0:
        old_lo, old_hi = work.input_lower, work.input_upper
    else:
        old_lo, old_hi = work.lower[k], work.upper[k]
    new_lo = np.fmax(old_lo[targets], lower)
    new_hi = np.fmin(old_hi[targets], upper)
    ok = new_lo <= new_hi  # a minimum above the maximum: the LP has no point
    old_lo[targets[ok]], old_hi[targets[ok]] = new_lo[ok], new_hi[ok]
    return int(np.count_nonzero(~ok))


def _infeasible(work: _WorkingBounds, k: int, lp: LinearProgram, proven: bool) -> None:
    """Raise if output bounds leave no point, else warn and carry on.

    ``proven``: new (sound) bounds crossed the bounds known so far, which with output
    bounds hold only for points meeting them; otherwise a solver's "infeasible" is re-checked.
    """
    where = "the inputs" if k < 0 else f"layer {k}"
    what = "MILP" if work.integer else "LP relaxation"
    assumed = work.with_outputs or work.side is not None
    model = work.side is not None
    if assumed and proven:
        _raise_empty(
            f"the {what} bounds of {where} contradict the "
            + ("output bounds or the model's constraints" if model else "output bounds"),
            model,
        )
    if assumed and confirm_empty(lp, work.integer):
        _raise_empty(f"the {what} is infeasible, proven while tightening {where}", model)
    logger.warning(
        "the bound-tightening %s for %s looks infeasible%s; the bounds concerned are left unchanged",
        what,
        where,
        " but a re-check did not confirm it" if assumed else " (inconsistent starting bounds or numerical trouble)",
    )


def _result(
    net: NetworkDefinition, bounds: Bounds, work: _WorkingBounds, lower: np.ndarray, upper: np.ndarray, name: str
) -> Bounds:
    implied: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if work.with_outputs or work.side is not None or bounds.implied_input_lower is not None:
        implied = (work.input_lower, work.input_upper)
    methods = bounds.methods + (name,)
    if work.side is not None and "model" not in methods:
        methods += ("model",)
    return Bounds(
        work.lower,
        work.upper,
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
            outputs and other variables (:func:`pyomo_relu.model_bounds.linear_side_constraints`);
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
