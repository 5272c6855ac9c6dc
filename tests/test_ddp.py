"""Multi-process training through Lightning's DDP strategy (2 CPU processes, gloo): the synced
test metric equals a single-process evaluation of the same checkpoint."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch.distributed as dist

from conftest import ROOT, compose_train
from zoo.cli.eval import evaluate
from zoo.reproducibility import FLOAT_SUM

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is needed")


def test_ddp_cpu_matches_single_process_eval(tmp_path):
    run_dir = tmp_path / "ddp"
    env = dict(os.environ, HYDRA_FULL_ERROR="1")
    cmd = [sys.executable, "-m", "zoo.cli.train", "experiment=lenet5_mnist5k", "trainer=ddp_cpu",
           "trainer.max_epochs=2", "trainer.limit_train_batches=16", "trainer.enable_progress_bar=false",
           "logger=csv", f"hydra.run.dir={run_dir}"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode < 0:
        # A process killed by a signal, with no Python error, was seen once in a full test run on
        # a loaded 2-core machine (after trainer.test had started) and never reproduced alone;
        # such a death is run again once, and said, so that a real fault still fails twice.
        warnings.warn(f"the 2-process run died by signal {-r.returncode}; running it again")
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"exit status {r.returncode}\n{r.stderr[-3000:]}\n{r.stdout[-1000:]}"
    rec = json.loads((run_dir / "metrics.json").read_text())
    assert rec["devices"] == 2 and rec["strategy"] == "DDPStrategy"
    assert sum(map(sum, rec["confusion_matrix"])) == 500  # both halves of the test split counted
    cfg = compose_train([f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "trainer=cpu",
                         "trainer.enable_progress_bar=false"], tmp_path, config_name="eval")
    single = evaluate(cfg)
    # accuracy and F1 come from counts summed across the two processes: exactly equal; the loss
    # is two processes' partial sums added in another order than one process's (FLOAT_SUM)
    assert single["test/acc"] == rec["test"]["test/acc"]
    assert single["test/f1"] == rec["test"]["test/f1"]
    assert FLOAT_SUM.holds(single["test/loss"], rec["test"]["test/loss"])
