"""End-to-end training through the Hydra config: run folder, reproducibility, checkpoints that
rebuild themselves, recording and reports, optimizers and schedulers, loggers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, compose_train
from zoo.cli.eval import evaluate
from zoo.reporting.report import load_runs
from zoo.tasks import load_task
from zoo.cli.train import train
from zoo.utils.wandb_offline import find_run_files, read_history


def _eval_cfg(ckpt: str, tmp_path: Path, split: str = "test"):
    return compose_train([f"ckpt_path={ckpt}", f"split={split}", "trainer=cpu",
                          "trainer.enable_progress_bar=false"], tmp_path, config_name="eval")


def test_run_folder_and_checkpoint_rebuild(tmp_path, quick):
    cfg = compose_train(["experiment=lenet5_mnist5k", *quick], tmp_path)
    rec = train(cfg)
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.json", "history.csv", "learning_curves.png", "confusion_matrix.png"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["params"] == 60850 and saved["model"] == "lenet5"
    assert set(saved["test"]) == {"test/loss", "test/acc", "test/f1"}
    assert 0.0 <= saved["test"]["test/acc"] <= 1.0
    assert sum(map(sum, saved["confusion_matrix"])) == 500
    assert saved["versions"]["torch"] == torch.__version__.split("+")[0] or saved["versions"]["torch"].startswith(torch.__version__.split("+")[0])
    assert saved["command"] == "pytest" and saved["train_time_s"] > 0 and saved["throughput_samples_per_s"] > 0
    assert len(saved["git"]["commit"] or "") in (0, 40)
    # the checkpoint rebuilds its own net and data: same test metrics, nothing re-stated
    task = load_task(rec["best_checkpoint"])
    assert task.net.zoo_spec["name"] == "lenet5"
    metrics = evaluate(_eval_cfg(rec["best_checkpoint"], tmp_path))
    assert metrics["test/acc"] == pytest.approx(rec["test"]["test/acc"], abs=0)
    assert metrics["test/f1"] == pytest.approx(rec["test"]["test/f1"], abs=0)


def test_same_seed_same_result(tmp_path, quick):
    results = []
    for i in range(2):
        cfg = compose_train(["experiment=lenet5_mnist5k", *quick, "callbacks=none", "logger=none"], tmp_path / str(i))
        results.append(train(cfg)["test"])
    assert results[0] == results[1]
    other = train(compose_train(["experiment=lenet5_mnist5k", *quick, "callbacks=none", "logger=none", "seed=1"], tmp_path / "2"))
    assert other["test"] != results[0]


def test_record_and_report(tmp_path, quick):
    for seed in (0, 1):
        cfg = compose_train(["experiment=softmax_mnist5k", *quick, "record=true", f"seed={seed}"], tmp_path)
        train(cfg)
    reports = tmp_path / "reports"
    runs = load_runs(reports)
    assert sorted(r["seed"] for r in runs) == [0, 1]
    readme = (reports / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| softmax_mnist5k"))
    mean = 100 * sum(r["test"]["test/acc"] for r in runs) / 2
    assert f"{mean:.2f} ±" in row
    assert (reports / "results.csv").read_text().count("softmax_mnist5k") == 2
    assert (reports / "runs" / "softmax_mnist5k" / "seed1" / "learning_curves.png").is_file()


OPTIMIZERS = sorted(p.stem for p in (ROOT / "conf" / "optimizer").glob("*.yaml"))
SCHEDULERS = sorted(p.stem for p in (ROOT / "conf" / "scheduler").glob("*.yaml"))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizers(tmp_path, quick, optimizer):
    cfg = compose_train(["experiment=softmax_mnist5k", *quick, f"optimizer={optimizer}",
                         "scheduler=none", "logger=none", "callbacks=none"], tmp_path)
    rec = train(cfg)
    assert rec["test"]["test/acc"] > 0.3  # 8 steps of any optimizer beat chance (0.1)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_schedulers(tmp_path, quick, scheduler):
    quick = [q for q in quick if not q.startswith("trainer.max_epochs")]
    cfg = compose_train(["experiment=softmax_mnist5k", *quick, "trainer.max_epochs=4", "scheduler.step_size=1"
                         if scheduler == "step" else f"scheduler={scheduler}",
                         *(["scheduler=step"] if scheduler == "step" else []),
                         *(["scheduler.milestones=[1,2,3,4]"] if scheduler == "multistep" else []),
                         "optimizer=sgd", "optimizer.lr=0.1", "logger=none", "callbacks=none"], tmp_path)
    train(cfg)
    import csv

    with open(tmp_path / "run" / "history.csv") as fh:
        lrs = [float(row["lr"]) for row in csv.DictReader(fh)]
    if scheduler == "none":
        assert lrs == [0.1] * 4
    elif scheduler == "onecycle":
        assert max(lrs) > lrs[-1] and lrs[-1] < 0.01
    elif scheduler == "noam":  # linear warm-up (longer than these 4 short epochs) towards the optimizer's lr
        assert all(a < b for a, b in zip(lrs, lrs[1:])) and lrs[-1] <= 0.1, lrs
    else:
        assert all(a > b for a, b in zip(lrs, lrs[1:])), lrs
        if scheduler == "inverse_time":  # lr_0 / (1 + epoch), read at the end of each epoch
            assert lrs == pytest.approx([0.1 / (1 + e) for e in range(1, 5)])  # the scheduler's own rounding


def test_regularisation_options(tmp_path, quick):
    cfg = compose_train(["experiment=mlp_mnist5k", *quick, "task.label_smoothing=0.1",
                         "trainer.gradient_clip_val=0.5", "optimizer.weight_decay=0.001",
                         "model.dropout=0.5", "model.batch_norm=true", "model.init=xavier",
                         "model.activation=leaky_relu", "logger=none", "callbacks=none"], tmp_path)
    rec = train(cfg)
    assert rec["model_kwargs"]["dropout"] == 0.5 and rec["model_kwargs"]["activation"] == "leaky_relu"


def test_binary_logistic_regression(tmp_path, quick):
    cfg = compose_train(["experiment=logreg_mnist5k", *quick, "logger=none"], tmp_path)
    rec = train(cfg)
    assert rec["params"] == 785
    assert len(rec["confusion_matrix"]) == 2
    assert rec["test"]["test/acc"] > 0.85


def test_resume_from_checkpoint(tmp_path, quick):
    cfg = compose_train(["experiment=softmax_mnist5k", *quick, "logger=none"], tmp_path / "a")
    train(cfg)
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    cfg2 = compose_train(["experiment=softmax_mnist5k", *[q for q in quick if "max_epochs" not in q],
                          "trainer.max_epochs=3", f"ckpt_path={last}", "logger=none"], tmp_path / "b")
    rec = train(cfg2)
    assert rec["epochs"] == 3 and rec["global_steps"] == 12  # 2 epochs restored + 1 more, 4 batches each


def test_wandb_offline_without_account(tmp_path, quick, monkeypatch):
    """logger=wandb with no account configured writes an offline run holding the metrics."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    from zoo.loggers import wandb_account_configured

    assert not wandb_account_configured()
    cfg = compose_train(["experiment=lenet5_mnist5k", *quick, "logger=wandb"], tmp_path)
    rec = train(cfg)
    files = find_run_files(tmp_path / "run")
    assert len(files) == 1 and files[0].parent.name.startswith("offline-run-")
    rows = read_history(files[0])
    logged = {k: v for row in rows for k, v in row.items()}
    assert logged["test/acc"] == pytest.approx(rec["test"]["test/acc"])  # the logger's float conversions
    assert "val/acc" in logged and "train/loss_epoch" in logged


def test_config_stored_in_checkpoint_is_plain_data(tmp_path, quick):
    cfg = compose_train(["experiment=mlp_mnist5k", *quick, "logger=none"], tmp_path)
    rec = train(cfg)
    ckpt = torch.load(rec["best_checkpoint"], weights_only=True)  # no pickled objects
    assert ckpt["zoo"]["net_spec"]["name"] == "mlp"
    assert OmegaConf.create(ckpt["zoo"]["config"]).data._target_ == "datamodules.MNIST5kDataModule"


def test_resumed_run_is_identical_to_an_uninterrupted_one(tmp_path):
    """Stop a run after 2 of 4 epochs, resume it from last.ckpt: the weights and metrics at the
    end are exactly those of the same run never stopped (shuffling and augmentation included)."""
    import lightning as L

    from zoo.cli.train import build

    over = ["experiment=lenet5_mnist5k", "trainer=cpu", "trainer.max_epochs=4", "trainer.limit_train_batches=5",
            "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false", "logger=none", "test=false"]
    whole = train(compose_train(over, tmp_path / "whole"))

    class StopAfterTwoEpochs(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                trainer.should_stop = True

    cfg = compose_train(over, tmp_path / "stopped")
    L.seed_everything(cfg.seed, workers=True)
    dm, task, trainer, _ = build(cfg)
    trainer.callbacks.append(StopAfterTwoEpochs())
    trainer.fit(task, datamodule=dm)
    assert trainer.current_epoch == 2
    last = tmp_path / "stopped" / "run" / "checkpoints" / "last.ckpt"
    resumed = train(compose_train([*over, f"ckpt_path={last}"], tmp_path / "resumed"))

    assert resumed["epochs"] == whole["epochs"] == 4 and resumed["global_steps"] == whole["global_steps"]
    a = torch.load(tmp_path / "whole" / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["val"] == whole["val"]


def test_trainer_gradient_clipping_reaches_the_task(tmp_path, quick):
    """The tasks optimize manually, so zoo-train hands trainer.gradient_clip_val to the task; the
    clip must then bound the gradient norm of every step."""
    from zoo.cli.train import build

    cfg = compose_train(["experiment=mlp_digits8x8", *quick, "trainer.gradient_clip_val=0.01"], tmp_path)
    dm, task, trainer, _ = build(cfg)
    assert task.gradient_clip_val == 0.01 and trainer.gradient_clip_val is None
    norms = []
    original = task.on_before_optimizer_step

    def record(optimizer):
        original(optimizer)
        grads = [p.grad.detach().flatten() for p in task.parameters() if p.grad is not None]
        norms.append(float(torch.cat(grads).norm()))

    task.on_before_optimizer_step = record
    trainer.fit(task, datamodule=dm)
    assert len(norms) == trainer.global_step > 0
    assert max(norms) <= 0.01 * (1 + 1e-4)


def test_manual_optimization_matches_lightning_automatic_loop(tmp_path, quick):
    """The zoo's hand-made optimizer step (zero_grad, backward, clip, step, scheduler) gives the
    weights Lightning's automatic optimization gives, step for step."""
    import lightning as L
    import torch.nn.functional as F
    from hydra.utils import instantiate

    from zoo.cli.train import build

    overrides = ["experiment=mlp_digits8x8", *quick, "trainer.gradient_clip_val=0.5", "augment=none",
                 "scheduler=step", "scheduler.step_size=1", "callbacks=none", "logger=none", "seed=3"]
    cfg = compose_train(overrides, tmp_path / "zoo")
    L.seed_everything(3, workers=True)
    dm, task, trainer, _ = build(cfg)
    trainer.fit(task, datamodule=dm)

    L.seed_everything(3, workers=True)
    dm2 = instantiate(cfg.data, _convert_="all")
    net = instantiate(cfg.model, _convert_="all")
    smoothing = float(cfg.task.label_smoothing)
    opt_factory = instantiate(cfg.optimizer, _convert_="all")
    sched_factory = instantiate(cfg.scheduler, _convert_="all")

    class Automatic(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y, label_smoothing=smoothing)

        def validation_step(self, batch, batch_idx):
            pass

        def configure_optimizers(self):
            opt = opt_factory(self.parameters())
            return {"optimizer": opt, "lr_scheduler": sched_factory(opt)}

    ref = L.Trainer(max_epochs=2, limit_train_batches=4, accelerator="cpu", devices=1, deterministic=True,
                    gradient_clip_val=0.5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=2)
    ref.fit(Automatic(), datamodule=dm2)
    assert trainer.global_step == ref.global_step == 8
    for (name, a), b in zip(task.net.state_dict().items(), net.state_dict().values()):
        assert torch.equal(a, b), name
    assert task.lr_schedulers().get_last_lr() == ref.lr_scheduler_configs[0].scheduler.get_last_lr()



def test_learning_curves_of_a_history_without_metric_columns(tmp_path):
    """A task that logs no epoch metrics leaves only the epoch and the learning rate in the
    history; the plot still has its learning-rate panel instead of failing."""
    from zoo.reporting import plots

    out = plots.learning_curves([{"epoch": 0, "lr": 0.1}, {"epoch": 1, "lr": 0.05}], tmp_path / "lc.png")
    assert out is not None and out.stat().st_size > 0


def test_train_on_val_refit_runs_without_validation(tmp_path, quick):
    # validating or choosing checkpoints by a validation figure is refused before training
    with pytest.raises(ValueError, match="limit_val_batches=0"):
        train(compose_train(["experiment=resnet20_mnist5k_trainval", *quick, "trainer.limit_val_batches=2"],
                            tmp_path / "a"))
    with pytest.raises(ValueError, match="monitor=null"):
        train(compose_train(["experiment=resnet20_mnist5k_trainval", *quick,
                             "callbacks.model_checkpoint.monitor=val/loss"], tmp_path / "b"))
    rec = train(compose_train(["experiment=resnet20_mnist5k_trainval", *quick, "model.width_mult=0.25",
                               "trainer.max_epochs=1"], tmp_path / "c"))
    assert rec["data"]["train_size"] == 4500 and rec["val"] == {}
    assert set(rec["test"]) == {"test/loss", "test/acc", "test/f1"} and rec["best_checkpoint"]


def test_learning_rate_is_logged_every_epoch_without_the_lr_monitor(tmp_path, quick):
    import csv

    cfg = compose_train(["experiment=lenet5_mnist5k", *quick, "trainer.max_epochs=3"], tmp_path)
    assert "lr_monitor" not in cfg.callbacks
    train(cfg)
    rows = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv")))
    rates = [float(r["lr-SGD"]) for r in rows if r.get("lr-SGD")]
    # cosine decay over the 3 epochs: one rate per epoch, starting at the configured 0.05
    # (approx: cosine's 0.05 * (1 + cos 0) / 2 is computed, not copied)
    assert len(rates) == 3 and rates[0] == pytest.approx(0.05) and rates[0] > rates[1] > rates[2]


def test_epoch_accumulator_gives_the_per_batch_figures():
    from zoo.tasks.base import _EpochAccumulator

    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(n, 7, generator=g), torch.randint(0, 7, (n,), generator=g), torch.rand((), generator=g))
               for n in (64, 64, 17)]
    acc = _EpochAccumulator()
    for logits, y, loss in batches[:2]:
        acc.add(logits, y, loss)
    assert acc.kept_values == 2 * 64 * 7
    preds, target = acc.take_outputs()  # a flush in the middle of the epoch
    preds = preds.argmax(1)
    acc.add(*batches[2])
    preds2, target2 = acc.take_outputs()
    preds2 = preds2.argmax(1)
    assert torch.equal(torch.cat([preds, preds2]), torch.cat([b[0].argmax(1) for b in batches]))
    assert torch.equal(torch.cat([target, target2]), torch.cat([b[1] for b in batches]))
    total, count = acc.take_loss()
    expected = None
    for logits, y, loss in batches:  # the running sum a step used to keep, in step order
        w = loss.float() * y.shape[0]
        expected = w if expected is None else expected + w
    assert count == 145 and torch.equal(total, expected)


def test_ema_decay_ramps_up_and_ema_runs_train(tmp_path, quick):
    from zoo.callbacks import ramped_ema

    update = ramped_ema(0.999)
    avg, cur = [torch.zeros(3), torch.tensor([4])], [torch.ones(3), torch.tensor([7])]
    update(avg, cur, torch.tensor(1))  # second update: decay (1 + 1) / (10 + 1); float32 vs float64: ulps
    assert torch.allclose(avg[0], torch.full((3,), 1 - 2 / 11)) and avg[1].item() == 7
    avg = [torch.zeros(1)]
    update(avg, [torch.ones(1)], torch.tensor(100_000))  # late: the full decay
    assert avg[0].item() == pytest.approx(0.001)
    with pytest.raises(ValueError, match="decay"):
        ramped_ema(1.0)
    cfg = compose_train(["experiment=lenet5_mnist5k", *quick, "callbacks=ema"], tmp_path)
    assert cfg.callbacks.ema._target_ == "zoo.callbacks.EMAWithWarmup"
    rec = train(cfg)
    assert 0.0 <= rec["test"]["test/acc"] <= 1.0 and rec["best_checkpoint"]


def test_validating_leaves_the_training_draws_alone(tmp_path, quick):
    """Evaluation loaders draw from their own generator: a run that validates after every epoch
    trains exactly as one that never validates (same shuffles, same augmentation), so its weights
    after the last epoch are bit-identical."""
    import lightning as L

    from zoo.cli.train import build

    weights = []
    for i, limit_val in enumerate(("1.0", "0")):
        cfg = compose_train(["experiment=lenet5_mnist5k", *quick, "callbacks=none", "logger=none",
                             "trainer.max_epochs=3", f"trainer.limit_val_batches={limit_val}"], tmp_path / str(i))
        L.seed_everything(cfg.seed, workers=True)
        dm, task, trainer, _ = build(cfg)
        trainer.fit(task, datamodule=dm)
        assert (sum(trainer.num_val_batches) > 0) == (limit_val != "0")  # one side validates
        weights.append({k: v.clone() for k, v in task.net.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_an_evaluation_pass_draws_nothing_from_the_global_generator():
    from datamodules import MNIST5kDataModule

    dm = MNIST5kDataModule(batch_size=128)
    dm.setup()
    state = torch.get_rng_state()
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        for _ in loader:
            pass
    assert torch.equal(torch.get_rng_state(), state)
    next(iter(dm.train_dataloader()))  # the training loader shuffles with it, as before
    assert not torch.equal(torch.get_rng_state(), state)


def test_examples_are_counted_in_every_batch_layout():
    """RunStats and the loss mean count examples whatever the batch holds: (x, y) tensors, a
    list of images of different sizes with a list of annotations, a mapping of fields."""
    from zoo.tasks.base import count_examples

    assert count_examples([torch.zeros(8, 3, 4, 4), torch.zeros(8)]) == 8
    images = [torch.zeros(3, 5, 7), torch.zeros(3, 9, 4)]  # leading dimension 3: channels, not examples
    assert count_examples((images, [{"boxes": torch.zeros(2, 4)}, {"boxes": torch.zeros(5, 4)}])) == 2
    assert count_examples({"input_ids": torch.zeros(6, 11, dtype=torch.long)}) == 6
    assert count_examples([{"boxes": torch.zeros(2, 4)}] * 3, field=True) == 3
