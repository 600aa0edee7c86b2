"""``ReLUNetBlock``: a Pyomo block that embeds a network in the user's model.

>>> import pyomo.environ as pe
>>> from pyomo_relu import DenseLayer, NetworkDefinition, ReLUNetBlock
>>> net = NetworkDefinition([DenseLayer([[1.0, -1.0], [1.0, 1.0]], [0.0, 0.0]),
...                          DenseLayer([[1.0, -2.0]], [0.0], "linear")],
...                         input_bounds=[(-1, 1), (-1, 1)])
>>> m = pe.ConcreteModel()
>>> m.x = pe.Var(range(2))
>>> m.y = pe.Var()
>>> m.nn = ReLUNetBlock()
>>> m.nn.build(net, inputs=m.x, outputs=[m.y])
>>> m.nn.stats()["binaries"]
2
>>> print(m.nn.describe())
input_box Constraint [0, 1]
layer Block [0, 1]
layer[0].post Var [0, 1]
layer[0].pre Var [0, 1]
layer[0].affine Constraint [0, 1]
layer[0].is_active Var [0, 1]
layer[0].post_at_least_pre Constraint [0, 1]
layer[0].post_at_most_pre_when_active Constraint [0, 1]
layer[0].post_zero_when_inactive Constraint [0, 1]
layer[1].pre Var []
layer[1].affine Constraint [0]
added by 'bigm' to layer 0:
  is_active, post_at_least_pre, post_at_most_pre_when_active, post_zero_when_inactive

Everything the block creates lives inside it: ``inputs``/``outputs`` (only when the user
did not pass variables), ``input_box`` (when the user's variables are looser than the
network's input box), and one sub-block ``layer[k]`` per canonical layer holding
``post[j]`` (every neuron), ``pre[j]`` (unstable ReLU neurons only), ``affine[j]`` and the
formulation's own components: :meth:`ReLUNetBlockData.describe` lists them all and
:attr:`ReLUNetBlockData.added` records what each layer's formulation added.  The user's
variables, bounds and objective are never modified (as a warm start, output variables and
input variables without a value get values).
"""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyomo.environ as pe
from pyomo.common.gc_manager import PauseGC
from pyomo.core.base.block import BlockData, declare_custom_block
from pyomo.core.base.var import VarData

from pyomo_relu.block_args import (
    as_var_list,
    finite,
    input_box,
    is_default_bounds,
    output_box,
    require_finite_inputs,
)
from pyomo_relu.block_args import bound_value as _bound
from pyomo_relu.block_layers import LayerJob, build_layer, first_identical_rows, next_inputs, require_support
from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.chain import BoundsSpec, check_chain_options, resolve_bounds
from pyomo_relu.components import within
from pyomo_relu.errors import PyomoReluError
from pyomo_relu.formulations import FormulationSpec, layer_formulations
from pyomo_relu.formulations.base import Added, Formulation
from pyomo_relu.formulations.context import LayerContext
from pyomo_relu.formulations.step import initialize_step
from pyomo_relu.network import MaxLayer, NetworkDefinition
from pyomo_relu.options import strict_keywords

logger = logging.getLogger(__name__)

if TYPE_CHECKING:  # made by declare_custom_block below: the Pyomo component whose data is ReLUNetBlockData
    ReLUNetBlock: Any

_first_identical_rows = first_identical_rows  # read by pyomo_relu.handoff


@declare_custom_block(name="ReLUNetBlock")
class ReLUNetBlockData(BlockData):
    """Data class of :class:`ReLUNetBlock`; call :meth:`build` to populate it."""

    _network: NetworkDefinition | None = None
    _bounds: Bounds | None = None
    _layer_contexts: list[tuple[str, LayerContext]] = []
    _input_vars: list[VarData] = []
    _output_vars: list[VarData] = []
    _declared: dict[str, Any] | None = None
    _formulations: list[Formulation] = []

    # ---------------------------------------------------------------- declare
    @strict_keywords
    def declare(
        self,
        net: NetworkDefinition,
        inputs: Any = None,
        outputs: Any = None,
        *,
        bounds: BoundsSpec = "auto",
        input_bounds: object = None,
        initialize: bool = True,
    ) -> None:
        """Store the network and its settings without building; choose the formulation later.

        A ``relu.<formulation>`` transformation (``TransformationFactory("relu.bigm")
        .apply_to(model)``, see :mod:`pyomo_relu.transformations`) builds every declared
        block of a model, or call ``build(formulation=...)`` without a network.  The
        arguments mean what they mean in :meth:`build`.  ``self.inputs`` and
        ``self.outputs`` (when the user gives no variables) are created now so that the
        user's constraints can refer to them; the outputs get their bounds when built.
        """
        if self._network is not None or self._declared is not None:
            raise PyomoReluError(f"block {self.name} is already {'built' if self._network is not None else 'declared'}")
        input_vars = as_var_list(inputs, net.n_inputs, "inputs")
        output_vars = as_var_list(outputs, net.n_outputs, "outputs")
        created_outputs = output_vars is None
        if input_vars is None:
            lower, upper = input_box(net, None, input_bounds)
            self.inputs = pe.Var(range(net.n_inputs), bounds=lambda b, i: (finite(lower[i]), finite(upper[i])))
            input_vars = list(self.inputs.values())
        if output_vars is None:
            self.outputs = pe.Var(range(net.n_outputs))
            output_vars = list(self.outputs.values())
        self._declared = {
            "net": net,
            "inputs": input_vars,
            "outputs": output_vars,
            "bounds": bounds,
            "input_bounds": input_bounds,
            "initialize": initialize,
            "created_outputs": created_outputs,
        }

    @property
    def is_declared(self) -> bool:
        """True when :meth:`declare` stored a network that is not built yet."""
        return self._declared is not None and self._network is None

    @property
    def is_built(self) -> bool:
        return self._network is not None

    def _build_declared(self, formulation: FormulationSpec) -> None:
        """Build from the stored :meth:`declare` spec with ``formulation``."""
        spec = self._declared
        assert spec is not None
        self._declared = None  # build() refuses declared blocks; restore the spec afterwards
        try:
            self.build(
                spec["net"],
                spec["inputs"],
                spec["outputs"],
                formulation=formulation,
                bounds=spec["bounds"],
                input_bounds=spec["input_bounds"],
                initialize=False,
            )
        finally:
            self._declared = spec
        if spec["created_outputs"]:
            net, bounds = self._require_built()
            out_lower, out_upper = net.canonical_layers[-1].output_bounds(bounds.lower[-1], bounds.upper[-1])
            for j, var in enumerate(spec["outputs"]):
                var.setlb(finite(out_lower[j]))
                var.setub(finite(out_upper[j]))
        if spec["initialize"]:
            self.initialize()

    # ------------------------------------------------------------------ build
    @strict_keywords
    def build(
        self,
        net: NetworkDefinition | None = None,
        inputs: Any = None,
        outputs: Any = None,
        *,
        formulation: FormulationSpec = "bigm",
        bounds: BoundsSpec = "auto",
        input_bounds: object = None,
        output_bounds: object = None,
        bounds_options: dict[str, Any] | None = None,
        initialize: bool = True,
    ) -> None:
        """Create the network's variables and constraints in this block.

        Args:
            net: the network; ``None`` builds the network stored by :meth:`declare` (then
                give only ``formulation``).
            inputs: the user's variables for the network inputs (an indexed Var in index
                order, a list of VarData, or a scalar Var for one input); ``None`` creates
                ``self.inputs``.
            outputs: likewise for the outputs; ``None`` creates ``self.outputs``.
            formulation: a formulation name (``"bigm"``), ``(name, options)``, a formulation
                object (``Partition(n=4)``, :mod:`pyomo_relu.formulations`) or a dict per layer
                of ``net.layers`` (index or name, see ``net.summary()``) with a ``"default"`` entry.
            bounds: a bounds method name, a list of names applied in turn, or a
                :class:`~pyomo_relu.bounds.Bounds` object.  The default ``"auto"`` picks
                the chain from the network's size and the box: interval and CROWN always,
                then LP tightening for networks of moderate size and MILP tightening (a
                short time per neuron) when few neurons remain unstable
                (:func:`pyomo_relu.bounds.chain._auto` lists the thresholds); ``"interval"`` is fastest.
            input_bounds: extra input bounds (any form NetworkDefinition accepts),
                intersected with the network's and the input variables' bounds.
            output_bounds: bounds the outputs must satisfy (same forms).  They are
                enforced in the block (``output_box``) and, together with the bounds of
                the user's output variables, used by ``"lp"``/``"milp"`` tightening to
                shrink neuron bounds backwards (Grimstad & Andersson 2019).
            bounds_options: options for the bounds methods (``time_limit``,
                ``executor``, ``progress``, ``time_limit_per_neuron``, ...).  With
                ``"mode": "model"``, ``"lp"``/``"milp"`` also use every linear constraint
                of the surrounding model touching the inputs or outputs (declared before).
            initialize: set every variable from a forward pass (a feasible warm start).
        """
        if self._network is not None:
            raise PyomoReluError(f"block {self.name} is already built; create a new ReLUNetBlock")
        if self._declared is not None:
            given = (net, inputs, outputs, input_bounds, output_bounds, bounds_options)
            if any(x is not None for x in given) or not is_default_bounds(bounds) or initialize is not True:
                raise PyomoReluError(
                    f"block {self.name} was declared: call build() with only formulation=...; the "
                    "network, inputs, outputs, bounds, input_bounds and initialize go to declare()"
                )
            return self._build_declared(formulation)
        if net is None:
            raise PyomoReluError(f"block {self.name}: build() needs a network, or call declare(net, ...) first")
        start = time.perf_counter()
        self._build_network(net, inputs, outputs, formulation, bounds, (input_bounds, output_bounds), bounds_options)
        if initialize:
            self.initialize()
        logger.info("built %s (%s) in %.3f s", self.name, net, time.perf_counter() - start)

    def _build_network(
        self,
        net: NetworkDefinition,
        inputs: Any,
        outputs: Any,
        formulation: FormulationSpec,
        bounds: BoundsSpec,
        boxes: tuple[object, object],
        bounds_options: dict[str, Any] | None,
    ) -> None:
        """:meth:`build` of a network: check everything, compute the bounds, then add the components."""
        input_vars = as_var_list(inputs, net.n_inputs, "inputs")
        output_vars = as_var_list(outputs, net.n_outputs, "outputs")
        lower, upper = input_box(net, input_vars, boxes[0])
        require_finite_inputs(net, lower, upper, input_vars)
        resolved, enforced = self._neuron_bounds(
            net, bounds, (lower, upper), input_vars, output_vars, boxes[1], bounds_options
        )
        formulations = layer_formulations(formulation, net)  # bad names/options fail before anything is added
        require_support(net.canonical_layers, formulations)
        with PauseGC():  # millions of expression objects: no cyclic collections while they are made
            self._add_inputs(net, input_vars, lower, upper)
            self._network, self._bounds, self._formulations = net, resolved, formulations
            self._build_layers(output_vars)
            if enforced is not None:
                self._add_output_box(*enforced)

    def _neuron_bounds(
        self,
        net: NetworkDefinition,
        bounds: BoundsSpec,
        box: tuple[np.ndarray, np.ndarray],
        input_vars: list[VarData] | None,
        output_vars: list[VarData] | None,
        output_bounds: object,
        bounds_options: dict[str, Any] | None,
    ) -> tuple[Bounds, tuple[np.ndarray, np.ndarray] | None]:
        """The neuron bounds over ``box``, and the output box to enforce in the block (if any)."""
        out_lower, out_upper = output_box(net, output_vars, output_bounds)
        enforced = None if output_bounds is None else (out_lower, out_upper)
        if isinstance(bounds, Bounds) and bounds.output_lower is not None and bounds.output_upper is not None:
            enforced = (np.maximum(out_lower, bounds.output_lower), np.minimum(out_upper, bounds.output_upper))
        has_outputs = bool(np.any(np.isfinite(out_lower)) or np.any(np.isfinite(out_upper)))
        chain = [] if isinstance(bounds, Bounds) else [bounds] if isinstance(bounds, str) else list(bounds)
        check_chain_options(chain, bounds_options or {}, "build(bounds_options=...)", extra=("mode",))
        options = self._side_constraint_options(dict(bounds_options or {}), input_vars, output_vars)
        resolved = resolve_bounds(
            net, bounds, box[0], box[1], output_bounds=(out_lower, out_upper) if has_outputs else None, **options
        )
        return resolved, enforced

    def _add_inputs(
        self, net: NetworkDefinition, input_vars: list[VarData] | None, lower: np.ndarray, upper: np.ndarray
    ) -> None:
        """``self.inputs`` when the user gave no variables, else ``input_box`` where theirs are looser."""
        if input_vars is None:
            self.inputs = pe.Var(range(net.n_inputs), bounds=lambda b, i: (lower[i], upper[i]))
            self._input_vars = list(self.inputs.values())
            return
        self._input_vars = input_vars
        loose = [
            i
            for i, var in enumerate(input_vars)
            if not var.fixed and (_bound(var.lb, -np.inf) < lower[i] or _bound(var.ub, np.inf) > upper[i])
        ]
        if loose:
            self.input_box = pe.Constraint(loose, rule=lambda b, i: (float(lower[i]), input_vars[i], float(upper[i])))

    def _side_constraint_options(
        self, options: dict[str, Any], input_vars: list[VarData] | None, output_vars: list[VarData] | None
    ) -> dict[str, Any]:
        """``bounds_options={"mode": "model"}``: the surrounding model's linear constraints."""
        mode = options.pop("mode", "network")
        if mode == "network":
            return options
        if mode != "model":
            raise PyomoReluError(f"bounds_options mode={mode!r}: use 'network' or 'model'")
        if input_vars is None or output_vars is None:
            raise PyomoReluError(
                f"{self.name}: bounds mode 'model' reads the model's constraints on the network's "
                "inputs and outputs, so pass your own variables as inputs= and outputs= (or use declare())"
            )
        from pyomo_relu.model_bounds import linear_side_constraints

        options["side_constraints"] = linear_side_constraints(self.model(), input_vars, output_vars, exclude=self)
        return options

    def _add_output_box(self, lower: np.ndarray, upper: np.ndarray) -> None:
        """Enforce output bounds that the bounds were computed under."""
        rows = [j for j in range(len(lower)) if np.isfinite(lower[j]) or np.isfinite(upper[j])]
        outputs = self._output_vars
        self.output_box = pe.Constraint(rows, rule=lambda b, j: (finite(lower[j]), outputs[j], finite(upper[j])))

    def _build_layers(self, output_vars: list[VarData] | None) -> None:
        """One sub-block ``layer[k]`` per canonical layer, from the stored network, bounds and formulations."""
        net, bounds = self._require_built()
        layers = net.canonical_layers
        if output_vars is None:
            out_lower, out_upper = layers[-1].output_bounds(bounds.lower[-1], bounds.upper[-1])
            self.outputs = pe.Var(
                range(net.n_outputs), bounds=lambda b, j: (finite(out_lower[j]), finite(out_upper[j]))
            )
            output_vars = list(self.outputs.values())
        self.layer = pe.Block(range(len(layers)))
        h_vars: list[VarData | None] = list(self._input_vars)
        h_lower, h_upper = bounds.input_lower, bounds.input_upper
        contexts = []
        for k, layer in enumerate(layers):
            last = k == len(layers) - 1
            job = LayerJob(self.layer[k], k, layer, h_vars, h_lower, h_upper, bounds.lower[k], bounds.upper[k])
            job.formulation = self._formulations[k]
            job.targets = output_vars if (last and layer.is_linear) else None
            ctx = build_layer(job)
            contexts.append((ctx.formulation, ctx))  # the name: what handoff and the reports read
            h_vars = next_inputs(ctx)
            h_lower, h_upper = layer.output_bounds(bounds.lower[k], bounds.upper[k])
        if not layers[-1].is_linear:
            last_post = contexts[-1][1].post
            self.outputs_link = pe.Constraint(
                range(net.n_outputs), rule=lambda b, j: output_vars[j] - last_post[j] == 0
            )
        self._layer_contexts = contexts
        self._output_vars = output_vars

    def rebuild(self, bounds: Bounds) -> None:
        """Rebuild the layers (same formulation, same variables) over tighter ``bounds``.

        ``bounds`` must hold for this network on a box inside the block's input box (e.g.
        a sub-box of a branch and bound, :mod:`pyomo_relu.split`): big-M coefficients and
        the other formulation constants shrink, and neurons they prove stable get no
        binary.  The input and output variables and the block's ``input_box`` and
        ``output_box`` stay; the ``layer`` blocks are new.
        """
        net, _ = self._require_built()
        bounds.check_compatible(net.content_hash(), bounds.input_lower, bounds.input_upper)
        for name in ("layer", "outputs_link"):
            if self.component(name) is not None:
                self.del_component(name)
        self._bounds = bounds
        with PauseGC():
            self._build_layers(self._output_vars)

    # ------------------------------------------------------------- warm start
    def initialize(self, input_values: Sequence[float] | None = None) -> None:
        """Set every block variable and the outputs from a forward pass (a feasible warm start).

        User input variables keep their values (and get one only if they have none).

        The inputs are ``input_values`` if given, else the current values of the input
        variables, else the centre of the input box; they are clipped to the box.
        """
        net, _ = self._require_built()
        x = self._input_point(input_values)
        for var, value in zip(self._input_vars, x):  # first: formulations may read them
            if var.value is None or within(var, [self]):
                var.set_value(float(value), skip_validation=True)
        values = x
        for (_, ctx), layer in zip(self._layer_contexts, net.canonical_layers):
            pre = layer.preactivation(values[None, :])[0]
            post = layer.activate(pre)
            _set_values(ctx.post, post)
            _set_values(ctx.block.pre, pre, list(ctx.block.pre.keys()))
            _initialize_layer(ctx, pre)
            values = post
        for var, value in zip(self._output_vars, values):  # outputs follow from the inputs
            var.set_value(float(value), skip_validation=True)

    def _input_point(self, input_values: Sequence[float] | None) -> np.ndarray:
        _, bounds = self._require_built()
        lower, upper = bounds.input_lower, bounds.input_upper
        if input_values is not None:
            x = np.asarray(input_values, dtype=float)
        else:
            centre = np.where(np.isfinite(lower) & np.isfinite(upper), (lower + upper) / 2, 0.0)
            x = np.array([centre[i] if v.value is None else v.value for i, v in enumerate(self._input_vars)], float)
        return np.clip(x, lower, upper)

    # ------------------------------------------------------------- reporting
    @property
    def network(self) -> NetworkDefinition:
        return self._require_built()[0]

    @property
    def neuron_bounds(self) -> Bounds:
        """The pre-activation bounds the block was built with."""
        return self._require_built()[1]

    @property
    def input_vars(self) -> list[VarData]:
        return list(self._input_vars)

    @property
    def output_vars(self) -> list[VarData]:
        return list(self._output_vars)

    def stats(self) -> dict[str, Any]:
        """Counts of variables, binaries, constraints, and stable neurons per layer.

        ``binaries`` counts the unfixed binary variables; a two-term disjunction (the
        ``gdp`` formulations before transformation) counts once, as the binary it becomes.
        """
        net, bounds = self._require_built()
        per_layer = [
            _layer_stats(k, layer, bounds.lower[k], bounds.upper[k]) for k, layer in enumerate(net.canonical_layers)
        ]
        variables = list(self.component_data_objects(pe.Var, descend_into=True))
        indicators = _paired_indicators(self)
        return {
            "variables": sum(1 for v in variables if not v.fixed),
            "binaries": sum(1 for v in variables if v.is_binary() and not v.fixed and id(v) not in indicators),
            "constraints": sum(1 for _ in self.component_data_objects(pe.Constraint, active=True, descend_into=True)),
            "layers": per_layer,
            "bounds_methods": list(bounds.methods),
        }

    def forward(self) -> np.ndarray:
        """The network's output at the current values of the input variables."""
        net, _ = self._require_built()
        x = [v.value for v in self._input_vars]
        if any(value is None for value in x):
            raise PyomoReluError(f"{self.name}: some input variables have no value; solve or initialize first")
        return net.evaluate(np.array(x, dtype=float))

    def get_error(self) -> float:
        """``max |outputs - forward pass at the current inputs|`` (0 for a correct solution)."""
        y = np.array([np.nan if v.value is None else v.value for v in self._output_vars], float)
        return float(np.max(np.abs(y - self.forward())))

    @property
    def added(self) -> list[Added]:
        """What each layer's formulation added (one record per layer with unstable neurons)."""
        return [ctx.added for _, ctx in self._layer_contexts if ctx.added is not None]

    def describe(self) -> str:
        """Every component the block holds, one line each (``name ctype indices``), then :attr:`added`."""
        lines = [_component_line("", c) for c in self.component_objects(descend_into=False)]
        layer = self.component("layer")
        for k in [] if layer is None else list(layer.keys()):
            lines += [_component_line(f"layer[{k}].", c) for c in layer[k].component_objects(descend_into=False)]
        for record in self.added:
            lines.append(f"added by {record.formulation!r} to layer {record.layer}:")
            lines.append(textwrap.fill(", ".join(record.components), 96, initial_indent="  ", subsequent_indent="  "))
        return "\n".join(lines)

    def approximation_error(self) -> np.ndarray:
        """A sound bound, per output, on ``|outputs - network(inputs)|`` over the block's feasible set.

        0 where every layer is exact; positive with ``pwl`` (smooth neurons between two
        piecewise-linear functions) or ``relaxation`` layers.  See
        :func:`pyomo_relu.formulations.pwl.approximation_error`.
        """
        from pyomo_relu.formulations.pwl import approximation_error

        net, bounds = self._require_built()
        return approximation_error(net.canonical_layers, bounds, self._layer_contexts)

    def _require_built(self) -> tuple[NetworkDefinition, Bounds]:
        if self._network is None or self._bounds is None:
            raise PyomoReluError(f"block {self.name} is not built yet; call .build(net, ...) first")
        return self._network, self._bounds


# --------------------------------------------------------------------- helpers
def _initialize_layer(ctx: LayerContext, pre: np.ndarray) -> None:
    """The formulation's warm start of one layer (its own variables), from the pre-activations."""
    chosen = ctx.chosen
    assert chosen is not None
    if isinstance(ctx.layer, MaxLayer):
        if ctx.unstable.size:
            chosen.initialize_max(ctx, pre)
        return
    if ctx.unstable.size:
        chosen.initialize(ctx, pre)
    chosen.initialize_smooth(ctx, pre)
    initialize_step(ctx, pre)


def _component_line(prefix: str, component: Any) -> str:
    keys = list(component.keys())
    try:
        keys = sorted(keys)
    except TypeError:
        pass
    shown = str(keys) if len(keys) <= 12 else f"[{', '.join(map(str, keys[:4]))}, ..., {keys[-1]}] ({len(keys)})"
    return f"{prefix}{component.local_name} {component.ctype.__name__} {shown}"


def _layer_stats(k: int, layer: Any, lower: np.ndarray, upper: np.ndarray) -> dict[str, Any]:
    """Sizes and stability of one canonical layer."""
    if isinstance(layer, MaxLayer):
        single, several = layer.candidates(lower, upper)
        return {
            "layer": k,
            "activation": "max",
            "neurons": layer.n_outputs,
            "rows": layer.n_pre,
            "stable_active": int(single.size),
            "stable_inactive": 0,
            "unstable": int(np.unique(layer.groups[several]).size),
        }
    relu, stepped = layer.relu_mask, layer.step_mask  # a step neuron: active where l >= 0, inactive where u < 0
    return {
        "layer": k,
        "activation": layer.activation,
        "neurons": layer.n_outputs,
        "stable_active": int((relu & (lower >= 0)).sum() + (stepped & (lower >= 0)).sum()),
        "stable_inactive": int((relu & (upper <= 0)).sum() + (stepped & (upper < 0)).sum()),
        "unstable": int((relu & (lower < 0) & (upper > 0)).sum() + (stepped & (lower < 0) & (upper >= 0)).sum()),
    }


def _paired_indicators(block: Any) -> set[int]:
    """Binary indicators that duplicate another in a two-term disjunction (one binary each)."""
    from pyomo.gdp import Disjunction

    paired: set[int] = set()
    for disjunction in block.component_data_objects(Disjunction, descend_into=True):
        disjuncts = list(disjunction.disjuncts)
        if len(disjuncts) == 2:
            paired.add(id(disjuncts[1].binary_indicator_var))
    return paired


def _set_values(var: Any, values: np.ndarray, indices: Iterable[int] | None = None) -> None:
    for j in range(len(values)) if indices is None else indices:
        data = var[int(j)]
        if not data.fixed:
            data.set_value(float(values[j]), skip_validation=True)


import pyomo_relu.transformations  # noqa: E402,F401  registers the relu.<formulation> transformations
