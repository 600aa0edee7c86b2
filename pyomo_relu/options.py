"""One check for option names: unknown names are refused with the valid ones listed.

Every public function and option dict of the package that takes named options
(``tighten``, ``build(bounds_options=...)``, formulation options, ``solve``, ``optimize``,
``verify``, ...) validates them here, so a misspelled ``time_limt=5`` is an error that
suggests ``time_limit`` instead of a limit silently ignored.

>>> try:
...     check_options({"time_limt": 5}, ("time_limit", "executor"), "tighten()")
... except UnknownOptionError as error:
...     print(error)
tighten() got an unknown option 'time_limt' (did you mean 'time_limit'?); valid options: executor, time_limit
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pyomo_relu.errors import UnknownOptionError

__all__ = ["check_options", "keyword_names", "strict_keywords"]

F = TypeVar("F", bound=Callable[..., Any])

#: Longer lists of valid names are shortened to the nearest few in messages.
MAX_LISTED = 30


def check_options(given: Iterable[str], valid: Iterable[str], where: str) -> None:
    """Raise :class:`~pyomo_relu.errors.UnknownOptionError` for the first name of ``given`` not in ``valid``.

    ``given`` is a mapping or any iterable of names; ``where`` names the function or
    option dict in the message (e.g. ``"tighten()"``, ``"bounds_options"``).
    """
    allowed = sorted(set(valid))
    unknown = [str(name) for name in given if name not in allowed]
    if not unknown:
        return
    name = unknown[0]
    lowered = {option.lower(): option for option in allowed}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
    more = f" (and {len(unknown) - 1} more: {', '.join(map(repr, unknown[1:]))})" if len(unknown) > 1 else ""
    listed = ", ".join(allowed) if allowed else "none"
    if len(allowed) > MAX_LISTED:  # e.g. HiGHS' ~100 options: the nearest ones and the count
        nearest = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.0)
        listed = f"{', '.join(lowered[n] for n in nearest)}, ... ({len(allowed)} in all)"
    raise UnknownOptionError(f"{where} got an unknown option {name!r}{hint}{more}; valid options: {listed}")


def keyword_names(function: Callable[..., Any]) -> tuple[str, ...]:
    """The names ``function`` accepts as keywords (no ``*args``/``**kwargs`` entries)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(
        name for name, p in inspect.signature(function).parameters.items() if p.kind in kinds and name != "self"
    )


def strict_keywords(function: F) -> F:
    """Decorate a public function so that a misspelled keyword raises :class:`UnknownOptionError`.

    Python's own ``TypeError`` for an unexpected keyword names the keyword but not the
    one meant; this checks the keywords with :func:`check_options` against the
    function's signature when (and only when) the call does not bind, so a correct call
    costs nothing.  Other binding errors (a missing argument) keep Python's message.

    >>> @strict_keywords
    ... def solve(model, time_limit=None, mip_gap=None):
    ...     return time_limit
    >>> try:
    ...     solve(None, time_limt=3)
    ... except UnknownOptionError as error:
    ...     print(error)
    solve() got an unknown option 'time_limt' (did you mean 'time_limit'?); valid options: mip_gap, model, time_limit
    """
    signature = inspect.signature(function)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    valid = keyword_names(function)
    where = f"{function.__qualname__.replace('.__init__', '').replace('Mixin', '')}()"

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not takes_any and any(name not in valid for name in kwargs):
            check_options(kwargs, valid, where)
        return function(*args, **kwargs)

    return checked  # type: ignore[return-value]
