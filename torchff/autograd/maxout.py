r"""Maxout units (Goodfellow et al., ICML 2013) as autograd Functions.

A maxout unit takes the maximum of ``k`` affine pieces,

.. math::

    g(\mathbf z)_i = \max_{j \in [1, k]} z_{ij}
                   = \max\{\mathbf w_1^T \mathbf x + b_1, \dots, \mathbf w_k^T \mathbf x + b_k\},

a learned piecewise-linear convex activation with up to ``k`` pieces (a ReLU when ``k = 2`` and
:math:`\mathbf w_1 = b_1 = 0`).

Grouping: unit ``i`` takes the ``k`` consecutive elements ``i*k, ..., i*k + k - 1`` along the
reduced dim, as ``x.unflatten(dim, (-1, k)).max(dim + 1)`` (and pylearn2's ``Maxout`` layer).

Ties and nan follow ``torch.max``: the winner is the *first* maximal piece; a group holding a
nan outputs nan and its winner is its first nan. The gradient flows only to the winner.

Both Functions save the winner's index in the narrowest unsigned/signed integer that holds it
(``uint8`` up to 256 pieces: 1 byte per output element, where ``torch.max`` keeps ``int64``
indices, 8 bytes) and never the ``k``-times wider pre-activation.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["MaxoutFunction", "MaxoutLinearFunction", "index_dtype"]

_aten = torch.ops.aten

# Up to this many pieces the winner is found from torch.amax (a plain reduction, about twice
# as fast as torch.max with indices over a short dim) and k - 1 strided comparisons that
# build the narrow index directly; beyond it, from torch.max's int64 indices narrowed in one
# pass (the comparisons grow with k; measured crossover between 4 and 6 on CPU).
_COMPARE_MAX_PIECES = 4


def index_dtype(pieces: int) -> torch.dtype:
    """The narrowest integer dtype holding a winner index in ``[0, pieces - 1]``."""
    if pieces <= 256:
        return torch.uint8
    if pieces <= 2**15:
        return torch.int16
    if pieces <= 2**31:
        return torch.int32
    return torch.int64


def _not_winner(piece: Tensor, best: Tensor) -> Tensor:
    """True where ``piece`` is not ``torch.max``'s winner candidate for its group.

    A candidate equals the group maximum or, in a group whose maximum is nan, is a nan
    (in a group without nan there is none, so ``piece == piece`` only matters there).
    """
    out = torch.ne(piece, best)
    if piece.is_floating_point() or piece.is_complex():
        out &= piece == piece
    return out


def maxout_forward(input: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    """Values and narrow winner indices of the maxout of ``input`` along ``dim`` (>= 0).

    Returns ``(out, index)``: ``out`` has ``input.shape[dim] // pieces`` along ``dim``;
    ``index`` (dtype :func:`index_dtype`) holds the first winning piece of each group.
    """
    grouped = input.unflatten(dim, (-1, pieces))
    red = dim + 1
    dtype = index_dtype(pieces)
    if pieces > _COMPARE_MAX_PIECES:
        out, index = torch.max(grouped, red)
        return out, index.to(dtype)
    out = torch.amax(grouped, red)
    if pieces == 1:
        return out, torch.zeros(out.shape, dtype=dtype, device=out.device)
    # index = number of leading pieces that are not the winner
    #       = sum_{j <= k-2} prod_{l <= j} not_winner_l   (first winner wins ties)
    missed = _not_winner(grouped.select(red, 0), out)
    index = missed.view(dtype).clone()  # bool -> uint8 is a reinterpretation, not a cast
    for j in range(1, pieces - 1):
        missed &= _not_winner(grouped.select(red, j), out)
        index += missed.view(dtype)
    return out, index


def route_to_winner(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    """Scatter ``grad`` (the output's shape) onto the winning pieces; zeros elsewhere.

    Returns a tensor of the input's shape (``pieces`` times ``grad``'s size along ``dim``).
    Out-of-place and differentiable in ``grad`` (torch's own ``max`` backward kernel).
    """
    sizes = list(grad.shape)
    sizes.insert(dim + 1, pieces)
    routed = _aten.value_selecting_reduction_backward(grad, dim + 1, index.long(), sizes, False)
    return routed.flatten(dim, dim + 1)


class MaxoutFunction(Function):
    r"""Maxout along ``dim``: :math:`g_i = \max_{j < k} x_{ik + j}`.

    ``forward(input, pieces, dim)`` returns ``(output, index)``; ``index`` is the
    non-differentiable winner index (use :func:`torchff.functional.maxout`, which drops it).
    ``dim`` must be non-negative here (the functional normalises it).

    Backward: :math:`\partial g_i / \partial x_{ik + j} = 1` for the winning piece ``j`` (the
    first maximum; the first nan in a group with nan), 0 for the others, so
    :math:`\partial L / \partial x` is the output gradient scattered onto the winners. The
    backward is linear in the output gradient and differentiable (double backward: the second
    derivative in :math:`x` is zero almost everywhere).

    Saved for backward: the winner index only, 1 byte per *output* element (``uint8``, up to
    256 pieces; see :func:`index_dtype` beyond). ``view + torch.max`` keeps ``int64`` indices:
    8 bytes per output element.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
        return maxout_forward(input, pieces, dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, pieces, dim = inputs
        ctx.pieces, ctx.dim = int(pieces), int(dim)
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_index: Tensor | None):
        (index,) = ctx.saved_tensors
        return route_to_winner(grad, index, ctx.pieces, ctx.dim), None, None


class MaxoutLinearFunction(Function):
    r"""A layer of maxout units: :math:`h_i = \max_{j < k} z_{ik + j}`, :math:`z = x W^T + b`.

    ``weight`` is ``(out_features * k, in_features)``, ``bias`` ``(out_features * k,)`` or
    ``None``; the pieces of unit ``i`` are rows ``i*k ... i*k + k - 1``. ``input`` is
    ``(..., in_features)``. ``forward`` returns ``(output, index)`` as :class:`MaxoutFunction`.

    Backward, in matrix form: with :math:`G` the output gradient scattered onto the winning
    pieces (shape of :math:`z`, flattened to rows),

    .. math::

        \nabla_W = G^T X, \qquad \nabla_X = G W, \qquad \nabla_b = \textstyle\sum_{rows} G.

    Differentiable (double backward through the same formulas).

    Saved for backward: what ``nn.Linear`` keeps (the input when the weight needs a gradient,
    the weight when the input does) and the winner index, 1 byte per output element. The
    ``k`` times wider pre-activation :math:`z` is never kept; ``nn.Linear`` followed by
    ``view + torch.max`` keeps the same input and weight plus 8 bytes per output element.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, weight: Tensor, bias: Tensor | None, pieces: int) -> tuple[Tensor, Tensor]:
        pre = torch.nn.functional.linear(input, weight, bias)
        return maxout_forward(pre, pieces, pre.dim() - 1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, pieces = inputs
        ctx.pieces = int(pieces)
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(output[1])
        need_x, need_w = ctx.needs_input_grad[:2]
        # as nn.Linear: the input only for the weight's gradient, the weight only for the input's
        ctx.save_for_backward(input if need_w else None, weight if need_x else None, output[1])

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_index: Tensor | None):
        input, weight, index = ctx.saved_tensors
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        g = route_to_winner(grad, index, ctx.pieces, grad.dim() - 1)  # (..., out * k)
        if need_x:
            grad_x = g.matmul(weight)
        if need_w or need_b:
            rows = g.reshape(-1, g.shape[-1])
            if need_w:
                grad_w = rows.t().mm(input.reshape(-1, input.shape[-1]))
            if need_b and ctx.has_bias:
                grad_b = rows.sum(0)
        return grad_x, grad_w, grad_b, None
