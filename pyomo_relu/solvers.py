"""``solve``: one call for HiGHS (embedded, default), SCIP, glpk and CBC with one result type.

HiGHS and SCIP go through Pyomo's new solver interface (``pyomo.contrib.solver``),
glpk and CBC through the classic shell interface.  The APPSI HiGHS interface is avoided: it hung
on big-M models with Pyomo 6.10.1.  A linear model with built network blocks goes to HiGHS in
bulk instead (:mod:`pyomo_relu.handoff`): the networks' rows straight from their arrays, only
the user's own constraints through Pyomo's expression machinery.

Time limits hold for HiGHS: ``time_limit`` is wall-clock seconds for the whole call, the time
spent handing the model to HiGHS counts, HiGHS gets what is left, and a run that overruns it
is cancelled (:func:`pyomo_relu.handoff.run_highs`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import pyomo.environ as pe
from pyomo.opt import SolverStatus
from pyomo.opt import TerminationCondition as LegacyTC

from pyomo_relu.errors import PyomoReluError, SolverError
from pyomo_relu.options import check_options, strict_keywords

logger = logging.getLogger(__name__)

NEW_INTERFACE = {"highs": "highs", "scip": "scip_direct"}
LEGACY = {
    "glpk": {"time_limit": "tmlim", "mip_gap": "mipgap"},
    "cbc": {"time_limit": "sec", "mip_gap": "ratio"},
}
SOLVERS = tuple(NEW_INTERFACE) + tuple(LEGACY)
#: ``solve(handoff=...)``: ``"auto"`` (bulk for HiGHS when the model has network blocks and is
#: linear), ``"bulk"`` (bulk or an error), ``"pyomo"`` (Pyomo's interface).
HANDOFFS = ("auto", "bulk", "pyomo")

#: A solution whose network outputs differ from the numpy forward pass by more than this
#: (relative to ``1 + max |outputs|``) is not reported ``"optimal"``: solver tolerances
#: (feasibility and integrality 1e-6, times big-M coefficients) stay well below it, a
#: wrong formulation or a lost constraint does not.
FORWARD_TOLERANCE = 1e-4


@dataclass
class SolveResult:
    """What a solve gave: status, objective of the incumbent, proven bound, gap, time.

    ``status`` is one of ``"optimal"`` (within ``mip_gap`` when one is given),
    ``"time_limit"`` (stopped early, maybe with a solution: see ``has_solution``),
    ``"infeasible"`` (proven), ``"unbounded"``, ``"error"`` (no verdict, e.g. a solver that
    cannot tell infeasible from unbounded).  ``bound`` is ``None`` when the solver gave none.
    """

    status: str
    objective: float | None
    bound: float | None
    seconds: float
    solver: str
    has_solution: bool
    message: str = ""
    raw: Any = field(default=None, repr=False)
    #: for models with relaxed (``pwl``) network blocks: a
    #: :class:`~pyomo_relu.certify.CertifiedInterval` for the true optimum, else ``None``
    certified: Any = None
    #: ``max |MILP outputs - forward pass|`` over the model's exact network blocks at the
    #: solution, relative to ``1 + max |outputs|`` (``None``: no solution or no such block)
    forward_error: float | None = None

    @property
    def gap(self) -> float | None:
        """Relative gap ``|objective - bound| / max(1, |objective|)``."""
        if self.objective is None or self.bound is None:
            return None
        return abs(self.objective - self.bound) / max(1.0, abs(self.objective))


@strict_keywords
def solve(
    model: pe.ConcreteModel,
    solver: str = "highs",
    time_limit: float | None = None,
    mip_gap: float | None = None,
    tee: bool = False,
    options: dict[str, Any] | None = None,
    certify: bool = True,
    handoff: str = "auto",
    *,
    strategy: str = "milp",
    executor: Any = None,
) -> SolveResult:
    """Solve ``model`` (with exactly one active objective) and load the solution if any.

    ``time_limit`` (wall-clock seconds) counts from the call: building the solver's model
    counts (HiGHS, SCIP, glpk and CBC get what is left), and a solve stopped by the limit
    returns ``status="time_limit"`` with the incumbent it had (loaded into the model) and
    its proven bound.  Measured slack past the limit (``benchmarks/RESULTS.md``, "Scale"):
    reading the solution back, the forward-pass check and :data:`~pyomo_relu.handoff.CANCEL_GRACE`
    (HiGHS cancelled when it overruns), at most :data:`TIME_LIMIT_SLACK` seconds on networks
    up to 4 M weights.  ``handoff`` (:data:`HANDOFFS`): how HiGHS receives the model
    (:mod:`pyomo_relu.handoff`).  ``strategy="split"`` branches on the inputs of the model's
    blocks (:mod:`pyomo_relu.split`, in parallel through ``executor``).  With ``certify`` and
    ``pwl`` blocks, ``result.certified`` bounds the true optimum (:mod:`pyomo_relu.certify`).
    ``options`` go to the solver under its own names; HiGHS's are checked against its list
    (:class:`~pyomo_relu.errors.UnknownOptionError` with a did-you-mean).

    >>> import pyomo.environ as pe
    >>> m = pe.ConcreteModel()
    >>> m.x = pe.Var(bounds=(0, 3), within=pe.Integers)
    >>> m.obj = pe.Objective(expr=-2 * m.x)
    >>> r = solve(m)
    >>> r.status, r.objective, m.x.value
    ('optimal', -6.0, 3.0)
    """
    _check_call(model, solver, handoff, strategy, executor)
    if strategy == "split":
        from pyomo_relu.split import solve_split

        split = solve_split(model, solver, time_limit=time_limit, mip_gap=mip_gap, options=options, executor=executor)
        return _check_forward(model, split) if split.has_solution else split
    start = time.perf_counter()
    deadline = None if time_limit is None else start + float(time_limit)
    options = _solver_options(solver, options, deadline)
    result = _dispatch(model, solver, handoff, deadline, mip_gap, tee, options)
    result.seconds, result.solver = time.perf_counter() - start, solver
    if result.has_solution:
        _check_forward(model, result)
    logger.info(
        "%s: %s objective=%s bound=%s in %.2f s", solver, result.status, result.objective, result.bound, result.seconds
    )
    if certify:
        from pyomo_relu.certify import certify_solution

        left = None if deadline is None else max(0.0, deadline - time.perf_counter())
        result.certified = certify_solution(
            model, result, solver=solver, time_limit=left, mip_gap=mip_gap, options=options
        )
    return result


#: Largest measured overrun of ``solve(time_limit=5)`` past its limit (seconds), from
#: ``benchmarks/scale.py`` on networks of 10 k to 4 M weights (``benchmarks/RESULTS.md``, "Scale"
#: and "Scale: time limits"): 7.08 s on 784-1024x4-10 over a 0.02-box at load 7 on 2 cores, of
#: which 1.38 s hand-off and 5.67 s in HiGHS (its limit was the 3.6 s left); at load 1 at most
#: 6.07 s.  HiGHS answers the watchdog's cancel late inside a simplex iteration of its root LP on
#: millions of nonzeros (0.9 s on 784-512x4-10); read-back and the forward-pass check are quick.
TIME_LIMIT_SLACK = 2.1


def _check_call(model: Any, solver: str, handoff: str, strategy: str, executor: Any) -> None:
    """The solver, hand-off, strategy and executor are known and fit together; one active objective."""
    if solver not in SOLVERS:
        raise SolverError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if handoff not in HANDOFFS or (handoff == "bulk" and solver != "highs"):
        raise SolverError(f"handoff={handoff!r}: choose one of {', '.join(HANDOFFS)} ('bulk' only with 'highs')")
    _active_objective(model)  # exactly one active objective, else SolverError (not ValueError)
    if strategy not in ("milp", "split"):
        raise SolverError(
            f"unknown strategy {strategy!r}; choose 'milp' (one solve) or 'split' "
            "(branch and bound on the network inputs)"
        )
    if executor is not None and strategy != "split":
        raise SolverError("executor= needs strategy='split' (a single MILP solve runs in the solver)")


def _solver_options(solver: str, options: dict[str, Any] | None, deadline: float | None) -> dict[str, Any]:
    """The user's options (HiGHS's names checked), with the package's HiGHS defaults under a time limit."""
    options = dict(options or {})
    if solver != "highs":
        return options
    check_options(options, highs_option_names(), "solve(options=...) for HiGHS")
    if deadline is None:
        return options
    from pyomo_relu.bounds.rows import HIGHS_TIME_LIMIT_OPTIONS

    return {**HIGHS_TIME_LIMIT_OPTIONS, **SOLVE_TIME_LIMIT_OPTIONS, **options}


#: HiGHS options for ``solve(time_limit=...)`` on top of ``HIGHS_TIME_LIMIT_OPTIONS`` (the user's
#: own options win): MIP symmetry detection and the feasibility-jump heuristic run before the
#: root LP without checking the limit; on 784-512x4-10 over a 0.02-box ``solve(time_limit=5)``
#: took 11.2 s with both, 6.9 s without symmetry detection and 5.1 s without either (the
#: block's forward pass is the MIP start, so feasibility jump is not needed for an incumbent).
SOLVE_TIME_LIMIT_OPTIONS: dict[str, Any] = {"mip_detect_symmetry": False, "mip_heuristic_run_feasibility_jump": False}


def _dispatch(
    model: Any,
    solver: str,
    handoff: str,
    deadline: float | None,
    mip_gap: float | None,
    tee: bool,
    options: dict[str, Any],
) -> SolveResult:
    """One solve with ``solver``; a crash of the solver is one :class:`~pyomo_relu.errors.SolverError`."""
    try:
        result = None
        if solver == "highs" and handoff != "pyomo":
            from pyomo_relu.handoff import solve_bulk

            result = solve_bulk(model, deadline, mip_gap, tee, options, required=handoff == "bulk")
        if result is None and solver in NEW_INTERFACE:
            result = _solve_new(model, NEW_INTERFACE[solver], deadline, mip_gap, tee, options)
        elif result is None:
            result = _solve_legacy(model, solver, deadline, mip_gap, tee, options)
    except (PyomoReluError, KeyboardInterrupt):
        raise
    except Exception as error:  # noqa: BLE001 - a crashing solver is named in one clear error
        raise SolverError(f"solver {solver} failed: {type(error).__name__}: {error}") from error
    return result


def _solve_new(
    model: Any, name: str, deadline: float | None, mip_gap: float | None, tee: bool, options: dict[str, Any]
) -> SolveResult:
    from pyomo.contrib.solver.common.factory import SolverFactory
    from pyomo.contrib.solver.common.results import SolutionStatus
    from pyomo.contrib.solver.common.results import TerminationCondition as TC

    opt = _HighsWithStart() if name == "highs" else SolverFactory(name)
    if not opt.available():
        raise SolverError(f"solver {name} is not available; install it (pip install highspy / pyscipopt)")
    if name == "highs":
        opt.deadline = deadline  # HiGHS gets what is left after Pyomo's hand-off (_HighsWithStart._solve)
    elif deadline is not None:
        _limit_after_build(opt, deadline)
    config: dict[str, Any] = {"load_solutions": False, "raise_exception_on_nonoptimal_result": False, "tee": tee}
    if deadline is not None:
        config["time_limit"] = max(1e-3, deadline - time.perf_counter())
    if mip_gap is not None:
        config["rel_gap"] = float(mip_gap)
    options = dict(options)
    if name == "scip_direct" and not tee:
        options.setdefault("display/verblevel", 0)  # a long captured log kept SCIP past its time limit
    if options:
        config["solver_options"] = options
    results = opt.solve(model, **config)
    if results.termination_condition == TC.infeasibleOrUnbounded and name == "highs":
        # HiGHS presolve cannot tell the two apart; without presolve it can.  Never report
        # an unbounded model as infeasible (callers read "infeasible" as a proof).
        config["solver_options"] = {**config.get("solver_options", {}), "presolve": "off"}
        if deadline is not None:
            config["time_limit"] = max(1e-3, deadline - time.perf_counter())
        results = opt.solve(model, **config)
    has_solution = results.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
    if has_solution:
        results.solution_loader.load_vars()
    status = {
        TC.convergenceCriteriaSatisfied: "optimal",
        TC.maxTimeLimit: "time_limit",
        TC.iterationLimit: "time_limit",
        TC.objectiveLimit: "time_limit",
        TC.interrupted: "time_limit",  # cancelled at the deadline (or Ctrl-C)
        TC.provenInfeasible: "infeasible",
        TC.locallyInfeasible: "infeasible",
        TC.infeasibleOrUnbounded: "error",  # no verdict: neither proven
        TC.unbounded: "unbounded",
    }.get(results.termination_condition, "error")
    if status == "error" and getattr(opt, "cancelled", False):
        status = "time_limit"  # cancelled at the deadline (Pyomo reports HiGHS's interrupt as unknown)
    bound = _finite_or_none(results.objective_bound)
    objective = _finite_or_none(results.incumbent_objective) if has_solution else None
    return SolveResult(status, objective, bound, 0.0, name, has_solution, str(results.termination_condition), results)


@functools.lru_cache(maxsize=1)
def highs_option_names() -> tuple[str, ...]:
    """The option names HiGHS knows (it would only log an unknown one and carry on)."""
    import highspy

    from pyomo_relu.bounds.rows import HIGHS_TIME_LIMIT_OPTIONS

    # HighsOptions lists the common options, HiGHS's options file most of the MIP ones
    # (mip_allow_restart, ...); the package's own defaults are advanced ones
    known = {n for n in dir(highspy.HighsOptions()) if not n.startswith("_")}
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "options.txt")
        highs.writeOptions(path)
        with open(path, encoding="utf-8") as handle:
            known.update(re.findall(r"^([a-z_0-9]+)\s*=", handle.read(), re.M))
    return tuple(sorted(known)) + tuple(HIGHS_TIME_LIMIT_OPTIONS) + tuple(SOLVE_TIME_LIMIT_OPTIONS)


def _check_forward(model: Any, result: SolveResult) -> SolveResult:
    """Re-check the solution's network outputs by the forward pass; an ``"optimal"`` that fails
    is an ``"error"``.  Returns ``result`` (updated)."""
    from pyomo_relu.block import ReLUNetBlockData

    errors = []
    for data in model.component_data_objects(pe.Block, active=True, descend_into=True):
        if isinstance(data, ReLUNetBlockData) and data.is_built and _is_exact(data):
            outputs = [v.value for v in data.output_vars]
            if any(v is None for v in outputs) or any(v.value is None for v in data.input_vars):
                errors.append(float("inf"))
            else:
                errors.append(data.get_error() / (1.0 + max(abs(v) for v in outputs)))
    if not errors:
        return result
    result.forward_error = max(errors)
    if result.forward_error > FORWARD_TOLERANCE and result.status == "optimal":
        logger.warning(
            "%s: the solution's network outputs differ from the forward pass by %.3g; not reported optimal",
            result.solver,
            result.forward_error,
        )
        result.status = "error"
        result.message = (
            f"the solution's network outputs differ from the forward pass by {result.forward_error:.3g} "
            f"(relative; tolerance {FORWARD_TOLERANCE}): numerical trouble in the solver, or a "
            "constraint of the network was changed"
        )
    return result


def _is_exact(block: Any) -> bool:
    """The block states ``y = net(x)`` exactly in this solve: not ``pwl``/``relaxation`` (certified
    separately, :mod:`pyomo_relu.certify`), and its unstable neurons still have their binaries
    (not an LP relaxation such as ``core.relax_integer_vars``; ``complementarity`` has none either)."""
    if any(name in ("pwl", "relaxation", "complementarity") for name, _ in block._layer_contexts):
        return False
    if any(
        len(getattr(ctx, "steps", ())) and float(ctx.options.get("eps", 1.0)) == 0.0 for _, ctx in block._layer_contexts
    ):
        return False  # step neurons with eps=0: the closure, both levels allowed at 0 (a relaxation)
    bounds = block.neuron_bounds
    if not any(bounds.unstable(k).any() for k in range(bounds.n_layers)):
        return True
    return any(v.is_integer() and not v.fixed for v in block.component_data_objects(pe.Var, descend_into=True))


def _highs_class() -> type:
    from pyomo.contrib.solver.solvers.highs import Highs

    return Highs


class _HighsWithStart(_highs_class()):  # type: ignore[misc]
    """Pyomo's HiGHS interface, plus the model's current values passed as a MIP start.

    ``ReLUNetBlock`` initialises every variable from a forward pass, so HiGHS starts with
    a feasible incumbent instead of searching for one (Pyomo 6.10.1's interface passes no
    start).  Continuous variables without a value are left out (HiGHS completes them with
    an LP); when an integer variable has none, no start is passed at all: HiGHS would spend
    up to the whole time limit on a sub-MIP completing it before the real solve.  If the
    interface's internals change, the start is skipped, never the solve.
    """

    deadline: float | None = None
    cancelled = False

    def _cancel(self) -> None:
        self.cancelled = True
        self._solver_model.cancelSolve()

    def _solve(self) -> Any:
        try:
            self._pass_start()
        except (AttributeError, KeyError, TypeError, IndexError) as error:
            logger.debug("no MIP start passed to HiGHS: %s", error)
        if self.deadline is None:
            return super()._solve()
        # Pyomo has built its HiGHS model by now: HiGHS gets only what is left, and a watchdog
        # cancels a run that overruns it (Pyomo sets HiGHS's user interrupt handling on).
        import threading

        from pyomo_relu.handoff import CANCEL_GRACE

        self._active_config.time_limit = max(1e-3, self.deadline - time.perf_counter())
        watchdog = threading.Timer(max(0.0, self.deadline + CANCEL_GRACE - time.perf_counter()), self._cancel)
        watchdog.start()
        try:
            return super()._solve()
        finally:
            watchdog.cancel()

    def _pass_start(self) -> None:
        import numpy as np

        columns, values = [], []
        for var_id, column in self._pyomo_var_to_solver_var_map.items():
            var = self._vars[var_id][0]
            if var.value is None:
                if var.is_integer():  # HiGHS would spend up to the whole time limit completing it
                    logger.debug("no MIP start passed to HiGHS: integer variable %s has no value", var.name)
                    return
                continue
            columns.append(column)
            values.append(float(var.value))
        if columns:
            highs = self._solver_model
            flag = highs.getOptionValue("output_flag")
            flag = bool(flag[1] if isinstance(flag, tuple) else flag)  # highspy 1.15 returns (status, value)
            highs.setOptionValue("output_flag", False)  # HiGHS prints rejected starts
            try:
                highs.setSolution(len(columns), np.array(columns, dtype=np.int32), np.array(values, dtype=np.float64))
            finally:
                highs.setOptionValue("output_flag", flag)


def _solve_legacy(
    model: Any, name: str, deadline: float | None, mip_gap: float | None, tee: bool, options: dict[str, Any]
) -> SolveResult:
    opt = pe.SolverFactory(name)
    if not opt.available(exception_flag=False):
        raise SolverError(f"solver {name} is not on the PATH; install it (apt-get install glpk-utils coinor-cbc)")
    names = LEGACY[name]
    if deadline is not None and names["time_limit"] not in options:  # the user's own limit wins
        _limit_after_write(opt, names["time_limit"], deadline, whole_seconds=name == "glpk")
    if mip_gap is not None:
        opt.options[names["mip_gap"]] = float(mip_gap)
    opt.options.update(options)
    time_limit = None if deadline is None else deadline - time.perf_counter()
    start = time.perf_counter()
    results = opt.solve(model, tee=tee, load_solutions=False)
    elapsed = time.perf_counter() - start
    tc = results.solver.termination_condition
    has_solution = len(results.solution) > 0 and tc not in (LegacyTC.infeasible, LegacyTC.unbounded)
    if has_solution:
        model.solutions.load_from(results)
    status = {
        LegacyTC.optimal: "optimal",
        LegacyTC.maxTimeLimit: "time_limit",
        LegacyTC.maxIterations: "time_limit",
        LegacyTC.infeasible: "infeasible",
        LegacyTC.unbounded: "unbounded",
        LegacyTC.infeasibleOrUnbounded: "error",  # no verdict: neither proven
    }.get(tc)
    if status is None:  # glpk says "feasible" when it stopped early, at the gap or the time limit
        if tc == LegacyTC.feasible and mip_gap is not None and (time_limit is None or elapsed < time_limit):
            status = "optimal"  # within the requested gap, like HiGHS and SCIP
        elif time_limit is not None and results.solver.status != SolverStatus.error:
            status = "time_limit"
        else:
            status = "error"
    objective = _active_objective_value(model) if has_solution else None
    proven = tc == LegacyTC.optimal and not mip_gap
    bound = _legacy_bound(results, model, proven, objective, name)
    return SolveResult(status, objective, bound, 0.0, name, has_solution, str(tc), results)


def _limit_after_write(opt: Any, key: str, deadline: float, whole_seconds: bool) -> None:
    """glpk/CBC: the time limit on the command line is what is left once Pyomo has written the model.

    Pyomo's shell solvers write the problem file and then build the command line
    (``create_command_line``) from ``opt.options``, so the limit is set there.
    """
    original = opt.create_command_line

    def create_command_line(executable: Any, problem_files: Any) -> Any:
        left = max(1e-3, deadline - time.perf_counter())
        opt.options[key] = max(1, int(math.ceil(left))) if whole_seconds else left  # glpk: whole seconds
        return original(executable, problem_files)

    opt.create_command_line = create_command_line


def _limit_after_build(opt: Any, deadline: float) -> None:
    """SCIP (Pyomo's new interface): the time limit is what is left once SCIP's model is built.

    ``solve`` builds the model (``_create_solver_model``) and then reads ``config.time_limit``.
    """
    original = opt._create_solver_model

    def create_solver_model(model: Any, config: Any) -> Any:
        built = original(model, config)
        config.time_limit = max(1e-3, deadline - time.perf_counter())
        return built

    opt._create_solver_model = create_solver_model


def _legacy_bound(results: Any, model: Any, proven: bool, objective: float | None, name: str) -> float | None:
    minimize = _active_objective(model).sense == pe.minimize
    raw = results.problem.lower_bound if minimize else results.problem.upper_bound
    bound = _finite_or_none(raw)
    if bound is not None and name == "cbc" and not minimize:
        # CBC solves max f as min -f and prints its bound sometimes for f ("Continuous
        # objective value"), sometimes for -f ("Partial search", "After n nodes"); Pyomo
        # (CBC >= 2.10.2) copies it unchanged.  Keep a value that is valid either way.
        tol = 1e-9 * max(1.0, abs(objective or 0.0))
        if objective is None or abs(bound - objective) > tol:
            valid = [b for b in (bound, -bound) if objective is None or b >= objective - tol]
            bound = max(valid) if valid else None
    if bound is None and proven:
        bound = objective
    return bound


def _active_objective(model: Any) -> Any:
    objectives = list(model.component_data_objects(pe.Objective, active=True))
    if len(objectives) != 1:
        raise SolverError(f"the model needs exactly one active objective, it has {len(objectives)}")
    return objectives[0]


def _active_objective_value(model: Any) -> float | None:
    return _finite_or_none(pe.value(_active_objective(model), exception=False))


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
