"""The formulation gallery: the maths of each formulation, and its model size and root LP
bound measured on one network (reluMIP's peaks 2-10-10-10-1 over [-3, 3]², minimised).

Run during ``mkdocs build`` (``docs/gen_pages.py``); the measurements use the functions of
``benchmarks/formulations.py`` and ``benchmarks/pwl.py``, so the gallery and the benchmark
measure the same thing.  Nothing here is typed in: every number comes from a build.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pyomo.environ as pe

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from formulations import counts, our_model, root_bound  # noqa: E402  (benchmarks/formulations.py)
from pwl import cases as pwl_cases  # noqa: E402  (benchmarks/pwl.py)
from pwl import model as pwl_model

from pyomo_relu import load_onnx, solve, tighten  # noqa: E402
from pyomo_relu.formulations.ideal_cuts import add_ideal_cuts  # noqa: E402

NETWORK = "tests/data/relumip/peaks_3x10.onnx"
BOUNDS = ["interval", "crown", "lp"]

#: (label, formulation spec, the maths per unstable neuron, with bounds l < 0 < u of pre = w·x + b)
GALLERY: list[tuple[str, Any, str]] = [
    (
        "bigm",
        "bigm",
        r"\[ y \ge 0,\quad y \ge w^\top x + b,\quad y \le u\,\sigma,\quad y \le w^\top x + b - l\,(1-\sigma),"
        r"\quad \sigma \in \{0,1\} \]",
    ),
    (
        "partition n=2",
        ("partition", {"n": 2}),
        r"Tsay et al. (2021): the inputs split into groups \(S_1..S_N\), each partial sum "
        r"\(w_{S_n}^\top x_{S_n}\) split into an active part \(z_n\) and the rest, hull of the two disjuncts: "
        r"\[ y = \sum_n z_n + b\sigma,\quad \sum_n (w_{S_n}^\top x_{S_n} - z_n) + (1-\sigma) b \le 0,\quad y \ge 0, \]"
        r"\[ \sigma LB_n \le z_n \le \sigma UB_n,\quad (1-\sigma) LB_n \le w_{S_n}^\top x_{S_n} - z_n \le (1-\sigma) UB_n \]"
        r"with \(LB_n, UB_n\) the interval bounds of the group's partial sum",
    ),
    ("partition n=4", ("partition", {"n": 4}), r"the same with \(N = 4\) groups: tighter, larger"),
    (
        "extended",
        "extended",
        r"Anderson et al. (2020), the convex hull of \(\{(x, y): y = \max(0, w^\top x + b)\}\) over the box: copies "
        r"\(x = x^0 + x^1\), \(\ell \sigma \le x^1 \le u\sigma\) per input, \(y = w^\top x^1 + b\sigma \ge 0\), "
        r"\(w^\top x^0 + b(1-\sigma) \le 0\)",
    ),
    (
        "ideal_cuts",
        "ideal_cuts",
        r"big-M plus Anderson et al.'s exponential family, separated by `add_ideal_cuts` (root bound after the cuts): "
        r"\[ y \le \sum_{i\in I} w_i\big(x_i - \breve L_i(1-\sigma)\big) + \Big(b + \sum_{i\notin I} w_i \breve U_i\Big)\sigma \]",
    ),
    (
        "gdp.hull",
        "gdp.hull",
        r"one disjunction \([y = 0,\ w^\top x + b \le 0] \vee [y = w^\top x + b \ge 0]\), Pyomo's `gdp.hull` "
        r"(disaggregated copies, two indicator binaries tied by an exactly-one row)",
    ),
    (
        "relaxation",
        "relaxation",
        r"the triangle \(y \ge 0,\ y \ge w^\top x + b,\ y \le u (w^\top x + b - l)/(u - l)\): an LP",
    ),
]


def measure(net: Any, bounds: Any) -> list[dict[str, Any]]:
    """Size and root LP bound of each gallery formulation (minimising the output)."""
    rows = []
    for label, spec, maths in GALLERY:
        m = our_model(net, spec, bounds, pe.minimize)
        if spec == "ideal_cuts":
            add_ideal_cuts(m)
        variables, binaries, constraints = counts(m)
        status, root = root_bound(m)
        rows.append(
            {
                "label": label,
                "spec": spec,
                "maths": maths,
                "vars": variables,
                "binaries": binaries,
                "constraints": constraints,
                "root": root,
                "root_status": status,
            }
        )
    return rows


def pwl_rows(tolerances: tuple[float, ...] = (0.1, 0.03, 0.01)) -> list[dict[str, Any]]:
    """Sizes and root bounds of ``pwl`` on the seeded tanh 2-8-8-1 network of benchmarks/pwl.py."""
    case = pwl_cases(quick=True)[0]
    rows = []
    for tolerance in tolerances:
        m, _ = pwl_model(case, ("pwl", {"tolerance": tolerance}))
        variables, binaries, constraints = counts(m)
        rows.append(
            {
                "tolerance": tolerance,
                "vars": variables,
                "binaries": binaries,
                "constraints": constraints,
                "root": root_bound(m)[1],
                "error": float(m.nn.approximation_error()[0]),
            }
        )
    return rows


def plot(rows: list[dict[str, Any]], optimum: float, path: Path) -> None:
    """Bar chart of the root LP bounds against the optimum."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh([r["label"] for r in rows], [r["root"] for r in rows], color="#5c6bc0")
    ax.axvline(optimum, color="black", linestyle="--", label=f"optimum {optimum:.4f}")
    ax.set_xlabel("root LP bound (min; closer to the optimum is tighter)")
    ax.invert_yaxis()
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def page(out: Path) -> str:
    """Measure, plot into ``out/img``, and return the gallery page's Markdown."""
    net = load_onnx(ROOT / NETWORK, input_bounds=[(-3, 3), (-3, 3)])
    bounds = tighten(net, BOUNDS)
    rows = measure(net, bounds)
    best = our_model(net, "bigm", bounds, pe.minimize)
    result = solve(best, "highs")
    optimum = float(net.evaluate([best.x[0].value, best.x[1].value])[0])
    (out / "img").mkdir(parents=True, exist_ok=True)
    plot(rows, optimum, out / "img" / "gallery_root_bounds.png")
    lines = [
        "# Formulation gallery",
        "",
        f"Every formulation on one network: reluMIP's peaks 2-10-10-10-1 (`{NETWORK}`), box [-3, 3]², "
        f"bounds `tighten(net, {BOUNDS})` shared by all, minimising the output.  Size: unfixed variables / "
        "binaries / active constraints of the whole model; root LP bound: the LP relaxation "
        "(`core.relax_integer_vars`) solved by HiGHS.  Generated by `docs/gen_gallery.py` at every build "
        f"(the functions of `benchmarks/formulations.py`).  The optimum (`bigm`, HiGHS, {result.status}, checked "
        f"by the forward pass) is {optimum:.6f}.",
        "",
        "![root bounds](img/gallery_root_bounds.png)",
        "",
        "| formulation | vars / binaries / constraints | root LP bound | gap to optimum |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| `{r['label']}` | {r['vars']} / {r['binaries']} / {r['constraints']} | {r['root']:.4f} | "
        f"{optimum - r['root']:.4f} |"
        for r in rows
    ]
    lines += [
        "",
        "## The formulations",
        "",
        r"For an unstable ReLU neuron \(y = \max(0, w^\top x + b)\) with pre-activation bounds \(l < 0 < u\) "
        "(stable neurons get no binary in any formulation):",
        "",
    ]
    for r in rows:
        lines += [f"### {r['label']}", "", f"`formulation={r['spec']!r}`", "", r["maths"], ""]
    lines += pwl_section(pwl_rows())
    lines += [
        "## Reproduce",
        "",
        "```python",
        "import pyomo.environ as pe",
        "from pyomo_relu import ReLUNetBlock, load_onnx, solve, tighten",
        "",
        f"net = load_onnx({NETWORK!r}, input_bounds=[(-3, 3), (-3, 3)])",
        f"bounds = tighten(net, {BOUNDS})",
        "m = pe.ConcreteModel()",
        "m.x = pe.Var(range(2), bounds=(-3, 3))",
        "m.y = pe.Var()",
        "m.nn = ReLUNetBlock()",
        "m.nn.build(net, inputs=m.x, outputs=[m.y], formulation=('partition', {'n': 2}), bounds=bounds)",
        "m.obj = pe.Objective(expr=m.y)",
        "relaxed = m.clone()",
        "pe.TransformationFactory('core.relax_integer_vars').apply_to(relaxed)",
        f"assert abs(solve(relaxed, 'highs').objective - ({rows[1]['root']!r})) < 1e-6",
        "```",
        "",
    ]
    return "\n".join(lines)


def pwl_section(rows: list[dict[str, Any]]) -> list[str]:
    """The smooth-activation formulation, measured on a tanh network."""
    lines = [
        "### pwl (smooth activations)",
        "",
        "`formulation=('pwl', {'tolerance': t})`: each tanh/sigmoid/softplus neuron \\(y = f(z)\\), "
        "\\(z \\in [l, u]\\), is enclosed between two continuous piecewise-linear functions "
        "\\(g_L(z) \\le y \\le g_U(z)\\), \\(g_U - g_L \\le t\\), breakpoints from the convexity of \\(f\\) "
        "(incremental formulation, \\(K-1\\) binaries for \\(K\\) pieces).  A relaxation: its optimum "
        "bounds the true one (see [Solving](solving.md)).  On the seeded tanh 2-8-8-1 network of "
        "`benchmarks/pwl.py` (minimised, bounds interval + CROWN):",
        "",
        "| tolerance | vars / binaries / constraints | root LP bound | `approximation_error()` |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['tolerance']} | {r['vars']} / {r['binaries']} / {r['constraints']} | {r['root']:.4f} | "
        f"{r['error']:.3g} |"
        for r in rows
    ]
    return lines + [""]
