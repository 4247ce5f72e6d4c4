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
from torchff.nn.registry import get_activation, list_activations, register_activation

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
]

# feedforward network (torchff.nn.mlp)
from torchff.nn.mlp import MLP, apply_max_norm_  # noqa: E402

__all__ += ["MLP", "apply_max_norm_"]
