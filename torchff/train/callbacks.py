"""Callbacks of the training stack."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import Callback

__all__ = ["MetricHistory"]


class MetricHistory(Callback):
    """Records every epoch-level metric (``train/*``, ``val/*``) as ``{name: [(epoch, value), ...]}``.

    Validation metrics are read when a validation run ends, training metrics when a training epoch
    ends. The state is saved in checkpoints, so a resumed run's history (and learning-curve plot)
    starts at epoch 0, not at the epoch it resumed from; for the last epoch to be in it, checkpoint at
    the end of the training epoch (``ModelCheckpoint(save_on_train_epoch_end=True)``, as the configs do).
    """

    def __init__(self, prefixes: tuple[str, ...] = ("train/", "val/")) -> None:
        self.prefixes = tuple(prefixes)
        self.history: dict[str, list[tuple[int, float]]] = {}

    def _record(self, trainer: L.Trainer, prefix: str) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        for name, value in trainer.callback_metrics.items():
            if not name.startswith(prefix):
                continue
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            series = self.history.setdefault(name, [])
            if series and series[-1][0] == epoch:
                series[-1] = (epoch, v)
            else:
                series.append((epoch, v))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for p in self.prefixes:
            if not p.startswith("train"):
                self._record(trainer, p)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for p in self.prefixes:
            if p.startswith("train"):
                self._record(trainer, p)

    def state_dict(self) -> dict[str, Any]:
        return {"history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: [tuple(e) for e in v] for k, v in state_dict.get("history", {}).items()}
