"""bf16 mixed precision and ``torch.compile`` in ``zoo-train``, and ``zoo-bench-precision``.

* ``compile=true`` compiles the net in place: the same state_dict keys as an eager run, and
  checkpoints that eager and compiled runs load from each other;
* ``trainer.precision=bf16-mixed`` trains on the CPU under the tasks' manual optimization, with
  float32 weights in the checkpoint, and the run records its precision;
* torch.compile's own failures (no C++ compiler, a backend that fails) end the run with one line
  naming ``compile``;
* the benchmark's figures (accuracy difference, the 0.5-point bar, speed ratios, compile time)
  from fabricated run records, and a tiny run of the benchmark itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, compose_train
from zoo.cli.train import build, train
from zoo.errors import ConfigError
from zoo.tasks.base import read_checkpoint_safely


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Each test compiles from a clean slate, and leaves none of its compiled code behind."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _tiny(quick, *extra):
    return [*quick, "trainer.max_epochs=1", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", *extra]


# -- compile ------------------------------------------------------------------------------------------
def test_compile_defaults_to_eager_and_compiles_in_place(quick, tmp_path):
    eager_cfg = compose_train(quick, tmp_path / "eager")
    assert eager_cfg.compile is None  # the default: previously recorded runs stay valid
    _, eager, _, _ = build(eager_cfg)
    _, compiled, _, _ = build(compose_train([*quick, "compile=true"], tmp_path / "compiled"))
    assert getattr(eager.net, "_compiled_call_impl", None) is None
    assert compiled.net._compiled_call_impl is not None  # nn.Module.compile: the module itself, compiled
    assert type(compiled.net) is type(eager.net)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert not any("_orig_mod" in k for k in compiled.state_dict())
    _, kwargs, _, _ = build(compose_train([*quick, "compile={backend:eager,dynamic:false}"], tmp_path / "kw"))
    assert kwargs.net._compiled_call_impl is not None


@pytest.mark.slow
def test_a_compiled_run_trains_and_shares_checkpoints_with_eager(quick, tmp_path):
    eager_rec = train(compose_train(_tiny(quick), tmp_path / "eager"))
    compiled_rec = train(compose_train(_tiny(quick, "compile=true"), tmp_path / "compiled"))
    assert eager_rec["compile"] is None and compiled_rec["compile"] is True
    assert 0 < compiled_rec["test"]["test/acc"] <= 1 and compiled_rec["global_steps"] == 4
    assert compiled_rec["flops"] == eager_rec["flops"]  # counted on the eager forward
    eager_sd = read_checkpoint_safely(eager_rec["best_checkpoint"])["state_dict"]
    compiled_sd = read_checkpoint_safely(compiled_rec["best_checkpoint"])["state_dict"]
    assert list(eager_sd) == list(compiled_sd)
    # each run's weights load, strictly, into the other kind of task
    _, eager_task, _, _ = build(compose_train(quick, tmp_path / "e2"))
    _, compiled_task, _, _ = build(compose_train([*quick, "compile=true"], tmp_path / "c2"))
    eager_task.load_state_dict(compiled_sd, strict=True)
    compiled_task.load_state_dict(eager_sd, strict=True)
    x = torch.randn(3, 1, 32, 32)
    eager_task.eval()
    compiled_task.eval()
    with torch.no_grad():  # the compiled net computes what the eager one does with the same weights
        compiled_task.load_state_dict(compiled_sd, strict=True)
        torch.testing.assert_close(compiled_task.net(x), eager_task.net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.bad_input
def test_no_cpp_compiler_is_one_line_naming_compile(tmp_path):
    """Through the real command, with inductor pointed at a compiler that does not exist."""
    env = dict(os.environ, CXX=str(tmp_path / "no-such-c++"), HYDRA_FULL_ERROR="0")
    env.pop("TORCH_INDUCTOR_INSTALL_GXX", None)
    r = subprocess.run([sys.executable, "-m", "zoo.cli.train", "trainer=cpu", "compile=true",
                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("zoo-train: compile=true: torch.compile's inductor backend"), last
    assert "no working C++ compiler" in last and "compile=null" in last
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


_FAILING = "zoo_test_failing_backend"


@pytest.mark.bad_input
def test_a_compile_failure_in_training_is_one_line_naming_compile(quick, tmp_path):
    if _FAILING not in torch._dynamo.list_backends(exclude_tags=()):
        @torch._dynamo.register_backend(name=_FAILING)
        def _fails(gm, example_inputs):
            raise RuntimeError("this backend cannot build anything")

    cfg = compose_train(_tiny(quick, f"compile={{backend:{_FAILING}}}"), tmp_path)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    message = str(err.value)
    assert message.startswith(f"compile={{backend:{_FAILING}}}: torch.compile failed on this machine")
    assert "this backend cannot build anything" in message and "compile=null" in message
    assert "\n" not in message


# -- bf16 -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bf16_mixed_trains_on_the_cpu_and_records_its_precision(quick, tmp_path):
    cfg = compose_train(_tiny(quick, "trainer.precision=bf16-mixed"), tmp_path)
    dm, task, trainer, _ = build(cfg)
    seen = set()
    task.net.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    trainer.fit(task, datamodule=dm)
    assert torch.bfloat16 in seen  # the forward ran under bf16 autocast
    assert all(p.dtype == torch.float32 for p in task.net.parameters())  # float32 master weights

    rec = train(compose_train(_tiny(quick, "trainer.precision=bf16-mixed"), tmp_path / "rec"))
    assert rec["precision"] == "bf16-mixed" and rec["compile"] is None
    assert 0 < rec["test"]["test/acc"] <= 1 and torch.isfinite(torch.tensor(rec["test"]["test/loss"]))
    assert "precision: bf16-mixed" in (tmp_path / "rec" / "run" / "config.yaml").read_text()
    written = json.loads((tmp_path / "rec" / "run" / "metrics.json").read_text())
    assert written["precision"] == "bf16-mixed"
    ckpt = read_checkpoint_safely(rec["best_checkpoint"])
    assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values() if v.is_floating_point())
    from zoo.tasks import load_task

    assert load_task(rec["best_checkpoint"]).net is not None


# -- the benchmark ----------------------------------------------------------------------------------
def _record(acc, train_time, throughput, fit_wall, precision="32-true", compile=None):
    return {"test": {"test/acc": acc}, "train_time_s": train_time, "throughput_samples_per_s": throughput,
            "fit_wall_s": fit_wall, "train_samples": 4000 * 4, "precision": precision, "compile": compile,
            "device_type": "cpu", "seed": 0}


def _history(*epoch_times):
    return [{"epoch": str(i), "epoch_train_s": str(t)} for i, t in enumerate(epoch_times)]


def test_benchmark_figures_from_fabricated_runs():
    from zoo.bench import precision as bp

    configs = bp.configurations()
    assert [c["key"] for c in configs] == ["eager", "bf16", "compile", "bf16_compile"]
    assert [c["key"] for c in bp.configurations(["bf16"])] == ["eager", "bf16"]  # eager always runs
    with pytest.raises(ValueError, match="unknown configuration"):
        bp.configurations(["fp8"])
    run = bp.parse_run(_record(0.990, 8.0, 2000.0, 12.0), _history(2.3, 2.0, 1.9, 2.1))
    assert run["first_epoch_s"] == 2.3 and run["later_epoch_s"] == 2.0 and run["epochs"] == 4
    assert run["warmup_s"] == pytest.approx(0.3) and run["examples_per_epoch"] == 4000
    results = {
        "eager": [run],
        # 0.5 points below: on the bar, passes; steady epochs 1.25x faster
        "bf16": [bp.parse_run(_record(0.985, 6.6, 2400.0, 10.0, "bf16-mixed"), _history(1.8, 1.6, 1.6, 1.6))],
        # 0.6 points above: outside the bar either way; 20 s of compilation in the first epoch
        "compile": [bp.parse_run(_record(0.996, 25.0, 640.0, 40.0, compile=True), _history(21.3, 1.0, 1.0, 1.0))],
        "bf16_compile": [{"error": "zoo-train failed (exit 2): zoo-train: compile=true: no compiler"}],
    }
    rows = {r["key"]: r for r in bp.summarize(configs, results)}
    assert rows["eager"]["verdict"] == "reference" and rows["eager"]["diff_points"] == 0
    assert rows["bf16"]["diff_points"] == pytest.approx(-0.5) and rows["bf16"]["verdict"] == "pass"
    assert rows["compile"]["diff_points"] == pytest.approx(0.6) and rows["compile"]["verdict"] == "fail"
    assert rows["bf16_compile"]["verdict"] == "failed" and not rows["bf16_compile"]["ok"]
    assert rows["bf16"]["speed_steady"] == pytest.approx(2.0 / 1.6)
    assert rows["bf16"]["speed_whole"] == pytest.approx(1.2)
    assert rows["compile"]["speed_steady"] == pytest.approx(2.0)
    assert rows["compile"]["speed_whole"] == pytest.approx(0.32)
    # compile time: the first epoch's extra time beyond the eager twin's (0.3 s of warm-up)
    assert rows["compile"]["compile_s"] == pytest.approx(20.3 - 0.3)
    assert rows["compile"]["fit_wall_extra_s"] == pytest.approx(28.0)
    assert rows["bf16"]["compile_s"] is None

    res = {"overrides": ["experiment=lenet5_mnist5k"], "epochs": None, "repeats": 1, "metric": "test/acc",
           "bar_points": 0.5, "seed": 0, "device_type": "cpu", "rows": list(rows.values()),
           "bf16": {"native": False, "words": "the CPU (X) has no bfloat16 instructions: bf16-mixed runs emulated"}}
    text = bp.render(res, "zoo-bench-precision", machine="Machine: test")
    assert "Reproduce with:\n\n    zoo-bench-precision\n" in text
    assert "| fp32 eager | 99.00% | +0.00 | reference |" in text
    assert "| bf16-mixed (`trainer.precision=bf16-mixed`) | 98.50% | -0.50 | pass (bf16 emulated) |" in text
    assert "| fp32 compiled (`compile=true`) | 99.60% | +0.60 | fail |" in text
    assert "failed: zoo-train failed (exit 2)" in text and "no bfloat16 instructions" in text
    assert "| fp32 compiled | 25.0 | 640 | 0.32x | 21.30 | 1.000 | 2.00x | 20.0 | 40.0 |" in text
    assert "| bf16-mixed compiled | failed |" in text
    # repeats that disagree show every value, and the median is compared
    two = bp.summarize(configs[:1], {"eager": [run, bp.parse_run(_record(0.994, 8, 2000, 12), _history(2, 2))]})
    assert two[0]["metric"] == pytest.approx(0.992)


def test_benchmark_refuses_what_it_sets_itself(capsys):
    from zoo.bench import precision as bp

    for bad in (["trainer.precision=16-mixed"], ["compile=true"], ["--configs", "fp8"], ["--epochs", "0"]):
        with pytest.raises(SystemExit):
            bp.main(bad)


@pytest.mark.slow
def test_benchmark_runs_eager_and_bf16_on_a_tiny_setting(tmp_path):
    from zoo.bench import precision as bp

    rc = bp.main(["experiment=mlp_digits8x8", "trainer=cpu", "trainer.limit_train_batches=3", "--epochs", "2",
                  "--configs", "bf16", "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "precision.json").read_text())
    rows = {r["key"]: r for r in res["rows"]}
    assert set(rows) == {"eager", "bf16"}
    assert rows["eager"]["runs"][0]["precision"] == "32-true"
    assert rows["bf16"]["runs"][0]["precision"] == "bf16-mixed"
    assert rows["bf16"]["verdict"] in ("pass", "fail") and rows["bf16"]["speed_steady"] > 0
    assert res["device_type"] == "cpu" and res["bf16"]["words"]
    text = (tmp_path / "README.md").read_text()
    assert "Reproduce with:\n\n    zoo-bench-precision experiment=mlp_digits8x8" in text
    assert "bfloat16 on this machine:" in text
