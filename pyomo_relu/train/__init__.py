"""Training networks by mixed-integer programming: :func:`train_bnn` (:mod:`pyomo_relu.train.bnn`)."""

from pyomo_relu.train.bnn import TrainResult, count_correct, train_bnn

__all__ = ["TrainResult", "count_correct", "train_bnn"]
