"""Classification: binary (one logit, sigmoid) and multiclass (C logits, softmax)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryConfusionMatrix,
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask


class ClassificationTask(ZooTask):
    """Trains any net that maps a batch ``(x, y)`` to logits.

    Multiclass: the net returns (B, C) logits and the loss is cross-entropy (with optional label
    smoothing). Binary: the net returns (B, 1) or (B,) logits and the loss is binary
    cross-entropy with logits; smoothing moves the targets to ``y(1-e) + e/2``.

    Logged per stage (``train/``, ``val/``, ``test/``), each stage with its own metric objects:
    ``loss``, ``acc`` (micro accuracy) and ``f1`` (macro F1). At test time a confusion matrix is
    accumulated as well (``self.confusion``, rows = true class).

    Args:
        net: the network (injected).
        num_classes: classes in the data (2 for a binary task).
        optimizer: a factory ``params -> Optimizer`` (a Hydra partial).
        scheduler: a factory ``optimizer -> LRScheduler`` (a Hydra partial) or None.
        scheduler_interval: step the scheduler each ``epoch`` or each ``step``.
        label_smoothing: in [0, 1).
        binary: force the binary formulation; by default it is used when ``num_classes == 2``
            and the net has a single output.
        class_names: names for reports and plots.
        channels_last: run convolutions on channels-last tensors.
        aux_loss_weight: weight of each auxiliary head's loss when the net returns
            ``(main, *aux)`` in training (GoogLeNet); metrics use the main head only.
        finetune: a fine-tuning preset (``zoo.finetune.FinetuneSpec`` fields: mode, groups,
            layer_decay, unfreeze_every), or None to train every parameter alike.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        label_smoothing: float = 0.0,
        binary: bool | None = None,
        class_names: Sequence[str] | None = None,
        channels_last: bool = False,
        aux_loss_weight: float = 0.3,
        finetune: dict | None = None,
    ):
        super().__init__(net, optimizer, scheduler, scheduler_interval, finetune)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if binary is None:
            binary = num_classes == 2 and _output_width(net) == 1
        if not binary and num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.binary = binary
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.channels_last = channels_last
        self.aux_loss_weight = aux_loss_weight
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.hparams["binary"] = binary
        self.train_metrics = self._metrics("train/")
        self.val_metrics = self._metrics("val/")
        self.test_metrics = self._metrics("test/")
        self.test_confusion = (BinaryConfusionMatrix() if binary
                               else MulticlassConfusionMatrix(num_classes))
        self.confusion: torch.Tensor | None = None

    def _metrics(self, prefix: str) -> MetricCollection:
        if self.binary:
            metrics = {"acc": BinaryAccuracy(), "f1": BinaryF1Score()}
        else:
            metrics = {
                "acc": MulticlassAccuracy(self.num_classes, average="micro"),
                "f1": MulticlassF1Score(self.num_classes, average="macro"),
            }
        return MetricCollection(metrics, prefix=prefix)

    # -- the one shared step --------------------------------------------------------------------
    def _step(self, batch, stage: str):
        x, y = batch
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.net(x)
        aux: tuple = ()
        if isinstance(logits, (tuple, list)):  # (main, *auxiliary heads), e.g. GoogLeNet in training
            logits, *aux = logits
        if self.binary:
            logits = logits.reshape(-1)  # (B,)
            target = y.float() * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
            loss = F.binary_cross_entropy_with_logits(logits, target)
            preds = torch.sigmoid(logits)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
            preds = logits
        for a in aux:  # auxiliary classifiers add a discounted loss (Szegedy et al. 2015: 0.3)
            loss = loss + self.aux_loss_weight * F.cross_entropy(a, y, label_smoothing=self.label_smoothing)
        metrics = {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}[stage]
        metrics.update(preds.detach(), y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True,
                 sync_dist=stage != "train", batch_size=y.shape[0])
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        if stage == "test":
            self.test_confusion.update(preds.detach(), y)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def on_test_epoch_end(self) -> None:
        self.confusion = self.test_confusion.compute().cpu()  # (C, C), synced across processes

    def predict_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        logits = self.net(x)
        aux: tuple = ()
        if isinstance(logits, (tuple, list)):  # (main, *auxiliary heads), e.g. GoogLeNet in training
            logits, *aux = logits
        if self.binary:
            p = torch.sigmoid(logits.reshape(-1))
            return torch.stack([1 - p, p], dim=1)  # (B, 2)
        return logits.softmax(dim=-1)  # (B, C)


def _output_width(net: nn.Module) -> int | None:
    """The last dimension of the net's output on its example inputs (None if it has none)."""
    example = getattr(net, "example_inputs", None)
    if example is None:
        return None
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(*example(1))
    finally:
        net.train(was_training)
    return out.shape[-1] if out.dim() > 1 else 1
