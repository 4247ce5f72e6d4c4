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


REDUCTIONS = [ops.NONE, ops.MEAN, ops.SUM]


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
@pytest.mark.parametrize("shape", SHAPES + [(70000,)], ids=str)  # 70000: two chunks on two threads
@pytest.mark.parametrize("weighted", [False, True])
def test_c_bce_matches_the_composite(dtype, shape, weighted):
    args = _bce_args(shape, dtype, weighted)
    for reduction in REDUCTIONS:
        _close(ops.bce_with_logits(*args, reduction), ops._bce_composite(*args, reduction), dtype)
    for g in (torch.tensor(0.3, dtype=dtype), torch.randn(shape).to(dtype)):
        for need in ((True, False), (False, True), (True, True)):
            for scale in (1.0, 0.25):
                got = ops.bce_with_logits_backward(g, *args, scale, *need)
                want = ops._bce_backward_composite(g, *args, scale, *need)
                for a, b in zip(got, want):
                    _close(a, b, dtype)


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
@pytest.mark.parametrize("shape", SHAPES + [(70000,)], ids=str)
@pytest.mark.parametrize("kind", [ops.MSE, ops.L1, ops.GAUSSIAN, ops.LAPLACE])
def test_c_regression_matches_the_composite(dtype, shape, kind):
    x, y, a = _reg_args(shape, dtype, kind)
    for reduction in REDUCTIONS:
        got = ops.regression(x, y, a, kind, True, 1e-3, reduction)
        _close(got, ops._regression_composite(x, y, a, kind, True, 1e-3, reduction), dtype)
    for g in (torch.tensor(0.3, dtype=dtype), torch.randn(shape).to(dtype)):
        for need in ([False, True] if a is not None else [False]):
            got = ops.regression_backward(g, x, y, a, kind, 1e-3, 0.25, need)
            want = ops._regression_backward_composite(g, x, y, a, kind, 1e-3, 0.25, need)
            for p, q in zip(got, want):
                _close(p, q, dtype)


@needs_c
@pytest.mark.parametrize("kind", [ops.MSE, ops.L1])
def test_c_weighted_mean_divides_by_the_weights_sum_without_float16_overflow(kind):
    # torch's weighted mean, sum(w e) / sum(w); a float16 total of 1e5 overflows, the mean does not
    x, y = torch.full((4096,), 30.0, dtype=torch.float16), torch.zeros(4096, dtype=torch.float16)
    w = torch.rand(4096, dtype=torch.float16)
    got = ops.regression(x, y, w, kind, False, 0.0, ops.MEAN)
    e = (x.double() - y.double()) ** 2 if kind == ops.MSE else (x.double() - y.double()).abs()
    want = (w.double() * e).sum() / w.double().sum()
    assert got.dtype == torch.float16 and torch.isfinite(got)
    torch.testing.assert_close(got.double(), want, rtol=1e-3, atol=0)


@needs_c
@pytest.mark.parametrize("threads", [1, 2])
def test_c_reduction_sums_float32_in_float64(threads):
    # a million float32 squares: the loops' float64 lanes hold the sum to float32's own rounding
    # (a running float32 sum drifts by ~1e-4 here), over one chunk or one per thread
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, y = torch.rand(1 << 20) + 1, torch.zeros(1 << 20)
        got = ops.regression(x, y, None, ops.MSE, False, 0.0, ops.SUM)
        want = (x.double() ** 2).sum()
        assert abs(got.double() - want) / want < 1e-7
        assert ops.regression(x, y, None, ops.MSE, False, 0.0, ops.MEAN).double().sub(want / x.numel()).abs() < 1e-6
    finally:
        torch.set_num_threads(old)


@needs_c
def test_c_reduced_losses_of_nothing_are_torchs():
    z = torch.empty(0, 3)
    for reduction, want in ((ops.SUM, 0.0), (ops.MEAN, float("nan"))):
        torch.testing.assert_close(ops.bce_with_logits(z, z, None, None, reduction), torch.tensor(want), equal_nan=True)
        torch.testing.assert_close(ops.regression(z, z, None, ops.MSE, False, 0.0, reduction), torch.tensor(want), equal_nan=True)


@needs_c
def test_c_exp_and_log1p_are_accurate_down_to_the_subnormals():
    a = torch.cat([torch.linspace(0, 110, 100001), torch.tensor([inf, nan])])
    got = ops.bce_with_logits(-a, torch.zeros_like(a), None, None, ops.NONE)  # = log1p(exp(-a))
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
@pytest.mark.parametrize("shape", SHAPES + [(2100,)], ids=str)  # 2100: three blocks, three partial sums
@pytest.mark.parametrize("weighted", [False, True])
def test_triton_bce_matches_the_cpu_kernel(k, dtype, shape, weighted):
    args = _bce_args(shape, dtype, weighted)
    for reduction in REDUCTIONS:
        _close(k.bce_with_logits(*args, reduction), ops.bce_with_logits(*args, reduction), dtype)
    for g in (torch.tensor(0.3, dtype=dtype), torch.randn(shape).to(dtype)):
        got = k.bce_with_logits_backward(g, *args, 0.25, True, True)
        want = ops.bce_with_logits_backward(g, *args, 0.25, True, True)
        for a, b in zip(got, want):
            _close(a, b, dtype)
    got = k.bce_with_logits_backward(g, *args, 1.0, True, False)
    assert got[1].numel() == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES + [(2100,)], ids=str)
@pytest.mark.parametrize("kind", [ops.MSE, ops.L1, ops.GAUSSIAN, ops.LAPLACE])
def test_triton_regression_matches_the_cpu_kernel(k, dtype, shape, kind):
    x, y, a = _reg_args(shape, dtype, kind)
    for reduction in REDUCTIONS:
        _close(k.regression(x, y, a, kind, True, 1e-3, reduction), ops.regression(x, y, a, kind, True, 1e-3, reduction), dtype)
    for g in (torch.tensor(0.3, dtype=dtype), torch.randn(shape).to(dtype)):
        need = a is not None
        got = k.regression_backward(g, x, y, a, kind, 1e-3, 0.25, need)
        want = ops.regression_backward(g, x, y, a, kind, 1e-3, 0.25, need)
        for p, q in zip(got, want):
            _close(p, q, dtype)


def test_triton_weighted_mean(k):
    x, y, w = torch.randn(2100), torch.randn(2100), torch.rand(2100)
    for kind in (ops.MSE, ops.L1):
        _close(k.regression(x, y, w, kind, False, 0.0, ops.MEAN), ops.regression(x, y, w, kind, False, 0.0, ops.MEAN), torch.float32)


def test_triton_non_contiguous_and_broadcast_arguments(k):
    z = torch.randn(6, 10)[:, ::2]
    y = torch.rand(5, 6).t()
    assert not z.is_contiguous() and not y.is_contiguous()
    pw = torch.rand(5) * 2
    for reduction in REDUCTIONS:
        _close(k.bce_with_logits(z, y, None, pw, reduction), ops.bce_with_logits(z, y, None, pw, reduction), torch.float32)
    x, t = torch.randn(6, 5)[::1, :], torch.randn(1, 5)  # a broadcast target
    for reduction in REDUCTIONS:
        got = k.regression(x.t(), t.t(), None, ops.MSE, False, 0.0, reduction)
        _close(got, ops.regression(x.t(), t.t(), None, ops.MSE, False, 0.0, reduction), torch.float32)


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
             {"z_ptr": f"*{t}", "y_ptr": f"*{t}", "w_ptr": f"*{t}", "pw_ptr": f"*{t}", "out_ptr": f"*{t}",
              "partial_ptr": "*fp32", "n": "i32", "HAS_W": "constexpr", "HAS_PW": "constexpr", "REDUCE": "constexpr",
              "BLOCK": "constexpr"},
             dict(B, HAS_W=True, HAS_PW=True, REDUCE=False), ("z_ptr", "y_ptr", "w_ptr", "pw_ptr", "out_ptr", "n")),
            ("bce[reduce]", k.bce_kernel,
             {"z_ptr": f"*{t}", "y_ptr": f"*{t}", "w_ptr": f"*{t}", "pw_ptr": f"*{t}", "out_ptr": f"*{t}",
              "partial_ptr": "*fp32", "n": "i32", "HAS_W": "constexpr", "HAS_PW": "constexpr", "REDUCE": "constexpr",
              "BLOCK": "constexpr"},
             dict(B, HAS_W=False, HAS_PW=False, REDUCE=True), ("z_ptr", "y_ptr", "n")),
            ("bce_backward", k.bce_backward_kernel,
             {"g_ptr": f"*{t}", "z_ptr": f"*{t}", "y_ptr": f"*{t}", "w_ptr": f"*{t}", "pw_ptr": f"*{t}",
              "gz_ptr": f"*{t}", "gy_ptr": f"*{t}", "n": "i32", "scale": "fp32", "G_FULL": "constexpr",
              "HAS_W": "constexpr", "HAS_PW": "constexpr", "NEED_Z": "constexpr", "NEED_Y": "constexpr",
              "BLOCK": "constexpr"},
             dict(B, G_FULL=False, HAS_W=False, HAS_PW=False, NEED_Z=True, NEED_Y=True),
             ("g_ptr", "z_ptr", "y_ptr", "w_ptr", "pw_ptr", "gz_ptr", "gy_ptr", "n")),
            ("sum", k.sum_kernel, {"partial_ptr": "*fp32", "out_ptr": f"*{t}", "count": "i32", "scale": "fp32",
                                   "BLOCK": "constexpr"}, B, ("partial_ptr", "out_ptr", "count")),
        ]
        for kind in range(4):
            for reduce in (False, True):
                kernels.append((f"regression[{kind}{',reduce' if reduce else ''}]", k.regression_kernel,
                    {"x_ptr": f"*{t}", "y_ptr": f"*{t}", "a_ptr": f"*{t}", "loss_ptr": f"*{t}", "partial_ptr": "*fp32",
                     "n": "i32", "eps": "fp32", "c": "fp32", "KIND": "constexpr", "HAS_A": "constexpr",
                     "REDUCE": "constexpr", "BLOCK": "constexpr"},
                    dict(B, KIND=kind, HAS_A=kind >= 2, REDUCE=reduce), ("x_ptr", "y_ptr", "a_ptr", "loss_ptr", "n")))
            kernels.append((f"regression_backward[{kind}]", k.regression_backward_kernel,
                {"g_ptr": f"*{t}", "x_ptr": f"*{t}", "y_ptr": f"*{t}", "a_ptr": f"*{t}", "gd_ptr": f"*{t}",
                 "ga_ptr": f"*{t}", "n": "i32", "eps": "fp32", "scale": "fp32", "KIND": "constexpr",
                 "G_FULL": "constexpr", "HAS_A": "constexpr", "NEED_A": "constexpr", "BLOCK": "constexpr"},
                dict(B, KIND=kind, G_FULL=False, HAS_A=kind >= 2, NEED_A=kind >= 2),
                ("g_ptr", "x_ptr", "y_ptr", "a_ptr", "gd_ptr", "ga_ptr", "n")))
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
    assert len(aot_report) == 2 * 3 * 16
    for r in aot_report:
        assert r["ptx"] > 0 and r["cubin"] > 0 and r["target"], r


def test_float32_kernels_load_128_bit_vectors(aot_report):
    rows = [r for r in aot_report if r["dtype"] == "fp32" and r["kernel"] != "sum"]  # sum: one program
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
        for reduction in REDUCTIONS:
            _close(ops.bce_with_logits(*cuda, reduction).cpu(), ops.bce_with_logits(*args, reduction), dtype)
            torch.library.opcheck(ops.bce_with_logits, (*cuda, reduction))
        g = torch.tensor(0.3, dtype=dtype)
        got = ops.bce_with_logits_backward(g.cuda(), *cuda, 0.25, True, True)
        for a, b in zip(got, ops.bce_with_logits_backward(g, *args, 0.25, True, True)):
            _close(a.cpu(), b, dtype)
    for kind in range(4):
        x, y, a = _reg_args((33, 7), dtype, kind)
        cx, cy, ca = (None if t is None else t.cuda() for t in (x, y, a))
        for reduction in REDUCTIONS:
            _close(ops.regression(cx, cy, ca, kind, True, 1e-3, reduction).cpu(), ops.regression(x, y, a, kind, True, 1e-3, reduction), dtype)
            torch.library.opcheck(ops.regression, (cx, cy, ca, kind, True, 1e-3, reduction))
