"""The activation Functions against torch and against the math.

Every case of ``_activation_cases.CASES`` goes through the public harness
(:func:`torchff.testing.check`: gradcheck, gradgradcheck, parity, vmap/jacrev, compile,
saved bytes), then through explicit kink values, special values in every float dtype, and
unusual shapes. Softplus' numerics, in-place semantics and modules have their own files.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF
from _activation_cases import CASE_IDS, CASES, INF, NAN, SPECIALS, away_from_kinks, step_ste_reference

import torchff.functional as F
from torchff.testing import check, check_parity, default_tolerances, nan_safe_equal, saved_tensors

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


# --------------------------------------------------------------------------------------
# the harness, per case: gradcheck, gradgradcheck, parity, vmap/jacrev, compile, saved bytes
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_check(case):
    x = away_from_kinks((4, 5), case).requires_grad_()
    args = case.args(x)
    w_bytes = 0 if case.weight is None else case.weight.numel() * 8
    report = check(
        case.ours,
        *args,
        reference=case.ref,
        gradcheck=case.gradcheck,
        saved_bytes=case.saved_per_elem * x.numel() + w_bytes,
    )
    # what is kept beyond the output (and the weight, which the module keeps anyway)
    assert report.saved.beyond(*report.outputs, *report.inputs[1:]) == case.extra_per_elem * x.numel()
    # never more than torch keeps
    assert report.saved_bytes <= report.reference_saved_bytes


# --------------------------------------------------------------------------------------
# kinks: the derivative there is a convention, so test the numbers, not only parity
# --------------------------------------------------------------------------------------
def _grad(fn, x, *rest):
    x = x.clone().requires_grad_()
    rest = [r.clone().requires_grad_() if isinstance(r, torch.Tensor) else r for r in rest]
    out = fn(x, *rest)
    grads = torch.autograd.grad(out.sum(), [x, *[r for r in rest if isinstance(r, torch.Tensor)]])
    return out.detach(), grads


Z = torch.tensor([-0.0, 0.0], dtype=torch.float64)


@pytest.mark.parametrize(
    "fn, slope",
    [
        (F.relu, 0.0),
        (F.leaky_relu, 0.01),
        (lambda x: F.leaky_relu(x, 0.3), 0.3),
        (lambda x: F.leaky_relu(x, -0.5), -0.5),
        (lambda x: F.generalized_relu(x, 0.1), 0.1),
        (lambda x: F.generalized_relu(x, -1.0), -1.0),  # the leaky convention: h'(0) = alpha
    ],
)
def test_rectifier_kink_derivative_is_the_slope(fn, slope):
    out, (g,) = _grad(fn, Z)
    assert torch.equal(out, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(g, torch.full((2,), slope, dtype=torch.float64))


def test_abs_kink_derivative_is_zero():
    out, (g,) = _grad(F.abs_relu, torch.tensor([-0.0, 0.0, -2.0, 3.0], dtype=torch.float64))
    assert torch.equal(out, torch.tensor([0.0, 0.0, 2.0, 3.0], dtype=torch.float64))
    assert torch.equal(g, torch.tensor([0.0, 0.0, -1.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("w", [[0.25], [0.25, -0.5]], ids=["scalar", "per-channel"])
def test_prelu_kink(w):
    w = torch.tensor(w, dtype=torch.float64)
    x = torch.zeros(3, 2, dtype=torch.float64)
    x[0] = -0.0
    out, (gx, gw) = _grad(F.prelu, x, w)
    assert torch.equal(out, torch.zeros(3, 2, dtype=torch.float64))
    assert torch.equal(gx, w.expand(3, 2) if w.numel() == 2 else torch.full((3, 2), 0.25, dtype=torch.float64))
    assert torch.equal(gw, torch.zeros_like(w))  # d h / d a = min(0, z) = 0 at the kink


def test_binary_step_kink_and_gradients():
    x = torch.tensor([-1.5, -1.0, -1e-30, -0.0, 0.0, 1e-30, 1.0, 1.5], dtype=torch.float64)
    out, (g,) = _grad(F.binary_step, x)
    assert torch.equal(out, torch.tensor([0, 0, 0, 1, 1, 1, 1, 1], dtype=torch.float64))
    assert torch.equal(g, torch.zeros_like(x))  # the true derivative, also at the jump
    out_ste, (g_ste,) = _grad(lambda t: F.binary_step(t, ste=True), x)
    assert torch.equal(out_ste, out)
    assert torch.equal(g_ste, torch.tensor([0, 1, 1, 1, 1, 1, 1, 0], dtype=torch.float64))  # |x| <= 1


def test_binary_step_nan_propagates():
    x = torch.tensor([NAN, INF, -INF])
    out, (g,) = _grad(F.binary_step, x)
    assert out[0].isnan() and out[1] == 1 and out[2] == 0
    assert torch.equal(g, torch.zeros(3))
    _, (g_ste,) = _grad(lambda t: F.binary_step(t, ste=True), x)
    assert torch.equal(g_ste, torch.zeros(3))  # |nan| <= 1 is false, as clamp's gradient


@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 5.0), (-1.0, 20.0), (1.0, 30.0), (0.5, 17.5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_softplus_threshold_switch(beta, threshold, dtype):
    """Linear (value x, derivative exactly 1) strictly above the threshold, softplus at it."""
    at = torch.tensor([threshold / beta], dtype=dtype)  # beta * at == threshold exactly here
    above = torch.nextafter(at, torch.tensor(INF if beta > 0 else -INF, dtype=dtype))
    x = torch.cat([at, above])
    assert (x * beta).tolist()[0] == threshold and (x * beta).tolist()[1] > threshold
    out, (g,) = _grad(lambda a: F.softplus(a, beta, threshold), x)
    assert out[1] == x[1] and g[1] == 1.0
    if dtype == torch.float64:  # in float32, log(1 + e^t) / beta rounds to x there
        assert out[0] != x[0]  # log(1 + e^t) / beta, not x, at the threshold itself
    torch.testing.assert_close(out, TF.softplus(x, beta, threshold), rtol=2 * torch.finfo(dtype).eps, atol=0)
    _, (g_ref,) = _grad(lambda a: TF.softplus(a, beta, threshold), x)
    torch.testing.assert_close(g, g_ref, rtol=2 * torch.finfo(dtype).eps, atol=0)


# --------------------------------------------------------------------------------------
# special values (nan, +-inf, +-0, 1e4, tails) in every float dtype: values and gradients
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_special_values(case, dtype):
    vals = torch.tensor(SPECIALS, dtype=torch.float64)
    for v in case.differs_at:
        vals = vals[~(vals.isnan() if v != v else vals == v)]
    if case.torch_overflows_above is not None:  # see test_softplus_where_torch_overflows
        vals = vals[~(vals.abs() > case.torch_overflows_above)]
    # one channel per special value for PReLU: each value meets every slope
    c = 5 if case.weight is not None else 1
    x = vals.repeat_interleave(c).reshape(-1, c).to(dtype).requires_grad_()
    rtol, atol = default_tolerances(dtype)
    check_parity(lambda *a: case.ours(*a), case.ref, *case.args(x), rtol=rtol, atol=atol)


def test_binary_step_nan_differs_from_the_reference_idiom_only_at_nan():
    x = torch.tensor([NAN, -1.0, 0.0, 2.0])
    assert F.binary_step(x)[0].isnan()
    assert F.binary_step(x)[1:].equal(torch.tensor([0.0, 1.0, 1.0]))


# --------------------------------------------------------------------------------------
# shapes: 0-d, empty, non-contiguous, larger than one block, broadcast weights
# --------------------------------------------------------------------------------------
def _shaped_inputs():
    base = torch.randn(300, 71, dtype=torch.float32) * 4  # 21300 elements
    return {
        "0-d": torch.tensor(-1.25),
        "empty": torch.empty(0, 5),
        "transposed": torch.randn(7, 5).t(),
        "strided": torch.randn(10, 12)[::2, 1::3],
        "large": base,
        "large-transposed": base.t(),
    }


SHAPED = _shaped_inputs()


@pytest.mark.parametrize("name", list(SHAPED))
@pytest.mark.parametrize("case", [c for c in CASES if c.weight is None], ids=lambda c: c.name)
def test_shapes(case, name):
    x = SHAPED[name].clone().requires_grad_()
    check_parity(case.ours, case.ref, x)
    out = case.ours(x)
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize(
    "shape, wshape",
    [((), 1), ((6,), 1), ((4, 3), 3), ((2, 3, 5, 4), 3), ((2, 3, 5, 4), 1), ((0, 3), 3), ((300, 71), 71)],
)
@pytest.mark.parametrize("weights", ["positive", "mixed", "zero"])
@pytest.mark.parametrize("weight_grad", [True, False])
def test_prelu_shapes_and_broadcast(shape, wshape, weights, weight_grad):
    x = (torch.randn(shape) * 3).requires_grad_()
    if weights == "positive":
        w = torch.rand(wshape) + 0.05
    elif weights == "mixed":
        w = torch.randn(wshape)
    else:
        w = torch.zeros(wshape)
    w.requires_grad_(weight_grad)
    # the weight's gradient sums over the non-channel elements: float32 rounding grows with their number
    per_channel = max(1, x.numel() // (w.numel() if w.numel() > 1 else 1))
    check_parity(F.prelu, TF.prelu, x, w, atol=1e-5 * per_channel**0.5)


def test_prelu_0d_weight_and_non_contiguous_input():
    x = torch.randn(6, 4, 3).transpose(1, 2).requires_grad_()  # channels (dim 1) = 3
    for w in (torch.tensor(0.3), torch.tensor([0.1, -0.2, 0.3])):
        check_parity(F.prelu, TF.prelu, x, w.clone().requires_grad_())


@pytest.mark.parametrize(
    "shape, w, match",
    [
        ((5,), torch.rand(5), "Mismatch of parameter numbers"),  # 1-d input: one channel
        ((), torch.rand(2), "zero-dim"),
        ((4, 3), torch.rand(4), "Mismatch of parameter numbers"),
        ((4, 3), torch.rand(1, 1), "scalar or 1D"),
        ((4, 4), torch.rand(2, 2), "scalar or 1D"),
    ],
)
def test_prelu_rejects_what_torch_rejects(shape, w, match):
    x = torch.randn(shape)
    with pytest.raises(RuntimeError, match=match):
        TF.prelu(x, w)
    with pytest.raises(RuntimeError, match=match):
        F.prelu(x, w)


# --------------------------------------------------------------------------------------
# dtype rules
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dtype_parity_on_random_values(case, dtype):
    x = (torch.randn(640, 5, dtype=torch.float64) * 4).to(dtype)
    for v in case.differs_at:  # low precision hits +-1 exactly
        x = torch.where(x == v, x * 1.5, x)
    x.requires_grad_()
    check_parity(case.ours, case.ref, *case.args(x))


# --------------------------------------------------------------------------------------
# saved bytes in a network: Linear -> activation -> Linear
# --------------------------------------------------------------------------------------
def _chain_saved(act, x):
    torch.manual_seed(0)
    l1, l2 = torch.nn.Linear(64, 32), torch.nn.Linear(32, 16)
    _, saved = saved_tensors(lambda t: l2(act(l1(t))), x)
    return saved.total


@pytest.mark.parametrize(
    "ours, ref, fewer",
    [
        (F.relu, TF.relu, 0),
        (F.leaky_relu, TF.leaky_relu, 3),  # torch keeps the Linear's output, we a 1-byte mask
        (lambda t: F.leaky_relu(t, -0.5), lambda t: TF.leaky_relu(t, -0.5), 3),
        (F.abs_relu, torch.abs, 3),  # int8 sign
        (F.sigmoid, torch.sigmoid, 0),
        (F.softplus, TF.softplus, 0),  # the input, as torch: the output may be changed in place
        (lambda t: F.binary_step(t, ste=True), step_ste_reference, 3),  # bool mask vs clamp's input
    ],
)
def test_linear_activation_linear_chain_saves_less(ours, ref, fewer):
    x = torch.randn(128, 64, requires_grad=True)
    assert _chain_saved(ref, x) - _chain_saved(ours, x) == fewer * 128 * 32


@pytest.mark.parametrize("trained, fewer", [(True, 0), (False, 3)])  # the input as torch / a 1-byte mask
def test_prelu_in_a_chain(trained, fewer):
    x = torch.randn(128, 64, requires_grad=True)
    w = torch.full((32,), 0.25, requires_grad=trained)
    ours = _chain_saved(lambda t: F.prelu(t, w), x)
    theirs = _chain_saved(lambda t: TF.prelu(t, w), x)
    assert theirs - ours == fewer * 128 * 32


# --------------------------------------------------------------------------------------
# PReLU: what is saved follows which gradients are needed, never the weight's values
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("w", [[0.25, 0.5], [0.25, -0.5], [0.25, 0.0], [0.25, INF], [NAN, 0.1]])
@pytest.mark.parametrize(
    "x_grad, w_grad, per_elem",
    [(True, True, 4), (False, True, 4), (True, False, 1)],  # input (as torch), input, mask
)
def test_prelu_saves_by_requires_grad_only(w, x_grad, w_grad, per_elem):
    x = torch.randn(8, 2, requires_grad=x_grad)
    w = torch.tensor(w, requires_grad=w_grad)
    out, saved = saved_tensors(F.prelu, x, w)
    assert saved.beyond(out, w) == per_elem * x.numel()
    assert saved.beyond(out) - saved.beyond(out, w) == w.numel() * 4  # and the weight
    check_parity(F.prelu, TF.prelu, x, w)


def test_prelu_reads_no_weight_value_on_the_host(monkeypatch):
    # no bool(tensor) / .item() anywhere in forward or backward: a CUDA weight would sync
    def refuse(self, *a, **k):
        raise AssertionError("a tensor's value was read on the host")

    x = torch.randn(6, 3, requires_grad=True)
    for w_grad in (True, False):
        w = torch.tensor([0.2, -0.1, 0.3], requires_grad=w_grad)
        with monkeypatch.context() as m:
            for name in ("__bool__", "item", "tolist", "__float__"):
                m.setattr(torch.Tensor, name, refuse)
            out = F.prelu(x, w)
            torch.autograd.grad(out, [x, w] if w_grad else [x], torch.ones_like(out))


def test_nothing_saved_without_grad():
    x = torch.randn(8, 5)
    for case in CASES:
        _, saved = saved_tensors(case.ours, *case.args(x))
        assert saved.total == 0, case.name


# --------------------------------------------------------------------------------------
# inductor (slow) and CUDA (skipped without a device)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["prelu", "prelu_channels", "prelu_frozen", "abs_relu"])
def test_compiled_prelu_and_abs_trace_torch_ops(name):
    # under torch.compile, PReLU's and abs's twins trace torch's formulas, which inductor fuses
    # (an opaque torchff:: kernel measured slower than inductor's fused code there); the graphs
    # AOT autograd hands the compiler hold no torchff:: op, and the values match eager
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    graphs = []

    def keep(gm, _inputs):
        graphs.append(gm)
        return make_boxed_func(gm)

    x = torch.randn(6, 5, requires_grad=True)
    w = {"prelu": torch.tensor([0.25], requires_grad=True), "prelu_channels": torch.rand(5, requires_grad=True),
         "prelu_frozen": torch.rand(5)}.get(name)
    fn = F.abs_relu if w is None else (lambda z: F.prelu(z, w))
    torch._dynamo.reset()
    try:
        out = torch.compile(fn, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep), fullgraph=True)(x)
        grads = torch.autograd.grad(out, [x] if w is None or not w.requires_grad else [x, w], torch.ones_like(out))
    finally:
        torch._dynamo.reset()
    assert len(graphs) == 2  # forward and backward
    for gm in graphs:
        targets = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
        assert not {t for t in targets if t.startswith("torchff.")}, gm.code
    want = fn(x)
    torch.testing.assert_close(out, want)
    for g, e in zip(grads, torch.autograd.grad(want, [x] if len(grads) == 1 else [x, w], torch.ones_like(want))):
        torch.testing.assert_close(g, e)


@pytest.mark.slow
def test_inductor_compiles_every_activation_in_one_graph():
    from torchff.testing import check_compile

    w = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], requires_grad=True)

    def net(x, w):
        h = F.leaky_relu(x, 0.1) + F.relu(x) * F.sigmoid(x) + F.abs_relu(x) * 0.1
        h = F.prelu(h, w) + F.softplus(x, 2.0, 40.0) + F.binary_step(x, ste=True)
        return F.leaky_relu(h, -0.5).sum(1)

    x = torch.randn(32, 5, dtype=torch.float32, requires_grad=True)
    check_compile(net, x, w, backend="inductor")


@pytest.mark.cuda
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cuda_parity(case):
    for dtype in (torch.float32, torch.float64, torch.float16):
        x = (torch.randn(257, 5, dtype=torch.float64) * 4).to(dtype)
        x = torch.cat([x, torch.tensor(SPECIALS[1:], dtype=dtype).repeat_interleave(5).reshape(-1, 5)])
        x = x.cuda().requires_grad_()
        for v in case.differs_at:
            x = torch.where(x == v, x * 1.5, x).detach().requires_grad_()
        args = case.args(x)
        check_parity(case.ours, case.ref, *args)


# --------------------------------------------------------------------------------------
# the private Functions that return their 1-byte mask or sign as a second output
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2840, 3 * (1 << 16) + 5])  # one C call / chunks over threads
def test_mask_and_sign_outputs(n):
    from torchff.autograd.rectifier import _AbsSignFunction, _LeakyReLUMaskFunction

    x = torch.randn(n) * 3
    x[:6] = torch.tensor([0.0, -0.0, NAN, INF, -INF, 1e-40])
    x.requires_grad_()
    out, mask = _LeakyReLUMaskFunction.apply(x, -0.5)
    assert mask.dtype == torch.bool and not mask.requires_grad
    assert torch.equal(mask, x.detach() > 0)
    assert nan_safe_equal(out, TF.leaky_relu(x.detach(), -0.5))
    value, sign = _AbsSignFunction.apply(x)
    assert sign.dtype == torch.int8 and not sign.requires_grad
    assert torch.equal(sign, torch.sign(x.detach()).to(torch.int8))  # 0 at ±0 and at nan
    assert nan_safe_equal(value, torch.abs(x.detach()))
    g = torch.randn_like(x)
    (gl,) = torch.autograd.grad(out, x, g)  # the mask output is unused: no gradient made for it
    (ga,) = torch.autograd.grad(value, x, g)
    with torch.no_grad():
        assert nan_safe_equal(gl, torch.where(x > 0, g, -0.5 * g))
        assert nan_safe_equal(ga, g * torch.sign(x))


def test_internal_functions_are_private():
    import torchff.autograd as A

    for name in ("LeakyReLUMaskFunction", "LeakyReLUFunction", "AbsSignFunction", "AbsInputFunction",
                 "PReLUFunction", "PReLUSaves", "BinaryStepFunction", "save_mode", "get_save_mode",
                 "set_save_mode"):
        assert not hasattr(A, name) and name not in A.__all__, name


def test_forward_signatures_are_cached_exactly():
    # torchff.autograd caches each Function's forward signature (Function.apply recomputes it
    # on every call otherwise); the cache must be what inspect computes
    import inspect

    todo, found = list(torch.autograd.Function.__subclasses__()), 0
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if not cls.__module__.startswith("torchff."):
            continue
        f = cls.forward
        cached = f.__signature__
        del f.__signature__
        try:
            assert inspect.signature(f) == cached, cls
        finally:
            f.__signature__ = cached
        found += 1
    assert found >= 20
    from torchff.autograd.rectifier import _PReLUFunction
    from torchff.autograd.step import _BinaryStepFunction

    for cls in (_BinaryStepFunction, _PReLUFunction):  # private ones too
        assert "__signature__" in vars(cls.forward), cls


def test_cached_signatures_bind_as_inspect_does():
    # the cached signature's fast bind (full positional calls) gives what inspect's bind gives,
    # and every other call (defaults left out, keywords) still goes through inspect
    import inspect

    from torch.autograd.function import _bind_default_args

    from torchff.autograd._loss import MEAN  # noqa: F401  (a module of Functions, imported)
    from torchff.autograd.linear_cross_entropy import _LinearCrossEntropyFunction

    f = _LinearCrossEntropyFunction.forward
    plain = inspect.Signature(list(f.__signature__.parameters.values()))
    n = len(plain.parameters)
    full = tuple(range(n))
    assert _bind_default_args(f, full, None) == (full, {})
    assert plain.bind(*full).args == full
    short = full[:-1]  # forward_ad left to its default
    assert _bind_default_args(f, short, None) == (short + (False,), {})
    kw = full[:-2]
    assert _bind_default_args(f, kw, {"need_bias_grad": 1}) == (kw + (1, False), {})
    with pytest.raises(TypeError):
        _bind_default_args(f, full + (0,), None)  # too many: inspect's error


# --------------------------------------------------------------------------------------
# batched gradients and forward mode, on every Function (gradcheck's own checks, transforms)
# --------------------------------------------------------------------------------------
GRAD_CASES = [c for c in CASES if c.gradcheck and c.name.split("(")[0] not in ("sigmoid", "softplus")]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.name for c in GRAD_CASES])
def test_gradcheck_batched_and_forward_ad(case):
    x = away_from_kinks((4, 5), case).requires_grad_()
    args = case.args(x)
    assert torch.autograd.gradcheck(case.ours, args, check_batched_grad=True, check_forward_ad=True,
                                    check_undefined_grad=True)
    assert torch.autograd.gradgradcheck(case.ours, args, check_batched_grad=True, check_fwd_over_rev=True)


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.name for c in GRAD_CASES])
def test_jacfwd_hessian_and_batched_grads(case):
    x = away_from_kinks((3, 5), case)
    rest = case.args(x.clone().requires_grad_())[1:]  # the weight, if any (trained or frozen)
    rest = [r.detach() for r in rest]

    def f(t, *r):
        return case.ours(t, *r)

    def g(t, *r):
        return case.ref(t, *r)

    argnums = tuple(range(1 + len(rest))) if rest and case.weight_grad else 0
    for transform in (torch.func.jacfwd, torch.func.jacrev):
        got, want = transform(f, argnums=argnums)(x, *rest), transform(g, argnums=argnums)(x, *rest)
        for a, b in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
            torch.testing.assert_close(a, b)
    h = torch.func.hessian(lambda t: f(t, *rest).sum())(x)
    torch.testing.assert_close(h, torch.func.hessian(lambda t: g(t, *rest).sum())(x))
    # the plain autograd API's batched paths
    xr = x.clone().requires_grad_()
    out = f(xr, *rest)
    (gb,) = torch.autograd.grad(out, xr, torch.eye(out.numel(), dtype=x.dtype).reshape(-1, *out.shape),
                                is_grads_batched=True)
    jac = torch.autograd.functional.jacobian(lambda t: f(t, *rest), x, vectorize=True)
    torch.testing.assert_close(gb.reshape(jac.shape), jac)
    torch.testing.assert_close(jac, torch.autograd.functional.jacobian(lambda t: g(t, *rest), x))
    # forward mode through torch.autograd.forward_ad
    import torch.autograd.forward_ad as fwAD

    tangent = torch.randn_like(x)
    with fwAD.dual_level():
        got = fwAD.unpack_dual(f(fwAD.make_dual(x, tangent), *rest)).tangent
        want = fwAD.unpack_dual(g(fwAD.make_dual(x, tangent), *rest)).tangent
    torch.testing.assert_close(got, want)


def test_prelu_forward_mode_at_zero_follows_torch():
    # torch's forward-mode prelu takes the identity at z = +-0 (its backward takes the slope)
    x = torch.tensor([0.0, -0.0, 1.0, -1.0, NAN, INF, -INF], dtype=torch.float64)
    t = torch.linspace(-1.0, 1.0, x.numel(), dtype=torch.float64)
    for w in (torch.tensor(0.3, dtype=torch.float64), torch.tensor([-0.5], dtype=torch.float64)):
        got = torch.func.jvp(lambda v: F.prelu(v, w), (x,), (t,))[1]
        want = torch.func.jvp(lambda v: TF.prelu(v, w), (x,), (t,))[1]
        torch.testing.assert_close(got, want, equal_nan=True)


def test_prelu_forward_mode_through_the_weight():
    import torch.autograd.forward_ad as fwAD

    x = torch.randn(4, 3, dtype=torch.float64)
    for w in (torch.randn(3, dtype=torch.float64), torch.randn(1, dtype=torch.float64)):
        jf = torch.func.jacfwd(F.prelu, argnums=(0, 1))(x, w)
        jr = torch.func.jacrev(TF.prelu, argnums=(0, 1))(x, w)
        for a, b in zip(jf, jr):
            torch.testing.assert_close(a, b)
        tw = torch.randn_like(w)
        with fwAD.dual_level():  # a dual weight that does not require grad: the input is kept
            got = fwAD.unpack_dual(F.prelu(x.requires_grad_(), fwAD.make_dual(w, tw))).tangent
        torch.testing.assert_close(got, torch.func.jvp(lambda v: TF.prelu(x.detach(), v), (w,), (tw,))[1])
        x = x.detach()


def test_binary_step_ste_forward_mode_matches_its_backward():
    x = torch.tensor([-1.5, -1.0, -0.3, -0.0, 0.0, 0.7, 1.0, 2.0], dtype=torch.float64)
    ste = lambda t: F.binary_step(t, ste=True)  # noqa: E731
    torch.testing.assert_close(torch.func.jacfwd(ste)(x), torch.func.jacrev(ste)(x))
    torch.testing.assert_close(torch.func.jacrev(ste)(x), torch.diag((x.abs() <= 1).double()))


# --------------------------------------------------------------------------------------
# issue 15: a nan slope; dtypes torch rejects
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("slope", [NAN, INF, -INF])
def test_non_finite_slope_gradients_as_torch(slope):
    import torchff

    x = torch.tensor([-2.0, -0.0, 0.0, 1.5, NAN, INF, -INF])
    for ours in (lambda t: F.leaky_relu(t, slope), lambda t: F.generalized_relu(t, slope),
                 torchff.nn.LeakyReLU(slope)):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), TF.leaky_relu(xb, slope)
        assert nan_safe_equal(ya, yb)
        g = torch.linspace(-1, 1, x.numel())
        (ga,) = torch.autograd.grad(ya, xa, g)
        (gb,) = torch.autograd.grad(yb, xb, g)
        assert nan_safe_equal(ga, gb)  # nan (or inf) where x <= 0 or nan, as torch


def test_nan_slope_in_place_raises_as_torch():
    for fn in (TF.leaky_relu_, F.leaky_relu_):
        y = fn(torch.randn(4, requires_grad=True) * 1.0, NAN)
        with pytest.raises(RuntimeError, match="negative slope which is not supported"):
            y.sum().backward()


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64], ids=str)
@pytest.mark.parametrize(
    "ours, theirs",
    [
        (F.relu, torch.relu),
        (F.relu_, torch.relu_),
        (F.leaky_relu, TF.leaky_relu),
        (lambda t: F.leaky_relu(t, -0.5), lambda t: TF.leaky_relu(t, -0.5)),
        (F.leaky_relu_, TF.leaky_relu_),
        (F.abs_relu, torch.abs),
        (lambda t: F.prelu(t, torch.tensor([0.25])), lambda t: TF.prelu(t, torch.tensor([0.25]))),
        (lambda t: F.prelu(t, torch.ones(1, dtype=t.dtype)), lambda t: TF.prelu(t, torch.ones(1, dtype=t.dtype))),
    ],
    ids=["relu", "relu_", "leaky", "leaky(-0.5)", "leaky_", "abs", "prelu(float w)", "prelu(same dtype)"],
)
def test_non_float_dtypes_as_torch(ours, theirs, dtype):
    x = torch.tensor([1, -2, 0, 3]).to(dtype)
    try:
        want = theirs(x.clone())
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        with pytest.raises(type(e)):
            ours(x.clone())
        return
    got = ours(x.clone())
    assert got.dtype == want.dtype and torch.equal(got, want)


def test_prelu_mixed_dtypes_rejected_as_torch():
    x, w = torch.randn(3, 2), torch.rand(2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="Type promoting not supported"):
        TF.prelu(x, w)
    with pytest.raises(RuntimeError, match="Type promoting not supported"):
        F.prelu(x, w)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64], ids=str)
def test_binary_step_rejects_non_float(dtype):
    with pytest.raises(TypeError, match="floating point"):
        F.binary_step(torch.zeros(3, dtype=dtype))


# --------------------------------------------------------------------------------------
# the ops: opcheck (schema, fake, autograd registration, vmap, aot dispatch), export
# --------------------------------------------------------------------------------------
def _op_samples():
    from torchff.kernels import rectifier as K

    x = torch.randn(6, 5) * 3
    x[0, :3] = torch.tensor([0.0, -0.0, -INF])  # (opcheck compares outputs without equal_nan)
    xt = torch.randn(5, 6).t()  # strided
    g = torch.randn(6, 5)
    return [
        (K.leaky_mask, (x, -0.5)), (K.leaky_mask, (xt, 0.01)),
        (K.leaky_backward, (g, x > 0, -0.5)),
        (K.abs_sign, (x,)), (K.abs_sign, (xt.double(),)),
        (K.times_small, (g, torch.sign(x).to(torch.int8))), (K.times_small, (g, x > 0)),
        (K.step, (x, True)), (K.step, (x, False)), (K.step, (xt.half(), True)),
        (K.prelu, (x, torch.randn(5), True)), (K.prelu, (x, torch.randn(1), False)),
        (K.prelu, (torch.randn(2, 5, 3), torch.randn(5), True)), (K.prelu, (torch.tensor(1.5), torch.tensor(0.2), False)),
        (K.prelu_backward, (g, x, torch.randn(5), True, True)),
        (K.prelu_backward, (g, x, torch.randn(()), False, True)),
        (K.prelu_backward, (g, x > 0, torch.randn(5), True, False)),
        (K.prelu_backward, (torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.randn(5), True, True)),
    ]


@pytest.mark.parametrize("k", range(len(_op_samples())))
def test_opcheck(k):
    op, args = _op_samples()[k]
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("case", [c for c in CASES if c.name.split("(")[0] not in ("sigmoid", "softplus")],
                         ids=lambda c: c.name)
def test_export(case):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if case.weight is not None:
                self.w = torch.nn.Parameter(case.weight.clone(), requires_grad=case.weight_grad)

        def forward(self, x):
            return case.ours(x, self.w) if case.weight is not None else case.ours(x)

    m, x = M(), torch.randn(4, 5)
    ep = torch.export.export(m, (x,))
    torch.testing.assert_close(ep.module()(x), m(x), equal_nan=True)
