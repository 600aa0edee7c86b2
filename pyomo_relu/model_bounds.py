"""Linear constraints of a Pyomo model around a network, for ``tighten(mode="model")``.

:func:`linear_side_constraints` reads the active constraints of a Pyomo model (it lives
outside the Pyomo-free :mod:`pyomo_relu.bounds`) and returns them as a
:class:`~pyomo_relu.bounds.rows.SideConstraints`: plain numpy rows over the network's
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

#: One constraint: ``(lower, upper, {id(var): coefficient}, name)``.
Row = tuple[float, float, dict[int, float], str]


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

    input_vars, output_vars = list(input_vars), list(output_vars)
    column: dict[int, int] = {}
    for i, var in enumerate(input_vars + output_vars):
        _require_var(var, i, len(input_vars))
        column.setdefault(id(var), i)
    rows, var_of = _linear_rows(model, _excluded_ids(exclude, Constraint))
    kept = [rows[r] for r in _connected(rows, set(column))]
    rows = _bound_rows(input_vars + output_vars, column) + kept
    return _side_constraints(rows, column, var_of, len(input_vars), len(output_vars))


def _linear_rows(model: Any, skipped: set[int]) -> tuple[list[Row], dict[int, Any]]:
    """Every active linear constraint of ``model`` not in ``skipped``, and the variables by ``id``."""
    from pyomo.core.base.constraint import Constraint

    rows: list[Row] = []
    var_of: dict[int, Any] = {}
    n_nonlinear = 0
    for con in model.component_data_objects(Constraint, active=True, descend_into=True):
        if id(con) in skipped or (con.lb is None and con.ub is None):
            continue
        row = linear_row(con, var_of)
        if row is None:
            n_nonlinear += 1
            logger.debug("mode='model': constraint %s is not linear and is ignored", con.name)
        elif not row[2]:
            logger.debug("mode='model': constraint %s has no free variable and is ignored", con.name)
        elif np.isfinite(row[0]) or np.isfinite(row[1]):
            rows.append(row)
    if n_nonlinear:
        logger.debug("mode='model': %d nonlinear constraint(s) ignored", n_nonlinear)
    return rows, var_of


def linear_row(con: Any, var_of: dict[int, Any]) -> Row | None:
    """``(lower, upper, {id(var): coefficient}, name)`` of one constraint; ``None`` if nonlinear."""
    from pyomo.core.expr.numvalue import value

    linear = linear_terms(con.body, var_of)
    if linear is None:
        return None
    constant, terms = linear
    lower = -np.inf if con.lb is None else float(value(con.lb))
    upper = np.inf if con.ub is None else float(value(con.ub))
    return lower - constant, upper - constant, terms, con.name


def linear_terms(expr: Any, var_of: dict[int, Any]) -> tuple[float, dict[int, float]] | None:
    """``(constant, {id(var): coefficient})`` of a linear expression (fixed variables folded
    into the constant; ``var_of`` gets every free variable by ``id``); ``None`` if nonlinear."""
    from pyomo.core.expr.numvalue import value
    from pyomo.repn import generate_standard_repn

    repn = generate_standard_repn(expr, quadratic=False, compute_values=True)
    if not repn.is_linear():
        return None
    constant = float(value(repn.constant)) if repn.constant is not None else 0.0
    terms: dict[int, float] = {}
    for var, coef in zip(repn.linear_vars, repn.linear_coefs):
        coef = float(value(coef))
        if var.fixed:  # not expected with compute_values=True, but harmless
            constant += coef * float(var.value)
            continue
        var_of[id(var)] = var
        terms[id(var)] = terms.get(id(var), 0.0) + coef
    return constant, {key: coef for key, coef in terms.items() if coef != 0.0}


def _bound_rows(net_vars: list[Any], column: dict[int, int]) -> list[Row]:
    """The bounds (or fixed values) of the network's own variables, as rows."""
    rows: list[Row] = []
    for i, var in enumerate(net_vars):
        if column[id(var)] != i:
            continue
        lo, hi = var_bounds(var)
        if np.isfinite(lo) or np.isfinite(hi):
            rows.append((lo, hi, {id(var): 1.0}, f"bounds of {var.name}"))
    return rows


def var_bounds(var: Any) -> tuple[float, float]:
    """``(lower, upper)`` of a Pyomo variable (its value twice if fixed, ``∓inf`` if unbounded)."""
    from pyomo.core.expr.numvalue import value

    if var.fixed:
        return float(var.value), float(var.value)
    return (-np.inf if var.lb is None else float(value(var.lb))), (np.inf if var.ub is None else float(value(var.ub)))


def _side_constraints(
    rows: list[Row], column: dict[int, int], var_of: dict[int, Any], n_inputs: int, n_outputs: int
) -> SideConstraints:
    """CSR rows over ``[inputs, outputs, extras]``; each other variable becomes an extra column."""
    n_net = n_inputs + n_outputs
    extra: dict[int, int] = {}
    start, index, values = [0], [], []
    for _, _, terms, _ in rows:
        for key, coef in terms.items():
            if key not in column and key not in extra:
                extra[key] = n_net + len(extra)
            index.append(column[key] if key in column else extra[key])
            values.append(coef)
        start.append(len(index))
    extra_bounds = np.array([var_bounds(var_of[key]) for key in extra], float).reshape(-1, 2)
    logger.info("mode='model': %d linear row(s), %d extra variable(s) linked to the network", len(rows), len(extra))
    return SideConstraints(
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        extra_lower=extra_bounds[:, 0].copy(),
        extra_upper=extra_bounds[:, 1].copy(),
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


def _connected(rows: list[Row], seeds: set[int]) -> list[int]:
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
