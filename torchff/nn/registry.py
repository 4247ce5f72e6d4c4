"""Name registry for activation modules, after timm's ``get_act_layer``.

>>> from torchff.nn import get_activation
>>> get_activation("leaky_relu", negative_slope=0.2)
LeakyReLU(negative_slope=0.2)
"""

from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["register_activation", "get_activation", "list_activations"]

_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {}


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def register_activation(*names: str) -> Callable:
    """Class decorator (or function wrapper) registering a module factory under ``names``."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        for n in names:
            k = _key(n)
            if k in _ACTIVATIONS and _ACTIVATIONS[k] is not factory:
                raise ValueError(f"activation name {n!r} is already registered to {_ACTIVATIONS[k]!r}")
            _ACTIVATIONS[k] = factory
        return factory

    return deco


def get_activation(name: str | nn.Module | type | None, **kwargs) -> nn.Module:
    """Build an activation module by registry name (case-insensitive, ``-`` or ``_``).

    A module instance is returned as it is; a module class is instantiated with ``kwargs``;
    ``None`` or ``"identity"`` gives ``nn.Identity()``.
    """
    if name is None:
        return nn.Identity()
    if isinstance(name, nn.Module):
        if kwargs:
            raise TypeError("keyword arguments cannot be applied to an already built module")
        return name
    if isinstance(name, type) and issubclass(name, nn.Module):
        return name(**kwargs)
    k = _key(str(name))
    if k == "identity":
        return nn.Identity()
    try:
        factory = _ACTIVATIONS[k]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(list_activations())}") from None
    return factory(**kwargs)


def list_activations() -> list[str]:
    """All registered activation names, sorted."""
    return sorted(_ACTIVATIONS)
