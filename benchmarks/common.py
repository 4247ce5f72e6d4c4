"""Shared pieces of the benchmarks: interleaved timing, saved-bytes and peak-memory measurement."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.utils.benchmark import Timer

from torchff.testing import saved_tensors


@dataclass
class Sizes:
    """Problem sizes. ``rows x features`` is the elementwise input of every per-op benchmark."""

    rows: int = 4096
    features: int = 1024
    pieces: int = 4
    mlp_dims: tuple[int, ...] = (784, 1024, 1024, 10)
    mlp_batch: int = 512

    @classmethod
    def smoke(cls) -> "Sizes":
        return cls(rows=64, features=32, pieces=4, mlp_dims=(48, 32, 32, 10), mlp_batch=16)


def interleaved_medians(
    fns: dict[str, Callable[[], object]],
    *,
    rounds: int,
    min_run_time: float,
    threads: int,
) -> dict[str, dict]:
    """Time each zero-argument callable, interleaved: A, B, A, B, ... for ``rounds`` rounds.

    Each turn is one ``Timer.blocked_autorange(min_run_time)``. The result per callable is the
    median over all the blocks of all its turns (seconds per call), the block count, and the
    median of each of its turns (``rounds``). A noisy machine slows both sides of a round alike,
    so per-round ratios (:func:`round_ratio`) stay honest when the load drifts.
    """
    timers = {
        name: Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, label=name)
        for name, fn in fns.items()
    }
    for tm in timers.values():  # warm up (first calls allocate, compiled code is built here)
        tm.timeit(2)
    blocks: dict[str, list[float]] = {name: [] for name in timers}
    per_round: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, tm in timers.items():
            times = tm.blocked_autorange(min_run_time=min_run_time).times
            blocks[name].extend(times)
            per_round[name].append(statistics.median(times))
    return {
        name: {"median_s": statistics.median(v), "blocks": len(v), "rounds_s": per_round[name]}
        for name, v in blocks.items()
    }


def round_ratio(times: dict, a: str, b: str) -> float:
    """Median over rounds of ``a``'s time over ``b``'s time in the same round."""
    return statistics.median(x / y for x, y in zip(times[a]["rounds_s"], times[b]["rounds_s"]))


def forward_backward(fn: Callable, args: Sequence, wrt: Sequence[torch.Tensor], seed: int = 0) -> Callable[[], None]:
    """A closure running ``fn(*args)`` and ``torch.autograd.grad`` of it w.r.t. ``wrt``.

    Non-scalar outputs are back-propagated with a fixed random upstream gradient.
    """
    with torch.no_grad():
        out = fn(*args)
    grad_out = None
    if out.dim() > 0:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float32).to(out.device, out.dtype)
    wrt = list(wrt)

    def run() -> None:
        torch.autograd.grad(fn(*args), wrt, grad_out)

    return run


def saved_bytes(fn: Callable, args: Sequence, free: Callable[[object], Sequence[torch.Tensor]] = lambda out: ()) -> dict:
    """Bytes ``fn(*args)`` saves for backward (de-duplicated by storage).

    ``total`` counts every saved storage; ``extra`` leaves out the storages of the tensors that
    ``free(output)`` names, which the surrounding network keeps anyway.
    """
    out, rec = saved_tensors(fn, *args)
    return {"total": rec.total, "extra": rec.beyond(*free(out))}


def peak_cuda_bytes(run: Callable[[], None]) -> int | None:
    """``torch.cuda.max_memory_allocated`` growth over one call of ``run`` (None without CUDA)."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - base)


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``; 1.0 when both are 0 (nothing either side), None when undefined."""
    if a is None or b is None:
        return None
    if b == 0:
        return 1.0 if a == 0 else float("inf")
    return a / b
