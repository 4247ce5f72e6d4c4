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
    check,
    check_compile,
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


def test_check_passes_a_correct_function():
    report = check(GoodReLU.apply, _x(4, 3), reference=torch.relu, saved_bytes=4 * 3 * 8, saved_bytes_beyond_outputs=0)
    assert report.checks == [
        "gradcheck",
        "gradgradcheck",
        "parity",
        "vmap+jacrev",
        "compile[aot_eager]",
        "saved-bytes",
    ]
    assert report.saved_bytes == report.reference_saved_bytes == 96


def test_catches_a_wrong_backward():
    with pytest.raises(AssertionError, match="gradcheck"):
        check_gradcheck(WrongBackward.apply, _x(4, 3))
    # without gradcheck, the parity with the reference catches it too
    with pytest.raises(AssertionError, match="gradient of input 0"):
        check(WrongBackward.apply, _x(4, 3), reference=torch.relu, gradcheck=False, gradgrad=None)


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
        check(SavesInputToo.apply, x, vmap=False, compile=False, saved_bytes=96)


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
        check(GraphBreak.apply, _x(4), reference=torch.relu, vmap=False)


def test_catches_a_compiled_difference():
    def differs_when_compiled(t):
        return torch.relu(t) + (1.0 if torch.compiler.is_compiling() else 0.0)

    with pytest.raises(AssertionError, match="compiled"):
        check_compile(differs_when_compiled, _x(4))
