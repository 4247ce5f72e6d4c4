"""The rectifier family ``h = max(0, z) + alpha * min(0, z)`` as autograd Functions.

ReLU (alpha = 0), leaky ReLU (small alpha > 0), absolute value rectification
(alpha = -1) and PReLU (alpha learnable, one value or one per channel along dim 1).

Conventions at the kink z = 0 follow torch: ReLU'(0) = 0, leaky/generalized'(0) = alpha,
PReLU'(0) = alpha, |z|'(0) = sgn(0) = 0, and d h / d alpha at 0 is 0.

Each backward has two paths: a fused one (torch's own ``*_backward`` kernels, or in-place
arithmetic on fresh buffers) used for ordinary backward, and an out-of-place differentiable
formula used when ``torch.is_grad_enabled()`` (double backward, ``create_graph=True``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = [
    "ReLUFunction",
    "ReLUInplaceFunction",
    "LeakyReLUFunction",
    "LeakyReLUInplaceFunction",
    "AbsFunction",
    "PReLUFunction",
]

_aten = torch.ops.aten


def _relu_grad(grad: Tensor, out: Tensor) -> Tensor:
    if torch.is_grad_enabled():
        return grad * (out > 0)
    return _aten.threshold_backward(grad, out, 0)


class ReLUFunction(Function):
    r"""ReLU, :math:`g(z) = \max\{0, z\}`.

    Backward: :math:`\partial g / \partial z = 1[z > 0]`, so ``g'(0) = 0`` (torch's convention).
    Computed from the output (``out > 0`` exactly when ``z > 0``).

    Saved for backward: the output, which the next layer keeps anyway, so 0 extra bytes per
    element in a network (4 for float32 when counted alone, as torch's ``relu``).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor) -> Tensor:
        return torch.relu(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        return _relu_grad(grad, out)


class ReLUInplaceFunction(Function):
    r"""In-place ReLU (``inplace=True``): overwrites its input with :math:`\max\{0, z\}`.

    Same derivative and saved tensor (the output, which now *is* the input's buffer: 0 extra
    bytes) as :class:`ReLUFunction`. Not usable under ``torch.func.vmap``, as torch's ``relu_``.
    """

    @staticmethod
    def forward(input: Tensor) -> Tensor:
        return input.relu_()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_dirty(inputs[0])
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        return _relu_grad(grad, out)


def _leaky_grad_from_sign_carrier(grad: Tensor, carrier: Tensor, alpha: float, is_result: bool) -> Tensor:
    """``grad * (1 if carrier > 0 else alpha)``; ``carrier`` has the sign of the input."""
    if torch.is_grad_enabled():
        pos = carrier > 0
        return grad * pos + grad * (~pos) * alpha
    return _aten.leaky_relu_backward(grad, carrier, alpha, is_result)


class LeakyReLUFunction(Function):
    r"""Generalized rectifier with a fixed slope: :math:`h = \max\{0, z\} + \alpha \min\{0, z\}`.

    Leaky ReLU for small :math:`\alpha > 0`; ReLU's values for :math:`\alpha = 0`; absolute
    value rectification's values for :math:`\alpha = -1` (see :class:`AbsFunction` for its
    kink convention).

    Backward: :math:`\partial h / \partial z = 1` for :math:`z > 0`, :math:`\alpha` for
    :math:`z \le 0` (torch's ``leaky_relu`` convention at 0).

    Saved for backward:

    * :math:`\alpha \ge 0`: the output (its sign is the input's): 0 extra bytes per element in
      a network, where torch's ``leaky_relu`` keeps its input (4 bytes for float32);
    * :math:`\alpha < 0`: a bool mask ``z > 0``, 1 byte per element.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, negative_slope: float) -> Tensor:
        return torch.nn.functional.leaky_relu(input, negative_slope)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, alpha = inputs
        ctx.alpha = float(alpha)
        if ctx.alpha >= 0:
            ctx.save_for_backward(output)
        else:
            ctx.save_for_backward(input > 0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (saved,) = ctx.saved_tensors
        if saved.dtype == torch.bool:  # alpha < 0: the mask, as 1.0 / 0.0 in grad's dtype
            return _leaky_grad_from_sign_carrier(grad, saved.to(grad.dtype), ctx.alpha, False), None
        return _leaky_grad_from_sign_carrier(grad, saved, ctx.alpha, True), None


class LeakyReLUInplaceFunction(Function):
    r"""In-place :class:`LeakyReLUFunction` (``inplace=True``), for :math:`\alpha \ge 0` only.

    Saves the output, which is the input's own buffer: 0 extra bytes per element. A negative
    slope cannot be undone from the output, so it raises, as torch's in-place leaky ReLU does.
    """

    @staticmethod
    def forward(input: Tensor, negative_slope: float) -> Tensor:
        if negative_slope < 0:
            raise RuntimeError(
                "in-place leaky_relu with a negative slope is not supported; use inplace=False"
            )
        return torch.nn.functional.leaky_relu_(input, negative_slope)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.alpha = float(inputs[1])
        ctx.mark_dirty(inputs[0])
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        return _leaky_grad_from_sign_carrier(grad, out, ctx.alpha, True), None


class AbsFunction(Function):
    r"""Absolute value rectification, :math:`g(z) = |z| = \max\{0, z\} - \min\{0, z\}`.

    Backward: :math:`\partial g / \partial z = \operatorname{sgn}(z) \in \{-1, 0, 1\}`, so
    ``g'(0) = 0`` and ``g'(nan) = 0``, exactly as ``torch.abs``.

    Saved for backward: the sign as ``int8``, 1 byte per element (torch's ``abs`` keeps its
    input: 4 bytes for float32).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor) -> Tensor:
        return torch.abs(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(torch.sign(inputs[0]).to(torch.int8))

    @staticmethod
    def backward(ctx, grad: Tensor):
        (sign,) = ctx.saved_tensors
        return grad * sign


def _channel_view(weight: Tensor, input: Tensor) -> Tensor:
    """PReLU weight shaped to broadcast along dim 1 (or scalar)."""
    if weight.numel() == 1:
        return weight.reshape(())
    shape = [1] * input.dim()
    shape[1 if input.dim() >= 2 else 0] = weight.numel()
    return weight.reshape(shape)


def _reduce_to_weight(t: Tensor, weight: Tensor) -> Tensor:
    """Sum ``t`` over every dim but the channel dim (or over all for one weight)."""
    if weight.numel() == 1:
        return t.sum().reshape(weight.shape)
    cdim = 1 if t.dim() >= 2 else 0
    dims = [d for d in range(t.dim()) if d != cdim]
    return (t.sum(dims) if dims else t).reshape(weight.shape)


class PReLUFunction(Function):
    r"""PReLU, :math:`h = \max\{0, z\} + a_c \min\{0, z\}` with learnable slope(s) :math:`a`.

    ``weight`` has one element (shared) or ``C`` elements, one per channel along dim 1 of the
    input (dim 0 for a 1-d input), exactly torch's ``prelu`` layout.

    Backward:

    * :math:`\partial h / \partial z = 1` for :math:`z > 0`, :math:`a_c` for :math:`z \le 0`;
    * :math:`\partial L / \partial a_c = \sum g \cdot \min\{0, z\}` over the channel's elements.

    Saved for backward (the least for each weight value):

    * every :math:`a_c > 0` (``save_output=True``, what :func:`torchff.functional.prelu` picks
      when it may look at the weight): the output and the weight. The sign of the output is the
      input's and :math:`\min\{0, z\} = \min\{0, h\} / a_c`, so 0 extra bytes per element in a
      network, where torch's ``prelu`` keeps its input (4 bytes for float32);
    * otherwise (some :math:`a_c \le 0`, or inside ``torch.compile`` / ``vmap`` where the weight
      cannot be inspected): the input and the weight, as torch (4 bytes per float32 element).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, weight: Tensor, save_output: bool) -> Tensor:
        return torch._prelu_kernel(input, _channel_view(weight, input))

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, save_output = inputs
        ctx.from_output = bool(save_output)
        ctx.save_for_backward(output if ctx.from_output else input, weight)

    @staticmethod
    def backward(ctx, grad: Tensor):
        saved, weight = ctx.saved_tensors
        w = _channel_view(weight, saved)
        grad_input = grad_weight = None
        if torch.is_grad_enabled():  # double backward: plain differentiable formulas
            pos = saved > 0
            neg = torch.clamp_max(saved, 0)
            if ctx.needs_input_grad[0]:
                grad_input = grad * pos + grad * (~pos) * w
            if ctx.needs_input_grad[1]:
                z_neg = neg / w if ctx.from_output else neg
                grad_weight = _reduce_to_weight(grad * z_neg, weight)
            return grad_input, grad_weight, None
        if ctx.needs_input_grad[0]:
            if weight.numel() == 1 and not torch.compiler.is_compiling():
                grad_input = _aten.leaky_relu_backward(grad, saved, float(weight), ctx.from_output)
            else:
                # grad * (w + (1 - w) * [z > 0]) on one fresh buffer
                factor = (saved > 0).to(grad.dtype)
                grad_input = factor.mul_(1 - w).add_(w).mul_(grad)
        if ctx.needs_input_grad[1]:
            neg = torch.clamp_max(saved, 0).mul_(grad)
            grad_weight = _reduce_to_weight(neg, weight)
            if ctx.from_output:
                grad_weight = grad_weight.div_(weight)
        return grad_input, grad_weight, None
