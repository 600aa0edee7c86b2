"""The working copy of a model for ``solve(strategy="split")`` (:mod:`pyomo_relu.split`).

What the search reads of the user's Pyomo model, once: its network blocks, the branching
box of their inputs, the objective, the variables outside the blocks' layers and the
model's own constraints (:class:`WorkingCopy`); one working copy per thread or worker
(:func:`working_copy`); and the best solution loaded back into the user's model
(:func:`load_solution`).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

import numpy as np
import pyomo.environ as pe

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.errors import PyomoReluError, SolverError
from pyomo_relu.split_relaxation import BoxRelaxation

#: Working copies by key: (owner thread, owner process, :class:`WorkingCopy`); workers forked
#: after a copy was stored inherit it.
MODELS: dict[str, tuple[int, int, WorkingCopy]] = {}
#: Copies cloned by threads of executors that are not forked pools (Dask, threads).
COPIES = threading.local()


def outside_constraints(work: Any, blocks: list[Any]) -> list[Any]:
    """The model's active constraints that are not the networks' own (balances, specs, the cutoff)."""
    inside = {id(block) for block in blocks}
    kept = []
    for con in work.component_data_objects(pe.Constraint, active=True, descend_into=True):
        parent = con.parent_block()
        while parent is not None and id(parent) not in inside:
            parent = parent.parent_block()
        if parent is None:
            kept.append(con)
    return kept


def bound_value(bound: Any, default: float) -> float:
    return default if bound is None else float(bound)


@dataclasses.dataclass
class WorkingCopy:
    """A working copy of the model and what every box needs of it, found once.

    The network blocks and the bounds they were built with, the variables outside their
    layers with their own bounds (restored at every box; they stay the same objects when
    the blocks are rebuilt), and the model's own constraints."""

    model: Any
    blocks: list[Any]
    built: list[Bounds]  # each block's bounds as built (valid on its whole box)
    kept: list[tuple[Any, Any, Any]]
    outside: list[Any]
    relaxation: BoxRelaxation | None  # the sub-box LP's fixed part (None: no LP)

    @classmethod
    def of(cls, model: Any) -> WorkingCopy:
        blocks = network_blocks(model)
        kept, outside = kept_vars(model), outside_constraints(model, blocks)
        relaxation = BoxRelaxation.of(kept, blocks, outside, *model_objective(model))
        return cls(
            model, blocks, [b.neuron_bounds for b in blocks], [(v, v.lb, v.ub) for v in kept], outside, relaxation
        )


def working_copy(key: str, shipped: Any) -> WorkingCopy:
    """The working copy for this thread: the search's own in its thread or in a forked worker
    (which inherited a private copy), else a clone of the model the executor delivered (Dask
    serialises task arguments itself; threads of one process would share the object), made
    once per thread."""
    entry = MODELS.get(key)
    if entry is not None and (entry[0] == threading.get_ident() or entry[1] != os.getpid()):
        return entry[2]
    copies = getattr(COPIES, "models", {})
    if key not in copies:
        if shipped is None:
            raise PyomoReluError("internal error: a split worker has no copy of the model")
        copies = {key: WorkingCopy.of(shipped.clone())}  # one model per thread at a time
        COPIES.models = copies
    return copies[key]


def network_blocks(model: Any) -> list[Any]:
    from pyomo_relu.block import ReLUNetBlockData

    blocks = [
        b
        for b in model.component_data_objects(pe.Block, descend_into=True, active=True)
        if isinstance(b, ReLUNetBlockData)
    ]
    built = [b for b in blocks if b.is_built]
    if not built:
        raise PyomoReluError(
            "solve(strategy='split') branches on the inputs of ReLUNetBlocks, and this model "
            "has no built one; use strategy='milp'"
        )
    return built


def branching_box(work: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The unfixed input variables of all blocks (once each, by name) and their box."""
    box: dict[str, tuple[float, float]] = {}
    for block in network_blocks(work):
        bounds = block.neuron_bounds
        for i, var in enumerate(block.input_vars):
            if var.fixed:
                continue
            lo = max(bound_value(var.lb, -np.inf), float(bounds.input_lower[i]))
            hi = min(bound_value(var.ub, np.inf), float(bounds.input_upper[i]))
            old = box.get(var.name, (-np.inf, np.inf))
            box[var.name] = (max(lo, old[0]), min(hi, old[1]))
    names = list(box)
    lower = np.array([box[n][0] for n in names], dtype=float)
    upper = np.array([box[n][1] for n in names], dtype=float)
    if np.any(lower > upper):
        raise PyomoReluError(f"input {names[int(np.argmax(lower > upper))]} has an empty box (lower > upper)")
    return names, lower, upper


def model_objective(model: Any) -> tuple[Any, float]:
    objectives = list(model.component_data_objects(pe.Objective, active=True, descend_into=True))
    if len(objectives) != 1:
        raise SolverError(f"solve() needs exactly one active objective, found {len(objectives)}")
    return objectives[0], (1.0 if objectives[0].sense == pe.minimize else -1.0)


def require_linear(model: Any) -> None:
    """Refuse models that are not MILPs, naming the first nonlinear component."""
    objective, _ = model_objective(model)
    degree = objective.expr.polynomial_degree()
    if degree is None or degree > 1:
        raise SolverError(
            f"solve(strategy='split') needs a linear model: the objective {objective.name} is "
            "nonlinear; use strategy='milp' with a solver that takes it (e.g. scip)"
        )
    for con in model.component_data_objects(pe.Constraint, active=True, descend_into=True):
        degree = con.body.polynomial_degree()
        if degree is None or degree > 1:
            raise SolverError(
                f"solve(strategy='split') needs a linear model: constraint {con.name} is "
                "nonlinear; use strategy='milp' with a solver that takes it (e.g. scip), or a "
                "linear formulation of the network (bigm, gdp.*, partition, ...)"
            )


def kept_vars(model: Any) -> list[Any]:
    """Variables outside the blocks' rebuilt layers, in model order (the same in every copy)."""
    layers = {id(block.component("layer")) for block in network_blocks(model)}
    kept = []
    for var in model.component_data_objects(pe.Var, descend_into=True):
        parent = var.parent_block()
        inside = False
        while parent is not None:
            if id(parent) in layers or id(parent.parent_component()) in layers:
                inside = True
                break
            parent = parent.parent_block()
        if not inside:
            kept.append(var)
    return kept


def load_solution(model: Any, blocks: list[Any], values: dict[str, float | None]) -> None:
    """Set the user's variables to the best solution; the networks' own from a forward pass."""
    for var in kept_vars(model):
        value = values.get(var.name)
        if value is not None and not var.fixed:
            var.set_value(value, skip_validation=True)
    for block in blocks:
        block.initialize([v.value for v in block.input_vars])
