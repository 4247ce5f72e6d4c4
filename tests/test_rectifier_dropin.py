"""The rectifier family as drop-ins: in-place changes to the output before backward, what is
saved, no host syncs, and torch's gradients for a nan slope."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as TF
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import torchff
import torchff.functional as F
from torchff.testing import saved_tensors

NAN, INF = float("nan"), float("inf")
C = 8  # channels of the activation's input


def _frozen(module: nn.Module) -> nn.Module:
    module.weight.requires_grad_(False)
    return module


#: (id, torchff's activation, torch's, ...): same parameters once state_dicts are copied
ACTIVATIONS = {
    "LeakyReLU(0.1)": (lambda: torchff.nn.LeakyReLU(0.1), lambda: nn.LeakyReLU(0.1)),
    "LeakyReLU(0.0)": (lambda: torchff.nn.LeakyReLU(0.0), lambda: nn.LeakyReLU(0.0)),
    "LeakyReLU(-0.5)": (lambda: torchff.nn.LeakyReLU(-0.5), lambda: nn.LeakyReLU(-0.5)),
    "PReLU(scalar)": (lambda: torchff.nn.PReLU(), lambda: nn.PReLU()),
    "PReLU(per-channel)": (lambda: torchff.nn.PReLU(C, init=0.3), lambda: nn.PReLU(C, init=0.3)),
    "PReLU(frozen)": (lambda: _frozen(torchff.nn.PReLU(C, init=-0.4)), lambda: _frozen(nn.PReLU(C, init=-0.4))),
    "GeneralizedReLU(0.1)": (lambda: torchff.nn.GeneralizedReLU(0.1), lambda: nn.LeakyReLU(0.1)),
    "GeneralizedReLU(-1)": (lambda: torchff.nn.GeneralizedReLU(-1.0), lambda: nn.LeakyReLU(-1.0)),
    "GeneralizedReLU(learnable)": (
        lambda: torchff.nn.GeneralizedReLU(0.2, learnable=True, num_parameters=C),
        lambda: nn.PReLU(C, init=0.2),
    ),
}


class AddInPlace(nn.Module):
    """``out += r``, a residual added into the activation's output."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("r", torch.linspace(-1.0, 1.0, C))

    def forward(self, h):
        h += self.r
        return h


class MulInPlace(nn.Module):
    def forward(self, h):
        return h.mul_(2)


PATTERNS = {
    "Dropout(inplace=True)": lambda: nn.Dropout(0.5, inplace=True),
    "out += r": AddInPlace,
    "out.mul_(2)": MulInPlace,
}


def _model(act: nn.Module, pattern: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, C), act, pattern, nn.Linear(C, 2))


def _grads(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    torch.manual_seed(1)  # the same dropout mask in both runs
    model(x).sum().backward()
    return [x.grad] + [p.grad for p in model.parameters() if p.requires_grad]


def _assert_same_grads(ours: nn.Module, theirs: nn.Module) -> None:
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    got, want = _grads(ours, x), _grads(theirs, x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("pattern", PATTERNS, ids=list(PATTERNS))
@pytest.mark.parametrize("name", ACTIVATIONS, ids=list(ACTIVATIONS))
def test_in_place_change_of_the_output_before_backward_works_as_torch(name, pattern):
    make_ours, make_theirs = ACTIVATIONS[name]
    theirs = _model(make_theirs(), PATTERNS[pattern]())
    act = make_ours()
    act.load_state_dict(theirs[1].state_dict())
    ours = copy.deepcopy(theirs)
    ours[1] = act
    _assert_same_grads(ours, theirs)


@pytest.mark.parametrize("pattern", PATTERNS, ids=list(PATTERNS))
@pytest.mark.parametrize("name", ["LeakyReLU(0.1)", "LeakyReLU(0.0)", "LeakyReLU(-0.5)", "PReLU(scalar)",
                                  "PReLU(per-channel)", "PReLU(frozen)"])
def test_in_place_change_works_on_a_converted_model(name, pattern):
    theirs = _model(ACTIVATIONS[name][1](), PATTERNS[pattern]())
    ours = torchff.nn.convert(copy.deepcopy(theirs), include=[nn.LeakyReLU, nn.PReLU])
    assert type(ours[1]).__module__.startswith("torchff")
    _assert_same_grads(ours, theirs)


def test_the_issue_example():
    m = nn.Sequential(nn.Linear(4, 8), torchff.nn.LeakyReLU(0.1), nn.Dropout(0.5, inplace=True), nn.Linear(8, 2))
    m(torch.randn(3, 4)).sum().backward()
    assert m[0].weight.grad is not None


# --------------------------------------------------------------------------------------
# saved bytes: a 1-byte mask or torch's input, never more than torch
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, mask",
    [("LeakyReLU(0.1)", True), ("LeakyReLU(0.0)", True), ("LeakyReLU(-0.5)", True), ("PReLU(scalar)", False),
     ("PReLU(per-channel)", False), ("PReLU(frozen)", True), ("GeneralizedReLU(0.1)", True),
     ("GeneralizedReLU(learnable)", False)],
)
def test_saves_a_mask_or_torchs_input_never_the_output(name, mask):
    make_ours, make_theirs = ACTIVATIONS[name]
    theirs = make_theirs()
    ours = make_ours()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(64, C, requires_grad=True)
    out, saved = saved_tensors(ours, x)
    ref_out, ref_saved = saved_tensors(theirs, x)
    params = list(ours.parameters())
    assert saved.total <= ref_saved.total
    assert saved.beyond(*params) == (1 if mask else 4) * x.numel()  # bool mask, or the float32 input
    out.mul_(3)  # and the output may change without breaking backward
    ref_out.mul_(3)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(ref_out.sum(), x)[0])


# --------------------------------------------------------------------------------------
# no device-to-host sync (bool(tensor), float(tensor), .item()) in forward or backward
# --------------------------------------------------------------------------------------
class _CountScalarReads(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "w, w_grad",
    [([0.25], True), ([0.25], False), ([0.1, -0.2, 0.0, 0.3], True), ([0.1, -0.2, 0.0, 0.3], False),
     ([0.1, INF, NAN, -0.3], True)],
)
@pytest.mark.parametrize("shape", [(64, 4), (5, 4, 3)])
def test_prelu_reads_no_value_on_the_host(w, w_grad, shape):
    x = torch.randn(shape, requires_grad=True)
    w = torch.tensor(w, requires_grad=w_grad)
    with _CountScalarReads() as mode:
        F.prelu(x, w).sum().backward()
    assert mode.count == 0
    assert x.grad is not None


@pytest.mark.parametrize("slope", [0.1, 0.0, -0.5])
def test_leaky_relu_reads_no_value_on_the_host(slope):
    x = torch.randn(64, 4, requires_grad=True)
    with _CountScalarReads() as mode:
        F.leaky_relu(x, slope).sum().backward()
    assert mode.count == 0


@pytest.mark.parametrize("w", [[0.1, INF, -INF, NAN], [INF], [NAN]])
@pytest.mark.parametrize("w_grad", [True, False])
def test_prelu_non_finite_slopes_match_torch(w, w_grad):
    x = torch.tensor([[-1.0, 0.0, 2.0, -3.0], [1.0, -2.0, -0.0, 4.0], [NAN, -1.0, 1.0, -1.0]]).requires_grad_()
    w_ours = torch.tensor(w, requires_grad=w_grad)
    w_ref = w_ours.detach().clone().requires_grad_(w_grad)
    g = torch.randn(3, 4)
    out, ref = F.prelu(x, w_ours), TF.prelu(x, w_ref)
    torch.testing.assert_close(out, ref, equal_nan=True)
    inputs_ours, inputs_ref = ([x, w_ours], [x, w_ref]) if w_grad else ([x], [x])
    got = torch.autograd.grad(out, inputs_ours, g)
    want = torch.autograd.grad(ref, inputs_ref, g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, equal_nan=True)


# --------------------------------------------------------------------------------------
# a nan slope: torch's values and gradients (nan where x <= 0), no error
# --------------------------------------------------------------------------------------
def test_leaky_relu_nan_slope_gives_torchs_gradients():
    x = torch.tensor([-2.0, -0.0, 0.0, 1.5, NAN, INF, -INF] + [0.5] * 9, requires_grad=True)
    out = F.leaky_relu(x, NAN)
    ref = TF.leaky_relu(x, NAN)
    torch.testing.assert_close(out, ref, equal_nan=True)
    g = torch.linspace(-1.0, 1.0, x.numel())
    (got,) = torch.autograd.grad(out, x, g)
    (want,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(got, want, equal_nan=True)


def test_leaky_relu_module_nan_slope_backward():
    x = torch.randn(16, 8, requires_grad=True)
    torchff.nn.LeakyReLU(NAN)(x).sum().backward()
    (want,) = torch.autograd.grad(nn.LeakyReLU(NAN)(x).sum(), x)
    torch.testing.assert_close(x.grad, want, equal_nan=True)
