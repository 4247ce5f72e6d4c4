"""Forward+backward time and saved-for-backward bytes of torchff's activations vs torch's.

Eager, CPU, float32, a 4096x1024 input, the gradient taken with ``torch.autograd.grad``.
Each op's two sides are timed interleaved (torchff, torch, torchff, torch, ...) with
``torch.utils.benchmark.Timer.blocked_autorange``, so that load from other processes falls on
both sides alike. Reported: the median over rounds of each side's median, their ratio, and the
ratio of the fastest blocks (the least disturbed runs, a steadier estimate on a busy machine).

Saved bytes are counted with ``torchff.testing.saved_tensors`` (de-duplicated by storage):
``saved`` is everything the op keeps, ``extra`` what it keeps beyond its output (which the
next layer, e.g. a Linear, keeps anyway) and beyond its parameters.

    python benchmarks/activations.py [--rounds 7] [--threads 2] [--only softplus,prelu]

(from the repository root, with torchff installed or ``PYTHONPATH=.``)
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as TF
from torch.utils.benchmark import Timer

import torchff.functional as FF
from torchff.testing import saved_tensors

SHAPE = (4096, 1024)


def _step_ref(x):
    # torch has no differentiable step; this idiom has the same values (but step(nan) = 1)
    # and zero gradient
    return torch.sign(x).add(1.0).clamp(max=1.0)


def _step_ste_ref(x):
    # the usual straight-through idiom: forward the step, backward clamp(x, -1, 1)'s gradient
    c = x.clamp(-1.0, 1.0)
    return c + (_step_ref(x.detach()) - c.detach())


def cases() -> dict:
    c = SHAPE[1]
    g = torch.Generator().manual_seed(1)
    w1 = torch.tensor([0.25])
    wc = torch.rand(c, generator=g) * 0.5 + 0.05
    wm = torch.randn(c, generator=g) * 0.5
    return {  # name: (torchff fn, torch fn, extra args; tensors among them are parameters)
        "relu": (FF.relu, TF.relu, ()),
        "leaky_relu": (FF.leaky_relu, TF.leaky_relu, (0.01,)),
        "leaky_relu(-0.5)": (FF.leaky_relu, TF.leaky_relu, (-0.5,)),
        "prelu scalar": (FF.prelu, TF.prelu, (w1,)),
        "prelu per-channel": (FF.prelu, TF.prelu, (wc,)),
        "prelu mixed-sign": (FF.prelu, TF.prelu, (wm,)),
        "abs_relu": (FF.abs_relu, torch.abs, ()),
        "softplus": (FF.softplus, TF.softplus, ()),
        "softplus(beta=2)": (FF.softplus, TF.softplus, (2.0, 20.0)),
        "sigmoid": (FF.sigmoid, torch.sigmoid, ()),
        "binary_step": (FF.binary_step, _step_ref, ()),
        "binary_step(ste)": (lambda x: FF.binary_step(x, ste=True), _step_ste_ref, ()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-run-time", type=float, default=0.2)
    p.add_argument("--only", default="", help="comma-separated substrings of op names")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(SHAPE, generator=gen) * 3).requires_grad_()
    grad = torch.randn(SHAPE, generator=gen)
    print(f"torch {torch.__version__}, {a.threads} threads, float32 {SHAPE[0]}x{SHAPE[1]}, "
          f"{a.rounds} interleaved rounds")
    print(f"{'op':20s} {'torchff ms':>10s} {'torch ms':>9s} {'ratio':>6s} {'(fastest)':>9s}   "
          f"{'saved MiB':>9s} {'torch':>6s} {'ratio':>5s}   {'extra MiB':>9s} {'torch':>6s}")
    for name, (ours, ref, extra) in cases().items():
        if a.only and not any(s in name for s in a.only.split(",")):
            continue
        args = [t.clone().requires_grad_() if isinstance(t, torch.Tensor) else t for t in extra]
        wrt = [x] + [t for t in args if isinstance(t, torch.Tensor)]

        def step(fn):
            return lambda: torch.autograd.grad(fn(x, *args), wrt, grad)

        fa, fb = step(ours), step(ref)
        ra, rb = [], []
        for _ in range(a.rounds):
            ra.append(Timer("f()", globals={"f": fa}).blocked_autorange(min_run_time=a.min_run_time))
            rb.append(Timer("f()", globals={"f": fb}).blocked_autorange(min_run_time=a.min_run_time))
        ma, mb = statistics.median(m.median for m in ra), statistics.median(m.median for m in rb)
        fastest = min(min(m.times) for m in ra) / min(min(m.times) for m in rb)
        oa, sa = saved_tensors(ours, x, *args)
        ob, sb = saved_tensors(ref, x, *args)
        params = [t for t in args if isinstance(t, torch.Tensor)]
        mib = 2.0 ** 20
        print(f"{name:20s} {ma * 1e3:10.2f} {mb * 1e3:9.2f} {ma / mb:6.2f} {fastest:9.2f}   "
              f"{sa.total / mib:9.2f} {sb.total / mib:6.2f} {sa.total / max(sb.total, 1):5.2f}   "
              f"{sa.beyond(oa, *params) / mib:9.2f} {sb.beyond(ob, *params) / mib:6.2f}")
        del oa, ob


if __name__ == "__main__":
    main()
