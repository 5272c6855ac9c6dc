"""Person names from ``faker`` in several locales, for character-level language models
(the notes' dinosaur-name model, on people's names).

The names are the lists faker ships per locale (its person providers' first names or surnames),
read whole, lower-cased, de-duplicated, shuffled with ``split_seed`` and split into train / val /
test: a name is in one split only, so validation and test perplexities are measured on names the
model never saw.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import ZooDataModule
from datamodules.text.vocab import BOS, EOS, IGNORE_INDEX, PAD, UNK, Vocabulary, read_utf8, refuse_augment

DEFAULT_LOCALES = ("en_US", "en_GB", "fr_FR", "de_DE", "it_IT", "es_ES")
_KINDS = ("first", "last")


def person_provider(locale: str):
    """faker's person provider class of ``locale`` (falling back to its language's, as faker does)."""
    import importlib

    for name in (locale, locale.split("_")[0]):
        try:
            return importlib.import_module(f"faker.providers.person.{name}").Provider
        except ModuleNotFoundError:
            continue
    raise ValueError(f"faker has no person names for locale {locale!r} (e.g. en_US, fr_FR, de_DE)")


def locale_names(locales: Sequence[str], kind: str = "first", lowercase: bool = True) -> list[str]:
    """Every distinct first name (``kind="first"``) or surname (``"last"``) that faker ships for
    ``locales``, white space normalised, sorted. The lists are faker's data, read whole (no
    draws), so the result depends only on the locales and faker's version."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    names: set[str] = set()
    for locale in locales:
        provider = person_provider(locale)
        for name in getattr(provider, "first_names" if kind == "first" else "last_names", ()):
            name = " ".join(str(name).split())
            names.add(name.lower() if lowercase else name)
    return sorted(n for n in names if n)


class NameDataset(Dataset):
    """Each name as token ids ``[<s>, c_1, ..., c_n, </s>]`` (int64, (n + 2,))."""

    def __init__(self, names: list[str], vocab: Vocabulary):
        self.names = names
        bos, eos = vocab.index(BOS), vocab.index(EOS)
        self.ids = [torch.tensor([bos, *vocab.encode(n), eos], dtype=torch.long) for n in names]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.ids[i]


def collate_sequences(examples: list, pad_idx: int = 0) -> dict[str, Any]:
    """Whole sequences (1-D id tensors, each ``[<s>, ..., </s>]``) -> a padded next-token batch:
    ``tokens`` = each sequence but its last id, ``targets`` = each but its first, both (B, T)
    with ``T`` the longest input, ``tokens`` padded with ``pad_idx`` and ``targets`` with -100,
    and ``lengths`` (B,). Prompts (``read_input``'s dicts) -> ``{"prompts": [ids, ...]}``."""
    if examples and isinstance(examples[0], dict):
        return {"prompts": [e["prompt"] for e in examples]}
    lengths = torch.tensor([len(e) - 1 for e in examples], dtype=torch.long)
    t = int(lengths.max()) if len(examples) else 0
    tokens = torch.full((len(examples), t), pad_idx, dtype=torch.long)
    targets = torch.full((len(examples), t), IGNORE_INDEX, dtype=torch.long)
    for b, e in enumerate(examples):
        n = len(e) - 1
        tokens[b, :n] = e[:-1]
        targets[b, :n] = e[1:]
    return {"tokens": tokens, "targets": targets, "lengths": lengths}


def target_counts(sequences: list[torch.Tensor], vocab_size: int) -> list[int]:
    """How often each id is a next-token target (every id of a sequence but its first)."""
    if not sequences:
        return [0] * vocab_size
    return torch.bincount(torch.cat([s[1:] for s in sequences]), minlength=vocab_size).tolist()


class FakerNamesDataModule(ZooDataModule):
    """Character-level person names: every first name (or surname) that ``faker`` ships for the
    chosen locales (offline, deterministic), split into disjoint train / val / test names.

    Batch contract (train/val/test loaders): a dict with ``tokens`` int64 (B, T), each name as
    ``<s> c_1 ... c_n`` padded with ``<pad>`` (id 0); ``targets`` int64 (B, T), the next
    characters ``c_1 ... c_n </s>`` padded with -100 (never counted); ``lengths`` int64 (B,),
    ``n + 1`` per name. ``T`` is the longest name of the batch plus one.

    Vocabulary: ``<pad>``, ``<s>``, ``</s>``, ``<unk>``, then the training names' characters by
    falling count. A character of a val/test name that no training name has becomes ``<unk>``;
    a prompt (``read_input``) with such a character is refused with an error naming it.

    Your own file (``zoo-predict``): its first line is the beginning of a name (empty: sample
    names from scratch); it becomes the prompt ``<s> c_1 ... c_k``, which the language-model task
    continues.

    Args:
        batch_size, eval_batch_size, num_workers: as :class:`~datamodules.base.ZooDataModule`.
        locales: faker locales whose names are used.
        kind: ``first`` (first names) or ``last`` (surnames).
        lowercase: lower-case the names (a smaller vocabulary).
        max_length: longest name kept, in characters (longer names are dropped), and longest prompt.
        val_fraction, test_fraction: shares of the distinct names held out.
        split_seed: seeds the shuffle before splitting.
        augment: must be null (the ``augment`` config group fills it in every data config).
    """

    name = "faker_names"

    def __init__(self, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0,
                 locales: Sequence[str] = DEFAULT_LOCALES, kind: str = "first", lowercase: bool = True,
                 max_length: int = 24, val_fraction: float = 0.1, test_fraction: float = 0.1, split_seed: int = 0,
                 augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        refuse_augment(type(self).__name__, augment)
        where = type(self).__name__
        if kind not in _KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(_KINDS)}, got {kind!r}")
        if not locales or isinstance(locales, str):
            raise ValueError(f"{where}: locales must be a non-empty list of faker locales, got {locales!r}")
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"{where}: max_length must be a positive integer, got {max_length!r}")
        for arg, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 < value < 1:
                raise ValueError(f"{where}: {arg} must be in (0, 1), got {value!r}")
        if val_fraction + test_fraction >= 1:
            raise ValueError(f"{where}: val_fraction + test_fraction must be below 1, got "
                             f"{val_fraction} + {test_fraction}")
        self.locales, self.kind = list(locales), kind
        self.lowercase, self.max_length = lowercase, int(max_length)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.vocab: Vocabulary | None = None
        self.splits: dict[str, list[str]] = {}

    def collate(self, examples: list) -> dict[str, Any]:
        return collate_sequences(examples, 0)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        names = [n for n in locale_names(self.locales, self.kind, self.lowercase) if len(n) <= self.max_length]
        if len(names) < 10:
            raise ValueError(f"{type(self).__name__}: only {len(names)} distinct names in locales {self.locales}")
        order = np.random.default_rng(self.split_seed).permutation(len(names))
        n_val = max(1, round(self.val_fraction * len(names)))
        n_test = max(1, round(self.test_fraction * len(names)))
        shuffled = [names[i] for i in order]
        self.splits = {"val": shuffled[:n_val], "test": shuffled[n_val:n_val + n_test],
                       "train": shuffled[n_val + n_test:]}
        chars = Counter(c for n in self.splits["train"] for c in n)
        self.vocab = Vocabulary.from_counts(chars, specials=(PAD, BOS, EOS, UNK), unk=UNK)
        self.train_set = NameDataset(self.splits["train"], self.vocab)
        self.val_set = NameDataset(self.splits["val"], self.vocab)
        self.test_set = NameDataset(self.splits["test"], self.vocab)

    def data_facts(self) -> dict[str, Any]:
        """The vocabulary (``vocab``, ``vocab_size``, the special ids), how decoded tokens join
        (``token_join``: characters, no separator), the training targets' counts (the unigram
        baseline, ``unigram_counts``) and ``max_length``. Empty until ``setup``."""
        if self.vocab is None:
            return {"vocab_size": None, "vocab": None}
        v = self.vocab
        return {"vocab_size": len(v), "vocab": list(v.itos), "pad_idx": v.index(PAD), "bos_idx": v.index(BOS),
                "eos_idx": v.index(EOS), "unk_idx": v.index(UNK), "token_join": "",
                "unigram_counts": target_counts(self.train_set.ids, len(v)), "max_length": self.max_length}

    def describe(self) -> dict[str, Any]:
        """Split sizes (names and target characters), the settings, and the mean name
        length as ``input_shape`` (the FLOPs of one typical name)."""
        out: dict[str, Any] = {"dataset": self.name, "locales": self.locales, "kind": self.kind,
                               "lowercase": self.lowercase, "split_seed": self.split_seed}
        if self.vocab is not None:
            for split, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set)):
                out[f"{split}_size"] = len(ds)
                out[f"{split}_tokens"] = int(sum(len(s) - 1 for s in ds.ids))
            out["vocab_size"] = len(self.vocab)
            mean = out["train_tokens"] / max(1, out["train_size"])
            out["input_shape"] = [max(1, round(mean))]
        return out

    def encode_prompt(self, text: str, where: str = "prompt") -> torch.Tensor:
        """``<s>`` and the characters of ``text`` (lower-cased as the names are), as ids (1 + k,).
        A character outside the vocabulary, or a prompt longer than ``max_length``, is refused."""
        if self.vocab is None:
            self.setup("predict")
        text = " ".join(text.split())
        text = text.lower() if self.lowercase else text
        if len(text) > self.max_length:
            raise ValueError(f"{where}: the prompt has {len(text)} characters; names are at most "
                             f"max_length={self.max_length}")
        ids = self.vocab.encode(text, where=where, allow_unknown=False)
        return torch.tensor([self.vocab.index(BOS), *ids], dtype=torch.long)

    def read_input(self, path: Path) -> tuple[dict, dict]:
        """The first line of a text file as the beginning of a name (empty: from scratch)."""
        path = Path(path)
        text = read_utf8(path)
        line = text.splitlines()[0] if text.strip() else ""
        prompt = self.encode_prompt(line, where=str(path))
        return {"prompt": prompt}, {}
