"""Sequence-to-sequence (translation) data: two generated tasks that run offline, and a reader
of parallel text files (Multi30k) with a subword tokenizer.

* **Dates** (the notes' neural machine translation exercise): a date rendered in one of many
  human-readable formats and locales by ``babel``'s ``format_date`` ("jeudi 4 mars 2021",
  "Mar 4, 2021", "04.03.21", ...) is translated, character by character, into its ISO form
  ``2021-03-04``. The patterns are chosen so that every rendering names one date only: the one
  numeric pattern that puts the month first (``M/d/yy``, as in the US) is the only one that
  writes a two-digit year after a slash, and two-digit years are read within the date range
  (1950-2049 by default). Babel's named ``short`` formats are left out because they break this
  (Spanish ``d/M/yy`` against US ``M/d/yy``).
* **Numbers in words** (``num2words``): a number written in words in one language (French by
  default: "quatre-vingt-dix-neuf mille ...") into the same number in words in another (English:
  "ninety-nine thousand, ..."), word by word; hyphens and commas are tokens of their own.
  Numbers are drawn with a uniform number of digits (1 to ``max_digits``), so short and long
  inputs are equally common.
* **Parallel text files** (Multi30k, Elliott et al. 2016): line-aligned ``<split>.<lang>``
  files, tokenized with a byte-pair-encoding model (Sennrich et al. 2016) trained on the training
  split by the ``tokenizers`` package.

Held-out examples never share their underlying value with training: the date range (or the set
of distinct numbers drawn) is shuffled with ``split_seed`` and cut into disjoint train / val /
test pools before any example is rendered. Everything is reproducible from ``split_seed``.

Batch contract (every loader; :func:`collate_translation`): a dict with

* ``src`` int64 (B, S): source token ids padded with ``<pad>`` (id 0); ``src_mask`` bool (B, S),
  True at real tokens;
* ``tgt_in`` int64 (B, T): ``<s> y_1 ... y_n`` padded with ``<pad>``; ``tgt_out`` int64 (B, T):
  ``y_1 ... y_n </s>`` padded with -100 (never counted);
* ``src_text``, ``tgt_text``: lists of B strings, the source and the reference translation.

Special ids (both vocabularies): ``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3. A token of a
val/test source that no training source has becomes ``<unk>``; a source given by the user
(``encode_source``, ``zoo-translate``) with such a token is refused with an error naming it.
"""
from __future__ import annotations

import datetime as _dt
import gzip
import re
import shutil
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import DataFileError, DatasetNotFoundError, ZooDataModule
from datamodules.text.vocab import BOS, EOS, IGNORE_INDEX, PAD, UNK, Vocabulary, read_utf8, refuse_augment

__all__ = [
    "TranslationDataModule", "DateTranslationDataModule", "NumberWordsDataModule", "ParallelTextDataModule",
    "Multi30kDataModule", "collate_translation", "render_date", "number_tokens", "DATE_FORMATS",
    "NUMERIC_DATE_FORMATS", "SPECIALS",
]

SPECIALS = (PAD, BOS, EOS, UNK)

# babel patterns with month names: every rendering names one date whatever the locale
DATE_FORMATS = ("medium", "long", "full", "d MMM y", "d MMMM y", "dd MMM y", "MMMM d, y", "MMM d, y",
                "EEEE d MMMM y", "EEE d MMM y", "d MMMM, y", "EEEE, MMMM d, y")
# numeric patterns: month first only in M/d/yy, the only one with a two-digit year after a slash
NUMERIC_DATE_FORMATS = ("M/d/yy", "dd.MM.yy", "dd.MM.y", "dd/MM/y", "d/M/y", "dd-MM-y", "d.M.y")
DEFAULT_DATE_LOCALES = ("en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT")


def render_date(date: _dt.date, pattern: str, locale: str, lowercase: bool = True) -> str:
    """``date`` in babel's ``pattern`` (a CLDR name such as ``long``, or a pattern) for ``locale``."""
    from babel.dates import format_date

    text = " ".join(format_date(date, pattern, locale=locale).split())
    return text.lower() if lowercase else text


_NUMBER_TOKEN = re.compile(r"[^\s,;\-]+|[,;\-]")


_CONVERTERS: dict[tuple[str, int], Any] = {}


def number_words(n: int, lang: str, max_digits: int = 15) -> str:
    """``num2words(n, lang=lang)``, white space normalised, for ``0 <= n < 10**max_digits``.

    num2words looks each number up in a table of every power of ten it can name (up to 10^600
    for French), which dominates its cost; a copy of the converter whose table stops at
    ``10**max_digits`` gives the same words (a larger entry never divides a smaller number) up
    to twenty times faster. Converters without such a table are called as they are."""
    import copy
    from collections import OrderedDict

    from num2words import CONVERTER_CLASSES, num2words

    key = (lang, int(max_digits))
    conv = _CONVERTERS.get(key)
    if conv is None:
        base = CONVERTER_CLASSES[lang]
        conv = base
        cards = getattr(base, "cards", None)
        if isinstance(cards, OrderedDict) and getattr(base, "MAXVAL", 0) > 10 ** max_digits:
            conv = copy.copy(base)
            conv.cards = OrderedDict((k, v) for k, v in cards.items() if k < 10 ** (max_digits + 1))
        _CONVERTERS[key] = conv
    text = conv.to_cardinal(n) if conv is not CONVERTER_CLASSES[lang] else num2words(n, lang=lang)
    return " ".join(text.split())


def number_tokens(text: str) -> list[str]:
    """Words, with hyphens, commas and semicolons (between the numbers of a list) as tokens of
    their own: ``"twenty-one thousand, two"`` -> ``["twenty", "-", "one", "thousand", ",", "two"]``."""
    return _NUMBER_TOKEN.findall(text)


class TranslationDataset(Dataset):
    """Each pair as ``{"src": ids (S,), "tgt": ids (T,), "src_text", "tgt_text"}`` (no ``<s>``
    or ``</s>``: the collate function adds them)."""

    def __init__(self, pairs: list[tuple[str, str]], src_tok: Callable[[str], list[str]],
                 tgt_tok: Callable[[str], list[str]], src_vocab: Vocabulary, tgt_vocab: Vocabulary):
        self.pairs = pairs
        self.src = [torch.tensor(src_vocab.encode(src_tok(s)), dtype=torch.long) for s, _ in pairs]
        self.tgt = [torch.tensor(tgt_vocab.encode(tgt_tok(t)), dtype=torch.long) for _, t in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"src": self.src[i], "tgt": self.tgt[i], "src_text": self.pairs[i][0], "tgt_text": self.pairs[i][1]}


def collate_translation(examples: list[dict], pad_idx: int = 0, bos_idx: int = 1, eos_idx: int = 2) -> dict[str, Any]:
    """Examples of :class:`TranslationDataset` -> the batch of the module docstring. Examples
    without ``tgt`` (a user's sources) give ``src``, ``src_mask`` and ``src_text`` only."""
    b = len(examples)
    s = max((len(e["src"]) for e in examples), default=0)
    src = torch.full((b, s), pad_idx, dtype=torch.long)
    src_mask = torch.zeros((b, s), dtype=torch.bool)
    for i, e in enumerate(examples):
        n = len(e["src"])
        src[i, :n] = e["src"]
        src_mask[i, :n] = True
    batch: dict[str, Any] = {"src": src, "src_mask": src_mask, "src_text": [e.get("src_text", "") for e in examples]}
    if examples and "tgt" in examples[0]:
        t = max(len(e["tgt"]) for e in examples) + 1
        tgt_in = torch.full((b, t), pad_idx, dtype=torch.long)
        tgt_out = torch.full((b, t), IGNORE_INDEX, dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e["tgt"])
            tgt_in[i, 0] = bos_idx
            tgt_in[i, 1:n + 1] = e["tgt"]
            tgt_out[i, :n] = e["tgt"]
            tgt_out[i, n] = eos_idx
        batch.update(tgt_in=tgt_in, tgt_out=tgt_out, tgt_text=[e["tgt_text"] for e in examples])
    return batch


def _check_fraction(where: str, name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{where}: {name} must be in (0, 1), got {value!r}")


def _check_positive(where: str, name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")


class TranslationDataModule(ZooDataModule):
    """What the translation datamodules share: vocabularies learned from the training pairs,
    loaders of the module's batch contract, the data facts the seq2seq task and nets read, and
    the encoding of a user's sources. A subclass builds ``self.splits`` (``{"train": [(src,
    tgt), ...], "val": ..., "test": ...}``) in :meth:`make_splits` and says how text becomes tokens.

    Args:
        batch_size, eval_batch_size, num_workers: as :class:`~datamodules.base.ZooDataModule`.
        max_src_len: longest source accepted from a user, in tokens (longer: an error).
        augment: must be null (the ``augment`` config group fills it in every data config).
    """

    name = "translation"
    tgt_detok = "words"  # how the task joins target tokens: chars | words | subwords

    def __init__(self, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0,
                 max_src_len: int = 64, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        refuse_augment(type(self).__name__, augment)
        _check_positive(type(self).__name__, "max_src_len", max_src_len)
        self.max_src_len = int(max_src_len)
        self.splits: dict[str, list[tuple[str, str]]] = {}
        self.src_vocab: Vocabulary | None = None
        self.tgt_vocab: Vocabulary | None = None

    # -- what subclasses provide ------------------------------------------------------------------
    def make_splits(self) -> dict[str, list[tuple[str, str]]]:
        raise NotImplementedError

    def src_tokens(self, text: str) -> list[str]:
        raise NotImplementedError

    def tgt_tokens(self, text: str) -> list[str]:
        raise NotImplementedError

    def fit_tokenizers(self, train: list[tuple[str, str]]) -> None:
        """Learn what tokenization needs from the training pairs (subword merges); default nothing."""

    def normalize_source(self, text: str) -> str:
        """A user's source as the training sources are written (white space, case)."""
        return " ".join(text.split())

    # -- setup ------------------------------------------------------------------------------------
    def collate(self, examples: list) -> dict[str, Any]:
        return collate_translation(examples, 0, 1, 2)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.splits = self.make_splits()
        for split in ("train", "val", "test"):
            if not self.splits.get(split):
                raise ValueError(f"{type(self).__name__}: the {split} split is empty")
        self.fit_tokenizers(self.splits["train"])
        src_counts = Counter(t for s, _ in self.splits["train"] for t in self.src_tokens(s))
        tgt_counts = Counter(t for _, s in self.splits["train"] for t in self.tgt_tokens(s))
        self.src_vocab = Vocabulary.from_counts(src_counts, specials=SPECIALS, unk=UNK)
        self.tgt_vocab = Vocabulary.from_counts(tgt_counts, specials=SPECIALS, unk=UNK)
        sets = {split: TranslationDataset(pairs, self.src_tokens, self.tgt_tokens, self.src_vocab, self.tgt_vocab)
                for split, pairs in self.splits.items()}
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def data_facts(self) -> dict[str, Any]:
        """Both vocabularies (``src_vocab``, ``tgt_vocab`` and their sizes), the special ids, how
        target tokens join into text (``tgt_detok``), and the longest source and target of the
        data in tokens (``max_src_len``, ``max_tgt_len``: decoding stops a little beyond it).
        Empty until ``setup``."""
        if self.src_vocab is None:
            return {"src_vocab_size": None, "tgt_vocab_size": None}
        lengths = [(len(s), len(t)) for ds in (self.train_set, self.val_set, self.test_set)
                   for s, t in zip(ds.src, ds.tgt)]
        return {"src_vocab_size": len(self.src_vocab), "tgt_vocab_size": len(self.tgt_vocab),
                "src_vocab": list(self.src_vocab.itos), "tgt_vocab": list(self.tgt_vocab.itos),
                "pad_idx": 0, "bos_idx": 1, "eos_idx": 2, "unk_idx": 3, "tgt_detok": self.tgt_detok,
                "max_src_len": max(s for s, _ in lengths), "max_tgt_len": max(t for _, t in lengths)}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dataset": self.name}
        if self.src_vocab is not None:
            for split, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set)):
                out[f"{split}_size"] = len(ds)
                out[f"{split}_src_tokens"] = int(sum(len(s) for s in ds.src))
                out[f"{split}_tgt_tokens"] = int(sum(len(t) for t in ds.tgt))
            out["src_vocab_size"], out["tgt_vocab_size"] = len(self.src_vocab), len(self.tgt_vocab)
            out["input_shape"] = [max(1, round(out["train_src_tokens"] / max(1, out["train_size"])))]
        return out

    # -- a user's sources -------------------------------------------------------------------------
    def encode_source(self, text: str, where: str = "source") -> dict[str, Any]:
        """One source sentence as an example (``src`` ids, ``src_text``). An empty source, one
        longer than ``max_src_len`` tokens, or one with a token outside the training vocabulary
        is refused with an error naming ``where``."""
        if self.src_vocab is None:
            self.setup("predict")
        text = self.normalize_source(text)
        if not text:
            raise ValueError(f"{where}: the source is empty; give one sentence to translate per line")
        tokens = self.src_tokens(text)
        if len(tokens) > self.max_src_len:
            raise ValueError(f"{where}: the source has {len(tokens)} tokens; at most max_src_len="
                             f"{self.max_src_len} are accepted")
        ids = self.src_vocab.encode(tokens, where=where, allow_unknown=False)
        return {"src": torch.tensor(ids, dtype=torch.long), "src_text": text}

    def read_input(self, path: Path) -> tuple[dict, dict]:
        """The first non-empty line of a text file, as one source (``zoo-predict``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        lines = [ln for ln in read_utf8(path).splitlines() if ln.strip()]
        if not lines:
            raise ValueError(f"{path}: the file is empty; write the sentence to translate on its first line")
        return self.encode_source(lines[0], where=f"{path}:1"), {}


def _split_pool(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Indices 0..n-1 shuffled with ``seed`` and cut into disjoint val / test / train pools."""
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = max(1, round(val_fraction * n)), max(1, round(test_fraction * n))
    return {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}


class DateTranslationDataModule(TranslationDataModule):
    """Human-readable dates -> ISO dates ``YYYY-MM-DD``, character-level (the notes' exercise).

    Every day of ``[start, end]`` belongs to one of three disjoint pools (train / val / test,
    ``val_fraction`` and ``test_fraction`` of the days, shuffled with ``split_seed``); each
    example draws a day from its split's pool, a locale and a pattern (``formats`` with
    probability ``1 - numeric_share``, else ``numeric_formats``), and renders it with babel.

    Args:
        locales: babel locales of the renderings.
        start, end: the date range (ISO strings); two-digit years (``yy``) are read within it,
            so it must span at most 100 years.
        train_size, val_size, test_size: examples per split.
        formats, numeric_formats, numeric_share: the patterns (see the module docstring for why
            these are unambiguous).
        lowercase: lower-case the sources (a smaller vocabulary, as the notes do).
        val_fraction, test_fraction: shares of the days held out.
        split_seed: seeds the pools and the renderings.
    """

    name = "faker_dates"
    tgt_detok = "chars"

    def __init__(self, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0,
                 locales: Sequence[str] = DEFAULT_DATE_LOCALES, start: str = "1950-01-01", end: str = "2049-12-31",
                 train_size: int = 20000, val_size: int = 1000, test_size: int = 2000,
                 formats: Sequence[str] = DATE_FORMATS, numeric_formats: Sequence[str] = NUMERIC_DATE_FORMATS,
                 numeric_share: float = 0.25, lowercase: bool = True, val_fraction: float = 0.05,
                 test_fraction: float = 0.05, split_seed: int = 0, max_src_len: int = 64, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers, max_src_len, augment)
        where = type(self).__name__
        if not locales or isinstance(locales, str):
            raise ValueError(f"{where}: locales must be a non-empty list of babel locales, got {locales!r}")
        from babel import Locale, UnknownLocaleError

        for loc in locales:
            try:
                Locale.parse(loc)
            except (UnknownLocaleError, ValueError):
                raise ValueError(f"{where}: unknown locale {loc!r} (babel's names: en_US, fr_FR, de_DE ...)") from None
        try:
            self.start, self.end = _dt.date.fromisoformat(str(start)), _dt.date.fromisoformat(str(end))
        except ValueError:
            raise ValueError(f"{where}: start and end must be ISO dates YYYY-MM-DD, got {start!r}, {end!r}") from None
        if self.end <= self.start:
            raise ValueError(f"{where}: end ({end}) must come after start ({start})")
        if self.end.year - self.start.year >= 100:
            raise ValueError(f"{where}: the range {start}..{end} spans 100 years or more, so a two-digit year "
                             "would name two dates; keep it within 100 years")
        for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            _check_positive(where, name, value)
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            _check_fraction(where, name, value)
        if not 0 <= numeric_share <= 1 or (numeric_share > 0 and not numeric_formats) or \
                (numeric_share < 1 and not formats):
            raise ValueError(f"{where}: numeric_share must be in [0, 1], with formats for each kind drawn; got "
                             f"{numeric_share} with {len(formats)} formats and {len(numeric_formats)} numeric ones")
        self.locales, self.formats, self.numeric_formats = list(locales), list(formats), list(numeric_formats)
        self.numeric_share, self.lowercase = float(numeric_share), bool(lowercase)
        self.sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, int(split_seed)

    def make_splits(self) -> dict[str, list[tuple[str, str]]]:
        days = (self.end - self.start).days + 1
        pools = _split_pool(days, self.val_fraction, self.test_fraction, self.split_seed)
        rng = np.random.default_rng([self.split_seed, 1])
        out = {}
        for split in ("train", "val", "test"):
            n = self.sizes[split]
            chosen = rng.choice(pools[split], size=n, replace=True)
            locs = rng.integers(0, len(self.locales), size=n)
            numeric = rng.random(n) < self.numeric_share
            pick_t = rng.integers(0, max(1, len(self.formats)), size=n)
            pick_n = rng.integers(0, max(1, len(self.numeric_formats)), size=n)
            pairs = []
            for k in range(n):
                day = self.start + _dt.timedelta(days=int(chosen[k]))
                pattern = self.numeric_formats[pick_n[k]] if numeric[k] else self.formats[pick_t[k]]
                pairs.append((render_date(day, pattern, self.locales[locs[k]], self.lowercase), day.isoformat()))
            out[split] = pairs
        return out

    def src_tokens(self, text: str) -> list[str]:
        return list(text)

    def tgt_tokens(self, text: str) -> list[str]:
        return list(text)

    def normalize_source(self, text: str) -> str:
        text = " ".join(text.split())
        return text.lower() if self.lowercase else text

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "locales": self.locales, "range": [self.start.isoformat(), self.end.isoformat()],
                "split_seed": self.split_seed}


class NumberWordsDataModule(TranslationDataModule):
    """A number in words in ``src_lang`` -> the same number in words in ``tgt_lang`` (``num2words``),
    word-level; hyphens and commas are tokens. Numbers have 1 to ``max_digits`` digits, the digit
    count uniform; the distinct numbers drawn are shuffled with ``split_seed`` and cut into
    disjoint train / val / test sets of ``train_size``, ``val_size`` and ``test_size``.

    With ``numbers_per_source`` K > 1 each example is a list of 1 to K numbers (the count
    uniform), separated by ``;`` on both sides (``"sept ; huit cents"`` -> ``"seven; eight
    hundred"``): sources up to K times longer, which is where an encoder-decoder that passes the
    whole source through one vector falls behind one with attention (Bahdanau et al. 2015,
    figure 2). No number of a validation or test list appears in a training list.

    Args:
        src_lang, tgt_lang: num2words language codes (``fr``, ``en``, ``es``, ``it``, ``pt`` ...;
            languages that write numbers as one compound word, such as ``de``, make a
            word-level vocabulary as large as the numbers).
        max_digits: the longest numbers (9: up to 999,999,999).
        train_size, val_size, test_size, split_seed: as above (counted in examples).
        numbers_per_source: the most numbers in one example (1: one number, as published).
    """

    name = "number_words"
    tgt_detok = "words"

    def __init__(self, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0,
                 src_lang: str = "fr", tgt_lang: str = "en", max_digits: int = 7, train_size: int = 20000,
                 val_size: int = 1000, test_size: int = 2000, split_seed: int = 0, max_src_len: int = 64,
                 numbers_per_source: int = 1, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers, max_src_len, augment)
        where = type(self).__name__
        from num2words import CONVERTER_CLASSES

        for name, lang in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
            if lang not in CONVERTER_CLASSES:
                raise ValueError(f"{where}: {name}={lang!r} is not a num2words language (e.g. en, fr, es, it)")
        for name, value in (("max_digits", max_digits), ("train_size", train_size), ("val_size", val_size),
                            ("test_size", test_size), ("numbers_per_source", numbers_per_source)):
            _check_positive(where, name, value)
        if max_digits > 15:
            raise ValueError(f"{where}: max_digits must be at most 15, got {max_digits}")
        self.numbers_per_source = int(numbers_per_source)
        total = (int(train_size) + int(val_size) + int(test_size)) * self.numbers_per_source
        available = 10 ** int(max_digits)
        if total > available // 2:
            raise ValueError(f"{where}: {total} distinct numbers asked for among only {available} with at most "
                             f"{max_digits} digits; lower the sizes or raise max_digits")
        self.src_lang, self.tgt_lang, self.max_digits = src_lang, tgt_lang, int(max_digits)
        self.sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
        self.split_seed = int(split_seed)

    def list_lengths(self) -> list[int]:
        """How many numbers each example holds (val, then test, then train examples): all 1, or
        uniform in 1 .. ``numbers_per_source`` (reproducible from the seed)."""
        count = sum(self.sizes.values())
        if self.numbers_per_source == 1:
            return [1] * count
        return np.random.default_rng([self.split_seed, 4]).integers(1, self.numbers_per_source + 1,
                                                                     size=count).tolist()

    def draw_numbers(self, want: int | None = None) -> list[int]:
        """``want`` (default ``train + val + test``) distinct numbers, in the order drawn
        (reproducible from the seed)."""
        rng = np.random.default_rng([self.split_seed, 2])
        want = sum(self.sizes.values()) if want is None else int(want)
        seen: dict[int, None] = {}
        while len(seen) < want:
            digits = rng.integers(1, self.max_digits + 1, size=want)
            low = np.where(digits == 1, 0, 10 ** (digits - 1).astype(np.float64)).astype(np.int64)
            high = (10 ** digits.astype(np.float64)).astype(np.int64)
            for n in (low + (rng.random(want) * (high - low)).astype(np.int64)).tolist():
                seen.setdefault(int(n))
                if len(seen) == want:
                    break
        return list(seen)

    def make_splits(self) -> dict[str, list[tuple[str, str]]]:
        lengths = self.list_lengths()
        numbers = self.draw_numbers(sum(lengths))
        order = np.random.default_rng([self.split_seed, 3]).permutation(len(numbers))
        numbers = [numbers[i] for i in order]
        lists, start = [], 0
        for k in lengths:  # consecutive numbers make an example: no number is in two examples
            lists.append(numbers[start:start + k])
            start += k
        n_val, n_test = self.sizes["val"], self.sizes["test"]
        parts = {"val": lists[:n_val], "test": lists[n_val:n_val + n_test], "train": lists[n_val + n_test:]}
        d = self.max_digits
        return {split: [(" ; ".join(number_words(n, self.src_lang, d) for n in group),
                         "; ".join(number_words(n, self.tgt_lang, d) for n in group)) for group in groups]
                for split, groups in parts.items()}

    def src_tokens(self, text: str) -> list[str]:
        return number_tokens(text)

    def tgt_tokens(self, text: str) -> list[str]:
        return number_tokens(text)

    def normalize_source(self, text: str) -> str:
        return " ".join(text.lower().split())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "src_lang": self.src_lang, "tgt_lang": self.tgt_lang,
                "max_digits": self.max_digits, "numbers_per_source": self.numbers_per_source,
                "split_seed": self.split_seed}


END_OF_WORD = "</w>"  # the subword tokenizer's end-of-word suffix: "house</w>" ends a word


class ParallelTextDataModule(TranslationDataModule):
    """Line-aligned parallel text files ``<root>/<file>.<lang>`` (one sentence per line, line
    ``i`` of the source file translated by line ``i`` of the target file), tokenized with a
    byte-pair-encoding model per language (Sennrich et al. 2016; the ``tokenizers`` package:
    words and punctuation split first, merges learned on the training split, ``</w>`` ending
    each word so that subwords join back into text).

    Args:
        root: the folder of the files.
        src_lang, tgt_lang: the file suffixes (``de``, ``en``).
        files: the file stem of each split (``{"train": "train", "val": "val", "test": "test"}``).
        vocab_size: the subword vocabulary of each language (specials included).
        lowercase: lower-case both sides.
        max_len: pairs with a side longer than this many subwords are left out of training.
        limit: use the first N pairs of each split (quick runs).
        download: fetch the files in ``prepare_data`` when missing (:class:`Multi30kDataModule`).
    """

    name = "parallel_text"
    tgt_detok = "subwords"
    urls: dict[str, str] = {}  # file name -> URL of its gzip (subclasses that can download)

    def __init__(self, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0,
                 root: str | Path = "data/parallel", src_lang: str = "de", tgt_lang: str = "en",
                 files: dict[str, str] | None = None, vocab_size: int = 8000, lowercase: bool = True,
                 max_len: int = 100, limit: int | None = None, download: bool = False, max_src_len: int = 128,
                 augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers, max_src_len, augment)
        where = type(self).__name__
        self.root, self.src_lang, self.tgt_lang = Path(root).expanduser(), src_lang, tgt_lang
        self.files = dict(files or {"train": "train", "val": "val", "test": "test"})
        missing = {"train", "val", "test"} - set(self.files)
        if missing:
            raise ValueError(f"{where}: files must name a file stem for train, val and test; missing {sorted(missing)}")
        _check_positive(where, "vocab_size", vocab_size)
        _check_positive(where, "max_len", max_len)
        if limit is not None:
            _check_positive(where, "limit", limit)
        if vocab_size <= len(SPECIALS):
            raise ValueError(f"{where}: vocab_size must exceed the {len(SPECIALS)} special tokens, got {vocab_size}")
        self.vocab_size, self.lowercase, self.max_len = int(vocab_size), bool(lowercase), int(max_len)
        self.limit, self.download = limit, bool(download)
        self.tokenizers: dict[str, Any] = {}

    def path(self, split: str, lang: str) -> Path:
        return self.root / f"{self.files[split]}.{lang}"

    def prepare_data(self) -> None:
        if not self.download:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        for split in ("train", "val", "test"):
            for lang in (self.src_lang, self.tgt_lang):
                dest = self.path(split, lang)
                url = self.urls.get(dest.name)
                if dest.is_file() or url is None:
                    continue
                tmp = dest.with_name(dest.name + ".gz.part")
                with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:
                    shutil.copyfileobj(resp, fh)
                with gzip.open(tmp, "rb") as src, open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh)
                tmp.unlink()

    def _read_lines(self, path: Path) -> list[str]:
        if not path.is_file():
            hint = " or set data.download=true (needs internet)" if self.urls else ""
            raise DatasetNotFoundError(f"{path} not found: {type(self).__name__} reads line-aligned files "
                                       f"<root>/<split>.<lang> under {self.root}; put them there{hint}")
        lines = read_utf8(path, "parallel text").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [" ".join(ln.split()) for ln in lines]

    def make_splits(self) -> dict[str, list[tuple[str, str]]]:
        out = {}
        for split in ("train", "val", "test"):
            sp, tp = self.path(split, self.src_lang), self.path(split, self.tgt_lang)
            src, tgt = self._read_lines(sp), self._read_lines(tp)
            if len(src) != len(tgt):
                raise DataFileError(f"{sp} has {len(src)} lines but {tp} has {len(tgt)}: parallel files must be "
                                    "line-aligned (one sentence and its translation per line)")
            for i, (s, t) in enumerate(zip(src, tgt)):
                if not s or not t:
                    raise DataFileError(f"{sp if not s else tp}:{i + 1}: an empty line; every line must hold a "
                                        "sentence (remove the pair from both files)")
            pairs = list(zip(src, tgt))
            if self.lowercase:
                pairs = [(s.lower(), t.lower()) for s, t in pairs]
            out[split] = pairs[: self.limit] if self.limit else pairs
        return out

    def fit_tokenizers(self, train: list[tuple[str, str]]) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        for side, lang in ((0, self.src_lang), (1, self.tgt_lang)):
            tok = Tokenizer(models.BPE(unk_token=UNK, end_of_word_suffix=END_OF_WORD))
            tok.pre_tokenizer = pre_tokenizers.Whitespace()
            trainer = trainers.BpeTrainer(vocab_size=self.vocab_size, special_tokens=list(SPECIALS),
                                          end_of_word_suffix=END_OF_WORD, show_progress=False)
            tok.train_from_iterator((pair[side] for pair in train), trainer=trainer)
            self.tokenizers[lang] = tok
        # training pairs too long for a net's positional table are dropped (val/test are kept whole)
        self.splits["train"] = [(s, t) for s, t in train if len(self.src_tokens(s)) <= self.max_len
                                and len(self.tgt_tokens(t)) <= self.max_len]

    def src_tokens(self, text: str) -> list[str]:
        return self.tokenizers[self.src_lang].encode(text).tokens

    def tgt_tokens(self, text: str) -> list[str]:
        return self.tokenizers[self.tgt_lang].encode(text).tokens

    def normalize_source(self, text: str) -> str:
        text = " ".join(text.split())
        return text.lower() if self.lowercase else text


_MULTI30K = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"


class Multi30kDataModule(ParallelTextDataModule):
    """Multi30k (Elliott et al. 2016), task 1: 29,000 / 1,014 / 1,000 English image descriptions
    with their German (and French) translations, as the plain-text files of its release
    (``train.de``, ``train.en``, ``val.de``, ``val.en``, ``test_2016_flickr.de`` ...) under
    ``root``. ``download=true`` fetches them in ``prepare_data`` (needs internet)."""

    name = "multi30k"
    urls = {f"{stem}.{lang}": f"{_MULTI30K}{stem}.{lang}.gz"
            for stem in ("train", "val", "test_2016_flickr") for lang in ("de", "en", "fr")}

    def __init__(self, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0,
                 root: str | Path = "data/multi30k", src_lang: str = "de", tgt_lang: str = "en",
                 files: dict[str, str] | None = None, vocab_size: int = 8000, lowercase: bool = True,
                 max_len: int = 100, limit: int | None = None, download: bool = False, max_src_len: int = 128,
                 augment: Any = None):
        files = files or {"train": "train", "val": "val", "test": "test_2016_flickr"}
        super().__init__(batch_size, eval_batch_size, num_workers, root, src_lang, tgt_lang, files, vocab_size,
                         lowercase, max_len, limit, download, max_src_len, augment)
