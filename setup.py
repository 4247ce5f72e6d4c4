"""Builds torchff's C kernels (``torchff/csrc/*.c`` -> ``torchff._kernels``).

The package itself is described in ``pyproject.toml``. The extension is optional: where no C
compiler is found the install goes on, and CPU tensors take each op's composite
implementation (``torchff.kernels._c.available()`` says whether the library loaded).
"""

import glob
import os

from setuptools import Extension, setup

flags = [] if os.name == "nt" else ["-O3", "-fno-trapping-math"]
sources = sorted(glob.glob("torchff/csrc/*.c"))
headers = sorted(glob.glob("torchff/csrc/*.h"))
setup(ext_modules=[Extension("torchff._kernels", sources, depends=headers, extra_compile_args=flags, optional=True)])
