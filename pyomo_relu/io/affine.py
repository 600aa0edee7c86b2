"""The one affine composer of the framework readers (ONNX, Keras, PyTorch, scikit-learn).

Every reader meets runs of affine operators (dense or convolutional layers, normalisation,
layout changes, scalings) between activations.  They are composed here into one map
``x -> weights @ x + bias`` (:class:`AffineMap`), and :class:`LayerChain` turns a sequence
of affine pieces and activations into :class:`~pyomo_relu.network.DenseLayer` objects, so
``Linear -> BatchNorm -> ReLU`` becomes a single ReLU layer in every reader.

Weights are dense numpy arrays or CSR arrays (:mod:`pyomo_relu.sparse`): a composition with
a sparse side stays sparse.

>>> import numpy as np
>>> chain = LayerChain((2,))
>>> chain.affine(np.array([[1.0, 2.0]]), np.array([0.5]), "dense")
>>> chain.affine(np.array([[3.0]]), np.array([-1.0]), "scale")
>>> chain.activation("relu", "relu")
>>> [(layer.name, layer.activation, layer.weights.tolist(), layer.bias.tolist()) for layer in chain.finish()]
[('dense+scale+relu', 'relu', [[3.0, 6.0]], [0.5])]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from pyomo_relu.network import DenseLayer
from pyomo_relu.sparse import Weights, as_weights

logger = logging.getLogger(__name__)

__all__ = ["AffineMap", "LayerChain"]

#: An activation parameter of :class:`DenseLayer` (``alpha``, ``clip_low``, ``clip_high``):
#: a scalar, one value per neuron, or ``None``.
Parameter = float | np.ndarray | None


@dataclass(frozen=True)
class AffineMap:
    """``x -> weights @ x + bias`` (``weights`` of shape ``(n_out, n_in)``, dense or CSR).

    ``names`` are the operators composed into it, in order; they name the layer it becomes.
    """

    weights: Weights
    bias: np.ndarray
    names: tuple[str, ...] = ()

    @classmethod
    def identity(cls, size: int, names: tuple[str, ...] = (), *, sparse: bool = False) -> AffineMap:
        """The identity on ``size`` entries (a CSR identity when ``sparse``)."""
        weights = sp.eye_array(size, format="csr") if sparse else np.eye(size)
        return cls(weights, np.zeros(size), names)

    @property
    def n_inputs(self) -> int:
        """Entries of ``x``."""
        return int(self.weights.shape[1])

    @property
    def n_outputs(self) -> int:
        """Entries of the result."""
        return int(self.bias.size)

    def then(self, weights: Weights, bias: np.ndarray, name: str | None = None) -> AffineMap:
        """Compose: apply ``self`` first, then ``x -> weights @ x + bias``.

        The product is CSR when either side is sparse, dense otherwise.
        """
        if sp.issparse(weights) or sp.issparse(self.weights):
            product: Weights = sp.csr_array(sp.csr_array(weights) @ sp.csr_array(self.weights))
        else:
            product = weights @ self.weights
        names = self.names if name is None else (*self.names, name)
        return AffineMap(product, weights @ self.bias + bias, names)

    def named(self, name: str) -> AffineMap:
        """The same map with ``name`` appended to its names."""
        return AffineMap(self.weights, self.bias, (*self.names, name))

    def layer(self, activation: str | Sequence[str], name: str | None = None, **params: Parameter) -> DenseLayer:
        """``activation(self(x))`` as a :class:`DenseLayer`, named ``name`` or after its pieces.

        ``params`` are the activation parameters of :class:`DenseLayer` (``alpha``,
        ``clip_low``, ``clip_high``).  CSR weights stay sparse when sparse enough to be
        worth it (:func:`pyomo_relu.sparse.as_weights`).
        """
        weights = as_weights(self.weights) if sp.issparse(self.weights) else self.weights
        label = "+".join(self.names) if name is None else name
        return DenseLayer(weights, self.bias, activation, label, **params)


class LayerChain:
    """DenseLayers from a sequence of affine pieces and activations on a tensor of ``shape``.

    Affine pieces compose (:meth:`AffineMap.then`) until an activation closes them into a
    layer; a ReLU right after a ReLU is a no-op; what is left at the end becomes a final
    ``"linear"`` layer (the identity when nothing was read at all).  ``shape`` (without the
    batch axis) is the readers' to update as layout operators change it.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)
        self.layers: list[DenseLayer] = []
        self.pending: AffineMap | None = None

    @property
    def size(self) -> int:
        """Entries of the current tensor."""
        return int(np.prod(self.shape)) if self.shape else 1

    def affine(self, weights: Weights, bias: np.ndarray, name: str) -> None:
        """Apply ``x -> weights @ x + bias`` (named ``name``) to the current tensor."""
        if self.pending is None:
            self.pending = AffineMap(weights, np.asarray(bias, dtype=np.float64), (name,))
        else:
            self.pending = self.pending.then(weights, bias, name)

    def activation(self, name: str, kind: str, **params: Parameter) -> None:
        """Apply the activation ``kind`` (named ``name``; ``params``: alpha, clip bounds)."""
        if self.pending is None:
            if kind == "relu" and self.layers and self.layers[-1].activation == "relu":
                logger.debug("ReLU %r after a ReLU is a no-op", name)
                return
            self.pending = AffineMap.identity(self.size)
        self.pending = self.pending.named(name)
        self.close(kind, **params)

    def close(self, kind: str, **params: Parameter) -> None:
        """Close the pending affine map (which must exist) with the activation ``kind``."""
        if self.pending is None:
            raise ValueError("LayerChain.close needs a pending affine map")
        self.layers.append(self.pending.layer(kind, None, **params))
        logger.debug("layer %d: %s %s", len(self.layers) - 1, self.layers[-1].name, kind)
        self.pending = None

    def finish(self) -> list[DenseLayer]:
        """The layers, with what is still pending as a final linear layer."""
        if self.pending is None and not self.layers:
            self.pending = AffineMap.identity(self.size, ("identity",))
        if self.pending is not None:
            self.close("linear")
        return self.layers
