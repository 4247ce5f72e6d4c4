"""Functional API over torchff's autograd Functions.

Where torch has the op, the function here has its name, signature and defaults
(``torch.nn.functional`` or ``torch``), so ``import torchff.functional as F`` is a drop-in.
"""

from __future__ import annotations

import torch
from torch import Tensor

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
]


# --------------------------------------------------------------------------------------
# activations (torchff.autograd.rectifier, .smooth, .step)
# --------------------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    r"""ReLU, :math:`\max\{0, x\}`; ``relu'(0) = 0``. Saves only the output."""
    if inplace:
        if not (torch.is_grad_enabled() and input.requires_grad):
            return torch.relu_(input)  # no graph to record: torch's op returns the very object
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
        if not (torch.is_grad_enabled() and input.requires_grad):
            return torch.nn.functional.leaky_relu_(input, negative_slope)  # no graph to record
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
    if not (torch.is_grad_enabled() and input.requires_grad):
        return torch.abs(input)  # no graph: the sign would be computed for nothing
    return _rect.AbsFunction.apply(input)[0]


def _prelu_saves(input: Tensor, weight: Tensor) -> int:
    """The least :class:`~torchff.autograd.rectifier.PReLUFunction` needs to keep for these values."""
    saves = _rect.PReLUSaves
    need_input, need_weight = input.requires_grad, weight.requires_grad
    if not torch.is_grad_enabled() or not (need_input or need_weight):
        return saves.INPUT  # no graph: nothing is kept
    if torch.compiler.is_compiling() or any(
        torch._C._functorch.is_functorch_wrapped_tensor(t) for t in (input, weight)
    ):
        return saves.INPUT  # the slopes cannot be looked at
    w = weight.detach()
    if bool(((w > 0) & torch.isfinite(w)).all()):
        return saves.OUTPUT
    if not need_weight:
        return saves.OUTPUT if bool((w >= 0).all()) else saves.MASK
    return saves.INPUT


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    r"""PReLU, :math:`\max\{0, x\} + a\min\{0, x\}`; ``weight`` has 1 element or one per channel
    (dim 1 of ``input``), and is 0-d or 1-d, as torch's.

    Keeps the least the backward needs for the weight's values: the output when every slope is
    positive (0 extra bytes in a network), a bool mask when the weight needs no gradient and
    some slope is negative, the input otherwise (as torch).
    """
    if weight.numel() != 1:  # torch's checks, in torch's order
        if input.dim() == 0:
            raise RuntimeError("Not allow zero-dim input tensor.")
        channels = input.shape[1] if input.dim() > 1 else 1
        if weight.numel() != channels:
            raise RuntimeError(
                "Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                f"{weight.numel()} and channel size = {channels}."
            )
    if weight.dim() > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.dim()}")
    return _rect.PReLUFunction.apply(input, weight, _prelu_saves(input, weight))


def sigmoid(input: Tensor) -> Tensor:
    r"""Logistic sigmoid, :math:`1/(1 + e^{-x})`. Saves only the output."""
    return _smooth.SigmoidFunction.apply(input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    r"""Softplus, :math:`\frac{1}{\beta}\log(1 + e^{\beta x})`, linear where :math:`\beta x > \text{threshold}`.

    Saves only the output (torch keeps the input) for thresholds of at least 17.5 (37.5 in
    float64), which includes the default in float32/16; the input below them, as torch.
    """
    return _smooth.SoftplusFunction.apply(input, beta, threshold)


def binary_step(input: Tensor, ste: bool = False) -> Tensor:
    r"""Binary step, 0 for :math:`x < 0` and 1 for :math:`x \ge 0`.

    Zero gradient (the true derivative) by default; ``ste=True`` passes the gradient where
    :math:`|x| \le 1` (straight-through estimator).
    """
    return _step.BinaryStepFunction.apply(input, ste)
