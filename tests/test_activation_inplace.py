"""``inplace=True`` works in place, as torch's does: same object, autograd, errors, transforms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF

import torchff
import torchff.functional as F
from torchff.testing import check_compile, check_parity, saved_tensors

# (torchff in-place call, torch's) for every in-place activation
INPLACE = {
    "relu_": (F.relu_, torch.relu_),
    "relu(inplace=True)": (lambda t: F.relu(t, inplace=True), lambda t: TF.relu(t, inplace=True)),
    "leaky_relu_": (F.leaky_relu_, TF.leaky_relu_),
    "leaky_relu_(0.2)": (lambda t: F.leaky_relu_(t, 0.2), lambda t: TF.leaky_relu_(t, 0.2)),
    "leaky_relu(0, inplace=True)": (
        lambda t: F.leaky_relu(t, 0.0, inplace=True),
        lambda t: TF.leaky_relu(t, 0.0, inplace=True),
    ),
    "ReLU(inplace=True)": (torchff.nn.ReLU(inplace=True), torch.nn.ReLU(inplace=True)),
    "LeakyReLU(0.1, inplace=True)": (torchff.nn.LeakyReLU(0.1, inplace=True), torch.nn.LeakyReLU(0.1, inplace=True)),
}
NAMES = list(INPLACE)


@pytest.mark.parametrize("name", NAMES)
def test_same_object_values_and_version(name):
    ours, theirs = INPLACE[name]
    x = torch.tensor([-2.0, -0.0, 0.0, 3.0, float("nan"), -float("inf")])
    a, b = x.clone(), x.clone()
    va = a._version
    ra, rb = ours(a), theirs(b)
    assert ra is a
    assert a._version > va  # autograd's version counter sees the write
    assert torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)) and torch.equal(a.isnan(), b.isnan())


@pytest.mark.parametrize("name", NAMES)
def test_gradients_through_a_non_leaf(name):
    ours, theirs = INPLACE[name]

    def via(fn):
        return lambda x: fn(x * 1.0) * 2.0  # in place on an intermediate, then used further

    x = (torch.randn(40, 7, dtype=torch.float64) * 3).requires_grad_()
    check_parity(via(ours), via(theirs), x)


@pytest.mark.parametrize("name", NAMES)
def test_leaf_requiring_grad_raises_as_torch(name):
    ours, theirs = INPLACE[name]
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        theirs(torch.randn(3, requires_grad=True))
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ours(torch.randn(3, requires_grad=True))


@pytest.mark.parametrize("name", NAMES)
def test_leaf_under_no_grad_is_allowed_as_torch(name):
    ours, theirs = INPLACE[name]
    a = torch.randn(5, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    with torch.no_grad():
        assert ours(a) is a
        theirs(b)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_in_place_on_a_view(name):
    ours, theirs = INPLACE[name]

    def via(fn):
        def f(x):
            base = x * 1.0
            fn(base[:, 1:3])  # in place on a view: the base's graph goes through CopySlices
            return base

        return f

    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    check_parity(via(ours), via(theirs), x)


@pytest.mark.parametrize("name", NAMES)
def test_modifying_the_saved_output_afterwards_is_detected(name):
    ours, _ = INPLACE[name]
    x = torch.randn(5, requires_grad=True)
    y = ours(x * 1.0)
    y.add_(1.0)  # the backward needs the output as it was
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("name", NAMES)
def test_saves_only_the_input_buffer(name):
    ours, _ = INPLACE[name]
    x = torch.randn(64, 8, requires_grad=True)
    h = x * 1.0
    out, saved = saved_tensors(ours, h)
    assert out is h and saved.total == h.numel() * 4 and saved.beyond(h) == 0


def test_leaky_relu_negative_slope_in_place_errors_in_backward_as_torch():
    for fn in (lambda t: TF.leaky_relu_(t, -0.5), lambda t: F.leaky_relu_(t, -0.5)):
        x = torch.randn(4, requires_grad=True)
        y = fn(x * 1.0)  # the forward is allowed ...
        assert torch.equal(y, TF.leaky_relu(x.detach(), -0.5))
        with pytest.raises(RuntimeError, match="negative slope which is not supported"):
            y.sum().backward()  # ... the backward is not
        c = torch.randn(4)
        assert fn(c) is c  # and without autograd it is fine


def test_vmap_in_place():
    x = torch.randn(3, 5)
    for ours, theirs in INPLACE.values():
        got = torch.func.vmap(lambda t: ours(t.clone()))(x)
        assert torch.equal(got, torch.func.vmap(lambda t: theirs(t.clone()))(x))
    # in place on the vmapped input itself writes through to the batch
    b = x.clone()
    torch.func.vmap(F.relu_)(b)
    assert torch.equal(b, x.relu())
    # with autograd recording (the Function's vmap rule), gradients as torch's
    xr = x.double().requires_grad_()
    for ours, theirs in INPLACE.values():
        check_parity(
            torch.func.vmap(lambda t: ours(t * 1.0)), torch.func.vmap(lambda t: theirs(t * 1.0)), xr
        )


def test_vmap_grad_and_jacrev_in_place():
    x = torch.randn(3, 5, dtype=torch.float64)
    for ours, theirs in INPLACE.values():
        for transform in (torch.func.jacrev, torch.func.grad):
            f = (lambda fn: (lambda t: fn(t * 1.0).sum()))  # noqa: E731
            if transform is torch.func.jacrev:
                f = lambda fn: (lambda t: fn(t * 1.0))  # noqa: E731
            got = torch.func.vmap(transform(f(ours)))(x)
            want = torch.func.vmap(transform(f(theirs)))(x)
            assert torch.equal(got, want)


def test_compile_in_place():
    for ours, theirs in INPLACE.values():
        x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
        check_compile(lambda t: ours(t * 2.0) + 1.0, x)


# --------------------------------------------------------------------------------------
# in place after the activation (issue 12 item 4): the next layer changes the output before
# backward. Whatever works with torch's module must work with torchff's, with its gradients;
# where torch raises (ReLU keeps its output), torchff raises too.
# --------------------------------------------------------------------------------------
class _Lambda(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _pairs():
    from torchff.nn import AbsReLU, BinaryStep, GeneralizedReLU

    from _activation_cases import step_ste_reference

    nn = torch.nn
    frozen = (torchff.nn.PReLU(8, init=-0.3), nn.PReLU(8, init=-0.3))
    for m in frozen:
        m.weight.requires_grad_(False)
    return {
        "ReLU": (torchff.nn.ReLU(), nn.ReLU()),
        "LeakyReLU()": (torchff.nn.LeakyReLU(), nn.LeakyReLU()),
        "LeakyReLU(0.1)": (torchff.nn.LeakyReLU(0.1), nn.LeakyReLU(0.1)),
        "LeakyReLU(0)": (torchff.nn.LeakyReLU(0.0), nn.LeakyReLU(0.0)),
        "LeakyReLU(-0.5)": (torchff.nn.LeakyReLU(-0.5), nn.LeakyReLU(-0.5)),
        "PReLU()": (torchff.nn.PReLU(), nn.PReLU()),
        "PReLU(8)": (torchff.nn.PReLU(8), nn.PReLU(8)),
        "PReLU(8, init=-0.3), frozen": frozen,
        "GeneralizedReLU(-1)": (GeneralizedReLU(-1.0), nn.LeakyReLU(-1.0)),
        "GeneralizedReLU(0.2, learnable)": (GeneralizedReLU(0.2, learnable=True, num_parameters=8), nn.PReLU(8, 0.2)),
        "AbsReLU": (AbsReLU(), _Lambda(torch.abs)),
        "BinaryStep(ste)": (BinaryStep(ste=True), _Lambda(step_ste_reference)),
    }


PAIRS = list(_pairs())
PATTERNS = {
    "dropout(inplace)": lambda h, r: torch.nn.functional.dropout(h, 0.5, True, inplace=True),
    "+= residual": lambda h, r: h.__iadd__(r),
    "mul_(2)": lambda h, r: h.mul_(2.0),
}


def _run(act, pattern, seed=0):
    torch.manual_seed(seed)
    lin1, lin2 = torch.nn.Linear(4, 8).double(), torch.nn.Linear(8, 2).double()
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    act = act.double()
    h = act(lin1(x))
    torch.manual_seed(seed + 1)  # the same dropout mask for both
    h = PATTERNS[pattern](h, x.sum(1, keepdim=True).expand(6, 8))
    params = [x, *lin1.parameters(), *[p for p in act.parameters() if p.requires_grad]]
    return torch.autograd.grad(lin2(h).square().sum(), params)


@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("name", PAIRS)
def test_in_place_after_the_activation(name, pattern):
    ours, theirs = _pairs()[name]
    try:
        want = _run(theirs, pattern)
    except RuntimeError as e:
        assert "modified by an inplace operation" in str(e)
        assert name == "ReLU"  # the one module here that keeps its output, as torch's
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            _run(ours, pattern)
        return
    got = _run(ours, pattern)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_a_converted_model_trains_where_torch_trains(pattern):
    from torchff.nn import convert

    def model():
        torch.manual_seed(0)
        nn = torch.nn
        return nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.1), nn.Linear(8, 8), nn.PReLU(8),
                             nn.Linear(8, 8), nn.LeakyReLU(-0.2), nn.Linear(8, 2)).double()

    class WithPattern(torch.nn.Module):
        def __init__(self, seq):
            super().__init__()
            self.seq = seq

        def forward(self, x):
            h = x
            for m in self.seq:
                h = m(h)
                if not isinstance(m, torch.nn.Linear) and h.shape[-1] == 8:
                    torch.manual_seed(7)
                    h = PATTERNS[pattern](h, torch.ones_like(h))
            return h

    theirs, ours = WithPattern(model()), WithPattern(convert(model()))
    assert sum(type(m).__module__.startswith("torchff") for m in ours.modules()) == 3
    x = torch.randn(5, 4, dtype=torch.float64)
    ga = torch.autograd.grad(ours(x).square().sum(), list(ours.parameters()))
    gb = torch.autograd.grad(theirs(x).square().sum(), list(theirs.parameters()))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


def test_the_issue_example_trains():
    m = torch.nn.Sequential(torch.nn.Linear(4, 8), torchff.nn.LeakyReLU(0.1), torch.nn.Dropout(0.5, inplace=True),
                            torch.nn.Linear(8, 2))
    m(torch.randn(3, 4)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
