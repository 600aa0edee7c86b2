"""Tests of pyomo_relu.io.affine: the one affine composer of the readers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pyomo_relu.io.affine import AffineMap, LayerChain


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_then_applies_self_first(rng: np.random.Generator) -> None:
    first = AffineMap(rng.normal(size=(4, 3)), rng.normal(size=4), ("a",))
    w, b = rng.normal(size=(2, 4)), rng.normal(size=2)
    composed = first.then(w, b, "b")
    x = rng.normal(size=3)
    np.testing.assert_allclose(composed.weights @ x + composed.bias, w @ (first.weights @ x + first.bias) + b)
    assert composed.names == ("a", "b")
    assert (composed.n_inputs, composed.n_outputs) == (3, 2)


def test_then_with_a_sparse_side_stays_sparse(rng: np.random.Generator) -> None:
    dense = AffineMap(rng.normal(size=(5, 3)), rng.normal(size=5))
    operator = sp.random_array((4, 5), density=0.4, rng=rng, format="csr")
    composed = dense.then(operator, np.ones(4))
    assert sp.issparse(composed.weights)
    np.testing.assert_allclose(composed.weights.toarray(), operator.toarray() @ dense.weights)
    np.testing.assert_allclose(composed.bias, operator @ dense.bias + 1.0)
    assert composed.names == ()


def test_identity_dense_and_sparse() -> None:
    assert np.array_equal(AffineMap.identity(3).weights, np.eye(3))
    sparse = AffineMap.identity(3, ("x",), sparse=True)
    assert sp.issparse(sparse.weights) and np.array_equal(sparse.weights.toarray(), np.eye(3))
    assert sparse.names == ("x",) and not sparse.bias.any()


def test_chain_composes_affine_pieces_into_one_layer(rng: np.random.Generator) -> None:
    w1, b1, w2, b2 = rng.normal(size=(4, 2)), rng.normal(size=4), rng.normal(size=(3, 4)), rng.normal(size=3)
    chain = LayerChain((2,))
    chain.affine(w1, b1, "dense")
    chain.affine(w2, b2, "dense_1")
    chain.activation("relu", "relu")
    chain.affine(np.eye(3)[:1], np.zeros(1), "out")
    layers = chain.finish()
    assert [(layer.name, layer.activation) for layer in layers] == [("dense+dense_1+relu", "relu"), ("out", "linear")]
    np.testing.assert_allclose(layers[0].weights, w2 @ w1)
    np.testing.assert_allclose(layers[0].bias, w2 @ b1 + b2)


def test_chain_relu_after_relu_is_a_no_op_and_close_keeps_names() -> None:
    chain = LayerChain((2,))
    chain.affine(np.eye(2), np.zeros(2), "dense")
    chain.close("relu")
    chain.activation("again", "relu")
    assert [(layer.name, layer.activation) for layer in chain.finish()] == [("dense", "relu")]


def test_chain_activation_without_pending_is_an_identity_layer() -> None:
    chain = LayerChain((3,))
    chain.activation("clip", "clip", clip_low=0.0, clip_high=6.0)
    (layer,) = chain.finish()
    assert layer.name == "clip" and np.array_equal(layer.weights, np.eye(3))
    assert np.array_equal(layer.forward(np.array([[-1.0, 3.0, 9.0]])), [[0.0, 3.0, 6.0]])


def test_empty_chain_is_the_identity() -> None:
    (layer,) = LayerChain((2, 2)).finish()
    assert (layer.name, layer.activation, layer.n_inputs) == ("identity", "linear", 4)


def test_close_without_pending_is_refused() -> None:
    with pytest.raises(ValueError, match="pending"):
        LayerChain((1,)).close("relu")
