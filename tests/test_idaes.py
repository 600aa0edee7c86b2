"""Tests of pyomo_relu.idaes (ReLUSurrogate in IDAES SurrogateBlocks) and its example."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("idaes")
pd = pytest.importorskip("pandas")

import pyomo.environ as pe  # noqa: E402
from idaes.core.surrogate.base.surrogate_base import SurrogateBase  # noqa: E402
from idaes.core.surrogate.surrogate_block import SurrogateBlock  # noqa: E402
from idaes.core.util.model_statistics import degrees_of_freedom  # noqa: E402
from pyomo.core.expr.visitor import identify_variables  # noqa: E402
from pyomo.environ import units as pyunits  # noqa: E402
from pyomo.gdp import Disjunct  # noqa: E402
from pyomo.util.check_units import assert_units_consistent  # noqa: E402

from pyomo_relu import DenseLayer, NetworkDefinition, Scaling  # noqa: E402
from pyomo_relu.errors import MissingBoundsError, PyomoReluError  # noqa: E402
from pyomo_relu.formulations import FORMULATIONS  # noqa: E402
from pyomo_relu.idaes import (  # noqa: E402
    ReLUSurrogate,
    degrees_of_freedom_without_binaries,
    initialize_surrogate_block,
)
from pyomo_relu.solvers import solve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
PEAKS_ONNX = DATA / "relumip" / "peaks_3x10.onnx"
PEAKS_H5 = DATA / "relumip" / "peaks_3x10.h5"
PEAKS_MIN = -7.214193  # independently known (README, tests/data/relumip)

BOUNDS = {"T": (300.0, 340.0), "F": (1.0e-3, 3.0e-3)}
SCALING = {"T": (320.0, 20.0), "F": (2.0e-3, 1.0e-3)}


def _network(seed: int = 3) -> NetworkDefinition:
    """A 2-8-8-1 ReLU network on scaled inputs (seeded)."""
    rng = np.random.default_rng(seed)
    return NetworkDefinition(
        [
            DenseLayer(rng.normal(size=(8, 2)), rng.normal(size=8)),
            DenseLayer(rng.normal(size=(8, 8)) / 2, rng.normal(size=8)),
            DenseLayer(rng.normal(size=(1, 8)), rng.normal(size=1), "linear"),
        ]
    )


def _surrogate(**kwargs) -> ReLUSurrogate:
    return ReLUSurrogate(
        _network(), ["T", "F"], ["X"], BOUNDS, input_scaling=SCALING, output_scaling={"X": (0.5, 0.25)}, **kwargs
    )


def _model(surrogate=None, formulation="bigm", flow_ub=None, use_surrogate_bounds=True, **options):
    """T in K, F in m^3/s (unbounded above unless flow_ub), X dimensionless, and the surrogate."""
    m = pe.ConcreteModel()
    m.T = pe.Var(units=pyunits.K, bounds=(250.0, 400.0))
    m.F = pe.Var(units=pyunits.m**3 / pyunits.s, bounds=(0.0, flow_ub))
    m.X = pe.Var(units=pyunits.dimensionless)
    m.surrogate = SurrogateBlock()
    m.surrogate.build_model(
        surrogate or _surrogate(),
        input_vars=[m.T, m.F],
        output_vars=[m.X],
        formulation=formulation,
        use_surrogate_bounds=use_surrogate_bounds,
        **options,
    )
    return m


def _grid_extremes(surrogate, n: int = 401) -> tuple[float, float]:
    t, f = np.meshgrid(np.linspace(*BOUNDS["T"], n), np.linspace(*BOUNDS["F"], n))
    y = surrogate.network.evaluate(np.column_stack([t.ravel(), f.ravel()]))[:, 0]
    return float(y.min()), float(y.max())


def _violations(m, tol: float = 1e-7) -> list[str]:
    """Active constraints and variable bounds violated by more than ``tol``; non-integral binaries."""
    bad = []
    for c in m.component_data_objects(pe.Constraint, active=True, descend_into=True):
        body = pe.value(c.body, exception=False)
        if body is None:
            bad.append(f"{c.name}: no value")
            continue
        if (c.has_lb() and body < pe.value(c.lower) - tol) or (c.has_ub() and body > pe.value(c.upper) + tol):
            bad.append(f"{c.name}: {pe.value(c.lower)} <= {body} <= {pe.value(c.upper)}")
    for v in m.component_data_objects(pe.Var, descend_into=True):
        if v.value is None:
            bad.append(f"{v.name}: no value")
            continue
        if (v.lb is not None and v.value < v.lb - tol) or (v.ub is not None and v.value > v.ub + tol):
            bad.append(f"{v.name} = {v.value} outside [{v.lb}, {v.ub}]")
        if v.is_binary() and min(abs(v.value), abs(v.value - 1)) > tol:
            bad.append(f"{v.name} = {v.value} is not 0/1")
    return bad


@pytest.fixture(scope="module")
def surrogate() -> ReLUSurrogate:
    return _surrogate()


# ------------------------------------------------------------- interface
def test_is_an_idaes_surrogate(surrogate):
    assert isinstance(surrogate, SurrogateBase)
    assert (surrogate.n_inputs(), surrogate.n_outputs()) == (2, 1)
    assert surrogate.input_labels() == ["T", "F"] and surrogate.output_labels() == ["X"]
    assert surrogate.input_bounds() == BOUNDS
    from pyomo_relu import ReLUSurrogate as exported

    assert exported is ReLUSurrogate


def test_import_without_idaes_is_clean():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'idaes' or name.startswith('idaes.'):\n"
        "            raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pyomo_relu, pyomo_relu.idaes\n"
        "from pyomo_relu.idaes import degrees_of_freedom_without_binaries, IdaesNotInstalledError\n"
        "assert 'idaes' not in sys.modules\n"
        "for get in (lambda: pyomo_relu.idaes.ReLUSurrogate, lambda: pyomo_relu.ReLUSurrogate):\n"
        "    try:\n"
        "        get()\n"
        "    except IdaesNotInstalledError as exc:\n"
        "        assert isinstance(exc, ImportError) and 'idaes-pse is needed' in str(exc), exc\n"
        "        assert \"pip install 'pyomo_relu[idaes]'\" in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit('no error without idaes')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    # with IDAES installed, importing the module still does not import it
    code = "import sys, pyomo_relu.idaes; assert 'idaes' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_evaluate_surrogate_matches_network(surrogate):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "F": rng.uniform(*BOUNDS["F"], 50),
            "other": 1.0,
            "T": rng.uniform(*BOUNDS["T"], 50),
        },
        index=[f"row{i}" for i in range(50)],
    )
    out = surrogate.evaluate_surrogate(frame)
    assert list(out.columns) == ["X"] and list(out.index) == list(frame.index)
    expected = surrogate.network.evaluate(frame[["T", "F"]].to_numpy())
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=0, atol=1e-12)
    # and by hand: scale, layers, unscale
    x = (frame[["T", "F"]].to_numpy() - [320.0, 2e-3]) / [20.0, 1e-3]
    for layer in _network().layers:
        x = layer.forward(x)
    np.testing.assert_allclose(out.to_numpy(), x * 0.25 + 0.5, rtol=0, atol=1e-12)
    assert np.ptp(out.to_numpy()) > 0.1
    with pytest.raises(PyomoReluError, match="no column"):
        surrogate.evaluate_surrogate(frame[["T"]])


def test_save_load_round_trip(surrogate, tmp_path):
    stream = io.StringIO()
    surrogate.save(stream)
    data = json.loads(stream.getvalue())  # plain JSON, no pickle
    assert data["format"] == "pyomo_relu.idaes.ReLUSurrogate"
    assert data["network"]["input_scaling"] == {"offset": [320.0, 2e-3], "factor": [20.0, 1e-3]}
    loaded = ReLUSurrogate.load(io.StringIO(stream.getvalue()))
    assert loaded.network.content_hash() == surrogate.network.content_hash()
    assert loaded.input_labels() == ["T", "F"] and loaded.output_labels() == ["X"]
    assert loaded.input_bounds() == BOUNDS
    frame = pd.DataFrame({"T": np.linspace(300, 340, 30), "F": np.linspace(3e-3, 1e-3, 30)})
    pd.testing.assert_frame_equal(loaded.evaluate_surrogate(frame), surrogate.evaluate_surrogate(frame))
    # IDAES' file helpers go through save/load
    path = tmp_path / "surrogate.json"
    with_units = _surrogate(input_units={"F": "L/s"})
    with_units.save_to_file(str(path))
    again = ReLUSurrogate.load_from_file(str(path))
    assert again.network.content_hash() == with_units.network.content_hash()
    assert str(again.input_units()["F"]) == str(pyunits.L / pyunits.s)
    with pytest.raises(FileExistsError):
        with_units.save_to_file(str(path))
    # a damaged file is refused
    data["network"]["layers"][0]["bias"][0] += 1.0
    with pytest.raises(PyomoReluError, match="hash"):
        ReLUSurrogate.from_dict(data)


def test_constructors_from_files_and_idaes_scaler():
    from idaes.core.surrogate.sampling.scaling import OffsetScaler

    from pyomo_relu import load_onnx

    labels, box = ["x", "y"], {"x": (-3.0, 3.0), "y": (-3.0, 3.0)}
    from_onnx = ReLUSurrogate.from_onnx(PEAKS_ONNX, labels, ["z"], box)
    reference = load_onnx(PEAKS_ONNX)
    assert from_onnx.network.content_hash() == reference.content_hash()
    x = np.random.default_rng(1).uniform(-3, 3, (40, 2))
    np.testing.assert_allclose(
        from_onnx.evaluate_surrogate(pd.DataFrame(x, columns=labels))["z"], reference.evaluate(x)[:, 0], atol=1e-12
    )
    # the known global minimum of the peaks network, through a SurrogateBlock
    m = pe.ConcreteModel()
    m.s = SurrogateBlock()
    m.s.build_model(from_onnx, formulation="bigm")
    m.obj = pe.Objective(expr=m.s.outputs["z"])
    result = solve(m, "highs")
    assert result.status == "optimal" and result.objective == pytest.approx(PEAKS_MIN, abs=1e-5)

    pytest.importorskip("keras")
    from_keras = ReLUSurrogate.from_keras(str(PEAKS_H5), labels, ["z"], box)
    np.testing.assert_allclose(from_keras.network.evaluate(x), reference.evaluate(x), atol=1e-5)

    # an IDAES OffsetScaler is accepted as the scaling
    scaler = OffsetScaler(["T", "F"], pd.Series({"T": 320.0, "F": 2e-3}), pd.Series({"T": 20.0, "F": 1e-3}))
    with_scaler = ReLUSurrogate(
        _network(), ["T", "F"], ["X"], BOUNDS, input_scaling=scaler, output_scaling=Scaling([0.5], [0.25])
    )
    assert with_scaler.network.content_hash() == _surrogate().network.content_hash()
    with pytest.raises(PyomoReluError, match="already has an input scaling"):
        ReLUSurrogate(with_scaler.network, ["T", "F"], ["X"], BOUNDS, input_scaling=scaler)


def test_build_model_pops_every_option(surrogate):
    from idaes.core.surrogate.omlt_base_surrogate_class import OMLTSurrogate

    m = _model(surrogate, formulation="partition", bounds=["interval", "crown"], initialize=False)
    assert m.surrogate.nn.neuron_bounds.methods[-1] == "crown"
    # an option nobody takes is refused before anything is built, with a did-you-mean
    from pyomo_relu.errors import UnknownOptionError

    with pytest.raises(UnknownOptionError, match="unknown option 'no_such_option'; valid options: bounds, formulation"):
        _model(surrogate, no_such_option=1)
    with pytest.raises(UnknownOptionError, match="did you mean 'initialize'"):
        _model(surrogate, initialise=False)
    # IDAES' OMLT formulation names work where they mean a ReLU formulation
    m = _model(surrogate, formulation=OMLTSurrogate.Formulation.RELU_BIGM)
    assert m.surrogate.nn.layer[0].component("is_active") is not None
    with pytest.raises(PyomoReluError, match="smooth"):
        _model(surrogate, formulation=OMLTSurrogate.Formulation.FULL_SPACE)
    with pytest.raises(PyomoReluError, match="unknown formulation"):
        _model(surrogate, formulation="no-such-formulation")


# ------------------------------------------------------------ formulations
@pytest.fixture(scope="module")
def bigm_optima(surrogate) -> tuple[float, float]:
    lows, highs = _grid_extremes(surrogate)
    values = []
    for sense in (pe.minimize, pe.maximize):
        m = _model(surrogate, "bigm")
        m.obj = pe.Objective(expr=m.X, sense=sense)
        result = solve(m, "highs")
        assert result.status == "optimal"
        assert m.surrogate.nn.get_error() < 1e-6
        values.append(result.objective)
    # the grid never beats the MILP, and comes close (the network is not flat)
    assert values[0] <= lows + 1e-7 and values[0] == pytest.approx(lows, abs=0.05)
    assert values[1] >= highs - 1e-7 and values[1] == pytest.approx(highs, abs=0.05)
    assert values[1] - values[0] > 1.0
    return values[0], values[1]


NEEDS_SCIP = {"complementarity", "gdp.binary_multiplication"}


@pytest.mark.parametrize("formulation", sorted(FORMULATIONS))
def test_every_formulation_matches_bigm(surrogate, bigm_optima, formulation):
    spec = ("complementarity", {"reformulation": "product"}) if formulation == "complementarity" else formulation
    for sense, expected in zip((pe.minimize, pe.maximize), bigm_optima):
        m = _model(surrogate, spec)
        assert_units_consistent(m)
        m.obj = pe.Objective(expr=m.X, sense=sense)
        if formulation == "gdp":  # untransformed disjunctions: the user picks the reformulation
            pe.TransformationFactory("gdp.hull").apply_to(m)
        if formulation == "ideal_cuts":
            from pyomo_relu.formulations.ideal_cuts import add_ideal_cuts

            add_ideal_cuts(m)
        solver = "scip" if formulation in NEEDS_SCIP else "highs"
        options = {"display/verblevel": 0} if solver == "scip" else None
        result = solve(m, solver, time_limit=60, options=options)
        assert result.status == "optimal", (formulation, result)
        if formulation == "relaxation":  # an LP relaxation: a valid bound, not the optimum
            gap = result.objective - expected if sense == pe.minimize else expected - result.objective
            assert gap <= 1e-7
            continue
        assert result.objective == pytest.approx(expected, abs=1e-5), formulation
        assert m.surrogate.nn.get_error() < 1e-5
        x = [[m.T.value, m.F.value]]
        assert m.X.value == pytest.approx(surrogate.network.evaluate(x)[0, 0], abs=1e-5)


# ------------------------------------------------------------------ units
def test_units_consistent_with_kelvin_and_cubic_metres(surrogate):
    m = _model(surrogate)
    assert_units_consistent(m)
    assert str(pyunits.get_units(m.T)) == "K" and str(pyunits.get_units(m.F)) == "m**3/s"
    for tie in list(m.surrogate.input_surrogate_ties.values()) + list(m.surrogate.output_surrogate_ties.values()):
        assert str(pyunits.get_units(tie.body)) == "dimensionless"


def test_idaes_onnx_surrogate_fails_the_same_units_check():
    """The contrast the docs draw: IDAES' OMLT ties compare K with a dimensionless variable."""
    pytest.importorskip("omlt")
    pytest.importorskip("onnx")
    from idaes.core.surrogate.onnx_surrogate import ONNXSurrogate
    from idaes.core.surrogate.sampling.scaling import OffsetScaler
    from onnx import TensorProto, helper, numpy_helper
    from pyomo.core.base.units_container import InconsistentUnitsError

    net, nodes, weights, previous = _network(), [], [], "x"
    for k, layer in enumerate(net.layers):
        weights += [
            numpy_helper.from_array(layer.weights.astype(np.float32), f"W{k}"),
            numpy_helper.from_array(layer.bias.astype(np.float32), f"B{k}"),
        ]
        nodes.append(
            helper.make_node(
                "Gemm", [previous, f"W{k}", f"B{k}"], [f"g{k}"], name=f"gemm{k}", transB=1, alpha=1.0, beta=1.0
            )
        )
        previous = f"g{k}"
        if layer.activation == "relu":
            nodes.append(helper.make_node("Relu", [previous], [f"r{k}"], name=f"relu{k}"))
            previous = f"r{k}"
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [None, 1])],
        weights,
    )
    scaler = OffsetScaler(["T", "F"], pd.Series({"T": 320.0, "F": 2e-3}), pd.Series({"T": 20.0, "F": 1e-3}))
    theirs = ONNXSurrogate(helper.make_model(graph), ["T", "F"], ["X"], BOUNDS, input_scaler=scaler)
    m = pe.ConcreteModel()
    m.T = pe.Var(units=pyunits.K)
    m.F = pe.Var(units=pyunits.m**3 / pyunits.s)
    m.X = pe.Var()
    m.s = SurrogateBlock()
    m.s.build_model(theirs, input_vars=[m.T, m.F], output_vars=[m.X], formulation=ONNXSurrogate.Formulation.RELU_BIGM)
    with pytest.raises(InconsistentUnitsError, match="kelvin not compatible with dimensionless"):
        assert_units_consistent(m)
    assert_units_consistent(_model())  # ours, same network and variables


def test_declared_units_are_converted():
    """A surrogate trained in m^3/s used with a flow variable in L/s."""
    ours = _surrogate(input_units={"T": "K", "F": "m^3/s"})
    m = pe.ConcreteModel()
    m.T = pe.Var(units=pyunits.K)
    m.F = pe.Var(units=pyunits.L / pyunits.s, bounds=(0, None))
    m.X = pe.Var()
    m.s = SurrogateBlock()
    # SurrogateBlock copies the surrogate's bounds (m^3/s) onto F (L/s) without converting
    with pytest.raises(MissingBoundsError, match="use_surrogate_bounds=False"):
        m.s.build_model(ours, input_vars=[m.T, m.F], output_vars=[m.X])
    m.F.setlb(0)
    m.F.setub(None)
    m.s2 = SurrogateBlock()
    m.s2.build_model(ours, input_vars=[m.T, m.F], output_vars=[m.X], use_surrogate_bounds=False)
    m.s.deactivate()
    assert_units_consistent(m.s2)
    assert m.F.bounds == (0, None)
    m.obj = pe.Objective(expr=m.X, sense=pe.maximize)
    assert solve(m, "highs").status == "optimal"
    assert 1.0 - 1e-6 <= m.F.value <= 3.0 + 1e-6  # litres per second
    assert m.X.value == pytest.approx(ours.network.evaluate([[m.T.value, m.F.value / 1000]])[0, 0], abs=1e-6)
    m.F.set_value(2.5)
    m.s2.initialize()
    assert m.X.value == pytest.approx(ours.network.evaluate([[m.T.value, 2.5e-3]])[0, 0], abs=1e-9)


# ------------------------------------------------------------ unbounded vars
@pytest.mark.parametrize("formulation", ["gdp.hull", "extended", "partition"])
def test_unbounded_flowsheet_variable(surrogate, bigm_optima, formulation):
    m = _model(surrogate, formulation, use_surrogate_bounds=False)
    assert m.F.ub is None and m.T.bounds == (250.0, 400.0)  # SurrogateBlock left them alone
    nn = m.surrogate.nn
    for c in nn.component_data_objects(pe.Constraint, active=True, descend_into=(pe.Block, Disjunct)):
        for v in identify_variables(c.body):
            assert _within(v, nn), f"{c.name} refers to {v.name}, outside the network block"
    m.obj = pe.Objective(expr=m.X, sense=pe.maximize)
    result = solve(m, "highs")
    assert result.status == "optimal" and result.objective == pytest.approx(bigm_optima[1], abs=1e-5)
    assert BOUNDS["F"][0] - 1e-9 <= m.F.value <= BOUNDS["F"][1] + 1e-9  # the ties bound it
    # without any bound at all, building says which input and how to fix it
    m2 = pe.ConcreteModel()
    m2.F, m2.T, m2.X = pe.Var(), pe.Var(), pe.Var()
    m2.s = SurrogateBlock()
    with pytest.raises(MissingBoundsError, match="'F'.*no upper bound"):
        m2.s.build_model(
            ReLUSurrogate(_network(), ["T", "F"], ["X"], {"T": (300, 340), "F": (0, None)}),
            input_vars=[m2.T, m2.F],
            output_vars=[m2.X],
        )


def _within(var, block) -> bool:
    parent = var.parent_block()
    while parent is not None:
        if parent is block:
            return True
        parent = parent.parent_block()
    return False


# ------------------------------------------------------------ initialisation
INIT_FORMULATIONS = [
    "bigm",
    "gdp",
    "gdp.bigm",
    "gdp.hull",
    "gdp.mbigm",
    "gdp.binary_multiplication",
    "partition",
    "extended",
    "ideal_cuts",
    "complementarity",
]


@pytest.mark.parametrize("formulation", INIT_FORMULATIONS)
def test_initialize_without_solver(surrogate, formulation):
    spec = ("complementarity", {"reformulation": "product"}) if formulation == "complementarity" else formulation
    m = _model(surrogate, spec, initialize=False)
    if formulation == "gdp":
        pe.TransformationFactory("gdp.hull").apply_to(m)
    seen = []
    for point in ((305.0, 1.2e-3), (336.0, 2.8e-3)):
        m.T.set_value(point[0])
        m.F.set_value(point[1])
        m.surrogate.initialize()
        assert _violations(m) == []
        expected = surrogate.network.evaluate([point])[0, 0]
        assert m.X.value == pytest.approx(expected, abs=1e-9)
        seen.append(m.X.value)
        binaries = [v for v in m.surrogate.component_data_objects(pe.Var, descend_into=True) if v.is_binary()]
        if formulation != "complementarity":
            assert binaries, "the formulation has binaries to set"
    assert abs(seen[0] - seen[1]) > 1e-3  # the two points differ: the check can fail
    # a wrong value is caught by the same check
    m.X.set_value(m.X.value + 0.1)
    assert _violations(m)


def test_initialize_details(surrogate, caplog):
    m = _model(surrogate, "bigm", initialize=False)
    assert m.T.value is None
    initialize_surrogate_block(m.surrogate)  # no values: the centre of the box
    assert (m.T.value, m.F.value) == pytest.approx((320.0, 2e-3))
    assert _violations(m) == []
    m.surrogate.initialize(input_values=[310.0, 1.5e-3])
    assert m.X.value == pytest.approx(surrogate.network.evaluate([[310.0, 1.5e-3]])[0, 0])
    clone = m.clone()  # the attached initialize() follows the clone
    clone.T.set_value(330.0)
    clone.surrogate.initialize()
    assert clone.X.value == pytest.approx(surrogate.network.evaluate([[330.0, 1.5e-3]])[0, 0])
    assert m.X.value == pytest.approx(surrogate.network.evaluate([[310.0, 1.5e-3]])[0, 0])
    m.T.set_value(390.0)  # outside the network's box: clipped, with a warning
    m.surrogate.initialize()
    assert "outside the network's box" in caplog.text


# ------------------------------------------------------------------ dof
def test_dof_helper_on_a_small_model(surrogate):
    m = _model(surrogate, "bigm")
    unstable = sum(layer["unstable"] for layer in m.surrogate.nn.stats()["layers"])
    assert unstable > 0
    # T, F free, X = f(T, F): two degrees of freedom; IDAES adds one per unstable neuron
    assert degrees_of_freedom_without_binaries(m) == 2
    assert degrees_of_freedom(m) == 2 + unstable
    m.T.fix(310.0)
    m.F.fix(2e-3)
    assert degrees_of_freedom_without_binaries(m) == 0
    # the same model with the network replaced by one explicit equation, counted by IDAES
    m2 = pe.ConcreteModel()
    m2.T, m2.F, m2.X = pe.Var(), pe.Var(), pe.Var()
    m2.f = pe.Constraint(expr=m2.X == 0.01 * m2.T + 3 * m2.F)
    assert degrees_of_freedom(m2) == 2


# --------------------------------------------------------------- example
@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("idaes_flowsheet_example", ROOT / "examples" / "idaes_flowsheet.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example_net(example):
    net, rmse = example.train_network()
    assert rmse < 0.01  # the surrogate learnt the kinetics
    return net


def test_example_flowsheet_units_and_dof(example, example_net):
    surrogate = example.make_surrogate(example_net)
    m = example.build_flowsheet(surrogate, formulation="gdp.hull", flow=1.5e-3, temperature=305.0)
    assert_units_consistent(m)
    assert _violations(m, tol=1e-6) == []  # initialised without a solver
    assert degrees_of_freedom_without_binaries(m) == 2  # flow and temperature
    assert degrees_of_freedom(m) > 2  # IDAES counts the network's spare variables
    # independent count: the same flowsheet with the conversion fixed instead of predicted
    m.fs.conversion_surrogate.deactivate()
    m.fs.reactor.conversion.fix()
    assert degrees_of_freedom(m) == 2
    m.fs.conversion_surrogate.activate()
    m.fs.reactor.conversion.unfix()
    m.fs.feed.properties[0].flow_vol.fix()
    m.fs.heater.control_volume.properties_out[0].temperature.fix()
    assert degrees_of_freedom_without_binaries(m) == 0
    m.fs.conversion_surrogate.deactivate()
    m.fs.reactor.conversion.fix()
    assert degrees_of_freedom(m) == 0
    assert example.RHO_CP == pytest.approx(pe.value(m.fs.thermo.dens_mol * m.fs.thermo.cp_mol))


def test_example_minlp_matches_grid_search(example, example_net):
    surrogate = example.make_surrogate(example_net)
    optimum = example.optimise(surrogate, "scip", time_limit=90)
    assert optimum.status == "optimal"
    profit, temperature, flow = example.grid_search(example_net)
    # SCIP's optimum is the grid's (grid <= global optimum, within the gap and tolerances)
    assert optimum.profit == pytest.approx(profit, rel=1e-4)
    assert optimum.profit >= profit - 1e-4 * abs(profit)
    assert (optimum.temperature, optimum.flow) == pytest.approx((temperature, flow), rel=2e-3)
    # the flowsheet's profit is the numpy economics at SCIP's point, and the point is interior
    numpy_profit = float(example.profit_numpy(example_net, optimum.temperature, optimum.flow))
    assert optimum.profit == pytest.approx(numpy_profit, rel=1e-4)
    assert example.T_FEED + 1 < optimum.temperature < example.T_MAX - 1
    assert example.FLOW_MIN * 1.1 < optimum.flow < example.FLOW_MAX * 0.9
    assert optimum.network_error < 1e-6


@pytest.mark.parametrize("solver", ["highs", "glpk"])
def test_example_milp_variant(example, example_net, solver):
    surrogate = example.make_surrogate(example_net)
    optimum = example.optimise(surrogate, solver, fixed_flow=1.0e-3)
    assert optimum.status == "optimal"
    assert degrees_of_freedom_without_binaries(optimum.model) == 1  # the temperature
    profit, temperature, _ = example.grid_search(example_net, n=20001, flow=1.0e-3)
    assert optimum.profit == pytest.approx(profit, rel=1e-5)
    assert optimum.profit >= profit - 1e-5 * abs(profit)
    assert optimum.temperature == pytest.approx(temperature, abs=0.05)
    assert optimum.flow == 1.0e-3
