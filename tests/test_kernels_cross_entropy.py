"""The cross-entropy Triton kernels without a GPU: each launcher under the interpreter on CPU
tensors against the CPU kernel (dtypes, odd sizes, empty, non-contiguous), the device-side
assert on a bad class index, and ahead-of-time compilation for sm_80 and sm_90."""

import dataclasses

import pytest
import torch

from triton_support import CAPABILITIES, INTERPRETED, aligned, aot_compile, run_without_interpreter  # noqa: I001 (skips without triton)

from torchff.kernels import cross_entropy as K
from torchff.kernels.triton import cross_entropy as tk

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# (R, C): C not a power of two, R not a multiple of the row block, C over one class block, empty
SIZES = [(5, 7), (67, 3), (3, 4100), (0, 5)]
interpreted = pytest.mark.skipif(not INTERPRETED, reason="the interpreter runs on CPU tensors only")


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)


def _inputs(R, C, dtype, strided):
    g = torch.Generator().manual_seed(R * 31 + C)
    z = (3 * torch.randn(R, 2 * C if strided else C, generator=g)).to(dtype)
    z = z[:, ::2] if strided else z  # every other column: not contiguous
    t = torch.randint(0, C, (R,), generator=g)
    if R:
        t[:: 3] = -100
    return z, t


@interpreted
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("R,C", SIZES)
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.1)])
def test_ce_rows_against_the_cpu_kernel(dtype, R, C, weighted, smoothing):
    z, t = _inputs(R, C, dtype, strided=R == 5)
    w = (torch.rand(C) + 0.1).to(dtype) if weighted else None
    for reduction in (K.NONE, K.MEAN, K.SUM):
        denom = tk.ce_weight_sum(t, w, C, -100) if reduction == K.MEAN else None
        g = torch.empty(z.shape, dtype=dtype)
        rows = tk.ce_rows(z, t, w, None, g, denom, -100, smoothing)
        want_loss, want_g = K._cpu_cross_entropy(z, t, w, reduction, -100, smoothing)
        torch.testing.assert_close(g, want_g, **_tol(dtype))
        if reduction == K.NONE:
            torch.testing.assert_close(rows.to(dtype), want_loss, **_tol(dtype))
        else:
            got = tk.ce_sum(rows, denom, dtype)
            torch.testing.assert_close(got, want_loss, equal_nan=True, **_tol(dtype))  # nan: empty mean
    # per-row scale, in place over the logits (linear_cross_entropy's chunks)
    scale = torch.rand(R)
    buf = z.float().contiguous()
    want_buf = buf.clone()
    want = K._cpu_rows_(want_buf, t, w, scale, -100, smoothing)
    got = tk.ce_rows(buf, t, w, scale, buf, None, -100, smoothing)
    torch.testing.assert_close(got, want, **_tol(dtype))
    torch.testing.assert_close(buf, want_buf, **_tol(dtype))


@interpreted
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("R,C", SIZES)
def test_ce_probs_forward_and_backward_against_the_cpu_kernel(dtype, R, C):
    z, _ = _inputs(R, C, dtype, strided=R == 5)
    y = torch.rand(R, C).to(dtype)
    w = (torch.rand(C) + 0.1).to(dtype)
    for weight, smoothing in [(None, 0.0), (w, 0.2)]:
        lp = torch.empty(z.shape, dtype=dtype)
        rows = tk.ce_probs(z, y, weight, lp, smoothing)
        want_rows, want_lp = K._cpu_probs(z, y, weight, K.NONE, smoothing)
        torch.testing.assert_close(rows.to(dtype), want_rows, **_tol(dtype))
        torch.testing.assert_close(lp, want_lp, **_tol(dtype))
        go = torch.randn(R).to(dtype)
        gz, gt = torch.empty_like(lp), torch.empty_like(lp)
        tk.ce_probs_backward(go.float(), 1.0, lp, y, weight, gz, gt, smoothing)
        want_gz, want_gt = K._cpu_probs_backward(go, lp, y, weight, K.NONE, smoothing, True, True)
        torch.testing.assert_close(gz, want_gz, **_tol(dtype))
        torch.testing.assert_close(gt, want_gt, **_tol(dtype))


@interpreted
def test_the_ops_cuda_implementations_on_cpu_tensors():
    # the CUDA implementations of the ops (layout, K-dim, reductions) run the kernels above
    z, t = torch.randn(2, 5, 3), torch.tensor([[0, 4, -100], [1, 2, 3]])
    w = torch.rand(5) + 0.1
    for reduction in (K.NONE, K.MEAN, K.SUM):
        for got, want in [
            (K._cuda_cross_entropy(z, t, w, reduction, -100, 0.1), K._cpu_cross_entropy(z, t, w, reduction, -100, 0.1)),
            (K._cuda_probs(z, z.softmax(1), w, reduction, 0.1), K._cpu_probs(z, z.softmax(1), w, reduction, 0.1)),
        ]:
            for a, b in zip(got, want):
                assert a.shape == b.shape and a.stride() == b.stride()
                torch.testing.assert_close(a, b)
        lp = torch.log_softmax(z, 1)
        g = torch.randn(2, 3) if reduction == K.NONE else torch.randn(())
        for a, b in zip(K._cuda_probs_backward(g, lp, z.softmax(1), w, reduction, 0.1, True, True),
                        K._cpu_probs_backward(g, lp, z.softmax(1), w, reduction, 0.1, True, True)):
            torch.testing.assert_close(a, b)


@interpreted
def test_bad_class_index_trips_the_device_assert(monkeypatch):
    from triton.runtime import interpreter
    from triton.runtime.errors import InterpreterError

    # the interpreter ignores the kernel's debug flag: turn its asserts on as the GPU build has them
    monkeypatch.setattr(interpreter.interpreter_builder, "options",
                        dataclasses.replace(interpreter.interpreter_builder.options, debug=True))
    z = torch.randn(3, 4)
    tk.ce_rows(z, torch.tensor([0, -100, 3]), None, None, torch.empty_like(z), None, -100, 0.0)  # fine
    with pytest.raises(InterpreterError, match="AssertionError.*target out of bounds"):
        tk.ce_rows(z, torch.tensor([0, 7, 1]), None, None, torch.empty_like(z), None, -100, 0.0)


# --------------------------------------------------------------------------------------
# ahead-of-time compilation
# --------------------------------------------------------------------------------------
def _kernels(t):
    rows_sig = {"z_ptr": f"*{t}", "t_ptr": "*i64", "w_ptr": f"*{t}", "scale_ptr": "*fp32", "denom_ptr": "*fp32",
                "g_ptr": f"*{t}", "loss_ptr": "*fp32", "R": "i32", "C": "i32", "stride_zr": "i32", "stride_zc": "i32",
                "stride_gr": "i32", "stride_gc": "i32", "scale_step": "i32", "ignore_index": "i32", "eps": "fp32",
                "HAS_WEIGHT": "constexpr", "HAS_SCALE": "constexpr", "HAS_DENOM": "constexpr", "SMOOTH": "constexpr",
                "BLOCK_R": "constexpr", "BLOCK_C": "constexpr"}
    probs_sig = {"z_ptr": f"*{t}", "t_ptr": f"*{t}", "w_ptr": f"*{t}", "lp_ptr": f"*{t}", "loss_ptr": "*fp32",
                 "R": "i32", "C": "i32", "stride_zr": "i32", "stride_zc": "i32", "stride_tr": "i32", "stride_tc": "i32",
                 "stride_lr": "i32", "stride_lc": "i32", "eps": "fp32",
                 "HAS_WEIGHT": "constexpr", "BLOCK_R": "constexpr", "BLOCK_C": "constexpr"}
    probs_bw_sig = {"go_ptr": "*fp32", "lp_ptr": f"*{t}", "t_ptr": f"*{t}", "w_ptr": f"*{t}", "gz_ptr": f"*{t}",
                    "gt_ptr": f"*{t}", "R": "i32", "C": "i32", "go_step": "i32", "alpha": "fp32", "stride_lr": "i32",
                    "stride_lc": "i32", "stride_tr": "i32", "stride_tc": "i32", "eps": "fp32",
                    "HAS_WEIGHT": "constexpr", "NEED_INPUT": "constexpr", "NEED_TARGET": "constexpr",
                    "BLOCK_R": "constexpr", "BLOCK_C": "constexpr"}
    wsum_sig = {"t_ptr": "*i64", "w_ptr": f"*{t}", "out_ptr": "*fp32", "R": "i32", "C": "i32", "ignore_index": "i32",
                "HAS_WEIGHT": "constexpr", "BLOCK": "constexpr"}
    sum_sig = {"x_ptr": "*fp32", "denom_ptr": "*fp32", "out_ptr": f"*{t}", "n": "i32", "factor": "fp32",
               "HAS_DENOM": "constexpr", "BLOCK": "constexpr"}
    return [
        (tk._ce_rows_kernel, rows_sig, dict(HAS_WEIGHT=True, HAS_SCALE=True, HAS_DENOM=True, SMOOTH=True, BLOCK_R=4, BLOCK_C=1024),
         ("z_ptr", "t_ptr", "w_ptr", "g_ptr", "loss_ptr")),
        (tk._ce_rows_kernel, rows_sig, dict(HAS_WEIGHT=False, HAS_SCALE=False, HAS_DENOM=False, SMOOTH=False, BLOCK_R=64, BLOCK_C=16),
         ("z_ptr", "t_ptr", "g_ptr", "loss_ptr")),
        (tk._ce_probs_kernel, probs_sig, dict(HAS_WEIGHT=True, BLOCK_R=8, BLOCK_C=512), ("z_ptr", "t_ptr", "lp_ptr")),
        (tk._ce_probs_backward_kernel, probs_bw_sig,
         dict(HAS_WEIGHT=True, NEED_INPUT=True, NEED_TARGET=True, BLOCK_R=8, BLOCK_C=512), ("lp_ptr", "gz_ptr", "gt_ptr")),
        (tk._ce_weight_sum_kernel, wsum_sig, dict(HAS_WEIGHT=True, BLOCK=1024), ("t_ptr",)),
        (tk._ce_sum_kernel, sum_sig, dict(HAS_DENOM=True, BLOCK=1024), ("x_ptr",)),
    ]


def _compile_all() -> list:
    """Compile every kernel for every capability and dtype (run without the interpreter, which
    patches triton.language for the whole process); one record per compilation."""
    import triton
    from triton.backends.compiler import GPUTarget

    from triton_support import _compilable_globals, _jit

    out = []
    for cap in CAPABILITIES:
        for t in ("fp32", "fp16", "bf16"):
            for kernel, sig, const, ptrs in _kernels(t):
                c = aot_compile(kernel, sig, const, cap, aligned(kernel, *ptrs))
                out.append(dict(cap=cap, t=t, kernel=kernel.__name__ if hasattr(kernel, "__name__") else str(kernel),
                                target=f"sm_{cap}" in c.asm["ptx"], cubin=len(c.asm["cubin"])))
    kernel, sig, const, _ = _kernels("fp32")[0]
    with _compilable_globals(kernel):
        src = triton.compiler.ASTSource(fn=_jit(kernel), signature=sig, constexprs=const)
        c = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"debug": True})
    out.append(dict(debug_assert="__assertfail" in c.asm["ptx"]))
    return out


@pytest.fixture(scope="module")
def aot_report():
    return run_without_interpreter("import json, test_kernels_cross_entropy as m; print(json.dumps(m._compile_all()))")


def test_aot_compiles_every_kernel(aot_report):
    compiled = [r for r in aot_report if "cap" in r]
    assert len(compiled) == len(CAPABILITIES) * 3 * len(_kernels("fp32"))
    for r in compiled:
        assert r["target"] and r["cubin"] > 0, r


def test_aot_rows_kernel_keeps_its_assert_in_debug(aot_report):
    assert aot_report[-1] == {"debug_assert": True}  # the bad-index check survives into GPU code


@pytest.mark.cuda
def test_cuda_ops_against_cpu():
    import torchff.functional as F

    for dtype in DTYPES:
        z = (3 * torch.randn(300, 1001)).to(dtype)
        t = torch.randint(0, 1001, (300,))
        t[::7] = -100
        w = torch.rand(1001).to(dtype)
        for kw in (dict(), dict(weight=w, label_smoothing=0.1), dict(reduction="none")):
            zc = z.cuda().requires_grad_()
            zz = z.clone().requires_grad_()
            kwc = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
            a, b = F.cross_entropy(zc, t.cuda(), **kwc), F.cross_entropy(zz, t, **kw)
            torch.testing.assert_close(a.cpu(), b, **_tol(dtype))
            (ga,), (gb,) = torch.autograd.grad(a.sum(), zc), torch.autograd.grad(b.sum(), zz)
            torch.testing.assert_close(ga.cpu(), gb, **_tol(dtype))
        y = torch.rand(300, 1001).to(dtype)
        a, b = F.cross_entropy(z.cuda(), y.cuda(), label_smoothing=0.1), F.cross_entropy(z, y, label_smoothing=0.1)
        torch.testing.assert_close(a.cpu(), b, **_tol(dtype))
