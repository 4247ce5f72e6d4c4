"""Radial basis function features: the functional, its Function, the RBF module, center init, the MLP builder."""

from __future__ import annotations

import pytest
import torch

import torchff.functional as F
import torchff.nn as tnn
from torchff.autograd.rbf import RBFFunction
from torchff.nn import RBF
from torchff.nn.rbf import kmeans_plus_plus
from torchff.testing import check, check_compile, saved_tensors


def cdist_rbf(x, c, gamma):
    """The plain-torch reference: exp(-gamma * cdist(x, c)^2)."""
    d = torch.cdist(x.reshape(-1, x.shape[-1]), c)
    return torch.exp(-gamma * d * d).reshape(*x.shape[:-1], c.shape[0])


def broadcast_rbf(x, c, gamma):
    """The (N, M, D) broadcast form (forward-mode capable, unlike cdist); for small tests only."""
    d2 = ((x.unsqueeze(-2) - c) ** 2).sum(-1)
    return torch.exp(-gamma * d2)


def inputs(n=6, m=4, d=3, per_center=False, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    c = torch.randn(m, d, generator=g, dtype=dtype, requires_grad=True)
    gamma = (0.3 + torch.rand(m if per_center else (), generator=g, dtype=dtype)).requires_grad_()
    return x, c, gamma


# --------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7, 3), (2, 5, 3), (3,)])
def test_values_match_cdist(shape):
    x = torch.randn(shape)
    c = torch.randn(4, 3)
    torch.testing.assert_close(F.rbf(x, c, 0.7), cdist_rbf(x, c, 0.7))
    gamma = torch.rand(4) + 0.1
    torch.testing.assert_close(F.rbf(x, c, gamma), torch.exp(-gamma * torch.cdist(x.reshape(-1, 3), c) ** 2).reshape(*shape[:-1], 4))


def test_lecture_formula_gamma_is_epsilon_squared():
    x, xi, eps = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, -1.0]]), 0.8
    expected = torch.exp(-((eps * torch.linalg.vector_norm(x - xi)) ** 2))
    torch.testing.assert_close(F.rbf(x, xi, eps**2), expected.reshape(1, 1))


def test_stable_far_away_and_at_the_center():
    c = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    x = torch.tensor([[1e4, -1e4], [0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    gamma = torch.tensor(2.0, requires_grad=True)
    out = F.rbf(x, c, gamma)
    assert torch.equal(out[0], torch.zeros(2))  # underflow to exactly 0
    assert out[1, 0] == 1.0 and out[2, 1] == 1.0  # x == c: distance clamped at 0, phi = 1
    out.sum().backward()
    for t in (x, c, gamma):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(x.grad[0], torch.zeros(2))
    # at x == c the derivative in x of that feature is 0; the other feature pulls
    g = torch.autograd.grad(F.rbf(x[1:2], c[:1], gamma).sum(), x)[0]
    assert torch.equal(g, torch.zeros_like(g))


def test_float32_rounding_does_not_make_negative_distances():
    x = torch.randn(64, 8) * 100
    c = x[:16].clone()
    out = F.rbf(x, c, 1.0)
    assert (out <= 1).all() and (out >= 0).all()
    assert torch.allclose(out[:16].diagonal(), torch.ones(16), atol=1e-3)


# --------------------------------------------------------------------------------------
# gradients: gradcheck, gradgradcheck, vmap, jacrev, forward mode, compile, saved bytes
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_center", [False, True])
def test_check_all_arguments(per_center):
    x, c, gamma = inputs(per_center=per_center)
    report = check(F.rbf, x, c, gamma, reference=cdist_rbf)
    assert "gradgradcheck" in report.checks and "vmap+jacrev" in report.checks
    torch.autograd.gradcheck(F.rbf, (x, c, gamma), check_batched_grad=True, check_forward_ad=True)
    torch.autograd.gradgradcheck(F.rbf, (x, c, gamma), check_batched_grad=True, check_fwd_over_rev=True)


@pytest.mark.parametrize("wrt", ["x", "c", "gamma"])
def test_gradcheck_each_argument_alone(wrt):
    x, c, gamma = inputs(per_center=True)
    args = {"x": x, "c": c, "gamma": gamma}
    for k, t in args.items():
        t.requires_grad_(k == wrt)
    torch.autograd.gradcheck(F.rbf, (x, c, gamma), check_batched_grad=True, check_forward_ad=True,
                             check_backward_ad=True)
    torch.autograd.gradgradcheck(F.rbf, (x, c, gamma), check_fwd_over_rev=True)


def test_batched_leading_dims_and_hessian():
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    c = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, b: F.rbf(a, b, 0.5), (x, c), check_batched_grad=True, check_forward_ad=True)
    h = torch.func.hessian(lambda a: F.rbf(a, c.detach(), 0.5).sum())(x.detach())
    h_ref = torch.func.hessian(lambda a: broadcast_rbf(a, c.detach(), 0.5).sum())(x.detach())
    torch.testing.assert_close(h, h_ref)


def test_forward_mode_matches_reverse_mode():
    x, c, gamma = inputs(per_center=True)
    tx, tc, tg = torch.randn_like(x), torch.randn_like(c), torch.randn_like(gamma)
    _, jvp = torch.func.jvp(lambda a, b, g: F.rbf(a, b, g), (x.detach(), c.detach(), gamma.detach()), (tx, tc, tg))
    _, jvp_ref = torch.func.jvp(broadcast_rbf, (x.detach(), c.detach(), gamma.detach()), (tx, tc, tg))
    torch.testing.assert_close(jvp, jvp_ref)


def test_compile_fullgraph():
    x, c, gamma = inputs(dtype=torch.float32)
    check_compile(F.rbf, x, c, gamma)


def test_saves_only_the_output_and_its_arguments():
    x = torch.randn(256, 8, requires_grad=True)
    c = torch.randn(32, 8, requires_grad=True)
    gamma = torch.tensor(0.5)
    out, saved = saved_tensors(F.rbf, x, c, gamma)
    assert saved.beyond(out, x, c, gamma) == 0
    assert saved.total == out.numel() * 4 + x.numel() * 4 + c.numel() * 4 + 4
    ref_out, ref_saved = saved_tensors(cdist_rbf, x, c, gamma)
    # torch keeps the N x M distances and their square besides its output
    assert ref_saved.beyond(ref_out, x, c, gamma) >= ref_out.numel() * 8


def test_never_builds_an_n_by_m_by_d_tensor():
    n, m, d = 300, 200, 50
    x, c = torch.randn(n, d, requires_grad=True), torch.randn(m, d, requires_grad=True)
    biggest = []

    class Watch(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                biggest.append(out.numel())
            return out

    with Watch():
        out = F.rbf(x, c, 0.1)
        out.backward(torch.ones_like(out))
    assert max(biggest) == n * m < n * m * d


def test_errors():
    with pytest.raises(RuntimeError, match="same number of features"):
        F.rbf(torch.randn(3, 2), torch.randn(4, 3))
    with pytest.raises(RuntimeError, match="2-D"):
        F.rbf(torch.randn(3, 2), torch.randn(2))
    with pytest.raises(RuntimeError, match="one value per center"):
        F.rbf(torch.randn(3, 2), torch.randn(4, 2), torch.ones(3))
    with pytest.raises(TypeError, match="gamma"):
        F.rbf(torch.randn(3, 2), torch.randn(4, 2), "wide")


# --------------------------------------------------------------------------------------
# the module and its center initialisation
# --------------------------------------------------------------------------------------
def test_module_parameters_and_forward():
    layer = RBF(3, 5, gamma=0.25)
    assert layer.centers.shape == (5, 3) and layer.centers.requires_grad
    assert torch.equal(layer.gamma, torch.full((5,), 0.25)) and not layer.gamma.requires_grad
    assert set(layer.state_dict()) == {"centers", "gamma", "initialized"}
    x = torch.randn(4, 3)
    torch.testing.assert_close(layer(x), cdist_rbf(x, layer.centers.detach(), 0.25))
    fixed = RBF(3, 5, learnable=False, learnable_gamma=True)
    assert not fixed.centers.requires_grad and fixed.gamma.requires_grad
    fixed(x).sum().backward()
    assert fixed.centers.grad is None and fixed.gamma.grad.shape == (5,)
    with pytest.raises(ValueError, match="gamma"):
        RBF(3, 5, gamma=0.0)


def test_init_centers_from_a_batch_takes_distinct_rows():
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    layer = RBF(2, 4, learnable=False)
    assert not bool(layer.initialized)
    layer.init_centers_(x)
    assert bool(layer.initialized)
    rows = sorted(map(tuple, layer.centers.tolist()))
    assert rows == sorted(map(tuple, x.tolist()))  # exactly the four XOR points
    with pytest.raises(ValueError, match="at least num_centers"):
        RBF(2, 5).init_centers_(x)
    with pytest.raises(ValueError, match="method"):
        layer.init_centers_(x, method="random")


def test_kmeans_plus_plus_spreads_the_centers():
    # four tight clusters of 50 points: D^2 sampling picks one center in each (almost surely)
    g = torch.Generator().manual_seed(0)
    corners = torch.tensor([[-5.0, -5.0], [-5.0, 5.0], [5.0, -5.0], [5.0, 5.0]])
    x = (corners.repeat_interleave(50, 0) + 0.05 * torch.randn(200, 2, generator=g))
    for seed in range(5):
        c = kmeans_plus_plus(x, 4, generator=torch.Generator().manual_seed(seed))
        nearest = torch.cdist(c, corners).argmin(1)
        assert sorted(nearest.tolist()) == [0, 1, 2, 3]
    layer = RBF(2, 4).init_centers_(x, method="kmeans++", generator=torch.Generator().manual_seed(1))
    assert sorted(torch.cdist(layer.centers.detach(), corners).argmin(1).tolist()) == [0, 1, 2, 3]
    # fewer distinct rows than centers: still draws (uniformly among the duplicates)
    dup = torch.zeros(6, 2)
    assert torch.equal(kmeans_plus_plus(dup, 3), torch.zeros(3, 2))


def test_rbf_features_make_xor_linearly_separable():
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    phi = RBF(2, 4, gamma=1.0, learnable=False).init_centers_(x)(x)
    # least squares on [phi, 1] interpolates: the Gram matrix of distinct centers is positive definite
    a = torch.cat([phi, torch.ones(4, 1)], 1).double()
    sol = torch.linalg.lstsq(a, y.double().unsqueeze(1)).solution
    assert torch.allclose(a @ sol, y.double().unsqueeze(1), atol=1e-9)


# --------------------------------------------------------------------------------------
# the MLP builder
# --------------------------------------------------------------------------------------
def test_mlp_with_rbf_first_layer():
    net = tnn.MLP(2, [], 1, features="rbf", num_centers=4, gamma=2.0, learnable_centers=False, center_init="batch")
    assert isinstance(net.layers.rbf, RBF) and net.layers.out.in_features == 4
    assert list(net.state_dict()) == ["layers.rbf.centers", "layers.rbf.gamma", "layers.rbf.initialized",
                                      "layers.out.weight", "layers.out.bias"]
    assert net.needs_data_init
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    net.init_from_data_(x)
    assert not net.needs_data_init
    assert net(x).shape == (4, 1)
    deep = tnn.MLP(2, [8], 2, features="rbf", num_centers=6)
    assert deep.layers.fc1.in_features == 6 and deep.layers.rbf.learnable
    plain = tnn.MLP(2, [8], 2)
    assert not plain.needs_data_init and "rbf" not in dict(plain.layers.named_children())
    with pytest.raises(ValueError, match="features"):
        tnn.MLP(2, [8], 2, features="fourier")
    with pytest.raises(ValueError, match="center_init"):
        tnn.MLP(2, [8], 2, features="rbf", center_init="grid")


def test_benchmark_runs_and_measures(capsys):
    from benchmarks import rbf as bench

    (row,) = bench.main(["--sizes", "64x16x3", "--rounds", "1", "--min-run-time", "0.001", "--device", "cpu"])
    assert row["max_abs_diff"] < 1e-5
    assert row["saved"]["torchff"]["extra"] == 0  # the output and the arguments only
    assert row["saved"]["torch"]["extra"] >= 64 * 16 * 4
    assert row["time_s"]["torchff"] > 0 and row["time_s"]["torch"] > 0 and row["time_ratio"] > 0
    assert "time ratio" in capsys.readouterr().out
