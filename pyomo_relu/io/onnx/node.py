"""What an ONNX operator handler receives: the node (typed attributes), its inputs, and the
converter's emitting interface (:class:`Emitter`).

A handler is ``handler(emitter, node, inputs) -> outputs``: it returns the node's outputs in
order (``None`` for an unnamed optional output).  Handlers that meet an activation on an
affine tensor call :meth:`Emitter.emit_activation` (or :meth:`Emitter.emit_max`), which
appends a layer and returns the tensor of the new basis; nodes whose inputs are all
constant are evaluated by :meth:`Emitter.fold`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import onnx
from onnx import helper

from pyomo_relu.errors import ModelLoadError, ShapeMismatchError, UnsupportedOperatorError
from pyomo_relu.io.onnx.tensor import AffineTensor, Value

__all__ = ["Emitter", "Handler", "Inputs", "Node", "Outputs"]

#: A node's outputs, in order (``None`` for an unnamed optional output).
Outputs = list[Value | None]


@dataclass(frozen=True)
class Node:
    """A node with the label used in messages and layer names."""

    proto: onnx.NodeProto
    label: str
    opset: int

    @property
    def op(self) -> str:
        """The operator type (``"Gemm"``, ...)."""
        return self.proto.op_type

    def attr(self, name: str, default: object = None) -> object:
        """The attribute's value, checked against the operator's schema (type), or ``default``."""
        for attribute in self.proto.attribute:
            if attribute.name == name:
                expected = _attribute_type(self.op, self.opset, name)
                if expected is not None and attribute.type != expected:
                    raise ModelLoadError(
                        f"{self.where()}: attribute {name!r} must be of type "
                        f"{onnx.AttributeProto.AttributeType.Name(expected)}, the file has "
                        f"{onnx.AttributeProto.AttributeType.Name(attribute.type)}; re-export the model"
                    )
                return helper.get_attribute_value(attribute)
        return default

    def attr_int(self, name: str, default: int) -> int:
        """An integer attribute."""
        return int(self._number(name, default))

    def attr_float(self, name: str, default: float) -> float:
        """A float attribute."""
        return float(self._number(name, default))

    def attr_ints(self, name: str) -> list[int] | None:
        """An integer-list attribute, ``None`` when absent."""
        value = self.attr(name)
        if value is None:
            return None
        if not isinstance(value, (list, tuple)):
            raise ModelLoadError(f"{self.where()}: attribute {name!r} is {value!r}, not a list of integers")
        return [int(v) for v in value]

    def _number(self, name: str, default: float) -> float | int:
        value = self.attr(name, default)
        if not isinstance(value, (int, float, np.number)):
            raise ModelLoadError(f"{self.where()}: attribute {name!r} is {value!r}, not a number")
        return value.item() if isinstance(value, np.number) else value

    def attr_str(self, name: str, default: str) -> str:
        """A string attribute (ONNX stores bytes)."""
        value = self.attr(name, default)
        return value.decode() if isinstance(value, bytes) else str(value)

    def where(self) -> str:
        """How messages name the node: label and operator."""
        return f"ONNX node {self.label!r} (op {self.op})"


#: The schema's attribute types as ``AttributeProto`` types (the two enums share their names).
_PROTO_TYPES = {
    getattr(onnx.defs.OpSchema.AttrType, name): int(value)
    for name, value in onnx.AttributeProto.AttributeType.items()
    if hasattr(onnx.defs.OpSchema.AttrType, name)
}


@functools.cache
def _attribute_type(op: str, opset: int, name: str) -> int | None:
    """The attribute type the ONNX schema of ``op`` (at ``opset``) declares for ``name``, if any."""
    try:
        schema = onnx.defs.get_schema(op, max_inclusive_version=max(1, opset), domain="")
    except Exception:  # noqa: BLE001 - no schema (unknown op or opset): nothing to check against
        return None
    attribute = schema.attributes.get(name)
    return None if attribute is None else _PROTO_TYPES.get(attribute.type)


class Inputs:
    """A node's inputs: ``inputs[k]`` is a required one, :meth:`get` an optional one."""

    def __init__(self, node: Node, values: Sequence[Value | None]) -> None:
        self.node, self.values = node, list(values)

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[Value | None]:
        return iter(self.values)

    def __getitem__(self, index: int) -> Value:
        value = self.get(index)
        if value is None:
            raise ModelLoadError(f"{self.node.where()} has no input {index}, which it needs")
        return value

    def get(self, index: int) -> Value | None:
        """Input ``index``, ``None`` when absent."""
        return self.values[index] if index < len(self.values) else None

    def constant(self, index: int, what: str) -> np.ndarray | None:
        """Input ``index``, which must not depend on the network input (``None`` when absent)."""
        value = self.get(index)
        if isinstance(value, AffineTensor):
            raise UnsupportedOperatorError(
                f"{self.node.where()}: its {what} depends on the network input; it must be a constant"
            )
        return value

    def all_constant(self) -> bool:
        """No input depends on the network input."""
        return not any(isinstance(v, AffineTensor) for v in self.values)


class Emitter(Protocol):
    """What handlers may ask of the graph converter."""

    def fold(self, node: Node, inputs: Inputs) -> Outputs:
        """Evaluate a node whose inputs are all constant."""
        ...

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
        """Append ``kind(value)`` as a layer; its output is the new basis."""
        ...

    def emit_max(self, node: Node, value: AffineTensor, members: np.ndarray, shape: tuple[int, ...]) -> AffineTensor:
        """Append a max layer: output ``g`` is the max of ``value`` over ``members[g]``."""
        ...


#: An operator handler (module docstring).
Handler = Callable[[Emitter, Node, Inputs], Outputs]


def normalise_axes(node: Node, axes: Sequence[int], rank: int) -> list[int]:
    """Axes in ``[0, rank)``, each once (ONNX allows negative axes)."""
    result = []
    for axis in axes:
        axis = int(axis)
        if not -rank <= axis < rank:
            raise ShapeMismatchError(f"{node.where()}: axis {axis} is out of range for rank {rank}")
        result.append(axis % rank)
    if len(set(result)) != len(result):
        raise ShapeMismatchError(f"{node.where()}: axes {list(axes)} name an axis twice")
    return result
