"""What a formulation receives: one layer of a network being built, as a :class:`LayerContext`.

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
from typing import TYPE_CHECKING, Any

import numpy as np

from pyomo_relu.network import DenseLayer, MaxLayer

if TYPE_CHECKING:
    from pyomo_relu.formulations.base import Added, Formulation


@dataclass
class LayerContext:
    """One layer of a network being built into a block.

    ``post[j]`` is the output variable of neuron ``j`` (``block.post``, or the network's
    output variables for a linear last layer).  ``inputs[i]`` is the Pyomo variable feeding
    input ``i`` of the layer, or ``None`` when that input is known to be zero (a
    stable-inactive neuron of the previous layer).  ``input_lower``/``input_upper`` bound
    those inputs; ``lower``/``upper`` bound the pre-activations; ``unstable`` lists the
    neurons the formulation must handle.  ``formulation`` is the *name* of the layer's
    formulation (what :mod:`pyomo_relu.handoff` and the reports read) and ``chosen`` the
    :class:`~pyomo_relu.formulations.base.Formulation` object itself; ``options`` are
    its options that differ from the defaults; ``added`` records what it built.
    """

    block: Any
    index: int
    layer: DenseLayer | MaxLayer
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
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # unstable step neurons
    chosen: Formulation | None = None
    added: Added | None = None  # what ``chosen.build`` added (None when no neuron is unstable)

    @property
    def pre(self) -> Any:
        """Pre-activation variables, indexed by the unstable neurons."""
        return self.block.pre

    @property
    def dense(self) -> DenseLayer:
        """The layer as a :class:`DenseLayer` (what every ReLU formulation builds on)."""
        assert isinstance(self.layer, DenseLayer), f"layer {self.index} is a {type(self.layer).__name__}"
        return self.layer

    @property
    def max_layer(self) -> MaxLayer:
        """The layer as a :class:`MaxLayer` (max pooling, max of affine functions)."""
        assert isinstance(self.layer, MaxLayer), f"layer {self.index} is a {type(self.layer).__name__}"
        return self.layer
