"""Read PyTorch modules into a NetworkDefinition.

Two routes, chosen from the module itself:

* **Direct** (no export, no ``example_input`` needed): an ``nn.Sequential`` (nested
  ``nn.Sequential`` are flattened) made only of

  ``Linear``, ``ReLU``, ``LeakyReLU``, ``PReLU``, ``ReLU6``, ``Hardtanh``, ``Sigmoid``,
  ``Tanh``, ``Softplus`` (``beta=1``; the smooth ones for NLP solvers only),
  ``Identity``, ``Dropout`` (and its ``Dropout1d/2d/3d``,
  ``AlphaDropout`` variants: identity at inference), ``Flatten``, ``BatchNorm1d``

  is read from its parameters.  ``BatchNorm1d`` uses its running statistics, as in eval
  mode (``(x - running_mean) / sqrt(running_var + eps) * weight + bias``), so it is an
  affine per-channel map; one with ``track_running_stats=False`` normalises with batch
  statistics even in eval mode and is refused.  Consecutive affine pieces compose into
  one :class:`~pyomo_relu.network.DenseLayer`, like the other readers.  ``Linear`` on a
  tensor of rank > 1 acts on its last axis (a block-diagonal affine map).
* **Through ONNX**: any other module (a custom ``forward``) is exported with
  ``torch.onnx.export(..., dynamo=False, opset_version=17)`` into memory and read by
  :func:`~pyomo_relu.io.onnx.load_onnx`.  ``example_input`` is then required.  Before
  exporting, the module is run once on ``example_input`` with hooks that record which
  sub-modules are called (convolutions, average and max pooling, BatchNorm2d, Unflatten
  and residual connections are read this way); a called ``torch.nn`` layer outside the
  supported ones (``GELU``, ``ELU``, ``LayerNorm``, ...) is refused by its path
  (``'encoder.act' (GELU)``) before anything is exported.  Operators written directly in
  ``forward`` (``torch.erf(x)``) are refused by :func:`load_onnx`, with the module scope
  named.

``example_input`` includes the batch dimension (as for ``torch.onnx.export``); only its
shape matters, the network is built for one sample and ``input_shape`` is the shape
without the batch.  When it is given, the translated network is also checked against
``module(example_input)``.

The module is never left changed: the ONNX route puts it in eval mode and restores every
sub-module's ``training`` flag afterwards; the direct route does not touch it.

PyTorch is an optional dependency (``pip install pyomo_relu[torch]``), imported only when
:func:`load_torch` is called.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pyomo_relu.errors import (
    ModelLoadError,
    OptionalDependencyError,
    ShapeMismatchError,
    UnsupportedOperatorError,
)
from pyomo_relu.io.affine import LayerChain
from pyomo_relu.network import DenseLayer, Layer, NetworkDefinition

logger = logging.getLogger(__name__)

__all__ = ["SUPPORTED_MODULES", "load_torch"]

#: Human-readable list used in error messages.
SUPPORTED_MODULES = (
    "nn.Sequential (nested ones too) of Linear, ReLU, LeakyReLU, PReLU, ReLU6, Hardtanh, "
    "Sigmoid, Tanh, Softplus (the last three for NLP solvers only), Identity, Dropout, Flatten, "
    "BatchNorm1d (with running stats) read directly; other modules (custom forward, "
    "convolutions, pooling, residual connections) through ONNX export with example_input, "
    "which accepts the same layers plus Conv, MaxPool, AvgPool, BatchNorm2d, Unflatten, "
    "Hardsigmoid and linear tensor operations (view, reshape, cat, +, -, * and / by "
    "constants, matmul by weights, sums of tensors)"
)

_ONNX_OPSET = 17
#: ``(path, module, kind)`` of a Sequential's layers (kind ``None``: not read directly).
Leaves = list[tuple[str, Any, str | None]]
#: torch.nn activations read directly (their parameters in :func:`_activation_params`).
_ACTIVATION_MODULES = {
    "LeakyReLU": "leaky_relu",
    "PReLU": "prelu",
    "ReLU6": "relu6",
    "Hardtanh": "hardtanh",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softplus": "softplus",
}
_DROPOUT_NAMES = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise OptionalDependencyError("torch", "reading PyTorch modules", "torch") from exc
    return torch


# --------------------------------------------------------------- module checks
def _where(path: str, module: Any) -> str:
    return f"torch module {path or '<root>'!r} ({type(module).__name__})"


def _unsupported(path: str, module: Any, reason: str = "") -> UnsupportedOperatorError:
    reason = f" {reason}" if reason else ""
    return UnsupportedOperatorError(
        f"{_where(path, module)} is not supported{reason}. pyomo_relu reads "
        f"{SUPPORTED_MODULES}. Other activations (GELU, ELU, SiLU, ...) and layers "
        "(normalisation other than BatchNorm, attention, ...) have no exact encoding here; "
        "cut the model before them or replace them"
    )


def _is_plain(module: Any, cls: type) -> bool:
    """``module`` is a ``cls`` whose ``forward`` is the library's own."""
    return isinstance(module, cls) and getattr(type(module), "forward", None) is getattr(cls, "forward", None)


def _direct_kind(module: Any, nn: Any) -> str | None:
    """What the direct reader does with a module, or None if it cannot read it."""
    if _is_plain(module, nn.Sequential):
        return "sequential"
    if _is_plain(module, nn.Linear):
        return "linear"
    if _is_plain(module, nn.ReLU):
        return "relu"
    for cls_name, kind in _ACTIVATION_MODULES.items():
        if _is_plain(module, getattr(nn, cls_name)):
            return kind
    if _is_plain(module, nn.Flatten):
        return "flatten"
    if _is_plain(module, nn.BatchNorm1d):
        return "batchnorm"
    if _is_plain(module, nn.Identity):
        return "identity"
    for name in _DROPOUT_NAMES:
        cls = getattr(nn, name, None)
        if cls is not None and _is_plain(module, cls):
            return "identity"
    return None


def _is_torch_builtin(module: Any) -> bool:
    return (type(module).__module__ or "").startswith("torch.")


def _leaves(module: Any, nn: Any, prefix: str = "") -> Iterator[tuple[str, Any, str | None]]:
    """``(path, module, kind)`` of a Sequential's layers, nested Sequentials flattened."""
    for name, child in module.named_children():
        path = f"{prefix}.{name}" if prefix else name
        kind = _direct_kind(child, nn)
        if kind == "sequential":
            yield from _leaves(child, nn, path)
        else:
            yield path, child, kind


def _check_batchnorm(path: str, module: Any) -> None:
    if not module.track_running_stats or module.running_mean is None:
        raise _unsupported(
            path,
            module,
            "with track_running_stats=False: it normalises with the statistics of each batch "
            "even in eval mode, which is not a fixed affine map",
        )


def _array(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


# ------------------------------------------------------------------ direct route
def _guess_input_shape(layers: Leaves) -> tuple[int, ...]:
    for _path, module, kind in layers:
        if kind == "linear":
            return (int(module.in_features),)
        if kind == "batchnorm":
            return (int(module.num_features),)
        if kind == "flatten":
            break  # the shape before a Flatten cannot be known
    raise ModelLoadError(
        "cannot tell the input shape of this nn.Sequential from its layers; pass "
        "example_input (a tensor with the batch dimension first)"
    )


def _read_sequential(layers: Leaves, shape: tuple[int, ...]) -> list[DenseLayer]:
    chain = LayerChain(shape)
    for path, module, kind in layers:
        if kind == "identity":
            continue
        if kind == "relu":
            chain.activation(path, "relu")
        elif kind is not None and kind in _ACTIVATION_MODULES.values():
            activation, params = _activation_params(path, module, kind, chain.shape)
            chain.activation(path, activation, **params)
        elif kind == "flatten":
            chain.shape = _flattened_shape(path, module, chain.shape)
        elif kind == "linear":
            _linear(chain, path, module)
        elif kind == "batchnorm":
            _batchnorm(chain, path, module)
        else:  # pragma: no cover - filtered by the caller
            raise _unsupported(path, module)
    return chain.finish()


def _activation_params(path: str, module: Any, kind: str, shape: tuple[int, ...]) -> tuple:
    """``(activation, params)`` of a torch activation module for a tensor of ``shape``."""
    if kind == "leaky_relu":
        return "leaky_relu", {"alpha": float(module.negative_slope)}
    if kind == "prelu":
        weight = _array(module.weight).reshape(-1)
        if weight.size == 1:
            return "leaky_relu", {"alpha": float(weight[0])}
        channels = (-1,) + (1,) * (len(shape) - 1)
        try:
            alpha = np.broadcast_to(weight.reshape(channels), shape).reshape(-1)
        except ValueError:
            raise ShapeMismatchError(f"{_where(path, module)}: {weight.size} slopes for input shape {shape}") from None
        return "leaky_relu", {"alpha": alpha}
    if kind == "relu6":
        return "clip", {"clip_low": 0.0, "clip_high": 6.0}
    if kind == "hardtanh":
        return "clip", {"clip_low": float(module.min_val), "clip_high": float(module.max_val)}
    if kind == "softplus" and float(module.beta) != 1.0:
        raise _unsupported(path, module, f"with beta={module.beta} (only beta=1)")
    return kind, {}


def _flattened_shape(path: str, module: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape after ``nn.Flatten(start_dim, end_dim)``; flat C-order data is unchanged."""
    rank = len(shape) + 1  # with the batch axis
    start, end = int(module.start_dim), int(module.end_dim)
    start, end = start % rank if start < 0 else start, end % rank if end < 0 else end
    if start == 0:
        raise _unsupported(path, module, "with start_dim=0: it would merge the batch axis")
    if not start <= end < rank:
        raise ShapeMismatchError(
            f"{_where(path, module)}: start_dim={module.start_dim}, end_dim={module.end_dim} "
            f"do not fit an input of shape {shape} (without the batch)"
        )
    dims = list(shape)
    merged = int(np.prod(dims[start - 1 : end]))
    return tuple(dims[: start - 1] + [merged] + dims[end:])


def _linear(chain: LayerChain, path: str, module: Any) -> None:
    weights = _array(module.weight)
    bias = _array(module.bias) if module.bias is not None else np.zeros(weights.shape[0])
    if not chain.shape or chain.shape[-1] != weights.shape[1]:
        raise ShapeMismatchError(
            f"{_where(path, module)} takes {weights.shape[1]} features but receives a tensor "
            f"of shape {chain.shape} (without the batch); pass example_input if the input "
            "is not a flat vector"
        )
    outer = chain.size // weights.shape[1]
    if outer > 1:  # Linear acts on the last axis of every leading position
        weights, bias = np.kron(np.eye(outer), weights), np.tile(bias, outer)
    chain.affine(weights, bias, path)
    chain.shape = chain.shape[:-1] + (int(module.out_features),)


def _batchnorm(chain: LayerChain, path: str, module: Any) -> None:
    _check_batchnorm(path, module)
    channels = int(module.num_features)
    if not chain.shape or len(chain.shape) > 2 or chain.shape[0] != channels:
        raise ShapeMismatchError(
            f"{_where(path, module)} expects (N, {channels}) or (N, {channels}, L) inputs, "
            f"gets a tensor of shape (N, {', '.join(map(str, chain.shape))})"
        )
    factor = 1.0 / np.sqrt(_array(module.running_var) + float(module.eps))
    shift = -_array(module.running_mean) * factor
    if module.affine:
        gamma, beta = _array(module.weight), _array(module.bias)
        factor, shift = factor * gamma, shift * gamma + beta
    inner = chain.size // channels  # the length L of (N, C, L) inputs
    chain.affine(np.diag(np.repeat(factor, inner)), np.repeat(shift, inner), path)


# ------------------------------------------------------------------- ONNX route
def _called_modules(torch: Any, module: Any, example: Any) -> list[tuple[str, Any]]:
    """Sub-modules called by ``module(example)``, in call order (first call only)."""
    called: dict[int, tuple[str, Any]] = {}
    handles = []
    for path, sub in module.named_modules():
        if sub is module:
            continue

        def hook(mod: Any, args: Any, path: str = path) -> None:
            called.setdefault(id(mod), (path, mod))

        handles.append(sub.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            module(example)
    except Exception as exc:
        raise ModelLoadError(
            f"running {type(module).__name__} on example_input of shape "
            f"{tuple(example.shape)} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
    return list(called.values())


def _onnx_only_builtin(sub: Any, nn: Any) -> bool:
    """torch.nn layers read through ONNX only (the direct reader does not handle them)."""
    linear_via_onnx = (
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        nn.AvgPool1d,
        nn.AvgPool2d,
        nn.AvgPool3d,
        nn.AdaptiveAvgPool1d,
        nn.AdaptiveAvgPool2d,
        nn.AdaptiveAvgPool3d,
        nn.MaxPool1d,
        nn.MaxPool2d,
        nn.MaxPool3d,
        nn.Hardsigmoid,
    )
    return _is_plain(sub, nn.Unflatten) or (
        isinstance(sub, (nn.modules.batchnorm._BatchNorm, *linear_via_onnx)) and _is_torch_builtin(sub)
    )


def _check_called(nn: Any, called: list[tuple[str, Any]]) -> None:
    """Refuse called torch.nn layers that are not piecewise linear or not supported."""
    for path, sub in called:
        kind = _direct_kind(sub, nn)
        if kind == "batchnorm" or isinstance(sub, nn.modules.batchnorm._BatchNorm):
            _check_batchnorm(path, sub)
            continue
        if kind is not None or _onnx_only_builtin(sub, nn):
            continue
        if _is_torch_builtin(sub):
            raise _unsupported(path, sub)
        # a user-defined module: its forward is judged operator by operator through ONNX


_SCOPE = re.compile(r"ONNX node '([^']*)' \(op (\w+)\)")


def _module_for_scope(module: Any, node_name: str) -> tuple[str, Any] | None:
    """The sub-module a TorchScript ONNX node name (``/encoder/act/Erf``) belongs to."""
    parts = [p for p in node_name.strip("/").split("/")[:-1] if p]
    if not parts:
        return None
    modules = dict(module.named_modules())
    for candidate in (parts[-1], ".".join(parts)):
        if candidate in modules:
            return candidate, modules[candidate]
    matches = [p for p in modules if p.endswith("." + parts[-1])]
    if len(matches) == 1:
        return matches[0], modules[matches[0]]
    return None


def _export(torch: Any, module: Any, example: Any) -> Any:
    import onnx

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact
            warnings.filterwarnings("ignore", ".*legacy TorchScript", DeprecationWarning)
            torch.onnx.export(
                module,
                (example,),
                buffer,
                dynamo=False,
                opset_version=_ONNX_OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
    except Exception as exc:
        raise ModelLoadError(
            f"torch.onnx.export of {type(module).__name__} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return onnx.load_from_string(buffer.getvalue())


def _read_through_onnx(torch: Any, module: Any, example: Any) -> NetworkDefinition:
    from pyomo_relu.io.onnx import load_onnx

    _check_called(torch.nn, _called_modules(torch, module, example))
    proto = _export(torch, module, example[:1])
    try:
        return load_onnx(proto)
    except UnsupportedOperatorError as exc:
        match = _SCOPE.search(str(exc))
        if match is None:
            raise
        found = _module_for_scope(module, match.group(1))
        where = _where(*found) if found is not None else f"the forward() of {type(module).__name__} itself"
        raise UnsupportedOperatorError(
            f"{where} computes ONNX op {match.group(2)} (node {match.group(1)!r} of the "
            "export) on the input, which is not piecewise linear or not supported. pyomo_relu "
            f"reads {SUPPORTED_MODULES}"
        ) from exc


# --------------------------------------------------------------------- helpers
def _example_tensor(torch: Any, module: Any, example_input: Any) -> Any:
    if isinstance(example_input, (tuple, list)):
        if len(example_input) != 1:
            raise UnsupportedOperatorError(
                f"example_input has {len(example_input)} tensors; only single-input modules are supported"
            )
        example_input = example_input[0]
    parameter = next(iter(module.parameters()), None)
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else None
    device = parameter.device if parameter is not None else None
    tensor = torch.as_tensor(example_input, dtype=dtype or torch.float32, device=device)
    if tensor.ndim < 2 or tensor.shape[0] < 1:
        raise ShapeMismatchError(
            f"example_input has shape {tuple(tensor.shape)}; it needs a batch dimension first "
            "and at least one feature axis, e.g. torch.zeros(1, n_features)"
        )
    return tensor


def _training_flags(module: Any) -> list[tuple[Any, bool]]:
    return [(sub, sub.training) for sub in module.modules()]


def _restore(state: list[tuple[Any, bool]]) -> None:
    for sub, training in state:
        sub.training = training


def _check_against_module(torch: Any, net: NetworkDefinition, module: Any, example: Any) -> None:
    """The translated network reproduces ``module(example)`` (module in eval mode)."""
    with torch.no_grad():
        expected = module(example)
    if not isinstance(expected, torch.Tensor):
        raise UnsupportedOperatorError(
            f"{type(module).__name__} returns a {type(expected).__name__}; only modules "
            "returning one tensor are supported"
        )
    expected = _array(expected).reshape(example.shape[0], -1)
    got = net.evaluate(_array(example).reshape(example.shape[0], -1))
    if got.shape != expected.shape:
        raise ShapeMismatchError(f"the translated network gives {got.shape[1]} outputs, the module {expected.shape[1]}")
    error = float(np.max(np.abs(got - expected))) if got.size else 0.0
    tolerance = 1e-4 * (1.0 + float(np.max(np.abs(expected))) if expected.size else 1.0)
    if error > tolerance:
        raise ModelLoadError(
            f"the network read from {type(module).__name__} differs from the module on "
            f"example_input by {error:.3g}; its forward may depend on the data (control flow) "
            "or on training-mode behaviour"
        )


# ------------------------------------------------------------------------ API
def load_torch(module: Any, example_input: Any = None, input_bounds: object = None) -> NetworkDefinition:
    """Read a PyTorch ``nn.Module`` into a :class:`~pyomo_relu.network.NetworkDefinition`.

    ``module`` is an ``nn.Sequential`` of supported layers (read directly) or any other
    module (exported to ONNX; then ``example_input``, a tensor with the batch dimension
    first, is required).  ``input_bounds`` accepts the forms of
    :class:`~pyomo_relu.network.NetworkDefinition`, in the order of the flattened input.

    Raises :class:`~pyomo_relu.errors.UnsupportedOperatorError` naming the module path and
    class of an unsupported layer, :class:`~pyomo_relu.errors.ModelLoadError` when
    ``example_input`` is needed but absent or the export fails, and
    :class:`~pyomo_relu.errors.OptionalDependencyError` when PyTorch is not installed.

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.5), nn.Linear(3, 1))
    >>> net = load_torch(model, input_bounds=[(-1, 1), (-1, 1)])
    >>> [(layer.name, layer.activation) for layer in net.layers]
    [('0+1', 'relu'), ('3', 'linear')]
    >>> x = torch.tensor([[0.5, -0.25]])
    >>> bool(abs(net.evaluate(x.double().numpy())[0, 0] - model.eval()(x).item()) < 1e-6)
    True
    """
    torch = _import_torch()
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"expected a torch.nn.Module, got {type(module).__name__}")
    example = None if example_input is None else _example_tensor(torch, module, example_input)
    name = type(module).__name__
    layers, via_onnx = _routes(module, torch.nn)
    state = _training_flags(module)
    read: Sequence[Layer]
    try:
        if via_onnx:
            shape, route = _onnx_input_shape(via_onnx, example), "ONNX export"
            module.eval()
            read = _read_through_onnx(torch, module, example).layers
        else:
            shape = tuple(example.shape[1:]) if example is not None else _guess_input_shape(layers)
            read, route = _read_sequential(layers, shape), "parameters"
        network = NetworkDefinition(read, input_bounds, input_shape=shape, source=f"<torch {name}>")
        if example is not None:
            module.eval()
            _check_against_module(torch, network, module, example)
    finally:
        _restore(state)
    logger.info("read torch %s through %s: %s", name, route, network)
    return network


def _routes(module: Any, nn: Any) -> tuple[Leaves, list[tuple[str, Any]]]:
    """``(layers read directly, modules that need the ONNX route)`` of ``module``."""
    if _direct_kind(module, nn) != "sequential":
        return [], [("", module)]
    layers = list(_leaves(module, nn))
    for path, sub, kind in layers:  # a Sequential calls every layer: refuse now
        if kind is None and _is_torch_builtin(sub) and not _onnx_only_builtin(sub, nn):
            raise _unsupported(path, sub)
    return layers, [(p, m) for p, m, kind in layers if kind is None]


def _onnx_input_shape(via_onnx: list[tuple[str, Any]], example: Any) -> tuple[int, ...]:
    """The input shape of a module read through ONNX: ``example_input``'s, which it needs."""
    if example is None:
        path, sub = via_onnx[0]
        why = "has its own forward()" if not _is_torch_builtin(sub) else "is not read directly"
        raise ModelLoadError(
            f"{_where(path, sub)} {why}, so the module is read through ONNX export, "
            "which needs example_input (a tensor of the input's shape, batch dimension "
            "first); supported directly: " + SUPPORTED_MODULES
        )
    return tuple(int(d) for d in example.shape[1:])
