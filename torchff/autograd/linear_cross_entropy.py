r"""Linear + cross-entropy: the softmax output layer and its negative log-likelihood, in row chunks.

The lecture's softmax output unit is an affine map :math:`z = W^\top h + b` followed by
:math:`\operatorname{softmax}(z)`, trained with the negative log-likelihood
:math:`-\log \operatorname{softmax}(z)_y = \log\sum_j e^{z_j} - z_y`. Written as ``Linear`` +
``cross_entropy``, autograd keeps an ``N x C`` buffer (torch's ``log_softmax`` output) alive until
backward, and backward builds two more of that size: with many classes these are the largest
buffers of the network.

:class:`LinearCrossEntropyFunction` never materialises the ``N x C`` logits. It walks over the
rows in chunks; for each chunk it computes the logits, their log-sum-exp, the loss and, when a
gradient is wanted, the gradient of the logits, which it immediately contracts into the gradients
of the input, the weight and the bias (after Liger-Kernel's fused linear cross-entropy and Apple's
Cut Cross-Entropy). Only one chunk of logits exists at a time: the row math is the
``torch.ops.torchff.cross_entropy_rows_`` op (:mod:`torchff.kernels.cross_entropy`), which
overwrites each chunk's logits with their gradient in the same pass that computes the loss.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

from torchff.autograd._loss import compute_dtype as _acc_dtype
from torchff.kernels import cross_entropy as _ops

__all__ = ["default_chunk_size", "validate_linear_cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")

#: the default chunk holds about this many bytes of float32 logits
DEFAULT_CHUNK_BYTES = 32 * 2**20


def default_chunk_size(num_rows: int, num_classes: int) -> int:
    """Rows per chunk so that one chunk's float32 logits take about ``DEFAULT_CHUNK_BYTES``.

    A power of two between 8 and 4096 rows (fewer rows make the weight-gradient update, which
    reads and writes the whole ``C x H`` accumulator once per chunk, too frequent; more rows buy
    nothing once the matrix products are large), and never more than ``num_rows``.
    """
    rows = max(1, DEFAULT_CHUNK_BYTES // (4 * max(1, num_classes)))
    rows = 1 << (rows.bit_length() - 1)  # round down to a power of two
    return max(1, min(max(rows, 8), 4096, max(1, num_rows)))


def validate_linear_cross_entropy(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    chunk_size: int | None,
) -> None:
    """Raise a clear error for arguments :class:`_LinearCrossEntropyFunction` cannot take.

    The class indices are checked by the op that computes each chunk (torch's IndexError on CPU,
    a device-side assert on CUDA): nothing here reads a tensor's values.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"linear_cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"linear_cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"linear_cross_entropy: chunk_size must be a positive integer, got {chunk_size}")
    if not input.is_floating_point():
        raise TypeError(f"linear_cross_entropy: input must be floating point, got {input.dtype}")
    if input.dim() < 1:
        raise ValueError("linear_cross_entropy: input must have at least one dimension (..., in_features)")
    if weight.dim() != 2 or weight.shape[1] != input.shape[-1]:
        raise ValueError(
            f"linear_cross_entropy: weight must have shape (num_classes, {input.shape[-1]}), "
            f"got {tuple(weight.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"linear_cross_entropy: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != input.dtype:
            raise TypeError(
                f"linear_cross_entropy: {name} has dtype {t.dtype} but input has {input.dtype} "
                "(as for F.linear, they must match)"
            )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            "linear_cross_entropy: target must hold class indices (an integer tensor), got "
            f"{target.dtype}; class-probability targets are not supported"
        )
    if tuple(target.shape) != tuple(input.shape[:-1]):
        raise ValueError(
            f"linear_cross_entropy: target shape {tuple(target.shape)} must be the input shape "
            f"without its last dimension, {tuple(input.shape[:-1])}"
        )


def _chunk_logits(x: Tensor, weight: Tensor, bias: Tensor | None, acc: torch.dtype) -> Tensor:
    """A fresh ``rows x C`` buffer of logits in the accumulation dtype."""
    z = torch.mm(x, weight.t()) if bias is None else torch.addmm(bias, x, weight.t())
    return z if z.dtype == acc else z.to(acc)


def _grad_buffers(input: Tensor, weight: Tensor, bias: Tensor | None, need_i: bool, need_w: bool, need_b: bool):
    """``grad_input`` (filled chunk by chunk), and zeroed ``grad_weight`` / ``grad_bias`` accumulators.

    The accumulators are float32 for bfloat16/float16 parameters (cast back at the end).
    """
    acc = _acc_dtype(input.dtype)
    gi = torch.empty(input.shape, dtype=input.dtype, device=input.device) if need_i else None
    gw = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
    gb = torch.zeros(weight.shape[0], dtype=acc, device=weight.device) if (need_b and bias is not None) else None
    return gi, gw, gb


def _accumulate_grads(g: Tensor, x: Tensor, weight: Tensor, gi_rows, gw, gb) -> None:
    """Contract one chunk's logit gradient ``g`` (``rows x C``, accumulation dtype) into the grads."""
    g_low = g if g.dtype == x.dtype else g.to(x.dtype)
    if gi_rows is not None:
        torch.mm(g_low, weight, out=gi_rows)
    if gw is not None:
        if gw.dtype == x.dtype:
            gw.addmm_(g_low.t(), x)
        else:  # bfloat16 / float16: one product per chunk, summed in float32
            gw.add_(torch.mm(g_low.t(), x))
    if gb is not None:
        gb.add_(g.sum(0))


class _LinearCrossEntropy(Function):
    r"""Softmax output layer and its negative log-likelihood, fused and chunked over rows.

    Forward, for rows :math:`h_i` (``input``, ``N x H``), ``weight`` :math:`W` (``C x H``), ``bias``
    :math:`b` and class targets :math:`y_i`:

    .. math::
        z_i = W h_i + b,\quad
        \ell_i = \mathrm{lse}(z_i) - (1-\varepsilon) z_{i,y_i} - \tfrac{\varepsilon}{C}\textstyle\sum_c z_{ic},

    with :math:`\mathrm{lse}(z) = m + \log\sum_c e^{z_c - m}`, :math:`m = \max_c z_c` (stable for
    any logits), :math:`\varepsilon` the label smoothing and :math:`\ell_i = 0` where
    :math:`y_i` is ``ignore_index``. ``mean`` divides :math:`\sum_i \ell_i` by the number of
    non-ignored rows (nan when there are none), ``sum`` does not, ``none`` returns :math:`\ell`.
    Exactly ``torch.nn.functional.cross_entropy(linear(input, weight, bias), target, ...)``.

    Backward: :math:`\partial \ell_i / \partial z_i = \operatorname{softmax}(z_i) - q_i` with
    :math:`q_i = (1-\varepsilon)\,\mathrm{onehot}(y_i) + \varepsilon / C` (0 on ignored rows), then
    :math:`\nabla h_i = (\partial \ell_i / \partial z_i)\, W`,
    :math:`\nabla W = \sum_i (\partial \ell_i / \partial z_i)^\top h_i`,
    :math:`\nabla b = \sum_i \partial \ell_i / \partial z_i`, all scaled by the incoming gradient
    (and by ``1 / count`` for ``mean``). Everything is accumulated in float32 (float64 for float64
    inputs); bfloat16/float16 matrix products run in their own dtype chunk by chunk and are summed in
    float32.

    Saved for backward (never anything ``N x C``, where torch's ``Linear`` + ``cross_entropy`` keeps
    the ``N x C`` ``log_softmax`` output):

    * ``mean`` / ``sum``: the gradients themselves, computed in the forward pass for the arguments
      that require grad: ``grad_input`` (``N x H``), ``grad_weight`` (``C x H``), ``grad_bias``
      (``C``). Backward only multiplies them by the incoming scalar gradient. The cost: a forward
      with grad enabled whose backward is never run does the backward's matrix products anyway.
    * ``none``: the incoming gradient differs per row, so the weight gradient cannot be formed in
      advance. It saves only the inputs it already references (input, weight, bias, target; 0
      bytes of its own) and recomputes each chunk's logits and their gradient in backward (one
      more ``N x H x C`` matrix product, as Cut Cross-Entropy does).

    The arguments after ``target`` are ``ignore_index``, ``reduction``, ``label_smoothing``,
    ``chunk_size`` (rows per chunk) and three flags saying which of input, weight and bias need a
    gradient (:func:`torchff.functional.linear_cross_entropy` sets them from ``requires_grad``).
    Inputs are 2-d (``N x H``) and targets 1-d (``N``) of dtype int64, already validated
    (:func:`validate_linear_cross_entropy`).

    Double backward is not supported (the saved gradients are constants): it raises.
    ``torch.func.vmap`` is not supported (the forward writes into preallocated buffers).
    Forward mode (``jvp``) is, when the last argument, ``forward_ad``, says a tangent may come
    (only then are the inputs referenced for it).
    """

    @staticmethod
    def forward(
        input: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        ignore_index: int,
        reduction: str,
        label_smoothing: float,
        chunk_size: int,
        need_input_grad: bool,
        need_weight_grad: bool,
        need_bias_grad: bool,
        forward_ad: bool = False,
    ):
        n = input.shape[0]
        acc = _acc_dtype(input.dtype)
        eps = float(label_smoothing)
        grads = reduction != "none" and (need_input_grad or need_weight_grad or (need_bias_grad and bias is not None))
        grad_scale = None
        if reduction == "mean":
            count = (target != ignore_index).sum()
            grad_scale = 1.0 / count.clamp_min(1).to(acc)

        gi, gw, gb = _grad_buffers(input, weight, bias, grads and need_input_grad,
                                   grads and need_weight_grad, grads and need_bias_grad)
        row_losses = []
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            x = input[start:stop]
            z = _chunk_logits(x, weight, bias, acc)  # a fresh buffer: the op overwrites it with its gradient
            row_losses.append(_ops.cross_entropy_rows_(z, target[start:stop], None, grad_scale, ignore_index, eps))
            if grads:
                _accumulate_grads(z, x, weight, gi[start:stop] if gi is not None else None, gw, gb)
            del z

        if reduction == "none":
            if not row_losses:
                return (input.new_zeros(0),)
            return (torch.cat(row_losses).to(input.dtype),)
        total = torch.cat(row_losses).sum() if row_losses else input.new_zeros((), dtype=acc)
        if reduction == "mean":
            total = total / count.to(acc)
        out = [total.to(input.dtype)]
        if gi is not None:
            out.append(gi)
        if gw is not None:
            out.append(gw.to(weight.dtype))
        if gb is not None:
            out.append(gb.to(bias.dtype))
        return tuple(out)

    @staticmethod
    def setup_context(ctx, inputs, output):
        (input, weight, bias, target, ignore_index, reduction, label_smoothing, chunk_size,
         need_input_grad, need_weight_grad, need_bias_grad, forward_ad) = inputs
        ctx.reduction = reduction
        ctx.ignore_index, ctx.label_smoothing, ctx.chunk_size = ignore_index, float(label_smoothing), chunk_size
        ctx.mark_non_differentiable(*output[1:])
        ctx.outputs = len(output)
        if forward_ad:  # only then: a reference kept for jvp would keep the input alive
            ctx.save_for_forward(input, weight, bias, target)
        if reduction == "none":
            ctx.save_for_backward(input, weight, bias, target)
            return
        grads = list(output[1:])
        ctx.slots = []
        for flag, present in ((need_input_grad, True), (need_weight_grad, True), (need_bias_grad, bias is not None)):
            ctx.slots.append(bool(flag and present))
        ctx.save_for_backward(*grads)

    @staticmethod
    def backward(ctx, grad_loss, *_unused):
        if torch.is_grad_enabled():
            # The gradients were formed in the forward pass as constants: a graph built from them
            # would silently miss the second-order terms, so refuse create_graph=True outright.
            raise RuntimeError(
                "linear_cross_entropy does not support double backward (backward with "
                "create_graph=True): its gradients are computed in the forward pass. Use "
                "torch.nn.functional.linear + cross_entropy where second derivatives are needed."
            )
        if ctx.reduction == "none":
            grads = _backward_none(ctx, grad_loss)
        else:
            saved = iter(ctx.saved_tensors)
            grads = []
            for slot, need in zip(ctx.slots, ctx.needs_input_grad[:3]):
                g = next(saved) if slot else None
                grads.append(g * grad_loss.to(g.dtype) if (g is not None and need) else None)
        return (*grads, *(None,) * 9)


class _LinearCrossEntropyFunction(_LinearCrossEntropy):
    # _LinearCrossEntropy with jvp (forward mode); under torch.compile the base class runs
    # (dynamo graph-breaks on a Function that defines jvp)
    __doc__ = _LinearCrossEntropy.__doc__

    @staticmethod
    def jvp(ctx, input_t, weight_t, bias_t, *_unused):
        r"""Forward mode: :math:`\dot\ell_i = (\operatorname{softmax}(z_i) - q_i) \cdot \dot z_i`,
        :math:`\dot z_i = W \dot h_i + \dot W h_i + \dot b`, chunk by chunk (the logits and
        their tangent are recomputed per chunk, never ``N x C`` at once)."""
        input, weight, bias, target = ctx.saved_tensors
        acc = _acc_dtype(input.dtype)
        rows = []
        for start in range(0, input.shape[0], ctx.chunk_size):
            stop = min(start + ctx.chunk_size, input.shape[0])
            x = input[start:stop]
            g = _chunk_logits(x, weight, bias, acc)
            _ops.cross_entropy_rows_(g, target[start:stop], None, None, ctx.ignore_index, ctx.label_smoothing)
            terms = []  # the chunk's logit tangent, one term per argument that has a tangent
            if input_t is not None:
                terms.append(torch.mm(input_t[start:stop], weight.t()).to(acc))
            if weight_t is not None:
                terms.append(torch.mm(x, weight_t.t()).to(acc))
            if bias_t is not None:
                terms.append(bias_t.to(acc))
            z_t = terms[0] if len(terms) == 1 else sum(terms[1:], terms[0])
            rows.append((g * z_t).sum(1))
        row_t = torch.cat(rows) if rows else input.new_zeros(0, dtype=acc)
        if ctx.reduction == "none":
            loss_t = row_t
        else:
            loss_t = row_t.sum()
            if ctx.reduction == "mean":
                loss_t = loss_t / (target != ctx.ignore_index).sum().to(acc)
        return (loss_t.to(input.dtype), *(None,) * (ctx.outputs - 1))


def _backward_none(ctx, grad_loss: Tensor):
    """``reduction='none'``: recompute each chunk's logits and their gradient, scaled per row."""
    input, weight, bias, target = ctx.saved_tensors
    need_i, need_w, need_b = ctx.needs_input_grad[:3]
    n, acc = input.shape[0], _acc_dtype(input.dtype)
    go = grad_loss.reshape(-1).to(acc)
    gi, gw, gb = _grad_buffers(input, weight, bias, need_i, need_w, need_b)
    for start in range(0, n, ctx.chunk_size):
        stop = min(start + ctx.chunk_size, n)
        x = input[start:stop]
        z = _chunk_logits(x, weight, bias, acc)
        _ops.cross_entropy_rows_(z, target[start:stop], None, go[start:stop], ctx.ignore_index, ctx.label_smoothing)
        _accumulate_grads(z, x, weight, gi[start:stop] if gi is not None else None, gw, gb)
    return (
        gi,
        None if gw is None else gw.to(weight.dtype),
        None if gb is None else gb.to(bias.dtype),
    )
