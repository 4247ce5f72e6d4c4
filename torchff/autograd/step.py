"""The binary step (the perceptron's threshold unit) as an autograd Function."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.autograd._blockwise import blockwise, fused_ok, times_small

__all__ = ["BinaryStepFunction"]


def _step_kernel(x: Tensor, out: Tensor) -> None:
    # floor(clamp(x, -1, 0)) is -1 for x < 0 and 0 for x >= 0 (-0.0 included); nan stays nan
    torch.clamp(x, -1.0, 0.0, out=out).floor_().add_(1.0)


def _inside_kernel(x: Tensor, inside: Tensor, scratch: Tensor) -> None:
    torch.le(torch.abs(x, out=scratch), 1.0, out=inside)


class BinaryStepFunction(Function):
    r"""Binary step: :math:`f(x) = 0` for :math:`x < 0`, :math:`1` for :math:`x \ge 0`
    (``f(-0.0) = 1``; nan propagates, unlike ``torch.heaviside``, which maps it to 0).

    Backward:

    * ``ste=False``: the true derivative, an explicit zero gradient everywhere (0 at the jump,
      by convention), as torch's zero-derivative ops (``sign``, ``round``). Saves nothing:
      0 bytes per element.
    * ``ste=True``: the straight-through estimator, :math:`\partial L/\partial x = g \cdot
      1[|x| \le 1]`, ends included (torch's ``clamp(x, -1, 1)`` / ``hardtanh`` gradients
      exclude them), 0 at nan. Saves a bool mask: 1 byte per element (the usual ``clamp``
      idiom keeps the input: 4 for float32).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, ste: bool = False) -> Tensor:
        if not fused_ok(input):
            return torch.clamp(input, -1.0, 0.0).floor() + 1.0
        return blockwise(_step_kernel, [input], [input.dtype])[0]

    @staticmethod
    def setup_context(ctx, inputs, output):
        input = inputs[0]
        ctx.ste = bool(inputs[1]) if len(inputs) > 1 else False
        if ctx.ste and ctx.needs_input_grad[0]:  # (setup_context also runs without a graph)
            if fused_ok(input):
                inside = blockwise(_inside_kernel, [input], [torch.bool], [input.dtype])[0]
            else:
                inside = input.abs() <= 1
            ctx.save_for_backward(inside)
        ctx.set_materialize_grads(True)

    @staticmethod
    def backward(ctx, grad: Tensor):
        if not ctx.ste:
            return torch.zeros_like(grad), None
        (inside,) = ctx.saved_tensors
        if not fused_ok(grad, inside):
            return grad * inside, None
        return times_small(grad, inside), None
