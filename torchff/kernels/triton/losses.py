r"""The elementwise losses' CUDA kernels (``torchff::bce_with_logits``, ``bce_with_logits_backward``,
``regression``, ``regression_backward``), in Triton.

The same formulas as ``torchff/csrc/losses.c`` (see :mod:`torchff.kernels.losses`), computed in
float32 for float32 / float16 / bfloat16 and stored in each output's dtype. Arguments are
expanded to the broadcast shape and made contiguous by the launchers (a no-op for the usual
same-shape call); the upstream gradient of a reduced loss stays one element (``G_FULL=False``).
An absent optional argument is a constexpr flag (its pointer is a placeholder never read). One
program covers ``BLOCK`` elements. A reduced loss (``REDUCE``) writes no elements: each program
stores its block's float32 sum, and :func:`sum_kernel` adds those in order and scales them
(deterministic, no atomics).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from torchff.kernels._common import MEAN, NONE, SUM, broadcast_shape, result_dtype

__all__ = ["bce_with_logits", "bce_with_logits_backward", "regression", "regression_backward"]

BLOCK = 1024
_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


@triton.jit
def _upstream(g_ptr, offs, mask, G_FULL: tl.constexpr):
    """The upstream gradient at ``offs`` in float32: one element per output, or the one element
    of a reduced loss's gradient (``G_FULL=False``)."""
    if G_FULL:
        g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    else:
        g = tl.load(g_ptr).to(tl.float32)
    return g


@triton.jit
def _store_or_sum(out_ptr, partial_ptr, offs, mask, v, REDUCE: tl.constexpr):
    """The block's loss elements at ``offs``, or (``REDUCE``) their float32 sum at the program's
    slot of ``partial``."""
    if REDUCE:
        tl.store(partial_ptr + tl.program_id(0), tl.sum(tl.where(mask, v, 0.0), axis=0))
    else:
        tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def sum_kernel(partial_ptr, out_ptr, count, scale, BLOCK: tl.constexpr):
    """``out[0] = scale * sum(partial[:count])`` in float32, one program."""
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, count, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < count, other=0.0)
    tl.store(out_ptr, (tl.sum(acc, axis=0) * scale).to(out_ptr.dtype.element_ty))


@triton.jit
def bce_kernel(
    z_ptr, y_ptr, w_ptr, pw_ptr, out_ptr, partial_ptr, n,
    HAS_W: tl.constexpr, HAS_PW: tl.constexpr, REDUCE: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    z = tl.load(z_ptr + offs, mask=mask).to(tl.float32)
    y = tl.load(y_ptr + offs, mask=mask).to(tl.float32)
    L = tl.log(1.0 + tl.exp(-tl.abs(z)))  # in [0, log 2]: no cancellation in 1 + e
    rp = tl.where(z > 0.0, z, 0.0)
    rn = tl.where(z < 0.0, -z, 0.0)
    if HAS_PW:
        p = tl.load(pw_ptr + offs, mask=mask).to(tl.float32)
        v = (1.0 - y) * rp + p * y * rn + (1.0 + (p - 1.0) * y) * L
    else:
        v = (1.0 - y) * rp + y * rn + L
    if HAS_W:
        v = v * tl.load(w_ptr + offs, mask=mask).to(tl.float32)
    _store_or_sum(out_ptr, partial_ptr, offs, mask, v, REDUCE)


@triton.jit
def bce_backward_kernel(
    g_ptr, z_ptr, y_ptr, w_ptr, pw_ptr, gz_ptr, gy_ptr, n, scale,
    G_FULL: tl.constexpr, HAS_W: tl.constexpr, HAS_PW: tl.constexpr,
    NEED_Z: tl.constexpr, NEED_Y: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    z = tl.load(z_ptr + offs, mask=mask).to(tl.float32)
    g = _upstream(g_ptr, offs, mask, G_FULL) * scale
    if HAS_W:
        g = g * tl.load(w_ptr + offs, mask=mask).to(tl.float32)
    e = tl.exp(-tl.abs(z))
    if NEED_Z:
        y = tl.load(y_ptr + offs, mask=mask).to(tl.float32)
        r = 1.0 / (1.0 + e)
        s = tl.where(z >= 0.0, r, e * r)
        if HAS_PW:
            p = tl.load(pw_ptr + offs, mask=mask).to(tl.float32)
            dz = (1.0 + (p - 1.0) * y) * s - p * y
        else:
            dz = s - y
        tl.store(gz_ptr + offs, (g * dz).to(gz_ptr.dtype.element_ty), mask=mask)
    if NEED_Y:
        if HAS_PW:
            p = tl.load(pw_ptr + offs, mask=mask).to(tl.float32)
            rn = tl.where(z < 0.0, -z, 0.0)
            dy = (p - 1.0) * (rn + tl.log(1.0 + e)) - z
        else:
            dy = -z
        tl.store(gy_ptr + offs, (g * dy).to(gy_ptr.dtype.element_ty), mask=mask)


@triton.jit
def regression_kernel(
    x_ptr, y_ptr, a_ptr, loss_ptr, partial_ptr, n, eps, c,
    KIND: tl.constexpr, HAS_A: tl.constexpr, REDUCE: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    d = tl.load(x_ptr + offs, mask=mask).to(tl.float32) - tl.load(y_ptr + offs, mask=mask).to(tl.float32)
    if HAS_A:
        a = tl.load(a_ptr + offs, mask=mask, other=1.0).to(tl.float32)
    if KIND == 0:
        e = d * d
        if HAS_A:
            e = e * a
    elif KIND == 1:
        e = tl.abs(d)
        if HAS_A:
            e = e * a
    else:
        v = tl.where(a < eps, eps, a)  # nan stays nan
        if KIND == 2:
            e = 0.5 * (tl.log(v) + d * d / v + c)
        else:
            e = tl.log(v) + tl.abs(d) / v + c
    _store_or_sum(loss_ptr, partial_ptr, offs, mask, e, REDUCE)


@triton.jit
def regression_backward_kernel(
    g_ptr, x_ptr, y_ptr, a_ptr, gd_ptr, ga_ptr, n, eps, scale,
    KIND: tl.constexpr, G_FULL: tl.constexpr, HAS_A: tl.constexpr, NEED_A: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    d = tl.load(x_ptr + offs, mask=mask).to(tl.float32) - tl.load(y_ptr + offs, mask=mask).to(tl.float32)
    g = _upstream(g_ptr, offs, mask, G_FULL) * scale
    if HAS_A:
        a = tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    sgn = tl.where(d > 0.0, 1.0, tl.where(d < 0.0, -1.0, tl.where(d == d, 0.0, d)))
    if KIND <= 1:
        if KIND == 0:
            s = 2.0 * d
            da = d * d
        else:
            s = sgn
            da = tl.abs(d)
        if HAS_A:
            s = s * a
        gd = g * s
        if NEED_A:
            tl.store(ga_ptr + offs, (g * da).to(ga_ptr.dtype.element_ty), mask=mask)
    else:
        v = tl.where(a < eps, eps, a)
        if KIND == 2:
            q = d / v
            gd = g * q
            da = 0.5 * (1.0 / v - q * q)
        else:
            gd = g * (sgn / v)
            da = (1.0 - tl.abs(d) / v) / v
        if NEED_A:
            tl.store(ga_ptr + offs, (g * da).to(ga_ptr.dtype.element_ty), mask=mask)
    tl.store(gd_ptr + offs, gd.to(gd_ptr.dtype.element_ty), mask=mask)


def _full(t: Tensor | None, shape) -> Tensor | None:
    if t is None:
        return None
    return (t.expand(shape) if t.shape != shape else t).contiguous()


def _grad(grad: Tensor, shape) -> tuple[Tensor, bool]:
    if grad.numel() == 1 and math.prod(shape) != 1:
        return grad.reshape(1).contiguous(), False
    return _full(grad, shape), True


def _loss(kernel, args: tuple, scalars: tuple, shape, dtype, device, reduction: int, **constexprs) -> Tensor:
    """Launch a forward loss kernel ``kernel(*args, out, partial, n, *scalars)`` over ``shape``:
    its elements for ``NONE``, else the 0-d sum (``SUM``) or mean (``MEAN``) of the programs'
    partial sums."""
    n = math.prod(shape)
    grid = (triton.cdiv(n, BLOCK),)
    if reduction == NONE:
        out = torch.empty(shape, dtype=dtype, device=device)
        if n:
            kernel[grid](*args, out, out, n, *scalars, REDUCE=False, BLOCK=BLOCK, **constexprs)
        return out
    out = torch.empty((), dtype=dtype, device=device)
    partial = torch.empty(max(grid[0], 1), dtype=torch.float32, device=device)
    if n:
        kernel[grid](*args, out, partial, n, *scalars, REDUCE=True, BLOCK=BLOCK, **constexprs)
    scale = (1.0 / n if n else float("nan")) if reduction == MEAN else 1.0
    sum_kernel[(1,)](partial, out, grid[0], scale, BLOCK=BLOCK)
    return out


def bce_with_logits(input: Tensor, target: Tensor, weight: Tensor | None, pos_weight: Tensor | None, reduction: int) -> Tensor:
    """``torchff::bce_with_logits``: the loss in the target's dtype, elements or reduced."""
    shape = broadcast_shape(input, target, weight, pos_weight)
    z, y, w, pw = (_full(t, shape) for t in (input, target, weight, pos_weight))
    return _loss(bce_kernel, (z, y, z if w is None else w, z if pw is None else pw), (), shape, target.dtype, z.device,
                 reduction, HAS_W=w is not None, HAS_PW=pw is not None)


def bce_with_logits_backward(grad, input, target, weight, pos_weight, scale: float, input_grad: bool, target_grad: bool):
    """``torchff::bce_with_logits_backward``: ``(grad_input, grad_target)``, empty where not asked."""
    shape = broadcast_shape(grad, input, target, weight, pos_weight)
    z, y, w, pw = (_full(t, shape) for t in (input, target, weight, pos_weight))
    g, g_full = _grad(grad, shape)
    gz = torch.empty(shape if input_grad else (0,), dtype=input.dtype, device=z.device)
    gy = torch.empty(shape if target_grad else (0,), dtype=target.dtype, device=z.device)
    n = math.prod(shape)
    if n and (input_grad or target_grad):
        bce_backward_kernel[(triton.cdiv(n, BLOCK),)](
            g, z, y, z if w is None else w, z if pw is None else pw, gz, gy, n, float(scale),
            G_FULL=g_full, HAS_W=w is not None, HAS_PW=pw is not None,
            NEED_Z=input_grad, NEED_Y=target_grad, BLOCK=BLOCK,
        )
    return gz, gy


def regression(input, target, spread, kind: int, full: bool, eps: float, reduction: int):
    """``torchff::regression``: the loss, elements or reduced (a weighted MSE / L1 mean divides
    by the weights' sum)."""
    shape = broadcast_shape(input, target, spread)
    x, y, a = (_full(t, shape) for t in (input, target, spread))
    c = (_LOG_2PI if kind == 2 else _LOG_2) if full and kind >= 2 else 0.0
    dtype = result_dtype(input, target, spread)
    weighted = reduction == MEAN and a is not None and kind <= 1
    out = _loss(regression_kernel, (x, y, x if a is None else a), (float(eps), c), shape,
                torch.float32 if weighted else dtype, x.device, SUM if weighted else reduction,
                KIND=kind, HAS_A=a is not None)
    if weighted:
        out = (out / spread.sum(dtype=torch.float32)).to(dtype)
    return out


def regression_backward(grad, input, target, spread, kind: int, eps: float, scale: float, spread_grad: bool):
    """``torchff::regression_backward``: ``(grad_residual, grad_spread)``, the latter empty unless asked."""
    shape = broadcast_shape(grad, input, target, spread)
    x, y, a = _full(input, shape), _full(target, shape), _full(spread, shape)
    g, g_full = _grad(grad, shape)
    gd = torch.empty(shape, dtype=result_dtype(input, target), device=x.device)
    ga = torch.empty(shape, dtype=spread.dtype, device=x.device) if spread_grad else input.new_empty(0)
    n = gd.numel()
    if n:
        regression_backward_kernel[(triton.cdiv(n, BLOCK),)](
            g, x, y, x if a is None else a, gd, gd if not spread_grad else ga, n, float(eps), float(scale),
            KIND=kind, G_FULL=g_full, HAS_A=a is not None, NEED_A=spread_grad, BLOCK=BLOCK,
        )
    return gd, ga
