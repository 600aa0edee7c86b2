"""The ONNX file and graph around the operators: reading and checking the model, its one
input (static shape, batch taken as 1) and one output, and the nodes the output depends on
in topological order."""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from pyomo_relu.errors import ModelLoadError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.onnx.node import Node

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_DOMAINS", "MAX_INPUT_SIZE", "default_opset", "ordered_nodes", "read_model"]

#: Largest network input (entries of the flattened input tensor) the reader accepts.
MAX_INPUT_SIZE = 10_000_000

DEFAULT_DOMAINS = ("", "ai.onnx")


def read_model(model: str | os.PathLike[str] | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """``(proto, source)``: the model (read from its file) and how messages name it."""
    if isinstance(model, onnx.ModelProto):
        proto, source = model, "<ModelProto>"
    elif isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        if not Path(source).is_file():
            raise ModelLoadError(f"ONNX file {source!r} does not exist or is not a file")
        try:
            proto = onnx.load(source)
        except Exception as exc:  # protobuf DecodeError, OSError, external data errors
            raise ModelLoadError(f"cannot read ONNX file {source!r}: {type(exc).__name__}: {exc}") from exc
    else:
        raise TypeError(f"load_onnx expects a path or an onnx.ModelProto, got {type(model).__name__}")
    if not proto.HasField("graph") or not proto.graph.output:
        raise ModelLoadError(f"{source!r} is not an ONNX model (it holds no graph)")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # informative only: real exporters sometimes trip the checker
        logger.warning("onnx.checker reports a problem in %s (loading anyway): %s", source, exc)
    return proto, source


def default_opset(model: onnx.ModelProto, source: str) -> int:
    """The default-domain opset the model declares (the latest when it declares none)."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    latest = onnx.defs.onnx_opset_version()
    logger.warning("%s declares no default-domain opset; assuming opset %d", source, latest)
    return latest


def single_input(graph: onnx.GraphProto, initializers: dict[str, onnx.TensorProto], source: str) -> onnx.ValueInfoProto:
    """The one graph input that is not an initializer (old exporters list weights too)."""
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs:
        raise ModelLoadError(f"the graph of {source!r} has no input")
    if len(inputs) > 1:
        raise UnsupportedOperatorError(
            f"the graph of {source!r} has {len(inputs)} graph inputs "
            f"({', '.join(repr(i.name) for i in inputs)}); only single-input networks are "
            "supported (concatenate the inputs into one tensor before export)"
        )
    return inputs[0]


def single_output(graph: onnx.GraphProto, source: str) -> str:
    """The name of the one graph output."""
    outputs = [o.name for o in graph.output]
    if not outputs:
        raise ModelLoadError(f"the graph of {source!r} has no output")
    if len(outputs) > 1:
        raise UnsupportedOperatorError(
            f"the graph of {source!r} has {len(outputs)} graph outputs "
            f"({', '.join(map(repr, outputs))}); only single-output networks are supported"
        )
    return outputs[0]


def static_input_shape(info: onnx.ValueInfoProto, source: str) -> tuple[int, ...]:
    """The input's shape with the batch dimension (first, when symbolic) set to 1."""
    if not info.type.HasField("tensor_type") or not info.type.tensor_type.HasField("shape"):
        raise ShapeMismatchError(f"graph input {info.name!r} has no shape information; export with a static shape")
    dims = list(info.type.tensor_type.shape.dim)
    shape = []
    for axis, dim in enumerate(dims):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(int(dim.dim_value))
        elif axis == 0 and len(dims) > 1:
            shape.append(1)  # batch dimension
        else:
            raise ShapeMismatchError(
                f"graph input {info.name!r} has an unknown size at axis {axis} "
                f"({dim.dim_param or '?'}); only the first (batch) dimension may be symbolic"
            )
    if int(np.prod(shape, dtype=float)) > MAX_INPUT_SIZE:
        raise ShapeMismatchError(
            f"graph input {info.name!r} of {source!r} has shape {tuple(shape)}, more than "
            f"MAX_INPUT_SIZE = {MAX_INPUT_SIZE} entries; is the shape in the file right?"
        )
    return tuple(shape)


def ordered_nodes(graph: onnx.GraphProto, output: str, opset: int, source: str) -> list[Node]:
    """The nodes ``output`` depends on, in topological order (ties by file order)."""
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    needed: set[int] = set()
    pending = [output]
    while pending:
        index = producer.get(pending.pop())
        if index is not None and index not in needed:
            needed.add(index)
            pending.extend(name for name in nodes[index].input if name)
    deps = {i: {producer[n] for n in nodes[i].input if n in producer and producer[n] != i} for i in needed}
    users: dict[int, list[int]] = {i: [] for i in needed}
    for i, before in deps.items():
        for j in before:
            users[j].append(i)
    ready = [i for i in needed if not deps[i]]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users[i]:
            deps[j].discard(i)
            if not deps[j]:
                heapq.heappush(ready, j)
    if len(order) != len(needed):
        raise ModelLoadError(f"the graph of {source!r} has a cycle")
    if len(nodes) > len(order):
        logger.debug("%d node(s) do not feed the output and are ignored", len(nodes) - len(order))
    return [Node(nodes[i], nodes[i].name or f"{nodes[i].op_type}_{i}", opset) for i in order]


def last_uses(nodes: Sequence[Node], output: str) -> dict[str, float]:
    """Position of the last node reading each tensor (``inf`` for the graph output)."""
    last: dict[str, float] = {}
    for position, node in enumerate(nodes):
        for name in node.proto.input:
            if name:
                last[name] = position
    last[output] = np.inf
    return last
