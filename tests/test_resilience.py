"""A run killed with SIGKILL loses nothing: checkpoints are written atomically, and
``ckpt_path=last`` in the run's folder resumes it to the same end as a run never killed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import ROOT
from zoo.errors import CheckpointError
from zoo.tasks.base import read_checkpoint_safely
from zoo.utils.checkpoint_io import TMP_MARK, atomic_torch_save

# LeNet-5 on the embedded digits, 4 short epochs, shuffling and augmentation as in the experiment
RUN = ["experiment=lenet5_mnist5k", "trainer=cpu", "trainer.max_epochs=4", "trainer.limit_train_batches=6",
       "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
       "logger=csv"]


def _zoo_train(args, run_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]), HYDRA_FULL_ERROR="1")
    cmd = [sys.executable, "-m", "zoo.cli.train", *args, f"hydra.run.dir={run_dir}",
           f"paths.reports_dir={tmp_path / 'reports'}"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_a_run_killed_mid_epoch_resumes_to_the_same_end(tmp_path):
    whole = _zoo_train(RUN, tmp_path / "whole", tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    run_dir = tmp_path / "killed"
    killer = ["+callbacks.killer._target_=scale_helpers.KillMidEpoch", "+callbacks.killer.epoch=2",
              "+callbacks.killer.batch=3"]
    killed = _zoo_train([*RUN, *killer], run_dir, tmp_path)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    assert not (run_dir / "metrics.json").exists()
    # what the kill left: complete checkpoints only (the last one is from the end of epoch 1)
    ckpts = sorted((run_dir / "checkpoints").iterdir())
    assert [p.name for p in ckpts] == ["best.ckpt", "last.ckpt"]
    for p in ckpts:
        read_checkpoint_safely(p)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1

    resumed = _zoo_train([*RUN, "ckpt_path=last"], run_dir, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    b = json.loads((run_dir / "metrics.json").read_text())
    assert (b["epochs"], b["global_steps"]) == (a["epochs"], a["global_steps"]) == (4, 24)
    assert b["val"] == a["val"] and b["test"] == a["test"]
    wa = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    wb = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ckpt_path_last_without_a_last_checkpoint_is_refused(tmp_path):
    r = _zoo_train([*RUN, "ckpt_path=last"], tmp_path / "fresh", tmp_path)
    assert r.returncode != 0
    assert "ckpt_path=last: there is no last.ckpt in" in r.stderr and "hydra.run.dir=" in r.stderr
    assert not (tmp_path / "fresh" / "metrics.json").exists()


def test_a_process_killed_while_writing_a_checkpoint_leaves_the_previous_one_whole(tmp_path):
    target = tmp_path / "ckpts" / "last.ckpt"
    atomic_torch_save({"epoch": 1, "w": torch.arange(4.0)}, target)
    # a second save whose writing is cut by SIGKILL after a third of the bytes
    script = textwrap.dedent(f"""
        import os, signal, torch
        import zoo.utils.checkpoint_io as io_mod

        real_open = open
        class Cut:
            def __init__(self, path, mode):
                self.f = real_open(path, mode)
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                self.f.close()
            def write(self, data):
                data = bytes(data)
                self.f.write(data[: len(data) // 3])
                self.f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            def flush(self):
                pass
            def fileno(self):
                return self.f.fileno()
        io_mod.open = Cut
        io_mod.atomic_torch_save({{"epoch": 2, "w": torch.zeros(100_000)}}, {str(target)!r})
        """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    left = sorted(p.name for p in target.parent.iterdir())
    assert left[0].startswith(".last.ckpt" + TMP_MARK) and left[1:] == ["last.ckpt"]  # the cut copy is aside
    kept = read_checkpoint_safely(target)
    assert kept["epoch"] == 1 and torch.equal(kept["w"], torch.arange(4.0))
    # the next save into the folder clears the dead process's leftover
    atomic_torch_save({"epoch": 3}, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]
    assert torch.load(target, weights_only=True) == {"epoch": 3}


def test_a_truncated_checkpoint_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "last.ckpt"
    atomic_torch_save({"epoch": 1, "w": torch.zeros(1000)}, bad)
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="last.ckpt"):
        read_checkpoint_safely(bad)
