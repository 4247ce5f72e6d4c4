"""The perceptron criterion, Rosenblatt's rule as its gradient, the Perceptron module and output."""

from __future__ import annotations

import pytest
import torch

import torchff.functional as F
import torchff.nn as tnn
from torchff.nn import Perceptron, PerceptronLoss
from torchff.testing import check, saved_tensors


def reference(z, t, reduction="mean"):
    """max(0, -y z) in plain torch, labels y = +1 where t > 0, else -1."""
    y = torch.where(t > 0, 1.0, -1.0).to(z.dtype)
    loss = torch.relu(-y * z)
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def separable(n=40, seed=0):
    """Linearly separable 2-D points with a margin, labels in {-1, +1}."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    w_true = torch.tensor([1.5, -1.0], dtype=torch.float64)
    s = x @ w_true + 0.3
    x = x[s.abs() > 0.3]
    y = torch.where(x @ w_true + 0.3 > 0, 1.0, -1.0).to(torch.float64)
    return x, y


# --------------------------------------------------------------------------------------
# values, gradients, conventions
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_values_and_targets_in_both_conventions(reduction):
    z = torch.randn(7, 3)
    pm = torch.randint(0, 2, (7, 3)).float() * 2 - 1  # {-1, +1}
    zero_one = (pm > 0).long()  # {0, 1}, int64
    a = F.perceptron_loss(z, pm, reduction)
    b = F.perceptron_loss(z, zero_one, reduction)
    assert torch.equal(a, b)  # 0 is read as -1
    torch.testing.assert_close(a, reference(z, pm, reduction))
    assert torch.equal(PerceptronLoss(reduction=reduction)(z, zero_one), a)


def test_gradient_is_rosenblatts_rule_with_the_boundary_a_mistake():
    z = torch.tensor([2.0, -1.0, 0.0, 0.0, 3.0, -0.5], requires_grad=True)
    y = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    F.perceptron_loss(z, y, reduction="sum").backward()
    # correct (y z > 0): 0; mistakes and the boundary (y z <= 0): -y
    assert torch.equal(z.grad, torch.tensor([0.0, -1.0, -1.0, 1.0, 1.0, 0.0]))
    # relu's convention (0 at 0) would not move a perceptron started at w = 0
    z0 = torch.zeros(3, requires_grad=True)
    reference(z0, torch.ones(3), "sum").backward()
    assert torch.equal(z0.grad, torch.zeros(3))


def test_check_gradients_vmap_compile_and_saved_bytes():
    z = torch.randn(5, 4, dtype=torch.float64)
    z = (z + 0.1 * z.sign()).requires_grad_()  # away from the kink at 0
    t = torch.randint(0, 2, (5, 4)).double()
    for reduction in ("none", "mean", "sum"):
        fn = lambda a, b: F.perceptron_loss(a, b, reduction)  # noqa: E731
        check(fn, z, t, reference=lambda a, b: reference(a, b, reduction), saved_bytes=z.numel())  # int8 step
        torch.autograd.gradcheck(fn, (z, t), check_batched_grad=True, check_forward_ad=True)
        torch.autograd.gradgradcheck(fn, (z, t), check_fwd_over_rev=True)


def test_broadcast_target_and_shapes():
    z = torch.randn(4, 3, requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0])
    out = F.perceptron_loss(z, t, "none")
    assert out.shape == (4, 3)
    g = torch.autograd.grad(F.perceptron_loss(z, t, "sum"), z)[0]
    g_ref = torch.autograd.grad(reference(z, t, "sum"), z)[0]
    mask = (z * torch.where(t > 0, 1.0, -1.0)) != 0
    torch.testing.assert_close(g[mask], g_ref[mask])
    with pytest.raises(RuntimeError):
        F.perceptron_loss(z, torch.ones(5))
    with pytest.raises(ValueError, match="reduction"):
        F.perceptron_loss(z, t, "avg")


def test_saves_one_byte_per_element():
    z = torch.randn(128, 8, requires_grad=True)
    t = torch.randint(0, 2, (128, 8)).float()
    _, saved = saved_tensors(F.perceptron_loss, z, t)
    assert saved.total == z.numel()
    _, ref_saved = saved_tensors(reference, z, t)
    assert ref_saved.total > 4 * z.numel()


def test_forward_mode_is_the_step_times_the_tangent():
    z = torch.randn(6, dtype=torch.float64)
    t = torch.randint(0, 2, (6,)).double()
    dz = torch.randn(6, dtype=torch.float64)
    _, jvp = torch.func.jvp(lambda a: F.perceptron_loss(a, t, "sum"), (z,), (dz,))
    _, jvp_ref = torch.func.jvp(lambda a: reference(a, t, "sum"), (z,), (dz,))
    torch.testing.assert_close(jvp, jvp_ref)


# --------------------------------------------------------------------------------------
# SGD on a Linear layer is the perceptron algorithm, update by update
# --------------------------------------------------------------------------------------
def hand_perceptron(x, y, w, b, eta, epochs):
    """Rosenblatt's algorithm: on each mistake (y z <= 0), w <- w + eta y x, b <- b + eta y."""
    history = []
    w, b = w.clone(), b.clone()
    for _ in range(epochs):
        for xi, yi in zip(x, y):
            if yi * (xi @ w + b) <= 0:
                w = w + eta * yi * xi
                b = b + eta * yi
            history.append((w.clone(), b.clone()))
    return history


@pytest.mark.parametrize("targets", ["pm1", "01"])
@pytest.mark.parametrize("eta", [1.0, 0.25])
def test_sgd_on_linear_is_the_perceptron_rule_update_by_update(targets, eta):
    x, y = separable()
    t = y if targets == "pm1" else (y > 0).double()
    layer = torch.nn.Linear(2, 1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.zero_()  # w = 0: every point starts on the boundary, a mistake
        layer.bias.zero_()
    expected = hand_perceptron(x, y, layer.weight[0].detach(), layer.bias[0].detach(), eta, epochs=3)
    opt = torch.optim.SGD(layer.parameters(), lr=eta)
    criterion = PerceptronLoss(reduction="sum")
    step = 0
    updates = 0
    for _ in range(3):
        for xi, ti in zip(x, t):
            opt.zero_grad()
            loss = criterion(layer(xi.unsqueeze(0)).squeeze(1), ti.unsqueeze(0))
            loss.backward()
            updates += int(layer.weight.grad.abs().sum() > 0)
            opt.step()
            w, b = expected[step]
            assert torch.equal(layer.weight[0].detach(), w), step  # bit for bit
            assert torch.equal(layer.bias[0].detach(), b), step
            step += 1
    assert updates > 0
    # after convergence (separable data) every point is on its side
    assert bool(((x @ layer.weight[0].detach() + layer.bias.detach()) * y > 0).all())


def test_full_batch_step_sums_the_mistakes():
    x, y = separable()
    layer = torch.nn.Linear(2, 1, dtype=torch.float64)
    w0, b0 = layer.weight[0].detach().clone(), layer.bias[0].detach().clone()
    z = layer(x).squeeze(1)
    mistakes = (y * z.detach()) <= 0
    F.perceptron_loss(z, y, reduction="sum").backward()
    torch.optim.SGD(layer.parameters(), lr=0.5).step()
    torch.testing.assert_close(layer.weight[0].detach(), w0 + 0.5 * (y[mistakes, None] * x[mistakes]).sum(0))
    torch.testing.assert_close(layer.bias[0].detach(), b0 + 0.5 * y[mistakes].sum())


# --------------------------------------------------------------------------------------
# the module and the output registry
# --------------------------------------------------------------------------------------
def test_perceptron_module_predicts_zero_one_and_exposes_logits():
    p = Perceptron(3, 2)
    assert set(p.state_dict()) == {"weight", "bias"} and p.weight.shape == (2, 3)
    lin = torch.nn.Linear(3, 2)
    p.load_state_dict(lin.state_dict())
    x = torch.randn(10, 3)
    torch.testing.assert_close(p.logits(x), lin(x))
    pred = p(x)
    assert torch.equal(pred, (lin(x) >= 0).float())
    assert not isinstance(p, torch.nn.Linear)
    # the step has no useful gradient; the loss on the logits does
    xg = x.requires_grad_()
    assert torch.equal(torch.autograd.grad(p(xg).sum(), xg)[0], torch.zeros_like(x))
    g = torch.autograd.grad(PerceptronLoss()(p.logits(xg), torch.ones(10, 2)), p.weight)[0]
    assert g.abs().sum() > 0
    assert Perceptron(4).weight.shape == (1, 4)  # out_features defaults to 1


def test_perceptron_output_in_the_registry():
    out = tnn.get_output("perceptron")
    assert out.task == "binary" and out.out_features(1) == 1
    assert isinstance(out.loss(), PerceptronLoss)
    assert torch.equal(out.predict(torch.tensor([-1.0, 0.0, 2.0])), torch.tensor([0.0, 1.0, 1.0]))
    assert "perceptron" in tnn.list_outputs()


def test_perceptron_converges_on_separable_data_and_not_on_xor():
    def train(x, y, epochs):
        p = Perceptron(2, dtype=torch.float64)
        with torch.no_grad():
            p.weight.zero_()
            p.bias.zero_()
        opt = torch.optim.SGD(p.parameters(), lr=1.0)
        for epoch in range(epochs):
            mistakes = 0
            for xi, yi in zip(x, y):
                opt.zero_grad()
                loss = F.perceptron_loss(p.logits(xi), yi.reshape(1), reduction="sum")
                loss.backward()
                mistakes += int(loss.item() > 0 or p.weight.grad.abs().sum() > 0)
                opt.step()
            if mistakes == 0:
                return p, epoch
        return p, None

    x, y = separable()
    p, converged = train(x, y, 50)
    assert converged is not None and torch.equal(p(x).squeeze(1), (y > 0).double())
    xor = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    p, converged = train(xor, torch.tensor([-1.0, 1.0, 1.0, -1.0], dtype=torch.float64), 200)
    assert converged is None
    assert (p(xor).squeeze(1) == torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)).sum() <= 3
