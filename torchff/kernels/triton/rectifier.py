"""The rectifier family's CUDA kernels, in Triton (the CUDA implementations of the ops in
:mod:`torchff.kernels.rectifier`; imported on the first CUDA call only).

float32, float16 and bfloat16, computed in float32 and rounded once, as torch's CUDA kernels
do. One launch per op; inputs are made contiguous first, every output is fresh and contiguous.
Masks are written as bytes (a ``torch.bool`` tensor viewed as ``uint8``). Offsets are int64, so
tensors of more than 2**31 elements work.

PReLU's backward sums the weight's gradient inside the kernel: each program reduces its tile
per channel and writes one partial sum per channel (or per row of channels), far smaller than
the input; a torch ``sum`` over those partials finishes it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["abs_sign", "leaky_backward", "leaky_mask", "prelu", "prelu_backward", "step", "times_small"]

BLOCK = 1024  #: elements per program of the elementwise kernels


@triton.jit
def _offsets(n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    return offs, offs < n


@triton.jit
def leaky_mask_kernel(x_ptr, out_ptr, mask_ptr, a, n, BLOCK: tl.constexpr):
    offs, m = _offsets(n, BLOCK)
    x = tl.load(x_ptr + offs, mask=m).to(tl.float32)
    pos = x > 0
    tl.store(out_ptr + offs, (x * tl.where(pos, 1.0, a)).to(out_ptr.dtype.element_ty), mask=m)
    tl.store(mask_ptr + offs, pos.to(tl.uint8), mask=m)


@triton.jit
def leaky_backward_kernel(g_ptr, mask_ptr, out_ptr, a, n, BLOCK: tl.constexpr):
    offs, m = _offsets(n, BLOCK)
    g = tl.load(g_ptr + offs, mask=m).to(tl.float32)
    pos = tl.load(mask_ptr + offs, mask=m) != 0
    tl.store(out_ptr + offs, (g * tl.where(pos, 1.0, a)).to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def abs_sign_kernel(x_ptr, out_ptr, sign_ptr, n, BLOCK: tl.constexpr):
    offs, m = _offsets(n, BLOCK)
    x = tl.load(x_ptr + offs, mask=m)
    tl.store(out_ptr + offs, tl.abs(x), mask=m)
    tl.store(sign_ptr + offs, (x > 0).to(tl.int8) - (x < 0).to(tl.int8), mask=m)


@triton.jit
def times_small_kernel(g_ptr, small_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs, m = _offsets(n, BLOCK)
    g = tl.load(g_ptr + offs, mask=m).to(tl.float32)
    s = tl.load(small_ptr + offs, mask=m).to(tl.float32)
    tl.store(out_ptr + offs, (g * s).to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def step_kernel(x_ptr, out_ptr, inside_ptr, n, STE: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = _offsets(n, BLOCK)
    x = tl.load(x_ptr + offs, mask=m).to(tl.float32)
    out = tl.where(x != x, x, tl.where(x >= 0, 1.0, 0.0))
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=m)
    if STE:
        tl.store(inside_ptr + offs, (tl.abs(x) <= 1).to(tl.uint8), mask=m)


@triton.jit
def prelu_kernel(x_ptr, w_ptr, out_ptr, mask_ptr, n, C, inner, WITH_MASK: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = _offsets(n, BLOCK)
    x = tl.load(x_ptr + offs, mask=m).to(tl.float32)
    w = tl.load(w_ptr + (offs // inner) % C, mask=m).to(tl.float32)  # a few distinct slopes: cached
    pos = x > 0
    tl.store(out_ptr + offs, (x * tl.where(pos, 1.0, w)).to(out_ptr.dtype.element_ty), mask=m)
    if WITH_MASK:
        tl.store(mask_ptr + offs, pos.to(tl.uint8), mask=m)


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def prelu_backward_kernel(
    g_ptr, s_ptr, w_ptr, gi_ptr, partial_ptr, n, R, L, C,
    CH_ON_ROWS: tl.constexpr, FROM_MASK: tl.constexpr, NEED_INPUT: tl.constexpr, NEED_WEIGHT: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """A (BLOCK_R, BLOCK_L) tile of the input seen as (R, L), element (r, l) at r * L + l. The
    channel is r % C (CH_ON_ROWS) or l. The weight's partial sums go to partial[pid_l, r]
    (CH_ON_ROWS: summed over the tile's columns) or partial[pid_r, l] (over its rows)."""
    pid_r, pid_l = tl.program_id(0), tl.program_id(1)
    rows = pid_r.to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = pid_l.to(tl.int64) * BLOCK_L + tl.arange(0, BLOCK_L)
    offs = rows[:, None] * L + cols[None, :]
    m = (rows[:, None] < R) & (cols[None, :] < L) & (offs < n)
    if CH_ON_ROWS:
        ch = (rows % C)[:, None] + 0 * cols[None, :]
    else:
        ch = 0 * rows[:, None] + cols[None, :]
    g = tl.load(g_ptr + offs, mask=m, other=0.0).to(tl.float32)
    if FROM_MASK:
        pos = tl.load(s_ptr + offs, mask=m, other=0) != 0
        x = g  # (unused)
    else:
        x = tl.load(s_ptr + offs, mask=m, other=0.0).to(tl.float32)
        pos = x > 0
    if NEED_INPUT:
        w = tl.load(w_ptr + ch, mask=m, other=0.0).to(tl.float32)
        tl.store(gi_ptr + offs, (g * tl.where(pos, 1.0, w)).to(gi_ptr.dtype.element_ty), mask=m)
    if NEED_WEIGHT:
        t = tl.where(pos, 0.0, x * g)  # (0 outside the tensor: loaded as 0)
        # tl.reduce with a combine function of this module (not tl.sum: its helpers are
        # interpreted under TRITON_INTERPRET, which the ahead-of-time compile cannot take)
        if CH_ON_ROWS:
            tl.store(partial_ptr + pid_l.to(tl.int64) * R + rows, tl.reduce(t, 1, _add), mask=rows < R)
        else:
            tl.store(partial_ptr + pid_r.to(tl.int64) * L + cols, tl.reduce(t, 0, _add), mask=cols < L)


# --------------------------------------------------------------------------------------
# launchers: torch tensors in and out, as the ops' schemas
# --------------------------------------------------------------------------------------
def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


def _fresh(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    return torch.empty(x.shape, dtype=x.dtype if dtype is None else dtype, device=x.device)


def _none(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    return torch.empty(0, dtype=x.dtype if dtype is None else dtype, device=x.device)


def leaky_mask(x: Tensor, a: float) -> tuple[Tensor, Tensor]:
    x = x.contiguous()
    out, mask = _fresh(x), _fresh(x, torch.bool)
    if x.numel():
        leaky_mask_kernel[_grid(x.numel())](x, out, mask.view(torch.uint8), a, x.numel(), BLOCK=BLOCK)
    return out, mask


def leaky_backward(grad: Tensor, mask: Tensor, a: float) -> Tensor:
    grad, mask = grad.contiguous(), mask.contiguous()
    out = _fresh(grad)
    if grad.numel():
        leaky_backward_kernel[_grid(grad.numel())](grad, mask.view(torch.uint8), out, a, grad.numel(), BLOCK=BLOCK)
    return out


def abs_sign(x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.contiguous()
    out, sign = _fresh(x), _fresh(x, torch.int8)
    if x.numel():
        abs_sign_kernel[_grid(x.numel())](x, out, sign, x.numel(), BLOCK=BLOCK)
    return out, sign


def times_small(grad: Tensor, small: Tensor) -> Tensor:
    grad, small = grad.contiguous(), small.contiguous()
    if small.dtype == torch.bool:
        small = small.view(torch.int8)
    out = _fresh(grad)
    if grad.numel():
        times_small_kernel[_grid(grad.numel())](grad, small, out, grad.numel(), BLOCK=BLOCK)
    return out


def step(x: Tensor, ste: bool) -> tuple[Tensor, Tensor]:
    x = x.contiguous()
    out = _fresh(x)
    inside = _fresh(x, torch.bool) if ste else _none(x, torch.bool)
    if x.numel():
        target = inside.view(torch.uint8) if ste else out  # (not written without ste)
        step_kernel[_grid(x.numel())](x, out, target, x.numel(), STE=bool(ste), BLOCK=BLOCK)
    return out, inside


def _geometry(x: Tensor, weight: Tensor) -> tuple[int, int]:
    if weight.numel() == 1:
        return 1, max(1, x.numel())
    return x.shape[1], max(1, x[0, 0].numel())


def prelu(x: Tensor, weight: Tensor, with_mask: bool) -> tuple[Tensor, Tensor]:
    x, weight = x.contiguous(), weight.contiguous()
    out = _fresh(x)
    mask = _fresh(x, torch.bool) if with_mask else _none(x, torch.bool)
    if x.numel():
        C, inner = _geometry(x, weight)
        target = mask.view(torch.uint8) if with_mask else out
        prelu_kernel[_grid(x.numel())](x, weight, out, target, x.numel(), C, inner,
                                       WITH_MASK=bool(with_mask), BLOCK=BLOCK)
    return out, mask


def _pow2(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


def backward_layout(x: Tensor, weight: Tensor) -> tuple[int, int, int, bool, int, int]:
    """``(R, L, C, ch_on_rows, BLOCK_R, BLOCK_L)``: how :func:`prelu_backward_kernel` sees ``x``."""
    n = x.numel()
    if weight.numel() == 1:  # one slope: rows of BLOCK elements, all channel 0
        L = BLOCK
        return triton.cdiv(n, L), L, 1, True, 1, L
    C, inner = _geometry(x, weight)
    if inner == 1:  # (N, C): the channel is the column
        block_l = min(_pow2(C), BLOCK)
        return n // C, C, C, False, max(1, BLOCK // block_l), block_l
    block_l = min(_pow2(inner), BLOCK)  # (N, C, inner): one channel per row
    return n // inner, inner, C, True, max(1, BLOCK // block_l), block_l


def prelu_backward(
    grad: Tensor, saved: Tensor, weight: Tensor, need_input: bool, need_weight: bool
) -> tuple[Tensor, Tensor]:
    grad, saved, weight = grad.contiguous(), saved.contiguous(), weight.contiguous()
    from_mask = saved.dtype == torch.bool
    gi = _fresh(grad) if need_input else _none(grad)
    n = grad.numel()
    if n == 0 or not (need_input or need_weight):
        gw = torch.zeros_like(weight) if need_weight else _none(weight)
        return gi, gw
    R, L, C, on_rows, block_r, block_l = backward_layout(grad, weight)
    grid = (triton.cdiv(R, block_r), triton.cdiv(L, block_l))
    partial = None
    if need_weight:
        partial = torch.empty((grid[1], R) if on_rows else (grid[0], L), dtype=torch.float32, device=grad.device)
    prelu_backward_kernel[grid](
        grad, saved.view(torch.uint8) if from_mask else saved, weight,
        gi if need_input else grad, partial if need_weight else grad,
        n, R, L, C,
        CH_ON_ROWS=on_rows, FROM_MASK=from_mask, NEED_INPUT=bool(need_input), NEED_WEIGHT=bool(need_weight),
        BLOCK_R=block_r, BLOCK_L=block_l,
    )
    if not need_weight:
        return gi, _none(weight)
    per = partial.sum(0)
    if weight.numel() == 1:
        gw = per.sum()
    elif on_rows:
        gw = per.view(-1, C).sum(0)
    else:
        gw = per
    return gi, gw.to(weight.dtype).reshape(weight.shape)
