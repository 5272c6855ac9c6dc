"""Named-entity tagging on sentences generated from templates with ``faker``'s people, places
and companies (the notes' named-entity recognition, with their "Teddy" example).

Every sentence is made by filling a template with people (faker's first names and surnames of
several locales), cities and companies (made by a seeded ``Faker``), and every word is tagged
with its entity type (``PER``, ``LOC``, ``ORG``) or ``O``. A share of the sentences (``ambiguous_fraction``)
turns on a word that is both a first name and a common word ("teddy", "rose", "bill", ...),
placed where only the words *after* it tell which it is::

    teddy roosevelt was president .      teddy = B-PER, roosevelt = I-PER
    teddy bears are on sale .            teddy = O

Both readings follow the same left context (the sentence start, or one of a few neutral
openings such as "yesterday"), so a left-to-right tagger can only guess at that word, while a
bidirectional one reads the next word. Text is lower-cased, so capitals give nothing away.
"""
from __future__ import annotations

import random
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import ZooDataModule
from datamodules.text.names import locale_names
from datamodules.text.vocab import IGNORE_INDEX, PAD, UNK, Vocabulary, read_utf8, refuse_augment, word_tokens

ENTITY_TYPES = ("PER", "LOC", "ORG")
DEFAULT_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT")

# words that are first names and common words; each with nouns that make it a common word
AMBIGUOUS = {
    "teddy": ("bears", "bear"), "rose": ("petals", "bushes", "gardens"), "bill": ("payments", "collectors"),
    "jack": ("rabbits", "knives"), "amber": ("lights", "necklaces"), "summer": ("holidays", "storms"),
    "holly": ("bushes", "berries"), "ruby": ("rings", "earrings"), "penny": ("stocks", "whistles"),
    "iris": ("scans", "flowers"), "sandy": ("beaches", "soils"), "frank": ("discussions", "opinions"),
    "violet": ("candles", "dresses"), "grace": ("periods", "notes"), "mark": ("ups", "downs"),
}
# openings after which either reading may follow (the left context gives nothing away)
NEUTRAL_OPENINGS = ("", "yesterday", "everyone knows that", "we heard that", "today", "in fact", "apparently")
PERSON_ENDINGS = ("was president .", "gave a speech in {LOC} .", "works for {ORG} .", "signed the treaty .",
                  "is visiting {LOC} .", "was born in {LOC} .")
THING_ENDINGS = ("are on sale .", "were sold in {LOC} .", "are popular in {LOC} .", "were made by {ORG} .",
                 "are cheap this week .", "were everywhere .")
TEMPLATES = (
    "{PER} lives in {LOC} .",
    "{PER} works for {ORG} in {LOC} .",
    "yesterday {PER} met {PER} in {LOC} .",
    "{ORG} opened an office in {LOC} .",
    "{PER} was born in {LOC} .",
    "the report by {PER} was praised by {ORG} .",
    "{PER} joined {ORG} last year .",
    "we flew to {LOC} with {PER} .",
    "shares of {ORG} rose on monday .",
    "{PER} said that {ORG} will hire in {LOC} .",
    "the mayor of {LOC} thanked {PER} .",
    "{PER} and {PER} founded {ORG} .",
    "a storm hit {LOC} on friday .",
    "the new bridge in {LOC} was opened .",
)


def tag_names(scheme: str) -> list[str]:
    """``O`` then, per entity type, ``B-X`` and ``I-X`` (BIO) or ``I-X`` (IO)."""
    if scheme == "BIO":
        return ["O"] + [f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")]
    if scheme == "IO":
        return ["O"] + [f"I-{t}" for t in ENTITY_TYPES]
    raise ValueError(f"scheme must be BIO or IO, got {scheme!r}")


@lru_cache(maxsize=8)
def entity_pools(locales: tuple[str, ...], seed: int, pool_size: int) -> dict[str, tuple[tuple[str, ...], ...]]:
    """What sentences are filled with, as token tuples: ``first`` and ``last`` names (every one
    faker ships for ``locales``), and ``pool_size`` ``LOC`` (cities) and ``ORG`` (companies)
    made by a ``Faker`` of those locales seeded with ``seed`` (uniform choices: faker's
    frequency weighting is slow and adds nothing here). Kept per process."""
    from faker import Faker

    try:
        fake = Faker(list(locales), use_weighting=False)
    except AttributeError:
        raise ValueError(f"faker does not know one of the locales {list(locales)!r}") from None
    fake.seed_instance(int(seed))
    pools: dict[str, tuple[tuple[str, ...], ...]] = {}
    for kind in ("first", "last"):
        pools[kind] = tuple(t for t in (tuple(word_tokens(n)) for n in locale_names(locales, kind)) if t)
    for kind, draw in (("LOC", fake.city), ("ORG", fake.company)):
        made = {tuple(word_tokens(draw())) for _ in range(int(pool_size))}
        pools[kind] = tuple(sorted(t for t in made if t))
    return pools


class SentenceMaker:
    """Draws tagged sentences: ``(words, tags, ambiguous)`` with ``ambiguous`` True for a
    sentence built on an ambiguous word (its first word after the opening). Every choice comes
    from ``random.Random(seed)``; the entities from :func:`entity_pools`."""

    def __init__(self, locales: Sequence[str], seed: int, scheme: str = "BIO", ambiguous_fraction: float = 0.3,
                 pool_seed: int = 0, pool_size: int = 400):
        self.pools = entity_pools(tuple(locales), int(pool_seed), int(pool_size))
        self.rng = random.Random(int(seed))
        self.scheme, self.ambiguous_fraction = scheme, float(ambiguous_fraction)

    def _entity(self, kind: str) -> list[str]:
        pools, rng = self.pools, self.rng
        if kind == "PER":
            first = list(rng.choice(pools["first"]))
            return first + list(rng.choice(pools["last"])) if rng.random() < 0.8 else first
        return list(rng.choice(pools[kind]))

    def _tags(self, n: int, kind: str | None) -> list[str]:
        if kind is None:
            return ["O"] * n
        first = "B" if self.scheme == "BIO" else "I"
        return [f"{first}-{kind}"] + [f"I-{kind}"] * (n - 1)

    def _fill(self, template: str, words: list[str], tags: list[str]) -> None:
        for piece in template.split():
            if piece in ("{PER}", "{LOC}", "{ORG}"):
                kind = piece[1:-1]
                toks = self._entity(kind)
                words.extend(toks)
                tags.extend(self._tags(len(toks), kind))
            else:
                words.append(piece)
                tags.append("O")

    def sentence(self) -> tuple[list[str], list[str], bool]:
        words: list[str] = []
        tags: list[str] = []
        rng = self.rng
        if rng.random() >= self.ambiguous_fraction:
            self._fill(rng.choice(TEMPLATES), words, tags)
            return words, tags, False
        word = rng.choice(sorted(AMBIGUOUS))
        self._fill(rng.choice(NEUTRAL_OPENINGS), words, tags)
        if rng.random() < 0.5:  # a person: the ambiguous first name, a surname
            last = list(rng.choice(self.pools["last"]))
            words.extend([word, *last])
            tags.extend(self._tags(1 + len(last), "PER"))
            self._fill(rng.choice(PERSON_ENDINGS), words, tags)
        else:  # a thing: the word, one of its nouns
            words.extend([word, rng.choice(AMBIGUOUS[word])])
            tags.extend(["O", "O"])
            self._fill(rng.choice(THING_ENDINGS), words, tags)
        return words, tags, True


class TaggedSentences(Dataset):
    """Sentences as ``(token ids (n,), tag ids (n,))`` int64 pairs."""

    def __init__(self, sentences: list[tuple[list[str], list[str], bool]], vocab: Vocabulary, tags: list[str]):
        index = {t: i for i, t in enumerate(tags)}
        self.sentences = sentences
        self.examples = [(torch.tensor(vocab.encode(w), dtype=torch.long),
                          torch.tensor([index[t] for t in g], dtype=torch.long)) for w, g, _ in sentences]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        return self.examples[i]


def collate_tagged(examples: list, pad_idx: int = 0) -> dict[str, Any]:
    """``(tokens, tags)`` pairs -> ``{"tokens": (B, T), "tags": (B, T), "lengths": (B,)}``, tokens
    padded with ``pad_idx`` and tags with -100; ``read_input``'s dicts (no tags) -> the same
    without ``tags``, with ``words`` (each sentence's words as written)."""
    predict = isinstance(examples[0], dict)
    seqs = [e["tokens"] for e in examples] if predict else [e[0] for e in examples]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    t = int(lengths.max())
    tokens = torch.full((len(seqs), t), pad_idx, dtype=torch.long)
    for b, s in enumerate(seqs):
        tokens[b, :len(s)] = s
    if predict:
        return {"tokens": tokens, "lengths": lengths, "words": [e["words"] for e in examples]}
    tags = torch.full((len(seqs), t), IGNORE_INDEX, dtype=torch.long)
    for b, (_, g) in enumerate(examples):
        tags[b, :len(g)] = g
    return {"tokens": tokens, "tags": tags, "lengths": lengths}


class FakerNERDataModule(ZooDataModule):
    """Named-entity tagging on generated sentences (offline, deterministic; module docstring).

    Batch contract (train/val/test loaders): a dict with ``tokens`` int64 (B, T), word ids padded
    with ``<pad>`` (id 0); ``tags`` int64 (B, T), tag ids (``data_facts()["tags"]``) padded with
    -100 (never counted); ``lengths`` int64 (B,), each sentence's words. ``T`` is the longest
    sentence of the batch.

    The vocabulary holds ``<pad>``, ``<unk>`` and the training sentences' words seen at least
    ``min_count`` times (the rest, mostly rare surnames and towns, is ``<unk>`` everywhere, so
    the tagger learns to tag an unknown word from its context). Train, val and test sentences
    are drawn with different seeds.

    Your own file (``zoo-predict``): one sentence of text (tokenised and lower-cased as the
    data; unknown words become ``<unk>``), at most ``max_length`` words.

    Args:
        batch_size, eval_batch_size, num_workers: as :class:`~datamodules.base.ZooDataModule`.
        train_sentences, val_sentences, test_sentences: how many sentences per split.
        scheme: ``BIO`` (begin/inside/outside) or ``IO``.
        ambiguous_fraction: the share of sentences built on an ambiguous word.
        min_count: training count below which a word is ``<unk>``.
        max_length: the longest sentence ``read_input`` takes.
        locales: faker locales of the names, places and companies.
        seed: seeds the cities and companies (faker) and the three splits' sentence makers.
        augment: must be null (the ``augment`` config group fills it in every data config).
    """

    name = "faker_ner"

    def __init__(self, batch_size: int = 32, eval_batch_size: int | None = None, num_workers: int = 0,
                 train_sentences: int = 4000, val_sentences: int = 500, test_sentences: int = 1000,
                 scheme: str = "BIO", ambiguous_fraction: float = 0.3, min_count: int = 2, max_length: int = 64,
                 locales: Sequence[str] = DEFAULT_LOCALES, seed: int = 0,
                 augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        refuse_augment(type(self).__name__, augment)
        where = type(self).__name__
        self.tags = tag_names(scheme)
        for arg, value in (("train_sentences", train_sentences), ("val_sentences", val_sentences),
                           ("test_sentences", test_sentences), ("min_count", min_count), ("max_length", max_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}: {arg} must be a positive integer, got {value!r}")
        if not 0 <= ambiguous_fraction <= 1:
            raise ValueError(f"{where}: ambiguous_fraction must be in [0, 1], got {ambiguous_fraction!r}")
        self.counts = {"train": train_sentences, "val": val_sentences, "test": test_sentences}
        self.scheme, self.ambiguous_fraction = scheme, float(ambiguous_fraction)
        self.min_count, self.max_length = min_count, max_length
        self.locales, self.seed = list(locales), seed
        self.vocab: Vocabulary | None = None

    def collate(self, examples: list) -> dict[str, Any]:
        return collate_tagged(examples, 0)

    def split_seeds(self) -> dict[str, int]:
        state = np.random.SeedSequence([int(self.seed)]).generate_state(3)
        return {split: int(s) for split, s in zip(("train", "val", "test"), state)}

    def make_sentences(self, split: str) -> list[tuple[list[str], list[str], bool]]:
        maker = SentenceMaker(self.locales, self.split_seeds()[split], self.scheme, self.ambiguous_fraction,
                              pool_seed=self.seed)
        return [maker.sentence() for _ in range(self.counts[split])]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        sentences = {split: self.make_sentences(split) for split in ("train", "val", "test")}
        counts = Counter(w for words, _, _ in sentences["train"] for w in words)
        self.vocab = Vocabulary.from_counts(counts, specials=(PAD, UNK), min_count=self.min_count, unk=UNK)
        self.train_set = TaggedSentences(sentences["train"], self.vocab, self.tags)
        self.val_set = TaggedSentences(sentences["val"], self.vocab, self.tags)
        self.test_set = TaggedSentences(sentences["test"], self.vocab, self.tags)

    def data_facts(self) -> dict[str, Any]:
        """``vocab_size``, ``vocab``, ``pad_idx``, ``unk_idx``, the tag set (``tags``,
        ``num_tags``, known before ``setup``) and its ``scheme``."""
        facts: dict[str, Any] = {"tags": list(self.tags), "num_tags": len(self.tags), "scheme": self.scheme,
                                 "vocab_size": None, "vocab": None}
        if self.vocab is not None:
            facts.update(vocab_size=len(self.vocab), vocab=list(self.vocab.itos), pad_idx=self.vocab.index(PAD),
                         unk_idx=self.vocab.index(UNK))
        return facts

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dataset": self.name, "scheme": self.scheme, "tags": list(self.tags),
                               "ambiguous_fraction": self.ambiguous_fraction, "seed": self.seed}
        if self.vocab is not None:
            for split, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set)):
                out[f"{split}_size"] = len(ds)
                out[f"{split}_words"] = int(sum(len(t) for t, _ in ds.examples))
            out["vocab_size"] = len(self.vocab)
            out["test_unk_rate"] = round(float(torch.cat([t for t, _ in self.test_set.examples]).eq(
                self.vocab.index(UNK)).double().mean()), 5)
            out["input_shape"] = [max(1, round(out["train_words"] / out["train_size"]))]
        return out

    def encode_sentence(self, text: str, where: str = "sentence") -> dict[str, Any]:
        """A sentence as the datamodule tokenises it: ``{"tokens": ids (n,), "words": [...]}``.
        Empty text and more than ``max_length`` words are refused."""
        if self.vocab is None:
            self.setup("predict")
        words = word_tokens(text)
        if not words:
            raise ValueError(f"{where}: no words to tag (an empty sentence)")
        if len(words) > self.max_length:
            raise ValueError(f"{where}: {len(words)} words; a sentence is at most max_length={self.max_length}")
        return {"tokens": torch.tensor(self.vocab.encode(words), dtype=torch.long), "words": words}

    def read_input(self, path: Path) -> tuple[dict, dict]:
        """A text file holding one sentence."""
        path = Path(path)
        text = read_utf8(path)
        example = self.encode_sentence(text, where=str(path))
        unknown = [w for w in example["words"] if w not in self.vocab]
        return example, ({"unknown_words": unknown} if unknown else {})
