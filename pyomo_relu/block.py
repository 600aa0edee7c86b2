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

Everything the block creates lives inside it: ``inputs``/``outputs`` (only when the user
did not pass variables), ``input_box`` (when the user's variables are looser than the
network's input box), and one sub-block ``layer[k]`` per canonical layer holding
``post[j]`` (every neuron), ``pre[j]`` (unstable ReLU neurons only), ``affine[j]`` and the
formulation's own components.  The user's variables, bounds and objective are never
modified (as a warm start, output variables and input variables without a value get values).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyomo.environ as pe
from pyomo.core.base.block import BlockData, declare_custom_block
from pyomo.core.base.var import IndexedVar, ScalarVar, VarData
from pyomo.core.expr.numeric_expr import LinearExpression, MonomialTermExpression

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.chain import BoundsSpec, check_chain_options, resolve_bounds
from pyomo_relu.errors import MissingBoundsError, PyomoReluError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.formulations import FormulationSpec, formulation_for_layer, get_formulation
from pyomo_relu.formulations import step as step_formulation
from pyomo_relu.formulations.base import LayerContext
from pyomo_relu.network import DenseLayer, MaxLayer, NetworkDefinition
from pyomo_relu.options import strict_keywords
from pyomo_relu.sparse import is_sparse, row_entries

logger = logging.getLogger(__name__)


@declare_custom_block(name="ReLUNetBlock")
class ReLUNetBlockData(BlockData):
    """Data class of :class:`ReLUNetBlock`; call :meth:`build` to populate it."""

    _network: NetworkDefinition | None = None
    _bounds: Bounds | None = None
    _layer_contexts: list[tuple[str, LayerContext]] = []
    _input_vars: list[VarData] = []
    _output_vars: list[VarData] = []
    _declared: dict[str, Any] | None = None
    _formulation: FormulationSpec = "bigm"

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
        input_vars = _as_var_list(inputs, net.n_inputs, "inputs")
        output_vars = _as_var_list(outputs, net.n_outputs, "outputs")
        created_outputs = output_vars is None
        if input_vars is None:
            lower, upper = _input_box(net, None, input_bounds)
            self.inputs = pe.Var(range(net.n_inputs), bounds=lambda b, i: (_finite(lower[i]), _finite(upper[i])))
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
            layers, bounds = spec["net"].canonical_layers, self._bounds
            out_lower, out_upper = layers[-1].output_bounds(bounds.lower[-1], bounds.upper[-1])
            for j, var in enumerate(spec["outputs"]):
                var.setlb(_finite(out_lower[j]))
                var.setub(_finite(out_upper[j]))
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
            formulation: a formulation name (``"bigm"``), ``(name, options)`` or a dict per
                layer of ``net.layers`` (index or name, see ``net.summary()``) with a ``"default"`` entry.
            bounds: a bounds method name, a list of names applied in turn, or a
                :class:`~pyomo_relu.bounds.Bounds` object.  The default ``"auto"`` picks
                the chain from the network's size and the box: interval and CROWN always,
                then LP tightening for networks of moderate size and MILP tightening (a
                short time per neuron) when few neurons remain unstable
                (:func:`pyomo_relu.bounds.chain._auto` lists the thresholds); ``"interval"``
                builds fastest.
            input_bounds: extra input bounds (any form NetworkDefinition accepts),
                intersected with the network's and the input variables' bounds.
            output_bounds: bounds the outputs must satisfy (same forms).  They are
                enforced in the block (``output_box``) and, together with the bounds of
                the user's output variables, used by ``"lp"``/``"milp"`` tightening to
                shrink neuron bounds backwards (Grimstad & Andersson 2019).
            bounds_options: options for the bounds methods (``time_limit``,
                ``executor``, ``progress``, ``time_limit_per_neuron``, ...).  With
                ``"mode": "model"``, ``"lp"``/``"milp"`` also use every linear constraint
                of the surrounding model that touches the inputs or outputs (declare those
                constraints before building).
            initialize: set every variable from a forward pass (a feasible warm start).
        """
        if self._network is not None:
            raise PyomoReluError(f"block {self.name} is already built; create a new ReLUNetBlock")
        if self._declared is not None:
            if (
                net is not None
                or inputs is not None
                or outputs is not None
                or input_bounds is not None
                or output_bounds is not None
                or bounds_options is not None
                or not _is_default_bounds(bounds)
                or initialize is not True
            ):
                raise PyomoReluError(
                    f"block {self.name} was declared: call build() with only formulation=...; the "
                    "network, inputs, outputs, bounds, input_bounds and initialize go to declare()"
                )
            return self._build_declared(formulation)
        if net is None:
            raise PyomoReluError(f"block {self.name}: build() needs a network, or call declare(net, ...) first")
        start = time.perf_counter()
        input_vars = _as_var_list(inputs, net.n_inputs, "inputs")
        output_vars = _as_var_list(outputs, net.n_outputs, "outputs")
        lower, upper = _input_box(net, input_vars, input_bounds)
        _require_finite_inputs(net, lower, upper, input_vars)
        out_lower, out_upper = _output_box(net, output_vars, output_bounds)
        enforced = None if output_bounds is None else (out_lower, out_upper)
        if isinstance(bounds, Bounds) and bounds.output_lower is not None:
            enforced = (np.maximum(out_lower, bounds.output_lower), np.minimum(out_upper, bounds.output_upper))
        has_outputs = bool(np.any(np.isfinite(out_lower)) or np.any(np.isfinite(out_upper)))
        chain = [] if isinstance(bounds, Bounds) else [bounds] if isinstance(bounds, str) else list(bounds)
        check_chain_options(chain, bounds_options or {}, "build(bounds_options=...)", extra=("mode",))
        options = self._side_constraint_options(dict(bounds_options or {}), input_vars, output_vars)
        resolved = resolve_bounds(
            net, bounds, lower, upper, output_bounds=(out_lower, out_upper) if has_outputs else None, **options
        )
        for k in range(len(net.canonical_layers)):  # bad names/options fail before anything is added
            formulation_for_layer(formulation, k, net)
        if input_vars is None:
            self.inputs = pe.Var(range(net.n_inputs), bounds=lambda b, i: (lower[i], upper[i]))
            input_vars = list(self.inputs.values())
        else:
            self._add_input_box(input_vars, lower, upper)
        self._network, self._bounds, self._input_vars = net, resolved, input_vars
        self._formulation = formulation
        self._build_layers(net, resolved, input_vars, output_vars, formulation)
        if enforced is not None:
            self._add_output_box(*enforced)
        if initialize:
            self.initialize()
        logger.info("built %s (%s) in %.3f s", self.name, net, time.perf_counter() - start)

    def _add_input_box(self, input_vars: list[VarData], lower: np.ndarray, upper: np.ndarray) -> None:
        """Constrain user inputs whose own bounds are looser than the network's box."""
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
        self.output_box = pe.Constraint(rows, rule=lambda b, j: (_finite(lower[j]), outputs[j], _finite(upper[j])))

    def _build_layers(
        self,
        net: NetworkDefinition,
        bounds: Bounds,
        input_vars: list[VarData],
        output_vars: list[VarData] | None,
        formulation: FormulationSpec,
    ) -> None:
        layers = net.canonical_layers
        if output_vars is None:
            out_lower, out_upper = layers[-1].output_bounds(bounds.lower[-1], bounds.upper[-1])
            self.outputs = pe.Var(
                range(net.n_outputs), bounds=lambda b, j: (_finite(out_lower[j]), _finite(out_upper[j]))
            )
            output_vars = list(self.outputs.values())
        self.layer = pe.Block(range(len(layers)))
        h_vars: list[VarData | None] = list(input_vars)
        h_lower, h_upper = bounds.input_lower, bounds.input_upper
        contexts = []
        for k, layer in enumerate(layers):
            last = k == len(layers) - 1
            module, options = formulation_for_layer(formulation, k, net)
            targets = output_vars if (last and layer.is_linear) else None
            build = _build_max_layer if isinstance(layer, MaxLayer) else _build_layer
            ctx = build(
                self.layer[k],
                k,
                layer,
                h_vars,
                h_lower,
                h_upper,
                bounds.lower[k],
                bounds.upper[k],
                module,
                options,
                targets,
            )
            contexts.append((ctx.formulation, ctx))  # a name, not the module: blocks must clone
            h_vars = _next_inputs(ctx)
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
        self._build_layers(net, bounds, self._input_vars, self._output_vars, self._formulation)

    # ------------------------------------------------------------- warm start
    def initialize(self, input_values: Sequence[float] | None = None) -> None:
        """Set every block variable and the outputs from a forward pass (a feasible warm start).

        User input variables keep their values (and get one only if they have none).

        The inputs are ``input_values`` if given, else the current values of the input
        variables, else the centre of the input box; they are clipped to the box.
        """
        net, bounds = self._require_built()
        x = self._input_point(input_values)
        for var, value in zip(self._input_vars, x):  # first: formulations may read them
            if var.value is None or _owned_by(var, self):
                var.set_value(float(value), skip_validation=True)
        values = x
        for (name, ctx), layer in zip(self._layer_contexts, net.canonical_layers):
            pre = layer.preactivation(values[None, :])[0]
            post = layer.activate(pre)
            _set_values(ctx.post, post)
            _set_values(ctx.block.pre, pre, list(ctx.block.pre.keys()))
            module = _formulation_module(name)
            if ctx.unstable.size:
                module.initialize(ctx, pre)
            if hasattr(module, "initialize_smooth"):
                module.initialize_smooth(ctx, pre)
            step_formulation.initialize_step(ctx, pre)
            values = post
        for var, value in zip(self._output_vars, values):  # outputs follow from the inputs
            var.set_value(float(value), skip_validation=True)

    def _input_point(self, input_values: Sequence[float] | None) -> np.ndarray:
        bounds = self._bounds
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


# ---------------------------------------------------------------------- layers
def _build_layer(
    block: Any,
    index: int,
    layer: DenseLayer,
    inputs: list[VarData | None],
    input_lower: np.ndarray,
    input_upper: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    module: Any,
    options: dict[str, Any],
    targets: list[VarData] | None,
) -> LayerContext:
    """Variables, affine equalities and the activation formulation of one dense layer."""
    relu, smooth = layer.relu_mask, layer.smooth_mask
    n = layer.n_outputs
    inactive = np.flatnonzero(relu & (upper <= 0))
    unstable = np.flatnonzero(relu & (lower < 0) & (upper > 0))
    curved = np.flatnonzero(smooth)
    if curved.size and not getattr(module, "supports_smooth", False):
        kinds = sorted(set(layer.kinds[curved].tolist()))
        raise UnsupportedOperatorError(
            f"layer {index} ({layer.name or 'dense'}) has {', '.join(kinds)} neurons, which have no MILP "
            f"formulation (formulation {module.name!r}); use formulation='pwl' (a certified "
            "piecewise-linear MILP relaxation) or 'complementarity' (exact, for an NLP/MINLP solver such as SCIP)"
        )
    _require_finite_neurons(index, unstable, lower, upper)
    post_lower, post_upper = layer.output_bounds(lower, upper)
    if targets is None:
        block.post = pe.Var(range(n), bounds=lambda b, j: (_finite(post_lower[j]), _finite(post_upper[j])))
        post: Any = block.post
        for j in inactive:
            post[int(j)].fix(0.0)
    else:
        post = targets  # the network outputs themselves: no copy, no link
    stepped = np.flatnonzero(layer.step_mask)  # step/sign: always formulations/step.py
    with_pre = np.union1d(np.union1d(unstable, curved), stepped)
    block.pre = pe.Var(_index_set(with_pre), bounds=lambda b, j: (_finite(lower[j]), _finite(upper[j])))
    has_pre = np.zeros(n, dtype=bool)
    has_pre[with_pre] = True
    defined = np.setdiff1d(np.arange(n), inactive)
    terms = _affine_terms(layer, inputs)
    pre = block.pre

    same_as = _first_identical_rows(layer, defined)  # leaky_relu: relu(z) and its linear copy z

    def affine_rule(b: Any, j: int) -> tuple:
        target = pre[j] if has_pre[j] else post[j]
        if same_as[j] != j:  # the same affine map as an earlier neuron: equal to its variable
            r = same_as[j]
            return (
                0.0,
                LinearExpression(
                    [
                        MonomialTermExpression((1.0, target)),
                        MonomialTermExpression((-1.0, pre[r] if has_pre[r] else post[r])),
                    ]
                ),
                0.0,
            )
        rhs = -float(layer.bias[j])
        return (rhs, LinearExpression(terms(j) + [MonomialTermExpression((-1.0, target))]), rhs)

    block.affine = pe.Constraint(_index_set(defined), rule=affine_rule)
    if is_sparse(layer.weights) and getattr(module, "reads_weights", False):
        layer = layer.with_affine(layer.weights.toarray(), layer.bias)  # partition, extended, ideal cuts
    ctx = LayerContext(
        block, index, layer, list(inputs), post, input_lower, input_upper, lower, upper, unstable, options
    )
    ctx.formulation = module.name
    if curved.size and hasattr(module, "build_smooth"):  # pwl: a MILP relaxation of f
        module.build_smooth(ctx, curved)
    elif curved.size:
        block.smooth_activation = pe.Constraint(
            _index_set(curved), rule=lambda b, j: post[j] == _smooth_expression(layer.kinds[j], pre[j])
        )
    if stepped.size:
        step_formulation.build_step(ctx, stepped, None if module is step_formulation else step_formulation.DEFAULT_EPS)
    if unstable.size:
        module.build(ctx)
    return ctx


def _first_identical_rows(layer: DenseLayer, rows: np.ndarray) -> dict[int, int]:
    """For each of ``rows``, the first of ``rows`` with the same weights and bias (itself if none).

    Only mixed layers have such rows (the lowering of leaky_relu writes ``z`` twice), so
    other layers skip the search.
    """
    same = {int(j): int(j) for j in rows}
    if layer.activation != "mixed":
        return same
    first: dict[bytes, int] = {}
    weights = layer.weights
    for j in (int(j) for j in rows):
        if is_sparse(weights):
            cols, values = row_entries(weights, j)
            key = cols.tobytes() + b"|" + values.tobytes()
        else:
            key = np.asarray(weights[j]).tobytes()
        key += b"|" + layer.bias[j : j + 1].tobytes()
        same[j] = first.setdefault(key, j)
    return same


def _formulation_module(name: str) -> Any:
    """The module behind a stored formulation name (max layers have their own)."""
    from pyomo_relu.formulations import max_affine

    return max_affine if name == max_affine.name else get_formulation(name)


def _smooth_expression(kind: str, z: Any) -> Any:
    """Pyomo expression of a smooth activation (for NLP/MINLP solvers)."""
    if kind == "sigmoid":
        return 1 / (1 + pe.exp(-z))
    if kind == "tanh":
        return pe.tanh(z)
    return pe.log(1 + pe.exp(z))  # softplus


def _build_max_layer(
    block: Any,
    index: int,
    layer: MaxLayer,
    inputs: list[VarData | None],
    input_lower: np.ndarray,
    input_upper: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    module: Any,
    options: dict[str, Any],
    targets: list[VarData] | None,
) -> LayerContext:
    """``post[g] = max_i pre[i]`` over each group (max pooling, max of affine functions).

    Rows that can never be their group's maximum (``u_i < max_k l_k``) are left out; a
    group with one candidate row is an affine equality (no binary); the others get the
    max-of-affine formulation of :mod:`pyomo_relu.formulations.max_affine`.
    """
    from pyomo_relu.formulations import max_affine

    groups = layer.groups
    single, several = layer.candidates(lower, upper)
    open_groups = np.unique(groups[several])
    _require_finite_neurons(index, several, lower, upper)
    post_lower, post_upper = layer.output_bounds(lower, upper)
    block.post = pe.Var(range(layer.n_outputs), bounds=lambda b, g: (_finite(post_lower[g]), _finite(post_upper[g])))
    post = block.post
    block.pre = pe.Var(_index_set(several), bounds=lambda b, i: (float(lower[i]), float(upper[i])))
    pre = block.pre
    terms = _affine_terms(layer, inputs)
    is_single = np.zeros(layer.n_pre, dtype=bool)
    is_single[single] = True

    def affine_rule(b: Any, i: int) -> tuple:
        target = post[int(groups[i])] if is_single[i] else pre[i]
        rhs = -float(layer.bias[i])
        return (rhs, LinearExpression(terms(i) + [MonomialTermExpression((-1.0, target))]), rhs)

    block.affine = pe.Constraint(_index_set(np.sort(np.r_[single, several])), rule=affine_rule)
    ctx = LayerContext(
        block, index, layer, list(inputs), post, input_lower, input_upper, lower, upper, several, options
    )
    ctx.formulation = max_affine.name
    ctx.groups = open_groups
    if several.size:
        if module.name.startswith("gdp"):  # disjunctions, transformed like the ReLU ones
            max_affine.build_disjunctions(ctx)
            if hasattr(module, "transform"):
                module.transform(block, options)
        else:
            max_affine.build(ctx)
    return ctx


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


def _affine_terms(layer: Any, inputs: list[VarData | None]):
    """A function giving the monomials ``W[j, i] * h_i`` of neuron ``j`` (zeros skipped)."""
    columns = np.array([i for i, var in enumerate(inputs) if var is not None], dtype=int)
    variables = [inputs[i] for i in columns]
    if is_sparse(layer.weights):  # CSR rows: only the stored non-zeros are read
        weights_csr = layer.weights[:, columns].tocsr()
        weights_csr.sort_indices()

        def sparse_terms(j: int) -> list:
            cols, values = row_entries(weights_csr, j)
            return [MonomialTermExpression((c, variables[i])) for c, i in zip(values.tolist(), cols.tolist())]

        return sparse_terms
    weights = layer.weights[:, columns]
    sparse = bool(np.any(weights == 0))

    def terms(j: int) -> list:
        row = weights[j]
        if sparse:
            keep = np.flatnonzero(row)
            return [MonomialTermExpression((c, variables[i])) for c, i in zip(row[keep].tolist(), keep)]
        return list(map(MonomialTermExpression, zip(row.tolist(), variables)))

    return terms


def _index_set(indices: Iterable[int]) -> pe.Set:
    """A one-dimensional ordered index set (GDP transformations need the dimension known)."""
    return pe.Set(initialize=[int(j) for j in indices], dimen=1, ordered=True)


def _next_inputs(ctx: LayerContext) -> list[VarData | None]:
    """Post-activation variables of a layer, ``None`` where fixed at zero."""
    post = ctx.post
    return [None if post[j].fixed and post[j].value == 0 else post[j] for j in range(ctx.layer.n_outputs)]


# --------------------------------------------------------------------- helpers
def _as_var_list(obj: Any, size: int, what: str) -> list[VarData] | None:
    """Normalise the user's ``inputs``/``outputs`` argument to a list of VarData."""
    if obj is None:
        return None
    if isinstance(obj, IndexedVar):
        items = list(obj.values())
    elif isinstance(obj, (ScalarVar, VarData)):
        items = [obj]
    elif isinstance(obj, Iterable):
        items = list(obj)
    else:
        raise PyomoReluError(f"{what} must be a Pyomo Var or a list of VarData, not {type(obj).__name__}")
    for item in items:
        if not isinstance(item, VarData):
            raise PyomoReluError(
                f"{what} must contain Pyomo variables; got {_describe(item)} ({type(item).__name__}). "
                "For an expression, add a variable and an equality constraint for it"
            )
    if len(items) != size:
        names = ", ".join(v.name for v in items[:4]) + (", ..." if len(items) > 4 else "")
        raise ShapeMismatchError(f"{what} has {len(items)} variables ({names}) but the network has {size} {what}")
    return items


def _input_box(
    net: NetworkDefinition, input_vars: list[VarData] | None, extra: object
) -> tuple[np.ndarray, np.ndarray]:
    """The tightest of the network's bounds, ``extra`` and the input variables' own bounds."""
    lower, upper = net.input_lower.copy(), net.input_upper.copy()
    if extra is not None:
        more = net.with_input_bounds(extra)
        lower, upper = np.maximum(lower, more.input_lower), np.minimum(upper, more.input_upper)
    if input_vars is not None:
        for i, var in enumerate(input_vars):
            lb, ub = (var.value, var.value) if var.fixed else (var.lb, var.ub)
            lower[i] = max(lower[i], _bound(lb, -np.inf))
            upper[i] = min(upper[i], _bound(ub, np.inf))
    crossed = np.flatnonzero(lower > upper)
    if crossed.size:
        i = int(crossed[0])
        where = f" (variable {input_vars[i].name})" if input_vars is not None else ""
        raise MissingBoundsError(
            f"input {i}{where}: the network's box and the variable's bounds do not overlap "
            f"(lower {lower[i]} > upper {upper[i]})"
        )
    return lower, upper


def _output_box(
    net: NetworkDefinition, output_vars: list[VarData] | None, extra: object
) -> tuple[np.ndarray, np.ndarray]:
    """Output bounds from ``extra`` and the user's output variables (±inf where none)."""
    lower, upper = np.full(net.n_outputs, -np.inf), np.full(net.n_outputs, np.inf)
    if extra is not None:
        from pyomo_relu.bounds.chain import output_box

        box = output_box(net, extra)
        if box is not None:
            lower, upper = box
    if output_vars is not None:
        for j, var in enumerate(output_vars):
            lb, ub = (var.value, var.value) if var.fixed else (var.lb, var.ub)
            lower[j] = max(lower[j], _bound(lb, -np.inf))
            upper[j] = min(upper[j], _bound(ub, np.inf))
    return lower, upper


def _require_finite_inputs(
    net: NetworkDefinition, lower: np.ndarray, upper: np.ndarray, input_vars: list[VarData] | None
) -> None:
    if all(layer.is_linear for layer in net.canonical_layers):
        return
    missing = np.flatnonzero(~np.isfinite(lower) | ~np.isfinite(upper))
    if missing.size == 0:
        return
    i = int(missing[0])
    side = "lower" if not np.isfinite(lower[i]) else "upper"
    more = f" (and {missing.size - 1} more)" if missing.size > 1 else ""
    if input_vars is not None:
        where = f"input {i} (variable {input_vars[i].name})"
        fix = f"set {input_vars[i].name}.setlb()/.setub(), or pass input_bounds= to build() or to the reader"
    else:
        where = f"input {i}"
        fix = "pass input_bounds= to build() or to the reader (e.g. load_onnx(path, input_bounds=...))"
    raise MissingBoundsError(f"{where} has no {side} bound{more}; ReLU formulations need a bounded input box: {fix}")


def _require_finite_neurons(index: int, unstable: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
    bad = [int(j) for j in unstable if not (np.isfinite(lower[j]) and np.isfinite(upper[j]))]
    if bad:
        raise MissingBoundsError(
            f"layer {index}, neuron {bad[0]}: pre-activation bounds are infinite; bound the inputs"
        )


def _is_default_bounds(bounds: Any) -> bool:
    return isinstance(bounds, str) and bounds == "auto"


def _describe(item: Any) -> str:
    """Pyomo expressions print as algebra (``x[1] + 1``), anything else by repr."""
    return str(item) if hasattr(item, "is_expression_type") else repr(item)


def _bound(value: Any, default: float) -> float:
    return default if value is None else float(value)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _set_values(var: Any, values: np.ndarray, indices: Iterable[int] | None = None) -> None:
    for j in range(len(values)) if indices is None else indices:
        data = var[int(j)]
        if not data.fixed:
            data.set_value(float(values[j]), skip_validation=True)


def _owned_by(var: VarData, block: Any) -> bool:
    parent = var.parent_block()
    while parent is not None:
        if parent is block:
            return True
        parent = parent.parent_block()
    return False


import pyomo_relu.transformations  # noqa: E402,F401  registers the relu.<formulation> transformations
