"""Maxout vs ``view + torch.max``, and MaxoutLinear vs ``nn.Linear`` + ``view + torch.max``.

Forward + backward time (eager, CPU) measured interleaved (A, B, A, B, ...) with
``torch.utils.benchmark.Timer.blocked_autorange``, and the bytes saved for backward
(``torchff.testing.saved_tensors``). Prints ratios ours / reference; targets: time <= 1.1x,
index memory 1/8.

    PYTHONPATH=. python benchmarks/maxout.py [--batch 4096 --units 1024 --pieces 4 --in-features 1024]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils.benchmark import Timer

import torchff.functional as F
import torchff.nn
from torchff.testing import saved_tensors


def interleaved(fns: dict, repeats: int, min_run_time: float) -> dict:
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median)
    return {name: statistics.median(t) for name, t in times.items()}


def report(title: str, fns: dict, saved: dict, repeats: int, min_run_time: float) -> None:
    t = interleaved(fns, repeats, min_run_time)
    (ours, ref) = fns
    print(f"{title}")
    for name in fns:
        print(f"  {name:<28} fwd+bwd {t[name] * 1e3:8.1f} ms   saved {saved[name] / 2**20:8.2f} MiB")
    print(f"  time ratio  {t[ours] / t[ref]:.3f}   saved-bytes ratio {saved[ours] / saved[ref]:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--units", type=int, default=1024)
    p.add_argument("--pieces", type=int, default=4)
    p.add_argument("--in-features", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-run-time", type=float, default=0.5)
    p.add_argument("--skip-linear", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    n, u, k = a.batch, a.units, a.pieces

    # --- the activation alone: input (batch, units * k) -----------------------------------
    x = torch.randn(n, u * k, requires_grad=True)
    g = torch.randn(n, u)

    def view_max(t):
        return t.view(n, u, k).max(-1).values

    def ours():
        x.grad = None
        F.maxout(x, k).backward(g)

    def ref():
        x.grad = None
        view_max(x).backward(g)

    out, s_ours = saved_tensors(F.maxout, x, k)
    out, s_ref = saved_tensors(view_max, x)
    report(f"Maxout (input {n}x{u * k}, k={k}) vs view + max", {"torchff.maxout": ours, "view + max": ref},
           {"torchff.maxout": s_ours.total, "view + max": s_ref.total}, a.repeats, a.min_run_time)
    del x, out

    if a.skip_linear:
        return
    # --- the layer: input (batch, in_features) -> (batch, units) --------------------------
    layer = torchff.nn.MaxoutLinear(a.in_features, u, k)
    lin = torch.nn.Linear(a.in_features, u * k)
    lin.load_state_dict(layer.state_dict())
    xi = torch.randn(n, a.in_features, requires_grad=True)

    def lin_max(t):
        return lin(t).view(n, u, k).max(-1).values

    def ours_l():
        xi.grad = None
        layer.zero_grad(set_to_none=True)
        layer(xi).backward(g)

    def ref_l():
        xi.grad = None
        lin.zero_grad(set_to_none=True)
        lin_max(xi).backward(g)

    out, s_ours = saved_tensors(layer, xi)
    b_ours = s_ours.beyond(xi, layer.weight)
    out, s_ref = saved_tensors(lin_max, xi)
    b_ref = s_ref.beyond(xi, lin.weight)
    del out
    report(f"MaxoutLinear ({a.in_features} -> {u} units, k={k}, batch {n}) vs Linear + view + max",
           {"torchff.nn.MaxoutLinear": ours_l, "Linear + view + max": ref_l},
           {"torchff.nn.MaxoutLinear": s_ours.total, "Linear + view + max": s_ref.total}, a.repeats, a.min_run_time)
    print(f"  beyond the input and weight (the index): {b_ours / 2**20:.2f} MiB vs {b_ref / 2**20:.2f} MiB, "
          f"ratio {b_ours / b_ref:.4f}")


if __name__ == "__main__":
    main()
