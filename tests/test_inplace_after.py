"""In-place ops on a module's output before backward work wherever they work with torch.

Networks change activations in place all the time: ``nn.Dropout(inplace=True)`` after an
activation, a residual ``out += x``, a scaling ``out.mul_(2)``, a loss scaled in place. torch's
module keeps what its backward needs out of the user's reach (its input, or a private copy),
except where torch's op keeps its *output* (``ReLU``, ``Sigmoid``, ``Softmax``, ``LogSoftmax``
and the ``inplace=True`` variants): there torch itself raises "modified by an inplace operation".

For every example case of ``tests/module_cases.py`` (drop-ins against their torch module,
torchff-only modules against their plain-torch reference) and each pattern:

* the reference, with the in-place op, either works or raises exactly where
  :data:`TORCH_KEEPS_ITS_OUTPUT` says (so this table documents torch's behaviour);
* torchff's module, with the in-place op, must work wherever the reference does, and give the
  gradients (w.r.t. the network input, the Linear before it, the module's parameters and the
  residual) that the reference gives with the same op done out of place;
* the same through ``torchff.nn.convert`` of a small torch network.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import torchff
from module_cases import C, DROP_IN_CASES, TORCHFF_CASES, Case, first_input

pytestmark = pytest.mark.usefixtures("one_thread")

# the cases whose torch op (or plain-torch reference) saves its output: an in-place op on the
# output then raises in torch too, and torchff may do the same
TORCH_KEEPS_ITS_OUTPUT = {
    "ReLU", "ReLU(inplace)", "LeakyReLU(0.1,inplace)", "Sigmoid", "Softmax(dim=0)", "LogSoftmax(dim=1)",
    # torchff-only modules whose plain-torch reference keeps its output (exp)
    "RBF(C,5)",
}

PATTERNS = ["dropout", "iadd", "mul_"]
_INPLACE_ERROR = "modified by an inplace operation"
# autograd's other refusal, raised at the in-place op itself: the output is a view made inside a Function
_VIEW_INPLACE_ERROR = "is a view and is being modified inplace"


def _after(pattern: str, out: torch.Tensor, residual: torch.Tensor, inplace: bool) -> torch.Tensor:
    """The op after the module: in place (what is tested) or out of place (the reference gradients)."""
    if pattern == "dropout":
        return nn.functional.dropout(out, 0.5, training=True, inplace=inplace)
    if pattern == "iadd":
        if inplace:
            out += residual
            return out
        return out + residual
    if pattern == "mul_":
        return out.mul_(2) if inplace else out * 2
    raise ValueError(pattern)


class _Reference(nn.Module):
    def __init__(self, module: nn.Module, reference):
        super().__init__()
        self.module = module  # holds the parameters the reference reads
        self.fn = reference(module)

    def forward(self, *args):
        return self.fn(*args)


def _modules(key: str) -> tuple[Case, nn.Module, nn.Module]:
    """(case, torchff module, reference module), in float64."""
    if key in DROP_IN_CASES:
        case = DROP_IN_CASES[key]
        ref = case.make().double()
        ff = torchff.nn.convert(copy.deepcopy(ref))
        assert type(ff) is not type(ref), f"no drop-in for {key}"
        return case, ff, ref
    case = TORCHFF_CASES[key]
    ff = case.make().double()
    return case, ff, _Reference(copy.deepcopy(ff), case.reference)


def _applies(case: Case, pattern: str) -> bool:
    # dropout after a loss would drop the loss itself: not a pattern anyone writes
    return not (case.is_loss and pattern == "dropout")


_KEYS = [(k, p) for k in [*DROP_IN_CASES, *TORCHFF_CASES] for p in PATTERNS
         if _applies({**DROP_IN_CASES, **TORCHFF_CASES}[k], p)]


def _run(module: nn.Module, case: Case, pattern: str, inplace: bool):
    """Linear -> module -> pattern, backward with a fixed cotangent; gradients, in a fixed order."""
    torch.manual_seed(0)
    lin = nn.Linear(C, C).double()
    x = first_input(torch.float64).requires_grad_()
    z = lin(x)
    extra = tuple(e.double() if e.is_floating_point() else e for e in case.extra(z))
    out = module(z, *extra)
    residual = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
    residual.requires_grad_()
    torch.manual_seed(1)  # the dropout mask
    y = _after(pattern, out, residual, inplace)
    cot = torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=y.dtype)
    leaves = [x, residual, *lin.parameters(), *(p for p in module.parameters() if p.requires_grad)]
    return y.detach(), torch.autograd.grad(y, leaves, cot, allow_unused=True, materialize_grads=True)


def _assert_same(got, want):
    (y, grads), (y_ref, grads_ref) = got, want
    torch.testing.assert_close(y, y_ref)
    assert len(grads) == len(grads_ref)
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        torch.testing.assert_close(g, g_ref, msg=lambda m: f"gradient {i}: {m}")


@pytest.mark.parametrize("key, pattern", _KEYS, ids=[f"{k}-{p}" for k, p in _KEYS])
def test_inplace_op_after_the_module(key, pattern):
    case, ff, ref = _modules(key)
    want = _run(ref, case, pattern, inplace=False)  # out of place: always works
    try:
        torch_inplace = _run(ref, case, pattern, inplace=True)
    except RuntimeError as e:
        assert _INPLACE_ERROR in str(e)
        assert key in TORCH_KEEPS_ITS_OUTPUT, f"torch raises for {key} + {pattern}: add it to the table? {e}"
        torch_inplace = None
    else:
        assert key not in TORCH_KEEPS_ITS_OUTPUT, f"torch works for {key} + {pattern}: the table is stale"
        _assert_same(torch_inplace, want)
    if torch_inplace is None:
        # torch keeps its output here: torchff may keep it too (and raise the same error), or work
        try:
            got = _run(ff, case, pattern, inplace=True)
        except RuntimeError as e:
            assert _INPLACE_ERROR in str(e) or _VIEW_INPLACE_ERROR in str(e), e
            return
        _assert_same(got, want)
        return
    _assert_same(_run(ff, case, pattern, inplace=True), want)  # must not raise where torch works


# --------------------------------------------------------------------------------------
# the same through torchff.nn.convert of a torch network
# --------------------------------------------------------------------------------------
class _Block(nn.Module):
    """Linear -> activation -> an in-place op on its output -> Linear (a residual uses the block input)."""

    def __init__(self, act: nn.Module, pattern: str):
        super().__init__()
        self.inp, self.act, self.out, self.pattern = nn.Linear(C, C), act, nn.Linear(C, 2), pattern
        self.drop = nn.Dropout(0.5, inplace=True)

    def forward(self, x):
        h = self.act(self.inp(x))
        if self.pattern == "dropout":
            h = self.drop(h)
        elif self.pattern == "iadd":
            h += x
        else:
            h.mul_(2)
        return self.out(h)


class _LossModel(nn.Module):
    """Linear -> loss, then the loss changed in place (scaled, or a term added)."""

    def __init__(self, loss: nn.Module, pattern: str):
        super().__init__()
        self.inp, self.loss, self.pattern = nn.Linear(C, C), loss, pattern

    def forward(self, x, *extra):
        loss = self.loss(self.inp(x), *extra)
        if self.pattern == "iadd":
            loss += 0.5
        else:
            loss.mul_(2)
        return loss


_TORCH_KEYS = [(k, p) for k, p in _KEYS if k in DROP_IN_CASES and k not in TORCH_KEEPS_ITS_OUTPUT]


def _train_step(model: nn.Module, case: Case):
    model.zero_grad(set_to_none=True)
    x = first_input(torch.float64).requires_grad_()
    extra = tuple(e.double() if e.is_floating_point() else e for e in case.extra(x))
    torch.manual_seed(1)
    out = model(x, *extra)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype))
    return out.detach(), [x.grad, *(p.grad for p in model.parameters())]


@pytest.mark.parametrize("key, pattern", _TORCH_KEYS, ids=[f"{k}-{p}" for k, p in _TORCH_KEYS])
def test_converted_network_trains_where_torch_does(key, pattern):
    case = DROP_IN_CASES[key]
    torch.manual_seed(0)
    model = (_LossModel if case.is_loss else _Block)(case.make(), pattern).double()
    converted = torchff.nn.convert(copy.deepcopy(model))
    assert type(converted.loss if case.is_loss else converted.act) is not type(model.loss if case.is_loss else model.act)
    want = _train_step(model, case)
    got = _train_step(converted, case)  # must not raise: the torch model trains
    _assert_same(got, want)


def test_the_table_names_real_cases():
    assert TORCH_KEEPS_ITS_OUTPUT <= set(DROP_IN_CASES) | set(TORCHFF_CASES)
