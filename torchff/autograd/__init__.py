"""Custom ``torch.autograd.Function``\\ s with explicit forward and backward, one file per family."""

from torchff.autograd.rectifier import (
    AbsFunction,
    LeakyReLUFunction,
    LeakyReLUInplaceFunction,
    PReLUFunction,
    PReLUSaves,
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
    "PReLUFunction",
    "PReLUSaves",
    "ReLUFunction",
    "ReLUInplaceFunction",
    "SigmoidFunction",
    "SoftplusFunction",
]
