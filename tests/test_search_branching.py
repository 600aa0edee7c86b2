"""The input chosen to split and the local attacks of the input-splitting engine."""

from __future__ import annotations

import helpers
import numpy as np
import pytest

import pyomo_relu.search.engine as engine
from pyomo_relu import optimize
from pyomo_relu.search.engine import ATTACK_BATCH, branch_and_bound
from pyomo_relu.search.nodes import LOPSIDED, OPTIMIZE_LOPSIDED, split_dimension
from pyomo_relu.search.problem import LinearConstraints, SearchProblem, unit_objective


def test_split_dimension_lopsided_one_takes_the_widest_smear_breaking_ties():
    root = np.array([1.0, 1.0, 2.0])
    width = np.array([[1.0, 0.5, 2.0], [0.25, 0.5, 1.0], [0.5, 0.5, 0.5]])
    score = np.array([[5.0, 9.0, 1.0], [9.0, 1.0, 2.0], [1.0, 3.0, 0.0]])
    # relative widths: [1, .5, 1], [.25, .5, .5], [.5, .5, .25]
    assert split_dimension(score, width, root, 1.0).tolist() == [0, 2, 1]
    # the engine's default: the largest smear unless more than LOPSIDED times narrower
    assert split_dimension(score, width, root, LOPSIDED).tolist() == [1, 0, 1]
    assert OPTIMIZE_LOPSIDED == 1.0


def test_split_dimension_never_picks_a_flat_input_and_respects_the_ratio():
    root = np.ones(3)
    width = np.array([[0.0, 1.0, 0.1], [0.0, 0.0, 0.0]])
    score = np.array([[100.0, 1.0, 50.0], [1.0, 2.0, 3.0]])
    assert split_dimension(score, width, root, 4.0)[0] == 1  # input 2 is 10x narrower than input 1
    assert split_dimension(score, width, root, 20.0)[0] == 2
    assert split_dimension(score, width, root, 1.0)[1] == 0  # nothing to split: the first widest


def _problem(net):
    c_y, c_x, sign = unit_objective(net.n_outputs, net.n_inputs, 0, "minimize")
    region = LinearConstraints.of(None, net.n_inputs, net.n_outputs)
    problem = SearchProblem(net.canonical_layers, net.input_lower, net.input_upper, (c_y, c_x), (region,), 1e-6)
    return problem, lambda x: problem.values(np.atleast_2d(x), net.evaluate(np.atleast_2d(x)))


@pytest.mark.parametrize("attack", [True, False])
def test_local_attacks_with_an_objective_run_in_large_rounds_only(monkeypatch, attack):
    net = helpers.random_net(3, (6, 24, 24, 1)).with_input_bounds([(-1.0, 1.0)] * 6)
    problem, check = _problem(net)
    calls: list[tuple[np.ndarray, np.ndarray]] = []
    descend = engine.descend

    def recording(problem_, lower, upper, **kwargs):
        calls.append((np.array(lower), np.array(upper)))
        return descend(problem_, lower, upper, **kwargs)

    monkeypatch.setattr(engine, "descend", recording)
    # rounds grow to ATTACK_BATCH boxes after ATTACK_BATCH**2 / 4 boxes (engine._batch_size)
    enough = ATTACK_BATCH**2 // 4 + 4 * ATTACK_BATCH
    result = branch_and_bound(problem, check, gap=0.0, max_nodes=enough, batch_size=ATTACK_BATCH, attack=attack)
    root = calls[:1] if attack else []
    local = calls[len(root) :]
    assert result.status == "node_limit"
    if attack:
        assert np.array_equal(root[0][0], problem.lower) and np.array_equal(root[0][1], problem.upper)
        assert local, "rounds of ATTACK_BATCH boxes attack their best boxes"
        assert all(np.all(lo >= problem.lower) and np.all(hi <= problem.upper) for lo, hi in local)
        assert all(np.any(hi - lo < problem.upper - problem.lower) for lo, hi in local)  # sub-boxes
    else:
        assert not local
    value = float(check(result.x)[0])
    assert value == result.value and result.bound <= value


def test_small_problems_run_no_local_attack(monkeypatch):
    net = helpers.random_net(5, (2, 10, 10, 1)).with_input_bounds([(-1.0, 1.0)] * 2)
    calls = []
    descend = engine.descend
    monkeypatch.setattr(engine, "descend", lambda *a, **k: calls.append(1) or descend(*a, **k))
    r = optimize(net, 0, progress=False)
    assert r.status == "optimal"
    assert r.nodes < ATTACK_BATCH * 16 and len(calls) == 1  # the root attack only
