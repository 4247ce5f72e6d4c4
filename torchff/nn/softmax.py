"""Softmax output-unit modules over :mod:`torchff.functional`.

Subclasses of :class:`torch.nn.Softmax` / :class:`torch.nn.LogSoftmax`: same ``dim`` attribute,
``extra_repr`` and pickling; only ``forward`` runs torchff's Functions.
"""

from __future__ import annotations

from torch import Tensor, nn

from torchff import functional as F

__all__ = ["Softmax", "LogSoftmax"]


class Softmax(nn.Softmax):
    r"""Softmax along ``dim``, computed as :math:`\mathrm{softmax}(z - \max z)`. Drop-in for
    :class:`torch.nn.Softmax` (``dim=None`` keeps torch's legacy implicit choice and warning).

    Saves only the output.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.softmax(input, self.dim, _stacklevel=5)


class LogSoftmax(nn.LogSoftmax):
    r"""Log-softmax along ``dim``. Drop-in for :class:`torch.nn.LogSoftmax`; saves only the output."""

    def forward(self, input: Tensor) -> Tensor:
        return F.log_softmax(input, self.dim, _stacklevel=5)
