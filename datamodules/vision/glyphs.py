"""Printed characters as extra training identities for one-shot learning: a small Omniglot made offline.

Koch et al. (2015) learn one-shot recognition from many classes (Omniglot's 964 training
characters) with few drawings each. The embedded one-shot benchmark has only the digits of its
training classes; these glyphs add more classes, drawn from the fonts that ship inside matplotlib
(DejaVu Sans, Serif and Mono, STIX and Computer Modern, each in several weights and slants):
Latin, Greek and Cyrillic letters and a few signs, each character a class and each font one
drawing of it.

Every glyph is set as MNIST's digits were (LeCun et al. 1998): light on dark, its bounding box
scaled to fit 20x20 pixels with its aspect ratio kept, and placed in a 28x28 image with its centre
of mass at the centre.

No digit is ever a glyph class, and a character whose printed shape is close to a digit's (an O
to a 0, an S to a 5, a b to a 6) is left out, as is a character that looks like one already taken
(a Latin A and a Greek Alpha): see :func:`glyph_classes`. The unseen test digits thus stay unseen.
"""
from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# The fonts, by file name under matplotlib's mpl-data/fonts/ttf: 21 typefaces.
GLYPH_FONTS: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf", "cmb10.ttf",
)
# The candidate characters: every letter (Unicode category L*) and sign (Sm, So) that both reference
# fonts and at least MIN_FONTS of GLYPH_FONTS draw, but for letters with a diacritic (a name with
# "WITH": near-copies of their base letter) and the blocks of box-drawing, Braille, dominoes,
# cards and the like, which are not pen strokes. Never a digit (Nd and No are not candidates).
MIN_FONTS = 4
NOT_STROKES: tuple[str, ...] = ("BOX DRAWINGS", "BRAILLE", "DOMINO", "TETRAGRAM", "HEXAGRAM", "PLAYING CARD",
                                "MAHJONG", "BLOCK", "SHADE", "DIGIT", "NUMBER", "NUMERAL", "SUPERSCRIPT",
                                "SUBSCRIPT", "VULGAR FRACTION", "COMBINING")
# A character is left out when its glyph in a reference font is this alike (cosine of the pixels,
# both blurred by a Gaussian of LIKENESS_BLUR pixels so that near strokes count as alike) to a
# digit's, or MAX_LIKENESS_CHARACTER alike to a character taken before it.
MAX_LIKENESS_DIGIT = 0.85
MAX_LIKENESS_CHARACTER = 0.92
LIKENESS_BLUR = 1.5
REFERENCE_FONTS: tuple[str, ...] = ("DejaVuSans.ttf", "DejaVuSerif.ttf")


def candidate_characters(fonts: Sequence[str] = GLYPH_FONTS, min_fonts: int = MIN_FONTS) -> str:
    """The candidate characters (see ``NOT_STROKES``), in code-point order."""
    import unicodedata

    folder = font_dir()
    counts: dict[int, int] = {}
    for f in fonts:
        for c in _cmap(os.path.join(folder, f)):
            counts[c] = counts.get(c, 0) + 1
    refs = [_cmap(os.path.join(folder, f)) for f in REFERENCE_FONTS]
    out = []
    for c in sorted(counts):
        ch = chr(c)
        name = unicodedata.name(ch, "")
        if (counts[c] >= min_fonts and all(c in r for r in refs) and name and " WITH " not in name
                and (unicodedata.category(ch)[0] == "L" or unicodedata.category(ch) in ("Sm", "So"))
                and not any(word in name for word in NOT_STROKES)):
            out.append(ch)
    return "".join(out)


class GlyphFontsNotFoundError(FileNotFoundError):
    """The fonts the glyph classes are drawn in are not where matplotlib keeps them."""


def font_dir() -> str:
    """matplotlib's own font folder (``mpl-data/fonts/ttf``)."""
    try:
        import matplotlib
    except ModuleNotFoundError as err:  # pragma: no cover - matplotlib is a dependency
        raise GlyphFontsNotFoundError("the glyph classes are drawn in matplotlib's fonts: `pip install matplotlib`") \
            from err
    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")
    missing = [f for f in GLYPH_FONTS if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise GlyphFontsNotFoundError(f"the glyph fonts {', '.join(missing)} are not in {path}: reinstall matplotlib "
                                      "(`pip install --force-reinstall matplotlib`)")
    return path


def mnist_layout(ink: np.ndarray) -> torch.Tensor:
    """``ink`` (H, W) in [0, 1], light on dark, set as MNIST's digits: cropped to its ink, scaled
    (area averaging) so that its longer side is 20 pixels, and pasted in a 28x28 image with its
    centre of mass at (14, 14) where it fits. Returns uint8 (28, 28)."""
    rows, cols = np.nonzero(ink > 0.05)
    if len(rows) == 0:
        raise ValueError("mnist_layout: the image has no ink")
    ink = ink[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    h, w = ink.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = F.interpolate(torch.from_numpy(np.ascontiguousarray(ink, dtype=np.float32))[None, None], size=(nh, nw),
                          mode="area")[0, 0]
    ys, xs = torch.meshgrid(torch.arange(nh, dtype=torch.float32), torch.arange(nw, dtype=torch.float32),
                            indexing="ij")
    mass = small.sum()
    top = min(max(int(round(14 - float((small * ys).sum() / mass))), 0), 28 - nh)
    left = min(max(int(round(14 - float((small * xs).sum() / mass))), 0), 28 - nw)
    out = torch.zeros(28, 28)
    out[top: top + nh, left: left + nw] = small
    return (out.clamp(0, 1) * 255).round().to(torch.uint8)


def render_glyph(char: str, font: str, size: int = 64) -> torch.Tensor | None:
    """``char`` in matplotlib's font file ``font``, set as an MNIST digit (uint8 28x28), or None
    when the font has no glyph for it."""
    from PIL import Image, ImageDraw

    path = os.path.join(_font_folder(), font)
    if ord(char) not in _cmap(path):
        return None
    face = _face(path, size)
    canvas = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(canvas).text((size, size // 2), char, fill=255, font=face)
    ink = np.asarray(canvas, dtype=np.float32) / 255.0
    if ink.max() <= 0.05:
        return None
    return mnist_layout(ink)


@functools.lru_cache(maxsize=None)
def _font_folder() -> str:
    """:func:`font_dir`, checked once a process (a glyph is drawn thousands of times)."""
    return font_dir()


@functools.lru_cache(maxsize=None)
def _face(path: str, size: int):
    """The font file at ``path`` opened at ``size`` pixels, once."""
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=None)
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(path).getBestCmap())


def _unit(x: torch.Tensor) -> torch.Tensor:
    """The glyph blurred by a Gaussian of ``LIKENESS_BLUR`` pixels, as a unit vector."""
    taps = torch.arange(-4, 5, dtype=torch.float32)
    k = torch.exp(-taps ** 2 / (2 * LIKENESS_BLUR ** 2))
    k = k / k.sum()
    v = x.float()[None, None]
    v = F.conv2d(F.conv2d(v, k.view(1, 1, 1, 9), padding=(0, 4)), k.view(1, 1, 9, 1), padding=(4, 0)).flatten()
    return v / v.norm().clamp_min(1e-8)


@functools.lru_cache(maxsize=4)
def glyph_classes(characters: str | None = None, fonts: Sequence[str] = GLYPH_FONTS,
                  max_digit: float = MAX_LIKENESS_DIGIT, max_character: float = MAX_LIKENESS_CHARACTER,
                  ) -> tuple[tuple[str, ...], torch.Tensor, torch.Tensor]:
    """The glyph classes: ``(characters, images, labels)``, ``images`` uint8 (N, 1, 28, 28) with
    one image per character and font that has it, ``labels`` int64 (N,) the index of the
    character in ``characters`` (those kept, in the order given; default
    :func:`candidate_characters`).

    A character is kept when, in each of ``REFERENCE_FONTS``, its glyph is less alike (see
    ``_unit``) than ``max_digit`` to every digit 0-9 printed in that font and than ``max_character``
    to every character kept before it; digits themselves are never candidates. Deterministic: the
    same fonts give the same classes."""
    fonts = tuple(fonts)
    if characters is None:
        characters = candidate_characters(fonts)
    drawn = {ch: [render_glyph(ch, f) for f in REFERENCE_FONTS] for ch in characters if not ch.isdigit()}
    chars = [ch for ch, glyphs in drawn.items() if all(g is not None for g in glyphs)]
    # (fonts, characters, pixels) and (fonts, 10, pixels): the blurred unit glyphs
    units = torch.stack([torch.stack([_unit(drawn[ch][i]) for ch in chars]) for i in range(len(REFERENCE_FONTS))])
    digits = torch.stack([torch.stack([_unit(render_glyph(str(d), f)) for d in range(10)]) for f in REFERENCE_FONTS])
    like_digit = (units @ digits.transpose(1, 2)).amax(dim=(0, 2))  # (characters,): the most digit-like
    alike = (units @ units.transpose(1, 2)).amax(0)  # (characters, characters): the worse font
    kept: list[int] = []
    for i in range(len(chars)):
        if float(like_digit[i]) >= max_digit:
            continue
        if kept and float(alike[i, kept].max()) >= max_character:
            continue
        kept.append(i)
    names = tuple(chars[i] for i in kept)
    images, labels = [], []
    for label, ch in enumerate(names):
        for f in fonts:
            g = render_glyph(ch, f)
            if g is not None:
                images.append(g)
                labels.append(label)
    return names, torch.stack(images).unsqueeze(1), torch.tensor(labels, dtype=torch.int64)


def glyph_digest() -> str:
    """The sha256 of the glyph classes (their characters, drawings and labels): a run's record
    names the very drawings it trained on, which FreeType (through Pillow) and matplotlib's fonts
    make; another version of either may draw them otherwise."""
    import hashlib

    chars, images, labels = glyph_classes()
    h = hashlib.sha256("".join(chars).encode("utf-8"))
    h.update(images.numpy().tobytes())
    h.update(labels.numpy().tobytes())
    return h.hexdigest()


def save_sheet(path: str, per_row: int = 30) -> str:
    """A PNG of every glyph class as drawn in the first font that has it, one tile each, in class
    order, ``per_row`` to a row."""
    from torchvision.utils import save_image

    chars, images, labels = glyph_classes()
    first = torch.stack([images[(labels == c).nonzero()[0, 0]] for c in range(len(chars))])
    save_image(first.float() / 255, path, nrow=per_row, padding=2, pad_value=0.5)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m datamodules.vision.glyphs [PNG]``: list the glyph classes and draw them."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m datamodules.vision.glyphs", description=main.__doc__)
    parser.add_argument("png", nargs="?", help="write a sheet of the classes here (e.g. reports/data/glyphs.png)")
    args = parser.parse_args(argv)
    chars, images, labels = glyph_classes()
    counts = torch.bincount(labels)
    print(f"{len(chars)} glyph classes, {len(images)} drawings ({int(counts.min())}-{int(counts.max())} fonts a "
          f"character), from {len(candidate_characters())} candidates in {len(GLYPH_FONTS)} fonts:")
    print("".join(chars))
    if args.png:
        print(f"wrote {save_sheet(args.png)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
