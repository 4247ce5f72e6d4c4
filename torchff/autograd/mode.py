"""The save mode: memory or speed, where keeping less for backward costs a pass torch does not.

Most Functions keep less than torch at no cost in time (an output the next layer keeps anyway,
a mask made in cache with the value). For a few, the least memory is a mask or sign that
must be written beside the value: the compiled kernels (:mod:`torchff.autograd._native`) do
it in the same loop, but without them (no C compiler at install; CUDA; float16/bfloat16;
strided tensors) it is an extra pass that composing torch's kernels cannot fuse away. There
the mode decides:

* ``"memory"`` (the default): keep the least, e.g. a 1-byte mask for a negative-slope leaky
  ReLU, where torch keeps the 4-byte float32 input;
* ``"speed"``: keep what torch keeps (the input) and run at torch's speed or better.

Ops the mode changes (and the modules and :func:`~torchff.functional.generalized_relu` over
them):

* :func:`torchff.functional.leaky_relu` with a negative slope: a bool mask or the input;
* :func:`torchff.functional.abs_relu`: an int8 sign or the input.

The mode is read when the forward runs (the backward follows what was saved); it is
process-wide, as ``torch.set_float32_matmul_precision`` (not per thread, as ``torch.no_grad``:
a :func:`save_mode` block changes it for every thread while it is open, so a multithreaded
program should set it once), and ``torch.compile`` guards on it.

    >>> import torchff
    >>> with torchff.autograd.save_mode("speed"):
    ...     h = torchff.functional.leaky_relu(z, -0.5)  # keeps z, as torch
"""

from __future__ import annotations

import contextlib

__all__ = ["get_save_mode", "set_save_mode", "save_mode"]

MODES = ("memory", "speed")
_mode = "memory"


def get_save_mode() -> str:
    """The current save mode, ``"memory"`` (default) or ``"speed"``."""
    return _mode


def set_save_mode(mode: str) -> None:
    """Set the save mode for forwards run from now on: ``"memory"`` or ``"speed"``."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"save mode must be one of {MODES}, got {mode!r}")
    _mode = mode


@contextlib.contextmanager
def save_mode(mode: str):
    """Context manager (and decorator) that sets the save mode inside, and restores it after."""
    previous = get_save_mode()
    set_save_mode(mode)
    try:
        yield
    finally:
        set_save_mode(previous)
