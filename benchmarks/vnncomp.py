"""VNN-COMP instances: our verdicts against the official answers in ``tests/data/*/truth.csv``.

    python benchmarks/vnncomp.py                  # every instance, 120 s each, updates RESULTS.md
    python benchmarks/vnncomp.py --time-limit 30 --only acasxu --no-write
    python benchmarks/vnncomp.py --all            # every ACAS Xu and MNIST instance of ../shared/cases

``--all`` reads the competition instances from ``../shared/cases`` (or ``$PYOMO_RELU_CASES``;
a clear skip when absent): the 180 ACAS Xu instances (45 networks, properties 1-4) with
VNN-COMP's 116 s limit and the MNIST 256x2 / 256x4 instances at eps = 0.03 with 120 s, as
listed in ``*/peer_results/``.  The reference answer is ``truth.csv`` where it lists the
instance, else the agreeing decided answers of the peer verifiers; their results (times
measured on the competitions' machines) are summarised beside ours.  ``--stop-by HH:MM``
(UTC) leaves the instances not started by then as "not run".  The table goes to the
section ``## VNN-COMP (all)``.

``--marabou`` runs Marabou 2.0 (``maraboupy``, the ``benchmark`` extra) on the same instances
with the same limit, each right after ours, in a subprocess (``Marabou.read_onnx``,
``MarabouCore.loadProperty``, one worker, its own timeout, killed 10 s after it); a ``sat``
of Marabou is re-checked with our forward pass.  ``--every K`` keeps every K-th instance
of each benchmark (a documented subset).  With ``--marabou`` the table goes to
``## VNN-COMP (all): Marabou side by side``.

BLAS runs single-threaded (``OPENBLAS_NUM_THREADS=1`` etc. unless already set): on this
shared 2-core machine a threaded BLAS made the bounds' matrix products up to 20x slower.

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
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

SECTION = "## VNN-COMP"
SECTION_ALL = "## VNN-COMP (all)"
SECTION_MARABOU = "## VNN-COMP (all): Marabou side by side"
#: Per-benchmark time limits of ``--all`` (VNN-COMP's).
LIMITS = {"acasxu": 116.0, "mnist_fc": 120.0}
VERDICTS = {"holds": "unsat", "unsat": "unsat", "violated": "sat", "sat": "sat"}

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


def shared_cases() -> Path:
    """``../shared/cases`` next to the checkout, or ``$PYOMO_RELU_CASES``."""
    given = os.environ.get("PYOMO_RELU_CASES")
    if given:
        return Path(given)
    for base in (DATA.parents[1], *DATA.parents[1].parents):
        if (base / "shared" / "cases").is_dir():
            return base / "shared" / "cases"
    return DATA.parents[1].parent / "shared" / "cases"


def _peer_tables(folder: Path) -> dict[str, dict[tuple[str, str], tuple[str, float]]]:
    """``tool -> (onnx name, vnnlib name) -> (verdict, seconds)`` from ``folder/peer_results/*.csv``."""
    tables: dict[str, dict[tuple[str, str], tuple[str, float]]] = {}
    for path in sorted((folder / "peer_results").glob("*.csv")):
        table: dict[tuple[str, str], tuple[str, float]] = {}
        for row in csv.reader(path.read_text().splitlines()):
            if len(row) >= 6:
                verdict = VERDICTS.get(row[4].strip().lower(), "unknown")
                table[(Path(row[1]).name, Path(row[2]).name)] = (verdict, float(row[5] or "nan"))
        tables[path.stem] = table
    return tables


def _truth_table(folder: Path) -> dict[tuple[str, str], str]:
    table = folder / "truth.csv"
    if not table.exists():
        return {}
    lines = [line for line in table.read_text().splitlines() if line and not line.startswith("#")]
    return {
        (Path(r["onnx"]).name, Path(r["vnnlib"]).name): r.get("vnncomp2022_true_result") or r.get("true_result") or "-"
        for r in csv.DictReader(lines)
    }


def _reference(key: tuple[str, str], truth: dict, peers: dict) -> str:
    """``truth.csv``'s answer, else the peers' decided answers when they agree (``-`` otherwise)."""
    if truth.get(key, "-") in ("sat", "unsat"):
        return truth[key]
    answers = {table[key][0] for table in peers.values() if key in table and table[key][0] in ("sat", "unsat")}
    return answers.pop() if len(answers) == 1 else "-"


def all_instances(cases: Path) -> list[dict[str, Any]]:
    """Every ACAS Xu instance and every MNIST 256x2/256x4 eps = 0.03 instance whose files are in ``cases``."""
    rows = []
    for benchmark in ("acasxu", "mnist_fc"):
        folder = cases / benchmark
        if not folder.is_dir():
            print(f"skipped {benchmark}: {folder} is absent", file=sys.stderr)
            continue
        peers, truth = _peer_tables(folder), _truth_table(folder)
        keys = sorted({key for table in peers.values() for key in table} | set(truth))
        for onnx_name, vnnlib_name in keys:
            if benchmark == "mnist_fc" and ("256x6" in onnx_name or "0.03" not in vnnlib_name):
                continue
            onnx, vnnlib = folder / "onnx" / onnx_name, folder / "vnnlib" / vnnlib_name
            if not (onnx.exists() and vnnlib.exists()):
                continue
            key = (onnx_name, vnnlib_name)
            rows.append(
                {
                    "benchmark": benchmark,
                    "onnx": onnx,
                    "vnnlib": vnnlib,
                    "truth": _reference(key, truth, peers),
                    "limit": LIMITS[benchmark],
                    "peers": {tool: table.get(key) for tool, table in peers.items()},
                }
            )
    return rows


#: Run in a subprocess per instance: Marabou 2.0 on one ONNX network and VNN-LIB property.
MARABOU_SCRIPT = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
start = time.perf_counter()
from maraboupy import Marabou, MarabouCore
network = Marabou.read_onnx(sys.argv[1])
query = network.getInputQuery()
MarabouCore.loadProperty(query, sys.argv[2])
options = Marabou.createOptions(verbosity=0, timeoutInSeconds=int(float(sys.argv[3])), numWorkers=1)
code, values, _ = MarabouCore.solve(query, options, "")
x = [values[int(v)] for v in network.inputVars[0].flatten()] if code == "sat" else None
print("MARABOU " + json.dumps({"code": code, "seconds": time.perf_counter() - start, "x": x}))
"""


def run_marabou(onnx: Path, vnnlib: Path, limit: float) -> tuple[str, float, list[float] | None]:
    """Marabou's verdict (``sat``/``unsat``/``timeout``/``error``), wall seconds (start-up included) and point."""
    start = time.perf_counter()
    command = [sys.executable, "-c", MARABOU_SCRIPT, str(onnx), str(vnnlib), str(limit)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit + 10)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, None
    seconds = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("MARABOU ")]
    if not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"Marabou failed on {onnx.name} {vnnlib.name}: {tail[0]}", file=sys.stderr)
        return "error", seconds, None
    answer = json.loads(lines[-1][len("MARABOU ") :])
    code = {"TIMEOUT": "timeout", "sat": "sat", "unsat": "unsat"}.get(answer["code"], answer["code"].lower())
    return code, seconds, answer["x"]


def _marabou_row(row: dict[str, Any], net: Any, spec: Any, limit: float) -> dict[str, Any]:
    """Marabou on the row's instance, its ``sat`` re-checked by our forward pass (float32 tolerances)."""
    verdict, seconds, x = run_marabou(row["onnx"], row["vnnlib"], limit)
    if verdict == "sat" and x is not None:
        check = check_counterexample(net, spec, x, input_tol=1e-6, output_tol=1e-6)
        if not check.valid:
            verdict = "sat (not confirmed)"
    return {"marabou": verdict, "marabou_seconds": seconds, "marabou_outcome": _grade(verdict, row["truth"])}


def _every(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Every ``k``-th row of each benchmark (the first included), benchmarks in their order."""
    names = list(dict.fromkeys(r["benchmark"] for r in rows))
    return [r for name in names for r in [x for x in rows if x["benchmark"] == name][::k]]


def _locate(folder: Path, name: str, sub: str) -> Path:
    path = folder / name
    return path if path.exists() else folder / sub / Path(name).name


def run(
    rows: list[dict[str, Any]],
    time_limit: float,
    jobs: int | None,
    stop_by: float | None = None,
    marabou: bool = False,
) -> list[dict[str, Any]]:
    networks: dict[Path, Any] = {}
    results = []
    for row in rows:
        if stop_by is not None and time.time() >= stop_by:
            results.append(
                {**row, "verdict": "not run", "seconds": 0.0, "subproblems": 0, "method": "", "outcome": "not run"}
            )
            continue
        net = networks.get(row["onnx"])
        if net is None:
            net = networks[row["onnx"]] = load_onnx(row["onnx"])
        spec = read_vnnlib(row["vnnlib"])
        limit = row.get("limit", time_limit)
        if stop_by is not None:
            limit = min(limit, max(1.0, stop_by - time.time()))
        result = verify(net, spec, time_limit=limit, executor=jobs)
        if result.status == "sat":
            assert check_counterexample(net, spec, result.counterexample[0]).valid
        verdict = result.status
        if result.timed_out:
            verdict = "timeout"
        outcome = _grade(verdict, row["truth"])
        results.append(
            {
                **row,
                "verdict": verdict,
                "seconds": result.seconds,
                "subproblems": result.subproblems,
                "method": result.method,
                "outcome": outcome,
                **(_marabou_row(row, net, spec, limit) if marabou else {}),
            }
        )
        name = f"{row['onnx'].stem} {row['vnnlib'].stem}"
        if marabou:
            name += f" (Marabou {results[-1]['marabou']} {results[-1]['marabou_seconds']:.1f} s)"
        print(
            f"{name:50s} truth {row['truth']:6s} ours {verdict:8s} {result.seconds:7.2f} s "
            f"{result.subproblems:6d} subproblems  {outcome}",
            flush=True,
        )
    return results


def _stop_by(text: str | None) -> float | None:
    """``HH:MM`` (UTC, today or, if already past, tomorrow) as a ``time.time()`` value."""
    if not text:
        return None
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    hour, minute = (int(v) for v in text.split(":"))
    when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if when <= now:
        when += dt.timedelta(days=1)
    return when.timestamp()


def table_all(results: list[dict[str, Any]], command: str, wall: float) -> str:
    """The ``--all`` section: per instance, then per benchmark our totals beside the peers'."""
    lines = [
        f"Command: `{command}`",
        "",
        "Every ACAS Xu instance (45 networks x properties 1-4, 116 s each) and every MNIST 256x2/256x4 "
        "instance at eps = 0.03 (120 s each) of `../shared/cases`, one after another in one process "
        "(`verify` defaults: PGD attack, CROWN + alpha-CROWN input splitting with local attacks for up to "
        "16 inputs; otherwise alpha-CROWN neuron bounds, beta-CROWN ReLU branching for a quarter of the time "
        "left, and HiGHS margin MILPs on the polytopes it leaves open; BLAS single-threaded).  "
        "Reference: `truth.csv` where it "
        "lists the instance, else the agreeing decided answers of the peer verifiers in `peer_results/`.  "
        "Seconds of `verify` (reading files excluded).",
        "",
        "| instance | reference | ours | seconds | subproblems | decided by |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in results:
        verdict = r["verdict"] if r["outcome"] != "WRONG" else f"**{r['verdict']} (WRONG)**"
        lines.append(
            f"| {r['benchmark']}: {r['onnx'].stem} {r['vnnlib'].stem} | {r['truth']} | {verdict} | "
            f"{r['seconds']:.2f} | {r['subproblems']} | {r['method']} |"
        )
    lines += [
        "",
        "| benchmark | tool | instances | decided | wrong | total s | max s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for benchmark in sorted({r["benchmark"] for r in results}):
        part = [r for r in results if r["benchmark"] == benchmark]
        decided = [r for r in part if r["verdict"] in ("sat", "unsat")]
        wrong = sum(r["outcome"] == "WRONG" for r in part)
        seconds = [r["seconds"] for r in part]
        lines.append(
            f"| {benchmark} | pyomo_relu (this run) | {len(part)} | {len(decided)} | {wrong} | "
            f"{sum(seconds):.1f} | {max(seconds):.1f} |"
        )
        for tool in sorted({t for r in part for t in r.get("peers", {})}):
            entries = [r["peers"].get(tool) for r in part]
            got = [(e, r["truth"]) for e, r in zip(entries, part) if e is not None]
            ok = [e for e, _ in got if e[0] in ("sat", "unsat")]
            bad = sum(e[0] in ("sat", "unsat") and truth in ("sat", "unsat") and e[0] != truth for e, truth in got)
            total = sum(e[1] for e, _ in got if e[1] == e[1])
            worst = max((e[1] for e, _ in got if e[1] == e[1]), default=float("nan"))
            lines.append(
                f"| {benchmark} | {tool} (competition machine) | {len(got)} | {len(ok)} | {bad} | "
                f"{total:.1f} | {worst:.1f} |"
            )
    not_run = sum(r["outcome"] == "not run" for r in results)
    lines += [
        "",
        f"Wall time of the whole run: {wall:.1f} s"
        + (f"; {not_run} instances not run (--stop-by)." if not_run else "."),
        "",
        _machine(),
    ]
    return "\n".join(lines) + "\n"


def table_marabou(results: list[dict[str, Any]], command: str, wall: float, every: int) -> str:
    """Ours and Marabou 2.0 on the same instances and limits, one after the other in one run."""
    subset = "every instance" if every == 1 else f"every {every}th instance of each benchmark (a subset)"
    lines = [
        f"Command: `{command}`",
        "",
        f"{subset.capitalize()} of `--all` (ACAS Xu 116 s, MNIST 256x2/256x4 eps 0.03 120 s), each run by "
        "`verify` (defaults, this process, seconds of `verify`) and then by Marabou 2.0 (`maraboupy` 2.0.0 from "
        "PyPI: `Marabou.read_onnx`, `MarabouCore.loadProperty`, `solve` with one worker and `timeoutInSeconds` = "
        "the limit, in a subprocess killed 10 s after it; its seconds are the subprocess's wall time, start-up "
        "and ONNX reading included, about 1-2 s).  A Marabou `sat` is re-checked with our forward pass.",
        "",
        "| instance | reference | ours | seconds | Marabou 2.0 | seconds |",
        "|---|---|---|---:|---|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['benchmark']}: {r['onnx'].stem} {r['vnnlib'].stem} | {r['truth']} | {r['verdict']} | "
            f"{r['seconds']:.2f} | {r.get('marabou', '-')} | {r.get('marabou_seconds', 0.0):.2f} |"
        )
    lines += [
        "",
        "| benchmark | instances | ours decided | ours wrong | ours total s | Marabou decided | Marabou wrong "
        "| Marabou total s | decided ratio (ours / Marabou) | time ratio (Marabou / ours) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for benchmark in sorted({r["benchmark"] for r in results}):
        part = [r for r in results if r["benchmark"] == benchmark and "marabou" in r]
        ours = sum(r["verdict"] in ("sat", "unsat") for r in part)
        theirs = sum(r["marabou"] in ("sat", "unsat") for r in part)
        ours_s, theirs_s = sum(r["seconds"] for r in part), sum(r["marabou_seconds"] for r in part)
        lines.append(
            f"| {benchmark} | {len(part)} | {ours} | {sum(r['outcome'] == 'WRONG' for r in part)} | {ours_s:.1f} | "
            f"{theirs} | {sum(r['marabou_outcome'] == 'WRONG' for r in part)} | {theirs_s:.1f} | "
            f"{ours / max(theirs, 1):.2f} | {theirs_s / max(ours_s, 1e-9):.2f} |"
        )
    lines += ["", f"Wall time of the whole run: {wall:.1f} s.", "", _machine()]
    return "\n".join(lines) + "\n"


def _grade(verdict: str, truth: str) -> str:
    if verdict not in ("sat", "unsat"):
        return "unknown"
    if truth not in ("sat", "unsat"):
        return "no reference"
    return "correct" if verdict == truth else "WRONG"


def table(results: list[dict[str, Any]], command: str, time_limit: float) -> str:
    lines = [
        f"Command: `{command}`",
        "",
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
        lines.append(
            f"| {instance} | {r['truth']} | {verdict} | {r['seconds']:.2f} | {r['subproblems']} | {r['method']} |"
        )
    lines.append("")
    for benchmark in sorted({r["benchmark"] for r in results}):
        lines.append(_summary(benchmark, [r for r in results if r["benchmark"] == benchmark]))
    lines.append(_summary("all", results))
    lines += ["", _machine()]
    return "\n".join(lines) + "\n"


def _summary(name: str, results: list[dict[str, Any]]) -> str:
    count = lambda outcome: sum(r["outcome"] == outcome for r in results)  # noqa: E731
    seconds = [r["seconds"] for r in results]
    return (
        f"**{name}**: {len(results)} instances, {count('correct')} correct, {count('WRONG')} wrong, "
        f"{count('unknown')} unknown; median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s.  "
    )


def _machine() -> str:
    try:
        load = f", load average {os.getloadavg()[0]:.1f} at the end of the run"
    except OSError:
        load = ""
    from importlib.metadata import version

    return (
        f"Machine: Python {platform.python_version()}, highspy {version('highspy')}, numpy {version('numpy')}, "
        f"{os.cpu_count()} CPUs{load}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--time-limit", type=float, default=120.0, metavar="S", help="seconds per instance (default 120)"
    )
    parser.add_argument("--only", help="one benchmark folder, e.g. acasxu or mnist_fc")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes for verify")
    parser.add_argument("--no-write", action="store_true", help=f"do not update '{SECTION}' in {RESULTS.name}")
    parser.add_argument("--all", action="store_true", help="every ACAS Xu and MNIST instance of ../shared/cases")
    parser.add_argument("--stop-by", metavar="HH:MM", help="UTC time after which no instance is started")
    parser.add_argument("--marabou", action="store_true", help="with --all: also run Marabou 2.0 on each instance")
    parser.add_argument("--every", type=int, default=1, metavar="K", help="with --all: every K-th instance only")
    args = parser.parse_args(argv)
    command = "python benchmarks/vnncomp.py" + (
        "" if argv is None and len(sys.argv) == 1 else " " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    start = time.perf_counter()
    if args.all:
        rows = [r for r in all_instances(shared_cases()) if not args.only or r["benchmark"] == args.only]
        rows = _every(rows, args.every)
        if not rows:
            print(f"no instances found under {shared_cases()}: nothing to run", file=sys.stderr)
            return 0
        results = run(rows, args.time_limit, args.jobs, _stop_by(args.stop_by), args.marabou)
        if args.marabou:
            text = table_marabou(results, command, time.perf_counter() - start, args.every)
            section = SECTION_MARABOU
        else:
            text = table_all(results, command, time.perf_counter() - start)
            section = SECTION_ALL + (f": {args.only}" if args.only else "")
        print("\n" + text)
        if not args.no_write:
            write_section(section, text)
        return 1 if any(r["outcome"] == "WRONG" for r in results) else 0
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
