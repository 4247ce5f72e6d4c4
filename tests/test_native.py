"""The optional compiled kernels (torchff/csrc/kernels.c, loaded by torchff.autograd._native).

They must give bit-for-bit what the pure-PyTorch paths give, and every op must also work with
them turned off (a machine without a C compiler).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as TF

import torchff.functional as F
from torchff.autograd import _native
from torchff.autograd._blockwise import times_small
from torchff.autograd.rectifier import _abs_and_sign, _leaky_and_mask, _leaky_grad_from_mask
from torchff.testing import check_parity, nan_safe_equal

needs_native = pytest.mark.skipif(not _native.available(), reason="compiled kernels not built")

SPECIALS = [0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-40, -1e-40, 1e30, -1e30, 1.0, -1.0]


def _input(n, dtype):
    x = torch.randn(n, dtype=dtype) * 3
    k = min(n, len(SPECIALS))
    x[:k] = torch.tensor(SPECIALS[:k], dtype=dtype)
    return x


def test_built_where_ci_requires_it():
    # .ci/run sets TORCHFF_REQUIRE_NATIVE=1: there a C compiler is present, so a build that
    # silently fell back to the pure-PyTorch paths is an error
    if os.environ.get("TORCHFF_REQUIRE_NATIVE") != "1":
        pytest.skip("TORCHFF_REQUIRE_NATIVE is not set")
    assert _native.available()


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [0, 1, 11, 1000, 2 * (1 << 16) + 7, 5 * (1 << 16) + 3])  # the last two: chunks
def test_kernels_equal_the_pytorch_paths(dtype, n, monkeypatch):
    x, g = _input(n, dtype), torch.randn(n, dtype=dtype)
    mask, sign = x > 0, torch.sign(x).to(torch.int8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # chunks over 3 pool threads + this one
    with torch.no_grad():
        assert _native.supports(x)
        out, m = _native.leaky_and_mask(x, -0.5)
        assert nan_safe_equal(out, TF.leaky_relu(x, -0.5)) and torch.equal(m, mask)
        assert nan_safe_equal(_native.leaky_grad_from_mask(g, mask.view(torch.uint8), -0.5),
                              torch.ops.aten.leaky_relu_backward(g, mask.to(dtype), -0.5, False))
        out, s = _native.abs_and_sign(x)
        assert nan_safe_equal(out, torch.abs(x)) and torch.equal(s, sign)
        assert torch.equal(out.signbit(), torch.zeros_like(out, dtype=torch.bool))  # |−0.0| = +0.0
        assert nan_safe_equal(_native.times_small(g, sign), g * sign.to(dtype))


@needs_native
def test_what_it_supports():
    x = torch.randn(8, 6)
    with torch.no_grad():
        assert _native.supports(x)
        assert not _native.supports(x.t())  # strided
        assert not _native.supports(x.half()) and not _native.supports(x.bfloat16())
        assert not _native.supports(x, x.t())
    assert not _native.supports(x.requires_grad_())  # grad mode on: double backward wants formulas


@needs_native
def test_the_library_serves_the_functions(monkeypatch):
    calls = []
    for name in ("leaky_and_mask", "leaky_grad_from_mask", "abs_and_sign", "times_small"):
        real = getattr(_native, name)
        monkeypatch.setattr(_native, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    x, g = torch.randn(64, 32, requires_grad=True), torch.randn(64, 32)
    torch.autograd.grad(F.leaky_relu(x, -0.5), x, g)
    torch.autograd.grad(F.abs_relu(x), x, g)
    assert calls == ["leaky_and_mask", "leaky_grad_from_mask", "abs_and_sign", "times_small"]
    F.abs_relu(x).sum().backward()  # an expanded (stride-0) gradient: the PyTorch path
    assert calls[-1] == "abs_and_sign"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pytorch_paths_without_the_library(small_blocks, dtype):  # (small_blocks: no library, 3 blocks)
    x = _input(3000, dtype)
    g = torch.randn(3000, dtype=dtype)
    with torch.no_grad():
        out, m = _leaky_and_mask(x, -0.5)
        assert nan_safe_equal(out, TF.leaky_relu(x, -0.5)) and torch.equal(m, x > 0)
        out, s = _abs_and_sign(x)
        assert nan_safe_equal(out, torch.abs(x)) and torch.equal(s, torch.sign(x).to(torch.int8))
        assert nan_safe_equal(_leaky_grad_from_mask(g, x > 0, -0.5), torch.where(x > 0, g, -0.5 * g))
        assert nan_safe_equal(times_small(g, s), g * torch.sign(x))


@pytest.mark.parametrize(
    "ours, ref",
    [
        (lambda t: F.leaky_relu(t, -0.5), lambda t: TF.leaky_relu(t, -0.5)),
        (F.abs_relu, torch.abs),
        (lambda t: F.binary_step(t, ste=True), None),
    ],
)
def test_functions_agree_with_and_without_the_library(ours, ref, monkeypatch):
    x = _input(4000, torch.float32).reshape(40, 100).requires_grad_()
    g = torch.randn(40, 100)
    with_lib = ours(x), torch.autograd.grad(ours(x), x, g)[0]
    monkeypatch.setattr(_native, "_lib", None)
    monkeypatch.setattr(_native, "_loaded", True)
    without = ours(x), torch.autograd.grad(ours(x), x, g)[0]
    assert all(nan_safe_equal(a, b) for a, b in zip(with_lib, without))
    if ref is not None:
        check_parity(ours, ref, x)


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("TORCHFF_NATIVE", "0")
    monkeypatch.setattr(_native, "_lib", None)
    monkeypatch.setattr(_native, "_loaded", False)
    assert not _native.available()


@needs_native
def test_fake_and_wrapper_tensors_never_reach_the_kernels():
    # they report a CPU device and contiguity but have no data to point at (data_ptr() == 0)
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.testing._internal.two_tensor import TwoTensor

    with FakeTensorMode():
        x = torch.randn(64, 32, requires_grad=True)
        assert not _native.supports(x.detach())
        F.abs_relu(x).sum().backward()
        F.leaky_relu(x, -0.5).sum().backward()
    a = torch.randn(64, 32)
    t = TwoTensor(a, a.clone())
    with torch.no_grad():
        assert not _native.supports(t)
    t.requires_grad_()
    out = F.abs_relu(t)
    assert torch.equal(out.a, a.abs()) and torch.equal(out.b, a.abs())


@needs_native
def test_concurrent_calls_from_several_threads(monkeypatch):
    import sys
    import threading

    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    errors = []

    def work(n):
        x = _input(n, torch.float32)
        want_out, want_sign = torch.abs(x), torch.sign(x).to(torch.int8)
        try:
            for _ in range(100):
                with torch.no_grad():
                    out, sign = _native.abs_and_sign(x)
                assert nan_safe_equal(out, want_out) and torch.equal(sign, want_sign)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in (2 << 16, 8 << 16, 3 << 16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
