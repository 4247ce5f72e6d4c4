"""The harness can fail: each check catches the defect it exists for.

Every test builds a deliberately broken Function (or claim) and asserts that
:mod:`torchff.testing` raises ``AssertionError`` naming the defect, next to the correct
version passing the same check.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from torchff.testing import (
    DOUBLE_BACKWARD_UNSUPPORTED,
    OPTIONAL_CHECKS,
    check,
    check_batched_forward_grad,
    check_batched_grad,
    check_compile,
    check_forward_ad,
    check_gradcheck,
    check_gradgradcheck,
    check_parity,
    check_saved_bytes,
    check_vmap,
    saved_tensors,
)


def _x(*shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    return (x + 0.2 * x.sign()).requires_grad_()  # away from ReLU's kink


class GoodReLU(Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x.clamp_min(0)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (out > 0)


class WrongBackward(GoodReLU):
    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return 2 * g * (out > 0)


class SavesInputToo(GoodReLU):
    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output, inputs[0] * 1)  # a copy the derivative does not need

    @staticmethod
    def backward(ctx, g):
        out, _ = ctx.saved_tensors
        return g * (out > 0)


class NoVmapRule(GoodReLU):
    generate_vmap_rule = False


class WrongUnderTransforms(GoodReLU):
    """Right in plain autograd, wrong for torch.func's wrapped gradients (as a fused path could be)."""

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        scale = 3.0 if torch._C._functorch.is_functorch_wrapped_tensor(g) else 1.0
        return scale * g * (out > 0)


class WrongUnderJacrev(GoodReLU):
    """Wrong only for jacrev's wrapped gradients (its backward runs with grad mode on)."""

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor(g) and torch.is_grad_enabled()
        return (3.0 if wrapped else 1.0) * g * (out > 0)


class GraphBreak(GoodReLU):
    @staticmethod
    def forward(x):
        torch._dynamo.graph_break()
        return x.clamp_min(0)


class Sigmoid(Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


class DetachedDoubleBackward(Sigmoid):
    """First derivative right, second wrong: the saved output is detached in backward."""

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        y = y.detach()
        return g * y * (1 - y)


class OnceDifferentiable(Sigmoid):
    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


class ReLUWithJvp(GoodReLU):
    """GoodReLU with forward mode."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def jvp(ctx, t):
        (out,) = ctx.saved_tensors
        return t * (out > 0)


def _compilable(with_jvp):
    """Apply ``with_jvp``, or under torch.compile its parent class without the ``jvp`` (Dynamo graph-breaks
    on a Function that defines one), as torchff's Functions do."""

    without_jvp = with_jvp.__mro__[1]

    def apply(*args):
        return (without_jvp if torch.compiler.is_compiling() else with_jvp).apply(*args)

    return apply


relu_with_jvp = _compilable(ReLUWithJvp)


def test_check_passes_a_correct_function():
    report = check(relu_with_jvp, _x(4, 3), reference=torch.relu, saved_bytes=4 * 3 * 8, saved_bytes_beyond_outputs=0)
    assert report.checks == [
        "gradcheck",
        "batched-grad",
        "forward-ad",
        "batched-forward-grad",
        "gradgradcheck",
        "gradgrad-batched",
        "fwd-over-rev",
        "parity",
        "vmap+jacrev",
        "compile[aot_eager]",
        "saved-bytes",
    ]
    assert report.skipped == {}
    assert report.saved_bytes == report.reference_saved_bytes == 96


def test_catches_a_wrong_backward():
    with pytest.raises(AssertionError, match="gradcheck"):
        check_gradcheck(WrongBackward.apply, _x(4, 3))
    # without gradcheck, the parity with the reference catches it too
    with pytest.raises(AssertionError, match="gradient of input 0"):
        check(WrongBackward.apply, _x(4, 3), reference=torch.relu, gradcheck=False, gradgrad=None,
              unsupported={"forward_ad": "the test Function has no jvp"})


def test_catches_a_wrong_double_backward():
    check_gradgradcheck(Sigmoid.apply, _x(5))
    check_gradcheck(DetachedDoubleBackward.apply, _x(5))  # the first derivative is right ...
    with pytest.raises(AssertionError, match="gradgradcheck"):
        check_gradgradcheck(DetachedDoubleBackward.apply, _x(5))  # ... the second is not


def test_double_backward_declared_unsupported():
    check_gradgradcheck(OnceDifferentiable.apply, _x(5), supported=False)  # raises, as declared
    with pytest.raises(AssertionError, match="declared unsupported but ran"):
        check_gradgradcheck(Sigmoid.apply, _x(5), supported=False)

    class Disconnected(Sigmoid):
        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return (g * y * (1 - y)).detach()  # second derivatives silently vanish

    with pytest.raises(AssertionError, match="silently disconnected"):
        check_gradgradcheck(Disconnected.apply, _x(5), supported=False)
    with pytest.raises(AssertionError, match="gradgradcheck"):
        check_gradgradcheck(Disconnected.apply, _x(5))


class BrokenDoubleBackward(Sigmoid):
    """First derivative right; its second pass hits an unrelated bug (a shape error), not "unsupported"."""

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return _ShapeBugInBackward.apply(g, y)


class _ShapeBugInBackward(Function):
    @staticmethod
    def forward(g, y):
        return g * y * (1 - y)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, gg):
        return gg @ torch.ones(gg.shape[-1] + 1, dtype=gg.dtype), None  # mismatched matmul: a RuntimeError


def test_double_backward_unsupported_rejects_an_unrelated_error():
    # the second backward raises a RuntimeError, but not the one an unsupported double backward raises
    with pytest.raises(RuntimeError) as err:
        x = _x(5)
        out = BrokenDoubleBackward.apply(x)
        (gx,) = torch.autograd.grad(out, x, torch.randn_like(out).requires_grad_(), create_graph=True)
        gx.sum().backward()
    assert not DOUBLE_BACKWARD_UNSUPPORTED.search(str(err.value))  # a shape error
    with pytest.raises(AssertionError, match="declared unsupported but failed with an unrelated error"):
        check_gradgradcheck(BrokenDoubleBackward.apply, _x(5), supported=False)
    check_gradgradcheck(OnceDifferentiable.apply, _x(5), supported=False)  # the real thing still passes


def test_catches_wrong_values_and_dtypes():
    with pytest.raises(AssertionError, match="output 0"):
        check_parity(lambda t: torch.relu(t) + 1e-3, torch.relu, _x(4))
    with pytest.raises(AssertionError, match="dtype"):
        check_parity(lambda t: torch.relu(t).float(), torch.relu, _x(4))
    with pytest.raises(AssertionError, match="shape"):
        check_parity(lambda t: torch.relu(t)[:2], lambda t: torch.relu(t)[:3], _x(4))


def test_catches_a_wrong_saved_bytes_claim():
    x = _x(4, 3)
    check_saved_bytes(GoodReLU.apply, x, expected=96, expected_beyond_outputs=0)
    with pytest.raises(AssertionError, match="saved 96 bytes for backward, expected 12"):
        check_saved_bytes(GoodReLU.apply, x, expected=12)  # e.g. a claimed 1-byte mask
    # the extra copy shows beyond the output, and in check()
    with pytest.raises(AssertionError, match="saved beyond the outputs 96 bytes"):
        check_saved_bytes(SavesInputToo.apply, x, expected_beyond_outputs=0)
    with pytest.raises(AssertionError, match="saved 192 bytes"):
        check(SavesInputToo.apply, x, vmap=False, compile=False, saved_bytes=96,
              unsupported={"forward_ad": "the test Function has no jvp"})


def test_saved_tensors_deduplicates_by_storage():
    class TwoViews(GoodReLU):
        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output, output[1:], output.t())

        @staticmethod
        def backward(ctx, g):
            out = ctx.saved_tensors[0]
            return g * (out > 0)

    x = _x(4, 4)
    out, saved = saved_tensors(TwoViews.apply, x)
    assert len(saved.entries) == 1 and saved.total == 16 * 8 and saved.beyond(out) == 0


def test_catches_a_missing_vmap_rule_and_a_wrong_transform():
    check_vmap(GoodReLU.apply, _x(4))
    with pytest.raises(AssertionError, match="vmap failed"):
        check_vmap(NoVmapRule.apply, _x(4))
    with pytest.raises(AssertionError, match="gradient through vmap"):
        check_vmap(WrongUnderTransforms.apply, _x(4))
    with pytest.raises(AssertionError, match="jacrev"):
        check_vmap(WrongUnderJacrev.apply, _x(4))
    check_gradcheck(WrongUnderTransforms.apply, _x(4))  # plain autograd alone would not notice


def test_catches_a_graph_break():
    check_compile(GoodReLU.apply, _x(4))
    with pytest.raises(AssertionError, match="torch.compile"):
        check_compile(GraphBreak.apply, _x(4))
    with pytest.raises(AssertionError, match="torch.compile"):
        check(GraphBreak.apply, _x(4), reference=torch.relu, vmap=False,
              unsupported={"forward_ad": "the test Function has no jvp"})


def test_catches_a_compiled_difference():
    def differs_when_compiled(t):
        return torch.relu(t) + (1.0 if torch.compiler.is_compiling() else 0.0)

    with pytest.raises(AssertionError, match="compiled"):
        check_compile(differs_when_compiled, _x(4))


# --------------------------------------------------------------------------------------
# batched gradients: a backward that breaks, or is wrong, under vmap
# --------------------------------------------------------------------------------------
class OutParamBackward(ReLUWithJvp):
    """Writes the gradient into a fresh buffer with ``out=`` when grad mode is off (a fast path, as
    torchff's backward took): right for one cotangent, but under vmap the buffer is not batched."""

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return g * (out > 0)
        buf = torch.empty(out.shape, dtype=out.dtype)
        return torch.mul(g, out > 0, out=buf)


def test_batched_grad_catches_a_backward_that_breaks_under_vmap():
    check_gradcheck(OutParamBackward.apply, _x(4, 3))  # one cotangent at a time: right
    check_batched_grad(ReLUWithJvp.apply, _x(4, 3))
    for way, match in [
        ("gradcheck", "batched gradients"),
        ("is_grads_batched", r"is_grads_batched=True\) failed"),
        ("jacobian", r"jacobian\(vectorize=True\) failed"),
    ]:
        check_batched_grad(ReLUWithJvp.apply, _x(4, 3), ways=[way])
        with pytest.raises(AssertionError, match=match):
            check_batched_grad(OutParamBackward.apply, _x(4, 3), ways=[way])
    with pytest.raises(AssertionError, match="batched gradients"):
        check(OutParamBackward.apply, _x(4, 3), reference=torch.relu, compile=False)


class _MulOutParamBackward(Function):
    """``g * m`` whose own backward writes with ``out=`` (breaks under vmap)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(g, m):
        return g * m

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, gg):
        g, m = ctx.saved_tensors
        return torch.mul(gg, m, out=torch.empty(m.shape, dtype=m.dtype)), gg * g


class SecondBackwardBreaksUnderVmap(Sigmoid):
    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return _MulOutParamBackward.apply(g, y * (1 - y))


def test_batched_second_derivatives_are_checked():
    x = _x(5)
    check_gradgradcheck(SecondBackwardBreaksUnderVmap.apply, x)  # unbatched: right
    with pytest.raises(AssertionError, match=r"batched second derivatives \(check_batched_grad=True\)"):
        check(SecondBackwardBreaksUnderVmap.apply, x, vmap=False, compile=False,
              unsupported={"forward_ad": "the test Function has no jvp"})


# --------------------------------------------------------------------------------------
# forward mode: a missing, wrong, or vmap-breaking jvp
# --------------------------------------------------------------------------------------
class WrongJvp(ReLUWithJvp):
    @staticmethod
    def jvp(ctx, t):
        (out,) = ctx.saved_tensors
        return 2 * t * (out > 0)


class JvpWrongUnderFunctorch(ReLUWithJvp):
    """Right for torch.autograd.forward_ad's dual tensors, wrong for torch.func's wrapped tangents."""

    @staticmethod
    def jvp(ctx, t):
        (out,) = ctx.saved_tensors
        scale = 3.0 if torch._C._functorch.is_functorch_wrapped_tensor(t) else 1.0
        return scale * t * (out > 0)


class JvpBreaksUnderVmap(ReLUWithJvp):
    """Writes the tangent into an unbatched buffer: right one tangent at a time, breaks under vmap."""

    @staticmethod
    def jvp(ctx, t):
        (out,) = ctx.saved_tensors
        return torch.mul(t, out > 0, out=torch.empty(out.shape, dtype=out.dtype))


def test_forward_ad_catches_a_missing_jvp():
    check_forward_ad(ReLUWithJvp.apply, _x(4, 3))
    check_batched_forward_grad(ReLUWithJvp.apply, _x(4, 3))
    with pytest.raises(AssertionError, match=r"forward mode \(check_forward_ad=True\) failed: NotImplementedError"):
        check_forward_ad(GoodReLU.apply, _x(4, 3), ways=["gradcheck"])
    with pytest.raises(AssertionError, match="torch.func.jvp failed: NotImplementedError"):
        check_forward_ad(GoodReLU.apply, _x(4, 3), ways=["jvp"])
    with pytest.raises(AssertionError, match="torch.func.jacfwd failed: NotImplementedError"):
        check_batched_forward_grad(GoodReLU.apply, _x(4, 3), ways=["jacfwd"])
    # and check() runs them by default
    with pytest.raises(AssertionError, match="forward mode"):
        check(GoodReLU.apply, _x(4, 3), reference=torch.relu)


def test_forward_ad_catches_a_wrong_jvp():
    check_gradcheck(WrongJvp.apply, _x(4, 3))  # reverse mode is right
    with pytest.raises(AssertionError, match=r"forward mode \(check_forward_ad=True\)"):
        check_forward_ad(WrongJvp.apply, _x(4, 3), ways=["gradcheck"])
    with pytest.raises(AssertionError, match="torch.func.jvp tangent of output 0"):
        check_forward_ad(WrongJvp.apply, _x(4, 3), ways=["jvp"])
    with pytest.raises(AssertionError, match="batched forward mode"):
        check_batched_forward_grad(WrongJvp.apply, _x(4, 3), ways=["gradcheck"])
    with pytest.raises(AssertionError, match="jacfwd of output 0 w.r.t. argument 0"):
        check_batched_forward_grad(WrongJvp.apply, _x(4, 3), ways=["jacfwd"])


def test_forward_ad_catches_a_jvp_wrong_under_torch_func():
    check_forward_ad(JvpWrongUnderFunctorch.apply, _x(4, 3), ways=["gradcheck"])  # dual numbers: right
    with pytest.raises(AssertionError, match="torch.func.jvp tangent of output 0"):
        check_forward_ad(JvpWrongUnderFunctorch.apply, _x(4, 3), ways=["jvp"])
    with pytest.raises(AssertionError, match="jacfwd of output 0"):
        check_batched_forward_grad(JvpWrongUnderFunctorch.apply, _x(4, 3), ways=["jacfwd"])


def test_batched_forward_grad_catches_a_jvp_that_breaks_under_vmap():
    check_forward_ad(JvpBreaksUnderVmap.apply, _x(4, 3))  # one tangent at a time: right
    with pytest.raises(AssertionError, match=r"batched forward mode \(check_batched_forward_grad=True\)"):
        check_batched_forward_grad(JvpBreaksUnderVmap.apply, _x(4, 3), ways=["gradcheck"])
    with pytest.raises(AssertionError, match="torch.func.jacfwd failed"):
        check_batched_forward_grad(JvpBreaksUnderVmap.apply, _x(4, 3), ways=["jacfwd"])


class _MulNoJvp(Function):
    """``g * m`` with a backward but no jvp: reverse-over-reverse works, forward-over-reverse does not."""

    generate_vmap_rule = True

    @staticmethod
    def forward(g, m):
        return g * m

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, gg):
        g, m = ctx.saved_tensors
        return gg * m, gg * g


class SigmoidWithJvp(Sigmoid):
    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def jvp(ctx, t):
        (y,) = ctx.saved_tensors
        return t * y * (1 - y)


class BackwardWithoutForwardMode(SigmoidWithJvp):
    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return _MulNoJvp.apply(g, y * (1 - y))


def test_forward_over_reverse_is_checked():
    x = _x(5)
    check(SigmoidWithJvp.apply, x, reference=torch.sigmoid, compile=False)
    check_gradgradcheck(BackwardWithoutForwardMode.apply, x)  # reverse over reverse: right
    check_forward_ad(BackwardWithoutForwardMode.apply, x)  # its own jvp: right
    with pytest.raises(AssertionError, match=r"forward-over-reverse \(check_fwd_over_rev=True\)"):
        check(BackwardWithoutForwardMode.apply, x, reference=torch.sigmoid, compile=False)
    # what the check stands for: torch.func.hessian (forward over reverse) fails on it too
    # (functorch's own internal assertion, as it runs the missing jvp under vmap)
    with pytest.raises((NotImplementedError, AssertionError)):
        torch.func.hessian(lambda t: BackwardWithoutForwardMode.apply(t).sum())(x.detach())


# --------------------------------------------------------------------------------------
# opting out: only by name, only with a reason
# --------------------------------------------------------------------------------------
def test_opting_out_needs_a_named_check_and_a_reason():
    x = _x(4, 3)
    reason = "the test Function has no jvp"
    report = check(GoodReLU.apply, x, reference=torch.relu, unsupported={"forward_ad": reason})
    assert "forward-ad" not in report.checks and "batched-forward-grad" not in report.checks
    assert "fwd-over-rev" not in report.checks and "batched-grad" in report.checks
    assert report.skipped["forward_ad"] == reason
    assert set(report.skipped) == {"forward_ad", "batched_forward_grad", "fwd_over_rev"}
    assert reason in report.skipped["fwd_over_rev"]
    with pytest.raises(ValueError, match="reason"):
        check(GoodReLU.apply, x, unsupported={"forward_ad": ""})
    with pytest.raises(ValueError, match="reason"):
        check(GoodReLU.apply, x, unsupported={"forward_ad": True})
    with pytest.raises(ValueError, match="unknown check 'jvp'"):
        check(GoodReLU.apply, x, unsupported={"jvp": "typo"})
    assert set(OPTIONAL_CHECKS) == {"batched_grad", "forward_ad", "batched_forward_grad", "fwd_over_rev"}
    # declaring batched gradients unsupported lets the vmap-breaking backward through, and says so
    report = check(OutParamBackward.apply, x, compile=False, vmap=False,
                   unsupported={"batched_grad": "writes with out= (a test)"})
    assert "batched-grad" not in report.checks and "gradgrad-batched" not in report.checks
