"""Linear constraints of a Pyomo model around a network, for ``tighten(mode="model")``.

:func:`linear_side_constraints` reads the active constraints of a Pyomo model (the one
bounds module that imports Pyomo) and returns them as a
:class:`~pyomo_relu.bounds.obbt.SideConstraints`: plain numpy rows over the network's
inputs, its outputs and the other model variables they reach (Grimstad & Andersson 2019
tighten with input *and* output constraints).  Only the rows connected to the inputs or
outputs, directly or through chains of other variables, are kept.

Everything done here is a relaxation of the model, so bounds computed with the result hold
for every point of the model:

* nonlinear constraints (and constraints inside ``exclude``, or inside deactivated blocks
  and disjuncts, which Pyomo does not list as active) are left out;
* integer and binary variables become continuous within their bounds;
* fixed variables become constants;
* the bounds (or fixed values) of the input and output variables become rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pyomo_relu.bounds.rows import SideConstraints
from pyomo_relu.errors import PyomoReluError

logger = logging.getLogger(__name__)


def linear_side_constraints(
    model: Any,
    input_vars: Sequence[Any],
    output_vars: Sequence[Any],
    exclude: Any = None,
) -> SideConstraints:
    """The linear constraints of ``model`` linked to the network's inputs and outputs.

    Args:
        model: a Pyomo block (usually the whole model).
        input_vars: the Pyomo variables of the network inputs, in order.
        output_vars: the Pyomo variables of the network outputs, in order.
        exclude: a block (or an iterable of blocks or constraints) whose constraints are
            skipped, typically the :class:`~pyomo_relu.block.ReLUNetBlock` itself.

    Returns:
        :class:`SideConstraints` over columns ``[inputs, outputs, extras]``, where the
        extras are the other variables of the kept rows (bounds from Pyomo, integrality
        relaxed).
    """
    from pyomo.core.base.constraint import Constraint
    from pyomo.core.expr.numvalue import value
    from pyomo.repn import generate_standard_repn

    input_vars, output_vars = list(input_vars), list(output_vars)
    column: dict[int, int] = {}
    for i, var in enumerate(input_vars + output_vars):
        _require_var(var, i, len(input_vars))
        column.setdefault(id(var), i)
    n_net = len(input_vars) + len(output_vars)
    skipped = _excluded_ids(exclude, Constraint)

    rows: list[tuple[float, float, dict[int, float], str]] = []  # lower, upper, id(var) -> coef, name
    var_of: dict[int, Any] = {}
    n_nonlinear = 0
    for con in model.component_data_objects(Constraint, active=True, descend_into=True):
        if id(con) in skipped:
            continue
        lower = -np.inf if con.lb is None else float(value(con.lb))
        upper = np.inf if con.ub is None else float(value(con.ub))
        if lower == -np.inf and upper == np.inf:
            continue
        repn = generate_standard_repn(con.body, quadratic=False, compute_values=True)
        if not repn.is_linear():
            n_nonlinear += 1
            logger.debug("mode='model': constraint %s is not linear and is ignored", con.name)
            continue
        terms: dict[int, float] = {}
        for var, coef in zip(repn.linear_vars, repn.linear_coefs):
            coef = float(value(coef))
            if var.fixed:  # not expected with compute_values=True, but harmless
                lower, upper = lower - coef * float(var.value), upper - coef * float(var.value)
                continue
            var_of[id(var)] = var
            terms[id(var)] = terms.get(id(var), 0.0) + coef
        constant = float(value(repn.constant)) if repn.constant is not None else 0.0
        terms = {key: coef for key, coef in terms.items() if coef != 0.0}
        if not terms:
            logger.debug("mode='model': constraint %s has no free variable and is ignored", con.name)
            continue
        rows.append((lower - constant, upper - constant, terms, con.name))
    if n_nonlinear:
        logger.debug("mode='model': %d nonlinear constraint(s) ignored", n_nonlinear)

    kept = _connected(rows, set(column))
    # the bounds (or fixed values) of the network's own variables are constraints too
    bound_rows = []
    for i, var in enumerate(input_vars + output_vars):
        if column[id(var)] != i:
            continue
        if var.fixed:
            lo = hi = float(var.value)
        else:
            lo = -np.inf if var.lb is None else float(value(var.lb))
            hi = np.inf if var.ub is None else float(value(var.ub))
        if np.isfinite(lo) or np.isfinite(hi):
            bound_rows.append((lo, hi, {id(var): 1.0}, f"bounds of {var.name}"))
    rows = bound_rows + [rows[r] for r in kept]

    extra: dict[int, int] = {}
    extra_lower: list[float] = []
    extra_upper: list[float] = []
    start, index, values = [0], [], []
    for lower, upper, terms, _ in rows:
        for key, coef in terms.items():
            if key in column:
                col = column[key]
            else:
                if key not in extra:
                    var = var_of[key]
                    extra[key] = n_net + len(extra)
                    extra_lower.append(-np.inf if var.lb is None else float(value(var.lb)))
                    extra_upper.append(np.inf if var.ub is None else float(value(var.ub)))
                col = extra[key]
            index.append(col)
            values.append(coef)
        start.append(len(index))
    logger.info("mode='model': %d linear row(s), %d extra variable(s) linked to the network", len(rows), len(extra))
    return SideConstraints(
        n_inputs=len(input_vars),
        n_outputs=len(output_vars),
        extra_lower=np.array(extra_lower, float),
        extra_upper=np.array(extra_upper, float),
        row_lower=np.array([r[0] for r in rows], float),
        row_upper=np.array([r[1] for r in rows], float),
        start=np.array(start, np.int64),
        index=np.array(index, np.int64),
        value=np.array(values, float),
        names=tuple(r[3] for r in rows),
    )


def _require_var(var: Any, i: int, n_inputs: int) -> None:
    if not (hasattr(var, "is_variable_type") and var.is_variable_type()):
        what = f"input {i}" if i < n_inputs else f"output {i - n_inputs}"
        raise PyomoReluError(f"mode='model': {what} is {var!r}, not a Pyomo variable (VarData)")


def _excluded_ids(exclude: Any, constraint_type: Any) -> set[int]:
    """``id`` of every constraint inside ``exclude`` (blocks, constraints, or iterables of them)."""
    if exclude is None:
        return set()
    items: Iterable[Any] = exclude if isinstance(exclude, (list, tuple, set)) else [exclude]
    ids: set[int] = set()
    for item in items:
        if hasattr(item, "component_data_objects"):
            ids.update(id(c) for c in item.component_data_objects(constraint_type, descend_into=True))
        elif hasattr(item, "values") and callable(item.values):  # an indexed constraint
            ids.update(id(c) for c in item.values())
        else:
            ids.add(id(item))
    return ids


def _connected(rows: list[tuple[float, float, dict[int, float], str]], seeds: set[int]) -> list[int]:
    """Indices of the rows reachable from the variables ``seeds`` (row-variable graph walk)."""
    rows_of: dict[int, list[int]] = {}
    for r, (_, _, terms, _) in enumerate(rows):
        for key in terms:
            rows_of.setdefault(key, []).append(r)
    seen_vars = set(seeds)
    frontier = list(seeds)
    kept: set[int] = set()
    while frontier:
        key = frontier.pop()
        for r in rows_of.get(key, ()):
            if r in kept:
                continue
            kept.add(r)
            for other in rows[r][2]:
                if other not in seen_vars:
                    seen_vars.add(other)
                    frontier.append(other)
    return sorted(kept)
