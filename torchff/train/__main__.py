"""``python -m torchff.train``: the same as ``torchff-train``."""

from torchff.train.cli import main

if __name__ == "__main__":
    main()
