"""Activation modules: torch's constructors, names, state_dict, repr; the registry."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

import torchff
from torchff.nn import AbsReLU, BinaryStep, GeneralizedReLU, get_activation, list_activations, register_activation

# (torchff module, torch module) built with the same arguments
DROP_INS = {
    "ReLU()": (torchff.nn.ReLU(), nn.ReLU()),
    "ReLU(True)": (torchff.nn.ReLU(True), nn.ReLU(True)),
    "LeakyReLU()": (torchff.nn.LeakyReLU(), nn.LeakyReLU()),
    "LeakyReLU(0.2, inplace=True)": (torchff.nn.LeakyReLU(0.2, inplace=True), nn.LeakyReLU(0.2, inplace=True)),
    "LeakyReLU(-0.5)": (torchff.nn.LeakyReLU(-0.5), nn.LeakyReLU(-0.5)),
    "PReLU()": (torchff.nn.PReLU(), nn.PReLU()),
    "PReLU(3, init=0.1)": (torchff.nn.PReLU(3, init=0.1), nn.PReLU(3, init=0.1)),
    "PReLU(num_parameters=3, dtype=float64)": (
        torchff.nn.PReLU(num_parameters=3, dtype=torch.float64),
        nn.PReLU(num_parameters=3, dtype=torch.float64),
    ),
    "Softplus()": (torchff.nn.Softplus(), nn.Softplus()),
    "Softplus(beta=2, threshold=10)": (torchff.nn.Softplus(beta=2, threshold=10), nn.Softplus(beta=2, threshold=10)),
    "Sigmoid()": (torchff.nn.Sigmoid(), nn.Sigmoid()),
}


@pytest.mark.parametrize("name", list(DROP_INS))
def test_drop_in_is_torchs_module(name):
    ours, theirs = DROP_INS[name]
    assert isinstance(ours, type(theirs))
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    dtype = next(theirs.parameters()).dtype if list(theirs.parameters()) else torch.float32
    x = (torch.randn(6, 3, dtype=dtype) * 3).requires_grad_()
    xa, xb = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    ya, yb = ours(xa * 1.0), theirs(xb * 1.0)
    torch.testing.assert_close(ya, yb)
    ga = torch.autograd.grad(ya.sum(), [xa, *ours.parameters()])
    gb = torch.autograd.grad(yb.sum(), [xb, *theirs.parameters()])
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("num_parameters", [1, 4])
def test_prelu_state_dict_both_ways(num_parameters):
    ours, theirs = torchff.nn.PReLU(num_parameters), nn.PReLU(num_parameters)
    with torch.no_grad():
        theirs.weight.copy_(torch.linspace(-0.5, 0.5, num_parameters))
    ours.load_state_dict(theirs.state_dict())
    assert torch.equal(ours.weight, theirs.weight)
    with torch.no_grad():
        ours.weight.mul_(3.0)
    theirs.load_state_dict(ours.state_dict())
    assert torch.equal(ours.weight, theirs.weight)


def test_model_state_dict_loads_into_either():
    def mlp(lib):
        return nn.Sequential(
            nn.Linear(5, 4), lib.PReLU(4), nn.Linear(4, 3), lib.Softplus(), nn.Linear(3, 2), lib.ReLU()
        )

    torch.manual_seed(0)
    ours = mlp(torchff.nn)
    theirs = mlp(nn)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(7, 5)
    torch.testing.assert_close(ours(x), theirs(x))
    ours2 = mlp(torchff.nn)
    ours2.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(ours2(x), theirs(x))


@pytest.mark.parametrize(
    "module",
    [torchff.nn.PReLU(3), torchff.nn.Softplus(2.0, 5.0), GeneralizedReLU(0.1, learnable=True, num_parameters=3),
     GeneralizedReLU(-1.0), AbsReLU(), BinaryStep(ste=True), torchff.nn.LeakyReLU(0.3, inplace=True)],
    ids=repr,
)
def test_deepcopy_and_pickle(module):
    x = torch.randn(4, 3)
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert type(clone) is type(module) and repr(clone) == repr(module)
        assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), module.state_dict().values()))
        torch.testing.assert_close(clone(x.clone()), module(x.clone()))


# --------------------------------------------------------------------------------------
# the lecture's modules
# --------------------------------------------------------------------------------------
def test_generalized_relu_fixed_alpha():
    x = torch.tensor([-2.0, -0.5, 0.0, 1.5])
    assert torch.equal(GeneralizedReLU()(x), torch.relu(x))
    assert torch.equal(GeneralizedReLU(alpha=-1.0)(x), x.abs())
    assert torch.equal(GeneralizedReLU(alpha=0.01)(x), torch.nn.functional.leaky_relu(x, 0.01))
    assert list(GeneralizedReLU(0.3).parameters()) == []
    assert repr(GeneralizedReLU(0.3)) == "GeneralizedReLU(alpha=0.3)"
    with pytest.raises(ValueError, match="learnable"):
        GeneralizedReLU(0.1, num_parameters=3)


@pytest.mark.parametrize("num_parameters", [1, 3])
def test_generalized_relu_learnable_is_prelu(num_parameters):
    ours = GeneralizedReLU(alpha=0.2, learnable=True, num_parameters=num_parameters)
    assert repr(ours) == f"GeneralizedReLU(alpha=0.2, learnable=True, num_parameters={num_parameters})"
    assert torch.equal(ours.weight.detach(), torch.full((num_parameters,), 0.2))
    with torch.no_grad():
        ours.weight.fill_(3.0)
    ours.reset_parameters()
    assert torch.equal(ours.weight.detach(), torch.full((num_parameters,), 0.2))
    prelu = nn.PReLU(num_parameters, init=0.7)
    ours.load_state_dict(prelu.state_dict())  # same key, same shape: loads both ways
    prelu.load_state_dict(ours.state_dict())
    x = torch.randn(5, 3, requires_grad=True)
    torch.testing.assert_close(ours(x), prelu(x))
    (gw,) = torch.autograd.grad(ours(x).sum(), ours.weight)
    (gw_ref,) = torch.autograd.grad(prelu(x).sum(), prelu.weight)
    torch.testing.assert_close(gw, gw_ref)


def test_abs_relu_and_binary_step_modules():
    x = torch.tensor([-2.0, 0.0, 0.5, 3.0], requires_grad=True)
    assert torch.equal(AbsReLU()(x), x.detach().abs())
    assert repr(AbsReLU()) == "AbsReLU()"
    step = BinaryStep()
    assert repr(step) == "BinaryStep()" and repr(BinaryStep(ste=True)) == "BinaryStep(ste=True)"
    assert torch.equal(step(x), torch.tensor([0.0, 1.0, 1.0, 1.0]))
    (g,) = torch.autograd.grad(BinaryStep(ste=True)(x).sum(), x)
    assert torch.equal(g, torch.tensor([0.0, 1.0, 1.0, 0.0]))


# --------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, kwargs, cls, check",
    [
        ("relu", {}, torchff.nn.ReLU, {}),
        ("ReLU", {"inplace": True}, torchff.nn.ReLU, {"inplace": True}),
        ("leaky_relu", {"negative_slope": 0.2}, torchff.nn.LeakyReLU, {"negative_slope": 0.2}),
        ("leaky-relu", {}, torchff.nn.LeakyReLU, {"negative_slope": 0.01}),
        ("prelu", {"num_parameters": 3, "init": 0.1}, torchff.nn.PReLU, {"num_parameters": 3}),
        ("softplus", {"beta": 2.0}, torchff.nn.Softplus, {"beta": 2.0, "threshold": 20.0}),
        ("sigmoid", {}, torchff.nn.Sigmoid, {}),
        ("generalized_relu", {"alpha": -1.0}, GeneralizedReLU, {"alpha": -1.0}),
        ("abs_relu", {}, AbsReLU, {}),
        ("binary_step", {"ste": True}, BinaryStep, {"ste": True}),
    ],
)
def test_get_activation_builds_by_name(name, kwargs, cls, check):
    m = get_activation(name, **kwargs)
    assert type(m) is cls
    for k, v in check.items():
        assert getattr(m, k) == v


def test_get_activation_other_forms():
    assert isinstance(get_activation(None), nn.Identity)
    assert isinstance(get_activation("identity"), nn.Identity)
    m = torchff.nn.ReLU()
    assert get_activation(m) is m
    with pytest.raises(TypeError):
        get_activation(m, inplace=True)
    assert isinstance(get_activation(nn.Tanh), nn.Tanh)
    with pytest.raises(ValueError, match="unknown activation 'nope'.*relu"):
        get_activation("nope")
    with pytest.raises(TypeError):
        get_activation("relu", slope=3)


ACTIVATION_NAMES = [
    "relu", "leaky_relu", "leakyrelu", "prelu", "softplus", "sigmoid", "logistic",
    "generalized_relu", "grelu", "abs_relu", "abs", "absolute", "binary_step", "step", "heaviside",
]


def test_every_activation_name_is_registered_and_builds_with_defaults():
    assert set(ACTIVATION_NAMES) <= set(list_activations())
    for name in ACTIVATION_NAMES:
        assert isinstance(get_activation(name), nn.Module), name


def test_register_activation_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        register_activation("relu")(nn.Tanh)
