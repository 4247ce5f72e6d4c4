"""The rectifier family's C kernels (torchff/csrc/rectifier.c) against their composites, bit for bit.

Each op of :mod:`torchff.kernels.rectifier` has a CPU implementation (the C loop, for float32 and
float64) and a composite of torch ops; both must give the same bits for every input: ±0, nan,
±inf, subnormals, the largest floats, and sizes that run as one call or as 2-4 chunks over the
intra-op threads. The exception is PReLU's weight gradient, a sum that C accumulates in float64
(torch in the input's dtype): it is compared against a float64 sum.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from torchff.kernels import _c
from torchff.kernels import rectifier as K
from torchff.testing import nan_safe_equal

needs_c = pytest.mark.skipif(not _c.available(), reason="the C library is not built")

DTYPES = [torch.float32, torch.float64]
CHUNK = _c.MIN_CHUNK
# one call; one call (just under two chunks' worth); 2, 3 and 4 chunks
SIZES = [0, 1, 11, 2049, 2 * CHUNK - 1, 2 * CHUNK + 7, 3 * CHUNK + 5, 4 * CHUNK + 3]


def _specials(dtype):
    info = torch.finfo(dtype)
    return [0.0, -0.0, float("nan"), float("inf"), -float("inf"), info.tiny / 4, -info.tiny / 4, info.tiny,
            info.max, -info.max, 1.0, -1.0, 1.0 + info.eps, -1.0 - info.eps, 0.5, -2.5]


def _input(n, dtype):
    x = torch.randn(n, dtype=dtype) * 3
    sp = torch.tensor(_specials(dtype), dtype=dtype)
    k = min(n, len(sp))
    x[:k] = sp[:k]
    if n > 2 * len(sp):  # the specials also at the end, across the last chunk boundary
        x[-k:] = sp[:k]
    return x


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and bits (nan compared as nan; the sign of zero compared too)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    return nan_safe_equal(a, b) and torch.equal(a.signbit() & ~a.isnan(), b.signbit() & ~b.isnan())


@pytest.fixture(params=[1, 4], ids=["1-thread", "4-threads"])
def threads(request):
    """1 or 4 intra-op threads (torch's OpenMP team, which the C kernels split their work over)."""
    n = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(n)


def _split(n: int, align: int = 1, work: int | None = None) -> list[int]:
    """The chunk boundaries the C kernels use for ``n`` items (torchff_parallel.h)."""
    bounds = torch.zeros(torch.get_num_threads() + 2, dtype=torch.int64)
    chunks = _c.module().split(n, align, n if work is None else work, bounds.data_ptr())
    return bounds[: chunks + 1].tolist()


def _openmp() -> int:
    return _c.module().openmp()


@needs_c
@pytest.mark.parametrize("n, chunks", [(2 * CHUNK - 1, 1), (2 * CHUNK + 7, 2), (3 * CHUNK + 5, 3), (4 * CHUNK + 3, 4)])
def test_sizes_make_the_chunks_they_are_meant_to(n, chunks):
    if not _openmp():
        pytest.skip("built without OpenMP: every kernel runs on the calling thread")
    old = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        bounds = _split(n)
        assert len(bounds) == chunks + 1 and bounds[0] == 0 and bounds[-1] == n
        assert bounds == sorted(bounds)
        rows = _split(n - n % 31, 31)  # aligned to whole rows of 31
        assert all(b % 31 == 0 for b in rows) and rows[-1] == n - n % 31
        assert _split(10, work=4 * CHUNK) == [0, 3, 6, 9, 10]  # few items, much work each: 4 chunks
    finally:
        torch.set_num_threads(old)
    torch.set_num_threads(1)
    try:
        assert _split(4 * CHUNK) == [0, 4 * CHUNK]  # one thread: one chunk
    finally:
        torch.set_num_threads(old)


def test_built_where_ci_requires_it():
    # .ci/run sets TORCHFF_REQUIRE_NATIVE=1: there a C compiler is present, so a build that
    # silently fell back to the composites is an error
    if os.environ.get("TORCHFF_REQUIRE_NATIVE") != "1":
        pytest.skip("TORCHFF_REQUIRE_NATIVE is not set")
    assert _c.available()
    assert _openmp() >= 201307  # OpenMP 4.0 or later: the kernels use torch's threads


@needs_c
def test_the_kernels_share_torchs_openmp_runtime():
    # one libgomp in the process: torch's (a second runtime would bring a second pool of threads)
    if not _openmp() or not os.path.exists("/proc/self/maps"):
        pytest.skip("built without OpenMP, or no /proc (not Linux)")
    maps = [line.split()[-1] for line in open("/proc/self/maps") if "gomp" in line]
    assert len(set(maps)) == 1, set(maps)


@needs_c
def test_the_kernel_functions_check_their_arguments():
    lib = _c.module()
    x, out = torch.tensor([-2.0, 3.0]), torch.empty(2)
    mask = torch.empty(2, dtype=torch.bool)
    with pytest.raises(TypeError, match=r"leaky_mask_f32\(\) takes 5 arguments \(3 given\)"):
        lib.leaky_mask_f32(x.data_ptr(), out.data_ptr(), mask.data_ptr())
    with pytest.raises(TypeError, match=r"leaky_mask_f32\(\): argument 1 must be a pointer"):
        lib.leaky_mask_f32(1.5, out.data_ptr(), mask.data_ptr(), 0.5, 2)
    with pytest.raises(TypeError, match=r"argument 5 must be int, not float"):
        lib.leaky_mask_f32(x.data_ptr(), out.data_ptr(), mask.data_ptr(), 0.5, 2.0)
    with pytest.raises(OverflowError):
        lib.leaky_mask_f32(x.data_ptr(), out.data_ptr(), mask.data_ptr(), 0.5, 1 << 64)
    # a double argument takes an int, an int argument anything with __index__; the results
    # come back as the C function's type
    assert lib.leaky_mask_f32(x.data_ptr(), out.data_ptr(), mask.data_ptr(), 2, torch.tensor(2)) is None
    assert out.tolist() == [-4.0, 3.0] and mask.tolist() == [False, True]
    t = torch.tensor([1, 0, -100, 1])
    assert lib.ce_weight_sum_f32(t.data_ptr(), None, 2, -100, 4) == 3.0
    bad = torch.tensor([0, 5])
    z, g, loss = torch.zeros(2, 2), torch.empty(2, 2), torch.empty(2)
    assert lib.ce_rows_f32(z.data_ptr(), bad.data_ptr(), None, None, 0, 1.0, g.data_ptr(), loss.data_ptr(),
                           None, 1.0, 2, -100, 0.0, 2) == 1  # the first bad target's row


def test_a_build_that_does_not_load_warns(monkeypatch):
    # "not built" is silent (no compiler: the ops take their composites); a module that is
    # there but fails to load names the loader's error
    import importlib

    def fail(name, *args, **kwargs):
        raise ImportError("undefined symbol: torchff_x")

    monkeypatch.setattr(_c, "_loaded", False)
    monkeypatch.setattr(_c, "_module", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(importlib, "import_module", fail)
    with pytest.warns(RuntimeWarning, match="built but do not load .*undefined symbol: torchff_x"):
        assert _c.module() is None
    monkeypatch.setattr(_c, "_loaded", False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _c.module() is None


@needs_c
def test_the_cpu_kernels_are_registered():
    for name in ("leaky_mask", "leaky_backward", "abs_sign", "times_small", "step", "prelu", "prelu_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"torchff::{name}", "CPU"), name


@needs_c
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", SIZES)
def test_elementwise_kernels_equal_their_composites(dtype, n, threads):
    x, g = _input(n, dtype), torch.randn(n, dtype=dtype)
    g[: min(n, 3)] = torch.tensor([float("inf"), float("nan"), -0.0], dtype=dtype)[: min(n, 3)]
    for a in (0.01, -0.5, 0.0, 1.5, float("nan"), float("inf")):
        got, want = K._leaky_mask_cpu(x, a), K._leaky_mask_composite(x, a)
        assert bits_equal(got[0], want[0]) and bits_equal(got[1], want[1]), a
        assert bits_equal(K._leaky_backward_cpu(g, want[1], a), K._leaky_backward_composite(g, want[1], a)), a
    got, want = K._abs_sign_cpu(x), K._abs_sign_composite(x)
    assert bits_equal(got[0], want[0]) and bits_equal(got[1], want[1])
    assert bits_equal(K._times_small_cpu(g, want[1]), K._times_small_composite(g, want[1]))
    for ste in (False, True):
        got, want = K._step_cpu(x, ste), K._step_composite(x, ste)
        assert bits_equal(got[0], want[0]) and bits_equal(got[1], want[1]), ste
    inside = K._step_composite(x, True)[1]
    assert bits_equal(K._times_small_cpu(g, inside), K._times_small_composite(g, inside))


def _prelu_inputs(shape, wshape, dtype):
    n = torch.Size(shape).numel()
    x = _input(n, dtype).reshape(shape)
    w = torch.randn(wshape, dtype=dtype)
    if w.numel() >= 4:
        w[:4] = torch.tensor([0.0, -0.0, float("nan"), -1.5], dtype=dtype)
    return x, w


PRELU_SHAPES = [
    ((7,), (1,)),
    ((), ()),
    ((5, 3), (3,)),
    ((5, 3), (1,)),
    ((4, 3, 5, 2), (3,)),
    ((2 * CHUNK + 3,), (1,)),  # chunks over one channel
    ((CHUNK // 8 + 1, 31), (31,)),  # (N, C): chunks at whole rows
    ((9, 7, CHUNK // 16 + 3), (7,)),  # (N, C, inner): chunks inside a channel's span
    ((0, 4), (4,)),
    # one weight over an element count with power-of-two factors: the backward views it as up
    # to 64 equal channels (the vectorized channel loop)
    ((6, 8), (1,)),
    ((4, 3, 5, 2), ()),
    ((2 * CHUNK + 2,), (1,)),
    ((4 * CHUNK,), (1,)),  # 64 lanes, each chunk's partial sums
    ((CHUNK // 64 + 1, 300), (300,)),  # more partial sums than the kernel keeps on its stack
]


@needs_c
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape, wshape", PRELU_SHAPES, ids=str)
def test_prelu_kernels_equal_their_composites(dtype, shape, wshape, threads):
    x, w = _prelu_inputs(shape, wshape, dtype)
    g = torch.randn(shape, dtype=dtype)
    if g.numel() >= 8:  # an infinite upstream gradient where x > 0 adds nothing to the weight's
        flat = g.view(-1)
        flat[:8] = torch.where(x.reshape(-1)[:8] > 0, torch.tensor(float("inf"), dtype=dtype), flat[:8])
    for with_mask in (False, True):
        got, want = K._prelu_cpu(x, w, with_mask), K._prelu_composite(x, w, with_mask)
        assert bits_equal(got[0], want[0]) and bits_equal(got[1], want[1])
    mask = x > 0
    got = K._prelu_backward_cpu(g, mask, w, True, False)
    want = K._prelu_backward_composite(g, mask, w, True, False)
    assert bits_equal(got[0], want[0]) and got[1].numel() == 0
    for need_input, need_weight in ((True, True), (True, False), (False, True)):
        gi, gw = K._prelu_backward_cpu(g, x, w, need_input, need_weight)
        ci, cw = K._prelu_backward_composite(g, x, w, need_input, need_weight)
        assert bits_equal(gi, ci)
        if need_weight:  # a sum: C accumulates in float64; compare with a float64 sum
            _, ref = K._prelu_backward_composite(g.double(), x.double(), w.double(), False, True)
            assert gw.shape == w.shape and gw.dtype == dtype
            assert nan_safe_equal(gw.isnan(), ref.isnan())
            fin = ref.isfinite() & gw.isfinite()
            # each product x g is rounded in the input's dtype (as torch's), the sum is float64:
            # the error is at most a rounding unit of the sum of |x g| over the channel
            terms = torch.where(x > 0, 0.0, (x.double() * g.double()).abs())
            bound = 2 * torch.finfo(dtype).eps * K._reduce_to_weight(terms, w.double())
            assert ((gw.double() - ref)[fin].abs() <= bound[fin] + ref[fin].abs() * torch.finfo(dtype).eps).all()
            assert torch.equal(gw.isinf(), ref.to(dtype).isinf())
        else:
            assert gw.numel() == 0


@needs_c
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape, wshape", [c for c in PRELU_SHAPES if 0 not in c[0]], ids=str)
def test_prelu_weight_gradient_is_the_float64_sum_of_the_products(dtype, shape, wshape, threads):
    # finite inputs (the test above puts nan in every one-weight sum): the kernel rounds each
    # product x g in the input's dtype, as torch, and sums them in float64 in any order, so its
    # result is that sum rounded once: within 1 ulp of it (float32), or within float64's
    # summation error (float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, dtype=dtype, generator=g)
    grad = torch.randn(shape, dtype=dtype, generator=g)
    w = torch.rand(wshape, dtype=dtype, generator=g)
    _, gw = K._prelu_backward_cpu(grad, x, w, True, True)
    terms = torch.where(x > 0, 0.0, (x * grad).double())
    ref = K._reduce_to_weight(terms, w.double())
    size = K._reduce_to_weight(terms.abs(), w.double())
    if dtype == torch.float32:
        torch.testing.assert_close(gw, ref.float(), rtol=torch.finfo(dtype).eps, atol=1e-30)
    else:
        assert ((gw - ref).abs() <= 64 * torch.finfo(dtype).eps * size).all()


@needs_c
def test_strided_and_other_dtypes_take_the_same_path():
    x = torch.randn(40, 30).t()  # strided: made contiguous first
    out, mask = K.leaky_mask(x, -0.5)
    assert out.is_contiguous() and bits_equal(out, torch.nn.functional.leaky_relu(x, -0.5).contiguous())
    for dtype in (torch.float16, torch.bfloat16):  # no C loop: the composite
        h = x.to(dtype)
        assert bits_equal(K.leaky_mask(h, -0.5)[0], torch.nn.functional.leaky_relu(h, -0.5).contiguous())
        assert bits_equal(K.abs_sign(h)[1], torch.sign(h).to(torch.int8).contiguous())


@needs_c
@pytest.mark.parametrize("shape, dim", [((3001, 132), 1), ((7, 8, 40001), 1), ((300001, 4), 1)])
def test_maxout_chunks_equal_the_composite(shape, dim, threads):
    # row and inner layouts split over 1 or 4 threads: every chunk boundary lands mid-row somewhere
    from torchff.kernels import maxout as M

    x = torch.randn(*shape, dtype=torch.float64)
    out, idx = torch.ops.torchff.maxout(x, 4, dim)
    want, want_idx = M._maxout_composite(x, 4, dim)
    assert torch.equal(out, want) and torch.equal(idx.long(), want_idx.long())
    g = torch.randn_like(out)
    assert torch.equal(torch.ops.torchff.maxout_backward(g, idx, 4, dim), M._backward_composite(g, idx, 4, dim))


@needs_c
def test_cross_entropy_rows_split_over_threads_find_the_first_bad_target_and_sum_in_order():
    # 4 chunks of 256 rows: bad class indices in the second and the last chunk raise torch's
    # IndexError naming the first (the first bad row over all chunks, whichever thread finished
    # first); the reduced loss is the single-thread one
    import torch.nn.functional as TF

    import torchff.functional as F

    z, t = torch.randn(1024, 1000, dtype=torch.float64), torch.randint(0, 1000, (1024,))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = F.cross_entropy(z, t, label_smoothing=0.1)
        torch.set_num_threads(4)
        assert len(_split(1024, work=1024 * 1000)) - 1 == 4 or not _openmp()
        torch.testing.assert_close(F.cross_entropy(z, t, label_smoothing=0.1), one, rtol=1e-15, atol=0)
        torch.testing.assert_close(one, TF.cross_entropy(z, t, label_smoothing=0.1))
        bad = t.clone()
        bad[300], bad[1000] = 1003, -7
        with pytest.raises(IndexError, match="Target 1003 is out of bounds"):
            F.cross_entropy(z, bad)
    finally:
        torch.set_num_threads(old)


@needs_c
def test_large_kernels_start_no_threads_of_their_own(threads):
    # the C kernels run on torch's OpenMP team: no Python pool (whose threads competed with
    # torch's spinning OpenMP threads for the cores: 2x slower steps at 4096 x 1024 on 2 threads)
    import threading

    import torchff.functional as F

    x = torch.randn(4 * CHUNK, requires_grad=True)
    F.leaky_relu(x, 0.1).sum().backward()
    F.mse_loss(x, torch.zeros_like(x)).backward()
    F.cross_entropy(torch.randn(512, 1024), torch.randint(0, 1024, (512,)))
    assert [t.name for t in threading.enumerate() if t.name.startswith("torchff")] == []
