"""Softmax and log-softmax: Functions, functional API and modules against torch."""

import pickle
import warnings

import pytest
import torch
import torch.nn.functional as TF

import torchff
import torchff.functional as F
from torchff.autograd import LogSoftmaxFunction, SoftmaxFunction
from torchff.testing import check, check_parity, saved_tensors

PAIRS = [(F.softmax, TF.softmax), (F.log_softmax, TF.log_softmax)]
IDS = ["softmax", "log_softmax"]


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
@pytest.mark.parametrize("shape,dim", [((4, 5), 1), ((4, 5), 0), ((2, 3, 4), -1)])
def test_check_against_torch(ours, theirs, shape, dim):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    report = check(lambda t: ours(t, dim), x, reference=lambda t: theirs(t, dim))
    assert report.saved_bytes == report.reference_saved_bytes  # the output, as torch


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
def test_saves_only_the_output(ours, theirs):
    x = torch.randn(8, 16, requires_grad=True)
    out, saved = saved_tensors(ours, x, 1)
    assert saved.beyond(out) == 0
    assert saved.total == saved_tensors(theirs, x, 1)[1].total == out.numel() * 4


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)])
def test_implicit_dim_as_torch(ours, theirs, shape):
    x = torch.randn(shape)
    with pytest.warns(UserWarning, match="Implicit dimension choice") as ours_warned:
        got = ours(x)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        want = theirs(x)
    torch.testing.assert_close(got, want)
    assert ours_warned[0].filename == __file__  # _stacklevel=3 points at the caller, as torch's


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_argument(ours, theirs, dtype):
    x = torch.randn(3, 7, requires_grad=True)
    check_parity(lambda t: ours(t, 1, dtype=dtype), lambda t: theirs(t, 1, dtype=dtype), x, rtol=1e-2, atol=1e-2)
    assert ours(x, 1, dtype=dtype).dtype == dtype


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_parity(ours, theirs, dtype):
    x = (4 * torch.randn(6, 9)).to(dtype).requires_grad_()
    check_parity(lambda t: ours(t, -1), lambda t: theirs(t, -1), x)


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_extreme_logits_are_stable(ours, theirs, dtype):
    x = torch.tensor([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [3e4, 3e4, -3e4]], dtype=dtype)
    x.requires_grad_()
    got = ours(x, 1)
    want = theirs(x, 1)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want)
    (g,) = torch.autograd.grad(got, x, torch.ones_like(got))
    (h,) = torch.autograd.grad(want, x, torch.ones_like(want))
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, h)


def test_softmax_of_huge_logits_is_exact():
    x = torch.tensor([1e4, 0.0, -1e4])
    assert torch.equal(F.softmax(x, 0), torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(F.log_softmax(x, 0), torch.tensor([0.0, -1e4, -2e4]))


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
def test_inf_and_nan_as_torch(ours, theirs):
    x = torch.tensor(
        [[float("inf"), 0.0, 1.0], [float("-inf"), 0.0, 1.0], [float("nan"), 0.0, 1.0], [float("-inf")] * 3]
    )
    torch.testing.assert_close(ours(x, 1), theirs(x, 1), equal_nan=True)


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
def test_empty_and_scalar(ours, theirs):
    for x in (torch.randn(0, 4, requires_grad=True), torch.randn((), requires_grad=True)):
        check_parity(lambda t: ours(t, 0), lambda t: theirs(t, 0), x)


def test_functions_directly():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(SoftmaxFunction.apply(x, 1), torch.softmax(x, 1))
    torch.testing.assert_close(LogSoftmaxFunction.apply(x, 0), torch.log_softmax(x, 0))


@pytest.mark.parametrize(
    "ours,theirs", [(torchff.nn.Softmax, torch.nn.Softmax), (torchff.nn.LogSoftmax, torch.nn.LogSoftmax)], ids=IDS
)
def test_modules_are_drop_ins(ours, theirs):
    m, t = ours(dim=1), theirs(dim=1)
    assert isinstance(m, theirs)
    assert repr(m) == repr(t) and m.state_dict().keys() == t.state_dict().keys()
    x = torch.randn(4, 6, requires_grad=True)
    check_parity(m, t, x)
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.dim == 1 and type(m2) is ours
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m(x)  # an explicit dim: no warning
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        ours()(x)


def test_module_runs_the_function():
    y = torchff.nn.Softmax(dim=-1)(torch.randn(2, 3, requires_grad=True))
    assert "SoftmaxFunction" in type(y.grad_fn).__name__


# --------------------------------------------------------------------------------------
# batched gradients, forward mode, bad dtypes, in-place changes after the output
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
def test_batched_gradients_forward_mode_and_hessian(ours, theirs):
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    fn = lambda t: ours(t, 1)  # noqa: E731
    ref = lambda t: theirs(t, 1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), check_batched_grad=True, check_forward_ad=True)
    assert torch.autograd.gradgradcheck(fn, (x,), check_batched_grad=True, check_fwd_over_rev=True)
    torch.testing.assert_close(torch.func.jacfwd(fn)(x.detach()), torch.func.jacfwd(ref)(x.detach()))
    h = lambda f: torch.func.hessian(lambda t: (f(t) * torch.arange(5.0, dtype=t.dtype)).sum())  # noqa: E731
    torch.testing.assert_close(h(fn)(x.detach()), h(ref)(x.detach()))


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=IDS)
@pytest.mark.parametrize("x", [torch.tensor([[1, 2]]), torch.tensor([[True, False]])])
def test_integer_and_bool_inputs_raise_as_torch(ours, theirs, x):
    with pytest.raises(NotImplementedError) as want:
        theirs(x, 1)
    with pytest.raises(NotImplementedError) as got:
        ours(x, 1)
    assert str(got.value) == str(want.value)


def _grads_or_error(act, pattern):
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 6)
    r = torch.randn(3, 6)
    out = act(lin(torch.randn(3, 4)))
    if pattern == "dropout":
        torch.manual_seed(1)
        out = torch.nn.functional.dropout(out, 0.5, training=True, inplace=True)
    elif pattern == "residual":
        out += r
    elif pattern == "mul_":
        out.mul_(2)
    try:
        (out * torch.arange(6.0)).sum().backward()
    except RuntimeError as e:  # torch keeps the output too: the same error
        return type(e), "modified by an inplace operation" in str(e)
    return lin.weight.grad, lin.bias.grad


@pytest.mark.parametrize("pattern", ["none", "dropout", "residual", "mul_"])
@pytest.mark.parametrize(
    "ours,theirs", [(torchff.nn.Softmax(dim=1), torch.nn.Softmax(dim=1)), (torchff.nn.LogSoftmax(dim=1), torch.nn.LogSoftmax(dim=1))],
    ids=IDS,
)
def test_inplace_after_as_torch(ours, theirs, pattern):
    got, want = _grads_or_error(ours, pattern), _grads_or_error(theirs, pattern)
    if isinstance(want[0], torch.Tensor):
        torch.testing.assert_close(got, want)
    else:
        assert got == want


def test_converted_model_has_torchs_gradients():
    import copy

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Softmax(dim=1), torch.nn.Linear(6, 3), torch.nn.LogSoftmax(dim=1))
    ours = torchff.nn.convert(copy.deepcopy(model))
    assert type(ours[1]) is torchff.nn.Softmax and type(ours[3]) is torchff.nn.LogSoftmax
    x = torch.randn(5, 4)
    for m in (model, ours):
        (m(x) * torch.arange(3.0)).sum().backward()
    for p, q in zip(model.parameters(), ours.parameters()):
        torch.testing.assert_close(q.grad, p.grad)
