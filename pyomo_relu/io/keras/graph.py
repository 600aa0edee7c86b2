"""Keras functional and Sequential models with convolutions, pooling and merges, via ONNX.

The chain reader (:mod:`pyomo_relu.io.keras.steps`) reads plain Dense/ReLU chains.  Everything
else that has an exact formulation is translated here, layer by layer, into an in-memory
ONNX graph (``onnx.helper``; no TensorFlow, no tf2onnx) and read by
:func:`~pyomo_relu.io.onnx.load_onnx`, so one converter handles DAGs, pooling and the
activation lowering for every framework.  Tensors stay in Keras' ``channels_last`` layout;
each convolution or pooling is wrapped in two ``Transpose`` nodes (index maps for the
reader, free).

Layers: ``InputLayer``, ``Dense``, ``Conv1D``/``Conv2D`` (``padding`` valid/same,
``strides``, ``dilation_rate``, ``groups``), ``MaxPooling1D/2D``, ``AveragePooling1D/2D``,
``GlobalMaxPooling1D/2D``, ``GlobalAveragePooling1D/2D``, ``BatchNormalization`` (last
axis), ``Add``, ``Subtract``, ``Concatenate``, ``Flatten``, ``Reshape``, ``Dropout``,
``ReLU`` (``max_value``, ``negative_slope``), ``LeakyReLU``, ``PReLU``, ``Activation`` and
layer activations ``relu``, ``linear``, ``leaky_relu``, ``relu6``, ``sigmoid``, ``tanh``,
``softplus``.  Anything else raises :class:`UnsupportedOperatorError` naming the layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pyomo_relu.errors import ModelLoadError, UnsupportedOperatorError
from pyomo_relu.io.keras.config import history_refs, node_sources
from pyomo_relu.io.keras.memory import is_plain_functional, is_plain_sequential, model_input_shape
from pyomo_relu.io.onnx import load_onnx
from pyomo_relu.network import NetworkDefinition

logger = logging.getLogger(__name__)

__all__ = ["GRAPH_LAYERS", "keras_to_onnx", "read_graph"]


class _Graph:
    """ONNX nodes and initializers being collected."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}/{self.count}"

    def const(self, hint: str, value: Any, dtype: Any = np.float32) -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], label: str, **attrs: Any) -> str:
        out = self.name(label)
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{label}:{op}", **attrs))
        return out


#: ``builder(graph, keras, layer, input tensor names, label) -> output tensor name``.
Builder = Callable[[_Graph, Any, Any, list[str], str], str]


def _numpy(keras: Any, value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


def _activation(g: _Graph, x: str, name: str, label: str) -> str:
    if name in ("linear", None):
        return x
    if name == "relu":
        return g.node("Relu", [x], label)
    if name == "leaky_relu":
        return g.node("LeakyRelu", [x], label, alpha=0.2)
    if name == "relu6":
        return g.node("Clip", [x, g.const("lo", 0.0), g.const("hi", 6.0)], label)
    if name in ("sigmoid", "tanh", "softplus"):
        return g.node(name.capitalize(), [x], label)
    raise UnsupportedOperatorError(
        f"Keras layer {label!r}: activation {name!r} has no formulation; use relu, linear, "
        "leaky_relu, relu6, or sigmoid/tanh/softplus (NLP only)"
    )


def _activation_name(layer: Any) -> str:
    function = getattr(layer, "activation", None)
    return "linear" if function is None else getattr(function, "__name__", str(function))


def _channels_first(g: _Graph, x: str, rank: int, label: str) -> str:
    return g.node("Transpose", [x], label, perm=[0, rank - 1, *range(1, rank - 1)])


def _channels_last(g: _Graph, x: str, rank: int, label: str) -> str:
    return g.node("Transpose", [x], label, perm=[0, *range(2, rank), 1])


def _tuple(value: Any, n: int) -> list[int]:
    return [int(v) for v in (value if isinstance(value, (tuple, list)) else [value] * n)]


def _padding(layer: Any, label: str) -> dict[str, Any]:
    padding = str(layer.padding).lower()
    if padding not in ("valid", "same"):
        raise UnsupportedOperatorError(f"Keras layer {label!r}: padding {padding!r} (use 'valid' or 'same')")
    return {"auto_pad": "SAME_UPPER" if padding == "same" else "VALID"}


def _check_channels_last(layer: Any, label: str) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedOperatorError(f"Keras layer {label!r}: only data_format='channels_last' is supported")


def _conv(g: _Graph, keras: Any, layer: Any, inputs: list[str], label: str) -> str:
    _check_channels_last(layer, label)
    kernel = _numpy(keras, layer.kernel)  # (*k, in/groups, out)
    dims = kernel.ndim - 2
    weights = np.transpose(kernel, (dims + 1, dims, *range(dims)))
    x = _channels_first(g, inputs[0], dims + 2, label)
    args = [x, g.const("W", weights)] + ([g.const("B", _numpy(keras, layer.bias))] if layer.use_bias else [])
    y = g.node(
        "Conv",
        args,
        label,
        strides=_tuple(layer.strides, dims),
        dilations=_tuple(layer.dilation_rate, dims),
        group=int(getattr(layer, "groups", 1)),
        **_padding(layer, label),
    )
    return _activation(g, _channels_last(g, y, dims + 2, label), _activation_name(layer), label)


def _pool(op: str) -> Builder:
    def build(g: _Graph, keras: Any, layer: Any, inputs: list[str], label: str) -> str:
        _check_channels_last(layer, label)
        dims = len(_tuple(layer.pool_size, 1 if "1D" in type(layer).__name__ else 2))
        x = _channels_first(g, inputs[0], dims + 2, label)
        extra = {"count_include_pad": 0} if op == "AveragePool" else {}
        y = g.node(
            op,
            [x],
            label,
            kernel_shape=_tuple(layer.pool_size, dims),
            strides=_tuple(layer.strides or layer.pool_size, dims),
            **_padding(layer, label),
            **extra,
        )
        return _channels_last(g, y, dims + 2, label)

    return build


def _global_pool(op: str) -> Builder:
    def build(g: _Graph, keras: Any, layer: Any, inputs: list[str], label: str) -> str:
        _check_channels_last(layer, label)
        rank = 3 if "1D" in type(layer).__name__ else 4
        y = g.node(op, [_channels_first(g, inputs[0], rank, label)], label)
        if getattr(layer, "keepdims", False):
            return _channels_last(g, y, rank, label)
        return g.node("Flatten", [y], label, axis=1)

    return build


def _dense(g: _Graph, keras: Any, layer: Any, inputs: list[str], label: str) -> str:
    y = g.node("MatMul", [inputs[0], g.const("W", _numpy(keras, layer.kernel))], label)
    if layer.use_bias:
        y = g.node("Add", [y, g.const("b", _numpy(keras, layer.bias))], label)
    return _activation(g, y, _activation_name(layer), label)


def _batchnorm(g: _Graph, keras: Any, layer: Any, inputs: list[str], label: str) -> str:
    axis = layer.axis if isinstance(layer.axis, int) else list(layer.axis)[0]
    rank = len(layer.input.shape)
    if axis not in (-1, rank - 1):
        raise UnsupportedOperatorError(f"Keras layer {label!r} (BatchNormalization): only the last axis is supported")
    factor = 1.0 / np.sqrt(_numpy(keras, layer.moving_variance) + layer.epsilon)
    if layer.scale:
        factor = factor * _numpy(keras, layer.gamma)
    shift = (_numpy(keras, layer.beta) if layer.center else 0.0) - _numpy(keras, layer.moving_mean) * factor
    return g.node("Add", [g.node("Mul", [inputs[0], g.const("s", factor)], label), g.const("t", shift)], label)


def _relu(g: _Graph, keras: Any, layer: Any, inputs: list[str], label: str) -> str:
    slope, top, threshold = float(layer.negative_slope or 0.0), layer.max_value, float(layer.threshold or 0.0)
    if threshold != 0.0 or (slope != 0.0 and top is not None):
        raise UnsupportedOperatorError(f"Keras layer {label!r} (ReLU): threshold or max_value with negative_slope")
    if top is not None:
        return g.node("Clip", [inputs[0], g.const("lo", 0.0), g.const("hi", float(top))], label)
    if slope != 0.0:
        return g.node("LeakyRelu", [inputs[0]], label, alpha=slope)
    return g.node("Relu", inputs[:1], label)


def _merge(op: str) -> Builder:
    def build(g: _Graph, keras: Any, layer: Any, inputs: list[str], label: str) -> str:
        out = inputs[0]
        for other in inputs[1:]:
            out = g.node(op, [out, other], label)
        return out

    return build


_BUILDERS: dict[str, Builder] = {
    "Dense": _dense,
    "Conv1D": _conv,
    "Conv2D": _conv,
    "MaxPooling1D": _pool("MaxPool"),
    "MaxPooling2D": _pool("MaxPool"),
    "AveragePooling1D": _pool("AveragePool"),
    "AveragePooling2D": _pool("AveragePool"),
    "GlobalMaxPooling1D": _global_pool("GlobalMaxPool"),
    "GlobalMaxPooling2D": _global_pool("GlobalMaxPool"),
    "GlobalAveragePooling1D": _global_pool("GlobalAveragePool"),
    "GlobalAveragePooling2D": _global_pool("GlobalAveragePool"),
    "BatchNormalization": _batchnorm,
    "ReLU": _relu,
    "Add": _merge("Add"),
    "Subtract": _merge("Sub"),
    "Concatenate": lambda g, k, layer, i, label: g.node("Concat", i, label, axis=int(layer.axis)),
    "Flatten": lambda g, k, layer, i, label: g.node("Flatten", i, label, axis=1),
    "Reshape": lambda g, k, layer, i, label: g.node(
        "Reshape", [i[0], g.const("shape", [-1, *layer.target_shape], np.int64)], label
    ),
    "Dropout": lambda g, k, layer, i, label: i[0],
    "LeakyReLU": lambda g, k, layer, i, label: g.node("LeakyRelu", i, label, alpha=float(layer.negative_slope)),
    "PReLU": lambda g, k, layer, i, label: g.node("PRelu", [i[0], g.const("slope", _numpy(k, layer.alpha))], label),
    "Activation": lambda g, k, layer, i, label: _activation(g, i[0], _activation_name(layer), label),
}

#: Keras layer classes the graph route translates.
GRAPH_LAYERS: tuple[str, ...] = ("InputLayer",) + tuple(sorted(_BUILDERS))


def _calls(model: Any) -> list[tuple[Any, list[str], str]]:
    """``(layer, input tensor keys, output key)`` in call order, from the model's config."""
    if model.__class__.__name__ == "Sequential":
        calls, previous = [], "input"
        for layer in model.layers:
            calls.append((layer, [previous], layer.name))
            previous = layer.name
        return calls
    config = model.get_config()
    calls = []
    for entry in config["layers"]:
        nodes = entry.get("inbound_nodes") or []
        name = entry.get("name") or entry["config"]["name"]
        if entry.get("class_name") == "InputLayer":
            continue
        if len(nodes) != 1:
            raise UnsupportedOperatorError(
                f"Keras layer {name!r} is called {len(nodes)} times; shared layers are not supported"
            )
        sources = [f"{s[0]}:{s[1]}:{s[2]}" for s in node_sources(nodes[0])]
        calls.append((model.get_layer(name), sources, f"{name}:0:0"))
    return calls


def keras_to_onnx(model: Any, keras: Any, input_shape: tuple[int, ...]) -> onnx.ModelProto:
    """The ONNX graph computing ``model`` (one input, one output); see the module docstring."""
    g = _Graph()
    calls = _calls(model)
    if model.__class__.__name__ == "Sequential":
        names = {"input": "input"}
        output_key = calls[-1][2]
    else:
        config = model.get_config()
        inputs, outputs = history_refs(config.get("input_layers")), history_refs(config.get("output_layers"))
        if len(inputs) != 1 or len(outputs) != 1:
            raise UnsupportedOperatorError("only Keras models with one input and one output are supported")
        names = {f"{inputs[0][0]}:0:0": "input"}
        output_key = f"{outputs[0][0]}:{outputs[0][1]}:{outputs[0][2]}"
    for layer, sources, key in calls:
        kind = type(layer).__name__
        if kind == "InputLayer":
            names[key] = names[sources[0]]
            continue
        builder = _BUILDERS.get(kind)
        if builder is None:
            raise UnsupportedOperatorError(
                f"Keras layer {layer.name!r} ({kind}) is not supported; supported: {', '.join(GRAPH_LAYERS)}"
            )
        try:
            names[key] = builder(g, keras, layer, [names[s] for s in sources], layer.name)
        except KeyError as exc:
            raise ModelLoadError(f"Keras layer {layer.name!r} reads a tensor no earlier layer produces: {exc}") from exc
    last = output_key.rsplit(":", 2)[0]  # the output layer's name: the last network layer is named after it
    g.nodes.append(helper.make_node("Identity", [names[output_key]], ["output"], name=f"{last}:output"))
    graph = helper.make_graph(
        g.nodes,
        "keras",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
        initializer=g.inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto


def read_graph(
    model: Any, keras: Any, input_bounds: object, source: str, chain_error: UnsupportedOperatorError
) -> NetworkDefinition:
    """Models beyond plain chains (convolutions, pooling, merges): Keras -> ONNX graph -> reader."""
    plain = is_plain_sequential(model, keras) or is_plain_functional(model)
    if not plain or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise chain_error  # subclassed, several inputs or outputs: the chain reader said why
    logger.info("Keras model %s is not a plain chain (%s); reading it as a graph", source, chain_error)
    input_shape = model_input_shape(model)
    network = load_onnx(keras_to_onnx(model, keras, input_shape))
    return NetworkDefinition(network.layers, input_bounds=input_bounds, input_shape=input_shape, source=source)
