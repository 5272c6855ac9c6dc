"""Sentiment classification of sentences and reviews: token ids in, one label out
(negative 0, positive 1).

* :class:`PolaritySentencesDataModule`: the labelled movie-review sentences that ``gensim``
  ships in its test data (``gensim/test/test_data/pang_lee_polarity.cor``), offline. They are
  200 sentences of Pang & Lee's *sentence polarity dataset v1.0* (Pang & Lee 2005, "Seeing
  stars: exploiting class relationships for sentiment categorization with respect to rating
  scales"; 5,331 positive and 5,331 negative Rotten Tomatoes snippets in all), in fastText's
  supervised format: each line is ``__label__neg <sentence>`` or ``__label__pos <sentence>``
  (the first 100 lines negative, the last 100 positive), already lower-cased and tokenised with
  spaces, in Windows-1252 (a few ``é`` and the ``—`` byte 0x97). gensim itself uses the file
  only for its fastText supervised-model fixture (``pang_lee_polarity_fasttext.bin``, trained on
  these 200 lines). So few sentences are cross-validated: ``num_folds`` stratified folds (10, as
  Pang & Lee 2005 and the papers that use their sentences, e.g. Kim 2014, do), ``fold`` the one
  tested; a share of the other folds is held out for validation, the rest trained on.
* :class:`IMDBDataModule`: the Large Movie Review Dataset (Maas et al. 2011, "Learning word
  vectors for sentiment analysis"), the ``aclImdb`` folder: ``train/pos/*.txt``,
  ``train/neg/*.txt``, ``test/pos/*.txt``, ``test/neg/*.txt`` (25,000 + 25,000 reviews, one per
  file, UTF-8, with ``<br />`` line breaks). Validation is a stratified share of ``train``.
* :class:`SST2DataModule`: the binary Stanford Sentiment Treebank (Socher et al. 2013) as GLUE
  distributes it (``SST-2/train.tsv``, ``SST-2/dev.tsv``: a header ``sentence<TAB>label``, then
  one sentence and its 0/1 label per line; GLUE's ``test.tsv`` has no labels). The test split is
  ``dev.tsv`` (as is usual: GLUE's test labels are private), validation a share of ``train.tsv``.

The real datasets are read from ``root``; nothing is downloaded unless ``download=True``
(``prepare_data`` then fetches the official archive, checks its MD5 and unpacks it with
:func:`datamodules.archives.safe_extract`). A missing file is a :class:`DatasetNotFoundError`
naming it; a malformed line, an unknown label or an empty sentence a :class:`DataFileError`
naming the file and line.

Every datamodule tokenises with :func:`datamodules.text.vocab.word_tokens` (lower-cased words
and punctuation) and builds its vocabulary on its training split only, so that no word of the
validation or test text decides an id; their unseen words become ``<unk>``.
"""
from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import DataFileError, DatasetNotFoundError, ZooDataModule, stratified_split
from datamodules.text.vocab import PAD, UNK, Vocabulary, read_utf8, refuse_augment, word_tokens

CLASS_NAMES = ("negative", "positive")
POLARITY_LABELS = {"__label__neg": 0, "__label__pos": 1}

Example = tuple[str, int]  # (text, label)


# -- readers -------------------------------------------------------------------------------------
def polarity_path() -> Path:
    """Where gensim keeps ``pang_lee_polarity.cor``."""
    import gensim

    return Path(os.path.dirname(gensim.__file__)) / "test" / "test_data" / "pang_lee_polarity.cor"


def read_polarity(path: str | os.PathLike) -> list[Example]:
    """``(sentence, label)`` of every line of a fastText-style file (``__label__neg text`` /
    ``__label__pos text``), decoded as Windows-1252 (the encoding of Pang & Lee's files). A line
    without a known label or without words is a :class:`DataFileError` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such file (gensim's labelled polarity sentences; is gensim "
                                   "installed? pip install gensim)")
    out: list[Example] = []
    with open(path, encoding="cp1252", errors="strict", newline="") as f:
        try:
            lines = f.read().splitlines()
        except UnicodeDecodeError as err:
            raise DataFileError(f"{path}: not Windows-1252 text ({err.reason} at byte {err.start})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        label, _, text = line.strip().partition(" ")
        if label not in POLARITY_LABELS:
            raise DataFileError(f"{path}, line {n}: starts with {label[:30]!r}; each line must start with "
                                f"{' or '.join(POLARITY_LABELS)} then the sentence")
        if not word_tokens(text):
            raise DataFileError(f"{path}, line {n}: an empty sentence after {label}")
        out.append((text.strip(), POLARITY_LABELS[label]))
    if not out:
        raise DataFileError(f"{path}: no labelled sentence in the file")
    return out


def read_sst2_tsv(path: str | os.PathLike) -> list[Example]:
    """``(sentence, label)`` of a GLUE SST-2 file (``train.tsv``, ``dev.tsv``): a header
    ``sentence<TAB>label``, then one sentence and its label (0 negative, 1 positive) per line,
    tab-separated, unquoted. A wrong header, a line without exactly two fields, a label other
    than 0/1 or an empty sentence is a :class:`DataFileError` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such file (a GLUE SST-2 split)")
    lines = read_utf8(path, "a GLUE SST-2 split").splitlines()
    if not lines:
        raise DataFileError(f"{path}: the file is empty; download SST-2 again")
    header = lines[0].rstrip("\r").split("\t")
    if header != ["sentence", "label"]:
        raise DataFileError(f"{path}, line 1: the header is {lines[0][:60]!r}; GLUE's SST-2 train.tsv and dev.tsv "
                            "start with 'sentence<TAB>label' (test.tsv has no labels and cannot be used)")
    out: list[Example] = []
    # GLUE's files are not quoted: a sentence may hold a double quote, so csv quoting stays off
    for n, row in enumerate(csv.reader(lines[1:], delimiter="\t", quoting=csv.QUOTE_NONE), 2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line (the file's end)
        if len(row) != 2:
            raise DataFileError(f"{path}, line {n}: {len(row)} tab-separated fields; each line is "
                                "'<sentence><TAB><label>'")
        text, label = row
        if label.strip() not in ("0", "1"):
            raise DataFileError(f"{path}, line {n}: label {label!r}; SST-2 labels are 0 (negative) or 1 (positive)")
        if not word_tokens(text):
            raise DataFileError(f"{path}, line {n}: an empty sentence")
        out.append((text, int(label)))
    if not out:
        raise DataFileError(f"{path}: no labelled sentence after the header")
    return out


_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def read_imdb_split(folder: str | os.PathLike) -> list[Example]:
    """``(review, label)`` of an ``aclImdb`` split folder (``train`` or ``test``): every
    ``neg/*.txt`` (label 0) then every ``pos/*.txt`` (label 1), in file-name order; ``<br />``
    becomes a space. A missing class folder, a class with no review or an empty review is an
    error naming it."""
    folder = Path(folder)
    out: list[Example] = []
    for label, name in enumerate(("neg", "pos")):
        sub = folder / name
        if not sub.is_dir():
            raise DatasetNotFoundError(f"{sub}: no such folder; aclImdb/<split>/ holds neg/ and pos/, one review per "
                                       ".txt file")
        files = sorted(sub.glob("*.txt"))
        if not files:
            raise DataFileError(f"{sub}: no .txt review in the folder")
        for f in files:
            text = _BREAK.sub(" ", read_utf8(f, "an IMDB review"))
            if not word_tokens(text):
                raise DataFileError(f"{f}: an empty review")
            out.append((text, label))
    return out


def stratified_folds(labels: Sequence[int], num_folds: int, seed: int) -> list[np.ndarray]:
    """``num_folds`` disjoint index arrays covering ``0..N-1``, each with the classes in the
    proportions of the whole (scikit-learn's ``StratifiedKFold``, shuffled with ``seed``)."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    counts = np.bincount(labels)
    if int(num_folds) < 2 or int(num_folds) > int(counts[counts > 0].min()):
        raise ValueError(f"num_folds must be between 2 and the smallest class's {int(counts[counts > 0].min())} "
                         f"examples, got {num_folds}")
    skf = StratifiedKFold(n_splits=int(num_folds), shuffle=True, random_state=int(seed))
    return [np.sort(test) for _, test in skf.split(np.zeros(len(labels)), labels)]


# -- datasets and batches --------------------------------------------------------------------------
class LabelledTexts(Dataset):
    """Texts as ``(token ids (n,), label)`` pairs (int64 ids, int label)."""

    def __init__(self, examples: list[Example], vocab: Vocabulary, max_length: int | None = None):
        self.texts = [t for t, _ in examples]
        self.labels = [int(y) for _, y in examples]
        self.ids = []
        for text in self.texts:
            tokens = word_tokens(text)
            if max_length is not None:
                tokens = tokens[:max_length]  # long reviews: their first max_length tokens
            self.ids.append(torch.tensor(vocab.encode(tokens), dtype=torch.long))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return self.ids[i], self.labels[i]


def collate_labelled(examples: list, pad_idx: int = 0) -> dict[str, Any]:
    """``(ids, label)`` pairs -> ``{"tokens": (B, T), "lengths": (B,), "labels": (B,)}``, tokens
    padded with ``pad_idx`` to the longest text of the batch.

    Files read by ``read_input`` (dicts, each with the lines of one file) -> the same without
    ``labels``, every line of every file one row, with ``texts`` (the lines as written) and
    ``sizes`` (how many rows each file gave)."""
    predict = bool(examples) and isinstance(examples[0], dict)
    if predict:
        seqs = [s for e in examples for s in e["tokens"]]
    else:
        seqs = [e[0] for e in examples]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    t = int(lengths.max()) if len(seqs) else 0
    tokens = torch.full((len(seqs), t), pad_idx, dtype=torch.long)
    for b, s in enumerate(seqs):
        tokens[b, :len(s)] = s
    if predict:
        return {"tokens": tokens, "lengths": lengths, "texts": [x for e in examples for x in e["texts"]],
                "sizes": [len(e["tokens"]) for e in examples]}
    return {"tokens": tokens, "lengths": lengths, "labels": torch.tensor([e[1] for e in examples], dtype=torch.long)}


# -- the datamodules -------------------------------------------------------------------------------
class SentimentDataModule(ZooDataModule):
    """Base of the sentiment datamodules: subclasses read their labelled splits (``read_splits``).

    Batch contract (train/val/test loaders): a dict with ``tokens`` int64 (B, T), word ids padded
    with ``<pad>`` (id 0); ``lengths`` int64 (B,), each text's tokens (at least 1); ``labels``
    int64 (B,), 0 negative, 1 positive. ``T`` is the longest text of the batch.

    The vocabulary holds ``<pad>``, ``<unk>`` and the training split's words seen at least
    ``min_count`` times (at most ``max_vocab`` entries); every other word is ``<unk>``.

    Your own file (``zoo-predict``): every non-blank line is one text to classify (tokenised
    and lower-cased as the data; unknown words become ``<unk>``); a line longer than
    ``max_length`` tokens is refused, as is a file with no words.

    Args:
        batch_size, eval_batch_size, num_workers: as :class:`~datamodules.base.ZooDataModule`.
        min_count, max_vocab: the vocabulary (above).
        max_length: texts are cut to their first ``max_length`` tokens (null: kept whole).
        num_classes: 2 (the configs read it; any other value is refused).
        augment: must be null (the ``augment`` config group fills it in every data config).
    """

    name = "sentiment"
    specials = (PAD, UNK)

    def __init__(self, batch_size: int = 32, eval_batch_size: int | None = None, num_workers: int = 0,
                 min_count: int = 1, max_vocab: int | None = None, max_length: int | None = None,
                 num_classes: int = 2, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        where = type(self).__name__
        refuse_augment(where, augment)
        for arg, value in (("batch_size", batch_size), ("min_count", min_count)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}: {arg} must be a positive integer, got {value!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ValueError(f"{where}: max_length must be null or a positive integer, got {max_length!r}")
        if num_classes != 2:
            raise ValueError(f"{where}: num_classes is 2 (negative, positive), got {num_classes!r}")
        self.min_count, self.max_vocab, self.max_length = min_count, max_vocab, max_length
        self.num_classes = 2
        self.vocab: Vocabulary | None = None

    # -- what a dataset provides ----------------------------------------------------------------
    def read_splits(self) -> dict[str, list[Example]]:
        """``{"train": [...], "val": [...], "test": [...]}``, each a list of ``(text, label)``."""
        raise NotImplementedError

    # -- setup ----------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        splits = self.read_splits()
        counts = Counter(w for text, _ in splits["train"] for w in word_tokens(text)[:self.max_length])
        self.vocab = Vocabulary.from_counts(counts, specials=self.specials, min_count=self.min_count,
                                            max_size=self.max_vocab, unk=UNK)
        self.train_set = LabelledTexts(splits["train"], self.vocab, self.max_length)
        self.val_set = LabelledTexts(splits["val"], self.vocab, self.max_length)
        self.test_set = LabelledTexts(splits["test"], self.vocab, self.max_length)

    def collate(self, examples: list) -> dict[str, Any]:
        return collate_labelled(examples, 0)

    @staticmethod
    def _val_from_train(train: list[Example], val_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
        """A stratified, seeded share of ``train`` held out for validation."""
        labels = np.array([y for _, y in train])
        rest, val = stratified_split(labels, [val_fraction], seed)
        return [train[i] for i in rest], [train[i] for i in val]

    def data_facts(self) -> dict[str, Any]:
        """``num_classes``, ``class_names`` (known before ``setup``), and the vocabulary
        (``vocab``, ``vocab_size``, ``pad_idx``, ``unk_idx``) once set up."""
        facts: dict[str, Any] = {"num_classes": 2, "class_names": list(CLASS_NAMES), "vocab_size": None,
                                 "vocab": None}
        if self.vocab is not None:
            facts.update(vocab_size=len(self.vocab), vocab=list(self.vocab.itos), pad_idx=self.vocab.index(PAD),
                         unk_idx=self.vocab.index(UNK))
        return facts

    def describe(self) -> dict[str, Any]:
        """Split sizes, positive shares and tokens, the vocabulary, the test split's share of
        ``<unk>``, and the mean training length as ``input_shape`` (FLOPs of a typical text)."""
        out: dict[str, Any] = {"dataset": self.name, "min_count": self.min_count, "max_length": self.max_length}
        if self.vocab is not None:
            for split, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set)):
                out[f"{split}_size"] = len(ds)
                out[f"{split}_positive"] = int(sum(ds.labels))
                out[f"{split}_tokens"] = int(sum(len(s) for s in ds.ids))
            test_ids = torch.cat(self.test_set.ids) if len(self.test_set) else torch.zeros(0, dtype=torch.long)
            out["test_unk_rate"] = round(float(test_ids.eq(self.vocab.index(UNK)).double().mean()), 5) \
                if len(test_ids) else 0.0
            out["vocab_size"] = len(self.vocab)
            out["input_shape"] = [max(1, round(out["train_tokens"] / max(1, out["train_size"])))]
        return out

    # -- your own text -----------------------------------------------------------------------------
    def encode_text(self, text: str, where: str = "text") -> torch.Tensor:
        """One text as ids (n,): empty text, and more than ``max_length`` tokens, are refused."""
        if self.vocab is None:
            self.setup("predict")
        tokens = word_tokens(text)
        if not tokens:
            raise ValueError(f"{where}: no words to classify (an empty sentence)")
        if self.max_length is not None and len(tokens) > self.max_length:
            raise ValueError(f"{where}: {len(tokens)} tokens; a text is at most max_length={self.max_length} "
                             "(split it, or train with a larger data.max_length)")
        return torch.tensor(self.vocab.encode(tokens), dtype=torch.long)

    def read_input(self, path: Path) -> tuple[dict, dict]:
        """Every non-blank line of a text file as one text to classify."""
        path = Path(path)
        text = read_utf8(path, "texts to classify, one per line")
        lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if not lines:
            raise ValueError(f"{path}: no words to classify (an empty file); write one sentence per line")
        tokens = [self.encode_text(line, where=f"{path}, line {n}") for n, line in lines]
        unknown = sorted({w for _, line in lines for w in word_tokens(line) if w not in self.vocab})
        return ({"tokens": tokens, "texts": [line for _, line in lines]},
                {"unknown_words": unknown} if unknown else {})


class PolaritySentencesDataModule(SentimentDataModule):
    """gensim's 200 labelled polarity sentences (module docstring), cross-validated.

    The sentences are cut into ``num_folds`` stratified folds (shuffled with ``split_seed``,
    independent of the training seed, so that every seed is tested on the same fold). Fold
    ``fold`` is the test split; a stratified share ``val_fraction`` of the other folds is held
    out for validation (checkpoint choice), the rest is trained on. Running ``fold = 0 ..
    num_folds - 1`` tests every sentence exactly once (``python -m zoo.bench.crossval``).
    Batch contract: :class:`SentimentDataModule`'s.

    Args:
        fold: the test fold, ``0 .. num_folds - 1``.
        num_folds: folds (10 by default, as in Pang & Lee 2005).
        val_fraction: share of the training folds held out for validation, in (0, 1).
        split_seed: seeds the folds and the validation share.
        path: another file in the same format (default: gensim's ``pang_lee_polarity.cor``).
        others: as :class:`SentimentDataModule`.
    """

    name = "pang_lee_polarity"

    def __init__(self, batch_size: int = 32, eval_batch_size: int | None = None, num_workers: int = 0,
                 fold: int = 0, num_folds: int = 10, val_fraction: float = 0.1, split_seed: int = 0,
                 min_count: int = 1, max_vocab: int | None = None, max_length: int | None = None,
                 path: str | None = None, num_classes: int = 2, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers, min_count, max_vocab, max_length, num_classes,
                         augment)
        where = type(self).__name__
        if not isinstance(num_folds, int) or isinstance(num_folds, bool) or num_folds < 2:
            raise ValueError(f"{where}: num_folds must be an integer of at least 2, got {num_folds!r}")
        if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < num_folds:
            raise ValueError(f"{where}: fold must be an integer in 0..{num_folds - 1} (num_folds={num_folds}), "
                             f"got {fold!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"{where}: val_fraction must be in (0, 1), got {val_fraction!r}")
        self.fold, self.num_folds, self.val_fraction, self.split_seed = fold, num_folds, val_fraction, split_seed
        self.path = path

    def examples(self) -> list[Example]:
        return read_polarity(Path(self.path) if self.path else polarity_path())

    def folds(self) -> list[np.ndarray]:
        """The test indices of every fold (disjoint, covering every sentence)."""
        return stratified_folds([y for _, y in self.examples()], self.num_folds, self.split_seed)

    def read_splits(self) -> dict[str, list[Example]]:
        examples = self.examples()
        folds = stratified_folds([y for _, y in examples], self.num_folds, self.split_seed)
        test = set(folds[self.fold].tolist())
        train = [examples[i] for i in range(len(examples)) if i not in test]
        train, val = self._val_from_train(train, self.val_fraction, self.split_seed + self.fold)
        return {"train": train, "val": val, "test": [examples[i] for i in sorted(test)]}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "fold": self.fold, "num_folds": self.num_folds, "split_seed": self.split_seed}


class _DownloadedSentiment(SentimentDataModule):
    """A real dataset read from ``root``; ``download=True`` fetches and unpacks its archive."""

    url = ""
    archive = ""
    archive_md5 = ""
    folder_name = ""
    required: tuple[str, ...] = ()  # paths under the dataset folder that must exist

    def __init__(self, root: str = "data", download: bool = False, val_fraction: float = 0.1, split_seed: int = 0,
                 batch_size: int = 32, eval_batch_size: int | None = None, num_workers: int = 0,
                 min_count: int = 1, max_vocab: int | None = None, max_length: int | None = None,
                 num_classes: int = 2, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers, min_count, max_vocab, max_length, num_classes,
                         augment)
        if not 0 < val_fraction < 1:
            raise ValueError(f"{type(self).__name__}: val_fraction must be in (0, 1), got {val_fraction!r}")
        self.root, self.download = Path(root).expanduser(), bool(download)
        self.val_fraction, self.split_seed = val_fraction, split_seed

    def folder(self) -> Path:
        """``root/<folder_name>`` (where the archive unpacks), or ``root`` itself when it is that folder."""
        inside = self.root / self.folder_name
        return inside if inside.is_dir() or not (self.root / self.required[0]).exists() else self.root

    def missing(self) -> list[Path]:
        folder = self.folder()
        return [folder / r for r in self.required if not (folder / r).exists()]

    def prepare_data(self) -> None:
        if self.missing() and self.download:
            self.fetch()
        missing = self.missing()
        if missing:
            raise DatasetNotFoundError(
                f"{type(self).__name__}: {', '.join(str(m) for m in missing)} not found. Set data.root to the folder "
                f"holding {self.folder_name}/, or data.download=true to fetch {self.url} (needs internet)")

    def fetch(self) -> None:
        """Download the official archive into ``root`` (MD5 checked) and unpack it there."""
        from torchvision.datasets.utils import download_url

        from datamodules.archives import safe_extract

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            download_url(self.url, str(self.root), filename=self.archive, md5=self.archive_md5)
        except RuntimeError as err:
            if "corrupted" not in str(err):
                raise
            raise DataFileError(f"{self.root / self.archive} does not match the official archive (MD5 "
                                f"{self.archive_md5}): delete it and run again to download it afresh") from None
        safe_extract(self.root / self.archive, self.root)

    def read_labelled(self) -> dict[str, list[Example]]:
        """``{"train": ..., "test": ...}`` as the dataset ships them."""
        raise NotImplementedError

    def read_splits(self) -> dict[str, list[Example]]:
        self.prepare_data()  # a missing file is named, whatever process calls setup
        splits = self.read_labelled()
        train, val = self._val_from_train(splits["train"], self.val_fraction, self.split_seed)
        return {"train": train, "val": val, "test": splits["test"]}


class IMDBDataModule(_DownloadedSentiment):
    """IMDB reviews (Maas et al. 2011), the ``aclImdb`` folder under ``root``: ``train/`` and
    ``test/`` with ``pos/`` and ``neg/`` review files (``unsup/`` is not read). Reviews are cut
    to their first ``max_length`` tokens (400 in ``conf/data/sentiment_imdb.yaml``).
    Batch contract: :class:`SentimentDataModule`'s."""

    name = "imdb"
    url = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    archive = "aclImdb_v1.tar.gz"
    archive_md5 = "7c2ac02c03563afcf9b574c7e56c153a"
    folder_name = "aclImdb"
    required = ("train/pos", "train/neg", "test/pos", "test/neg")

    def read_labelled(self) -> dict[str, list[Example]]:
        folder = self.folder()
        return {"train": read_imdb_split(folder / "train"), "test": read_imdb_split(folder / "test")}


class SST2DataModule(_DownloadedSentiment):
    """SST-2 as GLUE distributes it, the ``SST-2`` folder under ``root``: ``train.tsv`` (67,349
    sentences and phrases) and ``dev.tsv`` (872 sentences, the test split here).
    Batch contract: :class:`SentimentDataModule`'s."""

    name = "sst2"
    url = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
    archive = "SST-2.zip"
    archive_md5 = "9f81648d4199384278b86e315dac217c"
    folder_name = "SST-2"
    required = ("train.tsv", "dev.tsv")

    def read_labelled(self) -> dict[str, list[Example]]:
        folder = self.folder()
        return {"train": read_sst2_tsv(folder / "train.tsv"), "test": read_sst2_tsv(folder / "dev.tsv")}
