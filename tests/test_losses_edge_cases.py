"""BCE with infinite logits, complex L1 and batched gradients of the pointwise losses, against torch (regression tests for fixed defects)."""

import pytest
import torch
import torch.nn.functional as TF

import torchff.functional as F

INF = float("inf")


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("z,y", [(INF, 0.3), (INF, 0.0), (1e4, 0.3), (-1e4, 0.7)])
def test_bce_infinite_logits_match_torch(z, y, reduction):
    zf, zt = (torch.tensor([z, 0.5], requires_grad=True) for _ in range(2))
    yf, yt = (torch.tensor([y, 0.2], requires_grad=True) for _ in range(2))
    a = F.binary_cross_entropy_with_logits(zf, yf, reduction=reduction)
    b = TF.binary_cross_entropy_with_logits(zt, yt, reduction=reduction)
    torch.testing.assert_close(a, b, equal_nan=False)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(zf.grad, zt.grad)
    torch.testing.assert_close(yf.grad, yt.grad)


def test_bce_negative_infinite_logit_positive_target_is_inf():
    # the limit of the loss; torch's (1 - y) z - log_sigmoid(z) gives nan here
    out = F.binary_cross_entropy_with_logits(torch.tensor([-INF, -INF]), torch.tensor([1.0, 0.3]), reduction="none")
    assert torch.equal(out, torch.tensor([INF, INF]))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_l1_complex_matches_torch(dtype, reduction):
    torch.manual_seed(0)
    x = torch.randn(6, dtype=dtype, requires_grad=True)
    t = torch.randn(6, dtype=dtype, requires_grad=True)
    a = F.l1_loss(x, t, reduction=reduction)
    b = TF.l1_loss(x, t, reduction=reduction)
    assert a.dtype == b.dtype and not a.is_complex()
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a.sum(), (x, t))
    gb = torch.autograd.grad(b.sum(), (x, t))
    torch.testing.assert_close(ga, gb)


def test_l1_complex_gradcheck():
    x = torch.randn(4, dtype=torch.complex128, requires_grad=True)
    t = torch.randn(4, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, t: F.l1_loss(x, t, reduction="none"), (x, t), check_batched_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, t: F.l1_loss(x, t), (x, t))


def _losses(m):
    return {
        "mse": lambda x, y, v: m.mse_loss(x, y, reduction="none"),
        "l1": lambda x, y, v: m.l1_loss(x, y, reduction="none"),
        "gaussian": lambda x, y, v: m.gaussian_nll_loss(x, y, v, reduction="none"),
        "laplace": lambda x, y, v: F.laplace_nll_loss(x, y, v, reduction="none"),
        "bce": lambda x, y, v: m.binary_cross_entropy_with_logits(x, y, reduction="none"),
    }


def _laplace_reference(x, y, b, eps=1e-6):
    with torch.no_grad():
        clamped = b.clamp(min=eps)
    b = b + (clamped - b).detach()  # clamp with no gradient of its own, as laplace_nll_loss documents
    return torch.log(b) + (x - y).abs() / b


def _reference(name):
    if name == "laplace":
        return _laplace_reference
    return _losses(TF)[name]


def _inputs():
    torch.manual_seed(0)
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = torch.rand(5, dtype=torch.float64, requires_grad=True)
    v = (torch.rand(5, dtype=torch.float64) + 0.1).requires_grad_()
    return x, y, v


NAMES = ["mse", "l1", "gaussian", "laplace", "bce"]


def _wrt(name, x, y, v):
    return (x, y, v) if name in ("gaussian", "laplace") else (x, y)


@pytest.mark.parametrize("name", NAMES)
def test_is_grads_batched_matches_torch(name):
    x, y, v = _inputs()
    eye = torch.eye(5, dtype=torch.float64)
    got = torch.autograd.grad(_losses(F)[name](x, y, v), _wrt(name, x, y, v), eye, is_grads_batched=True)
    want = torch.autograd.grad(_reference(name)(x, y, v), _wrt(name, x, y, v), eye, is_grads_batched=True)
    torch.testing.assert_close(got, want)
    # the mean reduction too: a batch of scalar gradients
    ones = torch.ones(3, dtype=torch.float64)
    got = torch.autograd.grad(_losses(F)[name](x, y, v).mean(), x, ones, is_grads_batched=True)
    want = torch.autograd.grad(_reference(name)(x, y, v).mean(), x, ones, is_grads_batched=True)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", NAMES)
def test_jacobian_vectorize_matches_torch(name):
    x, y, v = _inputs()
    inputs = _wrt(name, x, y, v)

    def bind(fn):
        return (lambda x, y, v: fn(x, y, v)) if len(inputs) == 3 else (lambda x, y: fn(x, y, v))

    got = torch.autograd.functional.jacobian(bind(_losses(F)[name]), inputs, vectorize=True)
    want = torch.autograd.functional.jacobian(bind(_reference(name)), inputs, vectorize=True)
    torch.testing.assert_close(got, want)
