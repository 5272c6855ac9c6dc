"""zoo-bench (suites, resume), FLOPs counting, width multipliers, the torchvision pairing and
the side-by-side throughput benchmark (its mechanics on a tiny input; the figures come from
running it, never from a test)."""
from __future__ import annotations

import inspect
import json
import math
import shutil
import statistics

import pytest
import torch
from torch import nn

import zoo
from zoo.bench import suite as bench
from zoo.bench import throughput as bench_throughput
from zoo.flops import count_flops, format_flops, reference_input_shape
from zoo.layers import scale_width
from zoo.registry import count_parameters
from zoo.reporting.report import load_runs, write_report
from zoo.weights.torchvision import TORCHVISION_EQUIVALENTS, load_torchvision_state_dict, torchvision_model


# ---------------------------------------------------------------- FLOPs

def test_flops_of_a_linear_layer_is_two_per_multiply_add():
    assert count_flops(nn.Linear(784, 10), (784,)) == 2 * 784 * 10


def test_flops_of_a_convolution():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)  # 8 maps x 32x32 positions x 27 MACs
    assert count_flops(conv, (3, 32, 32)) == 2 * 8 * 32 * 32 * 27


def test_flops_match_published_counts():
    """torchvision's model table: ResNet-50 4.09 GFLOPS and AlexNet 0.71 (multiply-adds). The
    table rounds to 3 and 2 significant digits, hence the 1% and 2% tolerances."""
    assert count_flops(zoo.create_model("resnet50"), (3, 224, 224)) / 2 == pytest.approx(4.09e9, rel=0.01)
    assert count_flops(zoo.create_model("alexnet"), (3, 224, 224)) / 2 == pytest.approx(0.71e9, rel=0.02)


def test_flops_restore_training_mode_and_format():
    net = zoo.create_model("googlenet", small_input=True, width_mult=0.125, num_classes=10).train()
    assert count_flops(net, (3, 32, 32)) > 0 and net.training
    assert format_flops(1_234_567) == "1.23M" and format_flops(4.1e9) == "4.10G"
    assert reference_input_shape("resnet18") == (3, 224, 224)
    assert reference_input_shape("resnet20_cifar") == (3, 32, 32)


def test_zoo_models_lists_flops(capsys):
    from zoo.cli.models import main

    assert main(["resnet*_cifar"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs" in out and "81.23M" in out  # resnet20_cifar at 3x32x32


@pytest.mark.parametrize("pattern", ["resnet20_cifar", "mobilenet_v2", "unet", "lenet5", "transformer_small"])
def test_zoo_models_on_the_meta_device_counts_what_the_cpu_counts(pattern):
    """The listing builds nets on the meta device (no memory, no arithmetic) and counts what a
    CPU forward counts; a net whose forward needs real values (lenet5's and transformer_small's
    today) is measured on the CPU instead, with the same row."""
    from zoo.cli.models import measure, rows

    assert rows(pattern) == rows(pattern, device="cpu") == [measure(pattern, "cpu")]
    try:
        on_meta = measure(pattern, "meta")
    except (RuntimeError, NotImplementedError):
        assert pattern in ("lenet5", "transformer_small"), "a net that used to list on the meta device no longer does"
    else:
        assert on_meta == measure(pattern, "cpu")


# ---------------------------------------------------------------- width multipliers

WIDTH_FAMILIES = ["alexnet", "vgg11_bn", "resnet18", "resnet20_cifar", "nin", "googlenet",
                  "mobilenet_v2", "efficientnet_b0"]


def test_scale_width():
    assert scale_width(64, 1.0) == 64 and scale_width(64, 0.25) == 16 and scale_width(16, 0.125) == 8
    with pytest.raises(ValueError):
        scale_width(64, 0.0)


@pytest.mark.parametrize("name", WIDTH_FAMILIES)
def test_width_mult_shrinks_the_net_and_keeps_it_working(name):
    kwargs = {"num_classes": 10, "in_chans": 1}
    if "small_input" in inspect.signature(zoo.model_card(name).builder).parameters:
        kwargs["small_input"] = True
    full = zoo.create_model(name, **kwargs)
    small = zoo.create_model(name, width_mult=0.25, **kwargs).eval()
    assert count_parameters(small) < count_parameters(full) / 4
    with torch.no_grad():
        assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_width_mult_one_is_the_published_net():
    assert count_parameters(zoo.create_model("resnet18", width_mult=1.0)) == 11_689_512
    assert count_parameters(zoo.create_model("googlenet", width_mult=1.0)) == 13_004_888


# ---------------------------------------------------------------- torchvision pairing

def test_every_torchvision_pair_is_registered():
    assert set(TORCHVISION_EQUIVALENTS) <= set(zoo.list_models())
    with pytest.raises(KeyError, match="torchvision has no implementation"):
        torchvision_model("resnet20_cifar")


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_loading_torchvision_weights_gives_the_same_function(name):
    torch.manual_seed(0)
    ref = torchvision_model(name, num_classes=7).eval()
    ours = load_torchvision_state_dict(name, ref.state_dict(), num_classes=7).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        # the same function written twice: float32 ops in another order through ~20 layers, on
        # outputs of order 1, differ by a few hundred ulps at most (1e-5)
        assert torch.allclose(ref(x), ours(x), atol=1e-5)


def test_throughput_benchmark_writes_its_report(tmp_path):
    torch.set_num_threads(1)
    rc = bench_throughput.main(["--models", "resnet18", "--image-size", "32", "--batch-size", "2",
                                "--rounds", "2", "--steps", "1", "--warmup", "1", "--out", str(tmp_path)])
    assert rc == 0
    text = (tmp_path / "README.md").read_text()
    assert "| resnet18 |" in text and "zoo-bench-throughput --models resnet18" in text
    row = next(iter(__import__("csv").DictReader(open(tmp_path / "throughput.csv"))))
    assert math.isfinite(float(row["train_ratio"])) and float(row["train_ratio"]) > 0
    assert (tmp_path / "throughput_ratio.png").stat().st_size > 0


def test_throughput_benchmark_rejects_a_model_without_a_pair(tmp_path, capsys):
    assert bench_throughput.main(["--models", "lenet5", "--out", str(tmp_path)]) == 2
    assert "no torchvision equivalent" in capsys.readouterr().err


# ---------------------------------------------------------------- zoo-bench

QUICK = ["trainer=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
         "trainer.limit_val_batches=2", "logger=none", "callbacks=none"]


@pytest.fixture
def tiny_suite(tmp_path, monkeypatch):
    suites = tmp_path / "bench"
    suites.mkdir()
    (suites / "tiny.yaml").write_text(
        "description: two quick runs\nseeds: [0, 1]\nexperiments: [mlp_digits8x8]\n"
        f"overrides: {json.dumps(QUICK)}\n")
    monkeypatch.setattr(bench, "BENCH_DIR", suites)
    return bench.load_suite("tiny")


def test_unknown_suite_and_experiment_are_clear_errors(tmp_path, monkeypatch, capsys):
    assert bench.main(["no_such_suite"]) == 2
    assert "unknown suite 'no_such_suite'" in capsys.readouterr().err
    monkeypatch.setattr(bench, "BENCH_DIR", tmp_path)
    (tmp_path / "bad.yaml").write_text("experiments: [no_such_experiment]\n")
    with pytest.raises(bench.SuiteError, match="unknown experiment"):
        bench.load_suite("bad")


def test_the_default_suite_names_real_experiments():
    suite = bench.load_suite("cnn_mnist5k")
    assert suite["seeds"] == [0, 1, 2] and "mlp_mnist5k" in suite["experiments"]


def test_suite_runs_records_and_resumes(tiny_suite, tmp_path, capsys):
    reports, logs = tmp_path / "reports", tmp_path / "logs"
    assert bench.run_suite(tiny_suite, reports, logs) == 0
    runs = load_runs(reports)
    assert sorted(r["seed"] for r in runs) == [0, 1]
    book = json.loads((reports / "bench" / "tiny.json").read_text())
    assert book["complete"] and book["total_wall_s"] > 0 and len(book["runs"]) == 2
    first = (reports / "runs" / "mlp_digits8x8" / "seed0" / "metrics.json").read_text()

    # a second invocation finds both runs done and runs nothing
    capsys.readouterr()
    assert bench.run_suite(tiny_suite, reports, logs) == 0
    assert "2 already recorded, 0 to run" in capsys.readouterr().out
    assert (reports / "runs" / "mlp_digits8x8" / "seed0" / "metrics.json").read_text() == first

    # a run recorded outside the book (by hand, or a book not kept) is booked from its record,
    # without a wall time, and the report says the total leaves it out
    book_path = reports / "bench" / "tiny.json"
    lost = json.loads(book_path.read_text())
    kept_wall = lost["runs"]["mlp_digits8x8/seed0"]["wall_s"]
    del lost["runs"]["mlp_digits8x8/seed1"]
    book_path.write_text(json.dumps(lost))
    assert bench.run_suite(tiny_suite, reports, logs) == 0
    assert "2 already recorded, 0 to run" in capsys.readouterr().out
    book = json.loads(book_path.read_text())
    entry = book["runs"]["mlp_digits8x8/seed1"]
    assert book["complete"] and book["runs_without_wall_time"] == 1 and book["total_wall_s"] == kept_wall
    assert entry["wall_s"] is None and entry["booked_from_record"] and entry["train_time_s"] > 0
    assert "over 1 of them (1 recorded without the suite's timing)" in (reports / "README.md").read_text()

    # running a recorded run again reproduces every metric exactly
    assert bench.verify_suite(tiny_suite, reports, logs, seeds=[0]) == 0
    check = json.loads((reports / "bench" / "verify" / "tiny.json").read_text())
    assert check["checked"] == 1 and check["identical"] == 1 and check["complete"] is True
    assert not (reports / "bench" / "verify" / "tiny.partial.json").exists()

    # an interrupted verification is gone on from: the runs it found identical are not run again
    (reports / "bench" / "verify" / "tiny.partial.json").write_text(json.dumps(dict(check, complete=False)))
    capsys.readouterr()
    assert bench.verify_suite(tiny_suite, reports, logs, seeds=[0]) == 0
    assert "by the interrupted verification this one continues" in capsys.readouterr().out
    assert not (reports / "bench" / "verify" / "tiny.partial.json").exists()

    # another suite holding the same run reuses that verification instead of training a third time;
    # the suite's own file is never reused, and a record made again afterwards is run again
    other = dict(tiny_suite, name="tiny_other")
    capsys.readouterr()
    assert bench.verify_suite(other, reports, logs, seeds=[0]) == 0
    assert "already verified by zoo-bench tiny --verify" in capsys.readouterr().out
    again = json.loads((reports / "bench" / "verify" / "tiny_other.json").read_text())
    assert again["identical"] == 1 and again["runs"][0]["verified_by"] == "tiny"
    rerecorded = json.loads(first)
    rerecorded["started_at"] = "2999-01-01T00:00:00+00:00"
    (reports / "runs" / "mlp_digits8x8" / "seed0" / "metrics.json").write_text(json.dumps(rerecorded))
    assert bench._earlier_verification(reports, "tiny_other", "mlp_digits8x8", 0, rerecorded) is None
    # the report no longer lets that check speak for the record made again
    write_report(reports)
    assert ("1/1 runs gave identical validation and test metrics when run again" in
            (reports / "README.md").read_text())
    assert "since then 1 of these runs were recorded again or removed" in (reports / "README.md").read_text()
    changed_metrics = dict(json.loads(first), test={"test/acc": 0.0})
    assert bench._earlier_verification(reports, "tiny_other", "mlp_digits8x8", 0, changed_metrics) is None
    assert bench._earlier_verification(reports, "tiny", "mlp_digits8x8", 0, json.loads(first)) is None
    (reports / "runs" / "mlp_digits8x8" / "seed0" / "metrics.json").write_text(first)

    # a run recorded on another CPU is not held to bit-identity: listed, not judged
    path = reports / "runs" / "mlp_digits8x8" / "seed0" / "metrics.json"
    moved = json.loads(path.read_text())
    moved["hardware"]["cpu"] = "Another CPU"
    path.write_text(json.dumps(moved))
    capsys.readouterr()
    assert bench.verify_suite(tiny_suite, reports, logs, seeds=[0]) == 3
    assert "no run was recorded on this machine" in capsys.readouterr().out
    path.write_text(first)

    # a damaged run, or a changed configuration, is run again; the other is kept
    (reports / "runs" / "mlp_digits8x8" / "seed1" / "metrics.json").write_text("{trunc")
    assert bench.run_suite(tiny_suite, reports, logs, dry_run=True) == 0
    out = capsys.readouterr().out
    assert "1 already recorded, 1 to run" in out and "todo  mlp_digits8x8 seed=1" in out
    changed = dict(tiny_suite, overrides=[*QUICK, "optimizer.lr=0.5"])
    assert bench.run_suite(changed, reports, logs, seeds=[0], dry_run=True) == 0
    assert "0 already recorded, 1 to run" in capsys.readouterr().out

    # a record removed (to be made again) leaves the book too: the suite is incomplete again
    shutil.rmtree(reports / "runs" / "mlp_digits8x8" / "seed1")
    assert bench.run_suite(tiny_suite, reports, logs, seeds=[0]) == 0
    book = json.loads(book_path.read_text())
    assert list(book["runs"]) == ["mlp_digits8x8/seed0"] and not book["complete"]


def test_a_suites_book_names_the_machines_its_runs_were_recorded_on(tmp_path):
    from zoo.runinfo import hardware, hardware_summary

    def record(key, cpu):
        path = tmp_path / "runs" / key / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"hardware": {"cpu": cpu, "cpu_cores": 2, "torch_threads": 2}}))

    record("a/seed0", "EPYC")
    record("a/seed1", "EPYC")
    assert bench._machines_of({"a/seed0": {}, "a/seed1": {}}, tmp_path) == "2 CPU cores (EPYC)"
    record("a/seed2", "Xeon")
    assert bench._machines_of({"a/seed0": {}, "a/seed1": {}, "a/seed2": {}}, tmp_path) == (
        "2 CPU cores (EPYC), 2 torch threads (2 runs); 2 CPU cores (Xeon), 2 torch threads (1 run)")
    # no readable record (a suite of benchmarks only, or a record gone): this machine
    assert bench._machines_of({"gone/seed0": {}}, tmp_path) == hardware_summary(hardware())


def test_a_run_that_ends_without_its_record_is_a_failure_not_a_crash(tiny_suite, tmp_path, monkeypatch, capsys):
    """A training process stopped by SIGTERM can exit 0 (Lightning ends the fit gracefully)
    without writing its record: the suite reports that run as failed and goes on."""
    monkeypatch.setattr(bench.subprocess, "call", lambda cmd, **kw: 0)  # exits 0, writes nothing
    reports, logs = tmp_path / "reports", tmp_path / "logs"
    assert bench.run_suite(tiny_suite, reports, logs) != 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("FAILED (exit 0 but no record written: was it stopped?)") == 2, text


def test_partial_run_folders_are_not_read(tmp_path):
    """A run killed while being recorded leaves seed<k>.partial/, which the report ignores."""
    partial = tmp_path / "runs" / "x" / "seed0.partial"
    partial.mkdir(parents=True)
    (partial / "metrics.json").write_text("{}")
    assert load_runs(tmp_path) == []


def test_killed_suite_resumes_without_rerunning_or_damage(tmp_path):
    """Kill zoo-bench (and its training process) in the middle of a suite; run it again: the
    finished run is kept as it was, the rest run, and the results files are whole."""
    import os
    import signal
    import subprocess
    import sys
    import time

    suite = tmp_path / "three.yaml"
    suite.write_text("seeds: [0, 1, 2]\nexperiments: [mlp_digits8x8]\n"
                     f"overrides: {json.dumps(QUICK)}\n")
    reports, logs = tmp_path / "reports", tmp_path / "logs"
    cmd = [sys.executable, "-m", "zoo.bench.suite", str(suite), "--reports", str(reports), "--logs", str(logs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    first = reports / "runs" / "mlp_digits8x8" / "seed0" / "metrics.json"
    book_path = reports / "bench" / "three.json"
    deadline = time.time() + 300
    while not book_path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)  # the suite's record appears when the first run has finished
    assert first.exists() and book_path.exists(), proc.stdout.read().decode()
    time.sleep(1.0)  # the second run is under way
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = first.read_text()
    stamp = first.stat().st_mtime_ns
    assert json.loads(book_path.read_text())["runs"]  # whole JSON

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 already recorded, 2 to run" in done.stdout or "2 already recorded, 1 to run" in done.stdout
    assert first.read_text() == kept and first.stat().st_mtime_ns == stamp  # not re-run
    assert sorted(r["seed"] for r in load_runs(reports)) == [0, 1, 2]
    book = json.loads((reports / "bench" / "three.json").read_text())
    assert book["complete"] and len(book["runs"]) == 3
    assert not list((reports / "runs").glob("*/*.partial"))


def test_optuna_sweep_runs_from_one_command_and_lands_in_reports(tmp_path):
    """The documented sweep command, shortened (2 trials of one quick epoch each)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "zoo.cli.train", "-m", "experiment=mlp_digits8x8",
           "hparams_search=lenet5_lr_wd", "hydra.sweeper.n_trials=2", *QUICK,
           f"paths.multirun_root={tmp_path / 'multirun'}", f"paths.reports_dir={tmp_path / 'reports'}",
           f"paths.output_root={tmp_path / 'outputs'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = tmp_path / "reports" / "sweeps" / "lenet5_lr_wd"
    text = (report / "README.md").read_text()
    assert "2 trials" in text and "Best trial" in text and "RandomSampler" in text
    best = json.loads((report / "best.json").read_text())
    assert best["objective"] == "val/loss" and best["n_trials"] == 2
    lrs = [float(r["optimizer.lr"]) for r in __import__("csv").DictReader(open(report / "trials.csv"))]
    assert len(set(lrs)) == 2 and all(0.003 <= lr <= 0.3 for lr in lrs)
    assert (report / "sweep.png").stat().st_size > 0


def test_harness_overhead_benchmark_mechanics(tmp_path):
    from zoo.bench import overhead as bench_overhead

    rc = bench_overhead.main(["experiment=mlp_digits8x8", "trainer=cpu", "--epochs", "2", "--repeats", "1",
                              "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "overhead.json").read_text())
    for side in ("plain", "lightning", "zoo"):
        assert len(res[f"{side}_epoch_s"]) == 1 and len(res[f"{side}_epoch_s"][0]) == 2
        assert all(t > 0 for t in res[f"{side}_epoch_s"][0])
    assert res["ratio"] > 0 and math.isfinite(res["ratio"]) and math.isfinite(res["lightning_ratio"])
    assert res["steps_per_epoch"] > 0 and res["val_steps_per_epoch"] > 0
    for side in ("plain", "lightning", "zoo"):  # the whole epoch holds the training window
        assert all(w >= t for w, t in zip(res[f"{side}_whole_epoch_s"][0], res[f"{side}_epoch_s"][0]))
    assert math.isfinite(res["whole_ratio"]) and math.isfinite(res["lightning_whole_ratio"])
    # the same arithmetic on the same stored times; approx's 1e-6 only allows for the order of
    # the division and the median
    assert res["zoo_over_lightning_ratio"] == pytest.approx(statistics.median(
        [statistics.median(z[1:]) / statistics.median(b[1:]) for z, b in zip(res["zoo_epoch_s"], res["lightning_epoch_s"])]))
    text = (tmp_path / "README.md").read_text()
    assert "plain PyTorch loop" in text and "bare Lightning" in text and f"{res['ratio']:.3f}" in text


def test_harness_overhead_refuses_sides_that_trained_differently():
    """The sides must have trained the same trajectory (same mean training loss every epoch);
    summing in another order is allowed, another shuffle is not."""
    from zoo.bench.overhead import check_same_training

    same = {"plain": {"loss": [0.9, 0.5]}, "lightning": {"loss": [0.9, 0.5 + 1e-8]}, "zoo": {"loss": [0.9, 0.5]}}
    check_same_training(same, 0)
    other = {**same, "zoo": {"loss": [0.9, 0.507]}}
    with pytest.raises(RuntimeError, match="zoo side trained another trajectory.*epoch 2"):
        check_same_training(other, 0)


def test_compute_benchmark_mechanics(tmp_path):
    from zoo.bench import compute as bench_compute

    rc = bench_compute.main(["--models", "lenet5,resnet20_cifar", "--batch-size", "2", "--rounds", "1",
                             "--warmup", "0", "--peak-sizes", "64,128", "--out", str(tmp_path)])
    assert rc == 0
    rows = list(__import__("csv").DictReader(open(tmp_path / "compute.csv")))
    assert [r["model"] for r in rows] == ["lenet5", "resnet20_cifar"]
    assert all(0 < float(r["train_fraction_of_peak"]) for r in rows)
    assert "Measured peak" in (tmp_path / "README.md").read_text()
    assert bench_compute.main(["--models", "nosuchnet*", "--out", str(tmp_path)]) == 2


def test_default_suite_covers_every_embedded_experiment(tmp_path):
    """`zoo-bench` (suite `embedded`) regenerates every table: it holds every experiment whose
    data ships inside a package."""
    from conftest import ROOT, compose_train

    suite = bench.load_suite("embedded")
    embedded = []
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        cfg = compose_train([f"experiment={path.stem}"], tmp_path)
        if cfg.data._target_ in ("datamodules.MNIST5kDataModule", "datamodules.Digits8x8DataModule"):
            embedded.append(path.stem)
    assert sorted(suite["experiments"]) == embedded
    assert set(bench.load_suite("cnn_mnist5k")["experiments"]) <= set(suite["experiments"])
    # ... and the command behind every other committed report
    import re

    reproduce, on_gpus = set(), set()
    for readme in sorted((ROOT / "reports").glob("*/**/README.md")):
        if readme.parent.name in ("runs", "bench"):
            continue
        text = readme.read_text()
        m = re.search(r"Reproduce with:\n\n    (\S.*)\n", text) or re.search(r"Reproduce the sweep: `([^`]+)`", text)
        assert m, f"{readme} names no command that reproduces it"
        # a report recorded on a GPU machine (its rows name the GPU) cannot be in a suite that
        # runs everywhere: its command is one of the suite's benchmarks with other options
        (on_gpus if re.search(r"^GPU: ", text, re.M) else reproduce).add(m.group(1).strip())
    assert reproduce and reproduce <= set(suite["benchmarks"]), reproduce - set(suite["benchmarks"])
    programs = {c.split()[0] for c in suite["benchmarks"]}
    assert {c.split()[0] for c in on_gpus} <= programs, on_gpus


def test_data_pipeline_benchmark_mechanics(tmp_path):
    from zoo.bench import data as bench_data

    rc = bench_data.main(["--experiments", "mlp_digits8x8", "--rounds", "1", "--out", str(tmp_path)])
    assert rc == 0
    text = (tmp_path / "README.md").read_text()
    rows = (tmp_path / "data.csv").read_text().splitlines()
    assert rows[0].startswith("experiment,") and rows[1].startswith("mlp_digits8x8,")
    assert "mlp_digits8x8" in text and "headroom" in text
    with pytest.raises(SystemExit):
        bench_data.main(["--experiments", "no_such_experiment", "--out", str(tmp_path)])


def test_scaling_benchmark_configurations_and_report():
    from zoo.bench import scaling as bench_scaling

    names = [c["name"] for c in bench_scaling.configurations(cuda_devices=0)]
    assert names == ["cpu x1", "cpu ddp x2"]
    names = [c["name"] for c in bench_scaling.configurations(cuda_devices=4)]
    assert names == ["cpu x1", "cpu ddp x2", "gpu x1", "gpu ddp x4"]
    with pytest.raises(SystemExit):  # the benchmark picks the trainer itself
        bench_scaling.main(["trainer=gpu"])


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is needed")
def test_scaling_benchmark_runs_one_and_two_processes(tmp_path):
    from zoo.bench import scaling as bench_scaling

    rc = bench_scaling.main(["experiment=mlp_digits8x8", "--epochs", "2", "--repeats", "1", "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "scaling.json").read_text())
    rows = {r["name"]: r for r in res["rows"]}
    assert rows["cpu x1"]["speedup"] == 1.0
    assert rows["cpu ddp x2"]["runs"][0]["devices"] == 2
    assert rows["cpu ddp x2"]["runs"][0]["strategy"] == "DDPStrategy"
    # both configurations saw the whole training split every epoch (the distributed sampler pads
    # the split to a multiple of the process count)
    assert 0 <= rows["cpu ddp x2"]["examples_per_epoch"] - rows["cpu x1"]["examples_per_epoch"] < 2
    assert all(0 < a <= 1 for r in rows.values() for a in r["val_acc"])
    assert "cpu ddp x2" in (tmp_path / "README.md").read_text()


def test_suite_benchmarks_run_after_the_runs_and_resume(tmp_path):
    """A suite's benchmark commands run once after its training runs, are recorded in the book,
    and are skipped by the next call; an unknown command is refused when the suite is loaded."""
    import io

    data_out = tmp_path / "data"
    suite_file = tmp_path / "mini.yaml"
    suite_file.write_text("seeds: [0]\nexperiments: [mlp_digits8x8]\n"
                          f"overrides: {json.dumps(QUICK)}\n"
                          f"benchmarks: ['zoo-bench-data --experiments mlp_digits8x8 --rounds 1 --out {data_out}']\n")
    suite = bench.load_suite(str(suite_file))
    reports, logs = tmp_path / "reports", tmp_path / "logs"
    out = io.StringIO()
    assert bench.run_suite(suite, reports, logs, out=out) == 0
    assert (data_out / "README.md").exists(), out.getvalue()
    book = json.loads((reports / "bench" / "mini.json").read_text())
    (command, entry), = book["benchmarks"].items()
    assert command.startswith("zoo-bench-data") and entry["rc"] == 0 and entry["wall_s"] > 0
    stamp = (data_out / "README.md").stat().st_mtime_ns

    out = io.StringIO()
    bench.run_suite(suite, reports, logs, dry_run=True, out=out)
    assert "done  benchmark: zoo-bench-data" in out.getvalue()
    assert bench.run_suite(suite, reports, logs, out=io.StringIO()) == 0
    assert (data_out / "README.md").stat().st_mtime_ns == stamp  # not run again

    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments: [mlp_digits8x8]\nbenchmarks: ['zoo-bench-nothing']\n")
    with pytest.raises(bench.SuiteError, match="no command"):
        bench.load_suite(str(bad))
    bad.write_text("experiments: [mlp_digits8x8]\nbenchmarks: ['rm -rf /']\n")
    with pytest.raises(bench.SuiteError, match="zoo command"):
        bench.load_suite(str(bad))


def test_suite_composes_experiments_whose_net_needs_data_facts():
    # a net sized by the data (${data_fact:vocab_size}) composes before the data is read: the fact
    # is a placeholder that matches the value the recorded run resolved it to, and nothing else
    import copy

    from zoo.bench.suite import compose, same_config

    wanted = compose("char_names_faker", 0, [])
    assert str(wanted["model"]["vocab_size"]).startswith("<data fact vocab_size")
    recorded = copy.deepcopy(wanted)
    recorded["model"]["vocab_size"] = 57
    assert same_config(wanted, recorded)
    recorded["model"]["hidden_size"] += 1
    assert not same_config(wanted, recorded)
    del recorded["model"]["vocab_size"]
    assert not same_config(wanted, recorded)
