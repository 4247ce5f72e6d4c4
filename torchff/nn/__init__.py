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
from torchff.nn.conversion import ConversionReport, convert, drop_ins, revert

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
    # conversion of existing models
    "ConversionReport",
    "convert",
    "drop_ins",
    "revert",
]
