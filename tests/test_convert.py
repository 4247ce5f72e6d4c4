"""``torchff.nn.convert`` / ``revert``: settings, parameters, hooks, include/exclude, report, and
real torchvision models (same outputs and gradients as the original in float64, state_dicts
interchangeable)."""

from __future__ import annotations

import copy
import inspect
import io
import logging
from collections import Counter

import pytest
import torch
import torchvision
from torch import nn

import torchff
from module_cases import DROP_IN_CASES, first_input, has_drop_in


pytestmark = pytest.mark.usefixtures("one_thread")


def _ff_class(torch_module: nn.Module) -> type:
    return torchff.nn.drop_ins()[type(torch_module)]


def _assert_drop_in(key: str) -> None:
    assert has_drop_in(key), f"torchff.nn has no drop-in for torch.nn.{key.split('(')[0]}"


def _forward_backward(module: nn.Module, z: torch.Tensor, extra: tuple, cot_seed: int = 7):
    """Output and gradients (w.r.t. z and the module's parameters) for a fixed random cotangent."""
    z = z.detach().requires_grad_(True)
    out = module(z * 1, *extra)  # a non-leaf input, so in-place modules may overwrite it
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(cot_seed), dtype=out.dtype)
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(out, [z, *params], cot)
    return out.detach(), grads


# --------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------
def test_drop_in_table_is_exactly_the_expected_one():
    from torchff.nn import activation, loss, softmax

    assert torchff.nn.drop_ins() == {
        nn.ReLU: activation.ReLU,
        nn.LeakyReLU: activation.LeakyReLU,
        nn.PReLU: activation.PReLU,
        nn.Softplus: activation.Softplus,
        nn.Sigmoid: activation.Sigmoid,
        nn.Softmax: softmax.Softmax,
        nn.LogSoftmax: softmax.LogSoftmax,
        nn.CrossEntropyLoss: loss.CrossEntropyLoss,
        nn.NLLLoss: loss.NLLLoss,
        nn.BCEWithLogitsLoss: loss.BCEWithLogitsLoss,
        nn.MSELoss: loss.MSELoss,
        nn.L1Loss: loss.L1Loss,
        nn.GaussianNLLLoss: loss.GaussianNLLLoss,
    }
    for base, ff in torchff.nn.drop_ins().items():
        assert issubclass(ff, base) and ff is not base and ff.__name__ == base.__name__
        assert getattr(torchff.nn, base.__name__) is ff
    # every drop-in has an example case that the conversion, export, AMP and checkpoint tests run
    assert {getattr(nn, k.split("(")[0]) for k in DROP_IN_CASES} == set(torchff.nn.drop_ins())
    # torchff-only modules have no torch counterpart and are not in the table
    assert torchff.nn.AbsReLU not in torchff.nn.drop_ins().values()


def test_drop_in_that_adds_state_is_an_error(monkeypatch):
    class Softsign(nn.Softsign):  # a would-be drop-in that keeps something torch's module lacks
        def __init__(self):
            super().__init__()
            self.scale = 2.0

    monkeypatch.setattr(torchff.nn, "Softsign", Softsign, raising=False)
    monkeypatch.setattr(torchff.nn, "__all__", [*torchff.nn.__all__, "Softsign"])
    with pytest.raises(TypeError, match=r"torchff.nn.Softsign .* adds instance state"):
        torchff.nn.drop_ins()
    with pytest.raises(TypeError, match="adds instance state"):
        torchff.nn.convert(nn.Sequential(nn.Softsign()))


# --------------------------------------------------------------------------------------
# settings, parameters and buffers carried over
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(DROP_IN_CASES))
def test_convert_carries_settings_and_matches_torch(key):
    _assert_drop_in(key)
    case = DROP_IN_CASES[key]
    ref = case.make().double()
    model = nn.Sequential(copy.deepcopy(ref))
    assert torchff.nn.convert(model) is model
    m = model[0]
    assert type(m) is _ff_class(ref)
    assert m.extra_repr() == ref.extra_repr()
    for arg in inspect.signature(type(ref).__init__).parameters:
        if hasattr(ref, arg) and not isinstance(getattr(ref, arg), torch.Tensor):
            assert getattr(m, arg) == getattr(ref, arg), arg
    assert m.state_dict().keys() == ref.state_dict().keys()
    for k, v in ref.state_dict().items():
        got = m.state_dict()[k]
        assert got.dtype == v.dtype == torch.float64 and got.device == v.device
        torch.testing.assert_close(got, v, rtol=0, atol=0)

    z = first_input(torch.float64)
    extra = tuple(e.double() if e.is_floating_point() else e for e in case.extra(z))
    out, grads = _forward_backward(m, z, extra)
    out_ref, grads_ref = _forward_backward(ref, z, extra)
    torch.testing.assert_close(out, out_ref)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref)


def test_prelu_keeps_its_parameter_object_dtype_requires_grad_and_optimizer():
    model = nn.Sequential(nn.Linear(3, 4), nn.PReLU(4, init=0.3)).double()
    frozen = nn.PReLU(dtype=torch.float64)
    frozen.weight.requires_grad_(False)
    model.append(frozen)
    weight = model[1].weight
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    torchff.nn.convert(model)
    assert type(model[1]) is torchff.nn.PReLU and type(model[2]) is torchff.nn.PReLU
    assert model[1].weight is weight and weight.dtype == torch.float64
    assert model[2].weight.requires_grad is False
    before = weight.detach().clone()
    model(-torch.rand(5, 3, dtype=torch.float64) - 10).sum().backward()  # PReLU sees negative inputs
    opt.step()  # the optimizer built before the conversion updates the converted module's weight
    assert not torch.equal(weight.detach(), before)
    assert model[2].weight.grad is None


# --------------------------------------------------------------------------------------
# what is and is not converted
# --------------------------------------------------------------------------------------
def test_exact_type_only_and_idempotent():
    class MyReLU(nn.ReLU):
        pass

    model = nn.Sequential(nn.ReLU(), MyReLU(), torchff.nn.ReLU(), nn.Linear(2, 2), nn.Tanh())
    _, report = torchff.nn.convert(model, return_report=True)
    assert [type(m) for m in model] == [torchff.nn.ReLU, MyReLU, torchff.nn.ReLU, nn.Linear, nn.Tanh]
    assert report.counts == {"ReLU": 1} and report.modules == ["0"]
    _, again = torchff.nn.convert(model, return_report=True)
    assert again.counts == {} and again.total == 0 and str(again) == "nothing replaced"


def test_root_module_is_converted_and_returned():
    relu = nn.ReLU(inplace=True)
    out = torchff.nn.convert(relu)
    assert out is relu and type(out) is torchff.nn.ReLU and out.inplace is True


def test_module_shared_between_parents_is_converted_once():
    act = nn.LeakyReLU(0.2)
    model = nn.Sequential(nn.Linear(2, 2), act, nn.Sequential(nn.Linear(2, 2), act))
    listed = [act]  # a reference held outside the module tree sees the conversion too
    _, report = torchff.nn.convert(model, return_report=True)
    assert model[1] is model[2][1] is listed[0] is act and type(act) is torchff.nn.LeakyReLU
    assert report.counts == {"LeakyReLU": 1}


def _zoo():
    return nn.Sequential(nn.ReLU(), nn.LeakyReLU(), nn.Sigmoid(), nn.PReLU(), nn.Softplus(), nn.ReLU())


@pytest.mark.parametrize(
    "include, exclude, expected",
    [
        (None, None, {"ReLU": 2, "LeakyReLU": 1, "Sigmoid": 1, "PReLU": 1, "Softplus": 1}),
        ([nn.ReLU], None, {"ReLU": 2}),
        (torchff.nn.ReLU, None, {"ReLU": 2}),  # torchff's class names its torch base
        (["relu", "Leaky-ReLU", "SIGMOID"], None, {"ReLU": 2, "LeakyReLU": 1, "Sigmoid": 1}),
        (None, ["prelu", nn.Softplus], {"ReLU": 2, "LeakyReLU": 1, "Sigmoid": 1}),
        (["relu", "prelu"], "relu", {"PReLU": 1}),
    ],
)
def test_include_exclude(include, exclude, expected):
    model = _zoo()
    _, report = torchff.nn.convert(model, include=include, exclude=exclude, return_report=True)
    assert report.counts == dict(sorted(expected.items()))
    converted = Counter(type(m).__name__ for m in model if type(m).__module__.startswith("torchff."))
    assert converted == Counter(expected)


def test_include_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="no drop-in for 'swish'"):
        torchff.nn.convert(_zoo(), include="swish")
    with pytest.raises(ValueError, match="Linear"):
        torchff.nn.convert(_zoo(), exclude=[nn.Linear])
    with pytest.raises(TypeError):
        torchff.nn.convert(_zoo(), include=[3])


def test_report_is_logged_at_info(caplog):
    model = _zoo()
    with caplog.at_level(logging.INFO, logger="torchff.nn.convert"):
        _, report = torchff.nn.convert(model, return_report=True)
    assert report.total == 6 and report.modules == ["0", "1", "2", "3", "4", "5"]
    (record,) = [r for r in caplog.records if r.name == "torchff.nn.convert"]
    assert record.levelno == logging.INFO
    assert "ReLU x2" in record.getMessage() and "replaced 6 modules" in record.getMessage()


def test_hooks_stay_registered_and_fire():
    model = nn.Sequential(nn.Linear(3, 3), nn.Softplus(beta=2.0))
    calls = []
    act = model[1]
    act.register_forward_pre_hook(lambda m, a: calls.append(("pre", type(m))))
    act.register_forward_hook(lambda m, a, o: calls.append(("fwd", type(m))))
    act.register_full_backward_hook(lambda m, gi, go: calls.append(("bwd", type(m))))
    torchff.nn.convert(model)
    model(torch.randn(2, 3)).sum().backward()
    assert calls == [("pre", torchff.nn.Softplus), ("fwd", torchff.nn.Softplus), ("bwd", torchff.nn.Softplus)]


def test_revert_restores_torch_modules_and_torchscript():
    model = torchff.nn.convert(nn.Sequential(nn.Linear(3, 4), nn.PReLU(4), nn.Linear(4, 2), nn.Sigmoid()))
    x = torch.randn(5, 3)
    want = model(x)
    _, report = torchff.nn.revert(model, return_report=True)
    assert report.counts == {"PReLU": 1, "Sigmoid": 1}
    assert [type(m) for m in model] == [nn.Linear, nn.PReLU, nn.Linear, nn.Sigmoid]
    with pytest.warns(FutureWarning):  # torch.jit.script is deprecated in torch 2.14
        scripted = torch.jit.script(model)  # torch.nn modules script; torchff's Functions do not
    torch.testing.assert_close(scripted(x), want)


# --------------------------------------------------------------------------------------
# real models from torchvision (float64, no download)
# --------------------------------------------------------------------------------------
def _vgg11_bn():
    m = torchvision.models.vgg11_bn(weights=None, num_classes=10)
    # The 25088->4096->4096 classifier holds 120M parameters (1 GB in float64): narrower Linear
    # layers, same layout (Linear, ReLU(inplace), Dropout, ...), keep the test light.
    m.classifier[0] = nn.Linear(512 * 7 * 7, 32)
    m.classifier[3] = nn.Linear(32, 32)
    m.classifier[6] = nn.Linear(32, 10)
    return m


# name -> (builder, image side): small images keep float64 fast (vgg's five poolings need 32)
_MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None, num_classes=10), 32),  # ReLU(inplace=True)
    "vgg11_bn": (_vgg11_bn, 32),  # ReLU(inplace=True) after BatchNorm, Dropout in the classifier
    # Sigmoid in the squeeze-excitation blocks (SiLU stays torch's), Dropout and StochasticDepth
    "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(weights=None, num_classes=10), 16),
}


@pytest.fixture(scope="module", params=list(_MODELS))
def torchvision_model(request):
    torch.manual_seed(0)
    build, side = _MODELS[request.param]
    x = torch.randn(2, 3, side, side, dtype=torch.float64)  # batch 2: BatchNorm trains on 1x1 maps
    return request.param, build().double(), x


def _close(actual, expected, **kw):
    """float64 closeness relative to the tensor's scale (efficientnet's eval outputs are ~1e-15)."""
    scale = expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=1e-7, atol=1e-7 * scale, **kw)


def _run_model(model, x, cot, seed):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # same Dropout / StochasticDepth masks in both models
    out = model(x)
    out.backward(cot)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}  # BatchNorm running statistics
    return out.detach(), grads, buffers


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_torchvision_model_same_outputs_and_gradients(torchvision_model, mode):
    name, original, x = torchvision_model
    ref = copy.deepcopy(original).train(mode == "train")
    model = copy.deepcopy(original).train(mode == "train")
    table = torchff.nn.drop_ins()
    expected = Counter(type(m).__name__ for m in ref.modules() if type(m) in table)
    _, report = torchff.nn.convert(model, return_report=True)
    assert report.total > 0 and Counter(report.counts) == expected
    assert not any(type(m) in table for m in model.modules())

    cot = torch.randn(2, 10, dtype=torch.float64)
    out, grads, buffers = _run_model(model, x, cot, seed=3)
    out_ref, grads_ref, buffers_ref = _run_model(ref, x, cot, seed=3)
    _close(out, out_ref)
    assert grads.keys() == grads_ref.keys()
    for n in grads:
        _close(grads[n], grads_ref[n], msg=lambda m: f"{name}.{n}: {m}")
    for n in buffers:
        _close(buffers[n], buffers_ref[n])


def _roundtrip(state_dict):
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _perturbed(model):
    """A copy with other weights and statistics (scaled by 0.5..1.5, so variances stay positive)."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for t in other.state_dict().values():
            if t.is_floating_point():
                t.mul_(torch.rand_like(t) + 0.5)
    return other


def test_torchvision_state_dict_loads_both_ways(torchvision_model):
    name, original, x = torchvision_model
    converted = torchff.nn.convert(copy.deepcopy(original)).eval()
    other = _perturbed(original).eval()  # a torch model with other weights
    assert converted.state_dict().keys() == other.state_dict().keys()
    with torch.no_grad():
        want = other(x)
        assert not torch.equal(converted(x), want)
        converted.load_state_dict(_roundtrip(other.state_dict()))  # torch checkpoint -> torchff model
        _close(converted(x), want)

        fresh = copy.deepcopy(original).eval()  # a torch model, weights as before
        fresh.load_state_dict(_roundtrip(converted.state_dict()))  # torchff checkpoint -> torch model
        _close(fresh(x), want)
