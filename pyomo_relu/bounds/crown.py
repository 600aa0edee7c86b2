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

import numpy as np

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.interval import affine_interval
from pyomo_relu.errors import ShapeMismatchError
from pyomo_relu.network import NetworkDefinition, group_max, smooth_lines
from pyomo_relu.sparse import dense

__all__ = ["LayerRelaxation", "crown_bounds", "first_argmax", "max_relaxation", "relaxation"]


def relaxation(
    lower: np.ndarray, upper: np.ndarray, activation: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slopes and intercept ``(a_U, c_U, a_L)`` of the lines around ``activation`` on ``[l, u]``.

    ``a_L z <= σ(z) <= a_U z + c_U`` for ``lower <= z <= upper`` (the lower intercept is 0).
    Infinite bounds use the limits of the chord: ``l = -inf`` gives ``σ(z) <= u``,
    ``u = +inf`` gives ``σ(z) <= z - l``, and both give ``c_U = +inf``.

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
            intercept = np.where(
                lo_inf, np.where(hi_inf, np.inf, hi), np.where(hi_inf, -lo, -chord * lo)
            )
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


def max_relaxation(groups: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


class LayerRelaxation:
    """Lines around one canonical layer's activation: ``A_L z + c_L <= h <= A_U z + c_U``.

    For a :class:`~pyomo_relu.network.DenseLayer` ``A_U`` and ``A_L`` are diagonal (one
    slope per neuron: :func:`relaxation` for ReLUs, 1 for linear neurons, and for the smooth
    activations the least slope on ``[l, u]`` through ``(l, σ(l))`` below and ``(u, σ(u))``
    above, :func:`~pyomo_relu.network.smooth_lines`).  For a
    :class:`~pyomo_relu.network.MaxLayer`, ``y_g >= z_{i*}`` with ``i*`` the row of largest
    lower bound in group ``g``, and ``y_g <= max_i u_i`` (or ``y_g = z_{i*}`` when ``i*``
    dominates its group: ``l_{i*} >= u_i`` for every other row ``i``).
    """

    def __init__(self, layer: object, lower: np.ndarray, upper: np.ndarray) -> None:
        self.groups = getattr(layer, "groups", None)
        if self.groups is None:
            self._dense(layer, lower, upper)
        else:
            self._max(layer, lower, upper)

    def _dense(self, layer: object, lower: np.ndarray, upper: np.ndarray) -> None:
        relu, smooth = layer.relu_mask, layer.smooth_mask  # type: ignore[attr-defined]
        slope_u, intercept_u, slope_l = relaxation(lower, upper, "relu")
        ones = np.ones_like(lower)
        self.slope_u = np.where(relu, slope_u, ones)
        self.intercept_u = np.where(relu, intercept_u, 0.0)
        self.slope_l = np.where(relu, slope_l, ones)
        self.intercept_l = np.zeros_like(lower)
        if smooth.any():  # least-slope lines through the ends (pyomo_relu.network.smooth_lines)
            lam, c_lo, c_hi = smooth_lines(layer.kinds, lower, upper)  # type: ignore[attr-defined]
            self.slope_u = np.where(smooth, lam, self.slope_u)
            self.slope_l = np.where(smooth, lam, self.slope_l)
            self.intercept_u = np.where(smooth, c_hi, self.intercept_u)
            self.intercept_l = np.where(smooth, c_lo, self.intercept_l)

    def _max(self, layer: object, lower: np.ndarray, upper: np.ndarray) -> None:
        self.mask_u, self.intercept_u, self.mask_l = max_relaxation(self.groups, lower, upper)

    def substitute(self, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``lam · h <= lam_z · z + const`` for every row of ``lam``: returns ``(lam_z, const)``."""
        positive = np.maximum(lam, 0.0)
        negative = lam - positive
        if self.groups is None:
            const = _matvec(positive, self.intercept_u) + _matvec(negative, self.intercept_l)
            return positive * self.slope_u + negative * self.slope_l, const
        const = _matvec(positive, self.intercept_u)
        lam_z = positive[..., self.groups] * self.mask_u + negative[..., self.groups] * self.mask_l
        return lam_z, const


def _matvec(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` with ``0 * inf = 0`` (infinite entries only meet one sign here)."""
    finite = np.isfinite(vector)
    if finite.all():
        return matrix @ vector
    result = matrix @ np.where(finite, vector, 0.0)
    columns = matrix[:, ~finite]
    signs = np.sign(vector[~finite])
    plus = ((columns * signs) > 0).any(axis=1)
    minus = ((columns * signs) < 0).any(axis=1)
    with np.errstate(invalid="ignore"):
        result = result + np.where(plus, np.inf, 0.0) + np.where(minus, -np.inf, 0.0)
    return result


def _upper_bounds(
    coefficients: np.ndarray,
    constant: np.ndarray,
    layers: tuple,
    relaxations: list[LayerRelaxation],
    input_lower: np.ndarray,
    input_upper: np.ndarray,
) -> np.ndarray:
    """Upper bound of each row of ``coefficients @ h_{k-1} + constant`` over the input box.

    ``layers`` and ``relaxations`` are those of layers ``0 .. k-1``.
    """
    lam, const = coefficients, constant
    for layer, relaxed in zip(reversed(layers), reversed(relaxations)):
        lam, added = relaxed.substitute(lam)
        const = const + added
        const = const + lam @ layer.bias
        lam = np.asarray(lam @ layer.weights)
    positive = np.maximum(lam, 0.0)
    negative = lam - positive
    return _matvec(positive, input_upper) + _matvec(negative, input_lower) + const


def _intersect(
    first: tuple[np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray],
    fallback: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise intersection; where it is empty, the ``fallback`` bounds.

    Two sound bounds of a (nearly) constant neuron can cross by round-off; a formulation
    needs ``lower <= upper``, so the crossed entries keep the earlier, consistent bounds.
    """
    low, high = np.maximum(first[0], second[0]), np.minimum(first[1], second[1])
    crossed = low > high
    if crossed.any():
        low, high = np.where(crossed, fallback[0], low), np.where(crossed, fallback[1], high)
    return low, high


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
            f"input box has shapes {lower.shape} / {upper.shape}, the network has "
            f"{net.n_inputs} inputs"
        )
    layers = net.canonical_layers
    if start is not None:
        start.check_compatible(net.content_hash(), lower, upper)
        if start.n_layers != len(layers):
            raise ShapeMismatchError(
                f"start bounds have {start.n_layers} layers, the network has {len(layers)}"
            )
    pre_lower: list[np.ndarray] = []
    pre_upper: list[np.ndarray] = []
    relaxations: list[LayerRelaxation] = []
    h_low, h_high = lower, upper
    for k, layer in enumerate(layers):
        fallback = affine_interval(layer.weights, layer.bias, h_low, h_high)
        low, high = fallback
        if start is not None:
            low, high = _intersect((low, high), (start.lower[k], start.upper[k]), fallback)
            fallback = (low, high)
        if k > 0:
            m = layer.n_pre
            weights = dense(layer.weights)
            both = _upper_bounds(
                np.concatenate([weights, -weights]),
                np.concatenate([layer.bias, -layer.bias]),
                layers[:k], relaxations, lower, upper,
            )
            low, high = _intersect((low, high), (-both[m:], both[:m]), fallback)
        pre_lower.append(low)
        pre_upper.append(high)
        relaxations.append(LayerRelaxation(layer, low, high))
        h_low, h_high = layer.output_bounds(low, high)
    methods = (start.methods if start is not None else ()) + ("crown",)
    return Bounds(pre_lower, pre_upper, lower, upper, net.content_hash(), methods)
