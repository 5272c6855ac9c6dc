"""The count-ratio metrics shared by the text families: exact integer counts, the empty case,
and the sum over processes (torchmetrics' state reduction)."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.tasks.embeddings import AnalogyAccuracy
from zoo.tasks.metrics import CountRatio
from zoo.tasks.seq2seq import ExactMatch, TokenAccuracy as Seq2SeqTokenAccuracy
from zoo.tasks.tagging import TokenAccuracy as TagTokenAccuracy


def test_ratios_accumulate_over_batches():
    m = Seq2SeqTokenAccuracy()
    m.update(torch.tensor([[3, 4], [1, 2]]), None)  # training: (correct, total) rows
    m.update([(2, 4, "x", 3)], ["y"])  # evaluation: per-example records
    assert m.compute().item() == pytest.approx(6 / 10)
    e = ExactMatch()
    e.update([(0, 0, "2021-03-04", 5), (0, 0, "2021-03-05", 5)], ["2021-03-04", "2021-03-04"])
    e.update([(0, 0, "a", 1)], ["a"])
    assert e.compute().item() == pytest.approx(2 / 3) and e.compute().dtype == torch.float64
    t = TagTokenAccuracy()
    t.update([torch.tensor([1, 0, 2])], [torch.tensor([1, 0, 0])])
    assert t.compute().item() == pytest.approx(2 / 3)


def test_empty_values():
    assert ExactMatch().compute().item() == 0.0
    a = AnalogyAccuracy()
    assert math.isnan(a.compute().item())  # no analogy question covered
    a.update({"analogy": torch.tensor([1.0, 0.0, 1.0, 1.0])})
    assert a.compute().item() == 0.75


def test_reset_and_state_reduction():
    a, b = ExactMatch(), ExactMatch()
    a.update([(0, 0, "x", 1)], ["x"])
    b.update([(0, 0, "x", 1), (0, 0, "z", 1)], ["y", "z"])
    merged = ExactMatch()
    merged.merge_state(a)  # what the sum over processes does with the two states
    merged.merge_state(b)
    assert (int(merged.hits), int(merged.count)) == (2, 3)
    assert merged.compute().item() == pytest.approx(2 / 3)
    a.reset()
    assert int(a.hits) == 0 and int(a.count) == 0


def test_a_subclass_must_say_how_it_counts():
    with pytest.raises(NotImplementedError):
        CountRatio().update([1], [1])
