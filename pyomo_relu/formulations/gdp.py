r"""Generalized disjunctive (``pyomo.gdp``) formulation of ``y = max(0, x)``.

For every unstable neuron (``L < 0 < U``) the block adds one two-term
:class:`~pyomo.gdp.Disjunction` over its *own* bounded variables ``x = pre[j]`` in
``[L, U]`` and ``y = post[j]`` in ``[0, U]`` (never over the user's variables)::

    [ active_disjunct[j]   ]     [ inactive_disjunct[j] ]
    [   y = x   (post_equals_pre) ]  v  [   y = 0   (post_zero)       ]
    [   x >= 0  (pre_nonnegative) ]     [   x <= 0  (pre_nonpositive) ]

``"gdp"`` leaves the disjunctions untransformed, so they can join the user's own
disjunctions in one GDP pipeline; the user then picks the reformulation.  What each
Pyomo transformation gives, per neuron:

* ``gdp.hull`` -- the convex hull of the two disjuncts over the variable bounds, which
  projected onto ``(x, y)`` is the triangle ``y >= x, y >= 0, y <= U (x - L) / (U - L)``
  (:mod:`~pyomo_relu.formulations.relaxation`): the strongest LP relaxation of one neuron
  alone, at the price of 4 disaggregated variables per neuron.  It needs bounded
  variables, which ``pre`` and ``post`` always are.
* ``gdp.bigm`` -- big-M rows with M taken from the variable bounds.  Pyomo's default Ms
  are looser than ours on ``y = x`` (``U - L`` where ``-L`` suffices).  With the tight
  Ms of :func:`tight_big_m` (``bigM=tight_big_m(m.nn)``, or the ``bigm_suffix=True``
  option, or the ``"gdp.bigm"`` formulation, which does it for you) the relaxation is
  exactly that of :mod:`~pyomo_relu.formulations.bigm`: the same triangle.
* ``gdp.mbigm`` -- multiple big-M; for two disjuncts it finds the tight Ms itself (same
  relaxation as ``bigm``) by solving one small LP per constraint and side.  Pyomo
  defaults to Gurobi for those LPs: **pass** ``solver=`` (a V1-API solver object such as
  ``pyomo.environ.SolverFactory("highs")``, ``"glpk"`` or ``"cbc"``; not the APPSI HiGHS interface,
  which hangs on Pyomo 6.10.1).  ``threads=1`` avoids starting worker processes.
* ``gdp.binary_multiplication`` -- each disjunct's constraints multiplied by its binary,
  e.g. ``(y - x) σ = 0``: **bilinear**, so only a nonconvex MINLP solver (SCIP here) can
  solve the result; its relaxation is weak.  Useful for comparisons, not for speed.

The formulations ``"gdp.bigm"``, ``"gdp.hull"``, ``"gdp.mbigm"`` and
``"gdp.binary_multiplication"`` build the same disjunctions and apply that
transformation to the layer's sub-block at once (``targets`` = the block only: the
user's disjunctions are left alone).  Their options are passed to the transformation;
``"gdp.bigm"`` also takes ``tight_m`` (default ``True``), and ``"gdp.mbigm"`` defaults
to ``solver=SolverFactory("highs")`` (else glpk, else cbc) and ``threads=1``.

``initialize`` sets ``indicator_var`` (and so ``binary_indicator_var``) from the forward
pass (``x > 0`` selects the active disjunct) and, after ``gdp.hull``, the disaggregated
variables, so the transformed model holds a feasible warm start.

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0], [-1.0], [2.0]], [0.0, 0.5, 3.0]),
...                          DenseLayer([[1.0, 1.0, 1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, formulation="gdp")
>>> print(m.nn.describe())
inputs Var [0]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0, 1, 2]
layer[0].pre Var [0, 1]
layer[0].affine Constraint [0, 1, 2]
layer[0].active_disjunct Disjunct [0, 1]
layer[0].inactive_disjunct Disjunct [0, 1]
layer[0].disjunction Disjunction [0, 1]
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'gdp' to layer 0:
  active_disjunct, inactive_disjunct, disjunction
>>> for d in (m.nn.layer[0].active_disjunct[0], m.nn.layer[0].inactive_disjunct[0]):
...     for c in d.component_data_objects(pe.Constraint):
...         print(c.local_name, c.expr)
post_equals_pre nn.layer[0].post[0] - nn.layer[0].pre[0]  ==  0
pre_nonnegative 0  <=  nn.layer[0].pre[0]
post_zero nn.layer[0].post[0]  ==  0
pre_nonpositive nn.layer[0].pre[0]  <=  0
>>> m.nn.layer[0].active_disjunct[0].indicator_var.value  # forward pass at x = 0: pre = 0
False
>>> pe.TransformationFactory("gdp.hull").apply_to(m)
>>> m.nn.stats()["binaries"]  # one per two-term disjunction
2

With ``formulation="gdp.bigm"`` the block is already a MILP, with tight Ms:

>>> m2 = pe.ConcreteModel()
>>> m2.nn = ReLUNetBlock()
>>> m2.nn.build(net, formulation="gdp.bigm")
>>> for c in m2.nn.layer[0].component_objects(pe.Constraint, descend_into=True):
...     print(c.name)
nn.layer[0].affine
nn.layer[0]._pyomo_gdp_bigm_reformulation.disjunction_xor
nn.layer[0]._pyomo_gdp_bigm_reformulation.relaxedDisjuncts[0].transformedConstraints
nn.layer[0]._pyomo_gdp_bigm_reformulation.relaxedDisjuncts[1].transformedConstraints
nn.layer[0]._pyomo_gdp_bigm_reformulation.relaxedDisjuncts[2].transformedConstraints
nn.layer[0]._pyomo_gdp_bigm_reformulation.relaxedDisjuncts[3].transformedConstraints
>>> print(m2.nn.layer[0]._pyomo_gdp_bigm_reformulation.relaxedDisjuncts[0]
...       .transformedConstraints["post_equals_pre_0", None, "ub"].expr)
nn.layer[0].post[0] - nn.layer[0].pre[0] - (1 - nn.layer[0].active_disjunct[0].binary_indicator_var)  <=  0.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any, ClassVar

import numpy as np
import pyomo.environ as pe
from pyomo.common.collections import ComponentMap
from pyomo.gdp import Disjunct, Disjunction

from pyomo_relu.errors import PyomoReluError
from pyomo_relu.formulations.base import Formulation, LayerContext, frozen_formulation
from pyomo_relu.options import check_options

#: Pyomo transformations offered as ready-made formulations ``"gdp.<name>"``.
TRANSFORMATIONS = ("bigm", "hull", "mbigm", "binary_multiplication")


@frozen_formulation
class Gdp(Formulation):
    """One untransformed disjunction per unstable neuron; ``bigm_suffix`` adds tight ``BigM`` suffixes."""

    name = "gdp"
    disjunctive = True

    bigm_suffix: bool = False

    def add(self, ctx: LayerContext) -> None:
        _add_disjunctions(ctx)
        if self.bigm_suffix:
            for j in ctx.unstable:
                for disjunct in (ctx.block.active_disjunct[int(j)], ctx.block.inactive_disjunct[int(j)]):
                    disjunct.BigM = pe.Suffix(direction=pe.Suffix.LOCAL)
                    for constraint in disjunct.component_data_objects(pe.Constraint, descend_into=False):
                        disjunct.BigM[constraint] = _TIGHT_M[constraint.local_name](disjunct, constraint)

    def initialize(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        initialize_disjunctions(ctx, pre_values)


@frozen_formulation
class TransformedGdp(Formulation):
    """The ``"gdp"`` disjunctions followed at once by one Pyomo GDP transformation of the layer block.

    ``transformation_options`` are the Pyomo transformation's options (``targets``
    excepted), and ``tight_m`` (default ``True``) for ``gdp.bigm``.
    """

    disjunctive = True
    #: The Pyomo transformation ``gdp.<transformation>``.
    transformation: ClassVar[str] = ""

    transformation_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        known = set(pe.TransformationFactory(f"gdp.{cls.transformation}").CONFIG) - {"targets"}
        if cls.transformation == "bigm":
            known.add("tight_m")
        return tuple(sorted(known))

    def validate(self) -> None:
        check_options(self.transformation_options, self.option_names(), f"formulation {self.name!r}")

    def with_options(self, options: Mapping[str, Any]) -> Formulation:
        return type(self)(transformation_options=dict(options))

    def changed_options(self) -> dict[str, Any]:
        return dict(self.transformation_options)

    def add(self, ctx: LayerContext) -> None:
        _add_disjunctions(ctx)
        self.transform(ctx.block)

    def initialize(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        initialize_disjunctions(ctx, pre_values)

    def transform(self, block: Any) -> None:
        """Apply the transformation to the disjunctions of ``block`` (tight Ms for ReLU disjuncts)."""
        options = dict(self.transformation_options)
        if self.transformation == "bigm":
            if options.pop("tight_m", True):
                user = options.pop("bigM", None)
                bigm = ComponentMap(user.items()) if isinstance(user, Mapping) else ComponentMap()
                if user is not None and not isinstance(user, Mapping):
                    bigm[None] = user  # the user's M for everything else
                for constraint, value in tight_big_m(block).items():
                    bigm.setdefault(constraint, value)
                options["bigM"] = bigm
        elif self.transformation == "mbigm":
            options.setdefault("threads", 1)
            if options.get("solver") is None:
                options["solver"] = default_mbigm_solver()
        pe.TransformationFactory(f"gdp.{self.transformation}").apply_to(block, **options)


@frozen_formulation
class GdpBigM(TransformedGdp):
    """ReLU disjunctions transformed by ``gdp.bigm`` with tight Ms (``tight_m=True``)."""

    name = "gdp.bigm"
    transformation = "bigm"


@frozen_formulation
class GdpHull(TransformedGdp):
    """ReLU disjunctions transformed by ``gdp.hull``."""

    name = "gdp.hull"
    transformation = "hull"


@frozen_formulation
class GdpMBigM(TransformedGdp):
    """ReLU disjunctions transformed by ``gdp.mbigm`` (default ``solver``: HiGHS, glpk or cbc; ``threads=1``)."""

    name = "gdp.mbigm"
    transformation = "mbigm"


@frozen_formulation
class GdpBinaryMultiplication(TransformedGdp):
    """ReLU disjunctions transformed by ``gdp.binary_multiplication`` (bilinear: for SCIP)."""

    name = "gdp.binary_multiplication"
    transformation = "binary_multiplication"


#: The ready-made ``"gdp.<t>"`` formulations.
VARIANTS: tuple[type[TransformedGdp], ...] = (GdpBigM, GdpHull, GdpMBigM, GdpBinaryMultiplication)


def initialize_disjunctions(ctx: LayerContext, pre_values: np.ndarray) -> None:
    """Select the disjunct the forward pass takes (``pre > 0`` is active) and set hull copies."""
    block = ctx.block
    hull = None
    for j in (int(j) for j in ctx.unstable):
        on = bool(pre_values[j] > 0)
        active, inactive = block.active_disjunct[j], block.inactive_disjunct[j]
        active.indicator_var.set_value(on)
        inactive.indicator_var.set_value(not on)
        for disjunct, chosen in ((active, on), (inactive, not on)):
            if not _hull_transformed(disjunct):
                continue
            hull = hull or pe.TransformationFactory("gdp.hull")
            for var in (block.pre[j], block.post[j]):
                copy = hull.get_disaggregated_var(var, disjunct, raise_exception=False)
                if copy is not None and copy is not var:
                    copy.set_value(var.value if chosen else 0.0, skip_validation=True)


def tight_big_m(block: Any) -> ComponentMap:
    """Tight big-M values for every ReLU disjunct constraint in ``block`` (any Pyomo block).

    Pass the map to ``TransformationFactory("gdp.bigm").apply_to(model, bigM=...)``: the
    constraints it does not list (the user's own disjunctions) keep Pyomo's default Ms.
    Values are ``(lower M, upper M)`` pairs read from the bounds of ``pre``:
    ``y - x`` in ``[0, -L]`` and ``x >= L`` off the active disjunct, ``y`` in ``[0, U]``
    and ``x <= U`` off the inactive one.
    """
    values = ComponentMap()
    for disjunct in block.component_data_objects(Disjunct, descend_into=(pe.Block, Disjunct)):
        if disjunct.parent_component().local_name not in ("active_disjunct", "inactive_disjunct"):
            continue
        if disjunct.parent_block().component("pre") is None:
            continue
        for constraint in disjunct.component_data_objects(pe.Constraint, descend_into=False):
            rule = _TIGHT_M.get(constraint.local_name)
            if rule is not None:
                values[constraint] = rule(disjunct, constraint)
    return values


# ------------------------------------------------------------------ internals
def _add_disjunctions(ctx: LayerContext) -> None:
    block, neurons = ctx.block, [int(j) for j in ctx.unstable]
    pre, post = ctx.pre, ctx.post

    def active_rule(d: Any, j: int) -> None:
        d.post_equals_pre = pe.Constraint(expr=post[j] - pre[j] == 0)
        d.pre_nonnegative = pe.Constraint(expr=pre[j] >= 0)

    def inactive_rule(d: Any, j: int) -> None:
        d.post_zero = pe.Constraint(expr=post[j] == 0)
        d.pre_nonpositive = pe.Constraint(expr=pre[j] <= 0)

    block.active_disjunct = Disjunct(neurons, rule=active_rule)
    block.inactive_disjunct = Disjunct(neurons, rule=inactive_rule)
    block.disjunction = Disjunction(neurons, rule=lambda b, j: [b.active_disjunct[j], b.inactive_disjunct[j]])


def _hull_transformed(disjunct: Any) -> bool:
    """Whether ``gdp.hull`` (whose block is ``_pyomo_gdp_hull_reformulation``) relaxed ``disjunct``."""
    relaxed = disjunct.transformation_block
    return relaxed is not None and "hull" in relaxed.parent_block().local_name


def _pre_bounds(disjunct: Any) -> tuple[float, float]:
    pre = disjunct.parent_block().pre[disjunct.index()]
    return float(pre.lb), float(pre.ub)


_TIGHT_M = {
    "post_equals_pre": lambda d, c: (0.0, -_pre_bounds(d)[0]),
    "pre_nonnegative": lambda d, c: (_pre_bounds(d)[0], None),
    "post_zero": lambda d, c: (0.0, _pre_bounds(d)[1]),
    "pre_nonpositive": lambda d, c: (None, _pre_bounds(d)[1]),
}


def default_mbigm_solver() -> Any:
    """A V1-API solver for ``gdp.mbigm``'s subproblems: HiGHS, else glpk, else cbc."""
    from pyomo.opt import SolverFactory

    for solver_name in ("highs", "glpk", "cbc"):
        solver = SolverFactory(solver_name)
        if solver.available(exception_flag=False):
            return solver
    raise PyomoReluError(
        "gdp.mbigm needs an LP solver for its M values and none of highs, glpk, cbc is "
        "available; pass solver=SolverFactory(...) (pip install highspy)"
    )
