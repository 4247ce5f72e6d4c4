"""What the kernel modules share about dtypes and shapes (one spelling of each; also what
:mod:`torchff.autograd._loss` exports as ``compute_dtype`` and ``result_dtype``)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["broadcast_shape", "compute_dtype", "result_dtype"]

_HALF = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic runs in: float32 for float16 and bfloat16 (as torch's CPU and CUDA
    kernels accumulate them), the dtype itself otherwise."""
    return torch.float32 if dtype in _HALF else dtype


def result_dtype(*tensors: Tensor | None) -> torch.dtype:
    """torch's type promotion over the tensors that are not None."""
    dtype = None
    for t in tensors:
        if t is not None:
            dtype = t.dtype if dtype is None else torch.promote_types(dtype, t.dtype)
    return dtype


def broadcast_shape(*tensors: Tensor | None) -> torch.Size:
    """The broadcast shape of the tensors that are not None (``torch.broadcast_shapes`` only when
    the shapes differ: it costs more than a small op's kernel)."""
    shapes = [t.shape for t in tensors if t is not None and t.dim()]  # a 0-d tensor broadcasts to any
    if not shapes:
        return torch.Size(())
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    return torch.broadcast_shapes(*shapes)
