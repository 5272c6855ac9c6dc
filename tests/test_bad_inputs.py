"""Bad configs, hostile checkpoints and numerical faults: each gets a clear error that names the
key, the file or the step and says what to do -- raised by the zoo before any work starts (or,
for a NaN loss, before the faulty step reaches the weights), never a traceback from inside torch.

Every test that feeds one bad input is marked ``bad_input``: ``pytest -m bad_input`` runs them
all (the data files' faults are in ``test_data_faults.py``, the box operations' in
``test_box_ops.py``).
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict

from conftest import ROOT, compose_train
from zoo.cli.train import build, train
from zoo.errors import CheckpointError, ConfigError, NonFiniteLossError
from zoo.tasks import load_task
from zoo.validate import RULES, check_rules, validate_train_config

# (overrides, words the message must hold): each is refused by validate_train_config before the
# datamodule, the net or the trainer is built
BAD_CONFIGS = [
    (["data.batch_size=0"], ["data.batch_size=0", "a positive integer"]),
    (["data.batch_size=-3"], ["data.batch_size=-3", "a positive integer"]),
    (["data.batch_size=2.5"], ["data.batch_size=2.5", "a positive integer"]),
    (["+data.eval_batch_size=0"], ["data.eval_batch_size=0", "null or a positive integer"]),
    (["+data.num_workers=-1"], ["data.num_workers=-1", "an integer >= 0"]),
    (["data.val_fraction=1.5"], ["data.val_fraction=1.5", "[0, 1)"]),
    (["data.val_fraction=0.6", "data.test_fraction=0.5"], ["leave nothing to train on"]),
    (["optimizer.lr=-1"], ["optimizer.lr=-1", "a finite number > 0"]),
    (["optimizer.lr=0"], ["optimizer.lr=0", "cannot be zero or negative"]),
    (["optimizer.lr=nan"], ["optimizer.lr=nan", "a finite number > 0"]),
    (["optimizer.lr=inf"], ["optimizer.lr=inf", "a finite number > 0"]),
    (["optimizer.lr=fast"], ["optimizer.lr='fast'", "a finite number > 0"]),
    (["optimizer.weight_decay=-0.1"], ["optimizer.weight_decay=-0.1", ">= 0"]),
    (["optimizer=sgd", "optimizer.momentum=1.5"], ["optimizer.momentum=1.5", "[0, 1]"]),
    (["optimizer=adam", "optimizer.betas=[1.5,0.9]"], ["optimizer.betas=[1.5, 0.9]", "two numbers in [0, 1)"]),
    (["trainer.max_epochs=0"], ["trainer.max_epochs=0", "no epoch has no result to record"]),
    (["trainer.max_epochs=2.5"], ["trainer.max_epochs=2.5", "a positive integer"]),
    (["trainer.max_epochs=-1"], ["trainer.max_steps", "without an end"]),
    (["trainer.devices=0"], ["trainer.devices=0", "a positive integer"]),
    (["trainer.precision=17"], ["trainer.precision=17", "bf16-mixed"]),
    (["trainer.limit_train_batches=0"], ["trainer.limit_train_batches=0", "no batch"]),
    (["trainer.limit_val_batches=1.5"], ["trainer.limit_val_batches=1.5", "a fraction"]),
    (["trainer.log_every_n_steps=0"], ["trainer.log_every_n_steps=0", "a positive integer"]),
    (["trainer.gradient_clip_val=-1"], ["trainer.gradient_clip_val=-1", "null or a finite number > 0"]),
    (["trainer.gradient_clip_algorithm=max"], ["trainer.gradient_clip_algorithm='max'", "'norm' or 'value'"]),
    (["trainer.accumulate_grad_batches=0"], ["trainer.accumulate_grad_batches=0", "a positive integer"]),
    (["seed=-1"], ["seed=-1", "0 .. 2**32-1"]),
    (["compile=fast"], ["compile='fast' is not allowed", "null or false (eager), true (torch.compile with its defaults)"]),
    (["compile={mode:fastest}"], ["compile={'mode': 'fastest'}", "mode one of default, reduce-overhead"]),
    (["compile={modes:default}"], ["compile={'modes': 'default'}", "fullgraph, dynamic, backend, mode, options"]),
    (["compile={backend:inductr}"], ["compile.backend='inductr' is not allowed", "inductor"]),
    (["lr_scaling=quadratic"], ["lr_scaling='quadratic' is not allowed", "null, linear or sqrt"]),
    (["model.num_classes=5"], ["model.num_classes=5 disagrees with data.num_classes=10", "model.num_classes=10"]),
    (["model.in_chans=3"], ["model.in_chans=3 disagrees with data.in_chans=1"]),
    (["task.label_smoothing=1.0"], ["task.label_smoothing=1.0", "[0, 1)"]),
    (["model.pretrained=mnist5k", "model.in_chans=3", "data.in_chans=3"],
     ["model.in_chans=3 disagrees with the weights lenet5.mnist5k", "data.in_chans=1"]),
]


def _id(case) -> str:
    return " ".join(case[0])


@pytest.mark.bad_input
@pytest.mark.parametrize("overrides,words", BAD_CONFIGS, ids=[_id(c) for c in BAD_CONFIGS])
def test_a_bad_config_is_refused_naming_the_key(overrides, words, tmp_path, monkeypatch):
    cfg = compose_train(["trainer=cpu", *overrides], tmp_path)
    built = []
    monkeypatch.setattr("zoo.cli.train.instantiate", lambda *a, **k: built.append(a) or None)
    with pytest.raises(ConfigError) as err:
        build(cfg)
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert not built  # refused before the datamodule (or anything else) was built


def test_the_shipped_experiments_pass_validation(tmp_path):
    """Validation refuses no config the zoo ships: every experiment composes and passes."""
    names = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    assert len(names) >= 40
    for name in names:
        cfg = compose_train([f"experiment={name}"], tmp_path)
        if name == "finetune_folder":
            cfg.data.root = str(tmp_path)
        validate_train_config(cfg)


@pytest.mark.bad_input
def test_the_command_line_prints_one_line_not_a_traceback(tmp_path):
    """Through the real command: exit status 2, the key named, no traceback, no run folder."""
    env = dict(os.environ, HYDRA_FULL_ERROR="0")
    r = subprocess.run([sys.executable, "-m", "zoo.cli.train", "data.batch_size=0", "optimizer.lr=0.01",
                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "zoo-train: data.batch_size=0 is not allowed: data.batch_size must be a positive integer" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.bad_input
def test_an_argument_the_model_does_not_take_is_named_with_those_it_does(tmp_path):
    cfg = compose_train(["trainer=cpu", "trainer.fast_dev_run=true", "+model.dropuot=0.5"], tmp_path)
    with pytest.raises(ConfigError, match=r"model 'lenet5' got unknown argument\(s\) \['dropuot'\]; it accepts: .*num_classes"):
        train(cfg)


@pytest.mark.bad_input
@pytest.mark.parametrize("overrides,words", [
    (["split=train"], "split='train' is not allowed: split must be 'test' or 'val'"),
    (["weights=lenet5.mnist5k", "batch_size=0"], "batch_size=0 is not allowed"),
    ([], "give exactly one of ckpt_path=<file> or weights=<architecture>.<tag>"),
    (["weights=lenet5.mnist5k", "data=mnist5k", "data.in_chans=3"],
     "data.in_chans=3 disagrees with lenet5.mnist5k, whose net was built for 1 input channels: set data.in_chans=1"),
    (["weights=lenet5.mnist5k", "data=mnist5k", "data.num_classes=5"],
     "data.num_classes=5 disagrees with lenet5.mnist5k, whose net was built for 10 classes"),
])
def test_a_bad_evaluation_config_is_refused_naming_the_key(overrides, words, tmp_path):
    from zoo.cli.eval import evaluate

    cfg = compose_train(["trainer=cpu", *overrides], tmp_path, config_name="eval")
    with pytest.raises(ConfigError, match=re.escape(words)):
        evaluate(cfg)


# -- property-based: the rules accept exactly the values they describe ------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=150, deadline=None, derandomize=True)  # derandomize: the same cases in CI
@given(value=st.one_of(st.integers(-10**6, 10**6), finite, st.sampled_from([math.nan, math.inf, -math.inf]),
                       st.booleans(), st.none(), st.text(max_size=5)))
def test_the_batch_size_and_lr_rules_accept_exactly_their_range(value):
    cfg = OmegaConf.create({"data": {"batch_size": value}, "optimizer": {"lr": value}})
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    batch_ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    lr_ok = is_number and math.isfinite(value) and value > 0
    rules = {r[0]: r for r in RULES}
    for key, ok in (("data.batch_size", batch_ok), ("optimizer.lr", lr_ok)):
        if ok:
            check_rules(cfg, [rules[key]])
        else:
            with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
                check_rules(cfg, [rules[key]])


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(val=st.floats(0, 0.99), test=st.floats(0, 0.99))
def test_the_split_fractions_must_leave_training_data(val, test, tmp_path):
    cfg = OmegaConf.create({"data": {"val_fraction": val, "test_fraction": test}, "trainer": {}})
    if val + test < 1:
        validate_train_config(cfg)
    else:
        with pytest.raises(ConfigError, match="leave nothing to train on"):
            validate_train_config(cfg)


# -- checkpoints --------------------------------------------------------------------------------------
class _RunsCode:
    """Unpickling this object calls ``open(marker, "w")``: it creates a file, standing in for any
    code a hostile checkpoint could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _hostile_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "the_code_ran"
    path = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "zoo": {"task_class": "x"}, "payload": _RunsCode(marker)}, path)
    assert not marker.exists()
    return path, marker


@pytest.mark.bad_input
def test_a_hostile_checkpoint_is_refused_and_runs_no_code(tmp_path):
    """The file is a pickle whose unpickling would create a file: every way the zoo reads a
    checkpoint refuses it, names what it asked to call, and the file is never created."""
    path, marker = _hostile_checkpoint(tmp_path)
    # load_task (zoo-eval, zoo-predict, fine-tuning from a run)
    with pytest.raises(CheckpointError, match=r"refused checkpoint .*hostile\.ckpt.*io\.open.*could run code"):
        load_task(path)
    assert not marker.exists()
    # resuming a training run from it
    cfg = compose_train(["experiment=mlp_digits8x8", "trainer=cpu", "trainer.fast_dev_run=true",
                         f"ckpt_path={path}"], tmp_path)
    with pytest.raises(CheckpointError, match="refused checkpoint"):
        train(cfg)
    assert not marker.exists()
    # the same file through the command lines
    env = dict(os.environ, HYDRA_FULL_ERROR="0")
    for cmd in (["zoo.cli.eval", f"ckpt_path={path}", "trainer=cpu", f"hydra.run.dir={tmp_path / 'e'}"],
                ["zoo.cli.predict", str(path), str(path)]):
        r = subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode != 0 and "refused checkpoint" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not marker.exists()
    # the hostile file was real: an unrestricted load runs its code (what the refusals prevent)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.bad_input
def test_resuming_from_a_missing_checkpoint_names_it(tmp_path):
    cfg = compose_train(["experiment=mlp_digits8x8", "trainer=cpu", "trainer.fast_dev_run=true",
                         f"ckpt_path={tmp_path / 'nowhere.ckpt'}"], tmp_path)
    with pytest.raises(CheckpointError, match=r"ckpt_path=.*nowhere\.ckpt: no such checkpoint file"):
        train(cfg)


@pytest.mark.bad_input
def test_a_truncated_checkpoint_is_refused_naming_it(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, good)
    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(good.read_bytes()[:-700])
    with pytest.raises(CheckpointError, match=r"could not read checkpoint .*cut\.ckpt.*complete"):
        load_task(bad)


# -- numerical faults -----------------------------------------------------------------------------
class NaNAtStep(L.Callback):
    """Turns one training batch's inputs into NaN (an injected numerical fault)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            batch[0].fill_(float("nan"))


@pytest.mark.bad_input
def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    from zoo.cli.eval import evaluate

    # mlp on the 8x8 digits: 1,437 training images, batch 64 -> 23 steps an epoch; NaN at step 50
    cfg = compose_train(["experiment=mlp_digits8x8", "trainer=cpu", "trainer.max_epochs=4",
                         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                         "record=true"], tmp_path)
    with open_dict(cfg):
        cfg.callbacks["inject_nan"] = {"_target_": "test_bad_inputs.NaNAtStep", "step": 50}
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg)
    message = str(err.value)
    assert "the training loss is nan at step 50 (epoch 2, batch 4)" in message
    assert "last.ckpt" in message and "stop_on_nonfinite=false" in message
    assert err.value.step == 50
    assert not (tmp_path / "reports" / "runs").exists()  # nothing recorded as a result
    assert not (tmp_path / "run" / "metrics.json").exists()
    # the checkpoint of the last finished epoch (2 epochs: 46 steps) loads and evaluates
    last = Path(err.value.checkpoint)
    assert last.name == "last.ckpt" and torch.load(last, weights_only=True)["global_step"] == 46
    task = load_task(last)
    assert all(torch.isfinite(p).all() for p in task.parameters())
    eval_cfg = compose_train([f"ckpt_path={last}", "trainer=cpu", "trainer.enable_progress_bar=false"],
                             tmp_path, config_name="eval")
    metrics = evaluate(eval_cfg)
    assert math.isfinite(metrics["test/loss"]) and metrics["test/acc"] > 0.8


def test_with_the_guard_off_the_run_trains_on(tmp_path):
    cfg = compose_train(["experiment=mlp_digits8x8", "trainer=cpu", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=4", "trainer.limit_val_batches=1", "test=false",
                         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                         "stop_on_nonfinite=false"], tmp_path)
    with open_dict(cfg):
        cfg.callbacks["inject_nan"] = {"_target_": "test_bad_inputs.NaNAtStep", "step": 2}
    record = train(cfg)
    assert record["global_steps"] == 4


@pytest.mark.bad_input
def test_an_unknown_model_source_is_refused_with_the_nearest_published_names(tmp_path, capsys):
    """``zoo-predict`` and the family verbs read a model the same way (``task_from_source``): a
    missing checkpoint file is named, and a misspelt weight gets the nearest published names."""
    from zoo.cli.eval import task_from_source
    from zoo.cli.predict import main as predict_main

    with pytest.raises(FileNotFoundError, match=r"nowhere\.ckpt is neither a checkpoint file nor a published "
                                                r"weight: no such file"):
        task_from_source(str(tmp_path / "nowhere.ckpt"))
    with pytest.raises(FileNotFoundError, match=r"lenet5\.mnist5 is neither .*Did you mean: lenet5\.mnist5k"):
        task_from_source("lenet5.mnist5")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert predict_main(["lenet5.mnist5", str(image)]) == 2
    err = capsys.readouterr().err
    assert "neither a checkpoint file nor a published weight" in err and "Did you mean: lenet5.mnist5k" in err
