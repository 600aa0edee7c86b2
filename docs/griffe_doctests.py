"""A Griffe extension for the API reference: doctests shown as code, Sphinx roles as names.

The package's docstrings carry doctests (``pytest --doctest-modules`` runs them) as bare
``>>>`` paragraphs, which Markdown would render as nested block quotes.  This extension,
loaded by mkdocstrings (``mkdocs.yml``), fences every unindented run of ``>>>`` lines and
their expected output as a ``pycon`` code block before the docstring is parsed.  Sphinx
roles (``:class:`~pyomo_relu.network.Scaling` ``, ``:func:`tighten` ``), which Markdown
does not know, become the code span of the name (the last part after ``~``).  The source
files are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj|py:\w+):`(~?)([^`]+)`")


def plain_roles(text: str) -> str:
    """``text`` with every Sphinx role replaced by a code span of its target."""
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


def fence_doctests(text: str) -> str:
    """``text`` with each unindented doctest paragraph (from ``>>>`` to a blank line) fenced."""
    out: list[str] = []
    in_fence = in_doctest = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if in_doctest and not line.strip():
            out.append("```")
            in_doctest = False
        elif not in_fence and not in_doctest and line.startswith(">>>"):
            out.append("```pycon")
            in_doctest = True
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence the bare doctests and flatten the roles of every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring once the object tree is complete."""
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(fence_doctests(obj.docstring.value))
