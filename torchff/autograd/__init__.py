"""Custom ``torch.autograd.Function``\\ s with explicit forward and backward, one file per family."""

from torchff.autograd.rectifier import LeakyReLUInplaceFunction, ReLUFunction, ReLUInplaceFunction
from torchff.autograd import step as _step  # noqa: F401  (private Functions: cached below too)
from torchff.autograd import maxout as _maxout  # noqa: F401  (likewise)
from torchff.autograd import linear_cross_entropy as _linear_cross_entropy  # noqa: F401  (likewise)
from torchff.autograd import regression as _regression  # noqa: F401  (likewise)
from torchff.autograd.smooth import SigmoidFunction, SoftplusFunction
from torchff.autograd.softmax import LogSoftmaxFunction, SoftmaxFunction
from torchff.autograd.losses import (
    BCEWithLogitsFunction,
    NLLLossFunction,
)
from torchff.autograd.perceptron import PerceptronLossFunction
from torchff.autograd.rbf import RBFFunction

__all__ = [
    "LeakyReLUInplaceFunction",
    "ReLUFunction",
    "ReLUInplaceFunction",
    "SigmoidFunction",
    "SoftplusFunction",
    # output units and costs
    "SoftmaxFunction",
    "LogSoftmaxFunction",
    "BCEWithLogitsFunction",
    "NLLLossFunction",
    # the perceptron and radial basis function features
    "PerceptronLossFunction",
    "RBFFunction",
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
