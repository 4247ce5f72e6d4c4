"""Testing the Triton kernels without a GPU: the interpreter and ahead-of-time compilation.

``tests/conftest.py`` sets ``TRITON_INTERPRET=1`` when no CUDA device is present, before
anything imports triton, so the kernels run on CPU tensors (slowly: keep the sizes small).
:func:`aot_compile` compiles a kernel for a GPU that is not here (``GPUTarget("cuda", cc, 32)``),
which the interpreter cannot replace: a kernel the interpreter accepts but the real compiler
rejects fails there.
"""

from __future__ import annotations

import contextlib
import os

import pytest

triton = pytest.importorskip("triton")

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
CAPABILITIES = (80, 90)  # sm_80 (A100), sm_90 (H100)


def _jit(fn):
    """The ``triton.jit`` function behind ``fn`` (under the interpreter, ``triton.jit`` returns an
    ``InterpretedFunction``, which the compiler cannot take)."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    if isinstance(fn, InterpretedFunction):
        return JITFunction(fn.fn)
    return fn


@contextlib.contextmanager
def _compilable_globals(fn):
    """Swap interpreted ``@triton.jit`` helpers that ``fn`` calls for compilable ones, and back."""
    from triton.runtime.interpreter import InterpretedFunction

    g = getattr(fn, "fn", fn).__globals__
    swapped = {k: v for k, v in g.items() if isinstance(v, InterpretedFunction)}
    try:
        g.update({k: _jit(v) for k, v in swapped.items()})
        yield
    finally:
        g.update(swapped)


def aot_compile(kernel, signature: dict, constexprs: dict | None = None, capability: int = 90, attrs=None):
    """Compile ``kernel`` for ``sm_<capability>`` and return triton's compiled kernel
    (``.asm["ptx"]``, ``.asm["cubin"]``).

    ``signature`` maps each non-constexpr argument to its type (``"*fp32"``, ``"i32"``,
    ``"fp32"``, ...); ``constexprs`` gives the ``tl.constexpr`` values. ``attrs`` may mark
    pointer arguments 16-byte aligned, as the launcher sees for fresh tensors:
    :func:`aligned` builds it.
    """
    from triton.backends.compiler import GPUTarget

    jf = _jit(kernel)
    with _compilable_globals(kernel):
        src = triton.compiler.ASTSource(fn=jf, signature=signature, constexprs=constexprs or {}, attrs=attrs)
        return triton.compile(src, target=GPUTarget("cuda", capability, 32))


def aligned(kernel, *names: str) -> dict:
    """``attrs`` marking the named arguments of ``kernel`` divisible by 16 (pointers to fresh
    tensors, and element counts that are multiples of 16), as triton's launcher specializes them."""
    args = list(_jit(kernel).arg_names)
    return {(args.index(n),): [["tt.divisibility", 16]] for n in names}
