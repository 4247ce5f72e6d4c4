"""Helpers for the fused eager paths of the activation Functions.

A fused path chains several elementwise torch kernels (``out=`` and in-place variants).
Chained over whole tensors, every intermediate is a fresh tensor as large as the input: it
streams through main memory, and on CPU a fresh multi-megabyte allocation often comes back
from the OS as untouched pages, paid for again on first write. :func:`blockwise` instead runs
the chain on one cache-sized block at a time, with a few scratch buffers that each thread
allocates once and reuses; only the inputs are read and the outputs written in full.

Where a chain needs no intermediate (one fresh output, then in-place kernels on it), the
Functions run it on whole tensors without these helpers.

These paths are for plain eager tensors only; :func:`fused_ok` says when they may be used.
Under ``torch.compile`` (which fuses by itself), ``torch.func`` transforms (whose wrapped
tensors do not support ``out=``) and double backward (which needs differentiable ops), the
Functions use their out-of-place formulas.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

__all__ = ["blockwise", "block_size", "fused_ok", "row_blocks", "scratch", "times_small"]

# Elements per intra-op thread per block: 1 Mi elements (4 MiB of float32 per buffer and thread).
# Each block runs a chain of parallel kernels, and every kernel ends at a barrier of the intra-op
# threads. Smaller blocks (128 Ki per thread) kept the chain in L2 and ran slightly faster on an
# idle machine, but when another process holds a core every barrier waits for it: with one
# busy competitor on 2 cores, PReLU forward+backward (4096 x 1024) took 34 ms with 128 Ki blocks
# against 15 ms with 1 Mi blocks (torch: 30-36 ms), and a loaded CI machine measured up to 15x
# slower. Fewer, larger blocks keep the fused paths robust to load.
_PER_THREAD = 1 << 20
_MIN_BLOCK = 1 << 17

_local = threading.local()


def block_size() -> int:
    """Elements per block: 1 Mi per intra-op thread (at least 128 Ki)."""
    return max(_MIN_BLOCK, _PER_THREAD * torch.get_num_threads())


def scratch(n: int, dtypes: Sequence[torch.dtype], device: torch.device) -> list[Tensor]:
    """One 1-d scratch buffer of ``n`` elements per entry of ``dtypes``, cached per thread.

    Each thread keeps, per (device, dtype), the few block-sized buffers (4 MiB of float32
    per intra-op thread each) its kernels have asked for at once, and hands them out again; larger requests get
    fresh buffers. Callers must not keep views past their own use: the next call on the same
    thread gets the same memory.
    """
    if n > block_size():  # e.g. one row larger than a block: not worth keeping
        return [torch.empty(n, dtype=d, device=device) for d in dtypes]
    pools = getattr(_local, "pools", None)
    if pools is None:
        pools = _local.pools = {}
    out, used = [], {}
    for d in dtypes:
        pool = pools.setdefault((torch.device(device), d), [])
        i = used.get(d, 0)
        used[d] = i + 1
        if i == len(pool) or pool[i].numel() < n:
            buf = torch.empty(block_size(), dtype=d, device=device)
            pool[i:i + 1] = [buf]
        out.append(pool[i][:n])
    return out


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
    one fresh output is made per entry of ``out_dtypes`` and one scratch buffer per entry of
    ``scratch_dtypes``.

    Contiguous CPU inputs larger than :func:`block_size` are split into 1-d blocks that share
    the thread's cached scratch buffers; anything else (small, strided, broadcast-expanded or
    non-CPU tensors) is processed in one call on whole tensors with fresh scratch buffers.
    """
    ref = inputs[0]
    outs = [torch.empty_like(ref, dtype=d) for d in out_dtypes]
    block = block_size()
    if ref.device.type != "cpu" or ref.numel() <= block or not all(t.is_contiguous() for t in inputs):
        kernel(*inputs, *outs, *(torch.empty_like(ref, dtype=d) for d in scratch_dtypes))
        return outs
    bufs = scratch(block, scratch_dtypes, ref.device)
    for parts in zip(*(t.view(-1).split(block) for t in (*inputs, *outs))):
        m = parts[0].numel()
        kernel(*parts, *(s if m == block else s[:m] for s in bufs))
    return outs


def row_blocks(shape: Sequence[int]) -> Iterator[slice]:
    """Slices of dim 0 that cover about :func:`block_size` elements each (at least one row).

    Blocks of whole rows keep every other dim intact, e.g. PReLU's channel dim 1.
    """
    rows = shape[0] if len(shape) else 1
    per_row = 1
    for s in shape[1:]:
        per_row *= s
    step = max(1, block_size() // max(1, per_row))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def _as_bytes(small: Tensor) -> Tensor:
    # bool -> float copies run ~10x faster from a uint8 view (same bytes: 0 or 1)
    return small.view(torch.uint8) if small.dtype == torch.bool else small


def _times_small_kernel(grad: Tensor, small: Tensor, out: Tensor) -> None:
    # widen into the output block itself, then multiply in place (~10% faster than a scratch block)
    torch.mul(out.copy_(small), grad, out=out)


def times_small(grad: Tensor, small: Tensor) -> Tensor:
    """``grad * small`` for a 1-byte tensor (int8 sign, bool mask) of ``grad``'s shape.

    Eager: one pass with the compiled kernels (:mod:`torchff.autograd._native`), else block by
    block, the 1-byte values widened into the fresh result and multiplied by ``grad`` in place
    while the block is in cache.
    """
    if not fused_ok(grad, small):
        return grad * small.to(grad.dtype)
    from torchff.autograd import _native  # (imports this module)

    small = _as_bytes(small)
    if _native.supports(grad, small):
        return _native.times_small(grad, small)
    return blockwise(_times_small_kernel, [grad, small], [grad.dtype])[0]
