"""Formulations as typed objects: the registry, option checks, objects as choices, capabilities."""

from __future__ import annotations

import pickle

import numpy as np
import pyomo.environ as pe
import pytest

from pyomo_relu import DenseLayer, MaxLayer, NetworkDefinition, ReLUNetBlock, register_formulation, solve
from pyomo_relu.errors import PyomoReluError, UnknownOptionError, UnsupportedOperatorError
from pyomo_relu.formulations import (
    FORMULATIONS,
    get_formulation,
    layer_formulations,
    resolve_formulation,
)
from pyomo_relu.formulations.base import Formulation, frozen_formulation
from pyomo_relu.formulations.bigm import BigM, add_bigm
from pyomo_relu.formulations.complementarity import Complementarity
from pyomo_relu.formulations.extended import Extended
from pyomo_relu.formulations.gdp import GdpHull
from pyomo_relu.formulations.partition import Partition
from pyomo_relu.formulations.step import Step

NET = NetworkDefinition(
    [
        DenseLayer([[1.0, -1.0], [1.0, 1.0], [-2.0, 0.5]], [0.1, -0.2, 0.3]),
        DenseLayer([[1.0, -2.0, 1.5]], [0.0], "linear"),
    ],
    input_bounds=[(-1, 1), (-1, 1)],
)


def optimum(formulation: object, sense: int = pe.maximize) -> float:
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(NET, formulation=formulation, bounds="interval")
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=sense)
    result = solve(m, "highs")
    assert result.status == "optimal", result
    assert m.nn.get_error() < 1e-6
    return float(result.objective)


BUILT_IN = (
    "bigm",
    "gdp",
    "gdp.bigm",
    "gdp.hull",
    "gdp.mbigm",
    "gdp.binary_multiplication",
    "complementarity",
    "relaxation",
    "partition",
    "extended",
    "ideal_cuts",
    "pwl",
    "step",
)


def brute_force_max() -> float:
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 401), np.linspace(-1, 1, 401)), -1).reshape(-1, 2)
    return float(NET.evaluate(grid).max())


# ------------------------------------------------------------------ registry
def test_every_registered_object_is_named_as_registered() -> None:
    for name, formulation in FORMULATIONS.items():
        assert isinstance(formulation, Formulation)
        assert formulation.name == name
        assert get_formulation(name) is formulation


def test_registering_a_subclass_makes_it_a_choice_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    @frozen_formulation
    class CountingBigM(BigM):
        name = "counting_bigm_for_test"

        def add(self, ctx):  # type: ignore[no-untyped-def]
            calls.append(ctx.index)
            add_bigm(ctx)

    monkeypatch.delitem(FORMULATIONS, "counting_bigm_for_test", raising=False)
    made = register_formulation(CountingBigM)
    try:
        assert isinstance(made, CountingBigM)
        assert optimum("counting_bigm_for_test") == pytest.approx(optimum("bigm"), abs=1e-6)
        assert calls == [0]
        with pytest.raises(PyomoReluError, match="registered already"):
            register_formulation(CountingBigM)
        assert register_formulation(CountingBigM(), replace=True) == CountingBigM()
        m = pe.ConcreteModel()
        m.nn = ReLUNetBlock()
        m.nn.declare(NET)
        pe.TransformationFactory("relu.counting_bigm_for_test").apply_to(m)
        assert m.nn.is_built and calls == [0, 0]
    finally:
        FORMULATIONS.pop("counting_bigm_for_test", None)


def test_register_refuses_what_is_not_a_named_formulation() -> None:
    with pytest.raises(PyomoReluError, match="needs a Formulation"):
        register_formulation(object())  # type: ignore[arg-type]

    @frozen_formulation
    class Nameless(BigM):
        name = ""

    with pytest.raises(PyomoReluError, match="has no name"):
        register_formulation(Nameless)


# ------------------------------------------------------------------- options
def test_constructor_checks_names_and_values() -> None:
    with pytest.raises(
        UnknownOptionError, match=r"formulation 'partition' got an unknown option 'nn' \(did you mean 'n'\?\)"
    ):
        Partition(nn=2)  # type: ignore[call-arg]
    with pytest.raises(PyomoReluError, match="n must be an integer >= 1"):
        Partition(n=0)
    with pytest.raises(PyomoReluError, match="unknown partition strategy"):
        Partition(strategy="sorted")
    with pytest.raises(PyomoReluError, match="chord=True needs reformulation='product'"):
        Complementarity(chord=True)
    with pytest.raises(PyomoReluError, match="eps must be a finite number"):
        Step(eps=-1.0)


def test_name_and_options_pairs_go_through_the_same_checks() -> None:
    assert resolve_formulation(("partition", {"n": 4})) == Partition(n=4)
    with pytest.raises(UnknownOptionError, match="did you mean 'strategy'"):
        resolve_formulation(("partition", {"stratgy": "random"}))
    with pytest.raises(PyomoReluError, match="n must be an integer >= 1"):
        resolve_formulation(("partition", {"n": -3}))
    with pytest.raises(UnknownOptionError, match="formulation 'gdp.hull'"):
        resolve_formulation(("gdp.hull", {"tight_m": False}))  # tight_m is gdp.bigm's only
    assert resolve_formulation(("gdp.hull", {})) == GdpHull()
    assert resolve_formulation(Partition) == Partition()
    with pytest.raises(PyomoReluError, match="a formulation is a name"):
        resolve_formulation(("partition", 2))


def test_changed_options_are_what_differs_from_the_defaults() -> None:
    assert Partition().changed_options() == {}
    assert Partition(n=4, seed=3).changed_options() == {"n": 4, "seed": 3}
    assert Step(eps=0.0).changed_options() == {"eps": 0.0}
    assert Complementarity(eps=0.0).changed_options() == {}


def test_formulations_are_frozen_and_pickle() -> None:
    p = Partition(n=3)
    with pytest.raises(AttributeError):
        p.n = 4  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(p)) == p


# ------------------------------------------------------------- objects as choices
def test_objects_are_choices_alone_and_per_layer() -> None:
    expected = brute_force_max()
    assert optimum(Partition(n=2)) == pytest.approx(expected, abs=1e-3)
    assert optimum({"default": BigM(), 0: Extended()}) == pytest.approx(expected, abs=1e-3)
    chosen = layer_formulations({"default": "bigm", 0: Partition(n=2)}, NET)
    assert chosen == [Partition(n=2), BigM()]


def test_the_block_records_what_each_formulation_added() -> None:
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(NET, formulation=Partition(n=2), bounds="interval")
    (record,) = m.nn.added
    assert record.formulation == "partition" and record.layer == 0
    assert record.components[:2] == ("is_active", "active_part")
    for name in record.components:
        assert m.nn.layer[0].component(name) is not None
    assert "added by 'partition' to layer 0:" in m.nn.describe()


# --------------------------------------------------------------- capabilities
def test_smooth_capability_decides_which_formulations_take_tanh_layers() -> None:
    net = NetworkDefinition(
        [DenseLayer([[1.0], [0.5]], [0.0, 0.2], "tanh"), DenseLayer([[1.0, 1.0]], [0.0], "linear")],
        input_bounds=[(-1, 1)],
    )
    assert [name for name, f in sorted(FORMULATIONS.items()) if f.smooth] == ["complementarity", "pwl"]
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(UnsupportedOperatorError, match="formulation 'partition'"):
        m.nn.build(net, formulation=Partition())
    m.nn.build(net, formulation=Complementarity())
    assert len(m.nn.layer[0].smooth_activation) == 2


def test_disjunctive_capability_turns_max_layers_into_disjunctions() -> None:
    net = NetworkDefinition(
        [MaxLayer([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0, -0.5], [0, 0, 0])], input_bounds=[(-1, 1), (-1, 1)]
    )
    kinds = {}
    for name in ("bigm", "gdp", "gdp.hull"):
        m = pe.ConcreteModel()
        m.nn = ReLUNetBlock()
        m.nn.build(net, formulation=name)
        kinds[name] = (
            m.nn.layer[0].component("is_max") is not None,
            m.nn.layer[0].component("max_disjunct") is not None,
        )
    assert kinds == {"bigm": (True, False), "gdp": (False, True), "gdp.hull": (False, True)}
    assert get_formulation("gdp").disjunctive and not get_formulation("bigm").disjunctive


def test_step_eps_comes_from_the_layer_formulation() -> None:
    net = NetworkDefinition(
        [DenseLayer([[1.0]], [0.0], "step"), DenseLayer([[1.0]], [0.0], "linear")], input_bounds=[(-1, 1)]
    )
    rows = []
    for choice in ("bigm", Step(eps=0.5)):
        m = pe.ConcreteModel()
        m.nn = ReLUNetBlock()
        m.nn.build(net, formulation=choice)
        rows.append(pe.value(m.nn.layer[0].down_when_negative[0].upper))
    assert rows == [pytest.approx(-1e-5), pytest.approx(-0.5)]


@pytest.mark.parametrize("first", ["pyomo_relu.transformations", "pyomo_relu.formulations", "pyomo_relu.block_layers"])
def test_any_import_order_registers_every_transformation(first: str) -> None:
    import subprocess
    import sys

    code = (
        f"import {first}, pyomo_relu.block, pyomo.environ as pe\n"
        f"BUILT_IN = {sorted(BUILT_IN)!r}\n"
        "from pyomo_relu.formulations import FORMULATIONS\n"
        "missing = [n for n in FORMULATIONS if 'relu.' + n not in pe.TransformationFactory]\n"
        "print(sorted(FORMULATIONS) == sorted(BUILT_IN), missing)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "[]"]
