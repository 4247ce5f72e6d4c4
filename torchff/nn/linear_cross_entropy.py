"""Linear + cross-entropy, the softmax output layer in row chunks, as a module: :class:`LinearCrossEntropyLoss`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from torchff import functional as F
from torchff.nn._linear import reset_linear_parameters

__all__ = ["LinearCrossEntropyLoss"]


class LinearCrossEntropyLoss(nn.Module):
    r"""A softmax output layer and its negative log-likelihood in one module: never builds ``N x C`` logits.

    Computes ``cross_entropy(linear(input, weight, bias), target, ...)`` chunk by chunk with
    :func:`torchff.functional.linear_cross_entropy`. Use it in place of the last ``nn.Linear``
    and the ``nn.CrossEntropyLoss``::

        head = torchff.nn.LinearCrossEntropyLoss(1024, 32768)
        loss = head(hidden, target)          # hidden (N, 1024), target (N,)
        logits = head.logits(hidden)         # for inference, when the logits are wanted

    ``weight`` (``num_classes x in_features``) and ``bias`` (``num_classes``) are initialised and
    named as ``nn.Linear(in_features, num_classes)``'s, so a ``state_dict`` moves between this
    module and an ``nn.Linear`` head unchanged.

    Args:
        in_features: size of each input row ``H``.
        num_classes: number of classes ``C``.
        bias: learn an additive bias.
        ignore_index, reduction, label_smoothing: as :class:`torch.nn.CrossEntropyLoss`.
        chunk_size: rows per chunk (``None``: about 32 MiB of float32 logits per chunk).

    Shape: input ``(..., H)``, target ``(...)`` of class indices; output a scalar, or the
    target's shape with ``reduction='none'``.
    """

    __constants__ = ["in_features", "num_classes", "ignore_index", "reduction", "label_smoothing", "chunk_size"]

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        bias: bool = True,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        chunk_size: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.reduction = reduction
        self.label_smoothing = float(label_smoothing)
        self.chunk_size = chunk_size
        self.weight = nn.Parameter(torch.empty((self.num_classes, self.in_features), **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(self.num_classes, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation: Kaiming-uniform weight, bias uniform in :math:`\\pm 1/\\sqrt{H}`."""
        reset_linear_parameters(self.weight, self.bias)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.linear_cross_entropy(
            input, self.weight, target, self.bias, self.ignore_index, self.reduction,
            self.label_smoothing, self.chunk_size,
        )

    def logits(self, input: Tensor) -> Tensor:
        """The full logits ``input @ weight.T + bias`` (for inference; this does build ``N x C``)."""
        return torch.nn.functional.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        s = f"in_features={self.in_features}, num_classes={self.num_classes}, bias={self.bias is not None}"
        if self.ignore_index != -100:
            s += f", ignore_index={self.ignore_index}"
        if self.reduction != "mean":
            s += f", reduction={self.reduction!r}"
        if self.label_smoothing:
            s += f", label_smoothing={self.label_smoothing}"
        if self.chunk_size is not None:
            s += f", chunk_size={self.chunk_size}"
        return s
