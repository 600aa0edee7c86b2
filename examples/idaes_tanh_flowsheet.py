"""A tanh surrogate saved the IDAES way, read with ``from_idaes``, optimised globally as a MILP.

The flowsheet is the saponification one of ``examples/idaes_flowsheet.py`` (Feed ->
Heater -> StoichiometricReactor -> Product, the reactor's conversion predicted by a
network from the inlet temperature and flow).  Here the network is what IDAES users
have: a **tanh** Keras model (2-12-12-1), trained the IDAES way on scaled data (IDAES
``OffsetScaler``), wrapped in IDAES's ``KerasSurrogate`` and written with its
``save_to_folder`` (a ``.keras`` file plus ``idaes_info.json``).  pyomo_relu reads that
folder back with :meth:`ReLUSurrogate.from_idaes <pyomo_relu.idaes.ReLUSurrogateMixin.from_idaes>`,
scalers, labels and bounds included.

With IDAES's own tools a tanh network goes to an NLP solver as ``post == tanh(pre)``,
with no global guarantee.  Here the flowsheet is made linear by fixing the flow (as in
the ReLU example's MILP variant) and every tanh neuron is enclosed between two
piecewise-linear functions (``formulation=("pwl", {"tolerance": tol})``): HiGHS solves
the MILP relaxation to optimality, so its bound is a proven bound on the true optimum;
the true network evaluated at its solution is a feasible point.  The **certified
interval** ``[feasible profit, proven bound]`` holds the true global optimum, and it
shrinks with the tolerance.  A grid search of the true surrogate with the flowsheet's
economics in numpy checks it.

Run:  KERAS_BACKEND=torch python examples/idaes_tanh_flowsheet.py     (about 20 s)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import idaes_flowsheet as base  # noqa: E402  the flowsheet, its economics and the grid search

logger = logging.getLogger("idaes_tanh_flowsheet")


def train_keras_tanh(
    seed: int = 0, n_samples: int = 800, hidden: tuple[int, ...] = (12, 12), epochs: int = 300
) -> tuple[Any, Any, Any]:
    """Train a tanh Keras model on the kinetic expression, on data scaled by IDAES ``OffsetScaler``s.

    Returns ``(keras_model, input_scaler, output_scaler)``.
    """
    import keras
    import pandas as pd
    from idaes.core.surrogate.sampling.scaling import OffsetScaler

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "temperature": rng.uniform(base.T_FEED, base.T_MAX, n_samples),
            "flow_vol": rng.uniform(base.FLOW_MIN, base.FLOW_MAX, n_samples),
        }
    )
    y = pd.DataFrame({"conversion": base.true_conversion(x["temperature"], x["flow_vol"])})
    input_scaler = OffsetScaler(
        base.INPUT_LABELS,
        pd.Series({k: base.INPUT_SCALING[k][0] for k in base.INPUT_LABELS}),
        pd.Series({k: base.INPUT_SCALING[k][1] for k in base.INPUT_LABELS}),
    )
    output_scaler = OffsetScaler(
        base.OUTPUT_LABELS,
        pd.Series({"conversion": base.OUTPUT_SCALING["conversion"][0]}),
        pd.Series({"conversion": base.OUTPUT_SCALING["conversion"][1]}),
    )
    layers = [keras.Input((2,))] + [keras.layers.Dense(n, activation="tanh") for n in hidden] + [keras.layers.Dense(1)]
    model = keras.Sequential(layers, name="conversion_tanh")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    model.fit(
        input_scaler.scale(x).to_numpy(), output_scaler.scale(y).to_numpy(), epochs=epochs, batch_size=100, verbose=0
    )
    return model, input_scaler, output_scaler


def save_the_idaes_way(model: Any, input_scaler: Any, output_scaler: Any, folder: str) -> None:
    """IDAES's ``KerasSurrogate(...).save_to_folder(folder)``: ``idaes_keras_model.keras`` + ``idaes_info.json``."""
    from idaes.core.surrogate.keras_surrogate import KerasSurrogate

    KerasSurrogate(
        model,
        input_labels=base.INPUT_LABELS,
        output_labels=base.OUTPUT_LABELS,
        input_bounds=base.INPUT_BOUNDS,
        input_scaler=input_scaler,
        output_scaler=output_scaler,
    ).save_to_folder(folder)


def optimise_pwl(surrogate: Any, tolerance: float, flow: float, time_limit: float = 120.0) -> dict[str, Any]:
    """The MILP variant with every tanh neuron in a band of width ``tolerance``; HiGHS."""
    import pyomo.environ as pe

    from pyomo_relu.solvers import solve

    m = base.build_flowsheet(
        surrogate, formulation=("pwl", {"tolerance": tolerance}), bounds=["interval", "crown"], flow=flow
    )
    base.fix_flow_everywhere(m, flow)
    base.scale_flowsheet(m)
    scaling = pe.TransformationFactory("core.scale_model")
    scaled = scaling.create_using(m)
    result = solve(scaled, "highs", time_limit=time_limit, mip_gap=1e-6)
    certified = result.certified
    if certified is None or certified.value is None:
        raise RuntimeError(f"no certified interval: {result.status} {certified}")
    scaling.propagate_solution(scaled, m)  # the true-feasible point certify_solution loaded
    nn = m.fs.conversion_surrogate.nn
    temperature, _ = base.decisions(m)
    return {
        "tolerance": tolerance,
        "status": result.status,
        "seconds": result.seconds,
        "binaries": nn.stats()["binaries"],
        "certified": certified,
        "profit": pe.value(m.fs.profit),
        "temperature": temperature,
        "conversion": m.fs.reactor.conversion.value,
        "approximation_error": float(nn.approximation_error()[0]) * base.OUTPUT_SCALING["conversion"][1],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flow", type=float, default=1.0e-3, help="the fixed feed flow, m^3/s")
    parser.add_argument(
        "--tolerances",
        type=float,
        nargs="+",
        default=[1e-2, 1e-3],
        help="band widths of the tanh enclosures (default 1e-2 1e-3)",
    )
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from pyomo_relu.idaes import ReLUSurrogate

    start = time.perf_counter()
    model, input_scaler, output_scaler = train_keras_tanh(epochs=args.epochs)
    with tempfile.TemporaryDirectory() as folder:
        save_the_idaes_way(model, input_scaler, output_scaler, folder)
        print(f"IDAES KerasSurrogate folder: {sorted(os.listdir(folder))}")
        surrogate = ReLUSurrogate.from_idaes(folder)
    net = surrogate.network
    print(
        f"read with ReLUSurrogate.from_idaes: {net} ({', '.join(l.activation for l in net.layers)}), "
        f"trained in {time.perf_counter() - start:.1f} s"
    )
    grid_t = np.linspace(base.T_FEED, base.T_MAX, 50)
    fit = net.evaluate(np.column_stack([grid_t, np.full(50, args.flow)]))[:, 0]
    print(
        f"  rmse against the kinetics at flow {args.flow:g}: "
        f"{np.sqrt(np.mean((fit - base.true_conversion(grid_t, args.flow)) ** 2)):.2e}"
    )

    best, t_best, _ = base.grid_search(net, n=4001, flow=args.flow)
    print(
        f"grid search of the true surrogate (4001 temperatures, refined): profit {best:.6f} USD/h at T = {t_best:.3f} K"
    )
    rows = []
    print(
        f"{'tolerance':>9} {'binaries':>8} {'seconds':>7}  {'certified interval (USD/h)':<36} {'gap':>9}  "
        f"{'T (K)':>8} {'conv. error bound':>17}"
    )
    for tol in args.tolerances:
        row = optimise_pwl(surrogate, tol, args.flow)
        c = row["certified"]
        print(
            f"{tol:>9g} {row['binaries']:>8d} {row['seconds']:>7.2f}  [{c.lower:.6f}, {c.upper:.6f}]"
            f"{'':<10} {c.gap:>9.2e}  {row['temperature']:>8.3f} {row['approximation_error']:>17.2e}"
        )
        if not (c.lower <= best + 1e-6 * max(1.0, abs(best)) <= c.upper + 2e-6 * max(1.0, abs(best))):
            raise AssertionError(f"the grid optimum {best} is outside the certified interval {c}")
        rows.append(row)
    print(
        f"the feasible end is the true network at the MILP's temperature; the grid's best {best:.6f} "
        "lies inside every interval"
    )
    return {"grid_profit": best, "rows": rows}


if __name__ == "__main__":
    main()
