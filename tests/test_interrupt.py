"""Interruption (issue 14): Ctrl-C and SIGTERM stop the work at once, report what is known,
and leave no worker process behind.

In-process, a ``KeyboardInterrupt`` in the middle of LP tightening returns the bounds
tightened so far (sound).  In subprocesses, real signals are sent once the worker
processes of ``executor=2`` / ``--jobs 2`` are running; the output, the exit code and the
absence of any surviving child (``psutil``) are checked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from pyomo_relu import tighten
from pyomo_relu.bounds import obbt
from pyomo_relu.network import DenseLayer, NetworkDefinition

ROOT = Path(__file__).resolve().parents[1]


def hard_net(n: int = 8, width: int = 64, hidden: int = 4, seed: int = 0) -> NetworkDefinition:
    """A random network whose maximum is slow to prove (many unstable neurons)."""
    rng = np.random.default_rng(seed)
    sizes = [n] + [width] * hidden
    layers = [
        DenseLayer(rng.normal(size=(b, a)) / np.sqrt(a), rng.normal(size=b) * 0.1)
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    layers.append(DenseLayer(rng.normal(size=(1, width)) / np.sqrt(width), [0.0], "linear"))
    return NetworkDefinition(layers, input_bounds=[(-1, 1)] * n)


def test_tighten_interrupted_returns_sound_bounds_so_far(monkeypatch) -> None:
    net = hard_net(n=4, width=16, hidden=3)
    crown = tighten(net, ["interval", "crown"])
    original, calls = obbt._run_stage, []

    def stage_then_interrupt(state, stage, runner):
        calls.append(stage)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(state, stage, runner)

    monkeypatch.setattr(obbt, "_run_stage", stage_then_interrupt)
    bounds = tighten(net, ["interval", "crown", "lp", "milp"], progress=False)
    assert bounds.interrupted and bounds.methods == ("interval", "crown", "lp(interrupted)")  # milp not run
    assert len(calls) == 2
    # the stage done is kept, nothing got looser than CROWN
    for k in range(bounds.n_layers):
        assert np.all(bounds.lower[k] >= crown.lower[k]) and np.all(bounds.upper[k] <= crown.upper[k])
    # sound: no sampled point leaves them
    x = np.random.default_rng(1).uniform(-1, 1, size=(4000, 4))
    for k, z in enumerate(net.preactivations(x)):
        assert np.all(z >= bounds.lower[k] - 1e-9) and np.all(z <= bounds.upper[k] + 1e-9)


def _start(argv: list[str], cwd: Path) -> tuple[subprocess.Popen, list[psutil.Process]]:
    """Start ``argv`` in a new session and wait until its two worker processes run."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    children: list[psutil.Process] = []
    while time.monotonic() < deadline and proc.poll() is None:
        children = parent.children(recursive=True)
        if len(children) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
    assert len(children) >= 2, "no worker processes started"
    time.sleep(2.0)  # let it work (and every worker reach its initializer, which ignores SIGINT)
    return proc, children


def _stop(proc: subprocess.Popen, children: list[psutil.Process], how: str) -> tuple[int, str, str, float]:
    sent = time.monotonic()
    if how == "SIGINT":  # Ctrl-C at a terminal: the whole process group
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    elapsed = time.monotonic() - sent
    gone, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.kill()
    assert not alive, f"worker processes left running: {[c.pid for c in alive]}"
    return proc.returncode, out, err, elapsed


TIGHTEN_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from test_interrupt import hard_net
from pyomo_relu import tighten
net = hard_net()
b = tighten(net, ["interval", "crown", "milp"], executor=2, progress=False, time_limit_per_neuron=5.0)
print("methods", ",".join(b.methods))
print("interrupted", b.interrupted)
"""


def test_tighten_with_workers_stops_on_ctrl_c(tmp_path) -> None:
    script = tmp_path / "run.py"
    script.write_text(TIGHTEN_SCRIPT.format(tests=str(Path(__file__).parent)))
    proc, children = _start([sys.executable, str(script)], tmp_path)
    code, out, err, elapsed = _stop(proc, children, "SIGINT")
    assert code == 0, err
    assert "methods interval,crown,milp(interrupted)" in out and "interrupted True" in out
    assert "Traceback" not in err, err
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"


def _verify_files(tmp_path: Path) -> tuple[Path, Path]:
    """A network and an unsat-but-hard property: Y_0 >= (a bit above the sampled maximum)."""
    import onnx

    from pyomo_relu.idaes_files import network_to_onnx

    net = hard_net()
    model, prop = tmp_path / "hard.onnx", tmp_path / "hard.vnnlib"
    onnx.save(network_to_onnx(net), model)
    x = np.random.default_rng(0).uniform(-1, 1, size=(20000, net.n_inputs))
    upper = tighten(net, "crown").upper[-1][0]
    top = float(net.evaluate(x)[:, 0].max())
    level = float(top + 0.01 * (upper - top))
    lines = [f"(declare-const X_{i} Real)" for i in range(net.n_inputs)] + ["(declare-const Y_0 Real)"]
    lines += [f"(assert (>= X_{i} -1.0))\n(assert (<= X_{i} 1.0))" for i in range(net.n_inputs)]
    lines.append(f"(assert (>= Y_0 {level!r}))")
    prop.write_text("\n".join(lines) + "\n")
    return model, prop


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_cli_verify_interrupted(tmp_path, how) -> None:
    model, prop = _verify_files(tmp_path)
    argv = [sys.executable, "-m", "pyomo_relu", "verify", str(model), str(prop), "--jobs", "2", "--json"]
    proc, children = _start(argv, tmp_path)
    code, out, err, elapsed = _stop(proc, children, how)
    assert code == 130, (out, err)
    assert '"status": "unknown"' in out and '"reason": "interrupted"' in out
    assert "Traceback" not in err, err
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"
