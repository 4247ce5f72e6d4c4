"""The training stack in-process: configs, the LightningModule, runs, resume, seeds, config errors."""

import importlib.util
import json
import math
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import torchff.nn as tnn
from torchff.train import FeedforwardModule, compose, config_dir, list_experiments, run
from torchff.train.data import MoonsDataModule, Regression1DDataModule, SpiralsDataModule, XORDataModule
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, ValidationError

from torchff.train.errors import CheckpointError, ConfigError
from torchff.train.pipeline import check_checkpoint, evaluate

from test_train_data import write_tiny_idx

QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def compose_run(tmp_path, *overrides):
    return compose([*overrides, f"paths.output_dir={tmp_path}", *QUIET])


# -- configs ---------------------------------------------------------------------------
def test_configs_are_the_package_torchff_conf():
    import torchff.conf

    d = config_dir()
    assert d.resolve() == Path(torchff.conf.__file__).resolve().parent
    assert (d / "train.yaml").is_file() and (d / "eval.yaml").is_file()
    assert {"xor", "moons", "spirals", "regression_gaussian_vs_laplace", "fashion_mnist_mlp",
            "fashion_mnist_maxout"} <= set(list_experiments())


def test_default_config_is_moons_on_the_cpu():
    cfg = compose(["paths.output_dir=/tmp/unused"])
    assert cfg.data._target_.endswith("MoonsDataModule")
    assert cfg.model.net._target_ == "torchff.nn.MLP"
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.devices == 1
    assert set(cfg.callbacks) == {"model_checkpoint", "metric_history"}
    assert set(cfg.logger) == {"csv"}


@pytest.mark.parametrize("experiment", list_experiments())
def test_every_experiment_runs_one_fast_dev_run_step(tmp_path, experiment):
    overrides = [f"experiment={experiment}", "trainer.fast_dev_run=true"]
    if "mnist" in experiment:
        write_tiny_idx(tmp_path / "data", n_train=300, n_test=100)
        overrides += [f"data.root={tmp_path / 'data'}", "data.val_size=100"]
    cfg = compose_run(tmp_path / "run", *overrides)
    metrics = run(cfg)
    assert math.isfinite(metrics["test/loss"])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test/loss"] == pytest.approx(metrics["test/loss"])
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert saved.model.net.in_features is not None and saved.model.net.out_features is not None


def test_experiment_settings():
    xor = compose(["experiment=xor", "paths.output_dir=/tmp/unused"])
    assert xor.model.net.hidden_features == [2] and xor.model.output == "bernoulli"
    assert xor.model.net.activation == "relu"
    maxout = compose(["experiment=fashion_mnist_maxout", "paths.output_dir=/tmp/unused"])
    assert maxout.model.net.activation == "maxout" and maxout.model.net.pieces == 4
    assert maxout.model.net.hidden_features == [400, 400]
    assert maxout.model.max_norm == pytest.approx(1.9365)
    assert "max_norm" not in maxout.model.net  # one max_norm key: model.max_norm
    assert maxout.model.net.dropout == 0.3 and maxout.model.net.input_dropout == 0.1
    for name in ("fashion_mnist_mlp", "fashion_mnist_maxout"):
        cfg = compose([f"experiment={name}", "paths.output_dir=/tmp/unused"])
        assert cfg.trainer.max_time == "00:00:10:00"
        assert 256 <= cfg.data.batch_size <= 512


def _options(group):
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["data", "model", "trainer", "logger", "callbacks"])
def test_every_group_option_composes_and_instantiates(tmp_path, group):
    for option in _options(group):
        cfg = compose_run(tmp_path, f"{group}={option}")
        node = cfg[group]
        if group == "trainer":
            assert node._target_ == "lightning.pytorch.Trainer"
            if option in ("cpu", "default", "ddp_cpu"):
                trainer = instantiate(node)
                assert isinstance(trainer, L.Trainer)
        elif group in ("logger", "callbacks"):
            for key, conf in (node or {}).items():
                needs = {"tensorboard": "tensorboard", "rich_progress_bar": "rich"}.get(key)
                if needs and importlib.util.find_spec(needs) is None:
                    continue  # an optional package (in the dev extras)
                assert instantiate(conf) is not None
        elif group == "data":
            dm = instantiate(node)
            assert dm.in_features >= 1
        elif group == "model":
            assert node.net._target_ == "torchff.nn.MLP"


def test_hparams_search_configs_compose():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    for name in _options("hparams_search"):
        cfg = compose([f"hparams_search={name}", "paths.output_dir=/tmp/unused"], return_hydra_config=True)
        assert cfg.optimized_metric == "val/acc_best"
        assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
        assert cfg.hydra.sweeper.params


# -- the LightningModule -----------------------------------------------------------------
@pytest.mark.parametrize(
    "output, dm",
    [
        ("categorical", lambda: SpiralsDataModule(n_train=64, n_val=32, n_test=32, batch_size=32)),
        ("bernoulli", lambda: MoonsDataModule(n_train=64, n_val=32, n_test=32, batch_size=32)),
        ("gaussian", lambda: Regression1DDataModule(n_train=64, n_val=32, n_test=32, batch_size=32)),
        ("laplace", lambda: Regression1DDataModule(n_train=64, n_val=32, n_test=32, batch_size=32)),
    ],
)
def test_module_loss_is_the_registry_loss_and_metrics_are_logged(output, dm):
    dm = dm()
    dist = tnn.get_output(output)
    n_out = dist.out_features(dm.num_classes if dist.task == "multiclass" else 1)
    net = tnn.MLP(dm.in_features, [8], n_out)
    module = FeedforwardModule(net, output=output, num_classes=dm.num_classes if dist.task == "multiclass" else None)
    dm.setup()
    x, y = dm.tensors("train")
    out = net(x)
    target = module.target(y, out)
    if dist.task == "multiclass":
        assert target.dtype == torch.int64 and target.shape == y.shape
    else:
        assert target.dtype == out.dtype and target.shape == out.shape
    torch.testing.assert_close(module.criterion(out, target), dist.loss()(out, target))

    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, dm)
    keys = set(trainer.callback_metrics)
    trainer.test(module, dm, verbose=False)
    expected = {"mse", "mae"} if dist.task == "regression" else {"acc"}
    for stage in ("train", "val"):
        assert f"{stage}/loss" in keys and {f"{stage}/{m}" for m in expected} <= keys
    assert "val/loss_best" in keys
    assert {"test/loss"} | {f"test/{m}" for m in expected} == set(trainer.callback_metrics)
    if dist.task != "regression":
        assert "val/acc_best" in keys
        cm = module.test_confusion_matrix
        assert cm.shape == (module.num_classes, module.num_classes) and int(cm.sum()) == 32


def test_module_test_metrics_match_a_direct_computation():
    dm = SpiralsDataModule(n_train=64, n_val=32, n_test=50, batch_size=16)
    net = tnn.MLP(2, [16], 3)
    module = FeedforwardModule(net, output="categorical", num_classes=3)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    (res,) = trainer.test(module, dm, verbose=False)
    x, y = dm.tensors("test")
    with torch.no_grad():
        logits = net(x)
    assert res["test/acc"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    # the sample-weighted mean over uneven batches (16, 16, 16, 2), not a mean of batch means
    assert res["test/loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-5)
    expected_cm = torch.zeros(3, 3, dtype=torch.int64)
    for t, p in zip(y, logits.argmax(1)):
        expected_cm[t, p] += 1
    assert torch.equal(module.test_confusion_matrix, expected_cm)


def test_module_max_norm_holds_after_every_step():
    dm = MoonsDataModule(n_train=64, n_val=16, n_test=16, batch_size=16)
    net = tnn.MLP(2, [32], 2)
    opt = lambda params: torch.optim.SGD(params, lr=5.0)  # noqa: E731 - a large step leaves the ball
    module = FeedforwardModule(net, output="categorical", optimizer=opt, max_norm=0.3)

    seen = []

    class Check(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(max(float(m.weight.detach().norm(dim=1).max()) for m in net.linear_layers()))

    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Check()])
    trainer.fit(module, dm)
    assert len(seen) == 8 and max(seen) <= 0.3 + 1e-5


def test_module_optimizer_and_scheduler_partials():
    from functools import partial

    net = tnn.MLP(2, [4], 2)
    module = FeedforwardModule(net, optimizer=partial(torch.optim.SGD, lr=0.3, momentum=0.9),
                               scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=2))
    conf = module.configure_optimizers()
    assert isinstance(conf["optimizer"], torch.optim.SGD) and conf["optimizer"].defaults["lr"] == 0.3
    assert isinstance(conf["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert isinstance(FeedforwardModule(net).configure_optimizers(), torch.optim.Adam)


# -- runs ------------------------------------------------------------------------------
def _weights(ckpt):
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    return {k: v for k, v in state["state_dict"].items() if k.startswith("net.")}, state


def test_resume_from_last_checkpoint_loses_nothing(tmp_path):
    common = ["experiment=xor", "trainer.check_val_every_n_epoch=1", "logger=csv"]
    whole = run(compose_run(tmp_path / "whole", *common, "trainer.max_epochs=30"))
    run(compose_run(tmp_path / "first", *common, "trainer.max_epochs=15"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert last.is_file() and (tmp_path / "first" / "checkpoints" / "best.ckpt").is_file()
    resumed = run(compose_run(tmp_path / "second", *common, "trainer.max_epochs=30", f"ckpt_path={last}"))

    w_whole, s_whole = _weights(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    w_res, s_res = _weights(tmp_path / "second" / "checkpoints" / "last.ckpt")
    assert s_res["epoch"] == s_whole["epoch"] == 29 and s_res["global_step"] == s_whole["global_step"] == 30
    for k in w_whole:
        torch.testing.assert_close(w_res[k], w_whole[k], rtol=1e-5, atol=1e-6)
    assert resumed["test/loss"] == pytest.approx(whole["test/loss"], rel=1e-4, abs=1e-6)
    # the learning-curve history travels in the checkpoint: all 30 epochs, not just 15..29
    hist = s_res["callbacks"]
    (state,) = [v for k, v in hist.items() if "MetricHistory" in k]
    assert [e for e, _ in state["history"]["train/loss"]] == list(range(30))
    assert [e for e, _ in state["history"]["val/loss"]] == list(range(30))


def test_seed_makes_runs_reproducible(tmp_path):
    args = ["data.n_train=128", "data.n_val=64", "data.n_test=64", "trainer.max_epochs=2", "callbacks=none", "logger=none",
            "plots=false"]
    a = run(compose_run(tmp_path / "a", *args, "seed=3"))
    b = run(compose_run(tmp_path / "b", *args, "seed=3"))
    c = run(compose_run(tmp_path / "c", *args, "seed=4"))
    assert a == b
    assert a["test/loss"] != c["test/loss"]


def test_xor_with_the_gaussian_output_as_in_the_lecture_is_rejected_clearly(tmp_path):
    # the lecture fits XOR by MSE; here classification data need a classification output
    with pytest.raises(ConfigError, match="regression output"):
        run(compose_run(tmp_path, "experiment=xor", "model.output=gaussian"))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["data=spirals", "model.output=bernoulli"], "needs two classes"),
        (["data=regression", "model.output=categorical"], "regression data set"),
        (["model.net.in_features=3"], "in_features=3"),
        (["num_threads=0"], "num_threads"),
        (["ckpt_path=/nonexistent/last.ckpt"], "is not a file"),
        (["model.output=poisson"], "model.output"),
    ],
)
def test_config_mistakes_raise_clear_errors(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        run(compose_run(tmp_path, *overrides))


# -- the structured config ------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, key, error",
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs", ValidationError),
        ("seed=1.5", "seed", ValidationError),
        ("train=maybe", "train", ValidationError),
        ("model.net.dropout=abc", "model.net.dropout", ValidationError),
        ("model.max_norm=big", "model.max_norm", ValidationError),
        ("model.net.num_centers=abc", "model.net.num_centers", ValidationError),
        ("model.net.hidden=[3]", "model.net.hidden", ConfigAttributeError),
        ("model.net.max_norm=1.0", "model.net.max_norm", ConfigAttributeError),
    ],
)
def test_the_schema_rejects_wrong_types_and_unknown_keys_while_composing(override, key, error):
    with pytest.raises(ConfigCompositionException) as info:
        compose([override, "paths.output_dir=/tmp/unused"])
    assert isinstance(info.value.__cause__, error) and info.value.__cause__.full_key == key


def test_the_schema_types_the_yaml_files():
    from torchff.train.schema import ModelConfig, NetConfig, TrainConfig, TrainerConfig

    cfg = compose(["paths.output_dir=/tmp/unused"])
    assert OmegaConf.get_type(cfg) is TrainConfig
    assert OmegaConf.get_type(cfg.model) is ModelConfig and OmegaConf.get_type(cfg.model.net) is NetConfig
    assert OmegaConf.get_type(cfg.trainer) is TrainerConfig
    # strings that OmegaConf converts are stored with the schema's type
    cfg = compose(["paths.output_dir=/tmp/unused", "trainer.max_epochs=7", "model.net.dropout=0", "seed=null"])
    assert cfg.trainer.max_epochs == 7 and isinstance(cfg.model.net.dropout, float) and cfg.seed is None


def test_the_schema_accepts_the_rbf_keys_and_any_registry_output():
    cfg = compose(["paths.output_dir=/tmp/unused"])
    net = cfg.model.net
    assert (net.features, net.num_centers, net.gamma, net.learnable_centers, net.center_init) == (
        None, 16, 1.0, True, "batch")
    cfg = compose(["paths.output_dir=/tmp/unused", "model.net.features=rbf", "model.net.num_centers=4",
                   "model.net.gamma=0.5", "model.net.learnable_centers=false", "model.net.center_init=batch",
                   "model.output=perceptron"])
    assert cfg.model.net.features == "rbf" and cfg.model.net.num_centers == 4 and cfg.model.net.gamma == 0.5
    assert cfg.model.net.learnable_centers is False and cfg.model.output == "perceptron"


def test_mappings_that_default_to_null_take_a_mapping_from_the_command_line(tmp_path):
    # as the README shows; a typed Optional[Dict] that is null cannot take one in OmegaConf 2.3
    cfg = compose(["paths.output_dir=/tmp/unused", "model.net.activation=leaky_relu",
                   "model.net.activation_kwargs={negative_slope:0.1}", "model.loss_kwargs={reduction:mean}"])
    assert cfg.model.net.activation_kwargs == {"negative_slope": 0.1} and cfg.model.loss_kwargs == {"reduction": "mean"}
    metrics = run(compose_run(tmp_path, "experiment=xor", "trainer.max_epochs=2", "model.net.activation=leaky_relu",
                              "model.net.activation_kwargs={negative_slope:0.1}", "model.loss_kwargs={reduction:mean}",
                              "logger=none", "plots=false"))
    assert math.isfinite(metrics["test/loss"])
    # the checkpoint's hyper-parameters are plain containers: it loads as Lightning resumes (weights_only)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["loss_kwargs"] == {"reduction": "mean"}
    resumed = run(compose_run(tmp_path / "resumed", "experiment=xor", "trainer.max_epochs=3",
                              "model.net.activation=leaky_relu", "model.net.activation_kwargs={negative_slope:0.1}",
                              "model.loss_kwargs={reduction:mean}", "logger=none", "plots=false",
                              f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"))
    assert math.isfinite(resumed["test/loss"])


def test_without_features_the_rbf_keys_do_not_reach_the_network(tmp_path):
    from torchff.train.pipeline import _instantiate_model

    cfg = compose_run(tmp_path, "model.net.in_features=2", "model.net.out_features=2")
    module = _instantiate_model(cfg)
    assert isinstance(module.net, tnn.MLP) and module.net.in_features == 2


def test_one_max_norm_key_and_training_uses_it():
    for name in ("mlp", "maxout"):
        cfg = compose([f"model={name}", "paths.output_dir=/tmp/unused"])
        assert "max_norm" in cfg.model and "max_norm" not in cfg.model.net
    assert compose(["model=maxout", "paths.output_dir=/tmp/unused"]).model.max_norm == pytest.approx(1.9365)


def test_num_threads_auto_follows_single_thread():
    from torchff.train.data import FashionMNISTDataModule
    from torchff.train.pipeline import _set_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _set_threads("auto", FashionMNISTDataModule(root="nowhere"))
        assert torch.get_num_threads() == 2
        _set_threads("auto", MoonsDataModule())
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_old_small_key_is_refused_with_the_new_name(tmp_path):
    with pytest.raises(ConfigError, match="data.small was renamed.*single_thread"):
        run(compose_run(tmp_path, "+data.small=true"))


# -- checkpoints and evaluation -------------------------------------------------------------
@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("xor_run")
    metrics = run(compose_run(out, "experiment=xor", "trainer.max_epochs=60", "logger=none", "plots=false"))
    return out, metrics


def test_evaluate_a_checkpoint_gives_the_runs_test_metrics(tmp_path, xor_run):
    out, trained = xor_run
    cfg = compose(["experiment=xor", f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", f"paths.output_dir={tmp_path}",
                   *QUIET], config_name="eval")
    metrics = evaluate(cfg)
    assert set(metrics) == {"test/loss", "test/acc"}
    assert metrics["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-6)
    assert metrics["test/acc"] == trained["test/acc"]
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)
    assert (tmp_path / "decision_boundary.png").is_file() and not (tmp_path / "checkpoints").exists()


def test_eval_config_needs_ckpt_path(tmp_path):
    cfg = compose([f"paths.output_dir={tmp_path}"], config_name="eval")
    assert OmegaConf.is_missing(cfg, "ckpt_path")
    with pytest.raises(ConfigError, match="ckpt_path is required"):
        evaluate(cfg)


@pytest.mark.parametrize("damage, match", [
    ("empty", "the file is empty"),
    ("truncated", "truncated \\(a zip archive without its end\\)"),
    ("junk", "cannot be read as a checkpoint"),
])
def test_unusable_checkpoints_are_refused_before_training(tmp_path, xor_run, damage, match):
    best = (xor_run[0] / "checkpoints" / "best.ckpt").read_bytes()
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes({"empty": b"", "truncated": best[: len(best) // 2], "junk": b"hello\n"}[damage])
    with pytest.raises(CheckpointError, match=match):
        check_checkpoint(bad)
    with pytest.raises(CheckpointError, match=f"ckpt_path={bad}"):
        run(compose_run(tmp_path / "run", "experiment=xor", f"ckpt_path={bad}"))
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_a_checkpoint_of_another_network_is_refused_saying_which_weights_differ(tmp_path, xor_run):
    best = xor_run[0] / "checkpoints" / "best.ckpt"
    cfg = compose(["experiment=moons", f"ckpt_path={best}", f"paths.output_dir={tmp_path}", *QUIET], config_name="eval")
    with pytest.raises(CheckpointError, match=r"holds another network .*net\.layers.* is \(2, 2\), the model's \(64, 2\)"):
        evaluate(cfg)


def test_plots_and_outputs_of_a_short_run(tmp_path):
    metrics = run(compose_run(tmp_path, "experiment=regression_gaussian_vs_laplace", "model.output=laplace",
                              "trainer.max_epochs=2", "data.n_train=200"))
    assert {"test/loss", "test/mse", "test/mae", "val/loss_best"} <= set(metrics)
    assert metrics["test/loss"] == pytest.approx(metrics["test/mae"])
    for name in ("fit.png", "learning_curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "confusion_matrix.png").exists()
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    assert "${" not in (tmp_path / "config.yaml").read_text()
    assert Path(tmp_path / "checkpoints" / "last.ckpt").is_file()
