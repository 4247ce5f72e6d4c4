"""Loss modules over :mod:`torchff.functional`: the costs maximum likelihood pairs with each
output unit.

The drop-ins subclass their ``torch.nn`` counterparts, so constructor arguments, attributes,
buffers (``weight``, ``pos_weight``), ``state_dict`` keys and ``isinstance`` checks are torch's;
only ``forward`` runs torchff's Functions. :class:`LaplaceNLLLoss` is new, built like
:class:`torch.nn.GaussianNLLLoss`.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.modules.loss import _Loss

from torchff import functional as F

__all__ = [
    "BCEWithLogitsLoss",
    "BernoulliNLLLoss",
    "CrossEntropyLoss",
    "SoftmaxNLLLoss",
    "NLLLoss",
    "MSELoss",
    "L1Loss",
    "GaussianNLLLoss",
    "LaplaceNLLLoss",
]


class BCEWithLogitsLoss(nn.BCEWithLogitsLoss):
    r"""Bernoulli negative log-likelihood on the logits of a sigmoid unit,
    :math:`(1 - y)z + \zeta(-z)`, gradient :math:`\sigma(z) - y`.

    Drop-in for :class:`torch.nn.BCEWithLogitsLoss` (``weight``, ``pos_weight`` buffers, every
    argument). Shape: target like the input; float targets in [0, 1].
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction
        )


BernoulliNLLLoss = BCEWithLogitsLoss


class CrossEntropyLoss(nn.CrossEntropyLoss):
    r"""Multinoulli negative log-likelihood on the logits of a softmax unit,
    :math:`-(z_y - \log\sum_j e^{z_j})`, gradient :math:`\mathrm{softmax}(z) - e_y`.

    Drop-in for :class:`torch.nn.CrossEntropyLoss`: class-index or class-probability targets,
    ``weight``, ``ignore_index``, ``label_smoothing``; inputs ``(N, C)``, ``(N, C, d1, ...)``, ``(C,)``.
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


SoftmaxNLLLoss = CrossEntropyLoss


class NLLLoss(nn.NLLLoss):
    r"""Negative log-likelihood of class indices given log-probabilities. Drop-in for
    :class:`torch.nn.NLLLoss`; saves only the target (and weight)."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(nn.MSELoss):
    r"""Mean squared error, the Gaussian (unit variance) negative log-likelihood up to a
    constant; its minimiser is the conditional mean. Drop-in for :class:`torch.nn.MSELoss`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(nn.L1Loss):
    r"""Mean absolute error, the Laplace (unit scale) negative log-likelihood up to a constant;
    its minimiser is the conditional median. Drop-in for :class:`torch.nn.L1Loss`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class GaussianNLLLoss(nn.GaussianNLLLoss):
    r"""Gaussian negative log-likelihood with a learned variance,
    :math:`\tfrac12(\log\sigma^2 + (y - \hat y)^2/\sigma^2)`. Drop-in for
    :class:`torch.nn.GaussianNLLLoss`; ``forward(input, target, var)``."""

    def forward(self, input: Tensor, target: Tensor, var: Tensor | float) -> Tensor:
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)


class LaplaceNLLLoss(_Loss):
    r"""Laplace negative log-likelihood with a learned scale, :math:`|y - \hat y|/b + \log b`
    (:math:`+\log 2` with ``full``); :math:`b` is clamped at ``eps`` with no gradient through the
    clamp.

    Built like :class:`torch.nn.GaussianNLLLoss`: keyword-only ``full``, ``eps``, ``reduction``;
    ``forward(input, target, scale)`` with ``scale`` like the input, with one fewer dim or one dim
    of size 1 (homoscedastic), or a number.

    Example::

        >>> loss = LaplaceNLLLoss()
        >>> mu, b = torch.zeros(4, 2, requires_grad=True), torch.ones(4, 2, requires_grad=True)
        >>> loss(mu, torch.ones(4, 2), b)
        tensor(1., grad_fn=<_RegressionFunctionBackward>)
    """

    __constants__ = ["full", "eps", "reduction"]
    full: bool
    eps: float

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(None, None, reduction)
        self.full = full
        self.eps = eps

    def forward(self, input: Tensor, target: Tensor, scale: Tensor | float) -> Tensor:
        return F.laplace_nll_loss(input, target, scale, full=self.full, eps=self.eps, reduction=self.reduction)
