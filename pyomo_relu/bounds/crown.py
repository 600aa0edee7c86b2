r"""CROWN / DeepPoly symbolic bounds: linear relaxations back-substituted to the input box.

Setting
-------
Canonical layer ``k`` computes ``z_k = W_k h_{k-1} + b_k`` and ``h_k = σ_k(z_k)``, with
``h_{-1} = x`` in the input box ``[x_lo, x_hi]``.  Given bounds ``l_j <= z_j <= u_j`` of every
earlier layer, each activation is sandwiched between two lines, neuron by neuron::

    a_L z + c_L  <=  σ(z)  <=  a_U z + c_U        for l <= z <= u

* linear layer, or ReLU with ``l >= 0`` (stable active): ``a_L = a_U = 1``, ``c = 0``;
* ReLU with ``u <= 0`` (stable inactive): ``a_L = a_U = 0``, ``c = 0``;
* ReLU with ``l < 0 < u`` (unstable): the chord ``a_U = u / (u - l)``, ``c_U = -a_U l``
  above, and ``a_L = 1 if u >= -l else 0``, ``c_L = 0`` below (CROWN's adaptive slope: it
  minimises the area between the lower line and the ReLU).

Back-substitution
-----------------
To bound row ``i`` of ``z_k`` from above, start from the linear form ``λ·h_{k-1} + c`` with
``λ = W_k[i]`` and ``c = b_k[i]``.  For ``j = k-1, ..., 0``: a positive coefficient needs an
upper bound of ``h_j`` and a negative one a lower bound, so::

    λ·h_j <= (λ⁺ ⊙ a_U + λ⁻ ⊙ a_L)·z_j + λ⁺·c_U + λ⁻·c_L        (λ⁺ = max(λ,0), λ⁻ = min(λ,0))

and substituting ``z_j = W_j h_{j-1} + b_j`` gives a new linear form in ``h_{j-1}``::

    λ <- (λ⁺ ⊙ a_U + λ⁻ ⊙ a_L) W_j        c <- c + λ⁺·c_U + λ⁻·c_L + (λ⁺ ⊙ a_U + λ⁻ ⊙ a_L)·b_j

Once the form is in ``x``, it is maximised over the box: ``λ⁺·x_hi + λ⁻·x_lo + c``.  Every
step is sound, so the result is an upper bound of ``z_k[i]``; the lower bound is minus the
upper bound of ``-z_k[i]``.  Both are computed at once, with all rows of ``[W_k; -W_k]``
as a matrix ``Λ``, so each layer costs a few matrix products.

Layers are processed in order, and each layer's bounds are intersected with its interval
bounds (computed from the tightest bounds of the previous layer) and with ``start``; the
relaxations of later layers use these tightest bounds, and the result is never looser
than interval arithmetic or than ``start``.  The first layer is exact (the same as interval).

Batches
-------
This is the package's one back-substitution.  It works on ``B`` boxes at once (arrays
``(B, n)``), so :func:`crown_bounds` is the case ``B = 1`` and the search engine
(:mod:`pyomo_relu.search`) bounds a whole batch of sub-boxes in a few matrix products.
:func:`batch_crown` gives every layer's bounds and relaxation per box;
:func:`linear_bounds` then gives, for any rows ``C`` over the outputs (and ``C_x`` over
the inputs), sound linear lower bounds ``C f(x) + C_x x >= Λ x + μ`` on each box, trying
three lower slopes for unstable ReLUs (CROWN's adaptive one, 0 and 1) and keeping each.
``lower_slopes`` replaces the adaptive slopes (any value in ``[0, 1]`` is sound: alpha-CROWN
optimises them).  Neurons whose lines are zero in every box of the batch (ReLUs proven
inactive) are skipped.

Example
-------
A 2-2-1 network on ``[-1, 1]^2``: the output is ``relu(x0 + x1) + relu(x0 - x1)``, whose
exact range is ``[0, 2]``.  Both hidden neurons range over ``[-2, 2]``, so their upper
lines are the chord ``(z + 2) / 2`` and the sum is bounded by ``(2 x0 + 4) / 2 <= 3``, where
interval arithmetic gives 4.  The lower lines ``1 * z`` add up to ``2 x0 >= -2``, weaker
than interval's 0, which is kept:

>>> from pyomo_relu.network import DenseLayer, NetworkDefinition
>>> net = NetworkDefinition([DenseLayer([[1.0, 1.0], [1.0, -1.0]], [0.0, 0.0], "relu"),
...                          DenseLayer([[1.0, 1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1), (-1, 1)])
>>> b = crown_bounds(net)
>>> b.lower, b.upper
((array([-2., -2.]), array([0.])), (array([2., 2.]), array([3.])))
>>> b.methods
('crown',)
>>> from pyomo_relu.bounds.interval import interval_bounds
>>> interval_bounds(net).upper[1]
array([4.])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.interval import affine_interval
from pyomo_relu.errors import ShapeMismatchError
from pyomo_relu.network import Layer, MaxLayer, NetworkDefinition, group_max, smooth_lines
from pyomo_relu.sparse import Weights, dense, is_sparse, negative_part, positive_part, rows_dense
from pyomo_relu.step import step_lines, unstable_step

__all__ = [
    "BatchBounds",
    "DenseRelaxation",
    "MaxRelaxation",
    "batch_crown",
    "box_maximum",
    "crown_bounds",
    "first_argmax",
    "linear_bounds",
    "max_relaxation",
    "relax",
    "relaxation",
]

#: Lower-slope choices tried by :func:`linear_bounds` (CROWN's adaptive one first).
SLOPE_VARIANTS = ("adaptive", "zero", "one")


def relaxation(lower: np.ndarray, upper: np.ndarray, activation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slopes and intercept ``(a_U, c_U, a_L)`` of the lines around ``activation`` on ``[l, u]``.

    ``a_L z <= σ(z) <= a_U z + c_U`` for ``lower <= z <= upper`` (the lower intercept is 0).
    Infinite bounds use the limits of the chord: ``l = -inf`` gives ``σ(z) <= u``,
    ``u = +inf`` gives ``σ(z) <= z - l``, and both give ``c_U = +inf``.  Any shape.

    >>> relaxation(np.array([-1.0, -3.0, 1.0, -2.0]), np.array([3.0, 1.0, 2.0, -1.0]), "relu")
    (array([0.75, 0.25, 1.  , 0.  ]), array([0.75, 0.75, 0.  , 0.  ]), array([1., 0., 1., 0.]))
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    if activation != "relu":
        ones = np.ones_like(lower)
        return ones, np.zeros_like(lower), ones
    active = lower >= 0
    unstable = (lower < 0) & (upper > 0)
    slope_u = active.astype(float)
    intercept_u = np.zeros_like(lower)
    slope_l = active.astype(float)
    if np.any(unstable):
        lo, hi = lower[unstable], upper[unstable]
        lo_inf, hi_inf = np.isinf(lo), np.isinf(hi)
        with np.errstate(invalid="ignore", divide="ignore"):
            chord = hi / (hi - lo)
            slope = np.where(hi_inf, 1.0, np.where(lo_inf, 0.0, chord))
            intercept = np.where(lo_inf, np.where(hi_inf, np.inf, hi), np.where(hi_inf, -lo, -chord * lo))
        slope_u[unstable] = slope
        intercept_u[unstable] = intercept
        slope_l[unstable] = (hi >= -lo).astype(float)
    return slope_u, intercept_u, slope_l


def first_argmax(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Mask (shape of ``values``, any batch axes) of the first row attaining each group's maximum."""
    n = values.shape[-1]
    hit = values >= group_max(values, groups)[..., groups]
    first = -group_max(-np.where(hit, np.arange(n), n), groups)  # the smallest hitting row
    return np.arange(n) == first[..., groups]


def max_relaxation(
    groups: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lines around ``y_g = max_{i in g} z_i`` on the box, for any leading batch axes.

    Below: ``y_g >= z_{i*}``, ``i*`` the first row of largest lower bound (``mask_l``).
    Above: ``y_g <= max_i u_i`` (``intercept_u``), or ``y_g = z_{i*}`` (``mask_u``, intercept
    0) when ``i*`` dominates its group, ``l_{i*} >= u_i`` for every other row.
    Returns ``(mask_u, intercept_u, mask_l)``.
    """
    best = first_argmax(lower, groups)
    others = group_max(np.where(best, -np.inf, upper), groups)
    dominated = group_max(np.where(best, lower, -np.inf), groups) >= others
    return best & dominated[..., groups], np.where(dominated, 0.0, group_max(upper, groups)), best


# ----------------------------------------------------------------- relaxations
def positive_of(coef: np.ndarray) -> np.ndarray:
    """``max(coef, 0)`` (NaN kept), by ``clip``: on large arrays about twice as fast as ``np.maximum``."""
    return np.clip(coef, 0.0, None)


def _dot(coef: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``Σ_n coef[b, r, n] · vector[b, n]`` with ``0 · inf = 0``."""
    if np.all(np.isfinite(vector)):
        return (coef @ vector[:, :, None])[..., 0]  # a batched product: faster than einsum here
    with np.errstate(invalid="ignore"):
        return np.where(coef != 0, coef * vector[:, None, :], 0.0).sum(axis=-1)


#: Dense weights with at least this many entries are multiplied as one 2-D product (``(B·r, n) @ W``);
#: smaller ones as numpy's stacked product, faster for them (measured on ACAS Xu's 50 x 50 and MNIST's 256 x 784).
FLAT_PRODUCT_SIZE = 32768


def _times(coef: np.ndarray, weights: Weights) -> np.ndarray:
    """``coef @ weights`` for ``coef`` of shape ``(B, r, n)`` and dense or CSR ``weights``."""
    batch, rows, n = coef.shape
    if not is_sparse(weights):
        if weights.size < FLAT_PRODUCT_SIZE:
            return coef @ weights
        return (coef.reshape(batch * rows, n) @ weights).reshape(batch, rows, -1)
    flat = np.ascontiguousarray(coef).reshape(batch * rows, n)
    return np.asarray((weights.T @ flat.T).T).reshape(batch, rows, weights.shape[1])


@dataclass(frozen=True)
class DenseRelaxation:
    """``a_L z + c_L <= h <= a_U z + c_U`` for the neurons ``keep`` of a dense layer, per box.

    Slopes and intercepts are ``(B, len(keep))``; ``weights``/``bias`` are the layer's rows
    ``keep`` (the other neurons have zero lines in every box and drop out);
    ``unstable`` marks unstable ReLUs (whose lower slope may be any value in ``[0, 1]``).
    """

    slope_u: np.ndarray
    intercept_u: np.ndarray
    slope_l: np.ndarray
    intercept_l: np.ndarray
    unstable: np.ndarray
    keep: np.ndarray
    weights: Weights
    bias: np.ndarray
    unstable_steps: np.ndarray | None = None  # step neurons that take both levels (counted, never re-sloped)

    def with_lower_slope(self, value: float) -> DenseRelaxation:
        """The same lines with the lower slope of every unstable ReLU set to ``value``."""
        return replace(self, slope_l=np.where(self.unstable, value, self.slope_l))

    def substitute(self, coef: np.ndarray, const: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``coef·h + const <= coef'·h_prev + const'``: back through the lines and the affine map."""
        if self.keep.size != coef.shape[-1]:
            coef = coef[..., self.keep]
        positive = positive_of(coef)
        if self.intercept_l.any():
            const = const + _dot(positive, self.intercept_u) + _dot(coef - positive, self.intercept_l)
        else:  # the λ⁻ c_L term vanishes for ReLUs (c_L = 0)
            const = const + _dot(positive, self.intercept_u)
        # λ⁺ a_U + λ⁻ a_L = λ a_L + λ⁺ (a_U - a_L), in place on the temporaries
        coef_z = coef * self.slope_l[:, None, :]
        coef_z += np.multiply(positive, (self.slope_u - self.slope_l)[:, None, :], out=positive)
        return _times(coef_z, self.weights), const + coef_z @ self.bias


@dataclass(frozen=True)
class MaxRelaxation:
    """``y_g >= z_{i*}`` (``mask_l``) and ``y_g <= z_{i*}`` or ``<= max u`` (``mask_u``, ``intercept_u``)."""

    groups: np.ndarray
    mask_u: np.ndarray
    intercept_u: np.ndarray
    mask_l: np.ndarray
    weights: Weights
    bias: np.ndarray

    def with_lower_slope(self, value: float) -> MaxRelaxation:
        return self

    def substitute(self, coef: np.ndarray, const: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        positive = positive_of(coef)
        negative = coef - positive
        const = const + _dot(positive, self.intercept_u)
        coef_z = (
            positive[..., self.groups] * self.mask_u[:, None, :] + negative[..., self.groups] * self.mask_l[:, None, :]
        )
        return _times(coef_z, self.weights), const + coef_z @ self.bias


Relaxation = DenseRelaxation | MaxRelaxation


def relax(layer: Layer, lower: np.ndarray, upper: np.ndarray, lower_slope: np.ndarray | None = None) -> Relaxation:
    """The lines around ``layer``'s activation on per-box pre-activation bounds ``(B, n)``.

    ReLUs: :func:`relaxation` (``lower_slope``, ``(B, n)`` in ``[0, 1]``, replaces the
    adaptive lower slope of unstable ones); linear neurons: ``h = z``; smooth neurons: the
    least-slope lines of :func:`~pyomo_relu.network.smooth_lines`; step neurons: those of
    :func:`~pyomo_relu.step.step_lines` (counted as unstable where both levels occur); max layers:
    :func:`max_relaxation`.
    """
    if isinstance(layer, MaxLayer):
        mask_u, intercept_u, mask_l = max_relaxation(layer.groups, lower, upper)
        return MaxRelaxation(
            layer.groups, mask_u.astype(float), intercept_u, mask_l.astype(float), layer.weights, layer.bias
        )
    relu, smooth = layer.relu_mask, layer.smooth_mask
    slope_u, intercept_u, slope_l = relaxation(lower, upper, "relu")
    unstable = relu & (lower < 0) & (upper > 0)
    if lower_slope is not None:
        slope_l = np.where(unstable, np.clip(lower_slope, 0.0, 1.0), slope_l)
    slope_u = np.where(relu, slope_u, 1.0)
    intercept_u = np.where(relu, intercept_u, 0.0)
    slope_l = np.where(relu, slope_l, 1.0)
    intercept_l = np.zeros_like(slope_l)
    if smooth.any():
        lam, c_lo, c_hi = smooth_lines(layer.kinds, lower, upper)
        slope_u, slope_l = np.where(smooth, lam, slope_u), np.where(smooth, lam, slope_l)
        intercept_u, intercept_l = np.where(smooth, c_hi, intercept_u), np.where(smooth, c_lo, intercept_l)
    stepped = layer.step_mask
    if stepped.any():  # step/sign: the lines of pyomo_relu.step.step_lines
        lines = step_lines(layer.kinds, lower, upper)
        slope_u, intercept_u, slope_l, intercept_l = (
            np.where(stepped, line, mine) for line, mine in zip(lines, (slope_u, intercept_u, slope_l, intercept_l))
        )
    switching = (stepped & unstable_step(lower, upper)) if stepped.any() else None
    used = (slope_u != 0) | (slope_l != 0) | (intercept_u != 0) | (intercept_l != 0)
    keep = np.flatnonzero(used.any(axis=0))
    weights = layer.weights if keep.size == layer.n_pre else layer.weights[keep]
    return DenseRelaxation(
        slope_u[:, keep],
        intercept_u[:, keep],
        slope_l[:, keep],
        intercept_l[:, keep],
        unstable[:, keep],
        keep,
        weights,
        layer.bias[keep],
        None if switching is None else switching[:, keep],
    )


def back_substitute(
    coef: np.ndarray, const: np.ndarray, relaxations: Sequence[Relaxation]
) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite the upper-bound form ``coef·h_{k-1} + const`` (``(B, r, n)``, ``(B, r)``) as a form in ``x``.

    ``relaxations`` are those of layers ``0 .. k-1``; the result bounds the form from above
    on every box: ``coef·h_{k-1} + const <= coef_x·x + const_x``.
    """
    for relaxed in reversed(relaxations):
        coef, const = relaxed.substitute(coef, const)
    return coef, const


def box_maximum(coef: np.ndarray, const: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``max_x coef·x + const`` over each box: coef ``(B, r, n)``, const ``(B, r)``, boxes ``(B, n)``."""
    positive = positive_of(coef)
    with np.errstate(invalid="ignore"):
        return _dot(positive, upper) + _dot(coef - positive, lower) + const


# -------------------------------------------------------------------- batches
@dataclass
class BatchBounds:
    """CROWN bounds of ``B`` boxes: per canonical layer ``(B, n_k)`` pre-activation bounds.

    ``relaxations`` are the lines built on them; ``output_lower``/``output_upper`` the
    ``(B, n_out)`` box of the network outputs; ``lower``/``upper`` the input boxes.
    """

    lower: list[np.ndarray]
    upper: list[np.ndarray]
    relaxations: list[Relaxation]
    output_lower: np.ndarray
    output_upper: np.ndarray
    input_lower: np.ndarray
    input_upper: np.ndarray

    def unstable(self) -> np.ndarray:
        """``(B,)`` number of unstable ReLU neurons (and open max rows) per box."""
        count = np.zeros(self.input_lower.shape[0], dtype=int)
        for relaxed, lo, hi in zip(self.relaxations, self.lower, self.upper):
            if isinstance(relaxed, MaxRelaxation):  # candidates beyond the first of each group
                groups = relaxed.groups
                candidates = hi >= group_max(lo, groups)[:, groups]
                count += candidates.sum(axis=1) - (int(groups.max()) + 1 if groups.size else 0)
            else:
                count += relaxed.unstable.sum(axis=1)
                if relaxed.unstable_steps is not None:
                    count += relaxed.unstable_steps.sum(axis=1)
        return count


def _interval(layer: Layer, h_low: np.ndarray, h_high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of ``W h + b`` for each box (rows of ``h_low``/``h_high``)."""
    if not (np.all(np.isfinite(h_low)) and np.all(np.isfinite(h_high))):
        pairs = [affine_interval(layer.weights, layer.bias, lo, hi) for lo, hi in zip(h_low, h_high)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    positive, negative = positive_part(layer.weights), negative_part(layer.weights)
    low = np.asarray((positive @ h_low.T + negative @ h_high.T).T) + layer.bias
    high = np.asarray((positive @ h_high.T + negative @ h_low.T).T) + layer.bias
    return low, high


def _crossed_to(
    low: np.ndarray, high: np.ndarray, fallback: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Where two sound bounds crossed by round-off (a constant neuron), the earlier consistent pair."""
    crossed = low > high
    if crossed.any():
        low, high = np.where(crossed, fallback[0], low), np.where(crossed, fallback[1], high)
    return low, high


def batch_crown(
    layers: Sequence[Layer],
    lower: np.ndarray,
    upper: np.ndarray,
    start: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
    lower_slopes: Sequence[np.ndarray | None] | None = None,
) -> BatchBounds:
    """CROWN bounds of every canonical layer over ``B`` boxes ``(B, n_in)``.

    Each layer's bounds are the tightest of interval arithmetic, CROWN and ``start``
    (per-layer ``(B, n_k)`` or ``(n_k,)`` bounds valid on these boxes, e.g. the parent
    box's); ``lower <= upper`` always holds.  ``lower_slopes[k]`` (``(B, n_k)``) replaces the
    adaptive lower slopes of layer ``k``'s unstable ReLUs.
    """
    lower, upper = np.atleast_2d(np.asarray(lower, float)), np.atleast_2d(np.asarray(upper, float))
    batch = lower.shape[0]
    pre_lower: list[np.ndarray] = []
    pre_upper: list[np.ndarray] = []
    relaxations: list[Relaxation] = []
    h_low, h_high = lower, upper
    for k, layer in enumerate(layers):
        low, high = _interval(layer, h_low, h_high)
        if start is not None:
            low, high = _crossed_to(np.maximum(low, start[0][k]), np.minimum(high, start[1][k]), (low, high))
        if k > 0:
            # CROWN only where it can matter: not for ReLUs inactive in every box (their output is 0).
            open_ = (
                np.arange(layer.n_pre)
                if isinstance(layer, MaxLayer)
                else np.flatnonzero((high > 0).any(axis=0) | ~layer.relu_mask)
            )
            if open_.size:
                rows = rows_dense(layer.weights, open_) if open_.size < layer.n_pre else dense(layer.weights)
                m, bias = open_.size, layer.bias[open_]
                coef = np.broadcast_to(np.concatenate([rows, -rows]), (batch, 2 * m, rows.shape[1]))
                const = np.broadcast_to(np.concatenate([bias, -bias]), (batch, 2 * m))
                both = box_maximum(*back_substitute(coef, const, relaxations), lower, upper)
                new_low, new_high = low.copy(), high.copy()
                new_low[:, open_] = np.maximum(low[:, open_], -both[:, m:])
                new_high[:, open_] = np.minimum(high[:, open_], both[:, :m])
                low, high = _crossed_to(new_low, new_high, (low, high))
        pre_lower.append(low)
        pre_upper.append(high)
        relaxations.append(relax(layer, low, high, None if lower_slopes is None else lower_slopes[k]))
        h_low, h_high = layer.output_bounds(low, high)
    return BatchBounds(pre_lower, pre_upper, relaxations, h_low, h_high, lower, upper)


def linear_bounds(
    bounds: BatchBounds,
    rows: np.ndarray,
    input_rows: np.ndarray | None = None,
    variants: Sequence[str] = SLOPE_VARIANTS,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Linear lower bounds of ``rows @ f(x) + input_rows @ x`` on each box, and their minima.

    Returns ``(forms, row_lower)``: each form ``(coef (B, r, n_in), const (B, r))`` satisfies
    ``rows_i f(x) + input_rows_i x >= coef_i·x + const_i`` on box ``b`` (one form per lower
    slope variant, CROWN's adaptive one first), and ``row_lower (B, r)`` is the best minimum
    over the box of the forms and of the output box itself.
    """
    rows = np.atleast_2d(np.asarray(rows, float))
    batch, r = bounds.input_lower.shape[0], rows.shape[0]
    forms: list[tuple[np.ndarray, np.ndarray]] = []
    best = np.full((batch, r), -np.inf)
    for variant in variants:
        relaxed = (
            bounds.relaxations
            if variant == "adaptive"
            else [rel.with_lower_slope(0.0 if variant == "zero" else 1.0) for rel in bounds.relaxations]
        )
        # rows @ f(x) = rows @ σ_L(z_L): the rows act as one more linear layer.
        coef = np.broadcast_to(-rows, (batch, r, rows.shape[1]))
        coef, const = back_substitute(coef, np.zeros((batch, r)), relaxed)
        coef, const = -coef, -const
        if input_rows is not None:
            coef = coef + np.asarray(input_rows, float)[None]
        best = np.maximum(best, -box_maximum(-coef, -const, bounds.input_lower, bounds.input_upper))
        forms.append((coef, const))
    # The rows over the output box itself can be tighter (e.g. with LP output bounds in ``start``).
    positive = np.maximum(rows, 0.0)
    with np.errstate(invalid="ignore"):
        direct = bounds.output_lower @ positive.T + bounds.output_upper @ (rows - positive).T
    if input_rows is not None:
        input_rows = np.asarray(input_rows, float)
        positive_x = np.maximum(input_rows, 0.0)
        with np.errstate(invalid="ignore"):
            direct = direct + bounds.input_lower @ positive_x.T + bounds.input_upper @ (input_rows - positive_x).T
    best = np.maximum(best, np.nan_to_num(direct, nan=-np.inf))
    return forms, best


# ---------------------------------------------------------------- one network
def crown_bounds(
    net: NetworkDefinition,
    input_lower: np.ndarray | None = None,
    input_upper: np.ndarray | None = None,
    start: Bounds | None = None,
) -> Bounds:
    """CROWN bounds of every canonical layer over the box, never looser than interval or ``start``.

    ``input_lower`` / ``input_upper`` default to the network's own input bounds.  ``start``
    (bounds of the same network on this box or a larger one) is intersected layer by
    layer, and its methods are kept: the result's methods are ``start.methods + ("crown",)``.
    Where two of these bounds cross by round-off (a neuron that is constant on the box),
    the earlier consistent pair is kept, so ``lower <= upper`` always holds.
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
        if start.n_layers != len(layers):
            raise ShapeMismatchError(f"start bounds have {start.n_layers} layers, the network has {len(layers)}")
        first = (start.lower, start.upper)
    result = batch_crown(layers, lower[None], upper[None], first)
    methods = (start.methods if start is not None else ()) + ("crown",)
    return Bounds(
        tuple(a[0] for a in result.lower), tuple(a[0] for a in result.upper), lower, upper, net.content_hash(), methods
    )
