"""cross_entropy and nll_loss on the torchff:: cross-entropy ops: derivatives of every order and
mode, batched gradients, opcheck, numerics at large logits, torch's errors, no host reads."""

import itertools

import pytest
import torch
import torch.nn.functional as TF
from torch.autograd import gradcheck, gradgradcheck

import torchff
import torchff.functional as F
import torchff.kernels.cross_entropy  # noqa: F401 (defines the ops)
from torchff.testing import saved_tensors

D = torch.float64
ops = torch.ops.torchff


def _x(*shape, scale=2.0):
    return (scale * torch.randn(shape, dtype=D)).requires_grad_()


def _index_cases():
    w = torch.rand(5, dtype=D) + 0.3
    t2 = torch.tensor([0, 4, -100, 1])
    tk = torch.tensor([[0, 2], [4, -100], [1, 3]])
    for reduction, (weighted, smoothing) in itertools.product(
        ["none", "mean", "sum"], [(False, 0.0), (True, 0.0), (False, 0.3), (True, 0.3)]
    ):
        kw = dict(weight=w if weighted else None, reduction=reduction, label_smoothing=smoothing)
        yield f"2d-{reduction}-w{weighted}-ls{smoothing}", (4, 5), t2, kw
        yield f"kdim-{reduction}-w{weighted}-ls{smoothing}", (3, 5, 2), tk, kw
    yield "unbatched", (5,), torch.tensor(3), dict(label_smoothing=0.1)


INDEX = list(_index_cases())


@pytest.mark.parametrize("name,shape,target,kw", INDEX, ids=[c[0] for c in INDEX])
def test_index_gradcheck_batched_forward_mode_and_gradgrad(name, shape, target, kw):
    z = _x(*shape)
    fn = lambda a: F.cross_entropy(a, target, **kw)  # noqa: E731
    torch.testing.assert_close(fn(z), TF.cross_entropy(z, target, **kw))
    assert gradcheck(fn, (z,), check_batched_grad=True, check_forward_ad=True)
    assert gradgradcheck(fn, (z,), check_batched_grad=True, check_fwd_over_rev=True)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.2)])
def test_probs_gradcheck_batched_forward_mode_and_gradgrad(reduction, weighted, smoothing):
    w = torch.rand(3, dtype=D) + 0.3 if weighted else None
    z, y = _x(4, 3), torch.rand(4, 3, dtype=D).requires_grad_()
    fn = lambda a, b: F.cross_entropy(a, b, w, reduction=reduction, label_smoothing=smoothing)  # noqa: E731
    torch.testing.assert_close(fn(z, y), TF.cross_entropy(z, y, w, reduction=reduction, label_smoothing=smoothing))
    assert gradcheck(fn, (z, y), check_batched_grad=True, check_forward_ad=True)
    assert gradgradcheck(fn, (z, y), check_batched_grad=True, check_fwd_over_rev=True)
    zk, yk = _x(2, 3, 2), torch.rand(2, 3, 2, dtype=D).requires_grad_()
    assert gradcheck(fn, (zk, yk), check_batched_grad=True, check_forward_ad=True)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nll_gradcheck_batched_forward_mode_and_gradgrad(reduction):
    w = torch.rand(3, dtype=D) + 0.3
    for x, t in [(_x(4, 3), torch.tensor([2, -100, 0, 1])), (_x(2, 3, 2), torch.tensor([[0, 2], [-100, 1]])), (_x(3), torch.tensor(1))]:
        fn = lambda a: F.nll_loss(a, t, w, reduction=reduction)  # noqa: E731
        torch.testing.assert_close(fn(x), TF.nll_loss(x, t, w, reduction=reduction))
        assert gradcheck(fn, (x,), check_batched_grad=True, check_forward_ad=True)
        assert gradgradcheck(fn, (x,), check_batched_grad=True, check_fwd_over_rev=True)


BATCHED = {
    "cross_entropy[index]": lambda z, t, y: F.cross_entropy(z, t, reduction="none", label_smoothing=0.1),
    "cross_entropy[probs]": lambda z, t, y: F.cross_entropy(z, y, reduction="none"),
    "cross_entropy[probs,mean]": lambda z, t, y: F.cross_entropy(z, y).expand(5),
    "nll_loss": lambda z, t, y: F.nll_loss(z, t, reduction="none"),
    "CrossEntropyLoss[probs]": lambda z, t, y: torchff.nn.CrossEntropyLoss(reduction="none")(z, y),
    "NLLLoss": lambda z, t, y: torchff.nn.NLLLoss(reduction="none")(z, t),
}


@pytest.mark.parametrize("name", list(BATCHED))
def test_is_grads_batched_and_vectorized_jacobian(name):
    # failed before: the backward wrote in place into unbatched buffers under a batched gradient
    fn = BATCHED[name]
    z = _x(5, 3)
    t, y = torch.tensor([0, 2, 1, 1, 0]), torch.rand(5, 3, dtype=D)
    out = fn(z, t, y)
    (g,) = torch.autograd.grad(out, z, torch.eye(5, dtype=D), is_grads_batched=True)
    jac = torch.autograd.functional.jacobian(lambda a: fn(a, t, y), z, vectorize=True)
    want = torch.autograd.functional.jacobian(lambda a: fn(a, t, y), z)
    torch.testing.assert_close(g, want)
    torch.testing.assert_close(jac, want)


def test_jacfwd_and_hessian():
    t, y = torch.tensor([0, 2, 1, 1]), torch.rand(4, 3, dtype=D)
    z = torch.randn(4, 3, dtype=D)
    for ours, theirs in [
        (lambda a: F.cross_entropy(a, t, label_smoothing=0.2), lambda a: TF.cross_entropy(a, t, label_smoothing=0.2)),
        (lambda a: F.cross_entropy(a, y), lambda a: TF.cross_entropy(a, y)),
        (lambda a: F.nll_loss(a, t), lambda a: TF.nll_loss(a, t)),
    ]:
        torch.testing.assert_close(torch.func.jacfwd(ours)(z), torch.func.jacfwd(theirs)(z))
        torch.testing.assert_close(torch.func.hessian(ours)(z), torch.func.hessian(theirs)(z))


def test_vmap_of_the_forward_matches_a_loop():
    t = torch.tensor([0, 2, -100, 1])
    z = torch.randn(3, 4, 3, dtype=D)
    for reduction in ["none", "sum", "mean"]:
        fn = lambda a: F.cross_entropy(a, t, reduction=reduction, label_smoothing=0.1)  # noqa: E731
        torch.testing.assert_close(torch.func.vmap(fn)(z), torch.stack([fn(a) for a in z]))


# --------------------------------------------------------------------------------------
# opcheck on every op
# --------------------------------------------------------------------------------------
def _op_samples():
    z, t = torch.randn(6, 5), torch.tensor([0, 4, -100, 1, 2, 3])
    w = torch.rand(5) + 0.5
    zk, tk = torch.randn(2, 5, 3), torch.tensor([[0, 1, 2], [3, -100, 4]])
    for red, (wt, ls) in itertools.product([0, 1, 2], [(None, 0.0), (w, 0.2)]):
        yield ops.cross_entropy, (z, t, wt, red, -100, ls)
        yield ops.cross_entropy, (zk, tk, wt, red, -100, ls)
        y, yk = torch.rand(6, 5), torch.rand(2, 5, 3)
        yield ops.cross_entropy_probs, (z, y, wt, red, ls)
        yield ops.cross_entropy_probs, (zk, yk, wt, red, ls)
        lp = torch.log_softmax(z, 1)
        g = torch.randn(6) if red == 0 else torch.randn(())
        yield ops.cross_entropy_probs_backward, (g, lp, y, wt, red, ls, True, True)
        yield ops.cross_entropy_probs_backward, (g, lp, y, wt, red, ls, True, False)
    yield ops.cross_entropy, (torch.randn(5), torch.tensor(2), None, 1, -100, 0.0)
    yield ops.cross_entropy_rows_, (torch.randn(6, 5), t, w, torch.rand(6), -100, 0.1)
    yield ops.cross_entropy_rows_, (torch.randn(6, 5), t, None, torch.tensor(0.5), -100, 0.0)
    yield ops.cross_entropy_rows_, (torch.randn(6, 5), t, None, None, -100, 0.0)


OP_SAMPLES = list(_op_samples())


@pytest.mark.parametrize("i", range(len(OP_SAMPLES)))
def test_opcheck(i):
    op, args = OP_SAMPLES[i]
    torch.library.opcheck(op, args)


# --------------------------------------------------------------------------------------
# numerics (issue 15)
# --------------------------------------------------------------------------------------
def test_large_equal_logits_give_log_2():
    # failed before: the max was subtracted after the sum, one rounding at the scale of 1e4
    got = F.cross_entropy(torch.tensor([[1e4, 1e4, 0.0]]), torch.tensor([0]))
    assert got.item() == pytest.approx(0.6931472, abs=1e-7)
    assert got.item() == TF.cross_entropy(torch.tensor([[1e4, 1e4, 0.0]]), torch.tensor([0])).item()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_float32_matches_float64_over_magnitudes(smoothing):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(64, 10, generator=g, dtype=D)
    t = torch.randint(0, 10, (64,), generator=g)
    for mag in [1.0, 1e2, 1e4, 1e8, 1e16, 1e30]:
        z64 = base * mag
        z64[:, 1] = z64[:, 0]  # ties at the top, as in the log-2 case
        want = TF.cross_entropy(z64, t, reduction="none", label_smoothing=smoothing)
        got = F.cross_entropy(z64.float(), t, reduction="none", label_smoothing=smoothing)
        # one float32 rounding of the inputs and of the result
        tol = 2e-7 * want.abs() + 1e-6 + 1.2e-7 * mag * (3 if smoothing else 1)
        assert ((got.double() - want).abs() <= tol).all(), mag
        y = torch.rand(64, 10, generator=g, dtype=D)
        want = TF.cross_entropy(z64, y, reduction="none", label_smoothing=smoothing)
        got = F.cross_entropy(z64.float(), y.float(), reduction="none", label_smoothing=smoothing)
        tol = 2e-7 * want.abs() + 1e-6 + 1.2e-7 * mag * 10
        assert ((got.double() - want).abs() <= tol).all(), ("probs", mag)


# --------------------------------------------------------------------------------------
# errors as torch's (issue 15)
# --------------------------------------------------------------------------------------
def _same_error(case):
    with pytest.raises(Exception) as theirs:
        case(TF)
    with pytest.raises(type(theirs.value)) as ours:
        case(F)
    return str(theirs.value), str(ours.value)


def test_nll_loss_half_weight_message():
    x, t = torch.randn(4, 3).log_softmax(1), torch.tensor([0, 1, 2, 0])
    for case in (lambda m: m.nll_loss(x, t, weight=torch.ones(3).half()),
                 lambda m: m.cross_entropy(x, t, weight=torch.ones(3).half())):
        theirs, ours = _same_error(case)
        assert ours == theirs == "expected scalar type Float but found Half"
    with pytest.raises(RuntimeError, match="expected scalar type Float but found Half"):
        torchff.nn.NLLLoss(weight=torch.ones(3).half())(x, t)


def test_batch_size_mismatch_is_a_value_error():
    for case in (lambda m: m.cross_entropy(torch.randn(4, 3), torch.zeros(2, 2, dtype=torch.long)),
                 lambda m: m.nll_loss(torch.randn(4, 3), torch.zeros(2, 2, dtype=torch.long)),
                 lambda m: m.cross_entropy(torch.randn(2, 3, 5), torch.zeros(3, 4, dtype=torch.long))):
        theirs, ours = _same_error(case)
        assert ours.startswith(theirs.rstrip("."))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_non_float_inputs_rejected_as_torch(dtype):
    z = torch.ones(4, 3).to(dtype)
    t, y = torch.tensor([0, 1, 2, 0]), torch.rand(4, 3)
    for case in (lambda m: m.cross_entropy(z, t), lambda m: m.cross_entropy(z, y), lambda m: m.nll_loss(z, t)):
        theirs, ours = _same_error(case)
        assert ours == theirs


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
def test_bad_class_index_is_torchs_index_error(fn):
    for bad in (3, -1, 100):
        for z, t in [(torch.randn(4, 3), torch.tensor([0, bad, 1, 2])), (torch.randn(2, 3, 2), torch.tensor([[0, 1], [bad, 0]]))]:
            with pytest.raises(IndexError, match=f"^Target {bad} is out of bounds.$"):
                fn(z, t)
            with pytest.raises(IndexError, match=f"^Target {bad} is out of bounds.$"):
                getattr(TF, fn.__name__)(z, t)


def test_composite_checks_class_indices_too():
    from torchff.kernels import cross_entropy as K

    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        K._composite_cross_entropy(torch.randn(3, 4), torch.tensor([0, 7, 1]), None, 1, -100, 0.0)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_composite_is_as_exact_as_torch_in_float64(reduction):
    # the composite (devices without a kernel, and what torch.compile traces) once scaled the
    # label-smoothing term by a float32 tensor: gradients 1e-9 off in float64
    from torchff.kernels import cross_entropy as K

    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, dtype=D, generator=g) * 2
    w = torch.rand(5, dtype=D, generator=g) + 0.3
    t = torch.tensor([0, 4, -100, 1, 2, 3])
    red = {"none": 0, "mean": 1, "sum": 2}[reduction]
    xr = x.clone().requires_grad_()
    ref = TF.cross_entropy(xr, t, w, reduction=reduction, label_smoothing=0.2)
    ref.sum().backward()
    for impl in (K._composite_cross_entropy, K._cpu_cross_entropy):
        loss, grad = impl(x, t, w, red, -100, 0.2)
        torch.testing.assert_close(loss, ref.detach(), rtol=1e-14, atol=1e-15)
        torch.testing.assert_close(grad, xr.grad, rtol=1e-14, atol=1e-15)


# --------------------------------------------------------------------------------------
# no host reads: forward and backward on fake CUDA tensors
# --------------------------------------------------------------------------------------
def _losses(device):
    z = torch.empty(8, 5, device=device, requires_grad=True)
    t = torch.zeros(8, dtype=torch.long, device=device)
    y = torch.empty(8, 5, device=device)
    w = torch.empty(5, device=device)
    return z, [
        F.cross_entropy(z, t, w, label_smoothing=0.1),
        F.cross_entropy(z, t, reduction="none").sum(),
        F.cross_entropy(z, y),
        F.nll_loss(z, t, w),
    ]


def test_no_host_reads_on_the_cuda_path():
    from torch._subclasses.fake_tensor import FakeTensorMode

    # fake CUDA tensors: the forward dispatches as on a GPU, and reading a value would raise
    with FakeTensorMode():
        _, losses = _losses("cuda")
        assert all(loss.device.type == "cuda" for loss in losses)
    # meta tensors (no values at all) through forward and backward, off the CPU kernels
    z, losses = _losses("meta")
    for loss in losses:
        (g,) = torch.autograd.grad(loss, z)
        assert g.shape == z.shape and g.is_meta


# --------------------------------------------------------------------------------------
# saved bytes and in-place use after the forward
# --------------------------------------------------------------------------------------
def test_saved_bytes_at_most_torchs():
    N, C = 16, 7
    z, t, y = torch.randn(N, C, requires_grad=True), torch.randint(0, C, (N,)), torch.rand(N, C)
    w = torch.rand(C)
    for kw in (dict(), dict(weight=w), dict(label_smoothing=0.1), dict(reduction="none")):
        _, ours = saved_tensors(F.cross_entropy, z, t, **kw)
        _, theirs = saved_tensors(TF.cross_entropy, z, t, **kw)
        assert ours.total <= theirs.total
        assert ours.beyond(t, w) == N * C * 4  # the gradient rows, as torch's log-softmax
    _, ours = saved_tensors(F.cross_entropy, z, y)
    _, theirs = saved_tensors(TF.cross_entropy, z, y)
    assert ours.total <= theirs.total
    _, ours = saved_tensors(F.nll_loss, z, t, w)
    assert ours.total == N * 8 + C * 4 + 4  # target, weight and the 0-d total weight (float32)


@pytest.mark.parametrize("shape", [(16, 7), (4, 7, 3, 2), (4, 7, 5)])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_backward_reads_the_total_weight_the_forward_made(shape, weighted):
    # the forward kernel's total weight (the 'mean' denominator) is kept, 0-d; the backward
    # is torch's nll_loss backward kernel alone, summing no target weights again
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    C = shape[1]
    z = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, C, shape[:1] + shape[2:])
    t.view(-1)[0] = -100
    w = torch.rand(C, dtype=torch.float64) if weighted else None
    loss = F.nll_loss(z, t, w)
    with Ops() as ops:
        (gz,) = torch.autograd.grad(loss, z, torch.tensor(1.0, dtype=torch.float64))
    assert not {"ne", "sum", "index", "where", "masked_fill"} & set(ops.names), ops.names
    assert {"nll_loss_backward", "nll_loss2d_backward"} & set(ops.names), ops.names
    (ref,) = torch.autograd.grad(TF.nll_loss(z, t, w), z)
    torch.testing.assert_close(gz, ref, rtol=0, atol=0)


def test_logits_changed_in_place_after_the_forward_as_torch():
    # neither keeps the logits: changing them after the forward leaves the gradient alone
    t, y = torch.tensor([0, 2, 1]), torch.rand(3, 3)
    z0 = torch.randn(3, 3)
    for target in (t, y):
        grads = []
        for m in (F, TF):
            z = z0.clone().requires_grad_()
            h = z * 1.0
            loss = m.cross_entropy(h, target)
            h.mul_(2)
            loss.backward()
            grads.append(z.grad)
        torch.testing.assert_close(grads[0], grads[1])


# --------------------------------------------------------------------------------------
# torch.compile
# --------------------------------------------------------------------------------------
def _compiled_graphs(fn, *args, partition_fn=None):
    """The forward and backward graphs AOT autograd builds for ``fn`` (fullgraph), run once."""
    from torch._functorch.aot_autograd import aot_module_simplified

    graphs = []

    def keep(g, _):
        graphs.append(g)
        return g

    extra = {} if partition_fn is None else {"partition_fn": partition_fn}
    torch._dynamo.reset()
    try:
        out = torch.compile(fn, fullgraph=True, backend=lambda g, i: aot_module_simplified(
            g, i, fw_compiler=keep, bw_compiler=keep, **extra))(*args)
        out.sum().backward()
    finally:
        torch._dynamo.reset()
    return graphs


def _graph_ops(g) -> set:
    return {str(n.target) for n in g.graph.nodes if n.op == "call_function"}


COMPILE_CASES = [
    ("index", (6, 5), torch.tensor([0, 4, -100, 1, 2, 3]), dict()),
    ("index-weight-smoothing-none", (6, 5), torch.tensor([0, 4, -100, 1, 2, 3]),
     dict(weight=torch.rand(5, dtype=D) + 0.3, label_smoothing=0.2, reduction="none")),
    ("index-kdim-sum", (3, 5, 2), torch.tensor([[0, 2], [4, -100], [1, 3]]), dict(reduction="sum")),
    ("probs", (6, 5), None, dict(label_smoothing=0.1)),
]


@pytest.mark.parametrize("name,shape,target,kw", COMPILE_CASES, ids=[c[0] for c in COMPILE_CASES])
def test_compile_fullgraph_matches_eager(name, shape, target, kw):
    from torchff.testing import check_compile

    x = _x(*shape)
    if target is None:
        target = torch.softmax(torch.randn(shape, dtype=D), 1)
    check_compile(lambda z: F.cross_entropy(z, target, **kw), x)


@pytest.mark.parametrize("name,shape,target,kw", COMPILE_CASES, ids=[c[0] for c in COMPILE_CASES])
def test_compiled_backward_is_the_first_order_formula_only(name, shape, target, kw):
    # the gradient (or log-probability) output serves double backward only; the compiled
    # backward must not trace that term with a zero tangent (a logits-sized pass for nothing)
    x = _x(*shape)
    if target is None:
        target = torch.softmax(torch.randn(shape, dtype=D), 1)
    fw, bw = _compiled_graphs(lambda z: F.cross_entropy(z, target, **kw), x)
    backward_ops = _graph_ops(bw)
    for wasted in ("aten.zeros.default", "aten.scatter_add.default", "aten.exp.default"):
        assert wasted not in backward_ops, (wasted, backward_ops)
    # the forward keeps what eager keeps: the gradient rows (class indices), or the
    # log-probabilities and the target (class probabilities)
    logits_sized = [n for n in fw.graph.output_node().args[0][1:]
                    if n is not None and tuple(n.meta["val"].shape) == shape]
    assert len(logits_sized) == (2 if name == "probs" else 1)


@pytest.mark.parametrize("kw", [dict(), dict(weight=torch.rand(64) + 0.3, label_smoothing=0.2, reduction="none")])
def test_compile_traces_the_composite_and_recomputes_the_gradient(kw):
    # class indices: compile traces the op's composite (torch ops, no opaque call), so
    # inductor's partitioner (at a size where recomputing pays) keeps the logits (an input) and
    # row statistics rather than the gradient, as it does for torch's cross_entropy
    from torch._functorch.partitioners import min_cut_rematerialization_partition

    x = torch.randn(512, 64, requires_grad=True)
    target = torch.randint(0, 64, (512,))
    target[::7] = -100
    fw, bw = _compiled_graphs(lambda z: F.cross_entropy(z, target, **kw), x,
                              partition_fn=min_cut_rematerialization_partition)
    assert not any("torchff" in o for o in _graph_ops(fw) | _graph_ops(bw))
    assert "aten.scatter_add.default" not in _graph_ops(fw)
    inputs = {n for n in fw.graph.nodes if n.op == "placeholder"}
    saved = [n for n in fw.graph.output_node().args[0][1:] if n is not None]
    new_logits_sized = [n for n in saved if n not in inputs and n.meta["val"].numel() >= x.numel()]
    assert not new_logits_sized, new_logits_sized


def test_compiled_bad_class_index_raises():
    z, t = torch.randn(4, 5, requires_grad=True), torch.tensor([0, 7, 1, 2])
    torch._dynamo.reset()
    try:
        with pytest.raises(RuntimeError, match="out of bounds"):
            torch.compile(F.cross_entropy, fullgraph=True, backend="aot_eager")(z, t)
    finally:
        torch._dynamo.reset()


@pytest.mark.slow
def test_compile_inductor_matches_eager_float32():
    from torchff.testing import check_compile

    x = torch.randn(64, 33, requires_grad=True)
    t = torch.randint(0, 33, (64,))
    t[3] = -100
    check_compile(lambda z: F.cross_entropy(z, t), x, backend="inductor")
    check_compile(lambda z: F.cross_entropy(z, t, reduction="none", label_smoothing=0.1), x, backend="inductor")
