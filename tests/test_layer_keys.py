"""Per-layer choices are keyed by the user's layers (``net.layers``), by index or by name."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe
import pytest

from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock, UnknownLayerError, solve
from pyomo_relu.formulations import formulation_for_layer
from pyomo_relu.network import Scaling


def _network(output_scaling: bool = False) -> NetworkDefinition:
    """relu -> two-sided clip (2 canonical layers) -> leaky relu -> relu output (+ scaling layer)."""
    rng = np.random.default_rng(7)
    layers = [
        DenseLayer(rng.normal(size=(4, 2)), rng.normal(size=4) * 0.3, "relu", "first"),
        DenseLayer(rng.normal(size=(3, 4)), rng.normal(size=3) * 0.3, "clip", "hardtanh", clip_low=-0.5, clip_high=0.5),
        DenseLayer(rng.normal(size=(3, 3)), rng.normal(size=3) * 0.3, "leaky_relu", "leaky", alpha=0.1),
        DenseLayer(rng.normal(size=(1, 3)), [0.2], "relu", "last"),
    ]
    scaling = Scaling([1.0], [2.0]) if output_scaling else None
    return NetworkDefinition(layers, input_bounds=[(-1, 1), (-1, 1)], output_scaling=scaling)


def _binaries(block: pe.Block) -> int:
    return sum(1 for v in block.component_data_objects(pe.Var, descend_into=True) if v.is_binary())


def test_canonical_origin_maps_every_canonical_layer_to_its_user_layer() -> None:
    net = _network()
    assert net.canonical_origin == (0, 1, 1, 2, 3)
    assert len(net.canonical_origin) == len(net.canonical_layers)
    assert net.canonical_indices(1) == net.canonical_indices("hardtanh") == (1, 2)
    scaled = _network(output_scaling=True)  # a relu last layer: the scaling is appended as a layer
    assert scaled.canonical_origin == (0, 1, 1, 2, 3, 3)


def test_summary_lists_index_name_kind_sizes_and_canonical_layers() -> None:
    net = _network(output_scaling=True)
    lines = net.summary().splitlines()
    assert lines[0] == "NetworkDefinition: 2 inputs -> 1 output, 4 layers (6 canonical)"
    assert lines[1].split() == ["index", "name", "kind", "inputs", "outputs", "canonical"]
    assert lines[3].split() == ["1", "hardtanh", "dense", "clip", "4", "3", "1-2"]
    assert lines[5].split() == ["3", "last", "dense", "relu", "3", "1", "4-5"]
    assert "output scaling" in lines[-1]


@pytest.mark.parametrize("key", [1, "hardtanh", np.int64(1)])
def test_a_choice_applies_to_every_canonical_layer_of_the_user_layer(key: object) -> None:
    net = _network()
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, formulation={"default": "bigm", key: "relaxation"})
    per_layer = [_binaries(m.nn.layer[k]) for k in range(len(net.canonical_layers))]
    unstable = [row["unstable"] for row in m.nn.stats()["layers"]]
    assert per_layer[1] == per_layer[2] == 0  # the clip's two canonical layers: relaxed
    for k in (0, 3, 4):
        assert per_layer[k] == unstable[k]  # big-M: one binary per unstable neuron
    assert unstable[1] + unstable[2] > 0 and unstable[0] + unstable[3] > 0  # the test can fail


def test_choices_by_name_and_index_solve_to_the_forward_pass() -> None:
    net = _network()
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, formulation={"default": "bigm", "leaky": "gdp.hull", 0: ("partition", {"n": 2})})
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=pe.maximize)
    result = solve(m, "highs", time_limit=60)
    assert result.status == "optimal"
    x = np.array([pe.value(v) for v in m.nn.input_vars])
    assert abs(net.evaluate(x)[0] - result.objective) < 1e-6
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 201), np.linspace(-1, 1, 201)), -1).reshape(-1, 2)
    assert net.evaluate(grid).max() <= result.objective + 1e-6


@pytest.mark.parametrize(
    "key, message",
    [
        (
            4,
            r"layer 4 does not exist: the network has 4 layer\(s\), numbered 0 \.\. 3.*0 \('first'\), 1 \('hardtanh'\)",
        ),
        (-1, r"layer -1 does not exist"),
        ("hardtan", r"no layer is named 'hardtan' \(did you mean 'hardtanh'\?\)"),
        ("Default", r"no layer is named 'Default'.*or 'default'"),
        (1.0, r"not by float 1\.0"),
        (True, r"not by bool True"),
    ],
)
def test_a_key_that_names_no_layer_is_refused_with_the_valid_keys(key: object, message: str) -> None:
    net = _network()
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(UnknownLayerError, match=message):
        m.nn.build(net, formulation={"default": "bigm", key: "relaxation"})
    assert list(m.nn.component_objects()) == []


def test_a_layer_named_twice_is_refused() -> None:
    with pytest.raises(UnknownLayerError, match=r"names layer 1 twice, as 1 and 'hardtanh'"):
        formulation_for_layer({1: "bigm", "hardtanh": "relaxation"}, 0, _network())


def test_ambiguous_layer_name_is_refused() -> None:
    layers = [
        DenseLayer(np.eye(2), np.zeros(2), "relu", "same"),
        DenseLayer(np.eye(2), np.zeros(2), "relu", "same"),
        DenseLayer(np.ones((1, 2)), [0.0], "linear", "out"),
    ]
    net = NetworkDefinition(layers, input_bounds=[(-1, 1)] * 2)
    with pytest.raises(UnknownLayerError, match=r"'same' is ambiguous: layers \[0, 1\]"):
        net.layer_index("same")
    assert net.layer_index("out") == 2


def test_malformed_choice_is_refused() -> None:
    from pyomo_relu.errors import PyomoReluError

    with pytest.raises(PyomoReluError, match=r"a formulation is a name or a \(name, options\) pair"):
        formulation_for_layer({"default": ("partition", 2)}, 0, _network())


def test_declared_blocks_and_transformations_resolve_user_layers() -> None:
    net = _network()
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.declare(net)
    with pytest.raises(UnknownLayerError, match="no layer is named 'nope'"):
        m.nn.build(formulation={"nope": "bigm"})
    m.nn.build(formulation={"default": "bigm", "hardtanh": "relaxation"})
    assert _binaries(m.nn.layer[1]) == _binaries(m.nn.layer[2]) == 0


def test_keras_layer_names_are_keys() -> None:
    keras = pytest.importorskip("keras")
    from pyomo_relu import load_keras

    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(4, activation="relu", name="hidden"), keras.layers.Dense(1, name="head")]
    )
    net = load_keras(model, input_bounds=[(-1, 1)] * 2)
    assert net.layer_index("hidden") == 0 and net.layer_index("head") == 1


def test_onnx_node_names_are_keys(data_dir) -> None:
    from pyomo_relu import load_onnx

    net = load_onnx(data_dir / "relumip" / "peaks_3x10.onnx", input_bounds=[(-3, 3)] * 2)
    assert [net.layer_index(name) for name in ("dense_26_Relu", "dense_27_Relu", "dense_29_Gemm")] == [0, 1, 3]


def test_keras_graph_layers_are_keyed_by_their_keras_names() -> None:
    keras = pytest.importorskip("keras")
    from pyomo_relu import load_keras

    model = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Conv2D(2, 3, activation="relu", name="conv"),
            keras.layers.LeakyReLU(name="leak"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(3, activation="relu", name="fc"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    net = load_keras(model, input_bounds=[(-1, 1)] * 16)
    assert [net.layer_index(name) for name in ("conv", "leak", "fc", "head")] == [0, 1, 2, 3]
    assert net.layer_index("conv:Relu") == 0
