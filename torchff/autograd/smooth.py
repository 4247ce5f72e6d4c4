"""Smooth activations: the logistic sigmoid and softplus, as autograd Functions.

Both backwards work from the output alone, which the next layer keeps anyway (softplus for
every threshold at which the output determines the derivative, see :class:`SoftplusFunction`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.autograd._blockwise import blockwise, fused_ok

__all__ = ["SigmoidFunction", "SoftplusFunction", "softplus_saves_output"]

_aten = torch.ops.aten


class SigmoidFunction(Function):
    r"""Logistic sigmoid, :math:`\sigma(x) = 1 / (1 + e^{-x})`, stable for any input.

    Backward: :math:`\sigma'(x) = \sigma(x)(1 - \sigma(x))`, from the output, with torch's
    fused (and differentiable) ``sigmoid_backward`` kernel.

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
        return _aten.sigmoid_backward(grad, out)


# --------------------------------------------------------------------------------------
# softplus
# --------------------------------------------------------------------------------------
_LOG2E = 1.0 / math.log(2.0)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16 / bfloat16 are computed in float32 and rounded once, as torch's CPU kernel does."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _linear_free_above(dtype: torch.dtype) -> float:
    r"""The threshold above which the output determines softplus' derivative exactly.

    Let :math:`p` be the compute dtype's precision (24 bits for float32, 53 for float64). For
    :math:`\beta x > (p + 1)\ln 2` (17.33 in float32, 37.43 in float64), the correctly rounded
    :math:`\sigma(\beta x)` is exactly 1 and :math:`x + \log(1 + e^{-\beta x})/\beta` rounds
    to exactly :math:`x`; a small margin is added for rounding in the exponent.
    """
    return 37.5 if _compute_dtype(dtype) == torch.float64 else 17.5


def softplus_saves_output(dtype: torch.dtype, beta: float, threshold: float) -> bool:
    """Whether :class:`SoftplusFunction` keeps the output (``True``) or the input, as torch."""
    beta, threshold = float(beta), float(threshold)
    finite_beta = math.isfinite(beta) and beta != 0.0
    # threshold nan: `beta * x > nan` is never true, so there is no linear region at all
    return finite_beta and (math.isnan(threshold) or threshold >= _linear_free_above(dtype))


def _softplus_kernel(x: Tensor, out: Tensor, s1: Tensor, s2: Tensor, s3: Tensor, beta: float) -> None:
    r"""``out = max(x, 0) + log(1 + exp(-|beta x|)) / beta`` (``min(x, 0)`` for ``beta < 0``).

    With ``q = sigmoid(-|beta x|)`` (vectorized, relatively accurate even for tiny ``q``),
    :math:`\log(1 + e^{-|t|}) = -\log(1 - q)`. ``v = fl(1 - q)`` and its exact rounding error
    ``e = (1 - v) - q`` (both exact: Sterbenz) give :math:`-\log(1 - q) = -\log(v + e)
    \approx -(\log v + e / v)`, accurate to the last bits even where ``q`` is below ``v``'s ulp
    (torch's ``log1p``, the usual remedy, is not vectorized on CPU).
    """
    q = torch.abs(x, out=s1)
    q.neg_() if abs(beta) == 1.0 else q.mul_(-abs(beta))
    q.sigmoid_()  # q = e^{-|t|} / (1 + e^{-|t|}), in [0, 1/2]
    v = torch.sub(1.0, q, out=s2)
    e = torch.sub(1.0, v, out=s3).sub_(q)
    minus_log1p_u = torch.log(v, out=s1).addcdiv_(e, v)  # log v + e / v = -log(1 + e^{-|t|})
    # max(x, 0) + l / beta (min(x, 0) for beta < 0); nan propagates through both terms
    (torch.clamp_min if beta > 0 else torch.clamp_max)(x, 0.0, out=out)
    out.sub_(minus_log1p_u, alpha=1.0 / beta) if beta != 1.0 else out.sub_(minus_log1p_u)


def _sigma_from_output_kernel(
    grad: Tensor, out: Tensor, res: Tensor, s1: Tensor, s2: Tensor, s3: Tensor, beta: float, cap: float
) -> None:
    r"""``res = grad * (1 - exp(-s))`` with ``s = beta * out``, accurate for tiny ``s``.

    ``w = exp(-s)`` is computed with the fast ``exp2``; whatever its rounding, ``w`` is
    exactly :math:`e^{-s'}` for :math:`s' = -\log w`, so :math:`1 - e^{-s} = (1 - w) +
    w (1 - e^{s' - s}) \approx (1 - w) + w\,(s + \log w)`, where ``1 - w`` is exact and the
    correction restores full relative accuracy when ``s`` is small (no ``expm1``, which is
    not vectorized on CPU). ``s`` is capped where ``1 - w`` already rounds to 1.
    """
    s = torch.mul(out, beta, out=s1).clamp_max_(cap) if beta != 1.0 else torch.clamp_max(out, cap, out=s1)
    w = torch.mul(s, -_LOG2E, out=s2).exp2_()
    correction = torch.log(w, out=s3).add_(s)
    sigma = torch.sub(1.0, w, out=s1).addcmul_(w, correction)
    torch.mul(sigma, grad, out=res)


def _softplus_plain(input: Tensor, beta: float) -> Tensor:
    """Out-of-place formula (torch.compile, torch.func); the same math as the fused kernel."""
    x = input.to(_compute_dtype(input.dtype))
    log1p_u = torch.log1p(torch.exp(x.abs() * -abs(beta)))
    if beta != 1.0:
        log1p_u = log1p_u / beta
    out = (torch.maximum if beta > 0 else torch.minimum)(x + log1p_u, log1p_u)
    return out.to(input.dtype)


class SoftplusFunction(Function):
    r"""Softplus, :math:`\zeta(x) = \frac{1}{\beta}\log(1 + e^{\beta x})`, exactly :math:`x`
    where :math:`\beta x > \text{threshold}` (torch's ``beta`` and ``threshold``).

    Backward: :math:`\zeta'(x) = \sigma(\beta x)`, exactly 1 where :math:`\beta x > \text{threshold}`.

    Saved for backward, the least that determines the derivative for the given arguments:

    * ``beta`` finite and non-zero and ``threshold`` at least 17.5 (float32, float16,
      bfloat16; 37.5 for float64), infinite or nan -- which includes torch's default 20 for
      every dtype but float64: the **output** (0 extra bytes per element in a network;
      torch's ``softplus`` keeps its input, 4 bytes for float32). From
      :math:`e^{\beta\zeta} = 1 + e^{\beta x}`, :math:`\sigma(\beta x) = 1 - e^{-\beta\zeta}`;
      above such a threshold this is 1 to the last bit, so the linear region needs no mask.
    * otherwise the **input**, as torch, with torch's own kernels: below that threshold two
      inputs, one on each side of it, can give the same output (mathematically
      :math:`\log(1 + e^{t}) > t`) with different derivatives, so the output does not suffice;
      ``beta = 0`` (a division by zero in the definition) and non-finite ``beta`` likewise.

    Numerics (float32): values and derivatives within 2.1 ulp of the exact ones for every
    input (torch's own kernel: 1 to 2.4), including the tails (:math:`\beta x \to -104`, where they
    are :math:`e^{\beta x}`); nan propagates; :math:`\pm\infty` give torch's values. Where
    torch overflows (:math:`\beta x > 88.7` with a threshold above it: torch returns inf and a
    nan gradient) the exact values :math:`x` and 1 are returned instead.

    Speed: the forward needs :math:`\log(1 + e^{-|\beta x|})` and the backward
    :math:`1 - e^{-s}` without torch's scalar (not vectorized) ``log1p`` / ``expm1``: see the
    kernels' docstrings. In eager mode they run block by block
    (:func:`torchff.autograd._blockwise.blockwise`).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, beta: float, threshold: float) -> Tensor:
        beta = float(beta)
        if not softplus_saves_output(input.dtype, beta, threshold):
            return torch.nn.functional.softplus(input, beta, threshold)
        if not fused_ok(input):
            return _softplus_plain(input, beta)
        cdt = _compute_dtype(input.dtype)
        x = input if input.dtype == cdt else input.to(cdt)
        (out,) = blockwise(lambda *t: _softplus_kernel(*t, beta=beta), [x], [cdt], [cdt] * 3)
        return out if out.dtype == input.dtype else out.to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, beta, threshold = inputs
        ctx.beta, ctx.threshold = float(beta), float(threshold)
        ctx.from_output = softplus_saves_output(input.dtype, beta, threshold)
        ctx.save_for_backward(output if ctx.from_output else input)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (saved,) = ctx.saved_tensors
        beta = ctx.beta
        if not ctx.from_output:
            return _aten.softplus_backward(grad, saved, beta, ctx.threshold), None, None
        cdt = _compute_dtype(saved.dtype)
        if not fused_ok(grad, saved):
            # differentiable (double backward) and torch.func / torch.compile friendly
            s = saved.to(cdt) * beta
            slope = torch.where(s > ctx.threshold, 1.0, -torch.expm1(-s))
            return (grad.to(cdt) * slope).to(grad.dtype), None, None
        cap = 80.0 if cdt == torch.float32 else 700.0  # exp(-cap) is normal and 1 - exp(-cap) == 1
        g = grad if grad.dtype == cdt else grad.to(cdt)
        out = saved if saved.dtype == cdt else saved.to(cdt)
        (res,) = blockwise(lambda *t: _sigma_from_output_kernel(*t, beta=beta, cap=cap), [g, out], [cdt], [cdt] * 3)
        return (res if res.dtype == grad.dtype else res.to(grad.dtype)), None, None
