r"""IDAES integration: a ReLU network as an IDAES surrogate (``SurrogateBlock``).

:class:`ReLUSurrogate` is an IDAES ``SurrogateBase`` whose ``populate_block`` builds a
:class:`~pyomo_relu.block.ReLUNetBlock` (any formulation of :mod:`pyomo_relu.formulations`,
any bounds method) inside the ``SurrogateBlock``::

    from idaes.core.surrogate.surrogate_block import SurrogateBlock
    from pyomo_relu.idaes import ReLUSurrogate

    surrogate = ReLUSurrogate.from_onnx(
        "conversion.onnx", input_labels=["T", "F"], output_labels=["X"],
        input_bounds={"T": (298.15, 320.0), "F": (5e-4, 2e-3)},
        input_scaling={"T": (309.0, 11.0), "F": (1.25e-3, 7.5e-4)})
    m.fs.conversion_nn = SurrogateBlock()
    m.fs.conversion_nn.build_model(
        surrogate, input_vars=[T, F], output_vars=[X],
        formulation="gdp.hull", bounds=["interval", "crown"])
    m.fs.conversion_nn.initialize()          # forward pass: every variable, no solver

What the block holds (names chosen like IDAES' own OMLT surrogates):

* ``nn``: the :class:`~pyomo_relu.block.ReLUNetBlock` of the network *without* its
  scalings (:attr:`ReLUSurrogateMixin.core_network`), with its own dimensionless,
  bounded ``nn.inputs[i]`` and ``nn.outputs[j]`` holding the *scaled* values (the
  network's weights are applied to numbers of order one, as it was trained);
* ``input_surrogate_ties[label]``: ``nn.inputs[i] == (x / units(x) - offset) / factor``,
  or with ``convert(x, to_units=u) / u`` when the surrogate declares units ``u`` for the
  input; ``output_surrogate_ties[label]``: ``y / units(y) == factor * nn.outputs[j] +
  offset`` likewise.  Dividing by the units makes every tie dimensionless, so
  ``assert_units_consistent`` passes on a flowsheet whose inputs are in K and m^3/s;
* every disjunction, big-M row and copy refers only to variables of ``nn``, which are
  all bounded: ``gdp.hull`` works even when the flowsheet variable (an IDAES state
  variable with no upper bound, say) is unbounded.

Keeping the scaling in the ties rather than folding it into the first layer (as a plain
:class:`~pyomo_relu.block.ReLUNetBlock` does) matters in flowsheets: folded weights
multiply SI flows of ``1e-3 m^3/s`` by ``1e3``-``1e4`` and the MILP inherits the bad
conditioning.

The network's input box is the surrogate's ``input_bounds`` intersected with the bounds
the flowsheet variables have *when the block is built* (fixed values are not used, so
fixing and unfixing a decision later keeps the big-M values valid).

``initialize()`` is attached to the ``SurrogateBlock`` (and is
:func:`initialize_surrogate_block`): a forward pass at the current values of the input
variables sets every network variable, binary, disjunct indicator and the output
variables, so the surrogate is consistent before any solve, without a solver.
:func:`degrees_of_freedom_without_binaries` counts the
degrees of freedom with each surrogate counted as the ``n_outputs`` equations
``y = f(x)`` it stands for; IDAES' ``degrees_of_freedom`` also counts the free ``post``
variables (and, for ``gdp.hull``, the disaggregated ones) of every unstable neuron.

**Importing without IDAES.**  ``import pyomo_relu.idaes`` never imports IDAES.  The
class ``ReLUSurrogate`` derives from IDAES' ``SurrogateBase``, so it is created on first
access (``from pyomo_relu.idaes import ReLUSurrogate``, module ``__getattr__``) from
:class:`ReLUSurrogateMixin`, which holds all the code; without IDAES that access raises
:class:`~pyomo_relu.errors.OptionalDependencyError` (an ``ImportError``, also named
``IdaesNotInstalledError`` here) saying what to install.  The helper
functions need only Pyomo.
"""

from __future__ import annotations

import json
import logging
import math
import types
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from pyomo_relu.errors import MissingBoundsError, OptionalDependencyError, PyomoReluError
from pyomo_relu.idaes_block import (  # noqa: F401  re-exported
    _as_scaling,
    _labels,
    _SurrogateLinks,
    _to_network_value,
    _units_map,
    _units_str,
    add_surrogate_ties,
    degrees_of_freedom_without_binaries,
    initialize_surrogate_block,
)
from pyomo_relu.network import NetworkDefinition, Scaling, network_from_dict, network_to_dict
from pyomo_relu.options import check_options, strict_keywords

logger = logging.getLogger(__name__)

__all__ = [
    "IdaesNotInstalledError",
    "ReLUSurrogate",
    "ReLUSurrogateMixin",
    "degrees_of_freedom_without_binaries",
    "initialize_surrogate_block",
    "network_from_dict",
    "network_to_dict",
]

#: ``"format"`` field of the JSON files written by :meth:`ReLUSurrogateMixin.save`.
FILE_FORMAT = "pyomo_relu.idaes.ReLUSurrogate"
FILE_VERSION = 1

#: IDAES ``OMLTSurrogate.Formulation`` names that have a pyomo_relu equivalent.
_IDAES_FORMULATIONS = {"RELU_BIGM": "bigm", "RELU_COMPLEMENTARITY": "complementarity"}


#: What accessing :class:`ReLUSurrogate` raises without IDAES (the package's one error for missing extras).
IdaesNotInstalledError = OptionalDependencyError


# ---------------------------------------------------------------------- class
#: What ``SurrogateBlock.build_model(surrogate, ...)`` passes on to :meth:`ReLUSurrogateMixin.populate_block`.
POPULATE_OPTIONS = ("formulation", "bounds", "initialize")


class ReLUSurrogateMixin:
    """The implementation of :class:`ReLUSurrogate` (which adds IDAES' ``SurrogateBase``).

    Args:
        network: the :class:`~pyomo_relu.network.NetworkDefinition`, mapping the inputs
            (after ``input_scaling``) to the outputs (before ``output_scaling``).
        input_labels: names of the inputs, in the network's order (default: the
            network's ``input_names``, else ``x0, x1, ...``).
        output_labels: names of the outputs, likewise (``output_names``, else ``y0, ...``).
        input_bounds: dict ``label -> (lb, ub)`` in the flowsheet's units, as IDAES does
            (default: the network's own input box).  ``None`` for an absent side; a
            missing bound is taken from the flowsheet variable when the block is built.
        input_scaling: the offset/factor scaling of the inputs' training data,
            ``scaled = (value - offset) / factor``: a :class:`~pyomo_relu.network.Scaling`,
            a dict ``label -> (offset, factor)``, a pair ``(offsets, factors)`` or an IDAES
            ``OffsetScaler``.  Refused when the network already has that scaling.
        output_scaling: the same for the outputs.
        input_units: optional dict ``label -> units`` (a Pyomo unit or a
            string such as ``"m^3/s"``) the network was trained in; the ties then
            convert the flowsheet variable to these units (multiplicative conversions
            only: not degC to K).  Without them the values are taken in the units of
            the flowsheet variable (IDAES uses SI base units throughout).
        output_units: the same for the outputs.
    """

    if TYPE_CHECKING:  # provided by IDAES' SurrogateBase

        def input_labels(self) -> list[Any]: ...

        def output_labels(self) -> list[Any]: ...

        def n_outputs(self) -> int: ...

    @strict_keywords
    def __init__(
        self,
        network: NetworkDefinition,
        input_labels: Sequence[Any] | None = None,
        output_labels: Sequence[Any] | None = None,
        input_bounds: Mapping[Any, tuple] | None = None,
        input_scaling: Any = None,
        output_scaling: Any = None,
        input_units: Mapping[Any, Any] | None = None,
        output_units: Mapping[Any, Any] | None = None,
    ) -> None:
        if not isinstance(network, NetworkDefinition):
            raise PyomoReluError(
                f"ReLUSurrogate needs a NetworkDefinition, got {type(network).__name__}; use "
                "ReLUSurrogate.from_onnx / from_keras for model files"
            )
        inputs = _labels(input_labels, network.input_names, network.n_inputs, "x", "input")
        outputs = _labels(output_labels, network.output_names, network.n_outputs, "y", "output")
        scale_in = _as_scaling(input_scaling, inputs, "input_scaling")
        scale_out = _as_scaling(output_scaling, outputs, "output_scaling")
        for given, existing, what in (
            (scale_in, network.input_scaling, "input"),
            (scale_out, network.output_scaling, "output"),
        ):
            if given is not None and existing is not None:
                raise PyomoReluError(f"the network already has an {what} scaling; do not pass {what}_scaling as well")
        lower, upper = network.input_lower.copy(), network.input_upper.copy()
        if input_bounds is not None:
            unknown = [k for k in input_bounds if k not in inputs]
            if unknown:
                raise PyomoReluError(f"input_bounds names {unknown}, which are not input labels {inputs}")
            for i, label in enumerate(inputs):
                lb, ub = input_bounds.get(label, (None, None))
                lower[i] = -np.inf if lb is None else float(lb)
                upper[i] = np.inf if ub is None else float(ub)
        network = NetworkDefinition(
            network.layers,
            (lower, upper),
            scale_in if scale_in is not None else network.input_scaling,
            scale_out if scale_out is not None else network.output_scaling,
            network.input_shape,
            None,
            None,
            network.source,
        )
        self._network = network
        self._core: NetworkDefinition | None = None
        self._input_units = _units_map(input_units, inputs, "input_units")
        self._output_units = _units_map(output_units, outputs, "output_units")
        bounds = {
            label: (float(lo), float(hi))
            for label, lo, hi in zip(inputs, lower, upper)
            if np.isfinite(lo) and np.isfinite(hi)
        }
        # SurrogateBase stores the labels and refuses duplicates; it also wants a bounds
        # dict naming every label, so the finite pairs are stored after it
        cast(Any, super()).__init__(input_labels=inputs, output_labels=outputs, input_bounds=None)
        self._input_bounds = bounds or None

    # ------------------------------------------------------------ constructors
    @classmethod
    @strict_keywords
    def from_network(
        cls,
        network: NetworkDefinition,
        input_labels: Sequence[Any] | None = None,
        output_labels: Sequence[Any] | None = None,
        input_bounds: Mapping | None = None,
        **kwargs: Any,
    ) -> Any:
        """The same as the constructor (named like the other constructors)."""
        return cls(network, input_labels, output_labels, input_bounds, **kwargs)

    @classmethod
    @strict_keywords
    def from_onnx(
        cls,
        path: Any,
        input_labels: Sequence[Any],
        output_labels: Sequence[Any],
        input_bounds: Mapping | None = None,
        *,
        input_scaling: Any = None,
        output_scaling: Any = None,
        drop_softmax: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Read an ONNX file (or ``ModelProto``) with :func:`~pyomo_relu.io.onnx.load_onnx`."""
        from pyomo_relu.io.onnx import load_onnx

        net = load_onnx(path, drop_softmax=drop_softmax)
        return cls(net, input_labels, output_labels, input_bounds, input_scaling, output_scaling, **kwargs)

    @classmethod
    @strict_keywords
    def from_keras(
        cls,
        model_or_path: Any,
        input_labels: Sequence[Any],
        output_labels: Sequence[Any],
        input_bounds: Mapping | None = None,
        *,
        input_scaling: Any = None,
        output_scaling: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Read a Keras 3 model or ``.keras``/``.h5`` file with :func:`~pyomo_relu.io.keras.load_keras`."""
        from pyomo_relu.io.keras import load_keras

        net = load_keras(model_or_path)
        return cls(net, input_labels, output_labels, input_bounds, input_scaling, output_scaling, **kwargs)

    @classmethod
    @strict_keywords
    def from_idaes(
        cls, location: Any, model_name: str = "idaes_keras_model", *, format: str | None = None, **kwargs: Any
    ) -> Any:
        """Read a surrogate saved by IDAES: a ``KerasSurrogate`` folder or an ``ONNXSurrogate`` pair.

        ``<location>/<model_name>.keras`` + ``<location>/idaes_info.json``, or
        ``<location>/<model_name>.onnx`` + ``<location>/<model_name>_idaes_info.json``,
        with IDAES's scalers, labels and input bounds (:mod:`pyomo_relu.idaes_files`).
        ``format`` (``"keras"``/``"onnx"``) picks one when both are there; ``kwargs``
        (``input_units``, ``output_units``) go to the constructor.
        """
        from pyomo_relu.idaes_files import read_idaes

        spec = read_idaes(location, model_name, format)
        return cls(
            spec["network"],
            spec["input_labels"],
            spec["output_labels"],
            spec["input_bounds"],
            spec["input_scaling"],
            spec["output_scaling"],
            **kwargs,
        )

    def to_idaes(self, location: Any, model_name: str) -> tuple[str, str]:
        """Write IDAES's ONNX pair, which ``ONNXSurrogate.load_onnx_model(location, model_name)`` reads.

        ``<model_name>.onnx`` holds the network without its scalings (doubles, so
        :meth:`from_idaes` gives the same network back), ``<model_name>_idaes_info.json``
        the labels, input bounds and the scalings as IDAES ``OffsetScaler`` dicts.
        Returns the two paths.
        """
        from pyomo_relu.idaes_files import write_idaes_onnx

        net = self._network
        lower, upper = net.input_lower, net.input_upper
        bounds = {label: (lower[i], upper[i]) for i, label in enumerate(self.input_labels())}

        def pair(s: Scaling | None) -> tuple[np.ndarray, np.ndarray] | None:
            return None if s is None else (s.offset, s.factor)

        return write_idaes_onnx(
            location,
            model_name,
            self.core_network,
            self.input_labels(),
            self.output_labels(),
            bounds,
            pair(net.input_scaling),
            pair(net.output_scaling),
        )

    # ------------------------------------------------------------- properties
    @property
    def network(self) -> NetworkDefinition:
        """The network, with the surrogate's scalings and input box."""
        return self._network

    def input_units(self) -> dict[Any, Any]:
        """Declared units per input label (``None`` where the variable's own units are used)."""
        return dict(self._input_units)

    def output_units(self) -> dict[Any, Any]:
        return dict(self._output_units)

    # ----------------------------------------------------------- IDAES interface
    def populate_block(self, block: Any, additional_options: dict[str, Any] | None = None) -> None:
        """Build the network in ``block`` (a ``SurrogateBlock``); called by ``build_model``.

        Options (popped from ``additional_options``, so ``build_model`` does not complain):
        ``formulation`` (a name of :data:`pyomo_relu.formulations.FORMULATIONS`, a
        ``(name, options)`` pair, a per-layer dict, or IDAES' ``Formulation.RELU_BIGM`` /
        ``RELU_COMPLEMENTARITY``; default ``"bigm"``), ``bounds`` (a bounds method, a list
        of them, or a :class:`~pyomo_relu.bounds.Bounds`; default ``"auto"``) and
        ``initialize`` (default ``True``: :func:`initialize_surrogate_block` at once).
        """
        from pyomo_relu.block import ReLUNetBlock
        from pyomo_relu.formulations import layer_formulations

        options = additional_options if additional_options is not None else {}
        check_options(options, POPULATE_OPTIONS, "ReLUSurrogate build_model()")
        formulation = _formulation_spec(options.pop("formulation", "bigm"))
        bounds = options.pop("bounds", "auto")
        initialize = bool(options.pop("initialize", True))
        layer_formulations(formulation, self.core_network)  # bad choices fail before anything is added
        if not hasattr(block, "input_vars_as_dict"):
            raise PyomoReluError(
                "populate_block expects an IDAES SurrogateBlock: call "
                "SurrogateBlock().build_model(surrogate, input_vars=..., output_vars=...)"
            )
        in_labels, out_labels = self.input_labels(), self.output_labels()
        inputs, outputs = block.input_vars_as_dict(), block.output_vars_as_dict()
        links = _SurrogateLinks(
            [inputs[label] for label in in_labels],
            [outputs[label] for label in out_labels],
            [self._input_units.get(label) for label in in_labels],
            [self._output_units.get(label) for label in out_labels],
            self._network.input_scaling,
            self._network.output_scaling,
        )
        lower, upper = self._scaled_box(links)
        block.nn = ReLUNetBlock()
        try:
            block.nn.build(
                self.core_network,
                formulation=formulation,
                bounds=bounds,
                input_bounds=list(zip(lower, upper)),
                initialize=False,
            )
        except Exception:
            block.del_component(block.nn)
            raise
        add_surrogate_ties(block, links, in_labels, out_labels)
        if getattr(block, "initialize", None) is None:
            # a bound method: Pyomo's clone() deep-copies it along with the block
            block.initialize = types.MethodType(initialize_surrogate_block, block)
        if initialize:
            initialize_surrogate_block(block)

    @property
    def core_network(self) -> NetworkDefinition:
        """The network without its scalings: what the block's ``nn`` holds (scaled inputs/outputs).

        A :class:`~pyomo_relu.bounds.Bounds` passed as ``bounds=`` to ``build_model`` must be
        computed for this network, over the scaled input box.
        """
        if self._core is None:
            net = self._network
            self._core = NetworkDefinition(net.layers, input_shape=net.input_shape, source=net.source)
        return self._core

    def _scaled_box(self, links: _SurrogateLinks) -> tuple[np.ndarray, np.ndarray]:
        """The network's box in scaled units: the surrogate's bounds and the variables' own.

        Variable bounds are used, fixed values are not (fixing and unfixing a decision
        later must keep the neuron bounds valid).
        """
        lower, upper = self._network.input_lower.copy(), self._network.input_upper.copy()
        for i, (var, unit) in enumerate(zip(links.input_vars, links.input_units)):
            if var.lb is not None:
                lower[i] = max(lower[i], _to_network_value(var, var.lb, unit))
            if var.ub is not None:
                upper[i] = min(upper[i], _to_network_value(var, var.ub, unit))
            if not (np.isfinite(lower[i]) and np.isfinite(upper[i])):
                side = "lower" if not np.isfinite(lower[i]) else "upper"
                raise MissingBoundsError(
                    f"input {self.input_labels()[i]!r} (variable {var.name}) has no {side} bound: give "
                    "the surrogate input_bounds={label: (lb, ub)} or bound the variable"
                )
            if lower[i] > upper[i]:
                hint = (
                    " (SurrogateBlock copies the surrogate's bounds without converting units: with "
                    "input_units other than the variable's, build with use_surrogate_bounds=False)"
                    if unit is not None
                    else ""
                )
                raise MissingBoundsError(
                    f"input {self.input_labels()[i]!r} (variable {var.name}): the surrogate's box and "
                    f"the variable's bounds do not overlap ({lower[i]} > {upper[i]}){hint}"
                )
        a = (lower - links.input_offset) / links.input_factor
        b = (upper - links.input_offset) / links.input_factor
        return np.minimum(a, b), np.maximum(a, b)

    def evaluate_surrogate(self, inputs: Any) -> Any:
        """Outputs at the rows of ``inputs`` (a DataFrame with a column per input label).

        Returns a DataFrame with one column per output label and the index of ``inputs``,
        computed by :meth:`NetworkDefinition.evaluate` (scalings included).
        """
        import pandas as pd

        labels = self.input_labels()
        missing = [label for label in labels if label not in inputs.columns]
        if missing:
            raise PyomoReluError(f"evaluate_surrogate: the DataFrame has no column for inputs {missing}")
        x = inputs[labels].to_numpy(dtype=np.float64)
        y = self._network.evaluate(x) if len(x) else np.empty((0, self.n_outputs()))
        return pd.DataFrame(y, columns=self.output_labels(), index=inputs.index, dtype="float64")

    # -------------------------------------------------------------- save/load
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the surrogate, as JSON-ready data (no pickle)."""
        lower, upper = self._network.input_lower, self._network.input_upper
        return {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "input_labels": self.input_labels(),
            "output_labels": self.output_labels(),
            "input_bounds": [[_json_float(lo), _json_float(hi)] for lo, hi in zip(lower, upper)],
            "input_units": [_units_str(self._input_units.get(k)) for k in self.input_labels()],
            "output_units": [_units_str(self._output_units.get(k)) for k in self.output_labels()],
            "network": network_to_dict(self._network),
            "network_hash": self._network.content_hash(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """Rebuild a surrogate written by :meth:`to_dict`; checks the network's hash."""
        if data.get("format") != FILE_FORMAT:
            raise PyomoReluError(f"not a {FILE_FORMAT} file (format field {data.get('format')!r})")
        if int(data.get("version", 0)) > FILE_VERSION:
            raise PyomoReluError(f"file version {data['version']} is newer than this pyomo_relu reads ({FILE_VERSION})")
        inputs, outputs = list(data["input_labels"]), list(data["output_labels"])
        network = network_from_dict(data["network"])
        if network.content_hash() != data["network_hash"]:
            raise PyomoReluError(
                "the network read from the file does not match its recorded hash: the file was modified or damaged"
            )
        bounds = {label: tuple(pair) for label, pair in zip(inputs, data["input_bounds"])}
        in_units = {k: u for k, u in zip(inputs, data.get("input_units") or []) if u is not None}
        out_units = {k: u for k, u in zip(outputs, data.get("output_units") or []) if u is not None}
        return cls(network, inputs, outputs, bounds, input_units=in_units or None, output_units=out_units or None)

    def save(self, strm: Any) -> None:
        """Write the surrogate to a text stream as JSON (IDAES' ``save_to_file`` uses this)."""
        json.dump(self.to_dict(), strm, indent=1)

    @classmethod
    def load(cls, strm: Any) -> Any:
        """Read a surrogate written by :meth:`save` (IDAES' ``load_from_file`` uses this)."""
        return cls.from_dict(json.load(strm))

    def __repr__(self) -> str:
        return f"<ReLUSurrogate {self.input_labels()} -> {self.output_labels()} {self._network!r}>"


# -------------------------------------------------------------- conversions
def _formulation_spec(formulation: Any) -> Any:
    """Map IDAES' ``OMLTSurrogate.Formulation`` members to our names; pass the rest through."""
    if isinstance(formulation, Enum):
        name = _IDAES_FORMULATIONS.get(formulation.name)
        if name is None:
            raise PyomoReluError(
                f"formulation {formulation.name} is a smooth-activation formulation of OMLT; a "
                "ReLU network needs a MILP one: 'bigm', 'gdp.hull', 'partition', ... (see "
                "pyomo_relu.formulations.FORMULATIONS)"
            )
        return name
    return formulation


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# ------------------------------------------------------------- lazy class
if TYPE_CHECKING:  # made on first access (module __getattr__): the mixin plus IDAES' SurrogateBase
    ReLUSurrogate = ReLUSurrogateMixin
_CLASSES: dict[str, type] = {}


def _surrogate_class() -> type:
    """Create ``ReLUSurrogate`` (mixin + IDAES ``SurrogateBase``) on first use."""
    if "ReLUSurrogate" not in _CLASSES:
        try:
            from idaes.core.surrogate.base.surrogate_base import SurrogateBase
        except ImportError as exc:
            raise OptionalDependencyError("idaes-pse", "pyomo_relu.idaes.ReLUSurrogate", "idaes") from exc
        cls = type(
            "ReLUSurrogate",
            (ReLUSurrogateMixin, SurrogateBase),
            {
                "__module__": __name__,
                "__qualname__": "ReLUSurrogate",
                "__doc__": "An IDAES surrogate (``SurrogateBase``) for a ReLU network.\n\n"
                + (ReLUSurrogateMixin.__doc__ or "").split("\n", 1)[1],
            },
        )
        _CLASSES["ReLUSurrogate"] = cls
    return _CLASSES["ReLUSurrogate"]


def __getattr__(name: str) -> Any:
    if name == "ReLUSurrogate":
        return _surrogate_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
