"""Word-level language-model corpora as contiguous streams cut into BPTT windows.

* :class:`LeeCorpusDataModule`: the news text that ``gensim`` ships in its test data
  (``gensim/test/test_data/lee_background.cor``: 300 Australian news stories, about 60,000
  words), offline; documents are shuffled with a seed and split 80/10/10.
* :class:`PennTreebankDataModule`: Mikolov's Penn Treebank files as distributed with most LSTM
  language-model code (``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``: one sentence per
  line, already lower-cased, numbers as ``N``, rare words as ``<unk>``, 10,000 words).
* :class:`WikiText2DataModule`: WikiText-2 (Merity et al. 2016), ``wiki.train.tokens``,
  ``wiki.valid.tokens``, ``wiki.test.tokens`` (one paragraph or heading per line, blank lines
  between).

Each split is one stream of ids: its lines' tokens, each line followed by ``<eos>``. The stream
is cut into ``B`` rows of equal length (the tail that does not fill a row is dropped, as in
Zaremba et al.'s code), and the rows are read ``bptt`` steps at a time: window ``k`` holds
columns ``k*bptt .. (k+1)*bptt`` as inputs and the same shifted by one as targets. Consecutive
windows continue each row, so a task may carry the recurrent state from one window to the next
(truncated backpropagation through time).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import DataFileError, DatasetNotFoundError, ZooDataModule
from datamodules.text.vocab import UNK, Vocabulary, read_utf8, refuse_augment, word_tokens

EOS_WORD = "<eos>"


class BPTTWindows(Dataset):
    """A stream of ids (N,) as ``rows`` rows read ``bptt`` steps at a time.

    Item ``k``: ``{"tokens": (rows, t), "targets": (rows, t), "position": k}`` with
    ``t = bptt`` except in the last window (the rest of each row). ``targets`` are ``tokens``
    shifted by one step along each row. ``tokens_counted`` = ``rows * (columns - 1)``, every
    target of every window."""

    def __init__(self, stream: torch.Tensor, rows: int, bptt: int):
        if int(rows) < 1 or int(bptt) < 1:
            raise ValueError(f"rows and bptt must be positive, got {rows}, {bptt}")
        columns = len(stream) // int(rows)
        if columns < 2:
            raise ValueError(f"a stream of {len(stream)} tokens is too short for {rows} rows of at least 2 tokens")
        self.data = stream[: columns * rows].view(rows, columns)  # (rows, columns): row b is one segment
        self.bptt = int(bptt)
        self.tokens_counted = int(rows) * (columns - 1)

    def __len__(self) -> int:
        return -(-(self.data.shape[1] - 1) // self.bptt)

    def __getitem__(self, k: int) -> dict[str, Any]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        start = k * self.bptt
        t = min(self.bptt, self.data.shape[1] - 1 - start)
        return {"tokens": self.data[:, start:start + t], "targets": self.data[:, start + 1:start + 1 + t],
                "position": k}


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such file ({what})")
    text = read_utf8(path, what)
    if not text.strip():
        raise DataFileError(f"{path}: the file is empty ({what}); download it again")
    return text


class WordLMDataModule(ZooDataModule):
    """Base of the word-level corpora: subclasses read their splits (``read_splits``).

    Batch contract (train/val/test loaders): a dict with ``tokens`` int64 (B, t), ``targets``
    int64 (B, t) (the next word of each position), and ``position`` (an int, the window's index:
    window ``k + 1`` continues every row of window ``k``). ``B`` = ``batch_size`` for training and
    ``eval_batch_size`` for val/test, ``t`` = ``bptt`` except in the last window. Batches come
    in order (never shuffled), so that a task may carry its recurrent state across windows.
    Every target is a real word: there is no padding.

    Your own file (``zoo-predict``): a text file whose words start a sentence to continue (empty:
    start after an ``<eos>``); words outside the vocabulary become ``<unk>``; at most
    ``max_prompt_length`` words.

    Args:
        batch_size: rows of the training stream (B); eval_batch_size: rows of val/test.
        bptt: steps per window (T).
        min_count: a training word seen fewer times becomes ``<unk>``; max_vocab: at most this
            many words (specials included), the most frequent.
        lowercase: lower-case the text (the Lee corpus; PTB is lower-cased already).
        max_prompt_length: the longest prompt ``read_input`` takes.
        augment: must be null (the ``augment`` config group fills it in every data config).
    """

    name = "word_corpus"
    specials: tuple[str, ...] = (UNK, EOS_WORD)

    def __init__(self, batch_size: int = 20, eval_batch_size: int | None = 10, bptt: int = 35,
                 min_count: int = 1, max_vocab: int | None = None, lowercase: bool = False,
                 max_prompt_length: int = 200, num_workers: int = 0, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        refuse_augment(type(self).__name__, augment)
        where = type(self).__name__
        for arg, value in (("batch_size", batch_size), ("bptt", bptt), ("min_count", min_count),
                           ("max_prompt_length", max_prompt_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}: {arg} must be a positive integer, got {value!r}")
        self.bptt, self.min_count, self.max_vocab = bptt, min_count, max_vocab
        self.lowercase, self.max_prompt_length = lowercase, max_prompt_length
        self.vocab: Vocabulary | None = None
        self.streams: dict[str, torch.Tensor] = {}
        self.unknown_rate: dict[str, float] = {}

    # -- what a corpus provides ---------------------------------------------------------------------
    def read_splits(self) -> dict[str, list[list[str]]]:
        """``{"train": lines, "val": lines, "test": lines}``, each line a list of tokens."""
        raise NotImplementedError

    def tokenize(self, text: str) -> list[str]:
        """One line of the user's text as tokens, as the corpus was tokenised."""
        return text.lower().split() if self.lowercase else text.split()

    # -- setup ----------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        splits = self.read_splits()
        counts = Counter(t for line in splits["train"] for t in line)
        counts[EOS_WORD] += len(splits["train"])
        self.vocab = Vocabulary.from_counts(counts, specials=self.specials, min_count=self.min_count,
                                            max_size=self.max_vocab, unk=UNK)
        unk = self.vocab.index(UNK)
        for split, lines in splits.items():
            ids: list[int] = []
            for line in lines:
                ids.extend(self.vocab.encode(line))
                ids.append(self.vocab.index(EOS_WORD))
            stream = torch.tensor(ids, dtype=torch.long)
            self.streams[split] = stream
            self.unknown_rate[split] = float((stream == unk).double().mean()) if len(stream) else 0.0
        self.train_set = BPTTWindows(self.streams["train"], self.batch_size, self.bptt)
        self.val_set = BPTTWindows(self.streams["val"], self.eval_batch_size, self.bptt)
        self.test_set = BPTTWindows(self.streams["test"], self.eval_batch_size, self.bptt)

    def _loader(self, ds, shuffle: bool, batch_size: int) -> DataLoader:
        # the windows are batches already, read in order (the state carries from one to the next)
        return DataLoader(ds, batch_size=None, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def collate(self, examples: list) -> dict[str, Any]:
        """Prompts (``read_input``'s) -> ``{"prompts": [ids, ...]}``."""
        return {"prompts": [e["prompt"] for e in examples]}

    def data_facts(self) -> dict[str, Any]:
        """The vocabulary (``vocab``, ``vocab_size``, ``unk_idx``, ``eos_idx``), how decoded words
        join (``token_join``: a space), and the training targets' counts (``unigram_counts``)."""
        if self.vocab is None:
            return {"vocab_size": None, "vocab": None}
        v = self.vocab
        train = self.train_set.data[:, 1:].reshape(-1)  # every training target
        return {"vocab_size": len(v), "vocab": list(v.itos), "unk_idx": v.index(UNK), "eos_idx": v.index(EOS_WORD),
                "bos_idx": None, "pad_idx": None, "token_join": " ",
                "unigram_counts": torch.bincount(train, minlength=len(v)).tolist()}

    def describe(self) -> dict[str, Any]:
        """Tokens per split, the vocabulary, the share of ``<unk>``, the stream layout."""
        out: dict[str, Any] = {"dataset": self.name, "bptt": self.bptt, "min_count": self.min_count}
        if self.vocab is not None:
            for split, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set)):
                out[f"{split}_tokens"] = len(self.streams[split])
                out[f"{split}_tokens_scored"] = ds.tokens_counted
                out[f"{split}_unk_rate"] = round(self.unknown_rate[split], 5)
            out["test_size"] = out["test_tokens_scored"]
            out["vocab_size"] = len(self.vocab)
            out["input_shape"] = [self.bptt]
        return out

    def read_input(self, path: Path) -> tuple[dict, dict]:
        """A text file as a prompt: ``<eos>`` then its words (each line's words, then ``<eos>``
        between lines)."""
        if self.vocab is None:
            self.setup("predict")
        path = Path(path)
        text = read_utf8(path)
        words: list[str] = []
        for line in text.splitlines():
            toks = self.tokenize(line)
            if toks:
                words.extend(toks + [EOS_WORD])
        words = words[:-1]  # continue the last line, not a new one
        if len(words) > self.max_prompt_length:
            raise ValueError(f"{path}: {len(words)} words; a prompt is at most max_prompt_length="
                             f"{self.max_prompt_length}")
        ids = [self.vocab.index(EOS_WORD), *self.vocab.encode(words)]
        unknown = [w for w in words if w not in self.vocab]
        return {"prompt": torch.tensor(ids, dtype=torch.long)}, ({"unknown_words": unknown} if unknown else {})


def lee_corpus_path() -> Path:
    """Where gensim keeps ``lee_background.cor``."""
    import gensim

    return Path(os.path.dirname(gensim.__file__)) / "test" / "test_data" / "lee_background.cor"


class LeeCorpusDataModule(WordLMDataModule):
    """The Lee news corpus shipped by gensim (``lee_background.cor``, 300 stories), tokenised
    (words, numbers and punctuation marks; ``datamodules.text.vocab.word_tokens``), lower-cased
    and cut into sentences (each followed by ``<eos>``). The stories are shuffled with
    ``split_seed`` and split by story (``val_fraction``, ``test_fraction``); the vocabulary is the
    training stories' words seen at least ``min_count`` times, the rest ``<unk>``.
    Batch contract: :class:`WordLMDataModule`'s."""

    name = "lee_corpus"

    def __init__(self, batch_size: int = 20, eval_batch_size: int | None = 10, bptt: int = 35,
                 min_count: int = 2, max_vocab: int | None = None, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, split_seed: int = 0, max_prompt_length: int = 200,
                 num_workers: int = 0, path: str | None = None, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, bptt, min_count, max_vocab, True, max_prompt_length,
                         num_workers, augment)
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(f"{type(self).__name__}: val_fraction and test_fraction must be in (0, 1) with a sum "
                             f"below 1, got {val_fraction}, {test_fraction}")
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.path = path

    def tokenize(self, text: str) -> list[str]:
        return word_tokens(text, lowercase=True)

    @staticmethod
    def sentences(story: str) -> list[str]:
        """A story cut after ``.``, ``!`` or ``?`` followed by a space and a capital or a quote."""
        import re

        return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", story.strip()) if s]

    def read_splits(self) -> dict[str, list[list[str]]]:
        path = Path(self.path) if self.path else lee_corpus_path()
        stories = [s for s in _read_text(path, "gensim's Lee corpus").splitlines() if s.strip()]
        order = np.random.default_rng(self.split_seed).permutation(len(stories))
        n_val = max(1, round(self.val_fraction * len(stories)))
        n_test = max(1, round(self.test_fraction * len(stories)))
        parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
        return {split: [self.tokenize(s) for i in sorted(idx) for s in self.sentences(stories[i])]
                for split, idx in parts.items()}


class _FilesCorpus(WordLMDataModule):
    """A corpus of three files in ``root``: one line per sentence or paragraph, tokens separated
    by spaces."""

    files: dict[str, str] = {}
    source = ""

    def __init__(self, root: str = "data", batch_size: int = 20, eval_batch_size: int | None = 10,
                 bptt: int = 35, min_count: int = 1, max_vocab: int | None = None, lowercase: bool = False,
                 max_prompt_length: int = 200, num_workers: int = 0, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, bptt, min_count, max_vocab, lowercase, max_prompt_length,
                         num_workers, augment)
        self.root = Path(root)

    def folder(self) -> Path:
        """``root``, or the corpus's usual sub-folder of it when the files are there."""
        for sub in (self.root, *(self.root / d for d in self.subfolders)):
            if (sub / self.files["train"]).is_file():
                return sub
        return self.root

    subfolders: tuple[str, ...] = ()

    def prepare_data(self) -> None:
        folder = self.folder()
        missing = [name for name in self.files.values() if not (folder / name).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{type(self).__name__}: {', '.join(str(folder / m) for m in missing)} not found. Put "
                f"{', '.join(self.files.values())} in data.root ({self.source}); nothing is downloaded")

    def keep_line(self, line: str) -> bool:
        return bool(line.strip())

    def read_splits(self) -> dict[str, list[list[str]]]:
        folder = self.folder()
        out = {}
        for split, name in self.files.items():
            text = _read_text(folder / name, f"the {split} split of {self.name}")
            out[split] = [self.tokenize(line) for line in text.splitlines() if self.keep_line(line)]
        return out


class PennTreebankDataModule(_FilesCorpus):
    """Penn Treebank, Mikolov's preprocessing: ``ptb.train.txt`` (929k words), ``ptb.valid.txt``
    (73k), ``ptb.test.txt`` (82k) in ``root`` (or ``root/ptb``, ``root/penn``). One sentence per
    line, words separated by spaces, ``<unk>`` already in the text (10,000 words in all: the
    vocabulary is every training word). Batch contract: :class:`WordLMDataModule`'s."""

    name = "penn_treebank"
    files = {"train": "ptb.train.txt", "val": "ptb.valid.txt", "test": "ptb.test.txt"}
    subfolders = ("ptb", "penn", "simple-examples/data")
    source = "e.g. the data/ folder of Mikolov's simple-examples.tgz, or Zaremba et al.'s lstm repository"


class WikiText2DataModule(_FilesCorpus):
    """WikiText-2 (Merity et al. 2016, the tokenised version with ``<unk>``): ``wiki.train.tokens``
    (2.1M words), ``wiki.valid.tokens``, ``wiki.test.tokens`` in ``root`` (or ``root/wikitext-2``).
    Blank lines are skipped; headings (`` = Title = ``) are kept as tokens, as is usual. Batch
    contract: :class:`WordLMDataModule`'s."""

    name = "wikitext2"
    files = {"train": "wiki.train.tokens", "val": "wiki.valid.tokens", "test": "wiki.test.tokens"}
    subfolders = ("wikitext-2",)
    source = "from wikitext-2-v1.zip (Salesforce research)"
