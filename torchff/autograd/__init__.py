"""Custom ``torch.autograd.Function``\\ s with explicit forward and backward, one file per family."""

from torchff.autograd.maxout import MaxoutFunction, MaxoutLinearFunction
from torchff.autograd.rectifier import (
    AbsFunction,
    LeakyReLUFunction,
    LeakyReLUInplaceFunction,
    PReLUFunction,
    ReLUFunction,
    ReLUInplaceFunction,
)
from torchff.autograd.smooth import SigmoidFunction, SoftplusFunction
from torchff.autograd.step import BinaryStepFunction

__all__ = [
    "AbsFunction",
    "BinaryStepFunction",
    "LeakyReLUFunction",
    "LeakyReLUInplaceFunction",
    "MaxoutFunction",
    "MaxoutLinearFunction",
    "PReLUFunction",
    "ReLUFunction",
    "ReLUInplaceFunction",
    "SigmoidFunction",
    "SoftplusFunction",
]
