"""Where the Hydra configs live, and composing them from Python.

The configs are the repository's top-level ``conf/`` folder, installed with the package as
``torchff.conf``. :func:`config_dir` finds the installed package first and falls back to the
``conf/`` next to the ``torchff`` package of a source tree (``PYTHONPATH=repo``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

__all__ = ["config_dir", "compose", "list_experiments"]

CONFIG_NAME = "train"


def config_dir() -> Path:
    """The absolute path of the folder holding ``train.yaml``."""
    try:
        spec = importlib.util.find_spec("torchff.conf")
    except ModuleNotFoundError:  # pragma: no cover - torchff itself missing
        spec = None
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    import torchff

    candidates.append(Path(torchff.__file__).resolve().parent.parent / "conf")
    for c in candidates:
        if (c / f"{CONFIG_NAME}.yaml").is_file():
            return c.resolve()
    raise FileNotFoundError(
        "torchff's Hydra configs were not found; looked in: " + ", ".join(str(c) for c in candidates)
    )


def list_experiments() -> list[str]:
    """Names of the experiment configs (``experiment=<name>``)."""
    return sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def compose(overrides: Sequence[str] = (), return_hydra_config: bool = False):
    """Compose the training config as ``torchff-train`` would, with command-line style ``overrides``.

    Outside a Hydra run ``paths.output_dir`` has no value; set it, e.g.
    ``compose(["experiment=xor", "paths.output_dir=/tmp/run"])``.
    """
    from hydra import compose as _compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir()), job_name="torchff-train"):
        return _compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=return_hydra_config)
