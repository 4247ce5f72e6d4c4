"""The side-by-side benchmark suite: every torchff op and module against its torch counterpart.

    python -m benchmarks.run                   # every group; writes docs/benchmarks.md and .json
    python -m benchmarks.run --quick           # every group, shorter timings (results/latest.*)
    python -m benchmarks.run --smoke           # tiny sizes, seconds (tests/test_benchmarks.py)
    python -m benchmarks.run --groups traffic  # one group: train, train_mlp, large, compiled, traffic, linear_ce
    python -m benchmarks.run --device cuda     # the timed groups on the GPU, with GB/s against its peak

Groups (CPU, float32, eager unless said):

* ``train``: every op at the sizes MLPs train at, (64, 64) and (256, 10), 1 thread, forward +
  backward of the op alone;
* ``train_mlp``: one SGD step (zero_grad, forward, ``CrossEntropyLoss``, backward, step) of
  2-64-64-2 at batch 64 and 784-256-256-10 at batch 128, each hidden activation of ReLU,
  LeakyReLU, PReLU and Softplus: a ``torch.nn`` model against a copy converted with
  ``torchff.nn.convert`` (with ``torchff.nn.CrossEntropyLoss``), with the bytes saved for backward;
* ``large``: every op at 4096 x 1024 (2 threads), with the bytes it saves for backward placed as
  in a network (see :mod:`benchmarks.ops`), and a 784-1024-1024-10 MLP step at batch 512;
* ``compiled``: every op under ``torch.compile`` (inductor) on both sides, at 4096 x 1024;
* ``traffic``: the CUDA path without a GPU: per op, forward + backward, the kernels launched,
  the bytes read + written and the host syncs, counted on fake CUDA tensors
  (:mod:`benchmarks.traffic`), beside torch's op;
* ``linear_ce``: ``torchff.functional.linear_cross_entropy`` against ``Linear`` +
  ``cross_entropy``: peak memory (each in its own process) and time (:mod:`benchmarks.fused_linear_ce`).

Timing: ``torch.utils.benchmark`` blocks, interleaved (torchff, torch, torchff, torch, ... for a
number of rounds); the ratio torchff / torch is the median of the per-round ratios, so load that
drifts during the run falls on both sides alike.

With ``--device cuda`` (skipped cleanly without a GPU) the timed groups run on the GPU; the
``large`` group uses 8192 x 8192 inputs (64 Mi elements) and reports the achieved bandwidth
(bytes from the traffic count, over the measured time) against the device's peak
(:func:`peak_bandwidth`), and the MLP steps report peak memory.

A complete CPU run (no ``--smoke``/``--quick``/``--groups``/``--device cuda``) writes
``docs/benchmarks.md`` (the tables, the machine and the date) and ``docs/benchmarks.json``;
every other run writes ``benchmarks/results/latest.{md,json}`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass

try:
    import resource
except ImportError:  # (not on Windows)
    resource = None

import torch
from torch import nn

import torchff
from benchmarks import fused_linear_ce, mlp, ops, traffic
from benchmarks.common import (
    Sizes, forward_backward, interleaved_medians, peak_cuda_bytes, ratio, round_ratio, saved_bytes,
)

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
DOCS_OUT = os.path.join(_ROOT, "docs", "benchmarks.json")
DEFAULT_OUT = os.path.join(_HERE, "results", "latest.json")
GROUPS = ("train", "train_mlp", "large", "compiled", "traffic", "linear_ce")

#: the issues' targets, torchff / torch (time, saved bytes), per op and group
TIME_TARGET = {"default": 1.10, "prelu": 0.5, "prelu_channels": 0.5, "softplus": 0.5, "bce_with_logits": 0.5}
#: saved bytes (#12): never above torch's; 1 byte per element where torch keeps 4 for leaky_relu,
#: abs and the negative-slope cases; maxout's uint8 winner against torch's int64 index. PReLU and
#: softplus keep what torch keeps (the input): the output, which the earlier 0.5 targets assumed,
#: is the user's to change in place (#12 item 4), and the derivatives need the input's values.
SAVED_TARGET = {"default": 1.0, "leaky_relu": 0.25, "leaky_relu_neg": 0.25, "abs": 0.25, "maxout": 0.125,
                "maxout_linear": 0.125}
TRAIN_TIME_TARGET = 1.5
TRAIN_MLP_TIME_TARGET = 1.15
MLP_TIME_TARGET = 1.05
#: activations saved in the 784-1024-1024-10 step, torchff / torch: maxout's uint8 winner against
#: torch's int64 index; the others keep what torch keeps, except leaky_relu (MLP_SAVED_LESS)
MLP_SAVED_TARGET = {"maxout": 0.6}
#: bytes per hidden element torchff keeps less than torch: torch keeps 4 for leaky_relu's input and
#: 4 for the next Linear's input, torchff a 1-byte mask and the Linear's input. The target ratio is
#: then 1 - 3 h / (torch's activations), h the hidden elements: the loss's saved tensors (the same on
#: both sides) count in both, so the ratio is a little above (1 + 4) / 8
MLP_SAVED_LESS = {"leaky_relu": 3}
COMPILED_TIME_TARGET = 1.05
CUDA_TIME_TARGET = 1.0
CUDA_BANDWIDTH_TARGET = 0.8  # of the device's peak, elementwise ops at 64 Mi elements

#: peak memory bandwidth (GB/s) by device name, when the properties do not give the memory clock
PEAK_GBPS = {"H200": 4800.0, "H100 SXM": 3350.0, "H100 PCIe": 2000.0, "H100": 3350.0, "A100-SXM4-80GB": 2039.0,
             "A100 80GB PCIe": 1935.0, "A100": 1555.0, "L40S": 864.0, "L4": 300.0, "A10": 600.0, "V100": 900.0,
             "T4": 320.0, "RTX 4090": 1008.0, "RTX 3090": 936.0}


@dataclass
class Plan:
    """Sizes and timing of one run (full, quick or smoke)."""

    train_shapes: tuple = ((64, 64), (256, 10))
    train_pieces: int = 2
    train_mlps: tuple = (((2, 64, 64, 2), 64), ((784, 256, 256, 10), 128))
    train_threads: int = 1
    large: Sizes = None
    cuda_large: Sizes = None
    linear_ce: tuple = (4096, 256, 16384)  # N, H, C: logits 16x the weight
    timing: dict = None  # group -> (rounds, min_run_time)
    compile_ops: tuple | None = None  # None: every op

    @classmethod
    def full(cls) -> "Plan":
        return cls(large=Sizes(), cuda_large=Sizes(rows=8192, features=8192),
                   timing={"train": (7, 0.05), "train_mlp": (7, 0.1), "large": (4, 0.2), "compiled": (7, 0.2)})

    @classmethod
    def quick(cls) -> "Plan":
        p = cls.full()
        p.timing = {"train": (3, 0.03), "train_mlp": (3, 0.05), "large": (2, 0.1), "compiled": (2, 0.1)}
        p.linear_ce = (2048, 256, 8192)
        return p

    @classmethod
    def smoke(cls) -> "Plan":
        return cls(train_shapes=((8, 8), (16, 10)), train_mlps=(((2, 8, 8, 2), 8), ((16, 16, 16, 4), 16)),
                   large=Sizes.smoke(), cuda_large=Sizes.smoke(), linear_ce=(256, 16, 512),
                   timing={g: (2, 0.005) for g in ("train", "train_mlp", "large", "compiled")},
                   compile_ops=("relu", "cross_entropy"))  # inductor takes seconds per function


# --------------------------------------------------------------------------------------
# the machine
# --------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_bandwidth(index: int = 0, override: float | None = None) -> tuple[float | None, str]:
    """The device's peak memory bandwidth in GB/s, and where the number comes from.

    ``override`` (``--peak-gbps``) wins; else ``2 x memory_clock_rate x memory_bus_width / 8``
    from ``torch.cuda.get_device_properties`` (double data rate; the clock is in kHz, the bus in
    bits); else the :data:`PEAK_GBPS` table by device name; else unknown.
    """
    if override:
        return float(override), "--peak-gbps"
    props = torch.cuda.get_device_properties(index)
    clock_khz, bus_bits = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
    if clock_khz and bus_bits:
        return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9, "2 x memory_clock_rate x memory_bus_width / 8"
    for name, gbps in PEAK_GBPS.items():
        if name in props.name:
            return gbps, f"table ({name})"
    return None, "unknown (pass --peak-gbps)"


def _machine(args) -> dict:
    info = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchff": torchff.__version__,
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
        info["cuda_peak_gbps"], info["cuda_peak_source"] = peak_bandwidth(0, args.peak_gbps)
    return info


# --------------------------------------------------------------------------------------
# per op
# --------------------------------------------------------------------------------------
def _target(table: dict, name: str) -> float:
    base = name.split("_k")[0]  # maxout_k4 -> maxout, maxout_linear_k4 -> maxout_linear
    return table.get(base, table["default"])


def _sandwich_saved(case: ops.OpCase, fn, sizes: Sizes, device, dtype) -> dict:
    """Saved bytes of ``x -> Linear -> op -> Linear`` (``hidden``) or ``x -> layer -> Linear`` (``layer``)."""
    gen = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn((sizes.rows, sizes.features), generator=gen).to(device=device, dtype=dtype)
    first = torch.nn.Linear(sizes.features, sizes.features, device=device, dtype=dtype)
    last = torch.nn.Linear(case.out_features, case.out_features, device=device, dtype=dtype)
    kept: list[torch.Tensor] = []

    def network(x):
        h = fn(first(x), *case.args[1:]) if case.kind == "hidden" else fn(x)
        kept.append(h)
        return last(h)

    params = list(first.parameters()) + list(last.parameters()) + ops.parameters(fn) + \
        [a for a in case.args[1:] if isinstance(a, torch.Tensor)]
    return saved_bytes(network, [x], free=lambda out: [x, *kept, *params])


def _saved(case: ops.OpCase, fn, sizes, device, dtype) -> dict:
    if case.kind == "loss":
        return saved_bytes(fn, case.args, free=lambda out: case.targets)
    return _sandwich_saved(case, fn, sizes, device, dtype)


def _parity(case: ops.OpCase) -> float:
    with torch.no_grad():
        a, b = case.torchff(*case.args), case.torch(*case.args)
    if a.shape != b.shape:
        raise AssertionError(f"{case.name}: torchff output shape {tuple(a.shape)} != torch {tuple(b.shape)}")
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _record_times(row: dict, times: dict, a: str = "torchff", b: str = "torch") -> None:
    """Median times, and the ratio ``a / b`` as the median of the per-round ratios."""
    row["time_s"] = {k: v["median_s"] for k, v in times.items()}
    row["time_rounds_s"] = {k: v["rounds_s"] for k, v in times.items()}
    row["time_ratio"] = round_ratio(times, a, b)


def _case_bytes(name: str, sizes: Sizes) -> dict:
    """Bytes read + written by each side's forward + backward on the CUDA path (the traffic count)."""
    (case,) = ops.build_cases(sizes, "cpu", names=[name])
    wrt = [i for i, a in enumerate(case.args) if any(a is w for w in case.wrt)]
    return {side: traffic.count_forward_backward(getattr(case, side), case.args, wrt).bytes()
            for side in ("torchff", "torch")}


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _counting_faults(runs: dict) -> tuple[dict, dict]:
    """``runs`` wrapped to count the process's minor page faults during each call (the pages a
    fresh buffer is faulted in with), and the counts: side -> {"calls", "faults"}. Each run is
    called twice first (uncounted), so the counts are of calls after the first allocations."""
    counts = {k: {"calls": 0, "faults": 0} for k in runs}

    def wrap(run, c):
        def counted():
            before = _minor_faults()
            run()
            c["faults"] += _minor_faults() - before
            c["calls"] += 1
        return counted

    for run in runs.values():
        run(), run()
    return {k: wrap(run, counts[k]) for k, run in runs.items()}, counts


def run_case(case: ops.OpCase, sizes: Sizes, device: str, opts, *, group: str, timing, threads: int,
             compiled: bool = False, with_saved: bool = False, peak_gbps: float | None = None) -> dict:
    row = {"group": group, "name": case.name, "kind": case.kind, "device": device,
           "mode": "compiled" if compiled else "eager", "shape": [sizes.rows, sizes.features],
           "threads": threads, "note": case.note, "expected_extra": case.expected_extra, "status": "ok"}
    fns = {"torchff": case.torchff, "torch": case.torch}
    row["parity_max_abs_diff"] = _parity(case)
    if compiled:
        torch._dynamo.reset()
        fns = {k: torch.compile(v) for k, v in fns.items()}
    if with_saved:
        row["saved_bytes"] = {k: _saved(case, fn, sizes, device, torch.float32) for k, fn in fns.items()}
        row["saved_ratio"] = ratio(row["saved_bytes"]["torchff"]["extra"], row["saved_bytes"]["torch"]["extra"])
        row["saved_target"] = _target(SAVED_TARGET, case.name)
    runs = {k: forward_backward(fn, case.args, case.wrt + ops.parameters(case.torchff if k == "torchff" else case.torch))
            for k, fn in fns.items()}
    faults = None
    if group in ("large", "compiled") and device == "cpu" and resource is not None:  # (a few µs a call)
        runs, faults = _counting_faults(runs)
    rounds, min_run_time = timing
    times = interleaved_medians(runs, rounds=rounds, min_run_time=min_run_time, threads=threads)
    _record_times(row, times)
    if faults is not None:
        row["faults_per_call"] = {k: c["faults"] / c["calls"] for k, c in faults.items()}
    if device == "cuda":
        row["time_target"] = CUDA_TIME_TARGET
        row["peak_bytes"] = {k: peak_cuda_bytes(r) for k, r in runs.items()}
        if group == "large" and case.kind != "layer":  # (a matmul layer is not bandwidth-bound)
            moved = _case_bytes(case.name, sizes)
            row["bytes_moved"] = moved
            row["gbps"] = {k: moved[k] / row["time_s"][k] / 1e9 for k in moved}
            if peak_gbps:
                row["fraction_of_peak"] = {k: v / peak_gbps for k, v in row["gbps"].items()}
    elif compiled:
        row["time_target"] = COMPILED_TIME_TARGET
    elif case.name in ops.REFERENCES:
        row["time_target"] = None  # a reference, not a torchff op
    elif group == "train":
        row["time_target"] = TRAIN_TIME_TARGET
    else:
        row["time_target"] = _target(TIME_TARGET, case.name)
    return row


def _error_row(base: dict, e: Exception) -> dict:
    return {**base, "status": "error", "reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=4)}


def run_ops(sizes: Sizes, device: str, opts, names, cases=None, **kw) -> list[dict]:
    rows = []
    for case in ops.build_cases(sizes, device, names=names, cases=cases):
        base = {"group": kw["group"], "device": device, "mode": "compiled" if kw.get("compiled") else "eager",
                "shape": [sizes.rows, sizes.features]}
        if isinstance(case, tuple):
            name, err = case
            rows.append({**base, "name": name, "status": "missing", "reason": str(err)})
            continue
        try:
            rows.append(run_case(case, sizes, device, opts, **kw))
        except Exception as e:  # one broken op must not hide the others' numbers
            rows.append(_error_row({**base, "name": case.name}, e))
        _progress(rows[-1])
    return rows


# --------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------
def _mlp_row(group, act, dims, batch, device, nets, losses, loss_name, timing, threads, compiled=False):
    row = {"group": group, "activation": act, "device": device, "mode": "compiled" if compiled else "eager",
           "dims": list(dims), "batch": batch, "threads": threads, "loss": loss_name, "status": "ok"}
    gen = torch.Generator(device="cpu").manual_seed(2)
    x = torch.randn((batch, dims[0]), generator=gen).to(device)
    y = torch.randint(0, dims[-1], (batch,), generator=gen).to(device)
    with torch.no_grad():
        row["parity_max_abs_diff"] = float((nets["torchff"](x) - nets["torch"](x)).abs().max())
    if not compiled:
        row["saved_bytes"] = {}
        for k, net in nets.items():
            s = saved_bytes(lambda x: losses[k](net(x), y), [x], free=lambda out: [x, y, *net.parameters()])
            row["saved_bytes"][k] = {"total": s["total"], "activations": s["extra"]}
        sb = row["saved_bytes"]
        row["saved_ratio_total"] = ratio(sb["torchff"]["total"], sb["torch"]["total"])
        row["saved_ratio_activations"] = ratio(sb["torchff"]["activations"], sb["torch"]["activations"])
    if compiled:
        torch._dynamo.reset()
    steps = {k: mlp.training_step(net, losses[k], x, y, compiled) for k, net in nets.items()}
    rounds, min_run_time = timing
    times = interleaved_medians(steps, rounds=rounds, min_run_time=min_run_time, threads=threads)
    _record_times(row, times)
    if device == "cuda":
        row["peak_bytes"] = {k: peak_cuda_bytes(s) for k, s in steps.items()}
    return row


def run_train_mlp(plan: Plan, device: str, opts, activations) -> list[dict]:
    """Training-size steps: a torch model against its ``torchff.nn.convert``-ed copy."""
    rows = []
    for dims, batch in plan.train_mlps:
        for act in activations:
            try:
                torch.manual_seed(0)
                ff, ref = mlp.torch_and_converted(act, dims, device, torch.float32)
                row = _mlp_row("train_mlp", act, dims, batch, device, {"torchff": ff, "torch": ref},
                               {"torchff": torchff.nn.CrossEntropyLoss(), "torch": nn.CrossEntropyLoss()},
                               "torchff.nn.CrossEntropyLoss", opts.timing("train_mlp"), plan.train_threads)
                row["time_target"] = CUDA_TIME_TARGET if device == "cuda" else TRAIN_MLP_TIME_TARGET
            except Exception as e:
                row = _error_row({"group": "train_mlp", "activation": act, "device": device, "mode": "eager",
                                  "dims": list(dims), "batch": batch}, e)
            rows.append(row)
            _progress(row)
    return rows


def _mlp_saved_target(act: str, dims, batch: int, row: dict) -> float:
    if act not in MLP_SAVED_LESS:
        return MLP_SAVED_TARGET.get(act, 1.0)
    hidden = batch * sum(dims[1:-1])
    return 1 - MLP_SAVED_LESS[act] * hidden / row["saved_bytes"]["torch"]["activations"]


def run_large_mlp(sizes: Sizes, device: str, opts, activations, threads: int) -> list[dict]:
    rows = []
    dims, dtype = sizes.mlp_dims, torch.float32
    for act in activations:
        try:
            torch.manual_seed(0)
            nets = {"torchff": mlp.build_mlp("torchff", act, dims, sizes.pieces, device, dtype),
                    "torch": mlp.build_mlp("torch", act, dims, sizes.pieces, device, dtype)}
            mlp.same_weights(nets["torchff"], nets["torch"])
            ff_loss, torch_loss, loss_name = mlp.loss_modules()
            row = _mlp_row("large", act, dims, sizes.mlp_batch, device, nets,
                           {"torchff": ff_loss, "torch": torch_loss}, loss_name, opts.timing("large"), threads)
            row["time_target"] = CUDA_TIME_TARGET if device == "cuda" else MLP_TIME_TARGET
            row["saved_target"] = _mlp_saved_target(act, dims, sizes.mlp_batch, row)
        except Exception as e:
            row = _error_row({"group": "large", "activation": act, "device": device, "mode": "eager",
                              "dims": list(dims), "batch": sizes.mlp_batch}, e)
        rows.append(row)
        _progress(row)
    return rows


# --------------------------------------------------------------------------------------
# the CUDA path's traffic, and the fused linear cross-entropy
# --------------------------------------------------------------------------------------
def run_traffic(sizes: Sizes, names) -> list[dict]:
    rows = []
    for case in ops.build_cases(sizes, "cpu", names=names):
        if isinstance(case, tuple):
            rows.append({"group": "traffic", "name": case[0], "status": "missing", "reason": str(case[1])})
            continue
        row = {"group": "traffic", "name": case.name, "kind": case.kind, "shape": [sizes.rows, sizes.features],
               "elementwise": case.name in ops.ELEMENTWISE, "status": "ok"}
        try:
            wrt = [i for i, a in enumerate(case.args) if any(a is w for w in case.wrt)]
            for side in ("torchff", "torch"):
                row[side] = traffic.count_forward_backward(getattr(case, side), case.args, wrt).summary()
            row["bytes_ratio"] = ratio(row["torchff"]["total"]["bytes"], row["torch"]["total"]["bytes"])
        except Exception as e:
            row = _error_row(row, e)
        rows.append(row)
        _progress(row)
    return rows


def run_linear_ce(plan: Plan, device: str, threads: int, smoke: bool) -> list[dict]:
    n, h, c = plan.linear_ce
    argv = ["--n", str(n), "--h", str(h), "--c", str(c), "--device", device, "--threads", str(threads),
            "--repeats", "1" if smoke else "3"]
    if smoke:
        argv += ["--chunk-size", "64"]
    row = {"group": "linear_ce", "device": device, "n": n, "h": h, "c": c, "status": "ok"}
    try:
        row.update(fused_linear_ce.run(fused_linear_ce.parse_args(argv)))
        row["peak_target"], row["time_target"] = fused_linear_ce.PEAK_TARGET, fused_linear_ce.TIME_TARGET
    except Exception as e:
        row = _error_row(row, e)
    rows = [row]
    _progress(row)
    return rows


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------
def _progress(row: dict) -> None:
    name = row.get("name") or f"mlp[{row.get('activation')}]" if row.get("group") != "linear_ce" else "linear_ce"
    where = f"{row.get('group')}, {row.get('device', 'fake cuda')}, {row.get('mode', '')}"
    if row.get("status") != "ok":
        print(f"  {name} ({where}): {row['status']}: {row.get('reason')}", file=sys.stderr)
    elif "time_ratio" in row:
        print(f"  {name} ({where}): time ratio {row['time_ratio']:.3f}", file=sys.stderr)
    else:
        print(f"  {name} ({where}): done", file=sys.stderr)


def _fmt_ratio(r, target=None) -> str:
    if r is None:
        return "-"
    s = f"{r:.2f}" if r != float("inf") else "inf"
    if target is not None:
        s += " ✓" if r <= target else " ✗"
    return s


def _fmt_bytes(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _fmt_time(s) -> str:
    if s is None:
        return "-"
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def _fmt_target(r: dict) -> str:
    t = r.get("time_target")
    return f"{_fmt_ratio(r['time_ratio'], t)} (≤ {t})" if t is not None else _fmt_ratio(r["time_ratio"])


def _threads(n: int) -> str:
    return f"{n} thread" + ("s" if n != 1 else "")


def _bad(r: dict, label: str) -> str:
    return f"| {label} | {r['status']}: {r.get('reason', '')} |"


def _md_train(rows: list[dict], device: str) -> list[str]:
    shapes = []
    for r in rows:
        if r["shape"] not in shapes:
            shapes.append(r["shape"])
    names = list(dict.fromkeys(r["name"] for r in rows))
    head = "| op |" + "".join(f" {a} x {b}: torchff | torch | ratio (target) |" for a, b in shapes)
    lines = [f"### Training sizes, {device}, {_threads(rows[0]['threads'])}, forward + backward", "", head,
             "|---|" + "---:|---:|---:|" * len(shapes)]
    for name in names:
        cells = []
        for shape in shapes:
            match = [r for r in rows if r["name"] == name and r["shape"] == shape]
            if not match:
                cells.append(" - | - | - |")
            elif match[0]["status"] != "ok":
                cells.append(f" {match[0]['status']} | - | - |")
            else:
                r = match[0]
                cells.append(f" {_fmt_time(r['time_s']['torchff'])} | {_fmt_time(r['time_s']['torch'])} | {_fmt_target(r)} |")
        lines.append(f"| {name} |" + "".join(cells))
    if any(n in ops.REFERENCES for n in names):
        lines += ["", "function_floor is not a torchff op: a bare Python `autograd.Function` (forward without ctx, "
                      "`setup_context`, its signature cached as torchff caches its Functions') calling torch's `relu` and "
                      "`threshold_backward`, against `torch.relu`. It is what any custom Function costs per call "
                      "here, the floor under every torchff op at these sizes."]
    return lines + [""]


def _md_mlp(rows: list[dict], title: str) -> list[str]:
    cuda = rows[0]["device"] == "cuda"
    head = "| model | batch | activation | torchff step | torch step | time ratio (target) |"
    sep = "|---|---:|---|---:|---:|---:|"
    if rows[0]["mode"] == "eager":
        head += " saved torchff (activations) | saved torch (activations) | activations ratio |"
        sep += "---:|---:|---:|"
    if cuda:
        head += " peak torchff | peak torch |"
        sep += "---:|---:|"
    lines = [title, "", head, sep]
    for r in rows:
        label = f"{'-'.join(map(str, r['dims']))} | {r['batch']} | {r['activation']}"
        if r["status"] != "ok":
            lines.append(_bad(r, label))
            continue
        t = r["time_s"]
        line = f"| {label} | {_fmt_time(t['torchff'])} | {_fmt_time(t['torch'])} | {_fmt_target(r)} |"
        if r["mode"] == "eager":
            sb = r["saved_bytes"]
            line += (f" {_fmt_bytes(sb['torchff']['total'])} ({_fmt_bytes(sb['torchff']['activations'])}) | "
                     f"{_fmt_bytes(sb['torch']['total'])} ({_fmt_bytes(sb['torch']['activations'])}) | "
                     f"{_fmt_ratio(r['saved_ratio_activations'], r.get('saved_target'))} |")
        if cuda:
            p = r.get("peak_bytes") or {}
            line += f" {_fmt_bytes(p.get('torchff'))} | {_fmt_bytes(p.get('torch'))} |"
        lines.append(line)
    return lines + ["", f"Loss: {rows[0].get('loss', '-')}; one SGD step: zero_grad, forward, loss, backward, step.", ""]


def _md_ops(rows: list[dict], title: str) -> list[str]:
    eager, cuda = rows[0]["mode"] == "eager", rows[0]["device"] == "cuda"
    saved = any("saved_bytes" in r for r in rows)
    gbps = any("gbps" in r for r in rows)
    faults = any("faults_per_call" in r for r in rows)
    head, sep = "| op | torchff fwd+bwd | torch fwd+bwd | time ratio (target) |", "|---|---:|---:|---:|"
    if faults:
        head += " page faults / call torchff | torch |"
        sep += "---:|---:|"
    if saved:
        head += " extra saved torchff | extra saved torch | saved ratio (target) |"
        sep += "---:|---:|---:|"
    if gbps:
        head += " GB/s torchff | GB/s torch | of peak torchff |"
        sep += "---:|---:|---:|"
    if cuda:
        head += " peak torchff | peak torch |"
        sep += "---:|---:|"
    lines = [title, "", head, sep]
    for r in rows:
        if r["status"] != "ok":
            lines.append(_bad(r, r["name"]))
            continue
        t = r["time_s"]
        line = f"| {r['name']} | {_fmt_time(t['torchff'])} | {_fmt_time(t['torch'])} | {_fmt_target(r)} |"
        if faults:
            f = r.get("faults_per_call") or {}
            line += "".join(f" {f[k]:.0f} |" if k in f else " - |" for k in ("torchff", "torch"))
        if saved:
            sb = r["saved_bytes"]
            line += (f" {_fmt_bytes(sb['torchff']['extra'])} | {_fmt_bytes(sb['torch']['extra'])} | "
                     f"{_fmt_ratio(r['saved_ratio'], r['saved_target'])} (≤ {r['saved_target']:g}) |")
        if gbps:
            g, f = r.get("gbps") or {}, r.get("fraction_of_peak") or {}
            target = CUDA_BANDWIDTH_TARGET if r["name"] in ops.ELEMENTWISE else None
            frac = _fmt_ratio(f.get("torchff"))
            if f.get("torchff") is not None and target is not None:
                frac = f"{f['torchff']:.2f} {'✓' if f['torchff'] >= target else '✗'} (≥ {target})"
            line += f" {g.get('torchff', 0):.0f} | {g.get('torch', 0):.0f} | {frac} |"
        if cuda:
            p = r.get("peak_bytes") or {}
            line += f" {_fmt_bytes(p.get('torchff'))} | {_fmt_bytes(p.get('torch'))} |"
        lines.append(line)
    if faults:
        lines += ["", "Page faults / call: the process's minor page faults per timed call, counted around each call "
                      "(4 KiB pages: a fresh 16 MiB buffer is 4096 of them, fewer where transparent huge "
                      "pages back it): how often a side faults in fresh buffers, which depends on whether "
                      "glibc's malloc hands it back freed memory as much as on the op."]
    return lines + [""]


def _md_traffic(rows: list[dict]) -> list[str]:
    shape = next((r["shape"] for r in rows if "shape" in r), None)
    lines = [
        f"### CUDA path traffic (counted on fake CUDA tensors, {shape[0]} x {shape[1]} float32; no GPU needed)", "",
        "Per op, forward + backward: kernels launched (forward + backward), bytes read + written, and host "
        "syncs, torchff beside torch. Targets: bytes ≤ torch's, one kernel per direction for elementwise "
        "ops, no host syncs. See `benchmarks/traffic.py` for what counts.", "",
        "| op | kernels torchff | kernels torch | bytes torchff | bytes torch | bytes ratio (≤ 1) | host syncs torchff | host syncs torch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(_bad(r, r["name"]))
            continue
        a, b = r["torchff"], r["torch"]
        k = f"{a['forward']['kernels']} + {a['backward']['kernels']}"
        if r.get("elementwise"):
            k += " ✓" if a["forward"]["kernels"] <= 1 and a["backward"]["kernels"] <= 1 else " ✗"
        syncs = f"{a['total']['syncs']} {'✓' if a['total']['syncs'] == 0 else '✗'}"
        lines.append(f"| {r['name']} | {k} | {b['forward']['kernels']} + {b['backward']['kernels']} | "
                     f"{_fmt_bytes(a['total']['bytes'])} | {_fmt_bytes(b['total']['bytes'])} | "
                     f"{_fmt_ratio(r['bytes_ratio'], 1.0)} | {syncs} | {b['total']['syncs']} |")
    lines += ["", "<details><summary>The kernels, in order (forward; backward)</summary>", ""]
    for r in rows:
        if r["status"] == "ok":
            for side in ("torchff", "torch"):
                s = r[side]
                lines.append(f"- {r['name']}, {side}: {', '.join(s['forward']['ops']) or '-'}; "
                             f"{', '.join(s['backward']['ops']) or '-'}")
    return lines + ["", "</details>", ""]


def _md_linear_ce(rows: list[dict]) -> list[str]:
    lines = ["### The fused softmax output layer (`linear_cross_entropy`) against `Linear` + `cross_entropy`", "",
             "Peak memory of one forward + backward above the inputs, each variant in its own process (CPU: "
             "peak resident set; CUDA: `max_memory_allocated`); time interleaved.", "",
             "| device | N x H -> C | peak unfused | peak fused | peak ratio (target) | time unfused | time fused | time ratio (target) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(_bad(r, r.get("device", "")))
            continue
        p, s = r["peak_bytes"], r.get("seconds") or {}
        lines.append(f"| {r['device']} | {r['n']} x {r['h']} -> {r['c']} | {_fmt_bytes(p['unfused'])} | "
                     f"{_fmt_bytes(p['fused'])} | {_fmt_ratio(r['peak_ratio'], r['peak_target'])} (≤ {r['peak_target']}) | "
                     f"{_fmt_time(s.get('unfused'))} | {_fmt_time(s.get('fused'))} | "
                     f"{_fmt_ratio(r.get('time_ratio'), r['time_target'])} (≤ {r['time_target']}) |")
    return lines + [""]


def to_markdown(result: dict) -> str:
    m = result["machine"]
    load = lambda v: ", ".join(f"{x:.1f}" for x in v) if v else "-"  # noqa: E731
    lines = [
        "# torchff benchmarks",
        "",
        "Generated by `python -m benchmarks.run`; do not edit by hand. Regenerate with "
        "`python -m benchmarks.run` (this file and `docs/benchmarks.json`).",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; {m['platform']}",
        f"- torch {m['torch']}, torchff {m['torchff']}, Python {m['python']}",
        f"- Threads: {result['threads']} (training sizes: {result['train_threads']})",
        f"- Load average: {load(m.get('load_average_start'))} at the start, {load(result.get('load_average_end'))} "
        f"at the end; run time {result.get('elapsed_s', 0):.0f} s",
        f"- Command: `{result['command']}`",
    ]
    if m.get("cuda_device"):
        lines.append(f"- GPU: {m['cuda_device']}, peak bandwidth {m.get('cuda_peak_gbps') or '?'} GB/s "
                     f"({m.get('cuda_peak_source')})")
    lines += [
        "",
        "Times are medians of interleaved runs (torchff, torch, torchff, torch, ...); each ratio torchff / torch "
        "is the median of the per-round ratios (✓ meets the target, ✗ does not). Extra saved: bytes saved for "
        "backward beyond what the surrounding Linear layers keep anyway (losses: beyond the targets).",
        "",
    ]
    ops_rows, mlp_rows = result["ops"], result["mlp"]
    for device in result["devices"]:
        train = [r for r in ops_rows if r["device"] == device and r["group"] == "train"]
        if train:
            lines += _md_train(train, device)
        tm = [r for r in mlp_rows if r["device"] == device and r["group"] == "train_mlp"]
        if tm:
            lines += _md_mlp(tm, f"### Training steps, {device}, {_threads(tm[0].get('threads', 1))}: "
                                 "a torch model against its `torchff.nn.convert`-ed copy")
        large = [r for r in ops_rows if r["device"] == device and r["group"] == "large"]
        if large:
            lines += _md_ops(large, f"### Ops, {device}, {large[0]['shape'][0]} x {large[0]['shape'][1]}, "
                                    f"{large[0]['threads']} threads, eager")
        lm = [r for r in mlp_rows if r["device"] == device and r["group"] == "large"]
        if lm:
            lines += _md_mlp(lm, f"### MLP training step, {device}, {lm[0].get('threads', '?')} threads, eager")
        comp = [r for r in ops_rows if r["device"] == device and r["group"] == "compiled"]
        if comp:
            lines += _md_ops(comp, f"### Ops, {device}, {comp[0]['shape'][0]} x {comp[0]['shape'][1]}, "
                                   "torch.compile (inductor) on both sides")
    if result.get("traffic"):
        lines += _md_traffic(result["traffic"])
    if result.get("linear_ce"):
        lines += _md_linear_ce(result["linear_ce"])
    for device, why in result.get("skipped_devices", {}).items():
        lines.append(f"{device}: skipped ({why}).")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
def _csv(value: str, allowed) -> list[str]:
    if value in ("all", ""):
        return list(allowed)
    if value == "none":
        return []
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown names {unknown}; choose from {list(allowed)}")
    return items


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="tiny sizes and short timings (seconds)")
    size.add_argument("--quick", action="store_true", help="full sizes, fewer and shorter timing rounds")
    p.add_argument("--groups", default="all", help=f"comma-separated subset of {list(GROUPS)}, or all")
    p.add_argument("--threads", type=int, default=2, help="threads of the large and compiled groups")
    p.add_argument("--rounds", type=int, help="interleaved rounds per comparison (every group)")
    p.add_argument("--min-run-time", type=float, help="seconds per timing turn (every group)")
    p.add_argument("--ops", default="all", help=f"comma-separated subset of {list(ops.CASES)}, or all/none")
    p.add_argument("--mlp", default="all", help=f"comma-separated subset of {list(mlp.MLP_ACTIVATIONS)}, or all/none")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"],
                   help="cpu (default); cuda: the timed groups on the GPU; auto: both when a GPU is present")
    p.add_argument("--peak-gbps", type=float, help="the GPU's peak memory bandwidth (default: from its properties)")
    p.add_argument("--out", help="JSON output (the markdown goes next to it, .md); default: docs/benchmarks.json "
                                 "for a complete CPU run, else benchmarks/results/latest.json")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    plan = Plan.smoke() if args.smoke else Plan.quick() if args.quick else Plan.full()

    def timing(group: str) -> tuple[int, float]:
        rounds, mrt = plan.timing[group]
        return args.rounds or rounds, args.min_run_time or mrt

    args.timing = timing
    groups = _csv(args.groups, GROUPS)
    devices, skipped = [], {}
    if args.device in ("auto", "cpu"):
        devices.append("cpu")
    if args.device in ("auto", "cuda"):
        if torch.cuda.is_available():
            devices.append("cuda")
        else:
            skipped["cuda"] = "no CUDA device"
    op_names = _csv(args.ops, ops.CASES)
    mlp_acts = _csv(args.mlp, mlp.MLP_ACTIVATIONS)
    train_acts = [a for a in mlp_acts if a in mlp.TRAIN_ACTIVATIONS]
    complete = (not args.smoke and not args.quick and groups == list(GROUPS) and devices == ["cpu"]
                and args.ops == "all" and args.mlp == "all" and not args.rounds and not args.min_run_time)
    out = args.out or (DOCS_OUT if complete else DEFAULT_OUT)
    start = time.perf_counter()
    result = {
        "machine": _machine(args),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.run " + " ".join(argv),
        "threads": args.threads,
        "train_threads": plan.train_threads,
        "groups": groups,
        "timing": {g: list(timing(g)) for g in plan.timing},
        "sizes": {"train": [list(s) for s in plan.train_shapes], "train_pieces": plan.train_pieces,
                  "train_mlps": [[list(d), b] for d, b in plan.train_mlps],
                  "large": [plan.large.rows, plan.large.features], "pieces": plan.large.pieces,
                  "mlp_dims": list(plan.large.mlp_dims), "mlp_batch": plan.large.mlp_batch,
                  "cuda_large": [plan.cuda_large.rows, plan.cuda_large.features], "linear_ce": list(plan.linear_ce)},
        "devices": devices,
        "skipped_devices": skipped,
        "ops": [], "mlp": [], "traffic": [], "linear_ce": [],
    }
    peak = result["machine"].get("cuda_peak_gbps")
    for device in devices:
        large = plan.cuda_large if device == "cuda" else plan.large
        if "train" in groups:
            for rows_, feats in plan.train_shapes:
                sizes = Sizes(rows=rows_, features=feats, pieces=plan.train_pieces)
                result["ops"] += run_ops(sizes, device, args, op_names, group="train", timing=timing("train"),
                                         threads=plan.train_threads)
                result["ops"] += run_ops(sizes, device, args, None, cases=ops.REFERENCES, group="train",
                                         timing=timing("train"), threads=plan.train_threads)
        if "train_mlp" in groups:
            result["mlp"] += run_train_mlp(plan, device, args, train_acts)
        if "large" in groups:
            result["ops"] += run_ops(large, device, args, op_names, group="large", timing=timing("large"),
                                     threads=args.threads, with_saved=device == "cpu", peak_gbps=peak)
            result["mlp"] += run_large_mlp(plan.large, device, args, mlp_acts, args.threads)
        if "compiled" in groups:
            names = [n for n in op_names if plan.compile_ops is None or n in plan.compile_ops]
            result["ops"] += run_ops(plan.large, device, args, names, group="compiled",
                                     timing=timing("compiled"), threads=args.threads, compiled=True)
        if "linear_ce" in groups:
            result["linear_ce"] += run_linear_ce(plan, device, args.threads, args.smoke)
    if "traffic" in groups:
        result["traffic"] = run_traffic(plan.large, op_names)
    result["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    result["elapsed_s"] = time.perf_counter() - start

    table = to_markdown(result)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write(table)
    result["out"] = out
    print(table)
    print(f"wrote {out} and {os.path.splitext(out)[0]}.md ({result['elapsed_s']:.0f} s)", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
