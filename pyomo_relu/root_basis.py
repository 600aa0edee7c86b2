r"""A starting basis for HiGHS's LP relaxation of a network MILP, from passes through the layers.

HiGHS's dual simplex needs tens of thousands of iterations on the root LP of a dense
big-M network (4 M weights: over 60 s, ``benchmarks/RESULTS.md``, "Scale"), each one
pricing millions of nonzeros.  The LP has the structure of the network, so a vertex close
to its optimum is found in numpy, and HiGHS starts from it.

Relaxed, each unstable neuron (``l < 0 < u``) of a ``bigm`` or ``relaxation`` layer lies in
its triangle, whose vertices are on three lines: ``h = 0``, ``h = z`` and the chord
``h = u (z - l) / (u - l)``.  For the objective ``max c^T v``:

* **backward** (the dual): the objective's coefficient ``a`` on each ``h`` is carried
  back layer by layer (``W^T``), through the chord where ``a > 0`` (the chord bounds ``h``
  from above) and through the line the forward pass chose where ``a <= 0``; at the inputs
  the sign of the coefficient picks a vertex of the box;
* **forward** (the primal): from that vertex, each unstable neuron is put on the chord
  where ``a > 0`` and on ``max(0, z)`` otherwise, which is a point of the LP.

The two passes repeat until the choices stop changing (:data:`ROUNDS` at most).  At a
fixed point every multiplier sits on a tight row, so the point and the multipliers meet
the LP's optimality conditions; before it, the basis is still valid and HiGHS finishes.

The basis (:func:`relaxation_basis`): every affine row's target and the inputs' singleton
rows as the box's vertex gives; per unstable neuron, with the rows
``R1: h >= z``, ``R2: h <= z - l (1 - σ)``, ``R3: h <= u σ`` (``bigm``) or
``R1``, ``Rc: h <= chord`` (``relaxation``):

============  ===============================  ===============================
line          basic                            nonbasic
============  ===============================  ===============================
chord         ``h``, ``σ``, ``R1``             ``R2``, ``R3`` (or ``Rc``) at upper
``h = z``     ``h``, ``R2``, ``R3`` (or ``Rc``) ``R1`` at lower, ``σ`` at 1
``h = 0``     ``R1``, ``R2``, ``R3`` (or Rc)   ``h`` at 0, ``σ`` at 0
============  ===============================  ===============================

Every other row is basic, every other column at a finite bound (basic when free).  A
model this does not describe (other layer kinds or formulations, several network blocks,
a basis count that does not add up) gets ``None``: HiGHS then starts from its own basis.
This module imports numpy only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyomo_relu.bounds.rows import LinearProgram

logger = logging.getLogger(__name__)

__all__ = ["LOWER", "BASIC", "UPPER", "ROUNDS", "LayerColumns", "relaxation_basis", "relaxation_point"]

#: HiGHS's basis statuses (``highspy.HighsBasisStatus`` values).
LOWER, BASIC, UPPER = 0, 1, 2
#: Most backward/forward rounds (each is two products with every weight matrix).
ROUNDS = 8
#: The neuron's line at the point: ``h = 0``, ``h = z``, the chord.
ZERO, IDENTITY, CHORD = 0, 1, 2


@dataclass
class LayerColumns:
    """Where one dense layer of a network block is in the hand-off's :class:`LinearProgram`.

    Per neuron ``j``: ``h[j]`` the column of its output (``-1``: a stable-inactive neuron),
    ``affine_rows[j]`` the row defining its affine map (``-1``: none) and ``targets[j]``
    the column that row defines (``pre`` for unstable neurons, else ``h[j]``).  Per
    unstable neuron ``t`` (``unstable[t]``): ``sigma[t]`` its binary (bigm) and
    ``activation_rows[:, t]`` its rows (``R1, R2, R3`` or ``R1, Rc``).
    """

    weights: Any
    bias: np.ndarray
    relu: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    input_lower: np.ndarray
    input_upper: np.ndarray
    inputs: np.ndarray
    targets: np.ndarray
    affine_rows: np.ndarray
    h: np.ndarray
    unstable: np.ndarray
    sigma: np.ndarray
    activation_rows: np.ndarray
    formulation: str


@dataclass
class _Pass:
    """One chain of layers' choices: the input vertex and each unstable neuron's line."""

    x: np.ndarray
    lines: list[np.ndarray]
    z: list[np.ndarray]
    value: float


def _slope(layer: LayerColumns) -> np.ndarray:
    lo, up = layer.lower[layer.unstable], layer.upper[layer.unstable]
    return up / (up - lo)


def _backward(chain: list[LayerColumns], cost: np.ndarray, lines: list[np.ndarray]) -> tuple[np.ndarray, list]:
    """The objective's coefficients carried back to the inputs, and per layer where ``a > 0``."""
    cost_h = [np.where(layer.h >= 0, cost[layer.h], 0.0) for layer in chain]
    a_h = cost_h[-1]
    above: list[np.ndarray] = [np.zeros(0, dtype=bool)] * len(chain)
    for k in range(len(chain) - 1, -1, -1):
        layer = chain[k]
        pre = np.where(layer.targets >= 0, cost[np.maximum(layer.targets, 0)], 0.0)
        factor = np.where(layer.relu, ((layer.lower >= 0) & (layer.upper > 0)).astype(float), 1.0)
        a_u = a_h[layer.unstable]
        above[k] = a_u > 0
        factor[layer.unstable] = np.where(above[k], _slope(layer), (lines[k] == IDENTITY).astype(float))
        a_z = factor * a_h
        a_z[layer.unstable] += pre[layer.unstable]
        carried = np.asarray(layer.weights.T @ a_z).ravel()
        a_h = carried + (cost_h[k - 1] if k else np.where(layer.inputs >= 0, cost[np.maximum(layer.inputs, 0)], 0.0))
    return a_h, above


def _forward(chain: list[LayerColumns], x: np.ndarray, above: list[np.ndarray], cost: np.ndarray) -> _Pass:
    """The point from input vertex ``x``: chords where ``above``, else ``max(0, z)``; with its objective."""
    h = x
    value = float(np.where(chain[0].inputs >= 0, cost[chain[0].inputs], 0.0) @ x)
    lines, zs = [], []
    for k, layer in enumerate(chain):
        z = np.asarray(layer.weights @ h).ravel() + layer.bias
        out = np.where(layer.relu, np.maximum(z, 0.0), z)
        out[layer.relu & (layer.upper <= 0)] = 0.0
        zu = z[layer.unstable]
        chord = _slope(layer) * (zu - layer.lower[layer.unstable])
        lines.append(np.where(above[k], CHORD, np.where(zu > 0, IDENTITY, ZERO)))
        out[layer.unstable] = np.where(above[k], chord, np.maximum(zu, 0.0))
        zs.append(z)
        value += float(np.where(layer.h >= 0, cost[layer.h], 0.0) @ out)
        value += float(cost[layer.targets[layer.unstable]] @ zu) if layer.unstable.size else 0.0
        h = out
    return _Pass(x, lines, zs, value)


def relaxation_point(chain: list[LayerColumns], cost: np.ndarray) -> _Pass:
    """The best point (largest objective, ``cost`` maximised) over the backward/forward rounds."""
    lines = [
        np.where(layer.upper[layer.unstable] > -layer.lower[layer.unstable], IDENTITY, ZERO) for layer in chain
    ]  # the lower line CROWN would take, before a forward pass has chosen
    best: _Pass | None = None
    for _ in range(ROUNDS):
        g, above = _backward(chain, cost, lines)
        point = _forward(chain, np.where(g > 0, chain[0].input_upper, chain[0].input_lower), above, cost)
        if best is not None and all(np.array_equal(a, b) for a, b in zip(lines, point.lines)):
            break
        if best is None or point.value > best.value:
            best = point
        lines = point.lines
    assert best is not None
    return best


def _statuses(chain: list[LayerColumns], point: _Pass, lp: LinearProgram) -> tuple[np.ndarray, np.ndarray] | None:
    """Column and row statuses of the basis at ``point`` (see the module docstring), or ``None``."""
    cols = np.where(np.isfinite(lp.col_lower), LOWER, np.where(np.isfinite(lp.col_upper), UPPER, BASIC))
    rows = np.full(lp.n_rows, BASIC)
    for layer, line in zip(chain, point.lines):
        defined = layer.affine_rows >= 0
        cols[layer.targets[defined]] = BASIC
        rows[layer.affine_rows[defined]] = LOWER
        if not layer.unstable.size:
            continue
        h = layer.h[layer.unstable]
        chord, identity, zero = line == CHORD, line == IDENTITY, line == ZERO
        cols[h] = np.where(zero, LOWER, BASIC)
        parts = layer.activation_rows
        rows[parts[0]] = np.where(identity, LOWER, BASIC)
        for part in parts[1:]:
            rows[part] = np.where(chord, UPPER, BASIC)
        if layer.sigma.size:
            cols[layer.sigma] = np.where(chord, BASIC, np.where(identity, UPPER, LOWER))
    if not _place_inputs(chain[0], point.x, lp, cols, rows):
        return None
    if int((cols == BASIC).sum() + (rows == BASIC).sum()) != lp.n_rows:
        logger.debug("no starting basis: the basic count does not match the rows")
        return None
    return cols, rows


def _place_inputs(layer: LayerColumns, x: np.ndarray, lp: LinearProgram, cols: np.ndarray, rows: np.ndarray) -> bool:
    """Inputs at the vertex ``x``: nonbasic at their own bound, or basic with their box row nonbasic."""
    counts = np.diff(lp.start)
    single = np.flatnonzero(counts == 1)
    row_of = dict(zip(lp.index[lp.start[single]].tolist(), single.tolist()))
    for i, col in enumerate(layer.inputs.tolist()):
        at_upper = bool(x[i] == layer.input_upper[i]) and layer.input_upper[i] != layer.input_lower[i]
        bound = lp.col_upper[col] if at_upper else lp.col_lower[col]
        if np.isfinite(bound) and abs(bound - x[i]) <= 1e-9 * max(1.0, abs(x[i])):
            cols[col] = UPPER if at_upper else LOWER
            continue
        row = row_of.get(col)
        if row is None:
            return False
        cols[col] = BASIC
        rows[row] = UPPER if (at_upper == (lp.value[lp.start[row]] > 0)) else LOWER
    return True


def relaxation_basis(
    chains: list[list[LayerColumns] | None], lp: LinearProgram, cost: np.ndarray, maximize: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Column and row statuses (:data:`LOWER`, :data:`BASIC`, :data:`UPPER`) of a starting basis, or ``None``.

    ``chains`` are the network blocks' layers in the hand-off's ``lp`` (one block, each
    layer fed by the one before); ``cost`` the objective per column, maximised when
    ``maximize``.
    """
    if len(chains) != 1 or not chains[0] or lp.n_rows == 0:
        return None
    chain = chains[0]
    for before, after in zip(chain[:-1], chain[1:]):
        fed = (before.h >= 0) | (after.inputs >= 0)
        if before.h.size != after.inputs.size or not np.array_equal(before.h[fed], after.inputs[fed]):
            return None
    point = relaxation_point(chain, cost if maximize else -cost)
    return _statuses(chain, point, lp)
