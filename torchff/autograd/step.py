"""The binary step (the perceptron's threshold unit) as an autograd Function."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.autograd.rectifier import with_compile_twin
from torchff.kernels import rectifier as _k

__all__: list[str] = []


class _BinaryStepFunction(Function):
    r"""Binary step, returning ``(f(x), mask)``: :math:`f(x) = 0` for :math:`x < 0`, :math:`1`
    for :math:`x \ge 0` (``f(-0.0) = 1``; nan propagates, unlike ``torch.heaviside``, which maps
    it to 0). One pass, op ``torchff::step``.

    Backward:

    * ``ste=False``: the true derivative, an explicit zero gradient everywhere (0 at the jump,
      by convention), as torch's zero-derivative ops (``sign``, ``round``). Saves nothing:
      0 bytes per element; the mask output is empty.
    * ``ste=True``: the straight-through estimator, :math:`\partial L/\partial x = g \cdot
      1[|x| \le 1]`, ends included (torch's ``clamp(x, -1, 1)`` / ``hardtanh`` gradients
      exclude them), 0 at nan. Saves the bool mask :math:`|x| \le 1`, written in the same pass
      as the value and returned as the second output: 1 byte per element (the usual ``clamp``
      idiom keeps the input: 4 for float32).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, ste: bool) -> tuple[Tensor, Tensor]:
        return _k.step(input, ste)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.ste = bool(inputs[1])
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)
        if ctx.ste:
            ctx.save_for_backward(output[1])
            ctx.save_for_forward(output[1])

    @staticmethod
    def backward(ctx, grad: Tensor | None, _grad_mask: Tensor | None = None):
        if grad is None:
            return None, None
        if not ctx.ste:
            return torch.zeros_like(grad), None
        (inside,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return grad * inside, None
        return _k.times_small(grad, inside), None

    @staticmethod
    def jvp(ctx, tangent: Tensor, _ste_tangent=None):
        if not ctx.ste:
            return torch.zeros_like(tangent), None
        (inside,) = ctx.saved_tensors
        return tangent * inside, None


BINARY_STEP = with_compile_twin(_BinaryStepFunction)  # (Function, compile twin), for rectifier.pick
