r"""Smooth activations: the logistic sigmoid and softplus, as autograd Functions.

Both run torch's own fused kernels (``aten::sigmoid`` / ``sigmoid_backward``, ``aten::softplus``
/ ``softplus_backward``), one kernel per direction on every device, and register no ``torchff::``
op: torch already has the one kernel, which a torchff op could at best equal.

* CUDA: torch's elementwise kernel already moves the least (forward: read ``x``, write ``y``;
  backward: read the gradient and the saved tensor, write the result), so a Triton kernel would
  move the same bytes.
* CPU: torch's kernels are vectorized (SLEEF ``exp``/``log1p``); a plain-C loop calling libm's
  scalar ``expf``/``logf`` is slower than them on large tensors (``benchmarks/`` measures the ops).
* ``torch.compile``: dynamo traces the Function and inductor sees ``aten::softplus`` and
  ``aten::sigmoid``, which it fuses with their neighbours; an opaque op could not be fused.

Each Function comes as a core class (forward, ``setup_context``, ``backward``) and a subclass
adding the forward-mode ``jvp``; :mod:`torchff.functional` applies the core class under
``torch.compile``: dynamo refuses to trace a
Function that defines ``jvp`` (a graph break), and traces the core class, whose backward it
compiles.

Dtypes are torch's: float16 / bfloat16 are computed in float32 inside the kernels and rounded
once; integer and bool inputs to softplus raise torch's ``NotImplementedError`` (sigmoid
promotes them to the default float dtype, as torch).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["SigmoidFunction", "SoftplusFunction"]

_aten = torch.ops.aten


class _Sigmoid(Function):
    r"""Logistic sigmoid, :math:`\sigma(x) = 1 / (1 + e^{-x})`, stable for any input
    (:math:`\sigma(\pm\infty) = 1, 0`; nan propagates).

    Backward: :math:`\sigma'(x) = \sigma(x)(1 - \sigma(x))`, from the output, with torch's
    fused (and differentiable) ``sigmoid_backward`` kernel. Smooth: no kink. Forward mode:
    :math:`\dot y = \sigma'(x)\,\dot x`, the same kernel on the tangent.

    Saved for backward: the output (as torch's ``sigmoid``, which also keeps its output): 0
    extra bytes per element in a network, 4 for float32 counted alone. In-place changes to the
    output before backward are caught by autograd's version counter, as with torch's.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor) -> Tensor:
        return torch.sigmoid(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        return _aten.sigmoid_backward(grad, out)


class SigmoidFunction(_Sigmoid):
    __doc__ = _Sigmoid.__doc__

    @staticmethod
    def jvp(ctx, tangent: Tensor):
        (out,) = ctx.saved_tensors
        return _aten.sigmoid_backward(tangent, out)


class _Softplus(Function):
    r"""Softplus, :math:`\zeta(x) = \frac{1}{\beta}\log(1 + e^{\beta x})`, exactly :math:`x`
    where :math:`\beta x > \text{threshold}` (torch's ``beta`` and ``threshold``).

    Backward: :math:`\zeta'(x) = \sigma(\beta x) = e^{\beta x} / (1 + e^{\beta x})`, exactly 1
    where :math:`\beta x > \text{threshold}` (the linear region; at the threshold itself the
    curve, as torch). Computed from the input in float32 for float16 / bfloat16 inputs, so tiny
    slopes keep their value (with :math:`\beta = 50` at :math:`x = -0.3` the slope is
    :math:`3 \cdot 10^{-7}`, a float16 subnormal). The backward is torch's differentiable
    ``softplus_backward`` (double backward: :math:`\beta\,\sigma(\beta x)(1 - \sigma(\beta x))`
    below the threshold, 0 above); forward mode: :math:`\dot y = \zeta'(x)\,\dot x`.

    Numerics: torch's. Values and slopes keep float32's subnormal range: for
    :math:`\beta x` from about -88.7 down to -103.9 both are :math:`e^{\beta x}` as a subnormal
    (``softplus(-90.)`` is :math:`8.19 \cdot 10^{-40}`), not 0. Without a linear region there
    (``threshold`` above 88.7, ``inf`` or nan), large inputs overflow to ``inf`` with a nan
    slope, as in torch.

    Saved for backward: the **input** (4 bytes per float32 element, as torch). Not the output:
    the slope cannot be recovered from the output everywhere, and the output belongs to the
    user, who may change it in place (``out += residual``, ``nn.Dropout(inplace=True)``)
    before backward.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, beta: float, threshold: float) -> Tensor:
        return _aten.softplus(input, beta, threshold)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, beta, threshold = inputs
        ctx.beta, ctx.threshold = beta, threshold
        ctx.save_for_backward(input)
        ctx.save_for_forward(input)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (input,) = ctx.saved_tensors
        return _aten.softplus_backward(grad, input, ctx.beta, ctx.threshold), None, None


class SoftplusFunction(_Softplus):
    __doc__ = _Softplus.__doc__

    @staticmethod
    def jvp(ctx, tangent: Tensor, _beta, _threshold):
        (input,) = ctx.saved_tensors
        return _aten.softplus_backward(tangent, input, ctx.beta, ctx.threshold)
