"""The seq2seq family's cross-experiment plot: BLEU by source length, one line per experiment,
averaged over its seeds, one plot per dataset."""
from __future__ import annotations

import pytest

from zoo.reporting import seq2seq_plots
from zoo.tasks.seq2seq import Seq2SeqTask


def _record(experiment: str, dataset: str, seed: int, scores: list[float], counts=(50, 50, 3)) -> dict:
    rows = [{"src_len_min": 4 * i, "src_len_max": 4 * i + 3, "count": c, "sacrebleu": s, "exact_match": s / 100}
            for i, (s, c) in enumerate(zip(scores, counts))]
    return {"experiment": experiment, "seed": seed, "data": {"dataset": dataset}, "bleu_by_src_len": rows}


def test_family_plot_averages_seeds_per_dataset(tmp_path, monkeypatch):
    drawn = {}
    real = seq2seq_plots.bleu_by_length

    def capture(series, path, **kw):
        drawn[path.name] = series
        return real(series, path, **kw)

    monkeypatch.setattr(seq2seq_plots, "bleu_by_length", capture)
    runs = [_record("nums_gru", "numbers", 0, [90.0, 60.0, 20.0]),
            _record("nums_gru", "numbers", 1, [94.0, 70.0, 30.0]),
            _record("nums_transformer", "numbers", 0, [99.0, 98.0, 97.0]),
            _record("dates_gru", "dates", 0, [100.0, 99.0, 98.0]),
            {"experiment": "other", "seed": 0, "data": {"dataset": "numbers"}}]  # no BLEU by length: skipped
    out = Seq2SeqTask.draw_family_plots(runs, tmp_path)
    names = [name for name, _ in out]
    assert names == ["bleu_by_length_dates.png", "bleu_by_length_numbers.png"]
    for name in names:
        assert (tmp_path / name).stat().st_size > 1000
    numbers = drawn["bleu_by_length_numbers.png"]
    assert sorted(numbers) == ["nums_gru", "nums_transformer"]
    assert [r["sacrebleu"] for r in numbers["nums_gru"]] == pytest.approx([92.0, 65.0, 25.0])
    assert [r["exact_match"] for r in numbers["nums_gru"]] == pytest.approx([0.92, 0.65, 0.25])
    assert [r["src_len_min"] for r in numbers["nums_transformer"]] == [0, 4, 8]


def test_family_plot_keeps_only_ranges_every_seed_has(tmp_path):
    a = _record("gru", "numbers", 0, [90.0, 60.0, 20.0])
    b = _record("gru", "numbers", 1, [94.0, 70.0])  # this seed's test split had no long sources
    captured = {}
    orig = seq2seq_plots.bleu_by_length
    try:
        seq2seq_plots.bleu_by_length = lambda series, path, **kw: captured.update(series) or path
        Seq2SeqTask.draw_family_plots([a, b], tmp_path)
    finally:
        seq2seq_plots.bleu_by_length = orig
    assert [r["src_len_min"] for r in captured["gru"]] == [0, 4]


def test_no_bleu_by_length_draws_nothing(tmp_path):
    assert Seq2SeqTask.draw_family_plots([{"experiment": "x", "seed": 0, "data": {}}], tmp_path) == []
    assert not list(tmp_path.iterdir())
