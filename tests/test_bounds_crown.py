"""CROWN bounds on the reference networks: sound, tighter than interval, persistable."""

from __future__ import annotations

import re
from pathlib import Path

import helpers
import numpy as np
import pytest
from helpers import assert_contains, sample_box

from pyomo_relu.bounds import METHODS, Bounds, crown_bounds, interval_bounds, tighten
from pyomo_relu.bounds.crown import relaxation
from pyomo_relu.errors import BoundsMismatchError, ShapeMismatchError
from pyomo_relu.network import DenseLayer, NetworkDefinition, Scaling

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

DATA = Path(__file__).parent / "data"
PEAKS = DATA / "relumip" / "peaks_3x10.onnx"
MNIST = DATA / "mnist_fc" / "onnx" / "mnist-net_256x2.onnx"
MNIST_PROP0 = DATA / "mnist_fc" / "vnnlib" / "prop_0_0.03.vnnlib"
ACAS = DATA / "acasxu" / "onnx" / "ACASXU_run2a_1_1_batch_2000.onnx"
ACAS_PROP3 = DATA / "acasxu" / "vnnlib" / "prop_3.vnnlib"


# --------------------------------------------------------------------------- loaders
def _initializers(model) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}


def load_acas(path: Path) -> NetworkDefinition:
    """ACAS Xu: Sub(mean) then MatMul + Add (+ Relu); the Sub becomes an input scaling."""
    model = onnx.load(str(path))
    init = _initializers(model)
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    adds = [n for n in model.graph.node if n.op_type == "Add"]
    layers = [
        DenseLayer(init[mm.input[1]].T, init[add.input[1]], "relu" if k < len(matmuls) - 1 else "linear")
        for k, (mm, add) in enumerate(zip(matmuls, adds))
    ]
    mean = init["input_AvgImg"].ravel()
    return NetworkDefinition(layers, input_scaling=Scaling(mean, np.ones_like(mean)))


def read_vnnlib_box(path: Path, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    lower, upper = np.full(n_inputs, -np.inf), np.full(n_inputs, np.inf)
    pattern = r"\(assert \((>=|<=) X_(\d+) ([-+0-9.eE]+)\)\)"
    for op, index, value in re.findall(pattern, path.read_text()):
        (lower if op == ">=" else upper)[int(index)] = float(value)
    assert np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)), "box not fully read"
    return lower, upper


def onnx_forward(path: Path, X: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rows = [session.run(None, {name: x.astype(np.float32).reshape(shape)})[0].ravel() for x in X]
    return np.array(rows)


def assert_subset(inner: Bounds, outer: Bounds) -> None:
    for k in range(outer.n_layers):
        assert np.all(inner.lower[k] >= outer.lower[k]), f"layer {k}: lower looser"
        assert np.all(inner.upper[k] <= outer.upper[k]), f"layer {k}: upper looser"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def peaks() -> NetworkDefinition:
    return helpers.peaks(independent=True)  # read without pyomo_relu.io: the loader is tested here


@pytest.fixture(scope="module")
def mnist() -> tuple[NetworkDefinition, np.ndarray, np.ndarray]:
    lower, upper = read_vnnlib_box(MNIST_PROP0, 784)
    return helpers.gemm_chain(MNIST, input_bounds=(lower, upper)), lower, upper


# --------------------------------------------------------------------------- peaks
def test_peaks_loader_matches_onnxruntime(peaks: NetworkDefinition) -> None:
    X = sample_box(peaks.input_lower, peaks.input_upper, 20, seed=1)
    np.testing.assert_allclose(peaks.evaluate(X), onnx_forward(PEAKS, X, (1, 2)), rtol=1e-5, atol=1e-5)


def test_peaks_crown_contains_exact_ranges(peaks: NetworkDefinition, peaks_exact) -> None:
    crown = crown_bounds(peaks)
    assert crown.methods == ("crown",)
    assert [lo.size for lo in crown.lower] == [10, 10, 10, 1]
    for k, (lo, hi) in enumerate(peaks_exact):
        # Exact ranges are attained, so any sound bound contains them (float32 weights).
        assert np.all(crown.lower[k] <= lo + 1e-5), f"layer {k}: crown lower above exact minimum"
        assert np.all(crown.upper[k] >= hi - 1e-5), f"layer {k}: crown upper below exact maximum"
    # The first layer is exact for both methods.
    np.testing.assert_allclose(crown.lower[0], peaks_exact[0][0], atol=1e-5)
    np.testing.assert_allclose(crown.upper[0], peaks_exact[0][1], atol=1e-5)


def test_peaks_crown_tighter_than_interval(peaks: NetworkDefinition) -> None:
    crown, interval = crown_bounds(peaks), interval_bounds(peaks)
    assert_subset(crown, interval)
    np.testing.assert_array_equal(crown.lower[0], interval.lower[0])
    np.testing.assert_array_equal(crown.upper[0], interval.upper[0])
    for k in range(1, crown.n_layers):
        assert crown.width(k).mean() < interval.width(k).mean(), f"layer {k} not tighter on average"
    # Measured: output width 155.0 (crown) vs 279.8 (interval); exact 15.8, LP-OBBT 70.4.
    assert crown.width(3)[0] < 0.6 * interval.width(3)[0]
    assert crown.width(2).mean() < 0.7 * interval.width(2).mean()  # 41.5 vs 69.7


def test_peaks_crown_from_exact_start(peaks: NetworkDefinition, peaks_exact) -> None:
    """Started from the exact ranges, CROWN keeps them (no crossing, no loosening)."""
    exact = Bounds(
        [lo for lo, _ in peaks_exact],
        [hi for _, hi in peaks_exact],
        peaks.input_lower,
        peaks.input_upper,
        peaks.content_hash(),
        ("exact",),
    )
    crown = crown_bounds(peaks, start=exact)
    assert crown.methods == ("exact", "crown")
    assert_subset(crown, exact)
    for k, (lo, hi) in enumerate(peaks_exact):
        assert np.all(crown.lower[k] <= crown.upper[k])
        np.testing.assert_allclose(crown.lower[k], lo, atol=1e-12)
        np.testing.assert_allclose(crown.upper[k], hi, atol=1e-12)


def test_peaks_samples_inside_crown(peaks: NetworkDefinition) -> None:
    grid = np.linspace(-3, 3, 61)
    X = np.array(np.meshgrid(grid, grid)).reshape(2, -1).T
    assert_contains(crown_bounds(peaks), peaks, X)


# --------------------------------------------------------------------------- MNIST
def test_mnist_loader_matches_onnxruntime(mnist) -> None:
    net, lower, upper = mnist
    X = sample_box(lower, upper, 6, seed=2)
    np.testing.assert_allclose(net.evaluate(X), onnx_forward(MNIST, X, (1, 784, 1)), rtol=1e-4, atol=1e-4)


def test_mnist_crown_fewer_unstable_and_sound(mnist) -> None:
    net, lower, upper = mnist
    crown, interval = crown_bounds(net), interval_bounds(net)
    assert_subset(crown, interval)
    unstable_crown = [int(crown.unstable(k).sum()) for k in range(2)]
    unstable_interval = [int(interval.unstable(k).sum()) for k in range(2)]
    assert unstable_crown[0] == unstable_interval[0]  # the first layer is exact for both
    assert unstable_crown[1] < unstable_interval[1]  # the second hidden layer gains
    assert crown.width(2).mean() < 0.5 * interval.width(2).mean()
    X = sample_box(lower, upper, 2000, seed=3)
    assert_contains(crown, net, X)


def test_mnist_tighten_registry(mnist) -> None:
    net, lower, upper = mnist
    assert "crown" in METHODS
    chained = tighten(net, ["interval", "crown"])
    alone = tighten(net, "crown")
    assert chained.methods == alone.methods == ("interval", "crown")
    direct = crown_bounds(net, lower, upper, start=interval_bounds(net))
    for k in range(direct.n_layers):
        np.testing.assert_array_equal(chained.lower[k], direct.lower[k])
        np.testing.assert_array_equal(chained.upper[k], direct.upper[k])


# --------------------------------------------------------------------------- ACAS Xu
def test_acas_crown_with_input_offset() -> None:
    net = load_acas(ACAS)
    lower, upper = read_vnnlib_box(ACAS_PROP3, 5)
    X = sample_box(lower, upper, 10, seed=4)
    np.testing.assert_allclose(net.evaluate(X), onnx_forward(ACAS, X, (1, 1, 1, 5)), rtol=1e-4, atol=1e-4)
    crown, interval = crown_bounds(net, lower, upper), interval_bounds(net, lower, upper)
    assert_subset(crown, interval)
    assert_contains(crown, net, sample_box(lower, upper, 2000, seed=5))
    hidden = range(crown.n_layers - 1)
    # Measured: 110 unstable ReLUs (crown) vs 220 (interval) of 300.
    assert sum(crown.unstable(k).sum() for k in hidden) < 0.6 * sum(interval.unstable(k).sum() for k in hidden)


# --------------------------------------------------------------------------- small cases
def test_linear_network_is_exact() -> None:
    """Without ReLUs, back-substitution composes the affine maps: CROWN is exact."""
    rng = np.random.default_rng(7)
    layers = [
        DenseLayer(rng.normal(size=(4, 3)), rng.normal(size=4), "linear"),
        DenseLayer(rng.normal(size=(5, 4)), rng.normal(size=5), "linear"),
        DenseLayer(rng.normal(size=(2, 5)), rng.normal(size=2), "linear"),
    ]
    lower, upper = -np.ones(3), np.array([1.0, 2.0, 0.5])
    net = NetworkDefinition(layers, input_bounds=(lower, upper), output_scaling=Scaling([1.0, -1.0], [-2.0, 3.0]))
    crown, interval = crown_bounds(net), interval_bounds(net)
    weights, bias = np.eye(3), np.zeros(3)
    for k, layer in enumerate(net.canonical_layers):
        weights, bias = layer.weights @ weights, layer.weights @ bias + layer.bias
        exact_lo = np.minimum(weights, 0) @ upper + np.maximum(weights, 0) @ lower + bias
        exact_hi = np.maximum(weights, 0) @ upper + np.minimum(weights, 0) @ lower + bias
        np.testing.assert_allclose(crown.lower[k], exact_lo, atol=1e-12)
        np.testing.assert_allclose(crown.upper[k], exact_hi, atol=1e-12)
    assert interval.width(2).sum() > crown.width(2).sum() + 1e-6


@pytest.mark.parametrize(
    "low, high",
    [
        (-1.0, 3.0),
        (-3.0, 1.0),
        (-2.0, 2.0),
        (0.0, 2.0),
        (0.5, 2.0),
        (-2.0, 0.0),
        (-2.0, -0.5),
        (-1e-12, 1e-12),
        (-np.inf, 2.0),
        (-2.0, np.inf),
        (-np.inf, np.inf),
        (1.0, 1.0),
    ],
)
def test_relu_relaxation_sandwiches_relu(low: float, high: float) -> None:
    slope_u, intercept_u, slope_l = (a[0] for a in relaxation(np.array([low]), np.array([high]), "relu"))
    assert 0.0 <= slope_l <= 1.0 and 0.0 <= slope_u <= 1.0 and intercept_u >= 0.0
    z = np.linspace(max(low, -50.0), min(high, 50.0), 1001)
    relu = np.maximum(z, 0.0)
    assert np.all(slope_l * z <= relu + 1e-12)
    assert np.all(slope_u * z + intercept_u >= relu - 1e-12)
    if np.isfinite(low) and np.isfinite(high) and low < 0 < high:
        # The chord touches the ReLU at both ends; the adaptive lower slope follows the larger side.
        assert slope_u * low + intercept_u == pytest.approx(0.0, abs=1e-12)
        assert slope_u * high + intercept_u == pytest.approx(high)
        assert slope_l == (1.0 if high >= -low else 0.0)


def test_linear_relaxation_is_identity() -> None:
    slope_u, intercept_u, slope_l = relaxation(np.array([-np.inf, -1.0]), np.array([np.inf, 2.0]), "linear")
    np.testing.assert_array_equal(slope_u, [1.0, 1.0])
    np.testing.assert_array_equal(slope_l, [1.0, 1.0])
    np.testing.assert_array_equal(intercept_u, [0.0, 0.0])


def test_unbounded_input_gives_infinite_bounds_without_nan() -> None:
    """Input 1 is unbounded above; neurons that do not see it keep finite bounds."""
    layers = [
        DenseLayer([[1.0, 0.0], [1.0, 1.0], [-1.0, 2.0]], [0.0, -1.0, 0.5], "relu"),
        DenseLayer([[1.0, 0.0, 0.0], [1.0, -1.0, 1.0], [0.0, 1.0, 0.0]], [0.1, 0.0, -0.2], "relu"),
        DenseLayer([[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]], [0.0, 0.0], "linear"),
    ]
    net = NetworkDefinition(layers, input_bounds=[(-1.0, 2.0), (0.0, None)])
    crown, interval = crown_bounds(net), interval_bounds(net)
    for k in range(crown.n_layers):
        assert not np.any(np.isnan(crown.lower[k])) and not np.any(np.isnan(crown.upper[k]))
    assert_subset(crown, interval)
    assert np.isfinite(crown.upper[0][0]) and np.isinf(crown.upper[0][1])
    assert np.isfinite(crown.upper[1][0]) and np.isfinite(crown.upper[2][1])
    assert np.isinf(crown.upper[2][0])
    X = sample_box(np.array([-1.0, 0.0]), np.array([2.0, 1e6]), 2000, seed=6)
    assert_contains(crown, net, X)


# --------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_crown_bounds_save_load_round_trip(peaks: NetworkDefinition, tmp_path: Path, suffix: str) -> None:
    crown = tighten(peaks, ["interval", "crown"])
    path = tmp_path / f"peaks_bounds{suffix}"
    crown.save(path)
    loaded = Bounds.load(path, network=peaks)
    assert loaded.methods == crown.methods
    assert loaded.network_hash == crown.network_hash
    np.testing.assert_array_equal(loaded.input_lower, crown.input_lower)
    np.testing.assert_array_equal(loaded.input_upper, crown.input_upper)
    for k in range(crown.n_layers):
        np.testing.assert_array_equal(loaded.lower[k], crown.lower[k])
        np.testing.assert_array_equal(loaded.upper[k], crown.upper[k])
    # A smaller box is fine: bounds of a larger box stay valid.
    Bounds.load(path, network=peaks.with_input_bounds([(-1, 1), (-3, 3)]))
    with pytest.raises(BoundsMismatchError, match="outside the box"):
        Bounds.load(path, network=peaks.with_input_bounds([(-3, 3.5), (-3, 3)]))
    other_layers = list(peaks.layers)
    other_layers[-1] = DenseLayer(peaks.layers[-1].weights, peaks.layers[-1].bias + 1e-6, "linear")
    other = NetworkDefinition(other_layers, input_bounds=[(-3, 3), (-3, 3)])
    with pytest.raises(BoundsMismatchError, match="network"):
        Bounds.load(path, network=other)


def test_start_must_match_network_and_box(peaks: NetworkDefinition) -> None:
    start = crown_bounds(peaks, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    with pytest.raises(BoundsMismatchError):
        crown_bounds(peaks, start=start)  # start computed for a smaller box
    with pytest.raises(ShapeMismatchError):
        crown_bounds(peaks, np.zeros(3), np.ones(3))
    crown_bounds(peaks, np.array([-0.5, 0.0]), np.array([0.5, 0.5]), start=start)
