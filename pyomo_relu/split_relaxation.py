"""The sub-box LP of ``solve(strategy="split")``: a proven bound of the whole model on one box.

One LP over the model's variables outside the networks' layers (the *kept* variables of
:mod:`pyomo_relu.split`): every block's network as its triangle relaxation over the
box's neuron bounds (:func:`pyomo_relu.bounds.rows.add_network`, the input columns being
the kept input variables themselves), its outputs tied to the kept output variables,
the model's own linear constraints (balances, specs) as rows, and the linear objective.
It relaxes every exact MILP formulation of the blocks, so its (safe, see
:func:`pyomo_relu.bounds.lp_solve.lp_minimum`) optimum bounds the box's sub-MILP: a box
whose LP is infeasible or cannot beat the incumbent is closed without a MILP, and the
others are ordered by it.

The rows that do not depend on the box (the model's constraints and the objective) are
read once per working copy (:meth:`BoxRelaxation.of`); each box adds the networks'
rows and the current variable bounds.  Networks with smooth activations (whose MILP
formulation is an approximation, not a relaxation target) get no LP: ``of`` returns
``None`` and the search falls back to the objective over the variable bounds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.lp_solve import SolveSettings, lp_minimum, reduced_cost_box
from pyomo_relu.bounds.rows import RowBuilder, add_network
from pyomo_relu.model_bounds import linear_row, linear_terms, var_bounds

logger = logging.getLogger(__name__)

#: Relative widening of the LP bound (as for the "lp" bounds method).
LP_TOLERANCE = 1e-7


@dataclass(frozen=True)
class BoxRelaxation:
    """What every box's LP shares: the kept variables, the model's rows over them, the objective."""

    kept: list[Any]  # the kept variables (column ``i`` is ``kept[i]``)
    row_lower: np.ndarray
    row_upper: np.ndarray
    rows: np.ndarray  # COO entries of the model's rows over the kept columns
    cols: np.ndarray
    values: np.ndarray
    objective_cols: np.ndarray
    objective_coefs: np.ndarray  # minimisation form
    objective_constant: float
    inputs: list[np.ndarray]  # per block: the kept column of each input
    outputs: list[np.ndarray]  # per block: the kept column of each output

    @classmethod
    def of(
        cls, kept: Sequence[Any], blocks: Sequence[Any], constraints: Sequence[Any], objective: Any, sign: float
    ) -> BoxRelaxation | None:
        """Read the model once; ``None`` when the LP would not be a relaxation of the model."""
        if any(
            np.any(layer.smooth_mask)
            for b in blocks
            for layer in b.network.canonical_layers
            if hasattr(layer, "smooth_mask")
        ):
            return None
        column = {id(var): i for i, var in enumerate(kept)}
        inputs, outputs = [], []
        for block in blocks:
            ins = [column.get(id(v), -1) for v in block.input_vars]
            outs = [column.get(id(v), -1) for v in block.output_vars]
            if min(ins + outs, default=0) < 0:
                return None
            inputs.append(np.array(ins, np.int64))
            outputs.append(np.array(outs, np.int64))
        objective_terms = linear_terms(objective.expr, {})
        if objective_terms is None or any(key not in column for key in objective_terms[1]):
            return None
        constant, terms = objective_terms
        lower: list[float] = []
        upper: list[float] = []
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for con in constraints:
            row = linear_row(con, {})
            if row is None or not row[2] or any(key not in column for key in row[2]):
                continue  # left out: a relaxation
            rows += [len(lower)] * len(row[2])
            cols += [column[key] for key in row[2]]
            values += list(row[2].values())
            lower.append(row[0])
            upper.append(row[1])
        keys = list(terms)
        return cls(
            list(kept),
            np.array(lower, float),
            np.array(upper, float),
            np.array(rows, np.int64),
            np.array(cols, np.int64),
            np.array(values, float),
            np.array([column[k] for k in keys], np.int64),
            sign * np.array([terms[k] for k in keys], float),
            sign * constant,
            inputs,
            outputs,
        )

    def bound(self, blocks: Sequence[Any], tightened: Sequence[Bounds], cutoff: float = np.inf) -> BoxBound | None:
        """The LP's proven lower bound (minimisation form) on this box, the LP's values of the
        kept variables (``None`` if not solved) and their bounds narrowed by reduced costs
        against ``cutoff`` (minimisation form, :func:`~pyomo_relu.bounds.lp_solve.reduced_cost_box`);
        ``None`` if the LP is infeasible."""
        builder = RowBuilder()
        box = np.array([var_bounds(var) for var in self.kept], float).reshape(-1, 2)
        for cols, bounds in zip(self.inputs, tightened):
            box[cols, 0] = np.maximum(box[cols, 0], bounds.input_lower)
            box[cols, 1] = np.minimum(box[cols, 1], bounds.input_upper)
        if np.any(box[:, 0] > box[:, 1]):
            return None
        columns = builder.add_cols(box[:, 0], box[:, 1])
        for block, cols, outs, bounds in zip(blocks, self.inputs, self.outputs, tightened):
            out = add_network(
                builder, block.network.canonical_layers, bounds.lower, bounds.upper, columns[cols], False
            )[-1]
            tied, zero = np.flatnonzero(out >= 0), np.flatnonzero(out < 0)  # out < 0: fixed at zero
            builder.add_rows(
                np.zeros(tied.size), np.zeros(tied.size), terms=[(columns[outs[tied]], 1.0), (out[tied], -1.0)]
            )
            builder.add_rows(np.zeros(zero.size), np.zeros(zero.size), terms=[(columns[outs[zero]], 1.0)])
        if self.row_lower.size:
            builder.add_sparse_rows(self.row_lower, self.row_upper, self.rows, self.cols, self.values)
        lp = builder.finish()
        answer = lp_minimum(lp, columns[self.objective_cols], self.objective_coefs, SolveSettings(False, LP_TOLERANCE))
        if answer.infeasible:
            return None
        if np.isnan(answer.value) or answer.point is None:
            return BoxBound(-np.inf, None, box[:, 0], box[:, 1])
        lower, upper = reduced_cost_box(answer, lp.col_lower, lp.col_upper, cutoff - self.objective_constant)
        value = float(answer.value + self.objective_constant)
        return BoxBound(value, answer.point[columns], lower[columns], upper[columns])


@dataclass(frozen=True)
class BoxBound:
    """What a box's LP proves: a lower bound, its point and the kept variables' narrowed bounds."""

    value: float  # minimisation form; -inf when the LP gave no bound
    point: np.ndarray | None  # the LP's values of the kept variables
    lower: np.ndarray  # the kept variables' bounds where a point below the cutoff can lie
    upper: np.ndarray
