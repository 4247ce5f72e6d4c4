"""Convert an existing model to torchff's drop-in modules, and back.

>>> import torchvision, torchff
>>> model = torchff.nn.convert(torchvision.models.resnet18(weights=None))  # 17 ReLU(inplace=True)

Every torchff drop-in subclasses its ``torch.nn`` namesake and adds no state of its own (only
``forward`` differs), so a module is converted by rebinding its class
(``module.__class__ = torchff.nn.ReLU``), as ``torch.nn.utils.parametrize`` does. The module stays
the same object: its attributes (``inplace``, ``negative_slope``, ``beta``, ``dim``, a loss's
``weight`` / ``pos_weight`` buffers, ``ignore_index``, ``reduction``, ...), its ``Parameter``
objects (PReLU's ``weight``: same tensor, device, dtype, ``requires_grad``, optimizer state),
its hooks, and every reference to it (a module used at two places, a module held in a list)
are kept. ``state_dict`` keys do not change, so a checkpoint loads into either version.

The table of drop-ins is read from :mod:`torchff.nn` when :func:`convert` runs: every class
there that subclasses the ``torch.nn`` class of the same name is one. A new drop-in is picked up
by being exported from ``torchff.nn``; :data:`_NAMES` gives it the names ``include`` and
``exclude`` accept (one line; otherwise its snake_case class name).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Union

from torch import nn

__all__ = ["convert", "revert", "drop_ins", "ConversionReport"]

logger = logging.getLogger("torchff.nn.convert")

# torch.nn class name -> names accepted by ``include`` / ``exclude`` (first: torch.nn.functional's
# name for the op). A drop-in missing here is still converted, under its snake_case class name.
_NAMES: dict[str, tuple[str, ...]] = {
    "ReLU": ("relu",),
    "LeakyReLU": ("leaky_relu",),
    "PReLU": ("prelu",),
    "Softplus": ("softplus",),
    "Sigmoid": ("sigmoid",),
    "Softmax": ("softmax",),
    "LogSoftmax": ("log_softmax",),
    "CrossEntropyLoss": ("cross_entropy",),
    "NLLLoss": ("nll_loss",),
    "BCEWithLogitsLoss": ("binary_cross_entropy_with_logits", "bce_with_logits"),
    "MSELoss": ("mse_loss",),
    "L1Loss": ("l1_loss",),
    "GaussianNLLLoss": ("gaussian_nll_loss",),
}

Spec = Union[str, type, Iterable[Union[str, type]], None]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


@lru_cache(maxsize=None)
def _same_state(torch_cls: type, ff_cls: type) -> bool:
    """Default-constructed instances of both classes carry the same attributes (so a class swap is sound)."""
    try:
        return vars(torch_cls()).keys() == vars(ff_cls()).keys()
    except TypeError:  # no default constructor: trust the subclass
        return ff_cls.__init__ is torch_cls.__init__


def drop_ins() -> dict[type, type]:
    """``{torch.nn class: torchff.nn drop-in}`` for every drop-in exported from :mod:`torchff.nn` now.

    Raises:
        TypeError: a class exported from :mod:`torchff.nn` under a ``torch.nn`` name subclasses
            that class but adds instance state of its own: converting by a class swap would
            leave that state missing, so it is not a drop-in (give it another name, or drop
            the state).
    """
    import torchff.nn as ffnn

    table: dict[type, type] = {}
    for name in getattr(ffnn, "__all__", dir(ffnn)):
        cls = getattr(ffnn, name, None)
        base = getattr(nn, name, None)
        if not (isinstance(cls, type) and isinstance(base, type) and cls is not base):
            continue
        if not (issubclass(base, nn.Module) and issubclass(cls, base)):
            continue
        if not _same_state(base, cls):
            raise TypeError(
                f"torchff.nn.{name} subclasses torch.nn.{name} but adds instance state of its own, so it "
                f"cannot be a drop-in (convert() swaps the class of an existing torch.nn.{name}): keep "
                f"the attributes torch.nn.{name} has, or export it under another name"
            )
        table[base] = cls
    return table


def _names(torch_cls: type) -> tuple[str, ...]:
    n = torch_cls.__name__
    return _NAMES.get(n, ()) + (_snake(n), n.lower())


def _resolve(spec: Spec, table: dict[type, type], arg: str) -> set[type]:
    """The torch.nn classes named by ``spec`` (classes, torchff classes or names)."""
    if spec is None:
        return set()
    items = [spec] if isinstance(spec, (str, type)) else list(spec)
    by_name = {k: base for base in table for k in _names(base)}
    by_ff = {ff: base for base, ff in table.items()}
    out: set[type] = set()
    for item in items:
        if isinstance(item, str):
            base = by_name.get(_key(item))
        elif isinstance(item, type):
            base = item if item in table else by_ff.get(item)
        else:
            raise TypeError(f"{arg}: expected module classes or names, got {item!r}")
        if base is None:
            known = ", ".join(sorted({_names(b)[0] for b in table}))
            raise ValueError(f"{arg}: torchff has no drop-in for {item!r}; known: {known}")
        out.add(base)
    return out


@dataclass
class ConversionReport:
    """What :func:`convert` (or :func:`revert`) replaced.

    ``counts`` maps a class name (the torch.nn name) to the number of modules replaced;
    ``modules`` lists their qualified names in ``named_modules`` order (``""`` is the root).
    """

    counts: dict[str, int] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        if not self.counts:
            return "nothing replaced"
        parts = ", ".join(f"{n} x{c}" for n, c in self.counts.items())
        return f"replaced {self.total} module{'s' if self.total != 1 else ''}: {parts}"


def _swap(module: nn.Module, mapping: dict[type, type], verb: str, return_report: bool):
    counts: Counter[str] = Counter()
    names: list[str] = []
    # named_modules visits a module shared between several parents once
    for qualname, m in module.named_modules():
        new_cls = mapping.get(type(m))  # exact type: a subclass (or a converted module) is left alone
        if new_cls is None:
            continue
        m.__class__ = new_cls
        counts[type(m).__name__] += 1
        names.append(qualname)
    report = ConversionReport(dict(sorted(counts.items())), names)
    logger.info("%s %s: %s", verb, type(module).__name__, report)
    return (module, report) if return_report else module


def convert(module: nn.Module, include: Spec = None, exclude: Spec = None, *, return_report: bool = False):
    """Replace, in place, every ``torch.nn`` module that torchff has a drop-in for by the drop-in.

    Args:
        module: the model (the root itself is converted too when it is, say, an ``nn.ReLU``).
        include: only these kinds; module classes (``torch.nn.ReLU`` or ``torchff.nn.ReLU``) or
            names (``"relu"``, ``"prelu"``, ``"cross_entropy"``, ...; see :func:`drop_ins` and
            ``_NAMES``). ``None``: every drop-in.
        exclude: kinds to leave as they are (same forms).
        return_report: return ``(module, ConversionReport)`` instead of ``module``.

    Returns:
        ``module`` (the same object, converted), and the report if asked. The report is also
        logged at INFO on the ``"torchff.nn.convert"`` logger.

    Only modules whose type is exactly the ``torch.nn`` class are converted: subclasses of it
    (yours, or torchff's own) are left alone, so converting twice changes nothing. Modules keep
    their identity, attributes, parameters, buffers and hooks (forward, backward, state_dict
    hooks all stay registered and fire as before); see the module docstring. Modules held outside
    the module tree (a plain list attribute) are not visited. Convert before ``torch.compile``.
    """
    table = drop_ins()
    kinds = _resolve(include, table, "include") if include is not None else set(table)
    kinds -= _resolve(exclude, table, "exclude")
    return _swap(module, {b: table[b] for b in kinds}, "convert", return_report)


def revert(module: nn.Module, include: Spec = None, exclude: Spec = None, *, return_report: bool = False):
    """The inverse of :func:`convert`: turn torchff drop-ins back into their ``torch.nn`` classes.

    Same arguments and report as :func:`convert`. Useful before ``torch.jit.script`` or the
    TorchScript ONNX exporter, which cannot run Python autograd Functions.
    """
    table = drop_ins()
    kinds = _resolve(include, table, "include") if include is not None else set(table)
    kinds -= _resolve(exclude, table, "exclude")
    return _swap(module, {table[b]: b for b in kinds}, "revert", return_report)
