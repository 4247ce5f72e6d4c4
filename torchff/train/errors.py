"""Errors that mean "the configuration or the data are wrong", reported without a traceback."""

from __future__ import annotations

__all__ = ["ConfigError", "DataNotFoundError"]


class ConfigError(ValueError):
    """A configuration that cannot work (e.g. a regression output on a classification data set)."""


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not where the configuration says; the message says how to get them."""
