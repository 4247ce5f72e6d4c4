"""The benchmark suite runs (smoke size) and its saved-bytes numbers are what the Functions document.

No timing assertions: only structure, parity and byte counts, which are exact.
"""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from benchmarks import bitpack, fused_linear_ce, run

ROWS, FEATURES, PIECES, BATCH = 64, 32, 4, 16  # benchmarks.common.Sizes.smoke()
ELEMENTS = ROWS * FEATURES


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    run.main(["--smoke", "--rounds", "1", "--min-run-time", "0.001", "--device", "cpu", "--out", str(out)])
    with open(out) as f:
        result = json.load(f)
    result["_markdown"] = out.with_suffix(".md").read_text()
    return result


def _op(result, name):
    (row,) = [r for r in result["ops"] if r["name"] == name and r["mode"] == "eager"]
    assert row["status"] == "ok", row.get("reason")
    return row


def test_json_structure(smoke):
    for key in ("machine", "date", "threads", "sizes", "devices", "ops", "mlp", "bitpack"):
        assert key in smoke
    assert smoke["devices"] == ["cpu"]
    assert smoke["sizes"]["rows"] == ROWS and smoke["sizes"]["features"] == FEATURES
    names = {r["name"] for r in smoke["ops"]}
    assert names == {"relu", "leaky_relu", "leaky_relu_neg", "leaky_relu_neg_speed", "abs_speed", "prelu", "prelu_channels", "abs", "softplus", "sigmoid",
                     f"maxout_k{PIECES}", f"maxout_linear_k{PIECES}", "softmax", "log_softmax",
                     "cross_entropy", "bce_with_logits", "gaussian_nll", "laplace_nll"}
    for r in smoke["ops"]:
        assert r["status"] == "ok", (r["name"], r.get("reason"))
        assert r["time_s"]["torchff"] > 0 and r["time_s"]["torch"] > 0
        a, b = r["time_rounds_s"]["torchff"], r["time_rounds_s"]["torch"]
        assert len(a) == len(b) == smoke["rounds"]
        assert r["time_ratio"] == pytest.approx(statistics.median(x / y for x, y in zip(a, b)))
        assert r["parity_max_abs_diff"] < 1e-4, r["name"]
        for side in ("torchff", "torch"):
            assert 0 <= r["saved_bytes"][side]["extra"] <= r["saved_bytes"][side]["total"]
    assert {r["activation"] for r in smoke["mlp"]} == {"relu", "leaky_relu", "prelu", "softplus", "maxout"}
    for r in smoke["mlp"]:
        assert r["status"] == "ok", (r["activation"], r.get("reason"))
        assert r["parity_max_abs_diff"] < 1e-4
        assert r["time_s"]["torchff"] > 0 and r["time_s"]["torch"] > 0
    assert "| relu |" in smoke["_markdown"] and "MLP training step" in smoke["_markdown"]


def test_saved_bytes_never_above_torch(smoke):
    for r in smoke["ops"]:
        assert r["saved_bytes"]["torchff"]["extra"] <= r["saved_bytes"]["torch"]["extra"], r["name"]
    for r in smoke["mlp"]:  # activations: beyond the parameters and the batch, which live anyway
        assert r["saved_bytes"]["torchff"]["activations"] <= r["saved_bytes"]["torch"]["activations"], r["activation"]


@pytest.mark.parametrize(
    "name, torchff_bytes, torch_bytes",
    [
        ("relu", 0, 0),  # both save the output, which the next Linear keeps
        ("sigmoid", 0, 0),
        ("leaky_relu", 0, 4 * ELEMENTS),  # torchff: the output; torch: the input
        ("prelu", 0, 4 * ELEMENTS),
        ("prelu_channels", 0, 4 * ELEMENTS),
        ("softplus", 0, 4 * ELEMENTS),
        ("abs", ELEMENTS, 4 * ELEMENTS),  # an int8 sign against the float32 input
        ("leaky_relu_neg", ELEMENTS, 4 * ELEMENTS),  # a bool mask against the float32 input
        ("leaky_relu_neg_speed", 4 * ELEMENTS, 4 * ELEMENTS),  # save mode "speed": the input, as torch
        ("abs_speed", 4 * ELEMENTS, 4 * ELEMENTS),
        (f"maxout_k{PIECES}", ELEMENTS // PIECES, 8 * ELEMENTS // PIECES),  # uint8 against int64 indices
        (f"maxout_linear_k{PIECES}", ELEMENTS // PIECES, 8 * ELEMENTS // PIECES),
        ("softmax", 0, 0),  # both save the output
        ("log_softmax", 0, 0),
    ],
)
def test_documented_saved_bytes(smoke, name, torchff_bytes, torch_bytes):
    row = _op(smoke, name)
    assert row["saved_bytes"]["torchff"]["extra"] == torchff_bytes
    assert row["saved_bytes"]["torch"]["extra"] == torch_bytes


@pytest.mark.parametrize(
    "name, torchff_bytes",
    [
        ("cross_entropy", 4 * ELEMENTS),  # the residual softmax(z) - e_y (torch: the log-softmax)
        ("bce_with_logits", 4 * ELEMENTS),  # the logits (the target is the data's)
        ("gaussian_nll", 8 * ELEMENTS),  # the residual and var
        ("laplace_nll", 8 * ELEMENTS),  # the residual and scale
    ],
)
def test_documented_saved_bytes_of_losses(smoke, name, torchff_bytes):
    row = _op(smoke, name)
    assert row["saved_bytes"]["torchff"]["extra"] == torchff_bytes
    assert row["saved_bytes"]["torch"]["extra"] >= torchff_bytes


def test_mlp_saved_bytes(smoke):
    hidden = smoke["sizes"]["mlp_dims"][1:-1]
    per_layer = [4 * BATCH * h for h in hidden]
    rows = {r["activation"]: r for r in smoke["mlp"] if r["mode"] == "eager"}
    relu = rows["relu"]["saved_bytes"]
    assert relu["torchff"]["activations"] <= relu["torch"]["activations"]
    for act in ("leaky_relu", "prelu", "softplus"):
        sb = rows[act]["saved_bytes"]
        # torch keeps each hidden pre-activation on top of the outputs; torchff does not
        assert sb["torch"]["activations"] - sb["torchff"]["activations"] >= sum(per_layer), act
    sb = rows["maxout"]["saved_bytes"]
    saved_index_bytes = sum(BATCH * h * 7 for h in hidden)  # int64 -> uint8 per hidden unit
    assert sb["torch"]["activations"] - sb["torchff"]["activations"] >= saved_index_bytes


def test_bitpack_rows(smoke):
    rows = {r["name"]: r for r in smoke["bitpack"]}
    assert set(rows) == {"leaky_relu(negative_slope=-0.5)", "binary_step(ste=True)"}
    for r in rows.values():
        assert r["status"] == "ok", r.get("reason")
        assert r["saved_bytes"]["bool_mask"] == r["saved_bytes"]["torchff"] == ELEMENTS
        assert r["saved_bytes"]["bit_packed"] == ELEMENTS // 8


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (3, 13), (64, 33)])
def test_bit_packing_round_trip(shape):
    mask = torch.rand(shape) > 0.4
    packed = bitpack.pack_mask(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == (mask.numel() + 7) // 8
    assert torch.equal(packed, bitpack.pack_mask_sum(mask))
    assert torch.equal(bitpack.unpack_mask(packed, shape), mask)
    assert torch.equal(bitpack.unpack_mask_shift(packed, shape), mask)


def test_bit_packed_functions_gradcheck():
    x = torch.randn(5, 7, dtype=torch.float64, requires_grad=True) * 2
    x = x.detach().requires_grad_()
    for packed in (False, True):
        assert torch.autograd.gradcheck(lambda t: bitpack.MaskLeakyReLU.apply(t, -0.3, packed), (x,))
        g = torch.randn(5, 7, dtype=torch.float64)
        (got,) = torch.autograd.grad(bitpack.MaskBinaryStepSTE.apply(x, packed), x, g)
        torch.testing.assert_close(got, g * (x.abs() <= 1))


def test_fused_linear_cross_entropy_benchmark_runs(tmp_path):
    out = tmp_path / "flce.json"
    result = fused_linear_ce.main(["--n", "1024", "--h", "16", "--c", "2048", "--chunk-size", "128",
                                   "--repeats", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["chunk_size"] == 128
    # the unfused loss holds N x C buffers (8 MiB each here), the fused one a 1 MiB chunk
    assert result["peak_bytes"]["unfused"] > result["peak_bytes"]["fused"] >= 0
    assert result["seconds"]["fused"] > 0 and result["seconds"]["unfused"] > 0


@pytest.mark.cuda
def test_smoke_run_on_cuda_reports_peak_memory(tmp_path):
    out = tmp_path / "cuda.json"
    result = run.main(["--smoke", "--rounds", "1", "--min-run-time", "0.001", "--device", "cuda",
                       "--ops", "relu,maxout,cross_entropy", "--mlp", "relu", "--out", str(out)])
    assert result["devices"] == ["cuda"]
    for r in result["ops"] + result["mlp"]:
        assert r["status"] == "ok", r.get("reason")
        assert r["peak_bytes"]["torchff"] > 0 and r["peak_bytes"]["torch"] > 0


def test_cuda_is_skipped_cleanly_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run.main(["--smoke", "--rounds", "1", "--min-run-time", "0.001", "--device", "cuda",
                       "--no-bitpack", "--out", str(tmp_path / "none.json")])
    assert result["devices"] == [] and result["ops"] == [] and "cuda" in result["skipped_devices"]
