r"""Complementarity formulation of ``y = max(0, x)``: ``0 <= y  ⟂  y - x >= 0``.

``y = max(0, x)`` holds exactly when ``y >= 0``, ``y - x >= 0`` and at least one of the
two is zero.  Per unstable neuron (``L < 0 < U``), with ``x = pre[j]``, ``y = post[j]``:

* ``reformulation=None`` (the default) adds a :mod:`pyomo.mpec` component
  ``complementarity[j] = complements(y >= 0, y - x >= 0)`` and leaves it to the user,
  who applies an ``mpec.*`` transformation (``mpec.simple_nonlinear``,
  ``mpec.simple_disjunction``, ``mpec.standard_form``, ...) or hands the model to a
  solver that reads complementarity (``mpec.nl`` writers, PATH).
* ``reformulation="product"`` writes it ourselves, with no new variables::

      y - x >= 0                       (post_at_least_pre)
      y (y - x) <= eps                 (complementarity_product; y >= 0 is a bound)

  ``eps = 0`` (the default) is exact; ``eps > 0`` is the usual regularisation for
  NLP solvers (it allows ``y`` and ``y - x`` both positive, a product up to ``eps``).
  ``chord=True`` adds the valid cut ``y <= U (x - L) / (U - L)`` (``post_below_chord``,
  the top of the triangle of :mod:`~pyomo_relu.formulations.relaxation`), which gives
  a spatial branch-and-bound solver a linear relaxation to start from.
* ``reformulation="mpec.simple_nonlinear"`` (or any ``mpec.*`` transformation name)
  adds the complementarity component and applies that Pyomo transformation to the layer's
  sub-block (``eps`` is passed as ``mpec_bound``).

The product ``y (y - x)`` is a nonconvex (bilinear) constraint: the model is an NLP
(MINLP with the user's integers), no longer a MILP.  A global solver such as SCIP solves
it exactly by spatial branching; local NLP solvers (ipopt) only find stationary points
and suffer from the degenerate constraint qualification of complementarity (use
``eps > 0``).  HiGHS, glpk and CBC cannot solve it.  No binaries are added.

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0], [-1.0], [2.0]], [0.0, 0.5, 3.0]),
...                          DenseLayer([[1.0, 1.0, 1.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, formulation="complementarity")
>>> print(m.nn.describe())
inputs Var [0]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0, 1, 2]
layer[0].pre Var [0, 1]
layer[0].affine Constraint [0, 1, 2]
layer[0].complementarity Complementarity [0, 1]
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'complementarity' to layer 0:
  complementarity
>>> m2 = pe.ConcreteModel()
>>> m2.nn = ReLUNetBlock()
>>> m2.nn.build(net, formulation=("complementarity", {"reformulation": "product"}))
>>> print(m2.nn.describe())
inputs Var [0]
outputs Var [0]
layer Block [0, 1]
layer[0].post Var [0, 1, 2]
layer[0].pre Var [0, 1]
layer[0].affine Constraint [0, 1, 2]
layer[0].post_at_least_pre Constraint [0, 1]
layer[0].complementarity_product Constraint [0, 1]
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'complementarity' to layer 0:
  post_at_least_pre, complementarity_product
>>> print(m2.nn.layer[0].complementarity_product[0].expr)
nn.layer[0].post[0]*(nn.layer[0].post[0] - nn.layer[0].pre[0])  <=  0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyomo.environ as pe
from pyomo.mpec import Complementarity as MpecComplementarity
from pyomo.mpec import complements

from pyomo_relu.errors import PyomoReluError
from pyomo_relu.formulations.base import Formulation, LayerContext, frozen_formulation


@frozen_formulation
class Complementarity(Formulation):
    """``0 <= y ⟂ y - x >= 0`` per unstable neuron, as a component or reformulated (module doc).

    Smooth (sigmoid, tanh, softplus) neurons of its layers get ``post == f(pre)``
    (``smooth_activation``): the model is an NLP/MINLP anyway.
    """

    name = "complementarity"
    smooth = True

    reformulation: str | None = None
    eps: float = 0.0
    chord: bool = False

    def validate(self) -> None:
        reformulation = self.reformulation
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not float(self.eps) >= 0:
            raise PyomoReluError(f"complementarity: eps must be >= 0, not {self.eps!r}")
        if self.chord and reformulation != "product":
            raise PyomoReluError("complementarity: chord=True needs reformulation='product'")
        if reformulation not in (None, "product"):
            if not str(reformulation).startswith("mpec.") or reformulation not in pe.TransformationFactory:
                raise PyomoReluError(
                    f"complementarity: unknown reformulation {reformulation!r}; use None, 'product' "
                    "or a pyomo.mpec transformation name such as 'mpec.simple_nonlinear'"
                )

    def add(self, ctx: LayerContext) -> None:
        eps = float(self.eps)
        block, neurons = ctx.block, [int(j) for j in ctx.unstable]
        pre, post = ctx.pre, ctx.post
        if self.reformulation == "product":
            block.post_at_least_pre = pe.Constraint(neurons, rule=lambda b, j: post[j] - pre[j] >= 0)
            block.complementarity_product = pe.Constraint(
                neurons, rule=lambda b, j: post[j] * (post[j] - pre[j]) <= eps
            )
            if self.chord:
                from pyomo_relu.formulations.relaxation import add_chord

                add_chord(ctx)
            return
        block.complementarity = MpecComplementarity(
            neurons, rule=lambda b, j: complements(post[j] >= 0, post[j] - pre[j] >= 0)
        )
        if self.reformulation is not None:
            transformation = pe.TransformationFactory(self.reformulation)
            kwargs = {"mpec_bound": eps} if self.reformulation == "mpec.simple_nonlinear" else {}
            transformation.apply_to(block, **kwargs)

    def initialize(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        """Set the copies of ``post`` that ``mpec.*`` transformations create (``complementarity[j].v``)."""
        comp = ctx.block.component("complementarity")
        if comp is None:
            return
        for j in (int(j) for j in ctx.unstable):
            copy: Any = comp[j].component("v")
            if copy is not None and not copy.fixed:
                copy.set_value(max(0.0, float(pre_values[j])), skip_validation=True)

    def post_error(self, ctx: LayerContext) -> tuple[np.ndarray, np.ndarray] | None:
        """With ``eps > 0``, ``y (y - x) <= eps`` allows ``y - relu(x)`` up to ``sqrt(eps)``."""
        unstable = ctx.unstable.astype(int)
        if float(self.eps) <= 0 or not unstable.size:
            return None
        below, above = np.zeros(ctx.layer.n_outputs), np.zeros(ctx.layer.n_outputs)
        above[unstable] = np.sqrt(float(self.eps))
        return below, above
