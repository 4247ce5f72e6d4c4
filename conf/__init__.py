"""Hydra configs for torchff-train (shipped inside the wheel as the package ``torchff.conf``)."""
