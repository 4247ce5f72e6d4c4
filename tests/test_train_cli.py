"""``python -m torchff.train`` and ``python -m torchff.train.eval`` (the ``torchff-train`` and
``torchff-eval`` commands) end to end, in subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import torchff

from test_train_data import IDX_NAMES, corrupt, write_tiny_idx

EVAL = [sys.executable, "-m", "torchff.train.eval"]
PNG = b"\x89PNG\r\n\x1a\n"
QUIET = ["trainer.enable_model_summary=false"]


def cli(args, cwd, timeout=600, command=None, full_error=False):
    env = dict(os.environ)
    # the same torchff as this test process (the source tree or the installed package)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(torchff.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    env.pop("HYDRA_FULL_ERROR", None)
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    cmd = command or [sys.executable, "-m", "torchff.train"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def one_error_line(r, app="torchff-train"):
    """The command failed with exactly one line on stderr, ``<app>: error: ...``, and no traceback."""
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{app}: error: "), r.stderr[-3000:]
    return lines[0]


def test_xor_end_to_end(tmp_path):
    out = tmp_path / "run"
    r = cli(["experiment=xor", "trainer.max_epochs=100", f"hydra.run.dir={out}", *QUIET], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test/acc"] == 1.0
    assert metrics["test/loss"] < 0.1
    for name in ("learning_curves.png", "decision_boundary.png", "confusion_matrix.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert (out / "csv" / "metrics.csv").is_file()
    assert (out / "config.yaml").is_file() and (out / ".hydra" / "config.yaml").is_file()
    assert (out / "train.log").is_file()
    # the final table
    assert "test/acc" in r.stdout and "1.0000" in r.stdout
    # the best checkpoint holds the 2-2-1 network that solves XOR
    state = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    net = torchff.nn.MLP(2, [2], 1)
    net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert (net(x).squeeze(1) > 0).long().tolist() == [0, 1, 1, 0]

    # torchff-eval tests the checkpoint with the same config groups: the run's test metrics again
    ev = tmp_path / "eval"
    r = cli(["experiment=xor", f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={ev}", *QUIET],
            cwd=tmp_path, command=EVAL)
    assert r.returncode == 0, r.stderr[-3000:]
    evaluated = json.loads((ev / "metrics.json").read_text())
    assert set(evaluated) == {"test/loss", "test/acc"}
    assert evaluated["test/acc"] == metrics["test/acc"] == 1.0
    assert evaluated["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-6)
    assert "test/acc" in r.stdout and (ev / "eval.log").is_file() and (ev / "decision_boundary.png").is_file()
    assert not (ev / "checkpoints").exists()


@pytest.mark.parametrize(
    "how, problem",
    [("truncated_gzip", "truncated gzip file"), ("short_idx", "truncated: the header says (50, 28, 28)"),
     ("not_gzip", "not a valid gzip file")],
)
def test_corrupt_data_gives_one_line_naming_the_file_and_trains_nothing(tmp_path, how, problem):
    data = tmp_path / "data"
    write_tiny_idx(data, n_train=300, n_test=50)
    path = corrupt(data, how, name=IDX_NAMES[2])
    out = tmp_path / "run"
    r = cli(["experiment=fashion_mnist_mlp", f"data.root={data}", "data.val_size=100", f"hydra.run.dir={out}"],
            cwd=tmp_path)
    line = one_error_line(r)
    assert str(path) in line and problem in line
    assert not (out / "metrics.json").exists() and not (out / "checkpoints").exists()
    assert "Epoch" not in r.stdout + r.stderr

    r = cli(["experiment=fashion_mnist_mlp", f"data.root={data}", f"hydra.run.dir={out}"], cwd=tmp_path,
            full_error=True)
    assert r.returncode != 0 and "Traceback" in r.stderr and "CorruptDataError" in r.stderr


@pytest.mark.parametrize("damage", ["empty", "truncated"])
@pytest.mark.parametrize("command", ["train", "eval"])
def test_an_unusable_checkpoint_gives_one_line(tmp_path, damage, command):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"net.layers.fc0.weight": torch.zeros(64, 2)}, "epoch": 3}, ckpt)
    ckpt.write_bytes(b"" if damage == "empty" else ckpt.read_bytes()[:200])
    out = tmp_path / "run"
    app = f"torchff-{command}"
    r = cli([f"ckpt_path={ckpt}", f"hydra.run.dir={out}"], cwd=tmp_path, command=EVAL if command == "eval" else None)
    line = one_error_line(r, app)
    assert f"ckpt_path={ckpt}" in line
    assert ("the file is empty" if damage == "empty" else "truncated") in line
    assert not (out / "metrics.json").exists() and not (out / "checkpoints").exists()

    r = cli([f"ckpt_path={ckpt}", f"hydra.run.dir={out}"], cwd=tmp_path, full_error=True,
            command=EVAL if command == "eval" else None)
    assert r.returncode != 0 and "Traceback" in r.stderr and "CheckpointError" in r.stderr


def test_a_wrong_type_is_one_line_from_the_schema(tmp_path):
    r = cli(["trainer.max_epochs=abc", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    line = one_error_line(r)
    assert "trainer.max_epochs: Value 'abc' of type 'str' could not be converted to Integer" in line
    r = cli(["model.net.hidden=[3]"], cwd=tmp_path, command=EVAL)
    assert "model.net.hidden: Key 'hidden' not in 'NetConfig'" in one_error_line(r, "torchff-eval")
    r = cli([], cwd=tmp_path, command=EVAL)
    assert "ckpt_path is required" in one_error_line(r, "torchff-eval")
    r = cli(["trainer.max_epochs=abc"], cwd=tmp_path, full_error=True)
    assert r.returncode != 0 and "Traceback" in r.stderr and "ValidationError" in r.stderr


@pytest.mark.slow
def test_config_mistakes_give_a_message_not_a_traceback(tmp_path):
    r = cli(["data=nope"], cwd=tmp_path)
    assert r.returncode != 0
    assert "Could not find 'data/nope'" in r.stderr and "moons" in r.stderr
    assert "Traceback" not in r.stderr

    r = cli(["data.batch_size=abc", f"hydra.run.dir={tmp_path / 'a'}"], cwd=tmp_path)
    assert r.returncode == 1
    assert "batch_size must be an int, got 'abc'" in r.stderr
    assert "Traceback" not in r.stderr

    r = cli(["experiment=fashion_mnist_mlp", f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'b'}"],
            cwd=tmp_path)
    assert r.returncode == 1
    assert "Fashion-MNIST not found" in r.stderr and str(tmp_path / "nowhere") in r.stderr
    assert "apt-get install dataset-fashion-mnist" in r.stderr and "data.download=true" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_multirun_sweeps_the_experiment_params(tmp_path):
    sweep = tmp_path / "multi"
    r = cli(["-m", "experiment=regression_gaussian_vs_laplace", "trainer.max_epochs=2", "data.n_train=200",
             "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}", *QUIET], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    outputs = {}
    for job in ("0", "1"):
        cfg = (sweep / job / "config.yaml").read_text()
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        output = "gaussian" if "output: gaussian" in cfg else "laplace"
        outputs[output] = metrics
        assert (sweep / job / "fit.png").read_bytes()[:8] == PNG
    assert set(outputs) == {"gaussian", "laplace"}
    assert outputs["gaussian"]["test/loss"] == pytest.approx(outputs["gaussian"]["test/mse"])
    assert outputs["laplace"]["test/loss"] == pytest.approx(outputs["laplace"]["test/mae"])


@pytest.mark.slow
def test_ddp_over_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    r = cli(["experiment=xor", "trainer=ddp_cpu", "trainer.devices=2", "trainer.max_epochs=60",
             "trainer.enable_progress_bar=false", f"hydra.run.dir={out}", *QUIET], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert "MEMBER: 1/2" in log and "MEMBER: 2/2" in log
    assert "distributed_backend=gloo" in log
    metrics = json.loads((out / "metrics.json").read_text())
    # each process sees two of the four points; the averaged gradient is the full batch's
    assert metrics["test/acc"] == 1.0
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_installed_console_scripts_from_any_folder(tmp_path):
    exe = Path(sys.executable).parent / "torchff-train"  # the environment running the tests
    if not exe.is_file():
        pytest.skip("torchff-train is not installed in this environment (a non-editable `pip install .` puts it there)")
    out = tmp_path / "run"
    r = cli(["experiment=xor", "trainer.max_epochs=2", f"hydra.run.dir={out}"], cwd=tmp_path, command=[str(exe)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "test/loss" in json.loads((out / "metrics.json").read_text())
    ev = tmp_path / "eval"
    r = cli(["experiment=xor", f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={ev}"], cwd=tmp_path,
            command=[str(Path(sys.executable).parent / "torchff-eval")])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "test/loss" in json.loads((ev / "metrics.json").read_text())


@pytest.mark.slow
def test_optuna_search_runs_trials_and_reports_the_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")  # the optional extra torchff[optuna]
    sweep = tmp_path / "optuna"
    r = cli(["-m", "hparams_search=moons_optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=2",
             "trainer.max_epochs=1", "data.n_train=200", "trainer.enable_progress_bar=false",
             f"hydra.sweep.dir={sweep}", *QUIET], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [json.loads((sweep / job / "metrics.json").read_text())["val/acc_best"] for job in ("0", "1")]
    assert results["best_value"] == pytest.approx(max(trials))
    assert set(results["best_params"]) == {"model.optimizer.lr", "model.net.hidden_features", "model.net.activation",
                                           "data.batch_size"}
