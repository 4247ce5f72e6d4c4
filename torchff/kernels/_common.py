"""What the kernel modules share about dtypes, shapes and reductions (one spelling of each; also
what :mod:`torchff.autograd._loss` exports as ``compute_dtype``, ``result_dtype`` and the
reduction enum)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MEAN", "NONE", "SUM", "broadcast_shape", "compute_dtype", "result_dtype"]

#: torch's reduction enum (``torch.nn._reduction.get_enum``): 'none', 'mean', 'sum'
NONE, MEAN, SUM = 0, 1, 2

_HALF = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic runs in: float32 for float16 and bfloat16 (as torch's CPU and CUDA
    kernels accumulate them), the dtype itself otherwise."""
    return torch.float32 if dtype in _HALF else dtype


def as_dtype(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t.to(dtype)``, without the call when ``t`` already has it (the CPU kernels' hot path)."""
    return t if t.dtype is dtype else t.to(dtype)


def result_dtype(*tensors: Tensor | None) -> torch.dtype:
    """torch's type promotion over the tensors that are not None."""
    dtype = None
    for t in tensors:
        if t is not None:
            d = t.dtype
            if dtype is None:
                dtype = d
            elif d is not dtype:
                dtype = torch.promote_types(dtype, d)
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
