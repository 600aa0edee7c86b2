"""HiGHS's LP relaxation of a model with network blocks: the first LP value of its MIP.

:func:`first_lp` hands the model over with :func:`pyomo_relu.handoff.model_arrays`
(``relaxed=True``: big-M layers as their triangle rows, the same LP optimum) and starts HiGHS
from the basis of :mod:`pyomo_relu.root_basis` (:func:`pass_basis`); see
:mod:`pyomo_relu.handoff` for why.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pyomo_relu.handoff import ModelArrays, _status, highs_from_arrays, model_arrays, run_highs

logger = logging.getLogger(__name__)

__all__ = ["first_lp", "highs_relaxation", "pass_basis"]


def pass_basis(highs: Any, arrays: ModelArrays) -> bool:
    """Give ``highs`` the starting basis of :func:`pyomo_relu.root_basis.relaxation_basis`; ``False`` if none."""
    import highspy

    from pyomo_relu.root_basis import relaxation_basis

    statuses = relaxation_basis(arrays.chains, arrays.lp, arrays.cost, arrays.maximize)
    if statuses is None:
        return False
    kinds = list(highspy.HighsBasisStatus.__members__.values())
    by_value = {int(kind.value): kind for kind in kinds}
    basis = highspy.HighsBasis()
    basis.col_status = [by_value[int(v)] for v in statuses[0]]
    basis.row_status = [by_value[int(v)] for v in statuses[1]]
    basis.valid = True
    return bool(highs.setBasis(basis) == highspy.HighsStatus.kOk)


def highs_relaxation(arrays: ModelArrays, options: dict[str, Any], tee: bool, basis: bool = True) -> Any:
    """A ``highspy.Highs`` holding the LP relaxation of ``arrays`` (integrality dropped), from the
    starting basis of :func:`pass_basis` when ``basis`` and one exists."""
    highs = highs_from_arrays(arrays, options, tee, integer=False)
    if basis and not pass_basis(highs, arrays):
        logger.info("no starting basis for the LP relaxation; HiGHS starts from its own")
    return highs


def first_lp(
    model: Any, time_limit: float | None = None, relaxed: bool = True, basis: bool = True, tee: bool = False
) -> tuple[str, float | None]:
    """HiGHS's first LP relaxation value of ``model``'s MIP: the status and the optimum (``None`` if not optimal).

    Integrality dropped, ``bigm`` layers as their triangle rows when ``relaxed`` (the same LP
    optimum, :func:`~pyomo_relu.handoff.model_arrays`), HiGHS started from :func:`pass_basis`
    when ``basis``.  On a 784-512x4-10 network over a 0.02-box both cut this LP from over 60 s
    (HiGHS on the big-M LP from its own start) to 4.3 s (``benchmarks/RESULTS.md``, "Scale").
    """
    deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
    arrays = model_arrays(model, relaxed=relaxed)
    highs = highs_relaxation(arrays, {}, tee, basis=basis)
    run_highs(highs, deadline)
    status = _status(highs)
    value = _finite_or_none(highs.getInfo().objective_function_value) if status == "optimal" else None
    return status, value


def _finite_or_none(value: Any) -> float | None:
    from pyomo_relu.solvers import _finite_or_none as finite

    return finite(value)
