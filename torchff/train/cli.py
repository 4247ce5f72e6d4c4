"""The Hydra command lines: ``torchff-train`` (also ``python -m torchff.train``) and ``torchff-eval``
(also ``python -m torchff.train.eval``).

Examples::

    torchff-train                                   # moons, a 2-64-64-2 ReLU MLP, on the CPU
    torchff-train experiment=xor                    # the lecture's 2-2-1 XOR network
    torchff-train model.net.hidden_features=[128,128] trainer.max_epochs=50 seed=1
    torchff-train -m experiment=spirals             # a sweep (see the experiment's hydra.sweeper.params)
    torchff-train ckpt_path=outputs/.../checkpoints/last.ckpt   # resume
    torchff-eval experiment=xor ckpt_path=outputs/xor/.../checkpoints/best.ckpt   # test a checkpoint

A mistake of the user's (a value of the wrong type, an unknown key or option, missing or corrupt data,
an unusable checkpoint) ends the command with one line on stderr, ``<command>: error: <what is wrong>``,
and exit status 1; ``HYDRA_FULL_ERROR=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable

import hydra
from hydra.errors import HydraException, InstantiationException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from torchff.train.config import CONFIG_PATH, EVAL_CONFIG, TRAIN_CONFIG
from torchff.train.errors import CheckpointError, ConfigError, CorruptDataError, DataNotFoundError

__all__ = ["main", "eval_main", "describe"]

#: Mistakes in the configuration, the data or the checkpoint: reported as one message, not a traceback.
USER_ERRORS = (ConfigError, DataNotFoundError, CorruptDataError, CheckpointError, HydraException,
               OmegaConfBaseException)
_OURS = (ConfigError, DataNotFoundError, CorruptDataError, CheckpointError)

_FULL_ERROR = "HYDRA_FULL_ERROR"
# set while Hydra composes the config, so that Hydra raises its errors and `_report` words them
_borrowed_full_error = False


def _omegaconf_message(e: OmegaConfBaseException) -> str:
    msg = (getattr(e, "msg", None) or str(e) or type(e).__name__).strip().splitlines()[0]
    key = getattr(e, "full_key", None)
    return f"{key}: {msg}" if key else msg


def describe(e: BaseException) -> str:
    """``e`` as the one line the command prints (our own errors as they are worded)."""
    if isinstance(e, _OURS):
        return str(e).strip()
    cause = e.__cause__
    if isinstance(e, InstantiationException):
        if isinstance(cause, _OURS):
            return str(cause).strip()
        target = re.search(r"target '([^']+)'", str(e))
        key = re.search(r"full_key: (\S+)", str(e))
        where = key.group(1) if key else (target.group(1) if target else "")
        if cause is not None:
            return f"{where}: {cause}" if where else f"{type(cause).__name__}: {cause}"
    if isinstance(e, MissingConfigException):
        first = str(e).strip().splitlines()[0]
        return f"{first} (options: {', '.join(e.options)})" if e.options else first
    if isinstance(e, OmegaConfBaseException):
        return _omegaconf_message(e)
    if isinstance(cause, OmegaConfBaseException):  # e.g. "Error merging override seed=1.5"
        first = str(e).strip().splitlines()[0].rstrip(".")
        return f"{_omegaconf_message(cause)} ({first})"
    return " ".join(str(e).split())


def _report(app: str, e: BaseException) -> None:
    print(f"{app}: error: {describe(e)}", file=sys.stderr)
    sys.exit(1)


def _task(app: str, body: Callable[[DictConfig], float | None]) -> Callable[[DictConfig], float | None]:
    def run(cfg: DictConfig) -> float | None:
        global _borrowed_full_error
        if _borrowed_full_error:  # composed: from here Hydra reports the way the user asked
            os.environ.pop(_FULL_ERROR, None)
            _borrowed_full_error = False
        try:
            return body(cfg)
        except USER_ERRORS as e:
            if os.environ.get(_FULL_ERROR) == "1":
                raise
            _report(app, e)
            return None

    return run


def _train(cfg: DictConfig) -> float | None:
    from torchff.train.pipeline import objective, run

    return objective(cfg, run(cfg))


def _evaluate(cfg: DictConfig) -> float | None:
    from torchff.train.pipeline import evaluate

    evaluate(cfg)
    return None


_hydra_train = hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=TRAIN_CONFIG)(
    _task("torchff-train", _train))
_hydra_eval = hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=EVAL_CONFIG)(
    _task("torchff-eval", _evaluate))


def _run(app: str, entry: Callable[[], None]) -> None:
    global _borrowed_full_error
    if os.environ.get(_FULL_ERROR) == "1":
        entry()
        return
    # Hydra prints composition errors over several lines; with HYDRA_FULL_ERROR set it raises them
    # instead, and they are reported here in one. The task unsets it again before the run starts.
    os.environ[_FULL_ERROR] = "1"
    _borrowed_full_error = True
    try:
        entry()
    except USER_ERRORS as e:
        _report(app, e)
    finally:
        if _borrowed_full_error:
            os.environ.pop(_FULL_ERROR, None)
            _borrowed_full_error = False


def main() -> None:
    """Entry point of the ``torchff-train`` script."""
    _run("torchff-train", _hydra_train)


def eval_main() -> None:
    """Entry point of the ``torchff-eval`` script."""
    _run("torchff-eval", _hydra_eval)


if __name__ == "__main__":
    main()
