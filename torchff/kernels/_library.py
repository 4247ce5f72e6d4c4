"""The ``torchff`` op library and the one way ops are defined in it (:func:`define`)."""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["batch_first", "define", "elementwise_vmap", "lib"]

#: the ``torchff`` namespace; every op torchff registers lives here
lib = torch.library.Library("torchff", "DEF")


def define(
    schema: str,
    *,
    composite: Callable,
    fake: Callable,
    cpu: Callable | None = None,
    cuda: Callable | None = None,
    vmap: Callable | None = None,
) -> torch._ops.OpOverload:
    """Define ``torchff::<schema>`` with its implementations and return the op overload.

    ``schema`` is a ``torch.library`` schema, e.g. ``"leaky_mask(Tensor x, float a) -> (Tensor, Tensor)"``.
    ``composite`` (torch ops only) serves every device without a kernel of its own; ``cpu`` and
    ``cuda`` are the device kernels (``cpu`` is None when the C library is not built); ``fake``
    gives empty outputs of the right shapes and dtypes; ``vmap`` is a
    :func:`torch.library.register_vmap` rule (:func:`elementwise_vmap` for ops whose tensor
    arguments all have one shape), without which ``torch.func.vmap`` loops over the batch.

    Returns ``torch.ops.torchff.<name>.default``: calling the overload directly skips the
    packet's overload resolution.
    """
    name = schema.split("(", 1)[0].strip()
    lib.define(schema)
    lib.impl(name, composite, "CompositeExplicitAutograd")
    if cpu is not None:
        lib.impl(name, cpu, "CPU")
    if cuda is not None:
        lib.impl(name, cuda, "CUDA")
    torch.library.register_fake(f"torchff::{name}", fake, lib=lib)
    if vmap is not None:
        torch.library.register_vmap(f"torchff::{name}", vmap, lib=lib)
    return getattr(torch.ops.torchff, name).default


def batch_first(info, in_dims, *args) -> list:
    """``args`` for a vmap rule's body: each tensor with its batch at dim 0 (an unbatched one
    expanded to the batch, a view), anything else as it is."""
    return [
        (a.movedim(d, 0) if d is not None else a.expand(info.batch_size, *a.shape))
        if isinstance(a, torch.Tensor) else a
        for a, d in zip(args, in_dims)
    ]


def elementwise_vmap(op: Callable) -> Callable:
    """A vmap rule for an elementwise op whose tensor arguments all have one shape (non-tensor
    arguments pass through): every batched argument is moved to dim 0, unbatched ones are
    expanded to the batch, and each output is batched at dim 0."""

    def rule(info, in_dims, *args):
        out = op(*batch_first(info, in_dims, *args))
        if isinstance(out, tuple):
            return out, (0,) * len(out)
        return out, 0

    return rule
