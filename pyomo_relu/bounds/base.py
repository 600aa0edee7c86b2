"""The :class:`Bounds` object every bounds method returns and every formulation reads.

Bounds are pre-activation intervals ``lower[k][j] <= z_kj <= upper[k][j]`` for every
canonical layer ``k`` (see :meth:`NetworkDefinition.canonical_layers`) and neuron ``j``,
valid for every input in the recorded input box.  They carry the network's content hash
so that bounds are never applied to another network.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pyomo_relu.errors import BoundsMismatchError, InvalidValueError, ModelLoadError, ShapeMismatchError

if TYPE_CHECKING:
    from pyomo_relu.network import NetworkDefinition

FORMAT_VERSION = 1


#: Optional per-input / per-output arrays of :class:`Bounds`, in field order.
_OPTIONAL_ARRAYS = ("output_lower", "output_upper", "implied_input_lower", "implied_input_upper")


def _readonly(values: object) -> np.ndarray:
    array = np.array(values, dtype=np.float64, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Bounds:
    """Pre-activation bounds of a network over an input box.

    ``lower[k]`` and ``upper[k]`` are arrays over the neurons of canonical layer ``k``.
    ``methods`` records the chain that produced them, e.g. ``("interval", "crown")``.

    ``output_lower``/``output_upper`` (``None`` when absent) are output bounds that were
    *assumed* while computing these bounds (``tighten(..., output_bounds=...)``): the bounds
    are then valid only in a model that enforces them.  ``implied_input_lower``/
    ``implied_input_upper`` are the input box those output bounds imply (within the box
    :attr:`input_lower` .. :attr:`input_upper`, which stays the box the bounds were asked for).
    """

    lower: Sequence[np.ndarray]
    upper: Sequence[np.ndarray]
    input_lower: np.ndarray
    input_upper: np.ndarray
    network_hash: str
    methods: tuple[str, ...] = ()
    output_lower: np.ndarray | None = None
    output_upper: np.ndarray | None = None
    implied_input_lower: np.ndarray | None = None
    implied_input_upper: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in _OPTIONAL_ARRAYS:
            if getattr(self, name) is not None:
                set_(self, name, _readonly(getattr(self, name)))
        set_(self, "lower", tuple(_readonly(a) for a in self.lower))
        set_(self, "upper", tuple(_readonly(a) for a in self.upper))
        set_(self, "input_lower", _readonly(self.input_lower))
        set_(self, "input_upper", _readonly(self.input_upper))
        set_(self, "methods", tuple(self.methods))
        if len(self.lower) != len(self.upper):
            raise ShapeMismatchError("Bounds need as many lower as upper arrays")
        for k, (lo, hi) in enumerate(zip(self.lower, self.upper)):
            if lo.shape != hi.shape:
                raise ShapeMismatchError(f"layer {k}: lower {lo.shape} and upper {hi.shape} differ")

    # ----------------------------------------------------------- per layer
    @property
    def interrupted(self) -> bool:
        """A step of the chain was stopped by Ctrl-C (``"lp(interrupted)"`` in :attr:`methods`):
        the bounds are sound but may be looser than the chain would have given."""
        return any(m.endswith("(interrupted)") for m in self.methods)

    @property
    def n_layers(self) -> int:
        return len(self.lower)

    def unstable(self, layer: int) -> np.ndarray:
        """Mask of neurons whose pre-activation interval straddles zero."""
        return (self.lower[layer] < 0) & (self.upper[layer] > 0)

    def stable_active(self, layer: int) -> np.ndarray:
        """Mask of neurons proven non-negative (a ReLU is the identity there)."""
        return self.lower[layer] >= 0

    def stable_inactive(self, layer: int) -> np.ndarray:
        """Mask of neurons proven non-positive (a ReLU outputs zero there)."""
        return self.upper[layer] <= 0

    def width(self, layer: int) -> np.ndarray:
        return self.upper[layer] - self.lower[layer]

    # --------------------------------------------------------- combination
    def intersect(self, other: Bounds) -> Bounds:
        """Elementwise tightest of two bounds of the same network and box."""
        self.check_compatible(other.network_hash, other.input_lower, other.input_upper)
        methods = self.methods + tuple(m for m in other.methods if m not in self.methods)
        extra = [
            _tightest(getattr(self, name), getattr(other, name), name.endswith("lower")) for name in _OPTIONAL_ARRAYS
        ]
        return Bounds(
            [np.maximum(a, b) for a, b in zip(self.lower, other.lower)],
            [np.minimum(a, b) for a, b in zip(self.upper, other.upper)],
            self.input_lower,
            self.input_upper,
            self.network_hash,
            methods,
            *extra,
        )

    def check_compatible(self, network_hash: str, input_lower: np.ndarray, input_upper: np.ndarray) -> None:
        """Raise :class:`BoundsMismatchError` unless these bounds hold for that network and box.

        Bounds computed on a larger box remain valid on a smaller one, so a box contained
        in :attr:`input_lower` .. :attr:`input_upper` is accepted.
        """
        if network_hash != self.network_hash:
            raise BoundsMismatchError(
                f"these bounds were computed for network {self.network_hash[:12]}, "
                f"not for this one ({network_hash[:12]}); recompute them with tighten()"
            )
        lo, hi = np.asarray(input_lower, float), np.asarray(input_upper, float)
        if lo.shape != self.input_lower.shape:
            raise BoundsMismatchError(f"these bounds are for {self.input_lower.size} inputs, not {lo.size}")
        outside = np.flatnonzero((lo < self.input_lower) | (hi > self.input_upper))
        if outside.size:
            i = int(outside[0])
            raise BoundsMismatchError(
                f"input {i} may range over [{lo[i]}, {hi[i]}], outside the box "
                f"[{self.input_lower[i]}, {self.input_upper[i]}] these bounds were computed "
                "for; recompute them for the larger box"
            )

    def check_layer_sizes(self, sizes: Sequence[int], where: str = "these bounds") -> None:
        """Raise :class:`BoundsMismatchError` unless there is one array per layer of ``sizes`` neurons.

        The content hash already ties bounds to a network; this catches bounds whose
        arrays were altered (a loaded file, a hand-made :class:`Bounds`).
        """
        if not layer_sizes_match(self, sizes):
            raise BoundsMismatchError(
                f"{where}: neuron bounds for layers of sizes {[a.size for a in self.lower]}, the network's "
                f"canonical layers have {list(sizes)}; recompute them with tighten()"
            )

    # ---------------------------------------------------------- reporting
    def summary(self) -> list[dict[str, float]]:
        """Per layer: neurons, unstable count, mean width (finite widths only)."""
        rows = []
        for k in range(self.n_layers):
            width = self.width(k)
            finite = width[np.isfinite(width)]
            rows.append(
                {
                    "layer": k,
                    "neurons": int(width.size),
                    "unstable": int(self.unstable(k).sum()),
                    "mean_width": float(finite.mean()) if finite.size else float("inf"),
                }
            )
        return rows

    # -------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write to ``.json`` or ``.npz`` (chosen by the suffix); no pickle involved."""
        path = Path(path)
        payload = self._payload()
        if path.suffix == ".npz":
            arrays: dict[str, Any] = {f"lower_{k}": a for k, a in enumerate(self.lower)}
            arrays.update({f"upper_{k}": a for k, a in enumerate(self.upper)})
            arrays["input_lower"], arrays["input_upper"] = self.input_lower, self.input_upper
            arrays.update({name: getattr(self, name) for name in _OPTIONAL_ARRAYS if getattr(self, name) is not None})
            meta = {key: payload[key] for key in ("format", "network_hash", "methods")}
            np.savez(path, meta=np.array(json.dumps(meta)), **arrays)
        else:
            path.write_text(json.dumps(payload, indent=1))

    def _payload(self) -> dict:
        as_list = lambda a: [None if not np.isfinite(v) else float(v) for v in a]  # noqa: E731
        return {
            "format": f"pyomo_relu.bounds/{FORMAT_VERSION}",
            "network_hash": self.network_hash,
            "methods": list(self.methods),
            "input_lower": [float(v) for v in self.input_lower],
            "input_upper": [float(v) for v in self.input_upper],
            "lower": [as_list(a) for a in self.lower],
            "upper": [as_list(a) for a in self.upper],
            **{name: as_list(getattr(self, name)) for name in _OPTIONAL_ARRAYS if getattr(self, name) is not None},
        }

    @classmethod
    def load(cls, path: str | Path, network: NetworkDefinition | None = None) -> Bounds:
        """Read bounds written by :meth:`save`; with ``network``, check they belong to it.

        A file that cannot be read or is not a bounds file raises :class:`ModelLoadError`;
        NaN values, or an input box with crossed or wrong-side infinite bounds, raise
        :class:`InvalidValueError` naming the input (or layer and neuron).
        """
        path = Path(path)
        where = f"bounds file {str(path)!r}"
        try:
            fields = _read_npz(path) if path.suffix == ".npz" else json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError, KeyError, EOFError, RecursionError, zipfile.BadZipFile) as exc:
            raise ModelLoadError(f"cannot read {where}: {type(exc).__name__}: {exc}") from None
        bounds = cls._from_fields(fields, where)
        if network is not None:
            bounds.check_compatible(network.content_hash(), network.input_lower, network.input_upper)
            bounds.check_layer_sizes(
                [layer.n_pre for layer in network.canonical_layers],
                f"{where} (altered?)",
            )
        return bounds

    @classmethod
    def _from_fields(cls, fields: object, where: str) -> Bounds:
        """Validate what :meth:`save` wrote (JSON payload or ``.npz`` arrays) and build the Bounds."""
        expected = f"pyomo_relu.bounds/{FORMAT_VERSION}"
        if not isinstance(fields, dict) or fields.get("format") != expected:
            found = fields.get("format") if isinstance(fields, dict) else type(fields).__name__
            raise ModelLoadError(f"{where} is not a pyomo_relu bounds file (format {found!r}, expected {expected!r})")
        missing = [
            key
            for key in ("network_hash", "methods", "input_lower", "input_upper", "lower", "upper")
            if key not in fields
        ]
        if missing:
            raise ModelLoadError(f"{where} has no {', '.join(missing)}; write it with Bounds.save()")
        if not isinstance(fields["network_hash"], str):
            raise ModelLoadError(f"{where}: network_hash must be a string")
        methods = fields["methods"]
        if not isinstance(methods, (list, tuple)) or not all(isinstance(m, str) for m in methods):
            raise ModelLoadError(f"{where}: methods must be a list of names")
        input_lower = _vector(fields["input_lower"], -np.inf, f"{where}: input_lower")
        input_upper = _vector(fields["input_upper"], np.inf, f"{where}: input_upper")
        if input_lower.size != input_upper.size:
            raise ModelLoadError(f"{where}: {input_lower.size} input lower bounds but {input_upper.size} upper")
        _check_box(input_lower, input_upper, f"{where}: input")
        layers = []
        for side, fill in (("lower", -np.inf), ("upper", np.inf)):
            arrays = fields[side]
            if not isinstance(arrays, (list, tuple)):
                raise ModelLoadError(f"{where}: {side} must be a list of per-layer arrays")
            layers.append([_vector(a, fill, f"{where}: {side} bounds of layer {k}") for k, a in enumerate(arrays)])
        if len(layers[0]) != len(layers[1]) or any(a.size != b.size for a, b in zip(*layers)):
            raise ModelLoadError(f"{where}: the lower and upper neuron bounds have different sizes")
        optional = []
        for name in _OPTIONAL_ARRAYS:
            value = fields.get(name)
            optional.append(
                None
                if value is None
                else _vector(value, -np.inf if name.endswith("lower") else np.inf, f"{where}: {name}")
            )
        for prefix, lo, hi in (("output", optional[0], optional[1]), ("implied input", optional[2], optional[3])):
            if (lo is None) != (hi is None) or (lo is not None and hi is not None and lo.size != hi.size):
                raise ModelLoadError(f"{where}: {prefix} lower and upper bounds must both be given, of one size")
        if optional[2] is not None and optional[2].size != input_lower.size:
            raise ModelLoadError(
                f"{where}: the implied input box has {optional[2].size} entries, not {input_lower.size}"
            )
        return cls(layers[0], layers[1], input_lower, input_upper, fields["network_hash"], tuple(methods), *optional)


def _read_npz(path: Path) -> dict:
    """The fields of a ``.npz`` bounds file, as :meth:`Bounds._payload` names them."""
    with np.load(path, allow_pickle=False) as data:
        fields = json.loads(str(data["meta"]))
        if not isinstance(fields, dict):
            raise ValueError("the 'meta' entry is not a JSON object")
        n = sum(1 for key in data.files if key.startswith("lower_"))
        if sorted(data.files) != sorted(set(data.files)) or any(
            f"{side}_{k}" not in data.files for side in ("lower", "upper") for k in range(n)
        ):
            raise KeyError(f"the arrays lower_0 .. lower_{n - 1} and upper_0 .. upper_{n - 1} are not all there")
        fields["lower"] = [data[f"lower_{k}"] for k in range(n)]
        fields["upper"] = [data[f"upper_{k}"] for k in range(n)]
        for name in ("input_lower", "input_upper", *_OPTIONAL_ARRAYS):
            if name in data.files:
                fields[name] = data[name]
    return fields


def _vector(values: object, fill: float, where: str) -> np.ndarray:
    """A 1-D float array (JSON ``null`` -> ``fill``); anything else, or NaN, is refused."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "biuf":
            raise ModelLoadError(f"{where} holds {values.dtype} values, not numbers")
        array = values.astype(float).reshape(-1) if values.ndim <= 1 else None
    elif isinstance(values, (list, tuple)) and all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values
    ):
        array = np.array([fill if v is None else v for v in values], dtype=float)
    else:
        array = None
    if array is None:
        raise ModelLoadError(f"{where} must be a list of numbers")
    nan = np.flatnonzero(np.isnan(array))
    if nan.size:
        raise InvalidValueError(f"{where}, entry {int(nan[0])} is NaN; bounds must be numbers (null for none)")
    return array


def _check_box(lower: np.ndarray, upper: np.ndarray, where: str) -> None:
    bad = np.flatnonzero((lower > upper) | (lower == np.inf) | (upper == -np.inf))
    if bad.size:
        i = int(bad[0])
        raise InvalidValueError(f"{where} {i} has bounds [{lower[i]}, {upper[i]}], which no value satisfies")


def _tightest(a: np.ndarray | None, b: np.ndarray | None, lower: bool) -> np.ndarray | None:
    if a is None or b is None:
        return b if a is None else a
    return np.maximum(a, b) if lower else np.minimum(a, b)


def layer_sizes_match(bounds: Bounds, layer_sizes: Sequence[int]) -> bool:
    return [a.size for a in bounds.lower] == list(layer_sizes)
