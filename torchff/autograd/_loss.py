"""What the loss Functions share: torch's reduction enum, the compute dtype, reductions,
summing a broadcast gradient back to its argument's shape, and the dtype checks.

One spelling of each, imported by :mod:`torchff.autograd.bernoulli`,
:mod:`torchff.autograd.regression` and :mod:`torchff.autograd.cross_entropy`. The names here
are the module's stable API: new helpers are added, existing ones keep their name and meaning.
``compute_dtype``, ``result_dtype`` and the reduction enum are :mod:`torchff.kernels._common`'s
(the kernels use them too, and may not import this package).
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchff.kernels._common import MEAN, NONE, SUM, compute_dtype, result_dtype

__all__ = [
    "NONE",
    "MEAN",
    "SUM",
    "compute_dtype",
    "result_dtype",
    "mean_scale",
    "reduce",
    "sum_to",
    "check_floating",
    "scalar_name",
]


def reduce(elements: Tensor, reduction: int, denominator: Tensor | None = None) -> Tensor:
    """``elements`` for ``NONE``, their sum for ``SUM``; for ``MEAN`` the sum divided by
    ``denominator`` (a tensor: a weight total) or by the element count (nan when empty, as torch)."""
    if reduction == NONE:
        return elements
    if reduction == SUM:
        return elements.sum()
    if denominator is None:
        return elements.mean()
    return elements.sum() / denominator


def mean_scale(count: int) -> float:
    """The factor a mean's gradient is scaled by: ``1 / count`` (nan for no elements, whose
    gradient is empty anyway)."""
    return 1.0 / count if count else float("nan")


def sum_to(t: Tensor | None, shape: torch.Size) -> Tensor | None:
    """``t`` summed down to ``shape`` (the gradient of a broadcast argument); None stays None."""
    return t if t is None or t.shape == shape else t.sum_to_size(shape)


def check_floating(name: str, *tensors: Tensor | None, complex_ok: bool = False) -> None:
    """Raise torch's ``NotImplementedError`` (``"<name>" not implemented for 'Long'``) when a
    tensor is an integer or bool tensor (or complex, unless ``complex_ok``), as torch's loss
    kernels refuse those dtypes."""
    for t in tensors:
        if t is None or t.is_floating_point() or (complex_ok and t.is_complex()):
            continue
        raise NotImplementedError(f'"{name}" not implemented for \'{scalar_name(t.dtype)}\'')


_SCALAR_NAMES = {
    torch.float16: "Half", torch.bfloat16: "BFloat16", torch.float32: "Float", torch.float64: "Double",
    torch.uint8: "Byte", torch.int8: "Char", torch.int16: "Short", torch.int32: "Int", torch.int64: "Long",
    torch.bool: "Bool", torch.complex64: "ComplexFloat", torch.complex128: "ComplexDouble",
}


def scalar_name(dtype: torch.dtype) -> str:
    """torch's C++ name of ``dtype`` (``Float``, ``Half``, ``Long``, ...), as its error messages
    spell it (``expected scalar type Float but found Half``)."""
    return _SCALAR_NAMES.get(dtype, str(dtype).removeprefix("torch."))
