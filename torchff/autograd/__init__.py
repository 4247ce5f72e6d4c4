"""Custom ``torch.autograd.Function``\\ s with explicit forward and backward, one file per family."""

from torchff.autograd.maxout import MaxoutFunction, MaxoutLinearFunction
from torchff.autograd.rectifier import LeakyReLUInplaceFunction, ReLUFunction, ReLUInplaceFunction
from torchff.autograd import step as _step  # noqa: F401  (private Functions: cached below too)
from torchff.autograd.smooth import SigmoidFunction, SoftplusFunction
from torchff.autograd.softmax import LogSoftmaxFunction, SoftmaxFunction
from torchff.autograd.losses import (
    BCEWithLogitsFunction,
    CrossEntropyFunction,
    CrossEntropyProbsFunction,
    GaussianNLLFunction,
    L1LossFunction,
    LaplaceNLLFunction,
    MSELossFunction,
    NLLLossFunction,
    cross_entropy_rows,
)
from torchff.autograd.fused import LinearCrossEntropyFunction

__all__ = [
    "LeakyReLUInplaceFunction",
    "MaxoutFunction",
    "MaxoutLinearFunction",
    "ReLUFunction",
    "ReLUInplaceFunction",
    "SigmoidFunction",
    "SoftplusFunction",
    # output units and costs
    "SoftmaxFunction",
    "LogSoftmaxFunction",
    "BCEWithLogitsFunction",
    "CrossEntropyFunction",
    "CrossEntropyProbsFunction",
    "NLLLossFunction",
    "MSELossFunction",
    "L1LossFunction",
    "GaussianNLLFunction",
    "LaplaceNLLFunction",
    "cross_entropy_rows",
    "LinearCrossEntropyFunction",
]


def _cache_forward_signatures() -> None:
    """Give each torchff Function's ``forward`` its ``__signature__``.

    ``Function.apply`` binds default arguments with ``inspect.signature(forward)`` on every call
    when ``setup_context`` is defined (the style torchff uses), which recomputes the signature:
    ~20 us per call. ``inspect.signature`` returns a function's ``__signature__`` when it has
    one, so computing it once here removes that cost and changes nothing else.
    """
    import inspect

    import torch

    todo = list(torch.autograd.Function.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        forward = cls.__dict__.get("forward")
        if cls.__module__.startswith("torchff.") and isinstance(forward, staticmethod):
            forward.__func__.__signature__ = inspect.signature(forward.__func__)


_cache_forward_signatures()
