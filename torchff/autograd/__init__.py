"""Custom ``torch.autograd.Function``\\ s with explicit forward and backward, one file per family."""

from torchff.autograd.mode import get_save_mode, save_mode, set_save_mode
from torchff.autograd.maxout import MaxoutFunction, MaxoutLinearFunction
from torchff.autograd.rectifier import (
    AbsFunction,
    AbsSignFunction,
    LeakyReLUFunction,
    LeakyReLUInplaceFunction,
    LeakyReLUMaskFunction,
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
    "get_save_mode",
    "save_mode",
    "set_save_mode",
    "AbsFunction",
    "AbsSignFunction",
    "BinaryStepFunction",
    "LeakyReLUFunction",
    "LeakyReLUInplaceFunction",
    "LeakyReLUMaskFunction",
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
