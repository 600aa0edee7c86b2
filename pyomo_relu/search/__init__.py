"""The search engine: branch and bound over sub-boxes of the network inputs.

One engine answers three questions: the best value of ``c·y`` over a box
(:func:`optimize`), whether an unsafe output region is reachable (``verify()``, a
feasibility problem that stops at the first confirmed point), and, through
``solve(model, strategy="split")``, the optimum of a whole Pyomo model.

* :mod:`.problem`: :class:`SearchProblem`, :class:`LinearConstraints`;
* :mod:`.nodes`: one round of batched CROWN bounds, box cuts, candidates, split choices;
* :mod:`.leaf`: exact HiGHS MILPs of a network over a box (:class:`NetworkMilp`);
* :mod:`.attack`: gradient attacks for incumbents and counterexamples;
* :mod:`.engine`: :func:`branch_and_bound`, the loop (anytime, parallel, interruptible);
* :mod:`.optimize`: :func:`optimize` and :class:`OptimizeResult`.

Nothing here imports Pyomo.
"""

from __future__ import annotations

from pyomo_relu.search.engine import SearchResult, branch_and_bound
from pyomo_relu.search.leaf import NetworkMilp
from pyomo_relu.search.optimize import OptimizeResult, optimize
from pyomo_relu.search.problem import LinearConstraints, SearchProblem

__all__ = [
    "LinearConstraints",
    "NetworkMilp",
    "OptimizeResult",
    "SearchProblem",
    "SearchResult",
    "branch_and_bound",
    "optimize",
]
