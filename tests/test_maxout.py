"""Maxout units: the functional, its Function, the Maxout and MaxoutLinear modules, max-norm."""

from __future__ import annotations

import math

import pytest
import torch

import torchff.functional as F
from torchff.autograd.maxout import _MaxoutFunction as MaxoutFunction, _MaxoutLinearFunction as MaxoutLinearFunction, index_dtype
from torchff.nn import Maxout, MaxoutLinear, get_activation, list_activations, max_norm_
from torchff.testing import check, check_compile, check_parity, nan_safe_equal, saved_tensors

nan, inf = float("nan"), float("inf")


def view_max(x: torch.Tensor, pieces: int, dim: int = -1) -> torch.Tensor:
    """The reference: group consecutive elements along ``dim`` and take torch.max."""
    d = dim % x.dim()
    return x.unflatten(d, (-1, pieces)).max(d + 1).values


def values_and_grad(fn, x: torch.Tensor, cotangent: torch.Tensor):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    (g,) = torch.autograd.grad(out, x, cotangent)
    return out.detach(), g


def assert_same_as_view_max(x: torch.Tensor, pieces: int, dim: int) -> None:
    """Values and input gradient equal ``view + max``'s exactly (nan-aware): routing copies."""
    d = dim % x.dim()
    out_shape = list(x.shape)
    out_shape[d] //= pieces
    cot = torch.randn(out_shape, dtype=torch.float64).to(x.dtype)
    out, g = values_and_grad(lambda t: F.maxout(t, pieces, dim), x, cot)
    ref_out, ref_g = values_and_grad(lambda t: view_max(t, pieces, dim), x, cot)
    assert out.shape == ref_out.shape and out.dtype == ref_out.dtype
    assert nan_safe_equal(out, ref_out), (out, ref_out)
    assert nan_safe_equal(g, ref_g), (g, ref_g)


def sized(shape: tuple[int, ...], dim: int, size: int) -> tuple[int, ...]:
    s = list(shape)
    s[dim % len(s)] = size
    return tuple(s)


# --------------------------------------------------------------------------------------
# values and gradients against view + max
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pieces", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("shape,dim", [((5, 3, 7), -1), ((5, 3, 7), 0), ((5, 3, 7), 1), ((4, 3, 2, 5), -3), ((7,), 0)])
def test_matches_view_max(pieces, shape, dim):
    x = torch.randn(sized(shape, dim, 3 * pieces))
    assert_same_as_view_max(x, pieces, dim)


@pytest.mark.parametrize("pieces", [2, 4, 5])
def test_non_contiguous_inputs(pieces):
    base = torch.randn(4 * pieces, 6, 3)
    assert_same_as_view_max(base.transpose(0, 2), pieces, -1)  # pieces dim with stride 18
    assert_same_as_view_max(base.transpose(0, 1), pieces, 1)
    sliced = torch.randn(5, 8 * pieces)[:, ::2]  # strided pieces
    assert not sliced.is_contiguous()
    assert_same_as_view_max(sliced, pieces, 1)
    assert_same_as_view_max(torch.randn(3, 2 * pieces).t(), pieces, 0)


@pytest.mark.parametrize("pieces", [2, 3, 4, 6])
def test_ties_go_to_the_first_maximum_as_torch_max(pieces):
    # small integers: most groups hold ties, many have several equal maxima
    x = torch.randint(-2, 3, (64, 5 * pieces)).float()
    assert_same_as_view_max(x, pieces, -1)


def test_tie_rule_explicit():
    x = torch.tensor([[3.0, 3.0, 1.0, 2.0, 7.0, 7.0], [-1.0, 5.0, 5.0, 0.0, -0.0, 0.0]], requires_grad=True)
    out = F.maxout(x, 3)
    out.backward(torch.tensor([[10.0, 20.0], [30.0, 40.0]]))
    assert torch.equal(out.detach(), torch.tensor([[3.0, 7.0], [5.0, 0.0]]))
    # the first of equal maxima takes the whole gradient; -0.0 == 0.0 is a tie too
    assert torch.equal(x.grad, torch.tensor([[10.0, 0.0, 0.0, 0.0, 20.0, 0.0], [0.0, 30.0, 0.0, 40.0, 0.0, 0.0]]))


@pytest.mark.parametrize("pieces", [2, 3, 4, 6])
def test_nan_inf_and_large_values_match_torch_max(pieces):
    special = torch.tensor([nan, inf, -inf, 1e4, -1e4, 0.0, -0.0])
    x = torch.randn(200, 2 * pieces)
    x.view(-1)[torch.randperm(x.numel())[: x.numel() // 3]] = special[torch.randint(0, 7, (x.numel() // 3,))]
    assert_same_as_view_max(x, pieces, -1)
    # nan wins over everything, the first nan of a group takes the gradient (torch.max's rule)
    y = torch.tensor([[1.0, nan, 5.0, nan], [inf, 2.0, nan, 0.0], [nan, inf, nan, -inf], [-inf, -inf, -inf, -inf]])
    assert_same_as_view_max(y, 4, -1)
    out, g = values_and_grad(lambda t: F.maxout(t, 4), y, torch.ones(4, 1))
    assert torch.equal(g.argmax(1), torch.tensor([1, 2, 0, 0]))


def test_one_dimensional_and_empty_inputs():
    assert_same_as_view_max(torch.randn(12), 4, -1)
    x = torch.randn(0, 8, requires_grad=True)
    out = F.maxout(x, 4)
    assert out.shape == (0, 2)
    out.sum().backward()
    assert x.grad.shape == (0, 8)


def test_integer_input_values():
    x = torch.randint(-5, 5, (6, 12))
    assert torch.equal(F.maxout(x, 3), view_max(x, 3))
    assert torch.equal(F.maxout(x, 6), view_max(x, 6))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("pieces", [3, 4, 6])
def test_dtypes(dtype, pieces):
    x = torch.randn(17, 4 * pieces).to(dtype)
    x[0, :pieces] = 1.0  # a tie in every dtype
    assert_same_as_view_max(x, pieces, -1)
    check_parity(lambda t: F.maxout(t, pieces), lambda t: view_max(t, pieces), x.requires_grad_(True))


# --------------------------------------------------------------------------------------
# gradcheck, gradgradcheck, vmap, jacrev, compile, saved bytes (the shared harness)
# --------------------------------------------------------------------------------------
def no_ties(shape, dtype=torch.float64):
    """Distinct values at least 0.01 apart, so gradcheck's finite differences never cross a kink."""
    n = math.prod(shape)
    return (torch.randperm(n, dtype=dtype) * 0.01 - n * 0.005).reshape(shape)


@pytest.mark.parametrize("pieces,dim", [(2, -1), (3, 0), (4, -2), (5, -1), (6, 1)])
def test_harness(pieces, dim):
    x = no_ties(sized((3, 4, 2), dim, 2 * pieces)).requires_grad_(True)
    fn = lambda t: F.maxout(t, pieces, dim)  # noqa: E731
    report = check(fn, x, reference=lambda t: view_max(t, pieces, dim), gradgrad=True)
    out_numel = x.numel() // pieces
    assert report.saved_bytes == out_numel  # one uint8 per output element
    assert report.reference_saved_bytes == 8 * out_numel  # torch.max's int64 indices


def test_saved_bytes_large():
    x = torch.randn(64, 4 * 32, requires_grad=True)
    out, saved = saved_tensors(F.maxout, x, 4)
    assert saved.entries == [((64, 32), torch.uint8, 64 * 32)]
    ref_out, ref_saved = saved_tensors(view_max, x, 4)
    assert ref_saved.total == 8 * saved.total


def test_double_backward_is_the_routing():
    # the gradient is linear in the output gradient (and piecewise constant in x)
    x = no_ties((4, 9)).requires_grad_(True)
    g = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(F.maxout(x, 3), x, g, create_graph=True)
    w = torch.randn_like(gx)
    (gg,) = torch.autograd.grad((gx * w).sum(), g)
    winners = x.detach().unflatten(1, (3, 3)).argmax(2, keepdim=True)
    assert torch.equal(gg, w.unflatten(1, (3, 3)).gather(2, winners).squeeze(2))


@pytest.mark.slow
def test_compile_inductor():
    x = torch.randn(8, 24, requires_grad=True)
    check_compile(lambda t: F.maxout(t, 4), x, backend="inductor")
    w = torch.randn(12, 5, requires_grad=True)
    b = torch.randn(12, requires_grad=True)
    check_compile(lambda t, w, b: F.maxout_linear(t, w, b, pieces=3), torch.randn(8, 5, requires_grad=True), w, b,
                  backend="inductor")


# --------------------------------------------------------------------------------------
# pieces = 1, wide indices, ReLU as a special case
# --------------------------------------------------------------------------------------
def test_one_piece_is_the_identity():
    x = torch.randn(5, 7, requires_grad=True)
    out = F.maxout(x, 1)
    assert torch.equal(out, x)
    g = torch.randn(5, 7)
    out.backward(g)
    assert torch.equal(x.grad, g)
    _, saved = saved_tensors(F.maxout, x, 1)
    assert saved.total == 35


@pytest.mark.parametrize("pieces,dtype", [(256, torch.uint8), (257, torch.int16), (300, torch.int16)])
def test_many_pieces_widen_the_index(pieces, dtype):
    assert index_dtype(pieces) == dtype
    x = torch.randn(3, 2 * pieces)
    x[0, pieces - 1] = 100.0  # the last piece wins: index pieces - 1
    assert_same_as_view_max(x, pieces, -1)
    _, saved = saved_tensors(F.maxout, x.requires_grad_(True), pieces)
    assert saved.entries == [((3, 2), dtype, 6 * dtype.itemsize)]


def test_index_dtype_bounds():
    assert [index_dtype(k) for k in (1, 256, 257, 2**15, 2**15 + 1, 2**31, 2**31 + 1)] == [
        torch.uint8, torch.uint8, torch.int16, torch.int16, torch.int32, torch.int32, torch.int64
    ]


def test_two_pieces_with_a_zero_piece_is_relu():
    z = torch.tensor([-2.0, -0.5, 0.0, 0.0, 0.3, 4.0])
    z.requires_grad_(True)
    pieces = torch.stack([torch.zeros_like(z), z], dim=-1).flatten()  # (0, z_i) per unit
    out = F.maxout(pieces, 2)
    assert torch.equal(out, torch.relu(z))
    (g,) = torch.autograd.grad(out, z, torch.arange(1.0, 7.0))
    (ref,) = torch.autograd.grad(torch.relu(z), z, torch.arange(1.0, 7.0))
    assert torch.equal(g, ref)  # including relu'(0) = 0: the zero piece comes first and wins the tie


def test_maxout_linear_with_a_zero_piece_is_linear_then_relu():
    layer = MaxoutLinear(5, 3, 2).double()
    with torch.no_grad():
        layer.weight[0::2] = 0
        layer.bias[0::2] = 0
    x = torch.randn(4, 5, dtype=torch.float64)
    # the same GEMM (a sliced weight may round differently), then the ReLU of the live pieces
    ref = torch.relu(torch.nn.functional.linear(x, layer.weight, layer.bias)[:, 1::2])
    torch.testing.assert_close(layer(x), ref, rtol=0, atol=0)


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
def test_size_not_a_multiple_of_pieces():
    with pytest.raises(ValueError, match=r"size 10 of dim -1 is not a multiple of pieces=4"):
        F.maxout(torch.randn(3, 10), 4)
    with pytest.raises(ValueError, match=r"size 3 of dim 0 .* pieces=2"):
        Maxout(2, dim=0)(torch.randn(3, 4))
    with pytest.raises(ValueError, match="rows of weight are not a multiple of pieces=4"):
        F.maxout_linear(torch.randn(2, 3), torch.randn(6, 3), pieces=4)


@pytest.mark.parametrize("pieces", [0, -1, 2.0, True])
def test_bad_pieces(pieces):
    with pytest.raises(ValueError, match="pieces"):
        F.maxout(torch.randn(4), pieces)
    with pytest.raises(ValueError, match="pieces"):
        Maxout(pieces)
    with pytest.raises(ValueError, match="pieces"):
        MaxoutLinear(2, 2, pieces)


def test_dim_out_of_range():
    with pytest.raises(IndexError):
        F.maxout(torch.randn(2, 4), 2, dim=2)
    with pytest.raises(IndexError):
        F.maxout(torch.tensor(1.0), 1)


# --------------------------------------------------------------------------------------
# modules and registry
# --------------------------------------------------------------------------------------
def test_maxout_module_and_registry():
    m = get_activation("maxout", pieces=3)
    assert isinstance(m, Maxout) and m.pieces == 3 and m.dim == -1
    assert "maxout" in list_activations()
    assert repr(Maxout(4, dim=1)) == "Maxout(pieces=4, dim=1)"
    assert repr(get_activation("Maxout", pieces=2, dim=0)) == "Maxout(pieces=2, dim=0)"
    x = torch.randn(2, 6, 3)
    assert torch.equal(Maxout(2, dim=1)(x), view_max(x, 2, 1))


def test_maxout_linear_repr_and_shapes():
    layer = MaxoutLinear(7, 3, 4, bias=False)
    assert repr(layer) == "MaxoutLinear(in_features=7, out_features=3, pieces=4, bias=False)"
    assert layer.weight.shape == (12, 7) and layer.bias is None
    assert layer(torch.randn(2, 5, 7)).shape == (2, 5, 3)
    assert layer(torch.randn(7)).shape == (3,)
    half = MaxoutLinear(2, 2, 2, dtype=torch.float64)
    assert half.weight.dtype == torch.float64 and half.bias.dtype == torch.float64


def test_maxout_linear_initialises_like_linear():
    torch.manual_seed(3)
    lin = torch.nn.Linear(9, 5 * 3)
    torch.manual_seed(3)
    layer = MaxoutLinear(9, 5, 3)
    assert torch.equal(layer.weight, lin.weight) and torch.equal(layer.bias, lin.bias)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5), (5,)])
@pytest.mark.parametrize("pieces", [2, 4, 5])
def test_maxout_linear_equals_linear_then_maxout(bias, shape, pieces):
    layer = MaxoutLinear(5, 3, pieces, bias=bias).double()
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    args = (x, layer.weight, layer.bias) if bias else (x, layer.weight)

    def ours(x, w, b=None):
        return F.maxout_linear(x, w, b, pieces=pieces)

    def ref(x, w, b=None):
        return view_max(torch.nn.functional.linear(x, w, b), pieces)

    check_parity(ours, ref, *args)  # values and the gradients of input, weight and bias
    with torch.no_grad():
        assert torch.equal(layer(x), ref(*args))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_maxout_linear_dtypes(dtype):
    layer = MaxoutLinear(8, 4, 3, dtype=dtype)
    x = torch.randn(6, 8, dtype=dtype, requires_grad=True)
    check_parity(
        lambda x, w, b: F.maxout_linear(x, w, b, pieces=3),
        lambda x, w, b: view_max(torch.nn.functional.linear(x, w, b), 3),
        x, layer.weight, layer.bias,
    )


@pytest.mark.parametrize("bias", [True, False])
def test_maxout_linear_harness(bias):
    x = no_ties((2, 3, 4)).requires_grad_(True)
    w = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True) if bias else None
    fn = lambda x, w, b=None: F.maxout_linear(x, w, b, pieces=3)  # noqa: E731
    ref = lambda x, w, b=None: view_max(torch.nn.functional.linear(x, w, b), 3)  # noqa: E731
    args = (x, w, b) if bias else (x, w)
    report = check(fn, *args, reference=ref, gradgrad=True)
    assert report.saved_bytes == x.numel() * 8 + w.numel() * 8 + 2 * 3 * 2  # input, weight, uint8 index


def test_maxout_linear_saved_bytes():
    layer = MaxoutLinear(32, 16, 4)
    x = torch.randn(8, 10, 32, requires_grad=True)
    out, saved = saved_tensors(layer, x)
    n_out = out.numel()
    assert saved.beyond(x, layer.weight) == n_out  # the uint8 index, nothing else
    assert saved.total == x.numel() * 4 + layer.weight.numel() * 4 + n_out
    def reference(t):
        return view_max(torch.nn.functional.linear(t, layer.weight, layer.bias), 4)

    ref_out, ref_saved = saved_tensors(reference, x)
    assert ref_saved.beyond(x, layer.weight) == 8 * n_out


@pytest.mark.parametrize("x_grad, w_grad", [(False, True), (True, False)])
def test_maxout_linear_saves_what_linear_saves_for_the_gradients_needed(x_grad, w_grad):
    layer = MaxoutLinear(32, 16, 4)
    layer.weight.requires_grad_(w_grad)
    x = torch.randn(8, 32, requires_grad=x_grad)
    out, saved = saved_tensors(layer, x)
    _, linear_saved = saved_tensors(lambda t: torch.nn.functional.linear(t, layer.weight, layer.bias), x)
    assert saved.total == linear_saved.total + out.numel()  # + the uint8 index
    assert saved.total == (x if w_grad else layer.weight).numel() * 4 + out.numel()
    (x if x_grad else layer.weight).grad = None
    out.sum().backward()  # the gradients that are needed still come out
    assert (x.grad is not None) == x_grad and (layer.weight.grad is not None) == w_grad


def test_maxout_linear_no_grad_for_frozen_parts():
    layer = MaxoutLinear(4, 2, 3)
    layer.weight.requires_grad_(False)
    x = torch.randn(5, 4, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is None and layer.bias.grad is not None


def test_state_dict_moves_between_maxout_linear_and_linear_plus_maxout():
    layer = MaxoutLinear(6, 4, 3)
    pair = torch.nn.Sequential(torch.nn.Linear(6, 12), Maxout(3))
    pair[0].load_state_dict(layer.state_dict())
    x = torch.randn(5, 6)
    assert torch.equal(pair(x), layer(x))
    back = MaxoutLinear(6, 4, 3)
    back.load_state_dict(pair[0].state_dict())
    assert torch.equal(back(x), pair(x))
    assert list(layer.state_dict()) == ["weight", "bias"]


# --------------------------------------------------------------------------------------
# max-norm constraint
# --------------------------------------------------------------------------------------
def test_max_norm_caps_rows_and_leaves_short_ones():
    w = torch.randn(6, 5)
    w[:3] *= 10 / w[:3].norm(dim=1, keepdim=True)  # norm 10
    w[3:] *= 0.5 / w[3:].norm(dim=1, keepdim=True)  # norm 0.5
    before = w.clone()
    assert max_norm_(w, 1.9365) is w
    norms = w.norm(dim=1)
    torch.testing.assert_close(norms[:3], torch.full((3,), 1.9365), rtol=1e-6, atol=1e-6)
    assert torch.equal(w[3:], before[3:])
    torch.testing.assert_close(w[:3] / norms[:3, None], before[:3] / 10, rtol=1e-6, atol=1e-6)  # same direction


def test_max_norm_dim_and_modules():
    w = torch.randn(4, 7) * 3
    max_norm_(w, 1.0, dim=1)  # columns
    assert (w.norm(dim=0) <= 1 + 1e-6).all()
    model = torch.nn.Sequential(MaxoutLinear(5, 4, 3), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100)
    bias_before = model[0].bias.clone()
    assert max_norm_(model, 0.7) is model
    assert (model[0].weight.norm(dim=1) <= 0.7 + 1e-5).all()
    assert (model[1].weight.norm(dim=1) <= 0.7 + 1e-5).all()
    assert torch.equal(model[0].bias, bias_before)  # biases are not constrained
    layer = MaxoutLinear(5, 4, 3)
    with torch.no_grad():
        layer.weight.mul_(10)
    assert layer.apply_max_norm_() is layer
    assert (layer.weight.norm(dim=1) <= 1.9365 + 1e-5).all()
    with pytest.raises(ValueError):
        max_norm_(w, 0.0)


# --------------------------------------------------------------------------------------
# learning: one unit fits a convex function better with more pieces
# --------------------------------------------------------------------------------------
def fit_square(pieces: int, steps: int = 150) -> float:
    torch.manual_seed(0)
    unit = MaxoutLinear(1, 1, pieces)
    t = torch.linspace(-1, 1, pieces) if pieces > 1 else torch.zeros(1)
    with torch.no_grad():  # pieces tangent to x^2 / 4, so that each one starts alive
        unit.weight.copy_(0.5 * t.unsqueeze(1))
        unit.bias.copy_(-0.25 * t**2)
    x = torch.linspace(-1, 1, 201).unsqueeze(1)
    y = x**2
    opt = torch.optim.Adam(unit.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = (unit(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (unit(x) - y).pow(2).mean().item()


def test_more_pieces_fit_a_convex_target_better():
    err = {k: fit_square(k) for k in (1, 2, 4)}
    assert err[2] < err[1] / 4, err
    assert err[4] < err[2] / 4, err
    assert err[4] < 1e-3, err


# --------------------------------------------------------------------------------------
# the Functions directly
# --------------------------------------------------------------------------------------
def test_functions_return_non_differentiable_indices():
    x = torch.randn(3, 8, requires_grad=True)
    out, index = MaxoutFunction.apply(x, 4, 1)
    assert index.dtype == torch.uint8 and not index.requires_grad
    assert torch.equal(index.long(), x.unflatten(1, (2, 4)).max(2).indices)
    w = torch.randn(8, 5, requires_grad=True)
    out, index = MaxoutLinearFunction.apply(torch.randn(3, 5), w, None, 2)
    assert out.shape == (3, 4) and index.shape == (3, 4) and index.dtype == torch.uint8


# --------------------------------------------------------------------------------------
# batched gradients, forward mode, the registered ops, in-place changes after the activation
# --------------------------------------------------------------------------------------
def full_gradchecks(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, check_batched_grad=True, check_forward_ad=True,
                                    check_batched_forward_grad=True, check_undefined_grad=True)
    assert torch.autograd.gradgradcheck(fn, inputs, check_batched_grad=True)


@pytest.mark.parametrize("pieces,dim", [(2, -1), (3, 0), (4, 1)])
def test_batched_gradients_and_forward_mode(pieces, dim):
    x = no_ties(sized((3, 4, 2), dim, 2 * pieces)).requires_grad_(True)
    full_gradchecks(lambda t: F.maxout(t, pieces, dim), x)
    ref = lambda t: view_max(t, pieces, dim)  # noqa: E731
    torch.testing.assert_close(torch.func.jacfwd(lambda t: F.maxout(t, pieces, dim))(x.detach()),
                               torch.func.jacfwd(ref)(x.detach()))
    out = F.maxout(x, pieces, dim)
    (jac,) = torch.autograd.grad(out, x, torch.eye(out.numel(), dtype=x.dtype).view(-1, *out.shape),
                                 is_grads_batched=True)
    torch.testing.assert_close(jac, torch.autograd.functional.jacobian(ref, x.detach(), vectorize=True).view(jac.shape))


def test_maxout_linear_batched_gradients_and_forward_mode():
    x = no_ties((2, 4)).requires_grad_(True)
    w = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: F.maxout_linear(x, w, b, pieces=3)  # noqa: E731
    full_gradchecks(fn, x, w, b)
    ref = lambda x, w, b: view_max(torch.nn.functional.linear(x, w, b), 3)  # noqa: E731
    for got, want in zip(torch.func.jacfwd(fn, argnums=(0, 1, 2))(x, w, b), torch.func.jacfwd(ref, argnums=(0, 1, 2))(x, w, b)):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64], ids=str)
@pytest.mark.parametrize("shape,pieces,dim", [((4, 6, 3), 3, 1), ((5, 8), 4, 1), ((6,), 2, 0), ((0, 4), 2, 1), ((3, 300), 300, 1)])
def test_opcheck(dtype, shape, pieces, dim):
    from torchff.kernels import maxout as ops

    x = (torch.randn(shape) * 4).to(dtype)
    torch.library.opcheck(ops.maxout, (x, pieces, dim))
    out, index = ops.maxout(x, pieces, dim)
    if dtype.is_floating_point:
        torch.library.opcheck(ops.maxout_backward, (torch.randn(out.shape, dtype=dtype), index, pieces, dim))


def _after(act, pattern, lin):
    r = torch.randn(3, 4)

    def model(x):
        out = act(lin(x))
        if pattern == "dropout":
            torch.manual_seed(1)
            out = torch.nn.functional.dropout(out, 0.5, training=True, inplace=True)
        elif pattern == "residual":
            out += r
        else:
            out.mul_(2)
        return out.sum()

    return model


@pytest.mark.parametrize("pattern", ["dropout", "residual", "mul_"])
def test_inplace_after_maxout_and_maxout_linear(pattern):
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 12)
    x = torch.randn(3, 5)
    grads = []
    for act in (Maxout(3), lambda t: view_max(t, 3)):
        lin.zero_grad()
        _after(act, pattern, lin)(x).backward()
        grads.append((lin.weight.grad.clone(), lin.bias.grad.clone()))
    torch.testing.assert_close(grads[0], grads[1])
    layer = MaxoutLinear(5, 4, 3)
    layer.load_state_dict(lin.state_dict())
    _after(lambda t: t, pattern, layer)(x).backward()
    torch.testing.assert_close((layer.weight.grad, layer.bias.grad), grads[1])


def test_compile_fullgraph_with_the_ops_in_the_graph():
    x = torch.randn(6, 8, requires_grad=True)
    check_compile(lambda t: F.maxout(t, 4), x)
    gm = []

    def backend(g, inputs):
        gm.append(g)
        return g

    torch._dynamo.reset()
    torch.compile(lambda t: F.maxout(t, 4), fullgraph=True, backend="aot_eager")(x).sum().backward()
    torch._dynamo.reset()
    from torch._functorch.aot_autograd import aot_module_simplified

    def aot(g, inputs):
        return aot_module_simplified(g, inputs, fw_compiler=backend, bw_compiler=backend)

    torch.compile(lambda t: F.maxout(t, 4), fullgraph=True, backend=aot)(x).sum().backward()
    code = "\n".join(g.code for g in gm)
    assert "torchff.maxout.default" in code and "torchff.maxout_backward.default" in code
    torch._dynamo.reset()


def test_integer_and_bool_inputs_as_torch_max():
    x = torch.randint(-5, 5, (4, 6))
    assert torch.equal(F.maxout(x, 2), view_max(x, 2))
    b = torch.tensor([[True, False, False, False]])
    assert torch.equal(F.maxout(b, 2), view_max(b, 2))
