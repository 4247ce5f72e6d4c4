"""The optional compiled kernels: a value and its 1-byte mask or sign in one pass.

Composing torch's CPU kernels, a Function that keeps a 1-byte mask (or sign) instead of its
input pays one pass more than torch: the mask cannot be written in the same loop as the value.
``torchff/csrc/kernels.c`` has those loops; ``pip install`` builds it as ``torchff._kernels``
when a C compiler is there (the build is optional), and this module loads it with ``ctypes``
and runs it on one chunk of the arrays per intra-op thread (``ctypes`` releases the GIL).

Used only where :func:`supports` holds: plain eager CPU tensors (see
:func:`torchff.autograd._blockwise.fused_ok`), contiguous, float32 or float64. Everything else
(CUDA, other dtypes, strided tensors, ``torch.compile``, ``torch.func``, double backward), and
every op without the library, takes the pure-PyTorch paths, which give the same values.
``TORCHFF_NATIVE=0`` in the environment turns the library off.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from torchff.autograd._blockwise import fused_ok

__all__ = ["abs_and_sign", "available", "leaky_and_mask", "leaky_grad_from_mask", "supports", "times_small"]

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_MIN_CHUNK = 1 << 16  # elements: below two chunks' worth, one call on the calling thread

_lib: ctypes.CDLL | None = None
_loaded = False
_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def _load() -> ctypes.CDLL | None:
    global _lib, _loaded
    if _loaded:
        return _lib
    _loaded = True
    if os.environ.get("TORCHFF_NATIVE", "1") == "0":
        return None
    spec = importlib.util.find_spec("torchff._kernels")
    if spec is None or not spec.origin:
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    p, i64, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    for s in _SUFFIX.values():
        getattr(lib, f"torchff_leaky_mask_{s}").argtypes = [p, p, p, f64, i64]
        getattr(lib, f"torchff_leaky_grad_mask_{s}").argtypes = [p, p, p, f64, i64]
        getattr(lib, f"torchff_abs_sign_{s}").argtypes = [p, p, p, i64]
        getattr(lib, f"torchff_times_small_{s}").argtypes = [p, p, p, i64]
    _lib = lib
    return lib


def available() -> bool:
    """True when the compiled kernels are built and loaded (and not turned off)."""
    return _load() is not None


def supports(*tensors: Tensor) -> bool:
    """True when the compiled kernels may run on ``tensors``: the first one float32 or float64,
    all on the CPU, contiguous, plain eager tensors, and the library loaded."""
    return (
        tensors[0].dtype in _SUFFIX
        and all(t.device.type == "cpu" and t.is_contiguous() for t in tensors)
        and fused_ok(*tensors)
        and available()
    )


def _reset_pool() -> None:  # a forked child has the parent's pool object but none of its threads
    global _pool, _pool_workers
    _pool, _pool_workers = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool)


def _run(name: str, dtype: torch.dtype, arrays: list[Tensor], scalars: tuple, n: int) -> None:
    """Call ``torchff_<name>_<dtype>(*arrays, *scalars, count)`` over ``n`` elements, split into
    one chunk per intra-op thread (the last chunk on the calling thread)."""
    global _pool, _pool_workers
    lib = _load()
    if lib is None:
        raise RuntimeError("torchff's compiled kernels are not available (see torchff.autograd._native)")
    fn = getattr(lib, f"torchff_{name}_{_SUFFIX[dtype]}")
    ptrs = [(t.data_ptr(), t.element_size()) for t in arrays]
    chunks = max(1, min(torch.get_num_threads(), n // _MIN_CHUNK))
    if chunks == 1:
        fn(*(p for p, _ in ptrs), *scalars, n)
        return
    with _pool_lock:
        if _pool is None or _pool_workers < chunks - 1:  # first use, or more threads since
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool_workers = chunks - 1
            _pool = ThreadPoolExecutor(max_workers=_pool_workers, thread_name_prefix="torchff-native")
        pool = _pool
    step = -(-n // chunks)
    starts = range(0, n, step)
    futures = [
        pool.submit(fn, *(p + s * size for p, size in ptrs), *scalars, min(step, n - s)) for s in starts[:-1]
    ]
    s = starts[-1]
    fn(*(p + s * size for p, size in ptrs), *scalars, n - s)
    for f in futures:
        f.result()


def leaky_and_mask(x: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """``leaky_relu(x, alpha)`` and ``x > 0`` (bool), in one pass."""
    out, mask = torch.empty_like(x), torch.empty_like(x, dtype=torch.bool)
    _run("leaky_mask", x.dtype, [x, out, mask], (alpha,), x.numel())
    return out, mask


def leaky_grad_from_mask(grad: Tensor, positive: Tensor, alpha: float) -> Tensor:
    """``grad * (1 if positive else alpha)``."""
    out = torch.empty_like(grad)
    _run("leaky_grad_mask", grad.dtype, [grad, positive, out], (alpha,), grad.numel())
    return out


def abs_and_sign(x: Tensor) -> tuple[Tensor, Tensor]:
    """``|x|`` and ``sign(x)`` as int8 (0 at 0 and at nan), in one pass."""
    out, sign = torch.empty_like(x), torch.empty_like(x, dtype=torch.int8)
    _run("abs_sign", x.dtype, [x, out, sign], (), x.numel())
    return out, sign


def times_small(grad: Tensor, small: Tensor) -> Tensor:
    """``grad * small`` for a 1-byte tensor (int8 sign, bool or uint8 0/1 mask)."""
    out = torch.empty_like(grad)
    _run("times_small", grad.dtype, [grad, small, out], (), grad.numel())
    return out
