"""Sequence tagging (many-to-many, ``T_y = T_x``; named-entity recognition in the notes): one
label per token, trained with the per-token cross-entropy, padding masked out.

Metrics (exact ratios of counts):

* ``f1``: entity-level micro F1 (CoNLL-2003 style, Tjong Kim Sang & De Meulder 2003): an entity
  is a maximal span ``B-X I-X ...`` (BIO; an ``I-X`` that does not continue an ``X`` opens one)
  or a run of ``I-X`` (IO), and it counts as found only when both its span and its type match;
* ``token_f1``: token-level micro F1 over the non-``O`` tags (a token's tag right or wrong);
* ``acc``: token accuracy over every real token (``O`` included).

Where the tag names are unknown (``tags`` null), id 0 is ``O`` and every other id is a type of
its own, read as IO.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection

from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask
from zoo.tasks.metrics import CountRatio

__all__ = ["TaggingTask", "entity_spans", "EntityF1", "TokenF1", "TokenAccuracy"]

IGNORE_INDEX = -100


def entity_spans(tags: Sequence[int], names: Sequence[str] | None, outside: int = 0) -> set[tuple[int, int, str]]:
    """The entities of one sentence's tag ids: ``{(start, end, type)}``, ``end`` exclusive.
    With ``names`` (``O``, ``B-X``, ``I-X``): BIO or IO spans; without: runs of equal ids other
    than ``outside``."""
    spans: set[tuple[int, int, str]] = set()
    start, kind = None, None
    for i, t in enumerate(list(tags) + [outside]):  # a final O closes the last span
        if names is None:
            prefix, typ = ("O", None) if t == outside else ("I", str(t))
        else:
            name = names[t]
            prefix, _, typ = name.partition("-") if name != "O" else ("O", "", None)
        continues = prefix == "I" and kind == typ and start is not None
        if start is not None and not continues:
            spans.add((start, i, kind))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = i, typ
    return spans


class _Counts(Metric):
    full_state_update = False
    higher_is_better = True

    def __init__(self, names: Sequence[str] | None = None, outside: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.names, self.outside = (list(names) if names else None), int(outside)
        for state in ("tp", "fp", "fn"):
            self.add_state(state, torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def compute(self) -> torch.Tensor:
        tp, fp, fn = self.tp.double(), self.fp.double(), self.fn.double()
        denom = 2 * tp + fp + fn
        return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.ones_like(denom))


class EntityF1(_Counts):
    """Entity-level micro F1; ``update(preds, target)`` with lists of per-sentence tag ids (n_i,)."""

    def update(self, preds: list[torch.Tensor], target: list[torch.Tensor]) -> None:
        tp = fp = fn = 0
        for p, t in zip(preds, target):
            ps = entity_spans(p.tolist(), self.names, self.outside)
            ts = entity_spans(t.tolist(), self.names, self.outside)
            hit = len(ps & ts)
            tp, fp, fn = tp + hit, fp + len(ps) - hit, fn + len(ts) - hit
        self.tp += tp
        self.fp += fp
        self.fn += fn


class TokenF1(_Counts):
    """Token-level micro F1 over the non-``O`` tags: a token predicted ``X != O`` is a true
    positive when its tag is ``X``, a false positive otherwise; a token tagged ``X != O`` and
    predicted anything else is a false negative."""

    def update(self, preds: list[torch.Tensor], target: list[torch.Tensor]) -> None:
        p, t = torch.cat(list(preds)), torch.cat(list(target))
        o = self.outside
        self.tp += ((p == t) & (t != o)).sum()
        self.fp += ((p != t) & (p != o)).sum()
        self.fn += ((p != t) & (t != o)).sum()


class TokenAccuracy(CountRatio):
    """Correct tags / real tokens."""

    def counts(self, preds: list[torch.Tensor], target: list[torch.Tensor]):
        p, t = torch.cat(list(preds)), torch.cat(list(target))
        return (p == t).sum(), t.numel()


class TaggingTask(ZooTask):
    """Per-token classification of padded token sequences.

    Args:
        net: (B, T) token ids, lengths (B,) -> (B, T, num_tags) logits
            (``zoo.models.rnn.SequenceTagger``).
        tags: the tag names by id (a data fact), ``O`` first; decodes predictions and defines
            the entities.
        num_tags: checked against ``tags`` when both are given.
        vocab: the words by id (a data fact; for the predictions' ``<unk>`` notes).
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Recurrent sequence tagging"
    batch_contract = ("dict: tokens int64 (B, T) padded, tags int64 (B, T) padded with -100, lengths int64 (B,)")
    data_facts_used = ("tags",)
    primary_metric = "f1"
    higher_is_better = True
    exact_metrics = ("f1", "token_f1", "acc")

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 tags: Sequence[str] | None = None, num_tags: int | None = None,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        self.tags = list(tags) if tags is not None else None
        if self.tags is not None:
            if "O" not in self.tags:
                raise ValueError(f"the tag set needs an 'O' (outside) tag, got {self.tags}")
            bad = [t for t in self.tags if t != "O" and not t.startswith(("B-", "I-"))]
            if bad:
                raise ValueError(f"tags are O, B-<type> or I-<type>; got {bad}")
            if num_tags is not None and int(num_tags) != len(self.tags):
                raise ValueError(f"num_tags={num_tags} but {len(self.tags)} tags are named: {self.tags}")
        self.num_tags = len(self.tags) if self.tags is not None else num_tags
        self.outside = self.tags.index("O") if self.tags is not None else 0
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    def build_metrics(self, prefix: str) -> MetricCollection:
        # no compute groups: both F1s keep (tp, fp, fn) counts, which torchmetrics would merge into
        # one metric whenever their first updates happen to agree
        return MetricCollection({"f1": EntityF1(self.tags, self.outside), "token_f1": TokenF1(self.tags, self.outside),
                                 "acc": TokenAccuracy()}, prefix=prefix, compute_groups=False)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/f1", "test entity F1 (%)", 100.0), ("test/token_f1", "test token F1 (%)", 100.0),
                ("test/acc", "test token accuracy (%)", 100.0)]

    def shared_step(self, batch, stage: str):
        tokens, tags, lengths = batch["tokens"], batch["tags"], batch["lengths"]
        if tokens.shape != tags.shape:
            raise ValueError(f"tokens {tuple(tokens.shape)} and tags {tuple(tags.shape)} must have one shape (B, T)")
        if bool((lengths < 1).any()):
            raise ValueError("an empty sentence in the batch (length 0): every sentence needs a word to tag")
        logits = self.net(tokens, lengths)  # (B, T, K)
        if logits.shape[:2] != tags.shape:
            raise ValueError(f"the net outputs {tuple(logits.shape)} for tags {tuple(tags.shape)}: one row of "
                             "logits per token is needed")
        k = logits.shape[-1]
        if self.num_tags is not None and k != self.num_tags:
            raise ValueError(f"the net scores {k} tags but the data has {self.num_tags} (model.num_tags)")
        loss = F.cross_entropy(logits.reshape(-1, k), tags.reshape(-1), ignore_index=IGNORE_INDEX)  # real tokens
        real = tags != IGNORE_INDEX  # (B, T)
        sizes = real.sum(1).tolist()
        preds = torch.split(logits.detach().argmax(-1)[real], sizes)  # per sentence (n_i,)
        target = torch.split(tags[real], sizes)
        return loss, list(preds), list(target)

    def tag_name(self, i: int) -> str:
        return self.tags[i] if self.tags is not None else str(i)

    def predict_step(self, batch, batch_idx: int = 0):
        """Per sentence of ``{"tokens", "lengths", "words"}``: ``(words, tag ids (n,), probabilities (n,))``."""
        probs = torch.softmax(self.net(batch["tokens"], batch["lengths"]), -1)  # (B, T, K)
        best, ids = probs.max(-1)
        out = []
        for b, n in enumerate(batch["lengths"].tolist()):
            words = batch["words"][b] if "words" in batch else [str(i) for i in batch["tokens"][b, :n].tolist()]
            out.append((words, ids[b, :n].cpu(), best[b, :n].cpu()))
        return out

    def describe_prediction(self, output, top: int = 5) -> dict[str, Any]:
        words, ids, probs = output
        names = self.tags
        spans = sorted(entity_spans(ids.tolist(), names, self.outside))
        return {"tokens": [{"word": w, "tag": self.tag_name(int(i)), "probability": round(float(p), 4)}
                           for w, i, p in zip(words, ids, probs)],
                "entities": [{"type": typ, "text": " ".join(words[s:e]), "start": s, "end": e} for s, e, typ in spans]}
