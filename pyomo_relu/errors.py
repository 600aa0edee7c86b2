"""Exceptions raised by pyomo_relu.

Every error derives from :class:`PyomoReluError`, so ``except PyomoReluError`` catches
everything the package raises on purpose.  Messages say where the problem is (file, node,
layer, variable) and what to do about it.
"""

from __future__ import annotations


class PyomoReluError(Exception):
    """Base class of every error raised by pyomo_relu."""


class InvalidNetworkError(PyomoReluError, ValueError):
    """The network description itself is inconsistent (NaN weights, lb > ub, ...)."""


class ShapeMismatchError(InvalidNetworkError):
    """Two pieces that must fit together do not (layer sizes, variables, bounds)."""


class UnsupportedOperatorError(PyomoReluError, ValueError):
    """A model file uses an operator or layer that pyomo_relu cannot represent."""


class DenseTooLargeError(UnsupportedOperatorError):
    """A reader would need a dense affine map larger than its limit
    (``pyomo_relu.io.onnx.tensor.MAX_DENSE_ENTRIES`` coefficients) for an operator without a
    sparse implementation; the message names the node."""


class ModelLoadError(PyomoReluError, ValueError):
    """A model file cannot be read at all (missing, corrupt, wrong format)."""


class MissingBoundsError(PyomoReluError, ValueError):
    """An input (or output) needs finite bounds for the chosen formulation but has none."""


class BoundsMismatchError(PyomoReluError, ValueError):
    """Saved bounds were computed for another network or another input box."""


class SolverError(PyomoReluError, RuntimeError):
    """A solver is unknown, not installed, or failed in an unexpected way."""


class UsageError(PyomoReluError):
    """A command-line option of ``pyomo-relu`` is malformed (the CLI exits with status 2)."""


class UnknownOptionError(PyomoReluError, TypeError, KeyError):
    """An option name that the function does not take (a typo, usually); the message lists the valid ones.

    Also a ``TypeError`` (what Python raises for an unexpected keyword) and a ``KeyError``.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidValueError(PyomoReluError, ValueError):
    """A value given to pyomo_relu (an input, a bound, a constant) is NaN, infinite where a
    finite number is needed, or not a number; the message names the input or entry."""


class UnknownLayerError(PyomoReluError, ValueError):
    """A per-layer choice names a layer the network does not have (the message lists the valid keys)."""


class EmptyBoxError(PyomoReluError, ValueError):
    """Bounds tightening proved that the input box, the output bounds (and the model's
    constraints, where used) admit no point of the network."""


class OptionalDependencyError(PyomoReluError, ImportError):
    """An optional extra (keras, torch, scikit-learn, idaes-pse, pyscipopt, dask, ...) is needed
    for what was asked but is not installed.  The message names the ``pip install`` to run."""

    def __init__(self, package: str, needed_for: str, extra: str | None = None) -> None:
        hint = f"pip install 'pyomo_relu[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{package} is needed for {needed_for} but is not installed; run: {hint}")
        self.package = package
        self.extra = extra


class VnnlibError(PyomoReluError, ValueError):
    """A VNN-LIB or counterexample file is malformed or outside the supported subset (the message names the line)."""


class NotBulkableError(PyomoReluError):
    """The model has something the bulk hand-off to HiGHS does not write (the message says what);
    :func:`pyomo_relu.solve` then hands it over through Pyomo's interface instead."""
