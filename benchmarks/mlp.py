"""End to end: one training step of an MLP built from torchff modules against the same MLP from torch.nn."""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

import torchff

from benchmarks.ops import Missing, TorchMaxoutLinear, _copy_maxout_linear

#: the activations of the end-to-end networks
MLP_ACTIVATIONS = ("relu", "leaky_relu", "prelu", "softplus", "maxout")
#: the activations of the training-size steps (torch models that ``torchff.nn.convert`` converts)
TRAIN_ACTIVATIONS = ("relu", "leaky_relu", "prelu", "softplus")


def _activation(lib, name: str) -> nn.Module:
    cls = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "prelu": "PReLU", "softplus": "Softplus"}[name]
    if not hasattr(lib, cls):
        raise Missing(f"{lib.__name__}.{cls} is not available")
    return getattr(lib, cls)()


def build_mlp(side: str, activation: str, dims, pieces: int, device, dtype) -> nn.Sequential:
    """``dims[0] -> ... -> dims[-1]``: hidden layers ``Linear + activation`` (or a maxout layer of
    ``pieces`` pieces per unit), a plain ``Linear`` output layer. ``side`` is ``"torchff"`` or ``"torch"``."""
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-2], dims[1:-1]):
        if activation == "maxout":
            if side == "torchff":
                if not hasattr(torchff.nn, "MaxoutLinear"):
                    raise Missing("torchff.nn.MaxoutLinear is not available")
                layers.append(torchff.nn.MaxoutLinear(d_in, d_out, pieces, device=device, dtype=dtype))
            else:
                layers.append(TorchMaxoutLinear(d_in, d_out, pieces, device=device, dtype=dtype))
        else:
            layers.append(nn.Linear(d_in, d_out, device=device, dtype=dtype))
            layers.append(_activation(torchff.nn if side == "torchff" else nn, activation).to(device=device, dtype=dtype))
    layers.append(nn.Linear(dims[-2], dims[-1], device=device, dtype=dtype))
    return nn.Sequential(*layers)


def torch_and_converted(activation: str, dims, device, dtype) -> tuple[nn.Sequential, nn.Sequential]:
    """A ``torch.nn`` MLP and a copy of it converted with ``torchff.nn.convert`` (same weights):
    the way a user swaps torchff into an existing model."""
    ref = build_mlp("torch", activation, dims, 1, device, dtype)
    return torchff.nn.convert(copy.deepcopy(ref)), ref


def same_weights(ff: nn.Sequential, ref: nn.Sequential) -> None:
    """Copy ``ff``'s parameters into ``ref`` (the state_dict layouts agree except for maxout layers)."""
    for a, b in zip(ff, ref):
        if isinstance(b, TorchMaxoutLinear):
            _copy_maxout_linear(a, b)
        else:
            b.load_state_dict(a.state_dict())


def loss_modules():
    """(torchff's cross-entropy module if available, else torch's; torch's), and the torchff name used."""
    if hasattr(torchff.nn, "CrossEntropyLoss"):
        return torchff.nn.CrossEntropyLoss(), nn.CrossEntropyLoss(), "torchff.nn.CrossEntropyLoss"
    return nn.CrossEntropyLoss(), nn.CrossEntropyLoss(), "torch.nn.CrossEntropyLoss (torchff's not available)"


def training_step(net: nn.Module, loss_fn: Callable, x, y, compiled: bool = False) -> Callable[[], None]:
    """A closure doing one SGD step: zero_grad, forward, loss, backward, update."""
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)

    def forward_loss(x, y):
        return loss_fn(net(x), y)

    fwd = torch.compile(forward_loss) if compiled else forward_loss

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        fwd(x, y).backward()
        opt.step()

    return step
