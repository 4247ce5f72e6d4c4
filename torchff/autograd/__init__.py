"""Custom ``torch.autograd.Function``\\ s with explicit forward and backward, one file per family."""

from torchff.autograd.maxout import MaxoutFunction, MaxoutLinearFunction
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
    "AbsFunction",
    "BinaryStepFunction",
    "LeakyReLUFunction",
    "LeakyReLUInplaceFunction",
    "MaxoutFunction",
    "MaxoutLinearFunction",
    "PReLUFunction",
    "PReLUSaves",
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
