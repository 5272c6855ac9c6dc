"""Classification: binary (one logit, sigmoid) and multiclass (C logits, softmax)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
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
    ``loss`` (the sample-weighted mean over the epoch; ``train/loss_epoch`` beside the per-step
    ``train/loss_step`` in training), ``acc`` (micro accuracy) and ``f1`` (macro F1). At test
    time a confusion matrix is accumulated as well (``self.confusion``, rows = true class).

    Logging cost. On a CPU a small net's training step takes a few milliseconds, and both
    ``self.log`` and a torchmetrics ``update`` cost a sizeable fraction of that. So a step only
    keeps its outputs, targets and loss (``_EpochAccumulator``); the torchmetrics objects
    receive the predicted classes in one ``update`` every ``flush_every`` batches (sooner for
    large outputs) and on the epoch's last batch, and are logged once per epoch
    (Lightning computes, syncs across processes and resets a logged metric object at the
    epoch's end). The step loss is written to the loggers directly, on the steps Lightning's
    logger cadence would write (``log_every_n_steps``). The figures are exactly those of per-step updates: accuracy and F1
    are integer counts, and the loss is summed in the same order as Lightning's own mean.

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
        gradient_clip_val, gradient_clip_algorithm: clip the gradients' norm (or values) before
            each optimizer step; ``zoo-train`` fills them from ``trainer.gradient_clip_val``.
    """

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
    ):
        super().__init__(net, optimizer, scheduler, scheduler_interval, finetune,
                         gradient_clip_val, gradient_clip_algorithm)
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
        self.train_loss, self.val_loss, self.test_loss = EpochMean(), EpochMean(), EpochMean()
        self._pending = {stage: _EpochAccumulator() for stage in ("train", "val", "test")}
        self.test_confusion = (BinaryConfusionMatrix() if binary
                               else MulticlassConfusionMatrix(num_classes))
        self.confusion: torch.Tensor | None = None
        self.last_train_loss: float | None = None  # the last step loss written (progress bar)

    def _metrics(self, prefix: str) -> MetricCollection:
        # validate_args=False: torchmetrics would check every update's values (torch.unique over
        # the batch); ``_flush`` checks the targets' range itself, in one comparison
        if self.binary:
            metrics = {"acc": BinaryAccuracy(validate_args=False), "f1": BinaryF1Score(validate_args=False)}
        else:
            metrics = {
                "acc": MulticlassAccuracy(self.num_classes, average="micro", validate_args=False),
                "f1": MulticlassF1Score(self.num_classes, average="macro", validate_args=False),
            }
        return MetricCollection(metrics, prefix=prefix)

    # -- the one shared step --------------------------------------------------------------------
    def _logger_writes_this_step(self) -> bool:
        """True on the training steps whose logged values reach the logger (Lightning writes
        every ``log_every_n_steps``-th step) -- and on every step when there is no trainer."""
        trainer = self._trainer
        if trainer is None:
            return True
        every = max(1, int(trainer.log_every_n_steps or 1))
        return (self.global_step + 1) % every == 0 or self.global_step == 0

    def _log_step_loss(self, loss: torch.Tensor) -> None:
        """Write the step loss straight to the loggers (``train/loss_step``) and keep it for the
        progress bar (``last_train_loss``). Going through ``self.log`` would make Lightning
        gather, convert and hand on the logged values on every step, not only on these."""
        value = float(loss.detach())
        self.last_train_loss = value
        trainer = self._trainer
        if trainer is None:
            return
        for logger in trainer.loggers:
            logger.log_metrics({"train/loss_step": value, "epoch": self.current_epoch}, step=self.global_step)

    def _step(self, batch, stage: str, batch_idx: int = 0):
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
        pending = self._pending[stage]
        if batch_idx == 0:  # a new epoch (or a sanity check before it): nothing carries over
            pending.clear()
        pending.add(preds.detach(), y, loss.detach())
        last = batch_idx + 1 >= self._batches_per_epoch(stage)
        if last or len(pending) >= self.flush_every or pending.kept_values >= self.flush_values:
            self._flush(stage, end_of_epoch=last)
        if batch_idx == 0:  # the objects are registered once; Lightning computes them at epoch end
            name = "train/loss_epoch" if stage == "train" else f"{stage}/loss"
            self.log(name, self._mean_loss(stage), on_step=False, on_epoch=True, prog_bar=True)
            self.log_dict(self._stage_metrics(stage), on_step=False, on_epoch=True, prog_bar=stage != "train")
        if stage == "train" and self._logger_writes_this_step():
            self._log_step_loss(loss)
        return loss

    # -- epoch-level metrics ----------------------------------------------------------------------
    flush_every = 64  # batches of predictions kept before the torchmetrics objects are updated
    flush_values = 1 << 20  # ... or this many kept logits (4 MiB of float32), whichever comes first

    def _stage_metrics(self, stage: str) -> MetricCollection:
        return {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}[stage]

    def _mean_loss(self, stage: str) -> "EpochMean":
        return {"train": self.train_loss, "val": self.val_loss, "test": self.test_loss}[stage]

    def _batches_per_epoch(self, stage: str) -> float:
        """Batches the running epoch of ``stage`` has (1 without a trainer: every step flushes;
        inf for an iterable loader of unknown length: the epoch-end hooks flush)."""
        trainer = self._trainer
        if trainer is None:
            return 1
        if stage == "train":
            n = trainer.num_training_batches
        elif stage == "val":
            n = trainer.num_sanity_val_batches if trainer.sanity_checking else trainer.num_val_batches
        else:
            n = trainer.num_test_batches
        if isinstance(n, (list, tuple)):
            n = n[0] if len(n) == 1 else float("inf")
        return n

    def _flush(self, stage: str, end_of_epoch: bool) -> None:
        """Hand the kept predictions to the metric objects (and, at the epoch's end, the loss sum)."""
        pending = self._pending[stage]
        if len(pending):
            preds, target = pending.take_predictions(argmax=not self.binary)
            self._check_targets(target, stage)
            with _exact_counting():
                self._stage_metrics(stage).update(preds, target)
                if stage == "test":
                    self.test_confusion.update(preds, target)
        if end_of_epoch and pending.loss_count:
            total, count = pending.take_loss()
            self._mean_loss(stage).update(total, count)

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

    def on_train_epoch_end(self) -> None:
        self._flush("train", end_of_epoch=True)  # a no-op unless the loader's length was unknown
        super().on_train_epoch_end()

    def on_validation_epoch_end(self) -> None:
        self._flush("val", end_of_epoch=True)

    def training_loss(self, batch, batch_idx):
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", batch_idx)

    def test_step(self, batch, batch_idx):
        self._step(batch, "test", batch_idx)

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def on_test_epoch_end(self) -> None:
        self._flush("test", end_of_epoch=True)
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


@contextmanager
def _exact_counting():
    """Let torchmetrics count classes with ``torch.bincount``. Under deterministic mode it falls
    back to comparing every prediction with every class pair (a ``(N, C*C)`` tensor), because
    CUDA's bincount adds atomically, in no fixed order. Counting integers is exact in any order,
    so the result is the same either way; only the deterministic flag is lifted, for the update."""
    enabled = torch.are_deterministic_algorithms_enabled()
    if not enabled:
        yield
        return
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)


class EpochMean(Metric):
    """The sample-weighted mean of per-batch losses over an epoch, fed with a running sum
    (``update(sum of loss * batch size, number of samples)``); summed across processes."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, total: torch.Tensor, count: int | torch.Tensor) -> None:
        self.total = self.total + total
        self.count = self.count + count

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class _EpochAccumulator:
    """What the steps of one stage hand on, kept until the next flush: the net's outputs
    (logits, or binary probabilities), the targets and the batch losses. A step only appends
    to lists -- no tensor operation of its own, so it adds no kernel launches to the step. At
    a flush the kept logits become predicted classes in one ``argmax`` (row by row, so the
    same classes as per batch), and the losses are added into the running sum as
    ``sum(loss_b * size_b)`` one batch at a time, in step order (the arithmetic and the order
    of Lightning's own epoch mean, so the figure is the same to the last bit)."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.preds: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.losses: list[tuple[torch.Tensor, int]] = []
        self.loss_total: torch.Tensor | None = None
        self.loss_count = 0
        self.kept_values = 0

    def __len__(self) -> int:
        return len(self.preds)

    def add(self, preds: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        self.preds.append(preds)
        self.targets.append(target)
        n = int(target.shape[0])
        self.losses.append((loss, n))
        self.loss_count += n
        self.kept_values += preds.numel()

    def take_predictions(self, argmax: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._fold_losses()
        preds, target = torch.cat(self.preds), torch.cat(self.targets)
        if argmax:
            preds = preds.argmax(dim=1)
        self.preds, self.targets, self.kept_values = [], [], 0
        return preds, target

    def _fold_losses(self) -> None:
        for loss, n in self.losses:
            weighted = loss.float() * n
            self.loss_total = weighted if self.loss_total is None else self.loss_total + weighted
        self.losses = []

    def take_loss(self) -> tuple[torch.Tensor, int]:
        self._fold_losses()
        total, count = self.loss_total, self.loss_count
        self.loss_total, self.loss_count = None, 0
        return total, count


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
