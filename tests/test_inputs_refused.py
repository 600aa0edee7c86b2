"""NaN and infinite values in inputs and bounds are refused with the place named; a ``sat``
verdict always carries a counterexample re-checked by the forward pass."""

from __future__ import annotations

import importlib

import numpy as np
import pyomo.environ as pe
import pytest

from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
from pyomo_relu.errors import InvalidNetworkError, InvalidValueError, PyomoReluError, ShapeMismatchError


def _net(input_bounds: object = ((-1, 1), (-1, 1))) -> NetworkDefinition:
    return NetworkDefinition(
        [
            DenseLayer([[1.0, -1.0], [0.5, 0.5]], [0.0, -0.2], "relu", "h"),
            DenseLayer([[1.0, 2.0]], [0.1], "linear", "out"),
        ],
        input_bounds=input_bounds,
    )


@pytest.mark.parametrize(
    "x, where",
    [
        ([0.0, np.nan], r"nan \(input 1;"),
        ([[0.0, 0.0], [np.inf, 0.0]], r"inf \(sample 1, input 0;"),
        ([[-np.inf, np.nan]], r"-inf \(sample 0, input 0; 2 non-finite"),
    ],
)
def test_evaluate_refuses_non_finite_inputs(x: object, where: str) -> None:
    with pytest.raises(InvalidValueError, match=where):
        _net().evaluate(x)


def test_evaluate_refuses_non_numbers() -> None:
    with pytest.raises(InvalidValueError, match=r"must be numbers of shape \(batch, 2\)"):
        _net().evaluate([["a", 1.0]])


@pytest.mark.parametrize(
    "bounds, message",
    [
        ([(-1, 1), (np.nan, 1)], r"input 1 has lower bound nan"),
        ({0: (-1, 1), 1: (0, np.nan)}, r"input 1 has upper bound nan"),
        ((np.array([0.0, np.nan]), np.array([1.0, 1.0])), r"input 1 has lower bound nan"),
        ((0.0, np.nan), r"input 0 has upper bound nan"),
        (np.array([[0.0, 1.0], [np.nan, 1.0]]), r"input 1 has lower bound nan"),
        ([(np.inf, np.inf), (0, 1)], r"input 0 has lower bound inf"),
        ([(0, 1), (-np.inf, -np.inf)], r"input 1 has upper bound -inf"),
        ([(0, 1), ("x", 1)], r"input_bounds, input 1, lower bound: 'x' is not a number"),
    ],
)
def test_input_bounds_refuse_nan_and_wrong_side_infinity_in_every_form(bounds: object, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        _net(bounds)


def test_absent_sides_are_none_or_infinite() -> None:
    net = _net([(None, 1.0), (-np.inf, np.inf)])
    assert net.input_lower.tolist() == [-np.inf, -np.inf] and net.input_upper.tolist() == [1.0, np.inf]
    with pytest.raises(ShapeMismatchError, match=r"input_bounds names input 'a'"):
        _net({"a": (0, 1)})
    with pytest.raises(InvalidNetworkError, match=r"input 0 has lower bound 2.0 > upper bound 1.0"):
        _net([(2, 1), (0, 1)])


def test_build_refuses_nan_input_and_output_bounds() -> None:
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(InvalidValueError, match=r"input 0 has upper bound nan"):
        m.nn.build(_net(), input_bounds=[(0, np.nan), (0, 1)])
    with pytest.raises(PyomoReluError, match=r"output 0 has lower bound nan"):
        m.nn.build(_net(), output_bounds=[(np.nan, 1.0)])
    assert list(m.nn.component_objects()) == []


def test_tighten_refuses_nan_output_bounds() -> None:
    from pyomo_relu import tighten

    with pytest.raises(PyomoReluError, match=r"output 0 has lower bound nan"):
        tighten(_net(), "interval", output_bounds=(np.array([np.nan]), np.array([1.0])))


def _holds() -> tuple:
    """A network and a property that holds (y <= 10 on the box, asked: y >= 100)."""
    from pyomo_relu.verify import Case, Polytope, Specification

    net = _net()
    spec = Specification(2, 1, (Case(net.input_lower, net.input_upper, (Polytope([[-1.0]], [-100.0]),)),))
    return net, spec


def test_a_fake_counterexample_from_a_search_is_never_reported_as_sat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression guard: a search step that claims a counterexample it does not have gives unknown, not sat."""
    verify_module = importlib.import_module("pyomo_relu.verify.decide")
    from pyomo_relu.verify import verify

    net, spec = _holds()
    monkeypatch.setattr(
        verify_module,
        "_verify_case",
        lambda ctx, case: verify_module.CaseOutcome("sat", np.array([0.5, 0.5]), method="attack"),
    )
    result = verify(net, spec, time_limit=30)
    assert result.status == "unknown" and result.counterexample is None


def test_an_attack_claiming_large_margins_is_re_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    verify_module = importlib.import_module("pyomo_relu.verify.milp_route")  # where the MILP points are repaired
    from pyomo_relu.verify import verify

    net, spec = _holds()
    from pyomo_relu.search.problem import SearchProblem

    # the attack's points and a (canonical) forward pass that claims they are deep inside the unsafe set
    monkeypatch.setattr(verify_module, "descend", lambda *args, **kwargs: np.array([[0.5, 0.5], [0.0, 0.0]]))
    monkeypatch.setattr(SearchProblem, "region_margins", lambda self, x, y: np.full((len(x), self.n_regions), 5.0))
    result = verify(net, spec, time_limit=30, split=False)
    assert result.status in ("unsat", "unknown") and result.counterexample is None


def test_every_sat_carries_a_counterexample_the_forward_pass_confirms() -> None:
    from pyomo_relu.verify import Case, Polytope, Specification, verify

    net = _net()
    for threshold in (0.5, 1.0, 2.0):
        spec = Specification(2, 1, (Case(net.input_lower, net.input_upper, (Polytope([[-1.0]], [-threshold]),)),))
        result = verify(net, spec, time_limit=30)
        if result.status == "sat":
            x, y = result.counterexample
            assert np.all(x >= net.input_lower) and np.all(x <= net.input_upper)
            assert np.array_equal(net.evaluate(x), y) and y[0] >= threshold
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 101), np.linspace(-1, 1, 101)), -1).reshape(-1, 2)
    assert net.evaluate(grid).max() >= 1.0  # threshold 1.0 is violated, so at least one sat was checked
