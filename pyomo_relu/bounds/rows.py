r"""The LP/MILP rows of a network over a box, as plain arrays for highspy.

One row builder serves every optimisation model the package writes without Pyomo: the
bound-tightening LPs/MILPs (:mod:`pyomo_relu.bounds.obbt`), the verifier's margin MILPs and
the search engine's leaf MILPs (:mod:`pyomo_relu.search.leaf`).

For canonical layers ``z_i = W_i h_{i-1} + b_i`` with pre-activation bounds ``l_i <= z_i <= u_i``:

* linear neurons and stable active ReLUs (``l >= 0``): ``h = z``, one column;
* stable inactive ReLUs (``u <= 0``): no column (``h = 0`` is dropped from later rows);
* unstable ReLUs: columns ``z`` and ``h`` with ``h >= z``, ``h >= 0`` and either the triangle
  ``h <= u (z - l) / (u - l)`` (LP) or the big-M rows ``h <= z - l (1 - σ)``, ``h <= u σ``
  with a binary ``σ`` (MILP, the formulation of :mod:`pyomo_relu.formulations.bigm`);
* smooth neurons: ``z`` and ``h`` between the two least-slope lines of
  :func:`pyomo_relu.network.smooth_lines`;
* step neurons (``step``, ``sign``): a fixed column when stable, else ``z``, ``h`` and a
  ``σ`` with ``h = a + (b - a) σ``, ``z >= l (1 - σ)``, ``z <= u σ`` (:func:`_add_step`);
* max layers: ``y_g >= z_i`` and, per group with several candidates, Anderson et al.'s
  big-M rows (:func:`_add_max`).

Column bounds are the neuron bounds loosened by :data:`BOUND_RELAXATION` (a relaxation),
so nearly degenerate bounds cannot make a model spuriously infeasible.  This module imports
numpy only (highspy when :func:`highs_model` is called), never Pyomo.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyomo_relu.network import Layer, MaxLayer, smooth_lines
from pyomo_relu.sparse import triplets
from pyomo_relu.step import levels, unstable_step

__all__ = [
    "BOUND_RELAXATION",
    "HIGHS_TIME_LIMIT_OPTIONS",
    "TRUSTED_BIG_M_ERROR",
    "LinearProgram",
    "RowBuilder",
    "SideConstraints",
    "add_network",
    "build_lp",
    "highs_model",
    "largest_big_m",
    "relaxed_box",
]

#: HiGHS options for every MILP solved under a time limit (``solve``, ``tighten("milp")``, the
#: search engine's leaves; a user's own options win): presolve's "sparsify" rule (bit 14 of
#: ``presolve_rule_off``) never checks the time limit and spent 11 s on the dense affine
#: equalities of MNIST 256x4 under a 5 s limit (``benchmarks/RESULTS.md``, "Scale").
HIGHS_TIME_LIMIT_OPTIONS: dict[str, Any] = {"presolve_rule_off": 1 << 14}

#: Relative loosening of neuron bounds used as column bounds (see :func:`relaxed_box`).
BOUND_RELAXATION = 1e-8


@dataclass(frozen=True)
class LinearProgram:
    """``row_lower <= A x <= row_upper``, ``col_lower <= x <= col_upper`` (``A`` row-wise CSR).

    ``integer`` lists the columns that must be integral (the binaries of the MILP).
    """

    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    start: np.ndarray
    index: np.ndarray
    value: np.ndarray
    integer: np.ndarray

    @property
    def n_cols(self) -> int:
        return int(self.col_lower.size)

    @property
    def n_rows(self) -> int:
        return int(self.row_lower.size)


@dataclass(frozen=True)
class SideConstraints:
    """Linear rows ``row_lower <= A v <= row_upper`` over ``v = (inputs, outputs, extras)``.

    ``A`` is row-wise CSR (``start``, ``index``, ``value``); column ``i < n_inputs`` is network
    input ``i``, the next ``n_outputs`` columns are the network outputs, the rest are extra
    variables with bounds ``extra_lower``/``extra_upper``.  Plain numpy data (pickles cheaply);
    ``names`` (optional) name the rows for messages.
    """

    n_inputs: int
    n_outputs: int
    extra_lower: np.ndarray
    extra_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    start: np.ndarray
    index: np.ndarray
    value: np.ndarray
    names: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return int(self.row_lower.size)

    @property
    def n_extra(self) -> int:
        return int(self.extra_lower.size)

    def touches_outputs(self) -> np.ndarray:
        """Mask of the rows with a (nonzero) output column."""
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.start))
        hit = (self.index >= self.n_inputs) & (self.index < self.n_inputs + self.n_outputs) & (self.value != 0)
        return np.bincount(rows[hit], minlength=self.n_rows) > 0

    def check(self, n_inputs: int, n_outputs: int) -> None:
        if (self.n_inputs, self.n_outputs) != (n_inputs, n_outputs):
            from pyomo_relu.errors import ShapeMismatchError

            raise ShapeMismatchError(
                f"side constraints are over {self.n_inputs} inputs and {self.n_outputs} outputs, "
                f"the network has {n_inputs} and {n_outputs}"
            )


class RowBuilder:
    """Collects columns and rows (as COO triplets) and returns a :class:`LinearProgram`."""

    def __init__(self) -> None:
        self.col_lower: list[np.ndarray] = []
        self.col_upper: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.row_lower: list[np.ndarray] = []
        self.row_upper: list[np.ndarray] = []
        self.triplets: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.n_cols = 0
        self.n_rows = 0

    def add_cols(
        self, lower: np.ndarray | float, upper: np.ndarray | float, integer: bool | np.ndarray = False
    ) -> np.ndarray:
        """New columns with these bounds; ``integer`` is one flag or a mask over them."""
        lower, upper = np.broadcast_arrays(np.asarray(lower, float), np.asarray(upper, float))
        index = np.arange(self.n_cols, self.n_cols + lower.size)
        self.col_lower.append(lower.ravel())
        self.col_upper.append(upper.ravel())
        if np.ndim(integer):
            self.integer.append(index[np.asarray(integer, dtype=bool)])
        elif integer:
            self.integer.append(index)
        self.n_cols += lower.size
        return index

    def add_rows(
        self,
        lower: np.ndarray | float,
        upper: np.ndarray | float,
        dense: tuple[np.ndarray, np.ndarray] | None = None,
        terms: Sequence[tuple[np.ndarray, np.ndarray | float]] = (),
    ) -> None:
        """Rows ``lower <= M @ x[cols] + sum(coef * x[col]) <= upper``.

        ``dense`` is ``(cols, M)`` with ``M`` of shape ``(n_rows, len(cols))``; each entry
        of ``terms`` is ``(col per row, coefficient per row or scalar)``.
        """
        lower, upper = np.broadcast_arrays(np.asarray(lower, float), np.asarray(upper, float))
        n = lower.size
        rows = np.arange(self.n_rows, self.n_rows + n)
        if dense is not None:
            cols, matrix = dense
            r, c, v = triplets(matrix)
            self.triplets.append((rows[r], cols[c], v))
        for col, coef in terms:
            self.triplets.append((rows, np.asarray(col), np.broadcast_to(np.asarray(coef, float), (n,))))
        self.row_lower.append(lower.ravel())
        self.row_upper.append(upper.ravel())
        self.n_rows += n

    def add_sparse_rows(
        self, lower: np.ndarray, upper: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray
    ) -> None:
        """Rows ``lower[r] <= sum(values[t] * x[cols[t]] for t with rows[t] == r) <= upper[r]``."""
        n = int(np.asarray(lower).size)
        self.triplets.append(
            (self.n_rows + np.asarray(rows, np.int64), np.asarray(cols, np.int64), np.asarray(values, float))
        )
        self.row_lower.append(np.asarray(lower, float).ravel())
        self.row_upper.append(np.asarray(upper, float).ravel())
        self.n_rows += n

    def finish(self) -> LinearProgram:
        cat = lambda parts, dtype=float: (  # noqa: E731
            np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
        )
        rows = cat([t[0] for t in self.triplets], np.int64)
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=self.n_rows)
        return LinearProgram(
            col_lower=cat(self.col_lower),
            col_upper=cat(self.col_upper),
            row_lower=cat(self.row_lower),
            row_upper=cat(self.row_upper),
            start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
            index=cat([t[1] for t in self.triplets], np.int32)[order],
            value=cat([t[2] for t in self.triplets])[order],
            integer=cat(self.integer, np.int32),
        )


def build_lp(
    layers: Sequence[Layer],
    lower: Sequence[np.ndarray],
    upper: Sequence[np.ndarray],
    input_lower: np.ndarray,
    input_upper: np.ndarray,
    n_layers: int,
    integer: bool,
    side: SideConstraints | None = None,
) -> tuple[LinearProgram, list[np.ndarray]]:
    """The relaxation of layers ``0 .. n_layers-1`` (see the module docstring).

    Returns the LP and, per layer ``i`` from the inputs (``i = 0``) to layer
    ``n_layers - 1`` (``i = n_layers``), the column of each neuron's output ``h``
    (``-1`` where it is fixed at zero).  With ``side``, its extra columns and the rows
    it can express are appended (rows touching outputs only when ``n_layers == len(layers)``).
    """
    builder = RowBuilder()
    columns = add_network(builder, layers[:n_layers], lower, upper, builder.add_cols(input_lower, input_upper), integer)
    if side is not None:
        _add_side(builder, side, columns[0], columns[-1] if n_layers == len(layers) else None)
    return builder.finish(), columns


def add_network(
    builder: RowBuilder,
    layers: Sequence[Layer],
    lower: Sequence[np.ndarray],
    upper: Sequence[np.ndarray],
    inputs: np.ndarray,
    integer: bool,
) -> list[np.ndarray]:
    """Append the relaxation (``integer``: the big-M MILP) of ``layers`` over the columns ``inputs``.

    Returns the columns of the inputs and of each layer's outputs ``h`` (``-1`` where fixed
    at zero), as :func:`build_lp` does; used by it and by the sub-box LPs of
    :mod:`pyomo_relu.split_relaxation`, where the inputs are columns of model variables.
    """
    columns = [np.asarray(inputs)]
    for k, layer in enumerate(layers):
        columns.append(_add_layer(builder, layer, lower[k], upper[k], columns[-1], integer))
    return columns


def _add_side(builder: RowBuilder, side: SideConstraints, inputs: np.ndarray, outputs: np.ndarray | None) -> None:
    """Append the extra columns and the rows of ``side`` that this LP can express.

    ``outputs`` (``None`` when the LP stops before the final layer) holds the column of
    each output, ``-1`` where the output is fixed at zero (such terms are dropped).
    Leaving rows out only relaxes the LP, so every result stays sound.
    """
    extra = builder.add_cols(side.extra_lower, side.extra_upper)
    missing = -2
    output_cols = np.full(side.n_outputs, missing) if outputs is None else np.asarray(outputs)
    mapping = np.concatenate([np.asarray(inputs), output_cols, extra]).astype(np.int64)
    rows = np.repeat(np.arange(side.n_rows), np.diff(side.start))
    cols = mapping[side.index]
    keep_row = np.ones(side.n_rows, dtype=bool)
    keep_row[rows[cols == missing]] = False
    entry = keep_row[rows] & (cols >= 0) & (side.value != 0)
    kept = np.flatnonzero(keep_row)
    if kept.size == 0:
        return
    new_row = np.cumsum(keep_row) - 1
    builder.add_sparse_rows(
        side.row_lower[kept], side.row_upper[kept], new_row[rows[entry]], cols[entry], side.value[entry]
    )


def _add_layer(
    builder: RowBuilder,
    layer: Layer,
    lower: np.ndarray,
    upper: np.ndarray,
    previous: np.ndarray,
    integer: bool,
) -> np.ndarray:
    kept = previous >= 0
    cols, weights, bias = previous[kept], layer.weights[:, kept], layer.bias
    if isinstance(layer, MaxLayer):
        return _add_max(builder, layer, lower, upper, (cols, -weights), integer)
    out = np.full(layer.n_outputs, -1)
    relu, smooth, stepped = layer.relu_mask, layer.smooth_mask, layer.step_mask
    box = relaxed_box(lower, upper)
    linear = np.flatnonzero(~smooth & ~stepped & (~relu | (lower >= 0)))
    h = builder.add_cols(box[0][linear], box[1][linear])
    builder.add_rows(bias[linear], bias[linear], (cols, -weights[linear]), [(h, 1.0)])
    out[linear] = h
    unstable = np.flatnonzero(relu & (lower < 0) & (upper > 0))
    if unstable.size:
        out[unstable] = _add_relu(
            builder,
            lower[unstable],
            upper[unstable],
            (box[0][unstable], box[1][unstable]),
            (cols, -weights[unstable]),
            bias[unstable],
            integer,
        )
    curved = np.flatnonzero(smooth)
    if curved.size:  # a smooth neuron: its range and the two least-slope lines (smooth_lines)
        low, high = relaxed_box(*layer.output_bounds(lower, upper))
        z = builder.add_cols(box[0][curved], box[1][curved])
        builder.add_rows(bias[curved], bias[curved], (cols, -weights[curved]), [(z, 1.0)])
        h = builder.add_cols(low[curved], high[curved])
        lam, c_lo, c_hi = smooth_lines(layer.kinds[curved], lower[curved], upper[curved])
        slack = BOUND_RELAXATION * (1.0 + np.abs(c_lo) + np.abs(c_hi))
        builder.add_rows(c_lo - slack, c_hi + slack, terms=[(h, 1.0), (z, -lam)])
        out[curved] = h
    jumps = np.flatnonzero(stepped)
    if jumps.size:
        out[jumps] = _add_step(
            builder,
            layer.kinds[jumps],
            lower[jumps],
            upper[jumps],
            (box[0][jumps], box[1][jumps]),
            (cols, -weights[jumps]),
            bias[jumps],
            integer,
        )
    return out


def _add_step(
    builder: RowBuilder,
    kinds: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    box: tuple[np.ndarray, np.ndarray],
    affine: tuple[np.ndarray, np.ndarray],
    bias: np.ndarray,
    integer: bool,
) -> np.ndarray:
    """Step neurons ``h = a + (b - a) σ``: stable ones a fixed column, unstable ones ``z``, ``σ`` and
    ``z >= l (1 - σ)``, ``z <= u σ`` (``σ`` binary in the MILP: the closure of the step's graph,
    so a relaxation; in ``[0, 1]`` in the LP: the lines of :func:`pyomo_relu.step.step_lines`).
    """
    low, high = levels(kinds)
    value = np.where(lower >= 0, high, low)
    h = builder.add_cols(
        *relaxed_box(
            np.where(unstable_step(lower, upper), low, value), np.where(unstable_step(lower, upper), high, value)
        )
    )
    loose = np.flatnonzero(unstable_step(lower, upper))
    if loose.size == 0:
        return h
    z = builder.add_cols(box[0][loose], box[1][loose])
    builder.add_rows(bias[loose], bias[loose], (affine[0], affine[1][loose]), [(z, 1.0)])
    sigma = builder.add_cols(np.zeros(loose.size), 1.0, integer=integer)
    builder.add_rows(low[loose], low[loose], terms=[(h[loose], 1.0), (sigma, low[loose] - high[loose])])
    lo, hi = lower[loose], upper[loose]
    f = np.flatnonzero(np.isfinite(lo))
    if f.size:  # z - l σ >= l
        builder.add_rows(lo[f], np.inf, terms=[(z[f], 1.0), (sigma[f], lo[f])])
    g = np.flatnonzero(np.isfinite(hi))
    if g.size:  # z - u σ <= 0
        builder.add_rows(-np.inf, np.zeros(g.size), terms=[(z[g], 1.0), (sigma[g], -hi[g])])
    return h


def _add_max(
    builder: RowBuilder,
    layer: MaxLayer,
    lower: np.ndarray,
    upper: np.ndarray,
    affine: tuple[np.ndarray, np.ndarray],
    integer: bool,
) -> np.ndarray:
    """``y_g = max_i z_i``: ``y_g >= z_i`` and, per group with several candidates, big-M rows
    ``y_g <= z_i + (u_g - l_i)(1 - σ_i)``, ``Σ σ_i = 1`` and ``y_g <= Σ u_i σ_i``.

    A group with one candidate is ``y_g = z_i``.  ``σ`` is binary in the MILP, in ``[0, 1]``
    in the LP.
    """
    groups = layer.groups
    z = builder.add_cols(*relaxed_box(lower, upper))
    builder.add_rows(layer.bias, layer.bias, affine, [(z, 1.0)])
    y_low, y_high = layer.output_bounds(lower, upper)
    y = builder.add_cols(*relaxed_box(y_low, y_high))
    builder.add_rows(np.zeros(groups.size), np.inf, terms=[(y[groups], 1.0), (z, -1.0)])
    single, several = layer.candidates(lower, upper)
    if single.size:
        builder.add_rows(-np.inf, np.zeros(single.size), terms=[(y[groups[single]], 1.0), (z[single], -1.0)])
    open_group = ~np.isfinite(y_high)  # a group with an infinite bound gets no σ rows at all
    open_group[groups[several[~(np.isfinite(lower[several]) & np.isfinite(upper[several]))]]] = True
    finite = several[~open_group[groups[several]]]
    if finite.size:
        g = groups[finite]
        sigma = builder.add_cols(np.zeros(finite.size), 1.0, integer=integer)
        big_m = y_high[g] - lower[finite]
        builder.add_rows(-np.inf, big_m, terms=[(y[g], 1.0), (z[finite], -1.0), (sigma, big_m)])
        owners = np.unique(g)
        rank = np.searchsorted(owners, g)
        builder.add_sparse_rows(np.ones(owners.size), np.ones(owners.size), rank, sigma, np.ones(finite.size))
        builder.add_sparse_rows(
            np.full(owners.size, -np.inf),
            np.zeros(owners.size),
            np.r_[np.arange(owners.size), rank],
            np.r_[y[owners], sigma],
            np.r_[np.ones(owners.size), -upper[finite]],
        )
    return y


def relaxed_box(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column bounds a little looser than the neuron bounds (still a relaxation).

    Keeps the LP feasible when bounds are (nearly) degenerate, e.g. ``l == u`` computed
    in floating point, where a solver could otherwise report a spurious infeasibility.
    """
    slack_lo = BOUND_RELAXATION * np.maximum(1.0, np.abs(lower))
    slack_hi = BOUND_RELAXATION * np.maximum(1.0, np.abs(upper))
    with np.errstate(invalid="ignore"):
        return lower - slack_lo, upper + slack_hi


def _add_relu(
    builder: RowBuilder,
    lower: np.ndarray,
    upper: np.ndarray,
    box: tuple[np.ndarray, np.ndarray],
    affine: tuple[np.ndarray, np.ndarray],
    bias: np.ndarray,
    integer: bool,
) -> np.ndarray:
    """Unstable neurons: ``z = W h + b``, ``h >= z``, ``h >= 0`` and the triangle or big-M.

    ``box`` holds the (relaxed) column bounds of ``z``; the relaxation uses ``lower``/``upper``.
    """
    z = builder.add_cols(*box)
    h = builder.add_cols(0.0, box[1])
    builder.add_rows(bias, bias, affine, [(z, 1.0)])
    builder.add_rows(np.zeros(z.size), np.inf, terms=[(h, 1.0), (z, -1.0)])
    finite = np.isfinite(lower) & np.isfinite(upper)
    f = np.flatnonzero(finite)
    if integer and f.size:
        sigma = builder.add_cols(np.zeros(f.size), 1.0, integer=True)
        builder.add_rows(-np.inf, -lower[f], terms=[(h[f], 1.0), (z[f], -1.0), (sigma, -lower[f])])
        builder.add_rows(-np.inf, np.zeros(f.size), terms=[(h[f], 1.0), (sigma, -upper[f])])
    elif f.size:
        slope = upper[f] / (upper[f] - lower[f])
        builder.add_rows(-np.inf, -slope * lower[f], terms=[(h[f], 1.0), (z[f], -slope)])
    # Without a finite upper bound the hull of relu over [l, inf) is h <= z - l.
    g = np.flatnonzero(np.isfinite(lower) & np.isposinf(upper))
    if g.size:
        builder.add_rows(-np.inf, -lower[g], terms=[(h[g], 1.0), (z[g], -1.0)])
    return h


#: HiGHS ignores matrix entries of at most this magnitude (its ``small_matrix_value``).
HIGHS_SMALL_MATRIX_VALUE = 1e-9


def without_tiny_entries(lp: LinearProgram) -> LinearProgram:
    """``lp`` with the entries HiGHS would silently drop moved, soundly, into the row bounds.

    An entry ``a`` of row ``r`` on column ``j`` with ``|a| <= HIGHS_SMALL_MATRIX_VALUE``
    contributes at most ``|a| max(|l_j|, |u_j|)`` to the row: the row's bounds are widened
    by that (rounded outward) and the entry removed, so the model HiGHS solves is a
    relaxation of ``lp``, never a restriction (a near-stable neuron's big-M of 1e-10 would
    otherwise turn ``y <= u z`` into ``y <= 0``).
    """
    tiny = np.abs(lp.value) <= HIGHS_SMALL_MATRIX_VALUE
    if not tiny.any():
        return lp
    rows = np.repeat(np.arange(lp.n_rows), np.diff(lp.start))
    reach = np.maximum(np.abs(lp.col_lower), np.abs(lp.col_upper))[lp.index[tiny]]
    with np.errstate(invalid="ignore"):
        slack = np.nan_to_num(np.abs(lp.value[tiny]) * reach, nan=0.0)
    widen = np.zeros(lp.n_rows)
    np.add.at(widen, rows[tiny], slack)
    touched = widen > 0
    row_lower, row_upper = lp.row_lower.copy(), lp.row_upper.copy()
    row_lower[touched] = np.nextafter(row_lower[touched] - widen[touched], -np.inf)
    row_upper[touched] = np.nextafter(row_upper[touched] + widen[touched], np.inf)
    keep = ~tiny
    start = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=lp.n_rows))]).astype(lp.start.dtype)
    return dataclasses.replace(
        lp,
        row_lower=row_lower,
        row_upper=row_upper,
        start=start,
        index=lp.index[keep],
        value=lp.value[keep],
    )


def highs_model(lp: LinearProgram, integer: bool) -> Any:
    """``lp`` as a ``highspy.HighsLp`` (with integrality when ``integer``; tiny entries moved
    into the row bounds by :func:`without_tiny_entries`)."""
    import highspy

    lp = without_tiny_entries(lp)
    model = highspy.HighsLp()
    model.num_col_, model.num_row_ = lp.n_cols, lp.n_rows
    model.col_cost_ = np.zeros(lp.n_cols)
    model.col_lower_, model.col_upper_ = lp.col_lower, lp.col_upper
    model.row_lower_, model.row_upper_ = lp.row_lower, lp.row_upper
    model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    model.a_matrix_.start_, model.a_matrix_.index_, model.a_matrix_.value_ = lp.start, lp.index, lp.value
    if integer and lp.integer.size:
        kinds = np.full(lp.n_cols, highspy.HighsVarType.kContinuous)
        kinds[lp.integer] = highspy.HighsVarType.kInteger
        model.integrality_ = list(kinds)
    return model


#: A MILP with big-M rows (OBBT's ``"milp"``, the engine's leaves) is trusted only when its
#: largest big-M times the solver's feasibility/integrality tolerance stays within this:
#: beyond it a binary 1e-9 off integral moves a ReLU output by more than the widening and
#: the margins that bounds and verdicts rest on (docs/design.md, "Tolerances").
TRUSTED_BIG_M_ERROR = 1e-7


def largest_big_m(lower: Sequence[np.ndarray], upper: Sequence[np.ndarray]) -> float:
    """The largest ``max(-l, u)`` over the unstable neurons of these layers: the MILP's big-M."""
    largest = 0.0
    for lo, hi in zip(lower, upper):
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        unstable = (lo < 0) & (hi > 0)
        if unstable.any():
            largest = max(largest, float(np.max(np.maximum(-lo[unstable], hi[unstable]))))
    return largest
