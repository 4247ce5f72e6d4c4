"""The kernels of the smooth / softmax / maxout families: the maxout ops' C loops against their
composite, the Triton launchers under the interpreter against the CPU kernels, and every Triton
kernel compiled ahead of time for sm_80 and sm_90.

Sigmoid, softmax and log-softmax register no op (torch's fused kernels serve them, see
``torchff/autograd/smooth.py``). The ``softplus`` op's C loop is tested in ``tests/test_softplus.py``.
"""

from __future__ import annotations

import pytest
import torch

from torchff.kernels import _c
from torchff.kernels import maxout as ops

nan, inf = float("nan"), float("inf")

# (shape, pieces, dim): the maxout dim last (inner == 1) and inside; odd sizes, not multiples of a block
CASES = [((7, 3 * 5), 3, 1), ((3, 4 * 2, 5), 2, 1), ((2, 3, 2 * 7), 7, 2), ((1037,), 1, 0), ((5, 2 * 131), 2, 1),
         ((0, 6), 3, 1), ((4, 0), 2, 1)]


def _input(shape, dtype, special=True):
    x = torch.randint(-3, 4, shape).to(dtype)  # small integers: ties everywhere
    if special and x.numel() > 8:
        flat = x.view(-1)
        flat[torch.randperm(flat.numel())[:8]] = torch.tensor([nan, inf, -inf, nan, -0.0, 0.0, 1e4, -1e4]).to(dtype)
    return x


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(((a == b) | (a.isnan() & b.isnan())).all())


# --------------------------------------------------------------------------------------
# the C loops against the composite
# --------------------------------------------------------------------------------------
needs_c = pytest.mark.skipif(not _c.available(), reason="the C library is not built")


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape,pieces,dim", CASES)
def test_c_kernels_equal_the_composite(dtype, shape, pieces, dim):
    x = _input(shape, dtype)
    out, index = ops.maxout(x, pieces, dim)  # the CPU kernel
    ref_out, ref_index = ops._maxout_composite(x, pieces, dim)
    assert _same(out, ref_out) and torch.equal(index, ref_index) and index.dtype == torch.uint8
    assert out.is_contiguous() and index.is_contiguous()
    g = torch.randn(out.shape, dtype=dtype)
    assert torch.equal(ops.maxout_backward(g, index, pieces, dim), ops._backward_composite(g, index, pieces, dim))


@needs_c
def test_c_kernels_non_contiguous_and_threaded():
    x = _input((6, 40, 3), torch.float32).transpose(0, 2)  # (3, 40, 6), not contiguous
    for dim in (1, 2):
        pieces = 4 if dim == 1 else 2
        out, index = ops.maxout(x, pieces, dim)
        ref = ops._maxout_composite(x, pieces, dim)
        assert _same(out, ref[0]) and torch.equal(index, ref[1])
        g = torch.randn(out.shape).t().contiguous().t() if out.dim() == 2 else torch.randn(out.shape).transpose(0, 2).contiguous().transpose(0, 2)
        assert torch.equal(ops.maxout_backward(g, index, pieces, dim), ops._backward_composite(g, index, pieces, dim))
    # large enough for one chunk per thread: chunks start inside rows of the inner > 1 layout
    n = 2 * _c.MIN_CHUNK + 17
    x = torch.randn(3, 5 * 2, n // 5 + 1)
    out, index = ops.maxout(x, 5, 1)
    ref = ops._maxout_composite(x, 5, 1)
    assert torch.equal(out, ref[0]) and torch.equal(index, ref[1])
    g = torch.randn(out.shape)
    assert torch.equal(ops.maxout_backward(g, index, 5, 1), ops._backward_composite(g, index, 5, 1))


def test_half_integer_and_wide_indices_take_the_composite():
    for x, pieces in ((_input((4, 6), torch.float16), 3), (torch.randint(-5, 5, (4, 6)), 2), (torch.randn(2, 600), 300)):
        out, index = ops.maxout(x, pieces, 1)
        ref = ops._maxout_composite(x, pieces, 1)
        assert _same(out, ref[0]) and torch.equal(index, ref[1])
    assert ops.maxout(torch.randn(2, 600), 300, 1)[1].dtype == torch.int16


# --------------------------------------------------------------------------------------
# the Triton launchers under the interpreter, against the CPU kernels
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def triton_maxout():
    support = pytest.importorskip("triton_support")
    if not support.INTERPRETED:
        pytest.skip("a CUDA device is present: the cuda-marked tests run the kernels")
    from torchff.kernels.triton import maxout

    return maxout


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape,pieces,dim", CASES)
def test_triton_maxout_equals_the_cpu_kernel(triton_maxout, dtype, shape, pieces, dim):
    x = _input(shape, dtype)
    out, index = triton_maxout.maxout(x, pieces, dim)
    ref_out, ref_index = ops.maxout(x, pieces, dim)  # the CPU kernel (the composite for half)
    assert _same(out, ref_out) and torch.equal(index, ref_index)  # exact: a maximum and its index
    g = torch.randn(out.shape).to(dtype)
    assert torch.equal(triton_maxout.maxout_backward(g, index, pieces, dim), ops.maxout_backward(g, index, pieces, dim))


def test_triton_maxout_non_contiguous(triton_maxout):
    x = _input((6, 12, 3), torch.float32).transpose(0, 2)
    out, index = triton_maxout.maxout(x, 3, 1)
    ref = ops.maxout(x, 3, 1)
    assert _same(out, ref[0]) and torch.equal(index, ref[1])
    g = torch.randn(out.shape[::-1]).transpose(0, 2)
    assert not g.is_contiguous()
    assert torch.equal(triton_maxout.maxout_backward(g, index, 3, 1), ops.maxout_backward(g, index, 3, 1))


# --------------------------------------------------------------------------------------
# ahead-of-time compilation for sm_80 and sm_90
# --------------------------------------------------------------------------------------
_AOT_SCRIPT = r"""
import json, re, sys
from triton_support import CAPABILITIES, aligned, aot_compile
from torchff.kernels.triton import maxout as k

report = []
for cap in CAPABILITIES:
    for t in ("fp32", "fp16", "bf16"):
        for inner in ("i32", 1):  # inner == 1 is specialized by the launcher
            fwd_sig = {"x_ptr": f"*{t}", "out_ptr": f"*{t}", "index_ptr": "*u8", "n": "i32", "inner": inner,
                       "pieces": "i32", "BLOCK": "constexpr"}
            bwd_sig = {"grad_ptr": f"*{t}", "index_ptr": "*u8", "grad_in_ptr": f"*{t}", "n_in": "i32", "inner": inner,
                       "pieces": "i32", "BLOCK": "constexpr"}
            const = {"BLOCK": 1024}
            if inner == 1:
                fwd_sig["inner"] = bwd_sig["inner"] = "constexpr"
                const = {"BLOCK": 1024, "inner": 1}
            for name, kern, sig, ptrs in (
                ("maxout", k.maxout_kernel, fwd_sig, ("x_ptr", "out_ptr", "index_ptr", "n")),
                ("maxout_backward", k.maxout_backward_kernel, bwd_sig, ("grad_ptr", "index_ptr", "grad_in_ptr", "n_in")),
            ):
                c = aot_compile(kern, sig, const, cap, aligned(kern, *ptrs))
                ptx = c.asm["ptx"]
                report.append(dict(cap=cap, dtype=t, inner=str(inner), kernel=name, ptx=len(ptx),
                                   cubin=len(c.asm["cubin"]), target=f"sm_{cap}" in ptx,
                                   st_v4=bool(re.search(r"st\.global\.v4", ptx)),
                                   ld_v4=bool(re.search(r"ld\.global\.v4", ptx))))
json.dump(report, sys.stdout)
"""


@pytest.fixture(scope="module")
def aot_report():
    pytest.importorskip("triton")
    # Under TRITON_INTERPRET=1 (set by conftest without a GPU), triton's code generator fails on
    # kernels with a runtime loop and several 16-byte-aligned pointers; the real compiler runs
    # in a process of its own, without the interpreter.
    from triton_support import run_without_interpreter

    return run_without_interpreter(_AOT_SCRIPT)


def test_every_kernel_compiles_for_sm80_and_sm90(aot_report):
    assert len(aot_report) == 2 * 3 * 2 * 2
    for r in aot_report:
        assert r["ptx"] > 0 and r["cubin"] > 0 and r["target"], r


def test_the_backward_scatter_stores_vectors_where_the_maxout_dim_is_last(aot_report):
    """With inner == 1 the input gradient is written contiguously: 128-bit stores (float32)."""
    rows = [r for r in aot_report if r["kernel"] == "maxout_backward" and r["inner"] == "1" and r["dtype"] == "fp32"]
    assert rows and all(r["st_v4"] for r in rows), rows


# --------------------------------------------------------------------------------------
# on a GPU
# --------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape,pieces,dim", CASES)
def test_cuda_ops_equal_the_cpu_kernels(dtype, shape, pieces, dim):
    x = _input(shape, dtype)
    out, index = ops.maxout(x.cuda(), pieces, dim)
    ref_out, ref_index = ops.maxout(x, pieces, dim)
    assert _same(out.cpu(), ref_out) and torch.equal(index.cpu(), ref_index)
    g = torch.randn(ref_out.shape).to(dtype)
    assert torch.equal(ops.maxout_backward(g.cuda(), index, pieces, dim).cpu(), ops.maxout_backward(g, ref_index, pieces, dim))
    torch.library.opcheck(ops.maxout, (x.cuda(), pieces, dim))
