"""A torchvision model before and after ``torchff.nn.convert``: training-step time and saved bytes.

Forward + backward of the whole model (eager, CPU, float32) measured interleaved (original,
converted, original, ...) with ``torch.utils.benchmark.Timer.blocked_autorange``, and the bytes
autograd saves for backward (``torchff.testing.saved_tensors``, de-duplicated by storage).
Target: time ratio <= 1.05 (the converted modules are a small part of a CNN's work), saved
bytes <= the original's.

    PYTHONPATH=. python benchmarks/convert.py [--model resnet18 --batch 16 --side 64 --threads 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
import torchvision
from torch.utils.benchmark import Timer

import torchff
from torchff.testing import saved_tensors


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet18")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--side", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-run-time", type=float, default=0.5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    original = getattr(torchvision.models, a.model)(weights=None).train()
    converted, report = torchff.nn.convert(copy.deepcopy(original), return_report=True)
    print(f"{a.model}: {report}")
    x = torch.randn(a.batch, 3, a.side, a.side)

    def step(model):
        def fn():
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()

        return fn

    fns = {"torch.nn": step(original), "torchff (converted)": step(converted)}
    times = {n: [] for n in fns}
    for _ in range(a.repeats):
        for n, fn in fns.items():
            times[n].append(Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=a.min_run_time).median)
    med = {n: statistics.median(t) for n, t in times.items()}
    saved = {}
    for n, m in (("torch.nn", original), ("torchff (converted)", converted)):
        out, rec = saved_tensors(m, x)
        saved[n] = rec.total
        del out
    for n in fns:
        print(f"  {n:<22} fwd+bwd {med[n] * 1e3:8.1f} ms   saved for backward {saved[n] / 2**20:8.1f} MiB")
    ours, ref = "torchff (converted)", "torch.nn"
    print(f"  time ratio {med[ours] / med[ref]:.3f}   saved-bytes ratio {saved[ours] / saved[ref]:.3f}")


if __name__ == "__main__":
    main()
