"""The activation cases the activation tests share: torchff's callable, torch's, and their arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as TF

import torchff.functional as F

NAN, INF = float("nan"), float("inf")

#: every special value the parity tests feed in (the kinks, the infinities, nan, the tails)
SPECIALS = [NAN, INF, -INF, 0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 1e4, -1e4, 0.5, -2.5, 30.0, -120.0]


def step_reference(x: torch.Tensor) -> torch.Tensor:
    """torch's idiom for the step with zero gradient (same values but step(nan) = 1)."""
    return torch.sign(x).add(1.0).clamp(max=1.0)


def step_ste_reference(x: torch.Tensor) -> torch.Tensor:
    """The straight-through idiom: step forward, clamp(x, -1, 1)'s gradient (0 at |x| = 1)."""
    c = x.clamp(-1.0, 1.0)
    return c + (step_reference(x.detach()) - c.detach())


@dataclass
class Case:
    name: str
    ours: Callable
    ref: Callable
    weight: torch.Tensor | None = None  # PReLU's slopes: a second, differentiable argument
    weight_grad: bool = True
    # bytes saved per element of a float64 input: total, and beyond the output
    saved_per_elem: int = 8
    extra_per_elem: int = 0
    differs_at: list[float] = field(default_factory=list)  # documented differences from the reference
    torch_overflows_above: float | None = None  # |x| beyond which torch's value overflows (documented)
    kinks: list[float] = field(default_factory=lambda: [0.0])
    gradcheck: bool = True  # False where the backward is deliberately not the derivative (STE)

    def args(self, x: torch.Tensor) -> tuple:
        if self.weight is None:
            return (x,)
        w = self.weight.to(x.device, x.dtype).clone().requires_grad_(self.weight_grad and x.requires_grad)
        return (x, w)


def _softplus(beta, threshold):
    return (
        lambda x: F.softplus(x, beta, threshold),
        lambda x: TF.softplus(x, beta, threshold),
    )


CASES = [
    Case("relu", F.relu, TF.relu),
    # every fixed slope keeps the 1-byte mask x > 0, never the output (which code may change in place)
    Case("leaky_relu", F.leaky_relu, TF.leaky_relu, saved_per_elem=1, extra_per_elem=1),
    Case("leaky_relu(0.2)", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2),
         saved_per_elem=1, extra_per_elem=1),
    Case("leaky_relu(0)", lambda x: F.leaky_relu(x, 0.0), lambda x: TF.leaky_relu(x, 0.0),
         saved_per_elem=1, extra_per_elem=1),
    Case("leaky_relu(1.5)", lambda x: F.leaky_relu(x, 1.5), lambda x: TF.leaky_relu(x, 1.5),
         saved_per_elem=1, extra_per_elem=1),
    Case(
        "leaky_relu(-0.5)",
        lambda x: F.leaky_relu(x, -0.5),
        lambda x: TF.leaky_relu(x, -0.5),
        saved_per_elem=1,
        extra_per_elem=1,
    ),
    Case(
        "generalized_relu(-1)",
        lambda x: F.generalized_relu(x, -1.0),
        lambda x: TF.leaky_relu(x, -1.0),
        saved_per_elem=1,
        extra_per_elem=1,
    ),
    Case("abs_relu", F.abs_relu, torch.abs, saved_per_elem=1, extra_per_elem=1),
    # a trained weight: the input and the weight, as torch, whatever the slopes' values
    Case("prelu(scalar)", F.prelu, TF.prelu, weight=torch.tensor([0.25]), extra_per_elem=8),
    Case("prelu(per-channel)", F.prelu, TF.prelu, weight=torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5]),
         extra_per_elem=8),
    Case(
        "prelu(mixed-sign)",
        F.prelu,
        TF.prelu,
        weight=torch.tensor([0.2, -0.3, 0.0, 1.5, -1.0]),
        extra_per_elem=8,
    ),
    Case(
        "prelu(scalar, frozen)",
        F.prelu,
        TF.prelu,
        weight=torch.tensor([-0.25]),
        weight_grad=False,
        saved_per_elem=1,
        extra_per_elem=1,
    ),
    Case(
        "prelu(mixed-sign, frozen)",
        F.prelu,
        TF.prelu,
        weight=torch.tensor([0.2, -0.3, 0.0, 1.5, -1.0]),
        weight_grad=False,
        saved_per_elem=1,
        extra_per_elem=1,
    ),
    Case("sigmoid", F.sigmoid, torch.sigmoid, kinks=[]),
    # softplus keeps the input, as torch (never the output, which may be changed in place)
    Case("softplus", *_softplus(1.0, 20.0), extra_per_elem=8, kinks=[]),
    Case("softplus(beta=2, thr=40)", *_softplus(2.0, 40.0), extra_per_elem=8, kinks=[20.0]),
    Case("softplus(beta=-1.5, thr=40)", *_softplus(-1.5, 40.0), extra_per_elem=8, kinks=[-40 / 1.5]),
    Case("softplus(beta=0.5, thr=inf)", *_softplus(0.5, INF), extra_per_elem=8, kinks=[]),  # torch's overflow too
    Case("softplus(thr=2)", *_softplus(1.0, 2.0), extra_per_elem=8, kinks=[2.0]),
    Case("softplus(thr=-1)", *_softplus(1.0, -1.0), extra_per_elem=8, kinks=[-1.0]),
    Case("binary_step", F.binary_step, step_reference, saved_per_elem=0, differs_at=[NAN]),
    Case(
        "binary_step(ste)",
        lambda x: F.binary_step(x, ste=True),
        step_ste_reference,
        saved_per_elem=1,
        extra_per_elem=1,
        differs_at=[NAN, 1.0, -1.0],  # nan propagates; the gradient passes at |x| = 1
        kinks=[0.0, -1.0, 1.0],
        gradcheck=False,
    ),
]

CASE_IDS = [c.name for c in CASES]


def away_from_kinks(shape, case: Case, dtype=torch.float64, scale=3.0) -> torch.Tensor:
    """Random points at least 0.05 from the case's kinks (for gradcheck's finite differences)."""
    x = torch.randn(shape, dtype=dtype) * scale
    for k in case.kinks:
        near = (x - k).abs() < 0.05
        x = torch.where(near, x + 0.1, x)
    return x
