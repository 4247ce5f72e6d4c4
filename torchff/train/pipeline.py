"""Runs from a composed config: :func:`run` fits and tests with the best checkpoint (``torchff-train``),
:func:`evaluate` tests a checkpoint (``torchff-eval``); both write the outputs.

The config's types are checked by Hydra against :mod:`torchff.train.schema` while it composes; what
is checked here needs the data or the checkpoint (sizes, the output distribution, the weights).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import zipfile
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

import torchff.nn as tnn
from torchff.train import plots
from torchff.train.callbacks import MetricHistory
from torchff.train.errors import CheckpointError, ConfigError
from torchff.train.schema import RBF_KEYS

__all__ = ["run", "evaluate", "objective", "check_checkpoint"]

log = logging.getLogger("torchff.train")

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
    """``num_threads``: an int, ``null`` (torch's default) or ``auto``: one thread for a data module whose
    ``single_thread`` is true (the small synthetic data sets, whose tiny matrix products only lose time
    to thread synchronisation), torch's default otherwise."""
    if num_threads is None:
        return
    if num_threads == "auto":
        if getattr(datamodule, "single_thread", False):
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


def check_checkpoint(path: str | Path, module: Any = None) -> dict[str, Any]:
    """Load the checkpoint at ``path`` (as Lightning will) and, given ``module``, check that its weights
    fit it; returns the checkpoint. Raises :class:`ConfigError` when ``path`` is not a file and
    :class:`CheckpointError` when it is empty, truncated, not a Lightning checkpoint or another network's."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"ckpt_path={path} is not a file (paths are relative to {Path.cwd()})")
    if p.stat().st_size == 0:
        raise CheckpointError(f"ckpt_path={path}: the file is empty, not a checkpoint")
    with p.open("rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    if zipped and not zipfile.is_zipfile(p):  # torch.save writes a zip archive, its index at the end
        raise CheckpointError(f"ckpt_path={path}: truncated (a zip archive without its end); "
                              f"save or copy the checkpoint again")
    try:
        # torch's default weights_only, as Lightning loads it
        ckpt = torch.load(p, map_location="cpu")
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a broken file
        reason = " ".join(str(e).split()).split(". ")[0]  # torch's first sentence says what failed
        raise CheckpointError(f"ckpt_path={path}: cannot be read as a checkpoint (truncated, or not one): "
                              f"{type(e).__name__}: {reason}") from e
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"ckpt_path={path}: not a Lightning checkpoint (it has no state_dict)")
    if module is not None:
        want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        have = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items() if isinstance(v, torch.Tensor)}
        problems = [f"{k} is {have[k]}, the model's {want[k]}" for k in sorted(set(want) & set(have))
                    if want[k] != have[k]]
        problems += [f"{k} missing" for k in sorted(set(want) - set(have))]
        problems += [f"{k} unexpected" for k in sorted(set(have) - set(want))]
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise CheckpointError(
                f"ckpt_path={path} holds another network than the configured model: "
                f"{'; '.join(problems[:3])}{more}; use the experiment= and model overrides of the run that wrote it"
            )
    return ckpt


def _check_renamed(cfg: DictConfig) -> None:
    data = cfg.get("data")
    if isinstance(data, DictConfig) and "small" in data:
        raise ConfigError("data.small was renamed: num_threads=auto trains a data module on one thread when its "
                          "class attribute single_thread is true; set num_threads instead")


def _instantiate_model(cfg: DictConfig) -> Any:
    """The ``LightningModule`` of ``cfg.model``. The RBF keys of ``model.net`` reach the network only
    with ``model.net.features`` set (without it they describe no layer). Arguments arrive as plain
    Python containers, so the hyper-parameters saved in checkpoints hold no OmegaConf objects (which
    ``torch.load(weights_only=True)``, what Lightning resumes with, refuses)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    net = model.get("net")
    if isinstance(net, dict) and net.get("features") is None:
        for key in ("features", *RBF_KEYS):
            net.pop(key, None)
    return instantiate(model, _convert_="all")


def _setup(cfg: DictConfig, ckpt_path: str | None) -> tuple[Any, Any, L.Trainer, Path]:
    """Seed, the data module (its files checked), the model (with ``ckpt_path`` checked against it)
    and the trainer, in this order, so that mistakes show before anything is trained."""
    _check_renamed(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
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
    module = _instantiate_model(cfg)
    if ckpt_path is not None:
        check_checkpoint(ckpt_path, module)
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
    return datamodule, module, trainer, output_dir


def _write_outputs(cfg: DictConfig, trainer: L.Trainer, module: Any, datamodule: Any, metrics: dict[str, float],
                   history: dict | None, output_dir: Path) -> None:
    if not trainer.is_global_zero:
        return
    finite = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}  # JSON has no NaN
    (output_dir / "metrics.json").write_text(json.dumps(finite, indent=2, sort_keys=True) + "\n")
    made: list[Path] = []
    if cfg.get("plots", True):
        made = _plot(module, datamodule, history, output_dir)
    log.info("Final metrics:\n%s", _table(metrics))
    log.info("Outputs in %s: %s", output_dir.resolve(),
             ", ".join(["metrics.json", "config.yaml", *[p.name for p in made]]))


def run(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test with the best checkpoint; in ``cfg.paths.output_dir`` write ``config.yaml`` (resolved),
    ``metrics.json`` and the PNG plots. Returns the final metrics (``test/*`` and the best ``val/*``)."""
    ckpt_path = cfg.get("ckpt_path")
    datamodule, module, trainer, output_dir = _setup(cfg, ckpt_path)

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

    _write_outputs(cfg, trainer, module, datamodule, metrics, history, output_dir)
    return metrics


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint ``cfg.ckpt_path`` on the test split (``torchff-eval``); in ``cfg.paths.output_dir``
    write ``config.yaml``, ``metrics.json`` (the ``test/*`` metrics) and the plots of the test data.
    ``cfg`` must configure the network the checkpoint holds (the same ``experiment=`` and model overrides
    as the run that wrote it). Returns the test metrics."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path is required: the checkpoint to test, e.g. "
                          "torchff-eval experiment=xor ckpt_path=outputs/xor/<date>_<time>/checkpoints/best.ckpt")
    ckpt_path = cfg.ckpt_path
    datamodule, module, trainer, output_dir = _setup(cfg, ckpt_path)
    results = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = _floats(results[0]) if results else {}
    _write_outputs(cfg, trainer, module, datamodule, metrics, None, output_dir)
    return metrics


def objective(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """The value a hyper-parameter sweep optimises: ``metrics[cfg.optimized_metric]`` (``None`` if unset)."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name!r} is not among the run's metrics: {', '.join(sorted(metrics))}")
    return metrics[name]
