r"""Triton kernels of the cross-entropy ops (``torchff/kernels/cross_entropy.py``) for CUDA.

Each program takes ``BLOCK_R`` rows of ``(R, C)`` logits (any strides) and walks the classes in
blocks of ``BLOCK_C``, computing in float32 for float32/float16/bfloat16 logits:

* ``_ce_rows_kernel``: pass 1 keeps the running max :math:`m` and :math:`s = \sum_c e^{z_c - m}`
  (rescaled when the max grows: online softmax); pass 2 writes the gradient
  :math:`\mathrm{scale}_n((a_n p_c - \tfrac{\varepsilon}{C} w_c) - b_n[c = y_n])` and sums the
  smoothing term :math:`\sum_c w_c (m - z_c)` with the final max, so the loss
  :math:`b_n((m - z_y) + \log s) + \tfrac{\varepsilon}{C}(\sum_c w_c (m - z_c) + W\log s)` is
  exact for logits of any size. The gradient may overwrite the logits (same pointer): each
  element is read before it is written, by the same program. A target that is neither a class
  index nor ``ignore_index`` trips a device-side assert (the kernel is compiled with ``debug``).
  For ``'mean'`` the scale is ``1 / denom`` read on the device (0 when ``denom`` is 0).
* ``_ce_weight_sum_kernel``: :math:`\sum_n w_{y_n}` over rows not ignored (one program).
* ``_ce_sum_kernel``: the sum of the loss rows, divided by ``denom`` or times a factor (one program).
* ``_ce_probs_kernel`` and ``_ce_probs_backward_kernel``: probability targets, forward (log
  probabilities and loss rows) and backward (both gradients from the log probabilities).

Launchers take and return torch tensors as the ops do.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["ce_rows", "ce_weight_sum", "ce_sum", "ce_probs", "ce_probs_backward"]

_REDUCE_BLOCK = 1024


def _blocks(R: int, C: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_C, num_warps): whole small rows several to a program, long rows in
    blocks of up to 4096 classes one to a program."""
    block_c = min(4096, triton.next_power_of_2(max(C, 1)))
    block_r = max(1, min(64, 4096 // block_c, triton.next_power_of_2(max(R, 1))))
    warps = 4 if block_r * block_c <= 2048 else 8
    return block_r, block_c, warps


@triton.jit(debug=True)
def _ce_rows_kernel(
    z_ptr, t_ptr, w_ptr, scale_ptr, denom_ptr, g_ptr, loss_ptr,
    R, C, stride_zr, stride_zc, stride_gr, stride_gc, scale_step, ignore_index, eps,
    HAS_WEIGHT: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_DENOM: tl.constexpr, SMOOTH: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < R
    t = tl.load(t_ptr + rows, mask=rmask, other=ignore_index)
    valid = rmask & (t != ignore_index)
    tl.device_assert(~valid | ((t >= 0) & (t < C)), "cross_entropy: target out of bounds")
    ts = tl.where(valid, t, 0)
    zrow = z_ptr + rows[:, None] * stride_zr
    zy = tl.load(z_ptr + rows * stride_zr + ts * stride_zc, mask=valid, other=0.0).to(tl.float32)
    # pass 1: running max and sum of exp(z - max); the total class weight when smoothing
    m = tl.full([BLOCK_R], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK_R], tl.float32)
    W = C * 1.0
    if HAS_WEIGHT and SMOOTH:
        wacc = tl.zeros([BLOCK_C], tl.float32)
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        cmask = cols < C
        x = tl.load(zrow + cols[None, :] * stride_zc, mask=rmask[:, None] & cmask[None, :], other=float("-inf"))
        x = x.to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, 1))
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows all -inf so far: no nan
        s = s * tl.exp(m - shift) + tl.sum(tl.exp(x - shift[:, None]), 1)
        m = m_new
        if HAS_WEIGHT and SMOOTH:
            wacc += tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    if HAS_WEIGHT and SMOOTH:
        W = tl.sum(wacc, 0)
    if HAS_WEIGHT:
        wy = tl.load(w_ptr + ts, mask=valid, other=0.0).to(tl.float32)
    else:
        wy = tl.full([BLOCK_R], 1.0, tl.float32)
    sc = tl.full([BLOCK_R], 1.0, tl.float32)
    if HAS_SCALE:
        sc = tl.load(scale_ptr + rows * scale_step, mask=rmask, other=0.0).to(tl.float32)
    if HAS_DENOM:
        d = tl.load(denom_ptr).to(tl.float32)
        sc = sc * tl.where(d != 0.0, 1.0 / d, 0.0)
    sc = tl.where(valid, sc, 0.0)
    ceps = eps / C
    b = (1.0 - eps) * wy
    k = sc * (b + ceps * W) / s
    # pass 2: the gradient, and the smoothing sum with the final max
    smooth = tl.zeros([BLOCK_R], tl.float32)
    grow = g_ptr + rows[:, None] * stride_gr
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        cmask = cols < C
        mask = rmask[:, None] & cmask[None, :]
        x = tl.load(zrow + cols[None, :] * stride_zc, mask=mask, other=0.0).to(tl.float32)
        g = k[:, None] * tl.exp(x - m[:, None])
        if SMOOTH:
            if HAS_WEIGHT:
                wc = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
            else:
                wc = tl.where(cmask, 1.0, 0.0)
            smooth += tl.sum(tl.where(mask, wc[None, :] * (m[:, None] - x), 0.0), 1)
            g -= (sc * ceps)[:, None] * wc[None, :]
        g -= tl.where(cols[None, :] == ts[:, None], (sc * b)[:, None], 0.0)
        g = tl.where(valid[:, None], g, 0.0)
        tl.store(grow + cols[None, :] * stride_gc, g.to(g_ptr.dtype.element_ty), mask=mask)
    ls = tl.log(s)
    loss = b * ((m - zy) + ls)
    if SMOOTH:
        loss += ceps * (smooth + W * ls)
    tl.store(loss_ptr + rows, tl.where(valid, loss, 0.0), mask=rmask)


@triton.jit
def _ce_weight_sum_kernel(t_ptr, w_ptr, out_ptr, R, C, ignore_index, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr):
    acc = tl.zeros([BLOCK], tl.float32)
    for r0 in range(0, R, BLOCK):
        rows = r0 + tl.arange(0, BLOCK)
        t = tl.load(t_ptr + rows, mask=rows < R, other=ignore_index)
        valid = (rows < R) & (t != ignore_index) & (t >= 0) & (t < C)
        if HAS_WEIGHT:
            acc += tl.load(w_ptr + tl.where(valid, t, 0), mask=valid, other=0.0).to(tl.float32)
        else:
            acc += tl.where(valid, 1.0, 0.0)
    tl.store(out_ptr, tl.sum(acc, 0))


@triton.jit
def _ce_sum_kernel(x_ptr, denom_ptr, out_ptr, n, factor, HAS_DENOM: tl.constexpr, BLOCK: tl.constexpr):
    acc = tl.zeros([BLOCK], tl.float32)
    for i0 in range(0, n, BLOCK):
        i = i0 + tl.arange(0, BLOCK)
        acc += tl.load(x_ptr + i, mask=i < n, other=0.0)
    total = tl.sum(acc, 0)
    if HAS_DENOM:
        total = total / tl.load(denom_ptr)
    else:
        total = total * factor
    tl.store(out_ptr, total.to(out_ptr.dtype.element_ty))


@triton.jit
def _ce_probs_kernel(
    z_ptr, t_ptr, w_ptr, lp_ptr, loss_ptr,
    R, C, stride_zr, stride_zc, stride_tr, stride_tc, stride_lr, stride_lc, eps,
    HAS_WEIGHT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < R
    m = tl.full([BLOCK_R], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK_R], tl.float32)
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        mask = rmask[:, None] & (cols < C)[None, :]
        x = tl.load(z_ptr + rows[:, None] * stride_zr + cols[None, :] * stride_zc, mask=mask, other=float("-inf"))
        x = x.to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, 1))
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - shift) + tl.sum(tl.exp(x - shift[:, None]), 1)
        m = m_new
    ls = tl.log(s)
    acc = tl.zeros([BLOCK_R], tl.float32)
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        cmask = cols < C
        mask = rmask[:, None] & cmask[None, :]
        x = tl.load(z_ptr + rows[:, None] * stride_zr + cols[None, :] * stride_zc, mask=mask, other=0.0).to(tl.float32)
        t = tl.load(t_ptr + rows[:, None] * stride_tr + cols[None, :] * stride_tc, mask=mask, other=0.0).to(tl.float32)
        lp = (x - m[:, None]) - ls[:, None]
        wt = (1.0 - eps) * t + eps / C
        if HAS_WEIGHT:
            wt = wt * tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
        acc += tl.sum(tl.where(mask, wt * lp, 0.0), 1)
        tl.store(lp_ptr + rows[:, None] * stride_lr + cols[None, :] * stride_lc, lp.to(lp_ptr.dtype.element_ty), mask=mask)
    tl.store(loss_ptr + rows, -acc, mask=rmask)


@triton.jit
def _ce_probs_backward_kernel(
    go_ptr, lp_ptr, t_ptr, w_ptr, gz_ptr, gt_ptr,
    R, C, go_step, alpha, stride_lr, stride_lc, stride_tr, stride_tc, eps,
    HAS_WEIGHT: tl.constexpr, NEED_INPUT: tl.constexpr, NEED_TARGET: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < R
    gn = alpha * tl.load(go_ptr + rows * go_step, mask=rmask, other=0.0).to(tl.float32)
    S = tl.zeros([BLOCK_R], tl.float32)
    if NEED_INPUT:
        for c0 in range(0, C, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            cmask = cols < C
            mask = rmask[:, None] & cmask[None, :]
            t = tl.load(t_ptr + rows[:, None] * stride_tr + cols[None, :] * stride_tc, mask=mask, other=0.0).to(tl.float32)
            wt = (1.0 - eps) * t + eps / C
            if HAS_WEIGHT:
                wt = wt * tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
            S += tl.sum(tl.where(mask, wt, 0.0), 1)
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        cmask = cols < C
        mask = rmask[:, None] & cmask[None, :]
        lp = tl.load(lp_ptr + rows[:, None] * stride_lr + cols[None, :] * stride_lc, mask=mask, other=0.0).to(tl.float32)
        if HAS_WEIGHT:
            wc = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
        else:
            wc = tl.full([1, BLOCK_C], 1.0, tl.float32)
        out = rows[:, None] * C + cols[None, :]
        if NEED_INPUT:
            t = tl.load(t_ptr + rows[:, None] * stride_tr + cols[None, :] * stride_tc, mask=mask, other=0.0).to(tl.float32)
            wt = ((1.0 - eps) * t + eps / C) * wc
            gz = gn[:, None] * (S[:, None] * tl.exp(lp) - wt)
            tl.store(gz_ptr + out, gz.to(gz_ptr.dtype.element_ty), mask=mask)
        if NEED_TARGET:
            gt = (-(1.0 - eps) * gn)[:, None] * wc * lp
            tl.store(gt_ptr + out, gt.to(gt_ptr.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------------------
# launchers
# --------------------------------------------------------------------------------------
def ce_rows(z, t, weight, scale, g, denom, ignore_index: int, label_smoothing: float):
    """Loss rows (float32, ``(R,)``) of logits ``z`` ``(R, C)`` and class indices ``t`` ``(R,)``;
    the gradient, times ``scale`` (None, 0-d or ``(R,)``) and ``1/denom`` (a 0-d device tensor,
    or None), into ``g`` ``(R, C)`` (which may be ``z``)."""
    R, C = z.shape
    loss = torch.empty(R, dtype=torch.float32, device=z.device)
    if R == 0:
        return loss
    eps = label_smoothing if label_smoothing > 0.0 else 0.0
    br, bc, warps = _blocks(R, C)
    t = t.contiguous()
    w = None if weight is None else weight.contiguous()
    sc = None if scale is None else scale.contiguous()
    _ce_rows_kernel[(triton.cdiv(R, br),)](
        z, t, w if w is not None else z, sc if sc is not None else z, denom if denom is not None else z, g, loss,
        R, C, z.stride(0), z.stride(1), g.stride(0), g.stride(1),
        0 if sc is None or sc.dim() == 0 else 1, ignore_index, eps,
        HAS_WEIGHT=w is not None, HAS_SCALE=sc is not None, HAS_DENOM=denom is not None, SMOOTH=eps > 0.0,
        BLOCK_R=br, BLOCK_C=bc, num_warps=warps,
    )
    return loss


def ce_weight_sum(t, weight, C: int, ignore_index: int):
    """:math:`\\sum_n w_{y_n}` over rows whose target is a class index (0-d float32)."""
    out = torch.empty((), dtype=torch.float32, device=t.device)
    t = t.contiguous()
    _ce_weight_sum_kernel[(1,)](t, weight.contiguous() if weight is not None else t, out, t.numel(), C,
                                ignore_index, HAS_WEIGHT=weight is not None, BLOCK=_REDUCE_BLOCK)
    return out


def ce_sum(x, denom, dtype, factor: float = 1.0):
    """``sum(x) / denom`` (``denom`` a 0-d device tensor) or ``sum(x) * factor``, 0-d in ``dtype``."""
    out = torch.empty((), dtype=dtype, device=x.device)
    _ce_sum_kernel[(1,)](x, denom if denom is not None else x, out, x.numel(), factor,
                         HAS_DENOM=denom is not None, BLOCK=_REDUCE_BLOCK)
    return out


def ce_probs(z, t, weight, lp, label_smoothing: float):
    """Loss rows (float32) of logits ``z`` ``(R, C)`` against probabilities ``t`` ``(R, C)``;
    the log-probabilities into ``lp`` ``(R, C)``."""
    R, C = z.shape
    loss = torch.empty(R, dtype=torch.float32, device=z.device)
    if R == 0:
        return loss
    br, bc, warps = _blocks(R, C)
    w = None if weight is None else weight.contiguous()
    _ce_probs_kernel[(triton.cdiv(R, br),)](
        z, t, w if w is not None else z, lp, loss, R, C, z.stride(0), z.stride(1), t.stride(0), t.stride(1),
        lp.stride(0), lp.stride(1), label_smoothing if label_smoothing > 0.0 else 0.0,
        HAS_WEIGHT=w is not None, BLOCK_R=br, BLOCK_C=bc, num_warps=warps,
    )
    return loss


def ce_probs_backward(go, alpha: float, lp, t, weight, gz, gt, label_smoothing: float) -> None:
    """Both gradients of the probability-target loss from the log-probabilities ``lp`` ``(R, C)``:
    ``go`` is the upstream gradient, ``(R,)`` or 0-d, times ``alpha``; ``gz``/``gt`` are
    contiguous ``(R, C)`` outputs or None."""
    R, C = lp.shape
    if R == 0:
        return
    br, bc, warps = _blocks(R, C)
    w = None if weight is None else weight.contiguous()
    go = go.contiguous()
    _ce_probs_backward_kernel[(triton.cdiv(R, br),)](
        go, lp, t, w if w is not None else lp, gz if gz is not None else lp, gt if gt is not None else lp,
        R, C, 1 if go.dim() else 0, alpha, lp.stride(0), lp.stride(1), t.stride(0), t.stride(1),
        label_smoothing if label_smoothing > 0.0 else 0.0,
        HAS_WEIGHT=w is not None, NEED_INPUT=gz is not None, NEED_TARGET=gt is not None,
        BLOCK_R=br, BLOCK_C=bc, num_warps=warps,
    )
