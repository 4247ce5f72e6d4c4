"""``python -m torchff.train.eval``: the same as ``torchff-eval`` (see :mod:`torchff.train.cli`)."""

from torchff.train.cli import eval_main

if __name__ == "__main__":
    eval_main()
