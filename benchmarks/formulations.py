"""Formulations compared: model size, root LP bound and time to optimality, pyomo_relu vs OMLT.

Usage::

    python benchmarks/formulations.py                          # all networks, T = 60 s per MILP solve
    python benchmarks/formulations.py --quick                  # reluMIP's peaks_3x10 only, T = 20 s
    python benchmarks/formulations.py --networks peaks_2x50.onnx --time-limit 30
    python benchmarks/formulations.py --time-limit 60 --write  # also update "## Formulations" in RESULTS.md

For each network, neuron bounds are computed once, ``tighten(net, ["interval", "crown",
"lp"])`` (timed once: "tighten"), and that one ``Bounds`` object is given to every
pyomo_relu formulation.  Then, for each formulation and each sense (min / max of the
single output over the input box), on a fresh ``ConcreteModel``:

* build (timed): ``ReLUNetBlock().build(net, inputs=m.x, outputs=[m.y], formulation=F,
  bounds=B)`` for ``bigm``, ``partition`` n=2 and n=4, ``extended``, ``ideal_cuts``,
  ``gdp.hull`` and ``relaxation``; OMLT 1.2.2: an OMLT ``NetworkDefinition`` from the same
  weights + ``OmltBlock`` + ``ReluBigMFormulation`` or ``ReluPartitionFormulation`` with
  ``split_func=partial(default_partition_split_func, n=2)`` (OMLT computes its own interval
  bounds inside: counted in build);
* model size: unfixed variables, unfixed binaries, active constraints of the whole model;
* root LP bound: ``core.relax_integer_vars`` on a clone, solved by ``solve(clone, "highs")``
  (not timed into the totals);
* ``ideal_cuts`` only: ``add_ideal_cuts(m)`` (timed: "cuts") before the MILP, with its
  defaults (at most 20 rounds); its root LP bound is the LP after the cuts;
* MILP (timed: "solve"): ``solve(m, "highs", mip_gap=1e-4, time_limit=T)``; not for
  ``relaxation``, which gives a root bound only.

Checks (exit status 1 if any fails, RESULTS.md then not written): every solution found is
re-evaluated with ``net.evaluate(x)`` and must equal the objective within 1e-5; all
formulations that prove optimality agree on the optimum (within twice the MIP gap); no
proven bound (root LP or MILP) of any formulation cuts off an incumbent of another; for
reluMIP's peaks network the optima match the known -7.214193 / 8.580816.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pyomo.environ as pe
from common import DATA, RESULTS, omlt_network, write_section

from pyomo_relu import Bounds, NetworkDefinition, ReLUNetBlock, load_onnx, solve, tighten
from pyomo_relu.formulations.ideal_cuts import CutReport, add_ideal_cuts

HERE = Path(__file__).resolve().parent
SECTION = "## Formulations"
CHAIN = ["interval", "crown", "lp"]
MIP_GAP = 1e-4
CHECK_TOL = 1e-5
BOUND_TOL = 1e-5  # relative slack for "a proven bound does not cut off an incumbent"


@dataclass(frozen=True)
class Case:
    """A network file, its input box and (if known) its true optima."""

    name: str
    path: Path
    box: list[tuple[float, float]]
    known: dict[str, float] = field(default_factory=dict)


NETWORKS = [
    Case(
        "reluMIP peaks 2-10-10-10-1",
        DATA / "relumip" / "peaks_3x10.onnx",
        [(-3.0, 3.0)] * 2,
        {"min": -7.214193, "max": 8.580816},
    ),
    Case("peaks 2-50-50-1", HERE / "data" / "peaks_2x50.onnx", [(-3.0, 3.0)] * 2),
    Case("rosenbrock-2D 2-50-50-1", HERE / "data" / "rosenbrock2_2x50.onnx", [(-2.0, 2.0)] * 2),
    Case("rosenbrock-8D 8-64-64-64-1", HERE / "data" / "rosenbrock_8x64x3.onnx", [(-2.0, 2.0)] * 8),
]


@dataclass(frozen=True)
class Formulation:
    """One column of the comparison: ``kind`` is ``"ours"``, ``"cuts"``, ``"lp"`` or ``"omlt"``."""

    label: str
    spec: Any
    kind: str = "ours"


FORMULATIONS = [
    Formulation("bigm", "bigm"),
    Formulation("partition n=2", ("partition", {"n": 2})),
    Formulation("partition n=4", ("partition", {"n": 4})),
    Formulation("extended", "extended"),
    Formulation("ideal_cuts", "ideal_cuts", "cuts"),
    Formulation("gdp.hull", "gdp.hull"),
    Formulation("relaxation (LP only)", "relaxation", "lp"),
    Formulation("OMLT bigm", "bigm", "omlt"),
    Formulation("OMLT partition N=2", "partition", "omlt"),
]
STRONG = ["partition n=2", "partition n=4", "extended", "ideal_cuts"]
SENSES = {"min": pe.minimize, "max": pe.maximize}
LOADS: list[float] = []  # 1-minute load average after each solve


@dataclass
class Row:
    """The measurements of one formulation on one network in one sense."""

    network: str
    formulation: str
    sense: str
    size: tuple[int, int, int]
    build: float
    root: float | None
    cuts: float = 0.0
    solve: float | None = None
    status: str = "lp"
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    error: float | None = None
    x: list[float] | None = None
    report: CutReport | None = None
    root_status: str = "optimal"

    @property
    def total(self) -> float:
        return self.build + self.cuts + (self.solve or 0.0)

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"


# ------------------------------------------------------------------ models
def our_model(net: NetworkDefinition, spec: Any, bounds: Bounds | str, sense: Any) -> pe.ConcreteModel:
    """User variables ``x`` (the box) and ``y``, a ReLUNetBlock with ``spec``, objective ``y``."""
    m = pe.ConcreteModel()
    lower, upper = net.input_lower, net.input_upper
    m.x = pe.Var(range(net.n_inputs), bounds=lambda _, i: (float(lower[i]), float(upper[i])))
    m.y = pe.Var()
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=[m.y], formulation=spec, bounds=bounds)
    m.obj = pe.Objective(expr=m.y, sense=sense)
    return m


def omlt_model(net: NetworkDefinition, spec: str, sense: Any) -> pe.ConcreteModel:
    """OmltBlock with ReluBigMFormulation or ReluPartitionFormulation (N=2 equal-size splits)."""
    from omlt import OmltBlock
    from omlt.neuralnet import ReluBigMFormulation, ReluPartitionFormulation
    from omlt.neuralnet.layers.partition_based import default_partition_split_func

    if spec == "bigm":
        formulation = ReluBigMFormulation(omlt_network(net))
    else:
        formulation = ReluPartitionFormulation(omlt_network(net), split_func=partial(default_partition_split_func, n=2))
    m = pe.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(formulation)
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=sense)
    return m


def input_vars(model: pe.ConcreteModel) -> list[Any]:
    return list(model.x.values()) if hasattr(model, "x") else list(model.nn.inputs.values())


def counts(model: pe.ConcreteModel) -> tuple[int, int, int]:
    """Unfixed variables, unfixed binaries, active constraints of the whole model."""
    variables = [v for v in model.component_data_objects(pe.Var, descend_into=True) if not v.fixed]
    constraints = sum(1 for _ in model.component_data_objects(pe.Constraint, active=True, descend_into=True))
    return len(variables), sum(1 for v in variables if v.is_binary()), constraints


def timed(make: Callable[[], pe.ConcreteModel]) -> tuple[float, pe.ConcreteModel]:
    gc.collect()
    start = time.perf_counter()
    model = make()
    return time.perf_counter() - start, model


def root_bound(model: pe.ConcreteModel) -> tuple[str, float | None]:
    """Status and optimum of the LP relaxation of a clone (the model itself is untouched)."""
    relaxed = model.clone()
    pe.TransformationFactory("core.relax_integer_vars").apply_to(relaxed)
    result = solve(relaxed, "highs")
    return result.status, result.objective if result.status == "optimal" else None


def forward_error(net: NetworkDefinition, x: list[float] | None, objective: float | None) -> float | None:
    if x is None or objective is None or None in x:
        return None
    return abs(float(net.evaluate(np.array(x, dtype=float))[0]) - objective)


# ------------------------------------------------------------------ one run
def run(net: NetworkDefinition, bounds: Bounds, form: Formulation, sense: str, time_limit: float, network: str) -> Row:
    """Build, count, root LP, (cuts), MILP and check one formulation in one sense."""
    if form.kind == "omlt":
        build, m = timed(lambda: omlt_model(net, form.spec, SENSES[sense]))
    else:
        build, m = timed(lambda: our_model(net, form.spec, bounds, SENSES[sense]))
    row = Row(network, form.label, sense, counts(m), build, None)
    if form.kind == "cuts":
        start = time.perf_counter()
        row.report = add_ideal_cuts(m)
        row.cuts = time.perf_counter() - start
    row.root_status, row.root = root_bound(m)
    if form.kind == "lp":
        return row
    if form.kind == "omlt":
        # OMLT sets its continuous variables to 0 and leaves its binaries without a value; solve()
        # would pass that partial point as a MIP start, and HiGHS first spends up to the whole
        # time limit trying to complete it, then solves the MILP: twice the limit in all.
        for var in m.component_data_objects(pe.Var, descend_into=True):
            if not var.fixed:
                var.set_value(None, skip_validation=True)
    gc.collect()
    start = time.perf_counter()
    result = solve(m, "highs", mip_gap=MIP_GAP, time_limit=time_limit)
    row.solve = time.perf_counter() - start
    row.status, row.objective, row.bound, row.gap = result.status, result.objective, result.bound, result.gap
    if result.has_solution:
        row.x = [v.value for v in input_vars(m)]
    row.error = forward_error(net, row.x, row.objective)
    return row


def run_network(case: Case, forms: list[Formulation], time_limit: float) -> tuple[list[Row], float]:
    """All formulations in both senses on one network; returns the rows and the tighten time."""
    net = load_onnx(case.path, input_bounds=case.box)
    start = time.perf_counter()
    bounds = tighten(net, CHAIN, progress=False)
    seconds = time.perf_counter() - start
    for form in forms:  # warm-up (imports, caches; not timed)
        if form.kind == "omlt":
            omlt_model(net, form.spec, pe.minimize)
        else:
            our_model(net, form.spec, bounds, pe.minimize)
    rows = []
    for form in forms:
        for sense in SENSES:
            rows.append(run(net, bounds, form, sense, time_limit, case.name))
            LOADS.append(load_average())
            log(rows[-1])
    return rows, seconds


def interval_root(case: Case) -> dict[tuple[str, str], float | None]:
    """Root LP bounds of pyomo_relu bigm and partition n=2 with interval bounds only (as OMLT's)."""
    net = load_onnx(case.path, input_bounds=case.box)
    forms = [form for form in FORMULATIONS if form.label in ("bigm", "partition n=2")]
    return {
        (form.label, sense): root_bound(our_model(net, form.spec, "interval", SENSES[sense]))[1]
        for form in forms
        for sense in SENSES
    }


def log(row: Row) -> None:
    print(
        f"{row.network} | {row.formulation} | {row.sense}: build {row.build:.2f} s, root {fmt(row.root, '.6f')}, "
        f"cuts {row.cuts:.2f} s, solve {fmt(row.solve, '.2f')} s, {row.status}, obj {fmt(row.objective, '.6f')}, "
        f"gap {fmt(row.gap, '.1e')}, err {fmt(row.error, '.1e')}",
        file=sys.stderr,
        flush=True,
    )


# ------------------------------------------------------------------ checks
def check(rows: list[Row], cases: list[Case]) -> list[str]:
    """Every failed check, as a message (empty when all pass)."""
    problems = []
    for r in rows:
        if r.error is not None and r.error > CHECK_TOL:
            problems.append(
                f"{r.network} {r.sense} {r.formulation}: |evaluate(x) - objective| = {r.error:.3e} at x = {r.x}"
            )
        if r.root_status != "optimal":
            problems.append(f"{r.network} {r.sense} {r.formulation}: root LP ended {r.root_status}")
    known = {c.name: c.known for c in cases}
    for network, sense in groups(rows):
        group = [r for r in rows if (r.network, r.sense) == (network, sense)]
        problems += agreement(group, network, sense, known[network].get(sense))
    return problems


def agreement(group: list[Row], network: str, sense: str, known: float | None) -> list[str]:
    """Optimal objectives agree (and match ``known``); no bound cuts off an incumbent."""
    problems = []
    sign = 1.0 if sense == "min" else -1.0
    optimal = [r for r in group if r.optimal and r.objective is not None]
    for a, b in combinations(optimal, 2):
        if abs(a.objective - b.objective) > 2 * MIP_GAP * max(1.0, abs(a.objective)) + 1e-6:
            problems.append(
                f"{network} {sense}: {a.formulation} optimum {a.objective:.6f} != "
                f"{b.formulation} optimum {b.objective:.6f}"
            )
    for a in optimal:
        if known is not None and abs(a.objective - known) > MIP_GAP * max(1.0, abs(known)) + 1e-5:
            problems.append(f"{network} {sense}: {a.formulation} optimum {a.objective:.6f} != known {known}")
    incumbents = [r.objective for r in group if r.objective is not None]
    if incumbents:
        best = sign * min(sign * v for v in incumbents)
        for r in group:
            for name, value in (("root LP bound", r.root), ("MILP bound", r.bound)):
                if value is not None and sign * (value - best) > BOUND_TOL * max(1.0, abs(best)):
                    problems.append(
                        f"{network} {sense}: {r.formulation} {name} {value:.6f} cuts off the incumbent {best:.6f}"
                    )
    return problems


def theory_notes(rows: list[Row]) -> list[str]:
    """Root bounds that contradict what the formulations guarantee (warnings, not failures)."""
    notes = []
    stronger = [
        ("bigm", "partition n=2"),
        ("partition n=2", "partition n=4"),
        ("partition n=4", "extended"),
        ("bigm", "ideal_cuts"),
        ("bigm", "gdp.hull"),
    ]
    for network, sense in groups(rows):
        root = {r.formulation: r.root for r in rows if (r.network, r.sense) == (network, sense)}
        sign = 1.0 if sense == "min" else -1.0
        for weak, strong in stronger:
            a, b = root.get(weak), root.get(strong)
            if a is not None and b is not None and sign * (b - a) < -1e-6 * max(1.0, abs(a)):
                notes.append(f"{network} {sense}: root LP of {strong} ({b:.6f}) is weaker than {weak} ({a:.6f})")
        cuts = [r for r in rows if (r.network, r.sense) == (network, sense) and r.report is not None]
        for r in cuts:
            after = r.report.lp_bound_after
            if r.root is not None and abs(r.root - after) > 1e-6 * max(1.0, abs(after)):
                notes.append(
                    f"{network} {sense}: LP of the cut model ({r.root:.6f}) differs from add_ideal_cuts' "
                    f"last bound ({after:.6f})"
                )
        a, b = root.get("bigm"), root.get("relaxation (LP only)")
        if a is not None and b is not None and abs(a - b) > 1e-6 * max(1.0, abs(a)):
            notes.append(f"{network} {sense}: relaxation ({b:.6f}) differs from big-M's LP relaxation ({a:.6f})")
    return notes


def groups(rows: list[Row]) -> list[tuple[str, str]]:
    """(network, sense) pairs in run order, min before max."""
    keys: list[tuple[str, str]] = []
    for r in rows:
        for sense in SENSES:
            if (r.network, sense) not in keys and any(q.network == r.network and q.sense == sense for q in rows):
                keys.append((r.network, sense))
    return keys


# ------------------------------------------------------------------ tables
def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def main_table(rows: list[Row]) -> str:
    lines = [
        "| network | sense | formulation | vars / binaries / constraints | build s | root LP bound | "
        "cuts s | solve s | total s | status | objective | gap |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    keys = groups(rows)
    for r in sorted(rows, key=lambda r: keys.index((r.network, r.sense))):  # stable: formulations stay in order
        lines.append(
            f"| {r.network} | {r.sense} | {r.formulation} | {' / '.join(map(str, r.size))} | {r.build:.3f} | "
            f"{fmt(r.root, '.4f')} | {f'{r.cuts:.2f}' if r.report else '–'} | {fmt(r.solve, '.2f')} | "
            f"{f'**{r.total:.2f}**' if r.solve is not None else '–'} | {r.status} | {fmt(r.objective, '.6f')} | "
            f"{fmt(r.gap, '.1e')} |"
        )
    return "\n".join(lines)


def cuts_table(rows: list[Row]) -> str:
    lines = [
        "| network | sense | rounds | cuts per round | LP bound before | LP bound after | cut loop s | stopped |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.report is not None:
            rep = r.report
            lines.append(
                f"| {r.network} | {r.sense} | {rep.rounds} | {' '.join(map(str, rep.cuts_per_round)) or '–'} | "
                f"{rep.lp_bound_before:.4f} | {rep.lp_bound_after:.4f} | {rep.seconds:.2f} | {rep.stopped} |"
            )
    return "\n".join(lines)


def ratio(ours: Row, omlt: Row, ours_total: float) -> str:
    """OMLT total / ours, with the time limit made explicit."""
    value = omlt.total / ours_total
    if ours.optimal and omlt.optimal:
        return f"{value:.1f}x"
    if ours.optimal:
        return f"≥ {value:.1f}x (OMLT: time limit, gap {fmt(omlt.gap, '.1e')})"
    if omlt.optimal:
        return f"≤ {value:.1f}x (ours: time limit, gap {fmt(ours.gap, '.1e')})"
    return f"n/a (both at the time limit; gap ours {fmt(ours.gap, '.1e')}, OMLT {fmt(omlt.gap, '.1e')})"


def omlt_table(
    rows: list[Row], tightened: dict[str, float], interval: dict[str, dict[tuple[str, str], float | None]]
) -> str:
    lines = [
        "| network | sense | bigm: ours s | OMLT s | OMLT / ours | partition N=2: ours s | OMLT s | OMLT / ours | "
        "root LP bigm: ours / ours, interval / OMLT | root LP partition N=2: ours / ours, interval / OMLT |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    pairs = (("bigm", "OMLT bigm"), ("partition n=2", "OMLT partition N=2"))
    for network, sense in groups(rows):
        get = {r.formulation: r for r in rows if (r.network, r.sense) == (network, sense)}
        cells, roots = [], []
        for ours_label, omlt_label in pairs:
            ours, omlt = get.get(ours_label), get.get(omlt_label)
            if ours is None or omlt is None:
                cells += ["–", "–", "–"]
                roots.append("–")
                continue
            total = tightened[network] + ours.total
            cells += [f"{total:.2f}", f"{omlt.total:.2f}", ratio(ours, omlt, total)]
            values = [ours.root, interval.get(network, {}).get((ours_label, sense)), omlt.root]
            roots.append(" / ".join(fmt(v, ".3f") for v in values))
        lines.append(f"| {network} | {sense} | {' | '.join(cells)} | {' | '.join(roots)} |")
    return "\n".join(lines)


def gap_table(rows: list[Row], hard: list[str]) -> str:
    """Per case: % of big-M's root gap closed, and total s (optimal) or final gap (time limit)."""
    lines = [
        "| network | sense | best objective | " + " | ".join(["bigm"] + STRONG) + " |",
        "|---|---|---:|" + "---:|" * (len(STRONG) + 1),
    ]
    for key in groups(rows):
        if key[0] not in hard:
            continue
        get = {r.formulation: r for r in rows if (r.network, r.sense) == key}
        best = best_objective(list(get.values()), key[1])
        cells = []
        for label in ["bigm"] + STRONG:
            r = get.get(label)
            if r is None:
                cells.append("–")
                continue
            outcome = f"{r.total:.1f} s" if r.optimal else f"gap {fmt(r.gap, '.1e')}"
            if label == "bigm":
                cells.append(outcome)
                continue
            fraction = closed(r, get["bigm"], best) if "bigm" in get else None
            cells.append(f"{fmt(None if fraction is None else 100 * fraction, '.0f')}% / {outcome}")
        lines.append(f"| {key[0]} | {key[1]} | {fmt(best, '.6f')} | {' | '.join(cells)} |")
    return "\n".join(lines)


def best_objective(group: list[Row], sense: str) -> float | None:
    incumbents = [r.objective for r in group if r.objective is not None]
    if not incumbents:
        return None
    return min(incumbents) if sense == "min" else max(incumbents)


# ------------------------------------------------------------------ findings
def closed(r: Row, base: Row, best: float | None) -> float | None:
    """Fraction of big-M's root gap (to the best incumbent) that ``r``'s root bound closes."""
    if r.root is None or base.root is None or best is None or abs(best - base.root) < 1e-9:
        return None
    return (r.root - base.root) / (best - base.root)


def better(r: Row, base: Row) -> bool:
    """Faster to optimality, or optimal where big-M is not, or a smaller final gap when neither is."""
    if r.optimal and base.optimal:
        return r.total < base.total
    if r.optimal != base.optimal:
        return r.optimal
    return r.gap is not None and (base.gap is None or r.gap < base.gap)


def findings(rows: list[Row], hard: list[str], notes: list[str]) -> str:
    """The answer, computed from the rows: do the strong formulations beat big-M on the harder networks?"""
    keys = [k for k in groups(rows) if k[0] in hard]
    if not keys:
        return "No harder network in this run (only reluMIP's peaks network), so no verdict on them."
    root_parts, time_parts, wins_all, pairs_all = [], [], 0, 0
    for label in STRONG:
        fractions, wins, pairs = [], 0, 0
        for key in keys:
            get = {r.formulation: r for r in rows if (r.network, r.sense) == key}
            if label not in get or "bigm" not in get:
                continue
            fraction = closed(get[label], get["bigm"], best_objective(list(get.values()), key[1]))
            if fraction is not None:
                fractions.append(fraction)
            wins += better(get[label], get["bigm"])
            pairs += 1
        if pairs:
            spread = f"{100 * np.mean(fractions):.0f}% (at most {100 * max(fractions):.0f}%)" if fractions else "n/a"
            root_parts.append(f"{label} {spread}")
            time_parts.append(f"{label} in {wins} of {pairs}")
            wins_all, pairs_all = wins_all + wins, pairs_all + pairs
    solved = {
        label: sum(1 for r in rows if r.formulation == label and r.network in hard and r.optimal)
        for label in ["bigm"] + STRONG
    }
    share = wins_all / pairs_all if pairs_all else 0.0
    verdict = "mostly turned" if share > 0.6 else ("mostly did not turn" if share < 0.34 else "only sometimes turned")
    weaker = sum(1 for note in notes if "is weaker than" in note and any(note.startswith(h) for h in hard))
    order = (
        "never weaker than big-M with the same bounds (as the theory says)"
        if not weaker
        else f"weaker than the theory allows in {weaker} comparison(s) (see the warnings below)"
    )
    return (
        f"**Do partition and ideal cuts beat big-M on the harder networks** ({', '.join(hard)}; {len(keys)} "
        f"network × sense cases)? *Root bound:* {order}, "
        "but the share of big-M's root gap they close is modest: on average " + ", ".join(root_parts) + ". "
        "*Time:* a formulation counts as beating big-M when it proves optimality faster, proves it where big-M "
        "does not, or (both at the time limit) ends with a smaller gap; that happened for "
        + ", ".join(time_parts)
        + ". Cases proved optimal within the limit: "
        + ", ".join(f"{k} {v}" for k, v in solved.items())
        + f". So the tighter root relaxations {verdict} into faster solves here. Caveats: one run per cell "
        "on a shared 2-CPU machine; when both stop at the time limit the final gap also depends on which "
        "incumbent HiGHS happened to find; bigger models (partition n=4, extended) pay in LP time per node."
    )


# ------------------------------------------------------------------ main
def machine() -> str:
    import highspy
    import omlt
    import pyomo.version

    h = highspy.Highs()
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    during = f"; 1-minute load between {min(LOADS):.1f} and {max(LOADS):.1f} during the run" if LOADS else ""
    return (
        f"Machine: Python {platform.python_version()}, Pyomo {pyomo.version.version}, HiGHS "
        f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}, OMLT {omlt.__version__}, {os.cpu_count()} CPUs, "
        f"load average ({load}) at the end of the run{during} (other jobs share the machine; HiGHS ran "
        "its MILPs on one thread)."
    )


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def section(
    command: str,
    time_limit: float,
    rows: list[Row],
    tightened: dict[str, float],
    interval: dict[str, dict[tuple[str, str], float | None]],
    hard: list[str],
    notes: list[str],
) -> str:
    errors = [r.error for r in rows if r.error is not None]
    tighten_note = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in tightened.items())
    return "\n".join(
        [
            f"Command: `{command}`",
            "",
            "Minimise and maximise the single output of each network over its input box. For each network, one "
            f"`Bounds` object, `tighten(net, {CHAIN})` (computed once: {tighten_note}), is used by every pyomo_relu "
            "formulation: `ReLUNetBlock().build(net, inputs=m.x, outputs=[m.y], formulation=F, bounds=B)` on a fresh "
            "model per formulation and sense. OMLT 1.2.2: `ReluBigMFormulation` and `ReluPartitionFormulation` "
            "(`split_func=partial(default_partition_split_func, n=2)`, equal-size splits of the sorted weights) on an "
            "OMLT `NetworkDefinition` from the same weights, with OMLT's own interval bounds (computed in its build). "
            "Size: unfixed variables / unfixed binaries / active constraints of the whole model (`gdp.hull` has two "
            "indicator binaries per neuron, tied by an exactly-one row). Root LP bound: `core.relax_integer_vars` on a "
            "clone, solved by HiGHS (a lower bound when minimising, upper when maximising; for `ideal_cuts`, the LP "
            'after `add_ideal_cuts(m)`). Solve: `solve(m, "highs", mip_gap=1e-4, '
            f"time_limit={time_limit:g})`, wall clock; total = build + cut loop + solve (tighten excluded, listed above). "
            "pyomo_relu models carry the forward-pass warm start, which `solve` passes to HiGHS as a MIP start. OMLT "
            "sets its continuous variables to 0 and leaves its binaries without a value; `solve` would pass that partial "
            "point as a start, which HiGHS first tries to complete for up to the whole time limit (2x the limit in all), "
            "so OMLT's values are cleared before its solve and HiGHS gets no start. One run each. Every solution was re-evaluated "
            f"with `net.evaluate`: max |forward pass − objective| = {max(errors) if errors else float('nan'):.1e}; all "
            "formulations that proved optimality agree, no root or MILP bound cuts off any incumbent, and reluMIP's "
            "peaks optima match the known −7.214193 / 8.580816.",
            "",
            main_table(rows),
            "",
            "`ideal_cuts`: what `add_ideal_cuts(m)` did before the MILP (defaults: at most 20 rounds, stop when the LP "
            "bound moves by at most 1e-4 relative):",
            "",
            cuts_table(rows),
            "",
            "Stronger formulations vs big-M on the harder networks: % of big-M's root gap (root LP bound to the best "
            "objective found by any formulation) that the formulation's root LP closes / total s when it proved "
            "optimality, else its final gap at the time limit:",
            "",
            gap_table(rows, hard),
            "",
            findings(rows, hard, notes),
            "",
            "OMLT total / pyomo_relu total, measured in the same run (ours = tighten + build + solve, OMLT = build + "
            "solve; the two differ in bounds as well as in formulation: the last two columns give the root LP bound "
            "with our `interval+crown+lp` bounds, with our interval bounds only, and OMLT's; with interval bounds the "
            "partition roots differ slightly from OMLT's because our groups leave out inputs proven zero):",
            "",
            omlt_table(rows, tightened, interval),
            "",
            *([f"Warnings: {'; '.join(notes)}.", ""] if notes else []),
            machine(),
        ]
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--time-limit", type=float, default=None, help="seconds per MILP solve (default 60, 20 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="reluMIP's peaks_3x10 only, T = 20 s")
    parser.add_argument(
        "--networks", nargs="+", default=None, help="subset, by file name (peaks_2x50.onnx) or table name; default: all"
    )
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in {RESULTS.name}")
    return parser.parse_args(argv)


def command_line(args: argparse.Namespace) -> str:
    parts = ["python benchmarks/formulations.py"]
    if args.quick:
        parts.append("--quick")
    if args.networks:
        parts.append("--networks " + " ".join(args.networks))
    if args.time_limit is not None:
        parts.append(f"--time-limit {args.time_limit:g}")
    return " ".join(parts + ["--write"])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    time_limit = args.time_limit if args.time_limit is not None else (20.0 if args.quick else 60.0)
    cases = NETWORKS[:1] if args.quick else NETWORKS
    if args.networks:
        cases = [c for c in NETWORKS if c.path.name in args.networks or c.name in args.networks]
        if not cases:
            raise SystemExit(f"no network matches {args.networks}; choose from {[c.path.name for c in NETWORKS]}")
    logging.getLogger("pyomo").setLevel(logging.ERROR)
    rows: list[Row] = []
    tightened: dict[str, float] = {}
    interval: dict[str, dict[tuple[str, str], float | None]] = {}
    for case in cases:
        if not case.path.exists():
            raise SystemExit(f"{case.path} is missing: run python benchmarks/train_surrogates.py first")
        network_rows, tightened[case.name] = run_network(case, FORMULATIONS, time_limit)
        rows += network_rows
        interval[case.name] = interval_root(case)
    hard = [c.name for c in cases if not c.known]
    problems, notes = check(rows, cases), theory_notes(rows)
    text = section(command_line(args), time_limit, rows, tightened, interval, hard, notes)
    print(text)
    for note in notes:
        print(f"WARNING: {note}", file=sys.stderr)
    if problems:
        for problem in problems:
            print(f"CHECK FAILED: {problem}", file=sys.stderr)
        print(f"{len(problems)} check(s) failed; RESULTS.md not written", file=sys.stderr)
        return 1
    if args.write:
        write_section(SECTION, text)
        print(f"\nwrote {SECTION!r} to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
