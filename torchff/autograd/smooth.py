r"""Smooth activations: the logistic sigmoid and softplus, as autograd Functions.

* Sigmoid runs torch's own fused kernels (``aten::sigmoid`` / ``sigmoid_backward``), one kernel
  per direction on every device, and registers no ``torchff::`` op: torch already has the one
  vectorized kernel, which a torchff op could at best equal, and under ``torch.compile``
  inductor sees (and fuses) aten's ops.
* Softplus's forward is the ``torchff::softplus`` op (:mod:`torchff.kernels.smooth`): on CPU a
  C loop for float32 / float64, because torch's CPU ``softplus`` calls libm's scalar ``log1p``
  per element (``benchmarks/`` measures both); elsewhere (CUDA, half dtypes) the op's
  composite, ``aten::softplus`` itself. Its backward is torch's ``softplus_backward``, one
  vectorized pass from the input on every device.

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

from torchff.kernels.smooth import softplus as _softplus

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

    Numerics: the slopes are torch's bits; the values of float32 / float64 CPU tensors come
    from torchff's C loop, within 4 float32 ulps of the exact value (2 float64 ulps of
    torch's), the same as torch's at ±inf, nan and in the linear region (at the bottom of the
    subnormal tail torch's ``exp`` flushes to 0 values that the C loop keeps); other dtypes
    and devices run torch's kernel. Values and slopes keep float32's subnormal range: for
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
        return _softplus(input, beta, threshold)

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
