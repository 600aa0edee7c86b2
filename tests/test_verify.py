"""Tests of pyomo_relu.verify: bounds soundness, counterexamples, verdicts against VNN-COMP, min_margin, CLI."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import helpers
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyomo_relu import DenseLayer, NetworkDefinition
from pyomo_relu.bounds.crown import batch_crown, linear_bounds
from pyomo_relu.io.onnx import load_onnx
from pyomo_relu.search.nodes import shrink_box
from pyomo_relu.search.problem import SearchProblem, as_regions
from pyomo_relu.verify import (
    check_counterexample,
    min_margin,
    parse_vnnlib,
    read_counterexample,
    read_vnnlib,
    verify,
)
from pyomo_relu.verify.vnnlib import Case, Polytope, Specification

DATA = Path(__file__).parent / "data"
ACAS = DATA / "acasxu"
MNIST = DATA / "mnist_fc"


@cache
def _onnx(path: str) -> NetworkDefinition:
    return load_onnx(path)


def acas(name: str) -> NetworkDefinition:
    return _onnx(str(ACAS / "onnx" / f"ACASXU_run2a_{name}_batch_2000.onnx"))


def mnist() -> NetworkDefinition:
    return _onnx(str(MNIST / "onnx" / "mnist-net_256x2.onnx"))


def truth(benchmark: str) -> dict[tuple[str, str], str]:
    rows = [line for line in (DATA / benchmark / "truth.csv").read_text().splitlines() if not line.startswith("#")]
    table = {}
    for row in csv.DictReader(rows):
        result = row.get("vnncomp2022_true_result") or row["true_result"]
        table[(Path(row["onnx"]).name, Path(row["vnnlib"]).name)] = result
    return table


def random_net(seed: int, sizes: tuple[int, ...] = (2, 12, 12, 3), last: str = "linear") -> NetworkDefinition:
    return helpers.random_net(seed, sizes, None, last=last, fan_in=True, bias_scale=0.3)


# ------------------------------------------------------------ bound soundness
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 2.0), st.booleans())
def test_box_bounds_contain_sampled_points(seed: int, radius: float, relu_last: bool) -> None:
    """CROWN bounds of every layer and every spec row hold at random points of each box."""
    net = random_net(seed, (3, 10, 8, 4), "relu" if relu_last else "linear")
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(4, 3))
    lower, upper = (
        centre - radius * rng.uniform(0.1, 1, size=(4, 3)),
        centre + radius * rng.uniform(0.1, 1, size=(4, 3)),
    )
    rows, input_rows = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    bounds = batch_crown(net.canonical_layers, lower, upper)
    forms, row_lower = linear_bounds(bounds, rows, input_rows)
    for b in range(4):
        x = rng.uniform(lower[b], upper[b], size=(400, 3))
        for k, pre in enumerate(net.preactivations(x)):
            assert np.all(pre >= bounds.lower[k][b] - 1e-9) and np.all(pre <= bounds.upper[k][b] + 1e-9)
        values = net.evaluate(x) @ rows.T + x @ input_rows.T
        for coef, const in forms:
            linear = x @ coef[b].T + const[b]
            assert np.all(values >= linear - 1e-9)
        assert np.all(values >= row_lower[b] - 1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(-1.0, 1.0))
def test_shrunk_box_keeps_every_unsafe_point(seed: int, level: float) -> None:
    net = random_net(seed, (2, 10, 10, 2))
    rng = np.random.default_rng(seed)
    polytopes = [Polytope([[1.0, -1.0]], [level]), Polytope([[-1.0, 0.0], [0.0, 1.0]], [-level, 0.5])]
    lower, upper = np.array([[-1.0, -1.0]]), np.array([[1.0, 1.0]])
    problem = SearchProblem(net.canonical_layers, lower[0], upper[0], None, as_regions(polytopes, 2, 2))
    forms, _ = linear_bounds(batch_crown(net.canonical_layers, lower, upper), problem.rows_y, problem.rows_x)
    new_lower, new_upper, empty = shrink_box(forms, problem, lower, upper)
    x = rng.uniform(-1, 1, size=(4000, 2))
    unsafe = x[problem.region_margins(x, net.evaluate(x)).max(axis=1) >= 0]
    if empty[0]:
        assert unsafe.size == 0
    else:
        assert np.all(unsafe >= new_lower[0]) and np.all(unsafe <= new_upper[0])


# -------------------------------------------------------------- counterexamples
COUNTEREXAMPLE_FILES = sorted(DATA.glob("*/counterexamples/*.counterexample.txt"))


def _network_and_spec(path: Path) -> tuple[NetworkDefinition, object]:
    if path.parent.parent.name == "acasxu":
        match = re.search(r"ACASXU_run2a_(\d_\d)_batch_2000_(prop_\d+)", path.name)
        return acas(match.group(1)), read_vnnlib(ACAS / "vnnlib" / f"{match.group(2)}.vnnlib")
    match = re.search(r"(prop_\d+_0\.03)", path.name)
    return mnist(), read_vnnlib(MNIST / "vnnlib" / f"{match.group(1)}.vnnlib")


@pytest.mark.parametrize("path", COUNTEREXAMPLE_FILES, ids=lambda p: p.name.split(".counter")[0])
def test_shared_counterexamples_are_unsafe(path: Path) -> None:
    net, spec = _network_and_spec(path)
    x, y = read_counterexample(path)
    check = check_counterexample(net, spec, x, input_tol=1e-6, output_tol=1e-6)
    assert check.valid, (check.margin, check.box_violation)
    np.testing.assert_allclose(check.y, y, atol=1e-5)  # float32 tools vs our float64 forward pass
    # Perturbed: outside the box, or moved to the original (correctly classified) input.
    lower, upper = spec.input_boxes[0]
    outside = x.copy()
    outside[0] = upper[0] + 1e-3
    assert not check_counterexample(net, spec, outside).valid
    assert check_counterexample(net, spec, outside, input_tol=1e-2).box_violation == pytest.approx(1e-3, rel=1e-6)
    if path.parent.parent.name == "mnist_fc":
        clean = _image(spec)
        assert not check_counterexample(net, spec, clean).valid


def test_counterexample_check_is_strict_by_default() -> None:
    net = NetworkDefinition([DenseLayer([[1.0]], [0.0], "linear")])
    spec = parse_vnnlib(
        "(declare-const X_0 Real)(declare-const Y_0 Real)(assert (>= X_0 0))(assert (<= X_0 1))(assert (>= Y_0 0.5))"
    )
    assert check_counterexample(net, spec, [0.5]).valid
    assert not check_counterexample(net, spec, [0.5 - 1e-12]).valid
    assert check_counterexample(net, spec, [0.5 - 1e-12], output_tol=1e-9).valid
    assert not check_counterexample(net, spec, [1.0 + 1e-9]).valid


# ---------------------------------------------------------- verdicts vs truth
def _verified(net: NetworkDefinition, spec_path: Path, budget: float, **options) -> object:
    spec = read_vnnlib(spec_path)
    start = time.perf_counter()
    result = verify(net, spec, time_limit=budget, **options)
    assert time.perf_counter() - start < budget + 2.0
    if result.status == "sat":
        x, y = result.counterexample
        check = check_counterexample(net, spec, x)
        assert check.valid and check.box_violation == 0.0
        np.testing.assert_array_equal(y, net.evaluate(x))
    return result


@pytest.mark.parametrize("prop", ["prop_0_0.03.vnnlib", "prop_1_0.03.vnnlib", "prop_2_0.03.vnnlib"])
def test_mnist_verdicts_match_vnncomp(prop: str) -> None:
    expected = truth("mnist_fc")[("mnist-net_256x2.onnx", prop)]
    result = _verified(mnist(), MNIST / "vnnlib" / prop, budget=30)
    assert result.status == expected, (result.status, result.reason)
    if expected == "unsat":
        assert result.proven_bound is not None and result.proven_bound < 0


@pytest.mark.parametrize(("name", "prop"), [("2_1", "prop_2"), ("2_1", "prop_4"), ("1_1", "prop_1")])
def test_acasxu_verdicts_match_vnncomp(name: str, prop: str) -> None:
    expected = truth("acasxu")[(f"ACASXU_run2a_{name}_batch_2000.onnx", f"{prop}.vnnlib")]
    result = _verified(acas(name), ACAS / "vnnlib" / f"{prop}.vnnlib", budget=30)
    assert result.status == expected
    # decided by the root attack (PGD with restarts: no box bounded) or by input splitting
    assert result.subproblems >= 1 and (result.method == "attack" or result.details["boxes"] >= 1)


def test_acasxu_with_a_thread_executor() -> None:
    with ThreadPoolExecutor(2) as pool:
        result = _verified(acas("2_1"), ACAS / "vnnlib" / "prop_3.vnnlib", budget=30, executor=pool)
    assert result.status == "unsat"


def test_time_limit_gives_unknown() -> None:
    spec = read_vnnlib(ACAS / "vnnlib" / "prop_3.vnnlib")
    start = time.perf_counter()
    result = verify(acas("1_1"), spec, time_limit=0.3)
    assert time.perf_counter() - start < 1.5
    assert result.status == "unknown" and result.timed_out and result.counterexample is None


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([-0.05, 0.05]), st.booleans())
def test_verdicts_agree_with_an_independent_pyomo_milp(seed: int, offset: float, split: bool) -> None:
    """``y_0 >= max + offset`` over a box: unsat above the maximum, sat below it.

    The maximum comes from ReLUNetBlock + solve (the Pyomo big-M path), not from verify.
    """
    import pyomo.environ as pe

    from pyomo_relu.block import ReLUNetBlock
    from pyomo_relu.solvers import solve

    net = random_net(seed, (2, 10, 10, 2)).with_input_bounds([(-1, 1), (-1, 1)])
    model = pe.ConcreteModel()
    model.nn = ReLUNetBlock()
    model.nn.build(net, bounds="interval")
    model.objective = pe.Objective(expr=model.nn.outputs[0], sense=pe.maximize)
    best = solve(model, "highs").objective
    spec = parse_vnnlib(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)"
        "(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 -1))(assert (<= X_1 1))"
        f"(assert (>= Y_0 {best + offset!r}))"
    )
    result = verify(net, spec, time_limit=30, split=split)
    assert result.status == ("unsat" if offset > 0 else "sat")


# ----------------------------------------------------------------- min_margin
def _image(spec: object) -> np.ndarray:
    """The image a robustness property was built around (``clip(x0 ± eps, 0, 1)``)."""
    lower, upper = spec.input_boxes[0]
    eps = 0.03
    return np.clip(np.where(lower <= 0, upper - eps, np.where(upper >= 1, lower + eps, (lower + upper) / 2)), 0, 1)


@pytest.mark.parametrize("norm", ["linf", "l1"])
def test_min_margin_is_attained_and_below_every_sample(norm: str) -> None:
    net = random_net(3, (2, 16, 16, 3))
    x0 = np.array([0.2, -0.1])
    label = int(np.argmax(net.evaluate(x0)))
    result = min_margin(net, x0, 0.5, label, norm=norm)
    assert result.optimal
    grid = np.linspace(-0.5, 0.5, 201)
    offsets = np.array([[a, b] for a in grid for b in grid])
    if norm == "l1":
        offsets = offsets[np.abs(offsets).sum(axis=1) <= 0.5]
        assert np.abs(result.x - x0).sum() <= 0.5 + 1e-9
    else:
        assert np.all(np.abs(result.x - x0) <= 0.5 + 1e-12)
    y = net.evaluate(x0 + offsets)
    sampled = y[:, label] - np.max(np.delete(y, label, axis=1), axis=1)
    assert result.margin <= sampled.min() + 1e-9  # the optimum is at least as bad as any sample
    assert result.margin >= sampled.min() - 0.02  # and close to the finest sample (grid step 0.005)
    assert result.bound <= result.margin + 1e-7
    y_x = net.evaluate(result.x)
    assert result.margin == pytest.approx(y_x[label] - np.max(np.delete(y_x, label)), abs=1e-12)


def test_min_margin_clips_to_the_input_box() -> None:
    net = random_net(5, (2, 8, 3))
    x0 = np.array([0.9, 0.1])
    label = int(np.argmax(net.evaluate(x0)))
    result = min_margin(net, x0, 0.5, label, input_lower=0.0, input_upper=1.0)
    assert np.all(result.x >= 0) and np.all(result.x <= 1)


def test_min_margin_on_mnist_image_with_small_eps_is_positive() -> None:
    net = mnist()
    spec = read_vnnlib(MNIST / "vnnlib" / "prop_0_0.03.vnnlib")
    x0 = _image(spec)
    label = int(re.search(r"label: (\d+)", (MNIST / "vnnlib" / "prop_0_0.03.vnnlib").read_text()).group(1))
    assert int(np.argmax(net.evaluate(x0))) == label
    result = min_margin(net, x0, 0.005, label, input_lower=0.0, input_upper=1.0, time_limit=60)
    assert result.optimal and result.margin > 0 and result.bound > 0
    clean = net.evaluate(x0)
    assert result.margin <= clean[label] - np.max(np.delete(clean, label))


# ------------------------------------------------------------------------ CLI
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyomo_relu", *args], capture_output=True, text=True, timeout=120)


def test_cli_verify_sat_writes_vnncomp_result(tmp_path: Path) -> None:
    out = tmp_path / "result.txt"
    model = str(ACAS / "onnx" / "ACASXU_run2a_2_1_batch_2000.onnx")
    done = _cli("verify", model, str(ACAS / "vnnlib" / "prop_2.vnnlib"), "--time-limit", "30", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sat"
    lines = out.read_text().splitlines()
    assert lines[0] == "sat" and lines[1].startswith("((X_0 ") and lines[-1].endswith("))")
    x, _ = read_counterexample(out)
    assert check_counterexample(acas("2_1"), read_vnnlib(ACAS / "vnnlib" / "prop_2.vnnlib"), x).valid


def test_cli_verify_json_unsat_and_timeout(tmp_path: Path) -> None:
    model = str(ACAS / "onnx" / "ACASXU_run2a_2_1_batch_2000.onnx")
    done = _cli("verify", model, str(ACAS / "vnnlib" / "prop_4.vnnlib"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "unsat" and report["counterexample"] is None
    assert report["subproblems"] >= 1 and report["seconds"] >= 0
    out = tmp_path / "result.txt"
    done = _cli(
        "verify",
        str(ACAS / "onnx" / "ACASXU_run2a_1_1_batch_2000.onnx"),
        str(ACAS / "vnnlib" / "prop_3.vnnlib"),
        "--time-limit",
        "0.2",
        "--out",
        str(out),
    )
    assert done.returncode == 0 and done.stdout.strip() == "unknown"
    assert out.read_text().strip() == "timeout"


def test_cli_verify_bad_property_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.vnnlib"
    bad.write_text("(declare-const X_0 Real)\n(assert (<= X_0 1)\n")
    done = _cli("verify", str(ACAS / "onnx" / "ACASXU_run2a_2_1_batch_2000.onnx"), str(bad))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "line 2" in done.stderr
    done = _cli(
        "verify", str(ACAS / "onnx" / "ACASXU_run2a_2_1_batch_2000.onnx"), str(MNIST / "vnnlib" / "prop_0_0.03.vnnlib")
    )
    assert done.returncode == 2 and "784 inputs" in done.stderr


@pytest.mark.parametrize("offset", [-0.05, 0.05])
def test_parallel_polytope_milps_agree_with_the_exact_maximum(offset: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The MILP route with two worker processes: one polytope per output difference, threshold by the exact MILP.

    The attack is switched off so that a ``sat`` too comes from a MILP (confirmed by the forward pass).
    """
    import importlib

    from pyomo_relu.search.optimize import optimize

    monkeypatch.setattr(importlib.import_module("pyomo_relu.verify.decide"), "_attack", lambda *args: None)

    net = random_net(7, (6, 10, 10, 2)).with_input_bounds([(-1, 1)] * 6)
    best = optimize(net, [1.0, -1.0], sense="maximize", time_limit=60, progress=False)
    worst = optimize(net, [-1.0, 1.0], sense="maximize", time_limit=60, progress=False)
    assert best.status == worst.status == "optimal"
    polytopes = (
        Polytope(np.array([[-1.0, 1.0]]), np.array([-(best.objective + offset)])),
        Polytope(np.array([[1.0, -1.0]]), np.array([-(worst.objective + 0.05)])),
    )
    spec = Specification(6, 2, (Case(net.input_lower, net.input_upper, polytopes),))
    for executor in (None, 2):
        result = verify(net, spec, time_limit=60, split=False, relu_split=False, executor=executor)
        assert result.status == ("unsat" if offset > 0 else "sat"), (executor, result.method, result.reason)
        assert result.details.get("milp_polytopes") == 2  # both polytopes reach the MILPs (run side by side)
        if result.status == "sat":
            assert check_counterexample(net, spec, result.counterexample[0]).valid
