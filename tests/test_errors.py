"""Bad input gets a clear error that says what to do (through the real command line)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, compose_train
from datamodules import DatasetNotFoundError
from zoo.tasks import load_task
from zoo.cli.train import train


def run_cli(module: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HYDRA_FULL_ERROR="0")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_unknown_experiment(tmp_path):
    r = run_cli("zoo.cli.train", "experiment=lenet99", f"hydra.run.dir={tmp_path}")
    assert r.returncode != 0
    assert "Could not find 'experiment/lenet99'" in r.stderr
    assert "lenet5_mnist5k" in r.stderr  # the available options are listed


def test_unknown_model_name(tmp_path):
    r = run_cli("zoo.cli.train", "model.name=lenet", "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path}")
    assert r.returncode != 0
    assert "Unknown model 'lenet'" in r.stderr and "Did you mean: lenet5" in r.stderr
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_wrong_override(tmp_path):
    r = run_cli("zoo.cli.train", "trainer.max_epoch=3", f"hydra.run.dir={tmp_path}")
    assert r.returncode != 0
    assert "max_epoch" in r.stderr and "not in struct" in r.stderr


def test_missing_dataset_with_downloads_off(tmp_path):
    r = run_cli("zoo.cli.train", "experiment=lenet5_mnist", f"paths.data_dir={tmp_path / 'nowhere'}",
                f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode != 0
    assert "MNIST" in r.stderr and "download=true" in r.stderr and str(tmp_path / "nowhere") in r.stderr


def test_missing_dataset_in_process(tmp_path):
    cfg = compose_train(["experiment=mlp_fashion_mnist", "trainer=cpu", "trainer.fast_dev_run=true"], tmp_path)
    with pytest.raises(DatasetNotFoundError, match="download"):
        train(cfg)


def test_eval_missing_checkpoint(tmp_path):
    r = run_cli("zoo.cli.eval", f"ckpt_path={tmp_path / 'none.ckpt'}")
    assert r.returncode != 0 and "checkpoint not found" in r.stderr


def test_eval_needs_a_checkpoint():
    r = run_cli("zoo.cli.eval")
    assert r.returncode != 0 and "ckpt_path" in r.stderr


def test_corrupt_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="could not read checkpoint"):
        load_task(bad)


def test_foreign_checkpoint_is_refused(tmp_path):
    path = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="no zoo metadata"):
        load_task(path)


def test_models_cli_lists_models():
    r = run_cli("zoo.cli.models")
    assert r.returncode == 0 and "lenet5" in r.stdout and "60,850" in r.stdout
    r = run_cli("zoo.cli.models", "nothing*")
    assert r.returncode == 1 and "no registered model" in r.stderr


def test_unknown_weight_name_is_one_line_not_a_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "zoo.cli.eval", "weights=lenet5.nosuchtag", "trainer=cpu",
                        f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "zoo-eval:" in r.stderr and "lenet5.nosuchtag" in r.stderr
    assert "Traceback" not in r.stderr


def test_labels_outside_the_class_count_are_refused(tmp_path, monkeypatch):
    """A task whose class count disagrees with the data is refused before any work (the config
    check), and, should a datamodule's labels still exceed it, the task refuses the labels: an
    error that names the fix, not a silently wrong accuracy."""
    overrides = ["experiment=mlp_digits8x8", "trainer=cpu", "trainer.fast_dev_run=true", "task.num_classes=5"]
    cfg = compose_train(overrides, tmp_path)
    with pytest.raises(ValueError, match=r"model\.num_classes=10 disagrees with task\.num_classes=5"):
        train(cfg)
    monkeypatch.setattr("zoo.cli.train.validate_train_config", lambda cfg: None)  # the task's own check
    with pytest.raises(ValueError, match=r"outside 0\.\.4.*num_classes"):
        train(compose_train(overrides, tmp_path))


def test_a_bad_gradient_accumulation_is_refused_naming_the_key(tmp_path):
    for bad in ("0", "2.5"):
        cfg = compose_train(["experiment=mlp_digits8x8", "trainer=cpu", "trainer.fast_dev_run=true",
                             f"trainer.accumulate_grad_batches={bad}"], tmp_path)
        with pytest.raises(ValueError, match="trainer.accumulate_grad_batches must be null or a positive integer"):
            train(cfg)
