"""The elementwise losses' kernels (BCE with logits, MSE / L1 / Gaussian / Laplace): the C loops
against the composite, the Triton launchers under the interpreter against the CPU kernels (float32,
float16, bfloat16; odd sizes, empty, non-contiguous and broadcast arguments), and every Triton
kernel compiled ahead of time for sm_80 and sm_90."""

from __future__ import annotations

import os

import pytest
import torch

from torchff.kernels import _c
from torchff.kernels import losses as ops

nan, inf = float("nan"), float("inf")
SHAPES = [(7, 5), (1037,), (0, 3), (3, 0)]  # not multiples of a block; empty
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12),
       torch.float16: dict(rtol=2e-3, atol=1e-3), torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2)}


def _logits(shape, dtype):
    z = 6 * torch.randn(shape)
    if z.numel() > 10:
        z.view(-1)[:6] = torch.tensor([inf, -inf, nan, 0.0, 100.0, -100.0])
    return z.to(dtype)


def _bce_args(shape, dtype, weighted):
    z, y = _logits(shape, dtype), torch.rand(shape).to(dtype)
    if not weighted or not len(shape):
        return z, y, None, None
    return z, y, torch.rand(shape[:1] + (1,) * (len(shape) - 1)).to(dtype), (3 * torch.rand(shape[-1:])).to(dtype)


def _reg_args(shape, dtype, kind):
    x, y = torch.randn(shape).to(dtype), torch.randn(shape).to(dtype)
    a = None
    if kind != ops.MSE:
        a = torch.rand(shape).to(dtype)
        if a.numel() > 3:
            a.view(-1)[:2] = torch.tensor([0.0, 1e-9])  # below eps: clamped
    return x, y, a


def _close(a, b, dtype):
    assert a.shape == b.shape and a.dtype == b.dtype
    torch.testing.assert_close(a, b, equal_nan=True, **TOL[dtype])


# --------------------------------------------------------------------------------------
# the C loops against the composite
# --------------------------------------------------------------------------------------
needs_c = pytest.mark.skipif(not _c.available(), reason="the C library is not built")


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
@pytest.mark.parametrize("shape", SHAPES + [(70000,)], ids=str)  # 70000: two chunks on two threads
@pytest.mark.parametrize("weighted", [False, True])
def test_c_bce_matches_the_composite(dtype, shape, weighted):
    args = _bce_args(shape, dtype, weighted)
    _close(ops.bce_with_logits(*args), ops._bce_composite(*args), dtype)
    for g in (torch.tensor(0.3, dtype=dtype), torch.randn(shape).to(dtype)):
        for need in ((True, False), (False, True), (True, True)):
            got = ops.bce_with_logits_backward(g, *args, *need)
            want = ops._bce_backward_composite(g, *args, *need)
            for a, b in zip(got, want):
                _close(a, b, dtype)


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
@pytest.mark.parametrize("shape", SHAPES + [(70000,)], ids=str)
@pytest.mark.parametrize("kind", [ops.MSE, ops.L1, ops.GAUSSIAN, ops.LAPLACE])
def test_c_regression_matches_the_composite(dtype, shape, kind):
    x, y, a = _reg_args(shape, dtype, kind)
    got, want = ops.regression(x, y, a, kind, True, 1e-3), ops._regression_composite(x, y, a, kind, True, 1e-3)
    for p, q in zip(got, want):
        _close(p, q, dtype)
    d = want[1]
    for g in (torch.tensor(0.3, dtype=dtype), torch.randn(shape).to(dtype)):
        for need in ([False, True] if a is not None else [False]):
            got = ops.regression_backward(g, d, a, kind, 1e-3, need)
            want = ops._regression_backward_composite(g, d, a, kind, 1e-3, need)
            for p, q in zip(got, want):
                _close(p, q, dtype)


@needs_c
def test_c_exp_and_log1p_are_accurate_down_to_the_subnormals():
    a = torch.cat([torch.linspace(0, 110, 100001), torch.tensor([inf, nan])])
    got = ops.bce_with_logits(-a, torch.zeros_like(a), None, None)  # = log1p(exp(-a))
    want = torch.log1p(torch.exp(-a.double()))
    normal = want > 1.2e-38
    rel = ((got.double() - want).abs() / want)[normal]
    assert rel.max() < 5e-7  # a few float32 ulps
    torch.testing.assert_close(got[:-2][~normal[:-2]].double(), want[:-2][~normal[:-2]], rtol=0, atol=3e-45)  # within two subnormal steps
    assert torch.isnan(got[-1])


# --------------------------------------------------------------------------------------
# the Triton launchers under the interpreter, against the CPU kernels
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def k():
    pytest.importorskip("triton")
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.fail("without a GPU, conftest sets TRITON_INTERPRET=1")
    from torchff.kernels.triton import losses

    return losses


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("weighted", [False, True])
def test_triton_bce_matches_the_cpu_kernel(k, dtype, shape, weighted):
    args = _bce_args(shape, dtype, weighted)
    _close(k.bce_with_logits(*args), ops.bce_with_logits(*args), dtype)
    for g in (torch.tensor(0.3, dtype=dtype), torch.randn(shape).to(dtype)):
        got = k.bce_with_logits_backward(g, *args, True, True)
        want = ops.bce_with_logits_backward(g, *args, True, True)
        for a, b in zip(got, want):
            _close(a, b, dtype)
    got = k.bce_with_logits_backward(g, *args, True, False)
    assert got[1].numel() == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", [ops.MSE, ops.L1, ops.GAUSSIAN, ops.LAPLACE])
def test_triton_regression_matches_the_cpu_kernel(k, dtype, shape, kind):
    x, y, a = _reg_args(shape, dtype, kind)
    got, want = k.regression(x, y, a, kind, True, 1e-3), ops.regression(x, y, a, kind, True, 1e-3)
    for p, q in zip(got, want):
        _close(p, q, dtype)
    d = want[1]
    for g in (torch.tensor(0.3, dtype=dtype), torch.randn(shape).to(dtype)):
        need = a is not None
        got = k.regression_backward(g, d, a, kind, 1e-3, need)
        want = ops.regression_backward(g, d, a, kind, 1e-3, need)
        for p, q in zip(got, want):
            _close(p, q, dtype)


def test_triton_non_contiguous_and_broadcast_arguments(k):
    z = torch.randn(6, 10)[:, ::2]
    y = torch.rand(5, 6).t()
    assert not z.is_contiguous() and not y.is_contiguous()
    pw = torch.rand(5) * 2
    _close(k.bce_with_logits(z, y, None, pw), ops.bce_with_logits(z, y, None, pw), torch.float32)
    x, t = torch.randn(6, 5)[::1, :], torch.randn(1, 5)  # a broadcast target
    for p, q in zip(k.regression(x.t(), t.t(), None, ops.MSE, False, 0.0), ops.regression(x.t(), t.t(), None, ops.MSE, False, 0.0)):
        _close(p, q, torch.float32)


# --------------------------------------------------------------------------------------
# ahead-of-time compilation for sm_80 and sm_90
# --------------------------------------------------------------------------------------
_AOT_SCRIPT = r"""
import json, re, sys
from triton_support import CAPABILITIES, aligned, aot_compile
from torchff.kernels.triton import losses as k

report = []
for cap in CAPABILITIES:
    for t in ("fp32", "fp16", "bf16"):
        B = {"BLOCK": 1024}
        kernels = [
            ("bce", k.bce_kernel,
             {"z_ptr": f"*{t}", "y_ptr": f"*{t}", "w_ptr": f"*{t}", "pw_ptr": f"*{t}", "out_ptr": f"*{t}", "n": "i32",
              "HAS_W": "constexpr", "HAS_PW": "constexpr", "BLOCK": "constexpr"},
             dict(B, HAS_W=True, HAS_PW=True), ("z_ptr", "y_ptr", "w_ptr", "pw_ptr", "out_ptr", "n")),
            ("bce_backward", k.bce_backward_kernel,
             {"g_ptr": f"*{t}", "z_ptr": f"*{t}", "y_ptr": f"*{t}", "w_ptr": f"*{t}", "pw_ptr": f"*{t}",
              "gz_ptr": f"*{t}", "gy_ptr": f"*{t}", "n": "i32", "G_FULL": "constexpr", "HAS_W": "constexpr",
              "HAS_PW": "constexpr", "NEED_Z": "constexpr", "NEED_Y": "constexpr", "BLOCK": "constexpr"},
             dict(B, G_FULL=False, HAS_W=False, HAS_PW=False, NEED_Z=True, NEED_Y=True),
             ("g_ptr", "z_ptr", "y_ptr", "w_ptr", "pw_ptr", "gz_ptr", "gy_ptr", "n")),
        ]
        for kind in range(4):
            kernels.append((f"regression[{kind}]", k.regression_kernel,
                {"x_ptr": f"*{t}", "y_ptr": f"*{t}", "a_ptr": f"*{t}", "loss_ptr": f"*{t}", "res_ptr": f"*{t}",
                 "n": "i32", "eps": "fp32", "c": "fp32", "KIND": "constexpr", "HAS_A": "constexpr", "BLOCK": "constexpr"},
                dict(B, KIND=kind, HAS_A=kind >= 2), ("x_ptr", "y_ptr", "a_ptr", "loss_ptr", "res_ptr", "n")))
            kernels.append((f"regression_backward[{kind}]", k.regression_backward_kernel,
                {"g_ptr": f"*{t}", "d_ptr": f"*{t}", "a_ptr": f"*{t}", "gd_ptr": f"*{t}", "ga_ptr": f"*{t}",
                 "n": "i32", "eps": "fp32", "KIND": "constexpr", "G_FULL": "constexpr", "HAS_A": "constexpr",
                 "NEED_A": "constexpr", "BLOCK": "constexpr"},
                dict(B, KIND=kind, G_FULL=False, HAS_A=kind >= 2, NEED_A=kind >= 2),
                ("g_ptr", "d_ptr", "a_ptr", "gd_ptr", "ga_ptr", "n")))
        for name, kern, sig, const, ptrs in kernels:
            c = aot_compile(kern, sig, const, cap, aligned(kern, *ptrs))
            ptx = c.asm["ptx"]
            report.append(dict(cap=cap, dtype=t, kernel=name, ptx=len(ptx), cubin=len(c.asm["cubin"]),
                               target=f"sm_{cap}" in ptx, ld_v4=bool(re.search(r"ld\.global\.v4", ptx))))
json.dump(report, sys.stdout)
"""


@pytest.fixture(scope="module")
def aot_report():
    pytest.importorskip("triton")
    # the real compiler in a process of its own, without the interpreter (see test_kernels_smooth)
    from triton_support import run_without_interpreter

    return run_without_interpreter(_AOT_SCRIPT)


def test_every_kernel_compiles_for_sm80_and_sm90(aot_report):
    assert len(aot_report) == 2 * 3 * 10
    for r in aot_report:
        assert r["ptx"] > 0 and r["cubin"] > 0 and r["target"], r


def test_float32_kernels_load_128_bit_vectors(aot_report):
    rows = [r for r in aot_report if r["dtype"] == "fp32"]
    assert rows and all(r["ld_v4"] for r in rows), [r for r in rows if not r["ld_v4"]]


# --------------------------------------------------------------------------------------
# on a GPU
# --------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cuda_ops_equal_the_cpu_kernels(dtype):
    for weighted in (False, True):
        args = _bce_args((33, 7), dtype, weighted)
        cuda = [None if t is None else t.cuda() for t in args]
        _close(ops.bce_with_logits(*cuda).cpu(), ops.bce_with_logits(*args), dtype)
        g = torch.tensor(0.3, dtype=dtype)
        for a, b in zip(ops.bce_with_logits_backward(g.cuda(), *cuda, True, True), ops.bce_with_logits_backward(g, *args, True, True)):
            _close(a.cpu(), b, dtype)
        torch.library.opcheck(ops.bce_with_logits, tuple(cuda))
    for kind in range(4):
        x, y, a = _reg_args((33, 7), dtype, kind)
        cx, cy, ca = (None if t is None else t.cuda() for t in (x, y, a))
        for p, q in zip(ops.regression(cx, cy, ca, kind, True, 1e-3), ops.regression(x, y, a, kind, True, 1e-3)):
            _close(p.cpu(), q, dtype)
        torch.library.opcheck(ops.regression, (cx, cy, ca, kind, True, 1e-3))
