"""Custom ``torch.autograd.Function``\\ s with explicit forward and backward, one file per family."""

import inspect

from torchff.autograd.rectifier import LeakyReLUInplaceFunction, ReLUFunction, ReLUInplaceFunction
from torchff.autograd import step as _step  # noqa: F401  (private Functions: cached below too)
from torchff.autograd import maxout as _maxout  # noqa: F401  (likewise)
from torchff.autograd import linear_cross_entropy as _linear_cross_entropy  # noqa: F401  (likewise)
from torchff.autograd import regression as _regression  # noqa: F401  (likewise)
from torchff.autograd import cross_entropy as _cross_entropy  # noqa: F401  (likewise)
from torchff.autograd.smooth import SigmoidFunction, SoftplusFunction
from torchff.autograd.softmax import LogSoftmaxFunction, SoftmaxFunction
from torchff.autograd.losses import BCEWithLogitsFunction
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
    # the perceptron and radial basis function features
    "PerceptronLossFunction",
    "RBFFunction",
]


class _PositionalSignature(inspect.Signature):
    """A forward's signature whose ``bind`` is a pass-through for a full positional call.

    ``Function.apply`` of a Function with ``setup_context`` (the style torchff uses) runs
    ``inspect.signature(forward).bind(*args).apply_defaults()`` on every call
    (``torch.autograd.function._bind_default_args``). When every parameter is positional-or-
    keyword and the call passes all of them positionally, as ``torchff.functional`` always does,
    that binding returns ``args`` unchanged and no keywords; this ``bind`` returns exactly that
    without ``inspect``'s Python-level walk over the parameters. Any other call takes
    ``inspect.Signature.bind``.
    """

    __slots__ = ("_positional",)

    def __init__(self, signature) -> None:
        params = list(signature.parameters.values())
        super().__init__(params, return_annotation=signature.return_annotation)
        simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self._positional = len(params) if simple else -1

    def bind(self, /, *args, **kwargs):
        if not kwargs and len(args) == self._positional:
            return _Bound(args)
        return super().bind(*args, **kwargs)


class _Bound:
    """What ``_bind_default_args`` reads from a bound call: ``args``, ``kwargs``, ``apply_defaults``."""

    __slots__ = ("args", "kwargs")

    def __init__(self, args: tuple) -> None:
        self.args, self.kwargs = args, {}

    def apply_defaults(self) -> None:  # every argument is given
        pass


def _cache_forward_signatures() -> None:
    """Give each torchff Function's ``forward`` its ``__signature__``, computed once.

    ``Function.apply`` binds default arguments with ``inspect.signature(forward)`` on every call
    when ``setup_context`` is defined, which would recompute the signature each time.
    ``inspect.signature`` returns a function's ``__signature__`` when it has one (a
    :class:`_PositionalSignature`, whose ``bind`` skips the work for full positional calls).
    """
    import torch

    todo = list(torch.autograd.Function.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        forward = cls.__dict__.get("forward")
        if cls.__module__.startswith("torchff.") and isinstance(forward, staticmethod):
            forward.__func__.__signature__ = _PositionalSignature(inspect.signature(forward.__func__))


_cache_forward_signatures()
