"""Activation modules over :mod:`torchff.functional`.

The drop-ins subclass their ``torch.nn`` counterparts, so constructor arguments, attribute
and parameter names, ``state_dict`` keys, ``extra_repr`` and ``isinstance`` checks are torch's;
only ``forward`` runs torchff's Functions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from torchff import functional as F
from torchff.nn.registry import register_activation

__all__ = [
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "Softplus",
    "Sigmoid",
    "GeneralizedReLU",
    "AbsReLU",
    "BinaryStep",
]


@register_activation("relu")
class ReLU(nn.ReLU):
    r"""ReLU, :math:`\max\{0, x\}`. Drop-in for :class:`torch.nn.ReLU`.

    Shape: any; output has the input's shape. Saves only the output for backward.

    Example::

        >>> m = torchff.nn.ReLU()
        >>> m(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 2.])
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input, inplace=self.inplace)


@register_activation("leaky_relu", "leakyrelu")
class LeakyReLU(nn.LeakyReLU):
    r"""Leaky ReLU, :math:`\max\{0, x\} + \text{negative\_slope}\cdot\min\{0, x\}`.

    Drop-in for :class:`torch.nn.LeakyReLU`; saves the output (slope >= 0), else a bool mask (the
    input, as torch, in the ``"speed"`` save mode: :mod:`torchff.autograd.mode`).
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope, self.inplace)


@register_activation("prelu")
class PReLU(nn.PReLU):
    r"""PReLU, :math:`\max\{0, x\} + a\min\{0, x\}` with learnable ``weight`` (1 or ``num_parameters``
    slopes, along dim 1). Drop-in for :class:`torch.nn.PReLU` (same ``weight`` parameter).

    Saves the output while every slope is positive, a bool mask when the weight is frozen and
    some slope is negative, the input otherwise (as torch).
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)


@register_activation("softplus")
class Softplus(nn.Softplus):
    r"""Softplus, :math:`\frac{1}{\beta}\log(1 + e^{\beta x})`, linear where :math:`\beta x >`
    ``threshold``. Drop-in for :class:`torch.nn.Softplus`.

    torch's kernels; saves the input, as torch (never the output, which may be changed in
    place before backward).
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)


@register_activation("sigmoid", "logistic")
class Sigmoid(nn.Sigmoid):
    r"""Logistic sigmoid, :math:`1/(1 + e^{-x})`. Drop-in for :class:`torch.nn.Sigmoid`."""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


@register_activation("generalized_relu", "grelu")
class GeneralizedReLU(nn.Module):
    r"""The lecture's generalized rectifier, :math:`h = \max\{0, z\} + \alpha\min\{0, z\}`.

    Args:
        alpha: the slope for :math:`z < 0` (0: ReLU, 0.01: leaky, -1: absolute value).
        learnable: make :math:`\alpha` a parameter (``weight``, as PReLU; initialised to ``alpha``).
        num_parameters: with ``learnable``, 1 or the number of channels (dim 1).

    Shape: any (with ``num_parameters > 1``, dim 1 is the channel dim).

    Example::

        >>> GeneralizedReLU(alpha=-1.0)(torch.tensor([-2.0, 3.0]))
        tensor([2., 3.])
    """

    def __init__(self, alpha: float = 0.0, learnable: bool = False, num_parameters: int = 1,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.learnable = bool(learnable)
        self.num_parameters = int(num_parameters)
        if self.learnable:
            self.weight = nn.Parameter(torch.empty(self.num_parameters, device=device, dtype=dtype))
            self.reset_parameters()
        elif self.num_parameters != 1:
            raise ValueError("num_parameters > 1 needs learnable=True")

    def reset_parameters(self) -> None:
        """Set every learnable slope back to ``alpha`` (as :class:`torch.nn.PReLU` to ``init``)."""
        if self.learnable:
            nn.init.constant_(self.weight, self.alpha)

    def forward(self, input: Tensor) -> Tensor:
        if self.learnable:
            return F.prelu(input, self.weight)
        return F.generalized_relu(input, self.alpha)

    def extra_repr(self) -> str:
        s = f"alpha={self.alpha}"
        if self.learnable:
            s += f", learnable=True, num_parameters={self.num_parameters}"
        return s


@register_activation("abs_relu", "abs", "absolute")
class AbsReLU(nn.Module):
    r"""Absolute value rectification, :math:`|x|`; derivative :math:`\operatorname{sgn}(x)` (0 at 0).

    Saves an int8 sign (1 byte per element); the input, as torch, in the ``"speed"`` save mode
    (:mod:`torchff.autograd.mode`).

    Example::

        >>> AbsReLU()(torch.tensor([-2.0, 0.0, 3.0]))
        tensor([2., 0., 3.])
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.abs_relu(input)


@register_activation("binary_step", "step", "heaviside")
class BinaryStep(nn.Module):
    r"""Binary step (the perceptron's threshold), 0 for :math:`x < 0`, 1 for :math:`x \ge 0`.

    Args:
        ste: pass the gradient where :math:`|x| \le 1` (straight-through) instead of the true
            zero gradient.

    nan propagates (``torch.heaviside`` maps it to 0). Saves nothing, or a 1-byte mask with ``ste``.
    """

    def __init__(self, ste: bool = False) -> None:
        super().__init__()
        self.ste = bool(ste)

    def forward(self, input: Tensor) -> Tensor:
        return F.binary_step(input, self.ste)

    def extra_repr(self) -> str:
        return f"ste={self.ste}" if self.ste else ""
