"""Text classification (sentiment): a padded batch of token ids with their lengths in, one label
per text out, trained with cross-entropy.

Metrics (exact ratios of counts), logged per stage (``train/``, ``val/``, ``test/``):

* ``acc``: accuracy;
* ``f1``: with two classes, the F1 of the positive class (class 1; torchmetrics'
  ``BinaryF1Score``); with more, the macro F1 over the classes.

Transfer learning (the notes' point on word embeddings): ``pretrained_vectors`` names a word2vec
file (text with a ``count dim`` header, GloVe text without one, or word2vec binary ``.bin``,
read with gensim's ``KeyedVectors.load_word2vec_format``); at the start of training the rows of
the net's embedding matrix whose words the file knows are set to their vectors (the other rows
keep their random start), and ``freeze_embeddings`` keeps the matrix fixed. The vocabulary comes
from the datamodule (data fact ``vocab``). A checkpoint holds the trained matrix: loading it
never reads the vectors file again.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryF1Score, MulticlassAccuracy, MulticlassF1Score

from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask, exact_counting

__all__ = ["TextClassificationTask", "read_word_vectors"]

log = logging.getLogger(__name__)


def read_word_vectors(path: str | Path, vocab: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The vectors of the words of ``vocab`` that a word2vec-format file knows:
    ``(rows (k,) int64, vectors (k, D) float32, D)``. A ``.bin`` file is word2vec's binary
    format; any other is text, with or without word2vec's ``count dim`` first line (GloVe).
    A missing or unreadable file is an error naming it."""
    from gensim.models import KeyedVectors

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"task.pretrained_vectors={path}: no such file (a word2vec or GloVe vectors file)")
    binary = path.suffix == ".bin"
    no_header = False
    if not binary:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().split()
        no_header = not (len(first) == 2 and all(w.isdigit() for w in first))
    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=no_header)
    except Exception as err:  # gensim raises several types for a malformed file
        raise ValueError(f"task.pretrained_vectors={path}: not a word2vec/GloVe vectors file "
                         f"({type(err).__name__}: {err})") from None
    rows = [i for i, w in enumerate(vocab) if w in kv.key_to_index]
    vectors = torch.tensor(kv.vectors[[kv.key_to_index[vocab[i]] for i in rows]], dtype=torch.float32) \
        if rows else torch.zeros(0, kv.vector_size)
    return torch.tensor(rows, dtype=torch.long), vectors, int(kv.vector_size)


def _embedding_of(net: nn.Module) -> nn.Embedding:
    """The net's word embedding: its first ``nn.Embedding``."""
    for module in net.modules():
        if isinstance(module, nn.Embedding):
            return module
    raise ValueError(f"task.pretrained_vectors: {type(net).__name__} has no nn.Embedding to initialise")


class TextClassificationTask(ZooTask):
    """One label per padded token sequence.

    Args:
        net: ``(tokens (B, T) int64, lengths (B,)) -> (B, num_classes)`` logits
            (``zoo.models.bag_of_embeddings.BagOfEmbeddings``, ``zoo.models.rnn.RecurrentClassifier``).
        num_classes: classes in the data (2: negative, positive).
        class_names: names for predictions (a data fact).
        label_smoothing: of the cross-entropy, in [0, 1).
        pretrained_vectors: a word-vectors file to start the embedding matrix from, or None.
        freeze_embeddings: keep the (pretrained) embedding matrix fixed.
        vocab: the words by id (a data fact; needed with ``pretrained_vectors``).
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Text classification"
    batch_contract = "dict: tokens int64 (B, T) padded, lengths int64 (B,), labels int64 (B,)"
    data_facts_used = ("class_names", "vocab")
    primary_metric = "f1"
    higher_is_better = True
    exact_metrics = ("acc", "f1")

    def __init__(self, net: nn.Module, num_classes: int = 2, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 class_names: Sequence[str] | None = None, label_smoothing: float = 0.0,
                 pretrained_vectors: str | None = None, freeze_embeddings: bool = False,
                 vocab: Sequence[str] | None = None, gradient_clip_val: float | None = None,
                 gradient_clip_algorithm: str = "norm", accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if class_names is not None and len(class_names) != int(num_classes):
            raise ValueError(f"{len(class_names)} class names {list(class_names)} for num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.label_smoothing = label_smoothing
        self.pretrained_vectors, self.freeze_embeddings = pretrained_vectors, bool(freeze_embeddings)
        self.vocab = list(vocab) if vocab is not None else None
        if self.freeze_embeddings:  # before the optimizer is built over the trainable parameters
            _embedding_of(net).weight.requires_grad_(False)
        self._vectors_loaded = False
        # the vocabulary is a data fact the predictions need no more than the net's ids: not kept
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "vocab"])
        self.init_metrics()

    def build_metrics(self, prefix: str) -> MetricCollection:
        # validate_args=False: predicted classes and checked labels are given (no per-update scan)
        if self.num_classes == 2:
            metrics = {"acc": BinaryAccuracy(validate_args=False), "f1": BinaryF1Score(validate_args=False)}
        else:
            metrics = {"acc": MulticlassAccuracy(self.num_classes, average="micro", validate_args=False),
                       "f1": MulticlassF1Score(self.num_classes, average="macro", validate_args=False)}
        return MetricCollection(metrics, prefix=prefix, compute_groups=False)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/f1", "test F1 (%)", 100.0), ("test/acc", "test acc (%)", 100.0),
                ("val/acc", "val acc (%)", 100.0)]

    # -- pretrained word vectors -------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """At the start of training: copy the pretrained vectors into the embedding matrix
        (before a resumed run restores its own trained weights over them)."""
        if stage == "fit" and self.pretrained_vectors and not self._vectors_loaded:
            self.load_word_vectors(self.pretrained_vectors)

    @torch.no_grad()
    def load_word_vectors(self, path: str | Path) -> int:
        """Set the embedding rows of the vocabulary's words found in ``path``; returns how many."""
        if self.vocab is None:
            raise ValueError("task.pretrained_vectors needs the vocabulary (the datamodule's data fact 'vocab')")
        embedding = _embedding_of(self.net)
        rows, vectors, dim = read_word_vectors(path, self.vocab)
        if dim != embedding.embedding_dim:
            raise ValueError(f"task.pretrained_vectors={path}: {dim}-dimensional vectors, but the net's embedding "
                             f"has {embedding.embedding_dim}: set model.embedding_dim={dim}")
        if len(self.vocab) != embedding.num_embeddings:
            raise ValueError(f"a vocabulary of {len(self.vocab)} words for an embedding of "
                             f"{embedding.num_embeddings} rows")
        embedding.weight[rows.to(embedding.weight.device)] = vectors.to(embedding.weight)
        self._vectors_loaded = True
        log.info("pretrained vectors: %d of %d vocabulary words found in %s%s", len(rows), len(self.vocab), path,
                 " (frozen)" if self.freeze_embeddings else "")
        return len(rows)

    # -- the step ---------------------------------------------------------------------------------
    def shared_step(self, batch, stage: str):
        tokens, lengths, labels = batch["tokens"], batch["lengths"], batch["labels"]
        if tokens.dim() != 2 or lengths.shape != tokens.shape[:1] or labels.shape != tokens.shape[:1]:
            raise ValueError(f"tokens must be (B, T), lengths and labels (B,); got {tuple(tokens.shape)}, "
                             f"{tuple(lengths.shape)}, {tuple(labels.shape)}")
        if bool((lengths < 1).any()):
            raise ValueError("an empty text in the batch (length 0): every text needs a word to classify")
        logits = self.net(tokens, lengths)  # (B, C)
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"the net outputs {tuple(logits.shape)}; (B, num_classes={self.num_classes}) "
                             "logits are needed (model.num_classes)")
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        return loss, logits, labels

    def metric_inputs(self, outputs: torch.Tensor, target: torch.Tensor, stage: str):
        """Kept logits -> predicted classes; labels outside ``0..num_classes-1`` are refused."""
        if target.numel() and bool(((target < 0) | (target >= self.num_classes)).any()):
            found = sorted({int(t) for t in target.unique() if t < 0 or t >= self.num_classes})
            raise ValueError(f"{stage} labels {found[:10]} are outside 0..{self.num_classes - 1} "
                             f"(num_classes={self.num_classes})")
        return outputs.argmax(dim=1), target

    def metric_update_context(self):
        return exact_counting()

    # -- predictions --------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int = 0):
        """Per file of ``{"tokens", "lengths", "texts", "sizes"}`` (``collate_labelled``): a list
        of ``(text, probabilities (C,))``, one per line; without ``sizes``, one list for the batch."""
        probs = torch.softmax(self.net(batch["tokens"], batch["lengths"]), -1).cpu()  # (N, C)
        texts = batch.get("texts") or [str(i) for i in range(len(probs))]
        sizes = batch.get("sizes") or [len(probs)]
        out, start = [], 0
        for n in sizes:
            out.append([(texts[i], probs[i]) for i in range(start, start + n)])
            start += n
        return out

    def describe_prediction(self, output, top: int = 5) -> dict[str, Any]:
        """``{"lines": [{"text", "class", "probability", "probabilities"}, ...]}``."""
        lines = []
        for text, p in output:
            best = int(p.argmax())
            lines.append({"text": text, "class": self.class_names[best], "probability": round(float(p[best]), 4),
                          "probabilities": {c: round(float(v), 4) for c, v in zip(self.class_names, p)}})
        return {"lines": lines}
