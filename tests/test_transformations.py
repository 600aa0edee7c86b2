"""``relu.<formulation>`` Pyomo transformations on declared ReLU blocks, and ``declare``/``build()``.

Optima are compared with blocks built directly with ``build(net, formulation="bigm")``
(HiGHS), and the GDP pipeline (a declared ReLU block plus the user's own disjunction)
with the best of separate big-M solves over each branch of the user's disjunction.
"""

from __future__ import annotations

import helpers
import pyomo.environ as pe
import pytest
from pyomo.core.base.component import ComponentUID
from pyomo.gdp import Disjunct, Disjunction
from pyomo.opt import SolverFactory

from pyomo_relu import NetworkDefinition, PyomoReluError, ReLUNetBlock, solve
from pyomo_relu.formulations import FORMULATIONS, bigm
from pyomo_relu.formulations.base import frozen_formulation
from pyomo_relu.transformations import declared_blocks, register_transformations

GAP = 1e-9
BOX = [(-1.0, 1.0), (-1.0, 1.0)]


def random_net(seed: int, sizes=(2, 5, 4, 1), box=BOX) -> NetworkDefinition:
    return helpers.random_net(seed, sizes, box)


NET = random_net(21)


def direct_optimum(net: NetworkDefinition, sense=pe.minimize, box=None) -> float:
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net, formulation="bigm", input_bounds=box)
    m.obj = pe.Objective(expr=m.nn.outputs[0], sense=sense)
    result = solve(m, mip_gap=GAP)
    assert result.status == "optimal"
    return result.objective


def optimal(m: pe.ConcreteModel, solver: str = "highs") -> float:
    result = solve(m, solver, mip_gap=GAP)
    assert result.status == "optimal", result
    return result.objective


# ---------------------------------------------------------------- registration
def test_every_formulation_is_registered():
    for name in FORMULATIONS:
        assert f"relu.{name}" in pe.TransformationFactory, name
    for name in ("relu.bigm", "relu.gdp", "relu.relaxation", "relu.complementarity", "relu.gdp.hull"):
        assert pe.TransformationFactory(name) is not None


def test_formulations_added_later_are_registered(monkeypatch):
    @frozen_formulation
    class BigMCopy(bigm.BigM):
        name = "bigm_copy_for_test"

    monkeypatch.setitem(FORMULATIONS, "bigm_copy_for_test", BigMCopy())
    assert register_transformations() == ["relu.bigm_copy_for_test"]
    assert register_transformations() == []
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.declare(NET)
    pe.TransformationFactory("relu.bigm_copy_for_test").apply_to(m)
    assert m.nn.is_built
    m.obj = pe.Objective(expr=m.nn.outputs[0])  # built by the new name: the exact big-M MILP
    assert optimal(m) == pytest.approx(direct_optimum(NET), abs=1e-6)
    assert m.nn.get_error() < 1e-6  # its point is the network's (a relaxation's is not, here)


# ---------------------------------------------------------------- scalar blocks
def test_declare_then_relu_bigm_scalar():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.declare(NET)
    assert m.nn.is_declared and not m.nn.is_built
    assert [c.local_name for c in m.nn.component_objects()] == ["inputs", "outputs"]
    assert m.nn.outputs[0].bounds == (None, None)
    m.obj = pe.Objective(expr=m.nn.outputs[0])  # the user can refer to outputs before building
    pe.TransformationFactory("relu.bigm").apply_to(m)
    assert m.nn.is_built and not m.nn.is_declared
    lb, ub = m.nn.outputs[0].bounds
    assert lb is not None and ub is not None and lb < ub  # bounds set when built
    assert m.nn.outputs[0].value is not None  # warm start
    assert optimal(m) == pytest.approx(direct_optimum(NET), abs=1e-7)
    assert m.nn.get_error() < 1e-6
    pe.TransformationFactory("relu.bigm").apply_to(m)  # nothing left to build: no-op
    assert m.nn.stats()["binaries"] == sum(layer["unstable"] for layer in m.nn.stats()["layers"])


def test_declare_with_user_variables_and_maximize():
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2))  # unbounded: the declared input_bounds apply
    m.y = pe.Var()
    m.nn = ReLUNetBlock()
    m.nn.declare(NET, inputs=m.x, outputs=[m.y], input_bounds=[(-0.5, 0.5), (-1, 1)], bounds=["interval", "crown"])
    m.obj = pe.Objective(expr=m.y, sense=pe.maximize)
    pe.TransformationFactory("relu.gdp.hull").apply_to(m)
    assert m.nn.neuron_bounds.methods[:2] == ("interval", "crown")
    assert m.x[0].bounds == (None, None) and m.y.bounds == (None, None)  # user's variables untouched
    box = [(-0.5, 0.5), (-1, 1)]
    assert optimal(m) == pytest.approx(direct_optimum(NET, pe.maximize, box), abs=1e-6)
    assert m.nn.get_error() < 1e-6


def test_build_without_network_uses_the_declared_spec():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.declare(NET, initialize=False)
    m.nn.build(formulation="gdp.mbigm")
    assert m.nn.is_built
    assert m.nn.outputs[0].value is None  # initialize=False was stored
    m.obj = pe.Objective(expr=m.nn.outputs[0])
    assert optimal(m) == pytest.approx(direct_optimum(NET), abs=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda b: b.build(NET), "was declared"),
        (lambda b: b.build(bounds="crown"), "was declared"),
        (lambda b: b.build(initialize=False), "was declared"),
        (lambda b: b.declare(NET), "already declared"),
    ],
)
def test_declared_block_refuses_conflicting_calls(call, message):
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.declare(NET)
    with pytest.raises(PyomoReluError, match=message):
        call(m.nn)
    assert m.nn.is_declared


def test_build_needs_a_network_or_a_declaration():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(PyomoReluError, match="needs a network"):
        m.nn.build()
    m.nn.build(NET)
    with pytest.raises(PyomoReluError, match="already built"):
        m.nn.declare(NET)


def test_declare_checks_variable_counts():
    m = pe.ConcreteModel()
    m.x = pe.Var(range(3))
    m.nn = ReLUNetBlock()
    with pytest.raises(PyomoReluError, match="inputs has 3 variables"):
        m.nn.declare(NET, inputs=m.x)
    assert not m.nn.is_declared


def test_unknown_formulation_option_fails_and_leaves_block_declared():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.declare(NET)
    with pytest.raises(PyomoReluError, match="unknown option 'colour'"):
        pe.TransformationFactory("relu.complementarity").apply_to(m, colour="red")
    with pytest.raises(PyomoReluError, match="unknown option 'colour'"):
        pe.TransformationFactory("relu.gdp.mbigm").apply_to(m, colour="red")
    assert m.nn.is_declared and m.nn.component("layer") is None
    pe.TransformationFactory("relu.gdp.bigm").apply_to(m, tight_m=False, bigM=50)
    assert m.nn.is_built


# ---------------------------------------------------------- indexed and nested
def test_indexed_and_nested_blocks_are_all_built():
    m = pe.ConcreteModel()
    m.T = pe.Set(initialize=[1, 2])
    m.x = pe.Var(m.T, range(2), bounds=(-1, 1))
    m.nn = ReLUNetBlock(m.T)
    for t in m.T:
        m.nn[t].declare(NET, inputs=[m.x[t, 0], m.x[t, 1]])
    m.sub = pe.Block()
    m.sub.inner = pe.Block()
    m.sub.inner.nn = ReLUNetBlock()
    m.sub.inner.nn.declare(random_net(4))
    m.built = ReLUNetBlock()
    m.built.build(random_net(4), formulation="gdp")  # already built: left alone
    assert [b.name for b in declared_blocks(m)] == ["nn[1]", "nn[2]", "sub.inner.nn"]
    pe.TransformationFactory("relu.bigm").apply_to(m)
    assert all(b.is_built for b in (m.nn[1], m.nn[2], m.sub.inner.nn))
    assert m.built.layer[0].component("is_active") is None
    m.built.deactivate()
    m.obj = pe.Objective(expr=m.nn[1].outputs[0] - m.nn[2].outputs[0] + m.sub.inner.nn.outputs[0])
    expected = direct_optimum(NET) - direct_optimum(NET, pe.maximize) + direct_optimum(random_net(4))
    assert optimal(m) == pytest.approx(expected, abs=1e-6)
    for block in (m.nn[1], m.nn[2], m.sub.inner.nn):
        assert block.get_error() < 1e-6


def test_targets():
    def fresh():
        m = pe.ConcreteModel()
        m.nn = ReLUNetBlock([1, 2, 3])
        for t in m.nn:
            m.nn[t].declare(NET)
        m.sub = pe.Block()
        m.sub.nn = ReLUNetBlock()
        m.sub.nn.declare(NET)
        return m

    m = fresh()
    pe.TransformationFactory("relu.relaxation").apply_to(m, targets=[m.nn[2], m.sub])
    assert [m.nn[t].is_built for t in m.nn] == [False, True, False] and m.sub.nn.is_built
    pe.TransformationFactory("relu.bigm").apply_to(m, targets=m.nn)  # an indexed block: all its members
    assert [m.nn[t].stats()["binaries"] for t in m.nn] != [0, 0, 0]
    assert m.nn[2].stats()["binaries"] == 0  # built before, left alone

    m = fresh()
    pe.TransformationFactory("relu.bigm").apply_to(m, targets=[ComponentUID(m.nn[3])])
    assert [m.nn[t].is_built for t in m.nn] == [False, False, True]

    other = fresh()
    with pytest.raises(PyomoReluError, match="is not in"):
        pe.TransformationFactory("relu.bigm").apply_to(m, targets=[other.sub])
    m.v = pe.Var()
    with pytest.raises(PyomoReluError, match="targets must be blocks"):
        pe.TransformationFactory("relu.bigm").apply_to(m, targets=[m.v])


def test_apply_to_a_block_instance_and_create_using():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.declare(NET)
    m.obj = pe.Objective(expr=m.nn.outputs[0])
    clone = pe.TransformationFactory("relu.gdp.bigm").create_using(m)
    assert m.nn.is_declared and clone.nn.is_built
    assert clone.nn.input_vars[0] is clone.nn.inputs[0] and clone.nn.output_vars[0] is clone.nn.outputs[0]
    assert optimal(clone) == pytest.approx(direct_optimum(NET), abs=1e-6)
    assert clone.nn.get_error() < 1e-6
    pe.TransformationFactory("relu.bigm").apply_to(m.nn)  # the ReLU block itself as the instance
    assert m.nn.is_built


def test_options_reach_the_formulation():
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock([1, 2])
    m.nn[1].declare(NET)
    m.nn[2].declare(NET)
    pe.TransformationFactory("relu.complementarity").apply_to(m, targets=m.nn[1], reformulation="product")
    layer = m.nn[1].layer[0]
    products = layer.component("complementarity_product")
    assert products is not None and len(products) > 0
    for j in products:  # y (y - x) <= 0 (eps 0): holds at y = relu(x), fails at y = 0.5 for x = -1
        layer.pre[j].set_value(-1.0, skip_validation=True)
        layer.post[j].set_value(0.0, skip_validation=True)
        assert pe.value(products[j].body) == 0.0 and pe.value(products[j].upper) == 0.0
        layer.post[j].set_value(0.5, skip_validation=True)
        assert pe.value(products[j].body) > pe.value(products[j].upper)
    pe.TransformationFactory("relu.gdp.mbigm").apply_to(m, solver=SolverFactory("glpk"))
    assert m.nn[2].layer[0].component("_pyomo_gdp_mbigm_reformulation") is not None
    alone = pe.ConcreteModel()  # the multiple big-M reformulation, solved: the network's optimum
    alone.nn = ReLUNetBlock()
    alone.nn.declare(NET)
    pe.TransformationFactory("relu.gdp.mbigm").apply_to(alone, solver=SolverFactory("glpk"))
    alone.obj = pe.Objective(expr=alone.nn.outputs[0])
    assert optimal(alone) == pytest.approx(direct_optimum(NET), abs=1e-6)
    assert alone.nn.get_error() < 1e-6


# --------------------------------------------------------------- GDP pipeline
@pytest.mark.parametrize("gdp_transformation", ["gdp.bigm", "gdp.hull"])
def test_relu_gdp_and_user_disjunction_in_one_pipeline(gdp_transformation):
    """A declared ReLU block and the user's disjunction: relu.gdp, then one gdp.* for both."""
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-1, 1))
    m.nn = ReLUNetBlock()
    m.nn.declare(NET, inputs=m.x)
    m.left = Disjunct()
    m.left.c = pe.Constraint(expr=m.x[0] <= -0.6)
    m.right = Disjunct()
    m.right.c = pe.Constraint(expr=m.x[0] + m.x[1] >= 0.8)
    m.choice = Disjunction(expr=[m.left, m.right])
    m.obj = pe.Objective(expr=m.nn.outputs[0])
    pe.TransformationFactory("relu.gdp").apply_to(m)
    n_disjunctions = len(list(m.component_data_objects(Disjunction, active=True, descend_into=True)))
    assert n_disjunctions == 1 + sum(layer["unstable"] for layer in m.nn.stats()["layers"])
    pe.TransformationFactory(gdp_transformation).apply_to(m)
    assert not list(m.component_data_objects(Disjunction, active=True, descend_into=True))
    value = optimal(m)
    assert m.nn.get_error() < 1e-6
    x0, x1 = m.x[0].value, m.x[1].value
    assert x0 <= -0.6 + 1e-6 or x0 + x1 >= 0.8 - 1e-6
    assert value == pytest.approx(min(branch_optimum("left"), branch_optimum("right")), abs=1e-6)


def branch_optimum(branch: str) -> float:
    """Big-M optimum with the user's disjunction fixed to one branch."""
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-1, 1))
    m.nn = ReLUNetBlock()
    m.nn.build(NET, inputs=m.x)
    m.c = pe.Constraint(expr=(m.x[0] <= -0.6) if branch == "left" else (m.x[0] + m.x[1] >= 0.8))
    m.obj = pe.Objective(expr=m.nn.outputs[0])
    return optimal(m)


def _model_with_relu_block_in_a_disjunct() -> pe.ConcreteModel:
    m = pe.ConcreteModel()
    m.x = pe.Var(range(2), bounds=(-1, 1))
    m.z = pe.Var(bounds=(-100, 100))
    m.use_net = Disjunct()
    m.use_net.nn = ReLUNetBlock()
    m.use_net.nn.declare(NET, inputs=m.x)
    m.use_net.link = pe.Constraint(expr=m.z == m.use_net.nn.outputs[0])
    m.use_const = Disjunct()
    m.use_const.link = pe.Constraint(expr=m.z == 0.25)
    m.choice = Disjunction(expr=[m.use_net, m.use_const])
    m.obj = pe.Objective(expr=m.z)
    return m


def test_relu_block_inside_a_disjunct_is_built():
    m = _model_with_relu_block_in_a_disjunct()
    assert declared_blocks(m) == [m.use_net.nn]
    pe.TransformationFactory("relu.bigm").apply_to(m)
    assert m.use_net.nn.is_built


def test_relu_block_inside_a_disjunct_then_gdp_bigm():
    m = _model_with_relu_block_in_a_disjunct()
    pe.TransformationFactory("relu.bigm").apply_to(m)
    pe.TransformationFactory("gdp.bigm").apply_to(m)
    assert optimal(m) == pytest.approx(min(direct_optimum(NET), 0.25), abs=1e-6)
