"""Tests of the VNN-LIB reader (pyomo_relu.verify.vnnlib) against independent regex counts."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pyomo_relu.errors import PyomoReluError
from pyomo_relu.verify.vnnlib import (
    VnnlibError,
    format_counterexample,
    parse_counterexample,
    parse_vnnlib,
    read_counterexample,
    read_vnnlib,
)

DATA = Path(__file__).parent / "data"
PROPERTY_FILES = sorted(DATA.glob("*/vnnlib/*.vnnlib"))
COUNTEREXAMPLES = sorted(DATA.glob("*/counterexamples/*.txt"))
HEADER = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
BOX = "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 2))\n"


def _expected_from_regex(text: str) -> dict:
    """What the file says, read with simple regexes (independently of the parser)."""
    text = re.sub(r";[^\n]*", "", text)
    n_in = len(re.findall(r"declare-const X_\d+ Real", text))
    n_out = len(re.findall(r"declare-const Y_\d+ Real", text))
    lower, upper = np.full(n_in, np.nan), np.full(n_in, np.nan)
    for op, i, value in re.findall(r"\(assert \((<=|>=) X_(\d+) ([-+0-9.eE]+)\)\)", text):
        (upper if op == "<=" else lower)[int(i)] = float(value)
    or_block = re.search(r"\(assert \(or(.*)", text, re.S)
    if or_block:
        terms = re.findall(r"\(and((?:\s*\([<>]=[^()]*\))+)\)", or_block.group(1))
        rows = [len(re.findall(r"\([<>]=", term)) for term in terms]
    else:
        rows = [len(re.findall(r"\(assert \([<>]= Y_\d+", text))]
    return {"n_in": n_in, "n_out": n_out, "lower": lower, "upper": upper, "rows": rows}


@pytest.mark.parametrize("path", PROPERTY_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_shared_property_files(path: Path) -> None:
    text = path.read_text()
    expected = _expected_from_regex(text)
    spec = read_vnnlib(path)
    assert (spec.n_inputs, spec.n_outputs) == (expected["n_in"], expected["n_out"])
    assert len(spec.cases) == 1
    lower, upper = spec.input_boxes[0]
    np.testing.assert_array_equal(lower, expected["lower"])
    np.testing.assert_array_equal(upper, expected["upper"])
    assert [p.n_rows for p in spec.cases[0].polytopes] == expected["rows"]
    for polytope in spec.polytopes:  # every row compares two outputs or an output and a constant
        assert polytope.A.shape[1] == spec.n_outputs
        assert np.all(np.count_nonzero(polytope.A, axis=1) >= 1)


def test_mnist_property_is_robustness_around_label() -> None:
    spec = read_vnnlib(DATA / "mnist_fc" / "vnnlib" / "prop_0_0.03.vnnlib")
    label = int(re.search(r"label: (\d+)", (DATA / "mnist_fc" / "vnnlib" / "prop_0_0.03.vnnlib").read_text()).group(1))
    others = [j for j in range(10) if j != label]
    assert len(spec.polytopes) == 9
    for j, polytope in zip(others, spec.polytopes):  # (>= Y_j Y_label)  <=>  Y_label - Y_j <= 0
        expected = np.zeros(10)
        expected[label], expected[j] = 1.0, -1.0
        np.testing.assert_array_equal(polytope.A[0], expected)
        assert polytope.b[0] == 0.0
    lower, upper = spec.input_boxes[0]
    assert np.all(upper - lower <= 0.06 + 1e-6) and np.all(lower >= 0) and np.all(upper <= 1)


def test_acasxu_property_1_is_one_bound_on_y0() -> None:
    spec = read_vnnlib(DATA / "acasxu" / "vnnlib" / "prop_1.vnnlib")
    (polytope,) = spec.polytopes
    np.testing.assert_array_equal(polytope.A, [[-1.0, 0, 0, 0, 0]])  # Y_0 >= 3.99...  <=> -Y_0 <= -3.99...
    assert polytope.b[0] == pytest.approx(-3.991125645861615, abs=0)


@pytest.mark.parametrize("path", [p for p in PROPERTY_FILES if p.stat().st_size > 50_000][:3], ids=lambda p: p.name)
def test_large_files_parse_fast(path: Path) -> None:
    read_vnnlib(path)  # warm-up
    best = min(_timed(lambda: read_vnnlib(path)) for _ in range(3))
    assert best < 0.05, f"{path.name} took {best * 1e3:.1f} ms (limit 50 ms)"


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


# ------------------------------------------------------------ richer syntax
def test_linear_combinations_and_constants_on_either_side() -> None:
    spec = parse_vnnlib(
        HEADER
        + BOX
        + """
        (assert (<= (+ Y_0 (* 2 Y_1) (- 1.5)) 3))
        (assert (>= (- Y_0 Y_1) 0.5))
        (assert (<= 0.25 (* -1 Y_1)))
        (assert (>= (/ Y_0 4) (- Y_1)))
    """
    )
    (polytope,) = spec.polytopes
    np.testing.assert_allclose(polytope.A, [[1, 2], [-1, 1], [0, 1], [-0.25, -1]])
    np.testing.assert_allclose(polytope.b, [4.5, -0.5, -0.25, 0.0])


def test_scaled_and_reversed_input_bounds() -> None:
    spec = parse_vnnlib(
        HEADER
        + """
        (assert (<= (* 2 X_0) 1)) (assert (<= -3 X_0))
        (assert (>= (* -1 X_1) -4)) (assert (> X_1 (- 2)))
        (assert (<= Y_0 Y_1))
    """
    )
    lower, upper = spec.input_boxes[0]
    np.testing.assert_allclose(lower, [-3, -2])
    np.testing.assert_allclose(upper, [0.5, 4])


def test_disjunction_of_input_boxes_gives_cases() -> None:
    """ACAS Xu property 6 style: two boxes, one output region."""
    spec = parse_vnnlib(
        HEADER
        + """
        (assert (or (and (>= X_0 -1) (<= X_0 -0.5) (>= X_1 0) (<= X_1 1))
                    (and (>= X_0 0.5) (<= X_0 1) (>= X_1 0) (<= X_1 1))))
        (assert (<= Y_0 Y_1))
    """
    )
    assert len(spec.cases) == 2
    boxes = sorted((tuple(lo), tuple(hi)) for lo, hi in spec.input_boxes)
    assert boxes == [((-1.0, 0.0), (-0.5, 1.0)), ((0.5, 0.0), (1.0, 1.0))]
    assert len(spec.polytopes) == 1
    assert all(len(case.polytopes) == 1 for case in spec.cases)


def test_or_terms_mixing_inputs_and_outputs() -> None:
    spec = parse_vnnlib(
        HEADER
        + BOX
        + """
        (assert (or (and (<= X_0 0) (>= Y_0 1))
                    (and (>= X_0 0) (>= Y_1 1))
                    (and (>= X_0 0) (<= Y_1 -1))))
    """
    )
    assert len(spec.cases) == 2
    by_box = {float(case.upper[0]): case for case in spec.cases}
    assert len(by_box[0.0].polytopes) == 1 and len(by_box[1.0].polytopes) == 2
    np.testing.assert_array_equal(by_box[0.0].polytopes[0].A, [[-1.0, 0.0]])


def test_and_of_ors_is_multiplied_out_and_empty_boxes_dropped() -> None:
    spec = parse_vnnlib(
        HEADER
        + BOX
        + """
        (assert (or (<= X_0 -2) (>= X_0 0)))
        (assert (or (<= Y_0 0) (<= Y_1 0)))
    """
    )
    assert len(spec.cases) == 1  # X_0 <= -2 contradicts X_0 >= -1
    assert spec.cases[0].lower[0] == 0.0 and len(spec.cases[0].polytopes) == 2


def test_no_output_constraint_means_every_output_is_unsafe() -> None:
    spec = parse_vnnlib(HEADER + BOX)
    (polytope,) = spec.polytopes
    assert polytope.n_rows == 0 and polytope.margin([5.0, -5.0]) == np.inf


# ---------------------------------------------------------------- malformed
@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (HEADER + BOX + "(assert (<= Y_0 Y_1)\n", 9, "never closed"),
        (HEADER + BOX + "(assert (<= Y_0 Y_1)))\n", 9, "unexpected ')'"),
        (HEADER + BOX + "\n(assert (<= Y_0 Y_7))\n", 10, "unknown variable 'Y_7'"),
        (HEADER + BOX + "(assert\n  (<= Y_0 zero))\n", 10, "unknown variable 'zero'"),
        (HEADER + BOX + "(assert (<= Y_0 0.5.1))\n", 9, "expected a number, found '0.5.1'"),
        (HEADER + BOX + "(assert (<= Y_0 1e))\n", 9, "expected a number"),
        (HEADER + "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n", 2, "X_1 has no upper bound"),
        (HEADER + "(assert (>= X_0 -1))\n", 1, "X_0 has no upper bound"),
        (HEADER + BOX + "(assert (<= (+ X_0 X_1) 1))\n", 9, "coupling several inputs"),
        (HEADER + BOX + "(assert (<= X_0 Y_1))\n", 9, "mixing inputs and outputs"),
        (HEADER + BOX + "(assert (<= (* Y_0 Y_1) 1))\n", 9, "multiplies two variables"),
        (HEADER + BOX + "(assert (not (<= Y_0 1)))\n", 9, "expected and, or"),
        (HEADER + BOX + "(check-sat)\n", 9, "expected (declare-const"),
        ("(declare-const X_0 Int)\n", 1, "expected type Real"),
        ("(declare-const X_0 Real)\n(declare-const X_0 Real)\n", 2, "already declared"),
        ("(declare-const X_1 Real)\n(assert (<= X_1 1))\n", 1, "X_0 is not"),
        (HEADER + BOX + "(assert (<= Y_0))\n", 9, "expected (<= TERM TERM)"),
    ],
)
def test_malformed_inputs_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(VnnlibError) as info:
        parse_vnnlib(text)
    message = str(info.value)
    assert f"line {line}:" in message, message
    assert words in message, message
    assert isinstance(info.value, PyomoReluError)


def test_read_vnnlib_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.vnnlib"
    path.write_text(HEADER + "(assert (<= X_9 1))\n")
    with pytest.raises(VnnlibError, match=r"bad\.vnnlib: line 5: unknown variable 'X_9'"):
        read_vnnlib(path)
    with pytest.raises(VnnlibError, match="cannot read"):
        read_vnnlib(tmp_path / "missing.vnnlib")


# ------------------------------------------------------------- round trips
@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    st.lists(
        st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.floats(-5, 5)), min_size=1, max_size=3),
        min_size=1,
        max_size=3,
    ),
)
def test_written_polytopes_read_back(n_in: int, n_out: int, terms: list) -> None:
    """Polytopes written as VNN-LIB text (random coefficients) come back unchanged."""
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    lines += [f"(assert (>= X_{i} {-i - 1}))\n(assert (<= X_{i} {i + 1}))" for i in range(n_in)]
    expected = []
    conjunctions = []
    for term in terms:
        A, b, atoms = [], [], []
        for a, c, rhs in term:
            row = np.zeros(n_out)
            row[0] += a
            row[n_out - 1] += c
            assume(np.any(row != 0))  # an atom without outputs is a constant, not a row
            A.append(row)
            b.append(rhs)
            atoms.append(f"(<= (+ (* {a} Y_0) (* {c} Y_{n_out - 1})) {rhs!r})")
        expected.append((np.array(A), np.array(b)))
        conjunctions.append("(and " + " ".join(atoms) + ")")
    lines.append("(assert (or " + " ".join(conjunctions) + "))")
    spec = parse_vnnlib("\n".join(lines))
    got = {p.key(): p for p in spec.polytopes}
    assert len(got) == len({(A.tobytes(), b.tobytes()) for A, b in expected})
    for A, b in expected:
        assert any(np.array_equal(p.A, A) and np.array_equal(p.b, b) for p in got.values())
    np.testing.assert_array_equal(spec.input_boxes[0][0], -np.arange(1, n_in + 1))


def test_counterexample_files_read_and_round_trip() -> None:
    assert COUNTEREXAMPLES, "the shared counterexample files are missing"
    for path in COUNTEREXAMPLES:
        x, y = read_counterexample(path)
        spec_name = "prop_2.vnnlib" if "acasxu" in str(path) else "prop_1_0.03.vnnlib"
        spec = read_vnnlib(path.parent.parent / "vnnlib" / spec_name)
        assert (x.size, y.size) == (spec.n_inputs, spec.n_outputs)
        x2, y2 = parse_counterexample("sat\n" + format_counterexample(x, y))
        np.testing.assert_array_equal(x2, x)
        np.testing.assert_array_equal(y2, y)


def test_bad_counterexample_text() -> None:
    with pytest.raises(VnnlibError, match="expected a number"):
        parse_counterexample("((X_0 abc))")
    with pytest.raises(VnnlibError, match="numbered"):
        parse_counterexample("((X_0 1) (X_2 1) (Y_0 0))")
