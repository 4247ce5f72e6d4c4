"""Linear + cross-entropy in row chunks: torchff.functional.linear_cross_entropy and LinearCrossEntropyLoss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF
from torch.utils._python_dispatch import TorchDispatchMode

import torchff
import torchff.functional as F
from torchff.autograd.linear_cross_entropy import default_chunk_size
from torchff.testing import check_compile, check_gradcheck, check_parity, saved_tensors

N, H, C = 11, 6, 7


def reference(input, weight, target, bias=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    logits = TF.linear(input, weight, bias)
    return TF.cross_entropy(logits.reshape(-1, weight.shape[0]), target.reshape(-1), ignore_index=ignore_index,
                            reduction=reduction, label_smoothing=label_smoothing).reshape(
        target.shape if reduction == "none" else ())


def make(n=N, h=H, c=C, dtype=torch.float64, bias=True, ignored=(2, 5)):
    x = torch.randn(n, h, dtype=dtype, requires_grad=True)
    w = torch.randn(c, h, dtype=dtype, requires_grad=True)
    b = torch.randn(c, dtype=dtype, requires_grad=True) if bias else None
    t = torch.randint(0, c, (n,))
    for i in ignored:
        if i < n:
            t[i] = -100
    return x, w, b, t


def both(t, chunk_size=None, **kw):
    """(fused, reference) as functions of (input, weight, bias) for a fixed target."""
    def fused(x, w, b=None):
        return F.linear_cross_entropy(x, w, t, b, chunk_size=chunk_size, **kw)

    def ref(x, w, b=None):
        return reference(x, w, t, b, **kw)

    return fused, ref


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("chunk_size", [1, 4, N - 1, N, 64])  # 4: a last partial chunk; 64 > N
def test_parity_with_linear_cross_entropy(dtype, reduction, label_smoothing, chunk_size):
    x, w, b, t = make(dtype=dtype)
    fused, ref = both(t, chunk_size, reduction=reduction, label_smoothing=label_smoothing)
    check_parity(fused, ref, x, w, b)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_parity_without_bias_and_default_chunks(reduction):
    x, w, _, t = make(bias=False)
    fused, ref = both(t, reduction=reduction, label_smoothing=0.1)
    check_parity(fused, ref, x, w)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_parity_with_a_class_as_ignore_index_and_frozen_weight(reduction):
    x, w, b, t = make(ignored=())
    t[:4] = 3
    w.requires_grad_(False)
    fused, ref = both(t, 4, ignore_index=3, reduction=reduction)
    check_parity(fused, ref, x, w, b)


def test_parity_for_leading_dims_and_unbatched_input():
    x = torch.randn(2, 3, H, dtype=torch.float64, requires_grad=True)
    w = torch.randn(C, H, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, C, (2, 3))
    for reduction in ("mean", "none"):
        fused, ref = both(t, 4, reduction=reduction)
        check_parity(fused, ref, x, w)
    x1, t1 = torch.randn(H, dtype=torch.float64, requires_grad=True), torch.tensor(4)
    for reduction in ("mean", "none"):
        fused, ref = both(t1, reduction=reduction)
        out = fused(x1, w)
        assert out.shape == ()
        check_parity(fused, ref, x1, w)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_all_rows_ignored_as_torch(label_smoothing):
    x, w, b, t = make(ignored=range(N))
    for reduction in ("mean", "sum", "none"):
        fused, ref = both(t, 4, reduction=reduction, label_smoothing=label_smoothing)
        got, want = fused(x, w, b), ref(x, w, b)
        assert torch.equal(got.isnan(), want.isnan()), (reduction, got, want)
        if reduction == "mean":
            assert got.isnan()
        check_parity(fused, ref, x, w, b)


def test_empty_input_as_torch():
    x, w, b, _ = make(n=0)
    t = torch.zeros(0, dtype=torch.long)
    for reduction in ("mean", "sum", "none"):
        got, want = F.linear_cross_entropy(x, w, t, b, reduction=reduction), reference(x, w, t, b, reduction=reduction)
        torch.testing.assert_close(got, want, equal_nan=True)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(reduction):
    x, w, b, t = make(n=5, h=3, c=4, ignored=(1,))
    fused, _ = both(t, 2, reduction=reduction, label_smoothing=0.2)
    check_gradcheck(fused, x, w, b)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_forward_mode_matches_torch(reduction):
    """jvp (torch.func and forward_ad) equals linear + cross_entropy's, chunked, with ignored rows."""
    import torch.autograd.forward_ad as fwAD

    x, w, b, t = make(ignored=(2, 5))
    fused, ref = both(t, 4, reduction=reduction, label_smoothing=0.1)
    primals = tuple(a.detach() for a in (x, w, b))
    tangents = tuple(torch.randn_like(a) for a in primals)
    got, want = torch.func.jvp(fused, primals, tangents), torch.func.jvp(ref, primals, tangents)
    torch.testing.assert_close(got, want)
    with fwAD.dual_level():  # a dual input beside a weight that requires grad: both modes at once
        w_leaf = w.detach().requires_grad_()
        loss = fused(fwAD.make_dual(primals[0], tangents[0]), w_leaf, primals[2])
        tangent = fwAD.unpack_dual(loss).tangent
        loss.sum().backward()
    torch.testing.assert_close(tangent, torch.func.jvp(lambda v: ref(v, primals[1], primals[2]), primals[:1], tangents[:1])[1])
    w_ref = w.detach().requires_grad_()
    ref(primals[0], w_ref, primals[2]).sum().backward()
    torch.testing.assert_close(w_leaf.grad, w_ref.grad)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_graph_keeps_no_reference_to_the_input_for_forward_mode(reduction):
    # a non-leaf input that nothing else keeps: the graph must not hold it for a jvp that cannot come
    # (with reduction='none' the backward itself saves the input; so the tangent's reference is the
    # only one under test for 'mean')
    import weakref

    x, w, b, t = make()
    h = x * 2.0
    ref = weakref.ref(h)
    loss = F.linear_cross_entropy(h, w, t, b, chunk_size=4, reduction=reduction)
    del h
    assert (ref() is None) == (reduction == "mean")
    loss.sum().backward()


def test_extreme_logits_are_stable():
    x, w, b, t = make(dtype=torch.float32, ignored=())
    with torch.no_grad():
        x.mul_(1e3)  # logits of order 1e3 to 1e4
    fused, ref = both(t, 4, label_smoothing=0.1)
    got = fused(x, w, b)
    assert torch.isfinite(got)
    check_parity(fused, ref, x, w, b, rtol=1e-5, atol=1e-3)


def test_float32_matches_float64_reference_closely():
    x, w, b, t = make(n=64, h=32, c=100)
    want = torch.autograd.grad(reference(x, w, t, b), (x, w, b))
    x32, w32, b32 = (a.detach().float().requires_grad_() for a in (x, w, b))
    got = torch.autograd.grad(F.linear_cross_entropy(x32, w32, t, b32, chunk_size=16), (x32, w32, b32))
    for g, r in zip(got, want):
        torch.testing.assert_close(g.double(), r, rtol=1e-5, atol=1e-6)


def test_bfloat16_accumulates_in_float32():
    x, w, b, t = make(n=256, h=16, c=32, ignored=())
    want_loss = reference(x, w, t, b)
    want = torch.autograd.grad(want_loss, (x, w, b))
    xb, wb, bb = (a.detach().bfloat16().requires_grad_() for a in (x, w, b))
    loss = F.linear_cross_entropy(xb, wb, t, bb, chunk_size=8)
    got = torch.autograd.grad(loss, (xb, wb, bb))
    assert loss.dtype == torch.bfloat16 and all(g.dtype == torch.bfloat16 for g in got)
    # same tolerance torch's own bfloat16 Linear + cross_entropy meets against float64
    torch.testing.assert_close(loss.double(), want_loss, rtol=2e-2, atol=2e-2)
    for g, r in zip(got, want):
        torch.testing.assert_close(g.double(), r, rtol=2e-2, atol=2e-2 * r.abs().max().item())
    # the weight gradient sums 32 chunk products: in float32 it is no worse than one bf16 rounding
    err = (got[1].double() - want[1]).abs().max()
    assert err <= 2 * 2**-8 * want[1].abs().max()


def test_backward_twice_with_retain_graph():
    x, w, b, t = make()
    for reduction in ("mean", "none"):
        loss = F.linear_cross_entropy(x, w, t, b, reduction=reduction, chunk_size=4).sum()
        g1 = torch.autograd.grad(loss, (x, w, b), retain_graph=True)
        g2 = torch.autograd.grad(loss, (x, w, b))
        for a, c in zip(g1, g2):
            assert torch.equal(a, c)


def test_double_backward_raises():
    x, w, b, t = make()
    loss = F.linear_cross_entropy(x, w, t, b, chunk_size=4)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_no_grad_mode_computes_no_gradients():
    x, w, b, t = make()
    with torch.no_grad():
        out, saved = saved_tensors(F.linear_cross_entropy, x, w, t, b)
    assert out.grad_fn is None and saved.total == 0
    torch.testing.assert_close(out, reference(x, w, t, b).detach())


def test_saves_gradients_not_logits():
    n, h, c = 64, 8, 50
    x, w, b, t = make(n=n, h=h, c=c, dtype=torch.float32)
    loss, saved = saved_tensors(F.linear_cross_entropy, x, w, t, b, chunk_size=16)
    assert saved.total == (n * h + c * h + c) * 4  # grad_input, grad_weight, grad_bias
    _, ref_saved = saved_tensors(reference, x, w, t, b)
    assert ref_saved.beyond(x, w, b, t) >= n * c * 4  # torch keeps the N x C log_softmax output
    w.requires_grad_(False)
    _, saved = saved_tensors(F.linear_cross_entropy, x, w, t, b, chunk_size=16)
    assert saved.total == (n * h + c) * 4  # a frozen weight gets no gradient buffer
    out, saved = saved_tensors(F.linear_cross_entropy, x, w, t, b, reduction="none", chunk_size=16)
    assert saved.beyond(x, w, b, t) == 0  # only the inputs: backward recomputes each chunk


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                self.largest = max(self.largest, o.numel())
        return out


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_never_builds_the_full_logits(reduction):
    n, h, c, chunk = 96, 8, 40, 16
    x, w, b, t = make(n=n, h=h, c=c, dtype=torch.float32)
    with _LargestTensor() as mode:
        F.linear_cross_entropy(x, w, t, b, reduction=reduction, chunk_size=chunk).sum().backward()
    assert mode.largest == max(chunk * c, n * h)  # one chunk of logits, or the input gradient
    with _LargestTensor() as mode:
        reference(x, w, t, b, reduction=reduction).sum().backward()
    assert mode.largest == n * c


def test_out_of_range_target_raises():
    x, w, b, t = make()
    for bad in (C, -1, 1000):
        t2 = t.clone()
        t2[3] = bad
        with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):  # torch's error
            F.linear_cross_entropy(x, w, t2, b)
        with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
            reference(x, w, t2, b)


def test_bad_arguments_raise():
    x, w, b, t = make()
    with pytest.raises(TypeError, match="class indices"):
        F.linear_cross_entropy(x, w, t.double(), b)
    with pytest.raises(ValueError, match="reduction"):
        F.linear_cross_entropy(x, w, t, b, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.linear_cross_entropy(x, w, t, b, label_smoothing=1.5)
    with pytest.raises(ValueError, match="weight must have shape"):
        F.linear_cross_entropy(x, w.t(), t, b)
    with pytest.raises(ValueError, match="target shape"):
        F.linear_cross_entropy(x, w, t[:-1], b)
    with pytest.raises(TypeError, match="dtype"):
        F.linear_cross_entropy(x.float(), w, t, b)
    with pytest.raises(ValueError, match="chunk_size"):
        F.linear_cross_entropy(x, w, t, b, chunk_size=0)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_compiles_without_graph_breaks(reduction):
    x, w, b, t = make(dtype=torch.float32)
    fused, _ = both(t, 4, reduction=reduction, label_smoothing=0.1)
    check_compile(fused, x, w, b, backend="aot_eager")


def test_default_chunk_size():
    assert default_chunk_size(8192, 32768) == 256  # 32 MiB of float32 logits
    assert default_chunk_size(10, 32768) == 10
    assert default_chunk_size(10**6, 10) == 4096
    assert default_chunk_size(10**6, 10**7) == 8
    for n, c in [(8192, 1000), (100000, 50257)]:
        rows = default_chunk_size(n, c)
        assert rows & (rows - 1) == 0


# --------------------------------------------------------------------------------------
# the module
# --------------------------------------------------------------------------------------
def test_module_initialises_and_loads_like_linear():
    torch.manual_seed(3)
    lin = torch.nn.Linear(H, C)
    torch.manual_seed(3)
    head = torchff.nn.LinearCrossEntropyLoss(H, C)
    assert head.state_dict().keys() == lin.state_dict().keys()
    for k, v in lin.state_dict().items():
        assert torch.equal(head.state_dict()[k], v)
    other = torch.nn.Linear(H, C)
    head.load_state_dict(other.state_dict())
    lin.load_state_dict(head.state_dict())
    assert torch.equal(lin.weight, other.weight)
    no_bias = torchff.nn.LinearCrossEntropyLoss(H, C, bias=False)
    assert no_bias.bias is None and list(no_bias.state_dict()) == ["weight"]


def test_module_matches_linear_plus_cross_entropy_loss():
    head = torchff.nn.LinearCrossEntropyLoss(H, C, ignore_index=1, reduction="sum", label_smoothing=0.1,
                                             chunk_size=4, dtype=torch.float64)
    lin = torch.nn.Linear(H, C, dtype=torch.float64)
    lin.load_state_dict(head.state_dict())
    crit = torch.nn.CrossEntropyLoss(ignore_index=1, reduction="sum", label_smoothing=0.1)
    x = torch.randn(N, H, dtype=torch.float64)
    t = torch.randint(0, C, (N,))
    head(x, t).backward()
    crit(lin(x), t).backward()
    torch.testing.assert_close(head.weight.grad, lin.weight.grad)
    torch.testing.assert_close(head.bias.grad, lin.bias.grad)
    torch.testing.assert_close(head.logits(x), lin(x))
    assert "num_classes=7" in repr(head) and "chunk_size=4" in repr(head)


def test_module_pickles_deep_copies_and_loads_weights_only():
    import copy
    import io
    import pickle

    head = torchff.nn.LinearCrossEntropyLoss(H, C, label_smoothing=0.1, chunk_size=4)
    x, t = torch.randn(N, H), torch.randint(0, C, (N,))
    want = head(x, t)
    for other in (copy.deepcopy(head), pickle.loads(pickle.dumps(head))):
        assert repr(other) == repr(head)
        torch.testing.assert_close(other(x, t), want)
    buf = io.BytesIO()
    torch.save(head.state_dict(), buf)
    buf.seek(0)
    fresh = torchff.nn.LinearCrossEntropyLoss(H, C, label_smoothing=0.1, chunk_size=4)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(fresh(x, t), want)
