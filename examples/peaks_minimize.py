"""Global minimum and maximum of reluMIP's peaks network, and a contour plot of it.

The network (Dense 2-10-10-10-1, ReLU) approximates MATLAB's ``peaks`` function.  Its
exact minimum over [-3, 3]^2 is -7.214193 at (0.28695, -1.60539) and its maximum
8.580816 at (-0.05420, 1.59224), found independently by enumerating its 556 linear
regions (tests/data/relumip/peaks_3x10_ground_truth.json).

Run:  python examples/peaks_minimize.py   (or: make demo)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pyomo.environ as pe

from pyomo_relu import ReLUNetBlock, load_onnx, solve

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent / "tests" / "data" / "relumip" / "peaks_3x10.onnx"
KNOWN = {"min": (-7.214193, (0.28695, -1.60539)), "max": (8.580816, (-0.05420, 1.59224))}


def optimise(
    sense: str, solver: str = "highs", bounds: str | list[str] = "interval"
) -> tuple[float, np.ndarray, float]:
    """Optimum of the network output, its argument, and the largest MILP-vs-numpy mismatch."""
    net = load_onnx(MODEL, input_bounds=[(-3, 3), (-3, 3)])
    model = pe.ConcreteModel()
    model.x = pe.Var(range(2), bounds=(-3, 3))
    model.y = pe.Var()
    model.surrogate = ReLUNetBlock()
    model.surrogate.build(net, inputs=model.x, outputs=[model.y], bounds=bounds)
    model.objective = pe.Objective(expr=model.y, sense=pe.minimize if sense == "min" else pe.maximize)
    result = solve(model, solver)
    if result.status != "optimal":
        raise RuntimeError(f"{solver} stopped with status {result.status}")
    x = np.array([model.x[i].value for i in range(2)])
    return float(result.objective), x, model.surrogate.get_error()


def plot(points: dict[str, np.ndarray], path: Path) -> None:
    """Contour plot of the network's response surface with the optima marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = load_onnx(MODEL)
    grid = np.linspace(-3, 3, 301)
    xx, yy = np.meshgrid(grid, grid)
    zz = net.evaluate(np.column_stack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    contour = ax.contourf(xx, yy, zz, levels=30, cmap="viridis")
    fig.colorbar(contour, ax=ax, label="network output")
    for label, (marker, colour) in {"min": ("*", "red"), "max": ("^", "white")}.items():
        ax.plot(
            *points[label],
            marker=marker,
            color=colour,
            markersize=14,
            markeredgecolor="black",
            linestyle="none",
            label=f"global {label} (MILP)",
        )
    ax.set(xlabel="x1", ylabel="x2", title="peaks_3x10 ReLU network: global optima")
    ax.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", default="highs", choices=["highs", "glpk", "cbc", "scip"])
    parser.add_argument("--plot", default=str(HERE / "output" / "peaks_contour.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    points = {}
    for sense in ("min", "max"):
        value, x, error = optimise(sense, args.solver)
        expected, at = KNOWN[sense]
        points[sense] = x
        print(
            f"{sense}: {value:.6f} at ({x[0]:.5f}, {x[1]:.5f})   "
            f"known {expected:.6f} at ({at[0]:.5f}, {at[1]:.5f})   |MILP - numpy| = {error:.1e}"
        )
        if abs(value - expected) > 1e-5:
            raise SystemExit(f"{sense} differs from the known optimum")
    plot(points, Path(args.plot))
    print(f"contour plot written to {args.plot}")


if __name__ == "__main__":
    main()
