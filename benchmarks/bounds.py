"""Neuron bounds per method: unstable neurons, mean width and seconds.

Usage::

    python benchmarks/bounds.py            # print a markdown table
    python benchmarks/bounds.py --write    # also update "## Bounds" in benchmarks/RESULTS.md

Cases: mnist-net_256x2 on the box of ``prop_0_0.03.vnnlib`` and ACAS Xu network 1_1 on the
box of ``prop_1.vnnlib`` (the ``(assert (<= X_i v))`` / ``(>= X_i v)`` lines).  Methods are
chains of ``tighten``: interval, crown (when registered), LP-OBBT serial and on two worker
processes, and MILP-OBBT after the LP with a small per-neuron time limit (on two workers).
Seconds are wall-clock for the whole chain (interval and crown take milliseconds), median of
``--repeats`` runs after one untimed warm-up; "cpu s" adds the CPU time of worker processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyomo_relu.bounds import METHODS, Bounds, tighten
from pyomo_relu.network import DenseLayer, NetworkDefinition, Scaling

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Bounds"


# ------------------------------------------------------------------------ inputs
def read_vnnlib_box(path: Path, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Input box from the ``(assert (<= X_i v))`` / ``(assert (>= X_i v))`` lines."""
    lower, upper = np.full(n_inputs, -np.inf), np.full(n_inputs, np.inf)
    pattern = re.compile(r"\(\s*assert\s*\(\s*(<=|>=)\s+X_(\d+)\s+([-+0-9.eE]+)\s*\)\s*\)")
    for match in pattern.finditer(path.read_text()):
        op, index, value = match.group(1), int(match.group(2)), float(match.group(3))
        if op == "<=":
            upper[index] = min(upper[index], value)
        else:
            lower[index] = max(lower[index], value)
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise ValueError(f"{path}: not every X_i has both bounds")
    return lower, upper


def read_onnx_chain(path: Path) -> NetworkDefinition:
    """Plain reader for Gemm / MatMul+Add / Relu / Flatten / Sub(constant) chains."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    layers: list[DenseLayer] = []
    offset, pending = None, None
    for node in model.graph.node:
        op = node.op_type
        if op == "Sub":
            offset = init[node.input[1]].ravel()
        elif op == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            weights = init[node.input[1]] if attrs.get("transB", 0) else init[node.input[1]].T
            bias = init[node.input[2]] * attrs.get("beta", 1.0)
            layers.append(DenseLayer(weights * attrs.get("alpha", 1.0), bias, "linear", node.name))
        elif op == "MatMul":
            pending = init[node.input[1]].T
        elif op == "Add":
            layers.append(DenseLayer(pending, init[node.input[1]].ravel(), "linear", node.name))
        elif op == "Relu":
            last = layers[-1]
            layers[-1] = DenseLayer(last.weights, last.bias, "relu", last.name)
        elif op != "Flatten":
            raise ValueError(f"{path}: operator {op} not handled by this reader")
    scaling = Scaling(offset, np.ones_like(offset)) if offset is not None and np.any(offset) else None
    return NetworkDefinition(layers, input_scaling=scaling, source=str(path))


def load_network(path: Path) -> tuple[NetworkDefinition, str]:
    """``load_onnx`` when it works and agrees with the plain reader, else the plain reader."""
    plain = read_onnx_chain(path)
    try:
        from pyomo_relu.io.onnx import load_onnx

        net = load_onnx(path)
        x = np.random.default_rng(0).uniform(-1, 1, size=(16, plain.n_inputs))
        if net.n_inputs == plain.n_inputs and np.allclose(net.evaluate(x), plain.evaluate(x), atol=1e-9):
            return net, "load_onnx"
    except Exception:  # noqa: BLE001 - fall back to the plain reader
        pass
    return plain, "plain reader"


def cases() -> list[tuple[str, NetworkDefinition, tuple[np.ndarray, np.ndarray], str]]:
    result = []
    for name, onnx_path, vnnlib in (
        ("mnist-net_256x2, prop_0_0.03", "mnist_fc/onnx/mnist-net_256x2.onnx", "mnist_fc/vnnlib/prop_0_0.03.vnnlib"),
        ("ACAS Xu 1_1, prop_1", "acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx", "acasxu/vnnlib/prop_1.vnnlib"),
    ):
        net, how = load_network(DATA / onnx_path)
        result.append((name, net, read_vnnlib_box(DATA / vnnlib, net.n_inputs), how))
    return result


# ------------------------------------------------------------------------ methods
def methods(milp_limit: float, milp_time: float) -> list[tuple[str, list[str], dict[str, Any]]]:
    base = ["interval", "crown"] if "crown" in METHODS else ["interval"]
    rows: list[tuple[str, list[str], dict[str, Any]]] = [("interval", ["interval"], {})]
    if "crown" in METHODS:
        rows.append(("crown", base, {}))
    rows += [
        ("lp, serial", base + ["lp"], {"executor": None}),
        ("lp, 2 workers", base + ["lp"], {"executor": 2}),
        (f"milp, {milp_limit:g} s/neuron, 2 workers", base + ["lp", "milp"],
         {"executor": 2, "time_limit_per_neuron": milp_limit, "time_limit": milp_time}),
    ]
    return rows


def run(net: NetworkDefinition, box: tuple[np.ndarray, np.ndarray], chain: list[str],
        options: dict[str, Any], repeats: int) -> tuple[Bounds, float, float]:
    """Bounds, median wall seconds and CPU seconds (this process and its workers)."""
    walls, cpus = [], []
    bounds = None
    for _ in range(repeats):
        before = os.times()
        began = time.perf_counter()
        bounds = tighten(net, chain, input_bounds=box, progress=False, **options)
        walls.append(time.perf_counter() - began)
        after = os.times()
        cpus.append(sum(a - b for a, b in zip(after[:4], before[:4])))
    assert bounds is not None
    return bounds, statistics.median(walls), statistics.median(cpus)


def describe(net: NetworkDefinition, bounds: Bounds) -> dict[str, Any]:
    relu = [k for k, layer in enumerate(net.canonical_layers) if layer.activation == "relu"]
    hidden = np.concatenate([bounds.width(k) for k in relu]) if relu else np.zeros(0)
    return {
        "unstable": [int(bounds.unstable(k).sum()) for k in relu],
        "hidden_width": float(hidden.mean()) if hidden.size else float("nan"),
        "output_width": float(bounds.width(bounds.n_layers - 1).mean()),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| network | method | unstable per ReLU layer | unstable | mean width, hidden | mean width, output | s | cpu s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['method']} | {' '.join(map(str, r['unstable']))} | {sum(r['unstable'])} "
            f"| {r['hidden_width']:.4g} | {r['output_width']:.4g} | {r['seconds']:.2f} | {r['cpu']:.2f} |"
        )
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace the ``## Bounds`` section of RESULTS.md (or append it), keeping the others."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"{SECTION}\n\n{text.strip()}\n\n"
    if pattern.search(existing):
        updated = pattern.sub(lambda _: block, existing, count=1)
    else:
        updated = existing.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(updated.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in {RESULTS.name}")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--milp-limit", type=float, default=0.05, help="seconds per MILP solve")
    parser.add_argument("--milp-time", type=float, default=120.0, help="overall cap of the milp chain")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    rows, readers = [], set()
    for case, net, box, how in cases():
        readers.add(how)
        tighten(net, ["interval", "lp"], input_bounds=box, progress=False, time_limit=0.2)  # warm-up
        for label, chain, options in methods(args.milp_limit, args.milp_time):
            print(f"{case}: {label} ...", file=sys.stderr, flush=True)
            bounds, seconds, cpu = run(net, box, chain, options, args.repeats)
            rows.append({"case": case, "method": label, "seconds": seconds, "cpu": cpu, **describe(net, bounds)})
            print(f"  {seconds:.2f} s, unstable {rows[-1]['unstable']}", file=sys.stderr, flush=True)
    mnist_lp = {r["method"]: r["seconds"] for r in rows if r["case"].startswith("mnist") and r["method"].startswith("lp")}
    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        load = "n/a"
    command = "python benchmarks/bounds.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    text = "\n".join([
        f"Command: `{command}`",
        "",
        "Pre-activation bounds of every neuron over the property's input box. \"unstable\": ReLU "
        "neurons whose bounds straddle 0 (each needs a binary); widths are means over all hidden "
        "neurons and over the outputs. Each method runs the chain before it (interval -> crown -> "
        "lp -> milp); seconds are wall-clock for the chain, cpu s includes worker processes. "
        "milp: HiGHS with the binaries of unstable neurons, per-neuron limit, proven dual bounds.",
        "",
        table(rows),
        "",
        "Full LP-OBBT of all unstable neurons on the MNIST box: "
        + ", ".join(f"{label}: {seconds:.2f} s" for label, seconds in mnist_lp.items())
        + " (target: under 5 s on 2 cores).",
        "",
        f"Machine: Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {load} "
        f"at the end of the run (other jobs share the machine); networks read with {', '.join(sorted(readers))}.",
    ])
    print(text)
    if args.write:
        write_section(text)
        print(f"\nwrote {SECTION!r} to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
