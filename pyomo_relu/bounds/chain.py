"""``tighten``: run bounds methods one after another, each starting from the last.

Methods are looked up by name in :data:`METHODS`; each takes the network, the input box
and the bounds so far, and returns bounds no looser than those.  Options of ``tighten``
(``time_limit``, ``executor``, ``progress``, ``output_bounds``, ...) reach the methods
whose signature names them; methods with ``**kwargs`` receive all of them.  A name that
no method of the chain takes raises :class:`~pyomo_relu.errors.UnknownOptionError`
(:func:`check_chain_options`), so a misspelled ``time_limt=5`` is never ignored.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pyomo_relu.bounds.alpha import alpha_crown_bounds
from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.crown import crown_bounds
from pyomo_relu.bounds.interval import interval_bounds
from pyomo_relu.bounds.obbt import apply_output_bounds, lp_bounds, milp_bounds
from pyomo_relu.bounds.rows import SideConstraints
from pyomo_relu.errors import PyomoReluError, ShapeMismatchError
from pyomo_relu.network import NetworkDefinition
from pyomo_relu.network.boxes import as_bounds_pair, check_box
from pyomo_relu.options import check_options
from pyomo_relu.sparse import is_sparse

logger = logging.getLogger(__name__)

BoundsSpec = str | Sequence[str] | Bounds
Method = Callable[..., Bounds]


def _interval(net: NetworkDefinition, lower: np.ndarray, upper: np.ndarray, start: Bounds | None) -> Bounds:
    return interval_bounds(net, lower, upper, start)


def _crown(net: NetworkDefinition, lower: np.ndarray, upper: np.ndarray, start: Bounds | None) -> Bounds:
    return crown_bounds(net, lower, upper, start)


def _alpha_crown(
    net: NetworkDefinition,
    lower: np.ndarray,
    upper: np.ndarray,
    start: Bounds | None,
    *,
    time_limit: float | None = None,
) -> Bounds:
    return alpha_crown_bounds(net, lower, upper, start, time_limit=time_limit)


#: ``"auto"``: LP tightening runs when at most this many neurons are unstable after CROWN ...
AUTO_LP_UNSTABLE = 1500
#: ... and the network has at most this many weights (nonzeros).
AUTO_LP_WEIGHTS = 100_000
#: ``"auto"``: MILP tightening runs when at most this many neurons are unstable after LP.
AUTO_MILP_UNSTABLE = 120
#: ``"auto"``: seconds for each of the two MILPs of a neuron.
AUTO_MILP_SECONDS_PER_NEURON = 0.05
#: ``"auto"``: at most this many seconds for the LP step and for the MILP step each.
AUTO_STEP_SECONDS = 20.0


def _auto(
    net: NetworkDefinition,
    lower: np.ndarray,
    upper: np.ndarray,
    start: Bounds | None,
    *,
    output_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    time_limit: float | None = None,
    **options: Any,
) -> Bounds:
    """The default chain (registered as ``"auto"``), chosen from the network's size and the box.

    ``interval`` and ``crown`` always (cheap even on million-weight networks); then
    ``lp`` when at most :data:`AUTO_LP_UNSTABLE` neurons are still unstable and the
    network has at most :data:`AUTO_LP_WEIGHTS` weights; then ``milp`` (with
    :data:`AUTO_MILP_SECONDS_PER_NEURON` seconds per solve) when at most
    :data:`AUTO_MILP_UNSTABLE` neurons remain unstable.  Each of the two optimisation
    steps gets at most :data:`AUTO_STEP_SECONDS` (never more than ``time_limit`` leaves);
    neurons they do not reach keep their CROWN bounds.  The steps that ran are listed in
    :attr:`Bounds.methods`.
    """
    deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
    bounds = start
    for name in ("interval", "crown"):
        bounds = run_method(net, name, lower, upper, bounds, output_bounds, deadline, options)
    assert bounds is not None
    if 0 < _unstable(bounds) <= AUTO_LP_UNSTABLE and net_weights(net) <= AUTO_LP_WEIGHTS:
        bounds = run_method(net, "lp", lower, upper, bounds, output_bounds, _step_deadline(deadline), options)
    if 0 < _unstable(bounds) <= AUTO_MILP_UNSTABLE and not bounds.interrupted:
        milp = {"time_limit_per_neuron": AUTO_MILP_SECONDS_PER_NEURON, **options}
        bounds = run_method(net, "milp", lower, upper, bounds, output_bounds, _step_deadline(deadline), milp)
    return bounds


def _step_deadline(deadline: float | None) -> float:
    """The deadline of one optimisation step of ``"auto"``."""
    step = time.perf_counter() + AUTO_STEP_SECONDS
    return step if deadline is None else min(step, deadline)


def _unstable(bounds: Bounds) -> int:
    """Unstable hidden neurons (the output layer has no activation to split)."""
    return sum(int(bounds.unstable(k).sum()) for k in range(bounds.n_layers - 1))


def net_weights(net: NetworkDefinition) -> int:
    """Stored weights (nonzeros of sparse layers) of all layers."""
    total = 0
    for layer in net.layers:
        weights = getattr(layer, "weights", None)
        if weights is not None:
            total += int(weights.nnz if is_sparse(weights) else np.size(weights))
    return total


#: Bounds methods by name: ``method(net, lower, upper, start, **options) -> Bounds``.
METHODS: dict[str, Method] = {
    "interval": _interval,
    "crown": _crown,
    "alpha-crown": _alpha_crown,
    "lp": lp_bounds,
    "milp": milp_bounds,
    "auto": _auto,
}


def tighten(
    net: NetworkDefinition,
    method: str | Sequence[str] = "interval",
    input_bounds: object = None,
    *,
    output_bounds: object = None,
    mode: str = "network",
    model: Any = None,
    input_vars: Sequence[Any] | None = None,
    output_vars: Sequence[Any] | None = None,
    exclude: Any = None,
    **options: Any,
) -> Bounds:
    """Bounds of every neuron of ``net`` by a method or a chain of methods.

    ``input_bounds`` (any form NetworkDefinition accepts) is intersected with the
    network's own input bounds.  Each method starts from the bounds of the previous one.

    Options are passed to the methods that take them: ``time_limit`` (wall-clock seconds
    for the whole chain; neurons not reached keep their bounds; each HiGHS LP gets at most
    what is left; measured past the limit: at most 0.08 s on networks of 10 k to 4 M weights,
    ``benchmarks/RESULTS.md``, "Scale: time limits"), ``executor`` (``None``,
    a number of processes or a ``concurrent.futures.Executor``), ``progress``,
    ``time_limit_per_neuron`` (``"milp"``), ... (see :mod:`pyomo_relu.bounds.obbt`).

    ``output_bounds`` (same forms as ``input_bounds``, over the network outputs) are
    imposed on the outputs: ``"lp"``/``"milp"`` then also tighten backwards, shrinking
    bounds of early layers and of the inputs (:attr:`Bounds.implied_input_lower`).  Such
    bounds are valid **only in models that enforce those output bounds**; they are
    recorded in :attr:`Bounds.output_lower`/:attr:`Bounds.output_upper`.

    ``mode="network"`` uses the network and the boxes only.  ``mode="model"`` also uses
    the linear constraints of the Pyomo ``model`` around the network (Grimstad &
    Andersson 2019): ``input_vars`` and ``output_vars`` are the model's variables of the
    network inputs and outputs (in order), and constraints inside ``exclude`` (e.g. the
    :class:`~pyomo_relu.block.ReLUNetBlock` itself) are skipped.  Linear constraints
    connected to those variables (directly or through other variables, whose integrality
    is relaxed) and the bounds of the input and output variables become rows of the
    ``"lp"``/``"milp"`` LPs (forward pass and backward sweep); nonlinear constraints are
    ignored (:func:`pyomo_relu.model_bounds.linear_side_constraints`).  The bounds are then
    valid **only for points satisfying the model's constraints**; ``"model"`` is added to
    :attr:`Bounds.methods` and the input box they imply is in
    :attr:`Bounds.implied_input_lower`/``upper``.  ``"interval"`` and ``"crown"`` ignore the
    model.  A model whose constraints no network point satisfies raises
    :class:`PyomoReluError`.

    >>> from pyomo_relu.network import DenseLayer, NetworkDefinition
    >>> net = NetworkDefinition([DenseLayer([[1.0, 1.0], [1.0, -1.0]], [0.0, 0.0]),
    ...                          DenseLayer([[1.0, 1.0]], [0.0], "linear")],
    ...                         input_bounds=[(-1, 1), (-1, 1)])
    >>> tighten(net, ["interval", "lp"]).upper[-1].round(6)    # the triangle relaxation
    array([3.])
    >>> tighten(net, ["interval", "milp"]).upper[-1].round(6)  # exact: relu(x0+x1) + relu(x0-x1) <= 2
    array([2.])
    """
    check_chain_options(_as_chain(method), options, "tighten()")
    side = _side_constraints(net, mode, model, input_vars, output_vars, exclude)
    if side is not None:
        options["side_constraints"] = side
    return run_chain(net, _as_chain(method), *_input_box(net, input_bounds), output_bounds=output_bounds, **options)


def _input_box(net: NetworkDefinition, input_bounds: object) -> tuple[np.ndarray, np.ndarray]:
    """The network's input box intersected with ``input_bounds`` (any form it accepts)."""
    if input_bounds is None:
        return net.input_lower, net.input_upper
    more = net.with_input_bounds(input_bounds)
    return np.maximum(net.input_lower, more.input_lower), np.minimum(net.input_upper, more.input_upper)


def _side_constraints(
    net: NetworkDefinition,
    mode: str,
    model: Any,
    input_vars: Sequence[Any] | None,
    output_vars: Sequence[Any] | None,
    exclude: Any,
) -> SideConstraints | None:
    """The model's linear constraints for ``mode="model"`` (``None`` for ``"network"``), arguments checked."""
    if mode == "network":
        if model is not None or input_vars is not None or output_vars is not None or exclude is not None:
            raise PyomoReluError("model=, input_vars=, output_vars= and exclude= need tighten(mode='model')")
        return None
    if mode != "model":
        raise PyomoReluError(f"tighten(mode={mode!r}): mode must be 'network' or 'model'")
    if model is None or input_vars is None or output_vars is None:
        raise PyomoReluError(
            "tighten(mode='model') needs the Pyomo model and the network's variables: "
            "tighten(net, method, mode='model', model=m, input_vars=[...], output_vars=[...], "
            "exclude=<the ReLU block or None>)"
        )
    input_vars, output_vars = list(input_vars), list(output_vars)
    if len(input_vars) != net.n_inputs or len(output_vars) != net.n_outputs:
        raise ShapeMismatchError(
            f"tighten(mode='model'): {len(input_vars)} input and {len(output_vars)} output "
            f"variables given, the network has {net.n_inputs} inputs and {net.n_outputs} outputs"
        )
    from pyomo_relu.model_bounds import linear_side_constraints  # the one Pyomo reader, outside bounds/

    return linear_side_constraints(model, input_vars, output_vars, exclude)


def run_chain(
    net: NetworkDefinition,
    chain: Sequence[str],
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    output_bounds: object = None,
    time_limit: float | None = None,
    **options: Any,
) -> Bounds:
    """Apply the named methods in turn over the box ``[lower, upper]``.

    ``time_limit`` caps the whole chain: each method gets the time that is left.  With
    ``output_bounds`` every result is intersected with them and records them.  On Ctrl-C
    (``KeyboardInterrupt``) the bounds found so far are returned (sound: every step only
    intersects valid bounds) and the chain stops; :attr:`Bounds.interrupted` is then true.
    """
    outputs = output_box(net, output_bounds)
    deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
    bounds: Bounds | None = None
    for name in chain:
        if name not in METHODS:
            raise PyomoReluError(f"unknown bounds method {name!r}; available: {', '.join(METHODS)}")
        bounds = run_method(net, name, lower, upper, bounds, outputs, deadline, options)
        if bounds.interrupted:
            break
    if bounds is None:
        raise PyomoReluError("tighten() needs at least one bounds method")
    return bounds


def run_method(
    net: NetworkDefinition,
    name: str,
    lower: np.ndarray,
    upper: np.ndarray,
    bounds: Bounds | None,
    outputs: tuple[np.ndarray, np.ndarray] | None,
    deadline: float | None,
    options: dict[str, Any],
) -> Bounds:
    """One step of a chain: method ``name`` from ``bounds``, within the output box and the deadline."""
    start = time.perf_counter()
    if bounds is None and name not in ("interval", "auto"):
        bounds = interval_bounds(net, lower, upper)
    if bounds is not None and outputs is not None:
        bounds = apply_output_bounds(net, bounds, *outputs)
    kwargs = dict(options, output_bounds=outputs)
    if deadline is not None:
        kwargs["time_limit"] = max(0.0, deadline - start)
    method = METHODS[name]
    try:
        bounds = method(net, lower, upper, bounds, **_accepted(method, kwargs))
    except KeyboardInterrupt:  # Ctrl-C: the bounds of the steps done are sound; stop there
        if bounds is None:
            raise
        logger.warning("bounds %s interrupted (Ctrl-C): returning the bounds of %s", name, bounds.methods)
        bounds = dataclasses.replace(bounds, methods=bounds.methods + (f"{name}(interrupted)",))
    if outputs is not None:
        bounds = apply_output_bounds(net, bounds, *outputs)
    logger.info(
        "bounds %s: %.3f s, unstable per layer %s",
        name,
        time.perf_counter() - start,
        [row["unstable"] for row in bounds.summary()],
    )
    return bounds


def output_box(net: NetworkDefinition, output_bounds: object) -> tuple[np.ndarray, np.ndarray] | None:
    """``(lower, upper)`` arrays over the outputs from any form input bounds accept."""
    if output_bounds is None:
        return None
    pair = as_bounds_pair(output_bounds, net.n_outputs, "output")
    assert pair is not None
    lower, upper = pair
    check_box(lower, upper, "output")
    return lower, upper


#: Options set by ``tighten``/``run_chain`` themselves, never by the user through ``**options``.
_INTERNAL = ("output_bounds",)


def method_options(name: str) -> set[str]:
    """The option names bounds method ``name`` takes (its keyword-only parameters).

    A method with ``**kwargs`` forwards them to the other methods (``"auto"`` runs
    ``"lp"`` and ``"milp"``), so it takes every option any of them takes.
    """
    method = METHODS[name]
    parameters = inspect.signature(method).parameters.values()
    names = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        for other in METHODS:
            if other != name and METHODS[other] is not method:
                names |= {
                    p.name
                    for p in inspect.signature(METHODS[other]).parameters.values()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY
                }
    return names - set(_INTERNAL)


def check_chain_options(chain: Sequence[str], options: Any, where: str, extra: Sequence[str] = ()) -> None:
    """Refuse an option that no method of ``chain`` takes (``time_limit`` caps any chain and
    ``progress``, cosmetic, is accepted by any chain).

    ``extra`` are names the caller handles itself (``build``'s ``"mode"``).  Unknown method
    names are left to :func:`run_chain`, which lists the methods.
    """
    valid = {"time_limit", "progress", *extra}
    for name in chain:
        if name in METHODS:
            valid |= method_options(name)
    check_options(options, valid, where)


def _accepted(method: Method, options: dict[str, Any]) -> dict[str, Any]:
    """The options ``method`` takes (all of them if it has ``**kwargs``)."""
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return options
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    return {key: value for key, value in options.items() if key in parameters}


def resolve_bounds(
    net: NetworkDefinition,
    spec: BoundsSpec,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    output_bounds: object = None,
    **options: Any,
) -> Bounds:
    """Bounds for ``build(bounds=spec)``: computed by name/chain, or checked if given.

    Given :class:`Bounds` computed with output bounds are valid only where those output
    bounds hold; :class:`~pyomo_relu.block.ReLUNetBlock` enforces them in its
    ``output_box`` constraint.
    """
    if isinstance(spec, Bounds):
        spec.check_compatible(net.content_hash(), lower, upper)
        spec.check_layer_sizes([layer.n_pre for layer in net.canonical_layers])
        if np.any(spec.input_lower < lower) or np.any(spec.input_upper > upper):
            return _restrict(net, spec, lower, upper)
        return spec
    return run_chain(net, _as_chain(spec), lower, upper, output_bounds=output_bounds, **options)


def _restrict(net: NetworkDefinition, bounds: Bounds, lower: np.ndarray, upper: np.ndarray) -> Bounds:
    """Given bounds valid on a larger box, intersect them with interval bounds on the smaller one."""
    tighter = interval_bounds(net, lower, upper, start=None)
    implied = {}
    if bounds.implied_input_lower is not None and bounds.implied_input_upper is not None:
        implied = {
            "implied_input_lower": np.maximum(bounds.implied_input_lower, lower),
            "implied_input_upper": np.minimum(bounds.implied_input_upper, upper),
        }
    return dataclasses.replace(
        bounds,
        lower=[np.maximum(a, b) for a, b in zip(bounds.lower, tighter.lower)],
        upper=[np.minimum(a, b) for a, b in zip(bounds.upper, tighter.upper)],
        input_lower=lower,
        input_upper=upper,
        methods=bounds.methods + ("interval",),
        **implied,
    )


def _as_chain(method: str | Sequence[str]) -> list[str]:
    return [method] if isinstance(method, str) else list(method)
