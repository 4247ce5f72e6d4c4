r"""Gaussian radial basis function features as one autograd Function.

The lecture extends a linear model :math:`y = \mathbf w^T \mathbf x + b` to nonlinear functions of
:math:`\mathbf x` with a fixed feature map, :math:`y = \mathbf w^T \phi(\mathbf x) + b`, for
example radial basis functions :math:`\phi(\mathbf x) = e^{-(\epsilon \lVert \mathbf x - \mathbf x_i\rVert)^2}`.
With ``M`` centers :math:`\mathbf c_j` and :math:`\gamma = \epsilon^2`,

.. math::

    \phi_j(\mathbf x) = \exp(-\gamma_j \lVert \mathbf x - \mathbf c_j \rVert^2), \qquad j = 1, \dots, M.

For a batch :math:`X` (``N x D``) and centers :math:`C` (``M x D``) the squared distances are one
matrix product, :math:`D^2 = \lVert x \rVert^2 \mathbf 1^T - 2 X C^T + \mathbf 1 \lVert c \rVert^2`
(clamped at 0, where rounding makes a tiny distance negative), so no ``N x M x D`` tensor is ever
built and the cost is that of a linear layer: three GEMMs for forward and backward together. That
is why there is no compiled kernel here: the work is in the GEMMs, which BLAS / cuBLAS already do.

Derivatives, with :math:`K = \phi(X)` (``N x M``), :math:`G` the upstream gradient and
:math:`B = G \odot K`:

.. math::

    \nabla_X = -2\,\big(\mathrm{diag}(B\gamma)\, X - B\, \mathrm{diag}(\gamma)\, C\big), \qquad
    \nabla_C = 2\, \mathrm{diag}(\gamma)\big(B^T X - \mathrm{diag}(B^T \mathbf 1)\, C\big),

.. math::

    \nabla_{\gamma_j} = -\sum_n B_{nj} D^2_{nj}
        = -\big( (B^T \lVert x \rVert^2)_j - 2 (B^T X)_j \cdot \mathbf c_j + (B^T\mathbf 1)_j \lVert \mathbf c_j\rVert^2 \big),

all GEMMs and row/column sums of the one ``N x M`` temporary :math:`B`; :math:`D^2` is never kept.
The function is smooth (no kink); the clamp at 0 is treated as the identity by the derivative, whose
value there, :math:`-2\gamma\phi(\mathbf x - \mathbf c)`, is 0 at :math:`\mathbf x = \mathbf c`.

Far from every center :math:`\phi` underflows to exactly 0, and so do its gradients (they are
multiples of :math:`\phi`): no ``inf`` or ``nan``. The GEMM form measures a distance with an
absolute error of about ``eps * (|x|^2 + |c|^2)``: centre the data when its norms are large.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["RBFFunction", "RBFTracedFunction", "rbf_forward"]


def _sq_distances(x: Tensor, c: Tensor) -> Tensor:
    """``(N, M)`` squared distances ``|x|^2 - 2 x c^T + |c|^2`` by one GEMM, clamped at 0 (a fresh buffer)."""
    x2 = (x * x).sum(1, keepdim=True)
    c2 = (c * c).sum(1)
    # addmm broadcasts |c|^2 into its own output; |x|^2 is added in place: one N x M buffer
    return torch.addmm(c2, x, c.t(), alpha=-2.0).add_(x2).clamp_min_(0.0)


def rbf_forward(x: Tensor, c: Tensor, gamma: Tensor) -> Tensor:
    """``exp(-gamma * d2)`` for rows ``x`` ``(N, D)``, centers ``c`` ``(M, D)``, ``gamma`` ``()`` or ``(M,)``."""
    return _sq_distances(x, c).mul_(-gamma).exp_()


def _rows(input: Tensor) -> Tensor:
    return input.reshape(-1, input.shape[-1])


class RBFFunction(Function):
    r"""Gaussian RBF features :math:`\phi_j(\mathbf x) = \exp(-\gamma_j\lVert\mathbf x - \mathbf c_j\rVert^2)`.

    ``forward(input, centers, gamma)``: ``input`` ``(..., D)``, ``centers`` ``(M, D)``, ``gamma``
    a tensor of shape ``()`` or ``(M,)`` in the input's dtype (one width for all centers, or one
    per center); returns ``(..., M)``. Shapes are checked by :func:`torchff.functional.rbf`.

    Backward: the matrix formulas of the module docstring, for the input, the centers and
    ``gamma``, each computed only when needed. Double backward: when grad mode is on, the same
    formulas are recorded (they use the saved output, which stays connected to the graph), so
    ``gradgradcheck`` and Hessians work. Forward mode (``jvp``):
    :math:`\dot\phi = -\phi \odot (\gamma \odot \dot{D^2} + \dot\gamma \odot D^2)` with
    :math:`\dot{D^2}_{nj} = 2(\mathbf x_n - \mathbf c_j)\cdot(\dot{\mathbf x}_n - \dot{\mathbf c}_j)`, by GEMMs.

    Saved for backward: the output :math:`K` (which the next layer keeps anyway: 0 bytes extra in a
    network) and the inputs, which are alive already (the input, the centers, ``gamma``): nothing
    of its own. The plain ``exp(-gamma * cdist(x, c) ** 2)`` keeps two more ``N x M`` tensors (the
    distances and their square): 8 bytes per float32 output element.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, centers: Tensor, gamma: Tensor) -> Tensor:
        out = rbf_forward(_rows(input), centers, gamma)
        return out.reshape(*input.shape[:-1], centers.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, centers, gamma = inputs
        ctx.save_for_backward(input, centers, gamma, output)
        ctx.save_for_forward(input, centers, gamma, output)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad: Tensor | None):
        need_x, need_c, need_g = ctx.needs_input_grad
        if grad is None or not (need_x or need_c or need_g):
            return None, None, None
        input, centers, gamma, out = ctx.saved_tensors
        x = _rows(input)
        M = centers.shape[0]
        g_rows = grad.reshape(-1, M)
        k_rows = out.reshape(-1, M)
        # B = G * K, the only N x M temporary
        b = g_rows * k_rows
        per_center = gamma.dim() == 1
        grad_x = grad_c = grad_g = None
        if need_c or need_g:
            bt_x = b.t().mm(x)  # (M, D)
            col = b.sum(0)  # (M,)
        if need_x:
            if per_center:
                grad_x = (b.mv(gamma).unsqueeze(1) * x - b.mm(gamma.unsqueeze(1) * centers)) * -2.0
            else:
                grad_x = (b.sum(1, keepdim=True) * x - b.mm(centers)) * (-2.0 * gamma)
            grad_x = grad_x.reshape(input.shape)
        if need_c:
            g2 = 2.0 * (gamma.unsqueeze(1) if per_center else gamma)
            grad_c = (bt_x - col.unsqueeze(1) * centers) * g2
        if need_g:
            x2 = (x * x).sum(1)
            weighted = b.t().mv(x2) - 2.0 * (bt_x * centers).sum(1) + col * (centers * centers).sum(1)
            grad_g = -weighted if per_center else -weighted.sum()
            grad_g = grad_g.reshape(gamma.shape)
        return grad_x, grad_c, grad_g

    @staticmethod
    def jvp(ctx, input_t: Tensor | None, centers_t: Tensor | None, gamma_t: Tensor | None) -> Tensor:
        input, centers, gamma, out = ctx.saved_tensors
        x = _rows(input)
        M = centers.shape[0]
        k = out.reshape(-1, M)
        rate = torch.zeros_like(k)  # d(-log phi) = gamma * d(D2) + d(gamma) * D2
        if input_t is not None or centers_t is not None:
            # dD2_nj = 2 (x_n - c_j) . (dx_n - dc_j)
            dd2 = torch.zeros_like(k)
            if input_t is not None:
                dx = _rows(input_t)
                dd2 = dd2 + (x * dx).sum(1, keepdim=True) - dx.mm(centers.t())
            if centers_t is not None:
                dd2 = dd2 + (centers * centers_t).sum(1) - x.mm(centers_t.t())
            rate = rate + 2.0 * gamma * dd2
        if gamma_t is not None:
            rate = rate + gamma_t * _sq_distances(x, centers)
        return (-(k * rate)).reshape(out.shape)


class RBFTracedFunction(RBFFunction):
    """:class:`RBFFunction` without its ``jvp``, for ``torch.compile``: Dynamo cannot trace a Function
    that defines a custom ``jvp`` (it graph-breaks on it), and compiled code records reverse mode
    only. Same forward, setup_context and backward (inherited)."""

    jvp = staticmethod(Function.jvp)

