"""A task family defined only in the test suite (``regression_family.py``: regression with its
own batch, metrics, predictions and plot) goes through ``zoo-train``, ``zoo-eval``,
``zoo-predict`` and the report, none of which names it; and the parts of the task contract a
classification task does not exercise: a second net in the checkpoint, a data fact sizing the
net and a vocabulary-like fact kept for decoding, an optimizer that needs a closure (L-BFGS),
and gradient accumulation."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import open_dict

import regression_family as fam
from conftest import compose_train
from zoo.cli.eval import evaluate
from zoo.cli.predict import main as predict_main
from zoo.cli.train import build, train
from zoo.reporting.report import write_report
from zoo.reproducibility import FLOAT_SUM
from zoo.tasks import load_task


@pytest.fixture(autouse=True)
def family_model():
    fam.register()
    yield
    fam.unregister()


def family_cfg(tmp_path: Path, task: dict | None = None, optimizer: dict | None = None, epochs: int = 20,
               extra: tuple[str, ...] = ()):
    cfg = compose_train(["trainer=cpu", f"trainer.max_epochs={epochs}", "trainer.enable_progress_bar=false",
                         "trainer.enable_model_summary=false", "logger=none", *extra], tmp_path)
    with open_dict(cfg):
        cfg.experiment_name = "linear_regression_test"
        cfg.reference = None
        cfg.data = {"_target_": "regression_family.RegressionDataModule", "in_features": 5, "batch_size": 32}
        cfg.model = {"_target_": "zoo.registry.create_model", "name": fam.MODEL,
                     "in_features": "${data_fact:in_features}"}
        cfg.task = {"_target_": "regression_family.RegressionTask", **(task or {})}
        cfg.optimizer = optimizer or {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.02}
        cfg.scheduler = None
    return cfg


def test_a_test_only_family_trains_evaluates_predicts_and_is_reported(tmp_path):
    cfg = family_cfg(tmp_path, extra=("record=true",))
    rec = train(cfg)
    # trained through zoo-train: its own metrics, its family, its plot, the net sized by a data fact
    assert rec["family"] == "Regression" and rec["task_class"] == "regression_family.RegressionTask"
    assert set(rec["test"]) == {"test/loss", "test/mae", "test/r2"}
    assert rec["test"]["test/r2"] > 0.8, rec["test"]  # learnt the linear function
    assert rec["model_kwargs"]["in_features"] == 5
    assert "residuals.png" in rec["plots"] and (tmp_path / "run" / "residuals.png").is_file()
    assert len(rec["test_residuals"]) == 32

    # evaluated by zoo-eval from the checkpoint alone: the same figures
    ckpt = rec["best_checkpoint"]
    metrics = evaluate(compose_train([f"ckpt_path={ckpt}", "split=test", "trainer=cpu",
                                      "trainer.enable_progress_bar=false"], tmp_path, config_name="eval"))
    for key in ("test/mae", "test/r2", "test/loss"):  # same machine, same sums: FLOAT_SUM to spare
        assert FLOAT_SUM.holds(metrics[key], rec["test"][key]), key

    # zoo-predict on the checkpoint reads the user's file through the datamodule
    values = [0.5, -1.0, 2.0, 0.0, 1.5]
    (tmp_path / "point.txt").write_text(" ".join(map(str, values)))
    (tmp_path / "bad.txt").write_text("1 2 3")
    task = load_task(ckpt).eval()
    with torch.no_grad():
        expected = float(task.net(torch.tensor([values])))
    out_file = tmp_path / "pred.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert predict_main([ckpt, str(tmp_path / "point.txt"), "--json"]) == 0
    out_file.write_text(buf.getvalue())
    [pred] = json.loads(out_file.read_text())
    assert pred["value"] == pytest.approx(expected, abs=1e-6)  # rounded to 6 decimals by the task
    assert predict_main([ckpt, str(tmp_path / "bad.txt")]) == 2  # a clear error, no traceback

    # the report gives the family its own section, its own columns and its plot inline
    readme = write_report(tmp_path / "reports").read_text()
    section = readme.split("## Regression", 1)[1].split("\n## ", 1)[0]
    assert "| test MAE | test R² |" in section and "| linear_regression_test |" in section
    assert '<img src="runs/linear_regression_test/seed0/residuals.png"' in section
    assert "## Classification" not in readme
    assert (tmp_path / "reports" / "comparison_regression.png").is_file()
    csv_head = (tmp_path / "reports" / "results.csv").read_text().splitlines()[0]
    assert "test/mae" in csv_head and "test_acc" not in csv_head


def test_two_nets_and_a_vocabulary_come_back_from_the_checkpoint(tmp_path):
    teacher = {"_target_": "zoo.registry.create_model", "name": fam.MODEL, "in_features": "${data_fact:in_features}",
               "hidden": 8}
    rec = train(family_cfg(tmp_path, task={"teacher": teacher, "teacher_weight": 0.5}, epochs=2))
    ckpt = torch.load(rec["best_checkpoint"], weights_only=True)
    assert set(ckpt["zoo"]["net_specs"]) == {"net", "teacher"}
    task = load_task(rec["best_checkpoint"])
    assert task.teacher.body[0].out_features == 8  # the second net rebuilt with its own arguments
    for k, v in ckpt["state_dict"].items():
        if k.startswith("teacher."):
            assert torch.equal(task.state_dict()[k], v)
    # the feature names (a data fact the task declares it uses) travel in the checkpoint
    assert task.feature_names == ["x0", "x1", "x2", "x3", "x4"]


def test_an_optimizer_that_needs_a_closure_trains_and_counts_each_batch_once(tmp_path):
    lbfgs = {"_target_": "torch.optim.LBFGS", "_partial_": True, "lr": 0.5, "max_iter": 4}
    cfg = family_cfg(tmp_path, optimizer=lbfgs, epochs=2, extra=("callbacks=none",))
    L.seed_everything(0)
    dm, task, trainer, _ = build(cfg)
    calls, counted = [], []
    step, flushed = task.shared_step, task.on_metrics_flushed
    task.shared_step = lambda batch, stage: (calls.append(stage), step(batch, stage))[1]
    task.on_metrics_flushed = lambda stage, p, t: (counted.append((stage, len(t))), flushed(stage, p, t))[1]
    trainer.fit(task, datamodule=dm)
    train_batches = trainer.num_training_batches * 2
    assert calls.count("train") > train_batches  # the line search re-evaluated the loss
    assert sum(n for s, n in counted if s == "train") == 2 * len(dm.train_set)  # metrics: once per example
    val = trainer.validate(task, datamodule=dm, verbose=False)[0]
    assert val["val/r2"] > 0.8, val


def test_accumulated_gradients_equal_one_larger_batch(tmp_path):
    """2 batches of 16 with accumulate_grad_batches=2 take the same optimizer step as 1 batch of
    32 (a net without batch norm; the same 32 examples: the shuffle's permutation does not depend
    on the batch size). Tolerance: the mean over 32 and the mean of two means over 16 add in
    another order (float32, a few ulps of weights of order 0.1-1)."""
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
    weights = []
    for i, (batch, limit, acc) in enumerate(((32, 1, 1), (16, 2, 2))):
        cfg = family_cfg(tmp_path / str(i), optimizer=sgd, epochs=1,
                         extra=("callbacks=none", f"trainer.limit_train_batches={limit}",
                                f"trainer.accumulate_grad_batches={acc}", "trainer.limit_val_batches=0"))
        with open_dict(cfg):
            cfg.data.batch_size = batch
        L.seed_everything(0)
        dm, task, trainer, _ = build(cfg)
        assert task.accumulate_grad_batches == acc
        before = {k: v.clone() for k, v in task.net.state_dict().items()}
        trainer.fit(task, datamodule=dm)
        weights.append((before, task.net.state_dict()))
    (b0, w0), (b1, w1) = weights
    assert all(torch.equal(b0[k], b1[k]) for k in b0)  # the same start
    assert any(not torch.equal(b0[k], w0[k]) for k in b0)  # one step was taken
    for k in w0:
        assert torch.allclose(w0[k], w1[k], atol=1e-6), k


def test_a_bad_accumulation_setting_is_refused(tmp_path):
    cfg = family_cfg(tmp_path, extra=("trainer.accumulate_grad_batches=0",))
    with pytest.raises(ValueError, match="accumulate_grad_batches must be null or a positive integer"):
        build(cfg)
