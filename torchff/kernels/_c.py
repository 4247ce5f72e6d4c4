"""The C kernels (``torchff/csrc/*.c``, built into ``torchff._kernels``), called with ctypes.

``pip install`` builds the library when a C compiler is there (the build is optional). A family's
op module looks its functions up with :func:`function` and runs them with :func:`run`, which
splits large arrays into one chunk per intra-op thread (ctypes releases the GIL) and keeps small
ones on the calling thread: a tensor of fewer than ``2 * MIN_CHUNK`` elements never pays for a
thread handoff. Kernels that index their arrays themselves (per-chunk partial sums, rows) split
the work with :func:`ranges` and run it with :func:`parallel`, which ``run`` is built on.

The C functions take contiguous arrays of one dtype, float32 (suffix ``_f32``) or float64
(``_f64``); the CPU kernels make their inputs contiguous first.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["MIN_CHUNK", "SUFFIX", "available", "function", "parallel", "ranges", "run"]

#: dtype -> the suffix of its C functions
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
#: elements: below two chunks' worth, one call on the calling thread
MIN_CHUNK = 1 << 16
_MAX_WORKERS = max(1, (os.cpu_count() or 1) - 1)  # pool threads; the calling thread runs one chunk too

_lib: ctypes.CDLL | None = None
_loaded = False
_pool: ThreadPoolExecutor | None = None  # made once, never replaced: callers may hold it
_pool_lock = threading.Lock()


def _load() -> ctypes.CDLL | None:
    global _lib, _loaded
    if not _loaded:
        _loaded = True
        spec = importlib.util.find_spec("torchff._kernels")
        if spec is not None and spec.origin:
            try:
                _lib = ctypes.CDLL(spec.origin)
            except OSError:
                _lib = None
    return _lib


def available() -> bool:
    """True when the C library is built and loaded."""
    return _load() is not None


def function(name: str, argtypes: Sequence) -> dict[torch.dtype, ctypes._CFuncPtr] | None:
    """``{float32: torchff_<name>_f32, float64: torchff_<name>_f64}`` with their ``argtypes`` set,
    or None without the library. Pointers are ``ctypes.c_void_p``; the last argument of every
    function is the element count (``ctypes.c_int64``), which :func:`run` passes."""
    lib = _load()
    if lib is None:
        return None
    fns = {}
    for dtype, suffix in SUFFIX.items():
        fn = getattr(lib, f"torchff_{name}_{suffix}")
        fn.argtypes = list(argtypes)
        fn.restype = None
        fns[dtype] = fn
    return fns


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
            _pool = ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="torchff-c")
        return _pool


def ranges(n: int, align: int = 1, work: int | None = None) -> list[tuple[int, int]]:
    """``[begin, end)`` chunks of ``n`` items (elements, or rows), one per intra-op thread when
    the ``work`` (elements touched; default ``n``) is at least two chunks' worth of
    :data:`MIN_CHUNK`, else one; each boundary but the last a multiple of ``align``."""
    work = n if work is None else work
    chunks = max(1, min(torch.get_num_threads(), work // MIN_CHUNK, _MAX_WORKERS + 1, -(-n // align)))
    if chunks == 1:
        return [(0, n)]
    per = -(-n // chunks)
    per = -(-per // align) * align
    return [(b, min(b + per, n)) for b in range(0, n, per)]


def parallel(call, chunks: list[tuple[int, int]]) -> list:
    """``[call(k, begin, end) for each chunk k]``, all but the last chunk on the pool threads
    (ctypes releases the GIL) and the last on the calling thread; one chunk runs on the calling
    thread alone. Returns only when every call has finished; re-raises a call's error."""
    if len(chunks) == 1:
        return [call(0, *chunks[0])]
    pool = _get_pool()
    futures = [pool.submit(call, k, b, e) for k, (b, e) in enumerate(chunks[:-1])]
    try:
        last = call(len(chunks) - 1, *chunks[-1])
    finally:  # never return (or raise) while a pool thread still writes into the outputs
        wait(futures)
    return [f.result() for f in futures] + [last]


def run(fn, arrays: Sequence[Tensor], scalars: tuple = (), n: int | None = None) -> None:
    """Call ``fn(*pointers, *scalars, count)`` over ``n`` elements (default: the first array's
    ``numel``), split by :func:`ranges` and run by :func:`parallel`. Every array is contiguous
    and indexed by the same element offset: each chunk gets its pointers advanced to its start."""
    n = arrays[0].numel() if n is None else n

    def call(k, b, e):  # ``arrays`` is held here until the call returns
        fn(*(t.data_ptr() + b * t.element_size() for t in arrays), *scalars, e - b)

    parallel(call, ranges(n))
