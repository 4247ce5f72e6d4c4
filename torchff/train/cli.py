"""``torchff-train``: the Hydra command line (also ``python -m torchff.train``).

Examples::

    torchff-train                                   # moons, a 2-64-64-2 ReLU MLP, on the CPU
    torchff-train experiment=xor                    # the lecture's 2-2-1 XOR network
    torchff-train model.net.hidden_features=[128,128] trainer.max_epochs=50 seed=1
    torchff-train -m experiment=spirals             # a sweep (see the experiment's hydra.sweeper.params)
    torchff-train ckpt_path=outputs/.../checkpoints/last.ckpt   # resume
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from torchff.train.config import CONFIG_NAME, config_dir
from torchff.train.errors import ConfigError, DataNotFoundError

__all__ = ["main"]

#: Mistakes in the configuration or the data: reported as one message, not a traceback
#: (``HYDRA_FULL_ERROR=1`` shows the traceback).
USER_ERRORS = (ConfigError, DataNotFoundError, InstantiationException, OmegaConfBaseException)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=CONFIG_NAME)
def _hydra_main(cfg: DictConfig) -> float | None:
    from torchff.train.pipeline import objective, run

    try:
        metrics = run(cfg)
        return objective(cfg, metrics)
    except USER_ERRORS as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        msg = str(e).strip()
        cause = e.__cause__
        if isinstance(e, InstantiationException) and isinstance(cause, (ConfigError, DataNotFoundError)):
            msg = str(cause)
        print(f"torchff-train: error: {msg}\n(set HYDRA_FULL_ERROR=1 for the traceback)", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    """Entry point of the ``torchff-train`` script."""
    _hydra_main()


if __name__ == "__main__":
    main()
