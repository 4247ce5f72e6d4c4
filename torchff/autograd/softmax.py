r"""Softmax and log-softmax, the multinoulli output unit, as autograd Functions.

Both are computed as :math:`\mathrm{softmax}(z - \max_j z_j)` (the shift leaves the value
unchanged and keeps every exponent :math:`\le 0`, so nothing overflows), by torch's fused kernels
(``aten::_softmax`` / ``_log_softmax``). No ``torchff::`` op: torch has the one kernel per
direction on every device already, and under ``torch.compile`` inductor sees (and fuses) aten's
ops. Integer and bool inputs raise torch's ``NotImplementedError``.

Each backward has two paths, as everywhere in torchff: torch's fused
``_softmax_backward_data`` / ``_log_softmax_backward_data`` kernels for ordinary backward, and an
out-of-place differentiable formula when ``torch.is_grad_enabled()`` (double backward). Forward
mode (``jvp``) uses the same differentiable formulas on the tangent; it is defined on a subclass
of each core Function; :mod:`torchff.functional` applies the core class (without ``jvp``, which
dynamo can trace) under ``torch.compile``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["SoftmaxFunction", "LogSoftmaxFunction"]


class _Softmax(Function):
    r"""Softmax along ``dim``, :math:`s_i = e^{z_i - m} / \sum_j e^{z_j - m}`, :math:`m = \max_j z_j`.

    Backward (vector-Jacobian product with the cotangent :math:`g`):
    :math:`\partial L/\partial z_i = s_i \,(g_i - \sum_j g_j s_j)`.

    Forward mode: :math:`\dot s_i = s_i (\dot z_i - \sum_j \dot z_j s_j)`. Smooth: no kink.

    Saved for backward: the output, as torch's ``softmax`` (4 bytes per float32 element). In-place
    changes to the output before backward are caught by autograd's version counter, as torch's.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, dim: int) -> Tensor:
        return torch.softmax(input, dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.dim = inputs[1]
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return out * (grad - (grad * out).sum(ctx.dim, keepdim=True)), None
        return torch._softmax_backward_data(grad, out, ctx.dim, out.dtype), None


class SoftmaxFunction(_Softmax):
    __doc__ = _Softmax.__doc__

    @staticmethod
    def jvp(ctx, tangent: Tensor, _dim):
        (out,) = ctx.saved_tensors
        return out * (tangent - (tangent * out).sum(ctx.dim, keepdim=True))


class _LogSoftmax(Function):
    r"""Log-softmax along ``dim``, :math:`\ell_i = (z_i - m) - \log \sum_j e^{z_j - m}`.

    Backward: :math:`\partial L/\partial z_i = g_i - e^{\ell_i} \sum_j g_j`.

    Forward mode: :math:`\dot \ell_i = \dot z_i - \sum_j e^{\ell_j} \dot z_j`. Smooth: no kink.

    Saved for backward: the output, as torch's ``log_softmax`` (4 bytes per float32 element).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, dim: int) -> Tensor:
        return torch.log_softmax(input, dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.dim = inputs[1]
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return grad - torch.exp(out) * grad.sum(ctx.dim, keepdim=True), None
        return torch._log_softmax_backward_data(grad, out, ctx.dim, out.dtype), None


class LogSoftmaxFunction(_LogSoftmax):
    __doc__ = _LogSoftmax.__doc__

    @staticmethod
    def jvp(ctx, tangent: Tensor, _dim):
        (out,) = ctx.saved_tensors
        return tangent - (torch.exp(out) * tangent).sum(ctx.dim, keepdim=True)
