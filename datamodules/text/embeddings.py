"""Corpora for word embeddings: skip-gram pairs with negative samples (word2vec, Mikolov et al.
2013) and weighted co-occurrence counts (GloVe, Pennington et al. 2014).

**The contract: the embeddings are trained on the whole corpus.** Word embeddings have no
held-out split: they are judged intrinsically, on word-similarity and analogy sets that the task
reads (WordSim-353, SimLex-999, the Google analogy questions; ``zoo.text_eval``). So the training
loader covers every sentence of the corpus, and the validation and test loaders each give one
fixed *probe* batch drawn from the same corpus (its loss is a training-fit figure, not a
generalisation one); the task scores the embedding matrix against the evaluation sets at every
validation and test epoch.

Corpora (``corpus``), all shipped in ``gensim/test/test_data`` (offline):

* ``enwiki`` (default): ``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``,
  206 English Wikipedia articles with their markup stripped by gensim's ``filter_wiki``; about
  480k tokens, 9,566 words seen at least 5 times. It covers 241 of WordSim-353's 353 pairs,
  505 of SimLex-999's 999 and 3,822 of the 19,544 analogy questions (min_count 5).
* ``lee``: ``lee_background.cor``, 300 news stories, about 60k tokens; only 60 WordSim-353
  pairs, 95 SimLex pairs and 146 analogy questions are covered at min_count 5 -- too few for a
  meaningful correlation, kept for quick runs.
* ``enwiki+lee``: both.
* a path: a UTF-8 text file, one sentence (or paragraph) per line.

(``head500.noblanks.cor`` is stemmed, which breaks the evaluation sets' words, and
``crime-and-punishment.txt`` is Russian: neither is offered.)

Tokens: lower-cased words of letters and digits (inner apostrophes kept); punctuation dropped.
A line is a sentence: windows never cross lines.

Vocabulary: the words seen at least ``min_count`` times, most frequent first (ties:
alphabetical), ids 0..V-1; other words are dropped from the text before windows are taken (as
word2vec does), so they neither count nor take a window slot.

Skip-gram batches (:class:`SkipGramDataModule`), redrawn every epoch from a generator seeded with
``(seed, epoch)``: frequent-word subsampling (each occurrence of a word of frequency ``f`` kept
with probability ``(sqrt(f / (s N)) + 1) (s N) / f``, the word2vec code's form of Mikolov et al.
2013's ``1 - sqrt(t/f)``; ``s = sample``, ``N`` tokens), then for each kept centre word a window
``b`` drawn uniformly in ``1..window`` (``dynamic_window``; else ``b = window``) and every kept word
within ``b`` positions of it in the same sentence as a context, then ``negatives`` words per pair
drawn from the unigram distribution raised to 3/4. The pairs are shuffled and cut into batches of
``batch_size``. An epoch always has the number of batches the first epoch had: a later epoch's
pairs (a few tenths of a percent more or fewer, as subsampling and windows are random) are
truncated, or wrapped around, to that count.

Batch contract (skip-gram, train/val/test): a dict with ``center`` int64 (B,), ``context``
int64 (B,) and ``negatives`` int64 (B, K).

GloVe batches (:class:`CooccurrenceDataModule`): the co-occurrence counts ``X_ij`` summed over the
corpus with weight ``1/d`` for words ``d <= window`` positions apart in one sentence, both
directions (symmetric, as GloVe's reference code by default), no subsampling; every non-zero entry is one
example, shuffled every epoch. Batch contract: a dict with ``i`` int64 (B,), ``j`` int64 (B,)
and ``x`` float32 (B,) (the counts).

Every random draw comes from numpy generators seeded with ``seed`` (None: a seed drawn from
torch's global generator at ``setup``, which ``zoo-train`` seeds with the run's ``seed``).
"""
from __future__ import annotations

import bz2
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import DataFileError, DatasetNotFoundError, ZooDataModule
from datamodules.text.vocab import Vocabulary, read_utf8, refuse_augment

__all__ = ["SkipGramDataModule", "CooccurrenceDataModule", "EmbeddingCorpusDataModule", "corpus_sentences",
           "embedding_tokens", "gensim_test_data", "subsample_keep_probability", "skipgram_pairs",
           "unigram_table", "cooccurrence_counts", "CORPORA"]

ENWIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
CORPORA = {"enwiki": (ENWIKI_FILE,), "lee": ("lee_background.cor",),
           "enwiki+lee": (ENWIKI_FILE, "lee_background.cor")}

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def embedding_tokens(text: str) -> list[str]:
    """Lower-cased words (letters and digits, inner apostrophes kept); punctuation dropped:
    ``"The cat's 2 mats."`` -> ``["the", "cat's", "2", "mats"]``."""
    return _TOKEN.findall(text.lower())


def gensim_test_data() -> Path:
    """gensim's ``test/test_data`` folder (corpora and the evaluation sets)."""
    import gensim

    return Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"


def _wiki_lines(path: Path) -> list[str]:
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    try:
        with bz2.open(path, "rb") as fh:
            pages = [filter_wiki(text) for _title, text, _pid in extract_pages(fh)]
    except (OSError, EOFError) as err:
        raise DataFileError(f"{path}: not a readable bz2-compressed Wikipedia dump ({err}); reinstall gensim") from None
    return [line for page in pages for line in page.splitlines()]


def corpus_sentences(corpus: str) -> list[list[str]]:
    """The token lists (one per non-empty line) of a named corpus (``CORPORA``) or a text file."""
    if corpus in CORPORA:
        paths = [gensim_test_data() / name for name in CORPORA[corpus]]
    else:
        paths = [Path(corpus)]
        if not paths[0].is_file():
            raise DatasetNotFoundError(f"corpus {corpus!r}: no such file, and not one of the named corpora "
                                       f"{sorted(CORPORA)}; set data.corpus to a name or to a UTF-8 text file")
    sentences: list[list[str]] = []
    for path in paths:
        if not path.is_file():
            raise DatasetNotFoundError(f"{path}: no such file (gensim's test data); reinstall gensim")
        lines = _wiki_lines(path) if path.suffix == ".bz2" else read_utf8(path, "a corpus").splitlines()
        sentences.extend(t for t in (embedding_tokens(line) for line in lines) if t)
    if not sentences:
        raise DataFileError(f"corpus {corpus!r}: no words in {', '.join(map(str, paths))}; give a non-empty text file")
    return sentences


# -- the sampling pieces (pure functions of arrays and a generator) -------------------------------------
def subsample_keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """Per word, the probability that one occurrence is kept: ``(sqrt(c / (sN)) + 1) (sN) / c``
    clipped to 1 (``c`` the word's count, ``N`` the total; ``sample <= 0``: keep everything)."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def unigram_table(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """The cumulative noise distribution ``P(w) ~ count(w)^power`` (V,), for ``searchsorted``."""
    p = np.asarray(counts, dtype=np.float64) ** power
    cdf = np.cumsum(p / p.sum())
    cdf[-1] = 1.0
    return cdf


def draw_negatives(cdf: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Word ids drawn from the distribution whose cumulative table is ``cdf``."""
    return np.searchsorted(cdf, rng.random(shape), side="right").astype(np.int64)


def skipgram_pairs(ids: np.ndarray, sentence: np.ndarray, window: int, rng: np.random.Generator | None,
                   dynamic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(center, context)`` for a stream of word ids (N,) with its sentence numbers (N,): every
    pair of positions ``p`` (centre), ``p + d`` (context) in one sentence with
    ``0 < |d| <= b_p``, ``b_p`` the centre's window (uniform in ``1..window`` when ``dynamic``)."""
    n = len(ids)
    if dynamic:
        b = rng.integers(1, window + 1, size=n)
    else:
        b = np.full(n, window)
    centers, contexts = [], []
    for d in range(1, window + 1):
        if d >= n:
            break
        same = sentence[:-d] == sentence[d:]  # positions p, p + d in one sentence
        right = same & (b[:-d] >= d)  # centre p, context p + d
        left = same & (b[d:] >= d)  # centre p + d, context p
        p = np.nonzero(right)[0]
        centers.append(ids[p]), contexts.append(ids[p + d])
        q = np.nonzero(left)[0]
        centers.append(ids[q + d]), contexts.append(ids[q])
    if not centers:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(centers).astype(np.int64), np.concatenate(contexts).astype(np.int64)


def cooccurrence_counts(ids: np.ndarray, sentence: np.ndarray, window: int, vocab_size: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GloVe's ``X``: ``X_ij = sum over occurrences of j within window positions of i (same
    sentence) of 1/distance``, symmetric. Returns the non-zero entries ``(i, j, x)`` sorted by
    ``(i, j)``."""
    keys, weights = [], []
    n = len(ids)
    for d in range(1, window + 1):
        if d >= n:
            break
        p = np.nonzero(sentence[:-d] == sentence[d:])[0]
        a, b = ids[p].astype(np.int64), ids[p + d].astype(np.int64)
        keys += [a * vocab_size + b, b * vocab_size + a]  # both directions
        weights += [np.full(2 * len(p), 1.0 / d)]
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    key = np.concatenate(keys)
    uniq, inverse = np.unique(key, return_inverse=True)
    x = np.bincount(inverse, weights=np.concatenate(weights), minlength=len(uniq))
    return uniq // vocab_size, uniq % vocab_size, x


# -- datasets: each item is a whole batch -------------------------------------------------------------
class _EpochBatches(Dataset):
    """Item ``k`` is batch ``k`` of the current epoch; reading item 0 starts a new epoch (fresh
    draws from ``make(epoch)``). The number of batches is fixed by the first epoch."""

    def __init__(self, make, batch_size: int):
        self.make, self.batch_size = make, int(batch_size)
        self.epoch = 0
        self.arrays = make(0)
        self.examples = len(next(iter(self.arrays.values())))
        if self.examples == 0:
            raise DataFileError("the corpus gives no training examples (no two vocabulary words in one sentence); "
                                "lower data.min_count or give a larger corpus")
        self.length = -(-self.examples // self.batch_size)
        self._fresh = True

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not 0 <= k < self.length:
            raise IndexError(k)
        if k == 0:
            if not self._fresh:
                self.epoch += 1
                arrays = self.make(self.epoch)
                n = len(next(iter(arrays.values())))
                take = np.arange(self.examples) % n  # truncate, or wrap around, to the first epoch's count
                self.arrays = {key: v[take] for key, v in arrays.items()}
            self._fresh = False
        sl = slice(k * self.batch_size, (k + 1) * self.batch_size)
        return {key: torch.from_numpy(np.ascontiguousarray(v[sl])) for key, v in self.arrays.items()}


class _FixedBatch(Dataset):
    """One fixed batch (the probe of the validation and test stages)."""

    def __init__(self, batch: dict[str, torch.Tensor]):
        self.batch = batch

    def __len__(self) -> int:
        return 1

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if k != 0:
            raise IndexError(k)
        return self.batch


class EmbeddingCorpusDataModule(ZooDataModule):
    """Base of the embedding corpora: reads the corpus, builds the vocabulary and the id stream.
    Subclasses build the batches (see the module docstring for the contract).

    Args:
        corpus: ``enwiki``, ``lee``, ``enwiki+lee`` (gensim's test data) or a text file's path.
        min_count: words seen fewer times are dropped from the text.
        max_vocab: at most this many words (the most frequent), or null.
        batch_size: examples per training batch; probe_size: examples in the probe batch.
        seed: the generators' seed (null: drawn from torch's global generator at setup).
        augment: must be null (the ``augment`` group fills it in every data config).
    """

    name = "embedding_corpus"

    def __init__(self, corpus: str = "enwiki", min_count: int = 5, max_vocab: int | None = None,
                 batch_size: int = 1024, probe_size: int = 4096, seed: int | None = None, num_workers: int = 0,
                 augment: Any = None):
        super().__init__(batch_size, probe_size, num_workers)
        refuse_augment(type(self).__name__, augment)
        where = type(self).__name__
        for arg, value in (("min_count", min_count), ("batch_size", batch_size), ("probe_size", probe_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}: {arg} must be a positive integer, got {value!r}")
        self.corpus, self.min_count, self.max_vocab = str(corpus), min_count, max_vocab
        self.probe_size, self.seed = probe_size, seed
        self.vocab: Vocabulary | None = None
        self.counts: np.ndarray | None = None
        self.ids: np.ndarray | None = None
        self.sentence: np.ndarray | None = None
        self.raw_tokens = 0

    def _read(self) -> None:
        sentences = corpus_sentences(self.corpus)
        counter = Counter(t for s in sentences for t in s)
        self.raw_tokens = sum(counter.values())
        self.vocab = Vocabulary.from_counts(counter, min_count=self.min_count, max_size=self.max_vocab)
        if len(self.vocab) < 2:
            raise DataFileError(f"corpus {self.corpus!r}: fewer than 2 words are seen min_count={self.min_count} "
                                "times; lower data.min_count or give a larger corpus")
        self.counts = np.array([counter[t] for t in self.vocab.itos], dtype=np.int64)
        stoi = self.vocab.stoi
        ids, sent = [], []
        for k, s in enumerate(sentences):
            kept = [stoi[t] for t in s if t in stoi]
            ids.extend(kept)
            sent.extend([k] * len(kept))
        self.ids = np.asarray(ids, dtype=np.int64)
        self.sentence = np.asarray(sent, dtype=np.int64)
        if self.seed is None:
            self.seed = int(torch.randint(0, 2**31 - 1, (1,)).item())

    def _loader(self, ds, shuffle: bool, batch_size: int) -> DataLoader:
        # the items are batches already, read in order (item 0 starts an epoch's fresh draws)
        return DataLoader(ds, batch_size=None, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def data_facts(self) -> dict[str, Any]:
        """The vocabulary (``vocab``, ``vocab_size``) and each word's count (``word_counts``)."""
        if self.vocab is None:
            return {"vocab_size": None, "vocab": None}
        return {"vocab_size": len(self.vocab), "vocab": list(self.vocab.itos), "word_counts": self.counts.tolist()}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dataset": self.name, "corpus": self.corpus, "min_count": self.min_count}
        if self.vocab is not None:
            out.update(corpus_tokens=self.raw_tokens, tokens_in_vocab=int(len(self.ids)), vocab_size=len(self.vocab),
                       train_examples=self.train_set.examples, train_batches=len(self.train_set),
                       seed=self.seed)
        return out


class SkipGramDataModule(EmbeddingCorpusDataModule):
    """Skip-gram pairs with negative samples (word2vec). Batch contract: ``center`` int64 (B,),
    ``context`` int64 (B,), ``negatives`` int64 (B, K); see the module docstring.

    Args (beside the base's): window (the largest distance), dynamic_window (draw each centre's
    window in ``1..window``), negatives (K), sample (the subsampling threshold ``s``; 0: off),
    noise_power (3/4: the unigram distribution's exponent).
    """

    name = "skipgram_corpus"

    def __init__(self, corpus: str = "enwiki", min_count: int = 5, max_vocab: int | None = None, window: int = 5,
                 dynamic_window: bool = True, negatives: int = 5, sample: float = 1e-3, noise_power: float = 0.75,
                 batch_size: int = 1024, probe_size: int = 4096, seed: int | None = None, num_workers: int = 0,
                 augment: Any = None):
        super().__init__(corpus, min_count, max_vocab, batch_size, probe_size, seed, num_workers, augment)
        for arg, value in (("window", window), ("negatives", negatives)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{type(self).__name__}: {arg} must be a positive integer, got {value!r}")
        if not sample >= 0:
            raise ValueError(f"{type(self).__name__}: sample must be >= 0 (0: no subsampling), got {sample!r}")
        self.window, self.dynamic_window, self.negatives = window, bool(dynamic_window), negatives
        self.sample, self.noise_power = float(sample), float(noise_power)
        self.noise_cdf: np.ndarray | None = None

    def epoch_examples(self, epoch: int) -> dict[str, np.ndarray]:
        """The shuffled pairs and their negatives of one epoch (a pure function of seed and epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        keep = rng.random(len(self.ids)) < self.keep_prob[self.ids]
        center, context = skipgram_pairs(self.ids[keep], self.sentence[keep], self.window, rng, self.dynamic_window)
        order = rng.permutation(len(center))
        center, context = center[order], context[order]
        negatives = draw_negatives(self.noise_cdf, (len(center), self.negatives), rng)
        return {"center": center, "context": context, "negatives": negatives}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._read()
        self.keep_prob = subsample_keep_probability(self.counts, self.sample)
        self.noise_cdf = unigram_table(self.counts, self.noise_power)
        self.train_set = _EpochBatches(self.epoch_examples, self.batch_size)
        probe = self.epoch_examples(-1 % 2**32)  # draws of their own, never a training epoch's
        probe = {k: torch.from_numpy(v[: self.probe_size].copy()) for k, v in probe.items()}
        self.val_set = self.test_set = _FixedBatch(probe)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "window": self.window, "negatives": self.negatives, "sample": self.sample}


class CooccurrenceDataModule(EmbeddingCorpusDataModule):
    """GloVe's weighted co-occurrence counts. Batch contract: ``i`` int64 (B,), ``j`` int64
    (B,), ``x`` float32 (B,); see the module docstring.

    Args (beside the base's): window (the largest distance counted, weight 1/distance).
    """

    name = "cooccurrence_corpus"

    def __init__(self, corpus: str = "enwiki", min_count: int = 5, max_vocab: int | None = None, window: int = 10,
                 batch_size: int = 4096, probe_size: int = 4096, seed: int | None = None, num_workers: int = 0,
                 augment: Any = None):
        super().__init__(corpus, min_count, max_vocab, batch_size, probe_size, seed, num_workers, augment)
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"{type(self).__name__}: window must be a positive integer, got {window!r}")
        self.window = window
        self.cooc: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def epoch_examples(self, epoch: int) -> dict[str, np.ndarray]:
        """Every non-zero entry of X, shuffled (a pure function of seed and epoch)."""
        i, j, x = self.cooc
        order = np.random.default_rng([self.seed, epoch]).permutation(len(i))
        return {"i": i[order], "j": j[order], "x": x[order].astype(np.float32)}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._read()
        self.cooc = cooccurrence_counts(self.ids, self.sentence, self.window, len(self.vocab))
        self.train_set = _EpochBatches(self.epoch_examples, self.batch_size)
        probe = self.epoch_examples(-1 % 2**32)
        probe = {k: torch.from_numpy(v[: self.probe_size].copy()) for k, v in probe.items()}
        self.val_set = self.test_set = _FixedBatch(probe)

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "window": self.window}
        if self.cooc is not None:
            out["nonzero_cooccurrences"] = int(len(self.cooc[0]))
        return out
