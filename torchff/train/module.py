"""A ``LightningModule`` that trains any network for any output distribution of the registry."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import lightning.pytorch as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection, MinMetric
from torchmetrics.classification import Accuracy, ConfusionMatrix

import torchff.nn as tnn
from torchff._validate import check_positive_or_none

__all__ = ["FeedforwardModule"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class FeedforwardModule(L.LightningModule):
    """Train ``net`` by maximum likelihood under the output distribution ``output``.

    The loss is the registry's (``torchff.nn.get_output(output).loss()``): ``gaussian`` (mean squared
    error), ``laplace`` (mean absolute error), ``bernoulli`` (binary cross-entropy on one logit) or
    ``categorical`` (cross-entropy on ``num_classes`` logits). The network outputs raw scores; the
    targets a data module yields (int64 class labels, float regression targets) are converted to
    what the loss needs.

    Logged (per epoch, prefixes ``train/``, ``val/``, ``test/``): ``loss``; ``acc`` for classification;
    ``mse`` and ``mae`` for regression; and ``val/loss_best`` (plus ``val/acc_best``), the best so far.
    After :meth:`test`, ``test_confusion_matrix`` holds the test set's confusion matrix
    (rows: true class, columns: predicted class) for classification.

    Args:
        net: the network (e.g. :class:`torchff.nn.MLP`).
        output: a name of :func:`torchff.nn.list_outputs`.
        optimizer: a callable ``params -> Optimizer`` (a Hydra ``_partial_``); default Adam(lr=1e-3).
        scheduler: optional callable ``optimizer -> LRScheduler`` (a Hydra ``_partial_``).
        scheduler_interval: ``"epoch"`` or ``"step"``.
        scheduler_monitor: the metric ``ReduceLROnPlateau`` watches.
        max_norm: if set, every weight row of ``net``'s ``Linear``/``MaxoutLinear`` layers is
            renormalised to at most this L2 norm after each optimizer step (the maxout paper's
            constraint, 1.9365).
        num_classes: number of classes for ``categorical`` (default: ``net.out_features``).
        loss_kwargs: keyword arguments for the loss module.
    """

    def __init__(
        self,
        net: nn.Module,
        output: str = "categorical",
        optimizer: OptimizerFactory | None = None,
        scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/loss",
        max_norm: float | None = None,
        num_classes: int | None = None,
        loss_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
        self.net = net
        self.output = tnn.get_output(output)
        self.criterion = self.output.loss(**dict(loss_kwargs or {}))
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.max_norm = check_positive_or_none("max_norm", max_norm)

        self.task = self.output.task  # "regression" | "binary" | "multiclass"
        if self.task == "multiclass":
            num_classes = num_classes if num_classes is not None else getattr(net, "out_features", None)
            if num_classes is None:
                raise ValueError("a categorical output needs num_classes (or a net with out_features)")
            self.num_classes: int | None = int(num_classes)
        else:
            self.num_classes = 2 if self.task == "binary" else None

        if self.task == "regression":
            metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
        elif self.task == "binary":
            metrics = MetricCollection({"acc": Accuracy(task="binary")})
        else:
            metrics = MetricCollection({"acc": Accuracy(task="multiclass", num_classes=self.num_classes)})
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # Sample-weighted mean losses (exact over uneven last batches and across processes).
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        # Best-so-far trackers are part of the checkpoint, so a resumed run keeps them.
        self.val_loss_best = MinMetric()
        self.val_loss_best.persistent(True)
        self.val_acc_best: MaxMetric | None = None
        if self.task != "regression":
            self.val_acc_best = MaxMetric()
            self.val_acc_best.persistent(True)
            cm_task = "binary" if self.task == "binary" else "multiclass"
            self.test_confmat = ConfusionMatrix(task=cm_task, num_classes=self.num_classes)
        self.test_confusion_matrix: Tensor | None = None

    # -- the model ----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """The network's raw output (means, a logit, logits)."""
        return self.net(x)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """The output distribution's prediction: the mean/median, P(y=1), or class probabilities."""
        return self.output.predict(self(x))

    def target(self, y: Tensor, out: Tensor) -> Tensor:
        """Convert a data module's target to what the loss expects for ``out``."""
        if self.task == "multiclass":
            return y.long()
        return y.to(out.dtype).reshape(out.shape)

    def _step(self, batch: Any, metrics: MetricCollection, mean_loss: MeanMetric) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        out = self(x)
        target = self.target(y, out)
        loss = self.criterion(out, target)
        preds = self.output.predict(out.detach())
        metrics.update(preds, target.long() if self.task == "binary" else target)
        mean_loss.update(loss.detach(), weight=x.shape[0])
        return loss, preds, target

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss, _, _ = self._step(batch, self.train_metrics, self.train_loss)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # The max-norm constraint: project the weights back into the ball right after each update,
        # before any hook or callback sees them.
        if self.max_norm is not None:
            tnn.max_norm_(self.net, self.max_norm)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, self.val_metrics, self.val_loss)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(self.val_metrics, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_loss_best.update(self.val_loss.compute())
        self.log("val/loss_best", self.val_loss_best.compute())
        if self.val_acc_best is not None:
            self.val_acc_best.update(self.val_metrics["acc"].compute())
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        _, preds, target = self._step(batch, self.test_metrics, self.test_loss)
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        self.log_dict(self.test_metrics, on_step=False, on_epoch=True)
        if self.task != "regression":
            self.test_confmat.update(preds, target.long())

    def on_test_epoch_end(self) -> None:
        if self.task != "regression":
            self.test_confusion_matrix = self.test_confmat.compute().cpu()
            self.test_confmat.reset()

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.output.predict(self(x))

    # -- features initialised from data ----------------------------------------------------
    def on_train_start(self) -> None:
        """Set ``net``'s data-dependent first layer (RBF centers) from the first training batches.

        Runs once: a network that reports ``needs_data_init`` (:class:`torchff.nn.MLP` with
        ``features="rbf"``) gets ``init_from_data_(x)`` with at least ``num_centers`` training rows;
        a resumed run restores initialised centers and skips it. With several processes, rank 0's
        centers are broadcast to all.
        """
        if not getattr(self.net, "needs_data_init", False):
            return
        needed = self.net.layers.rbf.num_centers
        rows, seen = [], 0
        for batch in self.trainer.train_dataloader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            rows.append(x)
            seen += x.shape[0]
            if seen >= needed:
                break
        self.net.init_from_data_(torch.cat(rows).to(self.device))
        rbf = self.net.layers.rbf
        with torch.no_grad():
            rbf.centers.copy_(self.trainer.strategy.broadcast(rbf.centers.detach().clone()))

    # -- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        else:
            optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.scheduler_interval,
                "monitor": self.scheduler_monitor,
                "frequency": 1,
            },
        }
