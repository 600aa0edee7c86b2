r"""Big-M strengthened by Anderson et al.'s ideal inequalities, separated by a cut loop.

Anderson, Huchette, Ma, Tjandraatmadja & Vielma, *Strong mixed-integer programming
formulations for trained neural networks*, Math. Prog. 2020.  For one neuron
``y = max(0, w·x + b)`` with ``x`` in the box ``[l, u]``, orient the bounds by the sign of
the weight::

    L̆_i = l_i, Ŭ_i = u_i   if w_i >= 0        L̆_i = u_i, Ŭ_i = l_i   if w_i < 0

so that ``w_i L̆_i <= w_i x_i <= w_i Ŭ_i``.  Then for *every* subset ``I`` of the inputs::

    y <= Σ_{i∈I} w_i (x_i − L̆_i (1 − σ)) + (b + Σ_{i∉I} w_i Ŭ_i) σ            (*)

written in the model as
``y − Σ_{i∈I} w_i x_i − (b + Σ_{i∈I} w_i L̆_i + Σ_{i∉I} w_i Ŭ_i) σ <= −Σ_{i∈I} w_i L̆_i``.
Valid: at ``σ = 0`` the right side is ``Σ_I w_i (x_i − L̆_i) >= 0 = y``; at ``σ = 1`` it is
``w·x + b + Σ_{i∉I} w_i (Ŭ_i − x_i) >= w·x + b = y``.  ``I = ∅`` gives ``y <= Uσ`` and
``I = all`` gives ``y <= pre − L(1 − σ)`` with the interval bounds ``L``, ``U``: big-M's
rows are the two ends of the family.  With ``y >= pre``, ``y >= 0``, the box and
``0 <= σ <= 1``, the family (*) describes the convex hull of the neuron (their Theorem 1),
but it has ``2^k`` members, so it is separated rather than written.

**Separation** (their Proposition 13), linear in the fan-in ``k``: at a point
``(x̂, ŷ, σ̂)`` the right side of (*) is a sum of one term per input, ``w_i (x̂_i −
L̆_i (1 − σ̂))`` if ``i ∈ I`` and ``w_i Ŭ_i σ̂`` if not, so the smallest right side, i.e.
the most violated inequality, takes::

    I = { i : w_i x̂_i < w_i (L̆_i (1 − σ̂) + Ŭ_i σ̂) }

and the point violates (*) iff ``ŷ`` exceeds that minimum.  Inputs known to be zero and
zero weights contribute nothing and are skipped.

**Use.**  ``formulation="ideal_cuts"`` builds :mod:`~pyomo_relu.formulations.bigm` and an
empty ``ConstraintList`` ``ideal_cuts`` in each layer block, and registers the layer for
separation.  Once the objective exists, :func:`add_ideal_cuts` runs the loop:

1. relax every integer variable of the whole model in place
   (``core.relax_integer_vars``, reversed afterwards with its token) and solve the LP
   with :func:`pyomo_relu.solvers.solve`;
2. for every registered unstable neuron add the most violated inequality if it is
   violated by more than ``violation_tol``;
3. re-solve; stop when no cut was added, when the LP bound moved by at most
   ``tol · max(1, |bound|)`` in the objective's direction, or after ``max_rounds`` rounds.

Integrality is restored, the values the variables had before the call are put back (the
warm start survives) and the cuts stay: the MILP (big-M + cuts) is then the user's to
solve.  Every cut is valid for the MILP, so its optimum is unchanged.

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> from pyomo_relu.formulations.ideal_cuts import add_ideal_cuts
>>> net = NetworkDefinition([DenseLayer([[1.0, 1.0]], [0.0]),
...                          DenseLayer([[1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1), (-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, formulation="ideal_cuts")
>>> print(m.nn.describe())
inputs Var [0, 1]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0]
layer[0].pre Var [0]
layer[0].affine Constraint [0]
layer[0].is_active Var [0]
layer[0].post_at_least_pre Constraint [0]
layer[0].post_at_most_pre_when_active Constraint [0]
layer[0].post_zero_when_inactive Constraint [0]
layer[0].ideal_cuts Constraint []
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'ideal_cuts' to layer 0:
  is_active, post_at_least_pre, post_at_most_pre_when_active, post_zero_when_inactive,
  ideal_cuts
>>> m.obj = pe.Objective(expr=m.nn.outputs[0] - m.nn.inputs[0], sense=pe.maximize)
>>> report = add_ideal_cuts(m)
>>> report.cuts_per_round, report.lp_bound_before, report.lp_bound_after, report.stopped
([1], 2.0, 1.0, 'no_violated_cut')
>>> print(m.nn.layer[0].ideal_cuts[1].expr)
- nn.inputs[0] + nn.layer[0].post[0]  <=  1.0

Big-M's LP reaches 2 at ``x = (−1, 1)``, ``σ = ½``, ``y = 1``; the cut with ``I = {0}``,
``y <= x_0 + 1``, brings the bound to the true maximum 1 of ``max(0, x_0 + x_1) − x_0``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyomo.environ as pe

from pyomo_relu.errors import PyomoReluError, SolverError
from pyomo_relu.formulations.base import LayerContext, frozen_formulation
from pyomo_relu.formulations.bigm import BigM, add_bigm
from pyomo_relu.formulations.partition import linear, present_inputs

logger = logging.getLogger(__name__)

#: Attribute of a layer block that registers it for separation.
_REGISTRY_ATTRIBUTE = "_ideal_cuts_context"


@frozen_formulation
class IdealCuts(BigM):
    """Big-M, an empty ``ideal_cuts`` ConstraintList, and registration for separation.

    No options (``max_rounds``/``tol`` are arguments of :func:`add_ideal_cuts`).
    """

    name = "ideal_cuts"
    reads_weights = True

    def add(self, ctx: LayerContext) -> None:
        add_bigm(ctx)
        ctx.block.ideal_cuts = pe.ConstraintList()
        setattr(ctx.block, _REGISTRY_ATTRIBUTE, ctx)


# ---------------------------------------------------------------- separation
@dataclass
class _Neuron:
    """What separation needs for one unstable neuron."""

    layer_block: Any
    weights: np.ndarray  # non-zero weights, on the neuron's present inputs
    low: np.ndarray  # L̆
    high: np.ndarray  # Ŭ
    inputs: list[Any]
    bias: float
    post: Any
    active: Any


def _neurons(ctx: LayerContext) -> list[_Neuron]:
    columns = present_inputs(ctx)
    out = []
    for j in ctx.unstable:
        j = int(j)
        row = ctx.layer.weights[j, columns]
        keep = columns[row != 0]
        w = ctx.layer.weights[j, keep]
        lo, hi = ctx.input_lower[keep], ctx.input_upper[keep]
        out.append(
            _Neuron(
                ctx.block,
                w,
                np.where(w >= 0, lo, hi),
                np.where(w >= 0, hi, lo),
                [ctx.inputs[i] for i in keep],
                float(ctx.layer.bias[j]),
                ctx.post[j],
                ctx.block.is_active[j],
            )
        )
    return out


def most_violated(
    weights: np.ndarray, low: np.ndarray, high: np.ndarray, bias: float, x: np.ndarray, y: float, sigma: float
) -> tuple[np.ndarray, float]:
    """The subset ``I`` (boolean mask) minimising the right side of (*) and the violation.

    >>> mask, v = most_violated(np.array([1.0, 1.0]), np.array([-1.0, -1.0]), np.array([1.0, 1.0]),
    ...                         0.0, np.array([1.0, -1.0]), 1.0, 0.5)
    >>> mask.tolist(), v
    ([False, True], 1.0)
    """
    inside = weights * (x - low * (1.0 - sigma))
    outside = weights * high * sigma
    mask = inside < outside
    rhs = float(np.where(mask, inside, outside).sum()) + bias * sigma
    return mask, y - rhs


def _cut(neuron: _Neuron, mask: np.ndarray) -> Any:
    w, low, high = neuron.weights, neuron.low, neuron.high
    sigma_coef = neuron.bias + float(w[mask] @ low[mask]) + float(w[~mask] @ high[~mask])
    constant = -float(w[mask] @ low[mask])
    terms = linear(-w[mask], [v for v, m in zip(neuron.inputs, mask) if m])
    if sigma_coef == 0:
        return neuron.post + terms <= constant
    return neuron.post + terms - sigma_coef * neuron.active <= constant


@dataclass
class CutReport:
    """What :func:`add_ideal_cuts` did.

    ``lp_bounds[0]`` is the LP bound before any cut and ``lp_bounds[r]`` the bound after
    round ``r``; ``cuts_per_round[r-1]`` the cuts added in round ``r``.  ``stopped`` is
    ``"no_violated_cut"``, ``"small_improvement"`` or ``"max_rounds"``.
    """

    rounds: int
    cuts_per_round: list[int]
    lp_bounds: list[float]
    seconds: float
    stopped: str
    sense: str = "minimize"
    lp_solves: int = field(default=0)

    @property
    def lp_bound_before(self) -> float:
        return self.lp_bounds[0]

    @property
    def lp_bound_after(self) -> float:
        return self.lp_bounds[-1]

    @property
    def total_cuts(self) -> int:
        return sum(self.cuts_per_round)


def registered_layers(model: Any) -> list[LayerContext]:
    """Contexts of every active layer block built with ``formulation="ideal_cuts"``."""
    found = []
    for blk in model.component_data_objects(pe.Block, active=True, descend_into=True):
        ctx = getattr(blk, _REGISTRY_ATTRIBUTE, None)
        if isinstance(ctx, LayerContext) and ctx.block is blk:
            found.append(ctx)
    return found


def add_ideal_cuts(
    model: Any,
    solver: str = "highs",
    max_rounds: int = 20,
    tol: float = 1e-4,
    violation_tol: float = 1e-6,
    time_limit: float | None = None,
) -> CutReport:
    """Run the cut loop on ``model`` (one active objective) and keep the cuts.

    Args:
        model: the model holding one or more ReLUNetBlocks built with ``"ideal_cuts"``.
        solver: LP solver for :func:`pyomo_relu.solvers.solve` (``"highs"``).
        max_rounds: at most this many separation rounds.
        tol: stop when a round improves the LP bound by at most ``tol · max(1, |bound|)``.
        violation_tol: add an inequality only if violated by more than this.
        time_limit: per LP solve, seconds.

    Returns:
        a :class:`CutReport`.
    """
    start = time.perf_counter()
    neurons, sign = _separation_setup(model)
    saved = [(v, v.value) for v in model.component_data_objects(pe.Var, descend_into=True)]
    relax = pe.TransformationFactory("core.relax_integer_vars")
    token = relax.apply_to(model)
    lp = _LpBound(model, solver, time_limit)
    try:
        bounds, cuts_per_round, stopped = _cut_rounds(lp, neurons, sign, max_rounds, tol, violation_tol)
    finally:
        relax.apply_to(model, reverse=token)
        for var, value in saved:
            var.set_value(value, skip_validation=True)
    return CutReport(
        rounds=len(cuts_per_round),
        cuts_per_round=cuts_per_round,
        lp_bounds=bounds,
        seconds=time.perf_counter() - start,
        stopped=stopped,
        sense="minimize" if sign > 0 else "maximize",
        lp_solves=lp.solves,
    )


def _separation_setup(model: Any) -> tuple[list[_Neuron], float]:
    """The registered neurons of ``model`` and the objective's sign (1 when minimising)."""
    contexts = registered_layers(model)
    if not contexts:
        raise PyomoReluError(
            f"{model.name} has no layer built with formulation='ideal_cuts'; "
            "build a ReLUNetBlock with formulation='ideal_cuts' first"
        )
    objectives = list(model.component_data_objects(pe.Objective, active=True))
    if len(objectives) != 1:
        raise SolverError(f"add_ideal_cuts needs exactly one active objective, the model has {len(objectives)}")
    sign = 1.0 if objectives[0].sense == pe.minimize else -1.0
    return [n for ctx in contexts for n in _neurons(ctx)], sign


@dataclass
class _LpBound:
    """Solves the (relaxed) model and returns its objective; counts the solves."""

    model: Any
    solver: str
    time_limit: float | None
    solves: int = 0

    def __call__(self) -> float:
        from pyomo_relu.solvers import solve  # solvers imports nothing from here; keep it lazy anyway

        result = solve(self.model, self.solver, time_limit=self.time_limit)
        self.solves += 1
        if result.status != "optimal" or result.objective is None:
            raise SolverError(
                f"LP relaxation of {self.model.name} ended with status {result.status!r} "
                f"({result.message}); add_ideal_cuts needs a bounded, feasible LP"
            )
        return float(result.objective)


def _cut_rounds(
    lp: _LpBound, neurons: list[_Neuron], sign: float, max_rounds: int, tol: float, violation_tol: float
) -> tuple[list[float], list[int], str]:
    """The LP bounds, the cuts of every round and why the loop stopped (module doc, steps 1-3)."""
    bounds = [lp()]
    cuts_per_round: list[int] = []
    for _ in range(max_rounds):
        added = _separate(neurons, violation_tol)
        if added == 0:
            return bounds, cuts_per_round, "no_violated_cut"
        cuts_per_round.append(added)
        bounds.append(lp())
        logger.info("ideal cuts round %d: %d cuts, LP bound %.8g", len(cuts_per_round), added, bounds[-1])
        if sign * (bounds[-1] - bounds[-2]) <= tol * max(1.0, abs(bounds[-2])):
            return bounds, cuts_per_round, "small_improvement"
    return bounds, cuts_per_round, "max_rounds"


def _separate(neurons: list[_Neuron], violation_tol: float) -> int:
    """Add the most violated inequality of every neuron violated by more than ``violation_tol``."""
    added = 0
    for neuron in neurons:
        x = np.array([0.0 if v.value is None else v.value for v in neuron.inputs], float)
        y, sigma = neuron.post.value, neuron.active.value
        if y is None or sigma is None:
            continue
        mask, violation = most_violated(neuron.weights, neuron.low, neuron.high, neuron.bias, x, float(y), float(sigma))
        if violation > violation_tol:
            neuron.layer_block.ideal_cuts.add(_cut(neuron, mask))
            added += 1
    return added
