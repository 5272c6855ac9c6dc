"""Classification: binary (one logit, sigmoid) and multiclass (C logits, softmax)."""
from __future__ import annotations

import logging
from pathlib import Path
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

from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask, exact_counting
from zoo.tasks.finetune import CutNet, FinetuneSpec, apply_freezing, num_outputs, param_groups, reset_head


class ClassificationTask(ZooTask):
    """Trains any net that maps a batch ``(x, y)`` to logits.

    Multiclass: the net returns (B, C) logits and the loss is cross-entropy (with optional label
    smoothing). Binary: the net returns (B, 1) or (B,) logits and the loss is binary
    cross-entropy with logits; smoothing moves the targets to ``y(1-e) + e/2``.

    Logged per stage (``train/``, ``val/``, ``test/``), each stage with its own metric objects:
    ``loss`` (the sample-weighted mean over the epoch; ``train/loss_epoch`` beside the per-step
    ``train/loss_step`` in training), ``acc`` (micro accuracy) and ``f1`` (macro F1). At test
    time a confusion matrix is accumulated as well (``self.confusion``, rows = true class). The
    steps keep their logits, and a flush turns them into predicted classes (``argmax`` row by
    row: the classes of per-batch updates), so accuracy and F1 are exact integer counts.

    Fine-tuning a pretrained net (``finetune``, :mod:`zoo.tasks.finetune`) belongs to this task:
    which parameters train, at which rate, a new head or a cut net for a linear probe.

    Args:
        net: the network (injected).
        num_classes: classes in the data (2 for a binary task).
        optimizer: a factory ``params -> Optimizer`` (a Hydra partial).
        scheduler: a factory ``optimizer -> LRScheduler`` (a Hydra partial) or None.
        scheduler_interval: step the scheduler each ``epoch`` or each ``step``.
        label_smoothing: in [0, 1).
        binary: force the binary formulation; by default it is used when ``num_classes == 2``
            and the net has a single output.
        class_names: names for reports, plots and predictions (a data fact).
        channels_last: run convolutions on channels-last tensors.
        aux_loss_weight: weight of each auxiliary head's loss when the net returns
            ``(main, *aux)`` in training (GoogLeNet); metrics use the main head only.
        finetune: a fine-tuning preset (``zoo.tasks.finetune.FinetuneSpec`` fields: mode, groups,
            layer_decay, unfreeze_every, reset_head, probe_at), or None to train every parameter alike.
        gradient_clip_val, gradient_clip_algorithm: clip the gradients' norm (or values) before
            each optimizer step; ``zoo-train`` fills them from ``trainer.gradient_clip_val``.
        accumulate_grad_batches: batches whose gradients add up before one optimizer step.
    """

    family = "Classification"
    batch_contract = "(x, y): x float32 (B, C, H, W) or (B, features), y int64 (B,) class indices"
    data_facts_used = ("class_names",)
    primary_metric = "acc"
    higher_is_better = True
    exact_metrics = ("acc", "f1")  # ratios of counts of correct / true and false positive predictions

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
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        accumulate_grad_batches: int = 1,
    ):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        self.finetune = FinetuneSpec(**finetune) if finetune else None
        if self.finetune is not None and self.finetune.probe_at:
            self.net = net = CutNet(net, self.finetune.probe_at, num_outputs(net))
            logging.getLogger(__name__).warning(
                "finetune: cut the net after %r; a new linear head (%d -> %d) replaces the layers above",
                self.finetune.probe_at, net.head.in_features, net.head.out_features)
        elif self.finetune is not None and self.finetune.reset_head:
            head = reset_head(net)
            logging.getLogger(__name__).warning("finetune: re-initialised the head %r (reset_head)", head)
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
        self.init_metrics()
        self.test_confusion = (BinaryConfusionMatrix() if binary
                               else MulticlassConfusionMatrix(num_classes))
        self.confusion: torch.Tensor | None = None

    def build_metrics(self, prefix: str) -> MetricCollection:
        # validate_args=False: torchmetrics would check every update's values (torch.unique over
        # the batch); ``metric_inputs`` checks the targets' range itself, in one comparison
        if self.binary:
            metrics = {"acc": BinaryAccuracy(validate_args=False), "f1": BinaryF1Score(validate_args=False)}
        else:
            metrics = {
                "acc": MulticlassAccuracy(self.num_classes, average="micro", validate_args=False),
                "f1": MulticlassF1Score(self.num_classes, average="macro", validate_args=False),
            }
        return MetricCollection(metrics, prefix=prefix)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/acc", "test acc (%)", 100.0), ("test/f1", "test macro-F1 (%)", 100.0),
                ("val/acc", "val acc (%)", 100.0)]

    # -- the step ---------------------------------------------------------------------------------
    def _logits(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.net(x)
        aux: tuple = ()
        if isinstance(logits, (tuple, list)):  # (main, *auxiliary heads), e.g. GoogLeNet in training
            logits, *aux = logits
        return logits, tuple(aux)

    def shared_step(self, batch, stage: str):
        x, y = batch
        logits, aux = self._logits(x)
        if self.binary:
            logits = logits.reshape(-1)  # (B,)
            target = y.float() * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
            loss = F.binary_cross_entropy_with_logits(logits, target)
            outputs = torch.sigmoid(logits)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
            outputs = logits
        for a in aux:  # auxiliary classifiers add a discounted loss (Szegedy et al. 2015: 0.3)
            loss = loss + self.aux_loss_weight * F.cross_entropy(a, y, label_smoothing=self.label_smoothing)
        return loss, outputs, y

    def metric_inputs(self, outputs: torch.Tensor, target: torch.Tensor, stage: str):
        """Kept logits -> predicted classes (binary: the probabilities, thresholded by the
        metrics); labels outside the task's classes are refused."""
        preds = outputs if self.binary else outputs.argmax(dim=1)
        self._check_targets(target, stage)
        return preds, target

    def metric_update_context(self):
        return exact_counting()

    def on_metrics_flushed(self, stage: str, preds, target) -> None:
        if stage == "test":
            self.test_confusion.update(preds, target)

    def _check_targets(self, target: torch.Tensor, stage: str) -> None:
        """Refuse labels outside ``0..num_classes-1`` (``0..1`` for a binary task): a datamodule
        whose ``num_classes`` is too small would otherwise be scored wrongly without a word."""
        if target.numel() == 0:
            return
        high = 2 if self.binary else self.num_classes
        if bool((target < 0).any() | (target >= high).any()):
            found = sorted({int(t) for t in target.unique() if t < 0 or t >= high})
            raise ValueError(f"{stage} labels {found[:10]} are outside 0..{high - 1}: the task was built "
                             f"for num_classes={self.num_classes}; set data.num_classes (or "
                             "task.num_classes) to the number of classes in the data")

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.test_confusion.reset()

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.confusion = self.test_confusion.compute().cpu()  # (C, C), synced across processes

    def test_outputs(self) -> dict:
        return {"confusion_matrix": self.confusion.tolist()} if self.confusion is not None else {}

    @classmethod
    def draw_outputs(cls, record: dict, folder: Path, data_facts: dict) -> list[str]:
        if not record.get("confusion_matrix"):
            return []
        from zoo.reporting import plots

        names = data_facts.get("class_names") or [str(i) for i in range(len(record["confusion_matrix"]))]
        plots.confusion_matrix(record["confusion_matrix"], names, folder / "confusion_matrix.png",
                               title=f"{record['experiment']}: test confusion matrix")
        return ["confusion_matrix.png"]

    # -- predictions --------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int = 0):
        """Class probabilities (B, C) (binary: (B, 2), P(not positive), P(positive))."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        logits, _ = self._logits(x)
        if self.binary:
            p = torch.sigmoid(logits.reshape(-1))
            return torch.stack([1 - p, p], dim=1)  # (B, 2)
        return logits.softmax(dim=-1)  # (B, C)

    def describe_prediction(self, output: torch.Tensor, top: int = 5) -> dict:
        k = min(top, output.numel())
        vals, idx = output.topk(k)
        return {"top": [{"class": self.class_names[i], "probability": round(float(v), 4)}
                        for v, i in zip(vals, idx.tolist())]}

    # -- fine-tuning ------------------------------------------------------------------------------
    def parameter_groups(self):
        if self.finetune is None:
            return super().parameter_groups()
        base_lr = self.optimizer_base_lr()
        if base_lr is None:
            raise ValueError("fine-tuning presets need the optimizer's lr in its config")
        return param_groups(self.net, base_lr, self.finetune)

    def on_train_epoch_start(self) -> None:
        if self.finetune is not None:
            frozen = apply_freezing(self.net, self.finetune, self.current_epoch)
            if self.current_epoch == 0 or self.finetune.mode == "gradual_unfreeze":
                n = sum(1 for _ in self.net.parameters())
                self.print(f"[finetune {self.finetune.mode}] epoch {self.current_epoch}: "
                           f"{n - len(frozen)}/{n} parameter tensors train")


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
