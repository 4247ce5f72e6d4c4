r"""The perceptron criterion (Rosenblatt, 1957) as an autograd Function.

A perceptron is a linear classifier :math:`z = \mathbf w^T \mathbf x + b` followed by the binary
step :math:`f(z) = 1[z \ge 0]`. The step has no useful derivative, so the perceptron is trained on
the *perceptron criterion* of its logit instead,

.. math::

    \ell(z, y) = \max\{0, -y z\}, \qquad y \in \{-1, +1\},

which is zero for correctly classified points and grows linearly with the violation for the
others. Its derivative is Rosenblatt's rule:

.. math::

    \frac{\partial \ell}{\partial z} = -y \cdot 1[y z \le 0],

so one step of gradient descent with learning rate :math:`\eta` on a linear layer and one
example is :math:`\mathbf w \leftarrow \mathbf w + \eta\, y\, \mathbf x`,
:math:`b \leftarrow b + \eta\, y` on a mistake, and nothing otherwise.

Kink convention: at :math:`y z = 0` the derivative is :math:`-y` (the point *on* the boundary
counts as a mistake, as in Rosenblatt's rule), the left derivative of :math:`\max\{0, -yz\}` in
:math:`yz`. With ``relu``'s convention (0 at 0) a perceptron started from :math:`\mathbf w = 0`,
where every :math:`z` is 0, would never move.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["PerceptronLossFunction", "PerceptronLossTracedFunction", "perceptron_labels"]

NONE, MEAN, SUM = 0, 1, 2


def perceptron_labels(target: Tensor, dtype: torch.dtype) -> Tensor:
    """The labels :math:`y \\in \\{-1, +1\\}` of ``target``: ``+1`` where ``target > 0``, else ``-1``.

    So ``{-1, +1}`` targets are kept and ``{0, 1}`` targets map 0 to -1 and 1 to +1, without
    looking at the values (no host synchronisation).
    """
    return torch.where(target > 0, 1.0, -1.0).to(dtype)


def _reduce(elements: Tensor, reduction: int) -> Tensor:
    if reduction == NONE:
        return elements
    total = elements.sum()
    return total / elements.numel() if reduction == MEAN else total


class PerceptronLossFunction(Function):
    r"""The perceptron criterion :math:`\max\{0, -y z\}`, ``y`` from ``target`` by
    :func:`perceptron_labels` (``target > 0`` is the positive class: ``{0, 1}`` and ``{-1, +1}``
    targets both work).

    ``forward(input, target, reduction) -> (loss, step)``; ``step`` is the non-differentiable
    ``int8`` tensor :math:`s = -y \cdot 1[y z \le 0]` (the broadcast shape of input and target),
    the loss's derivative in :math:`z`. ``reduction``: 0 ``'none'``, 1 ``'mean'``, 2 ``'sum'``.

    Backward (Rosenblatt's rule): :math:`\partial \ell / \partial z = s` times the upstream
    gradient (divided by the element count for ``'mean'``), summed back to the input's shape;
    :math:`y z = 0` counts as a mistake. The target is a label: it gets no gradient. The backward
    is linear in the upstream gradient and differentiable (double backward: the second derivative
    in :math:`z` is zero). Forward mode: the loss's tangent is :math:`s \cdot \dot z`, reduced.

    Saved for backward: ``s`` only, 1 byte per element (``relu(-y * z)`` in torch keeps its
    float32 output and the labels, 8 bytes).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, reduction: int) -> tuple[Tensor, Tensor]:
        y = perceptron_labels(target, input.dtype)
        margin = input * y  # y z
        loss = torch.clamp_min(-margin, 0.0)
        step = torch.where(margin <= 0, -y, 0.0).to(torch.int8)  # nan margin: no update
        return _reduce(loss, reduction), step

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, _, reduction = inputs
        ctx.reduction = int(reduction)
        ctx.input_shape = input.shape
        ctx.input_dtype = input.dtype
        step = output[1]
        ctx.numel = step.numel()
        ctx.mark_non_differentiable(step)
        ctx.save_for_backward(step)
        ctx.save_for_forward(step)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad: Tensor | None, _grad_step: Tensor | None):
        if grad is None or not ctx.needs_input_grad[0]:
            return None, None, None
        (step,) = ctx.saved_tensors
        g = grad / ctx.numel if ctx.reduction == MEAN else grad
        grad_z = step.to(ctx.input_dtype) * g
        if grad_z.shape != ctx.input_shape:
            grad_z = grad_z.sum_to_size(ctx.input_shape)
        return grad_z, None, None

    @staticmethod
    def jvp(ctx, input_t: Tensor | None, _target_t: Tensor | None, _reduction_t):
        (step,) = ctx.saved_tensors
        if input_t is None:
            tangent = torch.zeros(step.shape, dtype=ctx.input_dtype, device=step.device)
        else:
            tangent = step.to(input_t.dtype) * input_t
        return _reduce(tangent, ctx.reduction), None


class PerceptronLossTracedFunction(PerceptronLossFunction):
    """:class:`PerceptronLossFunction` without its ``jvp``, for ``torch.compile``: Dynamo cannot trace a Function
    that defines a custom ``jvp`` (it graph-breaks on it), and compiled code records reverse mode
    only. Same forward, setup_context and backward (inherited)."""

    jvp = staticmethod(Function.jvp)

