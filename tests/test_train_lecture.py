"""The lecture's first half through torchff-train: the perceptron on XOR, RBF features on XOR and circles."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from torchff.train import compose, run

QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "plots=false"]
XOR = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def run_experiment(tmp_path, *overrides):
    return run(compose([*overrides, f"paths.output_dir={tmp_path}", *QUIET]))


def test_perceptron_on_xor_cannot_exceed_three_quarters(tmp_path):
    metrics = run_experiment(tmp_path, "experiment=xor_perceptron")
    assert metrics["val/acc_best"] <= 0.75 and metrics["test/acc"] <= 0.75
    assert metrics["val/acc_best"] >= 0.5
    assert metrics["test/loss"] > 0  # never all on the right side
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["val/acc_best"] <= 0.75
    cfg = OmegaConf.load(tmp_path / "config.yaml")
    assert cfg.model.output == "perceptron" and cfg.model.net.hidden_features == []


def test_rbf_features_on_the_four_points_make_xor_separable(tmp_path):
    metrics = run_experiment(tmp_path, "experiment=xor_rbf", "logger=none")
    assert metrics["test/acc"] == 1.0 and metrics["val/acc_best"] == 1.0
    state = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    centers = state["net.layers.rbf.centers"]
    assert sorted(map(tuple, centers.tolist())) == sorted(map(tuple, XOR.tolist()))  # the four points
    assert bool(state["net.layers.rbf.initialized"])


def test_rbf_linear_model_against_the_mlp_on_circles(tmp_path):
    common = ["experiment=circles_rbf", "data.n_train=400", "data.n_val=200", "data.n_test=400", "logger=none"]
    rbf = run_experiment(tmp_path / "rbf", *common)
    mlp = run_experiment(tmp_path / "mlp", *common, "model.net.features=null", "model.net.hidden_features=[16]")
    assert rbf["test/acc"] >= 0.95 and mlp["test/acc"] >= 0.95
    linear = run_experiment(tmp_path / "linear", *common, "model.net.features=null", "trainer.max_epochs=5")
    assert linear["test/acc"] < 0.75  # no features, no hidden layer: a line cannot separate circles


def test_perceptron_output_from_the_command_line_overrides(tmp_path):
    metrics = run_experiment(tmp_path, "data=moons", "model.output=perceptron", "model.net.hidden_features=[]",
                             "model.optimizer.lr=0.1", "trainer.max_epochs=5", "logger=none")
    assert 0.75 <= metrics["test/acc"] <= 1.0  # a linear classifier on moons


def test_resume_keeps_the_restored_centers(tmp_path):
    common = ["experiment=circles_rbf", "data.n_train=128", "data.n_val=64", "data.n_test=64", "logger=none"]
    run_experiment(tmp_path / "first", *common, "trainer.max_epochs=1")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    before = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]["net.layers.rbf.centers"]
    from torchff.train import FeedforwardModule

    seen = {}
    orig = FeedforwardModule.on_train_start

    def spy(self):
        seen["needs"] = self.net.needs_data_init
        seen["centers"] = self.net.layers.rbf.centers.detach().clone()
        orig(self)

    FeedforwardModule.on_train_start = spy
    try:
        run_experiment(tmp_path / "second", *common, "trainer.max_epochs=2", f"ckpt_path={last}")
    finally:
        FeedforwardModule.on_train_start = orig
    assert seen["needs"] is False
    assert torch.equal(seen["centers"], before)


@pytest.mark.parametrize("init", ["batch", "kmeans++"])
def test_centers_come_from_the_first_training_batch(tmp_path, init):
    from lightning.pytorch import Trainer

    import torchff.nn as tnn
    from torchff.train import FeedforwardModule
    from torchff.train.data import CirclesDataModule

    dm = CirclesDataModule(n_train=64, n_val=16, n_test=16, batch_size=8)
    net = tnn.MLP(2, [], 1, features="rbf", num_centers=12, center_init=init, learnable_centers=False)
    module = FeedforwardModule(net, output="bernoulli")
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(module, dm)
    x, _ = dm.tensors("train")
    centers = net.layers.rbf.centers.detach()
    # every center is a training point (fixed centers: unchanged by training)
    assert torch.cdist(centers, x).min(1).values.max() == 0
    assert len({tuple(c) for c in centers.tolist()}) == 12 or init == "kmeans++"
    assert not net.needs_data_init
