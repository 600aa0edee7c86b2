"""Scale: dense ReLU networks from 10 k to 4 M weights, from ONNX file to HiGHS, per phase.

Usage::

    python benchmarks/scale.py                      # print the table
    python benchmarks/scale.py --write              # also "## Scale" in RESULTS.md and docs/scale.png
    python benchmarks/scale.py --sizes 100-64-64-10 --boxes small --no-omlt   # one quick row

Each (network, box) runs in its own process, so the peak memory of one case is not
inflated by the ones before it.  Networks: random weights ``N(0, 1/n_in)``, biases
``N(0, 0.1)``, seed 0, written to ONNX with :func:`pyomo_relu.idaes_files.network_to_onnx`
(doubles) in a temporary folder.  Boxes: ``small`` (the 0.02-box ``[c - 0.01, c + 0.01]``
around a seeded random point ``c`` of ``[0, 1]^n``) and ``whole`` (``[0, 1]^n``).

Phases, each timed on its own (``perf_counter``) with the process's peak RSS after it:

* ``read``: ``load_onnx(file, input_bounds=box)``;
* ``interval``, ``crown``: ``tighten(net, "interval")`` and ``tighten(net, ["interval", "crown"])``;
* ``build``: ``ReLUNetBlock().build(net, inputs, outputs, formulation="bigm", bounds=<the crown bounds>)``
  plus the objective ``max y_0 - y_1``;
* ``bulk hand-off``: :func:`pyomo_relu.handoff.model_arrays` + ``passModel`` (what ``solve`` does);
* ``Pyomo hand-off``: Pyomo's persistent HiGHS interface ``set_instance`` (what ``solve(handoff="pyomo")``
  does), skipped above ``--pyomo-max`` weights;
* ``first LP``: HiGHS's first LP relaxation value of the MIP: the MIP's LP relaxation (integrality
  dropped) solved to optimality by HiGHS (``--lp-limit`` at most), hand-off included, as
  :func:`pyomo_relu.root_lp.first_lp` gives it to HiGHS: the big-M layers as their equivalent triangle
  rows (``model_arrays(m, relaxed=True)``: the projection of big-M's LP relaxation, same optimum) and a
  starting basis from the forward/backward passes of :mod:`pyomo_relu.root_basis`.  The previous
  figures (before 2026-12-03) solved the big-M LP itself from HiGHS's own start: the same LP
  optimum (``lp value``, checked equal where both finish: ``tests/test_handoff.py``), reached
  differently;
* ``first LP (big-M, cold)`` (``--cold-lp``): that previous measurement, for comparison;
* ``MatrixConstraint``: the block's rows (``model_arrays``' CSR, every row the bulk hand-off writes)
  as one Pyomo ``MatrixConstraint`` (``pyomo.core.base.matrix_constraint``) over fresh variables:
  what building the block through that component would cost, against ``build`` (our components);
  ``MatrixConstraint Pyomo hand-off``: Pyomo's persistent HiGHS interface reading that model (the bulk
  hand-off does not read ``MatrixConstraint``), up to ``--pyomo-max`` weights;
* ``solve(5)``: wall-clock of ``solve(m, "highs", time_limit=5)`` (bulk) and its status;
* ``tighten(5)``, ``optimize(5)``, ``verify(5)``: wall-clock of ``tighten(net, ["interval", "crown", "lp"],
  time_limit=5)``, ``optimize(net, 0, sense="maximize", time_limit=5)`` and ``verify`` of the robustness
  of the box centre's label over the box with ``time_limit=5`` (:func:`limited_calls`), and the worst
  overshoot past the limit per call; ``--only solve(5) tighten(5) optimize(5) verify(5)`` measures just
  these (read ... build always run);
* OMLT 1.2.2 (``--omlt``): its big-M build with its own bounds, in a separate process killed after
  ``--omlt-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import write_section

SECTION = "## Scale"
#: ``--write --only`` with time-limited calls only: their own section (the full table stays).
LIMITS_SECTION = "## Scale: time limits"
SIZES = ["100-64-64-10", "784-256-256-10", "784-512-512-512-512-10", "784-1024-1024-1024-1024-10"]
BOXES = ["small", "whole"]
PHASES = [
    "read",
    "interval",
    "crown",
    "build",
    "MatrixConstraint",
    "MatrixConstraint Pyomo hand-off",
    "bulk hand-off",
    "Pyomo hand-off",
    "first LP",
    "first LP (big-M, cold)",
    "solve(5)",
    "tighten(5)",
    "optimize(5)",
    "verify(5)",
]
#: The calls with ``time_limit=5`` whose wall-clock is measured against the limit.
LIMITED = ("solve(5)", "tighten(5)", "optimize(5)", "verify(5)")
#: Phases that always run (the others need them); ``--only`` picks among the rest.
ALWAYS = ("read", "interval", "crown", "build")
#: The phases from the ONNX file to HiGHS's first LP value.
TO_FIRST_LP = ("read", "interval", "crown", "build", "first LP")
PLOT = Path(__file__).resolve().parent.parent / "docs" / "scale.png"


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def random_network(sizes: list[int], seed: int = 0):
    from pyomo_relu import DenseLayer, NetworkDefinition

    rng = np.random.default_rng(seed)
    layers = [
        DenseLayer(
            rng.normal(size=(o, i)) / np.sqrt(i), rng.normal(size=o) * 0.1, "relu" if k < len(sizes) - 2 else "linear"
        )
        for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    return NetworkDefinition(layers, source=f"random {'-'.join(map(str, sizes))} seed {seed}")


def box(n: int, kind: str, seed: int = 1) -> list[tuple[float, float]]:
    if kind == "whole":
        return [(0.0, 1.0)] * n
    centre = np.random.default_rng(seed).uniform(0.01, 0.99, n)
    return list(zip((centre - 0.01).tolist(), (centre + 0.01).tolist()))


class Phases:
    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def run(self, name: str, work, *args):
        start = time.perf_counter()
        value = work(*args)
        self.rows[name] = {"s": time.perf_counter() - start, "gb": _rss_gb()}
        return value


def one_case(
    spec: str, kind: str, lp_limit: float, pyomo_max: float, cold_lp: bool, only: list[str] | None = None
) -> dict:
    """All phases of one network over one box (run in a child process); ``only``: just these (and :data:`ALWAYS`)."""
    import pyomo.environ as pe

    from pyomo_relu import ReLUNetBlock, load_onnx, solve, tighten
    from pyomo_relu.handoff import model_arrays

    sizes = [int(s) for s in spec.split("-")]
    path, weights = write_onnx(sizes)
    p = Phases()
    net = p.run("read", load_onnx, path, box(sizes[0], kind))
    p.run("interval", tighten, net, "interval")
    bounds = p.run("crown", tighten, net, ["interval", "crown"])

    def build():
        m = pe.ConcreteModel()
        m.x = pe.Var(range(net.n_inputs))
        m.y = pe.Var(range(net.n_outputs))
        m.nn = ReLUNetBlock()
        m.nn.build(net, inputs=m.x, outputs=m.y, formulation="bigm", bounds=bounds)
        m.obj = pe.Objective(expr=m.y[0] - m.y[1], sense=pe.maximize)
        return m

    m = p.run("build", build)

    def wanted(phase: str) -> bool:
        return only is None or phase in only

    mc_error, nonzeros, lp, cold = None, None, ("skipped", None), None
    if wanted("MatrixConstraint"):
        mc = p.run("MatrixConstraint", matrix_constraint_build, model_arrays(m))
        if weights <= pyomo_max:
            try:
                p.run("MatrixConstraint Pyomo hand-off", pyomo_handoff, mc)
            except Exception as error:  # noqa: BLE001 - Pyomo 6.10.1's interface cannot read it: recorded
                mc_error = f"{type(error).__name__}: {error}"
        del mc
    if wanted("bulk hand-off"):
        highs = p.run("bulk hand-off", bulk_handoff, m)
        nonzeros = int(highs.getNumNz())
        del highs
    if weights <= pyomo_max and wanted("Pyomo hand-off"):
        p.run("Pyomo hand-off", pyomo_handoff, m)
    if wanted("first LP"):
        lp = p.run("first LP", first_lp, m, lp_limit, True)
    if cold_lp and wanted("first LP (big-M, cold)"):
        cold = p.run("first LP (big-M, cold)", first_lp, m, lp_limit, False)
    statuses, parts, error = {}, {}, None
    if wanted("solve(5)"):
        m.nn.initialize()
        result = p.run("solve(5)", solve, m, "highs", 5.0)
        parts = dict(result.raw.get("timing", {})) if isinstance(result.raw, dict) else {}
        parts["forward check and the rest"] = p.rows["solve(5)"]["s"] - sum(parts.values())
        statuses["solve(5)"] = result.status
        error = float(m.nn.get_error()) if result.has_solution else None
    binaries = m.nn.stats()["binaries"]
    del m
    statuses.update(limited_calls(net, sizes[0], kind, [q for q in LIMITED[1:] if wanted(q)], p))
    return {
        "spec": spec,
        "box": kind,
        "weights": int(weights),
        "nonzeros": nonzeros,
        "phases": p.rows,
        "binaries": binaries,
        "lp_status": lp[0],
        "lp_value": lp[1],
        "lp_cold": cold,
        "status": statuses.get("solve(5)", "—"),
        "statuses": statuses,
        "solve_parts": parts,
        "mc_error": mc_error,
        "error": error,
    }


def limited_calls(net, n_inputs: int, kind: str, which: list[str], p: Phases) -> dict[str, str]:
    """``tighten``, ``optimize`` and ``verify`` with ``time_limit=5``: wall-clock (in ``p``) and status.

    ``tighten(net, ["interval", "crown", "lp"], time_limit=5)`` (LP tightening, serial);
    ``optimize(net, 0, sense="maximize", time_limit=5)``; ``verify`` of the robustness of the
    box centre's label over the box (``robustness_property``, the 0.02-box or ``[0, 1]^n``).
    """
    from pyomo_relu import optimize, tighten
    from pyomo_relu.verify import verify
    from pyomo_relu.verify.adversary import robustness_property

    statuses = {}
    if "tighten(5)" in which:
        bounds = p.run("tighten(5)", lambda: tighten(net, ["interval", "crown", "lp"], time_limit=5.0))
        statuses["tighten(5)"] = "/".join(bounds.methods)
    if "optimize(5)" in which:
        found = p.run("optimize(5)", lambda: optimize(net, 0, sense="maximize", time_limit=5.0, progress=False))
        statuses["optimize(5)"] = found.status
    if "verify(5)" in which:
        lower, upper = np.array(box(n_inputs, kind)).T
        centre = (lower + upper) / 2
        label = int(np.argmax(net.evaluate(centre[None])[0]))
        spec = robustness_property(centre, float((upper - lower).max()) / 2, label, net.n_outputs)
        decided = p.run("verify(5)", lambda: verify(net, spec, time_limit=5.0))
        statuses["verify(5)"] = decided.status
    return statuses


def write_onnx(sizes: list[int]) -> tuple[Path, int]:
    """The seeded random network written to a temporary ONNX file, and its number of weights."""
    import onnx

    from pyomo_relu.idaes_files import network_to_onnx

    net = random_network(sizes)
    path = Path(tempfile.mkdtemp(prefix="scale_")) / f"{'-'.join(map(str, sizes))}.onnx"
    onnx.save(network_to_onnx(net), path)
    return path, sum(layer.weights.size for layer in net.layers)


def bulk_handoff(m):
    """What ``solve`` hands HiGHS: :func:`pyomo_relu.handoff.model_arrays` and ``passModel``."""
    from pyomo_relu.handoff import highs_from_arrays, model_arrays

    return highs_from_arrays(model_arrays(m), {}, False)


def pyomo_handoff(m) -> None:
    """Pyomo's persistent HiGHS interface building its model (what ``solve(handoff="pyomo")`` does)."""
    from pyomo_relu.solvers import _HighsWithStart

    opt = _HighsWithStart()
    opt._active_config = opt.config(value={})
    opt.set_instance(m)


def first_lp(m, lp_limit: float, ours: bool) -> tuple[str, float | None]:
    """HiGHS's first LP value of the MIP: ours (triangle rows, starting basis) or the big-M LP, cold."""
    from pyomo_relu.root_lp import first_lp as run_first_lp

    status, value = run_first_lp(m, time_limit=lp_limit, relaxed=ours, basis=ours)
    return status, value


def matrix_constraint_build(arrays):
    """The rows of ``arrays`` as one Pyomo ``MatrixConstraint`` over fresh variables."""
    import pyomo.environ as pe
    from pyomo.core.base.matrix_constraint import MatrixConstraint

    lp = arrays.lp
    m = pe.ConcreteModel()
    m.v = pe.Var(range(lp.n_cols))
    lower = [None if not np.isfinite(v) else float(v) for v in lp.row_lower]
    upper = [None if not np.isfinite(v) else float(v) for v in lp.row_upper]
    m.rows = MatrixConstraint(lp.value, lp.index, lp.start, lower, upper, list(m.v.values()))
    m.obj = pe.Objective(expr=0.0)
    return m


def omlt_case(spec: str, kind: str) -> dict:
    """OMLT's big-M build of the same network (run in a child process)."""
    import pyomo.environ as pe
    from common import omlt_network
    from omlt import OmltBlock
    from omlt.neuralnet import ReluBigMFormulation

    logging.getLogger("pyomo").setLevel(logging.ERROR)
    sizes = [int(s) for s in spec.split("-")]
    net = random_network(sizes).with_input_bounds(box(sizes[0], kind))
    start = time.perf_counter()
    m = pe.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(ReluBigMFormulation(omlt_network(net)))
    return {"s": time.perf_counter() - start, "gb": _rss_gb()}


def child(args: list[str], timeout: float) -> dict | None:
    try:
        out = subprocess.run(
            [sys.executable, __file__, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as error:
        print(error.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def slopes(rows: list[dict], kind: str) -> dict[str, float]:
    """Least-squares slope of log(seconds) against log(weights) per phase, over one box."""
    found = {}
    for phase in PHASES + ["OMLT build"]:
        points = [(r["weights"], r["phases"][phase]["s"]) for r in rows if r["box"] == kind and phase in r["phases"]]
        if len(points) >= 2:
            x, y = np.log10([p[0] for p in points]), np.log10([max(p[1], 1e-4) for p in points])
            found[phase] = float(np.polyfit(x, y, 1)[0])
    return found


def table(rows: list[dict]) -> str:
    head = (
        "| network | box | weights | binaries | "
        + " | ".join(PHASES)
        + " | OMLT build | statuses (time-limited calls) |"
    )
    lines = [head, "|" + "---|" * 4 + "---:|" * (len(PHASES) + 1) + "---|"]
    for r in rows:
        cells = []
        for phase in PHASES + ["OMLT build"]:
            v = r["phases"].get(phase)
            cells.append("—" if v is None else f"{v['s']:.2f} s / {v['gb']:.2f} GB")
        if "OMLT build" not in r["phases"] and r.get("omlt_note"):
            cells[-1] = r["omlt_note"]
        lines.append(
            f"| {r['spec']} | {r['box']} | {r['weights']:,} | {r['binaries']} | "
            + " | ".join(cells)
            + " | "
            + ", ".join(f"{k}: {v}" for k, v in r.get("statuses", {"solve(5)": r["status"]}).items())
            + " |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, kind in zip(axes, BOXES):
        for phase in PHASES + ["OMLT build"]:
            pts = sorted(
                (r["weights"], r["phases"][phase]["s"]) for r in rows if r["box"] == kind and phase in r["phases"]
            )
            if pts:
                ax.loglog(*zip(*pts), marker="o", label=phase)
        ax.set_title(f"{kind} box")
        ax.set_xlabel("weights")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--sizes", nargs="+", default=SIZES)
    parser.add_argument("--boxes", nargs="+", default=BOXES, choices=BOXES)
    parser.add_argument("--no-omlt", dest="omlt", action="store_false")
    parser.add_argument("--omlt-timeout", type=float, default=600.0)
    parser.add_argument("--lp-limit", type=float, default=60.0)
    parser.add_argument("--cold-lp", action="store_true", help="also the big-M LP from HiGHS's own start")
    parser.add_argument("--pyomo-max", type=float, default=2e6, help="largest network (weights) for the Pyomo hand-off")
    parser.add_argument("--only", nargs="+", choices=PHASES, help="only these phases (read ... build always run)")
    parser.add_argument("--one", nargs=2, metavar=("SIZES", "BOX"), help=argparse.SUPPRESS)
    parser.add_argument("--omlt-one", nargs=2, metavar=("SIZES", "BOX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_case(*args.one, args.lp_limit, args.pyomo_max, args.cold_lp, args.only)))
        return 0
    if args.omlt_one:
        print(json.dumps(omlt_case(*args.omlt_one)))
        return 0
    rows = []
    for spec in args.sizes:
        for kind in args.boxes:
            print(f"{spec} {kind} ...", file=sys.stderr, flush=True)
            flags = ["--lp-limit", str(args.lp_limit), "--pyomo-max", str(args.pyomo_max)]
            flags += ["--cold-lp"] if args.cold_lp else []
            flags += ["--only", *args.only] if args.only else []
            row = child(["--one", spec, kind, *flags], 3600)
            if row is None:
                print("  failed", file=sys.stderr)
                continue
            if args.omlt:
                theirs = child(["--omlt-one", spec, kind], args.omlt_timeout)
                if theirs is None:
                    row["omlt_note"] = f"> {args.omlt_timeout:.0f} s (stopped)"
                else:
                    row["phases"]["OMLT build"] = theirs
            rows.append(row)
            print("  " + json.dumps(row), file=sys.stderr, flush=True)
    text = report(rows, args)
    print(text)
    if args.write:
        if not args.only:
            plot(rows, PLOT)
        write_section(LIMITS_SECTION if args.only and set(args.only) <= set(LIMITED) else SECTION, text)
    return 0


def report(rows: list[dict], args: argparse.Namespace) -> str:
    command = (
        "python benchmarks/scale.py"
        + (" --write" if args.write else "")
        + ("" if args.sizes == SIZES else " --sizes " + " ".join(args.sizes))
        + (f" --omlt-timeout {args.omlt_timeout:.0f}" if args.omlt_timeout != 600 else "")
        + (f" --lp-limit {args.lp_limit:.0f}" if args.lp_limit != 60 else "")
        + (" --cold-lp" if args.cold_lp else "")
        + ("" if args.omlt else " --no-omlt")
        + (" --only " + " ".join(f"'{q}'" for q in args.only) if args.only else "")
    )
    lines = [
        f"Command: `{command}`",
        "",
        "Seconds / peak RSS of the process after the phase (each case in its own process; see the "
        "script's docstring for what each phase is). Random dense networks, seed 0; `small` = a 0.02-box, "
        "`whole` = [0, 1]^n; build = big-M with the CROWN bounds. `first LP` = HiGHS's LP relaxation of "
        "the MIP to optimality, its hand-off included (triangle rows, starting basis). `solve(5)` = "
        'wall-clock of `solve(m, "highs", time_limit=5)` (bulk hand-off included); `tighten(5)`, `optimize(5)`, '
        "`verify(5)`: the same for those calls (see the script's docstring).",
        "",
        table(rows),
        "",
    ]
    for kind in args.boxes:
        s = slopes(rows, kind)
        if s:
            lines.append(
                f"Slopes of log(seconds) against log(weights), {kind} box: "
                + ", ".join(f"{k} {v:.2f}" for k, v in s.items())
                + ".  "
            )
    lines += goal_lines(rows, args) + ratio_lines(rows)
    if not args.only:  # the first LP and the hand-off choice: the full run's section only
        lines += first_lp_notes()
    lines += [
        "",
        f"Plot: `docs/scale.png`. Machine: Python {platform.python_version()}, {os.cpu_count()} CPUs "
        f"shared with other jobs, load average {os.getloadavg()[0]:.1f} at the end of the run.",
    ]
    return "\n".join(lines)


def first_lp_notes() -> list[str]:
    """Why the first LP of the 4 M network is slow, what was tried, and the hand-off choice (measured by hand)."""
    return [
        (
            "Why the first LP is slow (measured while writing this, 784-1024x4-10 small box, load 6-12 on 2 "
            "cores): the big-M LP has 13 k rows and 3.0 M nonzeros; HiGHS's dual simplex from its slack "
            "start did 12.7 k iterations in 60 s and was still far from optimal (Dantzig pricing: 8.4 k); IPM "
            "(`solver=ipm`, no crossover) and PDLP did not finish in 100 s.  Equivalent triangle rows "
            "(`model_arrays(relaxed=True)`) and the starting basis of `pyomo_relu.root_basis` (a point within "
            "2% of the LP optimum) cut 784-512x4-10 small from over 60 s to the figure above, but on the 4 M "
            "network HiGHS spends 12-18 s computing its dual steepest-edge weights for a non-slack basis and "
            "then iterates at 30-40 per second (on 784-512x4-10, Devex weights skip that step but took 6.6x "
            "the iterations).  "
        ),
        (
            "Alternatives tried for that LP (2026-12-03, 784-1024x4-10 small box, its triangle-row LP: 10.2 k rows, "
            "7.3 k columns, 3.0 M nonzeros, hand-off 1.0-1.3 s, each capped at 30 s, load about 1 on 2 cores; "
            "script kept out of the repository, same calls as `pyomo_relu.root_lp.first_lp` with HiGHS options): "
            "primal simplex from the root basis (`simplex_strategy=4`) 1.9 k iterations, objective 45.26, unfinished; "
            "the same with presolve off 2.4 k iterations, 45.30, unfinished; dual simplex with Devex pricing "
            "(`simplex_dual_edge_weight_strategy=1`) from the root basis 2.1 k iterations, 59.05, unfinished; IPM "
            "without crossover (`solver=ipm`, `run_crossover=off`) from HiGHS's own start had not returned 90 s "
            "after it started (limit 30 s, watchdog cancel at 30.2 s: IPX honours neither; stopped by hand).  "
            "None reaches the 15 s goal.  "
        ),
        (
            "Choice (issue 13): the block keeps its rows as Pyomo components, which the bulk hand-off "
            "recognises and writes from the layers' arrays.  A `MatrixConstraint` is quicker to create "
            "(it only stores the CSR arrays) but the bulk route would need a reader of its own, Pyomo's "
            "persistent HiGHS interface of Pyomo 6.10.1 cannot read it (above), and its rows are indexed "
            "by position only and cannot be changed (`set_value` raises `NotImplementedError`).  "
        ),
    ]


def goal_lines(rows: list[dict], args: argparse.Namespace) -> list[str]:
    """The issue's goals: file to first LP and peak memory on 4 M weights, solve(5) within 7 s."""
    lines = []
    for r in (r for r in rows if r["weights"] > 3e6 and all(p in r["phases"] for p in TO_FIRST_LP)):
        to_lp = sum(r["phases"][p]["s"] for p in TO_FIRST_LP)
        peak = max(v["gb"] for k, v in r["phases"].items() if k != "OMLT build")
        lines.append(
            f"{r['spec']}, {r['box']} box: ONNX file to HiGHS's first LP ({' + '.join(TO_FIRST_LP)}) "
            f"{to_lp:.1f} s (goal: under 15 s; LP value {r['lp_value']}), peak memory {peak:.2f} GB "
            "(goal: under 4 GB).  "
        )
    capped = [f"{r['spec']} {r['box']}" for r in rows if r.get("lp_status") not in ("optimal", "skipped")]
    if capped:
        lines.append(
            f"First LP stopped at `--lp-limit {args.lp_limit:.0f}` s (HiGHS's LP unfinished): "
            + ", ".join(capped)
            + ".  "
        )
    worst = max(
        (r for r in rows if "solve(5)" in r["phases"]), key=lambda r: r["phases"]["solve(5)"]["s"], default=None
    )
    if worst is not None:
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in worst.get("solve_parts", {}).items())
        lines.append(
            f"Longest `solve(time_limit=5)`: {worst['phases']['solve(5)']['s']:.2f} s on {worst['spec']} "
            f"{worst['box']} (goal: within 7 s on every size); where it went: {parts}.  "
        )
    overshoot = []
    for call in LIMITED:
        timed = [(r["phases"][call]["s"], r) for r in rows if call in r["phases"]]
        if timed:
            seconds, r = max(timed, key=lambda t: t[0])
            overshoot.append(f"`{call}` {seconds - 5.0:+.2f} s ({r['spec']} {r['box']})")
    if overshoot:
        lines.append("Worst overshoot past `time_limit=5`, per call: " + ", ".join(overshoot) + ".  ")
    errors = {r["mc_error"] for r in rows if r.get("mc_error")}
    if errors:
        lines.append(
            "Pyomo's persistent HiGHS interface (Pyomo 6.10.1) could not read the `MatrixConstraint` model: "
            + "; ".join(sorted(errors))
            + " (`IndexedConstraint` walks call `values(sort)`, which `MatrixConstraint`'s `Mapping.values` refuses).  "
        )
    return lines


def ratio_lines(rows: list[dict]) -> list[str]:
    """Same-run ratios: Pyomo's hand-off and MatrixConstraint against ours, cold LP against ours."""
    lines = []
    for name, (theirs, ours) in {
        "Pyomo persistent / bulk hand-off": ("Pyomo hand-off", "bulk hand-off"),
        "MatrixConstraint rows / our build (components)": ("MatrixConstraint", "build"),
        "first LP big-M cold / ours (where ours finished; `>`: cold stopped at the limit)": (
            "first LP (big-M, cold)",
            "first LP",
        ),
    }.items():
        cells = []
        for r in rows:
            if theirs not in r["phases"] or ours not in r["phases"]:
                continue
            if ours == "first LP" and r.get("lp_status") != "optimal":
                continue
            capped = ours == "first LP" and (r.get("lp_cold") or ["optimal"])[0] != "optimal"
            q = r["phases"][theirs]["s"] / r["phases"][ours]["s"]
            cells.append(f"{r['spec']} {r['box']} {'>' if capped else ''}{q:.3g}x")
        if cells:
            lines.append(f"{name}, same run: " + ", ".join(cells) + ".  ")
    return lines


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
