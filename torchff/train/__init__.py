"""Lightning + Hydra training for torchff networks (``torchff-train``).

* :class:`FeedforwardModule` -- a ``LightningModule`` for any network and output distribution;
* :mod:`torchff.train.data` -- data modules (XOR, moons, circles, spirals, 1-D regression, MNIST,
  Fashion-MNIST); :mod:`torchff.train.datasets` -- their generators and an IDX reader;
* :func:`run` -- one training run from a composed config; :func:`evaluate` tests a checkpoint
  (``torchff-eval``); :func:`compose` composes a config from Python;
* ``torchff.conf`` (the repository's ``conf/``) -- the Hydra configs, ``pkg://torchff.conf``; their
  types are the dataclasses of :mod:`torchff.train.schema`.

Names are imported on first use, so ``torchff-train``'s config errors come back quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MetricHistory": "torchff.train.callbacks",
    "compose": "torchff.train.config",
    "config_dir": "torchff.train.config",
    "list_experiments": "torchff.train.config",
    "CirclesDataModule": "torchff.train.data",
    "FashionMNISTDataModule": "torchff.train.data",
    "IDXImageDataModule": "torchff.train.data",
    "MNISTDataModule": "torchff.train.data",
    "MoonsDataModule": "torchff.train.data",
    "Regression1DDataModule": "torchff.train.data",
    "SpiralsDataModule": "torchff.train.data",
    "TensorDataModule": "torchff.train.data",
    "XORDataModule": "torchff.train.data",
    "CheckpointError": "torchff.train.errors",
    "ConfigError": "torchff.train.errors",
    "CorruptDataError": "torchff.train.errors",
    "DataNotFoundError": "torchff.train.errors",
    "FeedforwardModule": "torchff.train.module",
    "evaluate": "torchff.train.pipeline",
    "run": "torchff.train.pipeline",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'torchff.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
