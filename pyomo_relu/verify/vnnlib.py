r"""VNN-LIB property files: a tokenizer, an s-expression parser and the translation to boxes and polytopes.

What a property means
---------------------
A VNN-LIB file declares inputs ``X_0 .. X_{n-1}`` and outputs ``Y_0 .. Y_{m-1}`` and asserts
constraints on them; the conjunction of all asserts describes the **unsafe** set.  The
property is *violated* (``sat``) if some input satisfying the input constraints gives an
output ``y = f(x)`` satisfying the output constraints, and *holds* (``unsat``) otherwise.

Every assert is brought into disjunctive normal form, and the conjunction of the asserts
is multiplied out, so the unsafe set becomes a union of terms, each a conjunction of
linear atoms ``a·v <= c``.  In each term

* atoms on one input, ``(<= X_i c)``, ``(>= X_i c)``, ``(<= (* 2 X_i) c)``, ..., give the
  input box ``lower <= x <= upper``;
* atoms on outputs only give the rows of a polytope ``A y <= b``.

Terms with the same box are grouped into one :class:`Case`: a box and the disjunction of
the polytopes of its terms.  The unsafe set is therefore

.. math::

    \bigcup_{c} \{x \in [l_c, u_c] : f(x) \in \textstyle\bigcup_{p \in c} \{y : A_p y \le b_p\}\},

and :meth:`Polytope.margin` measures how deep an output lies in a polytope:
``margin(y) = min_i (b_i - A_i·y)``, so ``y`` is unsafe iff ``margin(y) >= 0``.

Supported subset
----------------
Commands ``declare-const`` (type ``Real``) and ``assert``; formulas ``and``, ``or``,
``<=``, ``>=``, ``<``, ``>``, ``=`` (strict inequalities are read as non-strict: the
closure of the unsafe set is checked, as VNN-COMP tools do); terms are numbers, declared
variables, ``(+ ...)``, ``(- t)``, ``(- t1 t2 ...)``, ``(* c t)`` with at most one
non-constant factor and ``(/ t c)``.  Atoms that couple several inputs, or inputs and
outputs, are outside the box-and-polytope form and raise :class:`VnnlibError`, which
names the line and what was expected.

>>> spec = parse_vnnlib('''
... (declare-const X_0 Real)
... (declare-const Y_0 Real)
... (declare-const Y_1 Real)
... (assert (>= X_0 -1))
... (assert (<= X_0 1))
... (assert (or (and (>= Y_0 Y_1)) (and (<= Y_0 -3))))
... ''')
>>> spec.n_inputs, spec.n_outputs, len(spec.cases), len(spec.cases[0].polytopes)
(1, 2, 1, 2)
>>> spec.input_boxes[0]
(array([-1.]), array([1.]))
>>> p = spec.polytopes[0]
>>> p.A, p.b
(array([[-1.,  1.]]), array([0.]))
>>> float(p.margin([2.0, 0.5]))    # y0 >= y1 holds with 1.5 to spare
1.5
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

from pyomo_relu.errors import VnnlibError
from pyomo_relu.verify.counterexamples import format_counterexample, parse_counterexample, read_counterexample
from pyomo_relu.verify.sexpr import VARIABLE as _VARIABLE
from pyomo_relu.verify.sexpr import Atom as _Atom
from pyomo_relu.verify.sexpr import Expr as _Expr
from pyomo_relu.verify.sexpr import SList as _List
from pyomo_relu.verify.sexpr import describe as _describe
from pyomo_relu.verify.sexpr import finite_number, parse_sexpressions
from pyomo_relu.verify.sexpr import line_of as _line

logger = logging.getLogger(__name__)

__all__ = [
    "Case",
    "Polytope",
    "Specification",
    "VnnlibError",
    "format_counterexample",
    "parse_counterexample",
    "parse_vnnlib",
    "read_counterexample",
    "read_vnnlib",
]

#: Most terms the disjunctive normal form may have before the reader gives up.
MAX_TERMS = 100_000

_NUMBER_START = frozenset("0123456789+-.")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
#: A whole line holding one declaration or one bound on one variable.
_SIMPLE = re.compile(
    r"\s*\(\s*(?:declare-const\s+(?P<name>[^\s();]+)\s+(?P<kind>[^\s();]+)"
    r"|assert\s+\(\s*(?P<op><=|>=|<|>)\s+(?P<var>[XY]_\d+)\s+(?P<num>" + _NUMBER + r")\s*\))"
    r"\s*\)\s*(?:;.*)?$"
)


# ---------------------------------------------------------------- result types
@dataclass(frozen=True, eq=False)
class Polytope:
    """The output region ``{y : A y <= b}`` (``A`` of shape ``(rows, n_outputs)``).

    A polytope without rows is the whole output space.
    """

    A: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        A = np.array(self.A, dtype=float, ndmin=2)
        b = np.array(self.b, dtype=float).ravel()
        if A.shape[0] != b.size:
            raise VnnlibError(f"polytope has {A.shape[0]} rows in A but {b.size} in b")
        A.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)

    @property
    def n_rows(self) -> int:
        return int(self.b.size)

    def margin(self, y: object) -> np.ndarray | np.float64:
        """``min_i (b_i - A_i·y)`` for one output (a float) or a batch ``(n, m)`` (an array).

        Non-negative exactly when ``y`` lies in the polytope; ``+inf`` without rows.
        """
        values = np.asarray(y, dtype=float)
        if self.n_rows == 0:
            return np.full(values.shape[:-1], np.inf) if values.ndim > 1 else np.float64(np.inf)
        slack = self.b - values @ self.A.T
        return slack.min(axis=-1)

    def key(self) -> bytes:
        return self.A.tobytes() + b"|" + self.b.tobytes()


@dataclass(frozen=True, eq=False)
class Case:
    """An input box and the union of output polytopes that is unsafe on it."""

    lower: np.ndarray
    upper: np.ndarray
    polytopes: tuple[Polytope, ...]

    def margin(self, y: object) -> np.ndarray:
        """``max_p margin_p(y)``: non-negative iff ``y`` is in one of the polytopes."""
        margins = [p.margin(y) for p in self.polytopes]
        return np.max(margins, axis=0) if margins else np.asarray(-np.inf)

    def contains_input(self, x: object, tol: float = 0.0) -> bool:
        """``lower - tol <= x <= upper + tol``."""
        values = np.asarray(x, dtype=float)
        return bool(np.all(values >= self.lower - tol) and np.all(values <= self.upper + tol))


@dataclass(frozen=True, eq=False)
class Specification:
    """A VNN-LIB property: the unsafe set as a union of (input box, output polytopes) cases."""

    n_inputs: int
    n_outputs: int
    cases: tuple[Case, ...]
    source: str = ""

    @property
    def input_boxes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The input boxes ``(lower, upper)``, one per case."""
        return [(case.lower, case.upper) for case in self.cases]

    @property
    def polytopes(self) -> list[Polytope]:
        """The distinct output polytopes over all cases (their union is the unsafe output region)."""
        seen: dict[bytes, Polytope] = {}
        for case in self.cases:
            for polytope in case.polytopes:
                seen.setdefault(polytope.key(), polytope)
        return list(seen.values())

    def check_network(self, n_inputs: int, n_outputs: int) -> None:
        """Raise :class:`VnnlibError` unless the property fits a network of that size."""
        if (n_inputs, n_outputs) != (self.n_inputs, self.n_outputs):
            raise VnnlibError(
                f"{self.source or 'the property'} declares {self.n_inputs} inputs and "
                f"{self.n_outputs} outputs, the network has {n_inputs} inputs and {n_outputs} outputs"
            )


# --------------------------------------------------------------- linear atoms
@dataclass
class _Linear:
    """``sum coef[v] * v + const``."""

    coef: dict[str, float]
    const: float

    def scaled(self, factor: float) -> _Linear:
        return _Linear({v: c * factor for v, c in self.coef.items()}, self.const * factor)

    def plus(self, other: _Linear, sign: float = 1.0) -> _Linear:
        coef = dict(self.coef)
        for v, c in other.coef.items():
            coef[v] = coef.get(v, 0.0) + sign * c
        return _Linear(coef, self.const + sign * other.const)


@dataclass(frozen=True)
class _Constraint:
    """``expr <= 0`` from line ``line``."""

    expr: _Linear
    line: int


_Term = tuple  # a conjunction: tuple of _Constraint
_Dnf = list  # a disjunction of terms


class _Reader:
    """Translates parsed s-expressions into a :class:`Specification`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.declared: dict[str, int] = {}  # name -> line of declaration
        self.common: list[_Constraint] = []  # atoms shared by every term
        self.disjunctions: list[_Dnf] = []  # asserts with more than one term
        self.bounds: list[tuple[int, bool, float]] = []  # one-line (input, is upper, value)

    # ------------------------------------------------------------ commands
    def lines(self, lines: list[tuple[int, str]]) -> None:
        """Run the commands written on these ``(line number, text)`` lines."""
        for expr in parse_sexpressions(lines):
            try:
                self.command(expr)
            except RecursionError:
                raise VnnlibError(
                    f"line {expr.line if isinstance(expr, _List) else _line(expr)}: the expression is nested too "
                    "deeply to read (expected at most a few hundred levels of parentheses)"
                ) from None

    def simple(self, match: re.Match, line: int) -> None:
        """A one-line declaration or bound matched by :data:`_SIMPLE`."""
        if match.group("name") is not None:
            self.declare_name(match.group("name"), match.group("kind"), line)
            return
        name, op, value = match.group("var"), match.group("op"), float(match.group("num"))
        if not math.isfinite(value):
            raise VnnlibError(f"line {line}: expected a finite number, found {match.group('num')!r}")
        if name not in self.declared:
            raise VnnlibError(
                f"line {line}: unknown variable {name!r} (expected a declared X_<i> or Y_<j>, or a number)"
            )
        upper = op in ("<=", "<")
        if name[0] == "X":
            self.bounds.append((int(name[2:]), upper, value))
        elif upper:
            self.common.append(_Constraint(_Linear({name: 1.0}, -value), line))
        else:
            self.common.append(_Constraint(_Linear({name: -1.0}, value), line))

    def command(self, expr: _Expr) -> None:
        if not isinstance(expr, _List) or not expr.items:
            raise VnnlibError(
                f"line {_line(expr)}: expected a command (declare-const ...) or (assert ...), found {_describe(expr)}"
            )
        head = expr.head()
        if head == "declare-const":
            self.declare(expr)
        elif head == "assert":
            if len(expr.items) != 2:
                raise VnnlibError(f"line {expr.line}: expected (assert FORMULA) with exactly one formula")
            dnf = self.formula(expr.items[1])
            if len(dnf) == 1:
                self.common.extend(dnf[0])
            else:
                self.disjunctions.append(dnf)
        else:
            raise VnnlibError(
                f"line {expr.line}: expected (declare-const ...) or (assert ...), found {_describe(expr)}"
            )

    def declare(self, expr: _List) -> None:
        items = expr.items
        name, kind = (items[1], items[2]) if len(items) == 3 else (None, None)
        if not (isinstance(name, tuple) and isinstance(kind, tuple)):
            raise VnnlibError(f"line {expr.line}: expected (declare-const NAME Real)")
        self.declare_name(name[0], kind[0], expr.line)

    def declare_name(self, name: str, kind: str, line: int) -> None:
        if kind != "Real":
            raise VnnlibError(f"line {line}: expected type Real for {name}, found {kind!r}")
        if not _VARIABLE.match(name):
            raise VnnlibError(f"line {line}: expected a variable named X_<i> (input) or Y_<j> (output), found {name!r}")
        if name in self.declared:
            raise VnnlibError(f"line {line}: {name} is already declared on line {self.declared[name]}")
        self.declared[name] = line

    # ------------------------------------------------------------ formulas
    def formula(self, expr: _Expr) -> _Dnf:
        """Disjunctive normal form: a list of terms, each a tuple of constraints."""
        if not isinstance(expr, _List) or not expr.items:
            raise VnnlibError(
                f"line {_line(expr)}: expected a formula (and ...), (or ...), (<= ...) or (>= ...), "
                f"found {_describe(expr)}"
            )
        head, args = expr.head(), expr.items[1:]
        if head in ("and", "or") and not args:
            raise VnnlibError(f"line {expr.line}: expected at least one formula in ({head} ...)")
        if head == "and":
            return _conjunction([self.formula(arg) for arg in args], expr.line)
        if head == "or":
            return [term for arg in args for term in self.formula(arg)]
        if head in ("<=", ">=", "<", ">", "="):
            return [self.comparison(head, args, expr.line)]
        raise VnnlibError(
            f"line {expr.line}: expected and, or, <=, >=, <, > or = in a formula, found {_describe(expr)}"
        )

    def comparison(self, op: str, args: list[_Expr], line: int) -> _Term:
        if len(args) < 2:
            raise VnnlibError(f"line {line}: expected ({op} TERM TERM), found {len(args)} term(s)")
        terms = [self.term(arg) for arg in args]
        atoms = []
        for left, right in zip(terms, terms[1:]):
            if op in ("<=", "<", "="):
                atoms.append(_Constraint(left.plus(right, -1.0), line))
            if op in (">=", ">", "="):
                atoms.append(_Constraint(right.plus(left, -1.0), line))
        for atom in atoms:
            values = [atom.expr.const, *atom.expr.coef.values()]
            if not all(math.isfinite(v) for v in values):
                raise VnnlibError(
                    f"line {line}: a coefficient or constant of ({op} ...) overflows to infinity or NaN; "
                    "expected finite numbers of moderate size"
                )
        return tuple(atoms)

    def term(self, expr: _Expr) -> _Linear:
        if isinstance(expr, tuple):
            return self.leaf(expr)
        if not expr.items or not isinstance(expr.items[0], tuple):
            raise VnnlibError(f"line {expr.line}: expected an operator (+, -, *, /) after '('")
        head, args = expr.head(), [self.term(arg) for arg in expr.items[1:]]
        if not args:
            raise VnnlibError(f"line {expr.line}: expected at least one term in ({head} ...)")
        if head == "+":
            result = args[0]
            for arg in args[1:]:
                result = result.plus(arg)
            return result
        if head == "-":
            if len(args) == 1:
                return args[0].scaled(-1.0)
            result = args[0]
            for arg in args[1:]:
                result = result.plus(arg, -1.0)
            return result
        if head == "*":
            return self.product(args, expr.line)
        if head == "/":
            if len(args) != 2 or args[1].coef:
                raise VnnlibError(f"line {expr.line}: expected (/ TERM NUMBER) with a constant divisor")
            if args[1].const == 0:
                raise VnnlibError(f"line {expr.line}: division by zero")
            return args[0].scaled(1.0 / args[1].const)
        raise VnnlibError(f"line {expr.line}: expected +, -, * or / in a term, found {head!r}")

    def product(self, args: list[_Linear], line: int) -> _Linear:
        variable = [arg for arg in args if arg.coef]
        if len(variable) > 1:
            raise VnnlibError(f"line {line}: expected a linear term, (* ...) multiplies two variables")
        factor = float(np.prod([arg.const for arg in args if not arg.coef]))
        return variable[0].scaled(factor) if variable else _Linear({}, factor)

    def leaf(self, atom: _Atom) -> _Linear:
        text, line = atom
        if text[0] in _NUMBER_START:
            return _Linear({}, finite_number(text, f"line {line}"))
        if text not in self.declared:
            raise VnnlibError(
                f"line {line}: unknown variable {text!r} (expected a declared X_<i> or Y_<j>, or a number)"
            )
        return _Linear({text: 1.0}, 0.0)

    # ------------------------------------------------------------- result
    def specification(self) -> Specification:
        n_inputs = self._count("X")
        n_outputs = self._count("Y")
        if n_inputs == 0:
            raise VnnlibError(f"{self.source}: no input declared (expected (declare-const X_0 Real) ...)")
        base = _TermBuilder(n_inputs, n_outputs)
        for i, is_upper, value in self.bounds:
            if is_upper:
                base.high[i] = min(base.high[i], value)
            else:
                base.low[i] = max(base.low[i], value)
            base.empty |= base.low[i] > base.high[i]
        for constraint in self.common:
            base.add(constraint)
        groups: dict[bytes, tuple[np.ndarray, np.ndarray, dict[bytes, Polytope]]] = {}
        if math.prod(len(d) for d in self.disjunctions) > MAX_TERMS:
            raise VnnlibError(f"{self.source}: more than {MAX_TERMS} cases after expanding the or's")
        n_terms = 0
        for choice in product(*self.disjunctions):
            n_terms += 1
            if n_terms > MAX_TERMS:
                raise VnnlibError(f"{self.source}: more than {MAX_TERMS} cases after expanding the or's")
            term = base.copy()
            for constraint in (c for part in choice for c in part):
                term.add(constraint)
            if term.empty:
                continue
            lower, upper = term.lower, term.upper
            self._check_box(lower, upper)
            key = lower.tobytes() + upper.tobytes()
            group = groups.setdefault(key, (lower, upper, {}))
            polytope = term.polytope()
            group[2].setdefault(polytope.key(), polytope)
        if not groups:
            raise VnnlibError(f"{self.source}: the input constraints admit no point (every box is empty)")
        cases = tuple(Case(lo, hi, tuple(polys.values())) for lo, hi, polys in groups.values())
        for case in cases:
            case.lower.setflags(write=False)
            case.upper.setflags(write=False)
        return Specification(n_inputs, n_outputs, cases, self.source)

    def _count(self, prefix: str) -> int:
        indices = sorted(
            int(m.group(2)) for name in self.declared if (m := _VARIABLE.match(name)) and m.group(1) == prefix
        )
        for expected, index in enumerate(indices):
            if index != expected:
                name = f"{prefix}_{index}"
                raise VnnlibError(
                    f"line {self.declared[name]}: {name} is declared but {prefix}_{expected} is not "
                    f"(expected {prefix}_0 .. {prefix}_{len(indices) - 1})"
                )
        return len(indices)

    def _check_box(self, lower: np.ndarray, upper: np.ndarray) -> None:
        missing = np.flatnonzero(~(np.isfinite(lower) & np.isfinite(upper)))
        if missing.size:
            i = int(missing[0])
            name = f"X_{i}"
            side, op = ("lower", ">=") if not np.isfinite(lower[i]) else ("upper", "<=")
            raise VnnlibError(
                f"line {self.declared[name]}: input {name} has no {side} bound (expected (assert ({op} {name} NUMBER)))"
            )


def _conjunction(parts: list[_Dnf], line: int) -> _Dnf:
    size = int(np.prod([len(p) for p in parts], dtype=float))
    if size > MAX_TERMS:
        raise VnnlibError(f"line {line}: (and ...) expands to more than {MAX_TERMS} cases")
    return [tuple(c for term in choice for c in term) for choice in product(*parts)]


class _TermBuilder:
    """The box and output rows of one conjunction of constraints (plain floats while building)."""

    def __init__(self, n_inputs: int, n_outputs: int) -> None:
        self.n_outputs = n_outputs
        self.low = [-math.inf] * n_inputs
        self.high = [math.inf] * n_inputs
        self.rows: list[tuple[dict[int, float], float]] = []
        self.empty = False

    @property
    def lower(self) -> np.ndarray:
        return np.array(self.low, dtype=float)

    @property
    def upper(self) -> np.ndarray:
        return np.array(self.high, dtype=float)

    def copy(self) -> _TermBuilder:
        other = _TermBuilder.__new__(_TermBuilder)
        other.n_outputs = self.n_outputs
        other.low, other.high = list(self.low), list(self.high)
        other.rows, other.empty = list(self.rows), self.empty
        return other

    def add(self, constraint: _Constraint) -> None:
        coef = constraint.expr.coef
        const = constraint.expr.const
        if len(coef) == 1:
            ((name, c),) = coef.items()
            if name[0] == "X" and c != 0.0:
                i, bound = int(name[2:]), -const / c
                if c > 0:
                    self.high[i] = min(self.high[i], bound)
                else:
                    self.low[i] = max(self.low[i], bound)
                self.empty |= self.low[i] > self.high[i]
                return
        coef = {v: c for v, c in coef.items() if c != 0.0}
        if not coef:  # a constant atom: true (dropped) or false (the term is empty)
            self.empty |= const > 0
            return
        kinds = {name[0] for name in coef}
        if kinds == {"Y"}:
            self.rows.append(({int(v[2:]): c for v, c in coef.items()}, 0.0 - const))
            return
        if "Y" in kinds:
            raise VnnlibError(
                f"line {constraint.line}: a constraint mixing inputs and outputs is not supported "
                "(expected bounds on single inputs X_i and linear constraints on outputs Y_j)"
            )
        raise VnnlibError(
            f"line {constraint.line}: a constraint coupling several inputs ({', '.join(sorted(coef))}) "
            "is not supported (expected bounds on single inputs, e.g. (<= X_0 0.5))"
        )

    def polytope(self) -> Polytope:
        A = np.zeros((len(self.rows), self.n_outputs))
        b = np.zeros(len(self.rows))
        for r, (coef, rhs) in enumerate(self.rows):
            for j, c in coef.items():
                A[r, j] += c
            b[r] = rhs
        return Polytope(A, b)


# ------------------------------------------------------------------------- API
def parse_vnnlib(text: str, source: str = "<string>") -> Specification:
    """Read a VNN-LIB property from a string (see the module docstring for the subset).

    One-line declarations and one-line bounds ``(assert (<= X_i NUMBER))`` (the bulk of
    image properties) take a fast path; everything else goes through the s-expression
    parser, in file order.
    """
    reader = _Reader(source)
    pending: list[tuple[int, str]] = []
    depth = 0
    for number, line in enumerate(text.split("\n"), 1):
        if depth == 0:
            match = _SIMPLE.match(line)
            if match is not None:
                if pending:
                    reader.lines(pending)
                    pending = []
                reader.simple(match, number)
                continue
        pending.append((number, line))
        code = line.split(";", 1)[0]
        depth += code.count("(") - code.count(")")
    if pending:
        reader.lines(pending)
    spec = reader.specification()
    logger.debug("%s: %d inputs, %d outputs, %d case(s)", source, spec.n_inputs, spec.n_outputs, len(spec.cases))
    return spec


def read_vnnlib(path: str | Path) -> Specification:
    """Read a ``.vnnlib`` file; errors name the file and the line."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise VnnlibError(f"cannot read VNN-LIB file {str(path)!r}: {error}") from None
    try:
        return parse_vnnlib(text, str(path))
    except VnnlibError as error:
        message = str(error)
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        raise VnnlibError(message) from None
