"""``tighten(mode="model")``: bounds tightened with the linear constraints of a Pyomo model.

A seeded random network inside a model with ``x0 + x1 <= 0.5``, ``y >= lo`` and an extra
variable ``z == x0 - x1 >= 0.2``: the bounds are within the network-only bounds, strictly
tighter somewhere, and sound for sampled inputs that satisfy the model's constraints.
"""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pyomo.environ as pe
import pytest

from pyomo_relu.bounds import tighten
from pyomo_relu.bounds.model import linear_side_constraints
from pyomo_relu.bounds.obbt import lp_bounds
from pyomo_relu.bounds.rows import SideConstraints
from pyomo_relu.errors import PyomoReluError
from pyomo_relu.network import DenseLayer, NetworkDefinition

TOL = 1e-9
N_SAMPLES = 200_000


def _network(seed: int = 3) -> NetworkDefinition:
    rng = np.random.default_rng(seed)
    widths = [2, 8, 8, 1]
    layers = []
    for k in range(3):
        activation = "linear" if k == 2 else "relu"
        layers.append(
            DenseLayer(rng.normal(size=(widths[k + 1], widths[k])), rng.normal(size=widths[k + 1]) * 0.5, activation)
        )
    return NetworkDefinition(layers, input_bounds=[(-1.0, 1.0), (-1.0, 1.0)])


NET = _network()


def _samples(net: NetworkDefinition) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(net.input_lower, net.input_upper, size=(N_SAMPLES, net.n_inputs))
    return x, net.evaluate(x)


X, Y = _samples(NET)
Y_LOW = float(np.quantile(Y[:, 0], 0.5))  # an output constraint that binds


def _model(y_low: float = Y_LOW, nonlinear: bool = False) -> pe.ConcreteModel:
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-1, 1))
    m.y = pe.Var(range(1))
    m.z = pe.Var()
    m.w = pe.Var()  # not linked to the network: its rows must be dropped
    m.k = pe.Var(domain=pe.Binary)
    m.c_sum = pe.Constraint(expr=m.x[0] + m.x[1] <= 0.5)
    m.c_out = pe.Constraint(expr=m.y[0] >= y_low)
    m.c_z = pe.Constraint(expr=m.z == m.x[0] - m.x[1])
    m.c_zlo = pe.Constraint(expr=m.z >= 0.2)
    m.c_w = pe.Constraint(expr=m.w >= 5)
    if nonlinear:
        m.c_nl = pe.Constraint(expr=m.x[0] * m.x[1] + m.y[0] ** 2 <= 100)
        m.c_nl2 = pe.Constraint(expr=pe.exp(m.z) >= 0)
    m.obj = pe.Objective(expr=m.y[0])
    return m


def _feasible(x: np.ndarray, y: np.ndarray, y_low: float = Y_LOW) -> np.ndarray:
    return (x[:, 0] + x[:, 1] <= 0.5) & (x[:, 0] - x[:, 1] >= 0.2) & (y[:, 0] >= y_low)


def _model_bounds(method: str = "lp", **kw):
    m = _model(**kw)
    return tighten(NET, ["interval", method], mode="model", model=m, input_vars=[m.x[0], m.x[1]], output_vars=[m.y[0]])


def _preactivations(net: NetworkDefinition, x: np.ndarray) -> list[np.ndarray]:
    out, h = [], x
    for layer in net.canonical_layers:
        z = h @ layer.weights.T + layer.bias
        out.append(z)
        h = np.maximum(z, 0.0) if layer.activation == "relu" else z
    return out


def test_side_constraints_extraction():
    m = _model()
    side = linear_side_constraints(m, [m.x[0], m.x[1]], [m.y[0]])
    assert isinstance(side, SideConstraints)
    assert (side.n_inputs, side.n_outputs, side.n_extra) == (2, 1, 1)  # z only, not w or k
    assert not any("c_w" in name for name in side.names)
    assert side.n_rows == 2 + 4  # bounds of x0, x1 and c_sum, c_out, c_z, c_zlo
    assert side.touches_outputs().sum() == 1
    assert pickle.loads(pickle.dumps(side)).n_rows == side.n_rows
    # constraints inside `exclude` are skipped
    side2 = linear_side_constraints(m, [m.x[0], m.x[1]], [m.y[0]], exclude=[m.c_out])
    assert side2.n_rows == side.n_rows - 1 and not side2.touches_outputs().any()


def test_model_bounds_within_network_bounds_and_tighter():
    plain = tighten(NET, ["interval", "lp"])
    model = _model_bounds()
    assert "model" in model.methods and "model" not in plain.methods
    # Compared where it matters: post-activation for ReLU layers (the lower bound of a
    # neuron proven inactive is not tightened further, so pre-activation lower bounds of
    # such neurons may stay looser).
    tighter = False
    for k, layer in enumerate(NET.canonical_layers):
        lo_m, hi_m, lo, hi = model.lower[k], model.upper[k], plain.lower[k], plain.upper[k]
        if layer.activation == "relu":
            lo_m, hi_m, lo, hi = (np.maximum(a, 0.0) for a in (lo_m, hi_m, lo, hi))
        assert np.all(lo_m >= lo - 1e-7) and np.all(hi_m <= hi + 1e-7), k
        tighter |= bool(np.any(lo_m > lo + 1e-3) or np.any(hi_m < hi - 1e-3))
    assert tighter
    assert model.unstable(0).sum() < plain.unstable(0).sum()
    # the constraints imply a smaller input box: x0 - x1 >= 0.2 and x0 + x1 <= 0.5
    # (x1 <= 0.15 and x0 >= -0.8 follow from the two input rows alone)
    assert model.implied_input_upper[1] <= 0.15 + 1e-6
    assert model.implied_input_lower[0] >= -0.8 - 1e-6
    # without constraints nothing is implied beyond the box itself: no implied input bounds at all
    assert plain.implied_input_lower is None and plain.implied_input_upper is None


@pytest.mark.parametrize("method", ["lp", "milp"])
def test_model_bounds_sound_for_feasible_samples(method):
    bounds = _model_bounds(method)
    keep = _feasible(X, Y)
    assert keep.sum() > 1000
    x = X[keep]
    for k, z in enumerate(_preactivations(NET, x)):
        assert np.all(z >= bounds.lower[k] - TOL), (k, (bounds.lower[k] - z).max())
        assert np.all(z <= bounds.upper[k] + TOL), (k, (z - bounds.upper[k]).max())
    assert np.all(x >= bounds.implied_input_lower - TOL) and np.all(x <= bounds.implied_input_upper + TOL)
    # the output constraint is reflected in the final layer
    assert bounds.lower[-1][0] >= Y_LOW - 1e-6


def test_sampled_extremes_are_close_for_milp():
    """MILP bounds with the model are near the sampled ranges (they can fail if rows are lost)."""
    bounds = _model_bounds("milp")
    y = Y[_feasible(X, Y), 0]
    assert bounds.upper[-1][0] - y.max() < 0.05 * (1 + abs(y.max()))


def test_infeasible_model_raises():
    plain = tighten(NET, ["interval", "milp"])
    with pytest.raises(PyomoReluError, match="constraints of the model"):
        _model_bounds(y_low=float(plain.upper[-1][0]) + 1.0)


def test_infeasible_input_constraints_raise():
    m = _model()
    m.c_bad = pe.Constraint(expr=m.x[0] + m.x[1] >= 1.5)  # with x0 + x1 <= 0.5
    with pytest.raises(PyomoReluError, match="constraints of the model"):
        tighten(NET, ["interval", "lp"], mode="model", model=m, input_vars=[m.x[0], m.x[1]], output_vars=[m.y[0]])


def test_nonlinear_constraints_ignored(caplog):
    with caplog.at_level(logging.DEBUG, logger="pyomo_relu.bounds.model"):
        with_nl = _model_bounds(nonlinear=True)
    assert any("not linear" in r.getMessage() for r in caplog.records)
    without = _model_bounds()
    for a, b in zip(with_nl.upper, without.upper):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_mode_model_needs_model_and_vars():
    with pytest.raises(PyomoReluError, match="mode='model'"):
        tighten(NET, "lp", mode="model")
    m = _model()
    with pytest.raises(PyomoReluError, match="mode='model'"):
        tighten(NET, "lp", model=m)
    with pytest.raises(PyomoReluError):
        tighten(NET, "lp", mode="nonsense")


def test_fixed_and_integer_variables():
    m = _model()
    m.p = pe.Var(initialize=0.1)
    m.p.fix()
    m.c_p = pe.Constraint(expr=m.x[1] <= m.p + 3 * m.k)  # k binary, relaxed to [0, 1]
    side = linear_side_constraints(m, [m.x[0], m.x[1]], [m.y[0]])
    row = side.names.index("c_p")
    cols = side.index[side.start[row] : side.start[row + 1]]
    assert side.row_upper[row] == pytest.approx(0.1)
    extra = cols[cols >= 3] - 3
    assert extra.size == 1 and side.extra_lower[extra[0]] == 0 and side.extra_upper[extra[0]] == 1


def test_executor_gives_same_bounds():
    m = _model()
    side = linear_side_constraints(m, [m.x[0], m.x[1]], [m.y[0]])
    serial = lp_bounds(NET, NET.input_lower, NET.input_upper, None, side_constraints=side)
    pooled = lp_bounds(NET, NET.input_lower, NET.input_upper, None, side_constraints=side, executor=2)
    for a, b in zip(serial.upper, pooled.upper):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_with_a_built_block_excluded():
    """Around a built ReLUNetBlock (its own constraints excluded) the bounds stay sound and
    building with them gives the same optimum as with network-only bounds."""
    from pyomo_relu import ReLUNetBlock
    from pyomo_relu.solvers import solve

    def build(bounds):
        m = _model()
        m.nn = ReLUNetBlock()
        m.nn.build(NET, inputs=[m.x[0], m.x[1]], outputs=[m.y[0]], bounds=bounds)
        return m

    m = build("interval")
    side = linear_side_constraints(m, m.nn.input_vars, m.nn.output_vars, exclude=m.nn)
    assert side.n_extra == 1  # z; none of the block's own variables
    bounds = tighten(
        NET,
        ["interval", "lp"],
        mode="model",
        model=m,
        input_vars=m.nn.input_vars,
        output_vars=m.nn.output_vars,
        exclude=m.nn,
    )
    assert bounds.lower[-1][0] >= Y_LOW - 1e-6
    values = []
    for spec in ("interval", bounds):
        result = solve(build(spec), "highs", mip_gap=1e-9)
        assert result.status == "optimal"
        values.append(result.objective)
    assert values[0] == pytest.approx(values[1], abs=1e-5)
    assert values[1] == pytest.approx(Y[_feasible(X, Y), 0].min(), abs=0.05)
