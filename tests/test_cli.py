"""The ``pyomo-relu`` command line: answers, JSON shape, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyomo_relu.cli import main, parse_bounds

PEAKS = Path(__file__).parent / "data" / "relumip" / "peaks_3x10.onnx"
PEAKS_H5 = Path(__file__).parent / "data" / "relumip" / "peaks_3x10.h5"


def run_json(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_minimize_json_matches_known_optimum(capsys):
    code, report = run_json(capsys, "optimize", str(PEAKS), "--bounds", "-3:3", "--minimize", "0")
    assert code == 0
    assert set(report) >= {"status", "objective", "bound", "gap", "nodes", "x", "y", "seconds", "method"}
    assert report["status"] == "optimal" and report["method"] == "bnb"
    assert report["bound"] <= report["objective"] and report["gap"] <= 1e-6 and report["nodes"] >= 1
    assert report["objective"] == pytest.approx(-7.214193, abs=1e-5)
    assert report["x"] == pytest.approx([0.286948, -1.605387], abs=1e-4)
    assert report["y"][0] == pytest.approx(report["objective"], abs=1e-6)


def test_milp_route_with_default_auto_bounds_agrees_with_bnb(capsys):
    code, milp = run_json(capsys, "optimize", str(PEAKS), "--bounds", "-3:3", "--maximize", "0", "--method", "milp")
    assert code == 0 and milp["status"] == "optimal" and milp["method"] == "milp"
    code, bnb = run_json(capsys, "optimize", str(PEAKS), "--bounds", "-3:3", "--maximize", "0", "--gap", "1e-4")
    assert code == 0 and bnb["status"] == "optimal" and bnb["gap"] <= 1e-4
    assert bnb["objective"] == pytest.approx(milp["objective"], abs=1e-4)


def test_maximize_keras_file_with_tightening_and_other_solver(capsys):
    code, report = run_json(
        capsys,
        "optimize",
        str(PEAKS_H5),
        "--bounds",
        "-3:3",
        "--maximize",
        "0",
        "--method",
        "milp",
        "--solver",
        "glpk",
        "--tighten",
        "interval",
    )
    assert code == 0 and report["status"] == "optimal"
    assert report["objective"] == pytest.approx(8.580816, abs=1e-5)


def test_per_input_bounds_and_bounds_file(tmp_path, capsys):
    box = tmp_path / "box.json"
    box.write_text(json.dumps([[0, 1], [-3, 3]]))
    code, report = run_json(capsys, "optimize", str(PEAKS), "--bounds-file", str(box), "--minimize", "0")
    assert code == 0
    assert 0 <= report["x"][0] <= 1
    code, tighter = run_json(
        capsys, "optimize", str(PEAKS), "--bounds-file", str(box), "--bounds", "1=-1:1", "--minimize", "0"
    )
    assert -1 - 1e-9 <= tighter["x"][1] <= 1 + 1e-9
    assert tighter["objective"] >= report["objective"] - 1e-9


def test_text_output(capsys):
    assert main(["optimize", str(PEAKS), "--bounds=-3:3", "--maximize", "0"]) == 0
    out = capsys.readouterr().out
    assert "status:    optimal" in out and "8.5808" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["optimize", "missing.onnx", "--bounds", "-3:3", "--minimize", "0"], "does not exist"),
        (["optimize", str(PEAKS), "--minimize", "0"], "--bounds LB:UB"),
        (["optimize", str(PEAKS), "--bounds", "-3", "--minimize", "0"], "expected LB:UB"),
        (["optimize", str(PEAKS), "--bounds", "-3:x", "--minimize", "0"], "not a number"),
        (["optimize", str(PEAKS), "--bounds", "-3:3", "--minimize", "5"], "out of range"),
        (["optimize", str(PEAKS), "--bounds", "7=-3:3", "--minimize", "0"], "network has 2 inputs"),
        (
            ["optimize", str(PEAKS), "--bounds", "-3:3", "--minimize", "0", "--method", "milp", "--tighten", "magic"],
            "unknown bounds method",
        ),
        (["optimize", str(PEAKS), "--bounds", "-3:3", "--minimize", "0", "--solver", "glpk"], "--method milp"),
        (
            ["optimize", str(PEAKS), "--bounds", "-3:3", "--minimize", "0", "--method", "milp", "--gap", "0.1"],
            "--method bnb",
        ),
    ],
)
def test_bad_input_is_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_negative_gap_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["optimize", str(PEAKS), "--bounds", "-3:3", "--minimize", "0", "--gap", "-1"])
    assert stop.value.code == 2 and "gap" in capsys.readouterr().err


def test_garbage_model_file(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx model at all")
    assert main(["optimize", str(bad), "--bounds", "-1:1", "--minimize", "0"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_parse_bounds_forms():
    assert parse_bounds(["-3:3", "0=-1:2.5"], None) == {"all": (-3.0, 3.0), 0: (-1.0, 2.5)}


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "pyomo_relu", "--version"], capture_output=True, text=True, check=True)
    assert "pyomo-relu" in done.stdout
