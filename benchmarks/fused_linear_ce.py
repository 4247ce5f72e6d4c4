"""Peak memory and time of the fused softmax output layer against ``Linear`` + ``cross_entropy``.

    python -m benchmarks.fused_linear_ce                   # N=8192, H=1024, C=32768, float32, CPU
    python -m benchmarks.fused_linear_ce --n 512 --c 4096  # a quick run

Peak memory of one forward + backward is measured in a fresh subprocess per variant, one at a
time: on CPU the growth of the peak resident set over a baseline taken after the inputs are
allocated (Linux: ``VmHWM``, reset at the baseline through ``/proc/self/clear_refs``; elsewhere
``ru_maxrss``); on CUDA ``torch.cuda.max_memory_allocated`` over the same baseline. Time is
measured in this process, interleaved (unfused, fused, unfused, fused, ...), with
``torch.utils.benchmark``; the ratio of the medians is reported. Targets: fused peak <= 1/4 of
the unfused peak, fused time <= 1.2x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import statistics

import torch
import torch.nn.functional as TF

import torchff.functional as F

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def make_inputs(n: int, h: int, c: int, dtype: torch.dtype, device: str, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = (torch.randn(n, h, generator=g) / h**0.5).to(device=device, dtype=dtype).requires_grad_()
    w = (torch.randn(c, h, generator=g) * 0.02).to(device=device, dtype=dtype).requires_grad_()
    b = torch.zeros(c, device=device, dtype=dtype).requires_grad_()
    t = torch.randint(0, c, (n,), generator=g).to(device)
    return x, w, b, t


def unfused_step(x, w, b, t, chunk_size=None):
    TF.cross_entropy(TF.linear(x, w, b), t).backward()


def fused_step(x, w, b, t, chunk_size=None):
    F.linear_cross_entropy(x, w, t, b, chunk_size=chunk_size).backward()


STEPS = {"unfused": unfused_step, "fused": fused_step}
#: targets: fused peak memory / unfused, fused time / unfused
PEAK_TARGET, TIME_TARGET = 0.25, 1.2


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> int:
    """Start a new peak-RSS window; returns the baseline in bytes.

    On Linux the peak (``VmHWM``) is reset to the current resident set by writing 5 to
    ``/proc/self/clear_refs``: ``ru_maxrss`` alone also counts the parent's resident set from
    before ``exec``, which hides small measurements. Elsewhere: ``ru_maxrss`` so far.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return 1024 * _proc_status_kib("VmRSS")
    except (OSError, TypeError):
        return _peak_rss()


def _peak_rss() -> int:
    hwm = _proc_status_kib("VmHWM")
    if hwm is not None:
        return 1024 * hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux and BSD report KiB


def measure_peak(variant: str, n: int, h: int, c: int, dtype: str, device: str, chunk_size, threads: int) -> dict:
    """One forward + backward of ``variant``; its peak memory above the inputs (call in a fresh process)."""
    torch.set_num_threads(threads)
    # warm up on a tiny problem: lazy initialisation (thread pools, kernels) is not the loss's memory
    STEPS[variant](*make_inputs(8, 8, 16, _DTYPES[dtype], device), chunk_size and 4)
    x, w, b, t = make_inputs(n, h, c, _DTYPES[dtype], device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated()
    else:
        base = _reset_peak_rss()
    STEPS[variant](x, w, b, t, chunk_size)
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _peak_rss() - base
    return {"variant": variant, "peak_bytes": int(peak)}


def peak_in_subprocess(variant: str, args) -> int:
    cmd = [sys.executable, "-m", "benchmarks.fused_linear_ce", "--worker", variant,
           "--n", str(args.n), "--h", str(args.h), "--c", str(args.c), "--dtype", args.dtype,
           "--device", args.device, "--threads", str(args.threads)]
    if args.chunk_size:
        cmd += ["--chunk-size", str(args.chunk_size)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_bytes"]


def interleaved_times(args) -> dict:
    """Median seconds per forward + backward of each variant, measured A, B, A, B, ..."""
    from torch.utils.benchmark import Timer

    torch.set_num_threads(args.threads)
    x, w, b, t = make_inputs(args.n, args.h, args.c, _DTYPES[args.dtype], args.device)
    sync = "torch.cuda.synchronize()" if args.device == "cuda" else ""
    timers = {
        name: Timer(
            stmt=f"step(x, w, b, t, chunk_size); x.grad = w.grad = b.grad = None; {sync}",
            globals={"step": fn, "x": x, "w": w, "b": b, "t": t, "chunk_size": args.chunk_size, "torch": torch},
            num_threads=args.threads,
        )
        for name, fn in STEPS.items()
    }
    for tm in timers.values():  # warm up
        tm.timeit(1)
    samples = {name: [] for name in timers}
    for _ in range(args.repeats):
        for name, tm in timers.items():
            samples[name].append(tm.timeit(1).median)
    return {name: statistics.median(v) for name, v in samples.items()}


def run(args) -> dict:
    peaks = {v: peak_in_subprocess(v, args) for v in ("unfused", "fused")}
    times = interleaved_times(args) if args.repeats > 0 else {}
    result = {
        "n": args.n, "h": args.h, "c": args.c, "dtype": args.dtype, "device": args.device,
        "threads": args.threads, "chunk_size": args.chunk_size,  # None: the library's default
        "peak_bytes": peaks, "peak_ratio": peaks["fused"] / max(1, peaks["unfused"]),
        "seconds": times,
        "time_ratio": (times["fused"] / times["unfused"]) if times else None,
    }
    return result


def format_result(r: dict) -> str:
    mib = 2**20
    lines = [
        f"fused linear cross-entropy, N={r['n']} H={r['h']} C={r['c']} {r['dtype']} on {r['device']} "
        f"({r['threads']} threads, chunk_size={r['chunk_size'] or 'default'})",
        f"  peak memory: unfused {r['peak_bytes']['unfused'] / mib:.0f} MiB, fused "
        f"{r['peak_bytes']['fused'] / mib:.0f} MiB, ratio {r['peak_ratio']:.3f} (target <= {PEAK_TARGET})",
    ]
    if r["seconds"]:
        lines.append(
            f"  forward+backward: unfused {r['seconds']['unfused']:.3f} s, fused {r['seconds']['fused']:.3f} s, "
            f"ratio {r['time_ratio']:.3f} (target <= {TIME_TARGET})"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--h", type=int, default=1024)
    p.add_argument("--c", type=int, default=32768)
    p.add_argument("--dtype", default="float32", choices=sorted(_DTYPES))
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (0: memory only)")
    p.add_argument("--json", default=None, help="also write the result to this JSON file")
    p.add_argument("--worker", choices=sorted(STEPS), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(measure_peak(args.worker, args.n, args.h, args.c, args.dtype, args.device,
                                      args.chunk_size, args.threads)))
        return None
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available; nothing to do")
        return None
    result = run(args)
    print(format_result(result))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
