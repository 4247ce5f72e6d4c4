"""The C kernels (``torchff/csrc/*.c``, built into ``torchff._kernels``), called with ctypes.

``pip install`` builds the library when a C compiler is there (the build is optional). A family's
op module looks its functions up with :func:`function` and calls each once over the whole
arrays (ctypes releases the GIL during the call). The C functions split large arrays over
torch's own OpenMP threads themselves (``torchff/csrc/torchff_parallel.h``): an array of fewer
than ``2 * MIN_CHUNK`` elements of work never leaves the calling thread.

The C functions take contiguous arrays of one dtype, float32 (suffix ``_f32``) or float64
(``_f64``); the CPU kernels make their inputs contiguous first.
"""

from __future__ import annotations

import ctypes
import importlib.util
from typing import Sequence

import torch

__all__ = ["MIN_CHUNK", "SUFFIX", "available", "function"]

#: dtype -> the suffix of its C functions
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
#: elements of work per thread below which a C kernel stays on the calling thread
#: (``TORCHFF_MIN_CHUNK`` in ``torchff_parallel.h``)
MIN_CHUNK = 1 << 16

_lib: ctypes.CDLL | None = None
_loaded = False


def _load() -> ctypes.CDLL | None:
    global _lib, _loaded
    if not _loaded:
        _loaded = True
        spec = importlib.util.find_spec("torchff._kernels")
        if spec is not None and spec.origin:
            try:
                _lib = ctypes.CDLL(spec.origin)  # after torch: its libgomp serves ours
            except OSError:
                _lib = None
    return _lib


def available() -> bool:
    """True when the C library is built and loaded."""
    return _load() is not None


def function(name: str, argtypes: Sequence) -> dict[torch.dtype, ctypes._CFuncPtr] | None:
    """``{float32: torchff_<name>_f32, float64: torchff_<name>_f64}`` with their ``argtypes`` set,
    or None without the library. Pointers are ``ctypes.c_void_p``; the last argument of every
    function is the element (or row) count, ``ctypes.c_int64``."""
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
