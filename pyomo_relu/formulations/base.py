"""What a formulation receives and what it must do.

The block builds what every formulation shares: one Pyomo sub-block per layer, the
post-activation variables ``post[j]`` of every neuron, the pre-activation variables
``pre[j]`` of the *unstable* ReLU neurons and the affine equalities
``pre[j] = W[j] · h + b[j]``.  Stable neurons are settled by the block itself
(``post = W h + b`` when proven active, ``post = 0`` fixed when proven inactive), so a
formulation only ever sees the unstable neurons of one layer, through a
:class:`LayerContext`, and adds the constraints that tie ``post`` to ``pre`` there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pyomo_relu.network import Layer


@dataclass
class LayerContext:
    """One layer of a network being built into a block.

    ``post[j]`` is the output variable of neuron ``j`` (``block.post``, or the network's
    output variables for a linear last layer).  ``inputs[i]`` is the Pyomo variable feeding input ``i`` of the layer, or ``None`` when
    that input is known to be zero (a stable-inactive neuron of the previous layer).
    ``input_lower``/``input_upper`` bound those inputs; ``lower``/``upper`` bound the
    pre-activations; ``unstable`` lists the neurons the formulation must handle.
    """

    block: Any
    index: int
    layer: Layer
    inputs: list[Any]
    post: Any
    input_lower: np.ndarray
    input_upper: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    unstable: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    formulation: str = ""
    groups: np.ndarray | None = None  # max layers: the groups with several candidate rows

    @property
    def pre(self) -> Any:
        """Pre-activation variables, indexed by the unstable neurons."""
        return self.block.pre


class ReluFormulation(Protocol):
    """The interface every ReLU formulation module provides."""

    name: str

    def build(self, ctx: LayerContext) -> None:
        """Add variables and constraints that make ``post = max(0, pre)`` on ``ctx.unstable``."""

    def initialize(self, ctx: LayerContext, pre_values: np.ndarray) -> None:
        """Set the formulation's own variables consistently with ``pre_values`` (all neurons)."""
