"""One canonical layer of a :class:`~pyomo_relu.block.ReLUNetBlock`: variables, affine rows, formulation.

:func:`build_layer` receives a :class:`LayerJob` (what the block knows about the layer)
and returns the :class:`~pyomo_relu.formulations.context.LayerContext` the formulation
saw.  Dense layers get ``post`` (every neuron; stable-inactive ones fixed at 0), ``pre``
(unstable, smooth and step neurons), the affine equalities ``affine[j]`` and then the
formulation's rows; max layers get ``post`` per group, ``pre`` per candidate row with
several candidates, and :meth:`~pyomo_relu.formulations.base.Formulation.build_max`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
import pyomo.environ as pe
import scipy.sparse as sp
from pyomo.core.base.var import VarData
from pyomo.core.expr.numeric_expr import LinearExpression, MonomialTermExpression

from pyomo_relu.block_args import finite
from pyomo_relu.errors import MissingBoundsError, UnsupportedOperatorError
from pyomo_relu.formulations import max_affine
from pyomo_relu.formulations.base import Formulation, index_set
from pyomo_relu.formulations.bigm import BigM
from pyomo_relu.formulations.context import LayerContext
from pyomo_relu.formulations.step import build_step
from pyomo_relu.network import DenseLayer, MaxLayer
from pyomo_relu.sparse import is_sparse, row_entries

__all__ = ["LayerJob", "build_layer", "first_identical_rows", "next_inputs", "require_support"]


@dataclass
class LayerJob:
    """What the block knows about one canonical layer before building it.

    ``block`` is the layer's sub-block, ``inputs[i]`` the variable of input ``i`` (``None``
    for a known zero) within ``[input_lower, input_upper]``, ``lower``/``upper`` the
    pre-activation bounds, ``formulation`` the layer's formulation and ``targets`` the
    network's output variables when this is the linear last layer (no copy, no link).
    """

    block: Any
    index: int
    layer: DenseLayer | MaxLayer
    inputs: list[VarData | None]
    input_lower: np.ndarray
    input_upper: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    formulation: Formulation = field(default_factory=BigM)
    targets: list[VarData] | None = None

    def context(self, post: Any, unstable: np.ndarray, layer: DenseLayer | MaxLayer | None = None) -> LayerContext:
        """The formulation's view of the layer."""
        return LayerContext(
            self.block,
            self.index,
            self.layer if layer is None else layer,
            list(self.inputs),
            post,
            self.input_lower,
            self.input_upper,
            self.lower,
            self.upper,
            unstable,
            options=self.formulation.changed_options(),
            formulation=self.formulation.name,
            chosen=self.formulation,
        )


def build_layer(job: LayerJob) -> LayerContext:
    """Build one canonical layer in ``job.block``; returns the formulation's context."""
    if isinstance(job.layer, MaxLayer):
        return _build_max_layer(job, job.layer)
    return _build_dense_layer(job, job.layer)


def next_inputs(ctx: LayerContext) -> list[VarData | None]:
    """Post-activation variables of a layer, ``None`` where fixed at zero."""
    post = ctx.post
    return [None if post[j].fixed and post[j].value == 0 else post[j] for j in range(ctx.layer.n_outputs)]


# ---------------------------------------------------------------- dense layers
def _build_dense_layer(job: LayerJob, layer: DenseLayer) -> LayerContext:
    """Variables, affine equalities and the activation formulation of one dense layer."""
    lower, upper = job.lower, job.upper
    inactive = np.flatnonzero(layer.relu_mask & (upper <= 0))
    unstable = np.flatnonzero(layer.relu_mask & (lower < 0) & (upper > 0))
    curved = np.flatnonzero(layer.smooth_mask)
    stepped = np.flatnonzero(layer.step_mask)  # step/sign: always formulations/step.py
    _require_finite_neurons(job.index, unstable, lower, upper)
    post = _post_variables(job, layer, inactive)
    with_pre = np.union1d(np.union1d(unstable, curved), stepped)
    job.block.pre = pe.Var(index_set(with_pre), bounds=lambda b, j: (finite(lower[j]), finite(upper[j])))
    _add_dense_affine(job, layer, post, with_pre, np.setdiff1d(np.arange(layer.n_outputs), inactive))
    chosen = job.formulation
    if is_sparse(layer.weights) and chosen.reads_weights:
        layer = layer.with_affine(sp.csr_array(layer.weights).toarray(), layer.bias)  # partition, extended, ...
    ctx = job.context(post, unstable, layer)
    if curved.size:
        chosen.build_smooth(ctx, curved)
    if stepped.size:
        build_step(ctx, stepped, chosen.step_eps)
    if unstable.size:
        ctx.added = chosen.build(ctx)
    return ctx


def require_support(layers: Sequence[DenseLayer | MaxLayer], formulations: Sequence[Formulation]) -> None:
    """Refuse smooth neurons in layers whose formulation lacks the ``smooth`` capability (before any build)."""
    for index, (layer, chosen) in enumerate(zip(layers, formulations)):
        curved = np.flatnonzero(layer.smooth_mask)
        if curved.size and not chosen.smooth:
            kinds = sorted(set(layer.kinds[curved].tolist()))
            raise UnsupportedOperatorError(
                f"layer {index} ({layer.name or 'dense'}) has {', '.join(kinds)} neurons, which have no MILP "
                f"formulation (formulation {chosen.name!r}); use formulation='pwl' (a certified piecewise-linear "
                "MILP relaxation) or 'complementarity' (exact, for an NLP/MINLP solver such as SCIP)"
            )


def _post_variables(job: LayerJob, layer: DenseLayer, inactive: np.ndarray) -> Any:
    """``block.post`` (stable-inactive neurons fixed at 0), or the network's output variables."""
    if job.targets is not None:
        return job.targets  # the network outputs themselves: no copy, no link
    post_lower, post_upper = layer.output_bounds(job.lower, job.upper)
    job.block.post = pe.Var(range(layer.n_outputs), bounds=lambda b, j: (finite(post_lower[j]), finite(post_upper[j])))
    post = job.block.post
    for j in inactive:
        post[int(j)].fix(0.0)
    return post


def _add_dense_affine(job: LayerJob, layer: DenseLayer, post: Any, with_pre: np.ndarray, defined: np.ndarray) -> None:
    """``affine[j]``: ``W[j] h - target_j = -b[j]`` (target ``pre[j]`` if it exists, else ``post[j]``)."""
    pre = job.block.pre
    has_pre = np.zeros(layer.n_outputs, dtype=bool)
    has_pre[with_pre] = True
    targets = [pre[j] if has_pre[j] else post[j] for j in range(layer.n_outputs)]
    terms = affine_terms(layer, job.inputs)
    same_as = first_identical_rows(layer, defined)  # leaky_relu: relu(z) and its linear copy z

    def affine_rule(b: Any, j: int) -> tuple:
        target = targets[j]
        if same_as[j] != j:  # the same affine map as an earlier neuron: equal to its variable
            other = targets[same_as[j]]
            return (0.0, LinearExpression([_monomial((1.0, target)), _monomial((-1.0, other))]), 0.0)
        rhs = -float(layer.bias[j])
        return (rhs, LinearExpression(terms(j) + [_monomial((-1.0, target))]), rhs)

    job.block.affine = pe.Constraint(index_set(defined), rule=affine_rule)


def first_identical_rows(layer: DenseLayer, rows: np.ndarray) -> dict[int, int]:
    """For each of ``rows``, the first of ``rows`` with the same weights and bias (itself if none).

    Only mixed layers have such rows (the lowering of leaky_relu writes ``z`` twice), so
    other layers skip the search.
    """
    same = {int(j): int(j) for j in rows}
    if layer.activation != "mixed":
        return same
    first: dict[bytes, int] = {}
    weights = layer.weights
    for j in (int(j) for j in rows):
        if is_sparse(weights):
            cols, values = row_entries(weights, j)
            key = cols.tobytes() + b"|" + values.tobytes()
        else:
            key = np.asarray(weights[j]).tobytes()
        key += b"|" + layer.bias[j : j + 1].tobytes()
        same[j] = first.setdefault(key, j)
    return same


# ------------------------------------------------------------------ max layers
def _build_max_layer(job: LayerJob, layer: MaxLayer) -> LayerContext:
    """``post[g] = max_i pre[i]`` over each group (max pooling, max of affine functions).

    Rows that can never be their group's maximum (``u_i < max_k l_k``) are left out; a
    group with one candidate row is an affine equality (no binary); the others get the
    formulation's :meth:`~pyomo_relu.formulations.base.Formulation.build_max`.
    """
    lower, upper, block = job.lower, job.upper, job.block
    groups = layer.groups
    single, several = layer.candidates(lower, upper)
    _require_finite_neurons(job.index, several, lower, upper)
    post_lower, post_upper = layer.output_bounds(lower, upper)
    block.post = pe.Var(range(layer.n_outputs), bounds=lambda b, g: (finite(post_lower[g]), finite(post_upper[g])))
    block.pre = pe.Var(index_set(several), bounds=lambda b, i: (float(lower[i]), float(upper[i])))
    post, pre = block.post, block.pre
    terms = affine_terms(layer, job.inputs)
    is_single = np.zeros(layer.n_pre, dtype=bool)
    is_single[single] = True

    def affine_rule(b: Any, i: int) -> tuple:
        target = post[int(groups[i])] if is_single[i] else pre[i]
        rhs = -float(layer.bias[i])
        return (rhs, LinearExpression(terms(i) + [_monomial((-1.0, target))]), rhs)

    block.affine = pe.Constraint(index_set(np.sort(np.r_[single, several])), rule=affine_rule)
    ctx = job.context(post, several)
    ctx.formulation = max_affine.name
    ctx.groups = np.unique(groups[several])
    if several.size:
        job.formulation.build_max(ctx)
    return ctx


# --------------------------------------------------------------------- helpers
_monomial = MonomialTermExpression


def affine_terms(layer: DenseLayer | MaxLayer, inputs: list[VarData | None]) -> Callable[[int], list]:
    """A function giving the monomials ``W[j, i] * h_i`` of neuron ``j`` (zeros skipped).

    The coefficients and variables of a row are picked with numpy and ``itemgetter`` and
    the monomials made by one ``map`` (no Python loop per term).
    """
    columns = np.array([i for i, var in enumerate(inputs) if var is not None], dtype=int)
    variables = [inputs[i] for i in columns]
    if is_sparse(layer.weights):  # CSR rows: only the stored non-zeros are read
        weights_csr = sp.csr_array(layer.weights[:, columns])
        weights_csr.sort_indices()

        def sparse_terms(j: int) -> list:
            cols, values = row_entries(weights_csr, j)
            return list(map(_monomial, zip(values.tolist(), _pick(variables, cols))))

        return sparse_terms
    weights = np.asarray(layer.weights)[:, columns]
    if not np.any(weights == 0):
        return lambda j: list(map(_monomial, zip(weights[j].tolist(), variables)))

    def dense_terms(j: int) -> list:
        row = weights[j]
        keep = np.flatnonzero(row)
        return list(map(_monomial, zip(row[keep].tolist(), _pick(variables, keep))))

    return dense_terms


def _pick(items: list[Any], positions: np.ndarray) -> list[Any]:
    """``[items[p] for p in positions]`` without a Python loop."""
    if positions.size == 0:
        return []
    if positions.size == 1:
        return [items[int(positions[0])]]
    return list(itemgetter(*positions.tolist())(items))


def _require_finite_neurons(index: int, unstable: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
    bad = unstable[~(np.isfinite(lower[unstable]) & np.isfinite(upper[unstable]))]
    if bad.size:
        raise MissingBoundsError(
            f"layer {index}, neuron {int(bad[0])}: pre-activation bounds are infinite; bound the inputs"
        )
