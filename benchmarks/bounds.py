"""Neuron bounds per method: unstable neurons, mean width and seconds.

Usage::

    python benchmarks/bounds.py            # print a markdown table
    python benchmarks/bounds.py --write    # also update "## Bounds" in benchmarks/RESULTS.md

Cases: mnist-net_256x2 on the box of ``prop_0_0.03.vnnlib`` and ACAS Xu network 1_1 on the
box of ``prop_1.vnnlib`` (the ``(assert (<= X_i v))`` / ``(>= X_i v)`` lines).  Methods are
chains of ``tighten``: interval, crown and alpha-crown (when registered), LP-OBBT serial and on two worker
processes, and MILP-OBBT after the LP with a small per-neuron time limit (on two workers).
Seconds are wall-clock for the whole chain (interval and crown take milliseconds), median of
``--repeats`` runs after one untimed warm-up; "cpu s" adds the CPU time of worker processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np
from common import ACAS, MNIST, RESULTS, network_on_box, write_section

from pyomo_relu.bounds import METHODS, Bounds, tighten
from pyomo_relu.network import NetworkDefinition

SECTION = "## Bounds"


# ------------------------------------------------------------------------ inputs
def cases() -> list[tuple[str, NetworkDefinition, tuple[np.ndarray, np.ndarray], str]]:
    result = []
    for name, (onnx_file, vnnlib_file) in (("mnist-net_256x2, prop_0_0.03", MNIST), ("ACAS Xu 1_1, prop_1", ACAS)):
        net = network_on_box(onnx_file, vnnlib_file)
        result.append((name, net, (net.input_lower, net.input_upper), "load_onnx"))
    return result


def methods(milp_limit: float, milp_time: float) -> list[tuple[str, list[str], dict[str, Any]]]:
    base = ["interval", "crown"] if "crown" in METHODS else ["interval"]
    rows: list[tuple[str, list[str], dict[str, Any]]] = [("interval", ["interval"], {})]
    if "crown" in METHODS:
        rows.append(("crown", base, {}))
    if "alpha-crown" in METHODS:
        rows.append(("alpha-crown", base + ["alpha-crown"], {}))
    rows += [
        ("lp, serial", base + ["lp"], {"executor": None}),
        ("lp, 2 workers", base + ["lp"], {"executor": 2}),
        (
            f"milp, {milp_limit:g} s/neuron, 2 workers",
            base + ["lp", "milp"],
            {"executor": 2, "time_limit_per_neuron": milp_limit, "time_limit": milp_time},
        ),
    ]
    return rows


def run(
    net: NetworkDefinition, box: tuple[np.ndarray, np.ndarray], chain: list[str], options: dict[str, Any], repeats: int
) -> tuple[Bounds, float, float]:
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
    mnist_lp = {
        r["method"]: r["seconds"] for r in rows if r["case"].startswith("mnist") and r["method"].startswith("lp")
    }
    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        load = "n/a"
    command = "python benchmarks/bounds.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    text = "\n".join(
        [
            f"Command: `{command}`",
            "",
            'Pre-activation bounds of every neuron over the property\'s input box. "unstable": ReLU '
            "neurons whose bounds straddle 0 (each needs a binary); widths are means over all hidden "
            "neurons and over the outputs. Each method runs the chain before it (interval -> crown -> "
            "lp -> milp; alpha-crown runs interval -> crown -> alpha-crown, 20 projected Adam steps "
            "per layer on the lower slopes); seconds are wall-clock for the chain, cpu s includes worker processes. "
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
        ]
    )
    print(text)
    if args.write:
        write_section(SECTION, text)
        print(f"\nwrote {SECTION!r} to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
