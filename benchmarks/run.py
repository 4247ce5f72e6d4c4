"""The side-by-side benchmark suite: every torchff module against its torch counterpart.

    python -m benchmarks.run                 # the issue's sizes (4096 x 1024 inputs, 2 threads), CPU (+ CUDA if present)
    python -m benchmarks.run --smoke         # tiny sizes, runs in seconds
    python -m benchmarks.run --compile       # also torch.compile (inductor) both sides, a small op subset
    python -m benchmarks.run --ops relu,maxout --mlp leaky_relu --out /tmp/bench.json

For each op: forward + backward median time of torchff and of torch, measured in this process,
interleaved (torchff, torch, torchff, torch, ...) with ``torch.utils.benchmark``, their ratio,
and the bytes saved for backward (``torchff.testing.saved_tensors``, de-duplicated by storage)
with the op placed as in a real network (see :mod:`benchmarks.ops`). End to end: one SGD step of
an MLP (784-1024-1024-10, batch 512) per activation. Also: a prototype of bit-packed masks
(:mod:`benchmarks.bitpack`). On CUDA (when present) the same, with peak allocated memory.

Writes a JSON file (``--out``, default ``benchmarks/results/latest.json``) and a markdown table
next to it (same name, ``.md``), and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import traceback

import torch

import torchff
from benchmarks import bitpack, mlp, ops
from benchmarks.common import (
    Sizes, forward_backward, interleaved_medians, peak_cuda_bytes, ratio, round_ratio, saved_bytes,
)

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(_HERE, "results", "latest.json")

#: the issue's targets: time ratio (torchff / torch) and extra-saved-bytes ratio, per op
TIME_TARGET = {"default": 1.10, "prelu": 0.5, "prelu_channels": 0.5, "softplus": 0.5, "bce_with_logits": 0.5}
SAVED_TARGET = {"default": 1.0, "leaky_relu": 0.5, "leaky_relu_neg": 0.5, "prelu": 0.5, "prelu_channels": 0.5,
                "abs": 0.5, "softplus": 0.5, "maxout": 0.125, "maxout_linear": 0.125}
MLP_TIME_TARGET, MLP_SAVED_TARGET = 1.05, 0.6
MLP_SAVED_TARGET_ACTS = ("leaky_relu", "prelu", "softplus", "maxout")
COMPILED_TIME_TARGET = 1.05


def _target(table: dict, name: str) -> float:
    base = name.split("_k")[0]  # maxout_k4 -> maxout, maxout_linear_k4 -> maxout_linear
    return table.get(base, table["default"])


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchff": torchff.__version__,
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


# --------------------------------------------------------------------------------------
# per op
# --------------------------------------------------------------------------------------
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


def _record_times(row: dict, times: dict, a: str, b: str) -> None:
    """Median times, and the ratio ``a / b`` as the median of the per-round ratios."""
    row["time_s"] = {k: v["median_s"] for k, v in times.items()}
    row["time_rounds_s"] = {k: v["rounds_s"] for k, v in times.items()}
    row["time_ratio"] = round_ratio(times, a, b)


def run_case(case: ops.OpCase, sizes: Sizes, device: str, dtype, opts, compiled: bool) -> dict:
    row = {"name": case.name, "kind": case.kind, "device": device, "mode": "compiled" if compiled else "eager",
           "shape": [sizes.rows, sizes.features], "note": case.note, "expected_extra": case.expected_extra,
           "status": "ok"}
    fns = {"torchff": case.torchff, "torch": case.torch}
    row["parity_max_abs_diff"] = _parity(case)
    if compiled:
        torch._dynamo.reset()
        fns = {k: torch.compile(v) for k, v in fns.items()}
        row["saved_bytes"] = None  # saved-tensor hooks do not see inside compiled graphs
    else:
        row["saved_bytes"] = {k: _saved(case, fn, sizes, device, dtype) for k, fn in fns.items()}
        row["saved_ratio"] = ratio(row["saved_bytes"]["torchff"]["extra"], row["saved_bytes"]["torch"]["extra"])
    runs = {k: forward_backward(fn, case.args, case.wrt + ops.parameters(case.torchff if k == "torchff" else case.torch))
            for k, fn in fns.items()}
    times = interleaved_medians(runs, rounds=opts.rounds, min_run_time=opts.min_run_time, threads=opts.threads)
    _record_times(row, times, "torchff", "torch")
    row["time_target"] = COMPILED_TIME_TARGET if compiled else _target(TIME_TARGET, case.name)
    row["saved_target"] = None if compiled else _target(SAVED_TARGET, case.name)
    if device == "cuda":
        row["peak_bytes"] = {k: peak_cuda_bytes(r) for k, r in runs.items()}
    return row


def run_ops(sizes: Sizes, device: str, opts, names, compiled: bool) -> list[dict]:
    rows = []
    for case in ops.build_cases(sizes, device, names=names):
        if isinstance(case, tuple):
            name, err = case
            rows.append({"name": name, "device": device, "mode": "compiled" if compiled else "eager",
                         "status": "missing", "reason": str(err)})
            continue
        try:
            rows.append(run_case(case, sizes, device, torch.float32, opts, compiled))
        except Exception as e:  # one broken op must not hide the others' numbers
            rows.append({"name": case.name, "device": device, "mode": "compiled" if compiled else "eager",
                         "status": "error", "reason": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc(limit=4)})
        _progress(rows[-1])
    return rows


# --------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------
def run_mlp(sizes: Sizes, device: str, opts, activations, compiled: bool) -> list[dict]:
    rows = []
    dims, dtype = sizes.mlp_dims, torch.float32
    gen = torch.Generator(device="cpu").manual_seed(2)
    x = torch.randn((sizes.mlp_batch, dims[0]), generator=gen).to(device)
    y = torch.randint(0, dims[-1], (sizes.mlp_batch,), generator=gen).to(device)
    for act in activations:
        row = {"activation": act, "device": device, "mode": "compiled" if compiled else "eager",
               "dims": list(dims), "batch": sizes.mlp_batch, "status": "ok"}
        try:
            torch.manual_seed(0)
            nets = {"torchff": mlp.build_mlp("torchff", act, dims, sizes.pieces, device, dtype),
                    "torch": mlp.build_mlp("torch", act, dims, sizes.pieces, device, dtype)}
            mlp.same_weights(nets["torchff"], nets["torch"])
            ff_loss, torch_loss, row["loss"] = mlp.loss_modules()
            losses = {"torchff": ff_loss, "torch": torch_loss}
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
            times = interleaved_medians(steps, rounds=opts.rounds, min_run_time=opts.min_run_time, threads=opts.threads)
            _record_times(row, times, "torchff", "torch")
            row["time_target"] = COMPILED_TIME_TARGET if compiled else MLP_TIME_TARGET
            row["saved_target"] = MLP_SAVED_TARGET if act in MLP_SAVED_TARGET_ACTS else 1.0
            if device == "cuda":
                row["peak_bytes"] = {k: peak_cuda_bytes(s) for k, s in steps.items()}
        except ops.Missing as e:
            row.update(status="missing", reason=str(e))
        except Exception as e:
            row.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=4))
        rows.append(row)
        _progress(row)
    return rows


# --------------------------------------------------------------------------------------
# bit-packed masks (prototype)
# --------------------------------------------------------------------------------------
def run_bitpack(sizes: Sizes, device: str, opts) -> list[dict]:
    """Bool mask against bit-packed mask, in the same prototype Function (the cost of packing),
    and torchff's own Function (bool mask) for reference."""
    gen = torch.Generator(device="cpu").manual_seed(3)
    z = torch.randn((sizes.rows, sizes.features), generator=gen).to(device).requires_grad_()
    cases = {
        "leaky_relu(negative_slope=-0.5)": (
            lambda t: torchff.functional.leaky_relu(t, -0.5),
            lambda t: bitpack.MaskLeakyReLU.apply(t, -0.5, False),
            lambda t: bitpack.MaskLeakyReLU.apply(t, -0.5, True)),
        "binary_step(ste=True)": (
            lambda t: torchff.functional.binary_step(t, ste=True),
            lambda t: bitpack.MaskBinaryStepSTE.apply(t, False),
            lambda t: bitpack.MaskBinaryStepSTE.apply(t, True)),
    }
    rows = []
    for name, (library, plain, packed) in cases.items():
        row = {"name": name, "device": device, "shape": [sizes.rows, sizes.features], "status": "ok"}
        try:
            g = torch.randn(z.shape, generator=gen).to(device)
            with torch.no_grad():
                want = library(z)
            want_grad = torch.autograd.grad(library(z), z, g)[0]
            for fn in (plain, packed):
                with torch.no_grad():
                    assert torch.equal(fn(z), want)
                assert torch.equal(torch.autograd.grad(fn(z), z, g)[0], want_grad)
            row["saved_bytes"] = {"torchff": saved_bytes(library, [z])["total"],
                                  "bool_mask": saved_bytes(plain, [z])["total"],
                                  "bit_packed": saved_bytes(packed, [z])["total"]}
            row["saved_ratio"] = ratio(row["saved_bytes"]["bit_packed"], row["saved_bytes"]["bool_mask"])
            runs = {"bit_packed": forward_backward(packed, [z], [z]), "bool_mask": forward_backward(plain, [z], [z]),
                    "torchff": forward_backward(library, [z], [z])}
            times = interleaved_medians(runs, rounds=opts.rounds, min_run_time=opts.min_run_time, threads=opts.threads)
            _record_times(row, times, "bit_packed", "bool_mask")
        except Exception as e:
            row.update(status="error", reason=f"{type(e).__name__}: {e}")
        rows.append(row)
        _progress(row)
    return rows


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------
def _progress(row: dict) -> None:
    name = row.get("name") or f"mlp[{row.get('activation')}]"
    if row.get("status") != "ok":
        print(f"  {name} ({row.get('device')}, {row.get('mode', '')}): {row['status']}: {row.get('reason')}", file=sys.stderr)
    else:
        print(f"  {name} ({row.get('device')}, {row.get('mode', '')}): time ratio {row.get('time_ratio', float('nan')):.3f}",
              file=sys.stderr)


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


def to_markdown(result: dict) -> str:
    m, s = result["machine"], result["sizes"]
    lines = [
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {result['threads']} threads; "
        f"torch {m['torch']}; load average at start {tuple(round(v, 1) for v in m['load_average_start'] or ())}, "
        f"at end {tuple(round(v, 1) for v in result.get('load_average_end') or ())}.",
        f"Ops: {s['rows']} x {s['features']} float32 inputs; MLP {'-'.join(map(str, s['mlp_dims']))}, "
        f"batch {s['mlp_batch']}. Times are medians of interleaved runs (torchff, torch, torchff, "
        f"torch, ... {result['rounds']} rounds); the ratio torchff / torch is the median of the per-round "
        "ratios (✓ meets the target, ✗ does not). Extra saved: bytes saved for backward beyond what "
        "the surrounding Linear layers keep anyway (losses: beyond the targets).",
        "",
    ]
    for device in result["devices"]:
        for mode in ("eager", "compiled"):
            rows = [r for r in result["ops"] if r["device"] == device and r["mode"] == mode]
            if not rows:
                continue
            lines += [f"### Ops, {device}, {mode}", ""]
            head = "| op | torchff fwd+bwd | torch fwd+bwd | time ratio (target) |"
            sep = "|---|---:|---:|---:|"
            if mode == "eager":
                head += " extra saved torchff | extra saved torch | saved ratio (target) |"
                sep += "---:|---:|---:|"
            if device == "cuda":
                head += " peak torchff | peak torch |"
                sep += "---:|---:|"
            lines += [head, sep]
            for r in rows:
                if r["status"] != "ok":
                    lines.append(f"| {r['name']} | {r['status']}: {r.get('reason', '')} |")
                    continue
                t = r["time_s"]
                line = (f"| {r['name']} | {t['torchff'] * 1e3:.3f} ms | {t['torch'] * 1e3:.3f} ms | "
                        f"{_fmt_ratio(r['time_ratio'], r['time_target'])} (≤ {r['time_target']}) |")
                if mode == "eager":
                    sb = r["saved_bytes"]
                    line += (f" {_fmt_bytes(sb['torchff']['extra'])} | {_fmt_bytes(sb['torch']['extra'])} | "
                             f"{_fmt_ratio(r['saved_ratio'], r['saved_target'])} (≤ {r['saved_target']:g}) |")
                if device == "cuda":
                    p = r.get("peak_bytes") or {}
                    line += f" {_fmt_bytes(p.get('torchff'))} | {_fmt_bytes(p.get('torch'))} |"
                lines.append(line)
            lines.append("")
            rows = [r for r in result["mlp"] if r["device"] == device and r["mode"] == mode]
            if not rows:
                continue
            lines += [f"### MLP training step, {device}, {mode}", ""]
            head = "| activation | torchff step | torch step | time ratio (target) |"
            sep = "|---|---:|---:|---:|"
            if mode == "eager":
                head += " saved torchff (activations) | saved torch (activations) | total ratio | activations ratio (target) |"
                sep += "---:|---:|---:|---:|"
            lines += [head, sep]
            for r in rows:
                if r["status"] != "ok":
                    lines.append(f"| {r['activation']} | {r['status']}: {r.get('reason', '')} |")
                    continue
                t = r["time_s"]
                line = (f"| {r['activation']} | {t['torchff'] * 1e3:.2f} ms | {t['torch'] * 1e3:.2f} ms | "
                        f"{_fmt_ratio(r['time_ratio'], r['time_target'])} (≤ {r['time_target']}) |")
                if mode == "eager":
                    sb = r["saved_bytes"]
                    line += (f" {_fmt_bytes(sb['torchff']['total'])} ({_fmt_bytes(sb['torchff']['activations'])}) | "
                             f"{_fmt_bytes(sb['torch']['total'])} ({_fmt_bytes(sb['torch']['activations'])}) | "
                             f"{_fmt_ratio(r['saved_ratio_total'])} | "
                             f"{_fmt_ratio(r['saved_ratio_activations'], r['saved_target'])} (≤ {r['saved_target']:g}) |")
                lines.append(line)
            lines.append(f"\nLoss: {rows[0].get('loss', '-')}.\n")
    if result.get("bitpack"):
        lines += ["### Bit-packed masks (prototype in benchmarks/bitpack.py, not in the library)", "",
                  "Same prototype Function saving a bool mask or a bit-packed one (the ratio is the cost of "
                  "packing); torchff's Function (bool mask) for reference.", "",
                  "| Function | torchff fwd+bwd | bool mask fwd+bwd | bit-packed fwd+bwd | packed / bool time | "
                  "saved bool | saved packed | saved ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in result["bitpack"]:
            if r["status"] != "ok":
                lines.append(f"| {r['name']} | {r['status']}: {r.get('reason', '')} |")
                continue
            t, sb = r["time_s"], r["saved_bytes"]
            lines.append(f"| {r['name']} ({r['device']}) | {t['torchff'] * 1e3:.3f} ms | {t['bool_mask'] * 1e3:.3f} ms | "
                         f"{t['bit_packed'] * 1e3:.3f} ms | {_fmt_ratio(r['time_ratio'])} | {_fmt_bytes(sb['bool_mask'])} | "
                         f"{_fmt_bytes(sb['bit_packed'])} | {_fmt_ratio(r['saved_ratio'])} |")
        lines.append("")
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
    p.add_argument("--smoke", action="store_true", help="tiny sizes and short timings (seconds)")
    p.add_argument("--rows", type=int, help="rows of the per-op inputs (default 4096; smoke 64)")
    p.add_argument("--features", type=int, help="columns of the per-op inputs (default 1024; smoke 32)")
    p.add_argument("--mlp-batch", type=int, help="MLP batch size (default 512; smoke 16)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, help="interleaved rounds per comparison (default 4; smoke 2)")
    p.add_argument("--min-run-time", type=float, help="seconds per timing turn (default 0.2; smoke 0.005)")
    p.add_argument("--ops", default="all", help=f"comma-separated subset of {list(ops.CASES)}, or all/none")
    p.add_argument("--mlp", default="all", help=f"comma-separated subset of {list(mlp.MLP_ACTIVATIONS)}, or all/none")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd (inductor) versions")
    p.add_argument("--compile-ops", default=",".join(ops.DEFAULT_COMPILE_CASES),
                   help="ops compiled with --compile (default: a small subset; 'all' for every op)")
    p.add_argument("--compile-mlp", default="leaky_relu", help="MLP activations compiled with --compile")
    p.add_argument("--no-bitpack", action="store_true", help="skip the bit-packed mask prototype")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CPU, and CUDA too when a GPU is present")
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON output (the markdown goes next to it, .md)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    sizes = Sizes.smoke() if args.smoke else Sizes()
    if args.rows:
        sizes.rows = args.rows
    if args.features:
        sizes.features = args.features
    if args.mlp_batch:
        sizes.mlp_batch = args.mlp_batch
    args.rounds = args.rounds or (2 if args.smoke else 4)
    args.min_run_time = args.min_run_time or (0.005 if args.smoke else 0.2)
    torch.set_num_threads(args.threads)

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
    result = {
        "machine": _machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "threads": args.threads,
        "rounds": args.rounds,
        "min_run_time": args.min_run_time,
        "sizes": {"rows": sizes.rows, "features": sizes.features, "pieces": sizes.pieces,
                  "mlp_dims": list(sizes.mlp_dims), "mlp_batch": sizes.mlp_batch},
        "devices": devices,
        "skipped_devices": skipped,
        "ops": [],
        "mlp": [],
        "bitpack": [],
    }
    for device in devices:
        result["ops"] += run_ops(sizes, device, args, op_names, compiled=False)
        result["mlp"] += run_mlp(sizes, device, args, mlp_acts, compiled=False)
        if args.compile:
            compile_names = [n for n in _csv(args.compile_ops, ops.CASES) if n in op_names]
            result["ops"] += run_ops(sizes, device, args, compile_names, compiled=True)
            result["mlp"] += run_mlp(sizes, device, args, _csv(args.compile_mlp, mlp.MLP_ACTIVATIONS), compiled=True)
        if not args.no_bitpack:
            result["bitpack"] += run_bitpack(sizes, device, args)
    result["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    table = to_markdown(result)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
