"""Where the Hydra configs live, and composing them from Python.

The configs are the package ``torchff.conf``, found by Hydra as ``pkg://torchff.conf`` (the same in
an installed wheel and in a source tree). In the repository they live in the top-level ``conf/``
folder; ``torchff/conf`` is a symbolic link to it, and the wheel installs ``conf/`` as
``torchff.conf`` (``[tool.setuptools.package-dir]`` in ``pyproject.toml``).

Their types are the structured config of :mod:`torchff.train.schema`, registered in Hydra's
``ConfigStore`` when this module is imported.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Sequence

import torchff.train.schema  # noqa: F401 - registers the schemas the YAML configs name

__all__ = ["CONFIG_MODULE", "CONFIG_PATH", "TRAIN_CONFIG", "EVAL_CONFIG", "config_dir", "compose", "list_experiments"]

CONFIG_MODULE = "torchff.conf"
#: what ``hydra.main`` is given: the configs as a Python package
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"
TRAIN_CONFIG = "train"
EVAL_CONFIG = "eval"


def config_dir() -> Path:
    """The folder of the ``torchff.conf`` package (``train.yaml``, ``eval.yaml`` and the groups)."""
    return Path(str(resources.files(CONFIG_MODULE)))


def list_experiments() -> list[str]:
    """Names of the experiment configs (``experiment=<name>``)."""
    return sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def compose(overrides: Sequence[str] = (), return_hydra_config: bool = False, config_name: str = TRAIN_CONFIG):
    """Compose the training config as ``torchff-train`` would (``config_name="eval"``: the evaluation
    config of ``torchff-eval``), with command-line style ``overrides``.

    Outside a Hydra run ``paths.output_dir`` has no value; set it, e.g.
    ``compose(["experiment=xor", "paths.output_dir=/tmp/run"])``. A value of the wrong type or an
    unknown key raises ``hydra.errors.ConfigCompositionException`` (its ``__cause__`` is OmegaConf's error).
    """
    from hydra import compose as _compose
    from hydra import initialize_config_module

    job_name = "torchff-eval" if config_name == EVAL_CONFIG else "torchff-train"
    with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE, job_name=job_name):
        return _compose(config_name=config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
