"""Export: ``torch.export`` of torchff modules, MLPs and a converted torchvision model matches eager;
``torch.compile`` of a converted model (also under autocast); what TorchScript does (documented in
the README: scripting fails, tracing runs but cannot be saved, ``revert`` first)."""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
import torchvision
from torch import nn

import torchff
from module_cases import C, DROP_IN_CASES, TORCHFF_CASES, first_input, has_drop_in, torchff_has


pytestmark = pytest.mark.usefixtures("one_thread")


def _aten_only(ep: torch.export.ExportedProgram) -> None:
    """Every call in the exported graph is an ATen/torch operator: no Python (autograd Function) call is left."""
    for node in ep.graph.nodes:
        if node.op == "call_function":
            assert isinstance(node.target, (torch._ops.OpOverload, torch._ops.HigherOrderOperator)) or (
                getattr(node.target, "__module__", "") == "_operator"  # getitem on multi-output ops
            ), f"{node.target!r} is not an operator"


def _export_and_compare(module: nn.Module, args_fn, **kw) -> torch.export.ExportedProgram:
    ep = torch.export.export(module, args_fn(), **kw)
    _aten_only(ep)
    torch.testing.assert_close(ep.module()(*args_fn()), module(*args_fn()))
    return ep


def _case_args(case, dtype=torch.float32):
    def args():  # fresh tensors each call: in-place modules overwrite their input
        z = first_input(dtype) * 3
        return (z, *case.extra(z))

    return args


@pytest.mark.parametrize("key", list(DROP_IN_CASES))
def test_export_drop_in(key):
    assert has_drop_in(key), f"torchff.nn has no drop-in for torch.nn.{key.split('(')[0]}"
    case = DROP_IN_CASES[key]
    module = torchff.nn.convert(case.make())
    assert type(module).__module__.startswith("torchff.")
    _export_and_compare(module, _case_args(case))


@pytest.mark.parametrize("key", list(TORCHFF_CASES))
def test_export_torchff_only_module(key):
    assert torchff_has(key), f"torchff.nn has no {key.split('(')[0]}"
    case = TORCHFF_CASES[key]
    _export_and_compare(case.make(), _case_args(case))


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(C, 16), torchff.nn.ReLU(), nn.Linear(16, 16), torchff.nn.PReLU(16),
        nn.Linear(16, 16), torchff.nn.LeakyReLU(0.1), nn.Linear(16, 16), torchff.nn.Softplus(beta=2.0),
        nn.Linear(16, 2), torchff.nn.Sigmoid(),
    )


def _torchff_mlp() -> nn.Module:
    torch.manual_seed(0)
    return torchff.nn.MLP(C, [16, 16], 2, activation="prelu")


@pytest.mark.parametrize("make_mlp", [_mlp, _torchff_mlp], ids=["sequential", "MLP"])
def test_export_mlp_dynamic_batch_and_save_load(make_mlp):
    mlp = make_mlp()
    batch = torch.export.Dim("batch")
    ep = _export_and_compare(mlp, lambda: (first_input(shape=(5, C)),), dynamic_shapes=({0: batch},))
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    loaded = torch.export.load(buf).module()
    for n in (1, 17):
        x = torch.randn(n, C)
        torch.testing.assert_close(loaded(x), mlp(x))


def test_export_converted_resnet18():
    model = torchff.nn.convert(torchvision.models.resnet18(weights=None, num_classes=10)).eval()
    ep = _export_and_compare(model, lambda: (torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)),))
    assert sum(1 for n in ep.graph.nodes if n.target is torch.ops.aten.relu_.default) == 17  # 9 modules, 17 calls


# --------------------------------------------------------------------------------------
# torch.compile of a converted model, also under autocast
# --------------------------------------------------------------------------------------
def _converted_net():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(C, 16), nn.ReLU(inplace=True), nn.Linear(16, 16), nn.LeakyReLU(0.1, inplace=True),
        nn.Linear(16, 16),
        nn.Softplus(beta=2.0), nn.Linear(16, 2), nn.Sigmoid(),
    )
    return torchff.nn.convert(net)


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "autocast-bf16"])
def test_compile_converted_model(autocast):
    torch._dynamo.reset()
    net = _converted_net()
    compiled = torch.compile(copy.deepcopy(net), fullgraph=True, backend="aot_eager")
    x = torch.randn(8, C)

    def run(m):
        xx = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = m(xx)
        out.float().pow(2).sum().backward()
        return out.detach(), xx.grad, [p.grad for p in m.parameters()]

    out, gx, gp = run(compiled)
    out_ref, gx_ref, gp_ref = run(net)
    assert out.dtype == out_ref.dtype == (torch.bfloat16 if autocast else torch.float32)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(gx, gx_ref)
    for a, b in zip(gp, gp_ref):
        torch.testing.assert_close(a, b)


def test_onnx_dynamo_export_matches_eager():
    pytest.importorskip("onnxscript")  # not a torchff dependency: runs where onnx/onnxscript are installed
    from onnx.reference import ReferenceEvaluator

    mlp = _mlp()
    x = first_input()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = torch.onnx.export(mlp, (x,), dynamo=True).model_proto
    out = ReferenceEvaluator(proto).run(None, {proto.graph.input[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), mlp(x).detach())


# --------------------------------------------------------------------------------------
# TorchScript: what the README says does not work
# --------------------------------------------------------------------------------------
def test_torchscript_script_fails_on_autograd_functions():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
        with pytest.raises(RuntimeError, match="apply"):
            torch.jit.script(_mlp())


def test_torchscript_trace_runs_but_cannot_be_saved(tmp_path):
    mlp = _mlp()
    x = torch.randn(3, C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # PReLU's weight checks become constants
        traced = torch.jit.trace(mlp, x, check_trace=False)
    torch.testing.assert_close(traced(x), mlp(x))  # runs, calling back into Python
    with pytest.raises(RuntimeError, match="Could not export Python function"):
        traced.save(str(tmp_path / "mlp.pt"))
