"""``optimize(time_limit=...)`` and ``verify(time_limit=...)`` return near their limit on a slow case.

(``solve`` and ``tighten``: ``tests/test_handoff.py``.)  The margins are generous on purpose
(the machine is shared); the measured slack at scale is in ``benchmarks/RESULTS.md``, "Scale".
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pyomo_relu import load_onnx, optimize
from pyomo_relu.verify import read_vnnlib, robustness_property, verify

MNIST = Path(__file__).parent / "data" / "mnist_fc" / "onnx" / "mnist-net_256x2.onnx"
#: allowed wall-clock past the limit (seconds): far above the measured slack, far below a run to the end
SLACK = 1.5
LIMIT = 2.0


def test_optimize_time_limit_holds_with_incumbent_and_bound() -> None:
    net = load_onnx(MNIST, input_bounds=[(0.0, 1.0)] * 784)  # the whole pixel box: far from closed in seconds
    start = time.perf_counter()
    result = optimize(net, 3, sense="maximize", time_limit=LIMIT, progress=False)
    elapsed = time.perf_counter() - start
    assert elapsed < LIMIT + SLACK, elapsed
    assert result.status == "time_limit"
    assert result.x is not None and np.allclose(net.evaluate(result.x[None])[0], result.y)
    # no bound yet when the limit hits before the first bounding round ends (a loaded machine)
    assert result.bound is None or result.bound >= result.objective - 1e-9


def test_verify_time_limit_holds_on_a_hard_property() -> None:
    """Robustness of VNN-COMP's prop_3 image at eps 0.05: robust (``verify`` proves eps 0.0502 in
    about 1.5 s when given 12 s, and eps 0.0505 is not robust), so ``"sat"`` would be wrong; under a
    2 s limit the search shares leave it ``"unknown"`` (measured) or, on a fast machine, ``"unsat"``."""
    net = load_onnx(MNIST)
    case = read_vnnlib(MNIST.parent.parent / "vnnlib" / "prop_3_0.03.vnnlib").cases[0]
    centre = (case.lower + case.upper) / 2
    label = int(np.argmax(net.evaluate(centre[None])[0]))
    spec = robustness_property(centre, 0.05, label, net.n_outputs)
    start = time.perf_counter()
    result = verify(net, spec, time_limit=LIMIT)
    elapsed = time.perf_counter() - start
    assert elapsed < LIMIT + SLACK, elapsed
    assert result.status in ("unknown", "unsat"), result.status
