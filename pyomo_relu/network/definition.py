"""The network description every other part of pyomo_relu reads: :class:`NetworkDefinition`.

Conventions
-----------
* Vectors are flat.  A reader that sees a tensor input (``[1, 784, 1]``) records the shape
  in ``input_shape`` and flattens it in row-major (C) order.
* Scaling follows OMLT's ``OffsetScaling`` and allows negative factors::

      x_scaled = (x - input_offset) / input_factor        # what the first layer sees
      y        = y_scaled * output_factor + output_offset # what the user sees

* Input bounds are in the user's (unscaled) space, like the user's own variables.
* :meth:`NetworkDefinition.canonical_layers` folds the scalings into the affine maps, so
  bounds and formulations work on one chain from user inputs to user outputs
  (:mod:`pyomo_relu.network.lowering`).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from pyomo_relu.errors import InvalidNetworkError, InvalidValueError, ShapeMismatchError, UnknownLayerError
from pyomo_relu.network.boxes import as_bounds_pair, check_box
from pyomo_relu.network.layers import DenseLayer, Layer, MaxLayer  # noqa: F401  (DenseLayer: the doctests)
from pyomo_relu.network.lowering import Canonical, canonicalize
from pyomo_relu.network.scaling import Scaling


class NetworkDefinition:
    """An immutable feed-forward network: layers, input box and scalings.

    >>> import numpy as np
    >>> net = NetworkDefinition(
    ...     [DenseLayer([[1.0, -1.0], [0.5, 0.5]], [0.0, -1.0], "relu"),
    ...      DenseLayer([[1.0, 2.0]], [0.5], "linear")],
    ...     input_bounds=[(-1, 1), (-1, 1)])
    >>> net.evaluate([[1.0, 0.0], [0.0, 1.0]])
    array([[1.5],
           [0.5]])
    >>> net.n_inputs, net.n_outputs, [layer.activation for layer in net.layers]
    (2, 1, ['relu', 'linear'])
    """

    layers: tuple[Layer, ...]
    input_bounds: tuple[np.ndarray, np.ndarray] | None
    input_scaling: Scaling | None
    output_scaling: Scaling | None
    input_shape: tuple[int, ...] | None
    input_names: tuple[str, ...] | None
    output_names: tuple[str, ...] | None
    source: str

    def __init__(
        self,
        layers: Sequence[Layer],
        input_bounds: object = None,
        input_scaling: Scaling | None = None,
        output_scaling: Scaling | None = None,
        input_shape: Sequence[int] | None = None,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        source: str = "",
    ) -> None:
        layers = tuple(layers)
        if not layers:
            raise InvalidNetworkError("a network needs at least one layer")
        for index in range(1, len(layers)):
            before, after = layers[index - 1], layers[index]
            if after.n_inputs != before.n_outputs:
                raise ShapeMismatchError(
                    f"layer {index} ({after.name or type(after).__name__}) takes "
                    f"{after.n_inputs} inputs but layer {index - 1} "
                    f"({before.name or type(before).__name__}) gives {before.n_outputs}"
                )
        n_in, n_out = layers[0].n_inputs, layers[-1].n_outputs
        pair = as_bounds_pair(input_bounds, n_in)
        if pair is not None:
            check_box(*pair)
            for array in pair:
                array.setflags(write=False)
        for scaling, size, what in ((input_scaling, n_in, "input"), (output_scaling, n_out, "output")):
            if scaling is not None and scaling.size != size:
                raise ShapeMismatchError(
                    f"{what} scaling has {scaling.size} entries but the network has {size} {what}s"
                )
        if input_shape is not None and int(np.prod(input_shape)) != n_in:
            raise ShapeMismatchError(
                f"input_shape {tuple(input_shape)} has {int(np.prod(input_shape))} entries, "
                f"the first layer takes {n_in}"
            )
        for names, size, what in ((input_names, n_in, "input"), (output_names, n_out, "output")):
            if names is not None and len(names) != size:
                raise ShapeMismatchError(f"{len(names)} {what} names for {size} {what}s")
        setattr_ = object.__setattr__  # instances are read-only after __init__
        setattr_(self, "layers", layers)
        setattr_(self, "input_bounds", pair)
        setattr_(self, "input_scaling", input_scaling)
        setattr_(self, "output_scaling", output_scaling)
        setattr_(self, "input_shape", tuple(int(d) for d in input_shape) if input_shape else None)
        setattr_(self, "input_names", tuple(input_names) if input_names else None)
        setattr_(self, "output_names", tuple(output_names) if output_names else None)
        setattr_(self, "source", source)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("NetworkDefinition is immutable; use with_input_bounds() or build a new one")

    # ------------------------------------------------------------------ shape
    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_inputs

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_outputs

    @property
    def n_relu_neurons(self) -> int:
        return sum(int(layer.relu_mask.sum()) for layer in self.canonical_layers)

    # ---------------------------------------------------------------- bounds
    @property
    def input_lower(self) -> np.ndarray:
        """Lower input bounds (``-inf`` where absent)."""
        return self.input_bounds[0] if self.input_bounds else np.full(self.n_inputs, -np.inf)

    @property
    def input_upper(self) -> np.ndarray:
        """Upper input bounds (``+inf`` where absent)."""
        return self.input_bounds[1] if self.input_bounds else np.full(self.n_inputs, np.inf)

    def with_input_bounds(self, input_bounds: object) -> NetworkDefinition:
        """A copy of this network with other input bounds (same accepted forms)."""
        return NetworkDefinition(
            self.layers,
            input_bounds,
            self.input_scaling,
            self.output_scaling,
            self.input_shape,
            self.input_names,
            self.output_names,
            self.source,
        )

    # --------------------------------------------------------------- forward
    def evaluate(self, inputs: object) -> np.ndarray:
        """Batched forward pass in the user's units: ``(batch, n_in) -> (batch, n_out)``.

        A 1-D input is treated as one sample and gives a 1-D output.
        """
        values, single = self._as_batch(inputs)
        if self.input_scaling is not None:
            values = self.input_scaling.scale(values)
        for layer in self.layers:
            values = layer.forward(values)
        if self.output_scaling is not None:
            values = self.output_scaling.unscale(values)
        return values[0] if single else values

    def preactivations(self, inputs: object) -> list[np.ndarray]:
        """Pre-activation values of every canonical layer for a batch of inputs."""
        values, _ = self._as_batch(inputs)
        result = []
        for layer in self.canonical_layers:
            pre = layer.preactivation(values)
            result.append(pre)
            values = layer.activate(pre)
        return result

    def _as_batch(self, inputs: object) -> tuple[np.ndarray, bool]:
        """``inputs`` as a ``(batch, n_inputs)`` float array; refuses NaN, Inf and non-numbers."""
        try:
            values = np.asarray(inputs, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidValueError(
                f"network inputs must be numbers of shape (batch, {self.n_inputs}) or ({self.n_inputs},): {error}"
            ) from None
        single = values.ndim == 1
        if single:
            values = values[None, :]
        if values.ndim != 2 or values.shape[1] != self.n_inputs:
            raise ShapeMismatchError(
                f"expected inputs of shape (batch, {self.n_inputs}) or ({self.n_inputs},), got {values.shape}"
            )
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            row, col = (int(v) for v in bad[0])
            where = f"input {col}" if single else f"sample {row}, input {col}"
            raise InvalidValueError(
                f"network inputs contain {values[row, col]} ({where}; {len(bad)} non-finite value(s) "
                "in all): the forward pass needs finite numbers"
            )
        return values, single

    # ------------------------------------------------------------- canonical
    @property
    def canonical_layers(self) -> tuple[Layer, ...]:
        """Layers with the scalings folded in and every activation lowered to ReLU/linear.

        Canonical layers are what bounds and formulations work on: a chain from user
        inputs to user outputs whose neurons are ``relu``, ``linear`` or smooth, plus
        :class:`MaxLayer` s.  LeakyReLU, PReLU and Clip neurons are rewritten exactly with
        ReLUs (:func:`lower_layer`), the recombination being folded into the next layer's
        affine map.  The input scaling is folded into the first affine map; the output
        scaling into the last layer when it is linear, otherwise it is appended as a
        diagonal linear layer.  Folding never changes a ReLU's pre-activation, so bounds
        computed on the canonical chain hold for the original network.
        :attr:`canonical_origin` says which of :attr:`layers` each one comes from.
        """
        return self._canonical.layers

    @property
    def canonical_origin(self) -> tuple[int, ...]:
        """For each canonical layer, the index in :attr:`layers` of the layer it computes.

        A lowered two-sided clip gives two canonical layers with the same origin; the
        recombination layer a lowered last layer needs and an appended output-scaling
        layer belong to the last layer.

        >>> net = NetworkDefinition([DenseLayer(np.eye(2), np.zeros(2), "clip", "c", clip_low=0, clip_high=1),
        ...                          DenseLayer(np.ones((1, 2)), [0.0], "linear", "out")])
        >>> net.canonical_origin, net.canonical_indices("c")
        ((0, 0, 1), (0, 1))
        """
        return self._canonical.origin

    @cached_property
    def _canonical(self) -> Canonical:
        return canonicalize(self.layers, self.input_scaling, self.output_scaling)

    # ------------------------------------------------------------ user layers
    def layer_index(self, key: object) -> int:
        """The index in :attr:`layers` of ``key``: that index itself, or a layer's name.

        Names are those the reader gave (ONNX node names, Keras layer names); see
        :meth:`summary`.  A name without ``:`` also matches the layers named ``name:...``
        (Keras layers read through the ONNX translation are named ``layer:op``).  A key that
        names no layer (or two) raises :class:`~pyomo_relu.errors.UnknownLayerError` listing
        the valid keys.
        """
        n = len(self.layers)
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            if 0 <= int(key) < n:
                return int(key)
            raise UnknownLayerError(
                f"layer {int(key)} does not exist: the network has {n} layer(s), numbered 0 .. {n - 1} "
                f"as in net.layers (before lowering); valid keys: {self._layer_keys()}"
            )
        if isinstance(key, str):
            matches = [i for i, layer in enumerate(self.layers) if layer.name == key]
            if not matches:  # "fc" for "fc:Relu": Keras layers read through ONNX are named layer:op
                matches = [i for i, layer in enumerate(self.layers) if layer.name.split(":")[0] == key]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise UnknownLayerError(f"layer name {key!r} is ambiguous: layers {matches} all have it; use the index")
            close = difflib.get_close_matches(key, [layer.name for layer in self.layers if layer.name], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownLayerError(f"no layer is named {key!r}{hint}; valid keys: {self._layer_keys()}")
        raise UnknownLayerError(
            f"a layer is named by its index in net.layers or its name, not by {type(key).__name__} "
            f"{key!r}; valid keys: {self._layer_keys()}"
        )

    def canonical_indices(self, key: object) -> tuple[int, ...]:
        """The canonical layers that layer ``key`` (an index or a name, see :meth:`layer_index`) became."""
        index = self.layer_index(key)
        return tuple(k for k, origin in enumerate(self.canonical_origin) if origin == index)

    def _layer_keys(self) -> str:
        return ", ".join(f"{i}" + (f" ({layer.name!r})" if layer.name else "") for i, layer in enumerate(self.layers))

    @property
    def has_smooth_activations(self) -> bool:
        """True when some neuron is sigmoid, tanh or softplus (no MILP formulation)."""
        return any(layer.smooth_mask.any() for layer in self.canonical_layers)

    # ------------------------------------------------------------------ hash
    def content_hash(self) -> str:
        """SHA-256 of the structure, weights and scalings (not the input bounds)."""
        return self._hash

    @cached_property
    def _hash(self) -> str:
        digest = hashlib.sha256()
        for layer in self.layers:
            for part in layer.hash_parts():
                digest.update(part)
        for scaling in (self.input_scaling, self.output_scaling):
            digest.update(b"scaling:")
            if scaling is not None:
                digest.update(scaling.offset.astype("<f8").tobytes())
                digest.update(scaling.factor.astype("<f8").tobytes())
        return digest.hexdigest()

    def summary(self) -> str:
        """A table of :attr:`layers`: index, name, kind, sizes and the canonical layers each became.

        The index and the name are the keys of per-layer choices such as
        ``build(formulation={"default": "bigm", 1: "extended"})``.

        >>> net = NetworkDefinition([DenseLayer(np.eye(2), np.zeros(2), "relu", "hidden"),
        ...                          DenseLayer(np.eye(2), np.zeros(2), "clip", "relu6", clip_low=0, clip_high=6),
        ...                          DenseLayer(np.ones((1, 2)), [0.0], "linear", "out")])
        >>> print(net.summary())
        NetworkDefinition: 2 inputs -> 1 output, 3 layers (4 canonical)
        index  name    kind          inputs  outputs  canonical
            0  hidden  dense relu         2        2  0
            1  relu6   dense clip         2        2  1-2
            2  out     dense linear       2        1  3
        """
        counts: dict[int, list[int]] = {}
        for k, origin in enumerate(self.canonical_origin):
            counts.setdefault(origin, []).append(k)
        rows = [("index", "name", "kind", "inputs", "outputs", "canonical")]
        for index, layer in enumerate(self.layers):
            ks = counts[index]
            rows.append(
                (
                    str(index),
                    layer.name or "-",
                    _layer_kind(layer),
                    str(layer.n_inputs),
                    str(layer.n_outputs),
                    f"{ks[0]}" if len(ks) == 1 else f"{ks[0]}-{ks[-1]}",
                )
            )
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        right = (True, False, False, True, True, False)
        lines = [
            f"NetworkDefinition: {self.n_inputs} input{'s' * (self.n_inputs != 1)} -> "
            f"{self.n_outputs} output{'s' * (self.n_outputs != 1)}, {len(self.layers)} "
            f"layer{'s' * (len(self.layers) != 1)} ({len(self.canonical_layers)} canonical)"
        ]
        for row in rows:
            cells = [cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right)]
            lines.append("  ".join(cells).rstrip())
        for what, scaling in (("input", self.input_scaling), ("output", self.output_scaling)):
            if scaling is not None:
                lines.append(f"{what} scaling: {scaling.size} offsets and factors (folded into the canonical layers)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        sizes = "-".join([str(self.n_inputs)] + [str(layer.n_outputs) for layer in self.layers])
        return f"<NetworkDefinition {sizes} hash={self.content_hash()[:12]}>"


def _layer_kind(layer: Layer) -> str:
    """``dense relu``, ``dense mixed (relu 8, linear 2)`` or ``max (4 groups of 9 rows)``."""
    if isinstance(layer, MaxLayer):
        return f"max ({layer.n_outputs} groups of {layer.n_pre} rows)"
    if layer.activation != "mixed":
        return f"dense {layer.activation}"
    names, counts = np.unique(layer.kinds, return_counts=True)
    return "dense mixed (" + ", ".join(f"{n} {c}" for n, c in zip(names.tolist(), counts.tolist())) + ")"
