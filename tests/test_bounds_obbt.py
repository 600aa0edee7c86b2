"""LP and MILP bound tightening (``pyomo_relu.bounds.obbt``).

Soundness on random networks (sampled inputs lie inside the bounds), strength
(lp within interval, milp within lp), exactness on the reluMIP peaks network against
independently enumerated pre-activation ranges, backward tightening with output
bounds, executors (process pool, Dask), time limit and progress bar.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_contains, sample_box
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyomo_relu.bounds import METHODS, Bounds, tighten
from pyomo_relu.bounds.obbt import lp_bounds
from pyomo_relu.bounds.rows import build_lp
from pyomo_relu.errors import PyomoReluError, UnknownOptionError
from pyomo_relu.network import DenseLayer, NetworkDefinition

DATA = Path(__file__).parent / "data"
TOL = 1e-9  # sampled values vs bounds (the bounds are already widened)
SOLVER_TOL = 1e-5  # comparisons between two solver results

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

weight_values = st.one_of(st.just(0.0), st.floats(-2.0, 2.0, allow_nan=False, width=64))


@st.composite
def networks(draw: st.DrawFn) -> NetworkDefinition:
    """2-3 canonical layers, widths up to 8, ReLU hidden layers (sometimes linear), a linear output."""
    n_layers = draw(st.integers(2, 3))
    widths = [draw(st.integers(1, 4))] + [draw(st.integers(1, 8)) for _ in range(n_layers)]
    layers = []
    for k in range(n_layers):
        weights = draw(hnp.arrays(np.float64, (widths[k + 1], widths[k]), elements=weight_values))
        bias = draw(hnp.arrays(np.float64, (widths[k + 1],), elements=weight_values))
        last = k == n_layers - 1
        activation = "linear" if last else draw(st.sampled_from(["relu", "relu", "relu", "linear"]))
        layers.append(DenseLayer(weights, bias, activation))
    lower = draw(hnp.arrays(np.float64, (widths[0],), elements=st.floats(-2.0, 1.0)))
    width = draw(hnp.arrays(np.float64, (widths[0],), elements=st.floats(0.05, 3.0)))
    return NetworkDefinition(layers, input_bounds=(lower, lower + width))


def assert_within(inner: Bounds, outer: Bounds, tol: float, what: str) -> None:
    for k in range(inner.n_layers):
        scale = tol * np.maximum(1.0, np.abs(outer.lower[k]))
        assert np.all(inner.lower[k] >= outer.lower[k] - scale), (what, k, inner.lower[k], outer.lower[k])
        scale = tol * np.maximum(1.0, np.abs(outer.upper[k]))
        assert np.all(inner.upper[k] <= outer.upper[k] + scale), (what, k, inner.upper[k], outer.upper[k])


def total_width(bounds: Bounds, layers: range | None = None) -> float:
    layers = layers or range(bounds.n_layers)
    return float(sum(np.sum(bounds.width(k)) for k in layers))


# --------------------------------------------------------------------- random networks
@SETTINGS
@given(networks())
def test_lp_and_milp_are_sound_and_ordered(net: NetworkDefinition) -> None:
    X = sample_box(net.input_lower, net.input_upper)
    interval = tighten(net, "interval")
    lp = tighten(net, ["interval", "lp"], progress=False)
    milp = tighten(net, ["interval", "milp"], time_limit_per_neuron=5.0, progress=False)
    assert lp.methods == ("interval", "lp") and milp.methods == ("interval", "milp")
    assert_contains(lp, net, X, "lp")
    assert_contains(milp, net, X, "milp")
    assert_within(lp, interval, 0.0, "lp within interval")
    assert_within(milp, lp, SOLVER_TOL, "milp within lp")


def test_milp_is_exact_on_a_small_network() -> None:
    """relu(x0 + x1) + relu(x0 - x1) on [-1, 1]^2 has range [0, 2]; the LP gives 3 above."""
    net = NetworkDefinition(
        [DenseLayer([[1.0, 1.0], [1.0, -1.0]], [0.0, 0.0]), DenseLayer([[1.0, 1.0]], [0.0], "linear")],
        input_bounds=[(-1, 1), (-1, 1)],
    )
    lp = tighten(net, ["interval", "lp"], progress=False)
    milp = tighten(net, ["interval", "milp"], progress=False, all_neurons=True)
    np.testing.assert_allclose(lp.upper[1], [3.0], atol=1e-5)
    np.testing.assert_allclose(milp.upper[1], [2.0], atol=1e-5)
    np.testing.assert_allclose(milp.lower[1], [0.0], atol=1e-5)
    assert milp.upper[1][0] >= 2.0 and milp.lower[1][0] <= 0.0  # widened, never cut


# ------------------------------------------------------------------------------ peaks
def test_peaks_milp_is_exact_and_lp_contains_it(peaks, peaks_exact) -> None:
    lp = tighten(peaks, ["interval", "crown", "lp"], progress=False)
    milp = tighten(
        peaks, ["interval", "crown", "lp", "milp"], all_neurons=True, time_limit_per_neuron=60.0, progress=False
    )
    assert len(peaks_exact) == milp.n_layers == 4
    for k, (lo, hi) in enumerate(peaks_exact):
        assert np.all(lp.lower[k] <= lo + TOL) and np.all(lp.upper[k] >= hi - TOL), k
        assert np.all(milp.lower[k] <= lo + TOL) and np.all(milp.upper[k] >= hi - TOL), k
        np.testing.assert_allclose(milp.lower[k], lo, atol=1e-5, err_msg=f"layer {k} lower")
        np.testing.assert_allclose(milp.upper[k], hi, atol=1e-5, err_msg=f"layer {k} upper")
    # the LP is strictly between interval and exact in the deeper layers
    interval = tighten(peaks, "interval")
    assert total_width(lp, range(1, 4)) < total_width(interval, range(1, 4))


# ---------------------------------------------------------------------- output bounds
def test_output_bounds_tighten_backwards() -> None:
    """y = relu(x0 + x1) + relu(x0 - x1) <= 0.5 implies 2 x0 <= 0.5 in the LP relaxation."""
    net = NetworkDefinition(
        [DenseLayer([[1.0, 1.0], [1.0, -1.0]], [0.0, 0.0]), DenseLayer([[1.0, 1.0]], [0.0], "linear")],
        input_bounds=[(-1, 1), (-1, 1)],
    )
    plain = tighten(net, ["interval", "lp"], progress=False)
    bounded = tighten(net, ["interval", "lp"], output_bounds=[(None, 0.5)], progress=False)
    assert plain.output_lower is None and plain.implied_input_lower is None
    np.testing.assert_array_equal(bounded.output_upper, [0.5])
    assert bounded.output_lower[0] == -np.inf
    np.testing.assert_allclose(bounded.implied_input_upper[0], 0.25, atol=1e-5)
    np.testing.assert_array_equal(bounded.input_upper, [1.0, 1.0])  # the box asked for is kept
    assert np.all(bounded.upper[0] < plain.upper[0] - 0.5)  # first layer: 2 -> 1.25
    assert bounded.upper[1][0] <= 0.5 + 1e-9
    X = sample_box(net.input_lower, net.input_upper, 20000)
    inside = X[net.evaluate(X)[:, 0] <= 0.5]
    assert len(inside) > 1000
    assert_contains(bounded, net, inside, "lp with output bounds")
    assert np.all(inside <= bounded.implied_input_upper + TOL)
    assert np.all(inside >= bounded.implied_input_lower - TOL)


@settings(SETTINGS, max_examples=15)
@given(networks(), st.floats(0.1, 0.9))
def test_output_bounds_are_sound_on_random_networks(net: NetworkDefinition, quantile: float) -> None:
    X = sample_box(net.input_lower, net.input_upper)
    y = net.evaluate(X)[:, 0]
    limit = float(np.quantile(y, quantile))
    out = [(None, limit)] + [(None, None)] * (net.n_outputs - 1)
    plain = tighten(net, ["interval", "lp"], progress=False)
    for chain in (["interval", "lp"], ["interval", "crown", "milp"]):
        bounded = tighten(net, chain, output_bounds=out, progress=False)
        inside = X[y <= limit]
        assert_contains(bounded, net, inside, f"{chain} with y0 <= {limit}")
        assert np.all(inside <= bounded.implied_input_upper + TOL)
        assert np.all(inside >= bounded.implied_input_lower - TOL)
        assert bounded.upper[-1][0] <= limit
    bounded = tighten(net, ["interval", "lp"], output_bounds=out, progress=False)
    assert_within(bounded, plain, SOLVER_TOL, "lp with output bounds within lp")


def test_output_bounds_without_points_raise(peaks) -> None:
    with pytest.raises(PyomoReluError, match="admit no point"):  # interval arithmetic proves it
        tighten(peaks, ["interval", "lp"], output_bounds=[(None, -1000.0)], progress=False)
    with pytest.raises(PyomoReluError, match="admit no point.*LP"):  # only the LP proves it
        tighten(peaks, ["interval", "lp"], output_bounds=(np.array([-np.inf]), np.array([-40.0])), progress=False)
    with pytest.raises(PyomoReluError, match="admit no point"):
        tighten(peaks, "interval", output_bounds={0: (1000.0, None)})


def test_output_bounds_met_only_at_the_edge_do_not_raise() -> None:
    """y = x0 + relu(x1) with x0 fixed at 0.5 and y <= 0.5: only x1 <= 0 remains (degenerate LP)."""
    net = NetworkDefinition(
        [DenseLayer([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), DenseLayer([[1.0, 1.0]], [0.0], "linear")],
        input_bounds=[(0.5, 0.5), (-1, 1)],
    )
    for chain in (["interval", "lp"], ["interval", "milp"]):
        bounds = tighten(net, chain, output_bounds=[(None, 0.5)], progress=False)
        assert 0.0 <= bounds.implied_input_upper[1] <= 1e-5, chain
        assert bounds.implied_input_lower[1] == -1.0 and bounds.upper[0][1] <= 1e-5
        X = np.column_stack([np.full(11, 0.5), np.linspace(-1, 0, 11)])
        assert_contains(bounds, net, X, f"{chain} at the edge")


def test_solver_infeasibility_is_rechecked() -> None:
    from pyomo_relu.bounds.obbt import _confirm_empty
    from pyomo_relu.bounds.rows import LinearProgram

    def one_row(lower: float) -> LinearProgram:  # x0 + x1 >= lower, 0 <= x <= 1
        return LinearProgram(
            np.zeros(2),
            np.ones(2),
            np.array([lower]),
            np.array([np.inf]),
            np.array([0, 2], np.int32),
            np.array([0, 1], np.int32),
            np.ones(2),
            np.zeros(0, np.int32),
        )

    assert _confirm_empty(one_row(2.5), integer=False)
    assert not _confirm_empty(one_row(2.0), integer=False)


def test_output_bounds_survive_save_and_load(tmp_path: Path) -> None:
    net = NetworkDefinition(
        [DenseLayer([[1.0, 1.0], [1.0, -1.0]], [0.0, 0.0]), DenseLayer([[1.0, 1.0]], [0.0], "linear")],
        input_bounds=[(-1, 1), (-1, 1)],
    )
    bounds = tighten(net, ["interval", "crown", "lp"], output_bounds=[(None, 0.5)], progress=False)
    for name in ("b.json", "b.npz"):
        bounds.save(tmp_path / name)
        loaded = Bounds.load(tmp_path / name, net)
        for field in ("output_lower", "output_upper", "implied_input_lower", "implied_input_upper"):
            np.testing.assert_array_equal(getattr(loaded, field), getattr(bounds, field))
        assert loaded.methods == bounds.methods
    assert bounds.intersect(tighten(net, "interval")).output_upper[0] == 0.5


# --------------------------------------------------------------------------- executors
def test_process_pool_and_dask_give_the_serial_bounds(peaks) -> None:
    serial = tighten(peaks, ["interval", "lp"], progress=False)
    pooled = tighten(peaks, ["interval", "lp"], executor=2, progress=False)
    assert_same(pooled, serial)
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = tighten(peaks, ["interval", "lp"], executor=client.get_executor(), progress=False)
    assert_same(on_dask, serial)


def assert_same(a: Bounds, b: Bounds) -> None:
    for k in range(a.n_layers):
        np.testing.assert_allclose(a.lower[k], b.lower[k], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a.upper[k], b.upper[k], rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------- time and progress
def wide_network(seed: int = 3) -> NetworkDefinition:
    rng = np.random.default_rng(seed)
    sizes = [5, 40, 40, 40, 3]
    layers = [
        DenseLayer(
            rng.normal(size=(m, n)) / np.sqrt(n), rng.normal(size=m) * 0.1, "relu" if i < len(sizes) - 2 else "linear"
        )
        for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    return NetworkDefinition(layers, input_bounds=[(-1, 1)] * 5)


def test_time_limit_is_respected_and_bounds_stay_valid() -> None:
    net = wide_network()
    start = tighten(net, ["interval", "crown"])
    untouched = tighten(net, ["interval", "crown", "milp"], time_limit=0.0, progress=False)
    assert_same(untouched, start)
    X = sample_box(net.input_lower, net.input_upper, 5000)
    began = time.perf_counter()
    limited = tighten(net, ["interval", "crown", "milp"], time_limit=1.0, time_limit_per_neuron=5.0, progress=False)
    elapsed = time.perf_counter() - began
    assert elapsed < 1.0 + 3.0, elapsed  # a slack for a loaded machine; a full run takes far longer
    assert_within(limited, start, 0.0, "time-limited milp")
    assert_contains(limited, net, X, "time-limited milp")
    # each MILP stops at the per-neuron limit and gives its dual bound, never its incumbent
    solves = 2 * sum(int(start.unstable(k).sum()) for k in range(1, start.n_layers))
    began = time.perf_counter()
    stopped = tighten(net, ["interval", "crown", "milp"], time_limit_per_neuron=0.01, progress=False)
    elapsed = time.perf_counter() - began
    assert elapsed < solves * 0.01 * 2 + 3.0, (elapsed, solves)
    assert_contains(stopped, net, X, "milp stopped by time_limit_per_neuron")


def test_progress_bar_runs(peaks, capsys, monkeypatch) -> None:
    shown = tighten(peaks, ["interval", "lp"], progress=True)
    assert "lp bounds" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # tqdm not installed: no bar, no error
    silent = tighten(peaks, ["interval", "lp"], progress=True)
    assert_same(silent, shown)


# ------------------------------------------------------------------------------ chain
def test_chain_passes_only_accepted_options(peaks, monkeypatch) -> None:
    seen = {}

    def strict(net, lower, upper, start, time_limit=None):  # no **kwargs
        seen["time_limit"] = time_limit
        return start

    monkeypatch.setitem(METHODS, "strict", strict)
    bounds = tighten(peaks, ["interval", "strict", "lp"], time_limit=30.0, executor=None, progress=False)
    assert 0 < seen["time_limit"] <= 30.0
    with pytest.raises(UnknownOptionError, match="time_limit_per_neuron"):  # an option of "milp" only
        tighten(peaks, ["interval", "strict", "lp"], time_limit_per_neuron=1.0)
    assert bounds.methods == ("interval", "lp")
    if "crown" in METHODS:
        assert tighten(peaks, ["interval", "crown", "lp"], progress=False).methods == ("interval", "crown", "lp")
    with pytest.raises(PyomoReluError, match="mode='model'"):
        tighten(peaks, "lp", mode="model")


def test_layer_lp_structure(peaks) -> None:
    """The layer LP: inputs, then per unstable neuron z, h and the triangle; stable ones an equality."""
    bounds = tighten(peaks, "interval")
    layers = peaks.canonical_layers
    lp, columns = build_lp(layers, bounds.lower, bounds.upper, peaks.input_lower, peaks.input_upper, 1, False)
    assert lp.n_cols == 2 + 2 * 10 and lp.n_rows == 3 * 10 and lp.integer.size == 0
    assert list(columns[1]) == list(range(2 + 10, 2 + 20))  # h columns after the z columns
    milp, _ = build_lp(layers, bounds.lower, bounds.upper, peaks.input_lower, peaks.input_upper, 1, True)
    assert milp.integer.size == 10 and milp.n_rows == 4 * 10
    direct = lp_bounds(peaks, peaks.input_lower, peaks.input_upper, None, progress=False)
    assert direct.methods == ("interval", "lp")
