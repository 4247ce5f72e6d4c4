"""Mixed precision: torchff's modules under ``torch.autocast`` follow torch's dtype rules.

Each drop-in is compared with its torch module inside an autocast region, fed either by a
``Linear`` (so it sees the low-precision output of a matmul, as in a network) or directly by a
float32 tensor: same output dtype (activations keep their input's dtype unless torch's autocast
lists say otherwise, the losses run in float32 as torch's do), close values, and gradients of
the same dtypes and values. CPU bfloat16 here; CUDA float16 and bfloat16 where a GPU is present.
Then Lightning's ``precision="bf16-mixed"`` trains a converted MLP on CPU.
"""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import torchff
from module_cases import C, DROP_IN_CASES, TORCHFF_CASES, first_input, has_drop_in, torchff_has
from torchff.testing import default_tolerances

_FEEDS = ["linear", "float32"]


pytestmark = pytest.mark.usefixtures("one_thread")



def _run(module, lin, x, extra, device, dtype):
    """Forward under autocast, backward outside it (as ``GradScaler`` / Lightning do)."""
    x = x.detach().requires_grad_(True)
    with torch.autocast(device, dtype=dtype):
        z = lin(x) if lin is not None else x * 1
        out = module(z, *extra)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(5)).to(device=device, dtype=out.dtype)
    leaves = [x, *(lin.parameters() if lin is not None else ()), *module.parameters()]
    grads = torch.autograd.grad(out, leaves, cot)
    return z.dtype, out.detach(), grads


class _Reference(nn.Module):
    """A torchff-only module's computation in plain torch ops, on (a copy of) its parameters."""

    def __init__(self, module: nn.Module, reference):
        super().__init__()
        self.module = module
        self.fn = reference(module)

    def forward(self, *args):
        return self.fn(*args)


def _modules(key, device):
    """(torchff module, torch reference module) for a case key of either table."""
    if key in DROP_IN_CASES:
        assert has_drop_in(key), f"torchff.nn has no drop-in for torch.nn.{key.split('(')[0]}"
        case = DROP_IN_CASES[key]
        ref = case.make().to(device)
        ff = torchff.nn.convert(copy.deepcopy(ref))
        assert type(ff) is not type(ref)
        return case, ff, ref
    assert torchff_has(key), f"torchff.nn has no {key.split('(')[0]}"
    case = TORCHFF_CASES[key]
    ff = case.make().to(device)
    return case, ff, _Reference(copy.deepcopy(ff), case.reference)


def _compare(key, feed, device, dtype):
    case, ff, ref = _modules(key, device)
    lin = nn.Linear(C, C).to(device) if feed == "linear" else None
    x = first_input(device=device) * 3
    extra = case.extra(x)
    z_dtype, out, grads = _run(ff, copy.deepcopy(lin), x, extra, device, dtype)
    z_dtype_ref, out_ref, grads_ref = _run(ref, copy.deepcopy(lin), x, extra, device, dtype)
    assert z_dtype == z_dtype_ref
    assert out.dtype == out_ref.dtype, f"output dtype {out.dtype}, torch gives {out_ref.dtype}"
    rtol, atol = default_tolerances(out_ref.dtype if out_ref.dtype != torch.float32 else dtype)
    torch.testing.assert_close(out, out_ref, rtol=rtol, atol=atol * max(1.0, out_ref.abs().max().item()))
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        assert g.dtype == g_ref.dtype, f"gradient {i}: {g.dtype}, torch gives {g_ref.dtype}"
        scale = max(1.0, g_ref.abs().max().item())
        torch.testing.assert_close(g, g_ref, rtol=rtol, atol=atol * scale, msg=lambda m: f"gradient {i}: {m}")


_KEYS = list(DROP_IN_CASES) + list(TORCHFF_CASES)


@pytest.mark.parametrize("feed", _FEEDS)
@pytest.mark.parametrize("key", _KEYS)
def test_autocast_cpu_bfloat16(key, feed):
    _compare(key, feed, "cpu", torch.bfloat16)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("feed", _FEEDS)
@pytest.mark.parametrize("key", _KEYS)
def test_autocast_cuda(key, feed, dtype):
    _compare(key, feed, "cuda", dtype)


# --------------------------------------------------------------------------------------
# Lightning bf16-mixed
# --------------------------------------------------------------------------------------
class _Regressor(L.LightningModule):
    def __init__(self, net: nn.Module, loss: nn.Module):
        super().__init__()
        self.net, self.loss = net, loss
        self.losses: list[float] = []
        self.output_dtypes: set[torch.dtype] = set()

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        self.output_dtypes.add(out.dtype)
        loss = self.loss(out, y)
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _converted_sequential():
    net = nn.Sequential(
        nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.LeakyReLU(0.1),
        nn.Linear(32, 32), nn.Softplus(), nn.Linear(32, 1),
    )
    _, report = torchff.nn.convert(net, return_report=True)
    assert report.counts == {"LeakyReLU": 1, "ReLU": 1, "Softplus": 1}
    return net


def _torchff_mlp():
    return torchff.nn.MLP(8, [32, 32], 1, activation="softplus")


@pytest.mark.parametrize("make_net", [_converted_sequential, _torchff_mlp], ids=["converted", "MLP"])
def test_lightning_bf16_mixed_trains_a_torchff_mlp(make_net):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = torch.sin(x[:, :1] * 2) + x[:, 1:2] ** 2
    model = _Regressor(make_net(), torchff.nn.convert(nn.MSELoss()))  # torchff's MSELoss where it exists
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=30,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True))
    assert model.output_dtypes == {torch.bfloat16}  # autocast was on: the Linear layers ran in bf16
    first, last = sum(model.losses[:4]) / 4, sum(model.losses[-4:]) / 4
    assert len(model.losses) == 120 and last < 0.5 * first, (first, last)
