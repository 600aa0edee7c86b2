"""Layers with scipy.sparse weights behave exactly like their dense twins, everywhere."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe
import pytest
import scipy.sparse as sp

from pyomo_relu import DenseLayer, MaxLayer, NetworkDefinition, ReLUNetBlock, solve
from pyomo_relu.bounds import tighten
from pyomo_relu.network import layer_from_dict, layer_to_dict


def _twins(rng: np.random.Generator) -> tuple[NetworkDefinition, NetworkDefinition]:
    def sparse_matrix(n: int, m: int) -> np.ndarray:
        w = rng.normal(size=(n, m))
        w[rng.uniform(size=(n, m)) < 0.6] = 0.0
        return w

    dense_layers = [
        (sparse_matrix(8, 4), rng.normal(size=8) * 0.3, "relu"),
        (sparse_matrix(6, 8), rng.normal(size=6) * 0.3, ("relu", "leaky_relu", "clip", "linear", "relu", "clip")),
    ]
    pool = (np.eye(6)[[0, 1, 2, 3, 4, 5, 1, 3]], np.zeros(8), [0, 0, 1, 1, 2, 2, 3, 3])
    head = (rng.normal(size=(1, 4)), [0.2])

    def build(to: callable) -> NetworkDefinition:
        layers = [DenseLayer(to(w), b, a, alpha=0.1, clip_low=-0.2, clip_high=0.5) for w, b, a in dense_layers]
        layers += [MaxLayer(to(pool[0]), pool[1], pool[2]), DenseLayer(to(head[0]), head[1], "linear")]
        return NetworkDefinition(layers, input_bounds=[(-1, 1)] * 4)

    return build(np.asarray), build(sp.csr_array)


def test_sparse_and_dense_twins_agree(rng: np.random.Generator) -> None:
    dense, sparse = _twins(rng)
    assert all(sp.issparse(layer.weights) for layer in sparse.canonical_layers)
    x = rng.uniform(-1, 1, size=(500, 4))
    np.testing.assert_allclose(sparse.evaluate(x), dense.evaluate(x), atol=1e-12)
    for chain in ("interval", ["interval", "crown"], ["interval", "crown", "lp"]):
        a, b = tighten(dense, chain, progress=False), tighten(sparse, chain, progress=False)
        for k in range(a.n_layers):
            np.testing.assert_allclose(b.lower[k], a.lower[k], atol=1e-8)
            np.testing.assert_allclose(b.upper[k], a.upper[k], atol=1e-8)
    for formulation in ("bigm", ("partition", {"n": 2}), "gdp.hull"):
        results = []
        for net in (dense, sparse):
            m = pe.ConcreteModel()
            m.nn = ReLUNetBlock()
            m.nn.build(net, formulation=formulation)
            m.obj = pe.Objective(expr=m.nn.outputs[0], sense=pe.maximize)
            result = solve(m, "highs", time_limit=60)
            assert result.status == "optimal" and m.nn.get_error() < 1e-6
            results.append((result.objective, m.nn.stats()["binaries"], m.nn.stats()["constraints"]))
        assert abs(results[0][0] - results[1][0]) < 1e-7 and results[0][1:] == results[1][1:]


def test_sparse_layers_round_trip_and_hash(rng: np.random.Generator) -> None:
    _, sparse = _twins(rng)
    again = NetworkDefinition([layer_from_dict(layer_to_dict(layer)) for layer in sparse.layers])
    assert again.content_hash() == sparse.content_hash()


def test_sparse_weights_with_nan_are_refused() -> None:
    from pyomo_relu.errors import InvalidNetworkError

    with pytest.raises(InvalidNetworkError, match="NaN"):
        DenseLayer(sp.csr_array(np.array([[np.nan, 0.0]])), [0.0])
