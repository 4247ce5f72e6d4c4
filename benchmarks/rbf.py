"""RBF features: torchff's Function (GEMM distances, explicit GEMM backward) against plain torch.

The reference is what one writes without torchff: ``torch.exp(-gamma * torch.cdist(x, c) ** 2)``
(``cdist`` takes its matrix-product path for these sizes). For each size it prints

* forward + backward time (input, centers and gamma all need gradients), interleaved
  (A, B, A, B, ...) with ``torch.utils.benchmark.Timer.blocked_autorange``, and the median of the
  per-round ratios torchff / torch;
* the bytes saved for backward (``torchff.testing.saved_tensors``), in total and beyond the output
  and the arguments (which a network keeps anyway);
* the peak memory of one forward + backward: ``torch.cuda.max_memory_allocated`` on CUDA; on the
  CPU the growth of the peak resident set of a fresh process running only that call (large
  buffers are ``mmap``-ed and given back, so it follows the live tensors closely).

    PYTHONPATH=. python benchmarks/rbf.py [--sizes 4096x512x64 8192x256x2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

import torchff.functional as F
from benchmarks.common import interleaved_medians, round_ratio
from torchff.testing import saved_tensors


def cdist_rbf(x: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x, c)
    return torch.exp(-gamma * d * d)


IMPLS = {"torchff": F.rbf, "torch": cdist_rbf}


def make(n: int, m: int, d: int, device: str, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype).to(device).requires_grad_()
    c = torch.randn(m, d, generator=g, dtype=dtype).to(device).requires_grad_()
    gamma = torch.tensor(0.5 / d, dtype=dtype, device=device).requires_grad_()
    grad = torch.randn(n, m, generator=g, dtype=dtype).to(device)
    return x, c, gamma, grad


def step(fn, x, c, gamma, grad) -> None:
    torch.autograd.grad(fn(x, c, gamma), (x, c, gamma), grad)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_child(impl: str, n: int, m: int, d: int) -> int:
    """In a fresh process: the peak RSS growth (bytes) of one forward + backward of ``impl``
    (Linux: the high-water mark ``VmHWM`` is reset through ``/proc/self/clear_refs``)."""
    torch.set_num_threads(1)
    args = make(n, m, d, "cpu")
    step(IMPLS[impl], *make(8, 4, d, "cpu"))  # load the code paths on tiny inputs
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    step(IMPLS[impl], *args)
    return (_status_kib("VmHWM") - before) * 1024


def peak_bytes(impl: str, n: int, m: int, d: int, device: str) -> int:
    if device != "cpu":
        args = make(n, m, d, device)
        step(IMPLS[impl], *args)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(IMPLS[impl], *args)
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    code = f"from benchmarks.rbf import peak_child; print(peak_child({impl!r}, {n}, {m}, {d}))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def measure(n: int, m: int, d: int, device: str, rounds: int, min_run_time: float, threads: int) -> dict:
    x, c, gamma, grad = make(n, m, d, device)
    with torch.no_grad():
        diff = (F.rbf(x, c, gamma) - cdist_rbf(x, c, gamma)).abs().max().item()
    fns = {name: (lambda f=f: step(f, x, c, gamma, grad)) for name, f in IMPLS.items()}
    times = interleaved_medians(fns, rounds=rounds, min_run_time=min_run_time, threads=threads)
    row = {"n": n, "m": m, "d": d, "device": device, "max_abs_diff": diff,
           "time_s": {k: v["median_s"] for k, v in times.items()},
           "time_ratio": round_ratio(times, "torchff", "torch"), "saved": {}, "peak_bytes": {}}
    for name, f in IMPLS.items():
        out, rec = saved_tensors(f, x, c, gamma)
        row["saved"][name] = {"total": rec.total, "extra": rec.beyond(out, x, c, gamma)}
        del out
        row["peak_bytes"][name] = peak_bytes(name, n, m, d, device)
    return row


def mib(b: float) -> str:
    return f"{b / 2**20:.2f} MiB"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["4096x512x64", "8192x256x2", "2048x2048x16"],
                   help="N x M x D: rows, centers, features")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared 2-core machine a second thread mostly waits)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-run-time", type=float, default=0.2)
    p.add_argument("--json", default=None, help="also write the rows here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    print(f"RBF features fwd+bwd (input, centers, gamma), {a.device}, float32, {a.threads} threads, "
          f"{a.rounds} interleaved rounds; ratios torchff / torch (exp(-gamma * cdist(x, c)**2))")
    print(f"{'N x M x D':>16} {'torchff':>10} {'torch':>10} {'time ratio':>10} "
          f"{'saved extra ff':>15} {'saved extra torch':>18} {'peak ff':>12} {'peak torch':>12} {'peak ratio':>10}")
    for s in a.sizes:
        n, m, d = (int(v) for v in s.lower().split("x"))
        r = measure(n, m, d, a.device, a.rounds, a.min_run_time, a.threads)
        rows.append(r)
        pf, pt = r["peak_bytes"]["torchff"], r["peak_bytes"]["torch"]
        print(f"{s:>16} {r['time_s']['torchff'] * 1e3:8.2f}ms {r['time_s']['torch'] * 1e3:8.2f}ms "
              f"{r['time_ratio']:10.2f} {mib(r['saved']['torchff']['extra']):>15} "
              f"{mib(r['saved']['torch']['extra']):>18} {mib(pf):>12} {mib(pt):>12} "
              f"{(pf / pt if pt else float('nan')):10.2f}   (max |diff| {r['max_abs_diff']:.1e})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
