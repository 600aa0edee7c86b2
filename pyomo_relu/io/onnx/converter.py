"""The graph walk: every tensor is a constant or an affine tensor of the current basis; each
activation (or max pooling) on an affine tensor emits a layer and starts a new basis, and a
non-trivial affine map left at the graph output becomes a final ``"linear"`` layer."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import onnx
import scipy.sparse as sp
from onnx import numpy_helper

from pyomo_relu.errors import (
    DenseTooLargeError,
    InvalidNetworkError,
    ModelLoadError,
    PyomoReluError,
    ShapeMismatchError,
    UnsupportedOperatorError,
)
from pyomo_relu.io.affine import AffineMap
from pyomo_relu.io.onnx import graph as onnx_graph
from pyomo_relu.io.onnx.node import Inputs, Node, Outputs
from pyomo_relu.io.onnx.ops import HANDLERS, REQUIRED_INPUTS, SOFTMAX_OPS, SUPPORTED_OPS
from pyomo_relu.io.onnx.tensor import AffineTensor, Value, as_float
from pyomo_relu.network import Layer, MaxLayer
from pyomo_relu.sparse import Weights, as_weights

logger = logging.getLogger(__name__)

__all__ = ["GraphConverter"]

#: Errors of numpy and of handlers when attribute values or shapes are outside what an operator allows.
_INVALID_NODE_ERRORS = (
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    ZeroDivisionError,
    OverflowError,
    StopIteration,
    MemoryError,
)

#: Live tensors of the current basis: each distinct tensor with the names it is read under.
Live = list[tuple[AffineTensor, list[str]]]


class GraphConverter:
    """Walks one ONNX graph and collects the layers (implements :class:`~pyomo_relu.io.onnx.node.Emitter`)."""

    def __init__(self, model: onnx.ModelProto, source: str, drop_softmax: bool) -> None:
        self.graph = model.graph
        self.source = source
        self.drop_softmax = drop_softmax
        self.opset = onnx_graph.default_opset(model, source)
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.input_info = onnx_graph.single_input(self.graph, self.initializers, source)
        self.output_name = onnx_graph.single_output(self.graph, source)
        self.input_shape = onnx_graph.static_input_shape(self.input_info, source)
        self.values: dict[str, Value] = {}
        self.producer_label: dict[str, str] = {}
        self.layers: list[Layer] = []
        self.last_use: dict[str, float] = {}
        self.position = 0
        self.basis = 0
        self.basis_size = int(np.prod(self.input_shape))
        self.basis_label = "the network input"

    # ------------------------------------------------------------------ walk
    def convert(self) -> list[Layer]:
        """The network's layers, in order."""
        self.values[self.input_info.name] = AffineTensor.identity(self.input_shape, self.basis)
        nodes = onnx_graph.ordered_nodes(self.graph, self.output_name, self.opset, self.source)
        self.last_use = onnx_graph.last_uses(nodes, self.output_name)
        for position, node in enumerate(nodes):
            self.position = position
            inputs = Inputs(node, [self._read(node, name) if name else None for name in node.proto.input])
            outputs = self._evaluate(node, inputs)
            _check_finite(node, [v for v in outputs if v is not None])
            for name, value in zip(node.proto.output, outputs):
                if name and value is not None:
                    self.values[name] = value
                    self.producer_label[name] = node.label
        self._finish()
        return self.layers

    def _evaluate(self, node: Node, inputs: Inputs) -> Outputs:
        if node.proto.domain not in onnx_graph.DEFAULT_DOMAINS:
            raise UnsupportedOperatorError(
                f"{node.where()} is in domain {node.proto.domain!r}; only the default ONNX "
                f"domain is supported; supported ops: {', '.join(SUPPORTED_OPS)}"
            )
        if node.op in HANDLERS:
            required = REQUIRED_INPUTS.get(node.op, 1)
            if len(inputs) < required or any(v is None for v in inputs.values[:required]):
                raise ModelLoadError(
                    f"{node.where()} in {self.source!r} needs {required} input(s), got {list(node.proto.input)}"
                )
            try:
                return HANDLERS[node.op](self, node, inputs)
            except DenseTooLargeError as exc:
                raise UnsupportedOperatorError(f"{node.where()}: {exc}") from None
            except PyomoReluError:
                raise
            except _INVALID_NODE_ERRORS as exc:
                raise ModelLoadError(
                    f"{node.where()} in {self.source!r} cannot be read: its attributes or input shapes "
                    f"are invalid for this operator ({type(exc).__name__}: {exc}); check the node in the "
                    "exported model"
                ) from None
        if node.op in SOFTMAX_OPS and isinstance(inputs.get(0), AffineTensor):
            return self._softmax(node, inputs)
        if inputs.all_constant():
            return self.fold(node, inputs)
        raise UnsupportedOperatorError(
            f"{node.where()} is not supported; supported ops: {', '.join(SUPPORTED_OPS)}; "
            "other ops only when all their inputs are constant"
        )

    def _softmax(self, node: Node, inputs: Inputs) -> Outputs:
        if node.proto.output[0] != self.output_name:
            raise UnsupportedOperatorError(
                f"{node.where()} is not piecewise linear; it can only be dropped (with "
                "drop_softmax=True) when it is the last node of the graph, but here its output "
                "feeds other nodes"
            )
        if not self.drop_softmax:
            raise UnsupportedOperatorError(
                f"{node.where()} at the network output is not piecewise linear and cannot be "
                "embedded in a MILP; pass drop_softmax=True to drop it, the network outputs are "
                "then the logits it receives (same argmax)"
            )
        logger.info("dropping %s at the output of %s", node.where(), self.source)
        return [inputs[0]]

    def fold(self, node: Node, inputs: Inputs) -> Outputs:
        """Evaluate a node whose inputs are all constant with onnx's reference runtime."""
        from onnx.reference import ReferenceEvaluator

        feeds = {name: value for name, value in zip(node.proto.input, inputs) if name}
        try:
            evaluator = ReferenceEvaluator(node.proto, opsets={"": node.opset})
            results = evaluator.run(None, feeds)
        except Exception as exc:  # the reference runtime raises many types
            raise UnsupportedOperatorError(
                f"{node.where()} has only constant inputs but could not be constant-folded "
                f"({type(exc).__name__}: {exc}); supported ops: {', '.join(SUPPORTED_OPS)}"
            ) from exc
        arrays: Outputs = [np.asarray(r) for r in results]
        if len(arrays) == len(node.proto.output):
            return arrays
        outputs = iter(arrays)  # results only for the outputs that are named
        return [next(outputs) if name else None for name in node.proto.output]

    def _read(self, node: Node, name: str) -> Value:
        if name not in self.values:
            if name not in self.initializers:
                raise ModelLoadError(
                    f"{node.where()} in {self.source!r} reads tensor {name!r}, which no node, "
                    "initializer or graph input provides"
                )
            self.values[name] = self._initializer(name)
        value = self.values[name]
        if isinstance(value, AffineTensor) and value.basis != self.basis:
            raise UnsupportedOperatorError(
                f"{node.where()} reads tensor {name!r}, computed before {self.basis_label}; "
                "skip/residual connections around a ReLU are not supported"
            )
        return value

    def _initializer(self, name: str) -> np.ndarray:
        try:
            array = numpy_helper.to_array(self.initializers[name])
        except Exception as exc:
            raise ModelLoadError(f"cannot read initializer {name!r} of {self.source!r}: {exc}") from exc
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise InvalidNetworkError(
                f"ONNX initializer {name!r} in {self.source!r} contains NaN or Inf; "
                "check the exported model or the training run"
            )
        return array

    def _finish(self) -> None:
        """Turn what is left at the graph output into a final linear layer if needed."""
        name = self.output_name
        if name not in self.values and name in self.initializers:
            self.values[name] = self._initializer(name)
        value = self.values.get(name)
        if value is None:
            raise ModelLoadError(f"no node of {self.source!r} produces the output {name!r}")
        if not isinstance(value, AffineTensor):
            logger.warning("the output %r of %s does not depend on the input", name, self.source)
            constant = as_float(value)
            zeros = np.zeros((self.basis_size, *constant.shape))
            value = AffineTensor(np.concatenate([constant[None], zeros]), self.basis)
        if value.basis != self.basis:
            raise UnsupportedOperatorError(
                f"the output {name!r} was computed before {self.basis_label}; "
                "skip/residual connections around a ReLU are not supported"
            )
        if not self.layers or not _is_identity(value):
            layer = value.as_map().layer("linear", self.producer_label.get(name, name))
            self.layers.append(layer)
            logger.debug("layer %s: %d -> %d, linear", layer.name, layer.n_inputs, layer.n_outputs)

    # ------------------------------------------------------------- emitting
    def emit_activation(
        self,
        node: Node,
        value: AffineTensor,
        kind: str,
        *,
        alpha: float | np.ndarray | None = None,
        clip_low: float = -np.inf,
        clip_high: float = np.inf,
    ) -> AffineTensor:
        """Append ``kind(value)`` as a layer and make its output the new basis.

        Tensors of the current basis that later nodes still read (skip and residual
        connections) are carried through the layer as linear neurons, so the network stays a
        chain of layers while the graph is a DAG.
        """
        live = self._live(node)
        parts = [part.as_map() for part in [value] + [tensor for tensor, _ in live]]
        n_act, n = value.size, sum(part.n_outputs for part in parts)
        kinds = [kind] * n_act + ["linear"] * (n - n_act)
        alphas = np.zeros(n)
        alphas[:n_act] = 0.0 if alpha is None else alpha
        lows, highs = np.full(n, -np.inf), np.full(n, np.inf)
        lows[:n_act], highs[:n_act] = clip_low, clip_high
        stacked = AffineMap(_stack_rows([p.weights for p in parts]), np.concatenate([p.bias for p in parts]))
        layer = stacked.layer(
            tuple(kinds) if live else kind,
            node.label,
            alpha=alphas if kind == "leaky_relu" else None,
            clip_low=lows,
            clip_high=highs,
        )
        return self._start_basis(node, layer, [value.shape] + [t.shape for t, _ in live], live)

    def emit_max(self, node: Node, value: AffineTensor, members: np.ndarray, shape: tuple[int, ...]) -> AffineTensor:
        """Append a :class:`MaxLayer`: output ``g`` is the max of ``value`` over ``members[g]``."""
        valid = members >= 0
        if not valid.any(axis=1).all():
            raise ShapeMismatchError(f"{node.where()}: a pooling window lies entirely in the padding")
        weights, bias = value.rows()
        groups = np.repeat(np.arange(members.shape[0]), valid.sum(axis=1))
        rows = members[valid]
        live = self._live(node)
        extra = [tensor.rows() for tensor, _ in live]
        carried = sum(w.shape[0] for w, _ in extra)
        groups = np.concatenate([groups, members.shape[0] + np.arange(carried, dtype=np.int64)])
        layer = MaxLayer(
            _layer_weights(_stack_rows([weights[rows]] + [w for w, _ in extra])),
            np.concatenate([bias[rows]] + [b for _, b in extra]),
            groups,
            node.label,
        )
        return self._start_basis(node, layer, [shape] + [t.shape for t, _ in live], live)

    def _live(self, node: Node) -> Live:
        """Tensors of the current basis that nodes after ``node`` (or the output) still read."""
        own = set(node.proto.output)
        groups: dict[int, tuple[AffineTensor, list[str]]] = {}
        for name, value in self.values.items():
            if (
                isinstance(value, AffineTensor)
                and value.basis == self.basis
                and name not in own
                and self.last_use.get(name, -1) > self.position
            ):
                groups.setdefault(id(value), (value, []))[1].append(name)
        return list(groups.values())

    def _start_basis(self, node: Node, layer: Layer, shapes: list[tuple[int, ...]], live: Live) -> AffineTensor:
        """Append ``layer``; its outputs become the basis, split into the node's output and the carried tensors."""
        self.layers.append(layer)
        self.basis += 1
        self.basis_size = layer.n_outputs
        self.basis_label = f"node {node.label!r}"
        carried = sum(t.size for t, _ in live)
        logger.debug("layer %s: %d -> %d (%d carried)", node.label, layer.n_inputs, layer.n_outputs, carried)
        offset = 0
        pieces = []
        for shape in shapes:
            size = int(np.prod(shape))
            select = sp.csr_array(
                (np.ones(size), (np.arange(size), offset + np.arange(size))), shape=(size, self.basis_size)
            )
            pieces.append(AffineTensor.sparse(select, np.zeros(size), shape, self.basis))
            offset += size
        for piece, (_, names) in zip(pieces[1:], live):
            for name in names:
                self.values[name] = piece
        return pieces[0]


def _check_finite(node: Node, values: list[Value]) -> None:
    for value in values:
        if isinstance(value, AffineTensor) and value.is_sparse:
            matrix, const = value.rows()
            array = np.concatenate([matrix.data, const])
        else:
            array = value.stack if isinstance(value, AffineTensor) else np.asarray(value)
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise InvalidNetworkError(f"{node.where()} produces NaN or Inf values; check the exported weights")


def _stack_rows(parts: Sequence[Weights]) -> Weights:
    """Row blocks stacked; CSR when any block is sparse."""
    if any(sp.issparse(p) for p in parts):
        return sp.csr_array(sp.vstack([sp.csr_array(p) for p in parts]))
    return np.concatenate(parts)


def _layer_weights(weights: Weights) -> Weights:
    """CSR weights stay sparse when sparse enough to be worth it (see :mod:`pyomo_relu.sparse`)."""
    return as_weights(weights) if sp.issparse(weights) else weights


def _is_identity(value: AffineTensor) -> bool:
    size = value.size
    if value.is_sparse:
        matrix, const = value.rows()
        return (
            matrix.shape == (size, size)
            and matrix.nnz == size
            and not np.any(const)
            and bool(np.all(matrix.diagonal() == 1.0))
        )
    if value.stack.shape[0] != size + 1 or np.any(value.stack[0]):
        return False
    return bool(np.array_equal(value.stack[1:].reshape(size, size), np.eye(size)))
