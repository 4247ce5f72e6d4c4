r"""The elementwise losses as ``torchff::`` ops: binary cross-entropy on logits and the
regression losses (MSE, L1, Gaussian and Laplace NLL), each one pass forward and one backward.

* ``bce_with_logits(Tensor input, Tensor target, Tensor? weight, Tensor? pos_weight,
  int reduction) -> Tensor``: the loss
  :math:`w\,[(1-y)\max(z,0) + \pi y \max(-z,0) + (1 + (\pi-1)y)\log(1+e^{-|z|})]` in the
  target's dtype (torch's result dtype): the elements for ``reduction`` :data:`NONE`, else their
  0-d sum (:data:`SUM`) or mean (:data:`MEAN`), reduced in the same pass (no element-sized
  output is written).
* ``bce_with_logits_backward(Tensor grad, Tensor input, Tensor target, Tensor? weight,
  Tensor? pos_weight, float scale, bool input_grad, bool target_grad) -> (Tensor, Tensor)``:
  :math:`s\,g\,w\,[(1+(\pi-1)y)\sigma(z) - \pi y]` in the input's dtype and
  :math:`s\,g\,w\,[(\pi-1)\zeta(-z) - z]` in the target's, :math:`s` = ``scale`` (:math:`1/n`
  for a mean); a gradient not asked for is an empty tensor.
* ``regression(Tensor input, Tensor target, Tensor? spread, int kind, bool full, float eps,
  int reduction) -> Tensor``: the loss of the residual :math:`d = x - y`, as elements or reduced
  in the same pass as for BCE; the mean of a weighted MSE / L1 is torch's
  :math:`\sum w e / \sum w`. ``kind``: :data:`MSE` (:math:`a d^2`), :data:`L1`
  (:math:`a |d|`), with ``spread`` the optional weight :math:`a`; :data:`GAUSSIAN`
  (:math:`\tfrac12(\log v + d^2/v)`, :math:`+\tfrac12\log 2\pi` with ``full``) and
  :data:`LAPLACE` (:math:`\log b + |d|/b`, :math:`+\log 2`), ``spread`` the variance / scale,
  clamped at ``eps``.
* ``regression_backward(Tensor grad, Tensor input, Tensor target, Tensor? spread, int kind,
  float eps, float scale, bool spread_grad) -> (Tensor, Tensor)``: ``scale`` times the gradient
  with respect to the residual (in the dtype of ``input - target``; the input's gradient, and
  minus the target's) and, with ``spread_grad``, to the spread (its dtype; at the clamped value,
  the clamp passes the gradient through as torch's ``gaussian_nll_loss``), else an empty tensor.

Every op broadcasts its tensor arguments (the upstream gradient included: a reduced loss passes
its 0-d gradient); element-sized outputs have the broadcast shape and are contiguous. The mean
of an empty loss is nan, as torch's. Arithmetic runs in float32 for float16 / bfloat16 and in the dtype otherwise.

Implementations: the C loops of ``torchff/csrc/losses.c`` on CPU for float32 / float64 (float16
and bfloat16 are computed in float32 by the same loops, as torch's CPU kernels do; inputs are
expanded and made contiguous); the Triton kernels of :mod:`torchff.kernels.triton.losses` on
CUDA for float32 / float16 / bfloat16; the composite of torch ops for every other device and
dtype (complex residuals for ``l1_loss`` and ``laplace_nll_loss``). A vmap rule batches each op
by broadcasting (a reduced loss is reduced per sample). The C loops add a reduction in float64
(vector lanes of the dtype per block of 256, then float64, the threads' chunks in order).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from torchff.kernels import _c, define
from torchff.kernels._common import MEAN, NONE, SUM, as_dtype, broadcast_shape, compute_dtype, result_dtype

__all__ = [
    "MSE",
    "L1",
    "GAUSSIAN",
    "LAPLACE",
    "bce_with_logits",
    "bce_with_logits_backward",
    "regression",
    "regression_backward",
]

#: ``kind`` of :func:`regression`
MSE, L1, GAUSSIAN, LAPLACE = 0, 1, 2, 3

_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


def _real(dtype: torch.dtype) -> torch.dtype:
    return dtype.to_real() if dtype.is_complex else dtype


def _none_like(t: Tensor) -> Tensor:
    """The placeholder for a gradient not asked for."""
    return t.new_empty(0)


def _weighted(kind: int, spread: Tensor | None) -> bool:
    """MSE / L1 with a weight: a mean divides by the weights' sum, as torch's."""
    return spread is not None and kind in (MSE, L1)


def _reduced(elements: Tensor, reduction: int, dtype: torch.dtype, weight: Tensor | None = None) -> Tensor:
    """The loss in ``dtype``: the elements, contiguous, for ``NONE``; else their 0-d sum or mean
    (taken in the elements' dtype, the compute dtype), for a ``weight`` the weighted mean
    ``sum / sum(weight)``, both sums in that dtype (no float16 overflow between them)."""
    if reduction == NONE:
        return elements.to(dtype).contiguous()
    if reduction == SUM:
        return elements.sum().to(dtype)
    if weight is None:
        return elements.mean().to(dtype)
    return (elements.sum() / weight.sum(dtype=elements.dtype)).to(dtype)


# --------------------------------------------------------------------------------------
# composite (every device; the reference the kernels are tested against)
# --------------------------------------------------------------------------------------
def _bce_elements(z: Tensor, y: Tensor, w: Tensor | None, pw: Tensor | None) -> Tensor:
    L = torch.log1p(torch.exp(-z.abs()))
    rp, rn = torch.clamp_min(z, 0), torch.clamp_min(-z, 0)
    if pw is None:
        out = (1 - y) * rp + y * rn + L
    else:
        out = (1 - y) * rp + pw * y * rn + (1 + (pw - 1) * y) * L
    return out if w is None else out * w


def _bce_composite(input, target, weight, pos_weight, reduction):
    c = compute_dtype(result_dtype(input, target, weight, pos_weight))
    cast = [None if t is None else t.to(c) for t in (input, target, weight, pos_weight)]
    out = _bce_elements(*cast).expand(broadcast_shape(input, target, weight, pos_weight))
    return _reduced(out, reduction, target.dtype)


def _bce_backward_composite(grad, input, target, weight, pos_weight, scale, input_grad, target_grad):
    c = compute_dtype(result_dtype(input, target, weight, pos_weight))
    g, z, y = grad.to(c), input.to(c), target.to(c)
    if scale != 1.0:
        g = g * scale
    w = None if weight is None else weight.to(c)
    pw = None if pos_weight is None else pos_weight.to(c)
    gw = g if w is None else g * w
    shape = broadcast_shape(grad, input, target, weight, pos_weight)
    gz = gy = None
    if input_grad:
        s = torch.sigmoid(z)
        d = s - y if pw is None else (1 + (pw - 1) * y) * s - pw * y
        gz = (gw * d).expand(shape).to(input.dtype).contiguous()
    if target_grad:
        # softplus(-z) = max(-z, 0) + log1p(e^-|z|), exact (torch's softplus is linear beyond 20)
        d = -z if pw is None else (pw - 1) * (torch.clamp_min(-z, 0) + torch.log1p(torch.exp(-z.abs()))) - z
        gy = (gw * d).expand(shape).to(target.dtype).contiguous()
    return (gz if gz is not None else _none_like(input)), (gy if gy is not None else _none_like(target))


def _clamped(a: Tensor, eps: float) -> Tensor:
    """``max(a, eps)``; where autograd records it, with derivative 1 everywhere (the value is the
    clamp's, exactly): the clamp passes no gradient of its own, as in torch's
    ``gaussian_nll_loss``, also for double backward and forward mode."""
    v = torch.clamp_min(a, eps)
    recorded = torch.is_grad_enabled() and a.requires_grad
    if recorded or (not torch.compiler.is_compiling() and torch._C._functorch.is_functorch_wrapped_tensor(a)):
        v = v.detach() + (a - a.detach())
    return v


def _residual(input: Tensor, target: Tensor) -> Tensor:
    """:math:`d = x - y` in the compute dtype of ``input - target``."""
    c = compute_dtype(result_dtype(input, target))
    return input.to(c) - target.to(c)


def _regression_elements(d: Tensor, a: Tensor | None, kind: int, full: bool, eps: float) -> Tensor:
    if kind == MSE:
        e = d * d if not d.is_complex() else (d * d.conj()).real
        return e if a is None else e * a
    if kind == L1:
        e = d.abs()
        return e if a is None else e * a
    v = _clamped(a, eps)
    if kind == GAUSSIAN:
        e = torch.log(v) + d * d / v
        if full:
            e = e + _LOG_2PI
        return 0.5 * e
    e = torch.log(v) + d.abs() / v
    return e + _LOG_2 if full else e


def _regression_composite(input, target, spread, kind, full, eps, reduction, d: Tensor | None = None):
    """The loss; ``d`` is the residual ``_residual(input, target)`` where the caller has it."""
    c = compute_dtype(result_dtype(input, target, spread))
    if d is None:
        d = _residual(input, target)
    a = None if spread is None else spread.to(_real(c))
    loss = _regression_elements(d.to(c) if not d.is_complex() else d, a, kind, full, eps)
    loss = loss.expand(broadcast_shape(input, target, spread))
    return _reduced(loss, reduction, _real(result_dtype(input, target, spread)), spread if _weighted(kind, spread) else None)


def _regression_grads(g: Tensor, d: Tensor, a: Tensor | None, kind: int, eps: float, spread_grad: bool):
    """``(dl/dd, dl/da)`` times ``g`` in torch ops (differentiable; the Functions' double backward)."""
    ga = None
    if kind in (MSE, L1):
        s = 2 * d if kind == MSE else torch.sgn(d)
        gd = g * s if a is None else g * a * s
        if spread_grad:
            ga = g * (d * d if kind == MSE else d.abs())
        return gd, ga
    r = 1 / _clamped(a, eps)  # one division per element; the rest are products
    if kind == GAUSSIAN:
        q = d * r
        gd = g * q
        if spread_grad:
            ga = g * (0.5 * (r - q * q))
        return gd, ga
    gd = g * (torch.sgn(d) * r)  # sgn: d/|d| for a complex residual, sign for a real one
    if spread_grad:
        ga = g * ((1 - d.abs() * r) * r)
    return gd, ga


def _regression_backward_composite(grad, input, target, spread, kind, eps, scale, spread_grad, d: Tensor | None = None):
    """The gradients; ``d`` is the residual ``_residual(input, target)`` where the caller has it
    (``input`` and ``target`` then give only their shapes and dtypes)."""
    res_dtype = result_dtype(input, target)
    c = compute_dtype(result_dtype(grad, input, target, spread))
    g = grad.to(_real(c))
    if scale != 1.0:
        g = g * scale
    if d is None:
        d = _residual(input, target)
    d = d.to(c) if not d.is_complex() else d
    a = None if spread is None else spread.to(_real(c))
    shape = broadcast_shape(grad, input, target, spread)
    gd, ga = _regression_grads(g, d, a, kind, eps, spread_grad)
    gd = gd.expand(shape).to(res_dtype).contiguous()
    ga = ga.expand(shape).to(spread.dtype).contiguous() if ga is not None else _none_like(input)
    return gd, ga


# --------------------------------------------------------------------------------------
# fake (shapes and dtypes)
# --------------------------------------------------------------------------------------
def _bce_fake(input, target, weight, pos_weight, reduction):
    return target.new_empty(broadcast_shape(input, target, weight, pos_weight) if reduction == NONE else ())


def _bce_backward_fake(grad, input, target, weight, pos_weight, scale, input_grad, target_grad):
    shape = broadcast_shape(grad, input, target, weight, pos_weight)
    return (
        input.new_empty(shape if input_grad else (0,)),
        target.new_empty(shape if target_grad else (0,)),
    )


def _regression_fake(input, target, spread, kind, full, eps, reduction):
    shape = broadcast_shape(input, target, spread) if reduction == NONE else ()
    return input.new_empty(shape, dtype=_real(result_dtype(input, target, spread)))


def _regression_backward_fake(grad, input, target, spread, kind, eps, scale, spread_grad):
    shape = broadcast_shape(grad, input, target, spread)
    ga = spread.new_empty(shape) if spread_grad else input.new_empty(0)
    return input.new_empty(shape, dtype=result_dtype(input, target)), ga


# --------------------------------------------------------------------------------------
# CPU: the C loops
# --------------------------------------------------------------------------------------
_C_BCE = _c.function("bce_with_logits")
_C_BCE_BWD = _c.function("bce_with_logits_backward")
_C_REG = _c.function("regression")
_C_REG_BWD = _c.function("regression_backward")
_C_DTYPES = (torch.float32, torch.float64)


def _full(t: Tensor | None, shape, dtype) -> Tensor | None:
    """``t`` expanded to ``shape``, contiguous, in ``dtype`` (no copy when it already is)."""
    if t is None:
        return None
    if t.shape != shape:
        t = t.expand(shape)
    if t.dtype is not dtype:
        t = t.to(dtype)
    return t.contiguous()


def _grad_arg(grad: Tensor, shape, n: int, dtype) -> tuple[Tensor, int]:
    """The upstream gradient as ``(array, g_full)``: its one element for a reduced loss."""
    if grad.numel() == 1 and n != 1:
        return (grad if grad.dtype is dtype else grad.to(dtype)), 0
    return _full(grad, shape, dtype), 1


def _c_loss(fn, dtype, shape, n: int, reduction: int, args: tuple) -> Tensor:
    """Run a forward loss loop ``fn(out, total, *args, scale, n)``: the elements for ``NONE``;
    else their sum (scale 1) or mean (scale 1/n) as a 0-d tensor."""
    if reduction == NONE:
        out = torch.empty(shape, dtype=dtype)
        if n:
            fn(out.data_ptr(), None, *args, 1.0, n)
        return out
    total = torch.empty((), dtype=dtype)
    fn(None, total.data_ptr(), *args, 1.0 / n if reduction == MEAN else 1.0, n)
    return total


def _bce_cpu(input, target, weight, pos_weight, reduction):
    dtype = compute_dtype(result_dtype(input, target, weight, pos_weight))
    shape = broadcast_shape(input, target, weight, pos_weight)
    n = math.prod(shape)
    if dtype not in _C_DTYPES or (n == 0 and reduction != NONE):
        return _bce_composite(input, target, weight, pos_weight, reduction)
    z, y, w, pw = (_full(t, shape, dtype) for t in (input, target, weight, pos_weight))
    out = _c_loss(_C_BCE[dtype], dtype, shape, n, reduction, (z.data_ptr(), y.data_ptr(), _c.ptr(w), _c.ptr(pw)))
    return as_dtype(out, target.dtype)


def _bce_backward_cpu(grad, input, target, weight, pos_weight, scale, input_grad, target_grad):
    dtype = compute_dtype(result_dtype(grad, input, target, weight, pos_weight))
    if dtype not in _C_DTYPES:
        return _bce_backward_composite(grad, input, target, weight, pos_weight, scale, input_grad, target_grad)
    shape = broadcast_shape(grad, input, target, weight, pos_weight)
    n = math.prod(shape)
    z, y, w, pw = (_full(t, shape, dtype) for t in (input, target, weight, pos_weight))
    g, g_full = _grad_arg(grad, shape, n, dtype)
    gz = torch.empty(shape, dtype=dtype) if input_grad else None
    gy = torch.empty(shape, dtype=dtype) if target_grad else None
    if n and (input_grad or target_grad):
        _C_BCE_BWD[dtype](_c.ptr(gz), _c.ptr(gy), g.data_ptr(), g_full, scale, z.data_ptr(), y.data_ptr(), _c.ptr(w), _c.ptr(pw), n)
    return (
        as_dtype(gz, input.dtype) if gz is not None else _none_like(input),
        as_dtype(gy, target.dtype) if gy is not None else _none_like(target),
    )


def _regression_cpu(input, target, spread, kind, full, eps, reduction):
    out_dtype = result_dtype(input, target, spread)
    dtype = compute_dtype(out_dtype)
    shape = broadcast_shape(input, target, spread)
    n = math.prod(shape)
    mixed = spread is not None and compute_dtype(result_dtype(input, target)) != dtype  # the spread promotes
    if dtype not in _C_DTYPES or mixed or (n == 0 and reduction != NONE):
        return _regression_composite(input, target, spread, kind, full, eps, reduction)
    x, y, a = (_full(t, shape, dtype) for t in (input, target, spread))
    args = (x.data_ptr(), y.data_ptr(), _c.ptr(a), kind, int(full), eps)
    if reduction == MEAN and _weighted(kind, spread):  # the weighted mean: sum / sum(w)
        return as_dtype(_c_loss(_C_REG[dtype], dtype, shape, n, SUM, args) / spread.sum(dtype=dtype), out_dtype)
    return as_dtype(_c_loss(_C_REG[dtype], dtype, shape, n, reduction, args), out_dtype)


def _regression_backward_cpu(grad, input, target, spread, kind, eps, scale, spread_grad):
    res_dtype = result_dtype(input, target)
    dtype = compute_dtype(result_dtype(grad, input, target, spread))
    if dtype not in _C_DTYPES or compute_dtype(res_dtype) != dtype:
        return _regression_backward_composite(grad, input, target, spread, kind, eps, scale, spread_grad)
    shape = broadcast_shape(grad, input, target, spread)
    n = math.prod(shape)
    x, y, a = (_full(t, shape, dtype) for t in (input, target, spread))
    g, g_full = _grad_arg(grad, shape, n, dtype)
    gd = torch.empty(shape, dtype=dtype)
    ga = torch.empty(shape, dtype=dtype) if spread_grad else None
    if n:
        _C_REG_BWD[dtype](gd.data_ptr(), _c.ptr(ga), g.data_ptr(), g_full, scale, x.data_ptr(), y.data_ptr(), _c.ptr(a), kind, eps, n)
    return as_dtype(gd, res_dtype), (as_dtype(ga, spread.dtype) if ga is not None else _none_like(input))


# --------------------------------------------------------------------------------------
# CUDA: the Triton kernels
# --------------------------------------------------------------------------------------
_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _triton_ok(*tensors: Tensor | None) -> bool:
    return all(t is None or t.dtype in _TRITON_DTYPES for t in tensors)


def _bce_cuda(input, target, weight, pos_weight, reduction):
    if not _triton_ok(input, target, weight, pos_weight):
        return _bce_composite(input, target, weight, pos_weight, reduction)
    from torchff.kernels.triton import losses as kernels

    return kernels.bce_with_logits(input, target, weight, pos_weight, reduction)


def _bce_backward_cuda(grad, input, target, weight, pos_weight, scale, input_grad, target_grad):
    if not _triton_ok(grad, input, target, weight, pos_weight):
        return _bce_backward_composite(grad, input, target, weight, pos_weight, scale, input_grad, target_grad)
    from torchff.kernels.triton import losses as kernels

    return kernels.bce_with_logits_backward(grad, input, target, weight, pos_weight, scale, input_grad, target_grad)


def _regression_cuda(input, target, spread, kind, full, eps, reduction):
    if not _triton_ok(input, target, spread):
        return _regression_composite(input, target, spread, kind, full, eps, reduction)
    from torchff.kernels.triton import losses as kernels

    return kernels.regression(input, target, spread, kind, full, eps, reduction)


def _regression_backward_cuda(grad, input, target, spread, kind, eps, scale, spread_grad):
    if not _triton_ok(grad, input, target, spread):
        return _regression_backward_composite(grad, input, target, spread, kind, eps, scale, spread_grad)
    from torchff.kernels.triton import losses as kernels

    return kernels.regression_backward(grad, input, target, spread, kind, eps, scale, spread_grad)


# --------------------------------------------------------------------------------------
# vmap: every op broadcasts, so the batch dim goes in front of the broadcast shape
# --------------------------------------------------------------------------------------
def _broadcast_vmap(op, placeholders=()):
    """A vmap rule for an op broadcasting its tensor arguments: each batched argument gets its
    batch dim at 0 and 1s up to the widest logical rank, so that torch's right-aligned
    broadcasting lines the batch up; unbatched ones pass as they are. ``placeholders`` maps an
    output index to the position of the bool argument that asks for it (an empty, unbatched
    tensor when false)."""

    def rule(info, in_dims, *args):
        rank = max(
            (a.dim() - (d is not None) for a, d in zip(args, in_dims) if isinstance(a, Tensor)),
            default=0,
        )
        moved = []
        for a, d in zip(args, in_dims):
            if isinstance(a, Tensor) and d is not None:
                a = a.movedim(d, 0)
                a = a.reshape(a.shape[0], *([1] * (rank + 1 - a.dim())), *a.shape[1:])
            moved.append(a)
        out = op(*moved)
        dims = tuple(None if i in placeholders and not args[placeholders[i]] else 0 for i in range(len(out)))
        return out, dims

    return rule


def _loss_vmap(op, weight_of=None):
    """The vmap rule of a forward loss op (its last argument the reduction): the batch's loss
    elements from the op with ``NONE``, reduced per sample. ``weight_of(args)`` gives the
    argument position of the weight whose sum a mean divides by (None for a plain mean)."""
    rule = _broadcast_vmap(lambda *a: (op(*a),))

    def batched(info, in_dims, *args):
        (out,), (dim,) = rule(info, in_dims[:-1] + (None,), *args[:-1], NONE)
        reduction = args[-1]
        if reduction == NONE:
            return out, dim
        flat = out.reshape(out.shape[0], -1)
        w = None if weight_of is None else weight_of(args)
        if reduction == SUM or w is None:
            return (flat.sum(1) if reduction == SUM else flat.mean(1)), dim
        weight, wdim = args[w], in_dims[w]
        c = compute_dtype(flat.dtype)
        total = weight.movedim(wdim, 0).reshape(weight.shape[wdim], -1).sum(1, dtype=c) if wdim is not None else weight.sum(dtype=c)
        return (flat.sum(1, dtype=c) / total).to(flat.dtype), dim

    return batched


bce_with_logits = define(
    "bce_with_logits(Tensor input, Tensor target, Tensor? weight, Tensor? pos_weight, int reduction) -> Tensor",
    composite=_bce_composite,
    fake=_bce_fake,
    cpu=_bce_cpu if _C_BCE is not None else None,
    cuda=_bce_cuda,
    vmap=_loss_vmap(lambda *a: bce_with_logits(*a)),
)
bce_with_logits_backward = define(
    "bce_with_logits_backward(Tensor grad, Tensor input, Tensor target, Tensor? weight, Tensor? pos_weight, "
    "float scale, bool input_grad, bool target_grad) -> (Tensor, Tensor)",
    composite=_bce_backward_composite,
    fake=_bce_backward_fake,
    cpu=_bce_backward_cpu if _C_BCE_BWD is not None else None,
    cuda=_bce_backward_cuda,
    vmap=_broadcast_vmap(lambda *a: bce_with_logits_backward(*a), {0: 6, 1: 7}),
)
regression = define(
    "regression(Tensor input, Tensor target, Tensor? spread, int kind, bool full, float eps, int reduction) -> Tensor",
    composite=_regression_composite,
    fake=_regression_fake,
    cpu=_regression_cpu if _C_REG is not None else None,
    cuda=_regression_cuda,
    vmap=_loss_vmap(lambda *a: regression(*a), lambda args: 2 if _weighted(args[3], args[2]) else None),
)
regression_backward = define(
    "regression_backward(Tensor grad, Tensor input, Tensor target, Tensor? spread, int kind, float eps, "
    "float scale, bool spread_grad) -> (Tensor, Tensor)",
    composite=_regression_backward_composite,
    fake=_regression_backward_fake,
    cpu=_regression_backward_cpu if _C_REG_BWD is not None else None,
    cuda=_regression_backward_cuda,
    vmap=_broadcast_vmap(lambda *a: regression_backward(*a), {1: 7}),
)
