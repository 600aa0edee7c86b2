"""Small data sets for MIP training: scikit-learn's 8x8 digits, downsampled (and thresholded)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pooled_digits(
    classes: Sequence[int] = (0, 1), n_train: int = 100, n_test: int = 200, pool: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_test, y_test)``: digits of ``classes`` (labels 0.. in that order).

    Each 8x8 image (values 0-16) is mean-pooled over ``pool`` x ``pool`` blocks (``pool=2``:
    4x4 = 16 inputs, as the MIP papers downsample) and scaled to ``[0, 1]``.  The examples are
    shuffled with ``seed`` and split into the first ``n_train`` and the next ``n_test`` (fewer
    if the classes have fewer examples).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.isin(digits.target, classes)
    side = 8 // pool
    images = digits.images[keep].reshape(-1, side, pool, side, pool).mean(axis=(2, 4))
    X = images.reshape(len(images), -1) / 16.0
    y = np.array([list(classes).index(t) for t in digits.target[keep]])
    order = np.random.default_rng(seed).permutation(len(y))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    return X[train], y[train], X[test], y[test]


def binary_digits(
    classes: Sequence[int] = (0, 1),
    n_train: int = 100,
    n_test: int = 200,
    pool: int = 2,
    threshold: float = 8.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pooled_digits` thresholded to 0/1 at ``threshold`` (on the 0-16 scale of the images)."""
    X, y, X_test, y_test = pooled_digits(classes, n_train, n_test, pool, seed)
    binary = lambda A: (A >= threshold / 16.0).astype(float)  # noqa: E731
    return binary(X), y, binary(X_test), y_test
