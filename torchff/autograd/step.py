"""The binary step (the perceptron's threshold unit) as an autograd Function."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["BinaryStepFunction"]


class BinaryStepFunction(Function):
    r"""Binary step: :math:`f(x) = 0` for :math:`x < 0`, :math:`1` for :math:`x \ge 0` (nan stays nan).

    Backward:

    * ``ste=False``: the true derivative, an explicit zero gradient everywhere (0 at the jump,
      by convention). Saves nothing: 0 bytes per element.
    * ``ste=True``: the straight-through estimator, :math:`\partial L/\partial x = g \cdot 1[|x| \le 1]`
      (the gradient of the hard tanh). Saves a bool mask: 1 byte per element.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, ste: bool) -> Tensor:
        return torch.heaviside(input, torch.ones((), dtype=input.dtype, device=input.device))

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, ste = inputs
        ctx.ste = bool(ste)
        if ctx.ste:
            ctx.save_for_backward(input.abs() <= 1)
        ctx.set_materialize_grads(True)

    @staticmethod
    def backward(ctx, grad: Tensor):
        if not ctx.ste:
            return torch.zeros_like(grad), None
        (inside,) = ctx.saved_tensors
        return grad * inside, None
