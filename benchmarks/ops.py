"""The per-op cases: each torchff op and the torch code it replaces, on the same inputs.

Every case says what kind of op it is, which decides how its saved bytes are counted:

* ``hidden``: an activation between two ``Linear`` layers (``x -> Linear -> op -> Linear``). The
  op's *extra* bytes are what the sandwich saves beyond what the two Linears keep anyway (their
  input ``x``, their weights and the op's output, which the second Linear saves);
* ``layer``: a layer with its own weights followed by a ``Linear`` (``x -> layer -> Linear``),
  counted the same way;
* ``loss``: a loss on the output of a ``Linear``; nothing else keeps the loss's inputs, so its
  extra bytes are everything it saves except the targets.

Time is the forward + backward of the op alone (inputs are leaves, a fixed upstream gradient for
non-scalar outputs), so the Linears' matrix products do not dilute the ratio.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as TF
from torch import nn

import torchff
import torchff.functional as F
from torchff.autograd import _PositionalSignature  # the function_floor reference only

from benchmarks.common import Sizes


@dataclass
class OpCase:
    name: str
    kind: str  # "hidden" | "layer" | "loss"
    torchff: Callable
    torch: Callable
    args: list  # positional arguments of both callables
    wrt: list  # input tensors to differentiate (each side's module parameters are added to them)
    targets: list = field(default_factory=list)  # loss targets (never counted as saved)
    out_features: int = 0  # hidden/layer: width of the op's output (the next Linear's input)
    expected_extra: str = ""  # what the torchff Function documents it saves, for the table
    note: str = ""


class Missing(Exception):
    """The torchff side of a case is not available (its branch is not merged yet)."""


def _need(obj, *names):
    for name in names:
        if not hasattr(obj, name):
            raise Missing(f"{getattr(obj, '__name__', obj)}.{name} is not available")
    return tuple(getattr(obj, n) for n in names)


def _leaf(shape, gen, device, dtype, scale=1.0, shift=0.0):
    t = torch.randn(shape, generator=gen, dtype=torch.float32) * scale + shift
    return t.to(device=device, dtype=dtype).requires_grad_()


def torch_maxout(input: torch.Tensor, pieces: int) -> torch.Tensor:
    """Maxout in plain torch: consecutive groups of ``pieces`` along the last dim, ``view`` + ``max``."""
    return input.view(*input.shape[:-1], input.shape[-1] // pieces, pieces).max(-1).values


class TorchMaxoutLinear(nn.Module):
    """``Linear(in, out * pieces)`` + ``view`` + ``max``: the plain-torch maxout layer."""

    def __init__(self, in_features: int, out_features: int, pieces: int, device=None, dtype=None):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces, device=device, dtype=dtype)

    def forward(self, input):
        return torch_maxout(self.linear(input), self.pieces)


def laplace_nll_reference(input, target, scale, full=False, eps=1e-6, reduction="mean"):
    """The Laplace negative log-likelihood written with torch ops (the comparison for torchff's).

    ``scale`` is clamped at ``eps`` without a gradient through the clamp, as torch's
    ``gaussian_nll_loss`` treats ``var``.
    """
    scale = scale.clone()
    with torch.no_grad():
        scale.clamp_(min=eps)
    loss = torch.log(scale) + (input - target).abs() / scale
    if full:
        loss = loss + math.log(2)
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def parameters(fn) -> list:
    """The parameters of a module side (empty for a function)."""
    return list(fn.parameters()) if isinstance(fn, nn.Module) else []


def build_cases(sizes: Sizes, device: str, dtype: torch.dtype = torch.float32, names=None, cases=None) -> list:
    """Every case of ``cases`` (default :data:`CASES`; or those in ``names``), as ``OpCase`` or
    ``(name, Missing)`` when unavailable."""
    out = []
    for name, builder in (CASES if cases is None else cases).items():
        if names is not None and name not in names:
            continue
        gen = torch.Generator(device="cpu").manual_seed(0)
        try:
            out.append(builder(sizes, device, dtype, gen))
        except Missing as e:
            out.append((name, e))
    return out


# --------------------------------------------------------------------------------------
# the cases
# --------------------------------------------------------------------------------------
def _elementwise(name, ff_fn, torch_fn, expected, shift=0.0):
    def build(s: Sizes, device, dtype, gen):
        z = _leaf((s.rows, s.features), gen, device, dtype, shift=shift)
        return OpCase(name, "hidden", ff_fn(), torch_fn, [z], [z], out_features=s.features,
                      expected_extra=expected)

    return build


def _slope(alpha: float):
    """torchff's leaky_relu(z, alpha)."""
    return lambda z: F.leaky_relu(z, alpha)


def _torch_slope(alpha: float):
    return lambda z: TF.leaky_relu(z, alpha)


def _prelu(channels: bool):
    def build(s: Sizes, device, dtype, gen):
        (prelu,) = _need(F, "prelu")
        z = _leaf((s.rows, s.features), gen, device, dtype)
        w = torch.full((s.features if channels else 1,), 0.25, device=device, dtype=dtype, requires_grad=True)
        return OpCase("prelu_channels" if channels else "prelu", "hidden", prelu, TF.prelu, [z, w], [z, w],
                      out_features=s.features, expected_extra="0 (the output, positive slopes)")

    return build


def _maxout(s: Sizes, device, dtype, gen):
    (maxout,) = _need(F, "maxout")
    z = _leaf((s.rows, s.features), gen, device, dtype)
    k = s.pieces
    return OpCase(f"maxout_k{k}", "hidden", lambda t: maxout(t, k, dim=-1), lambda t: torch_maxout(t, k), [z], [z],
                  out_features=s.features // k, expected_extra="uint8 index, 1 B per output (torch: int64, 8 B)")


def _maxout_linear(s: Sizes, device, dtype, gen):
    (MaxoutLinear,) = _need(torchff.nn, "MaxoutLinear")
    k, units = s.pieces, s.features // s.pieces
    torch.manual_seed(0)
    ff = MaxoutLinear(s.features, units, k).to(device=device, dtype=dtype)
    ref = TorchMaxoutLinear(s.features, units, k, device=device, dtype=dtype)
    _copy_maxout_linear(ff, ref)
    x = _leaf((s.rows, s.features), gen, device, dtype)  # a hidden layer: its input needs a gradient too
    return OpCase(f"maxout_linear_k{k}", "layer", ff, ref, [x], [x], out_features=units,
                  expected_extra="uint8 index (torch: int64)")


def _copy_maxout_linear(ff: nn.Module, ref: TorchMaxoutLinear) -> None:
    """Give the plain-torch layer torchff's weights (same grouping: unit j uses rows j*k .. j*k+k-1)."""
    with torch.no_grad():
        ref.linear.weight.copy_(ff.weight.reshape(ref.linear.weight.shape))
        if getattr(ff, "bias", None) is not None:
            ref.linear.bias.copy_(ff.bias.reshape(ref.linear.bias.shape))


def _softmax(log: bool):
    def build(s: Sizes, device, dtype, gen):
        (fn,) = _need(F, "log_softmax" if log else "softmax")
        z = _leaf((s.rows, s.features), gen, device, dtype)
        ref = TF.log_softmax if log else TF.softmax
        return OpCase("log_softmax" if log else "softmax", "hidden", lambda t: fn(t, dim=-1),
                      lambda t: ref(t, dim=-1), [z], [z], out_features=s.features,
                      expected_extra="0 (the output)")

    return build


def _cross_entropy(s: Sizes, device, dtype, gen):
    (fn,) = _need(F, "cross_entropy")
    z = _leaf((s.rows, s.features), gen, device, dtype)
    t = torch.randint(0, s.features, (s.rows,), generator=gen).to(device)
    return OpCase("cross_entropy", "loss", fn, TF.cross_entropy, [z, t], [z], targets=[t])


def _bce(s: Sizes, device, dtype, gen):
    (fn,) = _need(F, "binary_cross_entropy_with_logits")
    z = _leaf((s.rows, s.features), gen, device, dtype)
    t = torch.rand((s.rows, s.features), generator=gen).to(device=device, dtype=dtype)
    return OpCase("bce_with_logits", "loss", fn, TF.binary_cross_entropy_with_logits, [z, t], [z], targets=[t])


def _nll(s: Sizes, device, dtype, gen):
    (fn,) = _need(F, "nll_loss")
    z = _leaf((s.rows, s.features), gen, device, dtype)
    with torch.no_grad():
        z.copy_(TF.log_softmax(z, dim=-1))  # log-probabilities, as a log_softmax layer gives
    t = torch.randint(0, s.features, (s.rows,), generator=gen).to(device)
    return OpCase("nll_loss", "loss", fn, TF.nll_loss, [z, t], [z], targets=[t])


def _regression(name: str, fname: str):
    def build(s: Sizes, device, dtype, gen):
        (fn,) = _need(F, fname)
        z = _leaf((s.rows, s.features), gen, device, dtype)
        t = torch.randn((s.rows, s.features), generator=gen).to(device=device, dtype=dtype)
        return OpCase(name, "loss", fn, getattr(TF, fname), [z, t], [z], targets=[t])

    return build


def _gaussian(s: Sizes, device, dtype, gen):
    (fn,) = _need(F, "gaussian_nll_loss")
    mu = _leaf((s.rows, s.features), gen, device, dtype)
    var = (torch.rand((s.rows, s.features), generator=gen) + 0.5).to(device=device, dtype=dtype).requires_grad_()
    t = torch.randn((s.rows, s.features), generator=gen).to(device=device, dtype=dtype)
    return OpCase("gaussian_nll", "loss", lambda m, tt, v: fn(m, tt, v), lambda m, tt, v: TF.gaussian_nll_loss(m, tt, v),
                  [mu, t, var], [mu, var], targets=[t])


def _laplace(s: Sizes, device, dtype, gen):
    (fn,) = _need(F, "laplace_nll_loss")
    mu = _leaf((s.rows, s.features), gen, device, dtype)
    b = (torch.rand((s.rows, s.features), generator=gen) + 0.5).to(device=device, dtype=dtype).requires_grad_()
    t = torch.randn((s.rows, s.features), generator=gen).to(device=device, dtype=dtype)
    return OpCase("laplace_nll", "loss", lambda m, tt, v: fn(m, tt, v), lambda m, tt, v: laplace_nll_reference(m, tt, v),
                  [mu, t, b], [mu, b], targets=[t], note="vs the same formula in torch ops")


CASES: dict[str, Callable] = {
    "relu": _elementwise("relu", lambda: F.relu, torch.relu, "0 (the output)"),
    "leaky_relu": _elementwise("leaky_relu", lambda: F.leaky_relu, TF.leaky_relu, "0 (the output)"),
    "leaky_relu_neg": _elementwise("leaky_relu_neg", lambda: _slope(-0.5), _torch_slope(-0.5),
                                   "a mask, at most 1 B per element"),
    "prelu": _prelu(channels=False),
    "prelu_channels": _prelu(channels=True),
    "abs": _elementwise("abs", lambda: F.abs_relu, torch.abs, "a sign, at most 1 B per element"),
    "softplus": _elementwise("softplus", lambda: F.softplus, TF.softplus, "0 (the output)"),
    "sigmoid": _elementwise("sigmoid", lambda: F.sigmoid, torch.sigmoid, "0 (the output)"),
    "maxout": _maxout,
    "maxout_linear": _maxout_linear,
    "softmax": _softmax(log=False),
    "log_softmax": _softmax(log=True),
    "cross_entropy": _cross_entropy,
    "bce_with_logits": _bce,
    "nll_loss": _nll,
    "mse_loss": _regression("mse_loss", "mse_loss"),
    "l1_loss": _regression("l1_loss", "l1_loss"),
    "gaussian_nll": _gaussian,
    "laplace_nll": _laplace,
}

# --------------------------------------------------------------------------------------
# references: what no torchff op can beat, timed beside the ops (train group)
# --------------------------------------------------------------------------------------
class _BareFunction(torch.autograd.Function):
    """The cheapest custom Function: torch's relu in forward, its ``threshold_backward`` in
    backward, the output saved, in the style every torchff Function uses (forward without ctx,
    ``setup_context``, the forward's signature cached as torchff caches its Functions')."""

    @staticmethod
    def forward(input):
        return torch.relu(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0)


def _cache_signature(cls) -> None:
    fn = cls.__dict__["forward"].__func__
    fn.__signature__ = _PositionalSignature(inspect.signature(fn))


_cache_signature(_BareFunction)

#: reference cases, timed in the ``train`` group without a target: ``function_floor`` is a bare
#: Python autograd.Function around torch's relu against torch's relu, the per-call cost any
#: Function pays at the sizes MLPs train at (the floor under every torchff op there)
REFERENCES: dict[str, Callable] = {
    "function_floor": _elementwise("function_floor", lambda: _BareFunction.apply, torch.relu, "0 (the output)"),
}

#: elementwise cases (one kernel per direction on CUDA is their target); the rest are layers and losses
ELEMENTWISE = ("relu", "leaky_relu", "leaky_relu_neg", "prelu", "prelu_channels", "abs", "softplus", "sigmoid")
