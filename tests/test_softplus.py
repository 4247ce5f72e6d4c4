"""Softplus and sigmoid: torch's numerics at the edges (subnormal tails, half gradients, bad dtypes),
what is saved, in-place changes after the activation, forward mode, compile."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as TF

import torchff
import torchff.functional as F
from torchff.kernels import _c
from torchff.kernels import smooth as _smooth_ops
from torchff.testing import check, nan_safe_equal, saved_tensors

INF, NAN = float("inf"), float("nan")


def _values_and_grads(fn, x, cot):
    x = x.detach().clone().requires_grad_()
    out = fn(x)
    (g,) = torch.autograd.grad(out, x, cot)
    return out.detach(), g


def full_gradchecks(fn, *inputs):
    """gradcheck (batched gradients, forward mode) and gradgradcheck (batched, forward over reverse)."""
    assert torch.autograd.gradcheck(fn, inputs, check_batched_grad=True, check_forward_ad=True,
                                    check_undefined_grad=True)
    assert torch.autograd.gradgradcheck(fn, inputs, check_batched_grad=True, check_fwd_over_rev=True)


# --------------------------------------------------------------------------------------
# parity with torch. The gradient is torch's own softplus_backward: the same bits. The value of
# float32 / float64 CPU tensors comes from torchff's C loop (csrc/smooth.c): within a few ulps of
# torch's, the same at every special value (0, subnormals, inf, nan, the linear region);
# float16 / bfloat16 take aten's kernel: the same bits.
# --------------------------------------------------------------------------------------
SPECIAL = [-1e4, -104.0, -90.0, -88.8, -20.0, -1.0, -0.0, 0.0, 1e-8, 1.0, 19.99, 20.0, 20.01, 88.8, 99.0, 1e4,
           INF, -INF, NAN]
#: the value's tolerance against torch's, in ulps of torch's value, per dtype (0: the same bits)
VALUE_ULPS = {torch.float32: 5, torch.float64: 2, torch.float16: 0, torch.bfloat16: 0}


def within_ulps(out: torch.Tensor, ref: torch.Tensor, ulps: int) -> bool:
    """nan where ``ref`` is nan, ``ref`` itself where it is ±inf, else within ``ulps`` steps of
    ``ref``'s dtype at ``ref`` (the smallest subnormal at and below the normal range: torch's exp
    flushes to 0 values up to 1.5 subnormal steps that torchff's keeps)."""
    if ulps == 0:
        return nan_safe_equal(out, ref)
    nan, exact = ref.isnan(), ref.isinf()
    if not torch.equal(out.isnan(), nan) or not torch.equal(out[exact], ref[exact]):
        return False
    a = ref.abs()
    step = torch.nextafter(a, torch.tensor(INF, dtype=a.dtype)) - a
    ok = (out - ref).abs() <= ulps * step
    return bool(ok[~nan & ~exact].all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 20.0), (-1.0, 20.0), (0.5, 5.0), (1.0, INF),
                                             (1.0, NAN), (0.0, 20.0), (INF, 20.0), (1.0, -INF), (50.0, 20.0)])
def test_values_and_gradients_equal_torch(dtype, beta, threshold):
    x = torch.cat([torch.tensor(SPECIAL), 8 * torch.randn(200)]).to(dtype)
    cot = torch.randn(x.shape).to(dtype)
    out, g = _values_and_grads(lambda t: F.softplus(t, beta, threshold), x, cot)
    ref, g_ref = _values_and_grads(lambda t: TF.softplus(t, beta, threshold), x, cot)
    assert out.dtype == ref.dtype == dtype
    assert within_ulps(out, ref, VALUE_ULPS[dtype]) and nan_safe_equal(g, g_ref)


def test_within_ulps_catches_a_one_step_error_beyond_the_tolerance():
    ref = torch.tensor([1.0, 1e-40, -3.0, 0.0, INF, NAN])
    step = torch.nextafter(ref.abs(), torch.tensor(INF)) - ref.abs()
    near = ref.clone()
    near[:4] += 4 * step[:4] * torch.tensor([1.0, 1.0, -1.0, 1.0])
    assert within_ulps(near, ref, 4)
    bad = ref.clone()
    bad[1] += 5 * step[1]  # five subnormal steps
    assert not within_ulps(bad, ref, 4)
    for i, v in ((3, 1e-44), (4, 3e38), (5, 0.0)):  # seven steps off 0; inf and nan must be exact
        bad = ref.clone()
        bad[i] = v
        assert not within_ulps(bad, ref, 4)


@pytest.mark.skipif(not _c.available(), reason="the C library is not built")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (3.0, 20.0), (-0.5, 10.0), (1.0, INF), (50.0, 20.0)])
def test_c_softplus_is_within_ulps_of_torch_over_the_whole_range(dtype, beta, threshold):
    """A dense sweep through every region: the subnormal tail (beta x down to -103.9), the
    curve, the linear region and (threshold inf) float32's overflow of exp."""
    span = 110.0 / abs(beta)
    x = torch.linspace(-span, span, 400_001, dtype=dtype)
    out = _smooth_ops.softplus(x, beta, threshold)
    assert out.dtype == dtype
    assert within_ulps(out, TF.softplus(x, beta, threshold), VALUE_ULPS[dtype])
    if dtype == torch.float32:  # and within 4 ulps of the exact value at the rounded beta x (where finite)
        t = (x * beta).double()
        exact = torch.where(t > threshold, x.double(), torch.log1p(torch.exp(t)) / beta).float()
        finite = torch.isfinite(out)
        assert torch.equal(finite, torch.isfinite(TF.softplus(x, beta, threshold)))
        assert within_ulps(out[finite], exact[finite], 4)


@pytest.mark.skipif(not _c.available(), reason="the C library is not built")
def test_c_softplus_threads_non_contiguous_and_empty():
    n = 4 * _c.MIN_CHUNK + 13  # several chunks
    x = 30 * torch.randn(n)
    assert within_ulps(_smooth_ops.softplus(x, 1.0, 20.0), TF.softplus(x), 4)
    xt = torch.randn(40, 30).t()
    out = _smooth_ops.softplus(xt, 2.0, 20.0)
    assert out.is_contiguous() and out.shape == xt.shape
    assert within_ulps(out, TF.softplus(xt, 2.0), 4)
    assert _smooth_ops.softplus(torch.empty(0, 3), 1.0, 20.0).shape == (0, 3)


def test_softplus_op_passes_opcheck():
    for x in (torch.randn(5, 7), torch.randn(3, 4, dtype=torch.float64).t(), torch.randn(6, dtype=torch.float16)):
        torch.library.opcheck(_smooth_ops.softplus, (x, 2.0, 5.0))


def test_sigmoid_equals_torch():
    x = torch.cat([torch.tensor(SPECIAL), 8 * torch.randn(100)])
    cot = torch.randn(x.shape)
    out, g = _values_and_grads(F.sigmoid, x, cot)
    ref, g_ref = _values_and_grads(torch.sigmoid, x, cot)
    assert nan_safe_equal(out, ref) and nan_safe_equal(g, g_ref)


# --------------------------------------------------------------------------------------
# issue 15: the edges
# --------------------------------------------------------------------------------------
def test_softplus_keeps_subnormal_values_and_gradients():
    """Below beta*x = -88.7 softplus and its slope are e^{beta x}, a float32 subnormal, not 0."""
    x = torch.tensor([-90.0], requires_grad=True)
    out = F.softplus(x)
    out.backward()
    assert out.item() == pytest.approx(8.194012e-40, rel=1e-3)  # torch's value, exp(-90)
    assert x.grad.item() == pytest.approx(8.194012e-40, rel=1e-3)
    # across the whole subnormal range, against float64, within float32's subnormal spacing
    x = torch.linspace(-102.5, -87.0, 4001).requires_grad_()  # e^x >= 2 subnormal steps
    out = F.softplus(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    exact = torch.log1p(torch.exp(x.detach().double()))
    slope = torch.sigmoid(x.detach().double())
    tiny_step = 2.0**-149
    assert ((out.detach().double() - exact).abs() <= 2 * tiny_step + 4e-7 * exact).all()
    assert ((g.double() - slope).abs() <= 2 * tiny_step + 4e-7 * slope).all()
    assert (out > 0).all() and (g > 0).all()


@pytest.mark.parametrize("x, truth", [(-0.3, 3.0590e-7), (-0.25, 3.7267e-6)])
def test_float16_large_beta_gradient_from_the_input(x, truth):
    """The slope comes from the float16 input computed in float32, not from the rounded output."""
    xh = torch.tensor([x], dtype=torch.float16, requires_grad=True)
    F.softplus(xh, beta=50.0).backward()
    exact = torch.sigmoid(50.0 * xh.detach().double()).item()  # at the float16 input
    half_step = 2.0**-25  # half of float16's subnormal spacing: one rounding of the exact slope
    assert abs(xh.grad.double().item() - exact) <= half_step
    assert xh.grad.item() == pytest.approx(truth, rel=0.1)
    g_ref = torch.autograd.grad(TF.softplus(xh, beta=50.0), xh)[0]
    assert torch.equal(xh.grad, g_ref)


@pytest.mark.parametrize("x", [torch.tensor([1, -2]), torch.tensor([True, False]), torch.tensor([3], dtype=torch.int8)])
def test_integer_and_bool_inputs_raise_as_torch(x):
    with pytest.raises(NotImplementedError) as theirs:
        TF.softplus(x)
    with pytest.raises(NotImplementedError) as ours:
        F.softplus(x)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(NotImplementedError):
        torchff.nn.Softplus()(x)
    # sigmoid promotes integers, as torch
    assert torch.equal(F.sigmoid(x), torch.sigmoid(x))


# --------------------------------------------------------------------------------------
# what is saved, and in-place changes after the activation
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
@pytest.mark.parametrize("threshold", [20.0, 5.0, INF])
def test_softplus_saves_the_input_never_the_output(dtype, threshold):
    x = torch.randn(16, 4, dtype=dtype, requires_grad=True)
    out, saved = saved_tensors(F.softplus, x, 1.0, threshold)
    ref_out, ref = saved_tensors(TF.softplus, x, 1.0, threshold)
    assert saved.total == ref.total == x.numel() * x.element_size()
    assert saved.beyond(x) == 0 and saved.beyond(out) == saved.total


def test_sigmoid_saves_the_output_as_torch():
    x = torch.randn(16, 4, requires_grad=True)
    out, saved = saved_tensors(F.sigmoid, x)
    assert saved.beyond(out) == 0 and saved.total == saved_tensors(torch.sigmoid, x)[1].total == 64 * 4


def _after(act, pattern):
    """A model in which the activation's output is changed in place before backward."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 8)  # float32: the dtype in which torchff used to keep the output
    r = torch.randn(3, 8)

    def model(x):
        out = act(lin(x))
        if pattern == "dropout":
            torch.manual_seed(1)
            out = torch.nn.functional.dropout(out, 0.5, training=True, inplace=True)
        elif pattern == "residual":
            out += r
        else:
            out.mul_(2)
        return out.sum()

    return model, lin


def _grads_or_error(act, pattern):
    model, lin = _after(act, pattern)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    try:
        model(x).backward()
    except RuntimeError as e:
        return type(e), "modified by an inplace operation" in str(e)
    return lin.weight.grad, lin.bias.grad


@pytest.mark.parametrize("pattern", ["dropout", "residual", "mul_"])
@pytest.mark.parametrize("ours, theirs", [(torchff.nn.Softplus(), torch.nn.Softplus()),
                                          (torchff.nn.Softplus(2.0, 5.0), torch.nn.Softplus(2.0, 5.0)),
                                          (torchff.nn.Sigmoid(), torch.nn.Sigmoid())], ids=["softplus", "softplus-2-5", "sigmoid"])
def test_inplace_after_the_activation_as_torch(ours, theirs, pattern):
    got, want = _grads_or_error(ours, pattern), _grads_or_error(theirs, pattern)
    if isinstance(want[0], torch.Tensor):  # torch trains: so must torchff, with the same gradients
        assert isinstance(got[0], torch.Tensor), got
        torch.testing.assert_close(got, want)
    else:  # torch raises (sigmoid keeps its output): torchff raises the same error
        assert got == want


def test_converted_model_trains_with_inplace_dropout():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Softplus(), torch.nn.Dropout(0.5, inplace=True),
                                torch.nn.Linear(8, 3), torch.nn.Sigmoid())
    ours = torchff.nn.convert(copy.deepcopy(model))
    assert type(ours[1]) is torchff.nn.Softplus and type(ours[4]) is torchff.nn.Sigmoid
    x = torch.randn(5, 4)
    for m in (model, ours):
        torch.manual_seed(3)
        m(x).sum().backward()
    for p, q in zip(model.parameters(), ours.parameters()):
        torch.testing.assert_close(q.grad, p.grad)


# --------------------------------------------------------------------------------------
# gradcheck (batched, forward mode), vmap, jacfwd / hessian, compile
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (-2.0, 5.0), (0.7, INF), (3.0, 2.0)])
def test_softplus_harness(beta, threshold):
    x = (torch.randn(5, 4, dtype=torch.float64) * 2).requires_grad_()
    x = torch.where((x * beta - threshold).abs() < 0.1, x + 0.3, x).detach().requires_grad_()
    fn = lambda a: F.softplus(a, beta, threshold)  # noqa: E731
    full_gradchecks(fn, x)
    check(fn, x, reference=lambda a: TF.softplus(a, beta, threshold))


def test_sigmoid_harness():
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    full_gradchecks(F.sigmoid, x)
    check(F.sigmoid, x, reference=torch.sigmoid)


@pytest.mark.parametrize("fn, ref", [(lambda t: F.softplus(t, 2.0, 5.0), lambda t: TF.softplus(t, 2.0, 5.0)),
                                     (F.sigmoid, torch.sigmoid)], ids=["softplus", "sigmoid"])
def test_forward_mode_and_hessian(fn, ref):
    x = torch.randn(6, dtype=torch.float64)
    torch.testing.assert_close(torch.func.jacfwd(fn)(x), torch.func.jacfwd(ref)(x))
    torch.testing.assert_close(torch.func.hessian(lambda t: fn(t).sum())(x), torch.func.hessian(lambda t: ref(t).sum())(x))
    with torch.autograd.forward_ad.dual_level():
        t = torch.randn(6, dtype=torch.float64)
        y = torch.autograd.forward_ad.unpack_dual(fn(torch.autograd.forward_ad.make_dual(x, t))).tangent
        y_ref = torch.autograd.forward_ad.unpack_dual(ref(torch.autograd.forward_ad.make_dual(x, t))).tangent
    torch.testing.assert_close(y, y_ref)


def test_second_derivative_is_zero_in_the_linear_region():
    x = torch.tensor([45.0, 50.0, 3.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(F.softplus(x, 1.0, 40.0).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    s = torch.sigmoid(x[2].detach())
    assert gg[0] == 0 and gg[1] == 0 and gg[2].item() == pytest.approx((s * (1 - s)).item(), rel=1e-12)


@pytest.mark.parametrize("fn", [lambda t: F.softplus(t, 2.0, 5.0), F.sigmoid], ids=["softplus", "sigmoid"])
def test_compile_fullgraph_inductor(fn):
    from torchff.testing import check_compile

    check_compile(fn, torch.randn(8, 16, requires_grad=True), backend="inductor")


def test_modules_run_the_functions():
    x = torch.randn(2, 3, requires_grad=True)
    assert "SoftplusFunction" in type(torchff.nn.Softplus()(x).grad_fn).__name__
    assert "SigmoidFunction" in type(torchff.nn.Sigmoid()(x).grad_fn).__name__
