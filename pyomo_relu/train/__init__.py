"""Training networks by mixed-integer programming (Aftabi, Moradi & Mahroo).

* :func:`train_bnn` (:mod:`pyomo_relu.train.bnn`): binarized networks, integer weights;
* :func:`train_relu_mip` (:mod:`pyomo_relu.train.relu`): ReLU networks, bounded continuous
  first-layer weights and exactly linearised products after;
* both build their MIP in bulk (:mod:`pyomo_relu.train.program`) and return a
  :class:`TrainResult` (:mod:`pyomo_relu.train.result`).
"""

from pyomo_relu.train.bnn import train_bnn
from pyomo_relu.train.relu import train_relu_mip
from pyomo_relu.train.result import TrainResult, count_correct

__all__ = ["TrainResult", "count_correct", "train_bnn", "train_relu_mip"]
