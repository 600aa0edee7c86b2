"""``pyomo_relu.optimize``: the branch-and-bound engine against the MILP route.

Soundness (hypothesis, random small networks): the proven bound never passes the true
optimum found by one exact MILP (big-M, HiGHS), the reported point is the forward pass, the
constraints hold at it, and infeasible constraints are proven infeasible.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import helpers
import numpy as np
import pyomo.environ as pe
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock, optimize, solve
from pyomo_relu.errors import MissingBoundsError, PyomoReluError
from pyomo_relu.search import LinearConstraints
from pyomo_relu.search.optimize import FEASIBILITY_TOLERANCE

ROOT = Path(__file__).resolve().parents[1]
PEAKS = ROOT / "tests" / "data" / "relumip" / "peaks_3x10.onnx"


def random_net(seed: int, n_in: int, hidden: tuple[int, ...], n_out: int) -> NetworkDefinition:
    return helpers.random_net(seed, (n_in, *hidden, n_out))


def milp_optimum(net: NetworkDefinition, c: np.ndarray, sense: str, constraints: dict | None = None) -> float | None:
    """The exact optimum by one big-M MILP (``None`` when infeasible)."""
    solved = milp_solution(net, c, sense, constraints)
    return None if solved is None else solved[0]


def milp_solution(
    net: NetworkDefinition, c: np.ndarray, sense: str, constraints: dict | None = None
) -> tuple[float, np.ndarray] | None:
    """One big-M MILP's objective and input point (``None`` when infeasible).

    The objective is the truth only up to HiGHS's feasibility and integrality tolerances (a
    big-M MILP may sit a few 1e-6 beyond the network's true optimum); the forward pass at the
    point is a value the network really attains.
    """
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, bounds=["interval"])
    if constraints is not None:
        rows = LinearConstraints.of(constraints, net.n_inputs, net.n_outputs)
        m.spec = pe.ConstraintList()
        for a_x, a_y, b in zip(rows.A_x, rows.A_y, rows.b):
            m.spec.add(
                sum(a_x[i] * m.nn.inputs[i] for i in range(net.n_inputs))
                + sum(a_y[j] * m.nn.outputs[j] for j in range(net.n_outputs))
                <= b
            )
    m.obj = pe.Objective(
        expr=sum(float(c[j]) * m.nn.outputs[j] for j in range(net.n_outputs)),
        sense=pe.minimize if sense == "minimize" else pe.maximize,
    )
    result = solve(m, "highs", mip_gap=0.0, options={"mip_abs_gap": 1e-9})
    if result.status == "infeasible":
        return None
    assert result.status == "optimal", result
    x = np.clip([pe.value(m.nn.inputs[i]) for i in range(net.n_inputs)], -1.0, 1.0)
    return float(pe.value(m.obj)), x


networks = st.tuples(
    st.integers(0, 10_000), st.integers(1, 3), st.lists(st.integers(2, 6), min_size=1, max_size=2), st.integers(1, 2)
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=networks, sense=st.sampled_from(["minimize", "maximize"]), objective_seed=st.integers(0, 1000))
@example(spec=(122, 1, [5, 5], 2), sense="minimize", objective_seed=1)  # the MILP passes the optimum by 2e-6
@example(spec=(3923, 1, [4, 4], 1), sense="maximize", objective_seed=0)  # nothing beat the leaf cutoff
@example(spec=(1056, 1, [2, 5], 2), sense="minimize", objective_seed=0)  # a big-M of 1.6e-10
def test_bound_never_passes_the_milp_optimum(spec, sense, objective_seed):
    seed, n_in, hidden, n_out = spec
    net = random_net(seed, n_in, tuple(hidden), n_out)
    c = np.random.default_rng(objective_seed).normal(size=n_out)
    result = optimize(net, c, sense=sense, progress=False, time_limit=60)
    milp_objective, milp_x = milp_solution(net, c, sense)
    attained = float(c @ net.evaluate(milp_x))  # a value the network takes: never beats the optimum
    milp_slack = 1e-5  # how far HiGHS's tolerances let a big-M MILP pass the true optimum
    assert result.status == "optimal", result
    np.testing.assert_allclose(result.y, net.evaluate(result.x), rtol=0, atol=0)
    assert result.objective == pytest.approx(float(c @ result.y), abs=1e-12)
    assert np.all(result.x >= -1.0) and np.all(result.x <= 1.0)
    sign = 1.0 if sense == "minimize" else -1.0
    # bound <= true optimum <= attained (minimising; mirrored when maximising)
    assert sign * result.bound <= sign * attained + 1e-7
    # the incumbent is a forward pass, so it cannot beat the MILP by more than its tolerances
    assert sign * result.objective >= sign * milp_objective - milp_slack
    assert sign * result.objective <= sign * attained + 1e-6 + 1e-7
    assert result.gap <= 1e-6


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=networks, threshold=st.floats(-2.0, 2.0))
def test_constraints_respected_and_infeasibility_proven(spec, threshold):
    """Minimise output 0 subject to output 0 >= threshold and x0 <= 0.5."""
    seed, n_in, hidden, n_out = spec
    net = random_net(seed, n_in, tuple(hidden), n_out)
    a_y = np.zeros((1, n_out))
    a_y[0, 0] = -1.0
    a_x = np.zeros((2, n_in))
    a_x[1, 0] = 1.0
    constraints = {"A_x": a_x, "A_y": np.vstack([a_y, np.zeros((1, n_out))]), "b": [-threshold, 0.5]}
    result = optimize(net, 0, constraints=constraints, progress=False, time_limit=60)
    truth = milp_optimum(net, np.eye(n_out)[0], "minimize", constraints)
    if truth is None:
        assert result.status == "infeasible"
        assert result.x is None and result.objective is None
        return
    if result.status == "infeasible":  # only within the feasibility tolerance of the boundary
        assert truth == pytest.approx(threshold, abs=1e-5)
        return
    assert result.status == "optimal", result
    assert result.y[0] >= threshold - FEASIBILITY_TOLERANCE
    assert result.x[0] <= 0.5 + FEASIBILITY_TOLERANCE
    assert result.bound <= truth + 1e-5  # the MILP's own tolerances (see milp_solution)
    assert result.objective == pytest.approx(truth, abs=1e-5)


def test_plainly_infeasible_constraints():
    net = random_net(3, 2, (5,), 1)
    high = float(net.evaluate(np.zeros(2))[0]) + 1e3
    result = optimize(net, 0, constraints={"A_y": [[-1.0]], "b": [-high]}, progress=False)
    assert result.status == "infeasible"
    assert result.x is None and result.bound is None and result.gap is None


def test_peaks_proven_and_sense_consistent():
    from pyomo_relu import load_onnx

    net = load_onnx(PEAKS, input_bounds=[(-3, 3), (-3, 3)])
    low = optimize(net, 0, progress=False)
    high = optimize(net, 0, sense="maximize", progress=False)
    negated = optimize(net, [-1.0], progress=False)
    assert low.status == high.status == negated.status == "optimal"
    assert low.objective == pytest.approx(-7.2141927, abs=1e-5)  # the MILP route's optimum, tests/data/relumip
    assert high.objective == pytest.approx(-negated.objective, abs=1e-6)
    assert low.bound <= low.objective <= low.bound + 1e-6
    assert high.bound >= high.objective >= high.bound - 1e-6


def test_time_limit_returns_incumbent_and_bound():
    net = random_net(11, 6, (48, 48, 48), 1)
    began = time.perf_counter()
    result = optimize(net, 0, time_limit=0.5, progress=False, gap=0.0)
    assert time.perf_counter() - began < 5.0
    assert result.status in ("time_limit", "optimal")
    if result.status == "time_limit":
        assert result.x is not None and result.bound is not None
        assert result.bound <= result.objective + 1e-9
        assert result.gap == pytest.approx(result.objective - result.bound)
    np.testing.assert_allclose(result.y, net.evaluate(result.x), rtol=0, atol=0)


@pytest.mark.parametrize("executor", [2, "dask"])
def test_executors_give_the_same_answer(executor):
    net = random_net(7, 2, (12, 12), 1)
    serial = optimize(net, 0, progress=False)
    if executor == "dask":
        distributed = pytest.importorskip("distributed")
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            parallel = optimize(net, 0, progress=False, executor=client.get_executor())
    else:
        parallel = optimize(net, 0, progress=False, executor=executor)
    assert serial.status == parallel.status == "optimal"
    assert parallel.objective == pytest.approx(serial.objective, abs=1e-6)
    assert parallel.bound <= serial.objective + 1e-9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sense": "min"}, "sense"),
        ({"gap": -1.0}, "gap"),
        ({"constraints": {"A_y": [[1.0, 2.0]], "b": [0.0]}}, "A_y"),
        ({"constraints": {"A_y": [[1.0]], "b": [0.0], "A_z": [[1.0]]}}, "A_z"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    net = random_net(1, 2, (3,), 1)
    with pytest.raises(PyomoReluError, match=message):
        optimize(net, 0, progress=False, **kwargs)


def test_missing_input_bounds_are_refused():
    net = NetworkDefinition([DenseLayer([[1.0]], [0.0], "linear")])
    with pytest.raises(MissingBoundsError, match="input_bounds="):
        optimize(net, 0, progress=False)
    with pytest.raises(PyomoReluError, match="out of range|output"):
        optimize(random_net(1, 2, (3,), 1), 4, progress=False)


def test_ctrl_c_returns_what_is_known(tmp_path):
    """SIGINT in a running optimize(): it returns the incumbent and bound, status 'interrupted'."""
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np
        from pyomo_relu import DenseLayer, NetworkDefinition, optimize
        rng = np.random.default_rng(5)
        sizes = (8, 64, 64, 64, 1)
        layers = [DenseLayer(rng.normal(size=(b, a)), rng.normal(scale=0.5, size=b),
                             "relu" if k < 3 else "linear") for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        net = NetworkDefinition(layers, input_bounds=[(-1.0, 1.0)] * 8)
        print("started", flush=True)
        r = optimize(net, 0, progress=False, gap=0.0)
        print("status", r.status, r.objective is not None, r.bound is not None, flush=True)
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout.readline().strip() == "started"
    time.sleep(3.0)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.perf_counter() - sent < 10.0
    assert "status interrupted True True" in out, (out, err)
