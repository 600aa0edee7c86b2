"""Tests of pyomo_relu.io.torch: direct nn.Sequential reading and the ONNX fallback."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from pyomo_relu.errors import ModelLoadError, OptionalDependencyError, ShapeMismatchError, UnsupportedOperatorError  # noqa: E402
from pyomo_relu.io.torch import load_torch  # noqa: E402
from pyomo_relu.network import NetworkDefinition  # noqa: E402


# ------------------------------------------------------------------ helpers
def _check_matches(net: NetworkDefinition, module: nn.Module, shape: tuple[int, ...], seed: int = 0) -> None:
    """``net.evaluate`` equals ``module(x)`` (eval mode) on 100 random inputs within 1e-5."""
    x = torch.from_numpy(np.random.default_rng(seed).uniform(-2, 2, (100, *shape))).float()
    training = module.training
    module.eval()
    with torch.no_grad():
        expected = module(x).double().numpy().reshape(100, -1)
    module.train(training)
    got = net.evaluate(x.double().numpy().reshape(100, -1))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 1e-2  # the comparison can fail: the outputs vary


def _randomize_batchnorm(bn: nn.BatchNorm1d, seed: int) -> None:
    """Non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) * 3 + 0.2)
        if bn.affine:
            bn.weight.copy_(torch.randn(bn.num_features, generator=g))
            bn.bias.copy_(torch.randn(bn.num_features, generator=g))


def _flags(module: nn.Module) -> list[bool]:
    return [m.training for m in module.modules()]


# ---------------------------------------------------------- direct Sequential
def test_plain_sequential_matches_and_composes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    net = load_torch(model, input_bounds=[(-1, 1)] * 3)
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "linear"]
    assert [layer.name for layer in net.layers] == ["0+1", "2+3", "4"]
    assert net.input_shape == (3,)
    assert net.input_lower.tolist() == [-1, -1, -1]
    _check_matches(net, model, (3,))


def test_nested_sequential_dropout_identity_flatten() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(6, 10), nn.Dropout(0.3), nn.ReLU()),
        nn.Identity(),
        nn.Sequential(nn.Sequential(nn.Linear(10, 7), nn.ReLU()), nn.Dropout(0.5)),
        nn.Linear(7, 3),
        nn.Linear(3, 2),  # two affine maps in a row compose into one layer
    )
    model.train()  # dropout active in training: the reader must use eval semantics
    before = _flags(model)
    net = load_torch(model, example_input=torch.zeros(1, 2, 3))
    assert _flags(model) == before
    assert net.input_shape == (2, 3)
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "linear"]
    assert net.layers[0].name == "1.0+1.2"  # dropout is skipped
    assert net.layers[-1].name == "4+5"
    _check_matches(net, model, (2, 3))


def test_linear_on_last_axis_of_a_tensor() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    net = load_torch(model, example_input=torch.zeros(5, 2, 3))
    assert net.n_inputs == 6 and net.layers[0].n_outputs == 8
    _check_matches(net, model, (2, 3))


def test_batchnorm1d_running_stats_are_folded() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2), nn.BatchNorm1d(2, affine=False)
    )
    # a few training steps give non-trivial running statistics
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(5):
        x = torch.randn(32, 4) * 2 + 1
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert not torch.allclose(model[1].running_mean, torch.zeros(6))
    before = _flags(model)
    net = load_torch(model)
    assert _flags(model) == before and model.training
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]
    _check_matches(net, model, (4,))
    # with weights set directly (larger effect than a few steps)
    _randomize_batchnorm(model[1], 7)
    _check_matches(load_torch(model), model, (4,), seed=1)


def test_batchnorm1d_on_channels_and_length() -> None:
    torch.manual_seed(4)
    bn = nn.BatchNorm1d(3)
    _randomize_batchnorm(bn, 4)
    model = nn.Sequential(bn, nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
    net = load_torch(model, example_input=torch.zeros(1, 3, 4))
    _check_matches(net, model, (3, 4))


def test_batchnorm_without_running_stats_is_refused() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False))
    with pytest.raises(UnsupportedOperatorError, match=r"'1' \(BatchNorm1d\).*track_running_stats"):
        load_torch(model)


def test_first_relu_and_empty_affine() -> None:
    model = nn.Sequential(nn.ReLU(), nn.ReLU(), nn.Linear(3, 1))
    net = load_torch(model)
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]
    _check_matches(net, model, (3,))


def test_sequential_of_only_relu_needs_example_input() -> None:
    with pytest.raises(ModelLoadError, match="example_input"):
        load_torch(nn.Sequential(nn.ReLU()))
    net = load_torch(nn.Sequential(nn.ReLU()), example_input=torch.zeros(1, 4))
    assert net.n_inputs == 4
    np.testing.assert_array_equal(net.evaluate([[-1.0, 2.0, -3.0, 4.0]]), [[0, 2, 0, 4]])


# ------------------------------------------------------------------ refusals
def test_unsupported_layer_named_by_path() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ELU(), nn.Linear(3, 1))
    with pytest.raises(UnsupportedOperatorError, match=r"'3' \(ELU\)") as info:
        load_torch(model)
    assert "Linear, ReLU" in str(info.value)  # lists what is supported
    nested = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.GELU()))
    with pytest.raises(UnsupportedOperatorError, match=r"'1.1' \(GELU\)"):
        load_torch(nested)


class _Encoder(nn.Module):
    def __init__(self, activation: nn.Module) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 5)
        self.act = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.lin(x))


class _Model(nn.Module):
    """A custom forward: reshape, an encoder, a scaled residual-free head, a bias shift."""

    def __init__(self, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = _Encoder(activation if activation is not None else nn.ReLU())
        self.norm = nn.BatchNorm1d(5)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x.view(x.shape[0], -1) * 0.5 - 1.0)
        h = torch.relu(self.drop(self.norm(h)))
        return self.head(h) / 3.0 + 0.25


def test_custom_module_through_onnx() -> None:
    torch.manual_seed(5)
    model = _Model()
    _randomize_batchnorm(model.norm, 5)
    model.train()
    before = _flags(model)
    net = load_torch(model, example_input=torch.zeros(8, 3))
    assert _flags(model) == before and model.training and model.drop.training
    assert net.input_shape == (3,)
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "linear"]
    _check_matches(net, model, (3,))


def test_custom_module_keeps_eval_mode_too() -> None:
    model = _Model().eval()
    load_torch(model, example_input=torch.zeros(1, 3))
    assert not any(_flags(model))


def test_custom_module_requires_example_input() -> None:
    with pytest.raises(ModelLoadError, match=r"example_input") as info:
        load_torch(_Model())
    assert "'<root>' (_Model)" in str(info.value)


def test_sequential_with_custom_child_goes_through_onnx() -> None:
    torch.manual_seed(6)
    model = nn.Sequential(_Encoder(nn.ReLU()), nn.Linear(5, 1))
    with pytest.raises(ModelLoadError, match=r"'0' \(_Encoder\).*example_input"):
        load_torch(model)
    net = load_torch(model, example_input=torch.zeros(1, 3))
    _check_matches(net, model, (3,))


def test_unflatten_and_batchnorm2d_go_through_onnx() -> None:
    torch.manual_seed(8)
    bn = nn.BatchNorm2d(3)
    _randomize_batchnorm(bn, 8)
    model = nn.Sequential(nn.Linear(4, 12), nn.Unflatten(1, (3, 2, 2)), bn, nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(ModelLoadError, match=r"'1' \(Unflatten\) is not read directly"):
        load_torch(model)
    net = load_torch(model, example_input=torch.zeros(1, 4))
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]
    _check_matches(net, model, (4,))


def test_gelu_in_custom_module_named_by_path() -> None:
    model = _Model(nn.GELU())
    model.train()
    with pytest.raises(UnsupportedOperatorError, match=r"'encoder.act' \(GELU\)"):
        load_torch(model, example_input=torch.zeros(1, 3))
    assert model.training and all(_flags(model))


class _FunctionalErf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(self.lin(x))


def test_functional_op_in_forward_is_refused() -> None:
    with pytest.raises(UnsupportedOperatorError, match=r"forward\(\) of _FunctionalErf.*Erf"):
        load_torch(_FunctionalErf(), example_input=torch.zeros(1, 2))
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), _FunctionalErf())
    with pytest.raises(UnsupportedOperatorError, match=r"'2' \(_FunctionalErf\).*op Erf"):
        load_torch(model, example_input=torch.zeros(1, 2))


def test_not_a_module_and_bad_example_input() -> None:
    with pytest.raises(ModelLoadError, match="torch.nn.Module"):
        load_torch(object())
    with pytest.raises(ShapeMismatchError, match="batch dimension"):
        load_torch(nn.Sequential(nn.Linear(3, 1)), example_input=torch.zeros(3))
    with pytest.raises(ShapeMismatchError, match=r"'0' \(Linear\) takes 3"):
        load_torch(nn.Sequential(nn.Linear(3, 1)), example_input=torch.zeros(1, 4))


def test_public_exports() -> None:
    import pyomo_relu
    import pyomo_relu.io

    assert pyomo_relu.load_torch is load_torch
    assert pyomo_relu.io.load_torch is load_torch


def test_missing_torch_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(sys.modules, "torch")
    with pytest.raises(OptionalDependencyError, match=r"pip install 'pyomo_relu\[torch\]'"):
        load_torch(None)
