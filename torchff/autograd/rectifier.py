"""The rectifier family ``h = max(0, z) + alpha * min(0, z)`` as autograd Functions.

ReLU (alpha = 0), leaky ReLU (any fixed alpha: small positive, zero, negative, nan), absolute
value rectification (alpha = -1, with the sign convention of ``torch.abs``) and PReLU (alpha
learnable, one value or one per channel along dim 1).

Conventions at the kink z = 0 follow torch: ReLU'(0) = 0, leaky'(0) = alpha, PReLU'(0) = a_c,
|z|'(0) = sgn(0) = 0, and d h / d a at 0 is 0. At z = nan they follow torch too: ReLU passes the
gradient (its backward tests ``out <= 0``), the leaky family and PReLU use the slope (``z > 0``
is false), |z| gives 0 (``sign(nan) = 0``).

Each Function calls one ``torchff::`` op (:mod:`torchff.kernels.rectifier`) in forward. Its
backward calls the backward op when grad mode is off, and a differentiable torch formula when
it is on (``create_graph=True``: double backward). The Functions that return their mask or sign
as a second output, or take an internal flag, are private; :mod:`torchff.functional` returns the
value only.

Forward mode: every Function has a ``jvp``. Dynamo cannot trace a Function that defines one
(``torch.compile`` refuses it, and forward-mode AD does not run in a compiled graph), so each
Function has a twin without it (:func:`with_compile_twin`), and :func:`pick` returns the twin
while compiling. The twins of abs and PReLU also trace torch's formulas instead of calling the
ops, so that inductor fuses them as it fuses torch's own (CONTRIBUTING.md, "Compiler
visibility"); the other twins are identical to their Functions otherwise.
:mod:`torchff.functional` calls ``pick(pair).apply(...)``; code that is compiled should too
(``pick(RELU).apply(x)``, not ``ReLUFunction.apply(x)``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.kernels import rectifier as _k

__all__ = ["LeakyReLUInplaceFunction", "ReLUFunction", "ReLUInplaceFunction"]

_aten = torch.ops.aten

_NEGATIVE_SLOPE_INPLACE = (
    "In-place leakyReLu backward calculation is triggered with a negative slope which is not supported. "
    "This is caused by calling in-place forward function with a negative slope, please call out-of-place "
    "version instead."
)


def with_compile_twin(cls: type, **traced) -> tuple[type, type]:
    """``(cls, twin)``: the twin is a subclass of ``cls`` without its ``jvp``, which
    ``torch.compile`` can trace; :func:`pick` chooses.

    ``traced`` replaces methods of the twin (``forward=staticmethod(...)``, ...) with torch ops,
    for the Functions whose ``torchff::`` op inductor would call as one opaque kernel where it
    fuses torch's own formula, faster on CPU (PReLU and abs; ``benchmarks/`` compiled group)."""
    body = {"jvp": Function.jvp, "__doc__": cls.__doc__, **traced}
    return cls, type(cls.__name__ + "Compiled", (cls,), body)


def pick(pair):
    """The Function of a :func:`with_compile_twin` pair to call: its twin while ``torch.compile``
    traces, the Function itself otherwise (``pick(RELU).apply(x)``)."""
    return pair[1] if torch.compiler.is_compiling() else pair[0]


def _save_second_output(ctx, output: tuple[Tensor, Tensor]) -> None:
    """Save a Function's second output (a 1-byte mask or sign made with the value): marked
    non-differentiable, and no zero-filled gradient is made for it."""
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(output[1])
    ctx.save_for_forward(output[1])


# --------------------------------------------------------------------------------------
# ReLU
# --------------------------------------------------------------------------------------
class ReLUFunction(Function):
    r"""ReLU, :math:`g(z) = \max\{0, z\}`.

    Derivative :math:`1[z > 0]`, so ``g'(0) = 0`` (torch's convention), computed from the output
    with torch's ``threshold_backward`` (``out > 0`` exactly when ``z > 0``; nan passes the
    gradient, as torch). Forward and backward are torch's own kernels (no ``torchff::`` op).

    Saved for backward: the output, as torch's ``relu`` (the next layer keeps it anyway: 0 extra
    bytes per element in a network).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor) -> Tensor:
        return torch.relu(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        return _aten.threshold_backward(grad, out, 0)

    @staticmethod
    def jvp(ctx, tangent: Tensor):
        (out,) = ctx.saved_tensors
        return _aten.threshold_backward(tangent, out, 0)


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
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        return _aten.threshold_backward(grad, out, 0)

    @staticmethod
    def jvp(ctx, tangent: Tensor):
        (out,) = ctx.saved_tensors
        return tangent.copy_(_aten.threshold_backward(tangent, out, 0))  # the dirty input's tangent, in place

    @staticmethod
    def vmap(info, in_dims, input):
        return pick(RELU_INPLACE).apply(input), in_dims[0]


# --------------------------------------------------------------------------------------
# leaky ReLU / generalized ReLU with a fixed slope
# --------------------------------------------------------------------------------------
class _LeakyReLUMaskFunction(Function):
    r"""Generalized rectifier with a fixed slope, returning its mask: ``(h, z > 0)`` with
    :math:`h = \max\{0, z\} + \alpha \min\{0, z\}`, for any :math:`\alpha` (positive, zero,
    negative, nan).

    Derivative :math:`\partial h / \partial z = 1` for :math:`z > 0`, :math:`\alpha` for
    :math:`z \le 0` and for nan (torch's ``leaky_relu`` convention; a nan slope gives nan
    gradients there, as torch).

    Saved for backward: the mask ``z > 0``, written in the same pass as the value (op
    ``torchff::leaky_mask``): 1 byte per element. torch's ``leaky_relu`` keeps its input (4 bytes
    for float32). The output is never kept: code may change it in place before backward
    (``nn.Dropout(inplace=True)``, ``out += residual``), as it may with torch's.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, negative_slope: float) -> tuple[Tensor, Tensor]:
        return _k.leaky_mask(input, negative_slope)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.alpha = float(inputs[1])
        _save_second_output(ctx, output)

    @staticmethod
    def backward(ctx, grad: Tensor | None, _grad_mask: Tensor | None = None):
        if grad is None:
            return None, None
        (mask,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return torch.where(mask, grad, grad * ctx.alpha), None
        return _k.leaky_backward(grad, mask, ctx.alpha), None

    @staticmethod
    def jvp(ctx, tangent: Tensor | None, _slope_tangent=None):
        (mask,) = ctx.saved_tensors
        return torch.where(mask, tangent, tangent * ctx.alpha), None


class LeakyReLUInplaceFunction(Function):
    r"""In-place leaky ReLU (``inplace=True``): overwrites its input with
    :math:`\max\{0, z\} + \alpha \min\{0, z\}` and returns it.

    Derivative as :class:`_LeakyReLUMaskFunction`, computed from the output with torch's
    ``leaky_relu_backward`` (``out > 0`` exactly when ``z > 0`` for :math:`\alpha \ge 0`).
    Saves the output, which is the input's own buffer: 0 extra bytes per element, as torch's
    ``leaky_relu_``. As torch's, a negative (or nan) slope is allowed in the forward and
    without autograd, but its backward raises: the input's sign cannot be recovered from the
    output.
    """

    @staticmethod
    def forward(input: Tensor, negative_slope: float) -> Tensor:
        torch.nn.functional.leaky_relu_(input, negative_slope)
        return input

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.alpha = float(inputs[1])
        ctx.mark_dirty(inputs[0])
        if ctx.alpha >= 0:
            ctx.save_for_backward(output)
            ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        if not ctx.alpha >= 0:
            raise RuntimeError(_NEGATIVE_SLOPE_INPLACE)
        (out,) = ctx.saved_tensors
        return _aten.leaky_relu_backward(grad, out, ctx.alpha, True), None

    @staticmethod
    def jvp(ctx, tangent: Tensor, _slope_tangent=None):
        if not ctx.alpha >= 0:
            raise RuntimeError(_NEGATIVE_SLOPE_INPLACE)
        (out,) = ctx.saved_tensors
        return tangent.copy_(_aten.leaky_relu_backward(tangent, out, ctx.alpha, True))

    @staticmethod
    def vmap(info, in_dims, input, negative_slope):
        return pick(LEAKY_RELU_INPLACE).apply(input, negative_slope), in_dims[0]


# --------------------------------------------------------------------------------------
# absolute value rectification
# --------------------------------------------------------------------------------------
class _AbsSignFunction(Function):
    r"""Absolute value rectification returning its sign: ``(|z|, sgn(z))``.

    :math:`g(z) = |z| = \max\{0, z\} - \min\{0, z\}`; derivative
    :math:`\operatorname{sgn}(z) \in \{-1, 0, 1\}`, so ``g'(0) = 0`` and ``g'(nan) = 0``,
    exactly as ``torch.abs``.

    Saved for backward: the sign as int8, written in the same pass as the value (op
    ``torchff::abs_sign``): 1 byte per element. torch's ``abs`` keeps its input (4 bytes for
    float32). The output cannot replace it: it is non-negative. Under ``torch.compile`` the twin
    traces torch's ``abs`` and ``grad * sgn(z)`` instead, and the compiled graph keeps what
    inductor's partitioner picks (the input, as compiled torch's).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor) -> tuple[Tensor, Tensor]:
        return _k.abs_sign(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save_second_output(ctx, output)

    @staticmethod
    def backward(ctx, grad: Tensor | None, _grad_sign: Tensor | None = None):
        if grad is None:
            return None
        (sign,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return grad * sign
        return _k.times_small(grad, sign)

    @staticmethod
    def _traced_forward(input: Tensor) -> tuple[Tensor, Tensor]:
        return torch.abs(input), _k._none(input, torch.int8)

    @staticmethod
    def _traced_setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def _traced_backward(ctx, grad: Tensor | None, _grad_sign: Tensor | None = None):
        # torch's abs backward, which inductor fuses: the compiled graph keeps what its partitioner
        # picks (the input, as torch's), not the int8 sign the eager op writes
        if grad is None:
            return None
        (input,) = ctx.saved_tensors
        return grad * input.sgn()

    @staticmethod
    def jvp(ctx, tangent: Tensor):
        (sign,) = ctx.saved_tensors
        return tangent * sign, None


# --------------------------------------------------------------------------------------
# PReLU
# --------------------------------------------------------------------------------------
class _PReLUFunction(Function):
    r"""PReLU, :math:`h = \max\{0, z\} + a_c \min\{0, z\}` with learnable slope(s) :math:`a`,
    returning ``(h, mask)``.

    ``weight`` has one element (shared) or ``C`` elements, one per channel along dim 1 of the
    input, exactly torch's ``prelu`` layout.

    Derivatives:

    * :math:`\partial h / \partial z = 1` for :math:`z > 0`, :math:`a_c` for :math:`z \le 0`
      and for nan (torch's convention; torch's forward mode, and so ``jvp`` here, takes 1 at
      :math:`z = 0`);
    * :math:`\partial L / \partial a_c = \sum g \cdot (z > 0 \;?\; 0 : z)` over the channel's
      elements (0 at the kink), summed inside the backward kernel (op
      ``torchff::prelu_backward``; no full-size temporary).

    Saved for backward, besides the weight (which the module keeps anyway), chosen from which
    gradients are needed and never from the weight's values (no host read of a CUDA tensor):

    * the weight needs a gradient: the input, as torch (4 bytes per float32 element);
    * the weight is frozen (``with_mask=True``): the mask ``z > 0``, written in the same pass as
      the value (``torchff::prelu``), 1 byte per element; the mask is returned as the second
      output (empty otherwise).

    ``with_mask=True`` while the weight needs a gradient is ignored (the input is kept). Under
    ``torch.compile`` the twin traces the ops' torch formulas (the composite and the
    differentiable backward), which inductor fuses.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, weight: Tensor, with_mask: bool) -> tuple[Tensor, Tensor]:
        return _k.prelu(input, weight, with_mask)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, with_mask = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)
        ctx.from_mask = bool(with_mask) and not ctx.needs_input_grad[1]
        saved = output[1] if ctx.from_mask else input
        if any(ctx.needs_input_grad[:2]):  # (setup_context also runs when no graph is recorded)
            ctx.save_for_backward(saved, weight)
        ctx.save_for_forward(saved, weight)

    @staticmethod
    def backward(ctx, grad: Tensor | None, _grad_mask: Tensor | None = None):
        if grad is None or torch.is_grad_enabled():
            return _PReLUFunction._traced_backward(ctx, grad)
        saved, weight = ctx.saved_tensors
        need_input, need_weight = ctx.needs_input_grad[:2]
        gi, gw = _k.prelu_backward(grad, saved, weight, need_input, need_weight)
        return (gi if need_input else None), (gw if need_weight else None), None

    @staticmethod
    def _traced_backward(ctx, grad: Tensor | None, _grad_mask: Tensor | None = None):
        # torch ops, differentiable: the double-backward formula, and the compile twin's backward
        if grad is None:
            return None, None, None
        saved, weight = ctx.saved_tensors
        need_input, need_weight = ctx.needs_input_grad[:2]
        positive = saved if ctx.from_mask else saved > 0
        gi = gw = None
        if need_input:
            gi = torch.where(positive, grad, grad * _k.channel_view(weight, grad.dim()))
        if need_weight:
            gw = _k._reduce_to_weight(torch.where(positive, 0.0, saved * grad), weight)
        return gi, gw, None

    @staticmethod
    def jvp(ctx, input_t: Tensor | None, weight_t: Tensor | None, _flag_t=None):
        saved, weight = ctx.saved_tensors
        # torch's forward-mode formula for prelu takes the identity at z = 0 (z >= 0), where its
        # backward takes the slope (z > 0); as a drop-in the tangent follows torch's. (Forward
        # mode keeps the input: with_mask is off under forward AD and torch.func.)
        positive = saved if ctx.from_mask else saved >= 0
        out_t = None
        if input_t is not None:
            out_t = torch.where(positive, input_t, input_t * _k.channel_view(weight, input_t.dim()))
        if weight_t is not None:  # (never with a mask: the weight then needs no gradient)
            w_t = torch.where(positive, 0.0, saved * _k.channel_view(weight_t, saved.dim()))
            out_t = w_t if out_t is None else out_t + w_t
        return out_t, None


# (Function, compile twin) pairs, for pick()
RELU = with_compile_twin(ReLUFunction)
RELU_INPLACE = with_compile_twin(ReLUInplaceFunction)
LEAKY_RELU_MASK = with_compile_twin(_LeakyReLUMaskFunction)
LEAKY_RELU_INPLACE = with_compile_twin(LeakyReLUInplaceFunction)
ABS_SIGN = with_compile_twin(
    _AbsSignFunction,
    forward=staticmethod(_AbsSignFunction._traced_forward),
    setup_context=staticmethod(_AbsSignFunction._traced_setup_context),
    backward=staticmethod(_AbsSignFunction._traced_backward),
)
PRELU = with_compile_twin(
    _PReLUFunction,
    forward=staticmethod(_k._prelu_composite),
    backward=staticmethod(_PReLUFunction._traced_backward),
)
