"""BCE with infinite logits, complex inputs of the regression losses and batched gradients of the pointwise losses, against torch (regression tests for fixed defects)."""

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


def test_l1_complex_forward_ad_unreduced():
    # the jvp's real part of a complex tangent was a strided view (.real): forward AD's layout
    # assert refused it for reduction="none" (torch's l1_loss passes)
    x = torch.randn(4, 3, dtype=torch.complex128, requires_grad=True)
    t = torch.randn(4, 3, dtype=torch.complex128, requires_grad=True)
    w = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    for f, args in ((lambda x, t: F.l1_loss(x, t, reduction="none"), (x, t)),
                    (lambda x, t, w: F.l1_loss(x, t, reduction="none", weight=w), (x, t, w))):
        assert torch.autograd.gradcheck(f, args, check_forward_ad=True, check_batched_forward_grad=True)


def _raised(f):
    with pytest.raises(Exception) as info:
        f()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_mse_complex_raises_as_torch(reduction):
    z = torch.randn(4, dtype=torch.complex64, requires_grad=True)
    t = torch.randn(4, dtype=torch.complex64)
    for x, y in ((z, t), (z, t.real), (z.real.detach(), t), (z.detach(), t)):
        got = _raised(lambda: F.mse_loss(x, y, reduction=reduction))
        assert got == _raised(lambda: TF.mse_loss(x, y, reduction=reduction))
        assert got == (NotImplementedError, "\"mse_cpu\" not implemented for 'ComplexFloat'")


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_gaussian_nll_complex_matches_torch(reduction, full):
    # torch's loss of a complex residual is complex, 0.5 (log v + d^2 / v); torchff dropped the
    # imaginary part (a real loss whose gradient was the conjugate of the real part's)
    torch.manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.complex128, requires_grad=True)
    t = torch.randn(4, 3, dtype=torch.complex128, requires_grad=True)
    v = (torch.rand(4, 3, dtype=torch.float64) + 0.1).requires_grad_()
    for args in ((x, t, v), (x, t.real.detach(), v), (x.real.detach(), t, v), (x, t, v[:, :1])):
        a = F.gaussian_nll_loss(*args, full=full, reduction=reduction)
        b = TF.gaussian_nll_loss(*args, full=full, reduction=reduction)
        assert a.dtype == b.dtype == torch.complex128
        torch.testing.assert_close(a, b)
        wrt = [u for u in args if u.requires_grad]
        ga = torch.autograd.grad((a.real + 0.3 * a.imag).sum(), wrt)
        gb = torch.autograd.grad((b.real + 0.3 * b.imag).sum(), wrt)
        torch.testing.assert_close(ga, gb)
    f = lambda x, t, v: F.gaussian_nll_loss(x, t, v, full=full, reduction=reduction)
    assert torch.autograd.gradcheck(f, (x, t, v), check_batched_grad=True, check_forward_ad=True)
    assert torch.autograd.gradgradcheck(f, (x, t, v))


def test_gaussian_nll_complex_errors_as_torch():
    x = torch.randn(4, dtype=torch.complex64, requires_grad=True)
    t = torch.randn(4, dtype=torch.complex64)
    cases = [
        lambda m: m.gaussian_nll_loss(x, t, 1.0),  # torch's var * ones_like(input) is complex: its clamp refuses it
        lambda m: m.gaussian_nll_loss(x.real, t.real, torch.ones(4, dtype=torch.complex64)),  # var < 0 on complex
    ]
    for case in cases:
        got = _raised(lambda: case(F))
        assert got == _raised(lambda: case(TF))
        assert got[0] is NotImplementedError


def test_laplace_nll_complex_is_real_as_l1():
    # a real loss |d| / b + log b with the gradient sgn(d) / b; the backward called torch.sign,
    # which refuses complex numbers
    torch.manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.complex128, requires_grad=True)
    t = torch.randn(4, 3, dtype=torch.complex128, requires_grad=True)
    b = (torch.rand(4, 3, dtype=torch.float64) + 0.1).requires_grad_()
    loss = F.laplace_nll_loss(x, t, b, reduction="sum")
    d = (x - t).detach()
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, (d.abs() / b + b.log()).sum())
    gx, gb = torch.autograd.grad(loss, (x, b))
    torch.testing.assert_close(gx, torch.sgn(d) / b.detach())
    torch.testing.assert_close(gb, ((1 - d.abs() / b) / b).detach())
    assert F.laplace_nll_loss(x, t, 0.5).dtype == torch.float64
    for reduction in ("none", "mean"):
        f = lambda x, t, b: F.laplace_nll_loss(x, t, b, reduction=reduction)
        assert torch.autograd.gradcheck(f, (x, t, b), check_batched_grad=True, check_forward_ad=True)
        assert torch.autograd.gradgradcheck(f, (x, t, b))


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
