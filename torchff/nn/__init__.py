"""Drop-in ``nn.Module``\\ s over :mod:`torchff.functional`, and the name registries."""

from torchff.nn.activation import (
    AbsReLU,
    BinaryStep,
    GeneralizedReLU,
    LeakyReLU,
    PReLU,
    ReLU,
    Sigmoid,
    Softplus,
)
from torchff.nn.maxout import Maxout, MaxoutLinear, max_norm_
from torchff.nn.registry import get_activation, list_activations, register_activation
from torchff.nn.softmax import LogSoftmax, Softmax
from torchff.nn.loss import (
    BCEWithLogitsLoss,
    BernoulliNLLLoss,
    CrossEntropyLoss,
    GaussianNLLLoss,
    L1Loss,
    LaplaceNLLLoss,
    MSELoss,
    NLLLoss,
    SoftmaxNLLLoss,
)
from torchff.nn.output import OutputDistribution, get_output, list_outputs
from torchff.nn.conversion import ConversionReport, convert, drop_ins, revert
from torchff.nn.linear_cross_entropy import LinearCrossEntropyLoss

__all__ = [
    # activations
    "AbsReLU",
    "BinaryStep",
    "GeneralizedReLU",
    "LeakyReLU",
    "PReLU",
    "ReLU",
    "Sigmoid",
    "Softplus",
    # registry
    "get_activation",
    "list_activations",
    "register_activation",
    # maxout units
    "Maxout",
    "MaxoutLinear",
    "max_norm_",
    # output units and costs
    "Softmax",
    "LogSoftmax",
    "BCEWithLogitsLoss",
    "BernoulliNLLLoss",
    "CrossEntropyLoss",
    "SoftmaxNLLLoss",
    "NLLLoss",
    "MSELoss",
    "L1Loss",
    "GaussianNLLLoss",
    "LaplaceNLLLoss",
    "OutputDistribution",
    "get_output",
    "list_outputs",
    # conversion of existing models
    "ConversionReport",
    "convert",
    "drop_ins",
    "revert",
    # fused output layer
    "LinearCrossEntropyLoss",
]

# feedforward network (torchff.nn.mlp)
from torchff.nn.mlp import MLP  # noqa: E402

__all__ += ["MLP"]

# the perceptron and radial basis function features (torchff.nn.perceptron, torchff.nn.rbf)
from torchff.nn.perceptron import Perceptron, PerceptronLoss  # noqa: E402
from torchff.nn.rbf import RBF  # noqa: E402

__all__ += ["Perceptron", "PerceptronLoss", "RBF"]
