"""Functional API over torchff's autograd Functions.

Where torch has the op, the function here has its name, signature and defaults
(``torch.nn.functional`` or ``torch``), so ``import torchff.functional as F`` is a drop-in.
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchff.autograd import maxout as _maxout
from torchff.autograd import rectifier as _rect
from torchff.autograd import smooth as _smooth
from torchff.autograd import step as _step

__all__ = [
    # activations
    "relu",
    "relu_",
    "leaky_relu",
    "leaky_relu_",
    "prelu",
    "softplus",
    "sigmoid",
    "generalized_relu",
    "abs_relu",
    "binary_step",
    # maxout units
    "maxout",
    "maxout_linear",
]


# --------------------------------------------------------------------------------------
# activations (torchff.autograd.rectifier, .smooth, .step)
# --------------------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    r"""ReLU, :math:`\max\{0, x\}`; ``relu'(0) = 0``. Saves only the output."""
    if inplace:
        return _rect.ReLUInplaceFunction.apply(input)
    return _rect.ReLUFunction.apply(input)


def relu_(input: Tensor) -> Tensor:
    """In-place :func:`relu`."""
    return relu(input, inplace=True)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    r"""Leaky ReLU, :math:`\max\{0, x\} + \text{negative\_slope}\cdot\min\{0, x\}`.

    Saves the output for a non-negative slope (0 extra bytes in a network), a bool mask otherwise.
    """
    if inplace:
        return _rect.LeakyReLUInplaceFunction.apply(input, negative_slope)
    return _rect.LeakyReLUFunction.apply(input, negative_slope)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """In-place :func:`leaky_relu`."""
    return leaky_relu(input, negative_slope, inplace=True)


def generalized_relu(input: Tensor, alpha: float | Tensor) -> Tensor:
    r"""The lecture's :math:`h = \max\{0, z\} + \alpha\min\{0, z\}`.

    A Python number ``alpha`` is a fixed slope (leaky ReLU's Function); a tensor ``alpha`` is
    learnable, with PReLU's layout (one value, or one per channel along dim 1).
    """
    if isinstance(alpha, Tensor):
        return prelu(input, alpha)
    return _rect.LeakyReLUFunction.apply(input, float(alpha))


def abs_relu(input: Tensor) -> Tensor:
    r"""Absolute value rectification, :math:`|x|` (the generalized ReLU with :math:`\alpha = -1`).

    Derivative :math:`\operatorname{sgn}(x)`, 0 at 0 as ``torch.abs``. Saves an int8 sign.
    """
    return _rect.AbsFunction.apply(input)


def _weight_is_inspectable(weight: Tensor) -> bool:
    if torch.compiler.is_compiling():
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(weight)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    r"""PReLU, :math:`\max\{0, x\} + a\min\{0, x\}`, ``weight`` of 1 or ``C`` (dim 1) elements.

    With every slope positive the backward works from the output (0 extra bytes in a network);
    otherwise it keeps the input, as torch.
    """
    if weight.dim() != 1 and weight.numel() != 1:
        raise RuntimeError(f"prelu: weight must be 1-d or have one element, got shape {tuple(weight.shape)}")
    if weight.numel() != 1:
        channels = input.shape[1] if input.dim() >= 2 else (input.shape[0] if input.dim() == 1 else 1)
        if weight.numel() != channels:
            raise RuntimeError(
                f"prelu: weight has {weight.numel()} elements but the input has {channels} channels "
                f"(dim 1 of shape {tuple(input.shape)})"
            )
    save_output = (
        torch.is_grad_enabled()
        and weight.requires_grad
        and _weight_is_inspectable(weight)
        and bool((weight.detach() > 0).all())
    )
    return _rect.PReLUFunction.apply(input, weight, save_output)


def sigmoid(input: Tensor) -> Tensor:
    r"""Logistic sigmoid, :math:`1/(1 + e^{-x})`. Saves only the output."""
    return _smooth.SigmoidFunction.apply(input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    r"""Softplus, :math:`\frac{1}{\beta}\log(1 + e^{\beta x})`, linear where :math:`\beta x > \text{threshold}`.

    Saves only the output (torch keeps the input).
    """
    return _smooth.SoftplusFunction.apply(input, beta, threshold)


def binary_step(input: Tensor, ste: bool = False) -> Tensor:
    r"""Binary step, 0 for :math:`x < 0` and 1 for :math:`x \ge 0`.

    Zero gradient (the true derivative) by default; ``ste=True`` passes the gradient where
    :math:`|x| \le 1` (straight-through estimator).
    """
    return _step.BinaryStepFunction.apply(input, ste)


# --------------------------------------------------------------------------------------
# maxout units (torchff.autograd.maxout)
# --------------------------------------------------------------------------------------
def _check_pieces(pieces: int) -> int:
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
        raise ValueError(f"maxout: pieces must be a positive int, got {pieces!r}")
    return pieces


def maxout(input: Tensor, pieces: int, dim: int = -1) -> Tensor:
    r"""Maxout along ``dim``: :math:`g_i = \max_{j < k} x_{ik + j}` with ``k = pieces``.

    Unit ``i`` takes the ``pieces`` consecutive elements ``i*k ... i*k + k - 1`` along ``dim``
    (``input.unflatten(dim, (-1, k)).amax(dim + 1)``), so the output has ``size // pieces``
    along ``dim``. The gradient goes to the first maximal piece of each group (the first nan
    in a group holding one), as ``torch.max``. Saves a 1-byte index per output element.

    Raises:
        ValueError: if ``pieces`` is not a positive int or does not divide the size along ``dim``.
    """
    pieces = _check_pieces(pieces)
    ndim = input.dim()
    if ndim == 0 or not -ndim <= dim < ndim:
        raise IndexError(f"maxout: dim {dim} is out of range for a {ndim}-d input")
    d = dim % ndim
    size = input.shape[d]
    if size % pieces != 0:
        raise ValueError(
            f"maxout: the size {size} of dim {dim} is not a multiple of pieces={pieces}"
        )
    return _maxout.MaxoutFunction.apply(input, pieces, d)[0]


def maxout_linear(input: Tensor, weight: Tensor, bias: Tensor | None = None, *, pieces: int) -> Tensor:
    r"""A layer of maxout units, ``maxout(linear(input, weight, bias), pieces)``, as one Function.

    ``weight`` is ``(out_features * pieces, in_features)`` and ``bias`` ``(out_features * pieces,)``
    (pieces of a unit on consecutive rows); ``input`` is ``(..., in_features)``; the output is
    ``(..., out_features)``. Backward in matrix form (:math:`\nabla_W = G^T X`,
    :math:`\nabla_X = G W`, :math:`\nabla_b = \sum G`); saves the input, the weight and a
    1-byte index per output element, never the pre-activation.
    """
    pieces = _check_pieces(pieces)
    if weight.dim() != 2:
        raise ValueError(f"maxout_linear: weight must be 2-d, got shape {tuple(weight.shape)}")
    if weight.shape[0] % pieces != 0:
        raise ValueError(
            f"maxout_linear: the {weight.shape[0]} rows of weight are not a multiple of pieces={pieces}"
        )
    return _maxout.MaxoutLinearFunction.apply(input, weight, bias, pieces)[0]
