"""The save mode (torchff.autograd.mode): memory (the least saved) or speed (what torch saves)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF

import torchff
import torchff.functional as F
from torchff.autograd import (
    AbsInputFunction,
    AbsSignFunction,
    LeakyReLUFunction,
    LeakyReLUMaskFunction,
    get_save_mode,
    save_mode,
    set_save_mode,
)
from torchff.testing import check_parity, saved_tensors


def test_default_is_memory_and_context_restores_even_on_error():
    assert get_save_mode() == "memory"
    with pytest.raises(RuntimeError, match="boom"):
        with save_mode("speed"):
            assert get_save_mode() == "speed"
            raise RuntimeError("boom")
    assert get_save_mode() == "memory"


def test_unknown_mode_is_rejected_and_changes_nothing():
    with pytest.raises(ValueError, match="'memory', 'speed'"):
        set_save_mode("fast")
    assert get_save_mode() == "memory"


def test_set_save_mode_is_process_wide_until_reset():
    try:
        set_save_mode("speed")
        assert torchff.autograd.get_save_mode() == "speed"
    finally:
        set_save_mode("memory")


@pytest.mark.parametrize(
    "ours, ref, mode, function, per_elem",
    [
        (lambda t: F.leaky_relu(t, -0.5), lambda t: TF.leaky_relu(t, -0.5), "memory", LeakyReLUMaskFunction, 1),
        (lambda t: F.leaky_relu(t, -0.5), lambda t: TF.leaky_relu(t, -0.5), "speed", LeakyReLUFunction, 4),
        (F.abs_relu, torch.abs, "memory", AbsSignFunction, 1),
        (F.abs_relu, torch.abs, "speed", AbsInputFunction, 4),
    ],
)
def test_each_mode_saves_its_tensor_with_torchs_values_and_gradients(ours, ref, mode, function, per_elem):
    x = torch.randn(64, 32, requires_grad=True)
    x.data[0, :4] = torch.tensor([0.0, -0.0, float("nan"), float("inf")])  # the kinks and specials
    with save_mode(mode):
        out, saved = saved_tensors(ours, x)
        check_parity(ours, ref, x)
    assert type(out.grad_fn).__name__ == function.__name__ + "Backward"
    assert saved.beyond(out) == per_elem * x.numel()


def test_mode_is_read_at_forward_time_not_at_backward():
    x = torch.randn(16, 8, requires_grad=True)
    with save_mode("speed"):
        y = F.leaky_relu(x, -0.5)
    (g,) = torch.autograd.grad(y.sum(), x)  # backward outside the block: still what was saved
    assert torch.equal(g, torch.where(x > 0, 1.0, -0.5))


@pytest.mark.parametrize("slope", [0.01, 0.0])
def test_non_negative_slopes_follow_the_mode_too(slope):
    x = torch.randn(16, 8, requires_grad=True)
    for mode, per_elem in (("memory", 1), ("speed", 4)):  # a mask, or the input as torch; never the output
        with save_mode(mode):
            out, saved = saved_tensors(F.leaky_relu, x, slope)
        assert saved.beyond(out) == per_elem * x.numel(), mode


def test_modules_and_generalized_relu_follow_the_mode():
    x = torch.randn(16, 8, requires_grad=True)
    for fn in (torchff.nn.LeakyReLU(-0.5), torchff.nn.GeneralizedReLU(alpha=-0.5), lambda t: F.generalized_relu(t, -0.5)):
        for mode, per_elem in (("memory", 1), ("speed", 4)):
            with save_mode(mode):
                out, saved = saved_tensors(fn, x)
            assert saved.beyond(out) == per_elem * x.numel(), (fn, mode)


def test_compiled_function_recompiles_when_the_mode_changes():
    torch._dynamo.reset()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    fn = torch.compile(lambda t: F.leaky_relu(t, -0.5), backend=backend, fullgraph=True)
    x = torch.randn(16, 8, requires_grad=True)
    expected = torch.where(x > 0, 1.0, -0.5)
    for mode in ("memory", "speed", "memory"):
        with save_mode(mode):
            (g,) = torch.autograd.grad(fn(x).sum(), x)
        assert torch.equal(g, expected), mode
    assert len(graphs) == 2  # one graph per mode; the second "memory" call reuses the first
    memory, speed = (gm.fwd_body_0.code for gm in graphs)  # the traced Function forwards
    assert "> 0" in memory and "> 0" not in speed  # the mask is made only in memory mode
