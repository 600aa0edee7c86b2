"""LeakyReLU, PReLU, Clip, mixed and smooth activations, and max layers, end to end.

For each layer type: the canonical (lowered) chain computes exactly what the layer
computes, every bounds method is sound on random networks (hypothesis), and the MILP
optimum over a small box is attained by its solution's forward pass and beats every
sampled input.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pe
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyomo_relu import DenseLayer, MaxLayer, NetworkDefinition, ReLUNetBlock, solve
from pyomo_relu.bounds import crown_bounds, interval_bounds, tighten
from pyomo_relu.errors import InvalidNetworkError, UnsupportedOperatorError
from pyomo_relu.network import layer_from_dict, layer_to_dict

TOL = 1e-7
KINDS = ["relu", "linear", "leaky_relu", "clip", "prelu", "relu6", "hardtanh", "min_only", "max", "mixed"]


def canonical_forward(net: NetworkDefinition, x: np.ndarray) -> np.ndarray:
    for layer in net.canonical_layers:
        x = layer.forward(x)
    return x


def hidden_layer(kind: str, n_in: int, rng: np.random.Generator) -> list:
    """One or two layers of ``kind`` reading ``n_in`` inputs."""
    n = int(rng.integers(2, 6))
    w, b = rng.normal(size=(n, n_in)), rng.normal(size=n) * 0.5
    if kind in ("relu", "linear"):
        return [DenseLayer(w, b, kind)]
    if kind == "leaky_relu":
        return [DenseLayer(w, b, "leaky_relu", alpha=float(rng.uniform(-0.5, 0.9)))]
    if kind == "prelu":
        return [DenseLayer(w, b, "leaky_relu", alpha=rng.uniform(0.0, 0.5, size=n))]
    if kind == "relu6":
        return [DenseLayer(w, b, "clip", clip_low=0.0, clip_high=1.0)]
    if kind == "hardtanh":
        return [DenseLayer(w, b, "clip", clip_low=-0.5, clip_high=0.5)]
    if kind == "min_only":
        return [DenseLayer(w, b, "clip", clip_high=0.3)]
    if kind == "clip":
        return [DenseLayer(w, b, "clip", clip_low=rng.uniform(-1, 0, size=n), clip_high=rng.uniform(0, 1, size=n))]
    if kind == "max":
        groups = np.sort(rng.integers(0, 3, size=n))
        groups = np.unique(groups, return_inverse=True)[1]
        return [MaxLayer(w, b, groups)]
    if kind == "smooth":
        return [DenseLayer(w, b, rng.choice(["sigmoid", "tanh", "softplus", "relu"], size=n).tolist())]
    kinds = rng.choice(["relu", "linear", "leaky_relu", "clip"], size=n).tolist()
    return [DenseLayer(w, b, kinds, alpha=0.2, clip_low=-0.3, clip_high=0.4)]


def random_network(rng: np.random.Generator, kinds: list[str], n_in: int = 2) -> NetworkDefinition:
    layers, width = [], n_in
    for kind in kinds:
        new = hidden_layer(kind, width, rng)
        layers += new
        width = new[-1].n_outputs
    layers.append(DenseLayer(rng.normal(size=(1, width)), [0.1], "linear"))
    return NetworkDefinition(layers, input_bounds=[(-1.0, 1.0)] * n_in)


@pytest.mark.parametrize("kind", KINDS)
def test_canonical_chain_computes_the_layer(kind: str, rng: np.random.Generator) -> None:
    net = random_network(rng, [kind, "relu"])
    x = rng.uniform(-1, 1, size=(500, 2))
    assert np.allclose(canonical_forward(net, x), net.evaluate(x), atol=1e-12)
    assert all(layer.is_canonical for layer in net.canonical_layers)


def test_lowering_keeps_the_last_layer_and_scalings(rng: np.random.Generator) -> None:
    from pyomo_relu.network import Scaling

    layers = [
        DenseLayer(rng.normal(size=(3, 2)), rng.normal(size=3), "relu"),
        DenseLayer(rng.normal(size=(2, 3)), rng.normal(size=2), "clip", clip_low=-0.2, clip_high=0.7),
    ]
    net = NetworkDefinition(
        layers,
        input_bounds=[(-1, 1)] * 2,
        input_scaling=Scaling([0.5, -1.0], [2.0, -3.0]),
        output_scaling=Scaling([1.0, 2.0], [-2.0, 0.5]),
    )
    x = rng.uniform(-1, 1, size=(300, 2))
    assert np.allclose(canonical_forward(net, x), net.evaluate(x), atol=1e-12)
    y = net.evaluate(x)
    assert np.all(y[:, 0] <= -0.2 * -2.0 + 1.0 + 1e-12)  # clip low * negative factor + offset


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), kinds=st.lists(st.sampled_from(KINDS + ["smooth"]), min_size=1, max_size=3))
def test_bounds_are_sound(seed: int, kinds: list[str]) -> None:
    rng = np.random.default_rng(seed)
    net = random_network(rng, kinds)
    x = np.vstack([rng.uniform(-1, 1, size=(3000, 2)), [[-1, -1], [-1, 1], [1, -1], [1, 1]]])
    pre = net.preactivations(x)
    interval = interval_bounds(net)
    crown = crown_bounds(net)
    lp = tighten(net, ["interval", "crown", "lp"], progress=False)
    for bounds in (interval, crown, lp):
        for k, values in enumerate(pre):
            assert np.all(values >= bounds.lower[k] - TOL), (bounds.methods, k)
            assert np.all(values <= bounds.upper[k] + TOL), (bounds.methods, k)
    for k in range(len(pre)):
        assert np.all(crown.lower[k] >= interval.lower[k] - TOL) and np.all(crown.upper[k] <= interval.upper[k] + TOL)


def test_smooth_lines_tighten_crown_and_lp(rng: np.random.Generator) -> None:
    """Through a wide sigmoid/tanh/softplus layer, CROWN and LP beat interval bounds on the output."""
    layers = [
        DenseLayer(rng.normal(size=(6, 2)) * 2, rng.normal(size=6), ["sigmoid", "tanh", "softplus"] * 2),
        DenseLayer(rng.normal(size=(1, 6)), [0.0], "linear"),
    ]
    net = NetworkDefinition(layers, input_bounds=[(-1, 1)] * 2)
    width = {
        chain[-1]: float(b.upper[-1][0] - b.lower[-1][0])
        for chain in (["interval"], ["crown"], ["interval", "lp"])
        for b in [tighten(net, chain, progress=False)]
    }
    assert width["crown"] < width["interval"] - 1e-3 and width["lp"] < width["interval"] - 1e-3
    samples = net.evaluate(rng.uniform(-1, 1, size=(20000, 2)))[:, 0]
    b = tighten(net, ["interval", "crown", "lp"], progress=False)
    assert b.lower[-1][0] <= samples.min() + 1e-9 and samples.max() <= b.upper[-1][0] + 1e-9


def test_two_sided_clip_interval_bounds_are_exact() -> None:
    """The nested lowering keeps clip's range: [0, 6] for ReLU6 of a wide input."""
    net = NetworkDefinition(
        [DenseLayer([[10.0]], [0.0], "clip", clip_low=0.0, clip_high=6.0), DenseLayer([[1.0]], [0.0], "linear")],
        input_bounds=[(-1, 1)],
    )
    b = interval_bounds(net)
    assert (b.lower[-1][0], b.upper[-1][0]) == (0.0, 6.0)


def optimise(
    net: NetworkDefinition, sense: int, formulation: object = "bigm", bounds: object = "interval"
) -> tuple[float, np.ndarray, float]:
    m = pe.ConcreteModel()
    m.x = pe.Var(range(net.n_inputs))
    m.y = pe.Var()
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=m.x, outputs=[m.y], formulation=formulation, bounds=bounds)
    m.obj = pe.Objective(expr=m.y, sense=sense)
    result = solve(m, "highs", time_limit=60)
    assert result.status == "optimal", result
    x = np.array([m.x[i].value for i in range(net.n_inputs)])
    return float(result.objective), x, m.nn.get_error()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bounds", ["interval", ["interval", "crown", "lp"]])
def test_milp_optimum_is_attained_and_beats_samples(kind: str, bounds: object, rng: np.random.Generator) -> None:
    net = random_network(rng, [kind, "relu"])
    samples = net.evaluate(rng.uniform(-1, 1, size=(20000, 2)))[:, 0]
    for sense, best in ((pe.minimize, samples.min()), (pe.maximize, samples.max())):
        objective, x, error = optimise(net, sense, bounds=bounds)
        assert abs(net.evaluate(x)[0] - objective) < 1e-6
        assert error < 1e-6
        assert (objective <= best + 1e-7) if sense == pe.minimize else (objective >= best - 1e-7)


@pytest.mark.parametrize("formulation", ["gdp.hull", ("partition", {"n": 2}), "extended"])
def test_other_formulations_agree_on_leaky_and_max(formulation: object, rng: np.random.Generator) -> None:
    net = random_network(rng, ["leaky_relu", "max", "clip"])
    for sense in (pe.minimize, pe.maximize):
        reference, _, _ = optimise(net, sense)
        objective, x, error = optimise(net, sense, formulation)
        assert abs(objective - reference) < 1e-6 and error < 1e-6


def test_max_layer_model_has_binaries_only_for_open_groups() -> None:
    # group 0: rows x0, x1 (both can win); group 1: x0 + 5 always beats x1 - 5 (no binary)
    layer = MaxLayer([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], [0.0, 0.0, 5.0, -5.0], [0, 0, 1, 1])
    net = NetworkDefinition([layer, DenseLayer([[1.0, -1.0]], [0.0], "linear")], input_bounds=[(-1, 1)] * 2)
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net)
    assert m.nn.stats()["binaries"] == 2
    assert m.nn.stats()["layers"][0]["unstable"] == 1


def test_max_affine_big_m_uses_the_shared_input() -> None:
    """Anderson et al.'s constant: max over the box of z_k - z_i, smaller than u_max - l_i."""
    from pyomo_relu.formulations.base import LayerContext
    from pyomo_relu.formulations.max_affine import big_m

    layer = MaxLayer([[1.0, 1.0], [1.0, 1.1]], [0.0, 0.0], [0, 0])
    lower, upper = np.array([-2.0, -2.1]), np.array([2.0, 2.1])
    ctx = LayerContext(
        None,
        0,
        layer,
        [object(), object()],
        None,
        np.array([-1.0, -1.0]),
        np.array([1.0, 1.0]),
        lower,
        upper,
        np.array([0, 1]),
    )
    m = big_m(ctx, np.array([0, 1]))
    assert np.allclose(m, [0.1, 0.1])  # naive: 2.1 + 2 and 2.1 + 2.1


def test_smooth_activations_are_refused_by_milp_formulations() -> None:
    net = NetworkDefinition(
        [DenseLayer([[1.0], [2.0]], [0.0, 0.5], ["tanh", "sigmoid"]), DenseLayer([[1.0, 1.0]], [0.0], "linear")],
        input_bounds=[(-1, 1)],
    )
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    with pytest.raises(UnsupportedOperatorError, match="tanh.*complementarity"):
        m.nn.build(net, formulation="bigm")
    assert net.has_smooth_activations


def test_smooth_activations_solve_with_scip() -> None:
    pytest.importorskip("pyscipopt")
    net = NetworkDefinition(
        [
            DenseLayer([[1.0], [-2.0], [1.5]], [0.0, 0.5, -0.2], ["sigmoid", "softplus", "relu"]),
            DenseLayer([[1.0, -1.0, 1.0]], [0.0], "linear"),
        ],
        input_bounds=[(-2, 2)],
    )
    m = pe.ConcreteModel()
    m.x = pe.Var()
    m.y = pe.Var()
    m.nn = ReLUNetBlock()
    m.nn.build(net, inputs=[m.x], outputs=[m.y], formulation=("complementarity", {"reformulation": "product"}))
    m.obj = pe.Objective(expr=m.y, sense=pe.maximize)
    result = solve(m, "scip", time_limit=60)
    grid = net.evaluate(np.linspace(-2, 2, 40001)[:, None])[:, 0]
    assert result.status == "optimal"
    assert abs(result.objective - grid.max()) < 1e-4
    assert m.nn.get_error() < 1e-5


def test_layer_validation_names_the_problem() -> None:
    with pytest.raises(InvalidNetworkError, match="alpha"):
        DenseLayer([[1.0]], [0.0], "leaky_relu")
    with pytest.raises(InvalidNetworkError, match="clip_low 1.0 > clip_high 0.0"):
        DenseLayer([[1.0]], [0.0], "clip", clip_low=1.0, clip_high=0.0)
    with pytest.raises(InvalidNetworkError, match="none empty"):
        MaxLayer(np.eye(2), np.zeros(2), [0, 2])
    with pytest.raises(InvalidNetworkError, match="gelu"):
        DenseLayer([[1.0]], [0.0], "gelu")


@pytest.mark.parametrize("kind", ["mixed", "max", "clip", "prelu"])
def test_layers_round_trip_through_dicts(kind: str, rng: np.random.Generator) -> None:
    net = random_network(rng, [kind])
    again = NetworkDefinition(
        [layer_from_dict(layer_to_dict(layer)) for layer in net.layers], input_bounds=[(-1, 1)] * 2
    )
    assert again.content_hash() == net.content_hash()


def _pool_network(rng: np.random.Generator) -> NetworkDefinition:
    """relu(dense) -> 2x2-style max pooling over overlapping windows -> dense."""
    hidden = DenseLayer(rng.normal(size=(6, 3)), rng.normal(size=6) * 0.3, "relu")
    windows = [0, 1, 2, 1, 2, 3, 3, 4, 5, 4, 5, 0]
    pool = MaxLayer(np.eye(6)[windows], np.zeros(len(windows)), np.repeat(np.arange(4), 3))
    return NetworkDefinition(
        [hidden, pool, DenseLayer(rng.normal(size=(1, 4)), [0.0], "linear")], input_bounds=[(-1, 1)] * 3
    )


@pytest.mark.parametrize("formulation", ["gdp.hull", "gdp.bigm", "gdp.mbigm", "gdp"])
def test_max_layers_as_disjunctions(formulation: str, rng: np.random.Generator) -> None:
    net = _pool_network(rng)
    for sense in (pe.minimize, pe.maximize):
        reference, _, _ = optimise(net, sense)
        if formulation == "gdp":
            m = pe.ConcreteModel()
            m.nn = ReLUNetBlock()
            m.nn.build(net, formulation="gdp")
            assert m.nn.layer[1].component("max_disjunction") is not None
            pe.TransformationFactory("gdp.hull").apply_to(m)
            m.obj = pe.Objective(expr=m.nn.outputs[0], sense=sense)
            result = solve(m, "highs", time_limit=60)
            objective, error = result.objective, m.nn.get_error()
        else:
            objective, _, error = optimise(net, sense, formulation)
        assert abs(objective - reference) < 1e-6 and error < 1e-6


def test_hull_of_max_pooling_is_at_least_as_tight_as_big_m(rng: np.random.Generator) -> None:
    """Root LP bounds: the hull of each max (Anderson et al.'s ideal form) never loses to big-M."""
    tighter = 0
    for seed in range(6):
        net = _pool_network(np.random.default_rng(seed))
        bounds = {}
        for formulation in ("bigm", "gdp.hull"):
            m = pe.ConcreteModel()
            m.nn = ReLUNetBlock()
            m.nn.build(net, formulation={"default": "bigm", 1: formulation}, bounds="interval")
            m.obj = pe.Objective(expr=m.nn.outputs[0], sense=pe.maximize)
            pe.TransformationFactory("core.relax_integer_vars").apply_to(m)
            bounds[formulation] = solve(m, "highs").objective
        assert bounds["gdp.hull"] <= bounds["bigm"] + 1e-7
        tighter += bounds["gdp.hull"] < bounds["bigm"] - 1e-6
    assert tighter >= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verify_on_max_layer_networks_agrees_with_the_milp(seed: int) -> None:
    """Splitting and MILP paths of verify() on a 2-input network with max layers and leaky/clip neurons."""
    from pyomo_relu.verify import Case, Polytope, Specification, verify

    net = random_network(np.random.default_rng(seed), ["leaky_relu", "max", "clip"])
    best, _, _ = optimise(net, pe.maximize)
    for threshold, expected in ((best - 0.05, "sat"), (best + 0.05, "unsat")):
        unsafe = Polytope([[-1.0]], [-threshold])  # y >= threshold
        spec = Specification(2, 1, (Case(net.input_lower, net.input_upper, (unsafe,)),))
        for split in (True, False):
            result = verify(net, spec, time_limit=60, split=split)
            assert result.status == expected, (threshold, split, result)
            if expected == "sat":
                assert net.evaluate(result.counterexample[0])[0] >= threshold - 1e-9


def test_leaky_relu_rows_are_written_once(rng: np.random.Generator) -> None:
    """The lowering's linear copy of z is tied to relu's pre-activation, not rebuilt from the weights."""
    net = NetworkDefinition(
        [
            DenseLayer(rng.normal(size=(5, 4)), rng.normal(size=5) * 0.2, "leaky_relu", alpha=0.1),
            DenseLayer(rng.normal(size=(1, 5)), [0.0], "linear"),
        ],
        input_bounds=[(-1, 1)] * 4,
    )
    m = pe.ConcreteModel()
    m.nn = ReLUNetBlock()
    m.nn.build(net)
    sizes = sorted(len(list(pe.expr.identify_variables(c.body))) for c in m.nn.layer[0].affine.values())
    assert sizes.count(2) >= 1 and max(sizes) == 5  # copies have two terms, originals fan-in + 1
    objective, x, error = optimise(net, pe.maximize)
    assert error < 1e-6 and abs(net.evaluate(x)[0] - objective) < 1e-6
