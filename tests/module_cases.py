"""Example modules and inputs shared by the conversion, mixed-precision, export and checkpoint tests.

``DROP_IN_CASES``: ``torch.nn`` modules with non-default settings that torchff has (or will have) a
drop-in for; ``convert`` turns a deep copy into the torchff version, the original is the reference.
``TORCHFF_CASES``: torchff-only modules (no torch reference). Each case gives ``extra(z)``: the
arguments after the first one (targets, variances), made once in float32 so that both
implementations see the same ones; the first argument ``z`` has shape ``(N, C)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import torchff

N, C = 6, 4


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def _classes(z: Tensor) -> tuple:
    t = torch.randint(0, z.shape[1], (z.shape[0],), generator=_gen())
    t[0] = 1  # the ignore_index used below: exercises it
    return (t.to(z.device),)


def _probs(z: Tensor) -> tuple:
    return (torch.rand(z.shape, generator=_gen()).to(z.device),)


def _reals(z: Tensor) -> tuple:
    return (torch.randn(z.shape, generator=_gen()).to(z.device),)


def _target_and_var(z: Tensor) -> tuple:
    g = _gen()
    return (torch.randn(z.shape, generator=g).to(z.device), (torch.rand(z.shape, generator=g) + 0.1).to(z.device))


def _no_extra(z: Tensor) -> tuple:
    return ()


@dataclass
class Case:
    make: Callable[[], nn.Module]
    extra: Callable[[Tensor], tuple] = _no_extra
    is_loss: bool = False
    # torchff-only modules: ``reference(module)`` is the same computation in plain torch ops
    reference: Callable[[nn.Module], Callable[..., Tensor]] | None = None

    @property
    def cls_name(self) -> str:
        return type(self.make()).__name__


_w = torch.tensor([0.5, 1.0, 2.0, 1.5])

DROP_IN_CASES: dict[str, Case] = {
    "ReLU": Case(lambda: nn.ReLU()),
    "ReLU(inplace)": Case(lambda: nn.ReLU(inplace=True)),
    "LeakyReLU(0.2)": Case(lambda: nn.LeakyReLU(0.2)),
    "LeakyReLU(-0.5)": Case(lambda: nn.LeakyReLU(-0.5)),
    "LeakyReLU(0.1,inplace)": Case(lambda: nn.LeakyReLU(0.1, inplace=True)),
    "PReLU(C)": Case(lambda: nn.PReLU(C, init=0.1)),
    "PReLU(1)": Case(lambda: nn.PReLU()),
    "Softplus(beta=2,threshold=10)": Case(lambda: nn.Softplus(beta=2.0, threshold=10.0)),
    "Sigmoid": Case(lambda: nn.Sigmoid()),
    "Softmax(dim=0)": Case(lambda: nn.Softmax(dim=0)),
    "LogSoftmax(dim=1)": Case(lambda: nn.LogSoftmax(dim=1)),
    "CrossEntropyLoss": Case(lambda: nn.CrossEntropyLoss(), _classes, True),
    "CrossEntropyLoss(weight,ignore,smooth,sum)": Case(
        lambda: nn.CrossEntropyLoss(weight=_w.clone(), ignore_index=1, reduction="sum", label_smoothing=0.1),
        _classes,
        True,
    ),
    "NLLLoss(weight,ignore,none)": Case(
        lambda: nn.NLLLoss(weight=_w.clone(), ignore_index=1, reduction="none"), _classes, True
    ),
    "BCEWithLogitsLoss(weight,pos_weight)": Case(
        lambda: nn.BCEWithLogitsLoss(weight=_w.clone(), pos_weight=_w.flip(0).clone()), _probs, True
    ),
    "MSELoss(sum)": Case(lambda: nn.MSELoss(reduction="sum"), _reals, True),
    "L1Loss": Case(lambda: nn.L1Loss(), _reals, True),
    "GaussianNLLLoss(full,eps)": Case(lambda: nn.GaussianNLLLoss(full=True, eps=1e-3), _target_and_var, True),
}

# torchff modules with no torch.nn counterpart, by class name (skipped where the class is not in torchff.nn)
def _ste_step(z: Tensor) -> Tensor:
    """Binary step forward, straight-through (identity where |z| <= 1) backward."""
    c = z.clamp(-1, 1)
    return (z >= 0).to(z.dtype) + (c - c.detach())


def _laplace_nll(m: nn.Module) -> Callable[..., Tensor]:
    """``|y - mu| / b + log b`` (+ log 2 with ``full``), b clamped at ``eps`` with no gradient through the clamp."""

    def f(mu: Tensor, y: Tensor, b: Tensor) -> Tensor:
        b = b.clone()
        with torch.no_grad():
            b.clamp_(min=m.eps)
        loss = (y - mu).abs() / b + b.log() + (math.log(2.0) if m.full else 0.0)
        return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[m.reduction]()

    return f


def _zero_one(z: Tensor) -> tuple:
    return ((torch.rand(z.shape, generator=_gen()) > 0.5).to(z.dtype).to(z.device),)


def _ste_free_step(z: Tensor) -> Tensor:
    """The binary step with its zero derivative, in plain torch."""
    return (z >= 0).to(z.dtype) + 0 * z


def _maxout(z: Tensor, pieces: int) -> Tensor:
    return z.unflatten(-1, (-1, pieces)).max(-1).values


TORCHFF_CASES: dict[str, Case] = {
    "GeneralizedReLU": Case(
        lambda: torchff.nn.GeneralizedReLU(alpha=-0.3), reference=lambda m: lambda z: F.leaky_relu(z, m.alpha)
    ),
    "GeneralizedReLU(learnable)": Case(
        lambda: torchff.nn.GeneralizedReLU(0.2, learnable=True, num_parameters=C),
        reference=lambda m: lambda z: F.prelu(z, m.weight),
    ),
    "AbsReLU": Case(lambda: torchff.nn.AbsReLU(), reference=lambda m: torch.abs),
    "BinaryStep(ste)": Case(lambda: torchff.nn.BinaryStep(ste=True), reference=lambda m: _ste_step),
    "Maxout(2)": Case(lambda: torchff.nn.Maxout(2), reference=lambda m: lambda z: _maxout(z, m.pieces)),
    "MaxoutLinear(C,3,2)": Case(
        lambda: torchff.nn.MaxoutLinear(C, 3, 2),
        reference=lambda m: lambda z: _maxout(F.linear(z, m.weight, m.bias), m.pieces),
    ),
    # reference: the same network with torch.nn's modules (revert turns the drop-ins back)
    "MLP(leaky_relu)": Case(
        lambda: torchff.nn.MLP(C, [8, 8], 3, activation="leaky_relu", activation_kwargs={"negative_slope": 0.1}),
        reference=lambda m: torchff.nn.revert(m),
    ),
    "MLP(maxout)": Case(
        lambda: torchff.nn.MLP(C, [6], 3, activation="maxout", pieces=2),
        reference=lambda m: lambda z: F.linear(_maxout(F.linear(z, m.layers[0].weight, m.layers[0].bias), 2),
                                               m.layers[-1].weight, m.layers[-1].bias),
    ),
    "LaplaceNLLLoss(full,eps,sum)": Case(
        lambda: torchff.nn.LaplaceNLLLoss(full=True, eps=0.2, reduction="sum"), _target_and_var, True, _laplace_nll
    ),
    # the perceptron and RBF features (reference: plain torch)
    "Perceptron(C,3)": Case(
        lambda: torchff.nn.Perceptron(C, 3),
        reference=lambda m: lambda z: _ste_free_step(F.linear(z, m.weight, m.bias)),
    ),
    "PerceptronLoss": Case(
        lambda: torchff.nn.PerceptronLoss(), _zero_one, True,
        lambda m: lambda z, t: torch.relu(-torch.where(t > 0, 1.0, -1.0) * z).mean(),
    ),
    "RBF(C,5)": Case(
        lambda: torchff.nn.RBF(C, 5, gamma=0.5),
        reference=lambda m: lambda z: torch.exp(-m.gamma * torch.cdist(z, m.centers) ** 2),
    ),
}


def torchff_has(name: str) -> bool:
    """Whether the torchff class a case key names (``"ReLU(inplace)"`` -> ``ReLU``) exists here."""
    return hasattr(torchff.nn, name.split("(")[0])


def has_drop_in(key: str) -> bool:
    cls = getattr(nn, key.split("(")[0])
    return cls in torchff.nn.drop_ins()


def first_input(dtype=torch.float32, device="cpu", shape=(N, C)) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
