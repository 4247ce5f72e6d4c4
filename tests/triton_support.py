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


def _language_namespaces() -> list:
    """The objects triton's interpreter patches (``triton/runtime/interpreter.py``, ``_patch_lang``)."""
    import triton.language as tl

    return [tl, tl.core, tl.math, tl.core.tensor, tl.core.dtype, tl.core.tensor_descriptor_base]


# triton.language as it is before any kernel is interpreted (test modules import this at collection)
_PRISTINE = [(ns, dict(vars(ns))) for ns in _language_namespaces()]


def restore_triton_language() -> None:
    """Put triton.language back as it was before any kernel was interpreted.

    Triton 3.8's interpreter restores what it patches for a kernel launch, but a ``@triton.jit``
    function of triton's own standard library called from a kernel (the combine function of
    ``tl.sum``, ``tl.sigmoid``, ...) patches ``triton.language.core`` again, and that is never
    undone: ``core.cast`` and the rest stay the interpreter's, and the real compiler, running
    later in the same process, then fails inside them. ``aot_compile`` calls this first.
    """
    for ns, saved in _PRISTINE:
        for name in [k for k in vars(ns) if k not in saved and not k.startswith("__")]:
            delattr(ns, name)
        for name, value in saved.items():
            if not name.startswith("__") and vars(ns).get(name) is not value:
                setattr(ns, name, value)


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

    restore_triton_language()
    jf = _jit(kernel)
    with _compilable_globals(kernel):
        src = triton.compiler.ASTSource(fn=jf, signature=signature, constexprs=constexprs or {}, attrs=attrs)
        return triton.compile(src, target=GPUTarget("cuda", capability, 32))


def aligned(kernel, *names: str) -> dict:
    """``attrs`` marking the named arguments of ``kernel`` divisible by 16 (pointers to fresh
    tensors, and element counts that are multiples of 16), as triton's launcher specializes them."""
    args = list(_jit(kernel).arg_names)
    return {(args.index(n),): [["tt.divisibility", 16]] for n in names}


def run_without_interpreter(code: str, timeout: float = 900):
    """Run ``code`` in a Python process of its own without ``TRITON_INTERPRET`` (the real
    compiler: under the interpreter, triton's code generator fails on some kernels), with the
    repository and ``tests/`` importable, and return the JSON its last printed line holds."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(here.parent), str(here), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])
