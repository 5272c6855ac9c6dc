"""Multi-label classification (multi-task learning in the course notes): every class present in
an image at once, one sigmoid per class, trained with the binary cross-entropy of each.

Metrics (torchmetrics, exact ratios of counts, a class predicted present where its sigmoid is at
least 0.5): ``f1`` (micro F1 over every image-class decision), ``f1_macro`` (the mean of the
classes' F1), ``exact_match`` (images whose whole set of classes is right).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelExactMatch, MultilabelF1Score

from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask, exact_counting

__all__ = ["MultiLabelTask"]


def _presence(targets) -> torch.Tensor:
    """The batch's multi-hot targets: a (B, K) tensor, or the ``presence`` of a list of dicts."""
    if isinstance(targets, torch.Tensor):
        return targets.float()
    return torch.stack([t["presence"] for t in targets]).float()


class MultiLabelTask(ZooTask):
    """Trains a net mapping images to ``num_classes`` logits, one independent yes/no per class.

    Args:
        net: the network (injected), (B, C, H, W) -> (B, num_classes) logits.
        num_classes: the classes that may be present.
        threshold: the probability from which a class counts as present.
        pos_weight: optional weight of the positive term of every class's loss (classes are
            absent more often than present).
        class_names: names for predictions (a data fact).
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Multi-label"
    batch_contract = ("(images, targets): images float32 (B, C, H, W); targets float32 (B, K) multi-hot, or a "
                      "list of B dicts with such a 'presence' vector")
    data_facts_used = ("class_names",)
    primary_metric = "f1"
    higher_is_better = True
    exact_metrics = ("f1", "f1_macro", "exact_match")

    def __init__(self, net: nn.Module, num_classes: int, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 threshold: float = 0.5, pos_weight: float | None = None, class_names: Sequence[str] | None = None,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        self.num_classes, self.threshold, self.pos_weight = int(num_classes), float(threshold), pos_weight
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    def build_metrics(self, prefix: str) -> MetricCollection:
        k, t = self.num_classes, self.threshold
        return MetricCollection({
            "f1": MultilabelF1Score(k, threshold=t, average="micro", validate_args=False),
            "f1_macro": MultilabelF1Score(k, threshold=t, average="macro", validate_args=False),
            "exact_match": MultilabelExactMatch(k, threshold=t, validate_args=False),
        }, prefix=prefix)

    def metric_update_context(self):
        return exact_counting()

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/f1", "test F1 (%)", 100.0), ("test/f1_macro", "test macro-F1 (%)", 100.0),
                ("test/exact_match", "test exact match (%)", 100.0)]

    def shared_step(self, batch, stage: str):
        images, targets = batch
        y = _presence(targets).to(images.device)
        logits = self.net(images)
        if logits.shape != y.shape:
            raise ValueError(f"the net outputs {tuple(logits.shape)} but the targets are {tuple(y.shape)}: "
                             f"a multi-label net needs one logit per class (model.num_classes={y.shape[1]})")
        pos = None if self.pos_weight is None else torch.full((self.num_classes,), float(self.pos_weight),
                                                              device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos)
        return loss, torch.sigmoid(logits), y.long()

    def predict_step(self, batch, batch_idx: int = 0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.sigmoid(self.net(x))

    def describe_prediction(self, output: torch.Tensor, top: int = 5) -> dict:
        present = [(self.class_names[i], float(p)) for i, p in enumerate(output.tolist()) if p >= self.threshold]
        present.sort(key=lambda kv: -kv[1])
        return {"present": [{"class": c, "probability": round(p, 4)} for c, p in present]}
