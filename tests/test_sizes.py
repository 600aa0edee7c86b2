"""The package's size limits (issue 17): no module over 600 lines, no function over 60.

``tools/check_sizes.py`` measures them with ``ast``; this runs it on ``pyomo_relu/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "check_sizes.py"


def check_sizes(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, paths)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_check_sizes_reports_an_oversized_function(tmp_path: Path) -> None:
    """The script itself: a 61-line function and a 601-line module are reported, small ones are not."""
    big = tmp_path / "big.py"
    big.write_text("def long():\n" + "    x = 1\n" * 60 + "\n" * 540)
    small = tmp_path / "small.py"
    small.write_text("def short():\n    return 1\n")
    report = check_sizes(big, small)
    assert report.returncode == 1
    assert "function long of 61 lines" in report.stdout and "module of 601 lines" in report.stdout
    assert "small.py" not in report.stdout
    assert check_sizes(small).returncode == 0


def test_package_within_size_limits() -> None:
    report = check_sizes(ROOT / "pyomo_relu")
    assert report.returncode == 0 and not report.stdout.strip(), report.stdout


def test_verify_is_one_thing_whatever_is_imported_first() -> None:
    """``pyomo_relu.verify`` is the verification package in every import order; its function is ``.verify``."""
    orders = [
        "import pyomo_relu as p; m = p.verify",
        "from pyomo_relu import verify as m",
        "import pyomo_relu.verify.decide; import pyomo_relu as p; m = p.verify",
        "from pyomo_relu.verify import verify as f; import pyomo_relu as p; m = p.verify",
    ]
    for order in orders:
        code = f"{order}; import types; assert isinstance(m, types.ModuleType), m; assert callable(m.verify)"
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert run.returncode == 0, (order, run.stderr)
