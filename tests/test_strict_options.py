"""Strict options (issue 14): every misspelled name is refused with the valid ones and a did-you-mean.

The names are those of the issue text (``time_limt``, ``exectuor``) and their kind; each
call site goes through the one helper :func:`pyomo_relu.options.check_options`.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe
import pytest

from pyomo_relu import ReLUNetBlock, solve, tighten
from pyomo_relu.bounds.chain import method_options, output_box, resolve_bounds
from pyomo_relu.errors import BoundsMismatchError, InvalidValueError, UnknownOptionError
from pyomo_relu.network import DenseLayer, NetworkDefinition


def small_net() -> NetworkDefinition:
    rng = np.random.default_rng(3)
    return NetworkDefinition(
        [DenseLayer(rng.normal(size=(6, 2)), rng.normal(size=6)), DenseLayer(rng.normal(size=(1, 6)), [0.0], "linear")],
        input_bounds=[(-1, 1), (-1, 1)],
    )


def refused(match: str):
    return pytest.raises(UnknownOptionError, match=match)


def test_tighten_refuses_the_issue_typos() -> None:
    net = small_net()
    with refused(
        r"tighten\(\) got an unknown option 'time_limt' \(did you mean 'time_limit'\?\)"
        r" \(and 1 more: 'exectuor'\); valid options: .*executor"
    ):
        tighten(net, ["interval", "lp"], time_limt=5, exectuor=4)
    with refused("'exectuor' .*did you mean 'executor'"):
        tighten(net, ["interval", "lp"], exectuor=4)
    # an option of another method than those of the chain is refused too
    with refused("'executor'.*valid options: progress, time_limit$"):
        tighten(net, ["interval", "crown"], executor=2)
    assert tighten(net, ["interval", "milp"], time_limit_per_neuron=0.5, progress=False).methods[-1] == "milp"


def test_every_method_declares_its_options() -> None:
    assert method_options("interval") == set() and method_options("crown") == set()
    assert {"executor", "progress", "time_limit", "tolerance"} <= method_options("lp")
    assert "time_limit_per_neuron" in method_options("milp") - method_options("lp")


def test_build_bounds_options_and_keywords() -> None:
    net = small_net()
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with refused(r"build\(bounds_options=...\) got an unknown option 'time_limt' \(did you mean 'time_limit'\?\)"):
        m.nn.build(net, bounds="lp", bounds_options={"time_limt": 3})
    with refused("'executor'"):  # interval takes no executor: it would be ignored
        m.nn.build(net, bounds="interval", bounds_options={"executor": 2})
    with refused(r"build\(\) got an unknown option 'formulaton' \(did you mean 'formulation'\?\)"):
        m.nn.build(net, formulaton="bigm")
    with refused(r"declare\(\) got an unknown option 'input_bound' \(did you mean 'input_bounds'\?\)"):
        m.nn.declare(net, input_bound=[(-1, 1)] * 2)
    assert not m.nn.is_built
    m.nn.build(net, bounds="lp", bounds_options={"time_limit": 30, "mode": "network", "progress": False})
    assert m.nn.is_built


@pytest.mark.parametrize(
    "formulation, match",
    [
        (
            ("partition", {"m": 2}),
            r"formulation 'partition' got an unknown option 'm'.*valid options: n, seed, strategy",
        ),
        (("partition", {"strategi": "random"}), "did you mean 'strategy'"),
        (("bigm", {"tight": True}), "formulation 'bigm' got an unknown option 'tight'; valid options: none"),
        (("pwl", {"tolerence": 1e-3}), "did you mean 'tolerance'"),
        (("complementarity", {"reformulaton": "product"}), "did you mean 'reformulation'"),
        (("gdp", {"bigm_sufix": True}), "did you mean 'bigm_suffix'"),
        (("gdp.bigm", {"tight_M": True}), "did you mean 'tight_m'"),
        (
            ("ideal_cuts", {"max_rounds": 3}),
            "formulation 'ideal_cuts' got an unknown option 'max_rounds'; valid options: none",
        ),
        ({"default": "bigm", 0: ("partition", {"N": 2})}, "did you mean 'n'"),
    ],
)
def test_formulation_options(formulation, match) -> None:
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with refused(match):
        m.nn.build(small_net(), formulation=formulation, bounds="interval")
    assert not m.nn.is_built


def test_transformation_apply_to_options() -> None:
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.declare(small_net())
    with refused("formulation 'partition' got an unknown option 'strategie' .*did you mean 'strategy'"):
        pe.TransformationFactory("relu.partition").apply_to(m, strategie="random")
    with refused("did you mean 'n'"):
        pe.TransformationFactory("relu.partition").apply_to(m, options={"nn": 2})
    assert not m.nn.is_built
    pe.TransformationFactory("relu.partition").apply_to(m, n=2)
    assert m.nn.is_built


def test_solve_keywords_and_highs_options() -> None:
    m = pe.ConcreteModel()
    m.x = pe.Var(bounds=(0, 3), within=pe.Integers)
    m.obj = pe.Objective(expr=-m.x)
    with refused(r"solve\(\) got an unknown option 'time_limt' \(did you mean 'time_limit'\?\)"):
        solve(m, time_limt=5)
    with refused(
        r"solve\(options=...\) for HiGHS got an unknown option 'presolv' \(did you mean 'presolve'\?\)"
        r"; valid options: presolve, .*, \.\.\. \(\d+ in all\)"
    ):
        solve(m, options={"presolv": "off"})
    assert solve(m, options={"presolve": "off"}, time_limit=10).objective == pytest.approx(-3)


def test_optimize_and_verify_keywords() -> None:
    from pyomo_relu.search import optimize
    from pyomo_relu.verify import robustness_property, verify

    net = small_net()
    with refused(r"optimize\(\) got an unknown option 'time_limt' \(did you mean 'time_limit'\?\)"):
        optimize(net, 0, time_limt=5)
    with refused("'exectuor' .*did you mean 'executor'"):
        optimize(net, 0, exectuor=2)
    two = NetworkDefinition(
        [DenseLayer([[1.0, -1.0], [0.5, 1.0]], [0.0, 0.0]), DenseLayer([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], "linear")],
        input_bounds=[(-1, 1), (-1, 1)],
    )
    spec = robustness_property([0.5, 0.1], 0.05, 0, 2)
    with refused(r"verify\(\) got an unknown option 'time_limt' \(did you mean 'time_limit'\?\)"):
        verify(two, spec, time_limt=5)
    with refused("'exectuor' .*did you mean 'executor'"):
        verify(two, spec, exectuor=2)
    assert verify(two, spec, time_limit=30, executor=None).status in ("sat", "unsat")


def test_bounds_given_are_checked_for_layer_sizes() -> None:
    net = small_net()
    good = tighten(net, "interval")
    import dataclasses

    altered = dataclasses.replace(
        good, lower=(good.lower[0][:4], good.lower[1]), upper=(good.upper[0][:4], good.upper[1])
    )
    with pytest.raises(BoundsMismatchError, match=r"sizes \[4, 1\].*\[6, 1\]"):
        resolve_bounds(net, altered, net.input_lower, net.input_upper)


@pytest.mark.parametrize(
    "bounds, match",
    [
        ([(np.nan, 1.0)], "output 0 has lower bound nan"),
        ([(np.inf, None)], "output 0 has lower bound inf"),
        ([(None, -np.inf)], "output 0 has upper bound -inf"),
        ([(0.0, np.nan)], "output 0 has upper bound nan"),
    ],
)
def test_output_box_refuses_nan_and_wrong_side_infinity(bounds, match) -> None:
    with pytest.raises(InvalidValueError, match=match):
        output_box(small_net(), bounds)
    assert output_box(small_net(), [(None, 2.0)])[0][0] == -np.inf


def test_surrogate_options() -> None:
    pytest.importorskip("idaes")
    from idaes.core.surrogate.surrogate_block import SurrogateBlock

    from pyomo_relu.idaes import ReLUSurrogate

    net = small_net()
    with refused(r"ReLUSurrogate\(\) got an unknown option 'input_label' \(did you mean 'input_labels'\?\)"):
        ReLUSurrogate(net, input_label=["a", "b"])
    surrogate = ReLUSurrogate(net, input_labels=["a", "b"], output_labels=["y"])
    m = pe.ConcreteModel()
    m.s = SurrogateBlock()
    with refused(r"ReLUSurrogate build_model\(\) got an unknown option 'formulaton' \(did you mean 'formulation'\?\)"):
        m.s.build_model(surrogate, formulaton="bigm")
    assert not hasattr(m.s, "nn")
