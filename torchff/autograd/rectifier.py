"""The rectifier family ``h = max(0, z) + alpha * min(0, z)`` as autograd Functions.

ReLU (alpha = 0), leaky ReLU (small alpha > 0), absolute value rectification
(alpha = -1) and PReLU (alpha learnable, one value or one per channel along dim 1).

Conventions at the kink z = 0 follow torch: ReLU'(0) = 0, leaky/generalized'(0) = alpha,
PReLU'(0) = alpha, |z|'(0) = sgn(0) = 0, and d h / d alpha at 0 is 0. At z = nan they follow
torch too: ReLU passes the gradient (its backward tests ``out <= 0``), the leaky family and
PReLU use the slope ``alpha`` (``z > 0`` is false), |z| gives 0 (``sign(nan) = 0``).

Backwards use torch's fused kernels where one exists (``threshold_backward``,
``leaky_relu_backward``: both differentiable, so they serve double backward too). Where a
forward or backward chains several kernels, plain eager mode runs the chain on one fresh
output (then in place) or block by block on cached scratch buffers
(:mod:`torchff.autograd._blockwise`); ``torch.compile``, ``torch.func`` and double backward
get out-of-place formulas.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.autograd import _native
from torchff.autograd._blockwise import blockwise, fused_ok, row_blocks, scratch, times_small

__all__ = [
    "ReLUFunction",
    "ReLUInplaceFunction",
    "LeakyReLUFunction",
    "LeakyReLUInplaceFunction",
    "LeakyReLUMaskFunction",
    "AbsInputFunction",
    "AbsSignFunction",
    "PReLUFunction",
    "PReLUSaves",
]

_aten = torch.ops.aten


# --------------------------------------------------------------------------------------
# 1-byte-per-element helpers
# --------------------------------------------------------------------------------------
def _abs_and_sign(x: Tensor) -> tuple[Tensor, Tensor]:
    """``|x|`` and ``sign(x)`` (-1, 0, 1; 0 for nan) as int8, reading ``x`` once."""
    if not fused_ok(x):
        return torch.abs(x), torch.sign(x).to(torch.int8)
    if _native.supports(x):
        return _native.abs_and_sign(x)

    def kernel(x, out, s8, s):  # the float sign stays in a cached block; only int8 is written out
        torch.abs(x, out=out)
        s8.copy_(torch.sign(x, out=s))

    out, s8 = blockwise(kernel, [x], [x.dtype, torch.int8], [x.dtype])
    return out, s8


def _times_sign(grad: Tensor, x: Tensor) -> Tensor:
    """``grad * sgn(x)`` (0 at 0 and at nan), the sign made block by block in cache."""
    if not fused_ok(grad, x):
        return grad * torch.sign(x)

    def kernel(g, x, out):  # the sign into the output block, then times g in place
        torch.sign(x, out=out).mul_(g)

    return blockwise(kernel, [grad, x], [grad.dtype])[0]


def _save_second_output(ctx, output: tuple[Tensor, Tensor]) -> None:
    """Save a Function's second output (a 1-byte mask or sign made with the value): marked
    non-differentiable, and no zero-filled gradient is made for it."""
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(output[1])


def _gt0_kernel(x: Tensor, mask: Tensor, s: Tensor) -> None:
    # compare into a cached float block, then narrow: ~2x faster than a bool-valued compare
    mask.copy_(torch.gt(x, 0, out=s))


def _positive_mask(x: Tensor) -> Tensor:
    """``x > 0`` as bool (false for nan)."""
    if not fused_ok(x):
        return x > 0
    return blockwise(_gt0_kernel, [x], [torch.bool], [x.dtype])[0]


def _leaky_and_mask(x: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """``leaky_relu(x, alpha)`` and the bool mask ``x > 0``, reading ``x`` once."""
    if not fused_ok(x):
        return torch.nn.functional.leaky_relu(x, alpha), x > 0
    if _native.supports(x):
        return _native.leaky_and_mask(x, alpha)

    def kernel(x, out, mask, s):
        torch._C._nn.leaky_relu(x, alpha, out=out)
        _gt0_kernel(x, mask, s)  # x is still in cache

    out, mask = blockwise(kernel, [x], [x.dtype, torch.bool], [x.dtype])
    return out, mask


def _leaky_grad_from_mask(grad: Tensor, positive: Tensor, alpha: float) -> Tensor:
    """``grad * (1 if positive else alpha)`` for a bool mask ``positive``."""
    if not fused_ok(grad, positive):
        return _aten.leaky_relu_backward(grad, positive.to(grad.dtype), alpha, False)
    if _native.supports(grad, positive):
        return _native.leaky_grad_from_mask(grad, positive, alpha)

    def kernel(g, positive, out, carrier):  # 1.0 where positive: the sign leaky_relu_backward reads
        _aten.leaky_relu_backward.grad_input(g, carrier.copy_(positive), alpha, False, grad_input=out)

    return blockwise(kernel, [grad, positive.view(torch.uint8)], [grad.dtype], [grad.dtype])[0]


# --------------------------------------------------------------------------------------
# ReLU
# --------------------------------------------------------------------------------------
class ReLUFunction(Function):
    r"""ReLU, :math:`g(z) = \max\{0, z\}`.

    Backward: :math:`\partial g / \partial z = 1[z > 0]`, so ``g'(0) = 0`` (torch's convention),
    computed from the output with torch's ``threshold_backward`` (``out > 0`` exactly when
    ``z > 0``; ``nan`` passes the gradient, as torch).

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
        return _aten.threshold_backward(grad, out, 0)


class ReLUInplaceFunction(Function):
    r"""In-place ReLU (``inplace=True``): overwrites its input with :math:`\max\{0, z\}` and
    returns it.

    Same derivative as :class:`ReLUFunction`; saves the output, which is the input's own
    buffer: 0 extra bytes. As torch's ``relu_``, it raises on a leaf that requires grad and
    works under ``torch.func.vmap`` and ``torch.compile``.
    """

    @staticmethod
    def forward(input: Tensor) -> Tensor:
        input.relu_()
        return input

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_dirty(inputs[0])
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        return _aten.threshold_backward(grad, out, 0)

    @staticmethod
    def vmap(info, in_dims, input):
        return ReLUInplaceFunction.apply(input), in_dims[0]


# --------------------------------------------------------------------------------------
# leaky ReLU / generalized ReLU with a fixed slope
# --------------------------------------------------------------------------------------
_NEGATIVE_SLOPE_INPLACE = (
    "In-place leakyReLu backward calculation is triggered with a negative slope which is not supported. "
    "This is caused by calling in-place forward function with a negative slope, please call out-of-place "
    "version instead."
)


class LeakyReLUFunction(Function):
    r"""Generalized rectifier with a fixed slope: :math:`h = \max\{0, z\} + \alpha \min\{0, z\}`.

    Leaky ReLU for small :math:`\alpha > 0`; ReLU's values for :math:`\alpha = 0`; absolute
    value rectification's values for :math:`\alpha = -1` (see :class:`AbsSignFunction` for
    its kink convention).

    Backward: :math:`\partial h / \partial z = 1` for :math:`z > 0`, :math:`\alpha` for
    :math:`z \le 0` and for nan (torch's ``leaky_relu`` convention).

    Saved for backward: the input, as torch's ``leaky_relu`` (4 bytes per float32 element),
    for any :math:`\alpha` (nan included). Never the output: the caller may change it in place
    before backward (``nn.Dropout(inplace=True)``, ``out += r``), which works with torch. The
    least is one bit, a bool mask ``z > 0``: :class:`LeakyReLUMaskFunction` keeps that, made with
    the value (:func:`torchff.functional.leaky_relu` picks by the save mode,
    :mod:`torchff.autograd.mode`).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, negative_slope: float) -> Tensor:
        return torch.nn.functional.leaky_relu(input, negative_slope)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, alpha = inputs
        ctx.alpha = float(alpha)
        if ctx.needs_input_grad[0]:  # (setup_context also runs when no graph is recorded)
            ctx.save_for_backward(input)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (input,) = ctx.saved_tensors
        return _aten.leaky_relu_backward(grad, input, ctx.alpha, False), None


class LeakyReLUMaskFunction(Function):
    r"""Generalized rectifier with a fixed slope, returning its mask:
    ``(h, z > 0)`` with :math:`h = \max\{0, z\} + \alpha \min\{0, z\}`.

    The backward needs one bit per element, :math:`1[z > 0]`, for any :math:`\alpha` (nan
    included). This Function computes it with the value (in one loop, or block by block while
    the input is in cache) and returns it as a second, non-differentiable output
    (``torch.bool``); :func:`torchff.functional.leaky_relu` uses it for every slope in the
    ``"memory"`` save mode (the default) and returns the value only. The mask is private, so
    in-place changes to the output before backward are safe, as with torch.

    Backward: :math:`\partial h / \partial z = 1` for :math:`z > 0`, :math:`\alpha` for
    :math:`z \le 0` and for nan (torch's ``leaky_relu`` convention), for any :math:`\alpha`.

    Saved for backward: the mask, 1 byte per element (torch's ``leaky_relu`` keeps its input:
    4 bytes for float32). Contiguous CPU float32/float64 tensors take the compiled kernels
    (:mod:`torchff.autograd._native`: value and mask in one loop); without them, the mask is
    a pass over the input that torch does not make.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, negative_slope: float) -> tuple[Tensor, Tensor]:
        return _leaky_and_mask(input, float(negative_slope))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.alpha = float(inputs[1])
        _save_second_output(ctx, output)

    @staticmethod
    def backward(ctx, grad: Tensor | None, _grad_mask: Tensor | None = None):
        if grad is None:
            return None, None
        (mask,) = ctx.saved_tensors
        return _leaky_grad_from_mask(grad, mask, ctx.alpha), None


class LeakyReLUInplaceFunction(Function):
    r"""In-place :class:`LeakyReLUFunction` (``inplace=True``): overwrites and returns its input.

    Saves the output, which is the input's own buffer: 0 extra bytes per element. As torch's
    ``leaky_relu_``, a negative slope is allowed in the forward (and without autograd), but
    its backward raises: the input's sign cannot be recovered from the output.
    """

    @staticmethod
    def forward(input: Tensor, negative_slope: float) -> Tensor:
        torch.nn.functional.leaky_relu_(input, negative_slope)
        return input

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.alpha = float(inputs[1])
        ctx.mark_dirty(inputs[0])
        if not ctx.alpha < 0:
            ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        if ctx.alpha < 0:
            raise RuntimeError(_NEGATIVE_SLOPE_INPLACE)
        (out,) = ctx.saved_tensors
        return _aten.leaky_relu_backward(grad, out, ctx.alpha, True), None

    @staticmethod
    def vmap(info, in_dims, input, negative_slope):
        return LeakyReLUInplaceFunction.apply(input, negative_slope), in_dims[0]


# --------------------------------------------------------------------------------------
# absolute value rectification
# --------------------------------------------------------------------------------------
class AbsInputFunction(Function):
    r"""Absolute value rectification, :math:`g(z) = |z| = \max\{0, z\} - \min\{0, z\}`,
    keeping its input, as torch.

    Backward: :math:`\partial g / \partial z = \operatorname{sgn}(z) \in \{-1, 0, 1\}`, so
    ``g'(0) = 0`` and ``g'(nan) = 0``, exactly as ``torch.abs``. The eager backward makes the
    sign block by block in cache and multiplies it into the fresh gradient (torch writes the
    sign out in full first).

    Saved for backward: the input, 4 bytes per float32 element, as torch's ``abs``. The least
    is the sign, 1 byte: :class:`AbsSignFunction`, which :func:`torchff.functional.abs_relu`
    uses in the ``"memory"`` save mode (the default; :mod:`torchff.autograd.mode`), this one in
    ``"speed"``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor) -> Tensor:
        return torch.abs(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        if ctx.needs_input_grad[0]:  # (setup_context also runs when no graph is recorded)
            ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: Tensor):
        (input,) = ctx.saved_tensors
        return _times_sign(grad, input)


class AbsSignFunction(Function):
    r"""Absolute value rectification returning its sign: ``(|z|, sgn(z))``.

    Backward: :math:`\partial g / \partial z = \operatorname{sgn}(z) \in \{-1, 0, 1\}`, so
    ``g'(0) = 0`` and ``g'(nan) = 0``, exactly as ``torch.abs``.

    The forward computes the sign with the value, in one loop with the compiled kernels
    (:mod:`torchff.autograd._native`; contiguous CPU float32/float64), else block by block
    while the input is in cache, and returns it as a non-differentiable int8 tensor (:func:`torchff.functional.abs_relu`
    returns the value only). Saved for backward: that sign, 1 byte per element (torch's
    ``abs`` keeps its input: 4 bytes for float32). The output cannot replace it: it is
    non-negative.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor) -> tuple[Tensor, Tensor]:
        return _abs_and_sign(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save_second_output(ctx, output)

    @staticmethod
    def backward(ctx, grad: Tensor | None, _grad_sign: Tensor | None = None):
        if grad is None:
            return None
        (sign,) = ctx.saved_tensors
        return times_small(grad, sign)


# --------------------------------------------------------------------------------------
# PReLU
# --------------------------------------------------------------------------------------
class PReLUSaves:
    """What :class:`PReLUFunction` keeps for backward (its ``saves`` argument)."""

    INPUT = 0  #: the input, as torch: always valid
    MASK = 2  #: a bool mask ``z > 0``: the weight's gradient is not needed


def _channel_view(weight: Tensor, input: Tensor) -> Tensor:
    """PReLU weight shaped to broadcast along dim 1 (or a 0-d tensor for one weight)."""
    if weight.numel() == 1:
        return weight.reshape(())
    shape = [1] * input.dim()
    shape[1] = weight.numel()
    return weight.reshape(shape)


def _reduce_to_weight(t: Tensor, weight: Tensor) -> Tensor:
    """Sum ``t`` over every dim but dim 1 (or over all for one weight), shaped as ``weight``."""
    if weight.numel() == 1:
        return t.sum().reshape(weight.shape)
    dims = [d for d in range(t.dim()) if d != 1]
    return (t.sum(dims) if dims else t).reshape(weight.shape)


class PReLUFunction(Function):
    r"""PReLU, :math:`h = \max\{0, z\} + a_c \min\{0, z\}` with learnable slope(s) :math:`a`.

    ``weight`` has one element (shared) or ``C`` elements, one per channel along dim 1 of the
    input, exactly torch's ``prelu`` layout.

    Backward:

    * :math:`\partial h / \partial z = 1` for :math:`z > 0`, :math:`a_c` for :math:`z \le 0`
      and for nan (torch's convention);
    * :math:`\partial L / \partial a_c = \sum g \cdot \min\{0, z\}` over the channel's elements.

    Saved for backward (``saves``, a :class:`PReLUSaves` value that
    :func:`torchff.functional.prelu` picks from which gradients are needed, never from the
    weight's values, which would cost a device-to-host sync), besides the weight:

    * ``INPUT`` when the weight needs a gradient (it needs :math:`\min\{0, z\}`), and inside
      ``torch.compile`` / ``torch.func``: the input, as torch (4 bytes per float32 element);
    * ``MASK`` when only the input needs a gradient: :math:`\partial h / \partial z` is one
      bit, so a bool mask ``z > 0`` (1 byte per element).

    Never the output, which the caller may change in place before backward (and which loses
    :math:`\min\{0, z\}` where a slope is 0 or not finite).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, weight: Tensor, saves: int = PReLUSaves.INPUT) -> Tensor:
        return torch._prelu_kernel(input, _channel_view(weight, input))

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight = inputs[:2]
        saves = inputs[2] if len(inputs) > 2 else PReLUSaves.INPUT
        if ctx.needs_input_grad[1]:
            saves = PReLUSaves.INPUT  # a mask cannot give the weight's gradient
        if any(ctx.needs_input_grad[:2]):  # (setup_context also runs when no graph is recorded)
            ctx.save_for_backward(input if saves == PReLUSaves.INPUT else _positive_mask(input), weight)

    @staticmethod
    def backward(ctx, grad: Tensor):
        saved, weight = ctx.saved_tensors
        need_input, need_weight = ctx.needs_input_grad[:2]
        backward = _prelu_backward_fused if fused_ok(grad, saved, weight) else _prelu_backward_plain
        return (*backward(grad, saved, weight, need_input, need_weight), None)


def _prelu_backward_fused(grad, saved, weight, need_input, need_weight):
    """Eager path: blocks of whole rows (dim 0), so that the channel dim 1 stays intact and the
    temporaries stay in cache; one fresh tensor (the input's gradient). Exact for any slope
    (0, negative, inf, nan): a select, never a blend of the two sides."""
    shape = grad.shape
    if grad.dim() == 0:
        grad, saved = grad.reshape(1), saved.reshape(1)
    w = _channel_view(weight, grad).to(grad.dtype)
    grad_input = torch.empty_like(grad) if need_input else None
    grad_weight = torch.zeros(weight.shape, dtype=grad.dtype, device=grad.device) if need_weight else None
    sum_dims = [d for d in range(grad.dim()) if d != 1] if weight.numel() > 1 else None
    # blocks help a CPU's caches; elsewhere one pass over whole tensors is best
    blocks = list(row_blocks(grad.shape)) if grad.device.type == "cpu" else [slice(None)]
    n = max((grad[b].numel() for b in blocks), default=0)
    s1, m1 = scratch(n, [grad.dtype, torch.bool], grad.device)
    for b in blocks:
        g, z = grad[b], saved[b]
        t1 = s1[: g.numel()].view(g.shape)
        if need_input:
            positive = z if z.dtype == torch.bool else torch.gt(z, 0, out=m1[: g.numel()].view(g.shape))
            torch.where(positive, g, torch.mul(g, w, out=t1), out=grad_input[b])  # 1 or a_c, times g
        if need_weight:  # saved is the input here
            neg = torch.clamp_max(z, 0, out=t1).mul_(g)  # min(0, z) g
            grad_weight += (neg.sum(sum_dims) if sum_dims else neg.sum()).reshape(weight.shape)
    return (grad_input.reshape(shape) if need_input else None), grad_weight


def _prelu_backward_plain(grad, saved, weight, need_input, need_weight):
    """Out-of-place, differentiable formulas (double backward, torch.func, torch.compile)."""
    w = _channel_view(weight, grad)
    positive = saved if saved.dtype == torch.bool else saved > 0
    grad_input = torch.where(positive, grad, grad * w) if need_input else None
    grad_weight = _reduce_to_weight(grad * torch.clamp_max(saved, 0), weight) if need_weight else None
    return grad_input, grad_weight
