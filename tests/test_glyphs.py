"""Printed characters as extra training classes for one-shot learning (``datamodules.vision.glyphs``):
set as MNIST's digits, never a digit nor a character shaped like one, and added to the one-shot
digits' training split only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import datamodules.vision.glyphs as glyphs
from datamodules.vision.glyphs import (MIN_FONTS, GlyphFontsNotFoundError, candidate_characters, glyph_classes,
                                       mnist_layout, render_glyph)
from datamodules.vision.oneshot import MNIST5kOneShotDataModule

bad_input = pytest.mark.bad_input


def test_a_glyph_is_set_as_mnist_sets_a_digit():
    ink = np.zeros((100, 60), dtype=np.float32)
    ink[10:90, 20:40] = 1.0  # an upright bar, 80 x 20, off centre
    out = mnist_layout(ink)
    assert out.dtype == torch.uint8 and out.shape == (28, 28)
    rows, cols = (out > 0).nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 == 5  # longer side 20, aspect kept
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = out.float().sum()
    assert abs(float((out * ys).sum() / mass) - 13.5) <= 0.5 and abs(float((out * xs).sum() / mass) - 13.5) <= 0.5
    a = render_glyph("A", "DejaVuSans.ttf")
    assert a.shape == (28, 28) and a.max() == 255 and (a > 0).any(0).sum() <= 20
    assert render_glyph("\u0904", "cmr10.ttf") is None  # a font without the character draws nothing


def test_glyph_classes_are_many_printed_characters_never_digits_nor_their_lookalikes():
    chars, images, labels = glyph_classes()
    assert len(chars) >= 200 and len(set(chars)) == len(chars)
    assert not any(ch.isdigit() for ch in chars)
    # printed shapes of the digits: an S is a 5, a g a 9, a B an 8, a Cyrillic Ze a 3, a b a 6
    for lookalike in "SgBЗbIl":
        assert lookalike in candidate_characters() and lookalike not in chars, lookalike
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28) and len(images) == len(labels)
    counts = torch.bincount(labels)
    assert len(counts) == len(chars) and int(counts.min()) >= MIN_FONTS  # every class drawn in several fonts
    # no two classes alike, and none like a digit, in either reference font
    for font in glyphs.REFERENCE_FONTS:
        units = torch.stack([glyphs._unit(render_glyph(ch, font)) for ch in chars])
        alike = units @ units.T - 2 * torch.eye(len(chars))
        assert float(alike.max()) < glyphs.MAX_LIKENESS_CHARACTER
        digits = torch.stack([glyphs._unit(render_glyph(str(d), font)) for d in range(10)])
        assert float((units @ digits.T).max()) < glyphs.MAX_LIKENESS_DIGIT
    once, again = glyph_classes.__wrapped__("ACEKX"), glyph_classes.__wrapped__("ACEKX")  # deterministic
    assert once[0] == again[0] and torch.equal(once[1], again[1]) and torch.equal(once[2], again[2])


def test_characters_alike_are_one_class_and_the_first_stays():
    chars, _, labels = glyph_classes.__wrapped__("A\u0391KX")  # Latin A, then Greek Alpha: one shape
    assert chars[0] == "A" and "\u0391" not in chars and set(labels.tolist()) == set(range(len(chars)))


def test_glyph_classes_join_the_training_digits_and_leave_val_and_test_alone():
    plain = MNIST5kOneShotDataModule()
    plain.setup()
    dm = MNIST5kOneShotDataModule(glyph_classes=True, batch_size=64, samples_per_class=4)
    dm.setup()
    chars, images, labels = glyph_classes()
    x, y = dm.train_set.tensors
    assert len(y) == 2500 + len(images)
    assert torch.equal(x[:2500], plain.train_set.tensors[0]) and torch.equal(y[:2500], plain.train_set.tensors[1])
    assert torch.equal(y[2500:], labels + 10)  # after the digits' labels
    assert torch.equal(x[2500:], plain.preprocess(images))  # normalised as the digits are
    for split in ("val_set", "test_set"):
        for a, b in zip(getattr(dm, split).tensors, getattr(plain, split).tensors):
            assert torch.equal(a, b)
    facts = dm.describe()
    assert facts["train_identities"] == 5 + len(chars) and facts["glyph_classes"] == len(chars)
    assert facts["glyph_sha256"] == glyphs.glyph_digest() and len(facts["glyph_sha256"]) == 64
    assert "glyph_sha256" not in plain.describe()
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (64, 1, 28, 28) and torch.unique(yb, return_counts=True)[1].tolist() == [4] * 16


@bad_input
def test_glyphs_say_what_is_missing(monkeypatch):
    with pytest.raises(ValueError, match="glyph_classes must be true or false, got 'yes'"):
        MNIST5kOneShotDataModule(glyph_classes="yes")
    with pytest.raises(ValueError, match="no ink"):
        mnist_layout(np.zeros((10, 10), dtype=np.float32))
    monkeypatch.setattr(glyphs, "GLYPH_FONTS", glyphs.GLYPH_FONTS + ("NoSuchFont.ttf",))
    with pytest.raises(GlyphFontsNotFoundError, match="NoSuchFont.ttf .* reinstall matplotlib"):
        glyphs.font_dir()
