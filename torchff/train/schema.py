"""The structured config: dataclasses that type the YAML configs in ``torchff.conf``.

Registered in Hydra's ``ConfigStore`` as ``train_schema`` and ``eval_schema``; ``train.yaml`` and
``eval.yaml`` list them first in their defaults, so every value the YAML files, the experiments and
the command line set is checked against these types while Hydra composes the config:
``trainer.max_epochs=abc`` or ``seed=1.5`` fail there, with OmegaConf's message naming the key, and so
does a key that does not exist (``model.net.hidden=[8]``).

The defaults here are those of the classes the nodes instantiate (``torchff.nn.MLP``,
:class:`~torchff.train.module.FeedforwardModule`, ``lightning.pytorch.Trainer``); the YAML files set
the values the configs actually use. Nodes whose keys depend on the option chosen (``data``, each
data module has its own arguments, which it checks itself; ``callbacks``; ``logger``) and values of
more than one type (``num_threads``: an int, ``null`` or ``auto``; ``trainer.devices``) are ``Any``, and
so are the mappings that default to ``null`` (``model.loss_kwargs``, ``model.net.activation_kwargs``):
OmegaConf 2.3 cannot merge a command-line mapping into a typed ``Optional[Dict]`` that is ``null``.

A network other than ``torchff.nn.MLP`` needs keys this schema does not have: build it in Python
(:class:`~torchff.train.module.FeedforwardModule` takes any ``nn.Module``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

__all__ = ["NetConfig", "ModelConfig", "TrainerConfig", "PathsConfig", "TrainConfig", "EvalConfig", "register"]

#: ``model.net`` keys of the RBF feature layer; they reach the network only when ``features`` is set.
RBF_KEYS = ("num_centers", "gamma", "learnable_centers", "center_init")


@dataclass
class NetConfig:
    """``model.net``: the arguments of ``torchff.nn.MLP`` (``in_features``/``out_features`` ``null``:
    filled in from the data and the output distribution)."""

    _target_: str = "torchff.nn.MLP"
    in_features: Optional[int] = None
    hidden_features: List[int] = field(default_factory=list)
    out_features: Optional[int] = None
    activation: str = "relu"
    activation_kwargs: Any = None  # null or a mapping
    pieces: Optional[int] = None
    dropout: float = 0.0
    input_dropout: float = 0.0
    bias: bool = True
    bias_init: Optional[float] = None
    # a first layer of radial basis function features (features: null or rbf)
    features: Optional[str] = None
    num_centers: int = 16
    gamma: float = 1.0
    learnable_centers: bool = True
    center_init: str = "batch"


@dataclass
class ModelConfig:
    """``model``: the arguments of :class:`~torchff.train.module.FeedforwardModule`.

    ``output`` is a name of ``torchff.nn.list_outputs()`` (checked against the registry when the run
    starts); ``optimizer`` and ``scheduler`` are Hydra ``_partial_`` targets; ``max_norm`` caps every
    weight row's L2 norm after each optimizer step.
    """

    _target_: str = "torchff.train.module.FeedforwardModule"
    output: str = "categorical"
    net: NetConfig = field(default_factory=NetConfig)
    optimizer: Any = None
    scheduler: Any = None
    scheduler_interval: str = "epoch"
    scheduler_monitor: str = "val/loss"
    max_norm: Optional[float] = None
    num_classes: Optional[int] = None
    loss_kwargs: Any = None  # null or a mapping


@dataclass
class TrainerConfig:
    """``trainer``: the arguments of ``lightning.pytorch.Trainer`` that a YAML file can hold
    (``logger`` and ``callbacks`` come from their own groups)."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "auto"
    strategy: Any = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    precision: Any = None
    fast_dev_run: Any = False
    max_epochs: Optional[int] = None
    min_epochs: Optional[int] = None
    max_steps: int = -1
    min_steps: Optional[int] = None
    max_time: Any = None
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    limit_predict_batches: Any = None
    overfit_batches: Any = 0.0
    val_check_interval: Any = None
    check_val_every_n_epoch: Optional[int] = 1
    num_sanity_val_steps: Optional[int] = None
    log_every_n_steps: Optional[int] = None
    enable_checkpointing: Optional[bool] = None
    enable_progress_bar: Optional[bool] = None
    enable_model_summary: Optional[bool] = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[float] = None
    gradient_clip_algorithm: Optional[str] = None
    deterministic: Any = None
    benchmark: Optional[bool] = None
    inference_mode: bool = True
    use_distributed_sampler: bool = True
    profiler: Any = None
    detect_anomaly: bool = False
    barebones: bool = False
    plugins: Any = None
    sync_batchnorm: bool = False
    reload_dataloaders_every_n_epochs: int = 0
    default_root_dir: Optional[str] = None


@dataclass
class PathsConfig:
    """``paths``: where data are read from (``data_dir``) and a run's outputs written (``output_dir``)."""

    data_dir: str = "data"
    output_dir: str = MISSING


@dataclass
class RunConfig:
    """What training and evaluation share."""

    data: Any = None
    model: ModelConfig = field(default_factory=ModelConfig)
    callbacks: Any = None  # {name: a _target_ node or null}
    logger: Any = None  # {name: a _target_ node or null}
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    task_name: str = MISSING
    seed: Optional[int] = None
    num_threads: Any = "auto"
    plots: bool = True


@dataclass
class TrainConfig(RunConfig):
    """``train.yaml`` (``torchff-train``)."""

    train: bool = True
    test: bool = True
    ckpt_path: Optional[str] = None
    optimized_metric: Optional[str] = None


@dataclass
class EvalConfig(RunConfig):
    """``eval.yaml`` (``torchff-eval``): ``ckpt_path`` is required."""

    ckpt_path: str = MISSING


def register() -> None:
    """Store the schemas in Hydra's ``ConfigStore`` (idempotent); done when this module is imported."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)


register()
