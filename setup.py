"""Builds torchff's optional compiled kernels (``torchff/csrc/kernels.c`` -> ``torchff._kernels``).

The package itself is described in ``pyproject.toml``. The extension is optional: where no C
compiler is found the install goes on, and torchff runs its pure-PyTorch paths
(``torchff.autograd._native.available()`` says which is in use).
"""

import os

from setuptools import Extension, setup

flags = [] if os.name == "nt" else ["-O3", "-fno-trapping-math"]
setup(ext_modules=[Extension("torchff._kernels", ["torchff/csrc/kernels.c"], extra_compile_args=flags, optional=True)])
