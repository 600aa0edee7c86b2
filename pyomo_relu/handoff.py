r"""Bulk hand-off of a Pyomo model with network blocks to highspy, and a HiGHS run that keeps a deadline.

Pyomo's persistent HiGHS interface walks every constraint's expression, so handing a
network of a million weights to HiGHS costs seconds of Python per solve.  A built
:class:`~pyomo_relu.block.ReLUNetBlock` already knows its rows as arrays (the layers'
weights, dense or CSR, and the neuron bounds), so :func:`model_arrays` writes them
straight into a :class:`~pyomo_relu.bounds.rows.RowBuilder`:

* per layer, ``affine``: ``target_j - W_j h = b_j`` (``target`` = ``pre[j]`` for unstable
  and smooth neurons, ``post[j]`` or the user's output variable otherwise; the repeated
  rows of a lowered leaky ReLU as ``target_j - target_r = 0``), for dense and max layers;
* per ``bigm`` layer: ``post_at_least_pre``, ``post_at_most_pre_when_active``,
  ``post_zero_when_inactive``; per ``relaxation`` layer: ``post_at_least_pre``,
  ``post_below_chord`` (:mod:`pyomo_relu.formulations.bigm`, ``relaxation``).

Every other active constraint (the user's own, ``input_box``, ``output_box``,
``outputs_link``, the rows of other formulations) and the objective go through
``pyomo.repn.generate_standard_repn``; a component is taken from arrays only when it and
all of its rows are active, so deactivating a row in Pyomo still removes it.  A model that
is not linear (quadratic or nonlinear rows or objective, active disjunctions or SOS
constraints) raises :class:`NotBulkableError`, and :func:`pyomo_relu.solve` then uses Pyomo's
interface as before.

:func:`run_highs` runs a ``highspy.Highs`` until a deadline: HiGHS's own ``time_limit``
is what is left, and a watchdog cancels the run (HiGHS's user interrupt) if HiGHS has not
returned shortly after the deadline.

:func:`pyomo_relu.root_lp.first_lp` gives HiGHS the LP relaxation of the MIP: dense big-M LPs of millions of
nonzeros took HiGHS's dual simplex minutes from its own (slack) start, so the big-M layers
go as their triangle rows (``model_arrays(relaxed=True)``, the same LP optimum with a row and
a column fewer per unstable neuron) and HiGHS starts from the basis of
:mod:`pyomo_relu.root_basis` (a vertex found by forward/backward passes through the layers).
``solve`` does not pass that basis to the MIP: HiGHS's MIP solver solves its root LP on its
own presolved model (not measured whether a user basis would survive there).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyomo_relu.bounds.rows import HIGHS_TIME_LIMIT_OPTIONS, LinearProgram, RowBuilder
from pyomo_relu.errors import NotBulkableError
from pyomo_relu.root_basis import LayerColumns

logger = logging.getLogger(__name__)

__all__ = [
    "CANCEL_GRACE",
    "HIGHS_TIME_LIMIT_OPTIONS",
    "ModelArrays",
    "NotBulkableError",
    "model_arrays",
    "run_highs",
    "solve_bulk",
]

#: Seconds past the deadline after which a HiGHS run that ignored its time limit is cancelled.
CANCEL_GRACE = 0.2

#: Constraint components of a layer sub-block written from arrays, per formulation name.
BULK_COMPONENTS = {
    "bigm": ("post_at_least_pre", "post_at_most_pre_when_active", "post_zero_when_inactive"),
    "relaxation": ("post_at_least_pre", "post_below_chord"),
}


@dataclass
class ModelArrays:
    """A linear model as arrays: ``lp`` (columns, rows, integrality), the objective and the columns' variables."""

    lp: LinearProgram
    cost: np.ndarray
    offset: float
    maximize: bool
    variables: list[Any]
    bulk_rows: int
    repn_rows: int
    #: per network block, its layers in ``lp`` (``None``: not described; :mod:`pyomo_relu.root_basis`)
    chains: list[list[LayerColumns] | None] = field(default_factory=list)


class _Columns:
    """Pyomo variables to columns of one RowBuilder (each variable once)."""

    def __init__(self, builder: RowBuilder) -> None:
        self.builder = builder
        self.index: dict[int, int] = {}
        self.variables: list[Any] = []
        self.projected: set[int] = set()  # binaries left out of a relaxed hand-off (model_arrays)

    def of(self, variables: list[Any]) -> np.ndarray:
        """The columns of ``variables`` (``-1`` for ``None``), adding those not seen yet."""
        unseen = {id(v): v for v in variables if v is not None and id(v) not in self.index}
        new = list(unseen.values())
        if new:
            bounds = np.array([_var_bounds(v) for v in new], dtype=float).reshape(-1, 2)
            integer = np.array([v.is_integer() for v in new], dtype=bool)
            cols = self.builder.add_cols(bounds[:, 0], bounds[:, 1], integer=integer)
            self.index.update(zip(map(id, new), cols.tolist()))
            self.variables.extend(new)
        return np.array([-1 if v is None else self.index[id(v)] for v in variables], dtype=np.int64)


def _var_bounds(var: Any) -> tuple[float, float]:
    if var.fixed:
        return float(var.value), float(var.value)
    lb, ub = var.lb, var.ub
    return (-np.inf if lb is None else float(lb)), (np.inf if ub is None else float(ub))


def model_arrays(model: Any, relaxed: bool = False) -> ModelArrays:
    """``model`` (one active objective, linear) as arrays; network blocks in bulk (see the module docstring).

    ``relaxed``: for the LP relaxation only, ``bigm`` layers are written as the triangle
    rows of ``relaxation`` (``h >= z``, ``h <= u (z - l) / (u - l)``; no binaries): the
    projection of big-M's LP relaxation onto ``(z, h)``, so the same LP optimum with a
    column and a row fewer per unstable neuron.  When the user's own rows or the
    objective use a binary, the big-M rows are written instead.
    """
    import pyomo.environ as pe

    _refuse_untransformed(model)
    builder = RowBuilder()
    columns = _Columns(builder)
    covered: set[int] = set()
    chains = []
    for block in _built_blocks(model):
        written, chain = _add_block(builder, columns, block, relaxed)
        covered |= written
        chains.append(chain)
    bulk_rows = builder.n_rows
    for con in model.component_data_objects(pe.Constraint, active=True, descend_into=True):
        if id(con.parent_component()) not in covered:
            _add_repn_row(builder, columns, con)
    objectives = list(model.component_data_objects(pe.Objective, active=True, descend_into=True))
    cost, offset = _objective(builder, columns, objectives[0])
    if relaxed and columns.projected & columns.index.keys():
        logger.info("a binary of a big-M layer is used outside the network: its LP relaxation keeps the big-M rows")
        return model_arrays(model, relaxed=False)
    lp = builder.finish()
    full_cost = np.zeros(lp.n_cols)
    full_cost[: cost.size] = cost
    return ModelArrays(
        lp,
        full_cost,
        offset,
        objectives[0].sense == pe.maximize,
        columns.variables,
        bulk_rows,
        builder.n_rows - bulk_rows,
        chains,
    )


def _refuse_untransformed(model: Any) -> None:
    from pyomo.core import SOSConstraint
    from pyomo.gdp import Disjunction

    for ctype in (Disjunction, SOSConstraint):
        for _ in model.component_data_objects(ctype, active=True, descend_into=True):
            raise NotBulkableError(f"the model has an active {ctype.__name__}")


def _built_blocks(model: Any) -> list[Any]:
    import pyomo.environ as pe

    from pyomo_relu.block import ReLUNetBlockData

    return [
        b
        for b in model.component_data_objects(pe.Block, active=True, descend_into=True)
        if isinstance(b, ReLUNetBlockData) and b.is_built
    ]


def _active_component(block: Any, name: str) -> Any:
    """``block.<name>`` if it exists and it and all its rows are active, else ``None``."""
    component = getattr(block, name, None)
    if component is None or not component.active:
        return None
    return component if all(data.active for data in component.values()) else None


def _add_block(
    builder: RowBuilder, columns: _Columns, block: Any, relaxed: bool = False
) -> tuple[set[int], list[LayerColumns] | None]:
    """The rows of one network block that come from arrays.

    Returns the ids of the components written and the block's layers as
    :class:`~pyomo_relu.root_basis.LayerColumns` (``None`` when a layer is of a kind the
    starting basis does not describe).
    """
    from pyomo_relu.network import MaxLayer

    covered: set[int] = set()
    chain: list[LayerColumns] | None = []
    for _, ctx in block._layer_contexts:
        sub = ctx.block
        if not sub.active:  # a deactivated layer block: none of its rows (Pyomo skips them too)
            chain = None
            continue
        affine = _active_component(sub, "affine")
        recorded = None
        if affine is not None:
            target = _affine_targets(ctx, set(sub.pre.keys()))
            if isinstance(ctx.layer, MaxLayer):
                _add_affine(builder, columns, ctx, list(affine.keys()), target, identical=None)
            else:
                from pyomo_relu.block import _first_identical_rows

                rows = [int(j) for j in affine.keys()]
                recorded = _add_affine(
                    builder, columns, ctx, rows, target, _first_identical_rows(ctx.layer, np.array(rows))
                )
            covered.add(id(affine))
        names = BULK_COMPONENTS.get(ctx.formulation, ())
        parts = [_active_component(sub, name) for name in names]
        activation = None
        if names and ctx.unstable.size and all(part is not None for part in parts) and hasattr(sub, "pre"):
            activation = _add_activation(builder, columns, ctx, relaxed)
            covered.update(id(part) for part in parts)
        if chain is not None:
            layer = _layer_columns(columns, ctx, recorded, activation)
            chain = None if layer is None else [*chain, layer]
    return covered, chain


def _layer_columns(
    columns: _Columns, ctx: Any, affine: tuple[np.ndarray, np.ndarray, np.ndarray] | None, activation: Any
) -> LayerColumns | None:
    """Where a dense ReLU/linear layer's columns and rows are (``None`` for other layers)."""
    layer = ctx.layer
    kinds_ok = hasattr(layer, "relu_mask") and bool(np.all(layer.relu_mask | (layer.kinds == "linear")))
    if affine is None or not kinds_ok or (ctx.unstable.size and activation is None):
        return None
    n = layer.n_outputs
    affine_rows, targets = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    affine_rows[affine[0]], targets[affine[0]] = affine[1], affine[2]
    h = targets.copy()
    sigma, rows = (np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.int64)) if activation is None else activation
    if ctx.unstable.size:
        h[ctx.unstable] = columns.of([ctx.post[int(j)] for j in ctx.unstable])
    return LayerColumns(
        weights=layer.weights,
        bias=np.asarray(layer.bias, dtype=float),
        relu=np.asarray(layer.relu_mask, dtype=bool),
        lower=np.asarray(ctx.lower, dtype=float),
        upper=np.asarray(ctx.upper, dtype=float),
        input_lower=np.asarray(ctx.input_lower, dtype=float),
        input_upper=np.asarray(ctx.input_upper, dtype=float),
        inputs=columns.of(list(ctx.inputs)),
        targets=targets,
        affine_rows=affine_rows,
        h=h,
        unstable=np.asarray(ctx.unstable, dtype=np.int64),
        sigma=sigma,
        activation_rows=rows,
        formulation=ctx.formulation,
    )


def _affine_targets(ctx: Any, pre_keys: set[int]) -> Any:
    """The variable each affine row defines (see the module docstring)."""
    from pyomo_relu.network import MaxLayer

    pre, post = ctx.block.pre, ctx.post
    if isinstance(ctx.layer, MaxLayer):
        groups = ctx.layer.groups
        return lambda i: pre[i] if i in pre_keys else post[int(groups[i])]
    return lambda j: pre[j] if j in pre_keys else post[j]


def _add_affine(
    builder: RowBuilder, columns: _Columns, ctx: Any, rows: list[int], target: Any, identical: dict[int, int] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``target_j - W_j h = b_j`` for ``rows``; a row identical to an earlier one: ``target_j - target_r = 0``.

    Returns the neurons, their rows and their target columns (``None`` when rows repeat).
    """
    inputs = columns.of(list(ctx.inputs))
    kept = np.flatnonzero(inputs >= 0)
    rows_arr = np.array(rows, dtype=np.int64)
    targets = columns.of([target(j) for j in rows])
    if identical is not None:
        first = np.array([identical[j] for j in rows], dtype=np.int64)
        repeat = first != rows_arr
    else:
        first, repeat = rows_arr, np.zeros(rows_arr.size, dtype=bool)
    own = rows_arr[~repeat]
    start = builder.n_rows
    if own.size:
        weights = ctx.layer.weights[own][:, kept]
        weights = weights.tocsr() if hasattr(weights, "tocsr") else np.asarray(weights)
        bias = np.asarray(ctx.layer.bias, dtype=float)[own]
        builder.add_rows(bias, bias, (inputs[kept], -weights), [(targets[~repeat], 1.0)])
    if repeat.any():
        position = {j: t for j, t in zip(rows, targets.tolist())}
        others = np.array([position[int(r)] for r in first[repeat]], dtype=np.int64)
        zeros = np.zeros(int(repeat.sum()))
        builder.add_rows(zeros, zeros, terms=[(targets[repeat], 1.0), (others, -1.0)])
        return None
    return own, start + np.arange(own.size), targets


def _add_activation(
    builder: RowBuilder, columns: _Columns, ctx: Any, relaxed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of :mod:`~pyomo_relu.formulations.bigm` or ``relaxation`` (also for bigm when
    ``relaxed``, see :func:`model_arrays`) on the unstable neurons.

    Returns the binaries' columns (none for ``relaxation``) and the rows, one line per part.
    """
    neurons = [int(j) for j in ctx.unstable]
    lower = np.asarray(ctx.lower, dtype=float)[ctx.unstable]
    upper = np.asarray(ctx.upper, dtype=float)[ctx.unstable]
    pre = columns.of([ctx.block.pre[j] for j in neurons])
    post = columns.of([ctx.post[j] for j in neurons])
    n, start = len(neurons), builder.n_rows
    zeros = np.zeros(n)
    builder.add_rows(zeros, np.full(n, np.inf), terms=[(post, 1.0), (pre, -1.0)])
    sigma = np.zeros(0, dtype=np.int64)
    if ctx.formulation == "bigm" and relaxed:
        columns.projected.update(id(ctx.block.is_active[j]) for j in neurons)
    if ctx.formulation == "bigm" and not relaxed:
        sigma = columns.of([ctx.block.is_active[j] for j in neurons])
        builder.add_rows(np.full(n, -np.inf), -lower, terms=[(post, 1.0), (pre, -1.0), (sigma, -lower)])
        builder.add_rows(np.full(n, -np.inf), zeros, terms=[(post, 1.0), (sigma, -upper)])
    else:
        slope = upper / (upper - lower)
        builder.add_rows(np.full(n, -np.inf), -slope * lower, terms=[(post, 1.0), (pre, -slope)])
    parts = (builder.n_rows - start) // max(n, 1)
    return sigma, start + np.arange(parts * n).reshape(parts, n)


def _linear_repn(expr: Any, what: str) -> Any:
    from pyomo.repn import generate_standard_repn

    repn = generate_standard_repn(expr, compute_values=True, quadratic=False)
    if not repn.is_linear():
        raise NotBulkableError(f"{what} is not linear")
    return repn


def _add_repn_row(builder: RowBuilder, columns: _Columns, con: Any) -> None:
    repn = _linear_repn(con.body, f"constraint {con.name}")
    constant = float(repn.constant)
    lower = -np.inf if con.lower is None else float(con.lb) - constant
    upper = np.inf if con.upper is None else float(con.ub) - constant
    cols = columns.of(list(repn.linear_vars))
    coefs = np.array([float(c) for c in repn.linear_coefs], dtype=float)
    builder.add_sparse_rows(np.array([lower]), np.array([upper]), np.zeros(cols.size, dtype=np.int64), cols, coefs)


def _objective(builder: RowBuilder, columns: _Columns, objective: Any) -> tuple[np.ndarray, float]:
    repn = _linear_repn(objective.expr, f"objective {objective.name}")
    cols = columns.of(list(repn.linear_vars))
    cost = np.zeros(builder.n_cols)
    np.add.at(cost, cols, np.array([float(c) for c in repn.linear_coefs], dtype=float))
    return cost, float(repn.constant)


# ---------------------------------------------------------------------- HiGHS
def highs_from_arrays(arrays: ModelArrays, options: dict[str, Any], tee: bool, integer: bool = True) -> Any:
    """A ``highspy.Highs`` holding ``arrays`` (sense, offset and, with ``integer``, integrality) and ``options``."""
    import highspy

    from pyomo_relu.bounds.rows import highs_model
    from pyomo_relu.errors import SolverError

    lp = highs_model(arrays.lp, integer=integer)
    lp.col_cost_ = arrays.cost
    lp.offset_ = arrays.offset
    lp.sense_ = highspy.ObjSense.kMaximize if arrays.maximize else highspy.ObjSense.kMinimize
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", bool(tee))
    for key, value in options.items():
        if highs.setOptionValue(key, value) != highspy.HighsStatus.kOk:
            raise SolverError(f"HiGHS refused the option {key}={value!r}; see the HiGHS options list")
    if highs.passModel(lp) == highspy.HighsStatus.kError:
        raise SolverError("HiGHS refused the model (passModel failed)")
    return highs


def run_highs(highs: Any, deadline: float | None) -> None:
    """``highs.run()`` with ``time_limit`` = what is left before ``deadline`` (``perf_counter`` seconds).

    A watchdog cancels the run :data:`CANCEL_GRACE` s after the deadline through HiGHS's
    user interrupt (checked by simplex, IPM and MIP), in case HiGHS overruns its own limit.
    """
    if deadline is None:
        highs.run()
        return
    highs.setOptionValue("time_limit", max(1e-3, deadline - time.perf_counter()))
    highs.HandleUserInterrupt = True
    thread = highs.startSolve()
    finished, _ = highs.wait(max(0.0, deadline + CANCEL_GRACE - time.perf_counter()))
    if not finished:
        logger.info("HiGHS ran past its time limit; cancelling")
        highs.cancelSolve()
        thread.join()
    else:
        thread.join()


def solve_bulk(
    model: Any,
    deadline: float | None,
    mip_gap: float | None,
    tee: bool,
    options: dict[str, Any],
    required: bool = False,
) -> Any:
    """:func:`pyomo_relu.solve` with HiGHS through :func:`model_arrays`; ``None`` to fall back to Pyomo.

    Falls back (returns ``None``) when the model has no built network block or is not
    linear, unless ``required`` (then :class:`~pyomo_relu.errors.SolverError`).
    """
    from pyomo_relu.errors import SolverError

    if not required and not _built_blocks(model):
        return None
    began = time.perf_counter()
    try:
        arrays = model_arrays(model)
    except NotBulkableError as reason:
        if required:
            raise SolverError(f"solve(handoff='bulk'): {reason}; use handoff='pyomo' or 'auto'") from None
        logger.info("bulk hand-off not possible (%s); using Pyomo's HiGHS interface", reason)
        return None
    options = dict(options)
    if mip_gap is not None:
        options.setdefault("mip_rel_gap", float(mip_gap))
    highs = highs_from_arrays(arrays, options, tee)
    _pass_start(highs, arrays, tee)
    handed = time.perf_counter()
    logger.info(
        "bulk hand-off: %d columns, %d rows (%d from arrays), %d nonzeros in %.3f s",
        arrays.lp.n_cols,
        arrays.lp.n_rows,
        arrays.bulk_rows,
        arrays.lp.value.size,
        time.perf_counter() - began,
    )
    run_highs(highs, deadline)
    status = _status(highs)
    if status == "unbounded_or_infeasible":  # presolve cannot tell them apart; without presolve HiGHS can
        highs.setOptionValue("presolve", "off")
        run_highs(highs, deadline)
        status = _status(highs)
        status = "error" if status == "unbounded_or_infeasible" else status
    ran = time.perf_counter()
    result = _result(highs, arrays, status)
    result.raw["timing"] = {
        "hand-off": handed - began,
        "HiGHS": ran - handed,
        "read-back": time.perf_counter() - ran,
    }
    return result


def _pass_start(highs: Any, arrays: ModelArrays, tee: bool) -> None:
    """The variables' current values as a MIP start (none when an integer variable has no value)."""
    values = np.array([np.nan if v.value is None else float(v.value) for v in arrays.variables], dtype=float)
    known = np.flatnonzero(~np.isnan(values))
    if known.size == 0 or np.isnan(values[arrays.lp.integer]).any():
        return
    highs.setOptionValue("output_flag", False)  # HiGHS prints rejected starts
    try:
        highs.setSolution(int(known.size), known.astype(np.int32), values[known])
    finally:
        highs.setOptionValue("output_flag", bool(tee))


def _status(highs: Any) -> str:
    import highspy

    S = highspy.HighsModelStatus
    return {
        S.kOptimal: "optimal",
        S.kTimeLimit: "time_limit",
        S.kIterationLimit: "time_limit",
        S.kInterrupt: "time_limit",
        S.kObjectiveBound: "time_limit",
        S.kObjectiveTarget: "time_limit",
        S.kSolutionLimit: "time_limit",
        S.kInfeasible: "infeasible",
        S.kUnbounded: "unbounded",
        S.kUnboundedOrInfeasible: "unbounded_or_infeasible",
    }.get(highs.getModelStatus(), "error")


def _feasible_start(arrays: ModelArrays, tol: float = 1e-6) -> np.ndarray | None:
    """The variables' current values when complete and feasible for ``arrays`` (rows, bounds, integrality)."""
    values = np.array([np.nan if v.value is None else float(v.value) for v in arrays.variables], dtype=float)
    lp = arrays.lp
    if values.size != lp.n_cols or np.isnan(values).any():
        return None
    rows = np.repeat(np.arange(lp.n_rows), np.diff(lp.start))
    activity = np.bincount(rows, weights=lp.value * values[lp.index], minlength=lp.n_rows)
    slack = tol * (1.0 + np.abs(activity))
    ok = np.all(activity >= lp.row_lower - slack) and np.all(activity <= lp.row_upper + slack)
    ok = ok and np.all(values >= lp.col_lower - tol) and np.all(values <= lp.col_upper + tol)
    integral = values[lp.integer]
    return values if ok and np.all(np.abs(integral - np.round(integral)) <= tol) else None


def _result(highs: Any, arrays: ModelArrays, status: str) -> Any:
    """The :class:`~pyomo_relu.solvers.SolveResult`; the incumbent, if any, loaded into the variables."""
    from pyomo_relu.solvers import SolveResult, _finite_or_none

    info = highs.getInfo()
    has_solution = info.primal_solution_status == 2 and status not in ("infeasible", "unbounded")
    objective = _finite_or_none(info.objective_function_value) if has_solution else None
    start = None if has_solution or status != "time_limit" else _feasible_start(arrays)
    if start is not None:  # stopped before HiGHS read the start (e.g. in presolve): it is the incumbent
        objective = float(arrays.cost @ start + arrays.offset)
    if arrays.lp.integer.size:
        bound = _finite_or_none(info.mip_dual_bound)
    else:
        bound = objective if status == "optimal" else None
    if has_solution:
        values = np.asarray(highs.getSolution().col_value, dtype=float)
        for var, value in zip(arrays.variables, values.tolist()):
            if not var.fixed:
                var.set_value(value, skip_validation=True)
    message = highs.modelStatusToString(highs.getModelStatus())
    if start is not None:
        message += "; incumbent: the MIP start (checked feasible), HiGHS stopped before reading it"
    return SolveResult(
        status,
        objective,
        bound,
        0.0,
        "highs",
        has_solution or start is not None,
        message,
        {
            "handoff": "bulk",
            "columns": arrays.lp.n_cols,
            "rows": arrays.lp.n_rows,
            "bulk_rows": arrays.bulk_rows,
            "nonzeros": int(arrays.lp.value.size),
        },
    )
