"""Training on several processes through Lightning's own DDP strategy (CPU processes over gloo
stand in for GPUs): the synced test metric equals a single-process evaluation of the same
checkpoint; two processes with batch B/2 each follow the trajectory of one process with batch B;
two "nodes" launched as torchrun and as SLURM launch them train exactly as one node of two
processes."""
from __future__ import annotations

import csv
import json
import math
import os
import socket
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

# LeNet-5 on the embedded digits, 2 short epochs: the run every multi-process test compares with
DDP_RUN = ["experiment=lenet5_mnist5k", "trainer.max_epochs=2", "trainer.limit_train_batches=16",
           "trainer.enable_progress_bar=false", "logger=csv"]


def _env():
    return dict(os.environ, HYDRA_FULL_ERROR="1",
                PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))


def _run(cmd, env=None):
    r = subprocess.run(cmd, cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=900)
    if r.returncode < 0:
        # A process killed by a signal, with no Python error, was seen once in a full test run on
        # a loaded 2-core machine (after trainer.test had started) and never reproduced alone;
        # such a death is run again once, and said, so that a real fault still fails twice.
        warnings.warn(f"the multi-process run died by signal {-r.returncode}; running it again")
        r = subprocess.run(cmd, cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"exit status {r.returncode}\n{r.stderr[-3000:]}\n{r.stdout[-1000:]}"
    return r


def _history(run_dir):
    with open(run_dir / "history.csv") as fh:
        return list(csv.DictReader(fh))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_node_two_processes(tmp_path_factory):
    """``trainer=ddp_cpu``: Lightning starts the second process itself."""
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    _run([sys.executable, "-m", "zoo.cli.train", *DDP_RUN, "trainer=ddp_cpu", f"hydra.run.dir={run_dir}"])
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_ddp_cpu_matches_single_process_eval(one_node_two_processes, tmp_path):
    run_dir, rec = one_node_two_processes
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


# The trajectory test's tolerance: the two sides add the same numbers in another order (two
# half-batch gradients averaged by all-reduce against one full-batch gradient; one thread per
# process against two), a last-bit difference per step that 30 steps of SGD with momentum carry
# forward: the largest relative difference of an epoch's training or validation loss was 1.3e-7
# on this machine (2-core Intel Xeon). 1e-4 leaves room for other CPUs and still fails on any
# real difference (one other example in a 640-example epoch moves its mean loss by ~1e-3).
TRAJECTORY_REL = 1e-4


def test_two_processes_with_half_batches_follow_the_single_process_trajectory(tmp_path):
    common = [*DDP_RUN[:1], "trainer.max_epochs=3", "trainer.limit_train_batches=10", "augment=none",
              "data._target_=scale_helpers.DistributedOrderMNIST5k", "trainer.enable_progress_bar=false", "logger=csv",
              "test=false"]
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "zoo.cli.train", *common, "trainer=cpu", "data.batch_size=64",
          f"hydra.run.dir={one}"])
    _run([sys.executable, "-m", "zoo.cli.train", *common, "trainer=ddp_cpu", "data.batch_size=32",
          f"hydra.run.dir={two}"])
    h1, h2 = _history(one), _history(two)
    assert len(h1) == len(h2) == 3
    for a, b in zip(h1, h2):
        for key in ("train/loss", "val/loss"):
            assert math.isclose(float(a[key]), float(b[key]), rel_tol=TRAJECTORY_REL), (a["epoch"], key, a[key], b[key])
    r1, r2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert r1["global_steps"] == r2["global_steps"] == 30  # the same number of optimizer steps
    assert r1["train_samples"] == r2["train_samples"] == 3 * 640  # examples seen, over both processes


@pytest.mark.parametrize("launcher", ["torchrun", "slurm"])
def test_two_nodes_train_as_one_node_of_two_processes(launcher, one_node_two_processes, tmp_path):
    """``num_nodes=2`` with one CPU process per "node" on this machine, over gloo, launched as
    ``torchrun --nnodes 2 --node_rank k`` does, or as ``srun`` does (the SLURM variables Lightning
    reads); every figure equals the one-node two-process run's."""
    run_dir = tmp_path / "run"
    # the multi-node trainer users take (conf/trainer/ddp_multinode.yaml), with CPU processes
    train = ["-m", "zoo.cli.train", *DDP_RUN, "trainer=ddp_multinode", "trainer.accelerator=cpu",
             "trainer.devices=1", "trainer.num_nodes=2", "trainer.sync_batchnorm=false", f"hydra.run.dir={run_dir}"]
    port = _free_port()
    procs = []
    for node in (0, 1):
        # a node's process has its node's cores; here the two share 2, one each, as Lightning
        # gives its own two processes on one node (the same sums in the same order, bit for bit)
        env = dict(_env(), OMP_NUM_THREADS="1")
        if launcher == "torchrun":
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
                   "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port), *train]
        else:
            cmd = [sys.executable, *train]
            env.update(SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="1", SLURM_NNODES="2", SLURM_PROCID=str(node), SLURM_LOCALID="0", SLURM_NODEID=str(node),
                       SLURM_JOB_ID="4242", SLURM_JOB_NAME="zoo", SLURM_NODELIST="127.0.0.1",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, f"exit status {p.returncode}\n{out[-3000:]}"
    rec = json.loads((run_dir / "metrics.json").read_text())
    ref_dir, ref = one_node_two_processes
    assert rec["devices"] == 2 and rec["strategy"] == "DDPStrategy"
    assert rec["global_steps"] == ref["global_steps"]
    assert rec["val"] == ref["val"] and rec["test"] == ref["test"]
    assert rec["confusion_matrix"] == ref["confusion_matrix"]
    figures = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    assert figures(_history(run_dir)) == figures(_history(ref_dir))  # every epoch's figures; times aside


def test_siamese_batches_of_p_classes_by_k_train_under_ddp(tmp_path):
    """The Siamese family's P x K batch sampler takes Lightning's distributed sampler: two
    processes train, each on its own share of every epoch."""
    run_dir = tmp_path / "run"
    _run([sys.executable, "-m", "zoo.cli.train", "experiment=siamese_triplet_mnist5k", "trainer=ddp_cpu",
          "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "test=false",
          "trainer.enable_progress_bar=false", "logger=csv", f"hydra.run.dir={run_dir}"])
    rec = json.loads((run_dir / "metrics.json").read_text())
    assert rec["devices"] == 2 and rec["strategy"] == "DDPStrategy" and rec["global_steps"] == 3
