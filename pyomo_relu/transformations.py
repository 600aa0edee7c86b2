r"""Pyomo transformations ``relu.<formulation>``: build declared ReLU blocks in place.

Every formulation in :data:`pyomo_relu.formulations.FORMULATIONS` (and every one added by
:func:`~pyomo_relu.formulations.register_formulation`) is registered in
Pyomo's ``TransformationFactory`` as ``relu.<name>`` (``relu.bigm``, ``relu.gdp``,
``relu.relaxation``, ``relu.complementarity``, ``relu.gdp.hull``, ...) when
:mod:`pyomo_relu.block` is imported (``from pyomo_relu import ReLUNetBlock`` does it).
A block declared with :meth:`ReLUNetBlockData.declare <pyomo_relu.block.ReLUNetBlockData.declare>`
holds a network but no constraints; ``TransformationFactory("relu.bigm").apply_to(model)``
builds every declared, not yet built ``ReLUNetBlock`` of the model (scalar or indexed,
at any depth, also inside disjuncts) with that formulation, so the formulation is chosen
the way a GDP reformulation is: after the model is written.

* ``targets=``: a component or list of components (blocks, ReLU blocks, indexed blocks,
  or their ``ComponentUID``\ s) inside the model; only declared ReLU blocks in or under
  them are built, as with the ``gdp.*`` transformations.
* Every other keyword is a formulation option, e.g.
  ``TransformationFactory("relu.complementarity").apply_to(m, reformulation="product")``
  or ``TransformationFactory("relu.gdp.mbigm").apply_to(m, solver=SolverFactory("glpk"))``.
* ``create_using(model)`` works on a clone, as for any Pyomo transformation.
* A ReLU block *inside a Disjunct* is found and built, and the outer disjunction can then
  be transformed by ``gdp.bigm`` or ``gdp.hull`` as usual.

ReLU blocks and the user's own disjunctions share one GDP pipeline: ``relu.gdp`` first
(the network becomes disjunctions over the block's own bounded variables), then
``gdp.bigm``/``gdp.hull``/``gdp.mbigm`` over the whole model.

>>> import pyomo.environ as pe
>>> from pyomo.gdp import Disjunction
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0], [-1.0]], [0.0, 0.5]),
...                          DenseLayer([[1.0, 1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.x = pe.Var(bounds=(-1, 1))
>>> m.nn = ReLUNetBlock()
>>> m.nn.declare(net, inputs=[m.x])
>>> m.nn.is_declared, m.nn.is_built
(True, False)
>>> m.choice = Disjunction(expr=[[m.x <= -0.5], [m.x >= 0.5]])
>>> pe.TransformationFactory("relu.gdp").apply_to(m)
>>> m.nn.is_built, len(m.nn.layer[0].disjunction)
(True, 2)
>>> print(m.nn.describe())
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0, 1]
layer[0].pre Var [0, 1]
layer[0].affine Constraint [0, 1]
layer[0].active_disjunct Disjunct [0, 1]
layer[0].inactive_disjunct Disjunct [0, 1]
layer[0].disjunction Disjunction [0, 1]
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'gdp' to layer 0:
  active_disjunct, inactive_disjunct, disjunction
>>> pe.TransformationFactory("gdp.bigm").apply_to(m)
>>> m.obj = pe.Objective(expr=m.nn.outputs[0])
>>> from pyomo_relu import solve
>>> r = solve(m, "highs")
>>> r.status, round(r.objective, 4), round(m.x.value, 4), m.nn.get_error() < 1e-5
('optimal', 0.5, 0.5, True)

Indexed blocks, formulation options and ``targets``:

>>> m2 = pe.ConcreteModel()
>>> m2.nn = ReLUNetBlock([1, 2, 3])
>>> for t in m2.nn:
...     m2.nn[t].declare(net)
>>> pe.TransformationFactory("relu.complementarity").apply_to(
...     m2, targets=[m2.nn[1]], reformulation="product")
>>> [m2.nn[t].is_built for t in m2.nn]
[True, False, False]
>>> pe.TransformationFactory("relu.bigm").apply_to(m2)
>>> [m2.nn[t].stats()["binaries"] for t in m2.nn]
[0, 2, 2]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pyomo.environ as pe
from pyomo.core.base.componentuid import ComponentUID
from pyomo.core.base.transformation import Transformation, TransformationFactory
from pyomo.gdp import Disjunct

from pyomo_relu.block import ReLUNetBlockData
from pyomo_relu.components import within
from pyomo_relu.errors import PyomoReluError
from pyomo_relu.formulations import FORMULATIONS, resolve_formulation

logger = logging.getLogger(__name__)

__all__ = ["ReLUTransformation", "declared_blocks", "register_transformations"]

PREFIX = "relu."


class ReLUTransformation(Transformation):
    """Build every declared ``ReLUNetBlock`` under the model (or ``targets``) with one formulation."""

    formulation: str = "bigm"

    def _apply_to(self, instance: Any, **kwds: Any) -> None:
        targets = kwds.pop("targets", None)
        options = dict(kwds.pop("options", None) or {})  # Pyomo's old ``options={...}`` style
        options.update(kwds)
        chosen = resolve_formulation((self.formulation, options))  # fails before any block is built
        blocks = declared_blocks(instance, targets)
        if not blocks:
            logger.info("%s%s: no declared ReLUNetBlock to build", PREFIX, self.formulation)
        for block in blocks:
            block.build(formulation=chosen)


def declared_blocks(instance: Any, targets: Any = None) -> list[ReLUNetBlockData]:
    """Declared, not yet built ReLU blocks in ``instance`` (or in/under ``targets``), in model order."""
    roots = list(_component_datas(instance)) if targets is None else _resolve_targets(instance, targets)
    found: list[ReLUNetBlockData] = []
    seen: set[int] = set()
    for root in roots:
        candidates = [root]
        if root.ctype in (pe.Block, Disjunct):
            candidates += list(root.component_data_objects(pe.Block, active=True, descend_into=(pe.Block, Disjunct)))
        for block in candidates:
            if isinstance(block, ReLUNetBlockData) and block.is_declared and id(block) not in seen:
                seen.add(id(block))
                found.append(block)
    return found


def register_transformations() -> list[str]:
    """Register ``relu.<name>`` for every formulation not registered yet; return the new names.

    Called when :mod:`pyomo_relu.block` is imported and by
    :func:`~pyomo_relu.formulations.register_formulation`.
    """
    added = []
    for name in sorted(FORMULATIONS):
        full = PREFIX + name
        if full in TransformationFactory:
            continue
        cls = type(
            f"ReLUTransformation_{name.replace('.', '_')}",
            (ReLUTransformation,),
            {"formulation": name, "__doc__": f"Build declared ReLU blocks with the {name!r} formulation."},
        )
        TransformationFactory.register(full, doc=f"Build declared ReLUNetBlocks with the {name!r} formulation")(cls)
        added.append(full)
    return added


# ------------------------------------------------------------------ internals
def _component_datas(component: Any) -> Iterable[Any]:
    if component.is_indexed():
        return list(component.values())
    return [component]


def _resolve_targets(instance: Any, targets: Any) -> list[Any]:
    if not isinstance(targets, (list, tuple, set)):
        targets = [targets]
    model_roots = list(_component_datas(instance))
    roots = []
    for target in targets:
        if isinstance(target, ComponentUID):
            found = None
            for data in _component_datas(instance):
                found = target.find_component_on(data)
                if found is not None:
                    break
            if found is None:
                raise PyomoReluError(f"target {target} is not in {instance.name}")
            target = found
        if getattr(target, "ctype", None) not in (pe.Block, Disjunct):
            raise PyomoReluError(
                f"targets must be blocks (ReLUNetBlock, Block, Disjunct); got {getattr(target, 'name', target)!r}"
            )
        for data in _component_datas(target):
            if not within(data, model_roots):
                raise PyomoReluError(f"target {data.name} is not in {instance.name}")
            roots.append(data)
    return roots


register_transformations()
