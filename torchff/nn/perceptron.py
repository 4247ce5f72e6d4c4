r"""The perceptron (Rosenblatt, 1957): a linear classifier with a binary step output, and its criterion.

.. math::

    \hat y = f(\mathbf w^T \mathbf x + b), \qquad f(z) = \begin{cases} 0 & z < 0 \\ 1 & z \ge 0 \end{cases}

trained on the perceptron criterion :math:`\max\{0, -y z\}` (``y`` in ``{-1, +1}``), whose gradient
is Rosenblatt's update :math:`\mathbf w \leftarrow \mathbf w + \eta\, y\, \mathbf x` on the mistakes.

Example::

    p = Perceptron(2)
    loss = PerceptronLoss()(p.logits(x), t)  # train on the logits; t in {0, 1} or {-1, +1}
    y_hat = p(x)                             # predict: 0.0 or 1.0
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.modules.loss import _Loss

from torchff import functional as F

__all__ = ["Perceptron", "PerceptronLoss"]


class PerceptronLoss(_Loss):
    r"""The perceptron criterion :math:`\ell(z, y) = \max\{0, -y z\}` on logits ``z``.

    Targets: ``target > 0`` is the positive class (:math:`y = +1`), anything else :math:`y = -1`,
    so both ``{-1, +1}`` and ``{0, 1}`` labels work (0 is read as -1), in any dtype.

    Gradient (Rosenblatt's rule): :math:`-y` where :math:`y z \le 0` (a point on the boundary is a
    mistake), 0 elsewhere; none for the target. Saved for backward: 1 byte per element.

    Args:
        reduction: ``'none'``, ``'mean'`` (default) or ``'sum'``, as torch's losses.

    Shape: input ``(*)``, target broadcastable to it; output scalar, or ``(*)`` for ``'none'``.
    """

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.perceptron_loss(input, target, reduction=self.reduction)


class Perceptron(nn.Module):
    r"""Rosenblatt's perceptron: ``out_features`` linear threshold units.

    ``forward(x)`` returns the predictions :math:`f(\mathbf x W^T + b)` in ``{0, 1}`` (the binary
    step, :math:`f(0) = 1`, as the lecture; :func:`torchff.functional.binary_step`, whose gradient
    is zero: nothing to learn from). :meth:`logits` returns :math:`z = \mathbf x W^T + b`, what
    :class:`PerceptronLoss` trains on, as a classifier's logits before its output unit.

    Args:
        in_features: size of each input sample.
        out_features: number of threshold units (default 1).
        bias: learn the threshold :math:`-b`.

    Attributes:
        weight, bias: ``nn.Linear(in_features, out_features)``'s, initialised as it and under the same
            ``state_dict`` keys, so state dicts move between a ``Perceptron`` and an ``nn.Linear``.

    It is not an ``nn.Linear`` subclass: its ``forward`` returns 0/1, not the affine map.

    Shape: input ``(*, in_features)``, both outputs ``(*, out_features)``.
    """

    __constants__ = ["in_features", "out_features"]

    def __init__(self, in_features: int, out_features: int = 1, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty((out_features, in_features), **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def logits(self, input: Tensor) -> Tensor:
        r"""The pre-activations :math:`z = \mathbf x W^T + b` (what :class:`PerceptronLoss` takes)."""
        return torch.nn.functional.linear(input, self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        """The predictions ``1[z >= 0]`` as the input's floating dtype (0.0 or 1.0)."""
        return F.binary_step(self.logits(input))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
