"""Output distributions: each one's output unit and the cost maximum likelihood gives it.

==============  ==========  ===================  ======================  ==========================
name            task        output unit          loss                    targets
==============  ==========  ===================  ======================  ==========================
``gaussian``    regression  identity (linear)    :class:`MSELoss`        float, like the output
``laplace``     regression  identity (linear)    :class:`L1Loss`         float, like the output
``bernoulli``   binary      sigmoid              :class:`BCEWithLogitsLoss`  float in {0, 1}, like the output
``categorical`` multiclass  softmax (dim 1)      :class:`CrossEntropyLoss`   int64 class indices
``perceptron``  binary      binary step          :class:`PerceptronLoss` {0, 1} (0 read as -1)
==============  ==========  ===================  ======================  ==========================

The network emits the unit's *input* (logits for bernoulli/categorical); the loss takes it as it
is (the log in the cost undoes the unit's exp, so gradients do not saturate) and ``predict``
applies the unit for inference. ``perceptron`` is not a likelihood: Rosenblatt's classifier, the
binary step on one logit trained by the perceptron criterion ``max(0, -y z)``; its
``predict`` gives 0/1 (not a probability).

>>> from torchff.nn import get_output
>>> out = get_output("categorical")
>>> out.out_features(10), out.loss()
(10, CrossEntropyLoss())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor, nn

from torchff import functional as F
from torchff.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss
from torchff.nn.perceptron import PerceptronLoss

__all__ = ["OutputDistribution", "get_output", "list_outputs"]


@dataclass(frozen=True)
class OutputDistribution:
    """An output distribution: its task, its loss module factory and its output unit."""

    name: str
    """``"gaussian"``, ``"laplace"``, ``"bernoulli"``, ``"categorical"`` or ``"perceptron"``."""
    task: str
    """``"regression"``, ``"binary"`` or ``"multiclass"``."""
    loss: Callable[..., nn.Module]
    """``loss(**kwargs)`` builds the torchff loss module, called as ``loss_module(output, target)``."""
    predict: Callable[[Tensor], Tensor]
    """The output unit: maps the network's output to the distribution's mean / probabilities."""

    def out_features(self, num_targets: int) -> int:
        """The network's output width: ``num_targets`` (the number of classes for categorical)."""
        if num_targets < 1:
            raise ValueError(f"num_targets must be positive, got {num_targets}")
        return int(num_targets)


def _identity(x: Tensor) -> Tensor:
    return x


def _softmax_classes(x: Tensor) -> Tensor:
    return F.softmax(x, dim=1 if x.dim() >= 2 else 0)


_OUTPUTS: dict[str, OutputDistribution] = {
    d.name: d
    for d in (
        OutputDistribution("gaussian", "regression", MSELoss, _identity),
        OutputDistribution("laplace", "regression", L1Loss, _identity),
        OutputDistribution("bernoulli", "binary", BCEWithLogitsLoss, F.sigmoid),
        OutputDistribution("categorical", "multiclass", CrossEntropyLoss, _softmax_classes),
        OutputDistribution("perceptron", "binary", PerceptronLoss, F.binary_step),
    )
}


def get_output(name: str) -> OutputDistribution:
    """The output distribution called ``name`` (case-insensitive); ``ValueError`` for unknown names."""
    key = str(name).lower().replace("-", "_")
    try:
        return _OUTPUTS[key]
    except KeyError:
        raise ValueError(f"unknown output distribution {name!r}; known: {', '.join(list_outputs())}") from None


def list_outputs() -> list[str]:
    """The known output distribution names, sorted."""
    return sorted(_OUTPUTS)
