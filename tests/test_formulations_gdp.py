"""The gdp, complementarity and relaxation formulations against big-M and independent answers.

* MILP routes (``gdp.bigm``, ``gdp.hull``, ``gdp.mbigm``, and ``gdp`` followed by the user's
  own Pyomo transformation, solved by HiGHS and by glpk) must reach the big-M optimum, and
  their solution must be a forward pass of the network (``get_error() < 1e-6``).
* ``gdp.binary_multiplication`` and ``complementarity`` are nonconvex: solved by SCIP.  The
  peaks network optimum (-7.214193) is known from exact enumeration of its linear regions.
* The LP relaxations of big-M, tight ``gdp.bigm``, ``gdp.hull``, ``gdp.mbigm`` and the
  ``relaxation`` formulation are all the per-neuron triangle, so their LP optima agree; the
  ``relaxation`` optimum is also recomputed with highspy directly from the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import helpers
import numpy as np
import pyomo.environ as pe
import pytest
from pyomo.core.expr.visitor import identify_variables
from pyomo.gdp import Disjunct
from pyomo.mpec import Complementarity
from pyomo.opt import SolverFactory

from pyomo_relu import NetworkDefinition, PyomoReluError, ReLUNetBlock, solve
from pyomo_relu.bounds import Bounds
from pyomo_relu.formulations import FORMULATIONS, gdp

DATA = Path(__file__).parent / "data"
PEAKS_TRUTH = json.loads((DATA / "relumip" / "peaks_3x10_ground_truth.json").read_text())
PEAKS_MIN = PEAKS_TRUTH["derived_exact_network_min"]["value"]

GAP = 1e-9
SEEDS = (3, 11)
SIZES = [3, 6, 5, 1]
BOX = [(-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0)]


# ---------------------------------------------------------------------- helpers
def random_net(seed: int, sizes=SIZES, box=BOX) -> NetworkDefinition:
    return helpers.random_net(seed, sizes, box)


def model_for(net: NetworkDefinition, formulation, sense=pe.minimize, **build) -> pe.ConcreteModel:
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, formulation=formulation, **{"bounds": "interval", **build})  # loose bounds: relaxations differ
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=sense)
    return m


def solved_value(m: pe.ConcreteModel, solver: str = "highs") -> float:
    result = solve(m, solver, mip_gap=GAP)
    assert result.status == "optimal", result
    return result.objective


_BIGM: dict = {}


def bigm_optimum(seed: int, sense) -> float:
    """The big-M optimum (HiGHS) of the seeded network, cached across tests."""
    if (seed, sense) not in _BIGM:
        _BIGM[seed, sense] = solved_value(model_for(random_net(seed), "bigm", sense))
    return _BIGM[seed, sense]


def lp_value(m: pe.ConcreteModel) -> float:
    """Optimum of the model with every integer variable relaxed (HiGHS)."""
    pe.TransformationFactory("core.relax_integer_vars").apply_to(m)
    result = solve(m, "highs")
    assert result.status == "optimal", result
    return result.objective


def max_violation(m: pe.ConcreteModel) -> float:
    """Largest violation of an active constraint or a variable bound at the current values."""
    worst = 0.0
    for con in m.component_data_objects(pe.Constraint, active=True, descend_into=True):
        body = pe.value(con.body)
        if con.has_lb():
            worst = max(worst, pe.value(con.lower) - body)
        if con.has_ub():
            worst = max(worst, body - pe.value(con.upper))
    for var in m.component_data_objects(pe.Var, descend_into=True):
        assert var.value is not None, f"{var.name} has no value"
        if var.lb is not None:
            worst = max(worst, var.lb - var.value)
        if var.ub is not None:
            worst = max(worst, var.value - var.ub)
    return worst


def peaks_exact_bounds(net: NetworkDefinition) -> Bounds:
    """The exact pre-activation ranges of the ground truth, widened by 1e-6 (float32 weights)."""
    ranges = list(PEAKS_TRUTH["derived_exact_preactivation_ranges"].values())
    lower = [np.array(r["lo"]) - 1e-6 * (1 + np.abs(r["lo"])) for r in ranges]
    upper = [np.array(r["hi"]) + 1e-6 * (1 + np.abs(r["hi"])) for r in ranges]
    return Bounds(lower, upper, net.input_lower, net.input_upper, net.content_hash(), ("exact",))


# ------------------------------------------------------------ registration
def test_registered_names():
    for name in (
        "gdp",
        "gdp.bigm",
        "gdp.hull",
        "gdp.mbigm",
        "gdp.binary_multiplication",
        "complementarity",
        "relaxation",
    ):
        assert FORMULATIONS[name].name == name


# ------------------------------------------------------- MILP optima (HiGHS)
@pytest.mark.parametrize("sense", [pe.minimize, pe.maximize], ids=["min", "max"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "formulation",
    ["gdp.bigm", ("gdp.bigm", {"tight_m": False}), "gdp.hull", "gdp.mbigm"],
    ids=["gdp.bigm", "gdp.bigm-pyomo-M", "gdp.hull", "gdp.mbigm"],
)
def test_transformed_gdp_matches_bigm(formulation, seed, sense):
    m = model_for(random_net(seed), formulation, sense)
    assert not list(m.component_data_objects(Disjunct, active=True, descend_into=True))
    value = solved_value(m)
    assert value == pytest.approx(bigm_optimum(seed, sense), rel=1e-6, abs=1e-6)
    assert m.nn.get_error() < 1e-6


@pytest.mark.parametrize("solver", ["highs", "glpk"])
@pytest.mark.parametrize("transformation", ["gdp.bigm", "gdp.hull", "gdp.mbigm"])
def test_gdp_then_user_transformation(transformation, solver):
    seed = SEEDS[0]
    m = model_for(random_net(seed), "gdp")
    assert len(list(m.component_data_objects(Disjunct, active=True, descend_into=True))) > 0
    options = {"solver": SolverFactory(solver), "threads": 1} if transformation == "gdp.mbigm" else {}
    pe.TransformationFactory(transformation).apply_to(m, **options)
    m.nn.initialize([0.3, -0.7, 0.9])  # also sets binaries (and hull copies) after the fact
    assert max_violation(m) < 1e-9
    assert solved_value(m, solver) == pytest.approx(bigm_optimum(seed, pe.minimize), rel=1e-6, abs=1e-6)
    assert m.nn.get_error() < 1e-6


def test_binary_multiplication_with_scip():
    net = random_net(5, sizes=[2, 3, 1], box=[(-1, 1), (-1, 1)])
    expected = solved_value(model_for(net, "bigm"))
    m = model_for(net, "gdp.binary_multiplication")
    products = [
        c
        for c in m.component_data_objects(pe.Constraint, active=True, descend_into=True)
        if c.body.polynomial_degree() == 2
    ]
    assert products, "binary_multiplication should give bilinear constraints"
    assert solved_value(m, "scip") == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert m.nn.get_error() < 1e-5


# -------------------------------------------------- structure of the disjunctions
def test_disjunctions_use_only_block_variables_with_unbounded_user_inputs():
    net = random_net(SEEDS[1], box=None)  # the network itself carries no input box
    m = pe.ConcreteModel()
    m.x = pe.Var(range(3))  # unbounded user inputs
    m.y = pe.Var()
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=[m.y], formulation="gdp", input_bounds=BOX)
    block_vars = {id(v) for v in m.nn.component_data_objects(pe.Var, descend_into=True)}
    disjuncts = list(m.component_data_objects(Disjunct, descend_into=True))
    assert len(disjuncts) == 2 * sum(layer["unstable"] for layer in m.nn.stats()["layers"])
    for disjunct in disjuncts:
        constraints = list(disjunct.component_data_objects(pe.Constraint, descend_into=True))
        assert len(constraints) == 2
        for con in constraints:
            for var in identify_variables(con.body):
                assert id(var) in block_vars, f"{disjunct.name}: {var.name} is not a block variable"
                assert var.lb is not None and var.ub is not None
    # so gdp.hull works although the user's variables are unbounded
    pe.TransformationFactory("gdp.hull").apply_to(m)
    m.obj = pe.Objective(expr=m.y)
    assert solved_value(m) == pytest.approx(bigm_optimum(SEEDS[1], pe.minimize), rel=1e-6, abs=1e-6)
    assert m.nn.get_error() < 1e-6


def test_gdp_leaves_user_disjunctions_alone():
    """``gdp.bigm`` as a formulation transforms only the block, not the user's disjunction."""
    m = pe.ConcreteModel()
    m.x = pe.Var(range(3), bounds=(-1, 1))
    m.choice = pe.Block()
    m.choice.d = Disjunct([0, 1])
    m.choice.d[0].c = pe.Constraint(expr=m.x[0] <= -0.5)
    m.choice.d[1].c = pe.Constraint(expr=m.x[0] >= 0.5)
    from pyomo.gdp import Disjunction

    m.choice.disj = Disjunction(expr=[m.choice.d[0], m.choice.d[1]])
    m.nn = ReLUNetBlock()
    m.nn.build(random_net(SEEDS[0]), inputs=m.x, formulation="gdp.hull")
    assert m.choice.d[0].active and m.choice.d[0].transformation_block is None
    assert m.choice.disj.active


@pytest.mark.parametrize(
    "formulation",
    [
        "gdp.bigm",
        "gdp.hull",
        "gdp.mbigm",
        ("complementarity", {"reformulation": "product"}),
        ("complementarity", {"reformulation": "mpec.simple_nonlinear"}),
        "relaxation",
    ],
    ids=["gdp.bigm", "gdp.hull", "gdp.mbigm", "compl-product", "compl-mpec", "relaxation"],
)
def test_warm_start_is_feasible(formulation):
    """initialize() sets indicator, binary and hull copies: the warm start satisfies every row."""
    net = random_net(SEEDS[0])
    m = model_for(net, formulation)
    assert max_violation(m) < 1e-9
    m.nn.initialize([0.3, -0.7, 0.9])
    assert max_violation(m) < 1e-9
    assert m.nn.get_error() < 1e-12


def test_gdp_initialize_selects_disjuncts():
    net = random_net(SEEDS[0])
    m = model_for(net, "gdp")
    m.nn.initialize([0.3, -0.7, 0.9])
    pre = net.canonical_layers[0].preactivation(np.array([[0.3, -0.7, 0.9]]))[0]
    layer = m.nn.layer[0]
    for j in layer.pre:
        assert layer.active_disjunct[j].indicator_var.value is bool(pre[j] > 0)
        assert layer.inactive_disjunct[j].binary_indicator_var.value == (0 if pre[j] > 0 else 1)


def test_gdp_options_are_checked():
    with pytest.raises(PyomoReluError, match="unknown option 'bogus'"):
        model_for(random_net(SEEDS[0]), ("gdp", {"bogus": 1}))
    with pytest.raises(PyomoReluError, match="unknown option 'bogus'"):
        model_for(random_net(SEEDS[0]), ("gdp.hull", {"bogus": 1}))


def test_gdp_bigm_keeps_tight_m_over_a_user_default():
    """A user ``bigM`` (a number or a map) applies to everything the tight Ms do not cover."""
    net = random_net(SEEDS[0])
    reference = lp_value(model_for(net, "bigm"))
    assert lp_value(model_for(net, ("gdp.bigm", {"bigM": 50.0}))) == pytest.approx(reference, abs=1e-7)
    assert lp_value(model_for(net, ("gdp.bigm", {"bigM": 50.0, "tight_m": False}))) < reference - 1e-3


def test_bigm_suffix_and_tight_big_m_give_the_bigm_relaxation():
    net = random_net(SEEDS[0])
    reference = lp_value(model_for(net, "bigm"))
    m1 = model_for(net, ("gdp", {"bigm_suffix": True}))
    pe.TransformationFactory("gdp.bigm").apply_to(m1)
    m2 = model_for(net, "gdp")
    pe.TransformationFactory("gdp.bigm").apply_to(m2, bigM=gdp.tight_big_m(m2.nn))
    m3 = model_for(net, "gdp")
    pe.TransformationFactory("gdp.bigm").apply_to(m3)  # Pyomo's own interval Ms: looser
    assert lp_value(m1) == pytest.approx(reference, abs=1e-7)
    assert lp_value(m2) == pytest.approx(reference, abs=1e-7)
    assert lp_value(m3) < reference - 1e-4


# --------------------------------------------------------------- LP relaxations
@pytest.mark.parametrize("seed", SEEDS)
def test_lp_relaxations_are_the_triangle(seed):
    net = random_net(seed)
    triangle = solved_value(model_for(net, "relaxation"))
    for formulation in ("bigm", "gdp.bigm", "gdp.hull", "gdp.mbigm"):
        assert lp_value(model_for(net, formulation)) == pytest.approx(triangle, abs=1e-7), formulation


@pytest.mark.parametrize("sense", [pe.minimize, pe.maximize], ids=["min", "max"])
@pytest.mark.parametrize("seed", SEEDS)
def test_relaxation_is_a_dual_bound_and_matches_highspy(seed, sense):
    net = random_net(seed)
    m = model_for(net, "relaxation", sense)
    assert m.nn.stats()["binaries"] == 0
    value = solved_value(m)
    milp = bigm_optimum(seed, sense)
    if sense == pe.minimize:
        assert value <= milp + 1e-9
    else:
        assert value >= milp - 1e-9
    assert value == pytest.approx(highspy_triangle(net, m.nn.neuron_bounds, sense == pe.maximize), abs=1e-7)


def highspy_triangle(net: NetworkDefinition, bounds: Bounds, maximize: bool) -> float:
    """The triangle relaxation's optimum of output 0, written directly in highspy."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf

    def column(lb: float, ub: float, cost: float = 0.0) -> int:
        h.addCol(cost, lb, ub, 0, np.array([], dtype=np.int32), np.array([], dtype=float))
        return h.getNumCol() - 1

    def row(lb: float, ub: float, coefficients: dict[int, float]) -> None:
        idx = np.array(list(coefficients), dtype=np.int32)
        h.addRow(lb, ub, len(idx), idx, np.array(list(coefficients.values()), dtype=float))

    h_cols = [column(lo, hi) for lo, hi in zip(bounds.input_lower, bounds.input_upper)]
    layers = net.canonical_layers
    for k, layer in enumerate(layers):
        lower, upper = bounds.lower[k], bounds.upper[k]
        nxt = []
        for j in range(layer.n_outputs):
            z = column(-inf, inf, 0.0)
            coefficients = {c: float(w) for c, w in zip(h_cols, layer.weights[j])}
            coefficients[z] = -1.0
            row(-layer.bias[j], -layer.bias[j], coefficients)  # W h + b - z = 0
            if layer.activation == "linear":
                nxt.append(z)
                continue
            y = column(0.0, max(0.0, upper[j]))
            if upper[j] <= 0:
                pass  # y in [0, 0]
            elif lower[j] >= 0:
                row(0.0, 0.0, {y: 1.0, z: -1.0})
            else:
                slope = upper[j] / (upper[j] - lower[j])
                row(0.0, inf, {y: 1.0, z: -1.0})
                row(-inf, -slope * lower[j], {y: 1.0, z: -slope})
                h.changeColBounds(z, lower[j], upper[j])
            nxt.append(y)
        h_cols = nxt
    h.changeColCost(h_cols[0], 1.0)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return h.getInfo().objective_function_value


def test_relaxation_on_peaks_is_below_the_true_minimum(peaks):
    m = model_for(peaks, "relaxation", bounds=["interval", "lp"])
    value = solved_value(m)
    assert value < PEAKS_MIN - 1.0  # a real relaxation, far below on this network
    assert value == pytest.approx(highspy_triangle(peaks, m.nn.neuron_bounds, False), abs=1e-6)


# ------------------------------------------------------------- complementarity
def test_complementarity_product_peaks_with_scip(peaks):
    """SCIP reaches the exact peaks minimum through the nonconvex product (exact neuron bounds).

    With interval bounds SCIP also gets there, but in about 40 s (30 s with ``chord=True``).
    """
    m = model_for(
        peaks, ("complementarity", {"reformulation": "product", "chord": True}), bounds=peaks_exact_bounds(peaks)
    )
    assert m.nn.stats()["binaries"] == 0
    result = solve(m, "scip", time_limit=50)
    assert result.status == "optimal"
    assert result.objective == pytest.approx(PEAKS_MIN, abs=1e-4)
    assert m.nn.get_error() < 1e-4  # SCIP's feasibility tolerance on the products


@pytest.mark.parametrize("reformulation", ["user:mpec.simple_nonlinear", "mpec.simple_nonlinear", "product"])
def test_complementarity_small_net_with_scip(reformulation):
    net = random_net(7, sizes=[2, 4, 1], box=[(-1, 1), (-1, 1)])
    expected = solved_value(model_for(net, "bigm"))
    if reformulation.startswith("user:"):
        m = model_for(net, "complementarity")
        assert len(list(m.component_data_objects(Complementarity, descend_into=True))) > 0
        pe.TransformationFactory(reformulation[5:]).apply_to(m)
    else:
        m = model_for(net, ("complementarity", {"reformulation": reformulation}))
    assert not list(m.component_data_objects(Complementarity, active=True, descend_into=True))
    result = solve(m, "scip", mip_gap=GAP)
    assert result.status == "optimal"
    assert result.objective == pytest.approx(expected, abs=1e-5)
    assert m.nn.get_error() < 1e-5


def test_complementarity_eps_relaxes_the_product():
    net = random_net(7, sizes=[2, 4, 1], box=[(-1, 1), (-1, 1)])
    m = model_for(net, ("complementarity", {"reformulation": "product", "eps": 0.25}))
    for con in m.nn.layer[0].complementarity_product.values():
        assert pe.value(con.upper) == 0.25


@pytest.mark.parametrize(
    "options, message",
    [
        ({"reformulation": "nope"}, "unknown reformulation 'nope'"),
        ({"eps": -1}, "eps must be >= 0"),
        ({"chord": True}, "chord=True needs reformulation='product'"),
        ({"colour": 1}, "unknown option 'colour'"),
    ],
)
def test_complementarity_bad_options(options, message):
    with pytest.raises(PyomoReluError, match=message):
        model_for(random_net(7, sizes=[2, 4, 1], box=[(-1, 1), (-1, 1)]), ("complementarity", options))
