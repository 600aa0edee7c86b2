"""Bound quality on the MNIST boxes of the VNN-COMP instances: crown vs alpha-crown vs lp.

    python benchmarks/vnncomp_bounds.py            # writes '## VNN-COMP (all): bound quality'
    python benchmarks/vnncomp_bounds.py --no-write

For the box of each listed property (``tests/data`` for 256x2 prop 0, as in the bounds
benchmark; ``../shared/cases`` for the 256x4 ones, skipped when absent), ``tighten`` runs the
chains ``interval, crown``, ``interval, crown, alpha-crown`` and ``interval, crown, lp``.
Reported: unstable ReLUs (``l < 0 < u``) over the hidden layers, the mean width ``u - l``
of every hidden pre-activation, and the median wall seconds of ``repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
from common import DATA, write_section  # noqa: E402
from vnncomp import shared_cases  # noqa: E402

from pyomo_relu.bounds import Bounds, tighten  # noqa: E402
from pyomo_relu.io.onnx import load_onnx  # noqa: E402
from pyomo_relu.network import NetworkDefinition  # noqa: E402
from pyomo_relu.verify import read_vnnlib  # noqa: E402

SECTION = "## VNN-COMP (all): bound quality"
CHAINS = {
    "crown": ["interval", "crown"],
    "alpha-crown": ["interval", "crown", "alpha-crown"],
    "lp": ["interval", "crown", "lp"],
}


def boxes() -> list[tuple[str, NetworkDefinition, np.ndarray, np.ndarray]]:
    """``(name, network, lower, upper)`` for every box whose files exist."""
    found = []
    shared = shared_cases() / "mnist_fc"
    listed = [("256x2", DATA / "mnist_fc", "prop_0_0.03")] + [
        ("256x4", shared, prop) for prop in ("prop_0_0.03", "prop_6_0.03", "prop_8_0.03")
    ]
    for size, folder, prop in listed:
        onnx = Path(folder) / "onnx" / f"mnist-net_{size}.onnx"
        if not onnx.exists():
            onnx = Path(folder) / f"mnist-net_{size}.onnx"
        vnnlib = Path(folder) / "vnnlib" / f"{prop}.vnnlib"
        if not vnnlib.exists():
            vnnlib = Path(folder) / f"{prop}.vnnlib"
        if not (onnx.exists() and vnnlib.exists()):
            print(f"skipped mnist-net_{size} {prop}: files absent under {folder}", file=sys.stderr)
            continue
        lower, upper = read_vnnlib(vnnlib).input_boxes[0]
        found.append((f"mnist-net_{size} {prop}", load_onnx(onnx), lower, upper))
    return found


def quality(bounds: Bounds) -> tuple[int, float]:
    """Unstable hidden ReLUs and the mean width of the hidden pre-activations."""
    hidden = range(len(bounds.lower) - 1)
    unstable = sum(int(np.sum((bounds.lower[k] < 0) & (bounds.upper[k] > 0))) for k in hidden)
    widths = np.concatenate([bounds.upper[k] - bounds.lower[k] for k in hidden])
    return unstable, float(np.mean(widths))


def measure(repeats: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, net, lower, upper in boxes():
        for method, chain in CHAINS.items():
            seconds, bounds = [], None
            for _ in range(repeats):
                began = time.perf_counter()
                bounds = tighten(net, chain, input_bounds=(lower, upper), progress=False)
                seconds.append(time.perf_counter() - began)
            assert bounds is not None
            unstable, width = quality(bounds)
            rows.append(
                {"box": name, "method": method, "unstable": unstable, "width": width, "s": statistics.median(seconds)}
            )
            print(f"{name:32s} {method:12s} unstable {unstable:4d}  mean width {width:8.4f}  {rows[-1]['s']:.2f} s")
    return rows


def table(rows: list[dict[str, object]], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        "The input boxes of MNIST properties (eps = 0.03): `tighten` with the chain ending in each method "
        "(`interval, crown`; `interval, crown, alpha-crown` with 20 projected Adam steps per layer; "
        "`interval, crown, lp`, serial).  Unstable = hidden ReLUs with `l < 0 < u`; width = mean `u - l` "
        "over every hidden pre-activation; seconds = median wall time (BLAS single-threaded).",
        "",
        "| box | method | unstable ReLUs | mean width | seconds |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['box']} | {r['method']} | {r['unstable']} | {r['width']:.4f} | {r['s']:.2f} |")
    try:
        lines += ["", f"Load average {os.getloadavg()[0]:.1f} at the end of the run, {os.cpu_count()} CPUs."]
    except OSError:
        pass
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = "python benchmarks/vnncomp_bounds.py" + (
        " " + " ".join(sys.argv[1:] if argv is None else argv) if (argv or sys.argv[1:]) else ""
    )
    text = table(measure(args.repeats), command)
    print("\n" + text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
