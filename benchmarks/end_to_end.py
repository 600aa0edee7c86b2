"""End to end: tighten + build + solve (min and max of a ReLU surrogate over its box), pyomo_relu vs OMLT.

Usage::

    python benchmarks/train_surrogates.py                 # once: writes benchmarks/data/*.onnx
    python benchmarks/end_to_end.py                       # all networks, T = 120 s per solve
    python benchmarks/end_to_end.py --quick               # peaks only, T = 30 s
    python benchmarks/end_to_end.py --time-limit 60 --write   # also update "## End to end" in RESULTS.md

For each network and each sense (min / max of the single output over the input box):

* pyomo_relu, for each bounds chain: ``tighten(net, chain)`` (timed: "tighten"), then a
  ``ConcreteModel`` with the input/output variables + ``ReLUNetBlock().build(net, ...,
  bounds=<those Bounds>)`` + objective (timed: "build"), then
  ``solve(m, "highs", mip_gap=1e-4, time_limit=T)`` (timed: "solve", wall clock of the call);
* OMLT: ``NetworkDefinition`` from the same weights + ``OmltBlock`` +
  ``ReluBigMFormulation`` (OMLT computes its interval bounds inside: all in "build") +
  objective, solved by the same ``solve`` call.

Every solution found is checked: ``net.evaluate`` at the solution's inputs must equal the
reported objective within 1e-5 (otherwise the script exits with status 1).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import pyomo.environ as pe
from common import omlt_network

from pyomo_relu import ReLUNetBlock, load_onnx, solve, tighten

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "RESULTS.md"
SECTION = "## End to end"
CHECK_TOL = 1e-5

NETWORKS = [  # name, file, box
    ("peaks 2-50-50-1", "peaks_2x50.onnx", [(-3.0, 3.0)] * 2),
    ("rosenbrock-2D 2-50-50-1", "rosenbrock2_2x50.onnx", [(-2.0, 2.0)] * 2),
    ("rosenbrock-8D 8-64-64-64-1", "rosenbrock_8x64x3.onnx", [(-2.0, 2.0)] * 8),
]
METHODS = [  # label, chain, options
    ("interval", "interval", {}),
    ("interval+crown", ["interval", "crown"], {}),
    ("interval+crown+lp", ["interval", "crown", "lp"], {}),
    ("interval+crown+milp", ["interval", "crown", "milp"], {"time_limit_per_neuron": 0.2}),
]


def binaries(model: pe.ConcreteModel) -> int:
    return sum(1 for v in model.component_data_objects(pe.Var, descend_into=True) if v.is_binary() and not v.fixed)


def run_ours(net, chain, options, sense, time_limit):
    gc.collect()
    start = time.perf_counter()
    bounds = tighten(net, chain, progress=False, **options)
    tightened = time.perf_counter()
    m = pe.ConcreteModel()
    lower, upper = net.input_lower, net.input_upper
    m.x = pe.Var(range(net.n_inputs), bounds=lambda _, i: (float(lower[i]), float(upper[i])))
    m.y = pe.Var()
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=[m.y], bounds=bounds)
    m.obj = pe.Objective(expr=m.y, sense=sense)
    built = time.perf_counter()
    result = solve(m, "highs", mip_gap=1e-4, time_limit=time_limit)
    solved = time.perf_counter()
    x = [m.x[i].value for i in range(net.n_inputs)]
    return tightened - start, built - tightened, solved - built, result, x, binaries(m)


def build_omlt_model(net, sense):
    from omlt import OmltBlock
    from omlt.neuralnet import ReluBigMFormulation

    omlt_net = omlt_network(net)
    m = pe.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(ReluBigMFormulation(omlt_net))
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=sense)
    return m


def run_omlt(net, sense, time_limit):
    gc.collect()
    start = time.perf_counter()
    m = build_omlt_model(net, sense)
    built = time.perf_counter()
    result = solve(m, "highs", mip_gap=1e-4, time_limit=time_limit)
    solved = time.perf_counter()
    x = [m.nn.inputs[i].value for i in range(net.n_inputs)]
    return 0.0, built - start, solved - built, result, x, binaries(m)


def record(network, sense_name, method, run, net):
    t_tighten, t_build, t_solve, result, x, n_bin = run
    error = None
    if result.has_solution and result.objective is not None and None not in x:
        error = abs(float(net.evaluate(np.array(x, dtype=float))[0]) - result.objective)
    return {
        "network": network,
        "sense": sense_name,
        "method": method,
        "tighten": t_tighten,
        "build": t_build,
        "solve": t_solve,
        "total": t_tighten + t_build + t_solve,
        "status": result.status,
        "objective": result.objective,
        "gap": result.gap,
        "binaries": n_bin,
        "error": error,
        "x": x,
    }


def fmt(value, spec):
    return "–" if value is None else format(value, spec)


def table(rows):
    lines = [
        "| network | sense | method | tighten s | build s | solve s | total s | status | objective | gap | binaries |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['sense']} | {r['method']} | {r['tighten']:.2f} | {r['build']:.2f} | "
            f"{r['solve']:.2f} | **{r['total']:.2f}** | {r['status']} | {fmt(r['objective'], '.6f')} | "
            f"{fmt(r['gap'], '.1e')} | {r['binaries']} |"
        )
    return "\n".join(lines)


def ratios(rows):
    lines = [
        "| network | sense | best pyomo_relu method | its total s | OMLT total s | OMLT / ours |",
        "|---|---|---|---:|---:|---:|",
    ]
    keys = []
    for r in rows:
        if (r["network"], r["sense"]) not in keys:
            keys.append((r["network"], r["sense"]))
    for key in keys:
        group = [r for r in rows if (r["network"], r["sense"]) == key]
        omlt = [r for r in group if r["method"].startswith("OMLT")][0]
        ours = [r for r in group if not r["method"].startswith("OMLT")]
        # best = fastest among those that finished; if none finished, the smallest gap
        done = [r for r in ours if r["status"] == "optimal"]
        best = (
            min(done, key=lambda r: r["total"])
            if done
            else min(ours, key=lambda r: (r["gap"] is None, r["gap"] or 0, r["total"]))
        )
        if best["status"] == "optimal" and omlt["status"] == "optimal":
            ratio = f"{omlt['total'] / best['total']:.1f}x"
        elif best["status"] == "optimal":
            ratio = (
                f"≥ {omlt['total'] / best['total']:.1f}x (OMLT stopped at the time limit, "
                f"{'gap ' + fmt(omlt['gap'], '.1e') if omlt['gap'] is not None else 'no incumbent'})"
            )
        elif omlt["status"] == "optimal":
            ratio = f"≤ {omlt['total'] / best['total']:.1f}x (ours stopped at the time limit)"
        else:
            ratio = (
                f"n/a: neither reached 1e-4 (best gap ours {fmt(best['gap'], '.1e')}, OMLT {fmt(omlt['gap'], '.1e')})"
            )
        lines.append(
            f"| {key[0]} | {key[1]} | {best['method']} | {best['total']:.2f} | {omlt['total']:.2f} | {ratio} |"
        )
    return "\n".join(lines)


def write_section(text):
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"{SECTION}\n\n{text.strip()}\n\n"
    if pattern.search(existing):
        updated = pattern.sub(lambda _: block, existing, count=1)
    else:
        updated = existing.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(updated.rstrip("\n") + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--time-limit", type=float, default=None, help="seconds per HiGHS solve (default 120, 30 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="peaks network only, T = 30 s")
    parser.add_argument("--networks", nargs="*", default=None, help="subset of files in benchmarks/data (default: all)")
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in {RESULTS.name}")
    args = parser.parse_args(argv)
    time_limit = args.time_limit if args.time_limit is not None else (30.0 if args.quick else 120.0)
    networks = NETWORKS[:1] if args.quick else NETWORKS
    if args.networks:
        networks = [n for n in NETWORKS if n[1] in args.networks or n[0] in args.networks]

    import omlt

    logging.getLogger("pyomo").setLevel(logging.ERROR)
    rows = []
    for name, filename, box in networks:
        path = DATA / filename
        if not path.exists():
            raise SystemExit(f"{path} is missing: run python benchmarks/train_surrogates.py first")
        net = load_onnx(path, input_bounds=box)
        # warm-up (imports, caches; not timed)
        tighten(net, ["interval", "crown"])
        build_omlt_model(net, pe.minimize)
        for sense_name, sense in (("min", pe.minimize), ("max", pe.maximize)):
            for label, chain, options in METHODS:
                rows.append(record(name, sense_name, label, run_ours(net, chain, options, sense, time_limit), net))
                print(
                    f"{name} {sense_name} {label}: {rows[-1]['total']:.2f} s {rows[-1]['status']} "
                    f"obj {rows[-1]['objective']} err {rows[-1]['error']}",
                    file=sys.stderr,
                    flush=True,
                )
            rows.append(
                record(name, sense_name, f"OMLT {omlt.__version__} bigm", run_omlt(net, sense, time_limit), net)
            )
            print(
                f"{name} {sense_name} OMLT: {rows[-1]['total']:.2f} s {rows[-1]['status']} "
                f"obj {rows[-1]['objective']} err {rows[-1]['error']}",
                file=sys.stderr,
                flush=True,
            )

    errors = [r["error"] for r in rows if r["error"] is not None]
    max_error = max(errors) if errors else float("nan")
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    command = (
        "python benchmarks/end_to_end.py"
        + (" --quick" if args.quick else "")
        + (f" --time-limit {args.time_limit:g}" if args.time_limit is not None else "")
        + " --write"
    )
    text = "\n".join(
        [
            f"Command: `{command}` (networks from `python benchmarks/train_surrogates.py`; see `benchmarks/data/README.md`)",
            "",
            "Minimise and maximise the single output of each surrogate over its input box. "
            "Total = tighten + build + solve, one run each, wall clock; solve = "
            f'`solve(m, "highs", mip_gap=1e-4, time_limit={time_limit:g})` (HiGHS '
            f"{_highs_version()}). pyomo_relu: `tighten(net, chain)` then "
            '`ReLUNetBlock().build(net, ..., formulation="bigm", bounds=<Bounds>)`; '
            "milp uses `time_limit_per_neuron=0.2`, serial. OMLT "
            f"{omlt.__version__}: `ReluBigMFormulation` from the same weights (its own interval bounds, "
            "counted in build). Binaries: unfixed binary variables of the model. Every solution was "
            f"re-evaluated with `net.evaluate` at its inputs: max |forward pass − objective| = {max_error:.1e}.",
            "",
            table(rows),
            "",
            "OMLT total / pyomo_relu best total (best = fastest pyomo_relu chain that reached the gap, else the "
            'smallest gap; "–" gap = no incumbent found in the time limit):',
            "",
            ratios(rows),
            "",
            f"Machine: Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
            f"({load}) at the end of the run (other jobs share the machine).",
        ]
    )
    print(text)
    if max_error > CHECK_TOL:
        bad = [r for r in rows if r["error"] is not None and r["error"] > CHECK_TOL]
        for r in bad:
            print(
                f"CHECK FAILED: {r['network']} {r['sense']} {r['method']}: |evaluate(x) - objective| = "
                f"{r['error']:.3e} at x = {r['x']}",
                file=sys.stderr,
            )
        print(f"CHECK FAILED: max error {max_error:.3e} > {CHECK_TOL}; RESULTS.md not written", file=sys.stderr)
        return 1
    if args.write:
        write_section(text)
        print(f"\nwrote {SECTION!r} to {RESULTS}", file=sys.stderr)
    return 0


def _highs_version() -> str:
    try:
        import highspy

        h = highspy.Highs()
        return f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
    except Exception:  # pragma: no cover - version only for the note
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
