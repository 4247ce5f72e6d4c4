r"""Softplus's forward as a ``torchff::`` op (:mod:`torchff.autograd.smooth`).

* ``softplus(Tensor x, float beta, float threshold) -> Tensor``: torch's
  :math:`x` where :math:`\beta x > \text{threshold}`, else :math:`\log(1 + e^{\beta x})/\beta`;
  a fresh contiguous tensor of ``x``'s shape and dtype.

Implementations: the C loop of ``torchff/csrc/smooth.c`` on CPU for float32 and float64 (torch's
CPU ``log1p`` is a scalar libm call per element; the C loop's float32 ``exp`` / ``log1p`` are
branch-free and vectorize, within 4 float32 ulps of the exact value (``tests/test_softplus.py``
sweeps the range), the subnormal tail kept); the composite, ``aten::softplus`` itself, for every other device and dtype (CUDA: torch's
one elementwise kernel, which moves the least bytes already; half and bfloat16 on CPU; integer
inputs raise torch's ``NotImplementedError``). The composite runs below the op, so autocast's
rule for ``softplus`` applies to it as to torch's (float32 on CUDA).

The backward needs no op: ``aten::softplus_backward`` is one vectorized pass from the input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchff.kernels import _c
from torchff.kernels._library import define, elementwise_vmap

__all__ = ["softplus"]

_C = _c.function("softplus")
_aten = torch.ops.aten


def _softplus_composite(x: Tensor, beta: float, threshold: float) -> Tensor:
    return _aten.softplus(x.contiguous(), beta, threshold)


def _softplus_cpu(x: Tensor, beta: float, threshold: float) -> Tensor:
    fn = _C.get(x.dtype)
    if fn is None:
        return _softplus_composite(x, beta, threshold)
    x = x.contiguous()
    out = torch.empty_like(x)
    fn(x.data_ptr(), out.data_ptr(), beta, threshold, x.numel())
    return out


softplus = define(
    "softplus(Tensor x, float beta, float threshold) -> Tensor",
    composite=_softplus_composite,
    fake=_softplus_composite,  # aten's meta rules: shape, dtype, and torch's error for integer inputs
    cpu=_softplus_cpu if _C is not None else None,
    vmap=elementwise_vmap(lambda x, beta, threshold: softplus(x, beta, threshold)),
)
