r"""The multinoulli cost: softmax cross-entropy and the negative log-likelihood, as autograd Functions.

With a softmax output unit :math:`p = \mathrm{softmax}(z)` and a class-index target :math:`y`,
maximum likelihood gives the cost

.. math:: J = -\log p_y = (m - z_y) + \log \sum_j e^{z_j - m}, \qquad m = \max_j z_j,

whose log undoes the softmax's exponent: :math:`\partial J / \partial z = p - e_y`, which stays
large (up to 1) whenever the answer is wrong, however confident the network is. The max is
subtracted before anything is summed, so the loss is exact for logits of any size.

Layout follows torch: the class dim is dim 1 (dim 0 of a 1-d, unbatched input), inputs may be
``(N, C, d1, ..., dk)``, class-index targets have the input's shape without the class dim.
Reductions use torch's enum: 0 = ``'none'``, 1 = ``'mean'``, 2 = ``'sum'``.

Per row :math:`n`, with class weights :math:`w` (all ones when absent, :math:`W = \sum_c w_c`),
label smoothing :math:`\varepsilon` and ``ignore_index`` (rows with it contribute 0):

* loss :math:`l_n = (1-\varepsilon)\, w_{y_n} (-\log p_{n,y_n}) + \tfrac{\varepsilon}{C} \sum_c w_c (-\log p_{n,c})`;
* gradient :math:`\partial l_n / \partial z_n = a_n p_n - b_n e_{y_n} - \tfrac{\varepsilon}{C} w`
  with :math:`a_n = (1-\varepsilon) w_{y_n} + \tfrac{\varepsilon}{C} W`, :math:`b_n = (1-\varepsilon) w_{y_n}`;
* ``'mean'`` divides by :math:`\sum_n w_{y_n}` over the rows that are not ignored (so an
  all-ignored batch gives nan, as torch), ``'sum'`` adds the rows.

The loss and the gradient come from one op, ``torch.ops.torchff.cross_entropy``
(:mod:`torchff.kernels.cross_entropy`), in one pass over the logits. Under ``torch.compile``
the Function's twin traces that op's composite instead (the same torch ops the op runs on
devices without a kernel), so the compiler fuses it and may recompute the gradient in backward
rather than keep it; the backward formula is the same.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.autograd._loss import MEAN, NONE, compute_dtype as _opmath
from torchff.kernels import cross_entropy as _ops

__all__: list[str] = []


def _traceable(cls: type | None = None, *, internal_output: bool = False, traced_forward=None):
    """``cls`` without its ``jvp``, for ``torch.compile``: dynamo cannot trace a Function with a
    custom ``jvp`` (it breaks the graph), and forward mode does not run through compiled code.
    ``torchff.functional`` applies this twin (``<name>Traceable`` in this module) while compiling.

    ``internal_output``: the Function's second output (the gradient or the log-probabilities it
    keeps for backward, which ``torchff.functional`` never returns) is differentiable only for
    double backward, which compiled graphs do not run; the twin marks it non-differentiable.
    Otherwise AOT autograd traces the backward with a zero tangent for it and computes the
    double-backward term (a logits-sized pass) for nothing.

    ``traced_forward``: the twin's forward, the op's composite (its implementation for devices
    without a kernel, torch ops): the compiler sees into it and fuses it with its neighbours,
    where the op would be one opaque call. The backward stays the Function's."""

    def wrap(cls: type) -> type:
        body = {"jvp": staticmethod(Function.jvp), "__module__": cls.__module__}
        if traced_forward is not None:
            body["forward"] = staticmethod(traced_forward)
        if internal_output:
            def setup_context(ctx, inputs, output):
                cls.setup_context(ctx, inputs, output)
                ctx.mark_non_differentiable(output[1])

            def backward(ctx, grad, _grad_internal):  # (a zero tangent under compile)
                return cls.backward(ctx, grad, None)

            body["setup_context"] = staticmethod(setup_context)
            body["backward"] = staticmethod(backward)
        twin = type(cls.__name__ + "Traceable", (cls,), body)
        globals()[twin.__name__] = twin
        return cls

    return wrap if cls is None else wrap(cls)


def _rows_layout(t: Tensor) -> Tensor:
    """``t`` in the layout of the ops' logits-shaped outputs (class dim innermost in memory, a
    permuted view for K-dim inputs), out of place: forward AD wants a tangent laid out as its primal."""
    return t if t.dim() <= 2 else t.movedim(1, -1).contiguous().movedim(-1, 1)


def _class_dim(x: Tensor) -> int:
    return 1 if x.dim() >= 2 else 0


def _class_view(weight: Tensor, ndim: int, cdim: int) -> Tensor:
    """``weight`` (C,) shaped to broadcast along the class dim of an ``ndim``-d tensor."""
    shape = [1] * ndim
    shape[cdim] = -1
    return weight.view(shape)


def _softmax_from_grad(G: Tensor, target: Tensor, weight, ignore_index: int, reduction: int, eps: float):
    r"""``(p, k)`` from the gradient ``G`` the forward returned: :math:`G_n = k_n p_n - s_n
    (\tfrac{\varepsilon}{C} w + b_n e_{y_n})`, :math:`k_n = s_n a_n`, :math:`s_n` the row's
    scale (1, or one over the total weight for ``'mean'``, 0 on ignored rows); ``p`` is 0 where
    :math:`k_n = 0` (there :math:`G_n` does not depend on the logits)."""
    cdim = _class_dim(G)
    C = G.shape[cdim]
    dtype = _opmath(G.dtype)
    eps = eps if eps > 0.0 else 0.0
    valid = target != ignore_index
    safe = target.masked_fill(~valid, 0)
    w = None if weight is None else weight.to(dtype)
    wy = valid.to(dtype) if w is None else torch.where(valid, w[safe], 0.0)
    s = valid.to(dtype)
    if reduction == MEAN:
        denom = wy.sum()
        s = s * torch.where(denom != 0, 1.0 / denom, 0.0)
    b = (1.0 - eps) * wy
    W = float(C) if w is None else w.sum()
    k = (s * (b + (eps / C) * W)).unsqueeze(cdim)
    num = G.to(dtype)
    if eps:
        num = num + (s * (eps / C)).unsqueeze(cdim) * (1.0 if w is None else _class_view(w, G.dim(), cdim))
    num = num.scatter_add(cdim, safe.unsqueeze(cdim), (s * b).unsqueeze(cdim))
    p = torch.where(k != 0, num / torch.where(k != 0, k, 1.0), 0.0)
    return p, k


def _softmax_jvp(p: Tensor, k: Tensor, v: Tensor, cdim: int) -> Tensor:
    """:math:`k\\, (\\mathrm{diag}(p) - pp^\\top)\\, v` per row: the softmax Jacobian, scaled."""
    return k * p * (v - (v * p).sum(cdim, keepdim=True))


def _traced_cross_entropy(input: Tensor, target: Tensor, weight, ignore_index: int, reduction: int, label_smoothing: float):
    """``_CrossEntropyFunction.forward`` in torch ops (the op's composite), for ``torch.compile``."""
    return _ops.composite_cross_entropy(input, target, weight, reduction, ignore_index, label_smoothing)


@_traceable(internal_output=True, traced_forward=_traced_cross_entropy)
class _CrossEntropyFunction(Function):
    r"""Softmax cross-entropy with class-index targets (torch's ``cross_entropy`` for integer targets).

    ``forward(input, target, weight, ignore_index, reduction, label_smoothing) -> (loss, grad)``,
    ``target`` int64; see the module docstring for the loss and its gradient. Computed in float32
    for 16-bit logits; the outputs have the logits' dtype. ``weight`` is not differentiable.

    The forward returns, with the loss, its gradient :math:`G = \partial L/\partial z` (Liger-
    Kernel's idea: both from one pass over the logits), and saves it: the backward is one
    multiplication, :math:`\partial J/\partial z = g\, G` (:math:`g` the upstream gradient, per
    row for ``'none'``). :math:`G` is an output of the Function, so double backward goes through
    it: :math:`\partial G_n/\partial z_n = k_n (\mathrm{diag}(p_n) - p_n p_n^\top)` with
    :math:`p_n` recovered from :math:`G_n` (see :func:`_softmax_from_grad`). Forward mode:
    :math:`\dot l_n = \langle G_n, \dot z_n\rangle` and the same Jacobian for :math:`\dot G`.

    Saved for backward: ``G`` (logits-sized, in the logits' dtype), the target and the weight;
    torch keeps a logits-sized log-softmax, the target, the weight and a 0-d total weight.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight, ignore_index: int, reduction: int, label_smoothing: float):
        return _ops.cross_entropy(input, target, weight, reduction, ignore_index, label_smoothing)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, target, weight, ignore_index, reduction, label_smoothing = inputs
        ctx.ignore_index, ctx.reduction, ctx.label_smoothing = ignore_index, reduction, label_smoothing
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(output[1], target, weight)
        ctx.save_for_forward(output[1], target, weight)

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_G: Tensor | None):
        G, target, weight = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        cdim = _class_dim(G)
        out = None
        if grad is not None:
            out = G * (grad.unsqueeze(cdim) if ctx.reduction == NONE else grad)
        if grad_G is not None:  # double backward: through the gradient output
            p, k = _softmax_from_grad(G, target, weight, ctx.ignore_index, ctx.reduction, ctx.label_smoothing)
            through = _softmax_jvp(p, k, grad_G.to(p.dtype), cdim).to(G.dtype)
            out = through if out is None else out + through
        return out, None, None, None, None, None

    @staticmethod
    def jvp(ctx, dz, *_):
        G, target, weight = ctx.saved_tensors
        if dz is None:
            return None, None
        cdim = _class_dim(G)
        prod = G * dz
        dl = prod.sum(cdim) if ctx.reduction == NONE else prod.sum()
        p, k = _softmax_from_grad(G, target, weight, ctx.ignore_index, ctx.reduction, ctx.label_smoothing)
        dG = _softmax_jvp(p, k, dz.to(p.dtype), cdim)
        return dl, _rows_layout(dG.to(G.dtype))


@_traceable(internal_output=True)
class _CrossEntropyProbsFunction(Function):
    r"""Softmax cross-entropy with class-probability targets (``target`` shaped like ``input``).

    With smoothed targets :math:`t' = (1-\varepsilon) t + \varepsilon / C` and class weights
    :math:`w`: :math:`l_n = -\sum_c w_c t'_{n,c} \log p_{n,c}`;
    :math:`\partial l_n / \partial z_n = S_n p_n - w \odot t'_n` (:math:`S_n = \sum_c w_c t'_{n,c}`)
    and :math:`\partial l_n / \partial t_n = -(1-\varepsilon)\, w \odot \log p_n`.
    ``'mean'`` divides by the number of rows (not by the weights), as torch.

    ``forward(...) -> (loss, log_probs)``: one op pass gives the loss and :math:`\log p`; the
    backward op reads :math:`\log p` once for both gradients. :math:`\log p` is an output of
    the Function, so double backward goes through log-softmax's Jacobian, exactly.

    Saved for backward: :math:`\log p` (logits-sized, in the promoted dtype), the target and the
    weight: as torch, which keeps its log-softmax and the target.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight, reduction: int, label_smoothing: float):
        return _ops.cross_entropy_probs(input, target, weight, reduction, label_smoothing)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, target, weight, reduction, label_smoothing = inputs
        ctx.reduction, ctx.label_smoothing = reduction, label_smoothing
        ctx.input_dtype, ctx.target_dtype = input.dtype, target.dtype
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(output[1], target, weight)
        ctx.save_for_forward(output[1], target, weight)

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_lp: Tensor | None):
        lp, target, weight = ctx.saved_tensors
        need_z, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        cdim = _class_dim(lp)
        gz = gt = None
        if grad is not None and (need_z or need_t):
            if torch.is_grad_enabled():  # double backward: the differentiable formula
                gz, gt = _probs_grads(grad, lp, target, weight, ctx.reduction, ctx.label_smoothing, need_z, need_t)
            else:
                gz, gt = _ops.cross_entropy_probs_backward(
                    grad, lp, target, weight, ctx.reduction, ctx.label_smoothing, need_z, need_t
                )
                gz, gt = (gz if need_z else None), (gt if need_t else None)
        if grad_lp is not None and need_z:  # through the log-probabilities: log-softmax's Jacobian
            through = grad_lp - lp.exp() * grad_lp.sum(cdim, keepdim=True)
            gz = through if gz is None else gz + through
        gz = None if gz is None else gz.to(ctx.input_dtype)
        gt = None if gt is None else gt.to(ctx.target_dtype)
        return gz, gt, None, None, None

    @staticmethod
    def jvp(ctx, dz, dt, *_):
        lp, target, weight = ctx.saved_tensors
        cdim = _class_dim(lp)
        C = lp.shape[cdim]
        eps = ctx.label_smoothing if ctx.label_smoothing > 0.0 else 0.0
        dtype = _opmath(lp.dtype)
        lpf = lp.to(dtype)
        wv = None if weight is None else _class_view(weight.to(dtype), lp.dim(), cdim)
        dlp = None
        rows = 0.0
        if dz is not None:
            dzf = dz.to(dtype)
            dlp = dzf - (lpf.exp() * dzf).sum(cdim, keepdim=True)
            wt = _probs_wt(target.to(dtype), wv, eps, C)
            rows = rows - (wt * dlp).sum(cdim)
        if dt is not None:
            f = lpf * (eps - 1.0) if wv is None else lpf * wv * (eps - 1.0)
            rows = rows + (f * dt.to(dtype)).sum(cdim)
        if isinstance(rows, float):
            dl = None
        elif ctx.reduction == NONE:
            dl = rows.to(lp.dtype)
        else:
            n = lp.numel() // C if C else 0
            dl = (rows.sum() / n if ctx.reduction == MEAN else rows.sum()).to(lp.dtype)
        # in lp's layout (permuted for K-dim inputs); zeros when only the target moves
        return dl, torch.zeros_like(lp) if dlp is None else _rows_layout(dlp.to(lp.dtype))


def _probs_wt(t: Tensor, wv, eps: float, C: int) -> Tensor:
    ts = t * (1.0 - eps) + eps / C if eps else t
    return ts if wv is None else ts * wv


def _probs_grads(grad, lp, target, weight, reduction, label_smoothing, need_z, need_t):
    """Both gradients of the probability-target loss, out of place (differentiable)."""
    cdim = _class_dim(lp)
    C = lp.shape[cdim]
    dtype = _opmath(lp.dtype)
    eps = label_smoothing if label_smoothing > 0.0 else 0.0
    g = grad.to(dtype)
    if reduction == NONE:
        g = g.unsqueeze(cdim)
    elif reduction == MEAN:
        g = g / (lp.numel() // C if C else 0)
    wv = None if weight is None else _class_view(weight.to(dtype), lp.dim(), cdim)
    lpf = lp.to(dtype)
    gz = gt = None
    if need_z:
        wt = _probs_wt(target.to(dtype), wv, eps, C)
        gz = (lpf.exp() * wt.sum(cdim, keepdim=True) - wt) * g
    if need_t:
        gt = (lpf if wv is None else lpf * wv) * (g * (eps - 1.0))
    return gz, gt


def _nll_4d(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    r"""A K-dimensional ``(N, C, d1, ..., dk)`` input and its target in ``nll_loss2d``'s layout:
    as they are for k = 2, else ``(N, C, 1, d)`` and ``(N, 1, d)`` with :math:`d = d_1 \cdots d_k`
    (torch's ``nll_loss_nd`` does the same)."""
    if input.dim() == 4:
        return input, target
    d = math.prod(target.shape[1:])
    return input.reshape(input.shape[0], input.shape[1], 1, d), target.reshape(target.shape[0], 1, d)


@_traceable
class _NLLLossFunction(Function):
    r"""Negative log-likelihood of class indices given log-probabilities (torch's ``nll_loss``),
    returning ``(loss, total_weight)``.

    :math:`l_n = -w_{y_n} x_{n, y_n}` (0 for ``ignore_index`` rows), ``'mean'`` divides by the
    total weight :math:`\sum_n w_{y_n}` over the rows not ignored. Gradient: :math:`-w_{y_n}` at
    :math:`(n, y_n)`, 0 elsewhere, times the upstream gradient (divided by the total weight for
    ``'mean'``). The loss is linear in the input, so its forward-mode derivative is the loss of
    the tangent.

    ``forward(input, target, weight, ignore_index, reduction)``, ``target`` int64. Runs torch's
    own ``nll_loss_forward`` / ``nll_loss2d_forward`` kernels (which check the class indices on
    every device without a host read) and their backward, which reads no input values. The
    total weight is the kernels' second output, non-differentiable; :func:`torchff.functional.nll_loss`
    returns the loss only.

    Saved for backward: the target, the weight and the 0-d total weight (as torch); not the
    input, which torch also keeps.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight, ignore_index: int, reduction: int) -> tuple[Tensor, Tensor]:
        if input.dim() <= 2:
            return torch.ops.aten.nll_loss_forward.default(input, target, weight, reduction, ignore_index)
        x, t = _nll_4d(input, target)
        loss, total = torch.ops.aten.nll_loss2d_forward.default(x, t, weight, reduction, ignore_index)
        return (loss.reshape(target.shape) if reduction == NONE else loss), total

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, target, weight, ctx.ignore_index, ctx.reduction = inputs
        ctx.input_shape, ctx.input_dtype = input.shape, input.dtype
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(target, weight, output[1])
        ctx.save_for_forward(target, weight, output[1])

    @staticmethod
    def backward(ctx, grad: Tensor | None, _grad_total=None):
        if grad is None or not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        target, weight, total = ctx.saved_tensors
        shape, red, ii = ctx.input_shape, ctx.reduction, ctx.ignore_index
        # torch's nll_loss backward kernels read only the shape, dtype and device of ``self``: an
        # expanded 0-d tensor of the input's dtype stands in for it (the 0-d upstream gradient
        # itself where the loss is reduced, which saves an allocation)
        stand_in = (grad if grad.dim() == 0 else grad.new_empty((), dtype=ctx.input_dtype)).expand(shape)
        if len(shape) <= 2:
            return torch.ops.aten.nll_loss_backward.default(grad, stand_in, target, weight, red, ii, total), \
                None, None, None, None
        x, t = _nll_4d(stand_in, target)
        g = grad.reshape(t.shape) if red == NONE else grad
        out = torch.ops.aten.nll_loss2d_backward.default(g, x, t, weight, red, ii, total)
        return out.reshape(shape), None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        target, weight, _total = ctx.saved_tensors
        return torch._C._nn.nll_loss_nd(dx, target, weight, ctx.reduction, ctx.ignore_index), None
