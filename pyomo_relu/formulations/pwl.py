r"""Certified piecewise-linear relaxation of smooth neurons (tanh, sigmoid, softplus): a MILP.

Each smooth neuron ``y = f(z)`` with ``z`` in ``[l, u]`` is enclosed between two
continuous piecewise-linear functions ``g_L <= f <= g_U`` with common breakpoints
``l = b_0 < ... < b_K = u`` and ``max (g_U - g_L) <= tolerance`` (option ``tolerance``,
default ``1e-2``) or at most ``pieces`` segments (option ``pieces``).  Breakpoints and
the sound offsets come from :func:`pyomo_relu.smooth.enclosure` (a breakpoint at the
inflection point, chords exact on the convex or concave side, the other side offset by
the chord's exact largest deviation).  The neuron is then constrained to the band
``g_L(z) <= y <= g_U(z)``:

* one segment (``K = 1``): two inequalities, no binary::

      y <= U_0 + s_U (z - b_0)     (pwl_upper)         y >= L_0 + s_L (z - b_0)     (pwl_lower)

* ``K >= 2`` segments: the incremental (Markowitz-Manne) formulation with fill
  variables ``δ_k`` in ``[0, 1]`` and ``K - 1`` binaries ``w_k``::

      z = b_0 + Σ_k (b_{k+1} - b_k) δ_k                (pwl_pre)
      y <= U_0 + Σ_k (U_{k+1} - U_k) δ_k               (pwl_upper)
      y >= L_0 + Σ_k (L_{k+1} - L_k) δ_k               (pwl_lower)
      δ_{k+1} <= w_k <= δ_k                            (pwl_fill_needs_beyond, pwl_beyond_needs_fill)

  At integer ``w`` the ``δ`` fill the segments in order, so ``z`` and both sides are
  exact on the segment that holds ``z``; the formulation is ideal (its LP relaxation is
  the convex hull of the band).

ReLU neurons of the layer get :mod:`~pyomo_relu.formulations.bigm` (exact).  Because
``g_L <= f <= g_U``, every forward pass of the network is feasible for the model: the
MILP is a **relaxation** of the smooth network, its optimum a proven bound on the true
optimum, and the network evaluated at its solution a feasible point
(:mod:`pyomo_relu.certify` reports both).  :func:`approximation_error` bounds how far
the block's outputs can be from the network's at the same inputs
(``ReLUNetBlock.approximation_error()``).

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0], [0.5], [3.0]], [0.0, 2.0, 0.0], "tanh"),
...                          DenseLayer([[1.0, 1.0, 1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, formulation=("pwl", {"tolerance": 0.05}))
>>> print(m.nn.describe())
inputs Var [0]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0, 1, 2]
layer[0].pre Var [0, 1, 2]
layer[0].affine Constraint [0, 1, 2]
layer[0].pwl_fill Var [(0, 0), (0, 1), (0, 2), (0, 3), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (2, 5)]
layer[0].pwl_beyond Var [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4)]
layer[0].pwl_pre Constraint [0, 2]
layer[0].pwl_upper Constraint [0, 1, 2]
layer[0].pwl_lower Constraint [0, 1, 2]
layer[0].pwl_beyond_needs_fill Constraint [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4)]
layer[0].pwl_fill_needs_beyond Constraint [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4)]
layer[1].pre Var []
layer[1].affine Constraint [0]
>>> m.nn.layer[0]._pwl.breakpoints[0].round(3)   # neuron 0, z in [-1, 1]: 4 pieces
array([-1.   , -0.618,  0.   ,  0.618,  1.   ])
>>> m.nn.layer[0]._pwl.breakpoints[1]              # neuron 1, z in [1.5, 2.5]: one chord
array([1.5, 2.5])
>>> print(m.nn.layer[0].pwl_upper[1].expr)
nn.layer[0].post[1] - 0.0814660445065638*nn.layer[0].pre[1]  <=  0.8015052404389024
>>> m.nn.stats()["binaries"], m.nn.approximation_error().round(4)
(8, array([0.1186]))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pe
from pyomo.core.expr.numeric_expr import LinearExpression, MonomialTermExpression

from pyomo_relu.errors import PyomoReluError
from pyomo_relu.formulations.base import LayerContext, frozen_formulation
from pyomo_relu.formulations.bigm import BigM
from pyomo_relu.network import MaxLayer
from pyomo_relu.smooth import enclosure, propagate_error

DEFAULT_TOLERANCE = 1e-2


@dataclass(frozen=True)
class NeuronBands:
    """The enclosure of the smooth neurons of one layer (kept on the layer block as ``_pwl``)."""

    neurons: np.ndarray
    breakpoints: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    lower: tuple[np.ndarray, ...]
    above: np.ndarray  # max (g_U - f) per neuron
    below: np.ndarray  # max (f - g_L) per neuron


@frozen_formulation
class Pwl(BigM):
    """Smooth neurons in a certified band (``tolerance`` or ``pieces``); unstable ReLUs by big-M."""

    name = "pwl"
    smooth = True

    tolerance: float | None = None
    pieces: int | None = None

    def validate(self) -> None:
        tol, pieces = self.tolerance, self.pieces
        if tol is not None and pieces is not None:
            raise PyomoReluError("formulation 'pwl': give tolerance= or pieces=, not both")
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 1e-8):
            raise PyomoReluError(f"formulation 'pwl': tolerance must be a number >= 1e-8, not {tol!r}")
        if pieces is not None and (isinstance(pieces, bool) or not isinstance(pieces, (int, np.integer)) or pieces < 1):
            raise PyomoReluError(f"formulation 'pwl': pieces must be a positive integer, not {pieces!r}")

    def build_smooth(self, ctx: LayerContext, neurons: np.ndarray) -> None:
        """Add the band ``g_L(pre) <= post <= g_U(pre)`` of every smooth neuron (see module doc)."""
        build_bands(ctx, bands(ctx, np.asarray(neurons, dtype=int), self))

    def initialize_smooth(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        initialize_bands(ctx, pre_values)

    def post_error(self, ctx: LayerContext) -> tuple[np.ndarray, np.ndarray] | None:
        """The bands of the smooth neurons (``None`` when the layer has none)."""
        data = getattr(ctx.block, "_pwl", None)
        if data is None:
            return None
        below, above = np.zeros(ctx.layer.n_outputs), np.zeros(ctx.layer.n_outputs)
        below[data.neurons], above[data.neurons] = data.below, data.above
        return below, above


def bands(ctx: LayerContext, neurons: np.ndarray, options: Pwl | None = None) -> NeuronBands:
    """Enclose the smooth ``neurons`` of the layer over their pre-activation bounds."""
    options = options if options is not None else Pwl()
    option: dict[str, Any] = (
        {"pieces": int(options.pieces)}
        if options.pieces is not None
        else {"tolerance": float(DEFAULT_TOLERANCE if options.tolerance is None else options.tolerance)}
    )
    kinds = ctx.layer.kinds[neurons]
    points: list = [None] * neurons.size
    upper, lower = list(points), list(points)
    above, below = np.zeros(neurons.size), np.zeros(neurons.size)
    for kind in sorted(set(kinds.tolist())):
        rows = np.flatnonzero(kinds == kind)
        cols = neurons[rows]
        enc = enclosure(kind, ctx.lower[cols], ctx.upper[cols], **option)
        above[rows], below[rows] = enc.above, enc.below
        for r, b, u, lo in zip(rows.tolist(), enc.breakpoints, enc.upper, enc.lower):
            points[r], upper[r], lower[r] = b, u, lo
    return NeuronBands(neurons, tuple(points), tuple(upper), tuple(lower), above, below)


def build_bands(ctx: LayerContext, data: NeuronBands) -> None:
    """The incremental formulation of the bands ``data`` (see module doc)."""
    block, pre, post = ctx.block, ctx.pre, ctx.post
    block._pwl = data  # read by initialize_smooth and approximation_error
    by_neuron = {int(j): r for r, j in enumerate(data.neurons)}
    multi = [int(j) for j, b in zip(data.neurons, data.breakpoints) if len(b) > 2]
    fills = [(j, k) for j in multi for k in range(len(data.breakpoints[by_neuron[j]]) - 1)]
    steps = [(j, k) for j in multi for k in range(len(data.breakpoints[by_neuron[j]]) - 2)]
    block.pwl_fill = pe.Var(
        pe.Set(initialize=fills, dimen=2, ordered=True),
        bounds=(0.0, 1.0),
        doc="how much of segment k the pre-activation has passed",
    )
    block.pwl_beyond = pe.Var(
        pe.Set(initialize=steps, dimen=2, ordered=True),
        within=pe.Binary,
        doc="1 when the pre-activation is beyond breakpoint k + 1",
    )
    fill, beyond = block.pwl_fill, block.pwl_beyond

    def filled(j: int, values: np.ndarray) -> list:
        """Monomials ``-(v_{k+1} - v_k) δ_k`` of neuron ``j``."""
        return [MonomialTermExpression((-float(c), fill[j, k])) for k, c in enumerate(np.diff(values))]

    def side(j: int, which: str) -> tuple:
        r = by_neuron[j]
        b, values = data.breakpoints[r], (data.upper if which == "upper" else data.lower)[r]
        if len(b) > 2:
            expr = LinearExpression([MonomialTermExpression((1.0, post[j]))] + filled(j, values))
            rhs = float(values[0])
        else:
            slope = float((values[1] - values[0]) / (b[1] - b[0])) if b[1] > b[0] else 0.0
            expr = LinearExpression([MonomialTermExpression((1.0, post[j])), MonomialTermExpression((-slope, pre[j]))])
            rhs = float(values[0] - slope * b[0])
        return (None, expr, rhs) if which == "upper" else (rhs, expr, None)

    block.pwl_pre = pe.Constraint(
        pe.Set(initialize=multi, dimen=1, ordered=True),
        rule=lambda b, j: (
            float(data.breakpoints[by_neuron[j]][0]),
            LinearExpression([MonomialTermExpression((1.0, pre[j]))] + filled(j, data.breakpoints[by_neuron[j]])),
            float(data.breakpoints[by_neuron[j]][0]),
        ),
    )
    curved = pe.Set(initialize=[int(j) for j in data.neurons], dimen=1, ordered=True)
    block.pwl_upper = pe.Constraint(curved, rule=lambda b, j: side(j, "upper"))
    block.pwl_lower = pe.Constraint(curved, rule=lambda b, j: side(j, "lower"))
    block.pwl_beyond_needs_fill = pe.Constraint(beyond.index_set(), rule=lambda b, j, k: beyond[j, k] - fill[j, k] <= 0)
    block.pwl_fill_needs_beyond = pe.Constraint(
        beyond.index_set(), rule=lambda b, j, k: fill[j, k + 1] - beyond[j, k] <= 0
    )


def initialize_bands(ctx: LayerContext, pre_values: np.ndarray) -> None:
    """Set ``δ`` and ``w`` from the pre-activations (the forward pass lies in every band)."""
    data = getattr(ctx.block, "_pwl", None)
    if data is None:
        return
    fill, beyond = ctx.block.pwl_fill, ctx.block.pwl_beyond
    for j, b in zip(data.neurons.tolist(), data.breakpoints):
        if len(b) <= 2:
            continue
        z = float(np.clip(pre_values[j], b[0], b[-1]))
        delta = np.clip((z - b[:-1]) / np.diff(b), 0.0, 1.0)
        for k, value in enumerate(delta.tolist()):
            fill[j, k].set_value(value, skip_validation=True)
            if k < len(delta) - 1:
                beyond[j, k].set_value(1 if value >= 1.0 else 0, skip_validation=True)


def approximation_error(layers: Sequence[Any], bounds: Any, contexts: list[tuple[str, LayerContext]]) -> np.ndarray:
    """Sound bound per output on ``|block output - network output|`` at the same inputs.

    ``layers`` are the canonical layers, ``bounds`` their :class:`~pyomo_relu.bounds.Bounds`
    and ``contexts`` the ``(formulation, LayerContext)`` pairs of a built block.  Each
    layer's formulation says how far its ``post`` may be from the activation
    (:meth:`~pyomo_relu.formulations.base.Formulation.post_error`: the bands of ``pwl``,
    the triangle of ``relaxation``, ``sqrt(eps)`` of ``complementarity``); exact blocks
    give zeros.  See :func:`pyomo_relu.smooth.propagate_error`.
    """
    errors = [neuron_errors(ctx) for _, ctx in contexts]
    if all(e is None for e in errors):
        return np.zeros(layers[-1].n_outputs)
    low, high = propagate_error(list(layers), list(bounds.lower), list(bounds.upper), errors)
    return np.maximum(-low, high)


def neuron_errors(ctx: LayerContext) -> tuple[np.ndarray, np.ndarray] | None:
    """``(below, above)`` of one layer's post-activations (``None``: exact); max layers are exact."""
    if isinstance(ctx.layer, MaxLayer) or ctx.chosen is None:
        return None
    errors = ctx.chosen.post_error(ctx)
    if errors is None or not (errors[0].any() or errors[1].any()):
        return None
    return errors
