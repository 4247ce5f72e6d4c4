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
from concurrent.futures import ThreadPoolExecutor, wait

import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode

from torchff.autograd._blockwise import fused_ok

__all__ = ["abs_and_sign", "available", "leaky_and_mask", "leaky_grad_from_mask", "supports", "times_small"]

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_PLAIN = (torch.Tensor, torch.nn.Parameter)  # not FakeTensor, DTensor or other subclasses (no real data)
_MIN_CHUNK = 1 << 16  # elements: below two chunks' worth, one call on the calling thread
_MAX_WORKERS = max(1, (os.cpu_count() or 1) - 1)  # pool threads; the calling thread runs one chunk too

_lib: ctypes.CDLL | None = None
_loaded = False
_pool: ThreadPoolExecutor | None = None  # made once, never replaced: callers may hold it
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
    all plain strided CPU tensors (no subclass, no fake or wrapper tensor), contiguous, in plain
    eager mode (:func:`fused_ok`, no dispatch mode that expects to see the ops), and the
    library loaded. Callers test :func:`fused_ok` first: under ``torch.compile`` the checks
    here must not be traced (dynamo rejects the dispatch-mode query in a full graph)."""
    return (
        tensors[0].dtype in _SUFFIX
        and all(
            type(t) in _PLAIN and t.layout == torch.strided and t.device.type == "cpu" and t.is_contiguous()
            for t in tensors
        )
        and fused_ok(*tensors)
        and _get_current_dispatch_mode() is None
        and available()
    )


def _reset_pool() -> None:
    # a forked child has the parent's pool object but none of its threads, and maybe its lock held
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool)


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:  # threads start on demand, up to _MAX_WORKERS
            _pool = ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="torchff-native")
        return _pool


def _call(fn, arrays: list[Tensor], scalars: tuple, start: int, count: int) -> None:
    # ``arrays`` is held here until the call returns, whatever happens to the caller's frame
    fn(*(t.data_ptr() + start * t.element_size() for t in arrays), *scalars, count)


def _run(name: str, dtype: torch.dtype, arrays: list[Tensor], scalars: tuple, n: int) -> None:
    """Call ``torchff_<name>_<dtype>(*arrays, *scalars, count)`` over ``n`` elements, split into
    one chunk per intra-op thread (the last chunk on the calling thread)."""
    lib = _load()
    if lib is None:
        raise RuntimeError("torchff's compiled kernels are not available (see torchff.autograd._native)")
    fn = getattr(lib, f"torchff_{name}_{_SUFFIX[dtype]}")
    chunks = max(1, min(torch.get_num_threads(), n // _MIN_CHUNK, _MAX_WORKERS + 1))
    if chunks == 1:
        _call(fn, arrays, scalars, 0, n)
        return
    pool = _get_pool()
    step = -(-n // chunks)
    starts = list(range(0, n, step))
    futures = [pool.submit(_call, fn, arrays, scalars, s, min(step, n - s)) for s in starts[:-1]]
    try:
        _call(fn, arrays, scalars, starts[-1], n - starts[-1])
    finally:  # never return (or raise) while a pool thread still writes into the outputs
        wait(futures)
    for f in futures:
        f.result()  # re-raise a pool thread's error


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
