r"""Maxout's fused primitives as ``torchff::`` ops: the group maximum with its narrow winner
index in one pass, and the backward scatter.

* ``torchff::maxout(Tensor x, int pieces, int dim) -> (Tensor out, Tensor index)``: with
  ``k = pieces``, unit ``i`` along ``dim`` (non-negative) is the ``k`` consecutive elements
  ``i*k ... i*k + k - 1``; ``out`` has ``x.shape[dim] // k`` along ``dim`` and ``index`` the
  same shape, dtype :func:`index_dtype` (``uint8`` up to 256 pieces). The winner is the first
  maximal piece, in a group holding a nan its first nan (``torch.max``'s rule).
* ``torchff::maxout_backward(Tensor grad, Tensor index, int pieces, int dim) -> Tensor``: the
  input-shaped gradient, ``grad`` at each group's winner and 0 at the other pieces.

Implementations (the dispatcher picks one): the C loop of ``torchff/csrc/maxout.c`` on CPU for
contiguous float32/float64 with a ``uint8`` index (inputs are made contiguous first); the Triton
kernels of :mod:`torchff.kernels.triton.maxout` on CUDA for float32/float16/bfloat16 (compared
in float32, exact for each); the composite of torch ops for every other
device, dtype (half on CPU, integers) and index width. Outputs are always contiguous.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from torchff.kernels import _c, batch_first, define

__all__ = ["index_dtype", "maxout", "maxout_backward"]

_aten = torch.ops.aten


def index_dtype(pieces: int) -> torch.dtype:
    """The narrowest integer dtype holding a winner index in ``[0, pieces - 1]``."""
    if pieces <= 256:
        return torch.uint8
    if pieces <= 2**15:
        return torch.int16
    if pieces <= 2**31:
        return torch.int32
    return torch.int64


def _out_shape(shape, pieces: int, dim: int) -> list[int]:
    s = list(shape)
    s[dim] //= pieces
    return s


def _in_shape(shape, pieces: int, dim: int) -> list[int]:
    s = list(shape)
    s[dim] *= pieces
    return s


def _layout(shape, pieces: int, dim: int) -> tuple[int, int]:
    """``(rows, inner)`` of the ``(rows, pieces, inner)`` view of a contiguous input."""
    return math.prod(shape[:dim]) * (shape[dim] // pieces), math.prod(shape[dim + 1:])


# --------------------------------------------------------------------------------------
# composite (every device; the reference the kernels are tested against)
# --------------------------------------------------------------------------------------
def _not_winner(piece: Tensor, best: Tensor) -> Tensor:
    # a candidate equals the group maximum or, in a group whose maximum is nan, is a nan
    out = torch.ne(piece, best)
    if piece.is_floating_point() or piece.is_complex():
        out &= piece == piece
    return out


def _maxout_composite(x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    grouped = x.unflatten(dim, (-1, pieces))
    red = dim + 1
    dtype = index_dtype(pieces)
    if pieces > 4:  # the comparisons below grow with k; torch.max's int64 indices, narrowed
        out, index = torch.max(grouped, red)
        return out.contiguous(), index.to(dtype).contiguous()
    out = torch.amax(grouped, red).contiguous()
    if pieces == 1:
        return out, torch.zeros(out.shape, dtype=dtype, device=out.device)
    # index = the number of leading pieces that are not the winner (the first winner wins ties)
    missed = _not_winner(grouped.select(red, 0), out)
    index = missed.view(dtype).clone(memory_format=torch.contiguous_format)  # bool -> uint8: a view
    for j in range(1, pieces - 1):
        missed &= _not_winner(grouped.select(red, j), out)
        index += missed.view(dtype)
    return out, index


def _backward_composite(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    sizes = list(grad.shape)
    sizes.insert(dim + 1, pieces)
    routed = _aten.value_selecting_reduction_backward(grad, dim + 1, index.long(), sizes, False)
    return routed.flatten(dim, dim + 1).contiguous()


# --------------------------------------------------------------------------------------
# fake (shapes and dtypes)
# --------------------------------------------------------------------------------------
def _maxout_fake(x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    shape = _out_shape(x.shape, pieces, dim)
    return x.new_empty(shape), x.new_empty(shape, dtype=index_dtype(pieces))


def _backward_fake(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    return grad.new_empty(_in_shape(grad.shape, pieces, dim))


# --------------------------------------------------------------------------------------
# CPU: the C loops
# --------------------------------------------------------------------------------------
_C_FWD = _c.function("maxout")
_C_BWD = _c.function("maxout_backward")


def _maxout_cpu(x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    fn = _C_FWD.get(x.dtype)
    if fn is None or pieces > 256:  # half, integers, wide indices: the composite
        return _maxout_composite(x, pieces, dim)
    x = x.contiguous()
    shape = _out_shape(x.shape, pieces, dim)
    out = x.new_empty(shape)
    index = x.new_empty(shape, dtype=torch.uint8)
    if out.numel():
        _, inner = _layout(x.shape, pieces, dim)
        fn(out.data_ptr(), index.data_ptr(), x.data_ptr(), pieces, inner, out.numel())
    return out, index


def _backward_cpu(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    fn = _C_BWD.get(grad.dtype)
    if fn is None or index.dtype != torch.uint8:
        return _backward_composite(grad, index, pieces, dim)
    grad, index = grad.contiguous(), index.contiguous()
    grad_in = grad.new_empty(_in_shape(grad.shape, pieces, dim))
    if grad.numel():
        inner = math.prod(grad.shape[dim + 1:])
        fn(grad.data_ptr(), index.data_ptr(), grad_in.data_ptr(), pieces, inner, grad.numel())
    return grad_in


# --------------------------------------------------------------------------------------
# CUDA: the Triton kernels
# --------------------------------------------------------------------------------------
_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _maxout_cuda(x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    if x.dtype not in _TRITON_DTYPES or pieces > 256:
        return _maxout_composite(x, pieces, dim)
    from torchff.kernels.triton import maxout as kernels

    return kernels.maxout(x, pieces, dim)


def _backward_cuda(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    if grad.dtype not in _TRITON_DTYPES or index.dtype != torch.uint8:
        return _backward_composite(grad, index, pieces, dim)
    from torchff.kernels.triton import maxout as kernels

    return kernels.maxout_backward(grad, index, pieces, dim)


# --------------------------------------------------------------------------------------
# vmap: the batch moves to dim 0, the maxout dim one further
# --------------------------------------------------------------------------------------
def _maxout_vmap(info, in_dims, x, pieces, dim):
    (x,) = batch_first(info, in_dims, x)
    return maxout(x, pieces, dim + 1), (0, 0)


def _backward_vmap(info, in_dims, grad, index, pieces, dim):
    return maxout_backward(*batch_first(info, in_dims, grad, index), pieces, dim + 1), 0


maxout = define(
    "maxout(Tensor x, int pieces, int dim) -> (Tensor, Tensor)",
    composite=_maxout_composite,
    fake=_maxout_fake,
    cpu=_maxout_cpu if _C_FWD is not None else None,
    cuda=_maxout_cuda,
    vmap=_maxout_vmap,
)
maxout_backward = define(
    "maxout_backward(Tensor grad, Tensor index, int pieces, int dim) -> Tensor",
    composite=_backward_composite,
    fake=_backward_fake,
    cpu=_backward_cpu if _C_BWD is not None else None,
    cuda=_backward_cuda,
    vmap=_backward_vmap,
)
