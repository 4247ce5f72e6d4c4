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
