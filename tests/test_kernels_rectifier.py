"""The rectifier family's Triton kernels (torchff/kernels/triton/rectifier.py), proven without a GPU.

* Under triton's interpreter (``TRITON_INTERPRET=1``, set by conftest.py without CUDA), every
  launcher runs on CPU tensors and is compared with the op's CPU implementation: values and
  gradients within the dtype's tolerance, masks and signs exactly; float32, float16, bfloat16;
  sizes that are not multiples of the block, empty tensors, strided inputs. Small sizes: the
  interpreter is slow.
* Every kernel (each constexpr variant) is compiled ahead of time for sm_80 and sm_90; the
  float32 elementwise kernels must load with ``ld.global.v4``.
* With a GPU, the ``cuda``-marked tests run the ops through the dispatcher.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as TF
from triton_support import INTERPRETED, aligned, aot_compile, restore_triton_language

from torchff.kernels import rectifier as K
from torchff.testing import default_tolerances, nan_safe_equal

T = pytest.importorskip("torchff.kernels.triton.rectifier")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SIZES = [0, 7, 1029]  # empty, under one block, one block and a partial one (BLOCK = 1024)
SPECIALS = [0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-40, -1e-40, 1.0, -1.0, 0.5, -2.5]

interpreted = pytest.mark.skipif(not INTERPRETED, reason="runs under TRITON_INTERPRET=1 (no CUDA device)")


def _x(n, dtype, strided=False):
    x = torch.randn(n * 2 if strided else n, dtype=torch.float64) * 3
    specials = SPECIALS
    if dtype == torch.bfloat16 and INTERPRETED:
        # triton's interpreter flushes bfloat16 subnormals to 0 when it converts them to float32
        # (a GPU converts exactly; the cuda tests keep them)
        specials = [v for v in SPECIALS if abs(v) != 1e-40]
    k = min(n, len(specials))
    x[:k] = torch.tensor(specials[:k], dtype=torch.float64)
    x = x.to(dtype)
    return x[::2] if strided else x  # the specials land on the even positions when strided


def _close(a, b, dtype):
    rtol, atol = default_tolerances(dtype)
    assert a.dtype == b.dtype and a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol, equal_nan=True)


def _cpu(name):
    """The op's CPU implementation (the C loop, or the composite without the library / for halves)."""
    return getattr(K, f"_{name}_cpu") if hasattr(K, f"_{name}_cpu") and K._HAVE_C else getattr(K, f"_{name}_composite")


# --------------------------------------------------------------------------------------
# interpreter: launchers against the CPU implementation
# --------------------------------------------------------------------------------------
@interpreted
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_elementwise_launchers(dtype, n, strided):
    x, g = _x(n, dtype, strided), _x(n, dtype, strided).flip(0) * 0.5
    for a in (-0.5, 0.01, float("nan")):
        out, mask = T.leaky_mask(x, a)
        want, want_mask = _cpu("leaky_mask")(x, a)
        assert torch.equal(mask, want_mask)
        _close(out, want, dtype)
        _close(T.leaky_backward(g, mask, a), _cpu("leaky_backward")(g, mask, a), dtype)
    out, sign = T.abs_sign(x)
    want, want_sign = _cpu("abs_sign")(x)
    assert torch.equal(sign, want_sign) and sign.dtype == torch.int8
    assert nan_safe_equal(out, want)  # exact: |x| rounds nothing
    _close(T.times_small(g, sign), _cpu("times_small")(g, sign), dtype)
    for ste in (False, True):
        out, inside = T.step(x, ste)
        want, want_inside = _cpu("step")(x, ste)
        assert nan_safe_equal(out, want) and torch.equal(inside, want_inside)
    _, inside = T.step(x, True)
    _close(T.times_small(g, inside), _cpu("times_small")(g, inside), dtype)


PRELU_SHAPES = [((7,), (1,)), ((), ()), ((9, 5), (5,)), ((9, 5), (1,)), ((3, 4, 5, 3), (4,)),
                ((2, 3, 300), (3,)), ((1100,), (1,)), ((0, 4), (4,)), ((3, 1300), (1300,))]


@interpreted
@pytest.mark.parametrize("shape, wshape", PRELU_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_prelu_launchers(dtype, shape, wshape):
    n = torch.Size(shape).numel()
    x = _x(n, dtype).reshape(shape)
    if len(shape) == 2 and n:
        x = x.t().contiguous().t()  # strided (dim 1 stays the channel)
    w = torch.randn(wshape, dtype=torch.float64).to(dtype)
    g = torch.randn(shape, dtype=torch.float64).to(dtype)
    for with_mask in (False, True):
        out, mask = T.prelu(x, w, with_mask)
        want, want_mask = _cpu("prelu")(x, w, with_mask)
        assert torch.equal(mask, want_mask)
        _close(out, want, dtype)
    gi, gw = T.prelu_backward(g, x > 0, w, True, False)
    assert gw.numel() == 0
    _close(gi, _cpu("prelu_backward")(g, x > 0, w, True, False)[0], dtype)
    per_channel = max(1, n // max(1, w.numel()))
    for need_input, need_weight in ((True, True), (False, True), (True, False)):
        gi, gw = T.prelu_backward(g, x, w, need_input, need_weight)
        ci, cw = _cpu("prelu_backward")(g, x, w, need_input, need_weight)
        assert gi.shape == ci.shape and gw.shape == cw.shape and gw.dtype == cw.dtype
        if need_input:
            _close(gi, ci, dtype)
        if need_weight:  # a sum over the channel: float32 in the kernel, rounding grows with its length
            _, ref = K._prelu_backward_composite(g.double(), x.double(), w.double(), False, True)
            rtol, atol = default_tolerances(dtype)
            torch.testing.assert_close(gw.double(), ref, rtol=rtol, atol=atol * per_channel**0.5, equal_nan=True)


# --------------------------------------------------------------------------------------
# ahead-of-time compilation for sm_80 and sm_90
# --------------------------------------------------------------------------------------
_PTR = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}


def _variants():
    """(name, kernel, signature, constexprs, aligned args, elementwise) for every kernel variant."""
    out = []
    for dtype, p in _PTR.items():
        ew = dtype == torch.float32
        out.append((f"leaky_mask[{dtype}]", T.leaky_mask_kernel,
                    {"x_ptr": p, "out_ptr": p, "mask_ptr": "*u8", "a": "fp32", "n": "i32"}, {"BLOCK": T.BLOCK},
                    ("x_ptr", "out_ptr", "mask_ptr", "n"), ew))
        out.append((f"leaky_backward[{dtype}]", T.leaky_backward_kernel,
                    {"g_ptr": p, "mask_ptr": "*u8", "out_ptr": p, "a": "fp32", "n": "i32"}, {"BLOCK": T.BLOCK},
                    ("g_ptr", "mask_ptr", "out_ptr", "n"), ew))
        out.append((f"abs_sign[{dtype}]", T.abs_sign_kernel,
                    {"x_ptr": p, "out_ptr": p, "sign_ptr": "*i8", "n": "i32"}, {"BLOCK": T.BLOCK},
                    ("x_ptr", "out_ptr", "sign_ptr", "n"), ew))
        out.append((f"times_small[{dtype}]", T.times_small_kernel,
                    {"g_ptr": p, "small_ptr": "*i8", "out_ptr": p, "n": "i32"}, {"BLOCK": T.BLOCK},
                    ("g_ptr", "small_ptr", "out_ptr", "n"), ew))
        for ste in (False, True):
            out.append((f"step[{dtype}, ste={ste}]", T.step_kernel,
                        {"x_ptr": p, "out_ptr": p, "inside_ptr": "*u8", "n": "i32"}, {"STE": ste, "BLOCK": T.BLOCK},
                        ("x_ptr", "out_ptr", "inside_ptr", "n"), ew))
        for with_mask in (False, True):
            out.append((f"prelu[{dtype}, mask={with_mask}]", T.prelu_kernel,
                        {"x_ptr": p, "w_ptr": p, "out_ptr": p, "mask_ptr": "*u8", "n": "i32", "C": "i32", "inner": "i32"},
                        {"WITH_MASK": with_mask, "BLOCK": T.BLOCK}, ("x_ptr", "out_ptr", "mask_ptr", "n"), ew))
        for on_rows, block_r, block_l in ((True, 1, 1024), (True, 4, 256), (False, 16, 64)):
            for from_mask, need_input, need_weight in ((False, True, True), (False, False, True), (True, True, False)):
                out.append((f"prelu_backward[{dtype}, rows={on_rows}, mask={from_mask}, in={need_input}, "
                            f"w={need_weight}]", T.prelu_backward_kernel,
                            {"g_ptr": p, "s_ptr": "*u8" if from_mask else p, "w_ptr": p, "gi_ptr": p,
                             "partial_ptr": "*fp32", "n": "i32", "R": "i32", "L": "i32", "C": "i32"},
                            {"CH_ON_ROWS": on_rows, "FROM_MASK": from_mask, "NEED_INPUT": need_input,
                             "NEED_WEIGHT": need_weight, "BLOCK_R": block_r, "BLOCK_L": block_l},
                            ("g_ptr", "s_ptr", "gi_ptr", "n", "L"), False))
    return out


VARIANTS = _variants()


@pytest.mark.parametrize("capability", [80, 90], ids=lambda c: f"sm_{c}")
@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_aot_compiles(variant, capability):
    name, kernel, signature, constexprs, aligned_args, elementwise = variant
    compiled = aot_compile(kernel, signature, constexprs, capability, aligned(kernel, *aligned_args))
    ptx = compiled.asm["ptx"]
    assert f".target sm_{capability}" in ptx and len(compiled.asm["cubin"]) > 0
    if elementwise:  # float32: 4 floats per load
        assert re.search(r"ld\.global(\.\w+)*\.v4", ptx), name


# --------------------------------------------------------------------------------------
# a real GPU
# --------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cuda_ops_against_cpu(dtype):
    x = _x(100_003, dtype)
    g = torch.randn_like(x)
    xc, gc = x.cuda(), g.cuda()
    for a in (-0.5, 0.01):
        out, mask = K.leaky_mask(xc, a)
        want, want_mask = K.leaky_mask(x, a)
        assert torch.equal(mask.cpu(), want_mask)
        _close(out.cpu(), want, dtype)
        _close(K.leaky_backward(gc, mask, a).cpu(), K.leaky_backward(g, want_mask, a), dtype)
    out, sign = K.abs_sign(xc)
    assert torch.equal(sign.cpu(), K.abs_sign(x)[1])
    out, inside = K.step(xc, True)
    assert torch.equal(inside.cpu(), K.step(x, True)[1])
    x2, w = x[:100_000].reshape(1000, 100), torch.randn(100, dtype=dtype)
    g2 = g[:100_000].reshape(1000, 100)
    gi, gw = K.prelu_backward(g2.cuda(), x2.cuda(), w.cuda(), True, True)
    ci, cw = K.prelu_backward(g2, x2, w, True, True)
    _close(gi.cpu(), ci, dtype)
    torch.testing.assert_close(gw.cpu().double(), cw.double(), rtol=2e-2, atol=2e-2 * 30)


@pytest.mark.cuda
def test_cuda_functional_parity_and_no_host_sync():
    import torchff.functional as F

    x = (torch.randn(257, 33, device="cuda") * 3).requires_grad_()
    w = torch.rand(33, device="cuda", requires_grad=True)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for ours, ref in ((lambda t: F.leaky_relu(t, -0.5), lambda t: TF.leaky_relu(t, -0.5)),
                          (F.abs_relu, torch.abs), (lambda t: F.prelu(t, w), lambda t: TF.prelu(t, w)),
                          (lambda t: F.prelu(t, w.detach()), lambda t: TF.prelu(t, w.detach()))):
            out = ours(x)
            grads = torch.autograd.grad(out.sum(), [x, w], allow_unused=True)
            want = ref(x)
            want_grads = torch.autograd.grad(want.sum(), [x, w], allow_unused=True)
            torch.testing.assert_close(out, want)
            for a, b in zip(grads, want_grads):
                if b is not None:
                    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.skipif(not INTERPRETED, reason="the interpreter's leftover patches exist only under TRITON_INTERPRET=1")
def test_aot_compiles_after_an_interpreted_kernel_that_calls_the_standard_library(monkeypatch):
    """An interpreted ``tl.sum`` leaves ``triton.language.core`` patched (triton 3.8); the
    ahead-of-time compile that follows in the same process must still work."""
    import triton
    import triton.language as tl

    from torchff.kernels._common import SUM
    from torchff.kernels.triton import losses

    restore_triton_language()
    pristine_cast = tl.core.cast
    losses.bce_with_logits(torch.randn(3000), torch.rand(3000), None, None, SUM)  # its sum kernel calls tl.sum
    assert tl.core.cast is not pristine_cast  # the leak this guards against is there
    monkeypatch.setattr(triton.knobs.compilation, "always_compile", True)  # no cached binary hides a failure
    name, kernel, signature, constexprs, aligned_args, _ = VARIANTS[0]
    compiled = aot_compile(kernel, signature, constexprs, 80, aligned(kernel, *aligned_args))
    assert ".target sm_80" in compiled.asm["ptx"] and tl.core.cast is pristine_cast
