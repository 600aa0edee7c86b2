"""The documentation site: every python code block of every page runs, and the strict build passes.

Pages are executed one at a time, their ``python`` blocks in order in one namespace (a
page reads like a script), from the repository root.  A failure names the page and the
block (its number and first line in the page).  ``bash`` blocks may hold only the two
make commands and ``pip install`` of declared extras (checked against the Makefile and
setup.py) or ``pyomo-relu`` commands, which are run in-process and must exit 0.
Generated pages (gallery, benchmarks) are executed too, from the generators' output.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def code_blocks(text: str) -> list[tuple[str, int, str]]:
    """``(language, line, code)`` of each fenced block of a Markdown page, in order."""
    return [(m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)]


def run_page(name: str, text: str) -> None:
    """Execute the python blocks of one page in order; check its bash blocks."""
    namespace: dict = {"__name__": f"docs_{name}"}
    for number, (language, line, code) in enumerate(code_blocks(text), 1):
        where = f"{name}, block {number} (line {line}: {code.strip().splitlines()[0] if code.strip() else ''!r})"
        try:
            if language == "python":
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(code, f"<{name} block {number}>", "exec"), namespace)
            elif language == "bash":
                check_commands(code)
        except Exception as error:  # noqa: BLE001 - reported with the page and block
            pytest.fail(f"{where} failed: {type(error).__name__}: {error}")


def check_commands(code: str) -> None:
    """Each line of a bash block: a make target that exists, a declared extra, or a CLI run."""
    from pyomo_relu.cli import main

    makefile = (ROOT / "Makefile").read_text()
    setup = (ROOT / "setup.py").read_text()
    for line in filter(None, (raw.split("#")[0].strip() for raw in code.splitlines())):
        words = shlex.split(line)
        if words[0] == "make":
            assert re.search(rf"^{re.escape(words[1])}:", makefile, re.M), f"no make target {words[1]!r}"
        elif words[:2] == ["pip", "install"]:
            for extra in re.findall(r"\[([\w,]+)\]", line)[0].split(",") if "[" in line else []:
                assert extra == "all" or f'"{extra}":' in setup, f"no extra {extra!r} in setup.py"
        elif words[0] == "pyomo-relu":
            with contextlib.redirect_stdout(io.StringIO()):
                code_ = main(words[1:])
            assert code_ == 0, f"{line!r} exited {code_}"
        else:
            raise AssertionError(f"{line!r}: a bash block may hold only make, pip install or pyomo-relu lines")


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("page", PAGES)
def test_page_code_runs(page: str) -> None:
    run_page(page, (DOCS / page).read_text())


def test_generated_pages_code_runs(tmp_path: Path) -> None:
    sys.path.insert(0, str(DOCS))
    try:
        import gen_pages
    finally:
        sys.path.remove(str(DOCS))
    pages = gen_pages.write_pages(tmp_path)
    assert {"gallery.md", "benchmarks.md"} <= set(pages)
    for name in pages:
        run_page(name, (tmp_path / name).read_text())


def test_code_blocks_found_and_failures_named() -> None:
    text = "# t\n\n```python\nx = 1\n```\n\ntext\n\n```python\nassert x == 2, 'x'\n```\n"
    assert [(lang, line) for lang, line, _ in code_blocks(text)] == [("python", 3), ("python", 9)]
    with pytest.raises(pytest.fail.Exception, match=r"t\.md, block 2 \(line 9: \"assert x == 2, 'x'\"\)"):
        run_page("t.md", text)
    with pytest.raises(pytest.fail.Exception, match="may hold only"):
        run_page("t.md", "```bash\nrm -rf /tmp/x\n```\n")


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """The site builds with warnings as errors (what ``make docs`` runs)."""
    env = dict(
        os.environ, DISABLE_MKDOCS_2_WARNING="true", NO_MKDOCS_2_WARNING="1", MPLBACKEND="Agg", KERAS_BACKEND="torch"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "block" / "index.html").exists()
    assert (tmp_path / "site" / "gallery" / "index.html").exists()
