"""Softplus numerics: accuracy over a wide range, the threshold, beta of any sign, what is saved."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as TF

import torchff.functional as F
from torchff.autograd.smooth import softplus_saves_output
from torchff.testing import check, check_parity, saved_tensors

INF, NAN = float("inf"), float("nan")
EPS32 = torch.finfo(torch.float32).eps
TINY32 = torch.finfo(torch.float32).tiny


def _grid() -> torch.Tensor:
    """beta * x over [-104, 40] densely, the tails and the neighbourhood of 0 logarithmically."""
    return torch.cat(
        [
            torch.linspace(-104.0, 40.0, 200_001, dtype=torch.float64),
            -torch.logspace(-8, 2, 5_001, dtype=torch.float64),
            torch.logspace(-8, 4, 5_001, dtype=torch.float64),
        ]
    )


def _exact(t64: torch.Tensor, beta: float, threshold: float):
    """softplus and its derivative in float64 from the float32-rounded t = beta * x."""
    value = torch.where(t64 > threshold, t64, torch.log1p(torch.exp(t64))) / beta
    slope = torch.where(t64 > threshold, torch.ones_like(t64), torch.sigmoid(t64))
    return value, slope


def _relative_error(a: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    keep = exact.abs() >= TINY32  # float32 subnormals have fewer bits by construction
    return ((a.double() - exact).abs() / exact.abs())[keep] / EPS32


@pytest.mark.parametrize("beta", [1.0, 2.0, 0.5, -1.0, -3.0])
def test_float32_accuracy_within_a_few_ulp(beta):
    x = (_grid() / beta).float()
    t = (x * beta).double()  # torch's kernel (and ours) round beta * x to float32 first
    value, slope = _exact(t, beta, 20.0)
    x.requires_grad_()
    out = F.softplus(x, beta, 20.0)
    (g,) = torch.autograd.grad(out, x, torch.ones_like(out))
    assert _relative_error(out.detach(), value).max() < 2.5
    # the backward starts from the rounded output: one more rounding in s = beta * out
    assert _relative_error(g, slope).max() < 2.5
    # torch's own kernel, for comparison, is in the same range
    theirs = TF.softplus(x.detach(), beta, 20.0)
    assert _relative_error(theirs, value).max() < 3.0


@pytest.mark.parametrize("beta", [1.0, -2.0])
def test_linear_region_is_exact(beta):
    x = (torch.linspace(20.001, 1e4, 10_001) / beta).requires_grad_()
    out = F.softplus(x, beta)
    (g,) = torch.autograd.grad(out.sum(), x)
    linear = (x.detach() * beta) > 20.0
    assert linear.all()
    assert torch.equal(out.detach(), x.detach())
    assert torch.equal(g, torch.ones_like(g))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 20.0), (-1.0, 20.0), (1.0, 40.0), (0.5, 17.5)])
def test_parity_near_threshold_and_far(dtype, beta, threshold):
    t = torch.cat([torch.linspace(threshold - 2, threshold + 2, 4001), torch.tensor([-1e4, -100.0, 1e4])])
    x = (t.double() / beta).to(dtype).requires_grad_()
    check_parity(lambda a: F.softplus(a, beta, threshold), lambda a: TF.softplus(a, beta, threshold), x)


@pytest.mark.parametrize("threshold", [INF, NAN, 100.0])
def test_where_torch_overflows_the_exact_values_are_returned(threshold):
    """Without a linear region there, torch computes log1p(exp(99)) = inf and a gradient inf/inf = nan."""
    x = torch.tensor([99.0, 1e4 if threshold != 100.0 else 100.0, INF], requires_grad=True)
    ref = TF.softplus(x, 1.0, threshold)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    assert ref.isinf().all() and g_ref[:2].isnan().all()
    out = F.softplus(x, 1.0, threshold)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(out.detach(), x.detach()) and torch.equal(g, torch.ones(3))


@pytest.mark.parametrize(
    "dtype, beta, threshold, from_output",
    [
        (torch.float32, 1.0, 20.0, True),
        (torch.float16, 1.0, 20.0, True),
        (torch.bfloat16, -1.0, 20.0, True),
        (torch.float32, 2.0, 17.5, True),
        (torch.float32, 1.0, 17.4, False),  # below 17.5 an output can come from either side
        (torch.float32, 1.0, 0.0, False),
        (torch.float32, 1.0, -5.0, False),
        (torch.float64, 1.0, 20.0, False),  # float64 resolves e^-20 next to 1: below 37.5
        (torch.float64, 1.0, 37.5, True),
        (torch.float32, 1.0, INF, True),  # no linear region
        (torch.float32, 1.0, NAN, True),  # beta * x > nan is never true: no linear region
        (torch.float32, 0.0, 20.0, False),  # beta = 0 divides by zero: torch's kernels
        (torch.float32, INF, 20.0, False),
    ],
)
def test_what_is_saved(dtype, beta, threshold, from_output):
    assert softplus_saves_output(dtype, beta, threshold) is from_output
    x = torch.randn(16, 4, dtype=dtype, requires_grad=True)
    out, saved = saved_tensors(F.softplus, x, beta, threshold)
    assert saved.total == x.numel() * x.element_size()
    assert saved.beyond(out) == (0 if from_output else saved.total)
    assert saved.beyond(x) == (saved.total if from_output else 0)


@pytest.mark.parametrize("beta, threshold", [(0.0, 20.0), (0.0, -1.0), (1.0, -INF), (-1.0, 1e-30)])
def test_degenerate_arguments_match_torch(beta, threshold):
    x = torch.tensor([-3.0, -0.0, 0.0, 2.0, INF, -INF, NAN], requires_grad=True)
    check_parity(lambda a: F.softplus(a, beta, threshold), lambda a: TF.softplus(a, beta, threshold), x)


@pytest.mark.parametrize("beta, threshold", [(1.0, 40.0), (-2.0, 40.0), (0.7, INF), (3.0, 5.0)])
def test_double_backward(beta, threshold):
    x = (torch.randn(5, 4, dtype=torch.float64) * 4).requires_grad_()
    x = torch.where((x * beta - threshold).abs() < 0.1, x + 0.3, x).detach().requires_grad_()
    check(
        lambda a: F.softplus(a, beta, threshold),
        x,
        reference=lambda a: TF.softplus(a, beta, threshold),
        vmap=False,
        compile=False,
    )


def test_second_derivative_is_zero_in_the_linear_region():
    x = torch.tensor([45.0, 50.0, 3.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(F.softplus(x, 1.0, 40.0).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert gg[0] == 0 and gg[1] == 0
    assert math.isclose(gg[2].item(), torch.sigmoid(x[2]).item() * (1 - torch.sigmoid(x[2]).item()), rel_tol=1e-12)
