"""One training run from a composed config: fit, test with the best checkpoint, write the outputs."""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

import torchff.nn as tnn
from torchff.train import plots
from torchff.train.callbacks import MetricHistory
from torchff.train.errors import ConfigError

__all__ = ["run", "objective"]

log = logging.getLogger("torchff.train")

_INT_KEYS = (
    "seed",
    "trainer.max_epochs",
    "trainer.min_epochs",
    "trainer.max_steps",
    "trainer.num_nodes",
    "trainer.check_val_every_n_epoch",
    "trainer.log_every_n_steps",
    "trainer.accumulate_grad_batches",
)


def _check_types(cfg: DictConfig) -> None:
    """Type-check the top-level integer settings whose mistakes would otherwise fail deep inside Lightning."""
    for key in _INT_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
    for key in ("train", "test", "plots"):
        value = cfg.get(key)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")


def _fill_shapes(cfg: DictConfig, datamodule: Any, output: Any) -> None:
    """Fill ``model.net.in_features``/``out_features`` and ``model.num_classes`` left ``null`` from the data."""
    task = output.task
    data_task = getattr(datamodule, "task", None)
    data_name = type(datamodule).__name__
    if data_task == "regression" and task != "regression":
        raise ConfigError(
            f"model.output={output.name} is for {task} classification, but {data_name} is a regression "
            f"data set; use model.output=gaussian or laplace"
        )
    if data_task == "classification" and task == "regression":
        raise ConfigError(
            f"model.output={output.name} is a regression output, but {data_name} is a classification data "
            f"set; use model.output=categorical (or bernoulli for two classes)"
        )
    num_classes = getattr(datamodule, "num_classes", None)
    if task == "binary" and num_classes != 2:
        raise ConfigError(
            f"model.output={output.name} needs two classes, but {data_name} has {num_classes}; "
            f"use model.output=categorical"
        )
    if task == "multiclass":
        n_targets = num_classes
    elif task == "binary":
        n_targets = 1
    else:
        n_targets = getattr(datamodule, "target_dim", 1)

    with open_dict(cfg):
        net = cfg.model.get("net")
        if isinstance(net, DictConfig) and "in_features" in net:
            expected = getattr(datamodule, "in_features", None)
            if net.in_features is None:
                net.in_features = expected
            elif expected is not None and net.in_features != expected:
                raise ConfigError(f"model.net.in_features={net.in_features}, but {data_name} has {expected} inputs")
        if isinstance(net, DictConfig) and "out_features" in net:
            expected = output.out_features(n_targets) if n_targets is not None else None
            if net.out_features is None:
                net.out_features = expected
            elif expected is not None and net.out_features != expected:
                raise ConfigError(
                    f"model.net.out_features={net.out_features}, but model.output={output.name} on "
                    f"{data_name} needs {expected}"
                )
        if task == "multiclass" and cfg.model.get("num_classes") is None and num_classes is not None:
            cfg.model.num_classes = num_classes


def _set_threads(num_threads: Any, datamodule: Any) -> None:
    """``num_threads``: an int, ``null`` (torch's default) or ``auto``: one thread for the small synthetic
    data sets, whose tiny matrix products only lose time to thread synchronisation (5-10x on a busy
    machine), and torch's default otherwise."""
    if num_threads is None:
        return
    if num_threads == "auto":
        if getattr(datamodule, "small", False):
            torch.set_num_threads(1)
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ConfigError(f"num_threads must be a positive integer, null or auto, got {num_threads!r}")
    torch.set_num_threads(num_threads)


def _instantiate_all(node: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a group such as ``callbacks`` or ``logger`` (``null`` entries skipped)."""
    if not node:
        return []
    out = []
    for key, conf in node.items():
        if conf is None:
            continue
        if not isinstance(conf, DictConfig) or "_target_" not in conf:
            raise ConfigError(f"each entry of a callbacks/logger group needs a _target_; {key!r} has none")
        out.append(instantiate(conf))
    return out


def _table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "(no metrics)"
    w = max(len(k) for k in metrics)
    lines = [f"{'metric':<{w}}  value", f"{'-' * w}  {'-' * 8}"]
    lines += [f"{k:<{w}}  {v:.4f}" for k, v in sorted(metrics.items())]
    return "\n".join(lines)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _plot(module: Any, datamodule: Any, history: dict | None, out_dir: Path) -> list[Path]:
    made: list[Path] = []
    if history:
        p = plots.learning_curves(history, out_dir / "learning_curves.png")
        if p is not None:
            made.append(p)
    module.eval()
    device = module.device
    task = module.task

    def predict(x: torch.Tensor) -> torch.Tensor:
        return module.predict(x.to(device)).cpu()

    def classes(x: torch.Tensor) -> torch.Tensor:
        p = predict(x)
        return (p.reshape(-1) > 0.5).long() if task == "binary" else p.argmax(1)

    kind = getattr(datamodule, "plot", None)
    if kind == "decision_boundary":
        x, y = datamodule.tensors("test")
        made.append(plots.decision_boundary(classes, x, y, out_dir / "decision_boundary.png",
                                            num_classes=module.num_classes or 2,
                                            title=f"decision boundary ({module.output.name})"))
    elif kind == "curve":
        x, y = datamodule.tensors("train")
        made.append(plots.regression_fit(
            predict, x, y, out_dir / "fit.png",
            true_function=getattr(datamodule, "true_function", None),
            noise_mean=getattr(datamodule, "noise_mean", None),
            noise_median=getattr(datamodule, "noise_median", None),
            label=f"fit ({module.output.name})",
            title=f"{module.output.name} output: fitted curve",
        ))
    cm = getattr(module, "test_confusion_matrix", None)
    if cm is not None:
        made.append(plots.confusion_matrix(cm, out_dir / "confusion_matrix.png",
                                           class_names=getattr(datamodule, "class_names", None)))
    return made


def run(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test with the best checkpoint; in ``cfg.paths.output_dir`` write ``config.yaml`` (resolved),
    ``metrics.json`` and the PNG plots. Returns the final metrics (``test/*`` and the best ``val/*``)."""
    _check_types(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} is not a file (paths are relative to {Path.cwd()})")
    try:
        output = tnn.get_output(cfg.model.output)
    except ValueError as e:
        raise ConfigError(f"model.output: {e}") from None

    output_dir = Path(cfg.paths.output_dir)
    datamodule = instantiate(cfg.data)
    _set_threads(cfg.get("num_threads", "auto"), datamodule)
    if hasattr(datamodule, "check_available"):
        datamodule.check_available()  # fail before the trainer starts (and before DDP processes)
    _fill_shapes(cfg, datamodule, output)
    module = instantiate(cfg.model)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers if loggers else False)

    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        cfg_out = OmegaConf.to_container(cfg, resolve=True)
        if isinstance(cfg_out, dict):
            cfg_out.pop("hydra", None)
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg_out)))
        log.info("Model:\n%s", module.net)

    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: v for k, v in _floats(trainer.callback_metrics).items() if k.endswith("_best")}
    # Testing from the best checkpoint restores the callbacks' states too: keep the full history now.
    history = next((copy.deepcopy(c.history) for c in trainer.callbacks if isinstance(c, MetricHistory)), None)

    if cfg.get("test", True):
        if cfg.get("train", True):
            ckpt = trainer.checkpoint_callback
            test_ckpt = "best" if ckpt is not None and getattr(ckpt, "best_model_path", "") else None
            if test_ckpt is None:
                log.warning("No best checkpoint (checkpointing off or fast_dev_run): testing the last weights.")
        else:
            test_ckpt = ckpt_path
        results = trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt)
        if results:
            metrics.update(_floats(results[0]))

    if trainer.is_global_zero:
        finite = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}  # JSON has no NaN
        (output_dir / "metrics.json").write_text(json.dumps(finite, indent=2, sort_keys=True) + "\n")
        made: list[Path] = []
        if cfg.get("plots", True):
            made = _plot(module, datamodule, history, output_dir)
        log.info("Final metrics:\n%s", _table(metrics))
        log.info("Outputs in %s: %s", output_dir.resolve(),
                 ", ".join(["metrics.json", "config.yaml", *[p.name for p in made]]))
    return metrics


def objective(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """The value a hyper-parameter sweep optimises: ``metrics[cfg.optimized_metric]`` (``None`` if unset)."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name!r} is not among the run's metrics: {', '.join(sorted(metrics))}")
    return metrics[name]
