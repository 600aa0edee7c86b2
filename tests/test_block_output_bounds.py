"""Output bounds in ReLUNetBlock: they tighten neuron bounds and are always enforced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyomo.environ as pe
import pytest

from pyomo_relu import ReLUNetBlock, load_onnx, solve, tighten

PEAKS = Path(__file__).parent / "data" / "relumip" / "peaks_3x10.onnx"


@pytest.fixture(scope="module")
def net():
    return load_onnx(PEAKS, input_bounds=[(-3, 3), (-3, 3)])


def build(net, y_bounds=(None, None), **options):
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2))
    m.y = pe.Var(bounds=y_bounds)
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=[m.y], **options)
    m.obj = pe.Objective(expr=m.x[0] + m.x[1], sense=pe.maximize)
    return m


def total_width(bounds) -> float:
    return float(sum(np.sum(bounds.width(k)) for k in range(bounds.n_layers - 1)))


def test_output_bounds_argument_is_enforced_and_tightens(net):
    free = build(net, bounds=["interval", "crown", "lp"])
    bounded = build(net, bounds=["interval", "crown", "lp"], output_bounds=[(None, -5.0)])
    assert hasattr(bounded.nn, "output_box") and not hasattr(free.nn, "output_box")
    assert total_width(bounded.nn.neuron_bounds) < 0.99 * total_width(free.nn.neuron_bounds)
    result = solve(bounded, mip_gap=1e-9)
    assert result.status == "optimal"
    assert bounded.y.value <= -5.0 + 1e-7
    assert bounded.nn.get_error() < 1e-6


def test_output_variable_bounds_act_as_output_bounds(net):
    by_argument = build(net, bounds=["interval", "lp"], output_bounds=[(None, -5.0)])
    by_variable = build(net, y_bounds=(None, -5.0), bounds=["interval", "lp"])
    assert not hasattr(by_variable.nn, "output_box")  # the variable's own bound enforces it
    for k in range(by_argument.nn.neuron_bounds.n_layers):
        np.testing.assert_allclose(by_variable.nn.neuron_bounds.lower[k], by_argument.nn.neuron_bounds.lower[k])
    a, b = solve(by_argument, mip_gap=1e-9), solve(by_variable, mip_gap=1e-9)
    assert a.objective == pytest.approx(b.objective, abs=1e-6)


def test_same_optimum_as_a_plain_constraint(net):
    plain = build(net)
    plain.limit = pe.Constraint(expr=plain.y <= -5.0)
    tightened = build(net, bounds=["interval", "crown", "lp"], output_bounds=[(None, -5.0)])
    assert solve(plain, mip_gap=1e-9).objective == pytest.approx(solve(tightened, mip_gap=1e-9).objective, abs=1e-6)


def test_given_bounds_with_output_bounds_get_enforced(net):
    bounds = tighten(net, ["interval", "lp"], output_bounds=[(None, -5.0)])
    m = build(net, bounds=bounds)
    assert hasattr(m.nn, "output_box")
    assert m.nn.output_box[0].upper == pytest.approx(-5.0)
    solve(m, mip_gap=1e-9)
    assert m.y.value <= -5.0 + 1e-7


def test_bounds_options_reach_the_methods(net):
    m = build(net, bounds=["interval", "lp"], bounds_options={"executor": None, "progress": False, "time_limit": 30})
    assert m.nn.neuron_bounds.methods[-1] == "lp"


def test_model_mode_uses_the_surrounding_constraints(net):
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2))
    m.y = pe.Var()
    m.on_a_line = pe.Constraint(expr=m.x[0] + m.x[1] <= -2.0)
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=[m.y], bounds=["interval", "lp"], bounds_options={"mode": "model"})
    plain = build(net, bounds=["interval", "lp"])
    assert "model" in m.nn.neuron_bounds.methods
    assert total_width(m.nn.neuron_bounds) < total_width(plain.nn.neuron_bounds)
    m.obj = pe.Objective(expr=m.y, sense=pe.maximize)
    plain.on_a_line = pe.Constraint(expr=plain.x[0] + plain.x[1] <= -2.0)
    plain.obj.set_value(plain.y)
    assert solve(m, mip_gap=1e-9).objective == pytest.approx(solve(plain, mip_gap=1e-9).objective, abs=1e-6)


def test_model_mode_needs_user_variables(net):
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(Exception, match="pass your own variables"):
        m.nn.build(net, bounds=["interval", "lp"], bounds_options={"mode": "model"})
