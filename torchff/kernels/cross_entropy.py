r"""The softmax cross-entropy ops: loss rows and their gradient in one pass over the logits.

Layout follows torch: the class dim is dim 1 (dim 0 of an unbatched ``(C,)`` input); inputs
may be ``(N, C, d1, ..., dk)``. Every implementation works on rows, ``(R, C)`` with the class
dim last (a view for 1-d and 2-d inputs, a copy for K-dimensional ones); logits-shaped outputs
are returned with the input's shape and the rows' memory layout (for K-dim inputs a permuted
view). ``reduction`` is torch's enum: 0 ``'none'``, 1 ``'mean'``, 2 ``'sum'``.

Ops (``torch.ops.torchff.*``):

* ``cross_entropy(input, target, weight, reduction, ignore_index, label_smoothing) -> (loss, grad)``:
  class-index targets. Per row, with :math:`s = \sum_c e^{z_c - m}`, :math:`m = \max_c z_c`,
  :math:`W = \sum_c w_c`, :math:`\varepsilon` the smoothing:
  :math:`l_n = (1-\varepsilon) w_y ((m - z_y) + \log s) + \tfrac{\varepsilon}{C}(\sum_c w_c (m - z_c) + W \log s)`,
  and ``grad`` is :math:`\partial L / \partial z` of the *reduced* loss ``L`` (for ``'mean'``
  divided by :math:`\sum_n w_{y_n}`, or 0 when that is 0):
  :math:`(a_n p_n - \tfrac{\varepsilon}{C} w) - b_n e_{y_n}`, :math:`a_n = (1-\varepsilon) w_{y_n}
  + \tfrac{\varepsilon}{C} W`, :math:`b_n = (1-\varepsilon) w_{y_n}`; 0 on ``ignore_index`` rows.
  A target that is neither a class index nor ``ignore_index`` raises torch's ``IndexError`` on
  CPU and trips a device-side assert on CUDA (no host read).
* ``cross_entropy_rows_(logits, target, weight, scale, ignore_index, label_smoothing) -> loss``:
  the same rows on a 2-d ``(R, C)`` block of logits that its caller owns (a chunk of
  ``linear_cross_entropy``): the gradient, times ``scale`` (``None``, 0-d or one per row),
  overwrites the logits (Liger-Kernel's in-place idea: no second logits-sized buffer).
* ``cross_entropy_probs(input, target, weight, reduction, label_smoothing) -> (loss, log_probs)``:
  probability targets, :math:`l_n = -\sum_c w_c t'_{n,c} \log p_{n,c}`,
  :math:`t' = (1-\varepsilon) t + \varepsilon / C`; ``'mean'`` divides by the number of rows.
* ``cross_entropy_probs_backward(grad, log_probs, target, weight, reduction, label_smoothing,
  need_input, need_target) -> (grad_input, grad_target)``:
  :math:`g_n (S_n p_n - w \odot t'_n)` with :math:`S_n = \sum_c w_c t'_{n,c}`, and
  :math:`-g_n (1-\varepsilon)\, w \odot \log p_n` (empty where not needed).

CPU: ``torchff/csrc/cross_entropy.c`` for float32/float64; float16/bfloat16 are computed in a
float32 copy, as torch computes them on CPU. CUDA: ``torchff/kernels/triton/cross_entropy.py``,
float32/float16/bfloat16 computed in float32. Every other device: the composite.
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchff.kernels._common import MEAN, NONE, SUM
from torchff.kernels._common import compute_dtype as _opmath
from torchff.kernels import _c
from torchff.kernels._library import define

__all__ = ["cross_entropy", "cross_entropy_rows_", "cross_entropy_probs", "cross_entropy_probs_backward"]


# --------------------------------------------------------------------------------------
# layout: rows (R, C) with the class dim last
# --------------------------------------------------------------------------------------
def _rows(x: Tensor, C: int) -> Tensor:
    """``x`` (torch's layout, class dim 1, or 0 when 1-d) as ``(R, C)`` rows: a view for 1-d
    and 2-d tensors, a copy for K-dimensional ones."""
    if x.dim() <= 2:
        return x.reshape(-1, C)
    return x.movedim(1, -1).reshape(-1, C)


def _unrows(rows: Tensor, shape: torch.Size) -> Tensor:
    """``rows`` (R, C) back in torch's layout ``shape`` (a view)."""
    if len(shape) <= 2:
        return rows.view(shape)
    return rows.view(shape[:1] + shape[2:] + shape[1:2]).movedim(-1, 1)


def _classes(shape) -> int:
    return shape[1] if len(shape) >= 2 else shape[0]


def _empty_rows_like(shape, dtype, device) -> Tensor:
    C = _classes(shape)
    R = 1
    for i, s in enumerate(shape):
        if i != (1 if len(shape) >= 2 else 0):
            R *= s
    return _unrows(torch.empty((R, C), dtype=dtype, device=device), torch.Size(shape))


def _reduced(rows: Tensor, reduction: int, denom, target_shape, dtype) -> Tensor:
    if reduction == NONE:
        return rows.view(target_shape).to(dtype)
    total = rows.sum()
    if reduction == MEAN:
        total = total / denom
    return total.to(dtype)


def _out_of_bounds(value: int) -> IndexError:
    return IndexError(f"Target {value} is out of bounds.")


def _check_targets_composite(t: Tensor, valid: Tensor, C: int) -> None:
    bad = valid & ((t < 0) | (t >= C))
    if t.device.type == "cpu" and not torch.compiler.is_compiling():  # (a host read breaks a graph)
        if bool(bad.any()):  # CPU only: a host read of a host tensor
            raise _out_of_bounds(int(t[bad][0]))
    else:
        torch._assert_async(~bad.any(), "cross_entropy: target out of bounds")


# --------------------------------------------------------------------------------------
# composite (torch ops, on rows): the reference and the implementation for other devices
# --------------------------------------------------------------------------------------
def _composite_rows(z: Tensor, t: Tensor, weight: Tensor | None, ignore_index: int, eps: float, alpha, scale):
    """(loss rows, gradient rows times ``alpha * scale``), both in the opmath dtype."""
    dtype = _opmath(z.dtype)
    R, C = z.shape
    z = z.to(dtype)
    valid = t != ignore_index
    _check_targets_composite(t, valid, C)
    safe = t.masked_fill(~valid, 0).unsqueeze(1)
    w = None if weight is None else weight.to(dtype)
    eps = eps if eps > 0.0 else 0.0
    sh = z - z.amax(1, keepdim=True)
    e = sh.exp()
    s = e.sum(1, keepdim=True)
    ls = s.log().squeeze(1)
    wy = torch.ones(R, dtype=dtype, device=z.device) if w is None else w[safe.squeeze(1)]
    b = (1.0 - eps) * wy
    loss = b * (ls - sh.gather(1, safe).squeeze(1))
    W = float(C) if w is None else w.sum()
    if eps:
        smooth = -(sh.sum(1) if w is None else (sh * w).sum(1))
        loss = loss + (eps / C) * (smooth + W * ls)
    loss = torch.where(valid, loss, 0.0)
    # in the opmath dtype (a Python alpha alone would make a default-dtype, float32, tensor)
    a = alpha if scale is None else alpha * scale.to(dtype).expand(R)
    sc = torch.where(valid, torch.as_tensor(a, dtype=dtype, device=z.device), 0.0)
    # pointwise in (n, c), the target's term by comparison with the class index rather than a
    # scatter: under torch.compile the gradient fuses into one kernel that the partitioner may
    # recompute in backward from the logits and the row statistics
    g = e * (sc * (b + (eps / C) * W) / s.squeeze(1)).unsqueeze(1)
    if eps:
        g = g - (sc * (eps / C)).unsqueeze(1) * (1.0 if w is None else w)
    is_target = torch.arange(C, device=z.device) == safe
    g = g - torch.where(is_target, (sc * b).unsqueeze(1), 0.0)
    g = torch.where(valid.unsqueeze(1), g, 0.0)
    return loss, g


def _composite_denominator(t: Tensor, weight: Tensor | None, ignore_index: int, dtype) -> Tensor:
    valid = t != ignore_index
    if weight is None:
        return valid.sum().to(dtype)
    C = weight.shape[0]
    safe = torch.where(valid & (t >= 0) & (t < C), t, 0)
    return torch.where(valid, weight.to(dtype)[safe], 0.0).sum()


def _composite_cross_entropy(input, target, weight, reduction, ignore_index, label_smoothing):
    C = _classes(input.shape)
    t = target.reshape(-1)
    dtype = _opmath(input.dtype)
    alpha = 1.0
    denom = None
    if reduction == MEAN:
        denom = _composite_denominator(t, weight, ignore_index, dtype)
        alpha = torch.where(denom != 0, 1.0 / denom, 0.0)
    loss, g = _composite_rows(_rows(input, C), t, weight, ignore_index, label_smoothing, alpha, None)
    g = g.to(input.dtype).contiguous()
    return _reduced(loss, reduction, denom, target.shape, input.dtype), _unrows(g, input.shape)


def _fake_cross_entropy(input, target, weight, reduction, ignore_index, label_smoothing):
    loss = input.new_empty(target.shape if reduction == NONE else ())
    return loss, _empty_rows_like(input.shape, input.dtype, input.device)


def _composite_rows_(logits, target, weight, scale, ignore_index, label_smoothing):
    loss, g = _composite_rows(logits, target, weight, ignore_index, label_smoothing, 1.0, scale)
    logits.copy_(g)
    return loss.to(logits.dtype)


def _fake_rows_(logits, target, weight, scale, ignore_index, label_smoothing):
    return logits.new_empty(logits.shape[:1])


def _probs_terms(t: Tensor, w: Tensor | None, eps: float, C: int):
    eps = eps if eps > 0.0 else 0.0
    ts = t * (1.0 - eps) + eps / C if eps else t
    return ts if w is None else ts * w


def _composite_probs(input, target, weight, reduction, label_smoothing):
    C = _classes(input.shape)
    out = torch.promote_types(input.dtype, target.dtype)
    dtype = _opmath(out)
    lp = torch.log_softmax(_rows(input, C).to(dtype), 1)
    wt = _probs_terms(_rows(target, C).to(dtype), None if weight is None else weight.to(dtype), label_smoothing, C)
    rows = -(lp * wt).sum(1)
    lp = lp.to(out).contiguous()
    n = rows.shape[0]
    return _reduced(rows, reduction, n, input.shape[:1] + input.shape[2:] if input.dim() >= 2 else (), out), _unrows(lp, input.shape)


def _fake_probs(input, target, weight, reduction, label_smoothing):
    out = torch.promote_types(input.dtype, target.dtype)
    shape = (input.shape[:1] + input.shape[2:] if input.dim() >= 2 else ()) if reduction == NONE else ()
    return input.new_empty(shape, dtype=out), _empty_rows_like(input.shape, out, input.device)


def _upstream_rows(grad: Tensor, reduction: int, R: int, dtype):
    """(per-row upstream gradient as ``(R,)`` or 0-d, the ``'mean'`` factor)."""
    g = grad.to(dtype)
    if reduction == NONE:
        return g.reshape(R), 1.0
    return g.reshape(()), (1.0 / R if reduction == MEAN and R else 1.0)


def _composite_probs_backward(grad, log_probs, target, weight, reduction, label_smoothing, need_input, need_target):
    C = _classes(log_probs.shape)
    dtype = _opmath(log_probs.dtype)
    lp = _rows(log_probs, C).to(dtype)
    R = lp.shape[0]
    g, alpha = _upstream_rows(grad, reduction, R, dtype)
    g = (g * alpha).reshape(-1, 1) if g.dim() else g * alpha
    w = None if weight is None else weight.to(dtype)
    eps = label_smoothing if label_smoothing > 0.0 else 0.0
    gz = gt = log_probs.new_empty(0)
    if need_input:
        wt = _probs_terms(_rows(target, C).to(dtype), w, eps, C)
        gz = _unrows((g * (wt.sum(1, keepdim=True) * lp.exp() - wt)).to(log_probs.dtype).contiguous(), log_probs.shape)
    if need_target:
        gl = lp if w is None else lp * w
        gt = _unrows((gl * (-(1.0 - eps) * g)).to(log_probs.dtype).contiguous(), log_probs.shape)
    return gz, gt


def _fake_probs_backward(grad, log_probs, target, weight, reduction, label_smoothing, need_input, need_target):
    mk = lambda need: _empty_rows_like(log_probs.shape, log_probs.dtype, log_probs.device) if need else log_probs.new_empty(0)
    return mk(need_input), mk(need_target)


# --------------------------------------------------------------------------------------
# CPU: the C kernels
# --------------------------------------------------------------------------------------
_C_ROWS = _c.function("ce_rows")
_C_WSUM = _c.function("ce_weight_sum")
_C_PROBS = _c.function("ce_probs")
_C_PROBS_BW = _c.function("ce_probs_backward")


def _c_rows(z: Tensor, t: Tensor, w: Tensor | None, scale: Tensor | None, alpha: float, g: Tensor | None,
            ignore_index: int, eps: float, reduce_by: float | None = None):
    """Run the C rows kernel on contiguous ``z`` (R, C) and int64 ``t``; ``g`` may be ``z``.
    Returns the loss rows, or with ``reduce_by`` the 0-d ``sum(rows) / reduce_by`` (summed by the
    kernel, which then writes no rows); raises torch's IndexError for a bad target."""
    R, C = z.shape
    step = 0 if scale is None or scale.dim() == 0 else 1
    if reduce_by is None:
        out = torch.empty(R, dtype=z.dtype)
        loss, total, reduce_by = out.data_ptr(), None, 1.0
    else:
        out = torch.empty((), dtype=z.dtype)
        loss, total = None, out.data_ptr()
    bad = _C_ROWS[z.dtype](z.data_ptr(), t.data_ptr(), _c.ptr(w), _c.ptr(scale), step, alpha, _c.ptr(g), loss,
                           total, reduce_by, C, ignore_index, max(eps, 0.0), R)
    if bad >= 0:
        raise _out_of_bounds(int(t[bad]))
    return out


def _cpu_cross_entropy(input, target, weight, reduction, ignore_index, label_smoothing):
    two_d = input.dim() == 2
    C = _classes(input.shape)
    dtype = _opmath(input.dtype)
    z = (input if two_d else _rows(input, C)).to(dtype).contiguous()
    fresh = z.data_ptr() != input.data_ptr()  # a copy (K-dim, 16-bit or strided input) is ours
    t = (target if target.dim() == 1 else target.reshape(-1)).contiguous()
    w = None if weight is None else weight.to(dtype).contiguous()
    alpha, reduce_by = 1.0, None
    if reduction == MEAN:
        reduce_by = _C_WSUM[dtype](t.data_ptr(), _c.ptr(w), C, ignore_index, t.shape[0])
        alpha = 1.0 / reduce_by if reduce_by else 0.0
    elif reduction == SUM:
        reduce_by = 1.0
    g = z if fresh else torch.empty_like(z)  # our own copy: the gradient overwrites it
    loss = _c_rows(z, t, w, None, alpha, g, ignore_index, label_smoothing, reduce_by)
    if reduction == NONE:
        loss = loss.view(target.shape)
    if dtype is not input.dtype:
        loss, g = loss.to(input.dtype), g.to(input.dtype)
    return loss, (g if two_d else _unrows(g, input.shape))


def _cpu_rows_(logits, target, weight, scale, ignore_index, label_smoothing):
    if logits.dtype not in _c.SUFFIX:
        return _composite_rows_(logits, target, weight, scale, ignore_index, label_smoothing)
    z = logits.contiguous()
    t = target.contiguous()
    w = None if weight is None else weight.to(z.dtype).contiguous()
    s = None if scale is None else scale.to(z.dtype).contiguous()
    loss = _c_rows(z, t, w, s, 1.0, z, ignore_index, label_smoothing)
    if z.data_ptr() != logits.data_ptr():
        logits.copy_(z)
    return loss


def _cpu_probs(input, target, weight, reduction, label_smoothing):
    C = _classes(input.shape)
    out = torch.promote_types(input.dtype, target.dtype)
    dtype = _opmath(out)
    z = _rows(input, C).to(dtype).contiguous()
    t = _rows(target, C).to(dtype).contiguous()
    w = None if weight is None else weight.to(dtype).contiguous()
    R = z.shape[0]
    lp = torch.empty_like(z)
    loss = torch.empty(R, dtype=dtype)
    fn = _C_PROBS[dtype]
    eps = label_smoothing if label_smoothing > 0.0 else 0.0
    fn(z.data_ptr(), t.data_ptr(), _c.ptr(w), lp.data_ptr(), loss.data_ptr(), C, eps, R)
    shape = input.shape[:1] + input.shape[2:] if input.dim() >= 2 else ()
    return _reduced(loss, reduction, R, shape, out), _unrows(lp.to(out), input.shape)


def _cpu_probs_backward(grad, log_probs, target, weight, reduction, label_smoothing, need_input, need_target):
    C = _classes(log_probs.shape)
    dtype = _opmath(log_probs.dtype)
    lp = _rows(log_probs, C).to(dtype).contiguous()
    R = lp.shape[0]
    t = _rows(target, C).to(dtype).contiguous()
    w = None if weight is None else weight.to(dtype).contiguous()
    g, alpha = _upstream_rows(grad, reduction, R, dtype)
    g = g.contiguous()
    step = 1 if g.dim() else 0
    gz = torch.empty_like(lp) if need_input else None
    gt = torch.empty_like(lp) if need_target else None
    fn = _C_PROBS_BW[dtype]
    eps = label_smoothing if label_smoothing > 0.0 else 0.0
    if need_input or need_target:
        fn(g.data_ptr(), step, alpha, lp.data_ptr(), t.data_ptr(), _c.ptr(w), _c.ptr(gz), _c.ptr(gt), C, eps, R)
    mk = lambda x: log_probs.new_empty(0) if x is None else _unrows(x.to(log_probs.dtype), log_probs.shape)
    return mk(gz), mk(gt)


# --------------------------------------------------------------------------------------
# CUDA: the Triton kernels
# --------------------------------------------------------------------------------------
def _cuda_cross_entropy(input, target, weight, reduction, ignore_index, label_smoothing):
    from torchff.kernels.triton import cross_entropy as tk

    C = _classes(input.shape)
    z = _rows(input, C)
    t = target.reshape(-1)
    denom = tk.ce_weight_sum(t, weight, C, ignore_index) if reduction == MEAN else None
    g = torch.empty(z.shape, dtype=input.dtype, device=input.device)
    loss = tk.ce_rows(z, t, weight, None, g, denom, ignore_index, label_smoothing)
    if reduction == NONE:
        out = loss.view(target.shape).to(input.dtype)
    else:
        out = tk.ce_sum(loss, denom, input.dtype)
    return out, _unrows(g, input.shape)


def _cuda_rows_(logits, target, weight, scale, ignore_index, label_smoothing):
    from torchff.kernels.triton import cross_entropy as tk

    return tk.ce_rows(logits, target, weight, scale, logits, None, ignore_index, label_smoothing).to(logits.dtype)


def _cuda_probs(input, target, weight, reduction, label_smoothing):
    from torchff.kernels.triton import cross_entropy as tk

    C = _classes(input.shape)
    out = torch.promote_types(input.dtype, target.dtype)
    z, t = _rows(input, C), _rows(target, C)
    lp = torch.empty(z.shape, dtype=out, device=input.device)
    loss = tk.ce_probs(z, t, weight, lp, label_smoothing)
    R = z.shape[0]
    shape = input.shape[:1] + input.shape[2:] if input.dim() >= 2 else ()
    if reduction == NONE:
        res = loss.view(shape).to(out)
    else:
        res = tk.ce_sum(loss, None, out, (1.0 / R if R else float("nan")) if reduction == MEAN else 1.0)
    return res, _unrows(lp, input.shape)


def _cuda_probs_backward(grad, log_probs, target, weight, reduction, label_smoothing, need_input, need_target):
    from torchff.kernels.triton import cross_entropy as tk

    C = _classes(log_probs.shape)
    lp, t = _rows(log_probs, C), _rows(target, C)
    R = lp.shape[0]
    g, alpha = _upstream_rows(grad, reduction, R, torch.float32)
    gz = torch.empty(lp.shape, dtype=log_probs.dtype, device=lp.device) if need_input else None
    gt = torch.empty(lp.shape, dtype=log_probs.dtype, device=lp.device) if need_target else None
    if need_input or need_target:
        tk.ce_probs_backward(g, alpha, lp, t, weight, gz, gt, label_smoothing)
    mk = lambda x: log_probs.new_empty(0) if x is None else _unrows(x, log_probs.shape)
    return mk(gz), mk(gt)


# --------------------------------------------------------------------------------------
# vmap rules
# --------------------------------------------------------------------------------------
def _loop_rule(name: str, n_outputs: int):
    """A vmap rule that runs ``torchff::<name>`` once per batch element (torch's fallback,
    without its performance warning), for the batched forms that are not one call."""

    def rule(info, in_dims, *args):
        op = getattr(torch.ops.torchff, name).default
        outs = []
        for b in range(info.batch_size):
            sl = [a.select(d, b) if isinstance(a, Tensor) and d is not None else a for a, d in zip(args, in_dims)]
            outs.append(op(*sl))
        return tuple(torch.stack([o[i] for o in outs]) for i in range(n_outputs)), (0,) * n_outputs

    return rule


def _cross_entropy_vmap(info, in_dims, input, target, weight, reduction, ignore_index, label_smoothing):
    di, dt, dw = in_dims[:3]
    if dw is not None or reduction == MEAN:
        return _loop_rule("cross_entropy", 2)(info, in_dims, input, target, weight, reduction, ignore_index, label_smoothing)
    B = info.batch_size
    x = input.movedim(di, 0) if di is not None else input.expand(B, *input.shape)
    t = target.movedim(dt, 0) if dt is not None else target.expand(B, *target.shape)
    # the batch becomes more rows: (B, C) for unbatched inputs, (B * N, C, ...) otherwise
    xm = x.reshape(B, x.shape[1]) if x.dim() == 2 else x.reshape(B * x.shape[1], *x.shape[2:])
    loss, g = cross_entropy(xm, t.reshape(-1) if x.dim() == 2 else t.reshape(B * t.shape[1], *t.shape[2:]),
                            weight, NONE, ignore_index, label_smoothing)
    loss = loss.reshape(t.shape)
    if reduction == SUM:
        loss = loss.reshape(B, -1).sum(1)
    return (loss, g.reshape(x.shape)), (0, 0)


# --------------------------------------------------------------------------------------
# the ops
# --------------------------------------------------------------------------------------
_cpu = _C_ROWS is not None
cross_entropy = define(
    "cross_entropy(Tensor input, Tensor target, Tensor? weight, int reduction, int ignore_index, "
    "float label_smoothing) -> (Tensor, Tensor)",
    composite=_composite_cross_entropy,
    fake=_fake_cross_entropy,
    cpu=_cpu_cross_entropy if _cpu else None,
    cuda=_cuda_cross_entropy,
    vmap=_cross_entropy_vmap,
)
#: the composite of ``cross_entropy`` as a plain function: what ``torch.compile`` traces in its
#: place (``torchff.autograd.cross_entropy``), so that the compiler sees the torch ops and fuses them
composite_cross_entropy = _composite_cross_entropy
cross_entropy_rows_ = define(
    "cross_entropy_rows_(Tensor(a!) logits, Tensor target, Tensor? weight, Tensor? scale, int ignore_index, "
    "float label_smoothing) -> Tensor",
    composite=_composite_rows_,
    fake=_fake_rows_,
    cpu=_cpu_rows_ if _cpu else None,
    cuda=_cuda_rows_,
)
cross_entropy_probs = define(
    "cross_entropy_probs(Tensor input, Tensor target, Tensor? weight, int reduction, float label_smoothing) "
    "-> (Tensor, Tensor)",
    composite=_composite_probs,
    fake=_fake_probs,
    cpu=_cpu_probs if _cpu else None,
    cuda=_cuda_probs,
    vmap=_loop_rule("cross_entropy_probs", 2),
)
cross_entropy_probs_backward = define(
    "cross_entropy_probs_backward(Tensor grad, Tensor log_probs, Tensor target, Tensor? weight, int reduction, "
    "float label_smoothing, bool need_input, bool need_target) -> (Tensor, Tensor)",
    composite=_composite_probs_backward,
    fake=_fake_probs_backward,
    cpu=_cpu_probs_backward if _cpu else None,
    cuda=_cuda_probs_backward,
    vmap=_loop_rule("cross_entropy_probs_backward", 2),
)
