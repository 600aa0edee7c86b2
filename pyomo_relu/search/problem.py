r"""What the search engine answers: an objective over a box, subject to a union of polytopes.

A :class:`SearchProblem` is, for a network ``f`` (its canonical layers) and an input box
``[l, u]``,

.. math::

    \min_{x \in [l, u]} \; c_y \cdot f(x) + c_x \cdot x
    \quad\text{s.t.}\quad x \in \bigcup_p \{ x : A^p_y f(x) + A^p_x x \le b^p \}.

* ``optimize()`` has one region (its ``constraints``, maybe without rows) and an objective;
* ``verify()`` asks whether a union of unsafe output polytopes is reachable: no objective
  (a feasibility problem), one region per polytope.  A decision is an optimisation with a
  cutoff: the search stops at the first feasible point.

Every row ``i`` of the stacked matrix ``[c; A^1; ...; A^P]`` is a linear function
``g_i(x) = R_i f(x) + R^x_i x`` whose lower bounds CROWN computes per box
(:func:`pyomo_relu.bounds.crown.linear_bounds`).  Plain numpy data: it pickles to worker
processes and Dask workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyomo_relu.errors import PyomoReluError, ShapeMismatchError
from pyomo_relu.network import Layer

__all__ = ["LinearConstraints", "SearchProblem"]


def _matrix(value: Any, rows: int | None, cols: int, what: str) -> np.ndarray:
    array = np.array(value, dtype=float, ndmin=2) if value is not None else np.zeros((rows or 0, cols))
    if array.size == 0:
        array = array.reshape(rows or 0, cols)
    if array.ndim != 2 or array.shape[1] != cols or (rows is not None and array.shape[0] != rows):
        raise ShapeMismatchError(f"{what} must have shape ({'m' if rows is None else rows}, {cols}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise PyomoReluError(f"{what} contains NaN or Inf (first at {tuple(np.argwhere(~np.isfinite(array))[0])})")
    return array


@dataclass(frozen=True, eq=False)
class LinearConstraints:
    """Rows ``A_x x + A_y y <= b`` over the network inputs ``x`` and outputs ``y = f(x)``.

    Give them to :func:`pyomo_relu.optimize` as this object or as a dict with the same keys
    (``A_x`` or ``A_y`` may be left out; ``names`` is optional)::

        # a product spec y[1] >= 0.95 and a budget x[0] + x[1] <= 3
        constraints = {"A_y": [[0, -1], [0, 0]], "A_x": [[0, 0], [1, 1]], "b": [-0.95, 3.0],
                       "names": ["purity", "budget"]}

    >>> c = LinearConstraints.of({"A_y": [[0.0, -1.0]], "b": [-0.95]}, n_inputs=2, n_outputs=2)
    >>> c.A_x.tolist(), c.n_rows
    ([[0.0, 0.0]], 1)
    """

    A_x: np.ndarray
    A_y: np.ndarray
    b: np.ndarray
    names: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return int(self.b.size)

    @classmethod
    def of(cls, value: Any, n_inputs: int, n_outputs: int) -> LinearConstraints:
        """Validate ``value`` (``None``, this class, or a dict) for a network of that size."""
        if value is None:
            return cls(np.zeros((0, n_inputs)), np.zeros((0, n_outputs)), np.zeros(0))
        if isinstance(value, LinearConstraints):
            value = {"A_x": value.A_x, "A_y": value.A_y, "b": value.b, "names": value.names}
        if not isinstance(value, Mapping):
            raise PyomoReluError(
                f"constraints must be a LinearConstraints or a dict with keys A_x, A_y, b (and names), "
                f"not {type(value).__name__}"
            )
        from pyomo_relu.options import check_options

        check_options(value, ("A_x", "A_y", "b", "names"), "constraints")
        if "b" not in value:
            raise PyomoReluError("constraints need 'b' (the right-hand sides of A_x x + A_y y <= b)")
        b = np.array(value["b"], dtype=float).ravel()
        if not np.all(np.isfinite(b)):
            raise PyomoReluError(f"constraints: b contains NaN or Inf (row {int(np.flatnonzero(~np.isfinite(b))[0])})")
        if value.get("A_x") is None and value.get("A_y") is None:
            raise PyomoReluError("constraints need A_x, A_y or both")
        A_x = _matrix(value.get("A_x"), b.size, n_inputs, "constraints A_x")
        A_y = _matrix(value.get("A_y"), b.size, n_outputs, "constraints A_y")
        names = tuple(str(n) for n in value.get("names") or ())
        if names and len(names) != b.size:
            raise ShapeMismatchError(f"constraints: {len(names)} names for {b.size} rows")
        return cls(A_x, A_y, b, names)

    def violation(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``(N, m)`` of ``A_x x + A_y y - b`` (positive where violated)."""
        return np.atleast_2d(x) @ self.A_x.T + np.atleast_2d(y) @ self.A_y.T - self.b

    def name(self, row: int) -> str:
        return self.names[row] if self.names else f"row {row}"


@dataclass(frozen=True, eq=False)
class SearchProblem:
    """``min c_y·f(x) + c_x·x`` over ``[lower, upper]`` and the union of ``regions``.

    ``objective`` is ``(c_y, c_x)`` or ``None`` (a feasibility problem: any point of a
    region answers it).  ``feasibility_tol`` is how far a point may violate a region's
    rows (by the exact forward pass) and still count as feasible; the verifier uses 0.
    """

    layers: tuple[Layer, ...]
    lower: np.ndarray
    upper: np.ndarray
    objective: tuple[np.ndarray, np.ndarray] | None
    regions: tuple[LinearConstraints, ...]
    feasibility_tol: float = 0.0
    rows_y: np.ndarray = field(init=False)
    rows_x: np.ndarray = field(init=False)
    rhs: np.ndarray = field(init=False)
    owner: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if not self.regions:
            raise PyomoReluError("a search problem needs at least one region (it may have no rows)")
        n_in, n_out = self.layers[0].n_inputs, self.layers[-1].n_outputs
        set_ = object.__setattr__
        rows_y = [r.A_y for r in self.regions]
        rows_x = [r.A_x for r in self.regions]
        rhs = [r.b for r in self.regions]
        owner = [np.full(r.n_rows, p) for p, r in enumerate(self.regions)]
        if self.objective is not None:
            c_y, c_x = (np.asarray(v, float).ravel() for v in self.objective)
            set_(self, "objective", (c_y, c_x))
            rows_y.insert(0, c_y[None])
            rows_x.insert(0, c_x[None])
            rhs.insert(0, np.array([np.inf]))
            owner.insert(0, np.array([-1]))
        set_(self, "rows_y", np.concatenate(rows_y).reshape(-1, n_out))
        set_(self, "rows_x", np.concatenate(rows_x).reshape(-1, n_in))
        set_(self, "rhs", np.concatenate(rhs))
        set_(self, "owner", np.concatenate(owner).astype(int))
        set_(self, "lower", np.asarray(self.lower, float))
        set_(self, "upper", np.asarray(self.upper, float))

    # ----------------------------------------------------------------- shape
    @property
    def n_inputs(self) -> int:
        return int(self.lower.size)

    @property
    def n_regions(self) -> int:
        return len(self.regions)

    @property
    def has_objective(self) -> bool:
        return self.objective is not None

    def region_rows(self, p: int) -> np.ndarray:
        """Indices (into the stacked rows) of region ``p``'s rows."""
        return np.flatnonzero(self.owner == p)

    @property
    def milp_ok(self) -> bool:
        """True when every neuron has a MILP formulation (no smooth activations)."""
        return not any(layer.smooth_mask.any() for layer in self.layers)

    # ---------------------------------------------------------------- values
    def forward(self, x: np.ndarray) -> np.ndarray:
        """The canonical forward pass of a batch (fast; the exact check is the caller's)."""
        values = np.atleast_2d(x)
        for layer in self.layers:
            values = layer.forward(values)
        return values

    def region_margins(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``(N, P)``: ``min_i (b_i - g_i(x))`` over each region's rows (``+inf`` without rows)."""
        slack = self.rhs - (np.atleast_2d(y) @ self.rows_y.T + np.atleast_2d(x) @ self.rows_x.T)
        return self.reduce_min(slack)

    def reduce_min(self, per_row: np.ndarray) -> np.ndarray:
        """Minimum over each region's rows of the last axis of ``per_row`` (``+inf`` without rows)."""
        out = np.full(per_row.shape[:-1] + (self.n_regions,), np.inf)
        for p in range(self.n_regions):
            rows = self.region_rows(p)
            if rows.size:
                out[..., p] = per_row[..., rows].min(axis=-1)
        return out

    def values(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Objective at feasible points (0 for a feasibility problem), ``+inf`` at infeasible ones."""
        x, y = np.atleast_2d(x), np.atleast_2d(y)
        feasible = self.region_margins(x, y).max(axis=1) >= -self.feasibility_tol
        inside = np.all((x >= self.lower) & (x <= self.upper), axis=1)
        value = np.zeros(x.shape[0]) if self.objective is None else y @ self.objective[0] + x @ self.objective[1]
        return np.where(feasible & inside, value, np.inf)

    def restricted(self, lower: np.ndarray, upper: np.ndarray) -> SearchProblem:
        """The same problem on another box."""
        return SearchProblem(self.layers, lower, upper, self.objective, self.regions, self.feasibility_tol)


def unit_objective(n_outputs: int, n_inputs: int, objective: Any, sense: str) -> tuple[np.ndarray, np.ndarray, float]:
    """``(c_y, c_x, sign)`` for ``optimize``'s ``objective`` (an output index or a vector ``c``).

    ``sign`` is ``+1`` for ``"minimize"`` and ``-1`` for ``"maximize"`` (the engine minimises
    ``sign · c·y``).
    """
    if sense not in ("minimize", "maximize"):
        raise PyomoReluError(f"sense must be 'minimize' or 'maximize', not {sense!r}")
    if isinstance(objective, (int, np.integer)) and not isinstance(objective, bool):
        if not 0 <= int(objective) < n_outputs:
            raise PyomoReluError(f"objective output {objective} is out of range: the network has {n_outputs} outputs")
        c_y = np.zeros(n_outputs)
        c_y[int(objective)] = 1.0
    else:
        try:
            c_y = np.asarray(objective, dtype=float).ravel()
        except (TypeError, ValueError):
            raise PyomoReluError(
                f"objective must be an output index or a vector of {n_outputs} coefficients, not {objective!r}"
            ) from None
        if c_y.size != n_outputs:
            raise ShapeMismatchError(f"objective has {c_y.size} coefficients, the network has {n_outputs} outputs")
        if not np.all(np.isfinite(c_y)):
            raise PyomoReluError("objective coefficients contain NaN or Inf")
    return c_y, np.zeros(n_inputs), 1.0 if sense == "minimize" else -1.0


def as_regions(polytopes: Sequence[Any], n_inputs: int, n_outputs: int) -> tuple[LinearConstraints, ...]:
    """Output polytopes ``A y <= b`` (objects with ``A`` and ``b``) as regions without input terms."""
    return tuple(
        LinearConstraints(
            np.zeros((p.b.size, n_inputs)), np.asarray(p.A, float).reshape(-1, n_outputs), np.asarray(p.b, float)
        )
        for p in polytopes
    )
