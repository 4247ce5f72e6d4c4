"""Argument checks shared by the modules (``torchff.nn``) and the training code (``torchff.train``).

Each returns the value normalised (a Python ``int`` or ``float``) or raises: ``TypeError`` for a
value of the wrong kind (``bool`` is never taken for a number), ``ValueError`` for one out of range
(NaN is out of every range). The messages name the argument, so that a configuration mistake
(``data.batch_size=abc``) reads as one line.
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["check_int", "check_number", "check_probability", "check_positive_or_none"]


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int`` (anything with ``__index__``, not a bool), at least ``minimum``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_number(name: str, value: Any, minimum: float = 0.0) -> float:
    """``value`` (an int or float, not a bool) as a ``float``, at least ``minimum``."""
    if not _is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not value >= minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_probability(name: str, value: Any) -> float:
    """``value`` (an int or float, not a bool) as a ``float`` in ``[0, 1)`` (a dropout rate)."""
    if not _is_number(value):
        raise TypeError(f"{name} must be a float in [0, 1), got {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def check_positive_or_none(name: str, value: Any) -> float | None:
    """``None``, or ``value`` (an int or float, not a bool, greater than 0) as a ``float``.

    Anything else is a ``ValueError`` (a wrong kind included, as the callers always raised)."""
    if value is None:
        return None
    if not _is_number(value) or not value > 0:
        raise ValueError(f"{name} must be a positive number or None, got {value!r}")
    return float(value)
