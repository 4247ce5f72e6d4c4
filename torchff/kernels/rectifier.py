"""The rectifier family's ops: a value and its 1-byte mask or sign in one pass, and the backwards
that read them (:mod:`torchff.autograd.rectifier`, :mod:`torchff.autograd.step`).

========================  ==========================================================================
op                        computes
========================  ==========================================================================
``leaky_mask(x, a)``      ``(x * (x > 0 ? 1 : a), x > 0)``: leaky ReLU and its bool mask
``leaky_backward(g, m, a)``  ``g * (m ? 1 : a)``
``abs_sign(x)``           ``(|x|, sgn(x))``, the sign as int8 (0 at ±0 and at nan)
``times_small(g, s)``     ``g * s`` for an int8 sign or a bool mask ``s``
``step(x, ste)``          ``(x != x ? x : x >= 0, |x| <= 1)``; the mask is empty unless ``ste``
``prelu(x, w, mask)``     ``(x * (x > 0 ? 1 : w_c), x > 0)``; the mask is empty unless ``mask``
``prelu_backward(g, s, w, need_input, need_weight)``  the input's gradient and the weight's
                          (summed per channel in the kernel); ``s`` is the input, or the bool
                          mask ``x > 0`` when the weight needs no gradient; an output not needed
                          is an empty tensor
========================  ==========================================================================

PReLU's channel is dim 1 (torch's layout): ``w`` has one element (shared) or ``x.shape[1]``.
Every output is a fresh contiguous tensor of its input's shape; inputs may be strided (they are
made contiguous first). Masks are ``torch.bool`` (1 byte per element).

Implementations: the C loops of ``torchff/csrc/rectifier.c`` on CPU for float32 and float64
(other CPU dtypes take the composite, which computes as torch's CPU kernels do: half and
bfloat16 in float32, rounded once), the Triton kernels of
:mod:`torchff.kernels.triton.rectifier` on CUDA (float32, float16, bfloat16; float64 takes the
composite), the composite elsewhere. The C loops give the composite's values bit for bit,
except the weight's gradient of ``prelu_backward``, which C sums in float64 (torch sums in the
input's dtype).
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchff.kernels import _c
from torchff.kernels._library import batch_first, define, elementwise_vmap

__all__ = ["abs_sign", "leaky_backward", "leaky_mask", "prelu", "prelu_backward", "step", "times_small"]

_C = {
    "leaky_mask": _c.function("leaky_mask"),
    "leaky_backward": _c.function("leaky_backward"),
    "abs_sign": _c.function("abs_sign"),
    "times_small": _c.function("times_small"),
    "step": _c.function("step"),
    "step_inside": _c.function("step_inside"),
    "prelu": _c.function("prelu"),
    "prelu_backward": _c.function("prelu_backward"),
    "prelu_backward_mask": _c.function("prelu_backward_mask"),
}
_HAVE_C = _c.available()


def _triton():
    from torchff.kernels.triton import rectifier

    return rectifier


def _empty_like(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A fresh contiguous tensor of ``x``'s shape (the fake implementations' outputs)."""
    return torch.empty(x.shape, dtype=x.dtype if dtype is None else dtype, device=x.device)


def _fresh(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``_empty_like`` for a contiguous ``x``, by the cheaper ``torch.empty_like``."""
    return torch.empty_like(x, dtype=dtype)


def _none(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """The empty tensor standing for an output that is not wanted."""
    return torch.empty(0, dtype=x.dtype if dtype is None else dtype, device=x.device)


def _c_fn(name: str, *tensors: Tensor):
    """The C function for these tensors (the floating ones all of the first one's dtype,
    float32/float64), or None."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        if t.dtype != dtype and t.is_floating_point():
            return None
    return _C[name].get(dtype)


# --------------------------------------------------------------------------------------
# leaky ReLU with a fixed slope: value + mask, and the backward from the mask
# --------------------------------------------------------------------------------------
def _leaky_mask_composite(x: Tensor, a: float) -> tuple[Tensor, Tensor]:
    x = x.contiguous()
    return torch.nn.functional.leaky_relu(x, a), x > 0


def _leaky_mask_cpu(x: Tensor, a: float) -> tuple[Tensor, Tensor]:
    fn = _C["leaky_mask"].get(x.dtype)
    if fn is None:
        return _leaky_mask_composite(x, a)
    x = x.contiguous()
    out, mask = _fresh(x), _fresh(x, torch.bool)
    fn(x.data_ptr(), out.data_ptr(), mask.data_ptr(), a, x.numel())
    return out, mask


def _leaky_mask_cuda(x: Tensor, a: float) -> tuple[Tensor, Tensor]:
    if x.dtype == torch.float64:
        return _leaky_mask_composite(x, a)
    return _triton().leaky_mask(x, a)


leaky_mask = define(
    "leaky_mask(Tensor x, float a) -> (Tensor, Tensor)",
    composite=_leaky_mask_composite,
    fake=lambda x, a: (_empty_like(x), _empty_like(x, torch.bool)),
    cpu=_leaky_mask_cpu if _HAVE_C else None,
    cuda=_leaky_mask_cuda,
    vmap=elementwise_vmap(lambda x, a: leaky_mask(x, a)),
)


def _leaky_backward_composite(grad: Tensor, mask: Tensor, a: float) -> Tensor:
    grad = grad.contiguous()
    return torch.where(mask, grad, grad * a)


def _leaky_backward_cpu(grad: Tensor, mask: Tensor, a: float) -> Tensor:
    fn = _C["leaky_backward"].get(grad.dtype)
    if fn is None:
        return _leaky_backward_composite(grad, mask, a)
    grad, mask = grad.contiguous(), mask.contiguous()
    out = _fresh(grad)
    fn(grad.data_ptr(), mask.data_ptr(), out.data_ptr(), a, out.numel())
    return out


def _leaky_backward_cuda(grad: Tensor, mask: Tensor, a: float) -> Tensor:
    if grad.dtype == torch.float64:
        return _leaky_backward_composite(grad, mask, a)
    return _triton().leaky_backward(grad, mask, a)


leaky_backward = define(
    "leaky_backward(Tensor grad, Tensor mask, float a) -> Tensor",
    composite=_leaky_backward_composite,
    fake=lambda grad, mask, a: _empty_like(grad),
    cpu=_leaky_backward_cpu if _HAVE_C else None,
    cuda=_leaky_backward_cuda,
    vmap=elementwise_vmap(lambda g, m, a: leaky_backward(g, m, a)),
)


# --------------------------------------------------------------------------------------
# absolute value: value + int8 sign; gradient times a 1-byte tensor
# --------------------------------------------------------------------------------------
def _abs_sign_composite(x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.contiguous()
    return torch.abs(x), torch.sign(x).to(torch.int8)


def _abs_sign_cpu(x: Tensor) -> tuple[Tensor, Tensor]:
    fn = _C["abs_sign"].get(x.dtype)
    if fn is None:
        return _abs_sign_composite(x)
    x = x.contiguous()
    out, sign = _fresh(x), _fresh(x, torch.int8)
    fn(x.data_ptr(), out.data_ptr(), sign.data_ptr(), x.numel())
    return out, sign


def _abs_sign_cuda(x: Tensor) -> tuple[Tensor, Tensor]:
    if x.dtype == torch.float64:
        return _abs_sign_composite(x)
    return _triton().abs_sign(x)


abs_sign = define(
    "abs_sign(Tensor x) -> (Tensor, Tensor)",
    composite=_abs_sign_composite,
    fake=lambda x: (_empty_like(x), _empty_like(x, torch.int8)),
    cpu=_abs_sign_cpu if _HAVE_C else None,
    cuda=_abs_sign_cuda,
    vmap=elementwise_vmap(lambda x: abs_sign(x)),
)


def _times_small_composite(grad: Tensor, small: Tensor) -> Tensor:
    return grad.contiguous() * small.to(grad.dtype)


def _times_small_cpu(grad: Tensor, small: Tensor) -> Tensor:
    fn = _C["times_small"].get(grad.dtype)
    if fn is None:
        return _times_small_composite(grad, small)
    grad, small = grad.contiguous(), small.contiguous()
    out = _fresh(grad)
    # a bool is one byte holding 0 or 1: read as int8
    fn(grad.data_ptr(), small.data_ptr(), out.data_ptr(), out.numel())
    return out


def _times_small_cuda(grad: Tensor, small: Tensor) -> Tensor:
    if grad.dtype == torch.float64:
        return _times_small_composite(grad, small)
    return _triton().times_small(grad, small)


times_small = define(
    "times_small(Tensor grad, Tensor small) -> Tensor",
    composite=_times_small_composite,
    fake=lambda grad, small: _empty_like(grad),
    cpu=_times_small_cpu if _HAVE_C else None,
    cuda=_times_small_cuda,
    vmap=elementwise_vmap(lambda g, s: times_small(g, s)),
)


# --------------------------------------------------------------------------------------
# binary step: value (+ the straight-through mask |x| <= 1)
# --------------------------------------------------------------------------------------
def _step_composite(x: Tensor, ste: bool) -> tuple[Tensor, Tensor]:
    x = x.contiguous()
    # floor(clamp(x, -1, 0)) is -1 for x < 0 and 0 for x >= 0 (-0.0 included); nan stays nan
    out = torch.clamp(x, -1.0, 0.0).floor_().add_(1.0)
    return out, (torch.abs(x) <= 1.0) if ste else _none(x, torch.bool)


def _step_cpu(x: Tensor, ste: bool) -> tuple[Tensor, Tensor]:
    fn = _C["step_inside" if ste else "step"].get(x.dtype)
    if fn is None:
        return _step_composite(x, ste)
    x = x.contiguous()
    out = _fresh(x)
    if not ste:
        fn(x.data_ptr(), out.data_ptr(), x.numel())
        return out, _none(x, torch.bool)
    inside = _fresh(x, torch.bool)
    fn(x.data_ptr(), out.data_ptr(), inside.data_ptr(), x.numel())
    return out, inside


def _step_cuda(x: Tensor, ste: bool) -> tuple[Tensor, Tensor]:
    if x.dtype == torch.float64:
        return _step_composite(x, ste)
    return _triton().step(x, ste)


def _step_fake(x: Tensor, ste: bool) -> tuple[Tensor, Tensor]:
    return _empty_like(x), _empty_like(x, torch.bool) if ste else _none(x, torch.bool)


def _step_vmap(info, in_dims, x, ste):
    x = x.movedim(in_dims[0], 0)
    out, inside = step(x, ste)
    return (out, inside), (0, 0 if ste else None)


step = define(
    "step(Tensor x, bool ste) -> (Tensor, Tensor)",
    composite=_step_composite,
    fake=_step_fake,
    cpu=_step_cpu if _HAVE_C else None,
    cuda=_step_cuda,
    vmap=_step_vmap,
)


# --------------------------------------------------------------------------------------
# PReLU: value (+ mask), and both gradients with the weight's summed in the kernel
# --------------------------------------------------------------------------------------
def channel_view(weight: Tensor, ndim: int) -> Tensor:
    """PReLU's weight shaped to broadcast along dim 1 of an ``ndim``-d input (one weight: 0-d)."""
    if weight.numel() == 1:
        return weight.reshape(())
    return weight.reshape([-1 if d == 1 else 1 for d in range(ndim)])


def geometry(x: Tensor, weight: Tensor) -> tuple[int, int]:
    """``(C, inner)``: ``x`` seen as ``(outer, C, inner)`` with the weight's channel in the middle
    (one weight: ``C = 1`` and ``inner`` the whole tensor)."""
    if weight.numel() == 1:
        return 1, max(1, x.numel())
    c = x.shape[1]
    return c, max(1, x[0, 0].numel())


def _prelu_composite(x: Tensor, weight: Tensor, with_mask: bool) -> tuple[Tensor, Tensor]:
    x = x.contiguous()
    out = torch._prelu_kernel(x, channel_view(weight, x.dim()))  # x > 0 ? x : w_c x
    return out, (x > 0) if with_mask else _none(x, torch.bool)


def _prelu_cpu(x: Tensor, weight: Tensor, with_mask: bool) -> tuple[Tensor, Tensor]:
    fn = _c_fn("prelu", x, weight)
    if fn is None or x.numel() == 0:
        return _prelu_composite(x, weight, with_mask)
    x, weight = x.contiguous(), weight.contiguous()
    C, inner = geometry(x, weight)
    out = _fresh(x)
    mask = _fresh(x, torch.bool) if with_mask else _none(x, torch.bool)
    fn(x.data_ptr(), weight.data_ptr(), out.data_ptr(), mask.data_ptr() if with_mask else None, C, inner, x.numel())
    return out, mask


def _prelu_cuda(x: Tensor, weight: Tensor, with_mask: bool) -> tuple[Tensor, Tensor]:
    if x.dtype == torch.float64 or weight.dtype != x.dtype:
        return _prelu_composite(x, weight, with_mask)
    return _triton().prelu(x, weight, with_mask)


def _prelu_fake(x: Tensor, weight: Tensor, with_mask: bool) -> tuple[Tensor, Tensor]:
    return _empty_like(x), _empty_like(x, torch.bool) if with_mask else _none(x, torch.bool)


def _batched_weight_view(w: Tensor, ndim: int) -> Tensor:
    """A batch of weights ``(B, ...)`` shaped to broadcast against a batch of ``ndim``-d inputs."""
    if w.shape[1:].numel() == 1:
        return w.reshape([w.shape[0]] + [1] * ndim)
    return w.reshape([w.shape[0]] + [-1 if d == 1 else 1 for d in range(ndim)])


def _prelu_vmap(info, in_dims, x, weight, with_mask):
    # the slopes may differ per sample: broadcasting torch ops on the batched tensors
    x, weight = batch_first(info, in_dims, x, weight)
    out = torch._prelu_kernel(x, _batched_weight_view(weight, x.dim() - 1))
    if with_mask:
        return (out, x > 0), (0, 0)
    return (out, _none(x, torch.bool)), (0, None)


prelu = define(
    "prelu(Tensor x, Tensor weight, bool with_mask) -> (Tensor, Tensor)",
    composite=_prelu_composite,
    fake=_prelu_fake,
    cpu=_prelu_cpu if _HAVE_C else None,
    cuda=_prelu_cuda,
    vmap=_prelu_vmap,
)


def _reduce_to_weight(t: Tensor, weight: Tensor) -> Tensor:
    """Sum ``t`` over every dim but dim 1 (over all for one weight), shaped as ``weight``."""
    if weight.numel() == 1:
        return t.sum().reshape(weight.shape)
    dims = [d for d in range(t.dim()) if d != 1]
    return (t.sum(dims) if dims else t).reshape(weight.shape)


def _prelu_backward_composite(
    grad: Tensor, saved: Tensor, weight: Tensor, need_input: bool, need_weight: bool
) -> tuple[Tensor, Tensor]:
    torch._check(saved.dtype != torch.bool or not need_weight, lambda: "prelu_backward: a mask gives no weight gradient")
    grad, saved = grad.contiguous(), saved.contiguous()
    positive = saved if saved.dtype == torch.bool else saved > 0
    gi = torch.where(positive, grad, grad * channel_view(weight, grad.dim())) if need_input else _none(grad)
    if need_weight:
        gw = _reduce_to_weight(torch.where(positive, 0.0, saved * grad), weight)
    else:
        gw = _none(weight)
    return gi, gw


def _prelu_backward_cpu(
    grad: Tensor, saved: Tensor, weight: Tensor, need_input: bool, need_weight: bool
) -> tuple[Tensor, Tensor]:
    from_mask = saved.dtype == torch.bool
    fn = _c_fn("prelu_backward_mask" if from_mask else "prelu_backward", grad, weight, saved)
    if fn is None or grad.numel() == 0 or (from_mask and need_weight) or not (need_input or need_weight):
        return _prelu_backward_composite(grad, saved, weight, need_input, need_weight)
    grad, saved, weight = grad.contiguous(), saved.contiguous(), weight.contiguous()
    C, inner = geometry(grad, weight)
    gi = _fresh(grad) if need_input else _none(grad)
    gp, sp, wp, ip = grad.data_ptr(), saved.data_ptr(), weight.data_ptr(), gi.data_ptr() if need_input else None
    if from_mask:
        fn(gp, sp, wp, ip, C, inner, grad.numel())
        return gi, _none(weight)
    gw = torch.empty(weight.shape, dtype=weight.dtype) if need_weight else _none(weight)
    if fn(gp, sp, wp, ip, gw.data_ptr() if need_weight else None, C, inner, grad.numel()) < 0:
        raise MemoryError("prelu_backward: no memory for the weight gradient's partial sums")
    return gi, gw


def _prelu_backward_cuda(
    grad: Tensor, saved: Tensor, weight: Tensor, need_input: bool, need_weight: bool
) -> tuple[Tensor, Tensor]:
    if grad.dtype == torch.float64 or weight.dtype != grad.dtype or (saved.dtype == torch.bool and need_weight):
        return _prelu_backward_composite(grad, saved, weight, need_input, need_weight)
    return _triton().prelu_backward(grad, saved, weight, need_input, need_weight)


def _prelu_backward_fake(grad, saved, weight, need_input, need_weight):
    return (_empty_like(grad) if need_input else _none(grad)), (_empty_like(weight) if need_weight else _none(weight))


def _prelu_backward_vmap(info, in_dims, grad, saved, weight, need_input, need_weight):
    grad, saved, weight = batch_first(info, in_dims, grad, saved, weight)
    positive = saved if saved.dtype == torch.bool else saved > 0
    w = _batched_weight_view(weight, grad.dim() - 1)
    gi = torch.where(positive, grad, grad * w) if need_input else _none(grad)
    gw = _none(weight)
    if need_weight:
        t = torch.where(positive, 0.0, saved * grad)
        per_channel = weight.shape[1:].numel() > 1
        dims = [d for d in range(1, t.dim()) if not (per_channel and d == 2)]
        gw = (t.sum(dims) if dims else t).reshape(weight.shape)
    return (gi, gw), (0 if need_input else None, 0 if need_weight else None)


prelu_backward = define(
    "prelu_backward(Tensor grad, Tensor saved, Tensor weight, bool need_input, bool need_weight)"
    " -> (Tensor, Tensor)",
    composite=_prelu_backward_composite,
    fake=_prelu_backward_fake,
    cpu=_prelu_backward_cpu if _HAVE_C else None,
    cuda=_prelu_backward_cuda,
    vmap=_prelu_backward_vmap,
)
