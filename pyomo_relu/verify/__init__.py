"""Verification of trained ReLU networks: VNN-LIB properties and optimal adversaries.

* :func:`read_vnnlib` / :func:`parse_vnnlib` read a property into a :class:`Specification`;
* :func:`verify` decides it (``"sat"``, ``"unsat"`` or ``"unknown"``), with
  :func:`check_counterexample` as the reference check of any counterexample;
* :func:`min_margin` computes the worst-case classification margin over an
  ``l_inf`` or ``l_1`` ball (the optimal adversary).

The function :func:`verify` lives in :mod:`pyomo_relu.verify.decide` and is imported here:
``from pyomo_relu.verify import verify``.  The command line is ``pyomo-relu verify MODEL.onnx PROP.vnnlib``.
"""

from __future__ import annotations

from pyomo_relu.verify.adversary import AdversaryResult, min_margin, pgd_attack, robustness_property
from pyomo_relu.verify.decide import verify
from pyomo_relu.verify.results import CounterexampleCheck, VerifyResult, check_counterexample
from pyomo_relu.verify.vnnlib import (
    Case,
    Polytope,
    Specification,
    VnnlibError,
    format_counterexample,
    parse_counterexample,
    parse_vnnlib,
    read_counterexample,
    read_vnnlib,
)

__all__ = [
    "AdversaryResult",
    "Case",
    "CounterexampleCheck",
    "Polytope",
    "Specification",
    "VerifyResult",
    "VnnlibError",
    "check_counterexample",
    "format_counterexample",
    "min_margin",
    "parse_counterexample",
    "parse_vnnlib",
    "robustness_property",
    "pgd_attack",
    "read_counterexample",
    "read_vnnlib",
    "verify",
]
