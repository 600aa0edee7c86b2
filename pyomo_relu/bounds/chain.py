"""``tighten``: run bounds methods one after another, each starting from the last.

Methods are looked up by name in :data:`METHODS`; each takes the network, the input box
and the bounds so far, and returns bounds no looser than those.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence, Union

import numpy as np

from pyomo_relu.bounds.base import Bounds
from pyomo_relu.bounds.interval import interval_bounds
from pyomo_relu.errors import PyomoReluError
from pyomo_relu.network import NetworkDefinition

logger = logging.getLogger(__name__)

BoundsSpec = Union[str, Sequence[str], Bounds]
Method = Callable[..., Bounds]


def _interval(net: NetworkDefinition, lower: np.ndarray, upper: np.ndarray, start: Bounds | None, **_: Any) -> Bounds:
    return interval_bounds(net, lower, upper, start)


#: Bounds methods by name: ``method(net, lower, upper, start, **options) -> Bounds``.
METHODS: dict[str, Method] = {"interval": _interval}


def tighten(
    net: NetworkDefinition,
    method: str | Sequence[str] = "interval",
    input_bounds: object = None,
    **options: Any,
) -> Bounds:
    """Bounds of every neuron of ``net`` by a method or a chain of methods.

    ``input_bounds`` (any form NetworkDefinition accepts) is intersected with the
    network's own input bounds.  Each method starts from the bounds of the previous one.
    """
    lower, upper = net.input_lower, net.input_upper
    if input_bounds is not None:
        more = net.with_input_bounds(input_bounds)
        lower, upper = np.maximum(lower, more.input_lower), np.minimum(upper, more.input_upper)
    return run_chain(net, _as_chain(method), lower, upper, **options)


def run_chain(net: NetworkDefinition, chain: Sequence[str], lower: np.ndarray, upper: np.ndarray, **options: Any) -> Bounds:
    """Apply the named methods in turn over the box ``[lower, upper]``."""
    bounds: Bounds | None = None
    for name in chain:
        if name not in METHODS:
            raise PyomoReluError(f"unknown bounds method {name!r}; available: {', '.join(METHODS)}")
        start = time.perf_counter()
        if bounds is None and name != "interval":
            bounds = interval_bounds(net, lower, upper)
        bounds = METHODS[name](net, lower, upper, bounds, **options)
        logger.info("bounds %s: %.3f s, unstable per layer %s", name, time.perf_counter() - start,
                    [row["unstable"] for row in bounds.summary()])
    if bounds is None:
        raise PyomoReluError("tighten() needs at least one bounds method")
    return bounds


def resolve_bounds(net: NetworkDefinition, spec: BoundsSpec, lower: np.ndarray, upper: np.ndarray) -> Bounds:
    """Bounds for ``build(bounds=spec)``: computed by name/chain, or checked if given."""
    if isinstance(spec, Bounds):
        spec.check_compatible(net.content_hash(), lower, upper)
        if np.any(spec.input_lower < lower) or np.any(spec.input_upper > upper):
            return _restrict(net, spec, lower, upper)
        return spec
    return run_chain(net, _as_chain(spec), lower, upper)


def _restrict(net: NetworkDefinition, bounds: Bounds, lower: np.ndarray, upper: np.ndarray) -> Bounds:
    """Given bounds valid on a larger box, intersect them with interval bounds on the smaller one."""
    tighter = interval_bounds(net, lower, upper, start=None)
    return Bounds(
        [np.maximum(a, b) for a, b in zip(bounds.lower, tighter.lower)],
        [np.minimum(a, b) for a, b in zip(bounds.upper, tighter.upper)],
        lower, upper, bounds.network_hash, bounds.methods + ("interval",),
    )


def _as_chain(method: str | Sequence[str]) -> list[str]:
    return [method] if isinstance(method, str) else list(method)
