"""The generated pages of the site: the formulation gallery and the benchmark pages.

``mkdocs build`` runs this file (the ``gen-files`` plugin, ``mkdocs.yml``): the pages and
their figures are written into the build, never into the source tree.
``write_pages(folder)`` writes the same files to a folder (``tests/test_docs.py`` runs
their code blocks from there); ``python docs/gen_pages.py OUT`` does it by hand.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_pages(out: Path) -> list[str]:
    """Write ``gallery.md``, ``benchmarks.md`` and ``img/*.png`` into ``out``; the page names."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gallery.md").write_text(_module("gen_gallery").page(out))
    (out / "benchmarks.md").write_text(_module("gen_benchmarks").page(out))
    return ["gallery.md", "benchmarks.md"]


def _into_build() -> None:
    """Copy freshly generated files into the MkDocs build (the gen-files plugin's files)."""
    import mkdocs_gen_files

    with tempfile.TemporaryDirectory() as folder:
        write_pages(Path(folder))
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                with mkdocs_gen_files.open(path.relative_to(folder).as_posix(), "wb") as f:
                    f.write(path.read_bytes())


if __name__ == "__main__":
    print(write_pages(Path(sys.argv[1])))
elif __name__ == "<run_path>":
    _into_build()
