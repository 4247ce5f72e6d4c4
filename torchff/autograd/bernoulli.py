r"""The Bernoulli cost: binary cross-entropy on logits, as an autograd Function.

With a sigmoid output unit :math:`\hat y = \sigma(z)` and a target :math:`y \in [0, 1]`,
maximum likelihood gives, written through softplus :math:`\zeta(x) = \log(1 + e^x)`,

.. math:: J = -y \log \sigma(z) - (1 - y) \log \sigma(-z) = (1 - y)\, z + \zeta(-z)
            = (1 - y)\max(z, 0) + y \max(-z, 0) + \log\big(1 + e^{-|z|}\big),

so :math:`\partial J / \partial z = \sigma(z) - y`: the log undoes the sigmoid's exponent and the
gradient stays close to 1 when the answer is confidently wrong (:math:`y = 1`, :math:`z \ll 0`),
where :math:`\sigma` followed by a squared error saturates. Each of the three terms of the last
form is non-negative for :math:`y \in [0, 1]`, so nothing cancels for large logits, and an
infinite logit gives an infinite loss where the target is not its limit (``z = inf`` with
``y < 1``), as torch.

torch's ``weight`` :math:`w` multiplies each element's loss and ``pos_weight`` :math:`\pi` the
positive term: with :math:`\lambda = 1 + (\pi - 1) y`,
:math:`l = w\,[(1 - y)\max(z,0) + \pi y \max(-z,0) + \lambda \log(1 + e^{-|z|})]`,
:math:`\partial l/\partial z = w\,[\lambda\, \sigma(z) - \pi y]` and
:math:`\partial l/\partial y = w\,[(\pi - 1)\, \zeta(-z) - z]`. Neither weight is differentiable
(as in torch). Reductions use torch's enum (:mod:`torchff.autograd._loss`).

The loss, reduced in the same pass for ``'mean'`` and ``'sum'``, comes from one op,
``torch.ops.torchff.bce_with_logits``, and the gradients (input and target in one pass, the
mean's :math:`1/n` applied there) from ``torchff::bce_with_logits_backward`` when grad mode is off;
with grad mode on (double backward) the backward is the same formula in torch ops
(:mod:`torchff.kernels.losses`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.autograd._loss import MEAN, mean_scale, reduce, sum_to
from torchff.kernels import losses as _ops

__all__ = ["BCEWithLogitsFunction"]


def _grads(ctx, grad: Tensor, need_z: bool, need_y: bool):
    input, target, weight, pos_weight = ctx.saved_tensors
    scale = mean_scale(ctx.count) if ctx.reduction == MEAN else 1.0
    if torch.is_grad_enabled() or ctx.traced:  # torch ops: differentiable (double backward), compiled
        gz, gy = _ops._bce_backward_composite(grad, input, target, weight, pos_weight, scale, need_z, need_y)
    else:
        gz, gy = _ops.bce_with_logits_backward(grad, input, target, weight, pos_weight, scale, need_z, need_y)
    return (sum_to(gz, input.shape) if need_z else None), (sum_to(gy, target.shape) if need_y else None)


class _BCEWithLogits(Function):
    r"""Binary cross-entropy on logits, :math:`(1-y)\max(z,0) + y\max(-z,0) + \log(1 + e^{-|z|})`,
    with torch's ``weight`` and ``pos_weight``; see the module docstring for the formulas.

    ``forward(input, target, weight, pos_weight, reduction)``; the result has the target's dtype,
    as torch's; 16-bit inputs are computed in float32.

    Backward: :math:`\partial J/\partial z = w\,[(1 + (\pi - 1) y)\,\sigma(z) - \pi y]` (just
    :math:`\sigma(z) - y` without weights) and :math:`\partial J/\partial y = w\,[(\pi-1)\zeta(-z) - z]`,
    both from one pass over the inputs. Forward mode: the same derivatives times the tangents.

    Saved for backward: the logits and the target (and the weights), the inputs, as torch
    (8 bytes per float32 element).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight: Tensor | None, pos_weight: Tensor | None, reduction: int):
        return _ops.bce_with_logits(input, target, weight, pos_weight, reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, target, weight, pos_weight, reduction = inputs
        ctx.reduction = reduction
        ctx.traced = False  # (the compile twin's setup_context sets it)
        ctx.count = input.numel()
        ctx.save_for_backward(input, target, weight, pos_weight)
        ctx.save_for_forward(input, target, weight, pos_weight)

    @staticmethod
    def backward(ctx, grad: Tensor):
        gz, gy = _grads(ctx, grad, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return gz, gy, None, None, None


class _BCEWithLogitsTraced(_BCEWithLogits):
    """:class:`_BCEWithLogits` for ``torch.compile``: forward and backward in torch ops (the ops'
    composites), which the compiler fuses with the reduction and its neighbours where the op
    would be one opaque call."""

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight: Tensor | None, pos_weight: Tensor | None, reduction: int):
        return _ops._bce_composite(input, target, weight, pos_weight, reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _BCEWithLogits.setup_context(ctx, inputs, output)
        ctx.traced = True


class BCEWithLogitsFunction(_BCEWithLogits):
    __doc__ = _BCEWithLogits.__doc__

    @staticmethod
    def jvp(ctx, input_t, target_t, _weight_t, _pos_weight_t, _reduction):
        input, target, weight, pos_weight = ctx.saved_tensors
        out = None
        if input_t is not None:
            out = _ops._bce_backward_composite(input_t, input, target, weight, pos_weight, 1.0, True, False)[0]
        if target_t is not None:
            t = _ops._bce_backward_composite(target_t, input, target, weight, pos_weight, 1.0, False, True)[1]
            out = t if out is None else out + t
        return reduce(out, ctx.reduction).to(target.dtype)
