"""Helpers for the fused eager paths of the activation Functions.

A fused path chains several elementwise torch kernels (``out=`` and in-place variants) on
fresh buffers. On a CPU, each kernel over a large tensor streams every operand through
main memory; :func:`blockwise` instead runs the whole chain on one cache-sized block at a
time with a few reused scratch buffers, so intermediates never leave the cache. Only the
inputs are read and the outputs written once.

These paths are for plain eager tensors only; :func:`fused_ok` says when they may be used.
Under ``torch.compile`` (which fuses by itself), ``torch.func`` transforms (whose wrapped
tensors do not support ``out=``) and double backward (which needs differentiable ops), the
Functions use their out-of-place formulas.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["blockwise", "block_size", "fused_ok", "times_small"]

# Elements per intra-op thread per block: 131072 float32 = 512 KiB per buffer and thread, so
# that a chain's few buffers stay in a core's L2 (or at worst L3) cache while each kernel call
# still has enough work to hide Python's per-call overhead (a few microseconds).
_PER_THREAD = 1 << 17
_MIN_BLOCK = 1 << 17


def block_size() -> int:
    """Elements per block: 131072 per intra-op thread, at least 131072."""
    return max(_MIN_BLOCK, _PER_THREAD * torch.get_num_threads())


def fused_ok(*tensors: Tensor) -> bool:
    """True when the fused (``out=``, in-place, blockwise) path may run on ``tensors``.

    False while tracing for ``torch.compile``, for tensors wrapped by ``torch.func``
    (``vmap``, ``grad``, ``jacrev``) and when grad mode is on (double backward needs the
    differentiable formulas).
    """
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return False
    return not any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


def blockwise(
    kernel: Callable[..., None],
    inputs: Sequence[Tensor],
    out_dtypes: Sequence[torch.dtype],
    scratch_dtypes: Sequence[torch.dtype] = (),
) -> list[Tensor]:
    """Evaluate an elementwise ``kernel`` block by block and return its outputs.

    ``kernel(*in_blocks, *out_blocks, *scratch)`` must write its results into the out blocks
    using only elementwise ops; it receives same-shaped views (1-d blocks of the flattened
    tensors, or the whole tensors). ``inputs`` must have one shape (their dtypes may differ);
    one output is made per entry of ``out_dtypes`` and one scratch buffer per entry of
    ``scratch_dtypes``.

    Contiguous CPU inputs larger than :func:`block_size` are split into 1-d blocks that reuse
    the same scratch buffers; anything else (small, strided, broadcast-expanded or non-CPU
    tensors) is processed in one call on whole tensors with fresh scratch buffers.
    """
    ref = inputs[0]
    outs = [torch.empty_like(ref, dtype=d) for d in out_dtypes]
    block = block_size()
    if ref.device.type != "cpu" or ref.numel() <= block or not all(t.is_contiguous() for t in inputs):
        kernel(*inputs, *outs, *(torch.empty_like(ref, dtype=d) for d in scratch_dtypes))
        return outs
    scratch = [torch.empty(block, dtype=d, device=ref.device) for d in scratch_dtypes]
    for parts in zip(*(t.view(-1).split(block) for t in (*inputs, *outs))):
        m = parts[0].numel()
        kernel(*parts, *(s if m == block else s[:m] for s in scratch))
    return outs


def times_small(grad: Tensor, small: Tensor) -> Tensor:
    """``grad * small`` for a 1-byte tensor (int8 sign, uint8 / bool mask) of ``grad``'s shape.

    torch's mixed-dtype multiply is slow on CPU; the fused path converts block by block.
    """
    if not fused_ok(grad, small):
        return grad * small.to(grad.dtype)
    if small.dtype == torch.bool:
        small = small.view(torch.uint8)  # same bytes; uint8 -> float converts faster than bool

    def kernel(g, q, res, scratch):
        torch.mul(g, scratch.copy_(q), out=res)

    return blockwise(kernel, [grad, small], [grad.dtype], [grad.dtype])[0]
