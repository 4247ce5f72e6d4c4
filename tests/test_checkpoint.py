"""Checkpoints: every torchff module pickles, deep-copies, and loads back with
``torch.load(..., weights_only=True)`` (its state_dict; the whole module once its classes are
allowed with ``torch.serialization.safe_globals``); torch and torchff state_dicts load into each other."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

import torchff
from module_cases import DROP_IN_CASES, TORCHFF_CASES, first_input, has_drop_in, torchff_has


def _module_classes() -> list[str]:
    objs = {n: getattr(torchff.nn, n) for n in torchff.nn.__all__}
    return sorted(n for n, o in objs.items() if isinstance(o, type) and issubclass(o, nn.Module))


def _instances() -> dict[str, tuple]:
    """case id -> (module factory, case or None): the example cases, then every other torchff module class."""
    out = {}
    for key, case in DROP_IN_CASES.items():
        if has_drop_in(key):
            out[key] = (lambda case=case: torchff.nn.convert(case.make()), case)
    for key, case in TORCHFF_CASES.items():
        if torchff_has(key):
            out[key] = (case.make, case)
    covered = {torchff.nn.drop_ins().get(getattr(nn, k.split("(")[0]), None) for k in DROP_IN_CASES}
    covered |= {getattr(torchff.nn, k.split("(")[0], None) for k in TORCHFF_CASES}
    for name in _module_classes():
        cls = getattr(torchff.nn, name)
        if cls not in covered:  # aliases (two names, one class) once
            covered.add(cls)
            out[name] = (cls, None)
    return out


_INSTANCES = _instances()


def _build(key):
    make, case = _INSTANCES[key]
    try:
        module = make()
    except TypeError as e:  # a class that needs constructor arguments and has no example case
        pytest.skip(f"{key} needs constructor arguments; add an example to tests/module_cases.py ({e})")
    assert type(module).__module__.startswith("torchff.")
    return module, case


def _same_module(a: nn.Module, b: nn.Module, case) -> None:
    assert type(a) is type(b) and a is not b
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) and sa[k].data_ptr() != sb[k].data_ptr()
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert isinstance(q, nn.Parameter) and p.requires_grad == q.requires_grad, n
    if case is not None:
        z = first_input() * 3
        args = (z, *case.extra(z))
        torch.testing.assert_close(a(args[0].clone(), *args[1:]), b(args[0].clone(), *args[1:]))


def _save(obj) -> io.BytesIO:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("key", list(_INSTANCES))
def test_pickle_and_deepcopy(key):
    module, case = _build(key)
    _same_module(module, pickle.loads(pickle.dumps(module)), case)
    _same_module(module, copy.deepcopy(module), case)


@pytest.mark.parametrize("key", list(_INSTANCES))
def test_state_dict_loads_with_weights_only(key):
    module, case = _build(key)
    other, _ = _build(key)
    with torch.no_grad():  # make the target differ wherever there is state
        for t in other.state_dict().values():
            if t.dtype == torch.bool:  # a flag (RBF.initialized)
                t.logical_not_()
            else:
                t.add_(1)
    state = torch.load(_save(module.state_dict()), weights_only=True)
    other.load_state_dict(state)
    _same_module(module, other, case)


@pytest.mark.parametrize("key", list(_INSTANCES))
def test_whole_module_loads_with_weights_only_and_safe_globals(key):
    module, case = _build(key)
    buf = _save(module)
    with pytest.raises(pickle.UnpicklingError):  # torch refuses classes it was not told about
        torch.load(buf, weights_only=True)
    buf.seek(0)
    with torch.serialization.safe_globals(list({type(m) for m in module.modules()})):
        loaded = torch.load(buf, weights_only=True)
    _same_module(module, loaded, case)


_STATEFUL = [k for k, c in DROP_IN_CASES.items() if c.make().state_dict()]


@pytest.mark.parametrize("key", _STATEFUL)
def test_torch_and_torchff_state_dicts_load_into_each_other(key):
    if not has_drop_in(key):
        pytest.skip(f"torchff.nn has no drop-in for {key.split('(')[0]} on this branch")
    case = DROP_IN_CASES[key]
    torch_module = case.make()
    with torch.no_grad():
        for t in torch_module.state_dict().values():
            t.mul_(1.5)
    ff = torchff.nn.convert(case.make())  # the default values
    ff.load_state_dict(torch.load(_save(torch_module.state_dict()), weights_only=True))
    back = case.make()
    back.load_state_dict(torch.load(_save(ff.state_dict()), weights_only=True))
    for k, v in torch_module.state_dict().items():
        assert torch.equal(ff.state_dict()[k], v) and torch.equal(back.state_dict()[k], v)
    z = first_input() * 3
    args = (z, *case.extra(z))
    torch.testing.assert_close(ff(*args), torch_module(*args))
