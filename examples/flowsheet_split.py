"""A flowsheet-like MILP with two network surrogates, solved by ``strategy="split"``.

A "reactor" surrogate (the 2-50-50-1 peaks network of ``benchmarks/data``) maps a feed
``x`` in [-3, 3]^2 to a yield ``r``; a "separator" surrogate (the 2-50-50-1 Rosenbrock
network) maps its inlet ``s`` in [-2, 2]^2 to a cost ``c``.  Linear balances tie them:
``s0 = (x0 + x1) / 3`` and ``s1 = r / 4``; the product spec is ``r >= 2``; the objective is
``c + 0.2 x0``.  Run ``python examples/flowsheet_split.py`` to solve it both ways.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyomo.environ as pe

from pyomo_relu import ReLUNetBlock, load_onnx, solve

DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data"


def build_flowsheet(formulation: object = "bigm", bounds: object = "auto", spec: float = 2.0) -> pe.ConcreteModel:
    """The model: two ReLUNetBlocks, two balances, one spec, one linear objective."""
    reactor = load_onnx(DATA / "peaks_2x50.onnx", input_bounds=[(-3.0, 3.0)] * 2)
    separator = load_onnx(DATA / "rosenbrock2_2x50.onnx", input_bounds=[(-2.0, 2.0)] * 2)
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-3.0, 3.0))
    m.r = pe.Var()
    m.s = pe.Var(range(2), bounds=(-2.0, 2.0))
    m.c = pe.Var()
    m.reactor = ReLUNetBlock()
    m.reactor.build(reactor, inputs=m.x, outputs=[m.r], formulation=formulation, bounds=bounds)
    m.separator = ReLUNetBlock()
    m.separator.build(separator, inputs=m.s, outputs=[m.c], formulation=formulation, bounds=bounds)
    m.balance_feed = pe.Constraint(expr=3.0 * m.s[0] == m.x[0] + m.x[1])
    m.balance_yield = pe.Constraint(expr=4.0 * m.s[1] == m.r)
    m.spec = pe.Constraint(expr=m.r >= spec)
    m.cost = pe.Objective(expr=m.c + 0.2 * m.x[0])
    return m


def main() -> None:
    for strategy in ("split", "milp"):
        m = build_flowsheet()
        began = time.perf_counter()
        result = solve(m, "highs", strategy=strategy, mip_gap=1e-6, time_limit=120)
        print(
            f"{strategy:>5}: {result.status} cost {result.objective:.6f} bound {result.bound:.6f} "
            f"in {time.perf_counter() - began:.2f} s; x = ({m.x[0].value:.4f}, {m.x[1].value:.4f}), "
            f"yield {m.r.value:.4f}"
        )


if __name__ == "__main__":
    main()
