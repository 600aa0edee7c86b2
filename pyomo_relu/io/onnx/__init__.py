"""Read an ONNX model of a ReLU network (dense or convolutional) into a NetworkDefinition.

Supported operators (default ONNX domain, opsets 8 to 21):

* affine: ``Gemm`` (``alpha``, ``beta``, ``transA``, ``transB``, with or without ``C``),
  ``MatMul`` (the input-dependent tensor on either side), ``Add``, ``Sub`` (constants on
  either side, with broadcasting), ``Mul``, ``Div`` (by constants), ``Neg``;
* layout: ``Flatten``, ``Reshape`` (shape input or, in old opsets, attribute; ``0`` and
  ``-1`` entries), ``Squeeze``, ``Unsqueeze`` (axes attribute or input), ``Transpose``,
  ``Identity``, ``Dropout`` (inference), ``Cast`` (to a float type), ``Shape``;
* ``BatchNormalization`` in inference mode (an affine per-channel map from the stored
  mean and variance; ``training_mode=1`` is refused);
* convolution and pooling: ``Conv`` (1-D, 2-D or 3-D; ``pads``, ``auto_pad``, ``strides``,
  ``dilations``, ``group``, optional bias; constant weights), ``AveragePool`` (``pads``,
  ``auto_pad``, ``strides``, ``dilations``, ``count_include_pad``, ``ceil_mode``),
  ``GlobalAveragePool`` and ``Concat`` (of input-dependent tensors and constants) are
  linear maps, kept *sparse* (CSR) from the input to the emitted layer; ``MaxPool`` (the
  same attributes; padding never wins) and ``GlobalMaxPool`` become a
  :class:`~pyomo_relu.network.MaxLayer` (a max of affine functions);
* activations: ``Relu``, ``LeakyRelu``, ``PRelu`` (constant slope, broadcast), ``Clip``
  (attributes before opset 11, constant inputs after), ``HardSigmoid`` (an affine map and
  a clip), and ``Sigmoid``, ``Tanh``, ``Softplus`` (smooth: NLP formulations only);
  ``Sign``, ``Greater``/``GreaterOrEqual``/``Less``/``LessOrEqual`` and ``Where`` as step
  neurons, exactly (:mod:`pyomo_relu.io.onnx.ops_step`);
* residual and skip connections: a tensor read after an activation (``Add`` of a skip,
  ``Concat`` of branches) is carried through the activation layer as linear neurons;
* ``Constant``;
* any other operator whose inputs are all constant (folded with :mod:`onnx.reference`);
* a trailing ``Softmax`` or ``LogSoftmax``, dropped only with ``drop_softmax=True``.

How it works: the graph is walked in topological order.  Every tensor is either a numpy
constant or an affine function ``value = A @ basis + c`` of the current *basis*, which is
the flattened network input at first and the output of the last activation afterwards.
Each activation (or max pooling) on an affine tensor emits one layer and starts a new basis;
a non-trivial affine map left at the graph output becomes a final ``"linear"`` layer.  So
consecutive linear operators (normalisation, ``Flatten``, ``MatMul`` and ``Add``, two
``Gemm`` in a row, ...) compose into a single layer.  The batch dimension (the first one
when symbolic) is taken as 1 and tensors are flattened in C order.

Where each concern lives: :mod:`~pyomo_relu.io.onnx.tensor` (affine tensors, the dense
limit :data:`~pyomo_relu.io.onnx.tensor.MAX_DENSE_ENTRIES`), :mod:`~pyomo_relu.io.onnx.algebra`
(linear algebra on them), :mod:`~pyomo_relu.io.onnx.node` (what a handler receives),
:mod:`~pyomo_relu.io.onnx.ops` (the handler table; one ``ops_*`` module per family),
:mod:`~pyomo_relu.io.onnx.windows` (convolution and pooling operators),
:mod:`~pyomo_relu.io.onnx.graph` (the file, its input and output, node order) and
:mod:`~pyomo_relu.io.onnx.converter` (the walk and the emitted layers).
"""

from __future__ import annotations

import logging
import os

import onnx

from pyomo_relu.io.onnx.converter import GraphConverter
from pyomo_relu.io.onnx.graph import MAX_INPUT_SIZE, read_model
from pyomo_relu.io.onnx.ops import SUPPORTED_OPS
from pyomo_relu.io.onnx.tensor import MAX_DENSE_ENTRIES  # its value; the limit read is tensor.MAX_DENSE_ENTRIES
from pyomo_relu.network import NetworkDefinition

logger = logging.getLogger(__name__)

__all__ = ["MAX_DENSE_ENTRIES", "MAX_INPUT_SIZE", "SUPPORTED_OPS", "load_onnx"]


def load_onnx(
    model: str | os.PathLike[str] | onnx.ModelProto,
    input_bounds: object = None,
    *,
    drop_softmax: bool = False,
) -> NetworkDefinition:
    """Read a ReLU network (dense or convolutional) from an ONNX file or ``ModelProto``.

    ``input_bounds`` is passed to :class:`NetworkDefinition` (any form it accepts), in the
    order of the flattened (C-order) input.  A trailing ``Softmax``/``LogSoftmax`` is
    dropped when ``drop_softmax`` is true, so the outputs are its input (the logits).

    Raises :class:`ModelLoadError` (missing or unreadable file, malformed graph),
    :class:`UnsupportedOperatorError` (operators or structures outside the list in the
    module docstring, several graph inputs or outputs, a trailing softmax without
    ``drop_softmax``), :class:`InvalidNetworkError` (NaN/Inf weights) and
    :class:`ShapeMismatchError` (inconsistent shapes, symbolic non-batch dimensions).

    >>> from onnx import TensorProto, helper
    >>> graph = helper.make_graph(
    ...     [helper.make_node("MatMul", ["x", "W"], ["h"]),
    ...      helper.make_node("Relu", ["h"], ["y"], name="relu")],
    ...     "tiny",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    ...     [helper.make_tensor("W", TensorProto.FLOAT, [2, 1], [1.0, -1.0])])
    >>> net = load_onnx(helper.make_model(graph), input_bounds=[(0, 1), (0, 1)])
    >>> print(net.summary())
    NetworkDefinition: 2 inputs -> 1 output, 1 layer (1 canonical)
    index  name  kind        inputs  outputs  canonical
        0  relu  dense relu       2        1  0
    >>> net.evaluate([[1.0, 0.25]]), net.input_shape
    (array([[0.75]]), (1, 2))
    """
    proto, source = read_model(model)
    converter = GraphConverter(proto, source, drop_softmax)
    layers = converter.convert()
    network = NetworkDefinition(layers, input_bounds, input_shape=converter.input_shape, source=source)
    logger.info("loaded %s from %s", network, source)
    return network
