"""``ReLUSurrogate.from_idaes`` / ``to_idaes`` on the surrogate files idaes-pse ships.

Expected values are those of IDAES's own tests (idaes-pse 2.13.0,
``core/surrogate/tests/test_keras_surrogate.py::test_keras_evaluate``, rtol = atol = 1e-4,
and ``test_onnx_surrogate.py``, Calcite_ST = 40.4270772546529 at rel 1e-3).  The Keras
folders are written in the test by IDAES's ``KerasSurrogate.save_to_folder`` with the
scalers of IDAES's test; the ONNX pair is IDAES's file and one rewritten by
``ONNXSurrogate.save_to_folder``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pe
import pytest

pytest.importorskip("idaes")
keras = pytest.importorskip("keras")

from idaes.core.surrogate.keras_surrogate import KerasSurrogate  # noqa: E402
from idaes.core.surrogate.onnx_surrogate import ONNXSurrogate  # noqa: E402
from idaes.core.surrogate.sampling.scaling import OffsetScaler  # noqa: E402
from idaes.core.surrogate.surrogate_block import SurrogateBlock  # noqa: E402

from pyomo_relu import ModelLoadError, UnsupportedOperatorError  # noqa: E402
from pyomo_relu.idaes import ReLUSurrogate  # noqa: E402
from pyomo_relu.solvers import solve  # noqa: E402

DATA = Path(__file__).parent / "data" / "idaes"

CALCITE_INPUTS = {
    "feed_pH": 9.5,
    "pressure_bar_feed": 1.01325,
    "Na": 0.230858556000748,
    "Cl": 0.106701648328453,
    "Ca": 0.0245274696499109,
    "Mg": 0.0311348703689873,
    "HCO3": 0.430482141673564,
    "SO4": 0.182204065,
    "K": 0.000500561,
    "Sr": 0.000761853,
    "Ba": 2.50e-05,
    "HCl": 10,
}
CALCITE_ST = 40.4270772546529

T_SCALERS = (
    {"Temperature_K": 369.873737},
    {"Temperature_K": 5.776343},
    {"EnthMol": 59519.621464, "VapFrac": 0.556033},
    {"EnthMol": 14805.365235, "VapFrac": 0.432934},
)
PT_SCALERS = (
    {"Temperature_K": 369.983611, "Pressure_Pa": 111421.319811},
    {"Temperature_K": 5.836047, "Pressure_Pa": 5917.954504},
    {"EnthMol": 54599.629980, "VapFrac": 0.403307},
    {"EnthMol": 14654.226615, "VapFrac": 0.430181},
)
T_X = pd.DataFrame({"Temperature_K": [365, 370, 375]})
PT_X = pd.DataFrame({"Temperature_K": [360, 370, 380], "Pressure_Pa": [1.05 * 101325, 1.10 * 101325, 1.15 * 101325]})
KERAS_CASES = {
    "T_data_1_10_10_2_sigmoid": (
        T_SCALERS,
        T_X,
        {"Temperature_K": (360, 380)},
        [43156.97282890834, 63948.72663184423, 74702.24552784403],
        [0.07331117299318313, 0.6918295409849882, 1.000048027182579],
    ),
    "T_data_1_10_10_2_relu": (
        T_SCALERS,
        T_X,
        {"Temperature_K": (360, 380)},
        [40938.491053831465, 63519.26581801092, 74745.56414331967],
        [0.005596130031824131, 0.6987006701708436, 0.9976383677420616],
    ),
    "PT_data_2_10_10_2_sigmoid": (
        PT_SCALERS,
        PT_X,
        {"Temperature_K": (360.0, 380.0), "Pressure_Pa": (101325.0, 1.2 * 101325.0)},
        [40236.16508772767, 48622.339003030225, 75320.3854834533],
        [-0.001982489345431271, 0.21764500665882233, 1.0025723664236068],
    ),
    "PT_data_2_10_10_2_relu": (
        PT_SCALERS,
        PT_X,
        {"Temperature_K": (360.0, 380.0), "Pressure_Pa": (101325.0, 1.2 * 101325.0)},
        [40138.906193322684, 48418.02972793587, 75247.95294182807],
        [0.002497340527117309, 0.2117767154205442, 0.9989431696164608],
    ),
}


def keras_folder(tmp_path: Path, name: str) -> Path:
    """A KerasSurrogate folder written by IDAES's own save_to_folder."""
    (in_off, in_fac, out_off, out_fac), _, bounds, _, _ = KERAS_CASES[name]
    labels = list(in_off)
    surrogate = KerasSurrogate(
        keras.saving.load_model(DATA / f"{name}.keras", compile=False),
        input_labels=labels,
        output_labels=["EnthMol", "VapFrac"],
        input_bounds=bounds,
        input_scaler=OffsetScaler(labels, pd.Series(in_off), pd.Series(in_fac)),
        output_scaler=OffsetScaler(["EnthMol", "VapFrac"], pd.Series(out_off), pd.Series(out_fac)),
    )
    folder = tmp_path / name
    folder.mkdir()
    surrogate.save_to_folder(str(folder))
    return folder


@pytest.mark.parametrize("name", sorted(KERAS_CASES))
def test_keras_surrogate_folders_reproduce_idaes_values(tmp_path, name):
    _, x, bounds, enth, vap = KERAS_CASES[name]
    folder = keras_folder(tmp_path, name)
    assert sorted(p.name for p in folder.iterdir()) == ["idaes_info.json", "idaes_keras_model.keras"]
    surrogate = ReLUSurrogate.from_idaes(folder)  # KerasSurrogate's default model name
    assert surrogate.input_labels() == list(x.columns)
    assert surrogate.output_labels() == ["EnthMol", "VapFrac"]
    assert surrogate.input_bounds() == {k: tuple(map(float, v)) for k, v in bounds.items()}
    y = surrogate.evaluate_surrogate(x)
    expected = pd.DataFrame({"EnthMol": enth, "VapFrac": vap})
    pd.testing.assert_frame_equal(y, expected, rtol=1e-4, atol=1e-4)


def test_onnx_pair_shipped_by_idaes_reproduces_its_value():
    surrogate = ReLUSurrogate.from_idaes(DATA, "net_Calcite_ST")
    assert surrogate.network.layers[0].activation == "tanh" and len(surrogate.network.layers) == 6
    info = json.loads((DATA / "net_Calcite_ST_idaes_info.json").read_text())
    assert surrogate.input_labels() == info["input_labels"]
    assert surrogate.input_bounds()["HCl"] == (0.0, 2000.0)
    y = surrogate.evaluate_surrogate(pd.DataFrame({k: [v] for k, v in CALCITE_INPUTS.items()}))
    assert y["Calcite_ST"][0] == pytest.approx(CALCITE_ST, rel=1e-3)


def test_onnx_pair_written_by_idaes_save_to_folder(tmp_path):
    ONNXSurrogate.load_onnx_model(str(DATA), "net_Calcite_ST").save_to_folder(str(tmp_path), "resaved")
    surrogate = ReLUSurrogate.from_idaes(tmp_path, "resaved")
    y = surrogate.evaluate_surrogate(pd.DataFrame({k: [v] for k, v in CALCITE_INPUTS.items()}))
    assert y["Calcite_ST"][0] == pytest.approx(CALCITE_ST, rel=1e-3)


def test_to_idaes_is_read_by_idaes_load_onnx_model(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    ours = ReLUSurrogate.from_idaes(keras_folder(tmp_path, "PT_data_2_10_10_2_sigmoid"))
    model_path, info_path = ours.to_idaes(tmp_path / "out", "pt_sigmoid")
    assert Path(info_path).name == "pt_sigmoid_idaes_info.json"
    theirs = ONNXSurrogate.load_onnx_model(str(tmp_path / "out"), "pt_sigmoid")
    assert theirs.input_labels() == ours.input_labels() and theirs.output_labels() == ours.output_labels()
    assert {k: tuple(v) for k, v in theirs.input_bounds().items()} == ours.input_bounds()
    x = PT_X
    scaled = theirs._input_scaler.scale(x).to_numpy()
    y = ort.InferenceSession(model_path).run(None, {"input": scaled})[0]
    y = theirs._output_scaler.unscale(pd.DataFrame(y, columns=theirs.output_labels()))
    pd.testing.assert_frame_equal(y, ours.evaluate_surrogate(x), rtol=1e-12, atol=1e-9)
    # IDAES builds its own OMLT block from the file
    m = pe.ConcreteModel()
    m.surrogate = SurrogateBlock()
    m.surrogate.build_model(theirs, formulation=ONNXSurrogate.Formulation.FULL_SPACE)
    # and reading our pair back gives the same network exactly
    again = ReLUSurrogate.from_idaes(tmp_path / "out", "pt_sigmoid")
    assert again.network.content_hash() == ours.network.content_hash()


def test_folder_with_both_layouts_or_none_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="no IDAES surrogate named 'nothing'"):
        ReLUSurrogate.from_idaes(tmp_path, "nothing")
    folder = keras_folder(tmp_path, "T_data_1_10_10_2_relu")
    ReLUSurrogate.from_idaes(folder).to_idaes(folder, "idaes_keras_model")
    with pytest.raises(ModelLoadError, match="format='keras' or format='onnx'"):
        ReLUSurrogate.from_idaes(folder)
    assert ReLUSurrogate.from_idaes(folder, format="onnx").network.layers[0].activation == "relu"


def test_mismatched_scaler_columns_are_refused(tmp_path):
    folder = keras_folder(tmp_path, "T_data_1_10_10_2_relu")
    info = json.loads((folder / "idaes_info.json").read_text())
    info["input_scaler"]["expected_columns"] = ["T"]
    (folder / "idaes_info.json").write_text(json.dumps(info))
    with pytest.raises(ModelLoadError, match="expected_columns"):
        ReLUSurrogate.from_idaes(folder)


def test_lambda_layer_folder_is_refused(tmp_path):
    folder = keras_folder(tmp_path, "T_data_1_10_10_2_relu")
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(2), keras.layers.Lambda(lambda t: t * 2.0, name="doubler")]
    )
    model.save(folder / "idaes_keras_model.keras")
    with pytest.raises(ModelLoadError, match="Lambda"):
        ReLUSurrogate.from_idaes(folder)


def test_custom_object_folder_is_refused(tmp_path):
    folder = keras_folder(tmp_path, "T_data_1_10_10_2_relu")
    path = folder / "idaes_keras_model.keras"
    with zipfile.ZipFile(path) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(files["config.json"])
    layer = config["config"]["layers"][1]
    layer.update(module="my_company.layers", class_name="SecretDense", registered_name="my_company>SecretDense")
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in files.items():
            archive.writestr(n, data)
    with pytest.raises(ModelLoadError, match="SecretDense"):
        ReLUSurrogate.from_idaes(folder)


def test_to_idaes_refuses_what_omlt_cannot_read(tmp_path):
    from pyomo_relu import DenseLayer, NetworkDefinition

    net = NetworkDefinition(
        [DenseLayer([[1.0], [2.0]], [0.0, 0.0], ["relu", "tanh"]), DenseLayer([[1.0, 1.0]], [0.0], "linear")],
        input_bounds=[(0, 1)],
    )
    with pytest.raises(UnsupportedOperatorError, match="mixed"):
        ReLUSurrogate(net).to_idaes(tmp_path, "mixed")


def test_sigmoid_surrogate_optimised_with_pwl_has_a_certified_interval(tmp_path):
    surrogate = ReLUSurrogate.from_idaes(keras_folder(tmp_path, "T_data_1_10_10_2_sigmoid"))
    m = pe.ConcreteModel()
    m.T = pe.Var(bounds=(360, 380))
    m.H = pe.Var()
    m.V = pe.Var()
    m.s = SurrogateBlock()
    m.s.build_model(
        surrogate,
        input_vars=[m.T],
        output_vars=[m.H, m.V],
        formulation=("pwl", {"tolerance": 1e-3}),
        bounds=["interval", "crown"],
    )
    m.obj = pe.Objective(expr=m.V, sense=pe.maximize)
    cert = solve(m).certified
    grid = pd.DataFrame({"Temperature_K": np.linspace(360, 380, 4001)})
    best = float(surrogate.evaluate_surrogate(grid)["VapFrac"].max())
    assert cert.upper >= best - 1e-9 and cert.lower <= best + 1e-6
    assert cert.gap < 0.01
    assert pe.value(m.V) == pytest.approx(cert.value)  # the model holds the true-feasible point
    assert float(
        surrogate.evaluate_surrogate(pd.DataFrame({"Temperature_K": [pe.value(m.T)]}))["VapFrac"][0]
    ) == pytest.approx(cert.value, abs=1e-9)


def test_tanh_flowsheet_example_certifies_the_grid_optimum(capsys):
    """examples/idaes_tanh_flowsheet.py, shortened: a Keras tanh model saved by IDAES, read, certified."""
    import importlib.util
    import sys

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("idaes_tanh_flowsheet", root / "examples" / "idaes_tanh_flowsheet.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = module.main(["--epochs", "40", "--tolerances", "0.05", "0.005"])  # raises if the grid optimum is outside
    rows = out["rows"]
    assert [r["certified"].gap for r in rows][1] < rows[0]["certified"].gap
    assert all(r["status"] == "optimal" for r in rows)
    assert "certified interval" in capsys.readouterr().out
