r"""Maxout units as modules: the activation alone and a whole layer, plus the max-norm constraint.

A maxout unit outputs the largest of ``k`` affine pieces of its input,

.. math::

    h_i = \max_{j \in [1, k]} z_{ij}, \qquad z_{ij} = \mathbf w_{ij}^T \mathbf x + b_{ij},

a learned convex piecewise-linear activation (Goodfellow et al., ICML 2013).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from torchff import functional as F
from torchff.autograd.maxout import check_pieces
from torchff.nn._linear import reset_linear_parameters
from torchff.nn.registry import register_activation

__all__ = ["Maxout", "MaxoutLinear", "max_norm_"]

#: The column-norm cap of the maxout paper's MNIST and CIFAR-10 models.
PAPER_MAX_NORM = 1.9365


@register_activation("maxout")
class Maxout(nn.Module):
    r"""Maxout activation: the maximum over groups of ``pieces`` consecutive elements along ``dim``.

    :math:`g_i = \max_{j < k} x_{ik + j}` with ``k = pieces``: elements ``i*k ... i*k + k - 1``
    form unit ``i`` (``x.unflatten(dim, (-1, k)).max(dim + 1)``). Put it after a layer with
    ``k`` times as many outputs as units, or use :class:`MaxoutLinear`.

    Args:
        pieces: ``k``, the number of pieces per unit (>= 1; the size along ``dim`` must be a
            multiple of it).
        dim: the dimension holding the pieces.

    Shape: input ``(*, k * units, *)`` (``dim``), output ``(*, units, *)``.

    The gradient goes to the first maximal piece of each unit (the first nan in a unit
    holding one), as ``torch.max``. Saved for backward: a ``uint8`` index, 1 byte per output
    element (``view + torch.max`` keeps 8), up to 256 pieces.

    Example::

        >>> Maxout(pieces=2)(torch.tensor([[1.0, -2.0, 0.5, 3.0]]))
        tensor([[1., 3.]])
    """

    def __init__(self, pieces: int, dim: int = -1) -> None:
        super().__init__()
        check_pieces(pieces)
        self.pieces = pieces
        self.dim = int(dim)

    def forward(self, input: Tensor) -> Tensor:
        return F.maxout(input, self.pieces, self.dim)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}, dim={self.dim}"


class MaxoutLinear(nn.Module):
    r"""A layer of ``out_features`` maxout units with ``pieces`` affine pieces each.

    :math:`h_i = \max_{j < k} (x W^T + b)_{ik + j}`: exactly
    ``maxout(F.linear(x, weight, bias), pieces)``, computed by one autograd Function whose
    backward is the matrix form (:math:`G` the output gradient routed to the winning pieces):
    :math:`\nabla_W = G^T X`, :math:`\nabla_X = G W`, :math:`\nabla_b = \sum G`.

    Args:
        in_features: size of each input sample.
        out_features: number of maxout units (the output size).
        pieces: ``k``, the affine pieces per unit.
        bias: learn the additive bias ``b``.

    Attributes:
        weight: ``(out_features * pieces, in_features)``; row ``i*k + j`` is piece ``j`` of
            unit ``i``. Initialised as ``nn.Linear(in_features, out_features * pieces)``.
        bias: ``(out_features * pieces,)``, same grouping, or ``None``.

    The parameters are ``nn.Linear(in_features, out_features * pieces)``'s, under the same
    ``state_dict`` keys, so a state dict moves between this layer and ``nn.Linear`` followed
    by :class:`Maxout`.

    Shape: input ``(*, in_features)``, output ``(*, out_features)``.

    Saved for backward: the input and the weight (as ``nn.Linear``) and a ``uint8`` index, 1 byte
    per output element. The ``k`` times wider pre-activation is never kept;
    ``nn.Linear`` + ``view + torch.max`` keeps 8 bytes of index per output element.

    Max-norm: :meth:`apply_max_norm_` caps the L2 norm of every piece's incoming weight vector
    (each row of ``weight``), the constraint of the maxout paper (see :func:`max_norm_`).
    """

    __constants__ = ["in_features", "out_features", "pieces"]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        pieces: int,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_pieces(pieces)
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.pieces = pieces
        self.weight = nn.Parameter(torch.empty((out_features * pieces, in_features), **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features * pieces, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias."""
        reset_linear_parameters(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.maxout_linear(input, self.weight, self.bias, pieces=self.pieces)

    @torch.no_grad()
    def apply_max_norm_(self, max_norm: float = PAPER_MAX_NORM) -> "MaxoutLinear":
        """Cap each row of ``weight`` (one piece's incoming weights) at L2 norm ``max_norm``, in place."""
        max_norm_(self.weight, max_norm, dim=0)
        return self

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"pieces={self.pieces}, bias={self.bias is not None}"
        )


@torch.no_grad()
def max_norm_(
    module_or_weight: nn.Module | Tensor, max_norm: float = PAPER_MAX_NORM, dim: int = 0
) -> nn.Module | Tensor:
    r"""Max-norm constraint, in place: rescale every weight vector whose L2 norm exceeds ``max_norm``.

    Each slice ``weight.select(dim, i)`` with norm :math:`n > \text{max\_norm}` is multiplied by
    :math:`\text{max\_norm} / (n + 10^{-7})` (``torch.renorm``); shorter ones are left alone. With
    the default ``dim=0`` on a ``(out, in)`` weight, the slices are the rows: each unit's (each
    maxout piece's) incoming weight vector. That is pylearn2's ``max_col_norm`` (the maxout paper's
    constraint, 1.9365), stated there on columns because pylearn2 stores ``(in, out)`` matrices.

    Call it after each optimizer step; it is not a parametrization.

    Args:
        module_or_weight: a tensor (constrained directly), or a module: the ``weight`` of every
            :class:`MaxoutLinear` and ``nn.Linear`` in it (itself included) is constrained.
        max_norm: the cap (> 0).
        dim: the dimension indexing the constrained vectors (``torch.renorm``'s ``dim``).

    Returns:
        ``module_or_weight``.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm!r}")
    if isinstance(module_or_weight, Tensor):
        module_or_weight.renorm_(2, dim, max_norm)
        return module_or_weight
    for m in module_or_weight.modules():
        if isinstance(m, (MaxoutLinear, nn.Linear)):
            m.weight.renorm_(2, dim, max_norm)
    return module_or_weight
