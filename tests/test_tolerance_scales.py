"""Tolerance audit (issue 14): a network whose weights span 1e-6 to 1e6.

Every bounds method must contain every sampled pre-activation, and ``verify`` must give no
wrong verdict: a property that a sampled point satisfies is never ``unsat``, and a ``sat``
carries a counterexample that the forward pass confirms.  The comparison allows only the
float64 round-off of the forward pass itself (``1e-12`` of the magnitude of the terms).

Before ``bounds.rows.TRUSTED_BIG_M_ERROR`` this test found ``"milp"`` bounds excluding
sampled points (seed 0) and ``verify`` answering ``unsat`` for properties a sampled point
satisfies (seeds 0, 2): big-M coefficients of ~1e14 times HiGHS' 1e-9 tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyomo_relu import tighten
from pyomo_relu.network import DenseLayer, NetworkDefinition
from pyomo_relu.verify import verify
from pyomo_relu.verify.vnnlib import parse_vnnlib


def wide_net(seed: int) -> NetworkDefinition:
    rng = np.random.default_rng(seed)
    sizes = [3, 8, 8, 2]
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        weights = rng.choice([-1.0, 1.0], size=(b, a)) * 10.0 ** rng.uniform(-6, 6, size=(b, a))
        bias = rng.choice([-1.0, 1.0], size=b) * 10.0 ** rng.uniform(-6, 6, size=b)
        layers.append(DenseLayer(weights, bias, "linear" if k == len(sizes) - 2 else "relu"))
    return NetworkDefinition(layers, input_bounds=[(-1, 1)] * 3)


def samples(net: NetworkDefinition, n: int = 20000) -> np.ndarray:
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=(n, net.n_inputs))
    corners = np.array(np.meshgrid(*[[-1.0, 1.0]] * net.n_inputs)).reshape(net.n_inputs, -1).T
    return np.vstack([x, corners])


def roundoff(net: NetworkDefinition, x: np.ndarray) -> list[np.ndarray]:
    """Per layer: ``1e-12`` times the sum of the magnitudes of the terms of each pre-activation."""
    out, h = [], x
    for layer, z in zip(net.canonical_layers, net.preactivations(x)):
        w = np.asarray(layer.weights)
        out.append(1e-12 * (np.abs(h) @ np.abs(w).T + np.abs(layer.bias)))
        h = layer.activate(z)
    return out


@pytest.mark.parametrize(
    "seed, chain",
    [
        (seed, chain)
        for seed in (0, 1, 2)
        for chain in (
            ["interval"],
            ["interval", "crown"],
            ["interval", "crown", "lp"],
            ["interval", "crown", "lp", "milp"],
        )
    ],
)
def test_no_bound_excludes_a_sampled_point(seed, chain) -> None:
    net = wide_net(seed)
    bounds = tighten(net, chain, **({"progress": False} if "lp" in chain else {}))
    x = samples(net)
    for k, (z, slack) in enumerate(zip(net.preactivations(x), roundoff(net, x))):
        below = z < bounds.lower[k] - slack
        above = z > bounds.upper[k] + slack
        assert not below.any() and not above.any(), f"{chain} layer {k}: a sampled point is outside its bounds"


def _property(net: NetworkDefinition, output: int, level: float) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(net.n_inputs)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(net.n_outputs)]
    lines += [f"(assert (>= X_{i} -1.0))\n(assert (<= X_{i} 1.0))" for i in range(net.n_inputs)]
    lines.append(f"(assert (>= Y_{output} {level!r}))")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", [0, 1, 2, 9])  # 9: still wrong with a guard at big-M <= 1e6
def test_no_wrong_verdict(seed) -> None:
    net = wide_net(seed)
    x = samples(net)
    y = net.evaluate(x)
    upper = tighten(net, ["interval", "crown"]).upper[-1]
    for j in range(net.n_outputs):
        top = float(y[:, j].max())
        scale = 1.0 + abs(top)
        for level, reachable in ((top - 1e-6 * scale, True), (float(upper[j]) + 1e-6 * (1 + abs(upper[j])), False)):
            spec = parse_vnnlib(_property(net, j, float(level)))
            result = verify(net, spec, time_limit=60)
            if result.status == "sat":
                assert reachable is not False, "sat above a proven upper bound"
                cx = np.asarray(result.counterexample[0], float)
                assert np.all(np.abs(cx) <= 1.0) and net.evaluate(cx)[j] >= level
            if reachable:
                assert result.status != "unsat", f"output {j} reaches {top} at a sampled point, verify says unsat"
            else:
                assert result.status == "unsat", f"output {j} cannot reach {level}: {result.status}"
