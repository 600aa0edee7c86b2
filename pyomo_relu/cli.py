"""Command line: ``pyomo-relu optimize MODEL.onnx --bounds -3:3 --minimize 0``
and ``pyomo-relu verify MODEL.onnx PROP.vnnlib``.

``optimize`` uses the branch-and-bound engine by default (``--method bnb``,
:func:`pyomo_relu.optimize`); ``--method milp`` builds one big-M MILP and hands it to a
solver.  ``verify`` prints ``sat``, ``unsat`` or ``unknown`` and exits 0 for any of them.

Exit codes: 0 when a verdict was reached (optimal, time limit, infeasible; sat, unsat,
unknown), 1 when the solve itself failed, 2 for bad input (file, option, bounds), 130 when
interrupted (Ctrl-C or SIGTERM: what is known so far is printed first).  Errors are one
line on stderr, never a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pyomo_relu import __version__
from pyomo_relu.errors import MissingBoundsError, PyomoReluError, UsageError

if TYPE_CHECKING:
    from pyomo_relu.network import NetworkDefinition
    from pyomo_relu.solvers import SolveResult

logger = logging.getLogger(__name__)

_Number = TypeVar("_Number", int, float)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyomo-relu`` and ``python -m pyomo_relu``."""
    parser = _parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    previous = _terminate_as_interrupt()
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("pyomo-relu: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (PyomoReluError, OSError, ValueError) as error:
        if args.debug:
            raise
        print(f"pyomo-relu: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the CLI promises no tracebacks
        if args.debug:
            raise
        print(f"pyomo-relu: unexpected error ({type(error).__name__}): {error}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


#: Exit code after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
INTERRUPTED = 130


def _terminate_as_interrupt() -> signal.Handlers | Callable[[int, FrameType | None], Any] | int | None:
    """SIGTERM raises ``KeyboardInterrupt`` like Ctrl-C, so both stop cleanly and report.

    Returns the previous handler (``None`` outside the main thread, where none is set).
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        return None


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--bounds -3:3`` -> ``--bounds=-3:3`` (argparse takes ``-3:3`` for an option)."""
    joined: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--bounds":
            value = next(tokens, None)
            joined.append(token if value is None else f"{token}={value}")
        else:
            joined.append(token)
    return joined


def _parser() -> argparse.ArgumentParser:
    """The ``pyomo-relu`` parser: its ``optimize`` and ``verify`` commands."""
    parser = argparse.ArgumentParser(prog="pyomo-relu", description="Trained ReLU networks as MILPs.")
    parser.add_argument("--version", action="version", version=f"pyomo-relu {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for sub in (_add_optimize(commands), _add_verify(commands)):
        sub.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.set_defaults(debug=False)
    return parser


def _add_optimize(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``pyomo-relu optimize``: the options of the search and of the one-MILP method."""
    optimize = commands.add_parser(
        "optimize", help="the global minimum or maximum of one network output over an input box"
    )
    optimize.add_argument("model", help="ONNX file (.onnx) or Keras file (.keras, .h5)")
    optimize.add_argument(
        "--bounds",
        action="append",
        default=[],
        metavar="LB:UB",
        help="input box, e.g. -3:3 for every input, or 0=-1:2 for input 0 (repeatable)",
    )
    optimize.add_argument("--bounds-file", help='JSON: [[lb, ub], ...] or {"lower": [...], "upper": [...]}')
    sense = optimize.add_mutually_exclusive_group(required=True)
    sense.add_argument("--minimize", type=int, metavar="OUTPUT_INDEX")
    sense.add_argument("--maximize", type=int, metavar="OUTPUT_INDEX")
    optimize.add_argument(
        "--method",
        default="bnb",
        choices=["bnb", "milp"],
        help="bnb: branch and bound over the inputs with CROWN bounds and leaf MILPs (default); "
        "milp: one MILP of the whole network handed to --solver",
    )
    optimize.add_argument(
        "--gap", type=_gap, default=None, metavar="G", help="absolute optimality gap (default 1e-6; --method bnb)"
    )
    optimize.add_argument(
        "--time-limit",
        type=_seconds,
        default=None,
        metavar="S",
        help="wall-clock seconds; the best point, the bound and the gap so far are reported",
    )
    optimize.add_argument(
        "--jobs", type=_jobs, default=None, metavar="N", help="worker processes for the branch and bound (--method bnb)"
    )
    optimize.add_argument(
        "--solver",
        default=None,
        choices=["highs", "glpk", "cbc", "scip"],
        help="--method milp: the MILP solver (default highs)",
    )
    optimize.add_argument(
        "--tighten",
        default="auto",
        metavar="METHODS",
        help="--method milp: bounds methods, comma separated (e.g. interval,crown,lp); "
        "default auto (chosen from the network's size)",
    )
    optimize.add_argument("--formulation", default=None, help="--method milp: the formulation (default bigm)")
    optimize.add_argument("--drop-softmax", action="store_true", help="drop a trailing (Log)Softmax")
    optimize.add_argument("--json", action="store_true", help="print one JSON object")
    optimize.set_defaults(run=_optimize)
    return optimize


def _add_verify(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``pyomo-relu verify``: a VNN-LIB property of a network."""
    verify = commands.add_parser(
        "verify", help="decide a VNN-LIB property: sat (violated, with a counterexample), unsat (holds) or unknown"
    )
    verify.add_argument("model", help="ONNX file (.onnx) or Keras file (.keras, .h5)")
    verify.add_argument("property", help="VNN-LIB file (.vnnlib)")
    verify.add_argument(
        "--time-limit", type=_seconds, default=None, metavar="S", help="wall-clock seconds (unknown when exceeded)"
    )
    verify.add_argument(
        "--tighten",
        default="interval,crown,lp",
        metavar="METHODS",
        help="neuron bounds methods for the MILP, comma separated (default interval,crown,lp)",
    )
    verify.add_argument("--no-split", action="store_true", help="never split the input box")
    verify.add_argument(
        "--jobs", type=_jobs, default=None, metavar="N", help="worker processes for bounds and splitting"
    )
    verify.add_argument("--drop-softmax", action="store_true", help="drop a trailing (Log)Softmax")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("--out", metavar="FILE", help="write the VNN-COMP 2022 result file (verdict, counterexample)")
    verify.set_defaults(run=_verify)
    return verify


def _gap(text: str) -> float:
    """``--gap``: a finite absolute gap, not negative."""
    return _bounded(text, float, 0.0, "a finite absolute gap >= 0")


def _seconds(text: str) -> float:
    """``--time-limit``: a finite number of seconds, not negative."""
    return _bounded(text, float, 0.0, "a finite number of seconds >= 0 (omit it for no limit)")


def _jobs(text: str) -> int:
    """``--jobs``: a number of worker processes, at least 1."""
    return _bounded(text, int, 1, "at least 1 worker process (omit it to run in this process)")


def _bounded(text: str, convert: Callable[[str], _Number], minimum: float, wanted: str) -> _Number:
    """``convert(text)`` when it is a number in ``[minimum, inf)``; else argparse's error naming ``wanted``."""
    try:
        value: _Number | None = convert(text)
    except ValueError:
        value = None
    if value is None or not minimum <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give {wanted}")
    return value


def load_model_file(path: str, input_bounds: object = None, drop_softmax: bool = False) -> NetworkDefinition:
    """Read an ONNX or Keras file by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in (".keras", ".h5", ".hdf5"):
        from pyomo_relu.io.keras import load_keras

        return load_keras(path, input_bounds=input_bounds)
    from pyomo_relu.io.onnx import load_onnx

    return load_onnx(path, input_bounds=input_bounds, drop_softmax=drop_softmax)


#: Bounds from the command line: ``"all"`` or an input index -> ``(lb, ub)`` (``None``: no bound).
BoundsSpec = dict[int | str, tuple[float | None, float | None]]


def parse_bounds(specs: Sequence[str], bounds_file: str | None) -> BoundsSpec:
    """``["-3:3", "0=-1:2"]`` -> ``{"all": (-3, 3), 0: (-1, 2)}``; a file adds per-input pairs."""
    result: BoundsSpec = {}
    if bounds_file:
        result.update(_bounds_from_file(bounds_file))
    for spec in specs:
        key: int | str = "all"
        text = spec
        if "=" in spec:
            index, text = spec.split("=", 1)
            key = _int(index, spec)
        low, sep, high = text.partition(":")
        if not sep:
            raise UsageError(f"--bounds {spec!r}: expected LB:UB, e.g. -3:3 or 0=-1:2")
        result[key] = (_float(low, spec), _float(high, spec))
    return result


def _bounds_from_file(path: str) -> BoundsSpec:
    """Per-input ``(lb, ub)`` from ``--bounds-file``: pairs, ``{"lower": [...], "upper": [...]}`` or OMLT's list."""
    where = f"--bounds-file {path}"
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{where}: cannot read it ({error})") from None
    except (json.JSONDecodeError, RecursionError) as error:
        raise UsageError(f"{where}: not valid JSON ({error})") from None
    if isinstance(data, dict) and "lower" in data and "upper" in data:
        lower, upper = data["lower"], data["upper"]
        if not (isinstance(lower, list) and isinstance(upper, list) and len(lower) == len(upper)):
            raise UsageError(f"{where}: 'lower' and 'upper' must be lists of the same length")
        pairs: list = list(zip(lower, upper))
    elif isinstance(data, list) and data and isinstance(data[0], dict):  # OMLT's format
        if not all(isinstance(item, dict) and "lower_bound" in item and "upper_bound" in item for item in data):
            raise UsageError(f"{where}: every entry needs 'lower_bound' and 'upper_bound'")
        pairs = [(item["lower_bound"], item["upper_bound"]) for item in data]
    elif isinstance(data, list) and all(isinstance(pair, list) and len(pair) == 2 for pair in data):
        pairs = data
    else:
        raise UsageError(f"{where}: expected a list of [lb, ub] pairs or lower/upper lists")
    return {i: (_file_bound(lb, where, i), _file_bound(ub, where, i)) for i, (lb, ub) in enumerate(pairs)}


def _file_bound(value: object, where: str, index: int) -> float | None:
    """A bound from the file: a number (``null`` for none); NaN and other values are refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise UsageError(f"{where}: input {index} has bound {value!r}; expected a number or null")
    return float(value)


def _box(spec: BoundsSpec, n_inputs: int) -> list[tuple[float | None, float | None]] | None:
    if not spec:
        return None
    default = spec.get("all", (None, None))
    box: list[tuple[float | None, float | None]] = [default] * n_inputs
    for key, pair in spec.items():
        if key == "all":
            continue
        if not 0 <= int(key) < n_inputs:
            raise UsageError(f"bounds name input {key}, but the network has {n_inputs} inputs")
        box[int(key)] = pair
    return box


def _optimize(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    spec = parse_bounds(args.bounds, args.bounds_file)
    net = load_model_file(args.model, drop_softmax=args.drop_softmax)
    box = _box(spec, net.n_inputs)
    if box is not None:
        net = net.with_input_bounds(box)
    index = args.minimize if args.minimize is not None else args.maximize
    if not 0 <= index < net.n_outputs:
        raise UsageError(f"output index {index} is out of range: the network has {net.n_outputs} outputs")
    sense = "minimize" if args.minimize is not None else "maximize"
    if args.method == "bnb":
        report = _optimize_bnb(args, net, index, sense)
    else:
        report = _optimize_milp(args, net, index, sense)
    report["seconds"] = round(time.perf_counter() - start, 4)
    _print_report(report, args.json)
    if report["status"] == "interrupted":
        return INTERRUPTED
    return 1 if report["status"] == "error" else 0


def _optimize_bnb(args: argparse.Namespace, net: NetworkDefinition, index: int, sense: str) -> dict[str, Any]:
    from pyomo_relu.search import optimize

    given = [
        name for name, value in (("--solver", args.solver), ("--formulation", args.formulation)) if value is not None
    ] + (["--tighten"] if args.tighten != "auto" else [])
    if given:
        raise UsageError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to --method milp; "
            "--method bnb (the default) uses its own bounds and HiGHS for its leaf MILPs"
        )
    try:
        result = optimize(
            net,
            index,
            sense=sense,
            gap=1e-6 if args.gap is None else args.gap,
            time_limit=args.time_limit,
            executor=args.jobs,
            progress=not args.json and sys.stderr.isatty(),
        )
    except MissingBoundsError as error:
        raise UsageError(f"{error}. On the command line: --bounds LB:UB or --bounds-file FILE") from None
    report = result.to_dict()
    report["method"] = "bnb"
    return report


def _optimize_milp(args: argparse.Namespace, net: NetworkDefinition, index: int, sense: str) -> dict[str, Any]:
    import pyomo.environ as pe

    from pyomo_relu import ReLUNetBlock
    from pyomo_relu.solvers import solve

    if args.gap is not None or args.jobs is not None:
        raise UsageError("--gap and --jobs apply to --method bnb; with --method milp the solver's own gap is used")
    model = pe.ConcreteModel()
    model.nn = ReLUNetBlock()
    tighten: Any = args.tighten if args.tighten == "auto" else [m for m in args.tighten.split(",") if m]
    try:
        model.nn.build(net, formulation=args.formulation or "bigm", bounds=tighten)
    except MissingBoundsError as error:
        raise UsageError(f"{error}. On the command line: --bounds LB:UB or --bounds-file FILE") from None
    model.objective = pe.Objective(
        expr=model.nn.outputs[index], sense=pe.minimize if sense == "minimize" else pe.maximize
    )
    result = solve(model, args.solver or "highs", time_limit=args.time_limit)
    return _report(model, net, result)


def _report(model: Any, net: NetworkDefinition, result: SolveResult) -> dict[str, Any]:
    status = result.status if result.status in ("optimal", "time_limit", "infeasible") else "error"
    report: dict[str, Any] = {
        "status": status,
        "objective": result.objective,
        "bound": result.bound,
        "gap": None if result.objective is None or result.bound is None else abs(result.objective - result.bound),
        "x": None,
        "y": None,
        "nodes": None,
        "method": "milp",
        "solver": result.solver,
    }
    if result.has_solution:
        x = np.array([v.value for v in model.nn.input_vars], dtype=float)
        y = net.evaluate(x)
        report["x"], report["y"] = x.tolist(), y.tolist()
        report["max_error"] = float(model.nn.get_error())
    return report


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    print(f"status:    {report['status']}")
    print(f"objective: {report['objective']}")
    print(f"bound:     {report['bound']}")
    print(f"gap:       {report['gap']}")
    if report["x"] is not None:
        print(f"x:         {report['x']}")
        print(f"y:         {report['y']}")
    if report.get("nodes") is not None:
        print(f"nodes:     {report['nodes']}")
    print(f"seconds:   {report['seconds']}")


def _int(text: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--bounds {spec!r}: {text!r} is not an input index") from None


def _float(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value:
        raise UsageError(f"--bounds {spec!r}: {text!r} is not a number") from None
    return value


def _verify(args: argparse.Namespace) -> int:
    from pyomo_relu.verify import format_counterexample, read_vnnlib, verify

    spec = read_vnnlib(args.property)
    net = load_model_file(args.model, drop_softmax=args.drop_softmax)
    result = verify(
        net,
        spec,
        args.time_limit,
        bounds=[m for m in args.tighten.split(",") if m],
        split=not args.no_split,
        executor=args.jobs,
    )
    if args.out:
        verdict = "timeout" if result.timed_out else result.status
        text = verdict + "\n"
        if result.counterexample is not None:
            x, y = result.counterexample
            text += format_counterexample(x.tolist(), y.tolist()) + "\n"
        Path(args.out).write_text(text)
    if args.json:
        report = result.to_dict()
        print(
            json.dumps(
                {
                    key: report[key]
                    for key in (
                        "status",
                        "counterexample",
                        "seconds",
                        "subproblems",
                        "proven_bound",
                        "method",
                        "reason",
                    )
                }
            )
        )
    else:
        print(result.status)
    return INTERRUPTED if result.reason == "interrupted" else 0
