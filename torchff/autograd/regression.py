r"""Costs of linear output units: squared and absolute error, Gaussian and Laplace negative
log-likelihoods, as one autograd Function.

A linear output unit :math:`\hat y = W^\top h + b` parameterises the mean (Gaussian) or the median
(Laplace) of the output distribution; maximum likelihood then gives, with the residual
:math:`d = \hat y - y`,

* Gaussian :math:`\mathcal N(y; \hat y, I)`: :math:`d^2` up to scale and a constant, the squared
  error (``kind`` :data:`~torchff.kernels.losses.MSE`), optionally weighted, :math:`w d^2`;
* Gaussian with a learned variance: :math:`\tfrac12(\log v + d^2/v)` (:math:`+\tfrac12\log 2\pi`
  with ``full``), :math:`v = \max(\text{var}, \text{eps})` (``GAUSSIAN``);
* Laplace with unit scale: :math:`|d|` (``L1``), optionally weighted, :math:`w |d|`;
* Laplace with a learned scale: :math:`|d|/b + \log b` (:math:`+\log 2`),
  :math:`b = \max(\text{scale}, \text{eps})` (``LAPLACE``).

Derivatives (times the upstream gradient, divided by the element count for ``'mean'``, or by
:math:`\sum w` for a weighted mean as torch's ``mse_loss`` / ``l1_loss``):

====== ============================ ====================================================
kind   :math:`\partial/\partial d`  :math:`\partial/\partial a` (weight, var or scale)
====== ============================ ====================================================
MSE    :math:`2 w d`                :math:`d^2` (weighted mean: :math:`(d^2 - J)/\sum w`)
L1     :math:`w\,\mathrm{sgn}(d)`   :math:`|d|` (weighted mean: :math:`(|d| - J)/\sum w`)
GNLL   :math:`d / v`                :math:`\tfrac12 (1/v - d^2/v^2)`
LNLL   :math:`\mathrm{sgn}(d) / b`  :math:`(1 - |d|/b)/b`
====== ============================ ====================================================

and :math:`\partial/\partial x = \partial/\partial d = -\partial/\partial y`. The kink of
:math:`|d|` takes :math:`\mathrm{sgn}(0) = 0`, as torch's ``abs``. The clamp at ``eps`` passes
no gradient of its own: the spread's gradient is the derivative at the clamped value, also below
``eps`` (torch's ``gaussian_nll_loss`` convention). Complex inputs give a real loss for ``L1``
and ``LAPLACE`` (:math:`|d|`, with the gradient :math:`\mathrm{sgn}(d) = d/|d|`, as torch's
``l1_loss``); ``mse_loss`` refuses them, as torch's. torch's ``gaussian_nll_loss`` of a complex
residual is the complex number :math:`\tfrac12(\log v + d^2/v)`: :func:`complex_gaussian_nll`
computes it with the same formula in torch ops, so its value and gradients are torch's.

The loss, reduced in the same pass for ``'mean'`` and ``'sum'``, comes from one op,
``torch.ops.torchff.regression``; the gradients with respect to the residual and the spread (the
mean's :math:`1/n` applied there) from one ``regression_backward`` pass over the input and the
target when grad mode is off, and from the same formulas in torch ops when it is on (double
backward).

The Function saves what torch's ``mse_loss`` and ``gaussian_nll_loss`` save: the input, the target
and the spread. They are arguments, kept alive by the caller anyway (the target is a data batch,
the input the output layer's value), so nothing element-sized is allocated for backward, and the
saved input stays connected to the graph for double backward. The Function is private: use
:mod:`torchff.functional`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.autograd._loss import MEAN, SUM, mean_scale, sum_to
from torchff.kernels import losses as _ops
from torchff.kernels.losses import GAUSSIAN, L1, LAPLACE, MSE

__all__ = ["GAUSSIAN", "L1", "LAPLACE", "MSE", "complex_gaussian_nll"]


_weighted = _ops._weighted


def _to(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """``t`` in ``dtype``; a complex gradient of a real argument is its real part."""
    if t is None or t.dtype is dtype:
        return t
    if t.is_complex() and not dtype.is_complex:
        t = t.real
    return t.to(dtype)


def complex_gaussian_nll(input: Tensor, target: Tensor, var: Tensor, full: bool, eps: float, reduction: int) -> Tensor:
    r"""torch's ``gaussian_nll_loss`` of a complex residual :math:`d = x - y` (a complex loss
    :math:`\tfrac12(\log v + d^2/v)`, :math:`v = \max(\text{var}, \text{eps})`, ``var`` real):
    the composite formula of :mod:`torchff.kernels.losses` in torch ops, differentiated by
    autograd's complex rules, as torch's. The op and its kernels compute real losses only.
    A complex ``var`` raises torch's ``NotImplementedError`` from the clamp."""
    elements = _ops._regression_elements(input - target, var, GAUSSIAN, full, eps)
    return _ops._reduced(elements, reduction, elements.dtype)  # unweighted: a plain mean


def _backward(ctx, grad: Tensor | None):
    """The backward of :class:`_Regression` and of its compile twin."""
    if grad is None:
        return None, None, None, None, None, None, None
    input, target, spread, loss, *residual = ctx.saved_tensors
    g, scale = grad, 1.0
    if ctx.reduction == MEAN:
        if loss is not None:
            g = g / spread.sum()
        else:
            scale = mean_scale(ctx.shape.numel())
    need_a = ctx.needs_input_grad[2]
    if torch.is_grad_enabled() or ctx.traced:  # torch ops: double backward, compile
        gd, ga = _ops._regression_backward_composite(g, input, target, spread, ctx.kind, ctx.eps, scale, need_a,
                                                     *residual)
    else:
        gd, ga = _ops.regression_backward(g, input, target, spread, ctx.kind, ctx.eps, scale, need_a)
    g_spread = gx = gy = None
    if need_a:
        if loss is not None:  # weighted mean: the weights' sum depends on the weight too
            ga = ga - loss * g
        g_spread = _to(sum_to(ga, spread.shape), spread.dtype)
    if ctx.needs_input_grad[0]:
        gx = _to(sum_to(gd, input.shape), input.dtype)
    if ctx.needs_input_grad[1]:
        gy = _to(sum_to(-gd, target.shape), target.dtype)
    return gx, gy, g_spread, None, None, None, None


class _Regression(Function):
    r"""The regression losses on the residual :math:`d = x - y`; see the module docstring.

    ``forward(input, target, spread, kind, full, eps, reduction) -> loss``: ``spread`` is the
    optional weight (``MSE``, ``L1``), the variance (``GAUSSIAN``) or the scale (``LAPLACE``); it
    and the target broadcast against the input, and each gradient is summed back to its
    argument's shape. 16-bit inputs are computed in float32.

    Forward mode: the derivatives of the table times the tangents of :math:`d` and the spread.

    Saved for backward: the input, the target and the spread (arguments, as torch's ``mse_loss``;
    no new element-sized tensor), and for a weighted mean the 0-d loss.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, target, spread, kind: int, full: bool, eps: float, reduction: int):
        return _ops.regression(input, target, spread, kind, full, eps, reduction)

    @staticmethod
    def setup_context(ctx, inputs, output, residual=()):
        input, target, spread, kind, full, eps, reduction = inputs
        ctx.kind, ctx.eps, ctx.reduction = kind, eps, reduction
        ctx.traced = bool(residual)  # the compile twin passes its residual
        ctx.out_dtype = output.dtype
        ctx.shape = _ops.broadcast_shape(input, target, spread)
        ctx.set_materialize_grads(False)
        loss = output if _weighted(kind, spread) and reduction == MEAN else None
        ctx.save_for_backward(input, target, spread, loss, *residual)
        ctx.save_for_forward(input, target, spread, loss)

    @staticmethod
    def backward(ctx, grad: Tensor | None):
        return _backward(ctx, grad)


class _RegressionFunction(_Regression):
    __doc__ = _Regression.__doc__

    @staticmethod
    def jvp(ctx, input_t, target_t, spread_t, _kind, _full, _eps, _reduction):
        input, target, spread, loss = ctx.saved_tensors
        d = _ops._residual(input, target)
        if input_t is None and target_t is None:
            d_t = None
        elif target_t is None:
            d_t = input_t
        else:
            d_t = -target_t if input_t is None else input_t - target_t
        out = None
        if d_t is not None:  # d/dt |d| = Re(conj(sgn d) d_t) for a complex residual
            out = _ops._regression_grads(d_t, d.conj() if d.is_complex() else d, spread, ctx.kind, ctx.eps, False)[0]
        if spread_t is not None:
            t = _ops._regression_grads(spread_t, d, spread, ctx.kind, ctx.eps, True)[1]
            out = t if out is None else out + t
        if out is None:
            return None
        if out.is_complex():  # a copy: a tangent with the strides of .real (a view into the
            out = out.real.contiguous()  # complex tensor) trips forward AD's layout assert
        out = out.expand(ctx.shape)
        if ctx.reduction == SUM:
            out = out.sum()
        elif ctx.reduction == MEAN:
            if loss is not None:  # weighted mean: (sum(w e)' - J sum(w)') / sum(w)
                total_t = out.sum() if spread_t is None else out.sum() - loss * spread_t.sum()
                out = total_t / spread.sum()
            else:
                out = out.mean()
        return out.to(ctx.out_dtype)


class _RegressionTraced(_Regression):
    """:class:`_Regression` for ``torch.compile``: forward and backward in torch ops (the op's
    composite and the double-backward formula), which the compiler fuses with the reduction and
    its neighbours where the op would be one opaque call.

    ``forward`` returns ``(loss, d)``, the residual :math:`d = x - y` as a second,
    non-differentiable output that the backward reads: the compiler then keeps the one residual
    its forward loop computes (where it keeps one instead of the input and the target) and writes
    it in the same pass as the reduction, instead of a second pass over the input and the target.
    ``torchff.functional`` returns the loss.
    """

    @staticmethod
    def forward(input, target, spread, kind: int, full: bool, eps: float, reduction: int):
        d = _ops._residual(input, target)
        return _ops._regression_composite(input, target, spread, kind, full, eps, reduction, d), d

    @staticmethod
    def setup_context(ctx, inputs, output):
        loss, d = output
        ctx.mark_non_differentiable(d)
        _Regression.setup_context(ctx, inputs, loss, (d,))

    @staticmethod
    def backward(ctx, grad, _grad_d):
        return _backward(ctx, grad)
