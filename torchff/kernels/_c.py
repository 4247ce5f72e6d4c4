"""The C kernels (``torchff/csrc/*.c``), built into the extension module ``torchff._kernels``.

``pip install`` builds the module when a C compiler is there (the build is optional). A family's
op module looks its functions up with :func:`function` and calls each once over the whole
arrays, with the data pointers of contiguous tensors, Python ints and floats, in the order of
the C prototypes (``torchff/csrc/torchff_kernels.h``); each call releases the GIL while the
kernel runs. The C functions split large arrays over torch's own OpenMP threads themselves
(``torchff/csrc/torchff_parallel.h``): an array of fewer than ``2 * MIN_CHUNK`` elements of
work never leaves the calling thread.

The C functions take contiguous arrays of one dtype, float32 (suffix ``_f32``) or float64
(``_f64``); the CPU kernels make their inputs contiguous first.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from types import ModuleType
from typing import Callable

import torch
from torch import Tensor

__all__ = ["MIN_CHUNK", "SUFFIX", "available", "function", "module", "ptr"]

#: dtype -> the suffix of its C functions
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
#: elements of work per thread below which a C kernel stays on the calling thread
#: (``TORCHFF_MIN_CHUNK`` in ``torchff_parallel.h``)
MIN_CHUNK = 1 << 16

_module: ModuleType | None = None
_loaded = False


def module() -> ModuleType | None:
    """``torchff._kernels``, or None where it was not built (a build that is there but does not
    load warns, naming the loader's error, and the ops take their composites)."""
    global _module, _loaded
    if not _loaded:
        _loaded = True
        if importlib.util.find_spec("torchff._kernels") is not None:
            try:  # imported after torch: the dynamic loader gives it torch's libgomp
                _module = importlib.import_module("torchff._kernels")
            except ImportError as e:
                warnings.warn(f"torchff's C kernels were built but do not load ({e}); CPU ops use their "
                              "composites (torch ops)", RuntimeWarning, stacklevel=2)
    return _module


def available() -> bool:
    """True when the C library is built and loaded."""
    return module() is not None


def function(name: str) -> dict[torch.dtype, Callable] | None:
    """``{float32: <name>_f32, float64: <name>_f64}``, the kernel's two builds, or None without
    the library."""
    lib = module()
    if lib is None:
        return None
    return {dtype: getattr(lib, f"{name}_{suffix}") for dtype, suffix in SUFFIX.items()}


def ptr(t: Tensor | None) -> int | None:
    """The data pointer the C functions take for an optional array: None (NULL) for no tensor."""
    return None if t is None else t.data_ptr()
