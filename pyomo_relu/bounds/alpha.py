r"""alpha-CROWN: the lower slopes of unstable ReLUs optimised per box and per row.

CROWN (:mod:`pyomo_relu.bounds.crown`) bounds a ReLU ``h = max(0, z)`` on ``[l, u]`` from
below by ``α z`` with CROWN's adaptive ``α ∈ {0, 1}``.  Every ``α ∈ [0, 1]`` gives a sound
line, so the bound of a row ``c·f(x)`` is a function ``L(α)`` of the slopes of all unstable
neurons, and any ``α`` yields a valid bound.  alpha-CROWN (Xu et al. 2021) maximises
``L`` over ``α ∈ [0, 1]^n`` by projected gradient ascent, with a separate ``α`` per box and
per row (each row is its own optimisation problem).

The gradient
------------
The back-substitution of :func:`~pyomo_relu.bounds.crown.back_substitute` for the upper
form ``U(x) = Λ_{-1}·x + c`` of a row is, layer by layer (``j = L-1, ..., 0``)::

    p = max(Λ_j, 0), q = Λ_j - p
    c += p·c_U + q·c_L                 g = p ⊙ a_U + q ⊙ α_j
    Λ_{j-1} = g W_j                    c += g·b_j

and ``U = max_x Λ_{-1}·x + c`` over the box.  Each step is linear given the signs of
``Λ``, so reverse mode is a few matrix products back up the same chain
(:func:`_backward`): with ``G = ∂U/∂Λ_{j-1}`` (``x_hi`` where ``Λ_{-1} > 0``, else
``x_lo``, at the input), ``∂U/∂g = G W_jᵀ + b_j``, ``∂U/∂α_j = ∂U/∂g ⊙ q`` and
``∂U/∂Λ_j = ∂U/∂p`` or ``∂U/∂q`` by the sign of ``Λ_j``.  Adam steps on ``α`` are
projected back onto ``[0, 1]``; the best bound met for each row is kept with its slopes and
its linear form (the bound is sound at every iterate, so keeping the best is sound).

Uses
----
* :func:`optimise_rows`: rows over the network outputs (and inputs) on a batch of boxes,
  given the CROWN relaxations of :func:`~pyomo_relu.bounds.crown.batch_crown`; the search
  engine calls it on the boxes CROWN does not prune, warm-started from the parent's slopes.
* :func:`alpha_crown_bounds`: every layer's neuron bounds (the method ``"alpha-crown"`` of
  :func:`~pyomo_relu.bounds.chain.tighten`), layer by layer: the unstable neurons of layer
  ``k`` are rows over the relaxations of layers ``0..k-1``, which use the tightened bounds.

Max layers keep their CROWN relaxation (no slopes are optimised there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.crown import (
    FLAT_PRODUCT_SIZE,
    BatchBounds,
    DenseRelaxation,
    MaxRelaxation,
    Relaxation,
    _crossed_to,
    _dot,
    _interval,
    _times,
    batch_crown,
    box_maximum,
    relax,
)
from pyomo_relu.errors import ShapeMismatchError
from pyomo_relu.network import MaxLayer, NetworkDefinition
from pyomo_relu.sparse import is_sparse, rows_dense

logger = logging.getLogger(__name__)

__all__ = ["ALPHA_STEPS", "AlphaRows", "alpha_crown_bounds", "optimise_rows"]

#: Gradient steps per call of :func:`optimise_rows` (the search engine) and per layer (bounds).
ALPHA_STEPS = 20
#: Adam's step size on the slopes (they live in ``[0, 1]``).
LEARNING_RATE = 0.25

Slopes = list[np.ndarray | None]
#: One layer of :func:`_forward`'s tape: the relaxation, ``Λ_j``, its negative part, the lower slopes, the split signs.
Tape = tuple[Relaxation, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]


@dataclass
class AlphaRows:
    """The best bounds met: ``upper (B, r)`` of the upper forms ``coef (B, r, n_in)·x + const``.

    ``slopes[j]`` is ``(B, r, n_j)`` (full layer width; ``None`` for max layers), the slopes
    that gave each row's best bound, for warm starts.
    """

    upper: np.ndarray
    coef: np.ndarray
    const: np.ndarray
    slopes: Slopes


def _times_transpose(grad: np.ndarray, weights) -> np.ndarray:
    """``grad @ weightsᵀ`` for ``grad`` ``(B, r, n_in)`` and dense or CSR ``weights`` ``(m, n_in)``."""
    batch, rows, n = grad.shape
    if not is_sparse(weights):
        if weights.size < FLAT_PRODUCT_SIZE:
            return grad @ np.asarray(weights).T
        return (grad.reshape(batch * rows, n) @ np.asarray(weights).T).reshape(batch, rows, -1)
    flat = np.ascontiguousarray(grad).reshape(batch * rows, n)
    return np.asarray((weights @ flat.T).T).reshape(batch, rows, weights.shape[0])


def _take(relaxed: Relaxation, boxes: np.ndarray) -> Relaxation:
    """The relaxation of the boxes ``boxes`` of a batch."""
    if isinstance(relaxed, MaxRelaxation):
        return replace(
            relaxed, mask_u=relaxed.mask_u[boxes], intercept_u=relaxed.intercept_u[boxes], mask_l=relaxed.mask_l[boxes]
        )
    return replace(
        relaxed,
        slope_u=relaxed.slope_u[boxes],
        intercept_u=relaxed.intercept_u[boxes],
        slope_l=relaxed.slope_l[boxes],
        intercept_l=relaxed.intercept_l[boxes],
        unstable=relaxed.unstable[boxes],
    )


def expand(relaxed: Relaxation, layer) -> Relaxation:
    """``relaxed`` with every neuron of ``layer`` kept (zero lines for the dropped ones), so split terms reach them."""
    if isinstance(relaxed, MaxRelaxation) or relaxed.keep.size == layer.n_pre:
        return relaxed
    batch, n = relaxed.slope_u.shape[0], layer.n_pre

    def full(values: np.ndarray, fill=0.0) -> np.ndarray:
        out = np.full((batch, n), fill, dtype=values.dtype)
        out[:, relaxed.keep] = values
        return out

    return DenseRelaxation(
        full(relaxed.slope_u),
        full(relaxed.intercept_u),
        full(relaxed.slope_l),
        full(relaxed.intercept_l),
        full(relaxed.unstable, False),
        np.arange(n),
        layer.weights,
        layer.bias,
    )


def initial_slopes(relaxations: Sequence[Relaxation], n_rows: int, widths: Sequence[int]) -> Slopes:
    """CROWN's adaptive lower slopes, one copy per row: ``(B, r, n_j)`` per layer."""
    slopes: Slopes = []
    for relaxed, width in zip(relaxations, widths):
        if isinstance(relaxed, MaxRelaxation):
            slopes.append(None)
            continue
        full = np.zeros((relaxed.slope_l.shape[0], width))
        full[:, relaxed.keep] = relaxed.slope_l
        slopes.append(np.repeat(full[:, None, :], n_rows, axis=1))
    return slopes


def _forward(
    relaxations: Sequence[Relaxation],
    coef: np.ndarray,
    const: np.ndarray,
    slopes: Slopes,
    betas: Slopes | None = None,
    signs: Slopes | None = None,
):
    """The back-substitution with per-row lower slopes, and the tape :func:`_backward` needs.

    ``signs[j]`` (``(B, n_j)``: ``+1`` for a neuron split active, ``-1`` inactive, 0 otherwise)
    and ``betas[j]`` (``(B, r, n_j) >= 0``) add the split constraints' Lagrangian terms
    ``s β z_j`` (beta-CROWN): ``g <- g + s ⊙ β``.
    """
    tape: list[Tape] = []
    betas = betas if betas is not None else [None] * len(relaxations)
    signs = signs if signs is not None else [None] * len(relaxations)
    for relaxed, alpha, beta, sign in zip(reversed(relaxations), reversed(slopes), reversed(betas), reversed(signs)):
        if isinstance(relaxed, MaxRelaxation):
            tape.append((relaxed, coef, None, None, None))
            coef, const = relaxed.substitute(coef, const)
            continue
        assert alpha is not None  # every dense layer has slopes
        lam = coef if relaxed.keep.size == coef.shape[-1] else coef[..., relaxed.keep]
        positive = np.maximum(lam, 0.0)
        negative = lam - positive
        slope_l = np.where(relaxed.unstable[:, None, :], alpha[..., relaxed.keep], relaxed.slope_l[:, None, :])
        const = const + _dot(positive, relaxed.intercept_u) + _dot(negative, relaxed.intercept_l)
        g = positive * relaxed.slope_u[:, None, :] + negative * slope_l
        kept_sign = None
        if beta is not None and sign is not None:
            kept_sign = sign[:, None, relaxed.keep]
            g = g + kept_sign * beta[..., relaxed.keep]
        tape.append((relaxed, lam, negative, slope_l, kept_sign))
        coef, const = _times(g, relaxed.weights), const + g @ relaxed.bias
    return coef, const, tape[::-1]


def _backward(tape, grad: np.ndarray, widths: Sequence[int]) -> tuple[Slopes, Slopes]:
    """``∂U/∂α_j`` and ``∂U/∂β_j`` per layer from ``grad = ∂U/∂Λ_{-1}`` (see the module docstring)."""
    out: Slopes = []
    out_beta: Slopes = []
    for j, (relaxed, lam, negative, slope_l, kept_sign) in enumerate(tape):
        positive = lam > 0
        if isinstance(relaxed, MaxRelaxation):
            d_g = _times_transpose(grad, relaxed.weights) + relaxed.bias
            up = d_g * relaxed.mask_u[:, None, :]
            down = d_g * relaxed.mask_l[:, None, :]
            d_u = np.zeros(grad.shape[:2] + (widths[j],))
            d_l = np.zeros_like(d_u)
            groups: tuple[Any, ...] = (slice(None), slice(None), relaxed.groups)
            np.add.at(d_u, groups, up)
            np.add.at(d_l, groups, down)
            grad = np.where(positive, d_u + relaxed.intercept_u[:, None, :], d_l)
            out.append(None)
            out_beta.append(None)
            continue
        d_g = _times_transpose(grad, relaxed.weights) + relaxed.bias
        d_alpha = np.zeros(grad.shape[:2] + (widths[j],))
        d_alpha[..., relaxed.keep] = np.where(relaxed.unstable[:, None, :], d_g * negative, 0.0)
        out.append(d_alpha)
        if kept_sign is None:
            out_beta.append(None)
        else:
            d_beta = np.zeros_like(d_alpha)
            d_beta[..., relaxed.keep] = d_g * kept_sign
            out_beta.append(d_beta)
        d_lam = np.where(
            positive,
            d_g * relaxed.slope_u[:, None, :] + relaxed.intercept_u[:, None, :],
            d_g * slope_l + relaxed.intercept_l[:, None, :],
        )
        if relaxed.keep.size == widths[j]:
            grad = d_lam
        else:
            grad = np.zeros(grad.shape[:2] + (widths[j],))
            grad[..., relaxed.keep] = d_lam
    return out, out_beta


def intercept_scores(
    relaxations: Sequence[Relaxation], widths: Sequence[int], coef: np.ndarray, slopes: Slopes
) -> Slopes:
    """BaBSR's intercept term per unstable ReLU: ``max(Λ_j, 0) · c_U`` for the upper forms ``coef`` ``(B, r, n)``.

    The chord's intercept ``c_U = -u l / (u - l)`` is what the bound loses to neuron ``j``'s
    relaxation; splitting the neuron removes it.  ``(B, r, n_j)`` per layer (``None`` for max layers).
    """
    _, _, tape = _forward(relaxations, coef, np.zeros(coef.shape[:2]), slopes)
    out: Slopes = []
    for (relaxed, lam, _, _, _), width in zip(tape, widths):
        if isinstance(relaxed, MaxRelaxation):
            out.append(None)
            continue
        score = np.zeros(lam.shape[:2] + (width,))
        score[..., relaxed.keep] = np.where(
            relaxed.unstable[:, None, :], np.maximum(lam, 0.0) * relaxed.intercept_u[:, None, :], 0.0
        )
        out.append(score)
    return out


class _Adam:
    """Adam on a list of arrays, projected onto ``[0, limit]`` after each step (1 for slopes, inf for betas)."""

    def __init__(self, params: Slopes, rate: float, limits: Sequence[float] | None = None) -> None:
        self.rate, self.t = rate, 0
        self.limits = list(limits) if limits is not None else [1.0] * len(params)
        self.m: list[np.ndarray] = [np.zeros(0) if p is None else np.zeros_like(p) for p in params]
        self.v: list[np.ndarray] = [np.zeros(0) if p is None else np.zeros_like(p) for p in params]

    def step(self, params: Slopes, grads: Slopes) -> Slopes:
        """Descend: ``params - rate · m̂ / (√v̂ + ε)``, clipped to ``[0, 1]``."""
        self.t += 1
        new: Slopes = []
        for i, (p, g) in enumerate(zip(params, grads)):
            if p is None or g is None:
                new.append(p)
                continue
            self.m[i] = 0.9 * self.m[i] + 0.1 * g
            self.v[i] = 0.999 * self.v[i] + 0.001 * g * g
            m_hat = self.m[i] / (1 - 0.9**self.t)
            v_hat = self.v[i] / (1 - 0.999**self.t)
            new.append(np.clip(p - self.rate * m_hat / (np.sqrt(v_hat) + 1e-12), 0.0, self.limits[i]))
        return new


def _zero_betas(relaxations: Sequence[Relaxation], signs: Slopes | None, shape: tuple[int, ...]) -> Slopes:
    """beta-CROWN's multipliers at 0, ``(B, r, n_j)`` for the layers with split neurons (``None`` elsewhere)."""
    if signs is None:
        return [None] * len(relaxations)
    return [
        None
        if sign is None or not np.any(sign) or isinstance(relaxed, MaxRelaxation)
        else np.zeros(tuple(shape) + (sign.shape[1],))
        for sign, relaxed in zip(signs, relaxations)
    ]


def optimise_upper(
    relaxations: Sequence[Relaxation],
    widths: Sequence[int],
    coef: np.ndarray,
    const: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    slopes: Slopes | None = None,
    steps: int = ALPHA_STEPS,
    rate: float = LEARNING_RATE,
    deadline: float | None = None,
    shift: np.ndarray | None = None,
    signs: Slopes | None = None,
) -> AlphaRows:
    """Minimise ``max_x U(x)`` of the forms ``coef·h + const`` (``(B, r, n)``, ``(B, r)``) over the slopes.

    ``relaxations`` (layers ``0..k-1``, ``widths`` their sizes) lead from the input box
    ``[lower, upper]`` (``(B, n_in)``) to ``h``; ``slopes`` warm-starts (``(B, r, n_j)``; CROWN's
    adaptive slopes by default); ``shift`` (``(r, n_in)``) is added to the final forms in ``x``
    (an input term of the rows, independent of the slopes); ``signs`` (per layer ``(B, n_j)``
    or ``None``: +1/-1 for neurons split active/inactive) add beta-CROWN's multipliers
    ``β >= 0`` of the split constraints, optimised with the slopes from 0.  Step 0 is the
    starting point itself, so the result is never looser than CROWN with those slopes.
    """
    if slopes is None:
        slopes = initial_slopes(relaxations, coef.shape[1], widths)
    slopes = [None if s is None else np.clip(s, 0.0, 1.0) for s in slopes]
    n = len(slopes)
    betas = _zero_betas(relaxations, signs, coef.shape[:2])
    adam = _Adam(slopes + betas, rate, [1.0] * n + [np.inf] * n)
    best: AlphaRows | None = None
    for step in range(steps + 1):
        form, offset, tape = _forward(relaxations, coef, const, slopes, betas, signs)
        if shift is not None:
            form = form + shift
        value = box_maximum(form, offset, lower, upper)
        if best is None:
            best = AlphaRows(value, form, offset, slopes)
        else:
            better = value < best.upper
            best = AlphaRows(
                np.where(better, value, best.upper),
                np.where(better[..., None], form, best.coef),
                np.where(better, offset, best.const),
                [
                    None if s is None or b is None else np.where(better[..., None], s, b)
                    for s, b in zip(slopes, best.slopes)
                ],
            )
        if step == steps or (deadline is not None and time.perf_counter() > deadline):
            break
        grad = np.where(form > 0, upper[:, None, :], lower[:, None, :])
        d_alpha, d_beta = _backward(tape, grad, widths)
        params = adam.step(slopes + betas, d_alpha + d_beta)
        slopes, betas = params[:n], params[n:]
    assert best is not None
    return best


def optimise_rows(
    bounds: BatchBounds,
    widths: Sequence[int],
    rows: np.ndarray,
    input_rows: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    *,
    slopes: Slopes | None = None,
    steps: int = ALPHA_STEPS,
    deadline: float | None = None,
    signs: Slopes | None = None,
) -> tuple[AlphaRows, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """alpha-CROWN lower bounds of ``rows @ f(x) + input_rows @ x`` on the boxes ``boxes`` of a batch.

    Returns ``(best, row_lower (b, r), (coef, const))``: the optimiser's state (``best.slopes``
    warm-start the children), the bounds, and the lower forms ``rows_i f(x) + input_rows_i x
    >= coef_i·x + const_i`` (the convention of :func:`~pyomo_relu.bounds.crown.linear_bounds`).
    """
    boxes = np.arange(bounds.input_lower.shape[0]) if boxes is None else np.asarray(boxes)
    relaxations = [_take(relaxed, boxes) for relaxed in bounds.relaxations]
    rows = np.atleast_2d(np.asarray(rows, float))
    coef = np.broadcast_to(-rows, (boxes.size,) + rows.shape)
    const = np.zeros((boxes.size, rows.shape[0]))
    lower, upper = bounds.input_lower[boxes], bounds.input_upper[boxes]
    # the input term -input_rows·x joins at the end: fold it in as a layer-free offset of the form
    shift = None if input_rows is None else -np.asarray(input_rows, float)
    best = optimise_upper(
        relaxations,
        widths,
        coef,
        const,
        lower,
        upper,
        slopes=slopes,
        steps=steps,
        deadline=deadline,
        shift=shift,
        signs=None if signs is None else [None if g is None else g[boxes] for g in signs],
    )
    return best, -best.upper, (-best.coef, -best.const)


# ---------------------------------------------------------------- every layer
def rows_to_optimise(layer, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Neurons whose bounds alpha-CROWN tightens in some box: unstable ReLUs and open non-ReLUs.

    ``low``/``high`` are ``(B, n)``; a max layer's rows are all open.
    """
    if isinstance(layer, MaxLayer):
        return np.arange(layer.n_pre)
    relu = layer.relu_mask
    open_ = (relu & (low < 0) & (high > 0)) | (~relu & (high > low))
    return np.flatnonzero(open_.any(axis=0))


def alpha_layer_bounds(
    layers: Sequence,
    lower: np.ndarray,
    upper: np.ndarray,
    start=None,
    *,
    steps: int = ALPHA_STEPS,
    deadline: float | None = None,
) -> BatchBounds:
    """alpha-CROWN bounds of every layer over ``B`` boxes, never looser than :func:`batch_crown`'s.

    Layer ``k``'s open neurons are rows ``[W; -W]`` over the relaxations of layers ``0..k-1``,
    which are rebuilt on the tightened bounds before layer ``k + 1`` is bounded; each
    layer is also intersected with interval arithmetic from the tightened layer before it.
    """
    crown = batch_crown(layers, lower, upper, start)
    pre_lower, pre_upper = list(crown.lower), list(crown.upper)
    relaxations = list(crown.relaxations)
    widths = [layer.n_outputs for layer in layers]
    h_low, h_high = layers[0].output_bounds(pre_lower[0], pre_upper[0])
    for k in range(1, len(layers)):
        layer = layers[k]
        low, high = _interval(layer, h_low, h_high)
        low, high = _crossed_to(
            np.maximum(low, pre_lower[k]), np.minimum(high, pre_upper[k]), (pre_lower[k], pre_upper[k])
        )
        sel = rows_to_optimise(layer, low, high)
        if sel.size and (deadline is None or time.perf_counter() < deadline):
            rows = rows_dense(layer.weights, sel)
            coef = np.broadcast_to(np.concatenate([rows, -rows]), (low.shape[0], 2 * sel.size, rows.shape[1]))
            const = np.broadcast_to(np.concatenate([layer.bias[sel], -layer.bias[sel]]), (low.shape[0], 2 * sel.size))
            best = optimise_upper(
                relaxations[:k],
                widths[:k],
                coef,
                const,
                crown.input_lower,
                crown.input_upper,
                steps=steps,
                deadline=deadline,
            )
            new_low, new_high = low.copy(), high.copy()
            new_low[:, sel] = np.maximum(low[:, sel], -best.upper[:, sel.size :])
            new_high[:, sel] = np.minimum(high[:, sel], best.upper[:, : sel.size])
            low, high = _crossed_to(new_low, new_high, (low, high))
        pre_lower[k], pre_upper[k] = low, high
        relaxations[k] = relax(layer, low, high)
        h_low, h_high = layer.output_bounds(low, high)
    return BatchBounds(pre_lower, pre_upper, relaxations, h_low, h_high, crown.input_lower, crown.input_upper)


def alpha_crown_bounds(
    net: NetworkDefinition,
    input_lower: np.ndarray | None = None,
    input_upper: np.ndarray | None = None,
    start: Bounds | None = None,
    *,
    steps: int = ALPHA_STEPS,
    time_limit: float | None = None,
) -> Bounds:
    """alpha-CROWN bounds of every canonical layer over the box (``tighten``'s ``"alpha-crown"``).

    Never looser than CROWN, interval or ``start``; ``time_limit`` (seconds) stops the slope
    optimisation early (the layers not reached keep their CROWN bounds).  The result's
    methods are ``start.methods + ("alpha-crown",)``.
    """
    lower = net.input_lower if input_lower is None else np.asarray(input_lower, float)
    upper = net.input_upper if input_upper is None else np.asarray(input_upper, float)
    if lower.shape != (net.n_inputs,) or upper.shape != (net.n_inputs,):
        raise ShapeMismatchError(
            f"input box has shapes {lower.shape} / {upper.shape}, the network has {net.n_inputs} inputs"
        )
    layers = net.canonical_layers
    first = None
    if start is not None:
        start.check_compatible(net.content_hash(), lower, upper)
        first = (start.lower, start.upper)
    deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        logger.info("alpha-crown needs a bounded input box; CROWN bounds kept")
        result = batch_crown(layers, lower[None], upper[None], first)
    else:
        result = alpha_layer_bounds(layers, lower[None], upper[None], first, steps=steps, deadline=deadline)
    methods = (start.methods if start is not None else ()) + ("alpha-crown",)
    return Bounds(
        tuple(a[0] for a in result.lower), tuple(a[0] for a in result.upper), lower, upper, net.content_hash(), methods
    )
