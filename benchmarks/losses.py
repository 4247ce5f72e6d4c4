"""Forward + backward time and saved bytes of torchff's cross-entropy and BCE-with-logits vs torch.

Eager CPU float32, interleaved timing (torchff, torch, torchff, torch, ...) with
``torch.utils.benchmark.Timer.blocked_autorange``. On a shared machine the load drifts, so each
round's ratio (torchff / torch, measured back to back) is kept and their median reported, next to
the median times and the ratio of the best rounds (the least disturbed by other processes).

    PYTHONPATH=. python benchmarks/losses.py [--rounds 9] [--min-run-time 0.25]
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as TF
from torch.utils.benchmark import Timer

import torchff.functional as F
from torchff.testing import saved_tensors


def cases():
    g = torch.Generator().manual_seed(0)
    z_ce = torch.randn(4096, 1000, generator=g)
    t_ce = torch.randint(0, 1000, (4096,), generator=g)
    z_bce = torch.randn(4096, 1024, generator=g)
    y_bce = torch.randint(0, 2, (4096, 1024), generator=g).float()
    return {
        "cross_entropy (4096x1000, index targets, mean)": (F.cross_entropy, TF.cross_entropy, z_ce, t_ce),
        "binary_cross_entropy_with_logits (4096x1024, mean)": (
            F.binary_cross_entropy_with_logits,
            TF.binary_cross_entropy_with_logits,
            z_bce,
            y_bce,
        ),
    }


def fwd_bwd(fn, z, target):
    x = z.detach().requires_grad_()

    def run():
        fn(x, target).backward()
        x.grad = None

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--min-run-time", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, (ours, theirs, z, target) in cases().items():
        times = {"torchff": [], "torch": []}
        runs = {"torchff": fwd_bwd(ours, z, target), "torch": fwd_bwd(theirs, z, target)}
        for _ in range(args.rounds):  # interleaved: A, B, A, B, ...
            for key, run in runs.items():
                m = Timer("run()", globals={"run": run}).blocked_autorange(min_run_time=args.min_run_time)
                times[key].append(m.median)
        saved = {}
        for key, fn in (("torchff", ours), ("torch", theirs)):
            x = z.detach().requires_grad_()
            out, rec = saved_tensors(fn, x, target)
            saved[key] = rec.total
            del out
        t_ours, t_torch = statistics.median(times["torchff"]), statistics.median(times["torch"])
        ratios = sorted(a / b for a, b in zip(times["torchff"], times["torch"]))
        print(name)
        print(
            f"  fwd+bwd  torchff {t_ours * 1e3:8.2f} ms   torch {t_torch * 1e3:8.2f} ms   "
            f"ratio {statistics.median(ratios):.3f} (per-round median; range {ratios[0]:.2f}-{ratios[-1]:.2f})"
        )
        t_min_ours, t_min_torch = min(times["torchff"]), min(times["torch"])
        print(
            f"  best     torchff {t_min_ours * 1e3:8.2f} ms   torch {t_min_torch * 1e3:8.2f} ms   "
            f"ratio {t_min_ours / t_min_torch:.3f} (least disturbed rounds)"
        )
        print(
            f"  saved    torchff {saved['torchff'] / 2**20:8.2f} MiB  torch {saved['torch'] / 2**20:8.2f} MiB  "
            f"ratio {saved['torchff'] / saved['torch']:.3f}"
        )


if __name__ == "__main__":
    main()
