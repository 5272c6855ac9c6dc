"""k-fold cross-validation driver (python -m zoo.bench.crossval): fold runs, their summary over
folds and seeds, resuming, and the Markdown report."""
from __future__ import annotations

import json

import pytest

from zoo.bench import crossval


def _run(acc: float, f1: float, size: int = 20) -> dict:
    return {"test": {"test/acc": acc, "test/f1": f1, "test/loss": 0.5}, "train_time_s": 1.0,
            "data": {"test_size": size, "train_size": 162, "test_unk_rate": 0.25 + size / 100, "test_positive": 12}}


def test_summary_is_mean_over_folds_then_over_seeds():
    runs = {0: {0: _run(0.5, 0.4), 1: _run(0.7, 0.6)}, 1: {0: _run(0.6, 0.5), 1: _run(0.8, 0.7)}}
    s = crossval.summarise("e", runs)
    assert s["per_seed_mean_over_folds"]["seed0"]["test/acc"] == pytest.approx(0.6)
    assert s["per_seed_mean_over_folds"]["seed1"]["test/acc"] == pytest.approx(0.7)
    assert s["mean_over_folds"]["test/acc"]["mean"] == pytest.approx(0.65)
    assert s["mean_over_folds"]["test/acc"]["std"] == pytest.approx(0.0707107, rel=1e-5)  # sample std of 0.6, 0.7
    assert s["folds"] == [0, 1] and s["seeds"] == [0, 1]


def test_report_table(tmp_path):
    runs = {0: {0: _run(0.5, 0.4, 20), 1: _run(0.7, 0.6, 21)}}
    s = crossval.summarise("sentiment_x", runs)
    s["reference"] = {"metric": "test/acc", "value": 0.761, "source": "Kim 2014", "setting": "MR"}
    path = crossval.write_report([s], tmp_path / "cv.md", "python -m zoo.bench.crossval sentiment_x")
    text = path.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| sentiment_x"))
    assert "| 2 x 1 | 60.0 ± 0.0 | 50.0 ± 0.0 | 162 / 20–21 | 45.5 | 58.6 | 1.0 | test/acc 76.1: Kim 2014; MR |" in row
    assert "test/loss" not in text
    assert json.loads((tmp_path / "cv.json").read_text())["summaries"][0]["experiment"] == "sentiment_x"


def test_unknown_experiment_is_refused(capsys):
    assert crossval.main(["no_such_experiment"]) == 2
    assert "unknown experiment" in capsys.readouterr().err


def test_experiment_without_folds_is_refused():
    with pytest.raises(ValueError, match="fold"):
        crossval.num_folds_of("char_names_faker", [])


def test_two_folds_run_resume_and_report(tmp_path, capsys):
    out, report = tmp_path / "cv", tmp_path / "reports" / "cv.md"
    args = ["sentiment_avg_polarity", "--seeds", "0", "--folds", "0,1", "--out", str(out), "--report", str(report),
            "trainer.max_epochs=1", "logger=none"]
    assert crossval.main(args) == 0
    first = json.loads((out / "sentiment_avg_polarity" / "crossval.json").read_text())
    assert sorted(first["runs"]) == ["seed0/fold0", "seed0/fold1"]
    assert first["runs"]["seed0/fold0"]["test_size"] == 20  # 200 sentences, 10 folds
    capsys.readouterr()
    assert crossval.main(args) == 0  # resumes: both folds are recorded, none is trained again
    assert capsys.readouterr().out.count(", recorded in") == 2
    assert json.loads((out / "sentiment_avg_polarity" / "crossval.json").read_text())["mean_over_folds"] \
        == first["mean_over_folds"]
    assert "| sentiment_avg_polarity | 2 x 1 |" in report.read_text()
