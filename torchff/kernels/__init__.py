"""The kernel layer: torchff's fused primitives, registered as torch ops in the ``torchff`` namespace.

Each primitive (a value and its 1-byte mask, a loss row and its gradient, ...) is one op,
``torch.ops.torchff.<name>``, defined once with :func:`define` and implemented once per
device:

* ``CPU``: a loop in plain C (``torchff/csrc/*.c``, built by ``pip install`` into
  ``torchff._kernels`` and called through :mod:`torchff.kernels._c`). Registered only when the
  library loaded; without it (no C compiler at install) CPU tensors take the composite.
* ``CUDA``: a Triton kernel (``torchff/kernels/triton/<family>.py``), imported on the first
  CUDA call, so CPU users never import triton.
* ``CompositeExplicitAutograd``: the same math composed of torch ops, for every other device
  (MPS, XPU, ...) and as the reference the kernels are tested against.
* a fake implementation (:func:`torch.library.register_fake`) giving shapes and dtypes, for
  ``FakeTensor``, ``torch.compile`` and ``torch.export``.

The dispatcher picks the kernel: callers never test where a tensor lives. The ops have no
autograd formula of their own; the ``torch.autograd.Function``\\ s in :mod:`torchff.autograd`
call them and keep the explicit backward. An op module per family
(``torchff/kernels/<family>.py``) defines that family's ops when it is imported.
"""

from torchff.kernels._library import batch_first, define, elementwise_vmap, lib

__all__ = ["batch_first", "define", "elementwise_vmap", "lib"]
