"""The benchmark page: plots of the tables that ``benchmarks/*.py --write`` put in
``benchmarks/RESULTS.md``, then the results themselves (each section with its command).

Run during ``mkdocs build`` (``docs/gen_pages.py``); re-running a benchmark with
``--write`` updates both the results and the plots.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def sections(text: str) -> dict[str, str]:
    """``{title: body}`` of the ``## `` sections of RESULTS.md."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def tables(body: str) -> list[list[dict[str, str]]]:
    """Every Markdown table of a section, as rows of ``{column: cell}``."""
    found, current = [], []
    for line in body.splitlines() + [""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            header, rows = current[0], [r for r in current[2:]]
            found.append([dict(zip(header, row)) for row in rows])
            current = []
    return found


def number(cell: str) -> float | None:
    """The first number in a cell (``**30.05**``, ``300.29 (time_limit)``), else ``None``."""
    match = re.search(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", cell.replace("**", ""))
    return float(match.group()) if match else None


def build_time(body: str, ax: plt.Axes) -> None:
    rows = tables(body)[0]
    names = [r["network"].split(",")[0] for r in rows]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [number(r["pyomo_relu build (s)"]) for r in rows], 0.4, label="pyomo_relu")
    ax.bar([i + 0.2 for i in x], [number(r["OMLT build (s)"]) for r in rows], 0.4, label="OMLT 1.2.2")
    ax.set_xticks(list(x), names, rotation=15, fontsize=7)
    ax.set(yscale="log", ylabel="build s (log)", title="Build time")
    ax.legend()


def bounds(body: str, ax: plt.Axes) -> None:
    rows = tables(body)[0]
    for network in dict.fromkeys(r["network"] for r in rows):
        mine = [r for r in rows if r["network"] == network]
        ax.plot(
            [r["method"].split(",")[0] for r in mine],
            [number(r["mean width, hidden"]) for r in mine],
            marker="o",
            label=network,
        )
    ax.set(yscale="log", ylabel="mean width, hidden (log)", title="Bounds: tightness by method")
    ax.tick_params(axis="x", labelsize=7, rotation=15)
    ax.legend(fontsize=7)


def formulations(body: str, ax: plt.Axes) -> None:
    rows = [r for r in tables(body)[0] if r["status"] == "optimal"]
    for network in dict.fromkeys(r["network"] for r in rows):
        mine = [r for r in rows if r["network"] == network and r["sense"] == "min"]
        ax.plot(
            [r["formulation"] for r in mine],
            [number(r["total s"]) for r in mine],
            marker="o",
            linestyle="none",
            label=network,
        )
    ax.set(
        yscale="log",
        ylabel="total s to optimality (log)",
        title="Formulations: time to optimality (min; runs that proved it)",
    )
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    ax.legend(fontsize=6)


def pwl(body: str, ax: plt.Axes) -> None:
    rows = tables(body)[0]
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case]
        ax.plot([number(r["tolerance"]) for r in mine], [number(r["width"]) for r in mine], marker="o", label=case[:30])
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="tolerance",
        ylabel="certified interval width",
        title="PWL: width of the certified interval",
    )
    ax.legend(fontsize=7)


def vnncomp(body: str, ax: plt.Axes) -> None:
    rows = tables(body)[0]
    ax.bar(
        range(len(rows)),
        [max(number(r["seconds"]) or 0.0, 1e-3) for r in rows],
        color=["#c62828" if r["truth"] == "sat" else "#2e7d32" for r in rows],
    )
    ax.set(
        yscale="log",
        ylabel="verify s (log)",
        xlabel="instance (green unsat, red sat)",
        title="VNN-COMP instances: all verdicts correct"
        if all(r["truth"] == r["ours"] for r in rows)
        else "VNN-COMP instances",
    )


PLOTS: dict[str, Callable[[str, plt.Axes], None]] = {
    "Build time": build_time,
    "Bounds": bounds,
    "Formulations": formulations,
    "PWL": pwl,
    "VNN-COMP": vnncomp,
}


def page(out: Path) -> str:
    """Plot into ``out/img`` and return the benchmark page's Markdown."""
    text = RESULTS.read_text()
    found = sections(text)
    (out / "img").mkdir(parents=True, exist_ok=True)
    lines = [
        "# Benchmarks",
        "",
        "The plots are drawn at every build (`docs/gen_benchmarks.py`, matplotlib) from the tables that "
        "the scripts in `benchmarks/` write into `benchmarks/RESULTS.md` (`--write`); the results follow, "
        "each with the command that made it.  The machine is shared and noisy: compare ratios measured "
        "in the same run.",
        "",
    ]
    for title, draw in PLOTS.items():
        if title not in found:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.4))
        draw(found[title], ax)
        fig.tight_layout()
        name = "bench_" + re.sub(r"\W+", "_", title.lower()) + ".png"
        fig.savefig(out / "img" / name, dpi=110)
        plt.close(fig)
        lines += [f"![{title}](img/{name})", ""]
    body = text.split("\n", 1)[1]
    lines += [re.sub(r"^## ", "## ", body, flags=re.M)]
    return "\n".join(lines)
