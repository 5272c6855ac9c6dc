"""Property-based tests (hypothesis) of the seeded, stratified split every datamodule uses
(``datamodules.base.stratified_split``): for any class sizes and fractions, the parts are
disjoint and cover every example, have the sizes asked for, keep each class's share, and are
the same for the same seed."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from datamodules.base import stratified_split

# derandomize: the same cases on every run (CI and here); the examples are few because each
# split calls scikit-learn twice (a few milliseconds)
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


@st.composite
def labelled(draw):
    counts = draw(st.lists(st.integers(10, 40), min_size=2, max_size=5))
    labels = np.repeat(np.arange(len(counts)), counts)
    order = draw(st.permutations(range(len(labels))))  # the rows in any order
    fractions = draw(st.lists(st.floats(0.1, 0.3), min_size=1, max_size=2))
    seed = draw(st.integers(0, 2**31 - 1))
    return labels[np.array(order)], fractions, seed


@SETTINGS
@given(labelled())
def test_a_split_covers_every_example_once_with_the_sizes_asked(case):
    labels, fractions, seed = case
    parts = stratified_split(labels, fractions, seed)
    assert len(parts) == len(fractions) + 1
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(len(labels)))  # disjoint and complete
    for part, frac in zip(parts[1:], fractions):
        assert len(part) == int(round(frac * len(labels)))


@SETTINGS
@given(labelled())
def test_a_split_keeps_each_class_share(case):
    """Each part holds each class in proportion, within 2 examples: scikit-learn rounds each
    class's share to a whole example once per split, and the second part is split from the rest
    left by the first (two roundings)."""
    labels, fractions, seed = case
    parts = stratified_split(labels, fractions, seed)
    for part in parts[1:]:
        share = len(part) / len(labels)
        for c in np.unique(labels):
            expected = share * np.sum(labels == c)
            assert abs(np.sum(labels[part] == c) - expected) <= 2, (c, share)


@SETTINGS
@given(labelled())
def test_the_same_seed_gives_the_same_split(case):
    labels, fractions, seed = case
    a, b = stratified_split(labels, fractions, seed), stratified_split(labels, fractions, seed)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
