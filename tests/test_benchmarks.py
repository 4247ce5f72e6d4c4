"""The benchmark suite runs (smoke size, every group) and what it reports is structurally right.

No timing assertions: only structure, parity, and counts that are exact (saved bytes, kernels,
bytes moved, host syncs).
"""

from __future__ import annotations

import datetime
import json
import re
import statistics

import pytest
import torch
import torch.nn.functional as TF

from benchmarks import fused_linear_ce, ops, run, traffic
from benchmarks.common import Sizes

SMOKE = run.Plan.smoke()
ROWS, FEATURES, PIECES = SMOKE.large.rows, SMOKE.large.features, SMOKE.large.pieces
BATCH = SMOKE.large.mlp_batch
ELEMENTS = ROWS * FEATURES
OP_NAMES = {f"maxout_k{PIECES}" if n == "maxout" else f"maxout_linear_k{PIECES}" if n == "maxout_linear" else n
            for n in ops.CASES}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    result = run.main(["--smoke", "--rounds", "1", "--min-run-time", "0.001", "--out", str(out)])
    with open(out) as f:
        loaded = json.load(f)
    loaded["_markdown"] = out.with_suffix(".md").read_text()
    loaded["_returned"] = result
    return loaded


def _rows(result, group, device="cpu"):
    return [r for r in result["ops"] + result["mlp"] if r["group"] == group and r.get("device") == device]


def _op(result, name, group="large"):
    (row,) = [r for r in result["ops"] if r["name"] == name and r["group"] == group]
    assert row["status"] == "ok", row.get("reason")
    return row


def _check_timed(r, rounds=1):
    assert r["status"] == "ok", (r.get("name") or r.get("activation"), r.get("reason"))
    assert r["time_s"]["torchff"] > 0 and r["time_s"]["torch"] > 0
    a, b = r["time_rounds_s"]["torchff"], r["time_rounds_s"]["torch"]
    assert len(a) == len(b) == rounds
    assert r["time_ratio"] == pytest.approx(statistics.median(x / y for x, y in zip(a, b)))
    assert r["parity_max_abs_diff"] < 1e-4


# --------------------------------------------------------------------------------------
# the whole run
# --------------------------------------------------------------------------------------
def test_every_group_ran(smoke):
    assert smoke["groups"] == list(run.GROUPS)
    assert smoke["devices"] == ["cpu"]
    assert smoke["_returned"]["out"].endswith("smoke.json")  # --out wins; a smoke run never writes docs/


def test_train_sizes_every_op_both_shapes_one_thread(smoke):
    rows = _rows(smoke, "train")
    shapes = {tuple(r["shape"]) for r in rows}
    assert shapes == {tuple(s) for s in SMOKE.train_shapes}
    pieces = SMOKE.train_pieces
    want = {f"maxout_k{pieces}" if n == "maxout" else f"maxout_linear_k{pieces}" if n == "maxout_linear" else n
            for n in ops.CASES}
    for shape in shapes:
        assert {r["name"] for r in rows if tuple(r["shape"]) == shape} == want | set(ops.REFERENCES)
    for r in rows:
        _check_timed(r)
        want_target = None if r["name"] in ops.REFERENCES else run.TRAIN_TIME_TARGET
        assert r["threads"] == 1 and r["time_target"] == want_target


def test_the_function_floor_is_a_bare_function_timed_only_at_training_sizes(smoke):
    rows = [r for r in smoke["ops"] if r["name"] == "function_floor"]
    assert {r["group"] for r in rows} == {"train"} and len(rows) == len(SMOKE.train_shapes)
    (case,) = ops.build_cases(Sizes(rows=4, features=3), "cpu", cases=ops.REFERENCES)
    z = case.args[0]
    out = case.torchff(z)
    assert type(out.grad_fn).__name__ == "_BareFunctionBackward"
    out.backward(torch.ones_like(out))
    assert torch.equal(z.grad, (z > 0).to(z.dtype))
    md = smoke["_markdown"]
    assert re.search(r"^\| function_floor \|", md, re.M) and "function_floor is not a torchff op" in md


def test_train_mlp_steps_against_the_converted_model(smoke):
    rows = _rows(smoke, "train_mlp")
    configs = {(tuple(r["dims"]), r["batch"]) for r in rows}
    assert configs == {(tuple(d), b) for d, b in SMOKE.train_mlps}
    for dims, batch in configs:
        acts = {r["activation"] for r in rows if (tuple(r["dims"]), r["batch"]) == (dims, batch)}
        assert acts == {"relu", "leaky_relu", "prelu", "softplus"}
    for r in rows:
        _check_timed(r)
        assert r["loss"] == "torchff.nn.CrossEntropyLoss"
        sb = r["saved_bytes"]
        assert sb["torchff"]["activations"] <= sb["torch"]["activations"], r["activation"]


def test_converted_model_really_uses_torchff_modules():
    import torchff

    ff, ref = run.mlp.torch_and_converted("prelu", (2, 8, 2), "cpu", torch.float32)
    assert isinstance(ff[1], torchff.nn.PReLU) and type(ref[1]) is torch.nn.PReLU
    x = torch.randn(3, 2)
    torch.testing.assert_close(ff(x), ref(x))


def test_large_ops_and_mlp(smoke):
    rows = [r for r in smoke["ops"] if r["group"] == "large"]
    assert {r["name"] for r in rows} == OP_NAMES
    for r in rows:
        _check_timed(r)
        assert tuple(r["shape"]) == (ROWS, FEATURES)
        for side in ("torchff", "torch"):
            assert 0 <= r["saved_bytes"][side]["extra"] <= r["saved_bytes"][side]["total"]
            assert r["faults_per_call"][side] >= 0
    assert "| page faults / call torchff | torch |" in smoke["_markdown"]
    assert not any("faults_per_call" in r for r in smoke["ops"] if r["group"] not in ("large", "compiled"))  # (timed bare there)
    mlp_rows = [r for r in smoke["mlp"] if r["group"] == "large"]
    assert {r["activation"] for r in mlp_rows} == set(run.mlp.MLP_ACTIVATIONS)
    for r in mlp_rows:
        _check_timed(r)
    leaky = next(r for r in mlp_rows if r["activation"] == "leaky_relu")  # a 1-byte mask for torch's 4-byte input
    hidden = leaky["batch"] * sum(leaky["dims"][1:-1])
    sb = leaky["saved_bytes"]
    assert sb["torch"]["activations"] - sb["torchff"]["activations"] >= 3 * hidden
    assert leaky["saved_ratio_activations"] <= leaky["saved_target"] < 1


def test_fault_counts_are_the_faults_of_each_call():
    import mmap

    pages = 64

    def fresh_pages():  # a fresh anonymous mapping, each page touched: one minor fault a page
        m = mmap.mmap(-1, pages * mmap.PAGESIZE)
        for i in range(pages):
            m[i * mmap.PAGESIZE] = 1
        m.close()

    runs, counts = run._counting_faults({"torchff": fresh_pages, "torch": lambda: None})
    for _ in range(3):
        runs["torchff"](), runs["torch"]()
    assert counts["torchff"]["calls"] == counts["torch"]["calls"] == 3  # (the two warm-up calls uncounted)
    assert pages <= counts["torchff"]["faults"] / 3 < 2 * pages
    assert counts["torch"]["faults"] / 3 < pages / 4


def test_compiled_rows(smoke):
    rows = [r for r in smoke["ops"] if r["group"] == "compiled"]
    assert {r["name"] for r in rows} == set(SMOKE.compile_ops)
    for r in rows:
        _check_timed(r)
        assert r["mode"] == "compiled" and r["time_target"] == run.COMPILED_TIME_TARGET
        assert set(r["faults_per_call"]) == {"torchff", "torch"}  # counted as in the large group


def test_traffic_rows(smoke):
    rows = {r["name"]: r for r in smoke["traffic"]}
    assert set(rows) == OP_NAMES
    for r in rows.values():
        assert r["status"] == "ok", (r["name"], r.get("reason"))
        for side in ("torchff", "torch"):
            s = r[side]
            assert s["total"]["kernels"] == s["forward"]["kernels"] + s["backward"]["kernels"] > 0
            assert s["total"]["bytes"] == s["forward"]["bytes"] + s["backward"]["bytes"] > 0
            assert len(s["total"]["ops"]) == s["total"]["kernels"]
    # torch's relu: relu forward (read 4 B, write 4 B per element), threshold_backward (read 8, write 4)
    relu = rows["relu"]["torch"]
    assert relu["forward"]["ops"] == ["aten::relu"] and relu["backward"]["ops"] == ["aten::threshold_backward"]
    assert relu["total"]["bytes"] == 20 * ELEMENTS and relu["total"]["syncs"] == 0
    # torch's gaussian_nll_loss checks var >= 0 on the host: a real sync in torch
    assert rows["gaussian_nll"]["torch"]["total"]["syncs"] == 1


def test_linear_ce_row(smoke):
    (r,) = smoke["linear_ce"]
    assert r["status"] == "ok", r.get("reason")
    assert r["peak_bytes"]["unfused"] > r["peak_bytes"]["fused"] >= 0
    assert r["seconds"]["fused"] > 0 and r["seconds"]["unfused"] > 0


def test_markdown_has_date_machine_and_every_table(smoke):
    md = smoke["_markdown"]
    assert f"- Date: {smoke['date']}" in md
    datetime.datetime.fromisoformat(smoke["date"])
    m = smoke["machine"]
    assert m["cpu"] in md and f"{m['logical_cpus']} logical CPUs" in md and f"torch {torch.__version__}" in md
    assert "- Threads: 2 (training sizes: 1)" in md
    for title in ("### Training sizes, cpu", "### Training steps, cpu", "### Ops, cpu, 64 x 32, 2 threads, eager",
                  "### MLP training step, cpu", "torch.compile (inductor)", "### CUDA path traffic",
                  "### The fused softmax output layer"):
        assert title in md, title
    traffic_table = md.split("### CUDA path traffic")[1]
    # torch's relu (1 + 1 kernels, 20 bytes per element) beside torchff's
    assert re.search(r"\| relu \| [^|]+ \| 1 \+ 1 \| [^|]+ \| 40\.0 KiB \|", traffic_table), traffic_table
    assert "python -m benchmarks.run" in md


def test_default_output_only_for_a_complete_run(tmp_path, monkeypatch):
    """A partial run never overwrites docs/benchmarks.md."""
    seen = {}

    def fake_dump(obj, f, **kw):
        seen["path"] = f.name

    monkeypatch.setattr(run.json, "dump", fake_dump)
    monkeypatch.setattr(run, "DEFAULT_OUT", str(tmp_path / "latest.json"))
    run.main(["--smoke", "--groups", "traffic", "--ops", "relu"])
    assert seen["path"] == str(tmp_path / "latest.json")


# --------------------------------------------------------------------------------------
# saved bytes: exact, what the Functions document
# --------------------------------------------------------------------------------------
def test_saved_bytes_never_above_torch(smoke):
    for r in smoke["ops"]:
        if r["group"] == "large":
            assert r["saved_bytes"]["torchff"]["extra"] <= r["saved_bytes"]["torch"]["extra"], r["name"]
    for r in smoke["mlp"]:
        assert r["saved_bytes"]["torchff"]["activations"] <= r["saved_bytes"]["torch"]["activations"], r["activation"]


@pytest.mark.parametrize(
    "name, at_most, torch_bytes",
    [
        ("relu", 0, 0),  # both save the output, which the next Linear keeps
        ("sigmoid", 0, 0),
        ("softmax", 0, 0),
        ("log_softmax", 0, 0),
        ("leaky_relu", ELEMENTS, 4 * ELEMENTS),  # a 1-byte mask, never the output (torch: the input)
        ("abs", ELEMENTS, 4 * ELEMENTS),  # at most a 1-byte sign against the float32 input
        ("leaky_relu_neg", ELEMENTS, 4 * ELEMENTS),  # at most a 1-byte mask
        (f"maxout_k{PIECES}", ELEMENTS // PIECES, 8 * ELEMENTS // PIECES),  # uint8 against int64 indices
        (f"maxout_linear_k{PIECES}", ELEMENTS // PIECES, 8 * ELEMENTS // PIECES),
    ],
)
def test_documented_saved_bytes(smoke, name, at_most, torch_bytes):
    row = _op(smoke, name)
    assert row["saved_bytes"]["torchff"]["extra"] <= at_most
    assert row["saved_bytes"]["torch"]["extra"] == torch_bytes


def test_mlp_saved_bytes(smoke):
    hidden = smoke["sizes"]["mlp_dims"][1:-1]
    rows = {r["activation"]: r for r in smoke["mlp"] if r["group"] == "large"}
    sb = rows["maxout"]["saved_bytes"]
    saved_index_bytes = sum(BATCH * h * 7 for h in hidden)  # int64 -> uint8 per hidden unit
    assert sb["torch"]["activations"] - sb["torchff"]["activations"] >= saved_index_bytes


# --------------------------------------------------------------------------------------
# the traffic counter itself, on known code
# --------------------------------------------------------------------------------------
def test_traffic_of_relu_forward_backward_is_exact():
    z = torch.randn(8, 5, requires_grad=True)
    t = traffic.count_forward_backward(torch.relu, [z], [0])
    assert t.kernels("forward") == 1 and t.kernels("backward") == 1 and t.kernels() == 2
    assert t.bytes("forward") == 8 * 40  # read z, write relu(z)
    assert t.bytes("backward") == 12 * 40  # read grad and the output, write the input's gradient
    assert t.syncs() == 0


def test_views_and_allocations_are_no_kernels():
    z = torch.randn(4, 6)
    t = traffic.count_call(lambda x: x.view(6, 4).t().expand(2, 4, 6).detach().contiguous(), z)
    assert t.kernel_names() == ["aten::clone"]  # only the copy that contiguous() makes
    assert t.bytes() == 4 * 24 + 4 * 48  # the expanded input counts its distinct elements once


def test_a_host_read_is_one_sync_and_takes_the_true_branch():
    z = torch.tensor([1.0, -2.0, 3.0])

    def syncing(x):
        if bool((x > 0).all()):  # False for this z: the mirror's true value decides
            return x * 2
        return x - 1

    t = traffic.count_call(syncing, z)
    assert t.syncs() == 1
    assert t.kernel_names() == ["aten::gt", "aten::all", "aten::sub"]
    assert traffic.count_call(lambda x: x[x > 0], z).syncs() == 1  # data-dependent shape
    assert traffic.count_call(lambda x: x.cpu(), z).syncs() == 1  # device to host
    assert traffic.count_call(lambda x: x.to("cpu", torch.float64), z).syncs() == 1
    assert traffic.count_call(lambda x: x.to(torch.float64), z).syncs() == 0  # stays on the device
    assert traffic.count_call(lambda x: x.tolist(), z).syncs() >= 1
    assert traffic.count_call(lambda x: torch._assert_async((x != 0).all()), z).syncs() == 0


def test_fake_tensors_say_cuda_to_python():
    seen = {}

    def probe(x):
        seen["device"], seen["is_cuda"] = x.device.type, x.is_cuda
        return x + 1

    traffic.count_call(probe, torch.ones(2))
    assert seen == {"device": "cuda", "is_cuda": True}
    assert not torch.ones(1).is_cuda  # restored afterwards


def test_a_registered_op_is_one_kernel():
    lib = torch.library.Library("torchff_bench_test", "DEF")
    lib.define("scale2(Tensor x) -> (Tensor, Tensor)")

    def composite(x):
        return x * 2, (x > 0).to(torch.uint8)

    lib.impl("scale2", composite, "CompositeExplicitAutograd")
    torch.library.register_fake("torchff_bench_test::scale2",
                                lambda x: (torch.empty_like(x), torch.empty_like(x, dtype=torch.uint8)), lib=lib)
    t = traffic.count_call(torch.ops.torchff_bench_test.scale2, torch.randn(10))
    assert t.kernel_names() == ["torchff_bench_test::scale2"]
    assert t.bytes() == 40 + 40 + 10  # read x, write the float32 value and the uint8 mask


def test_traffic_of_a_module_counts_its_parameters():
    lin = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3, requires_grad=True)
    t = traffic.count_forward_backward(lin, [x], [0])
    assert t.kernel_names("forward") == ["aten::addmm"]
    assert sorted(t.kernel_names("backward")) == ["aten::mm", "aten::mm", "aten::sum"]


# --------------------------------------------------------------------------------------
# the CUDA side, and the other scripts
# --------------------------------------------------------------------------------------
def test_peak_bandwidth_override_and_properties(monkeypatch):
    assert run.peak_bandwidth(0, 1234.0) == (1234.0, "--peak-gbps")

    class Props:
        name, memory_clock_rate, memory_bus_width = "NVIDIA H100 80GB HBM3", 2_619_000, 5120

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props)
    gbps, source = run.peak_bandwidth(0)
    assert gbps == pytest.approx(3352.3, rel=1e-3) and "memory_clock_rate" in source
    Props.memory_clock_rate = 0
    assert run.peak_bandwidth(0)[0] == run.PEAK_GBPS["H100"]


def test_cuda_is_skipped_cleanly_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run.main(["--smoke", "--device", "cuda", "--groups", "train,large", "--out", str(tmp_path / "none.json")])
    assert result["devices"] == [] and result["ops"] == [] and "cuda" in result["skipped_devices"]
    assert "cuda: skipped" in (tmp_path / "none.md").read_text()


@pytest.mark.cuda
def test_smoke_run_on_cuda_reports_bandwidth_and_peak_memory(tmp_path):
    out = tmp_path / "cuda.json"
    result = run.main(["--smoke", "--rounds", "1", "--min-run-time", "0.001", "--device", "cuda",
                       "--groups", "large,train_mlp", "--ops", "relu,maxout,cross_entropy", "--mlp", "relu",
                       "--out", str(out)])
    assert result["devices"] == ["cuda"]
    for r in result["ops"] + result["mlp"]:
        assert r["status"] == "ok", r.get("reason")
        assert r["peak_bytes"]["torchff"] > 0 and r["peak_bytes"]["torch"] > 0
    for r in result["ops"]:
        assert r["gbps"]["torchff"] > 0 and r["bytes_moved"]["torch"] > 0


def test_fused_linear_cross_entropy_benchmark_runs(tmp_path):
    out = tmp_path / "flce.json"
    result = fused_linear_ce.main(["--n", "1024", "--h", "16", "--c", "2048", "--chunk-size", "128",
                                   "--repeats", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["chunk_size"] == 128
    # the unfused loss holds N x C buffers (8 MiB each here), the fused one a 1 MiB chunk
    assert result["peak_bytes"]["unfused"] > result["peak_bytes"]["fused"] >= 0


def test_cases_use_only_the_public_api():
    import pathlib

    root = pathlib.Path(run.__file__).parent
    # the one exception: the function_floor reference caches its forward's signature as torchff does
    floor = "from torchff.autograd import _PositionalSignature  # the function_floor reference only\n"
    assert floor in (root / "ops.py").read_text()
    for path in root.glob("*.py"):
        text = path.read_text().replace(floor, "")
        for internal in ("torchff.autograd", "save_mode", "_native", "_blockwise", "torchff.kernels"):
            assert internal not in text.replace("torch.autograd", ""), (path.name, internal)


def test_build_cases_at_odd_training_sizes():
    cases = ops.build_cases(Sizes(rows=3, features=10, pieces=2), "cpu")
    assert all(not isinstance(c, tuple) for c in cases)
    (ce,) = [c for c in cases if c.name == "cross_entropy"]
    torch.testing.assert_close(ce.torchff(*ce.args), TF.cross_entropy(*ce.args))
