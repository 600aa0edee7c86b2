"""VNN-COMP instances: our verdicts against the official answers in ``tests/data/*/truth.csv``.

    python benchmarks/vnncomp.py                  # every instance, 120 s each, updates RESULTS.md
    python benchmarks/vnncomp.py --time-limit 30 --only acasxu --no-write

For each row of every ``truth.csv`` the network and the property are read, ``verify`` runs
with the per-instance time limit, and the verdict is compared with the official one
(``sat`` = violated, ``unsat`` = holds).  A ``sat`` verdict is re-checked here with
``check_counterexample`` (the forward pass of ``NetworkDefinition.evaluate``).  The table
goes to the section ``## VNN-COMP`` of ``benchmarks/RESULTS.md`` (replaced if present,
other sections kept).  Seconds are those of ``verify`` (reading files excluded).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

SECTION = "## VNN-COMP"

from common import DATA, RESULTS, write_section  # noqa: E402
from pyomo_relu.io.onnx import load_onnx  # noqa: E402
from pyomo_relu.verify import check_counterexample, read_vnnlib, verify  # noqa: E402


def instances(only: str | None) -> list[dict[str, Any]]:
    """``benchmark, onnx path, vnnlib path, truth`` for every row of every truth.csv."""
    rows = []
    for table in sorted(DATA.glob("*/truth.csv")):
        benchmark = table.parent.name
        if only and benchmark != only:
            continue
        lines = [line for line in table.read_text().splitlines() if line and not line.startswith("#")]
        for row in csv.DictReader(lines):
            onnx = _locate(table.parent, row["onnx"], "onnx")
            vnnlib = _locate(table.parent, row["vnnlib"], "vnnlib")
            expected = row.get("vnncomp2022_true_result") or row.get("true_result") or "-"
            rows.append({"benchmark": benchmark, "onnx": onnx, "vnnlib": vnnlib, "truth": expected})
    return rows


def _locate(folder: Path, name: str, sub: str) -> Path:
    path = folder / name
    return path if path.exists() else folder / sub / Path(name).name


def run(rows: list[dict[str, Any]], time_limit: float, jobs: int | None) -> list[dict[str, Any]]:
    networks: dict[Path, Any] = {}
    results = []
    for row in rows:
        net = networks.get(row["onnx"])
        if net is None:
            net = networks[row["onnx"]] = load_onnx(row["onnx"])
        spec = read_vnnlib(row["vnnlib"])
        result = verify(net, spec, time_limit=time_limit, executor=jobs)
        if result.status == "sat":
            assert check_counterexample(net, spec, result.counterexample[0]).valid
        verdict = result.status
        if result.timed_out:
            verdict = "timeout"
        outcome = _grade(verdict, row["truth"])
        results.append({**row, "verdict": verdict, "seconds": result.seconds, "subproblems": result.subproblems,
                        "method": result.method, "outcome": outcome})
        name = f"{row['onnx'].stem} {row['vnnlib'].stem}"
        print(f"{name:50s} truth {row['truth']:6s} ours {verdict:8s} {result.seconds:7.2f} s "
              f"{result.subproblems:6d} subproblems  {outcome}", flush=True)
    return results


def _grade(verdict: str, truth: str) -> str:
    if verdict not in ("sat", "unsat"):
        return "unknown"
    if truth not in ("sat", "unsat"):
        return "no reference"
    return "correct" if verdict == truth else "WRONG"


def table(results: list[dict[str, Any]], command: str, time_limit: float) -> str:
    lines = [
        f"Command: `{command}`", "",
        f"Every instance of `tests/data/*/truth.csv` with a limit of {time_limit:g} s each; "
        "`verify(net, spec, time_limit)` with its defaults (attack, CROWN bounds with the "
        "specification back-substituted, input splitting for up to 16 inputs, otherwise "
        "`interval,crown,lp` bounds and one HiGHS MILP per unsafe polytope).  Seconds of "
        "`verify` only (reading files excluded); subproblems = sub-boxes bounded + MILPs solved.",
        "",
        "| instance | truth | ours | seconds | subproblems | decided by |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in results:
        instance = f"{r['benchmark']}: {r['onnx'].stem} {r['vnnlib'].stem}"
        verdict = r["verdict"] if r["outcome"] != "WRONG" else f"**{r['verdict']} (WRONG)**"
        lines.append(f"| {instance} | {r['truth']} | {verdict} | {r['seconds']:.2f} | {r['subproblems']} | {r['method']} |")
    lines.append("")
    for benchmark in sorted({r["benchmark"] for r in results}):
        lines.append(_summary(benchmark, [r for r in results if r["benchmark"] == benchmark]))
    lines.append(_summary("all", results))
    lines += ["", _machine()]
    return "\n".join(lines) + "\n"


def _summary(name: str, results: list[dict[str, Any]]) -> str:
    count = lambda outcome: sum(r["outcome"] == outcome for r in results)  # noqa: E731
    seconds = [r["seconds"] for r in results]
    return (f"**{name}**: {len(results)} instances, {count('correct')} correct, {count('WRONG')} wrong, "
            f"{count('unknown')} unknown; median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s.  ")


def _machine() -> str:
    try:
        load = f", load average {os.getloadavg()[0]:.1f} at the end of the run"
    except OSError:
        load = ""
    from importlib.metadata import version

    return (f"Machine: Python {platform.python_version()}, highspy {version('highspy')}, numpy {version('numpy')}, "
            f"{os.cpu_count()} CPUs{load}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time-limit", type=float, default=120.0, metavar="S", help="seconds per instance (default 120)")
    parser.add_argument("--only", help="one benchmark folder, e.g. acasxu or mnist_fc")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes for verify")
    parser.add_argument("--no-write", action="store_true", help=f"do not update '{SECTION}' in {RESULTS.name}")
    args = parser.parse_args(argv)
    command = "python benchmarks/vnncomp.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(
        sys.argv[1:] if argv is None else argv))
    start = time.perf_counter()
    results = run(instances(args.only), args.time_limit, args.jobs)
    text = table(results, command, args.time_limit)
    print("\n" + text)
    print(f"total {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"wrote {SECTION!r} to {RESULTS}", file=sys.stderr)
    return 1 if any(r["outcome"] == "WRONG" for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
