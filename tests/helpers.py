"""Helpers shared by the test files: seeded random networks, the peaks network, box samples, checks.

Import them as ``from helpers import random_net, sample_box, ...`` (pytest puts ``tests/`` on
``sys.path``).  The ``peaks`` fixture (in ``conftest.py``) is :func:`peaks` read once per module.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pyomo_relu.bounds import Bounds
from pyomo_relu.network import DenseLayer, NetworkDefinition

DATA = Path(__file__).parent / "data"
PEAKS_ONNX = DATA / "relumip" / "peaks_3x10.onnx"
PEAKS_TRUTH_FILE = DATA / "relumip" / "peaks_3x10_ground_truth.json"
PEAKS_BOX = [(-3.0, 3.0), (-3.0, 3.0)]
#: The peaks network's layers, in order, as named in the ground truth file.
PEAKS_LAYERS = ("hidden1(10)", "hidden2(10)", "hidden3(10)", "output(1)")

#: Sampled values may exceed bounds by this much (the bounds are already widened for round-off).
TOL = 1e-9
#: How far a correct MILP solution's outputs may sit from the forward pass at its inputs: the
#: solvers' integrality/feasibility tolerances (1e-6 for HiGHS, SCIP, CBC, glpk) times a
#: big-M of a few units.  A wrong formulation errs by far more.
FORWARD_TOLERANCE = 1e-5


# ------------------------------------------------------------------ networks
def random_net(
    seed: int,
    sizes: Sequence[int],
    box: object = 1.0,
    *,
    hidden: str = "relu",
    last: str = "linear",
    weight_scale: float = 1.0,
    fan_in: bool = False,
    bias_scale: float = 0.5,
    **kwargs: object,
) -> NetworkDefinition:
    """A seeded random network ``sizes[0] -> ... -> sizes[-1]``: ``hidden`` neurons, then ``last``.

    Per layer the weights are standard normal times ``weight_scale`` (divided by
    ``sqrt(n_in)`` with ``fan_in``), then the bias standard normal times ``bias_scale``, drawn
    in that order from ``numpy.random.default_rng(seed)``.  ``box`` is a half-width (the
    inputs in ``[-box, box]``), ``None`` (no input bounds) or any accepted ``input_bounds``;
    ``kwargs`` go to :class:`NetworkDefinition`.
    """
    rng = np.random.default_rng(seed)
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        weights = rng.normal(size=(n_out, n_in)) * weight_scale
        if fan_in:
            weights = weights / np.sqrt(n_in)
        bias = rng.normal(size=n_out) * bias_scale
        layers.append(DenseLayer(weights, bias, last if k == len(sizes) - 2 else hidden))
    if isinstance(box, (int, float)) and not isinstance(box, bool):
        box = [(-float(box), float(box))] * sizes[0]
    return NetworkDefinition(layers, input_bounds=box, **kwargs)


def gemm_chain(path: Path, input_bounds: object = None) -> NetworkDefinition:
    """A chain of ONNX Gemm (+ Relu) nodes read without pyomo_relu.io (an independent reader)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    nodes = list(model.graph.node)
    layers = []
    for index, node in enumerate(nodes):
        if node.op_type != "Gemm":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        weights = init[node.input[1]]
        if not attrs.get("transB", 0):
            weights = weights.T
        relu = index + 1 < len(nodes) and nodes[index + 1].op_type == "Relu"
        layers.append(DenseLayer(weights, init[node.input[2]], "relu" if relu else "linear", node.name))
    return NetworkDefinition(layers, input_bounds=input_bounds, source=str(path))


def peaks(input_bounds: object = PEAKS_BOX, independent: bool = False) -> NetworkDefinition:
    """The reluMIP peaks network 2-10-10-10-1 on ``input_bounds``.

    Read by :func:`pyomo_relu.io.onnx.load_onnx`, or with ``independent`` by :func:`gemm_chain`
    (for tests whose ground truth must not depend on the package's reader).
    """
    if independent:
        return gemm_chain(PEAKS_ONNX, input_bounds)
    from pyomo_relu.io.onnx import load_onnx

    return load_onnx(PEAKS_ONNX, input_bounds=input_bounds)


def peaks_truth() -> dict:
    """The peaks ground truth file (exact ranges, minimum and maximum of the network)."""
    return json.loads(PEAKS_TRUTH_FILE.read_text())


def peaks_exact_ranges() -> list[tuple[np.ndarray, np.ndarray]]:
    """The exact pre-activation range of every layer of peaks on :data:`PEAKS_BOX`, in order."""
    ranges = peaks_truth()["derived_exact_preactivation_ranges"]
    assert sorted(ranges) == sorted(PEAKS_LAYERS)
    return [(np.array(ranges[key]["lo"]), np.array(ranges[key]["hi"])) for key in PEAKS_LAYERS]


# ------------------------------------------------------------------- samples
def sample_box(lower: np.ndarray, upper: np.ndarray, n: int = 2000, seed: int = 0) -> np.ndarray:
    """``n`` points of the box: its corners (all of them, or ``n // 2`` random ones), then uniform."""
    rng = np.random.default_rng(seed)
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    d = lower.size
    if 2**d <= n // 2:
        mask = np.array(list(itertools.product([0.0, 1.0], repeat=d)))
    else:
        mask = rng.integers(0, 2, size=(n // 2, d)).astype(float)
    corners = lower + mask * (upper - lower)
    uniform = lower + rng.random((n - len(corners), d)) * (upper - lower)
    return np.vstack([corners, uniform])


# -------------------------------------------------------------------- checks
def assert_contains(bounds: Bounds, net: NetworkDefinition, X: np.ndarray, what: str = "", tol: float = TOL) -> None:
    """Every pre-activation of ``net`` at the points ``X`` is within ``bounds`` (to ``tol``); no NaN bound."""
    for k, pre in enumerate(net.preactivations(X)):
        assert not np.any(np.isnan(bounds.lower[k])) and not np.any(np.isnan(bounds.upper[k])), f"{what}: NaN bound"
        below = pre < bounds.lower[k] - tol
        above = pre > bounds.upper[k] + tol
        if below.any() or above.any():
            i, j = np.argwhere(below | above)[0]
            raise AssertionError(
                f"{what}: layer {k} neuron {j}: sample value {pre[i, j]!r} outside "
                f"[{bounds.lower[k][j]!r}, {bounds.upper[k][j]!r}]"
            )
