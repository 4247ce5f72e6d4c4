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

    Drop-in for :class:`torch.nn.LeakyReLU`, for any slope. Derivative 1 for :math:`x > 0`, the
    slope at and below 0 (and at nan). Saves a 1-byte mask ``x > 0`` written with the value
    (torch keeps the input: 4 bytes for float32), never the output, so in-place changes of the
    output before backward work as with torch; ``inplace=True`` saves the output (the input's
    own buffer), as torch.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope, self.inplace)


@register_activation("prelu")
class PReLU(nn.PReLU):
    r"""PReLU, :math:`\max\{0, x\} + a\min\{0, x\}` with learnable ``weight`` (1 or ``num_parameters``
    slopes, along dim 1). Drop-in for :class:`torch.nn.PReLU` (same ``weight`` parameter).

    Derivatives: :math:`a_c` at and below 0 for the input, :math:`\min\{0, x\}` (0 at the kink)
    for the weight, summed per channel in the backward kernel. Saves the input (as torch) and the
    weight while the weight is trained, a 1-byte mask ``x > 0`` and the weight when it is frozen.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)


@register_activation("softplus")
class Softplus(nn.Softplus):
    r"""Softplus, :math:`\frac{1}{\beta}\log(1 + e^{\beta x})`, linear where :math:`\beta x >`
    ``threshold``. Drop-in for :class:`torch.nn.Softplus`.

    Saves only the output for thresholds of at least 17.5 (37.5 in float64; torch's default 20
    qualifies in float32/16), the input below them (as torch).
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

    Saves the sign as int8, 1 byte per element, written with the value (``torch.abs`` keeps its
    input: 4 bytes for float32).

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

    ``f(-0.0) = 1``; nan propagates (``torch.heaviside`` maps it to 0). Saves nothing, or a
    1-byte mask :math:`|x| \le 1` with ``ste``.
    """

    def __init__(self, ste: bool = False) -> None:
        super().__init__()
        self.ste = bool(ste)

    def forward(self, input: Tensor) -> Tensor:
        return F.binary_step(input, self.ste)

    def extra_repr(self) -> str:
        return f"ste={self.ste}" if self.ste else ""
