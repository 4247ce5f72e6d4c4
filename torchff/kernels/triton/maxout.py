r"""Maxout's CUDA kernels (``torchff::maxout`` and ``torchff::maxout_backward``), in Triton.

The input is viewed as ``(rows, k, inner)`` (contiguous), the output and its ``uint8`` index as
``(rows, inner)``. One program covers ``BLOCK`` output elements (forward) or input elements
(backward); ``inner == 1`` (the maxout dim last, the usual case) is specialized by triton's
launcher, which folds the divisions. Values are compared in float32 (float16 and bfloat16
convert to it exactly, so the maximum is the input's own value); the winner rule is ``torch.max``'s (first maximum,
first nan), as the CPU kernel.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["maxout", "maxout_backward"]

BLOCK = 1024


@triton.jit
def maxout_kernel(x_ptr, out_ptr, index_ptr, n, inner, pieces, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    row = offs // inner
    base = x_ptr + (row * pieces * inner + (offs - row * inner))
    best = tl.load(base, mask=mask).to(tl.float32)  # exact for float16 / bfloat16
    index = tl.zeros([BLOCK], dtype=tl.int32)
    for j in range(1, pieces):
        v = tl.load(base + j * inner, mask=mask).to(tl.float32)
        take = (v > best) | ((v != v) & (best == best))
        best = tl.where(take, v, best)
        index = tl.where(take, j, index)
    tl.store(out_ptr + offs, best.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(index_ptr + offs, index.to(tl.uint8), mask=mask)


@triton.jit
def maxout_backward_kernel(grad_ptr, index_ptr, grad_in_ptr, n_in, inner, pieces, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_in
    q = offs // inner  # row * pieces + piece
    i = offs - q * inner
    row = q // pieces
    piece = q - row * pieces
    e = row * inner + i  # the output element this input element belongs to
    g = tl.load(grad_ptr + e, mask=mask)
    w = tl.load(index_ptr + e, mask=mask).to(tl.int64)
    tl.store(grad_in_ptr + offs, tl.where(w == piece, g, tl.zeros_like(g)), mask=mask)


def maxout(x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    """``torchff::maxout`` (``dim`` non-negative, at most 256 pieces): ``(out, uint8 index)``."""
    x = x.contiguous()
    shape = list(x.shape)
    shape[dim] //= pieces
    out = x.new_empty(shape)
    index = x.new_empty(shape, dtype=torch.uint8)
    n = out.numel()
    if n:
        inner = math.prod(x.shape[dim + 1:])
        maxout_kernel[(triton.cdiv(n, BLOCK),)](x, out, index, n, inner, pieces, BLOCK=BLOCK)
    return out, index


def maxout_backward(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    """``torchff::maxout_backward`` with a ``uint8`` index: the input-shaped gradient."""
    grad, index = grad.contiguous(), index.contiguous()
    shape = list(grad.shape)
    shape[dim] *= pieces
    grad_in = grad.new_empty(shape)
    n_in = grad_in.numel()
    if n_in:
        inner = math.prod(grad.shape[dim + 1:])
        maxout_backward_kernel[(triton.cdiv(n_in, BLOCK),)](grad, index, grad_in, n_in, inner, pieces, BLOCK=BLOCK)
    return grad_in
