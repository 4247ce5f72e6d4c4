"""torchff: deep feedforward networks for PyTorch.

Layers of the package, each depending only on the ones before it:

* :mod:`torchff.autograd` -- custom ``torch.autograd.Function``\\ s with explicit backward;
* :mod:`torchff.functional` -- thin functions with ``torch.nn.functional``'s names and signatures;
* :mod:`torchff.nn` -- drop-in ``nn.Module``\\ s, the activation registry and the MLP builder;
* :mod:`torchff.testing` -- the public gradcheck / parity / vmap / compile / saved-bytes harness;
* :mod:`torchff.train` -- Lightning + Hydra training (imported lazily, on demand).
"""

from torchff import autograd, functional, nn, testing

__version__ = "0.1.0"
__all__ = ["autograd", "functional", "nn", "testing", "__version__"]
