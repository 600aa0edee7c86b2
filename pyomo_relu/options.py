"""One check for option names: unknown names are refused with the valid ones listed.

Every public function and option dict of the package that takes named options
(``tighten``, ``build(bounds_options=...)``, formulation options, ``solve``, ``optimize``,
``verify``, ...) validates them here, so a misspelled ``time_limt=5`` is an error that
suggests ``time_limit`` instead of a limit silently ignored.

>>> check_options({"time_limt": 5}, ("time_limit", "executor"), "tighten()")
Traceback (most recent call last):
...
pyomo_relu.errors.UnknownOptionError: tighten() got an unknown option 'time_limt' (did you mean 'time_limit'?); valid options: executor, time_limit
"""

from __future__ import annotations

import difflib
from typing import Iterable

from pyomo_relu.errors import UnknownOptionError

__all__ = ["check_options"]


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
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    more = f" (and {len(unknown) - 1} more: {', '.join(map(repr, unknown[1:]))})" if len(unknown) > 1 else ""
    listed = ", ".join(allowed) if allowed else "none"
    raise UnknownOptionError(f"{where} got an unknown option {name!r}{hint}{more}; valid options: {listed}")
