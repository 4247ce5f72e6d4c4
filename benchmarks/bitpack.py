"""Prototype: bit-packed masks (8 elements a byte) for the Functions that save a bool mask.

torchff's mask-saving Functions keep one byte per element (a ``bool`` tensor): leaky ReLU with a
negative slope keeps ``z > 0``, the straight-through binary step keeps ``|z| <= 1``. Packing the
mask into bits cuts that to 1/8 of a byte per element, at the price of a pack in forward and an
unpack in backward. This module prototypes it, so that the suite can report its time and memory;
it is not part of the library unless it is cheap.

Packing: the bool mask is viewed as bytes (0/1), eight consecutive bytes as one ``int64`` word,
and one multiply gathers the eight low bits into the top byte
(``(word * 0x0102040810204080) >> 56``; the partial products never carry into each other because
each byte is 0 or 1). Unpacking looks each packed byte up in a 256-entry table of ``int64`` words
whose 8 bytes are that byte's bits. Both are single passes over ``numel / 8`` words, several times
faster than the plain shift-and-sum / shift-and-mask versions (:func:`pack_mask_sum`,
:func:`unpack_mask_shift`), which are kept for the comparison.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

_MAGIC = 0x0102040810204080


def pack_mask(mask: Tensor) -> Tensor:
    """A bool tensor as ``ceil(numel / 8)`` bytes, bit ``i % 8`` of byte ``i // 8`` is element ``i``."""
    flat = mask.reshape(-1).view(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    words = flat.view(torch.int64)
    return words.mul(_MAGIC).bitwise_right_shift_(56).to(torch.uint8)


_TABLES: dict = {}


def _unpack_table(device) -> Tensor:
    """256 ``int64`` words; the 8 bytes of word ``b`` are the bits of ``b`` (lowest first) as 0/1."""
    key = str(device)
    if key not in _TABLES:
        bits = (torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1
        _TABLES[key] = bits.to(torch.uint8).contiguous().view(torch.int64).squeeze(1).to(device)
    return _TABLES[key]


def unpack_mask(packed: Tensor, shape) -> Tensor:
    """The inverse of :func:`pack_mask`, as a bool tensor of ``shape``: one table lookup per byte."""
    numel = 1
    for d in shape:
        numel *= d
    words = _unpack_table(packed.device).index_select(0, packed.to(torch.int32))
    return words.view(torch.uint8)[:numel].view(torch.bool).view(shape)


def unpack_mask_shift(packed: Tensor, shape) -> Tensor:
    """The plain alternative to :func:`unpack_mask`: shift by 0..7 and keep the low bit (slower)."""
    numel = 1
    for d in shape:
        numel *= d
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = packed.unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and_(1)
    return bits.view(-1)[:numel].view(torch.bool).view(shape)


def pack_mask_sum(mask: Tensor) -> Tensor:
    """The plain alternative: shift each of 8 bytes into place and sum (for the timing comparison)."""
    flat = mask.reshape(-1).view(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=mask.device)
    return flat.view(-1, 8).mul(weights).sum(-1, dtype=torch.uint8)


def _save_mask(ctx, mask: Tensor, packed: bool) -> None:
    ctx.shape, ctx.packed = mask.shape, packed
    ctx.save_for_backward(pack_mask(mask) if packed else mask)


def _load_mask(ctx) -> Tensor:
    (saved,) = ctx.saved_tensors
    return unpack_mask(saved, ctx.shape) if ctx.packed else saved


class MaskLeakyReLU(Function):
    """Leaky ReLU for a negative slope, saving the mask ``z > 0`` as bools or bit-packed.

    ``apply(input, negative_slope, packed)``. The two variants run the same kernels but for the
    pack / unpack, so their time ratio is the cost of packing.
    """

    @staticmethod
    def forward(input: Tensor, negative_slope: float, packed: bool) -> Tensor:
        return torch.nn.functional.leaky_relu(input, negative_slope)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, ctx.alpha, packed = inputs
        _save_mask(ctx, input > 0, packed)

    @staticmethod
    def backward(ctx, grad):
        pos = _load_mask(ctx)
        return torch.ops.aten.leaky_relu_backward(grad, pos.to(grad.dtype), ctx.alpha, False), None, None


class MaskBinaryStepSTE(Function):
    """Binary step with the straight-through gradient, saving ``|z| <= 1`` as bools or bit-packed.

    ``apply(input, packed)``.
    """

    @staticmethod
    def forward(input: Tensor, packed: bool) -> Tensor:
        return torch.heaviside(input, torch.ones((), dtype=input.dtype, device=input.device))

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save_mask(ctx, inputs[0].abs() <= 1, inputs[1])

    @staticmethod
    def backward(ctx, grad):
        return grad * _load_mask(ctx), None
