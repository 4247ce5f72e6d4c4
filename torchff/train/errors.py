"""Errors that mean "the configuration or the data are wrong", reported without a traceback."""

from __future__ import annotations

__all__ = ["ConfigError", "DataNotFoundError", "CorruptDataError", "CheckpointError"]


class ConfigError(ValueError):
    """A configuration that cannot work (e.g. a regression output on a classification data set)."""


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not where the configuration says; the message says how to get them."""


class CorruptDataError(ValueError):
    """A data file that cannot be used: truncated, not what its name says, or inconsistent with
    itself or its partner file. The message starts with the file's path."""


class CheckpointError(ValueError):
    """``ckpt_path`` names a file that is not a checkpoint of the configured model (empty, truncated,
    not a checkpoint, or another network's). The message starts with ``ckpt_path=<the path>``."""
