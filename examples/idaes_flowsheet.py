"""A ReLU surrogate of reactor conversion inside an IDAES flowsheet, optimised globally.

Flowsheet (IDAES saponification property and reaction packages)::

    Feed --> Heater --> StoichiometricReactor --> Product
    NaOH + EtOAc (100 mol/m3 each, 298.15 K)     NaOH + EtOAc -> NaOAc + EtOH

A ReLU network (scikit-learn ``MLPRegressor``, 2-16-16-1, seeded, trained here on data
from a known kinetic expression) predicts the conversion of the reactor from the
reactor's inlet temperature (K) and volumetric flow (m^3/s).  It is embedded with
:class:`pyomo_relu.idaes.ReLUSurrogate` in an IDAES ``SurrogateBlock`` and sets the
``StoichiometricReactor``'s extent through a ``conversion`` variable added to the unit.
The profit (sodium acetate sold, minus the heating and the feed) is maximised over the
heater's outlet temperature and the feed flow.

* **MINLP** (the full flowsheet: ``flow * concentration`` and ``flow * temperature`` are
  bilinear) solved globally with SCIP, checked against a fine grid search of the same
  surrogate with the flowsheet's economics written in numpy (:func:`profit_numpy`).
* **MILP** variant: the flow fixed in every state block (the liquid is incompressible, so
  it does not change along the flowsheet), which makes every flowsheet equation linear;
  solved with HiGHS and glpk and checked against a grid search over temperature.

Kinetics used for the training data (the "truth"): an isothermal CSTR of volume
``V = 0.5 m^3`` with the second-order rate ``r = k C_NaOH C_EtOAc`` and equimolar feed,
``X / (1 - X)^2 = k V C0 / F``, with ``k = A exp(-E / (R T))``.  ``E = 43 kJ/mol`` is the
IDAES reaction package's; its pre-exponential factor is read per litre
(``A = 3.132e6 L/(mol s) = 3132 m^3/(mol s)``), which puts ``k(25 C) = 0.092 L/(mol s)``
in line with measured values for this reaction.  The StoichiometricReactor itself does
not use the package's rate expression; the surrogate stands in for it.

Both are solved on ``core.scale_model``'s copy of the flowsheet after IDAES scaling
factors are set (:func:`scale_flowsheet`): unscaled, SI magnitudes from 1e-3 to 1e5 gave
SCIP numerical trouble and no proven optimum in minutes; scaled, it takes seconds.

Run:  python examples/idaes_flowsheet.py      (about 10 s; ``--help`` for options)
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pe
from pyomo.environ import units as pyunits

# ------------------------------------------------------------------ data
T_FEED = 298.15  # K, feed temperature (the property package's lower bound)
T_MAX = 320.0  # K, highest reactor inlet temperature considered
FLOW_MIN, FLOW_MAX = 0.5e-3, 2.0e-3  # m^3/s
C_FEED = 100.0  # mol/m^3 of NaOH and of ethyl acetate in the feed
C_WATER = 55388.0  # mol/m^3 (the package's molar density)
VOLUME = 0.5  # m^3, CSTR volume behind the kinetic expression
ARRHENIUS = 3.132e3  # m^3/(mol s)
E_ACT = 43000.0  # J/mol
GAS_CONSTANT = 8.314462618
RHO_CP = 55388.0 * 75.327  # J/(m^3 K): dens_mol * cp_mol of the property package

PRICE_PRODUCT = 0.10  # USD_2018 per mol of sodium acetate
PRICE_HEAT = 15.0  # USD_2018 per GJ
COST_FEED = 5.0  # USD_2018 per m^3 of feed solution

INPUT_LABELS = ["temperature", "flow_vol"]
OUTPUT_LABELS = ["conversion"]
INPUT_BOUNDS = {"temperature": (T_FEED, T_MAX), "flow_vol": (FLOW_MIN, FLOW_MAX)}
INPUT_SCALING = {
    "temperature": ((T_FEED + T_MAX) / 2, (T_MAX - T_FEED) / 2),
    "flow_vol": ((FLOW_MIN + FLOW_MAX) / 2, (FLOW_MAX - FLOW_MIN) / 2),
}
OUTPUT_SCALING = {"conversion": (0.7, 0.1)}

logger = logging.getLogger("idaes_flowsheet")


def true_conversion(temperature: Any, flow: Any) -> np.ndarray:
    """Conversion of an isothermal second-order CSTR (the kinetic expression above)."""
    k = ARRHENIUS * np.exp(-E_ACT / (GAS_CONSTANT * np.asarray(temperature, float)))
    damkohler = k * VOLUME * C_FEED / np.asarray(flow, float)
    return ((2 * damkohler + 1) - np.sqrt(4 * damkohler + 1)) / (2 * damkohler)


# -------------------------------------------------------------- training
def train_network(seed: int = 0, n_samples: int = 800, hidden: tuple[int, ...] = (16, 16)):
    """Train a ReLU ``MLPRegressor`` on the kinetic expression; return the NetworkDefinition.

    Inputs and output are scaled with :data:`INPUT_SCALING`/:data:`OUTPUT_SCALING`
    (offset/factor); the network keeps the scalings, so it maps K and m^3/s to the
    conversion directly.  Returns ``(network, rmse on a 50x50 test grid)``.
    """
    from sklearn.neural_network import MLPRegressor

    from pyomo_relu import DenseLayer, NetworkDefinition, Scaling

    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(T_FEED, T_MAX, n_samples), rng.uniform(FLOW_MIN, FLOW_MAX, n_samples)])
    y = true_conversion(x[:, 0], x[:, 1])
    scale_in = Scaling([INPUT_SCALING[k][0] for k in INPUT_LABELS], [INPUT_SCALING[k][1] for k in INPUT_LABELS])
    scale_out = Scaling([OUTPUT_SCALING["conversion"][0]], [OUTPUT_SCALING["conversion"][1]])
    mlp = MLPRegressor(
        hidden_layer_sizes=hidden,
        activation="relu",
        solver="lbfgs",
        max_iter=5000,
        tol=1e-10,
        alpha=1e-6,
        random_state=seed,
    )
    mlp.fit(scale_in.scale(x), scale_out.scale(y[:, None]).ravel())
    layers = [
        DenseLayer(w.T, b, "relu" if k < len(mlp.coefs_) - 1 else "linear", f"dense_{k}")
        for k, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_))
    ]
    net = NetworkDefinition(
        layers,
        [INPUT_BOUNDS[k] for k in INPUT_LABELS],
        scale_in,
        scale_out,
        source=f"sklearn MLPRegressor{hidden} seed={seed}",
    )
    grid_t, grid_f = np.meshgrid(np.linspace(T_FEED, T_MAX, 50), np.linspace(FLOW_MIN, FLOW_MAX, 50))
    test = np.column_stack([grid_t.ravel(), grid_f.ravel()])
    rmse = float(np.sqrt(np.mean((net.evaluate(test)[:, 0] - true_conversion(test[:, 0], test[:, 1])) ** 2)))
    # the network must be the sklearn model: same predictions
    np.testing.assert_allclose(
        net.evaluate(test)[:, 0],
        scale_out.unscale(mlp.predict(scale_in.scale(test))[:, None])[:, 0],
        rtol=0,
        atol=1e-10,
    )
    return net, rmse


def make_surrogate(net: Any) -> Any:
    """The IDAES surrogate object (labels, bounds; the scalings are in ``net``)."""
    from pyomo_relu.idaes import ReLUSurrogate

    return ReLUSurrogate(net, INPUT_LABELS, OUTPUT_LABELS, INPUT_BOUNDS)


# -------------------------------------------------------------- flowsheet
def build_flowsheet(
    surrogate: Any,
    formulation: Any = "bigm",
    bounds: Any = "interval",
    flow: float = 1.0e-3,
    temperature: float = 310.0,
) -> pe.ConcreteModel:
    """Feed -> Heater -> StoichiometricReactor -> Product with the surrogate; decisions free.

    The feed's composition, temperature and pressure are fixed; the feed flow
    (``fs.feed.flow_vol``) and the heater's outlet temperature are the decisions (their
    starting values are ``flow``, ``temperature``).  ``fs.profit`` is in USD_2018/h.
    """
    from idaes.core import FlowsheetBlock
    from idaes.core.base.costing_base import register_idaes_currency_units
    from idaes.core.surrogate.surrogate_block import SurrogateBlock
    from idaes.models.properties.examples.saponification_reactions import (
        SaponificationReactionParameterBlock,
    )
    from idaes.models.properties.examples.saponification_thermo import SaponificationParameterBlock
    from idaes.models.unit_models import Feed, Heater, Product, StoichiometricReactor
    from pyomo.network import Arc

    register_idaes_currency_units()
    m = pe.ConcreteModel(name="saponification with a ReLU conversion surrogate")
    m.fs = FlowsheetBlock(dynamic=False)
    m.fs.thermo = SaponificationParameterBlock()
    m.fs.reactions = SaponificationReactionParameterBlock(property_package=m.fs.thermo)
    m.fs.feed = Feed(property_package=m.fs.thermo)
    m.fs.heater = Heater(property_package=m.fs.thermo, has_pressure_change=False)
    m.fs.reactor = StoichiometricReactor(
        property_package=m.fs.thermo,
        reaction_package=m.fs.reactions,
        has_heat_of_reaction=True,
        has_heat_transfer=False,
        has_pressure_change=False,
    )
    m.fs.product = Product(property_package=m.fs.thermo)
    m.fs.s01 = Arc(source=m.fs.feed.outlet, destination=m.fs.heater.inlet)
    m.fs.s02 = Arc(source=m.fs.heater.outlet, destination=m.fs.reactor.inlet)
    m.fs.s03 = Arc(source=m.fs.reactor.outlet, destination=m.fs.product.inlet)
    pe.TransformationFactory("network.expand_arcs").apply_to(m)

    feed = m.fs.feed.properties[0]
    feed.flow_vol.set_value(flow)
    feed.temperature.fix(T_FEED)
    feed.pressure.fix(101325.0)
    for component, conc in {
        "H2O": C_WATER,
        "NaOH": C_FEED,
        "EthylAcetate": C_FEED,
        "SodiumAcetate": 0.0,
        "Ethanol": 0.0,
    }.items():
        feed.conc_mol_comp[component].fix(conc)

    # conversion of the NaOH fed sets the reactor's extent of reaction
    reactor = m.fs.reactor
    reactor.conversion = pe.Var(
        initialize=0.7, bounds=(0, 1), units=pyunits.dimensionless, doc="conversion of NaOH (from the ReLU surrogate)"
    )
    reactor.conversion_eqn = pe.Constraint(
        expr=reactor.rate_reaction_extent[0, "R1"] == reactor.conversion * feed.flow_vol * feed.conc_mol_comp["NaOH"]
    )
    inlet = reactor.control_volume.properties_in[0]
    m.fs.conversion_surrogate = SurrogateBlock()
    m.fs.conversion_surrogate.build_model(
        surrogate,
        input_vars=[inlet.temperature, inlet.flow_vol],
        output_vars=[reactor.conversion],
        formulation=formulation,
        bounds=bounds,
        use_surrogate_bounds=False,
        initialize=False,
    )
    # decisions: bounded by the surrogate's box (the state variables themselves have
    # only the package's bounds: flow_vol has no upper bound)
    heater_out = m.fs.heater.control_volume.properties_out[0]
    heater_out.temperature.setlb(T_FEED)
    heater_out.temperature.setub(T_MAX)
    heater_out.temperature.set_value(temperature)
    feed.flow_vol.setlb(FLOW_MIN)
    feed.flow_vol.setub(FLOW_MAX)

    usd = pyunits.USD_2018
    m.fs.price_product = pe.Param(initialize=PRICE_PRODUCT, mutable=True, units=usd / pyunits.mol)
    m.fs.price_heat = pe.Param(initialize=PRICE_HEAT, mutable=True, units=usd / pyunits.GJ)
    m.fs.cost_feed = pe.Param(initialize=COST_FEED, mutable=True, units=usd / pyunits.m**3)
    product = m.fs.product.properties[0]
    per_hour = usd / pyunits.hr
    m.fs.profit = pe.Expression(
        expr=(
            pyunits.convert(
                m.fs.price_product * product.flow_vol * product.conc_mol_comp["SodiumAcetate"], to_units=per_hour
            )
            - pyunits.convert(m.fs.price_heat * m.fs.heater.heat_duty[0], to_units=per_hour)
            - pyunits.convert(m.fs.cost_feed * feed.flow_vol, to_units=per_hour)
        )
    )
    m.fs.objective = pe.Objective(expr=m.fs.profit, sense=pe.maximize)
    initialize_flowsheet(m)
    return m


def initialize_flowsheet(m: pe.ConcreteModel) -> None:
    """Sequential initialisation without a solver (no ipopt here): heater, surrogate, reactor.

    Every stream is computed in closed form from the feed and the heater's outlet
    temperature, and the surrogate block is set by its forward pass, so every
    constraint of the flowsheet holds at the starting point.
    """
    fs = m.fs
    feed = fs.feed.properties[0]
    flow, temperature = feed.flow_vol.value, fs.heater.control_volume.properties_out[0].temperature.value
    conc_in = {j: feed.conc_mol_comp[j].value for j in feed.conc_mol_comp}
    heat = flow * RHO_CP * (temperature - feed.temperature.value)
    _set_state(fs.feed, fs.feed.properties[0], flow, feed.temperature.value, conc_in)
    _set_state(fs.heater, fs.heater.control_volume.properties_in[0], flow, feed.temperature.value, conc_in)
    _set_state(fs.heater, fs.heater.control_volume.properties_out[0], flow, temperature, conc_in)
    fs.heater.heat_duty[0].set_value(heat)
    reactor_in = fs.reactor.control_volume.properties_in[0]
    _set_state(fs.reactor, reactor_in, flow, temperature, conc_in)
    fs.conversion_surrogate.initialize()
    conversion = fs.reactor.conversion.value
    extent = conversion * flow * conc_in["NaOH"]
    fs.reactor.rate_reaction_extent[0, "R1"].set_value(extent)
    stoichiometry = {"NaOH": -1, "EthylAcetate": -1, "SodiumAcetate": 1, "Ethanol": 1, "H2O": 0}
    conc_out = {j: conc_in[j] + stoichiometry[j] * extent / flow for j in conc_in}
    for j, nu in stoichiometry.items():
        fs.reactor.control_volume.rate_reaction_generation[0, "Liq", j].set_value(nu * extent)
    dh_rxn = pe.value(fs.reactions.dh_rxn["R1"])
    t_out = temperature - extent * dh_rxn / (flow * RHO_CP)
    _set_state(fs.reactor, fs.reactor.control_volume.properties_out[0], flow, t_out, conc_out)
    _set_state(fs.product, fs.product.properties[0], flow, t_out, conc_out)


def _set_state(unit: Any, state: Any, flow: float, temperature: float, conc: dict[str, float]) -> None:
    for var, value in ((state.flow_vol, flow), (state.temperature, temperature), (state.pressure, 101325.0)):
        if not var.fixed:
            var.set_value(value, skip_validation=True)
    for j, value in conc.items():
        if not state.conc_mol_comp[j].fixed:
            state.conc_mol_comp[j].set_value(value, skip_validation=True)


def decisions(m: pe.ConcreteModel) -> tuple[float, float]:
    """(heater outlet temperature in K, feed flow in m^3/s) at the current values."""
    return (m.fs.heater.control_volume.properties_out[0].temperature.value, m.fs.feed.properties[0].flow_vol.value)


def scale_flowsheet(m: pe.ConcreteModel) -> None:
    """IDAES scaling factors for the flowsheet's variables and equations.

    SI values span 1e-3 (m^3/s) to 1e5 (W, Pa): unscaled, SCIP's LP relaxations of
    ``flow * temperature`` hit numerical trouble and the MINLP does not close its gap in
    minutes.  :func:`optimise` solves ``core.scale_model``'s copy, where every
    quantity is of order one, and copies the solution back.  (The surrogate block needs
    no factors: its network variables are already scaled.)
    """
    import idaes.core.util.scaling as iscale
    from idaes.core.base.property_base import StateBlockData

    sf = iscale.set_scaling_factor
    for block in m.fs.component_data_objects(pe.Block, descend_into=True):
        if isinstance(block, StateBlockData):
            sf(block.flow_vol, 1e3)
            sf(block.temperature, 1e-2)
            sf(block.pressure, 1e-5)
            for j, var in block.conc_mol_comp.items():
                sf(var, 1e-4 if j == "H2O" else 1e-2)
            if hasattr(block, "conc_water_eqn"):
                sf(block.conc_water_eqn, 1e-4)
    for var in (m.fs.heater.heat_duty[0], m.fs.heater.control_volume.heat[0]):
        sf(var, 1e-5)
    for unit in (m.fs.heater, m.fs.reactor):
        cv = unit.control_volume
        for c in cv.enthalpy_balances.values():
            sf(c, 1e-5)
        for c in cv.pressure_balance.values():
            sf(c, 1e-5)
        for (_, _, j), c in cv.material_balances.items():
            sf(c, 1e-2 if j == "H2O" else 10.0)
    cv = m.fs.reactor.control_volume
    for var in (
        list(m.fs.reactor.rate_reaction_extent.values())
        + list(cv.rate_reaction_generation.values())
        + list(cv.rate_reaction_extent.values())
    ):
        sf(var, 10.0)
    for c in cv.rate_reaction_stoichiometry_constraint.values():
        sf(c, 10.0)
    sf(m.fs.reactor.conversion_eqn, 10.0)
    for arc in (m.fs.s01_expanded, m.fs.s02_expanded, m.fs.s03_expanded):
        sf(arc.flow_vol_equality[0], 1e3)
        sf(arc.pressure_equality[0], 1e-5)
        for c in arc.conc_mol_comp_equality.values():
            sf(c, 1e-2)


def fix_flow_everywhere(m: pe.ConcreteModel, flow: float) -> None:
    """Make the flowsheet linear: the same volumetric flow fixed in every state block.

    The liquid's molar density is constant, so the flow does not change along the
    flowsheet (the water balance says so).  With it fixed, ``flow * concentration`` and
    ``flow * temperature`` are linear; the arcs' flow equalities become ``flow == flow``
    and each outlet's water-concentration equation repeats the water balance, so both
    are deactivated (degrees of freedom: the temperature only).
    """
    from idaes.core.base.property_base import StateBlockData

    for block in m.fs.component_data_objects(pe.Block, descend_into=True):
        if isinstance(block, StateBlockData):
            block.flow_vol.fix(flow)
            if not block.config.defined_state and hasattr(block, "conc_water_eqn"):
                block.conc_water_eqn.deactivate()
    for arc in (m.fs.s01_expanded, m.fs.s02_expanded, m.fs.s03_expanded):
        arc.flow_vol_equality.deactivate()


# ----------------------------------------------------------- economics
def profit_numpy(net: Any, temperature: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The flowsheet's profit (USD_2018/h) with the surrogate's conversion, in numpy.

    Sodium acetate leaving = conversion * flow * C_NaOH (none in the feed); heat duty =
    flow * rho cp * (T - T_feed) (the package's enthalpy is linear in T).
    """
    temperature, flow = np.broadcast_arrays(np.asarray(temperature, float), np.asarray(flow, float))
    x = np.column_stack([temperature.ravel(), flow.ravel()])
    conversion = net.evaluate(x)[:, 0].reshape(temperature.shape)
    per_second = (
        PRICE_PRODUCT * conversion * flow * C_FEED
        - PRICE_HEAT * 1e-9 * flow * RHO_CP * (temperature - T_FEED)
        - COST_FEED * flow
    )
    return per_second * 3600.0


def grid_search(net: Any, n: int = 801, flow: float | None = None, refine: int = 2) -> tuple[float, float, float]:
    """Best profit on an ``n x n`` grid (``n`` points in T only when ``flow`` is fixed).

    ``refine`` times, a grid of the same size is laid over the 4 x 4 cells around the best
    point.  Returns ``(profit, temperature, flow)``.
    """
    t_lo, t_hi = T_FEED, T_MAX
    f_lo, f_hi = (FLOW_MIN, FLOW_MAX) if flow is None else (flow, flow)
    best = (-np.inf, np.nan, np.nan)
    for _ in range(refine + 1):
        ts = np.linspace(t_lo, t_hi, n)
        fs = np.linspace(f_lo, f_hi, n if flow is None else 1)
        tt, ff = np.meshgrid(ts, fs, indexing="ij")
        profit = profit_numpy(net, tt, ff)
        i = np.unravel_index(np.argmax(profit), profit.shape)
        if profit[i] > best[0]:
            best = (float(profit[i]), float(tt[i]), float(ff[i]))
        dt = 2 * (ts[1] - ts[0])
        t_lo, t_hi = max(T_FEED, best[1] - dt), min(T_MAX, best[1] + dt)
        if flow is None:
            df = 2 * (fs[1] - fs[0])
            f_lo, f_hi = max(FLOW_MIN, best[2] - df), min(FLOW_MAX, best[2] + df)
    return best


# --------------------------------------------------------------- solves
@dataclass
class Optimum:
    """One solve of the flowsheet."""

    solver: str
    status: str
    profit: float
    temperature: float
    flow: float
    conversion: float
    seconds: float
    network_error: float
    model: Any = None


def optimise(
    surrogate: Any,
    solver: str = "scip",
    formulation: Any = "bigm",
    bounds: Any = "interval",
    fixed_flow: float | None = None,
    time_limit: float = 100.0,
    mip_gap: float = 1e-5,
) -> Optimum:
    """Build the flowsheet, optionally fix the flow (MILP), solve (scaled), return the optimum.

    ``mip_gap`` is relative: SCIP's default of 0 would spend most of its time proving the
    last digits of a flat optimum.
    """
    from pyomo_relu.solvers import solve

    m = build_flowsheet(
        surrogate, formulation=formulation, bounds=bounds, flow=fixed_flow if fixed_flow is not None else 1.0e-3
    )
    if fixed_flow is not None:
        fix_flow_everywhere(m, fixed_flow)
    scale_flowsheet(m)
    scaling = pe.TransformationFactory("core.scale_model")
    scaled = scaling.create_using(m)
    # SCIP quiet: a long SCIP log through Pyomo's output capture can hang past the time limit
    options = {"display/verblevel": 0} if solver == "scip" else None
    result = solve(scaled, solver, time_limit=time_limit, mip_gap=mip_gap, options=options)
    if not result.has_solution:
        raise RuntimeError(f"{solver} found no solution: {result.status} ({result.message})")
    scaling.propagate_solution(scaled, m)
    temperature, flow = decisions(m)
    return Optimum(
        solver,
        result.status,
        pe.value(m.fs.profit),
        temperature,
        flow,
        m.fs.reactor.conversion.value,
        result.seconds,
        m.fs.conversion_surrogate.nn.get_error(),
        m,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formulation", default="bigm", help="pyomo_relu formulation (default bigm)")
    parser.add_argument("--fixed-flow", type=float, default=1.0e-3, help="flow of the MILP variant, m^3/s")
    parser.add_argument("--no-report", action="store_true", help="skip the IDAES stream/unit report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    start = time.perf_counter()
    net, rmse = train_network()
    print(f"trained {net!r} in {time.perf_counter() - start:.1f} s; RMSE vs kinetics {rmse:.4f}")
    surrogate = make_surrogate(net)

    from idaes.core.util.model_statistics import degrees_of_freedom

    from pyomo_relu.idaes import degrees_of_freedom_without_binaries

    minlp = optimise(surrogate, "scip", formulation=args.formulation)
    m = minlp.model
    print(f"\nMINLP (SCIP, {args.formulation}): {minlp.status} in {minlp.seconds:.2f} s")
    print(
        f"  profit {minlp.profit:.6f} USD/h at T = {minlp.temperature:.4f} K, "
        f"F = {minlp.flow * 1e3:.6f} L/s, conversion {minlp.conversion:.5f} "
        f"(|MILP - forward pass| = {minlp.network_error:.1e})"
    )
    print(
        f"  degrees of freedom: {degrees_of_freedom_without_binaries(m)} without the network's "
        f"binaries, {degrees_of_freedom(m)} as IDAES counts them"
    )
    grid = grid_search(net)
    print(
        f"  grid search (801 x 801, refined twice) over the same surrogate: profit {grid[0]:.6f} "
        f"at T = {grid[1]:.4f} K, F = {grid[2] * 1e3:.6f} L/s"
    )
    print(
        f"  numpy profit at SCIP's point: {float(profit_numpy(net, minlp.temperature, minlp.flow)):.6f} "
        "(SCIP's is higher by its feasibility tolerance on the balances)"
    )
    truth = _true_optimum()
    print(
        f"  (the kinetic expression itself: best profit {truth[0]:.6f} at T = {truth[1]:.2f} K, "
        f"F = {truth[2] * 1e3:.4f} L/s)"
    )
    if not args.no_report:
        print()
        m.fs.report()
        m.fs.heater.report()
        m.fs.reactor.report()

    print(f"\nMILP variant: flow fixed at {args.fixed_flow * 1e3:g} L/s in every state block")
    milps = {}
    for solver in ("highs", "glpk"):
        milps[solver] = optimise(surrogate, solver, formulation=args.formulation, fixed_flow=args.fixed_flow)
        o = milps[solver]
        print(
            f"  {solver:5s}: {o.status} in {o.seconds:.2f} s, profit {o.profit:.6f} USD/h at "
            f"T = {o.temperature:.4f} K, conversion {o.conversion:.5f}"
        )
    print(
        f"  degrees of freedom: {degrees_of_freedom_without_binaries(milps['highs'].model)} "
        "(the temperature; the flow is fixed)"
    )
    grid_1d = grid_search(net, n=20001, flow=args.fixed_flow)
    print(f"  grid search (20001 points, refined twice): profit {grid_1d[0]:.6f} at T = {grid_1d[1]:.4f} K")
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return {"minlp": minlp, "grid": grid, "milp": milps, "grid_1d": grid_1d, "rmse": rmse}


def _true_optimum(n: int = 801) -> tuple[float, float, float]:
    tt, ff = np.meshgrid(np.linspace(T_FEED, T_MAX, n), np.linspace(FLOW_MIN, FLOW_MAX, n), indexing="ij")
    x = true_conversion(tt, ff)
    profit = 3600 * (PRICE_PRODUCT * x * ff * C_FEED - PRICE_HEAT * 1e-9 * ff * RHO_CP * (tt - T_FEED) - COST_FEED * ff)
    i = np.unravel_index(np.argmax(profit), profit.shape)
    return float(profit[i]), float(tt[i]), float(ff[i])


if __name__ == "__main__":
    main()
