"""What the benchmark scripts share: the reference cases and the RESULTS.md writer.

Networks are read with the package's own readers (``load_onnx``, ``read_vnnlib``), so a
benchmark measures exactly what users get.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pyomo_relu.io.onnx import load_onnx
from pyomo_relu.network import NetworkDefinition
from pyomo_relu.verify.vnnlib import read_vnnlib

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

MNIST = ("mnist_fc/onnx/mnist-net_256x2.onnx", "mnist_fc/vnnlib/prop_0_0.03.vnnlib")
ACAS = ("acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx", "acasxu/vnnlib/prop_1.vnnlib")


def vnnlib_box(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The input box of a property with a single box."""
    spec = read_vnnlib(path)
    if len(spec.cases) != 1:
        raise ValueError(f"{path}: expected one input box, found {len(spec.cases)}")
    return spec.cases[0].lower, spec.cases[0].upper


def network_on_box(onnx_file: str, vnnlib_file: str) -> NetworkDefinition:
    """A network from ``tests/data`` with the input box of a property from ``tests/data``."""
    return load_onnx(DATA / onnx_file, input_bounds=vnnlib_box(DATA / vnnlib_file))


def write_section(section: str, text: str) -> None:
    """Replace the ``section`` of RESULTS.md (or append it), keeping the others."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"{section}\n\n{text.strip()}\n\n"
    if pattern.search(existing):
        updated = pattern.sub(lambda _: block, existing, count=1)
    else:
        updated = existing.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(updated.rstrip("\n") + "\n")


def omlt_network(net: NetworkDefinition):
    """OMLT 1.2.2's NetworkDefinition from our canonical layers (same weights, same input box)."""
    from omlt.neuralnet import NetworkDefinition as OmltNetwork
    from omlt.neuralnet.layer import DenseLayer as OmltDense
    from omlt.neuralnet.layer import InputLayer

    lower, upper = net.input_lower, net.input_upper
    omlt_net = OmltNetwork(scaled_input_bounds={i: (float(lower[i]), float(upper[i])) for i in range(net.n_inputs)})
    previous = InputLayer([net.n_inputs])
    omlt_net.add_layer(previous)
    for layer in net.canonical_layers:
        dense = OmltDense(
            [layer.n_inputs],
            [layer.n_outputs],
            activation=layer.activation,
            weights=np.asarray(layer.weights).T,
            biases=layer.bias,
        )
        omlt_net.add_layer(dense)
        omlt_net.add_edge(previous, dense)
        previous = dense
    return omlt_net
