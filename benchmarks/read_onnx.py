"""Reading speed of ``load_onnx``: this checkout against a peer checkout, in the same run.

Usage::

    python benchmarks/read_onnx.py --peer /work/main            # print the table
    python benchmarks/read_onnx.py --peer /work/main --write    # also "## Read ONNX" in RESULTS.md

The peer can be any checkout, e.g. a commit exported with ``git archive REV | tar -x -C DIR``.

Files: the 4 M-weight dense network of ``benchmarks/scale.py`` (784-1024x4-10, seed 0,
written by :func:`pyomo_relu.idaes_files.network_to_onnx`), the 45 ACAS Xu networks and the
two MNIST fully connected networks of ``../shared/cases``, and the ``mnist`` CNN of
``benchmarks/cnn.py`` (convolutions and max pooling, exported by torch).

Each repetition reads every file once in a fresh process per checkout (``PYTHONPATH`` set to
the checkout), the two checkouts alternating, so both see the same machine load; a case's
times (CPU, ``process_time``, and wall, ``perf_counter``; summed over the files of the case)
are the medians over the repetitions.  ``ratio`` is this checkout's time over the peer's
(below 1: faster); on a loaded machine the CPU ratio is the one to read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CASES = ROOT.parent / "shared" / "cases"
SECTION = "## Read ONNX"
_WARM_UP = "MNIST fc (2 files)"

_CHILD = """
import json, sys, time
from pyomo_relu.io.onnx import load_onnx
cases = json.loads(sys.argv[1])
load_onnx(sys.argv[2])  # warm-up: imports and first-call costs are not timed
times = {}
for name, files in cases.items():
    wall, cpu = time.perf_counter(), time.process_time()
    for path in files:
        load_onnx(path)
    times[name] = [time.process_time() - cpu, time.perf_counter() - wall]
import pyomo_relu
print(json.dumps({"times": times, "package": pyomo_relu.__file__}))
"""


def _files(folder: Path) -> dict[str, list[str]]:
    """The cases: name -> ONNX files (the dense and CNN files are written to ``folder``)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    import onnx
    from cnn import export
    from scale import random_network

    from pyomo_relu.idaes_files import network_to_onnx

    dense = folder / "dense_4M.onnx"
    onnx.save(network_to_onnx(random_network([784, 1024, 1024, 1024, 1024, 10])), dense)
    cnn, _, _ = export("mnist")
    return {
        "dense 784-1024x4-10 (4.0 M weights)": [str(dense)],
        "ACAS Xu (45 files)": sorted(str(p) for p in (CASES / "acasxu" / "onnx").glob("*.onnx")),
        "MNIST fc (2 files)": sorted(str(p) for p in (CASES / "mnist_fc" / "onnx").glob("*.onnx")),
        "CNN mnist (conv + max pool)": [str(cnn)],
    }


def _read_all(checkout: Path, cases: dict[str, list[str]]) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(cases), cases[_WARM_UP][0]],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(result["package"]).resolve().is_relative_to(checkout.resolve()):
        raise RuntimeError(f"{checkout}: imported pyomo_relu from {result['package']}")
    return result["times"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", type=Path, required=True, help="the checkout to compare with (e.g. /work/main)")
    parser.add_argument("--peer-label", help="what the peer is, for the table (default: its path)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write the table to RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="read_onnx_") as folder:
        cases = _files(Path(folder))
        runs: dict[str, list[dict[str, list[float]]]] = {"this": [], "peer": []}
        for _ in range(args.repeats):
            runs["this"].append(_read_all(ROOT, cases))
            runs["peer"].append(_read_all(args.peer, cases))
    lines = [
        f"`python benchmarks/read_onnx.py --peer {args.peer} --repeats {args.repeats}`: median CPU seconds "
        "(`time.process_time`, robust to the load of a shared machine) and wall seconds of `load_onnx` over "
        "the repetitions, each checkout in its own process, alternating; ratio = this checkout / peer; "
        f"peer: {args.peer_label or args.peer}.",
        "",
        "| case | CPU this (s) | CPU peer (s) | CPU ratio | wall this (s) | wall peer (s) | wall ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in cases:
        cells = []
        for k in (0, 1):
            this = statistics.median(r[name][k] for r in runs["this"])
            peer = statistics.median(r[name][k] for r in runs["peer"])
            cells += [f"{this:.3f}", f"{peer:.3f}", f"{this / peer:.2f}"]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        from common import write_section

        write_section(SECTION, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
