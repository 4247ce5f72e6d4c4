"""Smooth activations: the logistic sigmoid and softplus, as autograd Functions.

Both backwards work from the output alone, which the next layer keeps anyway.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["SigmoidFunction", "SoftplusFunction"]

_aten = torch.ops.aten


class SigmoidFunction(Function):
    r"""Logistic sigmoid, :math:`\sigma(x) = 1 / (1 + e^{-x})`, stable for any input.

    Backward: :math:`\sigma'(x) = \sigma(x)(1 - \sigma(x))`, from the output.

    Saved for backward: the output (as torch's ``sigmoid``): 0 extra bytes per element in a
    network, 4 for float32 counted alone.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor) -> Tensor:
        return torch.sigmoid(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return grad * out * (1 - out)
        return _aten.sigmoid_backward(grad, out)


class SoftplusFunction(Function):
    r"""Softplus, :math:`\zeta(x) = \frac{1}{\beta}\log(1 + e^{\beta x})`, linear where
    :math:`\beta x > \text{threshold}` (torch's ``beta`` and ``threshold``).

    Backward: :math:`\zeta'(x) = \sigma(\beta x)`, recovered from the output through
    :math:`e^{\beta\zeta} = 1 + e^{\beta x}`, so :math:`\sigma(\beta x) = 1 - e^{-\beta\zeta}
    = -\operatorname{expm1}(-\beta\zeta)`; exactly 1 where :math:`\beta x > \text{threshold}`.

    Saved for backward: the output, 0 extra bytes per element in a network (torch's
    ``softplus`` keeps its input: 4 bytes for float32).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, beta: float, threshold: float) -> Tensor:
        return torch.nn.functional.softplus(input, beta, threshold)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, beta, threshold = inputs
        ctx.beta, ctx.threshold = float(beta), float(threshold)
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        z = out * ctx.beta
        linear = z > ctx.threshold
        if torch.is_grad_enabled():
            slope = -torch.expm1(-z)
            return grad * torch.where(linear, torch.ones_like(slope), slope), None, None
        slope = z.neg_().expm1_().neg_().masked_fill_(linear, 1.0)
        return slope.mul_(grad), None, None
