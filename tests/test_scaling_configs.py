"""The scaling configs: multi-node and sharded trainers, the cluster launcher for sweeps, the
learning-rate rule for data-parallel runs."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from conftest import ROOT, compose_train
from zoo.conf import CONF_DIR
from zoo.optim import lr_scale, scale_learning_rates


def _compose_with_hydra(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_the_slurm_launcher_config_builds_hydras_submitit_launcher():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = _compose_with_hydra(["hydra/launcher=zoo_slurm", "trainer=ddp_multinode", "trainer.num_nodes=4",
                               "hydra.launcher.nodes=4", "hydra.launcher.tasks_per_node=8"])
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"
    assert launcher.params["nodes"] == cfg.trainer.num_nodes == 4 and launcher.params["tasks_per_node"] == 8
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.sync_batchnorm is True


@pytest.mark.slow
def test_a_sweep_runs_through_the_submitit_launcher(tmp_path):
    """The launcher path a cluster sweep takes, with submitit's local executor standing in for
    SLURM: two jobs, each a full zoo-train run with its own seed."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "zoo.cli.train", "-m", "hydra/launcher=submitit_local",
           "hydra.launcher.timeout_min=20", "hydra.launcher.cpus_per_task=1", "hydra.launcher.gpus_per_node=0",
           "experiment=softmax_mnist5k", "seed=0,1", "trainer=cpu", "trainer.max_epochs=1",
           "trainer.enable_progress_bar=false", "logger=csv", f"hydra.sweep.dir={sweep}",
           f"paths.reports_dir={tmp_path / 'reports'}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, HYDRA_FULL_ERROR="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/seed*/metrics.json"))]
    assert [rec["seed"] for rec in recs] == [0, 1] and all(rec["test"]["test/acc"] > 0.5 for rec in recs)


@pytest.mark.parametrize("option", ["fsdp", "ddp_multinode"])
def test_cluster_trainers_compose(tmp_path, option):
    cfg = compose_train([f"trainer={option}"], tmp_path)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.strategy in ("fsdp", "ddp")
    if option == "ddp_multinode":
        assert cfg.trainer.num_nodes == 2


def test_lr_scale_rules():
    assert lr_scale(None, 8) == 1.0
    assert lr_scale("linear", 8) == 8.0
    assert lr_scale("sqrt", 4) == 2.0
    with pytest.raises(ValueError, match="lr_scaling='cubic'"):
        lr_scale("cubic", 2)


def test_lr_scaling_multiplies_the_optimizer_and_one_cycle_rates():
    class Task:
        optimizer_factory = functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)
        scheduler_factory = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.4)

    task = Task()
    assert scale_learning_rates(task, "linear", 2) == 2.0
    assert task.optimizer_factory.keywords == {"lr": 0.2, "momentum": 0.9}
    assert task.scheduler_factory.keywords["max_lr"] == 0.8
    assert scale_learning_rates(task, None, 2) == 1.0 and task.optimizer_factory.keywords["lr"] == 0.2


def test_zoo_train_scales_the_rate_by_the_number_of_processes(tmp_path):
    """Built, not trained: the DDP trainer of two CPU processes knows its world size."""
    from zoo.cli.train import build

    cfg = compose_train(["experiment=mlp_mnist5k", "trainer=ddp_cpu", "lr_scaling=linear", "logger=none"], tmp_path)
    _, task, trainer, _ = build(cfg)
    assert trainer.world_size == 2
    assert task.optimizer_factory.keywords["lr"] == 2 * cfg.optimizer.lr
