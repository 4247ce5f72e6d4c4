r"""The multinoulli cost: softmax cross-entropy and the negative log-likelihood, as autograd Functions.

With a softmax output unit :math:`p = \mathrm{softmax}(z)` and a class-index target :math:`y`,
maximum likelihood gives the cost

.. math:: J = -\log p_y = -\Big(z_y - \log \sum_j e^{z_j}\Big),

whose log undoes the softmax's exponent: :math:`\partial J / \partial z = p - e_y`, which stays
large (up to 1) whenever the answer is wrong, however confident the network is.

Layout follows torch: the class dim is dim 1 (dim 0 of a 1-d, unbatched input), inputs may be
``(N, C, d1, ..., dk)``, class-index targets have the input's shape without the class dim.
Reductions use torch's enum: 0 = ``'none'``, 1 = ``'mean'``, 2 = ``'sum'``.

Per row :math:`n` (one position of the target), with class weights :math:`w` (all ones when
absent), label smoothing :math:`\varepsilon` and ``ignore_index`` (rows with it contribute 0):

* loss :math:`l_n = (1-\varepsilon)\, w_{y_n} (-\log p_{n,y_n})
  + \tfrac{\varepsilon}{C} \sum_c w_c (-\log p_{n,c})`;
* gradient :math:`\partial l_n / \partial z_n = a_n p_n - b_n e_{y_n} - \tfrac{\varepsilon}{C} w`
  with :math:`a_n = (1-\varepsilon) w_{y_n} + \tfrac{\varepsilon}{C}\sum_c w_c`,
  :math:`b_n = (1-\varepsilon) w_{y_n}`;
* ``'mean'`` divides by :math:`\sum_n w_{y_n}` over the rows that are not ignored (so an
  all-ignored batch gives nan, as torch), ``'sum'`` adds the rows.

The row math (:func:`cross_entropy_rows` and the ``_index_*`` helpers) is shared with fused
variants that compute the logits block by block (e.g. a linear + cross-entropy layer).

Saved for backward (class indices): the residual :math:`\mathrm{softmax}(z) - e_y`, computed
in the forward pass and returned as a second output so that double backward stays exact, the
target and the class weights: as many bytes as torch's log-softmax and target. The backward is
then a single multiplication.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.autograd._blockwise import fused_ok

__all__ = [
    "CrossEntropyFunction",
    "CrossEntropyProbsFunction",
    "NLLLossFunction",
    "CrossEntropyRows",
    "cross_entropy_rows",
]

NONE, MEAN, SUM = 0, 1, 2


def _opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic runs in: float32 for the 16-bit floats, the dtype itself otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _class_dim(input: Tensor) -> int:
    return 1 if input.dim() >= 2 else 0


def _class_view(weight: Tensor, ndim: int, cdim: int) -> Tensor:
    """``weight`` (C,) shaped to broadcast along the class dim of an ``ndim``-d tensor."""
    shape = [1] * ndim
    shape[cdim] = -1
    return weight.view(shape)


def _index_terms(target: Tensor, weight: Tensor | None, ignore_index: int, dtype: torch.dtype):
    """``(safe, valid, tw)``: target with ignored rows set to 0 (int64, safe to gather with),
    the not-ignored mask, and the target weight :math:`w_{y_n}` per row (0 where ignored)."""
    target = target.long()  # compare as int64: uint8 targets would wrap ignore_index (-100 -> 156)
    valid = target != ignore_index
    safe = target.masked_fill(~valid, 0)
    if weight is None:
        tw = valid.to(dtype)
    else:
        tw = weight.to(dtype)[safe].masked_fill(~valid, 0)
    return safe, valid, tw


def _index_loss_rows(
    logp: Tensor, safe: Tensor, valid: Tensor, weight: Tensor | None, label_smoothing: float, cdim: int
) -> Tensor:
    """Loss per row from log-probabilities ``logp`` (0 for ignored rows)."""
    picked = logp.gather(cdim, safe.unsqueeze(cdim)).squeeze(cdim)
    rows = picked.neg() if weight is None else picked * weight.to(logp.dtype)[safe].neg()
    if label_smoothing > 0.0:
        C = logp.shape[cdim]
        if weight is None:
            smooth = logp.sum(cdim)
        else:
            smooth = (logp * _class_view(weight.to(logp.dtype), logp.dim(), cdim)).sum(cdim)
        rows = rows * (1.0 - label_smoothing) - smooth * (label_smoothing / C)
    return rows.masked_fill(~valid, 0)


def _index_loss_and_residual(
    input: Tensor, safe: Tensor, valid: Tensor, weight: Tensor | None, label_smoothing: float, cdim: int, dtype
) -> tuple[Tensor, Tensor]:
    r"""Loss per row and the residual :math:`G = \mathrm{softmax}(z) - e_y` (fresh, in ``dtype``).

    Without smoothing, one fused softmax gives both: :math:`-\log p_y = \mathrm{lse} - z_y` with
    :math:`\mathrm{lse} = \max_j z_j - \log \max_j p_j`, where :math:`\max_j p_j \in [1/C, 1]`
    cannot underflow, so the loss stays exact for logits of any size. With smoothing the loss
    needs every :math:`\log p_c`, so it comes from a log-softmax whose buffer then becomes
    :math:`p`. Ignored rows hold :math:`p - e_0`; their coefficients are 0.
    """
    idx = safe.unsqueeze(cdim)
    if label_smoothing > 0.0:
        logp = torch.log_softmax(input, cdim, dtype=dtype)
        rows = _index_loss_rows(logp, safe, valid, weight, label_smoothing, cdim)
        p = logp.exp_()
    else:
        p = torch.softmax(input, cdim, dtype=dtype)
        lse = input.amax(cdim).to(dtype) - p.amax(cdim).log_()
        rows = lse - input.gather(cdim, idx).squeeze(cdim).to(dtype)
        if weight is not None:
            rows = rows * weight.to(dtype)[safe]
        rows = rows.masked_fill(~valid, 0)
    return rows, p.scatter_add_(cdim, idx, torch.full(idx.shape, -1.0, dtype=dtype, device=p.device))


def _grad_from_residual(
    res: Tensor,
    safe: Tensor,
    tw: Tensor,
    weight: Tensor | None,
    label_smoothing: float,
    cdim: int,
    row_scale: Tensor,
    overwrite: bool,
) -> Tensor:
    r"""``row_scale_n * dl_n/dz_n`` from the residual :math:`G = p - e_y`.

    :math:`\partial l_n/\partial z_n = a_n p_n - b_n e_{y_n} - \tfrac{\varepsilon}{C} w
    = a_n G_n + (a_n - b_n) e_{y_n} - \tfrac{\varepsilon}{C} w`, so without smoothing
    (:math:`a_n = b_n`) it is one multiplication. ``row_scale`` holds one factor per row and must
    be 0 on ignored rows. ``overwrite`` writes into ``res`` (a fresh buffer of its caller);
    otherwise a new tensor is returned (16-bit residuals promote to float32), computed out of
    place when grad mode is on (double backward).
    """
    eps = label_smoothing if label_smoothing > 0.0 else 0.0
    C = res.shape[cdim]
    b = tw * row_scale
    a = b
    if eps:
        b = b * (1.0 - eps)
        wsum = float(C) if weight is None else weight.to(tw.dtype).sum()
        a = b + row_scale * (wsum * (eps / C))
    out = res.mul_(a.unsqueeze(cdim)) if overwrite else res * a.unsqueeze(cdim)
    if not eps:
        return out
    idx = safe.unsqueeze(cdim)
    extra = (a - b).unsqueeze(cdim)
    c = (row_scale * (eps / C)).unsqueeze(cdim)
    cw = c if weight is None else c * _class_view(weight.to(tw.dtype), res.dim(), cdim)
    if torch.is_grad_enabled() and not overwrite:
        return out.scatter_add(cdim, idx, extra) - cw
    return out.scatter_add_(cdim, idx, extra).sub_(cw)


def _row_scale(grad: Tensor, valid: Tensor, tw: Tensor, reduction: int) -> Tensor:
    """The upstream gradient per row (``grad / sum(tw)`` for mean), 0 on ignored rows."""
    if reduction == MEAN:
        grad = grad / tw.sum()
    return torch.where(valid, grad.to(tw.dtype), 0)


def _reduce(rows: Tensor, reduction: int, denominator: Tensor | None = None) -> Tensor:
    if reduction == NONE:
        return rows
    total = rows.sum()
    if reduction == SUM:
        return total
    if denominator is None:
        return total / rows.numel()
    return total / denominator


class CrossEntropyRows(NamedTuple):
    """What :func:`cross_entropy_rows` returns, one entry per row of the logits block."""

    loss: Tensor
    """Unreduced loss per row, 0 for ignored rows."""
    grad: Tensor
    """Gradient of each row's loss with respect to that row's logits (same shape as logits)."""
    target_weight: Tensor
    """:math:`w_{y_n}` per row, 0 for ignored rows; its sum is the ``'mean'`` denominator."""


def cross_entropy_rows(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> CrossEntropyRows:
    r"""Loss rows and gradient rows of the class-index cross-entropy for one block of logits.

    The building block of fused (chunked) cross-entropy layers: for ``logits`` of shape
    ``(rows, C)`` and class indices ``target`` of shape ``(rows,)`` it returns the loss per row,
    :math:`\partial l_n / \partial z_n` per row (unscaled: multiply row ``n`` by the upstream
    gradient, divided by ``target_weight.sum()`` over all blocks for ``'mean'``) and the target
    weight per row, from one log-softmax and no other logits-sized temporary. Computed in float32
    for 16-bit inputs. No autograd graph is built; indices are not range-checked.
    """
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"cross_entropy_rows expects logits (rows, C) and target (rows,), got "
            f"{tuple(logits.shape)} and {tuple(target.shape)}"
        )
    with torch.no_grad():
        dtype = _opmath(logits.dtype)
        safe, valid, tw = _index_terms(target, weight, ignore_index, dtype)
        loss, res = _index_loss_and_residual(logits, safe, valid, weight, label_smoothing, 1, dtype)
        grad = _grad_from_residual(res, safe, tw, weight, label_smoothing, 1, valid.to(dtype), overwrite=True)
    return CrossEntropyRows(loss, grad, tw)


class CrossEntropyFunction(Function):
    r"""Softmax cross-entropy with class-index targets (torch's ``cross_entropy`` for integer targets).

    ``forward(input, target, weight, ignore_index, reduction, label_smoothing) -> (loss, residual)``;
    see the module docstring for the loss and its gradient. Computed in float32 for 16-bit
    logits; the outputs have the logits' dtype. ``weight`` is not differentiable (as in torch).

    The forward computes the softmax once and returns the residual :math:`G = \mathrm{softmax}(z)
    - e_y` as a second output, which it saves: the backward is then one multiplication,
    :math:`\partial J/\partial z = s_n G_n` per row (:math:`s_n` the upstream gradient times the
    row's weight, over the total weight for ``'mean'``; plus the smoothing terms). Because the
    residual is an output of the Function, the saved copy stays in the graph: double backward
    goes through the softmax Jacobian :math:`\mathrm{diag}(p) - pp^\top`, :math:`p = G + e_y`.

    Saved for backward: the residual (logits-sized, in the logits' dtype), the target and the
    weight: torch keeps a logits-sized log-softmax, the target, the weight and a scalar.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: int, label_smoothing: float
    ):
        cdim = _class_dim(input)
        dtype = _opmath(input.dtype)
        safe, valid, tw = _index_terms(target, weight, ignore_index, dtype)
        rows, res = _index_loss_and_residual(input, safe, valid, weight, label_smoothing, cdim, dtype)
        loss = _reduce(rows, reduction, tw.sum() if reduction == MEAN else None)
        return loss.to(input.dtype), res.to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, target, weight, ignore_index, reduction, label_smoothing = inputs
        ctx.ignore_index, ctx.reduction, ctx.label_smoothing = ignore_index, reduction, label_smoothing
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(output[1], target, weight)

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_res: Tensor | None):
        res, target, weight = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        cdim = _class_dim(res)
        dtype = _opmath(res.dtype)
        safe, valid, tw = _index_terms(target, weight, ctx.ignore_index, dtype)
        out = None
        if grad is not None:
            scale = _row_scale(grad, valid, tw, ctx.reduction)
            out = _grad_from_residual(res, safe, tw, weight, ctx.label_smoothing, cdim, scale, overwrite=False)
        if grad_res is not None:  # through the residual (double backward): softmax's Jacobian
            idx = safe.unsqueeze(cdim)
            p = res.to(dtype).scatter_add(cdim, idx, torch.ones(idx.shape, dtype=dtype, device=res.device))
            gr = grad_res.to(dtype)
            through = p * (gr - (gr * p).sum(cdim, keepdim=True))
            out = through if out is None else out + through
        return None if out is None else out.to(res.dtype), None, None, None, None, None


class CrossEntropyProbsFunction(Function):
    r"""Softmax cross-entropy with class-probability targets (``target`` shaped like ``input``).

    With smoothed targets :math:`t' = (1-\varepsilon) t + \varepsilon / C` and class weights
    :math:`w`: :math:`l_n = -\sum_c w_c t'_{n,c} \log p_{n,c}`;
    :math:`\partial l_n / \partial z_n = (\sum_c w_c t'_{n,c})\, p_n - w \odot t'_n` and
    :math:`\partial l_n / \partial t_n = -(1-\varepsilon)\, w \odot \log p_n`.
    ``'mean'`` divides by the number of rows (not by the weights), as torch.

    Saved for backward: the logits, the target and the weight (the inputs, as torch).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight: Tensor | None, reduction: int, label_smoothing: float) -> Tensor:
        cdim = _class_dim(input)
        out_dtype = torch.promote_types(input.dtype, target.dtype)
        dtype = _opmath(out_dtype)
        logp = torch.log_softmax(input, cdim, dtype=dtype)
        rows = _probs_loss_rows(logp, target, weight, label_smoothing, cdim)
        return _reduce(rows, reduction).to(out_dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, target, weight, reduction, label_smoothing = inputs
        ctx.reduction, ctx.label_smoothing = reduction, label_smoothing
        ctx.save_for_backward(input, target, weight)

    @staticmethod
    def backward(ctx, grad: Tensor):
        input, target, weight = ctx.saved_tensors
        need_z, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        cdim = _class_dim(input)
        dtype = _opmath(torch.promote_types(input.dtype, target.dtype))
        eps = ctx.label_smoothing if ctx.label_smoothing > 0.0 else 0.0
        C = input.shape[cdim]
        rows = target.numel() // C if C else 0
        g = grad.to(dtype) / rows if ctx.reduction == MEAN else grad.to(dtype)
        g = g.unsqueeze(cdim) if ctx.reduction == NONE else g
        wv = None if weight is None else _class_view(weight.to(dtype), input.dim(), cdim)
        t = target.to(dtype)
        grad_z = grad_t = None
        if torch.is_grad_enabled():
            if need_z:
                ts = t * (1.0 - eps) + eps / C if eps else t
                wt = ts if wv is None else ts * wv
                grad_z = (torch.softmax(input, cdim, dtype=dtype) * wt.sum(cdim, keepdim=True) - wt) * g
            if need_t:
                logp = torch.log_softmax(input, cdim, dtype=dtype)
                grad_t = (logp if wv is None else logp * wv) * (g * (eps - 1.0))
        else:
            if need_z:
                wt = t if wv is None else t * wv
                coef = wt.sum(cdim, keepdim=True)
                if eps:
                    wsum = float(C) if wv is None else wv.sum()
                    coef = coef * (1.0 - eps) + wsum * (eps / C)
                p = torch.softmax(input, cdim, dtype=dtype)
                # wt is the caller's target when unweighted: scale it out of place then
                scaled = wt * (g * (1.0 - eps)) if wv is None else wt.mul_(g * (1.0 - eps))
                grad_z = p.mul_(coef * g).sub_(scaled)
                if eps:
                    grad_z = grad_z.sub_(g * (eps / C) if wv is None else g * wv * (eps / C))
            if need_t:
                logp = torch.log_softmax(input, cdim, dtype=dtype)
                grad_t = logp.mul_(g * (eps - 1.0))
                if wv is not None:
                    grad_t = grad_t.mul_(wv)
        if grad_z is not None:
            grad_z = grad_z.to(input.dtype)
        if grad_t is not None:
            grad_t = grad_t.to(target.dtype)
        return grad_z, grad_t, None, None, None


def _probs_loss_rows(logp: Tensor, target: Tensor, weight: Tensor | None, label_smoothing: float, cdim: int) -> Tensor:
    t = target.to(logp.dtype)
    if label_smoothing > 0.0:
        t = t * (1.0 - label_smoothing) + label_smoothing / logp.shape[cdim]
    prod = logp * t
    if weight is not None:
        prod = prod.mul_(_class_view(weight.to(logp.dtype), logp.dim(), cdim))
    return prod.sum(cdim).neg_()


class NLLLossFunction(Function):
    r"""Negative log-likelihood of class indices given log-probabilities (torch's ``nll_loss``).

    :math:`l_n = -w_{y_n} x_{n, y_n}` (0 for ``ignore_index`` rows), ``'mean'`` divides by
    :math:`\sum_n w_{y_n}`. Gradient: :math:`-w_{y_n}` at :math:`(n, y_n)`, 0 elsewhere, times the
    upstream gradient (divided by the total weight for ``'mean'``).

    Saved for backward: the target and the weight only; the input's values are not needed
    (torch also keeps the input and the total weight).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: int) -> Tensor:
        cdim = _class_dim(input)
        dtype = _opmath(input.dtype)
        safe, valid, tw = _index_terms(target, weight, ignore_index, dtype)
        rows = _index_loss_rows(input.to(dtype), safe, valid, weight, 0.0, cdim)
        return _reduce(rows, reduction, tw.sum() if reduction == MEAN else None).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, target, weight, ignore_index, reduction = inputs
        ctx.ignore_index, ctx.reduction = ignore_index, reduction
        ctx.input_shape, ctx.input_dtype = input.shape, input.dtype
        ctx.save_for_backward(target, weight)

    @staticmethod
    def backward(ctx, grad: Tensor):
        target, weight = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        cdim = 1 if len(ctx.input_shape) >= 2 else 0
        dtype = _opmath(ctx.input_dtype)
        safe, valid, tw = _index_terms(target, weight, ctx.ignore_index, dtype)
        src = (_row_scale(grad, valid, tw, ctx.reduction) * tw).neg().unsqueeze(cdim).to(ctx.input_dtype)
        zeros = torch.zeros(ctx.input_shape, dtype=ctx.input_dtype, device=target.device)
        idx = safe.unsqueeze(cdim)
        # in place only on plain eager tensors (under torch.func, src is batched and zeros is not)
        if not fused_ok(src):
            return zeros.scatter(cdim, idx, src), None, None, None, None
        return zeros.scatter_(cdim, idx, src), None, None, None, None
