"""Fuzzing of everything that reads user input: ONNX models, VNN-LIB text, ``.keras`` archives,
bounds files and command-line arguments.

Every case must end in a valid result or one of the package's own exceptions
(:class:`~pyomo_relu.errors.PyomoReluError`): never a ``KeyError``, ``IndexError``,
``AttributeError``, a NumPy error, a hang (each case has a hard time limit) or a traceback
from the CLI.  Accepted ONNX models that onnxruntime also runs must give its outputs.

CI runs a few hundred cases in about a minute; ``PYOMO_RELU_FUZZ_EXAMPLES=5000`` runs that
many per test (not derandomised: each run explores new cases), and
``PYOMO_RELU_FUZZ_REPORT=counts.json`` writes how many cases of each kind ran and how they
ended.  ``benchmarks/RESULTS.md`` (section "Fuzzing") records a large run and what it found.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from pyomo_relu.errors import PyomoReluError

DATA = Path(__file__).parent / "data"
LAMBDA_MARKER = "pyomo_relu_fuzz_lambda_ran"
EXAMPLES = int(os.environ.get("PYOMO_RELU_FUZZ_EXAMPLES", "0"))
#: Seconds one case may take before it counts as a hang.
CASE_LIMIT = 20.0
COUNTS: dict[str, Counter] = {}


def _settings(ci_examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or ci_examples,
        deadline=None,
        derandomize=not EXAMPLES,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


class Hang(BaseException):
    """A case ran past :data:`CASE_LIMIT` (a BaseException, so no ``except Exception`` swallows it)."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _outcome(kind: str, call: Callable[[], Any]) -> Any:
    """Run one case: its result, or ``None`` when it raised a PyomoReluError (anything else fails)."""
    counts = COUNTS.setdefault(kind, Counter())
    counts["cases"] += 1
    with _time_limit(CASE_LIMIT):
        try:
            result = call()
        except PyomoReluError as error:
            counts[f"refused: {type(error).__name__}"] += 1
            assert str(error).strip(), "an error must say what is wrong"
            return None
    counts["accepted"] += 1
    return result


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    path = os.environ.get("PYOMO_RELU_FUZZ_REPORT")
    if path:
        old = json.loads(Path(path).read_text()) if Path(path).exists() else {}
        old.update({kind: dict(sorted(c.items())) for kind, c in COUNTS.items()})
        Path(path).write_text(json.dumps(old, indent=1))


# ------------------------------------------------------------------------ ONNX
def _tensor(name: str, values: object, dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _model(nodes: list, input_shape: list, output_shape: list, initializers: list, opset: int = 13) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "fuzz",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _base_models() -> list[onnx.ModelProto]:
    """Small valid models covering the reader's operators (and one file from a real exporter)."""
    rng = np.random.default_rng(0)
    r = lambda *shape: rng.normal(size=shape)  # noqa: E731
    mlp = _model(
        [
            helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1", transB=1),
            helper.make_node("Relu", ["h"], ["a"], name="relu1"),
            helper.make_node("Gemm", ["a", "W2", "b2"], ["y"], name="fc2", transB=1),
        ],
        ["N", 3],
        ["N", 2],
        [_tensor("W1", r(4, 3)), _tensor("b1", r(4)), _tensor("W2", r(2, 4)), _tensor("b2", r(2))],
    )
    mixed = _model(
        [
            helper.make_node("Sub", ["x", "mu"], ["c"], name="centre"),
            helper.make_node("Div", ["c", "sd"], ["z"], name="scale"),
            helper.make_node("MatMul", ["z", "W1"], ["m"], name="mm1"),
            helper.make_node("Add", ["m", "b1"], ["h"], name="add1"),
            helper.make_node("LeakyRelu", ["h"], ["a"], name="leaky", alpha=0.1),
            helper.make_node("MatMul", ["a", "W2"], ["g"], name="mm2"),
            helper.make_node("Clip", ["g", "lo", "hi"], ["k"], name="clip"),
            helper.make_node("Reshape", ["k", "shape"], ["y"], name="reshape"),
        ],
        [1, 4],
        [1, 3],
        [
            _tensor("mu", r(4)),
            _tensor("sd", np.abs(r(4)) + 0.5),
            _tensor("W1", r(4, 5)),
            _tensor("b1", r(5)),
            _tensor("W2", r(5, 3)),
            _tensor("lo", -0.5),
            _tensor("hi", 0.5),
            _tensor("shape", [1, 3], np.int64),
        ],
    )
    cnn = _model(
        [
            helper.make_node("Conv", ["x", "K", "kb"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1]),
            helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], name="bn"),
            helper.make_node("Relu", ["n"], ["a"], name="relu"),
            helper.make_node("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
            helper.make_node("Gemm", ["f", "W", "b"], ["y"], name="head", transB=1),
        ],
        [1, 1, 4, 4],
        [1, 2],
        [
            _tensor("K", r(2, 1, 3, 3)),
            _tensor("kb", r(2)),
            _tensor("gamma", r(2)),
            _tensor("beta", r(2)),
            _tensor("mean", r(2)),
            _tensor("var", np.abs(r(2)) + 0.1),
            _tensor("W", r(2, 8)),
            _tensor("b", r(2)),
        ],
    )
    residual = _model(
        [
            helper.make_node("AveragePool", ["x"], ["p"], name="avg", kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Flatten", ["p"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "W1", "b1"], ["h"], name="fc1", transB=1),
            helper.make_node("Relu", ["h"], ["a"], name="relu1"),
            helper.make_node("Gemm", ["a", "W2", "b2"], ["g"], name="fc2", transB=1),
            helper.make_node("Add", ["g", "h"], ["s"], name="skip"),
            helper.make_node("Relu", ["s"], ["t"], name="relu2"),
            helper.make_node("Concat", ["t", "f"], ["u"], name="cat", axis=1),
            helper.make_node("Gemm", ["u", "W3", "b3"], ["y"], name="fc3", transB=1),
        ],
        [1, 1, 4, 4],
        [1, 1],
        [
            _tensor("W1", r(3, 4)),
            _tensor("b1", r(3)),
            _tensor("W2", r(3, 3)),
            _tensor("b2", r(3)),
            _tensor("W3", r(1, 7)),
            _tensor("b3", r(1)),
        ],
    )
    return [mlp, mixed, cnn, residual, onnx.load(str(DATA / "relumip" / "peaks_3x10.onnx"))]


BASE_MODELS = [m.SerializeToString() for m in _base_models()]
ATTRIBUTES = [
    "transA",
    "transB",
    "alpha",
    "beta",
    "axis",
    "axes",
    "kernel_shape",
    "pads",
    "strides",
    "dilations",
    "group",
    "perm",
    "to",
    "auto_pad",
    "ceil_mode",
    "count_include_pad",
    "epsilon",
    "min",
    "max",
    "shape",
    "keepdims",
    "training_mode",
    "value",
    "storage_order",
]
OPS = [
    "Relu",
    "Gemm",
    "MatMul",
    "Add",
    "Mul",
    "Div",
    "Sub",
    "Conv",
    "MaxPool",
    "AveragePool",
    "Flatten",
    "Reshape",
    "Transpose",
    "Concat",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Softmax",
    "Sigmoid",
    "Identity",
    "Squeeze",
    "Unsqueeze",
    "BatchNormalization",
    "GlobalMaxPool",
    "Cast",
    "Shape",
    "Constant",
    "Abs",
    "Loop",
    "If",
    "NoSuchOp",
]
DTYPES = [
    TensorProto.UNDEFINED,
    TensorProto.FLOAT,
    TensorProto.DOUBLE,
    TensorProto.FLOAT16,
    TensorProto.INT64,
    TensorProto.INT32,
    TensorProto.INT8,
    TensorProto.UINT8,
    TensorProto.BOOL,
    TensorProto.STRING,
    TensorProto.COMPLEX64,
    TensorProto.BFLOAT16,
    999,
]
ints = st.sampled_from([-2, -1, 0, 1, 2, 3, 5, 7, 2**31 - 1, 10**6])
floats = st.sampled_from([0.0, -1.0, 0.5, 2.0, 1e30, -1e30, float("nan"), float("inf"), float("-inf"), 1e-40])
attribute_values = st.one_of(
    ints,
    floats,
    st.lists(ints, max_size=6),
    st.lists(floats, max_size=3),
    st.sampled_from(["", "VALID", "SAME_UPPER", "SAME_LOWER", "NOTSET", "x"]),
)
dims = st.lists(st.sampled_from([0, 1, 2, 3, 4, 8, -1, 10**7]), min_size=0, max_size=5)


@st.composite
def onnx_mutation(draw: st.DrawFn) -> tuple:
    kind = draw(
        st.sampled_from(
            [
                "attribute",
                "shape",
                "input_shape",
                "dtype",
                "drop_initializer",
                "cycle",
                "rewire",
                "op",
                "drop_node",
                "values",
                "opset",
                "domain",
                "extra_io",
            ]
        )
    )
    return (
        kind,
        draw(st.integers(0, 10**6)),
        draw(attribute_values),
        draw(st.sampled_from(ATTRIBUTES)),
        draw(dims),
        draw(st.sampled_from(DTYPES)),
        draw(st.sampled_from(OPS)),
    )


def _mutate(model: onnx.ModelProto, mutation: tuple) -> str:
    """Apply one mutation in place; returns what it did (for the failure report)."""
    kind, pick, value, attribute, new_dims, dtype, op = mutation
    graph = model.graph
    nodes, inits = graph.node, graph.initializer
    node = nodes[pick % len(nodes)] if nodes else None
    if kind == "attribute" and node is not None:
        for existing in list(node.attribute):
            if existing.name == attribute:
                node.attribute.remove(existing)
        try:
            node.attribute.append(helper.make_attribute(attribute, value))
        except (ValueError, TypeError):
            return "attribute: not representable"
        return f"node {node.name}: {attribute}={value!r}"
    if kind == "shape" and inits:
        tensor = inits[pick % len(inits)]
        del tensor.dims[:]
        tensor.dims.extend(d for d in new_dims if d >= 0)
        return f"initializer {tensor.name}: dims {list(tensor.dims)}"
    if kind in ("input_shape", "dtype") and not graph.input:
        return "no graph input left"
    if kind == "input_shape":
        shape = graph.input[0].type.tensor_type.shape
        del shape.dim[:]
        for d in new_dims:
            entry = shape.dim.add()
            if d >= 0:
                entry.dim_value = d
            else:
                entry.dim_param = "N"
        return f"input dims {new_dims}"
    if kind == "dtype":
        target = inits[pick % len(inits)] if inits and pick % 2 else None
        if target is not None:
            target.data_type = dtype
            return f"initializer {target.name}: dtype {dtype}"
        graph.input[0].type.tensor_type.elem_type = dtype
        return f"input dtype {dtype}"
    if kind == "drop_initializer" and inits:
        name = inits[pick % len(inits)].name
        del inits[pick % len(inits)]
        return f"dropped initializer {name}"
    if kind == "cycle" and node is not None and len(nodes) > 1:
        later = nodes[(pick // 7) % len(nodes)]
        node.input[pick % max(1, len(node.input))] = later.output[0]
        return f"node {node.name} reads {later.output[0]}"
    if kind == "rewire" and node is not None and node.input:
        node.input[pick % len(node.input)] = ["", "missing", "x", "y"][pick % 4]
        return f"node {node.name} input rewired"
    if kind == "op" and node is not None:
        node.op_type = op
        return f"node {node.name}: op {op}"
    if kind == "drop_node" and node is not None:
        nodes.remove(node)
        return f"dropped node {node.name}"
    if kind == "values" and inits:
        tensor = inits[pick % len(inits)]
        try:
            array = numpy_helper.to_array(tensor).astype(np.float64)
        except Exception:  # noqa: BLE001 - an earlier mutation broke it; leave it
            return "values: unreadable"
        flat = array.reshape(-1)
        if flat.size:
            flat[pick % flat.size] = value if isinstance(value, float) else float(pick % 5 - 2)
        tensor.CopyFrom(numpy_helper.from_array(array.astype(numpy_helper.to_array(tensor).dtype), tensor.name))
        return f"initializer {tensor.name} values changed"
    if kind == "opset":
        del model.opset_import[:]
        if pick % 3:
            model.opset_import.append(helper.make_opsetid("", pick % 25))
        return f"opset {[o.version for o in model.opset_import]}"
    if kind == "domain" and node is not None:
        node.domain = ["com.microsoft", "ai.onnx", "", "ai.onnx.ml"][pick % 4]
        return f"node {node.name}: domain {node.domain!r}"
    if kind == "extra_io":
        target = graph.input if pick % 2 else graph.output
        if pick % 3 == 0 and len(target) > 0:
            del target[0]
            return "removed a graph input/output"
        target.append(helper.make_tensor_value_info(f"extra{pick}", TensorProto.FLOAT, [1, 2]))
        return "added a graph input/output"
    return "no-op"


def _check_network(net: Any, model: onnx.ModelProto) -> None:
    """An accepted model: the forward pass runs, and agrees with onnxruntime when it runs the model too."""
    x = np.random.default_rng(1).uniform(-1, 1, size=(3, net.n_inputs))
    y = net.evaluate(x)
    assert y.shape == (3, net.n_outputs)
    net.summary(), net.canonical_layers, net.content_hash()
    expected = _onnxruntime(model, x, net.input_shape)
    if expected is not None and np.all(np.isfinite(expected)) and np.all(np.abs(expected) < 1e6):
        assert expected.shape == y.shape, (expected.shape, y.shape)
        assert np.allclose(y, expected, rtol=1e-3, atol=1e-3), (y, expected)


def _onnxruntime(model: onnx.ModelProto, x: np.ndarray, shape: tuple | None) -> np.ndarray | None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        rows = [
            np.asarray(session.run(None, {name: row.reshape(shape).astype(np.float32)})[0], float).ravel() for row in x
        ]
    except Exception:  # noqa: BLE001 - onnxruntime refusing a mutated model is fine
        return None
    return np.stack(rows)


@_settings(1000)
@given(base=st.sampled_from(range(len(BASE_MODELS))), mutations=st.lists(onnx_mutation(), min_size=1, max_size=3))
def test_mutated_onnx_models(base: int, mutations: list) -> None:
    from pyomo_relu.io.onnx import load_onnx

    model = onnx.ModelProto.FromString(BASE_MODELS[base])
    done = [_mutate(model, m) for m in mutations]
    try:
        model.SerializeToString()
    except Exception:  # noqa: BLE001 - protobuf cannot even write it: nothing to read
        return
    net = _outcome("onnx: mutated graph", lambda: load_onnx(model, input_bounds=None))
    if net is not None:
        _check_network(net, model)
    assert done


@_settings(300)
@given(
    base=st.sampled_from(range(len(BASE_MODELS))),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.integers(0, 10**6), max_size=4),
)
def test_truncated_and_corrupted_onnx_bytes(base: int, cut: float, flips: list, tmp_path_factory: Any) -> None:
    from pyomo_relu.io.onnx import load_onnx

    data = bytearray(BASE_MODELS[base])
    for flip in flips:
        data[flip % len(data)] ^= 0xFF
    data = data[: int(len(data) * cut)] if cut < 1.0 else data
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(bytes(data))
    _outcome("onnx: truncated/corrupted bytes", lambda: _loaded_and_used(load_onnx(path)))


def _loaded_and_used(net: Any) -> Any:
    net.evaluate(np.zeros(net.n_inputs))
    return net


def test_onnx_regressions() -> None:
    """Cases the fuzzer found (each crashed the reader with a non-package exception before its fix)."""
    from pyomo_relu.io.onnx import load_onnx

    for base, mutations, message in REGRESSIONS:
        model = onnx.ModelProto.FromString(BASE_MODELS[base])
        for mutation in mutations:
            _mutate(model, mutation)
        with pytest.raises(PyomoReluError, match=message):
            load_onnx(model)


#: (base model, mutations, expected message) that crashed the reader before it was fixed.
REGRESSIONS: list[tuple] = [
    # TypeError: 'int' object is not iterable (an INT where the schema says INTS)
    (
        2,
        [("attribute", 0, -2, "pads", [], 0, "Relu")],
        r"node 'conv' \(op Conv\): attribute 'pads' must be of type INTS",
    ),
    (2, [("attribute", 0, 3, "kernel_shape", [], 0, "Relu")], r"attribute 'kernel_shape' must be of type INTS"),
    # numpy ArrayMemoryError: a sparse identity of 10^14 entries for the input
    (0, [("input_shape", 0, 0, "axis", [1, 10**7, 10**7], 0, "Relu")], r"more than MAX_INPUT_SIZE"),
    # StopIteration: Unsqueeze with an axis named twice
    (1, [("op", 3, 0, "axis", [], 0, "Unsqueeze"), ("values", 0, 0, "axis", [], 0, "Relu")], r"Unsqueeze|axis"),
    # TypeError: int(None) for a Cast without 'to'
    (0, [("op", 0, 0, "axis", [], 0, "Cast")], r"node 'fc1' \(op Cast\) has no 'to' attribute"),
]


# --------------------------------------------------------------------- VNN-LIB
HEADER = "".join(f"(declare-const X_{i} Real)\n" for i in range(2)) + "".join(
    f"(declare-const Y_{j} Real)\n" for j in range(3)
)
VNNLIB_BASES = [
    HEADER + "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 2))\n"
    "(assert (or (and (>= Y_0 Y_1) (<= Y_2 0.5)) (and (<= (+ Y_0 (* 2 Y_1)) -3))))\n",
    HEADER + "(assert (and (>= X_0 -0.5) (<= X_0 0.5) (>= X_1 -1e-3) (<= X_1 1e-3)))\n"
    "(assert (<= (- Y_0 Y_2) (/ 1 3)))\n(assert (>= Y_1 -1.5e2)) ; comment\n",
    HEADER + "(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1))"
    " (and (>= X_0 2) (<= X_0 3) (>= X_1 2) (<= X_1 3))))\n"
    "(assert (> Y_0 Y_1))\n",
    (DATA / "acasxu" / "vnnlib" / "prop_2.vnnlib").read_text(),
]
TOKENS = [
    "(",
    ")",
    "(",
    ")",
    "and",
    "or",
    "assert",
    "declare-const",
    "Real",
    "Int",
    "X_0",
    "X_1",
    "X_7",
    "Y_0",
    "Y_2",
    "Y_9",
    "Z",
    "<=",
    ">=",
    "<",
    ">",
    "=",
    "+",
    "-",
    "*",
    "/",
    "0",
    "-1",
    "1e308",
    "1e999",
    "-1e999",
    "nan",
    "inf",
    "1e-320",
    "0x10",
    "1.5.2",
    ";",
    "\n",
    "  ",
    "\u00e9",
    "\x00",
]


@st.composite
def vnnlib_text(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(VNNLIB_BASES))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "truncate", "number"]))
        position = draw(st.integers(0, max(0, len(text) - 1)))
        if kind == "insert":
            text = text[:position] + " " + draw(st.sampled_from(TOKENS)) + " " + text[position:]
        elif kind == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 12)) :]
        elif kind == "replace":
            lines = text.split("\n")
            lines[position % len(lines)] = draw(st.sampled_from(TOKENS)).join(
                lines[position % len(lines)].split(" ", 1)
            )
            text = "\n".join(lines)
        elif kind == "duplicate":
            lines = text.split("\n")
            lines.insert(position % len(lines), lines[draw(st.integers(0, len(lines) - 1))])
            text = "\n".join(lines)
        elif kind == "truncate":
            text = text[:position]
        else:
            number = draw(
                st.one_of(
                    st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["1e999", "-0", "1e-400", "00012", ".5", "5.", "-.e3"]),
                )
            )
            text = text[:position] + " " + number + " " + text[position:]
    return text


@_settings(1500)
@given(text=vnnlib_text())
def test_mutated_vnnlib_text(text: str) -> None:
    from pyomo_relu.verify.vnnlib import parse_vnnlib

    spec = _outcome("vnnlib: mutated text", lambda: parse_vnnlib(text))
    if spec is not None:  # what is accepted is a well-formed, finite specification
        for case in spec.cases:
            assert np.all(np.isfinite(case.lower)) and np.all(np.isfinite(case.upper))
            assert np.all(case.lower <= case.upper)
            for polytope in case.polytopes:
                assert np.all(np.isfinite(polytope.A)) and np.all(np.isfinite(polytope.b))
                assert polytope.A.shape == (polytope.n_rows, spec.n_outputs)


@_settings(300)
@given(text=st.text(max_size=200))
def test_arbitrary_text_as_vnnlib_and_counterexample(text: str) -> None:
    from pyomo_relu.verify.vnnlib import parse_counterexample, parse_vnnlib

    _outcome("vnnlib: arbitrary text", lambda: parse_vnnlib(text))
    result = _outcome("counterexample: arbitrary text", lambda: parse_counterexample(text))
    if result is not None:
        assert all(np.all(np.isfinite(v)) for v in result)


def test_vnnlib_regressions() -> None:
    """Non-finite constants, overflowing coefficients and deep nesting name the line."""
    from pyomo_relu.verify.vnnlib import VnnlibError, parse_counterexample, parse_vnnlib

    box = "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 2))\n"
    cases = {
        HEADER + "(assert (<= X_0 1e999))\n": r"line 6: expected a finite number, found '1e999'",
        HEADER + box + "(assert (<= (* 1e300 1e300 Y_0) 1))\n": r"line 10: .*overflows",
        HEADER + box + "(assert (<= (/ Y_0 1e-320) 1))\n": r"line 10: .*overflows",
        HEADER + box + "(assert (<= (+ 1e308 1e308) Y_0))\n": r"line 10: .*overflows",
        HEADER + box + "(assert (<= " + "(+ " * 3000 + "Y_0" + ")" * 3000 + " 1))\n": r"line 10: .*nested too deeply",
        HEADER + box + "(assert (or (<= Y_0 1) (<= Y_1 1)))\n" * 20: r"more than 100000 cases",
    }
    for text, message in cases.items():
        with pytest.raises(VnnlibError, match=message):
            parse_vnnlib(text)
    for text, message in (
        (HEADER + "(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (<= X_1 inf))\n", r"line 8: "),
        (HEADER + "(assert (<= X_0 nan))\n", r"line 6: "),
    ):
        with pytest.raises(VnnlibError, match=message):
            parse_vnnlib(text)
    with pytest.raises(VnnlibError, match=r"line 1: expected a finite number, found 'nan'"):
        parse_counterexample("((X_0 nan) (Y_0 1.0))")


# ----------------------------------------------------------------------- Keras
@pytest.fixture(scope="module")
def keras_archive(tmp_path_factory: Any) -> tuple[dict[str, bytes], dict]:
    """The members of a small valid ``.keras`` archive (Dense-ReLU-Dense), and the config of a
    real ``Lambda`` layer whose marshalled code creates :data:`LAMBDA_MARKER` when it runs."""
    keras = pytest.importorskip("keras")
    folder = tmp_path_factory.mktemp("keras")
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, activation="relu", name="hidden"), keras.layers.Dense(2, name="head")]
    )
    model.save(folder / "model.keras")
    with zipfile.ZipFile(folder / "model.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    marker = str(folder / LAMBDA_MARKER)
    cwd = os.getcwd()
    os.chdir(folder)
    try:  # building the model runs the code once, here
        evil = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Lambda(lambda x: (open(LAMBDA_MARKER, "w").close(), x)[1], name="evil"),
                keras.layers.Dense(2),
            ]
        )
        evil.save(folder / "evil.keras")
    finally:
        os.chdir(cwd)
    assert os.path.exists(marker), "the Lambda code is a real, working function"
    os.remove(marker)
    layers = json.loads(zipfile.ZipFile(folder / "evil.keras").read("config.json"))["config"]["layers"]
    return members, next(layer for layer in layers if layer["class_name"] == "Lambda")


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 10**6),
        st.floats(allow_nan=True),
        st.sampled_from(["relu", "linear", "Lambda", "Dense", "float32", "", "nope"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["class_name", "config", "units", "name"]), inner, max_size=3),
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into a JSON value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


def _mutate_json(data: Any, path: tuple, action: str, value: Any) -> Any:
    """Replace or delete the entry at ``path`` (the root is replaced by ``value``)."""
    if not path:
        return value
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


@_settings(150)
@given(
    choice=st.integers(0, 10**6),
    action=st.sampled_from(["replace", "delete", "lambda", "truncate", "drop_member"]),
    value=JSON_VALUES,
)
def test_broken_keras_archives(
    keras_archive: tuple, choice: int, action: str, value: Any, tmp_path_factory: Any
) -> None:
    from pyomo_relu.io.keras import load_keras

    members, lambda_layer = dict(keras_archive[0]), keras_archive[1]
    config = json.loads(members["config.json"])
    if action == "lambda":
        layers = config["config"]["layers"]
        layers.insert(1 + choice % len(layers), lambda_layer)
    elif action in ("replace", "delete"):
        paths = [p for p in _paths(config) if p or action == "replace"]
        config = _mutate_json(config, paths[choice % len(paths)], action, value)
    members["config.json"] = json.dumps(config).encode()
    if action == "drop_member":
        del members[sorted(members)[choice % len(members)]]
    folder = tmp_path_factory.mktemp("keras")
    path = folder / "model.keras"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) * (choice % 100) // 100] if action == "truncate" else data)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        net = _outcome(f"keras: {action}", lambda: _loaded_and_used(load_keras(path)))
    finally:
        os.chdir(cwd)
    assert not (folder / LAMBDA_MARKER).exists(), "the Lambda layer's code ran"
    if action == "lambda":
        assert net is None, "a Lambda layer must be refused"


# ---------------------------------------------------------------- bounds files
def _small_network() -> Any:
    from pyomo_relu import DenseLayer, NetworkDefinition

    rng = np.random.default_rng(3)
    return NetworkDefinition(
        [
            DenseLayer(rng.normal(size=(3, 2)), rng.normal(size=3), "relu", "h"),
            DenseLayer(rng.normal(size=(1, 3)), [0.0], "linear", "out"),
        ],
        input_bounds=[(-1, 1)] * 2,
    )


@_settings(500)
@given(
    choice=st.integers(0, 10**6),
    action=st.sampled_from(["replace", "delete", "truncate", "nan"]),
    value=JSON_VALUES,
    npz=st.booleans(),
)
def test_mutated_bounds_files(choice: int, action: str, value: Any, npz: bool, tmp_path_factory: Any) -> None:
    import pyomo.environ as pe

    from pyomo_relu import ReLUNetBlock
    from pyomo_relu.bounds import Bounds, tighten

    net = _small_network()
    bounds = tighten(net, "interval")
    path = tmp_path_factory.mktemp("bounds") / ("b.npz" if npz else "b.json")
    if npz:
        bounds.save(path)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        name = sorted(arrays)[choice % len(arrays)]
        if action == "delete":
            del arrays[name]
        elif action == "nan" and arrays[name].dtype.kind == "f" and arrays[name].size:
            arrays[name] = arrays[name].copy()
            arrays[name].reshape(-1)[choice % arrays[name].size] = np.nan
        elif action == "replace":
            try:
                arrays[name] = np.asarray(value if not isinstance(value, dict) else str(value))
            except ValueError:  # ragged: numpy cannot hold it
                arrays[name] = np.asarray(str(value))
        np.savez(path, **arrays)
        if action == "truncate":
            path.write_bytes(path.read_bytes()[: choice % max(1, path.stat().st_size)])
    else:
        payload = bounds._payload()
        paths = _paths(payload)
        if action == "nan":
            value = float("nan")
        payload = _mutate_json(
            payload,
            paths[choice % len(paths)] if action != "delete" else paths[1 + choice % (len(paths) - 1)],
            "delete" if action == "delete" else "replace",
            value,
        )
        text = json.dumps(payload)
        path.write_text(text[: choice % max(1, len(text))] if action == "truncate" else text)

    def load_and_build() -> Any:
        loaded = Bounds.load(path, network=net)
        m = pe.ConcreteModel()
        m.nn = ReLUNetBlock()
        m.nn.build(net, bounds=loaded)
        return loaded

    loaded = _outcome("bounds file", load_and_build)
    if loaded is not None:
        for k in range(loaded.n_layers):
            assert not np.any(np.isnan(loaded.lower[k])) and not np.any(np.isnan(loaded.upper[k]))


def test_bounds_file_regressions(tmp_path: Path) -> None:
    from pyomo_relu.bounds import Bounds, tighten
    from pyomo_relu.errors import InvalidValueError, ModelLoadError

    net = _small_network()
    payload = tighten(net, "interval")._payload()
    cases = [
        ({**payload, "input_lower": [float("nan"), -1.0]}, InvalidValueError, r"input_lower, entry 0 is NaN"),
        (
            {**payload, "lower": [[0.0, float("nan"), 1.0], payload["lower"][1]]},
            InvalidValueError,
            r"lower bounds of layer 0, entry 1 is NaN",
        ),
        ({**payload, "input_upper": [1.0, -2.0]}, InvalidValueError, r"input 1 has bounds \[-1.0, -2.0\]"),
        ({k: v for k, v in payload.items() if k != "upper"}, ModelLoadError, r"has no upper"),
        ({**payload, "format": "other/1"}, ModelLoadError, r"not a pyomo_relu bounds file"),
        ({**payload, "lower": [payload["lower"][0][:2], payload["lower"][1]]}, ModelLoadError, r"different sizes"),
        ([1, 2], ModelLoadError, r"not a pyomo_relu bounds file"),
    ]
    for data, error, message in cases:
        path = tmp_path / "b.json"
        path.write_text(json.dumps(data))
        with pytest.raises(error, match=message):
            Bounds.load(path)
    path.write_text("[" * 100_000)
    with pytest.raises(ModelLoadError, match="cannot read"):
        Bounds.load(path)


# ------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory: Any) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("cli")
    model = onnx.ModelProto.FromString(BASE_MODELS[0])
    files = {
        "model": folder / "mlp.onnx",
        "property": folder / "prop.vnnlib",
        "box": folder / "box.json",
        "badbox": folder / "bad.json",
        "garbage": folder / "garbage.onnx",
        "keras": folder / "x.keras",
    }
    onnx.save(model, files["model"])
    files["property"].write_text(
        "".join(f"(declare-const X_{i} Real)\n" for i in range(3))
        + "".join(f"(declare-const Y_{j} Real)\n" for j in range(2))
        + "".join(f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))\n" for i in range(3))
        + "(assert (>= Y_0 100))\n"
    )
    files["box"].write_text(json.dumps([[-1, 1]] * 3))
    files["badbox"].write_text('[[-1, "a"], [NaN, 1], [1]]')
    files["garbage"].write_bytes(b"\x08\x07garbage")
    files["keras"].write_bytes(b"PK\x03\x04 not really")
    return {name: str(path) for name, path in files.items()}


CLI_TOKENS = [
    "--bounds",
    "-3:3",
    "0=-1:2",
    "a:b",
    "5=0:1",
    "nan:1",
    "inf:-inf",
    "-inf:inf",
    "3",
    ":",
    "=",
    "1=:",
    "--bounds-file",
    "--minimize",
    "--maximize",
    "0",
    "1",
    "-1",
    "7",
    "x",
    "--solver",
    "highs",
    "glpk",
    "gurobi",
    "--time-limit",
    "5",
    "0",
    "-1",
    "nan",
    "inf",
    "abc",
    "--tighten",
    "interval",
    "crown,lp",
    "",
    ",",
    "magic",
    "--formulation",
    "bigm",
    "relaxation",
    "hull",
    "--json",
    "--no-split",
    "--jobs",
    "--out",
    "--drop-softmax",
    "--help",
    "--version",
    "--bogus",
]


@st.composite
def cli_arguments(draw: st.DrawFn, files: dict[str, str]) -> list[str]:
    """Mostly well-formed commands with adversarial values, sometimes random token soup."""
    models = [
        files["model"],
        files["model"],
        files["garbage"],
        files["keras"],
        files["property"],
        "/nonexistent.onnx",
        os.path.dirname(files["model"]),
    ]
    value = lambda options: draw(st.sampled_from(options))  # noqa: E731
    if draw(st.integers(0, 4)) == 0:  # token soup
        argv = [value(["optimize", "verify", "nope"])]
        for _ in range(draw(st.integers(0, 8))):
            argv.append(value(CLI_TOKENS + models))
        return argv
    if draw(st.booleans()):
        argv = [
            "optimize",
            value(models),
            value(["--minimize", "--maximize"]),
            value(["0", "1", "-1", "7", "x", "1e3"]),
        ]
        options = {
            "--bounds": [
                "-3:3",
                "0=-1:2",
                "a:b",
                "5=0:1",
                "nan:1",
                "inf:-inf",
                "-inf:inf",
                "3",
                ":",
                "1=:",
                "2:1",
                "-1e308:1e308",
                "0=0:0",
            ],
            "--bounds-file": [files["box"], files["badbox"], files["property"], "/nonexistent/x.json"],
            "--solver": ["highs", "glpk", "cbc", "gurobi"],
            "--tighten": ["interval", "crown,lp", "", ",", "magic"],
            "--formulation": ["bigm", "relaxation", "partition", "hull", ""],
            "--json": None,
            "--drop-softmax": None,
        }
    else:
        argv = [
            "verify",
            value(models),
            value([files["property"], files["property"], files["badbox"], files["model"], "/nonexistent.vnnlib"]),
        ]
        options = {
            "--tighten": ["interval", "interval,crown", "", "magic"],
            "--jobs": ["1", "0", "-1", "x"],
            "--no-split": None,
            "--json": None,
            "--out": [str(Path(files["model"]).parent / "out.txt"), "/nonexistent/out.txt"],
        }
    options["--time-limit"] = ["5", "0", "-1", "nan", "inf", "abc", "1e-9"]
    for option in draw(st.lists(st.sampled_from(sorted(options)), max_size=5, unique=True)):
        argv.append(option)
        if options[option] is not None:
            argv.append(value(options[option]))
    if "--time-limit" not in argv:
        argv += ["--time-limit", "5"]
    return argv


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    from pyomo_relu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse: usage errors, --help, --version
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@_settings(150)
@given(data=st.data())
def test_cli_arguments_in_process(cli_files: dict, data: Any) -> None:
    argv = data.draw(cli_arguments(cli_files))
    code, out, err = _outcome("cli: in-process", lambda: _run_cli(argv))
    assert "Traceback" not in err and "unexpected error" not in err, (argv, err)
    assert code in (0, 2) or (code == 1 and "error" in out), (argv, code, out, err)
    if code == 2 and err and "usage:" not in err:
        assert err.startswith("pyomo-relu: error: ") and err.count("\n") == 1, (argv, err)


@_settings(150)
@given(data=st.data())
def test_cli_errors_are_package_errors_under_debug(cli_files: dict, data: Any) -> None:
    """With ``--debug`` the CLI re-raises: every error must be one of the package's (or the OS's, for paths)."""
    argv = data.draw(cli_arguments(cli_files))
    if not argv or argv[0] not in ("optimize", "verify"):
        return
    try:
        _outcome("cli: --debug", lambda: _run_cli(argv + ["--debug"]))
    except OSError:
        pass  # a path the user named cannot be read or written: reported as such without --debug


@pytest.mark.parametrize(
    "option, value", [("--time-limit", "-1"), ("--time-limit", "nan"), ("--time-limit", "inf"), ("--jobs", "0")]
)
def test_cli_refuses_bad_time_limits_and_jobs(cli_files: dict, option: str, value: str) -> None:
    """Found by the fuzzer: --time-limit -1 reached Pyomo and printed its multi-line config error."""
    command = (
        ["verify", cli_files["model"], cli_files["property"]]
        if option == "--jobs"
        else ["optimize", cli_files["model"], "--bounds", "-1:1", "--minimize", "0"]
    )
    code, out, err = _run_cli(command + [option, value])
    assert code == 2 and out == "" and f"argument {option}: " in err and "Traceback" not in err


@pytest.mark.parametrize("case", ["garbage model", "bad bounds", "bad property", "nan bounds"])
def test_cli_subprocess_prints_one_line_and_exits_2(cli_files: dict, case: str) -> None:
    argv = {
        "garbage model": ["optimize", cli_files["garbage"], "--bounds", "-1:1", "--minimize", "0"],
        "bad bounds": ["optimize", cli_files["model"], "--bounds-file", cli_files["badbox"], "--minimize", "0"],
        "bad property": ["verify", cli_files["model"], cli_files["badbox"]],
        "nan bounds": ["optimize", cli_files["model"], "--bounds", "nan:1", "--minimize", "0"],
    }[case]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    run = subprocess.run(
        [sys.executable, "-m", "pyomo_relu", *argv], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("pyomo-relu: error: ") and run.stderr.count("\n") == 1, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
