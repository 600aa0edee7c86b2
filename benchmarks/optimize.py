"""Global optima: ``pyomo_relu.optimize`` (branch and bound) vs the single-MILP route vs OMLT.

Usage::

    python benchmarks/optimize.py [--time-limit 60] [--hard-time-limit 600] [--quick] [--write]
    python benchmarks/optimize.py --networks 8-64-64-64 8-128-128 --sense minimize --no-peers \
        --time-limit 600 --hard-time-limit 600     # the 8-input cases alone, optimize only

Rows, each in the same run:

* every surrogate in ``benchmarks/data`` and reluMIP's peaks network (``tests/data/relumip``),
  min and max of the output over its box: ``optimize(net, 0, gap=1e-6)``; the MILP route
  (``ReLUNetBlock.build`` with the default ``bounds="auto"``, big-M, ``solve(m, "highs",
  mip_gap=1e-6)``, tighten + build + solve counted); OMLT 1.2.2 ``ReluBigMFormulation`` + HiGHS;
* the larger fits (2-100-100-100-1 peaks, 8-128-128-1 Rosenbrock-8D) with ``--hard-time-limit``;
* the flowsheet of ``examples/flowsheet_split.py`` (two networks, balances, a spec):
  ``solve(strategy="split")`` vs ``strategy="milp"``, both with the default bounds and with
  interval bounds;
* a Dask ``LocalCluster`` with 1 and 2 worker processes on the hardest ``optimize`` case.

Every reported point is re-evaluated by ``net.evaluate``.  ``--write`` replaces the
"Global optimisation" section of ``benchmarks/RESULTS.md``.

``--networks SUBSTR ...`` keeps the networks whose label contains one of the strings,
``--sense`` one sense, ``--no-peers`` drops the MILP route and OMLT rows; any of them (a
partial run) prints the rows only, without the flowsheet and Dask parts, and refuses
``--write``.  BLAS runs single-threaded (``OPENBLAS_NUM_THREADS=1`` etc. unless already
set), as in ``benchmarks/vnncomp.py``: on this shared 2-core machine a threaded BLAS slowed
the bounds' small matrix products (8-input networks: about 25 % more boxes per second
single-threaded).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pyomo.environ as pe  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))

from common import omlt_network, write_section  # noqa: E402

from pyomo_relu import ReLUNetBlock, load_onnx, optimize, solve  # noqa: E402

SECTION = "## Global optimisation"
NETWORKS = [  # label, file, box, hard
    ("reluMIP peaks 2-10-10-10-1", HERE.parent / "tests" / "data" / "relumip" / "peaks_3x10.onnx", 3.0, False),
    ("peaks 2-50-50-1", HERE / "data" / "peaks_2x50.onnx", 3.0, False),
    ("rosenbrock-2D 2-50-50-1", HERE / "data" / "rosenbrock2_2x50.onnx", 2.0, False),
    ("rosenbrock-8D 8-64-64-64-1", HERE / "data" / "rosenbrock_8x64x3.onnx", 2.0, True),
    ("peaks 2-100-100-100-1", HERE / "data" / "peaks_3x100.onnx", 3.0, True),
    ("rosenbrock-8D 8-128-128-1", HERE / "data" / "rosenbrock8_2x128.onnx", 2.0, True),
]


def run_bnb(net, sense, time_limit, executor=None):
    gc.collect()
    began = time.perf_counter()
    r = optimize(net, 0, sense=sense, gap=1e-6, time_limit=time_limit, progress=False, executor=executor)
    seconds = time.perf_counter() - began
    error = None if r.x is None else abs(float(net.evaluate(r.x)[0]) - r.objective)
    return {
        "status": r.status,
        "objective": r.objective,
        "bound": r.bound,
        "gap": r.gap,
        "seconds": seconds,
        "nodes": r.nodes,
        "error": error,
    }


def run_milp(net, sense, time_limit):
    gc.collect()
    began = time.perf_counter()
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, bounds_options={"progress": False, "time_limit": time_limit})
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=pe.minimize if sense == "minimize" else pe.maximize)
    left = max(1.0, time_limit - (time.perf_counter() - began))
    r = solve(m, "highs", mip_gap=1e-6, options={"mip_abs_gap": 1e-6}, time_limit=left)
    return _milp_row(r, time.perf_counter() - began, net, [v.value for v in m.nn.input_vars])


def run_omlt(net, sense, time_limit):
    from omlt import OmltBlock
    from omlt.neuralnet import ReluBigMFormulation

    gc.collect()
    began = time.perf_counter()
    m = pe.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(ReluBigMFormulation(omlt_network(net)))
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=pe.minimize if sense == "minimize" else pe.maximize)
    r = solve(m, "highs", mip_gap=1e-6, options={"mip_abs_gap": 1e-6}, time_limit=time_limit)
    return _milp_row(r, time.perf_counter() - began, net, [m.nn.inputs[i].value for i in range(net.n_inputs)])


def _milp_row(r, seconds, net, x):
    error = None
    if r.has_solution and None not in x:
        error = abs(float(net.evaluate(np.array(x, float))[0]) - r.objective)
    gap = None if r.objective is None or r.bound is None else abs(r.objective - r.bound)
    return {
        "status": r.status,
        "objective": r.objective,
        "bound": r.bound,
        "gap": gap,
        "seconds": seconds,
        "nodes": None,
        "error": error,
    }


def run_flowsheet(strategy, bounds, time_limit, executor=None):
    from flowsheet_split import build_flowsheet

    gc.collect()
    began = time.perf_counter()
    m = build_flowsheet(bounds=bounds)
    built = time.perf_counter()
    r = solve(
        m,
        "highs",
        strategy=strategy,
        mip_gap=1e-6,
        time_limit=time_limit,
        **({"executor": executor} if executor is not None else {}),
    )
    errors = (
        [abs(float(b.forward()[0]) - b.output_vars[0].value) for b in (m.reactor, m.separator)]
        if r.has_solution
        else []
    )
    return {
        "status": r.status,
        "objective": r.objective,
        "bound": r.bound,
        "gap": None if r.objective is None or r.bound is None else abs(r.objective - r.bound),
        "build": built - began,
        "seconds": time.perf_counter() - built,
        "nodes": (r.raw or {}).get("nodes") if strategy == "split" else None,
        "milps": (r.raw or {}).get("milps") if strategy == "split" else None,
        "error": max(errors) if errors else None,
    }


def fmt(value, spec):
    return "–" if value is None else format(value, spec)


def row(label, sense, method, r):
    return (
        f"| {label} | {sense[:3]} | {method} | {r['status']} | {fmt(r['objective'], '.6f')} | "
        f"{fmt(r['bound'], '.6f')} | {fmt(r['gap'], '.1e')} | **{r['seconds']:.2f}** | {fmt(r['nodes'], 'd')} | "
        f"{fmt(r['error'], '.1e')} |"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per run, small networks")
    parser.add_argument("--hard-time-limit", type=float, default=600.0, help="seconds per run, larger networks")
    parser.add_argument("--quick", action="store_true", help="small networks and the flowsheet only")
    parser.add_argument(
        "--flowsheet-only",
        action="store_true",
        help="only the flowsheet rows (printed; --write then replaces them in the section)",
    )
    parser.add_argument("--networks", nargs="+", metavar="SUBSTR", help="only networks whose label contains one")
    parser.add_argument("--sense", choices=("minimize", "maximize"), help="only this sense")
    parser.add_argument("--no-peers", action="store_true", help="optimize only: no MILP route, no OMLT")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    partial = bool(args.networks or args.sense or args.no_peers)
    if partial and args.write:
        parser.error("--write needs the full run (no --networks, --sense or --no-peers)")
    if partial:
        for line in partial_rows(args):
            print(line, flush=True)
        return 0
    if args.flowsheet_only:
        rows = flowsheet_rows(args.time_limit * 5)
        print("\n".join(rows))
        if args.write:
            replace_flowsheet_rows(rows)
        return 0
    lines = [
        "| network | sense | method | status | objective | bound | abs gap | seconds | boxes | max \\|f(x) − obj\\| |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    hardest = None
    for label, path, box, hard in NETWORKS:
        if hard and args.quick:
            continue
        if not path.exists():
            print(f"skip {label}: {path} missing (python benchmarks/train_surrogates.py)")
            continue
        net = load_onnx(path, input_bounds=[(-box, box)] * 2 if "8D" not in label else [(-box, box)] * 8)
        limit = args.hard_time_limit if hard else args.time_limit
        for sense in ("minimize", "maximize"):
            ours = run_bnb(net, sense, limit)
            milp = run_milp(net, sense, limit)
            omlt = run_omlt(net, sense, limit)
            for method, r in (("optimize (bnb)", ours), ("MILP route, bounds=auto", milp), ("OMLT 1.2.2 bigm", omlt)):
                lines.append(row(label, sense, method, r))
                print(lines[-1], flush=True)
            ratios.append((label, sense, ours, milp, omlt))
            if hard and (hardest is None or ours["seconds"] > hardest[2]["seconds"]):
                hardest = (net, sense, ours, label)
    text = [
        SECTION,
        "",
        f"Command: `python benchmarks/optimize.py --time-limit {args.time_limit:g} "
        f"--hard-time-limit {args.hard_time_limit:g}{' --quick' if args.quick else ''} --write` "
        "(2 shared cores; other work was running on the machine). Absolute gap 1e-6 for every method "
        '(HiGHS: `mip_gap=1e-6`, `mip_abs_gap=1e-6`). MILP route = tighten (default `bounds="auto"`) '
        "+ build + solve; OMLT = build + solve. `max |f(x) − obj|`: the reported point re-evaluated by "
        "`net.evaluate`.",
        "",
        *lines,
        "",
        "Speed-up of `optimize` (wall clock, both proven optimal unless marked):",
        "",
        "| network | sense | vs MILP route | vs OMLT |",
        "|---|---|---:|---:|",
    ]
    for label, sense, ours, milp, omlt in ratios:
        text.append(f"| {label} | {sense[:3]} | {_ratio(ours, milp)} | {_ratio(ours, omlt)} |")
    text += ["", *flowsheet_rows(args.time_limit * 5)]
    if hardest is not None:
        text += ["", *dask_rows(*hardest, args.hard_time_limit)]
    output = "\n".join(text) + "\n"
    print(output)
    if args.write:
        write_section(SECTION, output.split("\n", 1)[1])  # the section's text without its heading
    return 0


def selected(label, networks):
    """Whether ``label`` is kept by ``--networks`` (every network when none is given)."""
    return not networks or any(part in label for part in networks)


def partial_rows(args):
    """The table rows of the selected networks, senses and methods (no flowsheet, no Dask)."""
    yield "| network | sense | method | status | objective | bound | abs gap | seconds | boxes | max \\|f(x) − obj\\| |"
    yield "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
    for label, path, box, hard in NETWORKS:
        if not selected(label, args.networks) or (hard and args.quick) or not path.exists():
            continue
        net = load_onnx(path, input_bounds=[(-box, box)] * (8 if "8D" in label else 2))
        limit = args.hard_time_limit if hard else args.time_limit
        for sense in (args.sense,) if args.sense else ("minimize", "maximize"):
            yield row(label, sense, "optimize (bnb)", run_bnb(net, sense, limit))
            if not args.no_peers:
                yield row(label, sense, "MILP route, bounds=auto", run_milp(net, sense, limit))
                yield row(label, sense, "OMLT 1.2.2 bigm", run_omlt(net, sense, limit))


def _ratio(ours, peer):
    if ours["status"] != "optimal":
        return "– (ours not proven)"
    if peer["status"] == "optimal":
        return f"{peer['seconds'] / ours['seconds']:.1f}x"
    return f"≥ {peer['seconds'] / ours['seconds']:.1f}x (peer: {peer['status']})"


def flowsheet_rows(time_limit):
    lines = [
        f"Flowsheet (`examples/flowsheet_split.py`: peaks reactor + Rosenbrock separator, two balances, "
        f'spec r >= 2), `solve(m, "highs", strategy=..., mip_gap=1e-6, time_limit={time_limit:g})`; '
        "build time not counted:",
        "",
        "| bounds | strategy | status | objective | bound | seconds | boxes | sub-MILPs | max \\|f(x) − y\\| |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    results = {}
    for bounds in ("auto", "interval"):
        for strategy, executor in (("split", None), ("split", 2), ("milp", None)):
            r = run_flowsheet(strategy, bounds, time_limit, executor)
            name = strategy if executor is None else f"split, executor={executor}"
            results[(bounds, name)] = r
            lines.append(
                f"| {bounds} | {name} | {r['status']} | {fmt(r['objective'], '.6f')} | "
                f"{fmt(r['bound'], '.6f')} | **{r['seconds']:.2f}** | {fmt(r['nodes'], 'd')} | "
                f"{fmt(r['milps'], 'd')} | {fmt(r['error'], '.1e')} |"
            )
            print(lines[-1], flush=True)
    lines.append("")
    for bounds in ("auto", "interval"):
        milp, split = results[(bounds, "milp")], results[(bounds, "split")]
        lines.append(
            f"- bounds={bounds}: milp / split = {milp['seconds'] / split['seconds']:.2f}x "
            f"(milp {milp['status']}, split {split['status']})"
        )
    return lines


def replace_flowsheet_rows(rows):
    """Put new flowsheet rows into the existing section, keeping the other rows of the section."""
    from common import RESULTS

    text = RESULTS.read_text()
    start = text.index("Flowsheet (`examples/flowsheet_split.py`", text.index(SECTION))
    end = text.index("\nDask `LocalCluster`", start)
    RESULTS.write_text(text[:start] + "\n".join(rows) + "\n" + text[end:])


def dask_rows(net, sense, serial, label, time_limit):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return ["Dask: skipped (dask[distributed] not installed)"]
    lines = [
        f"Dask `LocalCluster` on the hardest case ({label}, {sense}), `optimize(..., executor=client.get_executor())`:",
        "",
        "| workers | status | objective | bound | seconds |",
        "|---:|---|---:|---:|---:|",
    ]
    runs = {}
    for workers in (1, 2):
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            runs[workers] = r = run_bnb(net, sense, time_limit, executor=client.get_executor())
        lines.append(
            f"| {workers} | {r['status']} | {fmt(r['objective'], '.6f')} | {fmt(r['bound'], '.6f')} | "
            f"{r['seconds']:.2f} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        f"Speed-up 2 vs 1 workers: {runs[1]['seconds'] / runs[2]['seconds']:.2f}x "
        f"(serial, no Dask: {serial['seconds']:.2f} s, {serial['status']})",
    ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
