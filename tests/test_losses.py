"""Output-unit costs: gradcheck, parity with torch over every argument combination, extreme
values, errors, saved bytes, the saturation property and the output registry."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as TF

import torchff
import torchff.functional as F
from torchff.testing import all_finite, check, check_gradcheck, check_parity, saved_tensors

REDUCTIONS = ["none", "mean", "sum"]
D = torch.float64


def _index_target(shape_wo_class, C, ignore_index=None, gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    t = torch.randint(0, C, shape_wo_class, generator=g)
    if ignore_index is not None and t.numel() > 1:
        t.view(-1)[:: max(1, t.numel() // 3)] = ignore_index  # about a third ignored
    return t


# input shapes: unbatched (C,), (N, C), and K-dimensional (N, C, d1[, d2])
SHAPES = [(5,), (4, 5), (3, 5, 2), (2, 5, 2, 3)]


def _without_class(shape):
    return shape[1:] if len(shape) == 1 else shape[:1] + shape[2:]


# --------------------------------------------------------------------------------------
# gradcheck, gradgradcheck, vmap/jacrev, compile and parity in one call, per Function
# --------------------------------------------------------------------------------------
def _x(*shape, scale=1.0, offset=0.0):
    return (scale * torch.randn(shape, dtype=D) + offset).requires_grad_()


def _ce_weight_ignore_smoothing():
    t, w = torch.tensor([0, 4, -100, 1]), torch.rand(5, dtype=D) + 0.5
    return (
        lambda z: F.cross_entropy(z, t, w, label_smoothing=0.2),
        lambda z: TF.cross_entropy(z, t, w, label_smoothing=0.2),
        (_x(4, 5),),
    )


def _ce_kdim_none():
    t = torch.tensor([[0, 2], [1, 1], [2, 0]])
    return (
        lambda z: F.cross_entropy(z, t, reduction="none"),
        lambda z: TF.cross_entropy(z, t, reduction="none"),
        (_x(3, 3, 2),),
    )


def _ce_probs():
    w = torch.tensor([1.0, 2.0, 0.5], dtype=D)
    return (
        lambda z, t: F.cross_entropy(z, t, w, label_smoothing=0.1),
        lambda z, t: TF.cross_entropy(z, t, w, label_smoothing=0.1),
        (_x(4, 3), torch.rand(4, 3, dtype=D).softmax(1).requires_grad_()),
    )


def _nll():
    t, w = torch.tensor([2, -100, 0, 1]), torch.tensor([1.0, 2.0, 0.5], dtype=D)
    return (lambda x: F.nll_loss(x, t, w), lambda x: TF.nll_loss(x, t, w), (_x(4, 3),))


def _bce():
    return (
        F.binary_cross_entropy_with_logits,
        TF.binary_cross_entropy_with_logits,
        (_x(4, 3, scale=3), torch.rand(4, 3, dtype=D).requires_grad_()),
    )


def _bce_weights_none():
    w, pw = torch.rand(4, 1, dtype=D), torch.tensor([0.5, 2.0, 3.0], dtype=D)
    return (
        lambda z, y: F.binary_cross_entropy_with_logits(z, y, w, reduction="none", pos_weight=pw),
        lambda z, y: TF.binary_cross_entropy_with_logits(z, y, w, reduction="none", pos_weight=pw),
        (_x(4, 3, scale=3), torch.rand(4, 3, dtype=D).requires_grad_()),
    )


def _mse():
    return F.mse_loss, TF.mse_loss, (_x(4, 3), _x(4, 3))


def _mse_weight_broadcast():
    return (
        lambda x, y, w: F.mse_loss(x, y, weight=w),
        lambda x, y, w: TF.mse_loss(x, y, weight=w),
        (_x(4, 3), _x(1, 3), torch.rand(4, 3, dtype=D).requires_grad_()),
    )


def _l1_sum():
    return (
        lambda x, y: F.l1_loss(x, y, reduction="sum"),
        lambda x, y: TF.l1_loss(x, y, reduction="sum"),
        (_x(4, 3), _x(4, 3)),
    )


def _l1_weight():
    return (
        lambda x, y, w: F.l1_loss(x, y, weight=w),
        lambda x, y, w: TF.l1_loss(x, y, weight=w),
        (_x(4, 3), _x(4, 3), torch.rand(4, 3, dtype=D).requires_grad_()),
    )


def _gaussian():
    return (
        lambda x, y, v: F.gaussian_nll_loss(x, y, v, full=True),
        lambda x, y, v: TF.gaussian_nll_loss(x, y, v, full=True),
        (_x(4, 3), _x(4, 3), (torch.rand(4, 1, dtype=D) + 0.3).requires_grad_()),
    )


def _laplace():
    return (
        lambda x, y, b: F.laplace_nll_loss(x, y, b, reduction="none"),
        lambda x, y, b: _laplace_reference(x, y, b, reduction="none"),
        (_x(4, 3), _x(4, 3), (torch.rand(4, 3, dtype=D) + 0.3).requires_grad_()),
    )


CHECKS = {
    "cross_entropy[weight,ignore,smoothing]": _ce_weight_ignore_smoothing,
    "cross_entropy[none,Kdim]": _ce_kdim_none,
    "cross_entropy[probs,weight,smoothing]": _ce_probs,
    "nll_loss[weight,ignore]": _nll,
    "bce_with_logits": _bce,
    "bce_with_logits[weight,pos_weight,none]": _bce_weights_none,
    "mse_loss": _mse,
    "mse_loss[weight,broadcast target]": _mse_weight_broadcast,
    "l1_loss[sum]": _l1_sum,
    "l1_loss[weight]": _l1_weight,
    "gaussian_nll_loss[homoscedastic,full]": _gaussian,
    "laplace_nll_loss[none]": _laplace,
}


#: losses that keep their input and target where torch keeps a new residual tensor: more saved
#: storages in total, none of them new (the caller holds its arguments anyway)
KEEP_ARGUMENTS = {"l1_loss[sum]", "l1_loss[weight]", "laplace_nll_loss[none]"}


@pytest.mark.parametrize("name", list(CHECKS))
def test_check(name):
    """gradcheck, gradgradcheck, parity, vmap + jacrev and compile (aot_eager) of each Function."""
    fn, ref, inputs = CHECKS[name]()
    with _quiet():
        report = check(fn, *inputs, reference=ref)
    assert report.saved_bytes_beyond_inputs <= report.reference_saved_bytes_beyond_inputs
    if name in KEEP_ARGUMENTS:
        # nothing element-sized: at most the 0-d float64 loss of a weighted mean
        assert report.saved_bytes_beyond_inputs <= 8 < report.reference_saved_bytes_beyond_inputs
    else:
        assert report.saved_bytes <= report.reference_saved_bytes


def test_check_laplace_scale_gradient_near_the_clamp():
    # a scale below eps: the gradient is the derivative at eps, passed through (torch's var rule)
    x, y = _x(3), _x(3)
    b = torch.tensor([1e-9, 0.5, 2.0], dtype=D, requires_grad=True)
    got = torch.autograd.grad(F.laplace_nll_loss(x, y, b, eps=1e-3, reduction="sum"), b)[0]
    d = (x - y).detach().abs()
    bc = b.detach().clamp_min(1e-3)
    torch.testing.assert_close(got, 1 / bc - d / bc**2)


# --------------------------------------------------------------------------------------
# parity with torch over the argument grid
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_index_parity(shape, reduction):
    C = shape[0] if len(shape) == 1 else shape[1]
    z = _x(*shape, scale=2)
    for weighted, ignore, smoothing in itertools.product([False, True], [None, -100, 1], [0.0, 0.25]):
        w = torch.rand(C, dtype=D) + 0.1 if weighted else None
        kw = dict(weight=w, reduction=reduction, label_smoothing=smoothing)
        if ignore is not None:
            kw["ignore_index"] = ignore
        t = _index_target(_without_class(shape), C, ignore)
        check_parity(lambda a: F.cross_entropy(a, t, **kw), lambda a: TF.cross_entropy(a, t, **kw), z)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probs_parity(shape, reduction):
    C = shape[0] if len(shape) == 1 else shape[1]
    z = _x(*shape, scale=2)
    y = torch.rand(shape, dtype=D).requires_grad_()
    for weighted, smoothing in itertools.product([False, True], [0.0, 0.3]):
        kw = dict(weight=torch.rand(C, dtype=D) + 0.1 if weighted else None, reduction=reduction, label_smoothing=smoothing)
        check_parity(lambda a, b: F.cross_entropy(a, b, **kw), lambda a, b: TF.cross_entropy(a, b, **kw), z, y)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_parity(shape, reduction):
    C = shape[0] if len(shape) == 1 else shape[1]
    x = _x(*shape).log_softmax(0 if len(shape) == 1 else 1).detach().requires_grad_()
    for weighted, ignore in itertools.product([False, True], [None, -100, 2]):
        kw = dict(weight=torch.rand(C, dtype=D) + 0.1 if weighted else None, reduction=reduction)
        if ignore is not None:
            kw["ignore_index"] = ignore
        t = _index_target(_without_class(shape), C, ignore)
        check_parity(lambda a: F.nll_loss(a, t, **kw), lambda a: TF.nll_loss(a, t, **kw), x)


def test_legacy_reduction_arguments():
    z, y = _x(4, 3), torch.rand(4, 3, dtype=D)
    t = torch.tensor([0, 2, 1, 1])
    for size_average, reduce in [(None, False), (False, None), (True, True), (False, True)]:
        kw = dict(size_average=size_average, reduce=reduce)
        with pytest.warns(UserWarning):
            check_parity(lambda a: F.cross_entropy(a, t, **kw), lambda a: TF.cross_entropy(a, t, **kw), z)
            check_parity(lambda a: F.nll_loss(a, t, **kw), lambda a: TF.nll_loss(a, t, **kw), z)
            check_parity(lambda a: F.mse_loss(a, y, **kw), lambda a: TF.mse_loss(a, y, **kw), z)
            check_parity(lambda a: F.l1_loss(a, y, **kw), lambda a: TF.l1_loss(a, y, **kw), z)
            check_parity(
                lambda a: F.binary_cross_entropy_with_logits(a, y, **kw),
                lambda a: TF.binary_cross_entropy_with_logits(a, y, **kw),
                z,
            )


@pytest.mark.parametrize("shape", [(4, 3), (5,), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_parity(shape, reduction):
    z = _x(*shape, scale=4)
    hard = torch.randint(0, 2, shape).to(D).requires_grad_()
    soft = torch.rand(shape, dtype=D).requires_grad_()
    weights = [None, torch.rand(shape, dtype=D), torch.rand(shape[-1:], dtype=D)]
    if len(shape) > 1:
        weights.append(torch.rand(shape[0], *([1] * (len(shape) - 1)), dtype=D))
    pos_weights = [None, torch.rand(shape[-1:], dtype=D) * 3]
    for y, w, pw in itertools.product([hard, soft], weights, pos_weights):
        kw = dict(weight=w, pos_weight=pw, reduction=reduction)
        check_parity(
            lambda a, b: F.binary_cross_entropy_with_logits(a, b, **kw),
            lambda a, b: TF.binary_cross_entropy_with_logits(a, b, **kw),
            z,
            y,
        )


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_l1_parity(name, reduction):
    ours, theirs = getattr(F, name), getattr(TF, name)
    for x_shape, y_shape in [((4, 3), (4, 3)), ((4, 3), (1, 3)), ((4, 1), (4, 3)), ((), ())]:
        x, y = _x(*x_shape), _x(*y_shape)
        for w in [None, torch.rand(x_shape, dtype=D).requires_grad_()]:
            kw = dict(reduction=reduction, weight=w)
            with _quiet():
                check_parity(lambda a, b: ours(a, b, **kw), lambda a, b: theirs(a, b, **kw), x, y)


VAR_SHAPES = [(4, 3), (4,), (4, 1), (1, 3), "float"]


@pytest.mark.parametrize("var_shape", VAR_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_parity(var_shape, reduction, full):
    x, y = _x(4, 3), _x(4, 3)
    kw = dict(full=full, reduction=reduction)
    if var_shape == "float":
        check_parity(lambda a, b: F.gaussian_nll_loss(a, b, 0.7, **kw), lambda a, b: TF.gaussian_nll_loss(a, b, 0.7, **kw), x, y)
        return
    v = (torch.rand(var_shape, dtype=D) + 0.1).requires_grad_()
    check_parity(lambda *a: F.gaussian_nll_loss(*a, **kw), lambda *a: TF.gaussian_nll_loss(*a, **kw), x, y, v)


def test_gaussian_nll_clamp_passes_the_gradient_through():
    x, y = _x(4), _x(4)
    v = torch.tensor([1e-9, 0.0, 0.5, 2.0], dtype=D, requires_grad=True)
    check_parity(lambda *a: F.gaussian_nll_loss(*a, eps=1e-3), lambda *a: TF.gaussian_nll_loss(*a, eps=1e-3), x, y, v)
    check_gradcheck(lambda *a: F.gaussian_nll_loss(*a, eps=1e-3), x, y, torch.tensor([0.5, 0.7, 1.0, 2.0]).requires_grad_())


def _laplace_reference(x, y, b, full=False, eps=1e-6, reduction="mean"):
    """The Laplace NLL written with torch ops, clamping like torch's gaussian_nll_loss."""
    if isinstance(b, float):
        b = b * torch.ones_like(x)
    elif b.size() != x.size() and x.size()[:-1] == b.size():
        b = b.unsqueeze(-1)
    b = b.clone()
    with torch.no_grad():
        b.clamp_(min=eps)
    loss = (x - y).abs() / b + torch.log(b)
    if full:
        loss = loss + math.log(2)
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@pytest.mark.parametrize("scale_shape", VAR_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", [False, True])
def test_laplace_nll_matches_its_formula(scale_shape, reduction, full):
    x, y = _x(4, 3), _x(4, 3)
    kw = dict(full=full, reduction=reduction)
    if scale_shape == "float":
        check_parity(lambda a, b: F.laplace_nll_loss(a, b, 0.7, **kw), lambda a, b: _laplace_reference(a, b, 0.7, **kw), x, y)
        return
    b = (torch.rand(scale_shape, dtype=D) + 0.1).requires_grad_()
    check_parity(lambda *a: F.laplace_nll_loss(*a, **kw), lambda *a: _laplace_reference(*a, **kw), x, y, b)
    check_gradcheck(lambda *a: F.laplace_nll_loss(*a, **kw), x, y, b)


def test_laplace_minimiser_is_the_median():
    y = torch.tensor([0.0, 1.0, 10.0, 11.0, 100.0], dtype=D)
    mu = torch.zeros((), dtype=D, requires_grad=True)
    opt = torch.optim.SGD([mu], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        F.laplace_nll_loss(mu.expand(5), y, torch.ones(5, dtype=D)).backward()
        opt.step()
    assert abs(mu.item() - 10.0) < 0.6  # the median, not the mean (24.4)


# --------------------------------------------------------------------------------------
# cross_entropy_rows_, the in-place row op of linear_cross_entropy's chunks
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("weighted,smoothing,ignore", [(False, 0.0, -100), (True, 0.2, -100), (True, 0.0, 3)])
def test_cross_entropy_rows_match_autograd(weighted, smoothing, ignore):
    z = _x(6, 7, scale=3)
    w = torch.rand(7, dtype=D) + 0.1 if weighted else None
    t = torch.tensor([0, 6, 3, ignore, 2, 3])
    scale = torch.rand(6, dtype=D)
    want = TF.cross_entropy(z, t, w, ignore_index=ignore, reduction="none", label_smoothing=smoothing)
    (grad,) = torch.autograd.grad(want, z, scale)
    buf = z.detach().clone()
    loss = torch.ops.torchff.cross_entropy_rows_(buf, t, w, scale, ignore, smoothing)
    torch.testing.assert_close(loss, want.detach())
    torch.testing.assert_close(buf, grad)  # the gradient, scaled per row, over the logits


# --------------------------------------------------------------------------------------
# extreme values, half precision, autocast, empty and all-ignored inputs
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_extreme_logits_give_finite_losses_and_gradients(dtype):
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [-1e4, -1e4, -1e4]], dtype=dtype, requires_grad=True)
    t = torch.tensor([1, 0, 2])
    y = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=dtype)
    for ours, theirs, target in [
        (F.cross_entropy, TF.cross_entropy, t),
        (F.cross_entropy, TF.cross_entropy, y),
        (F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, y),
    ]:
        for reduction in REDUCTIONS:
            loss = ours(z, target, reduction=reduction)
            (g,) = torch.autograd.grad(loss.sum(), z)
            assert all_finite(loss, g)
            want = theirs(z, target, reduction=reduction)
            (h,) = torch.autograd.grad(want.sum(), z)
            assert loss.dtype == want.dtype and g.dtype == h.dtype
            torch.testing.assert_close(loss, want, rtol=1e-2, atol=1e-2)
            torch.testing.assert_close(g, h, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_parity(dtype):
    z = (3 * torch.randn(8, 5)).to(dtype).requires_grad_()
    t = torch.randint(0, 5, (8,))
    y = torch.rand(8, 5).to(dtype)
    check_parity(lambda a: F.cross_entropy(a, t), lambda a: TF.cross_entropy(a, t), z)
    check_parity(lambda a: F.cross_entropy(a, y, label_smoothing=0.1), lambda a: TF.cross_entropy(a, y, label_smoothing=0.1), z)
    check_parity(lambda a: F.nll_loss(a, t), lambda a: TF.nll_loss(a, t), z)
    check_parity(lambda a: F.binary_cross_entropy_with_logits(a, y), lambda a: TF.binary_cross_entropy_with_logits(a, y), z)
    check_parity(lambda a: F.mse_loss(a, y), lambda a: TF.mse_loss(a, y), z)
    check_parity(lambda a: F.l1_loss(a, y), lambda a: TF.l1_loss(a, y), z)
    v = torch.rand(8, 5).to(dtype) + 0.5
    check_parity(lambda a: F.gaussian_nll_loss(a, y, v), lambda a: TF.gaussian_nll_loss(a, y, v), z)


AUTOCAST_CASES = {
    "cross_entropy": (lambda m, z, t, y, v: m.cross_entropy(z, t), True),
    "cross_entropy[probs]": (lambda m, z, t, y, v: m.cross_entropy(z, y), True),
    "nll_loss": (lambda m, z, t, y, v: m.nll_loss(z, t), True),
    "bce_with_logits": (lambda m, z, t, y, v: m.binary_cross_entropy_with_logits(z, y), True),
    "mse_loss": (lambda m, z, t, y, v: m.mse_loss(z, y), True),
    "mse_loss[weight]": (lambda m, z, t, y, v: m.mse_loss(z, y, weight=v), False),
    "l1_loss": (lambda m, z, t, y, v: m.l1_loss(z, y), True),
    "gaussian_nll_loss": (lambda m, z, t, y, v: m.gaussian_nll_loss(z, y, v), False),
    "softmax": (lambda m, z, t, y, v: m.softmax(z, 1), False),
    "log_softmax": (lambda m, z, t, y, v: m.log_softmax(z, 1), False),
}


@pytest.mark.parametrize("name", list(AUTOCAST_CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cpu_autocast_dtypes_as_torch(name, dtype):
    fn, float32_under_autocast = AUTOCAST_CASES[name]
    z = (100 * torch.randn(6, 4)).to(dtype).requires_grad_()
    t = torch.randint(0, 4, (6,))
    y, v = torch.rand(6, 4).to(dtype), (torch.rand(6, 4) + 0.5).to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = fn(F, z, t, y, v), fn(TF, z, t, y, v)
    assert got.dtype == want.dtype
    assert got.dtype == (torch.float32 if float32_under_autocast else dtype)
    (g,) = torch.autograd.grad(got.sum(), z)
    assert g.dtype == dtype and all_finite(got, g)
    if all_finite(want):  # torch's float16 squares overflow at |x| ~ 256; torchff computes in float32
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)


def test_autocast_through_a_bfloat16_linear():
    lin = torch.nn.Linear(8, 5)
    x, t = torch.randn(16, 8), torch.randint(0, 5, (16,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = lin(x)
        assert logits.dtype == torch.bfloat16
        loss = F.cross_entropy(logits, t)
        want = TF.cross_entropy(logits, t)
    assert loss.dtype == want.dtype == torch.float32
    loss.backward()
    assert lin.weight.grad.dtype == torch.float32 and all_finite(lin.weight.grad)


def test_all_ignored_batch_as_torch():
    z = _x(4, 3)
    t = torch.full((4,), -100)
    for reduction, smoothing, w in itertools.product(REDUCTIONS, [0.0, 0.2], [None, torch.rand(3, dtype=D)]):
        kw = dict(weight=w, reduction=reduction, label_smoothing=smoothing)
        got, want = F.cross_entropy(z, t, **kw), TF.cross_entropy(z, t, **kw)
        torch.testing.assert_close(got, want, equal_nan=True)  # nan for mean
        (g,) = torch.autograd.grad(got.sum(), z)
        assert torch.equal(g, torch.zeros_like(g))
        torch.testing.assert_close(F.nll_loss(z, t, w, reduction=reduction), TF.nll_loss(z, t, w, reduction=reduction), equal_nan=True)
    assert torch.isnan(F.cross_entropy(z, t))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_inputs_as_torch(reduction):
    z, y = _x(0, 3), torch.rand(0, 3, dtype=D)
    t = torch.zeros(0, dtype=torch.long)
    pairs = [
        (lambda m, a: m.cross_entropy(a, t, reduction=reduction), "ce"),
        (lambda m, a: m.cross_entropy(a, t, reduction=reduction, label_smoothing=0.1), "ce ls"),
        (lambda m, a: m.cross_entropy(a, y, reduction=reduction), "ce probs"),
        (lambda m, a: m.nll_loss(a, t, reduction=reduction), "nll"),
        (lambda m, a: m.binary_cross_entropy_with_logits(a, y, reduction=reduction), "bce"),
        (lambda m, a: m.mse_loss(a, y, reduction=reduction), "mse"),
        (lambda m, a: m.l1_loss(a, y, reduction=reduction), "l1"),
        (lambda m, a: m.gaussian_nll_loss(a, y, torch.ones(0, 3, dtype=D), reduction=reduction), "gnll"),
    ]
    for fn, _ in pairs:
        got, want = fn(F, z), fn(TF, z)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, equal_nan=True)
        (g,) = torch.autograd.grad(got.sum(), z)
        assert g.shape == z.shape


def test_inf_and_nan_logits_as_torch():
    inf, nan = float("inf"), float("nan")
    z = torch.tensor([[inf, 0.0, 1.0], [-inf, 0.0, 1.0], [nan, 0.0, 1.0], [1.0, 2.0, 3.0]], requires_grad=True)
    t = torch.tensor([1, 0, 2, 1])
    y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    for ours, theirs, target in [(F.cross_entropy, TF.cross_entropy, t), (F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, y), (F.mse_loss, TF.mse_loss, y)]:
        got, want = ours(z, target, reduction="none"), theirs(z, target, reduction="none")
        torch.testing.assert_close(got, want, equal_nan=True)
        (g,) = torch.autograd.grad(got.sum(), z)
        (h,) = torch.autograd.grad(want.sum(), z)
        torch.testing.assert_close(g, h, equal_nan=True)


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss], ids=["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad", [3, 7, -1, -5])
def test_class_index_out_of_range_names_the_value(fn, bad):
    z = torch.randn(4, 3)
    with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
        fn(z, torch.tensor([0, bad, 1, 2]))
    with pytest.raises(IndexError, match=f"Target {bad} "):
        fn(torch.randn(2, 3, 4), torch.tensor([[0, 1, 2, 0], [1, 1, bad, 0]]))


def test_ignore_index_is_not_out_of_range():
    z = torch.randn(4, 3)
    for ignore in (-100, -1, 3, 50):
        t = torch.tensor([0, ignore, 1, 2])
        torch.testing.assert_close(F.cross_entropy(z, t, ignore_index=ignore), TF.cross_entropy(z, t, ignore_index=ignore))
    with pytest.raises(IndexError, match="Target 3 "):
        F.cross_entropy(z, torch.tensor([0, 3, 1, 2]), ignore_index=4)


def test_byte_targets_as_torch():
    z = _x(4, 3)
    t = torch.tensor([0, 2, 1, 1], dtype=torch.uint8)
    check_parity(lambda a: F.cross_entropy(a, t), lambda a: TF.cross_entropy(a, t), z)
    with pytest.raises(IndexError, match="Target 200 "):
        F.cross_entropy(z, torch.tensor([0, 200, 1, 1], dtype=torch.uint8))
    # 156 is -100 wrapped to uint8: still a class index, not the ignore_index
    wide = _x(2, 160)
    t = torch.tensor([156, 3], dtype=torch.uint8)
    check_parity(lambda a: F.cross_entropy(a, t), lambda a: TF.cross_entropy(a, t), wide)
    check_parity(lambda a: F.nll_loss(a, t), lambda a: TF.nll_loss(a, t), wide)


def test_shape_mismatches_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5,\)"):
        F.cross_entropy(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(RuntimeError, match=r"\(2, 3, 5\).*\(2, 4\)"):
        F.cross_entropy(torch.randn(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(RuntimeError, match=r"\(4, 3\).*\(4, 1\)"):
        F.nll_loss(torch.randn(4, 3), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[4, 2\].*\[4, 3\]"):
        F.binary_cross_entropy_with_logits(torch.randn(4, 3), torch.rand(4, 2))
    with pytest.raises(RuntimeError, match=r"\[4, 2\].*\[4, 3\]"), pytest.warns(UserWarning):
        F.mse_loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"\(1, 3\).*\(4, 3\)"):
        F.mse_loss(torch.randn(4, 3), torch.randn(4, 3), weight=torch.rand(1, 3))
    with pytest.raises(ValueError, match=r"var is of incorrect size.*\(3,\).*\(4, 3\)"):
        F.gaussian_nll_loss(torch.randn(4, 3), torch.randn(4, 3), torch.ones(3))
    with pytest.raises(ValueError, match=r"scale is of incorrect size.*\(4, 2\).*\(4, 3\)"):
        F.laplace_nll_loss(torch.randn(4, 3), torch.randn(4, 3), torch.ones(4, 2))
    with pytest.raises(ValueError, match="1D target must have size 1"):
        F.cross_entropy(torch.randn(3), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="weight tensor should be defined"):
        F.cross_entropy(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), weight=torch.ones(4))


@pytest.mark.parametrize("fn,name", [(F.gaussian_nll_loss, "var"), (F.laplace_nll_loss, "scale")])
def test_negative_spread_raises(fn, name):
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    with pytest.raises(ValueError, match=f"{name} has negative entry"):
        fn(x, y, torch.tensor([[1.0, -0.1, 1.0]] * 4))
    with pytest.raises(ValueError, match=f"{name} has negative entry"):
        fn(x, y, -1.0)
    with pytest.raises(ValueError, match="foo is not valid"):
        fn(x, y, 1.0, reduction="foo")


def test_errors_match_torch_types():
    z, y, t = torch.randn(4, 3), torch.rand(4, 3), torch.tensor([0, 1, 2, 0])
    cases = [
        lambda m: m.cross_entropy(z, t, reduction="foo"),
        lambda m: m.binary_cross_entropy_with_logits(z, y, reduction="foo"),
        lambda m: m.mse_loss(z, y, reduction="foo"),
        lambda m: m.cross_entropy(z, t, label_smoothing=1.5),
        lambda m: m.cross_entropy(z, y, ignore_index=1),
        lambda m: m.cross_entropy(z, y.long()),
        lambda m: m.cross_entropy(z, t.float()[:, None].expand(4, 2)),
        lambda m: m.cross_entropy(z, t.int()),
        lambda m: m.nll_loss(torch.tensor(1.0), torch.tensor(0)),
        lambda m: m.cross_entropy(z, t, weight=torch.ones(3, requires_grad=True)),
        lambda m: m.binary_cross_entropy_with_logits(z, y, pos_weight=torch.ones(3, requires_grad=True)),
        lambda m: m.gaussian_nll_loss(z, y, torch.ones(4, 3), reduction="foo"),
    ]
    for case in cases:
        with pytest.raises(Exception) as theirs:
            case(TF)
        with pytest.raises(type(theirs.value)):
            case(F)


def test_negative_label_smoothing_is_ignored_as_torch():
    z, t = _x(4, 3), torch.tensor([0, 1, 2, 0])
    check_parity(lambda a: F.cross_entropy(a, t, label_smoothing=-0.1), lambda a: TF.cross_entropy(a, t, label_smoothing=-0.1), z)


# --------------------------------------------------------------------------------------
# the lecture's saturation argument
# --------------------------------------------------------------------------------------
def test_bernoulli_nll_does_not_saturate_where_sigmoid_mse_does():
    z = torch.tensor([-10.0], requires_grad=True)  # confidently wrong: y = 1
    y = torch.tensor([1.0])
    (g_nll,) = torch.autograd.grad(F.bernoulli_nll(z, y), z)
    (g_mse,) = torch.autograd.grad(F.mse_loss(F.sigmoid(z), y), z)
    assert abs(g_nll.item() + 1) < 1e-4  # sigma(z) - y = -0.99995
    assert abs(g_mse.item()) < 1e-3  # 2 (sigma - 1) sigma (1 - sigma), about -9e-5
    # and the right answer, confidently: both vanish
    (g_right,) = torch.autograd.grad(F.bernoulli_nll(-z, y), z)
    assert abs(g_right.item()) < 1e-4


def test_softmax_nll_does_not_saturate_where_softmax_mse_does():
    z = torch.tensor([[10.0, -10.0, 0.0]], requires_grad=True)  # confident in class 0; the answer is 1
    (g_nll,) = torch.autograd.grad(F.softmax_nll(z, torch.tensor([1])), z)
    (g_mse,) = torch.autograd.grad(F.mse_loss(F.softmax(z, 1), torch.tensor([[0.0, 1.0, 0.0]])), z)
    assert g_nll[0, 1].item() < -0.99  # p_1 - 1
    assert g_mse.abs().max().item() < 1e-3


# --------------------------------------------------------------------------------------
# saved bytes
# --------------------------------------------------------------------------------------
def test_saved_bytes_against_torch():
    N, C = 32, 10
    z = torch.randn(N, C, requires_grad=True)
    t, y = torch.randint(0, C, (N,)), torch.rand(N, C)
    w, v = torch.rand(C), torch.rand(N, C, requires_grad=True)

    def saved(fn, *args, **kw):
        return saved_tensors(fn, *args, **kw)[1].total

    elem = N * C * 4
    # cross-entropy: the logits and the target, nothing else (torch: log-softmax, target, total weight)
    assert saved(F.cross_entropy, z, t) == elem + N * 8 <= saved(TF.cross_entropy, z, t)
    for kw in (dict(weight=w), dict(label_smoothing=0.1), dict(reduction="none")):
        assert saved(F.cross_entropy, z, t, **kw) <= saved(TF.cross_entropy, z, t, **kw)
    assert saved(F.cross_entropy, z, y, label_smoothing=0.1) <= saved(TF.cross_entropy, z, y, label_smoothing=0.1)
    # nll: the target and the 0-d total weight (torch: the input too)
    assert saved(F.nll_loss, z, t) == N * 8 + 4 < saved(TF.nll_loss, z, t)
    # bce: the inputs, as torch
    assert saved(F.binary_cross_entropy_with_logits, z, y) == 2 * elem == saved(TF.binary_cross_entropy_with_logits, z, y)
    # regression: the arguments, nothing new (torch's mse_loss keeps the same two; its l1_loss a
    # new residual, its gaussian_nll_loss new intermediates)
    assert saved(F.mse_loss, z, y) == 2 * elem == saved(TF.mse_loss, z, y)
    assert saved(F.l1_loss, z, y) == 2 * elem
    assert saved(F.gaussian_nll_loss, z, y, v) == 3 * elem <= saved(TF.gaussian_nll_loss, z, y, v)
    assert saved(F.laplace_nll_loss, z, y, v) == 3 * elem


# --------------------------------------------------------------------------------------
# modules and aliases
# --------------------------------------------------------------------------------------
MODULES = [
    ("BCEWithLogitsLoss", dict(weight=torch.rand(3), pos_weight=torch.rand(3) * 2, reduction="sum"), "bce"),
    ("CrossEntropyLoss", dict(weight=torch.rand(3), ignore_index=1, label_smoothing=0.1), "index"),
    ("NLLLoss", dict(weight=torch.rand(3), ignore_index=2, reduction="none"), "index"),
    ("MSELoss", dict(reduction="sum"), "float"),
    ("L1Loss", dict(), "float"),
    ("GaussianNLLLoss", dict(full=True, eps=1e-3), "var"),
]


@pytest.mark.parametrize("name,kwargs,kind", MODULES, ids=[m[0] for m in MODULES])
def test_loss_modules_are_drop_ins(name, kwargs, kind):
    ours, theirs = getattr(torchff.nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    assert isinstance(ours, type(theirs))
    assert repr(ours) == repr(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    z = torch.randn(5, 3, requires_grad=True)
    args = {
        "bce": (torch.rand(5, 3),),
        "index": (torch.tensor([0, 1, 2, 2, 0]),),
        "float": (torch.randn(5, 3),),
        "var": (torch.randn(5, 3), torch.rand(5, 1) + 0.1),
    }[kind]
    check_parity(lambda a: ours(a, *args), lambda a: theirs(a, *args), z)
    assert "torchff" not in type(theirs(z, *args).grad_fn).__module__
    assert "Function" in type(ours(z, *args).grad_fn).__name__


def test_legacy_module_arguments():
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        ours, theirs = torchff.nn.CrossEntropyLoss(size_average=False), torch.nn.CrossEntropyLoss(size_average=False)
    assert ours.reduction == theirs.reduction == "sum"


def test_aliases():
    assert F.bernoulli_nll is F.binary_cross_entropy_with_logits
    assert F.softmax_nll is F.cross_entropy
    assert torchff.nn.BernoulliNLLLoss is torchff.nn.BCEWithLogitsLoss
    assert torchff.nn.SoftmaxNLLLoss is torchff.nn.CrossEntropyLoss


def test_laplace_module():
    m = torchff.nn.LaplaceNLLLoss(full=True, eps=1e-3, reduction="sum")
    assert isinstance(m, torch.nn.modules.loss._Loss)
    assert (m.full, m.eps, m.reduction) == (True, 1e-3, "sum")
    x, y, b = _x(4, 2), _x(4, 2), torch.rand(4, dtype=D) + 0.5
    torch.testing.assert_close(m(x, y, b), _laplace_reference(x, y, b, full=True, eps=1e-3, reduction="sum"))
    with pytest.raises(TypeError):
        torchff.nn.LaplaceNLLLoss(True)  # keyword-only, as GaussianNLLLoss


# --------------------------------------------------------------------------------------
# the output registry
# --------------------------------------------------------------------------------------
def test_output_registry():
    from torchff.nn import OutputDistribution, get_output, list_outputs

    assert list_outputs() == ["bernoulli", "categorical", "gaussian", "laplace", "perceptron"]
    expected = {
        "gaussian": ("regression", torchff.nn.MSELoss),
        "laplace": ("regression", torchff.nn.L1Loss),
        "bernoulli": ("binary", torchff.nn.BCEWithLogitsLoss),
        "categorical": ("multiclass", torchff.nn.CrossEntropyLoss),
    }
    h = torch.randn(6, 4)
    for name, (task, loss_type) in expected.items():
        out = get_output(name)
        assert isinstance(out, OutputDistribution) and out.name == name and out.task == task
        assert type(out.loss()) is loss_type
        assert out.loss(reduction="sum").reduction == "sum"
        assert out.out_features(4) == 4
        target = {
            "regression": torch.randn(6, 4),
            "binary": torch.randint(0, 2, (6, 4)).float(),
            "multiclass": torch.randint(0, 4, (6,)),
        }[task]
        assert torch.isfinite(out.loss()(h, target))
    torch.testing.assert_close(get_output("gaussian").predict(h), h)
    torch.testing.assert_close(get_output("laplace").predict(h), h)
    torch.testing.assert_close(get_output("bernoulli").predict(h), torch.sigmoid(h))
    probs = get_output("categorical").predict(h)
    torch.testing.assert_close(probs, torch.softmax(h, 1))
    torch.testing.assert_close(probs.sum(1), torch.ones(6))
    assert get_output("Categorical") is get_output("categorical")
    with pytest.raises(ValueError, match="bernoulli, categorical, gaussian, laplace, perceptron"):
        get_output("poisson")
    with pytest.raises(Exception):
        get_output("gaussian").name = "x"  # frozen


# --------------------------------------------------------------------------------------
# inductor (slow)
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_inductor_compile():
    from torchff.testing import check_compile

    z = torch.randn(8, 5, requires_grad=True)
    t, y = torch.randint(0, 5, (8,)), torch.rand(8, 5)
    check_compile(lambda a: F.cross_entropy(a, t, label_smoothing=0.1), z, backend="inductor")
    check_compile(lambda a: F.binary_cross_entropy_with_logits(a, y), z, backend="inductor")


@pytest.mark.cuda
@pytest.mark.parametrize("name", list(AUTOCAST_CASES))
def test_cuda_parity_and_autocast_dtypes(name):
    fn, _ = AUTOCAST_CASES[name]
    z = (3 * torch.randn(6, 4, device="cuda")).requires_grad_()
    t = torch.randint(0, 4, (6,), device="cuda")
    y, v = torch.rand(6, 4, device="cuda"), torch.rand(6, 4, device="cuda") + 0.5
    check_parity(lambda a: fn(F, a, t, y, v), lambda a: fn(TF, a, t, y, v), z)
    for dtype in (torch.float16, torch.bfloat16):
        zh = z.detach().to(dtype).requires_grad_()
        with torch.autocast("cuda", dtype=dtype):
            got, want = fn(F, zh, t, y.to(dtype), v.to(dtype)), fn(TF, zh, t, y.to(dtype), v.to(dtype))
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)


# helpers --------------------------------------------------------------------------------
class _quiet:
    """Silence the broadcasting warning that both torch and torchff give for unequal shapes."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.filterwarnings("ignore", message="Using a target size")
        return self

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)
