"""The CUDA path's memory traffic, counted without a GPU.

A :class:`TrafficMode` (a ``TorchDispatchMode``) sits above a ``FakeTensorMode`` whose tensors
say they live on ``cuda``, and records every op that reaches the dispatcher, forward and
backward:

* an op counts as **one kernel** when one of its tensors is on a non-CPU device. A registered
  ``torchff::`` op is one kernel (the dispatcher calls its fake implementation; its CUDA kernel
  never runs; a reduced ``bce_with_logits`` / ``regression`` launches a second, one-program
  kernel adding its per-block sums, 4 bytes per 1024 elements, not counted), and so is each aten op (true for torch's pointwise, reduction and loss kernels;
  the few aten ops that are C++ composites launch more on a real GPU);
* views and metadata ops (``view``, ``t``, ``expand``, ``detach``, ``empty``, ...) count **zero**
  kernels and bytes;
* its **bytes** are those of its tensor inputs (read) plus its outputs (written): in-place
  ``self`` is read and written, ``out=`` arguments only written. A tensor counts once per kernel,
  by its distinct elements (a broadcast dimension of stride 0 counts once); CPU tensors (wrapped
  scalars) count nothing;
* a **host sync** is an attempt to read a tensor value on the host: ``.item()``, ``bool()``,
  ``float()``, ``tolist()`` (``aten._local_scalar_dense``), data-dependent results such as
  ``torch.equal`` and data-dependent shapes (``nonzero``, ``masked_select``, ...), and copies from
  the device to the CPU.

Fake tensors have no values, so each op is also run on real CPU "mirrors" of the fake tensors,
and a host read returns the mirror's true value: the code takes the branch it would take on a
GPU. The autograd engine is told the tensors are on the CPU (the engine would otherwise ask a
CUDA context that a machine without a GPU does not have); Python sees ``cuda`` through
``tensor.device`` and ``tensor.is_cuda``, and ``.cpu()`` / ``.to("cpu")`` copy to the host. C++
code that branches on a tensor's device (none of torchff's ops or torch's ops measured here)
would see the CPU.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.weak import WeakIdKeyDictionary

#: ops that launch nothing: allocation and metadata (views are found by ``OpOverload.is_view``)
_NO_KERNEL = {
    "empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "_unsafe_view",
    "lift_fresh", "resize_", "set_", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset",
    "is_same_size", "_reshape_alias", "alias", "_has_compatible_shallow_copy_type", "record_stream",
    "_local_scalar_dense",  # a device-to-host copy: counted as a host sync
}
_SYNC_TAGS = (torch.Tag.data_dependent_output, torch.Tag.dynamic_output_shape)


@dataclass
class Event:
    """One recorded op."""

    name: str
    phase: str
    kernels: int
    read: int
    written: int
    sync: bool


@dataclass
class Traffic:
    """What one forward + backward launched, per phase (``forward``, ``backward``)."""

    events: list[Event] = field(default_factory=list)

    def select(self, phase: str | None = None) -> list[Event]:
        return [e for e in self.events if phase is None or e.phase == phase]

    def kernels(self, phase: str | None = None) -> int:
        return sum(e.kernels for e in self.select(phase))

    def bytes(self, phase: str | None = None) -> int:
        return sum(e.read + e.written for e in self.select(phase))

    def syncs(self, phase: str | None = None) -> int:
        return sum(e.sync for e in self.select(phase))

    def kernel_names(self, phase: str | None = None) -> list[str]:
        return [e.name for e in self.select(phase) if e.kernels]

    def summary(self) -> dict:
        out = {}
        for phase in ("forward", "backward", None):
            out[phase or "total"] = {"kernels": self.kernels(phase), "bytes": self.bytes(phase),
                                     "syncs": self.syncs(phase), "ops": self.kernel_names(phase)}
        return out


def _device(t: torch.Tensor) -> torch.device:
    return t.fake_device if isinstance(t, FakeTensor) else t.device


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of ``t``'s distinct elements on a device (0 on the CPU): a stride-0 dim counts once."""
    if _device(t).type == "cpu":
        return 0
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if size == 0:
            return 0
        if stride != 0:
            n *= size
    return n * t.element_size()


def _tensors(tree) -> list[torch.Tensor]:
    seen, out = set(), []
    for t in tree_flatten(tree)[0]:
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


class TrafficMode(TorchDispatchMode):
    """Records kernels, bytes and host syncs of every op on fake device tensors (see the module doc).

    Use inside a ``FakeTensorMode(allow_non_fake_inputs=True)``; move real CPU tensors onto the
    fake device with ``.to("cuda")`` while the mode is active (``phase = "setup"``, not
    recorded), so that their values are mirrored.
    """

    def __init__(self):
        super().__init__()
        self.traffic = Traffic()
        self.phase = "setup"
        self.mirror: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.unmirrored: list[str] = []  # ops the CPU mirror could not run (their outputs read as zeros)

    # -- the real CPU mirror ------------------------------------------------------------
    def _real(self, a):
        if isinstance(a, FakeTensor):
            r = self.mirror.get(a)
            if r is None:  # a tensor made where no mirror could follow (values unknown): zeros
                r = torch.zeros_strided(a.shape, a.stride(), dtype=a.dtype) if hasattr(torch, "zeros_strided") \
                    else torch.empty_strided(a.shape, a.stride(), dtype=a.dtype).zero_()
                self.mirror[a] = r
            return r
        if isinstance(a, torch.device) and a.type != "cpu":
            return torch.device("cpu")
        return a

    def _run_real(self, func, args, kwargs):
        with _disable_current_modes(), torch.no_grad():
            real_args, real_kwargs = tree_map(self._real, (args, kwargs))
            return func(*real_args, **real_kwargs)

    def _link(self, fake_out, real_out) -> None:
        if real_out is None:
            return
        for f, r in zip(tree_flatten(fake_out)[0], tree_flatten(real_out)[0]):
            if isinstance(f, FakeTensor) and isinstance(r, torch.Tensor):
                self.mirror[f] = r

    # -- the count ------------------------------------------------------------------------
    def _record(self, func, args, kwargs, out, sync: bool) -> None:
        if self.phase == "setup":
            return
        out_names = {a.name for a in func._schema.arguments if a.is_out}
        reads = _tensors((args, {k: v for k, v in kwargs.items() if k not in out_names}))
        writes = _tensors(out)
        on_device = any(_device(t).type != "cpu" for t in reads + writes)
        name = f"{func.namespace}::{func._schema.name.split('::')[-1]}"
        packet = func._schema.name.split("::")[-1]
        metadata = func.is_view or torch.Tag.inplace_view in func.tags or packet in _NO_KERNEL \
            or func.namespace == "prim"
        if not on_device or metadata:
            if sync:
                self.traffic.events.append(Event(name, self.phase, 0, 0, 0, True))
            return
        self.traffic.events.append(Event(
            name, self.phase, 1, sum(map(tensor_bytes, reads)), sum(map(tensor_bytes, writes)), sync))

    @staticmethod
    def _is_sync(func, args, kwargs) -> bool:
        if any(tag in func.tags for tag in _SYNC_TAGS):
            return any(_device(t).type != "cpu" for t in _tensors((args, kwargs)))
        packet = func._schema.name.split("::")[-1]
        if packet in ("_to_copy", "copy_", "to"):  # device to host
            src = args[1] if packet == "copy_" else args[0]
            dst = args[0].device if packet == "copy_" else kwargs.get("device")
            return isinstance(src, torch.Tensor) and _device(src).type != "cpu" and \
                dst is not None and torch.device(dst).type == "cpu"
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.prim.device.default:
            return torch.device("cpu")  # what C++ (the autograd engine) sees; Python sees the fake device
        sync = self._is_sync(func, args, kwargs)
        try:
            real_out = self._run_real(func, args, kwargs)
        except Exception:  # e.g. a kernel that only runs on a GPU: no mirror, values unknown (zeros)
            if sync or torch.Tag.dynamic_output_shape in func.tags:
                raise
            self.unmirrored.append(str(func))
            real_out = None
        if sync and (torch.Tag.data_dependent_output in func.tags or func._schema.name.endswith("_local_scalar_dense")):
            out = real_out  # a host value (a Python scalar or a CPU tensor): the mirror's true one
        elif torch.Tag.dynamic_output_shape in func.tags:
            out = tree_map(lambda r: torch.empty_strided(r.shape, r.stride(), dtype=r.dtype, device="cuda")
                           if isinstance(r, torch.Tensor) else r, real_out)
        else:
            out = func(*args, **kwargs)
        self._link(out, real_out)
        self._record(func, args, kwargs, out, sync)
        return out


def _to_host(self, dtype=None, non_blocking=False, memory_format=torch.preserve_format):
    return torch.ops.aten._to_copy.default(self, dtype=dtype or self.dtype, device=torch.device("cpu"),
                                           non_blocking=non_blocking, memory_format=memory_format)


def _fake_cpu(self, memory_format=torch.preserve_format):
    if self.fake_device.type == "cpu":
        return torch.Tensor.cpu(self, memory_format=memory_format)
    return _to_host(self, memory_format=memory_format)


def _fake_to(self, *args, **kwargs):
    device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
    if device is not None and device.type == "cpu" and self.fake_device.type != "cpu":
        return _to_host(self, dtype, non_blocking, memory_format or torch.preserve_format)
    return torch.Tensor.to(self, *args, **kwargs)


_PYTHON_VIEW = {
    "is_cuda": property(lambda self: self.fake_device.type == "cuda"),
    "cpu": _fake_cpu,
    "to": _fake_to,
}


@contextmanager
def _python_sees_the_fake_device():
    """While counting, ``FakeTensor.is_cuda``, ``.cpu()`` and ``.to("cpu")`` follow the fake
    device. (Their C++ implementations ask the dispatcher for the device, which
    :class:`TrafficMode` answers with the CPU for the autograd engine's sake: ``.cpu()`` would
    otherwise be a no-op, and the device-to-host copy it makes on a GPU would go uncounted.)"""
    saved = {k: FakeTensor.__dict__[k] for k in _PYTHON_VIEW if k in FakeTensor.__dict__}
    for k, v in _PYTHON_VIEW.items():
        setattr(FakeTensor, k, v)
    try:
        yield
    finally:
        for k in _PYTHON_VIEW:
            if k in saved:
                setattr(FakeTensor, k, saved[k])
            else:
                delattr(FakeTensor, k)


@contextmanager
def counting():
    """``with counting() as mode:`` a fake-CUDA world with a :class:`TrafficMode` on top."""
    with _python_sees_the_fake_device(), FakeTensorMode(allow_non_fake_inputs=True), TrafficMode() as mode:
        yield mode


def to_fake(mode: TrafficMode, obj, device: str = "cuda"):
    """A real CPU tensor or module (or a list of them) moved onto the fake device, values mirrored."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_fake(mode, o, device) for o in obj)
    if isinstance(obj, nn.Module):  # (Module.to cannot swap a real parameter for a fake one)
        module = copy.deepcopy(obj)
        for m in module.modules():
            for k, p in m._parameters.items():
                if p is not None:
                    m._parameters[k] = nn.Parameter(p.detach().to(device), requires_grad=p.requires_grad)
            for k, b in m._buffers.items():
                if b is not None:
                    m._buffers[k] = b.to(device)
        return module
    if isinstance(obj, torch.Tensor):
        return obj.detach().to(device).requires_grad_(obj.requires_grad)
    return obj


def count_forward_backward(fn: Callable, args: Sequence, wrt_index: Sequence[int], grad_out: bool | None = None,
                           seed: int = 0) -> Traffic:
    """The traffic of ``fn(*args)`` and ``torch.autograd.grad`` of it, on fake CUDA tensors.

    ``args`` are real CPU tensors (and other values); ``fn`` may be a module (copied onto the
    fake device; its parameters are differentiated too). ``wrt_index``: positions in ``args``
    to differentiate. A non-scalar output is back-propagated with a fixed random gradient
    (made before counting, so not counted), a scalar one with the engine's ``ones_like``.
    """
    with counting() as mode:
        fake_args = to_fake(mode, list(args))
        fake_fn = to_fake(mode, fn) if isinstance(fn, nn.Module) else fn
        wrt = [fake_args[i] for i in wrt_index]
        if isinstance(fake_fn, nn.Module):
            wrt += [p for p in fake_fn.parameters() if p.requires_grad]
        mode.phase = "forward"
        out = fake_fn(*fake_args)
        mode.phase = "setup"
        g = None
        if grad_out or (grad_out is None and out.dim() > 0):
            gen = torch.Generator().manual_seed(seed)
            g = to_fake(mode, torch.randn(out.shape, generator=gen).to(out.dtype))
        mode.phase = "backward"
        torch.autograd.grad(out, wrt, g)
        mode.phase = "setup"
    return mode.traffic


def count_call(fn: Callable, *args) -> Traffic:
    """The traffic of ``fn(*args)`` alone (no backward), on fake CUDA tensors."""
    with counting() as mode:
        fake_args = to_fake(mode, list(args))
        mode.phase = "forward"
        fn(*fake_args)
        mode.phase = "setup"
    return mode.traffic
