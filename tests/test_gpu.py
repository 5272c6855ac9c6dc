"""GPU code paths. Those marked ``gpu`` run where CUDA is (and are skipped, with the reason, on a
CPU-only machine: tests/conftest.py); the rest check on the CPU what a GPU machine would run."""
from __future__ import annotations

import pytest
import torch

from conftest import compose_train
from zoo.bench.scaling import configurations


def test_the_scaling_benchmark_adds_gpu_rows_where_there_are_gpus():
    assert [c["name"] for c in configurations(cuda_devices=0)] == ["cpu x1", "cpu ddp x2"]
    gpus = configurations(cuda_devices=8)
    assert [c["name"] for c in gpus[2:]] == ["gpu x1", "gpu ddp x8"]
    assert gpus[3]["overrides"] == ["trainer=ddp", "trainer.devices=8"] and gpus[3]["processes"] == 8


def test_gpu_trainers_compose_without_a_gpu(tmp_path):
    for option in ("gpu", "ddp", "fsdp", "ddp_multinode"):
        assert compose_train([f"trainer={option}"], tmp_path).trainer.accelerator == "gpu"


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["32-true", "16-mixed", "bf16-mixed"])
def test_training_on_the_gpu_records_the_device(tmp_path, precision):
    from zoo.cli.train import train

    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    cfg = compose_train(["experiment=lenet5_mnist5k", "trainer=gpu", f"trainer.precision={precision}",
                         "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "logger=none"], tmp_path)
    rec = train(cfg)
    assert rec["hardware"]["gpu"] == torch.cuda.get_device_name(0)
    assert rec["throughput_samples_per_s"] > 0 and rec["test"]["test/acc"] > 0.8


def test_the_scaling_benchmark_refuses_an_unknown_kind_and_gpu_rows_without_cuda(capsys):
    from zoo.bench.scaling import main

    with pytest.raises(SystemExit) as err:
        main(["--kinds", "tpu"])
    assert err.value.code == 2 and "--kinds takes cpu, gpu or both" in capsys.readouterr().err
    if torch.cuda.device_count() == 0:
        with pytest.raises(SystemExit) as err:
            main(["--kinds", "gpu"])
        assert err.value.code == 2 and "needs a machine with CUDA" in capsys.readouterr().err


def test_a_copy_of_the_tree_without_git_takes_its_commit_from_the_environment(tmp_path, monkeypatch):
    from zoo.runinfo import git_info

    monkeypatch.setenv("ZOO_GIT_COMMIT", "0123456789abcdef")
    assert git_info(tmp_path) == {"commit": "0123456789abcdef", "dirty": None}
    monkeypatch.delenv("ZOO_GIT_COMMIT")
    assert git_info(tmp_path) == {"commit": None, "dirty": None}


def test_a_tree_whose_reports_changed_is_still_clean(tmp_path):
    """Records are what runs write: a change under reports/ leaves the tree clean, a change to
    the code or configs makes it dirty."""
    import subprocess

    from zoo.runinfo import git_info

    def git(*args):
        subprocess.run(["git", "-c", "user.name=zoo", "-c", "user.email=zoo@example.org", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "results.csv").write_text("a\n")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    assert git_info(tmp_path)["dirty"] is False
    (tmp_path / "reports" / "results.csv").write_text("a\nb\n")
    assert git_info(tmp_path)["dirty"] is False
    (tmp_path / "train.py").write_text("x = 2\n")
    assert git_info(tmp_path)["dirty"] is True
