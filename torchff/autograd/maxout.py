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

The value and the winner index come from one op, ``torch.ops.torchff.maxout`` (one pass over
the input, :mod:`torchff.kernels.maxout`); the backward is ``torch.ops.torchff.maxout_backward``
(the scatter) when grad mode is off, and torch's differentiable ``max`` backward when it is on
(double backward). Both Functions save the winner's index in the narrowest integer that holds
it (``uint8`` up to 256 pieces: 1 byte per output element, where ``torch.max`` keeps ``int64``
indices, 8 bytes) and never the ``k``-times wider pre-activation.

Each Function is a core class and a subclass adding ``jvp`` (forward mode); under
``torch.compile`` the functional applies the core class, since
dynamo refuses to trace a Function that defines ``jvp``.

The Functions return the index as a second output and are private: use
:func:`torchff.functional.maxout` / :func:`torchff.functional.maxout_linear`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.kernels import maxout as _ops
from torchff.kernels.maxout import index_dtype

__all__ = ["check_pieces", "index_dtype"]

_aten = torch.ops.aten


def check_pieces(pieces) -> int:
    """``pieces`` if it is a positive int (not a bool), else ``ValueError`` (the one check that
    :func:`torchff.functional.maxout`, ``maxout_linear`` and the modules share)."""
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
        raise ValueError(f"maxout: pieces must be a positive int, got {pieces!r}")
    return pieces


def _route(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    """``grad`` (the output's shape) scattered onto the winning pieces, zeros elsewhere: the
    op when grad mode is off, torch's differentiable ``max`` backward when it is on."""
    if not torch.is_grad_enabled():
        return _ops.maxout_backward(grad, index, pieces, dim)
    sizes = list(grad.shape)
    sizes.insert(dim + 1, pieces)
    routed = _aten.value_selecting_reduction_backward(grad, dim + 1, index.long(), sizes, False)
    return routed.flatten(dim, dim + 1)


def _pick(tangent: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    """The winner's entry of each group of ``tangent`` (the input's shape): forward mode."""
    # reshape, not unflatten: the legacy vmap of is_grads_batched / batched forward grads has no
    # batching rule for unflatten
    shape = tangent.shape[:dim] + (tangent.shape[dim] // pieces, pieces) + tangent.shape[dim + 1 :]
    return tangent.reshape(shape).gather(dim + 1, index.long().unsqueeze(dim + 1)).squeeze(dim + 1)


class _Maxout(Function):
    r"""Maxout along ``dim``: :math:`g_i = \max_{j < k} x_{ik + j}`.

    ``forward(input, pieces, dim)`` returns ``(output, index)``; ``index`` is the
    non-differentiable winner index. ``dim`` must be non-negative (the functional normalises it).

    Backward: :math:`\partial g_i / \partial x_{ik + j} = 1` for the winning piece ``j`` (the
    first maximum; the first nan in a group with nan), 0 for the others, so
    :math:`\partial L / \partial x` is the output gradient scattered onto the winners. The
    backward is linear in the output gradient and differentiable (double backward: the second
    derivative in :math:`x` is zero almost everywhere). Forward mode: the winner's tangent.

    Saved for backward: the winner index only, 1 byte per *output* element (``uint8``, up to
    256 pieces; see :func:`index_dtype` beyond). ``view + torch.max`` keeps ``int64`` indices:
    8 bytes per output element.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
        return _ops.maxout(input, pieces, dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, pieces, dim = inputs
        ctx.pieces, ctx.dim = int(pieces), int(dim)
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])
        ctx.save_for_forward(output[1])

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_index: Tensor | None):
        (index,) = ctx.saved_tensors
        return _route(grad, index, ctx.pieces, ctx.dim), None, None


class _MaxoutFunction(_Maxout):
    __doc__ = _Maxout.__doc__

    @staticmethod
    def jvp(ctx, tangent: Tensor, _pieces, _dim):
        (index,) = ctx.saved_tensors
        return _pick(tangent, index, ctx.pieces, ctx.dim), None


class _MaxoutLinear(Function):
    r"""A layer of maxout units: :math:`h_i = \max_{j < k} z_{ik + j}`, :math:`z = x W^T + b`.

    ``weight`` is ``(out_features * k, in_features)``, ``bias`` ``(out_features * k,)`` or
    ``None``; the pieces of unit ``i`` are rows ``i*k ... i*k + k - 1``. ``input`` is
    ``(..., in_features)``. ``forward`` returns ``(output, index)`` as :class:`_Maxout`;
    the GEMM is torch's ``linear``, the activation the ``torchff::maxout`` op on its last dim.

    Backward, in matrix form: with :math:`G` the output gradient scattered onto the winning
    pieces (shape of :math:`z`, flattened to rows),

    .. math::

        \nabla_W = G^T X, \qquad \nabla_X = G W, \qquad \nabla_b = \textstyle\sum_{rows} G.

    Differentiable (double backward through the same formulas). Forward mode: the winner's
    entry of :math:`\dot z = \dot x W^T + x \dot W^T + \dot b`.

    Saved for backward: what ``nn.Linear`` keeps (the input when the weight needs a gradient,
    the weight when the input does) and the winner index, 1 byte per output element. The
    ``k`` times wider pre-activation :math:`z` is never kept; ``nn.Linear`` followed by
    ``view + torch.max`` keeps the same input and weight plus 8 bytes per output element.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, weight: Tensor, bias: Tensor | None, pieces: int) -> tuple[Tensor, Tensor]:
        pre = torch.nn.functional.linear(input, weight, bias)
        return _ops.maxout(pre, pieces, pre.dim() - 1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, pieces = inputs
        ctx.pieces = int(pieces)
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(output[1])
        need_x, need_w = ctx.needs_input_grad[:2]
        # as nn.Linear: the input only for the weight's gradient, the weight only for the input's
        ctx.save_for_backward(input if need_w else None, weight if need_x else None, output[1])
        ctx.save_for_forward(input, weight, output[1])

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_index: Tensor | None):
        input, weight, index = ctx.saved_tensors
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        g = _route(grad, index, ctx.pieces, grad.dim() - 1)  # (..., out * k)
        if need_x:
            grad_x = g.matmul(weight)
        if need_w or need_b:
            rows = g.reshape(-1, g.shape[-1])
            if need_w:
                grad_w = rows.t().mm(input.reshape(-1, input.shape[-1]))
            if need_b and ctx.has_bias:
                grad_b = rows.sum(0)
        return grad_x, grad_w, grad_b, None


class _MaxoutLinearFunction(_MaxoutLinear):
    __doc__ = _MaxoutLinear.__doc__

    @staticmethod
    def jvp(ctx, input_t, weight_t, bias_t, _pieces):
        input, weight, index = ctx.saved_tensors
        pre_t = None
        for term in (
            None if input_t is None else torch.nn.functional.linear(input_t, weight),
            None if weight_t is None else torch.nn.functional.linear(input, weight_t),
            bias_t,
        ):
            if term is not None:
                pre_t = term if pre_t is None else pre_t + term
        if pre_t is None:
            pre_t = torch.zeros(index.shape[:-1] + (weight.shape[0],), dtype=weight.dtype, device=weight.device)
        return _pick(pre_t, index, ctx.pieces, pre_t.dim() - 1), None
