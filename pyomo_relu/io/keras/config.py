"""The structure of saved Keras model configs (Keras 2 and Keras 3 forms): layer names, the
tensors each call reads, the one chain of a Sequential or functional model, and the input
shape the config records.  Shared by the chain readers and the graph route."""

from __future__ import annotations

from typing import Any

from pyomo_relu.errors import ModelLoadError, UnsupportedOperatorError

__all__ = ["MODEL_CLASSES", "chain_entries", "config_input_shape", "config_name", "history_refs", "node_sources"]

MODEL_CLASSES = ("Sequential", "Functional", "Model")


def config_name(entry: dict) -> str:
    """The layer name of a config entry (``"?"`` when it has none)."""
    config = entry.get("config")
    name = entry.get("name") or (config.get("name") if isinstance(config, dict) else None)
    return str(name) if name is not None else "?"


def history_refs(value: Any) -> list[tuple[str, int, int]]:
    """``input_layers``/``output_layers`` in Keras 2 (nested) or Keras 3 (flat) form."""
    if not value:
        return []
    if isinstance(value[0], str):
        return [(value[0], int(value[1]), int(value[2]))]
    return [(str(v[0]), int(v[1]), int(v[2])) for v in value]


def node_sources(node: Any) -> list[tuple[str, int, int]]:
    """Tensors a call node reads: Keras 3 ``{"args", "kwargs"}`` or Keras 2 lists."""
    found: list[tuple[str, int, int]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                history = value.get("config", {}).get("keras_history", ["?", 0, 0])
                found.append((str(history[0]), int(history[1]), int(history[2])))
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    if isinstance(node, dict):
        walk(node)
    else:  # Keras 2: [[layer_name, node_index, tensor_index, kwargs], ...]
        for ref in node:
            if isinstance(ref, (list, tuple)) and ref and isinstance(ref[0], str):
                found.append((ref[0], int(ref[1]), int(ref[2])))
                if len(ref) > 3:
                    walk(ref[3])
            else:
                walk(ref)
    return found


def chain_entries(class_name: str, config: Any) -> list[dict]:
    """The layer entries of a Sequential/functional config, checked to form one chain."""
    if class_name == "Sequential":
        entries = config["layers"] if isinstance(config, dict) else config
        return list(entries)
    if class_name not in ("Functional", "Model"):
        raise ModelLoadError(f"unknown Keras model class {class_name!r}")
    entries = list(config["layers"])
    inputs = history_refs(config.get("input_layers"))
    outputs = history_refs(config.get("output_layers"))
    if len(inputs) != 1:
        raise UnsupportedOperatorError(
            f"the Keras model has {len(inputs)} inputs ({', '.join(r[0] for r in inputs)}); "
            "only single-input chains are supported"
        )
    if len(outputs) != 1:
        raise UnsupportedOperatorError(
            f"the Keras model has {len(outputs)} outputs ({', '.join(r[0] for r in outputs)}); "
            "only single-output chains are supported"
        )
    previous: str | None = None
    for entry in entries:
        name, cls = config_name(entry), entry.get("class_name", "?")
        nodes = entry.get("inbound_nodes") or []
        if cls == "InputLayer" and not nodes:
            if name != inputs[0][0]:
                raise UnsupportedOperatorError(f"input layer {name!r} is not the model input")
            previous = name
            continue
        if len(nodes) != 1:
            raise UnsupportedOperatorError(
                f"Keras layer {name!r} ({cls}) is called {len(nodes)} times in the model; "
                "only single chains (each layer used once) are supported"
            )
        sources = node_sources(nodes[0])
        if len(sources) != 1 or sources[0][0] != previous or sources[0][2] != 0:
            from_ = ", ".join(repr(s[0]) for s in sources) or "nothing"
            raise UnsupportedOperatorError(
                f"Keras layer {name!r} ({cls}) reads from {from_}, not just from the previous "
                f"layer {previous!r}: the model branches or merges. Only single chains "
                "(each layer's only input is the previous layer's output) are supported"
            )
        previous = name
    if outputs[0][0] != previous:
        raise UnsupportedOperatorError(
            f"the Keras model output comes from layer {outputs[0][0]!r}, not from the last "
            f"layer of the chain {previous!r}; only single chains are supported"
        )
    return entries


def config_input_shape(model_config: dict) -> tuple[int, ...] | None:
    """The input shape (without batch) recorded in a model config, if fully known."""
    config = model_config.get("config")
    entries = config.get("layers") if isinstance(config, dict) else config
    if not entries:
        return None
    first = entries[0].get("config", {})
    shape = first.get("batch_shape") or first.get("batch_input_shape")
    if shape is None and isinstance(config, dict):
        shape = config.get("build_input_shape")
    if shape is None or any(d is None for d in shape[1:]):
        return None
    return tuple(int(d) for d in shape[1:])
