"""Builds torchff's C kernels (``torchff/csrc/*.c`` -> ``torchff._kernels``).

The package itself is described in ``pyproject.toml``. The extension is optional: where no C
compiler is found the install goes on, and CPU tensors take each op's composite
implementation (``torchff.kernels._c.available()`` says whether the library loaded). The
kernels split large arrays over threads with OpenMP (``torchff/csrc/torchff_parallel.h``:
at run time they share torch's own libgomp); a compiler without OpenMP builds them
single-threaded.
"""

import glob
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP = "-fopenmp"


class BuildExt(build_ext):
    """Build with OpenMP, and without it where the compiler refuses the flag."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception:
            if OPENMP not in ext.extra_compile_args:
                raise
            ext.extra_compile_args = [f for f in ext.extra_compile_args if f != OPENMP]
            ext.extra_link_args = [f for f in ext.extra_link_args if f != OPENMP]
            super().build_extension(ext)


unix = os.name != "nt"
flags = ["-O3", "-fno-trapping-math", OPENMP] if unix else []
sources = sorted(glob.glob("torchff/csrc/*.c"))
headers = sorted(glob.glob("torchff/csrc/*.h"))
setup(
    ext_modules=[
        Extension(
            "torchff._kernels",
            sources,
            depends=headers,
            extra_compile_args=flags,
            extra_link_args=[OPENMP] if unix else [],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
