"""A MIP start for :func:`~pyomo_relu.train.train_relu_mip`: a few hundred steps of gradient descent in numpy.

Left alone, HiGHS can spend the whole time limit on a training MIP without finding more
than the trivial classifier (all weights 0: the majority class); a start network trained by
full-batch Adam on the cross-entropy, with its weights and biases projected onto the MIP's
boxes after every step, gives it a good incumbent at once.  The MIP then improves on it
and proves a bound.  Deterministic (seeded); numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pyomo_relu.network import DenseLayer, NetworkDefinition

__all__ = ["gradient_start"]


def _adam(param: np.ndarray, grad: np.ndarray, state: list[np.ndarray], step: int, lr: float) -> np.ndarray:
    """One Adam step (betas 0.9, 0.999); ``state`` holds the two moments and is updated in place."""
    state[0] = 0.9 * state[0] + 0.1 * grad
    state[1] = 0.999 * state[1] + 0.001 * grad**2
    m_hat, v_hat = state[0] / (1 - 0.9**step), state[1] / (1 - 0.999**step)
    return param - lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def gradient_start(
    X: np.ndarray,
    y: np.ndarray,
    sizes: Sequence[int],
    ranges: tuple[Sequence[float], Sequence[float]],
    epochs: int = 300,
    lr: float = 0.05,
    seed: int = 0,
) -> NetworkDefinition:
    """A ReLU network ``sizes`` (linear last layer) fitted to ``(X, y)``.

    ``ranges`` are the bounds of the weights and of the biases per layer (as for the MIP).
    """
    rng = np.random.default_rng(seed)
    depth, (R, B) = len(sizes) - 1, ranges
    params = []
    for l in range(depth):
        scale = min(R[l], 1.0 / np.sqrt(sizes[l]))
        params += [rng.uniform(-scale, scale, size=(sizes[l + 1], sizes[l])), np.zeros(sizes[l + 1])]
    bounds = [bound for l in range(depth) for bound in (R[l], B[l])]
    states = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    target = np.eye(sizes[-1])[y]
    for step in range(1, epochs + 1):
        grads = _gradients(params, X, target)
        params = [
            np.clip(_adam(p, g, s, step, lr), -bound, bound) for p, g, s, bound in zip(params, grads, states, bounds)
        ]
    layers = [
        DenseLayer(params[2 * l], params[2 * l + 1], "linear" if l == depth - 1 else "relu") for l in range(depth)
    ]
    return NetworkDefinition(layers)


def _gradients(params: list[np.ndarray], X: np.ndarray, target: np.ndarray) -> list[np.ndarray]:
    """The gradients of the mean cross-entropy (softmax of the scores) by backpropagation."""
    depth = len(params) // 2
    inputs, pre = [X], []
    for l in range(depth):
        z = inputs[-1] @ params[2 * l].T + params[2 * l + 1]
        pre.append(z)
        inputs.append(np.maximum(z, 0.0))
    scores = pre[-1] - pre[-1].max(axis=1, keepdims=True)
    prob = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    g = (prob - target) / len(X)
    grads: list[np.ndarray] = [np.zeros(0)] * len(params)
    for l in reversed(range(depth)):
        grads[2 * l], grads[2 * l + 1] = g.T @ inputs[l], g.sum(axis=0)
        if l > 0:
            g = (g @ params[2 * l]) * (pre[l - 1] > 0)
    return grads
