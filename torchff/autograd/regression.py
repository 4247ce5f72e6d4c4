r"""Costs of linear output units: Gaussian and Laplace negative log-likelihoods, as autograd Functions.

A linear output unit :math:`\hat y = W^\top h + b` parameterises the mean (Gaussian) or the median
(Laplace) of the output distribution; maximum likelihood then gives

* Gaussian :math:`\mathcal N(y; \hat y, I)`: :math:`\tfrac12\lVert y - \hat y\rVert^2` + const, the
  mean squared error (``MSELossFunction``);
* Gaussian with a learned variance :math:`\sigma^2`:
  :math:`\tfrac12(\log\sigma^2 + (y - \hat y)^2/\sigma^2)` (``GaussianNLLFunction``);
* Laplace :math:`(y; \hat y, b)`: :math:`|y - \hat y|/b + \log 2b`, the absolute error for a fixed
  scale (``L1LossFunction``, ``LaplaceNLLFunction``).

Every Function here returns the residual :math:`d = \hat y - y` as a second output and saves it,
instead of the input and the target (torch keeps both, or more): one tensor per element instead of
two or three. Because the residual is an *output* of the Function, the saved copy stays connected
to the graph, so double backward is exact. Broadcasting between input, target, weight, variance
and scale is allowed; each gradient is summed back to its argument's shape. 16-bit inputs are
computed in float32. Reductions use torch's enum: 0 = ``'none'``, 1 = ``'mean'``, 2 = ``'sum'``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["MSELossFunction", "L1LossFunction", "GaussianNLLFunction", "LaplaceNLLFunction"]

from torchff.autograd._loss import MEAN, NONE, SUM
from torchff.autograd._loss import compute_dtype as _opmath
from torchff.autograd._loss import reduce as _reduce
from torchff.autograd._loss import result_dtype as _result_dtype
from torchff.autograd._loss import sum_to as _sum_to


_REAL = {torch.complex32: torch.float16, torch.complex64: torch.float32, torch.complex128: torch.float64}


def _real(dtype: torch.dtype) -> torch.dtype:
    """The real dtype of a complex one (``dtype.to_real()``, which dynamo cannot trace)."""
    return _REAL.get(dtype, dtype)


def _residual(input: Tensor, target: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.sub(input.to(dtype), target.to(dtype))


def _weighted_reduce(elements: Tensor, weight: Tensor | None, reduction: int, dtype: torch.dtype) -> Tensor:
    """Reduce per-element losses (a fresh buffer, scaled in place by ``weight``); a weighted mean
    divides by the sum of the weights, as torch's ``mse_loss`` / ``l1_loss`` with ``weight``."""
    if weight is None:
        return _reduce(elements, reduction)
    w = weight.to(dtype)
    elements = elements.mul_(w)
    if reduction == NONE:
        return elements
    return elements.sum() if reduction == SUM else elements.sum() / w.sum()


def _upstream(grad: Tensor, reduction: int, numel: int, dtype: torch.dtype) -> Tensor:
    """The upstream gradient per element (``grad / numel`` for ``'mean'``)."""
    g = grad.to(dtype)
    return g / numel if reduction == MEAN else g


def _residual_grads(ctx, g_res: Tensor | None, d: Tensor, inputs_shape: tuple, input_dtype, target_dtype):
    """Turn the gradient with respect to the residual into the input's and the target's."""
    if g_res is None:
        return None, None
    gx = _sum_to(g_res, inputs_shape[0]).to(input_dtype) if ctx.needs_input_grad[0] else None
    gy = _sum_to(-g_res, inputs_shape[1]).to(target_dtype) if ctx.needs_input_grad[1] else None
    return gx, gy


def _out_of_place(grad: Tensor) -> bool:
    """Whether backward must use out-of-place ops: under grad mode (double backward), and when the
    incoming gradient is batched by vmap (``is_grads_batched=True``, ``jacobian(vectorize=True)``),
    where an in-place op on an unbatched buffer cannot take a batched operand. Those two use
    torch's legacy vmap, whose ``Batched`` dispatch key has no Python predicate; the function
    transforms (``torch.func``) wrap their tensors as functorch tensors."""
    if torch.is_grad_enabled():
        return True
    if torch.compiler.is_compiling():  # dynamo cannot trace the checks below; a traced grad is not batched
        return False
    return torch._C._functorch.is_functorch_wrapped_tensor(grad) or "Batched" in str(torch._C._dispatch_keys(grad))


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _save_residual(ctx, inputs, output):
    """setup_context of the (weighted) MSE and L1 Functions: the residual, the weight and, for a
    weighted mean, the loss."""
    input, target, weight, reduction = inputs
    ctx.reduction = reduction
    ctx.shapes = (input.shape, target.shape)
    ctx.dtypes = (input.dtype, target.dtype)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(output[1], weight, output[0] if weight is not None and reduction == MEAN else None)


class MSELossFunction(Function):
    r"""Squared error :math:`d^2`, :math:`d = x - y`, optionally weighted: :math:`w d^2`.

    ``forward(input, target, weight, reduction) -> (loss, residual)``. ``'mean'`` divides by the
    number of elements, or by :math:`\sum w` with a weight (torch's ``mse_loss``).

    Backward: :math:`\partial/\partial x = 2 w d`, :math:`\partial/\partial y = -2 w d`,
    :math:`\partial/\partial w = d^2` (for weighted ``'mean'``: :math:`(d^2 - J)/\sum w`), times
    the upstream gradient (divided by the element count for unweighted ``'mean'``).

    Saved for backward: the residual (4 bytes per float32 element; torch keeps input and target,
    8) and the weight.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight: Tensor | None, reduction: int):
        dtype = _opmath(_result_dtype(input, target, weight))
        d = _residual(input, target, dtype)
        loss = _weighted_reduce(d * d, weight, reduction, dtype)
        return loss.to(_result_dtype(input, target, weight)), d

    setup_context = staticmethod(_save_residual)

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_res: Tensor | None):
        d, weight, loss = ctx.saved_tensors
        g_res = grad_res
        grad_w = None
        if grad is not None:
            if weight is None:
                g = _upstream(grad, ctx.reduction, d.numel(), d.dtype)
                g_res = _add(g_res, d * (2 * g))
            else:
                w = weight.to(d.dtype)
                g = grad.to(d.dtype)
                if ctx.reduction == MEAN:
                    g = g / w.sum()
                g_res = _add(g_res, d * w * (2 * g))
                if ctx.needs_input_grad[2]:
                    grad_w = _sum_to(d * d * g, weight.shape)
                    if ctx.reduction == MEAN:
                        grad_w = grad_w - loss.to(d.dtype) * g
                    grad_w = grad_w.to(weight.dtype)
        gx, gy = _residual_grads(ctx, g_res, d, ctx.shapes, *ctx.dtypes)
        return gx, gy, grad_w, None


class L1LossFunction(Function):
    r"""Absolute error :math:`|d|`, :math:`d = x - y`, optionally weighted: :math:`w |d|`.

    ``forward(input, target, weight, reduction) -> (loss, residual)``; ``'mean'`` as
    :class:`MSELossFunction`. Backward: :math:`\partial/\partial x = w\,\mathrm{sgn}(d)` (0 at
    :math:`d = 0`, as torch's ``abs``), :math:`\partial/\partial w = |d|` (weighted ``'mean'``:
    :math:`(|d| - J)/\sum w`).

    Saved for backward: the residual (4 bytes per float32 element, as torch) and the weight.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight: Tensor | None, reduction: int):
        dtype = _opmath(_result_dtype(input, target, weight))
        d = _residual(input, target, dtype)
        loss = _weighted_reduce(d.abs(), weight, reduction, _real(dtype))
        return loss.to(_real(_result_dtype(input, target, weight))), d  # real for complex, as torch

    setup_context = staticmethod(_save_residual)

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_res: Tensor | None):
        d, weight, loss = ctx.saved_tensors
        g_res = grad_res
        grad_w = None
        if grad is not None:
            if weight is None:
                g = _upstream(grad, ctx.reduction, d.numel(), d.dtype)
                g_res = _add(g_res, torch.sgn(d) * g if _out_of_place(g) else torch.sgn(d).mul_(g))
            else:
                w = weight.to(d.dtype)
                g = grad.to(d.dtype)
                if ctx.reduction == MEAN:
                    g = g / w.sum()
                g_res = _add(g_res, torch.sgn(d) * w * g)
                if ctx.needs_input_grad[2]:
                    grad_w = _sum_to(d.abs() * g, weight.shape)
                    if ctx.reduction == MEAN:
                        grad_w = grad_w - loss.to(d.dtype) * g
                    grad_w = grad_w.to(weight.dtype)
        gx, gy = _residual_grads(ctx, g_res, d, ctx.shapes, *ctx.dtypes)
        return gx, gy, grad_w, None


def _clamped(t: Tensor, eps: float) -> Tensor:
    """``max(t, eps)`` whose derivative is 1 everywhere (no gradient through the clamp), as torch's
    ``gaussian_nll_loss`` clamps its variance in place under ``no_grad``."""
    c = t.clamp_min(eps)
    if torch.is_grad_enabled() and t.requires_grad:
        return t + (c - t).detach()
    return c


def _save_residual_and_spread(ctx, inputs, output):
    """setup_context of the Gaussian and Laplace NLL Functions: the residual and the spread
    (variance or scale), and the element count a mean divides by (the broadcast shape)."""
    input, target, spread, full, eps, reduction = inputs
    ctx.eps, ctx.reduction = eps, reduction
    ctx.shapes = (input.shape, target.shape)
    ctx.dtypes = (input.dtype, target.dtype)
    ctx.numel = output[0].numel() if reduction == NONE else torch.broadcast_shapes(output[1].shape, spread.shape).numel()
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(output[1], spread)


class GaussianNLLFunction(Function):
    r"""Gaussian negative log-likelihood with a variance, :math:`\tfrac12(\log v + d^2/v)`
    (:math:`+\tfrac12\log 2\pi` with ``full``), :math:`d = x - y`, :math:`v = \max(\text{var}, \text{eps})`.

    ``forward(input, target, var, full, eps, reduction) -> (loss, residual)``; ``var`` broadcasts
    against the residual. The clamp passes no gradient of its own: the gradient with respect to
    ``var`` is the derivative at :math:`v`, also where ``var < eps`` (torch's convention).

    Backward: :math:`\partial/\partial x = d/v`, :math:`\partial/\partial y = -d/v`,
    :math:`\partial/\partial \text{var} = \tfrac12 (1/v - d^2/v^2)`.

    Saved for backward: the residual (4 bytes per float32 element) and ``var`` (an input); torch
    keeps three element-sized tensors.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, var: Tensor, full: bool, eps: float, reduction: int):
        out_dtype = _result_dtype(input, target, var)
        dtype = _opmath(out_dtype)
        d = _residual(input, target, dtype)
        v = var.to(dtype).clamp_min(eps)
        loss = torch.log(v) + d * d / v
        if full:
            loss = loss.add_(math.log(2 * math.pi))
        return _reduce(loss.mul_(0.5), reduction).to(out_dtype), d

    setup_context = staticmethod(_save_residual_and_spread)

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_res: Tensor | None):
        d, var = ctx.saved_tensors
        g_res = grad_res
        grad_var = None
        if grad is not None:
            g = _upstream(grad, ctx.reduction, ctx.numel, d.dtype)
            v = _clamped(var.to(d.dtype), ctx.eps)
            if _out_of_place(g):
                dv = d / v
                g_res = _add(g_res, _sum_to(dv * g, d.shape))
                if ctx.needs_input_grad[2]:
                    grad_var = (1 / v - dv * dv) * (0.5 * g)
            else:  # dv has the full broadcast shape, so the in-place ops below fit
                dv = d / v
                if ctx.needs_input_grad[2]:
                    grad_var = (dv * dv).neg_().add_(torch.reciprocal(v)).mul_(0.5 * g)
                g_res = _add(g_res, _sum_to(dv.mul_(g), d.shape))
            if grad_var is not None:
                grad_var = _sum_to(grad_var, var.shape).to(var.dtype)
        gx, gy = _residual_grads(ctx, g_res, d, ctx.shapes, *ctx.dtypes)
        return gx, gy, grad_var, None, None, None


class LaplaceNLLFunction(Function):
    r"""Laplace negative log-likelihood with a scale, :math:`|d|/b + \log b` (:math:`+\log 2` with
    ``full``), :math:`d = x - y`, :math:`b = \max(\text{scale}, \text{eps})`.

    ``forward(input, target, scale, full, eps, reduction) -> (loss, residual)``; the clamp passes
    no gradient of its own, as in :class:`GaussianNLLFunction`. Its minimiser in :math:`x` is the
    conditional median.

    Backward: :math:`\partial/\partial x = \mathrm{sgn}(d)/b` (0 at :math:`d = 0`),
    :math:`\partial/\partial y = -\mathrm{sgn}(d)/b`, :math:`\partial/\partial \text{scale} =
    1/b - |d|/b^2`.

    Saved for backward: the residual (4 bytes per float32 element) and ``scale`` (an input).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, scale: Tensor, full: bool, eps: float, reduction: int):
        out_dtype = _result_dtype(input, target, scale)
        dtype = _opmath(out_dtype)
        d = _residual(input, target, dtype)
        b = scale.to(dtype).clamp_min(eps)
        loss = torch.log(b) + d.abs() / b
        if full:
            loss = loss.add_(math.log(2.0))
        return _reduce(loss, reduction).to(out_dtype), d

    setup_context = staticmethod(_save_residual_and_spread)

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_res: Tensor | None):
        d, scale = ctx.saved_tensors
        g_res = grad_res
        grad_scale = None
        if grad is not None:
            g = _upstream(grad, ctx.reduction, ctx.numel, d.dtype)
            b = _clamped(scale.to(d.dtype), ctx.eps)
            if _out_of_place(g):
                g_res = _add(g_res, _sum_to(torch.sign(d) / b * g, d.shape))
                if ctx.needs_input_grad[2]:
                    grad_scale = (1 - d.abs() / b) / b * g
            else:  # the divisions give the full broadcast shape, so the in-place ops below fit
                if ctx.needs_input_grad[2]:
                    grad_scale = (d.abs() / b).neg_().add_(1).div_(b).mul_(g)
                g_res = _add(g_res, _sum_to((torch.sign(d) / b).mul_(g), d.shape))
            if grad_scale is not None:
                grad_scale = _sum_to(grad_scale, scale.shape).to(scale.dtype)
        gx, gy = _residual_grads(ctx, g_res, d, ctx.shapes, *ctx.dtypes)
        return gx, gy, grad_scale, None, None, None
