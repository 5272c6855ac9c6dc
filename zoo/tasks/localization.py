"""Classification with localization (and landmark detection): one object per image, its class,
its box and, for a net that regresses them, its landmarks.

The net outputs the target vector of the course notes, ``[p_c, b_x, b_y, b_h, b_w, c_1..c_n]``
(raw scores; ``zoo.models.localization``), plus ``2K`` landmark coordinates for a landmark net;
the loss is :func:`zoo.losses.localization.localization_loss`. Metrics (torchmetrics objects,
summed across processes):

* ``iou``: the mean IoU of the predicted and the true box over images that hold an object;
* ``acc``: the class accuracy over those images (exact: a ratio of counts);
* ``hit``: the share of those images whose predicted box overlaps the true one by IoU >= 0.5
  with the right class (localization accuracy; exact);
* ``objectness_acc``: whether ``p_c >= 0.5`` matches the presence of an object (exact);
* ``landmark_err``: for a landmark net, the mean distance in pixels between predicted and true
  landmarks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
from torchmetrics import Metric, MetricCollection

from zoo.losses.localization import localization_loss
from zoo.ops import box_iou_aligned, cxcywh_to_xyxy, encode_localization
from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask

__all__ = ["LocalizationTask", "decode_outputs"]


def decode_outputs(out: torch.Tensor, num_classes: int, image_size: int) -> dict[str, torch.Tensor]:
    """Raw outputs (B, 5 + n [+ 2K]) -> ``p_object`` (B,), ``boxes`` (B, 4) xyxy pixels,
    ``classes`` (B,), ``class_probability`` (B,) and, with landmarks, ``landmarks`` (B, 2K) pixels."""
    n, s = num_classes, float(image_size)
    box = torch.sigmoid(out[:, 1:5])  # b_x, b_y, b_h, b_w as fractions of the image
    cxcywh = torch.stack((box[:, 0] * s, box[:, 1] * s, box[:, 3] * s, box[:, 2] * s), dim=1)
    probs = torch.softmax(out[:, 5:5 + n], dim=1)
    conf, classes = probs.max(dim=1)
    decoded = {"p_object": torch.sigmoid(out[:, 0]), "boxes": cxcywh_to_xyxy(cxcywh), "classes": classes,
               "class_probability": conf}
    if out.shape[1] > 5 + n:
        decoded["landmarks"] = torch.sigmoid(out[:, 5 + n:]) * s
    return decoded


class _LocalizationMetric(Metric):
    """Base of the metrics below: ``update(raw outputs, encoded targets)``."""

    full_state_update = False

    def __init__(self, num_classes: int, image_size: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.image_size = num_classes, image_size

    def _decode(self, preds: torch.Tensor, target: torch.Tensor):
        present = target[:, 0] > 0.5
        pred = decode_outputs(preds, self.num_classes, self.image_size)
        truth = decode_outputs(_logit_form(target, self.num_classes), self.num_classes, self.image_size)
        return present, pred, truth


def _logit_form(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """An encoded target written as raw scores that decode back to it (the inverse of the sigmoid
    on its fractions), so that one decoder serves outputs and targets."""
    t = target.clone()
    eps = 1e-6
    frac = t[:, 1:5].clamp(eps, 1 - eps)
    t[:, 1:5] = torch.log(frac / (1 - frac))
    if t.shape[1] > 5 + num_classes:
        lm = t[:, 5 + num_classes:].clamp(eps, 1 - eps)
        t[:, 5 + num_classes:] = torch.log(lm / (1 - lm))
    return t


class _MeanOverObjects(_LocalizationMetric):
    """A float mean: ``total`` over ``count``, both summed across processes."""

    def __init__(self, num_classes: int, image_size: int, **kwargs):
        super().__init__(num_classes, image_size, **kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).float()


class BoxIoU(_MeanOverObjects):
    """Mean IoU of predicted and true boxes over the images that hold an object."""

    higher_is_better = True

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        present, pred, truth = self._decode(preds, target)
        iou = box_iou_aligned(pred["boxes"][present], truth["boxes"][present], check=False)
        self.total += iou.double().sum()
        self.count += int(present.sum())


class _CountMetric(_LocalizationMetric):
    """A ratio of integer counts (exact on any machine that makes the same predictions)."""

    higher_is_better = True

    def __init__(self, num_classes: int, image_size: int, **kwargs):
        super().__init__(num_classes, image_size, **kwargs)
        self.add_state("hits", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def compute(self) -> torch.Tensor:
        return self.hits.float() / self.count.clamp(min=1).float()


class ObjectClassAccuracy(_CountMetric):
    """Class accuracy over the images that hold an object."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        present, pred, truth = self._decode(preds, target)
        self.hits += int((pred["classes"] == truth["classes"])[present].sum())
        self.count += int(present.sum())


class LocalizationHit(_CountMetric):
    """Share of the images holding an object whose predicted box has IoU >= ``threshold`` with
    the true one and whose predicted class is right."""

    def __init__(self, num_classes: int, image_size: int, threshold: float = 0.5, **kwargs):
        super().__init__(num_classes, image_size, **kwargs)
        self.threshold = threshold

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        present, pred, truth = self._decode(preds, target)
        iou = box_iou_aligned(pred["boxes"], truth["boxes"], check=False)
        hit = (iou >= self.threshold) & (pred["classes"] == truth["classes"]) & present
        self.hits += int(hit.sum())
        self.count += int(present.sum())


class ObjectnessAccuracy(_CountMetric):
    """Whether ``p_c >= 0.5`` matches the presence of an object, over every image."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.hits += int(((torch.sigmoid(preds[:, 0]) >= 0.5) == (target[:, 0] > 0.5)).sum())
        self.count += preds.shape[0]


class LandmarkError(_MeanOverObjects):
    """Mean distance in pixels between predicted and true landmarks (images with an object)."""

    higher_is_better = False

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        present, pred, truth = self._decode(preds, target)
        diff = (pred["landmarks"] - truth["landmarks"])[present].view(int(present.sum()), -1, 2)
        self.total += diff.double().norm(dim=2).sum()
        self.count += diff.shape[0] * diff.shape[1]


class LocalizationTask(ZooTask):
    """Trains a localization net (``localizer``, ``landmarker``) on images holding at most one
    object. See the module docstring for the outputs, loss and metrics.

    Args:
        net: the network (injected); its output is ``(B, 5 + num_classes [+ 2K])``.
        num_classes: object classes.
        image_size: the side of the (square) images, in pixels (a data fact): boxes and
            landmarks are encoded as fractions of it.
        loss_form: ``"mixed"`` (logistic, squared, cross-entropy) or ``"squared"`` (the notes').
        box_weight, landmark_weight: weights of the box and landmark terms (``"mixed"``).
        class_names: names for predictions and plots (a data fact).
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Localization"
    batch_contract = ("(images, targets): images float32 (B, C, S, S); targets a list of B dicts with "
                      "'boxes' (n, 4) float32 xyxy pixels and 'labels' (n,) int64, n = 0 or 1 (the first "
                      "object is used), and 'landmarks' (n, 2K) float32 (x, y) pixels for a landmark net")
    data_facts_used = ("class_names", "image_size")
    primary_metric = "iou"
    higher_is_better = True
    exact_metrics = ("acc", "hit", "objectness_acc")

    def __init__(self, net: nn.Module, num_classes: int, image_size: int,
                 optimizer: OptimizerFactory | None = None, scheduler: SchedulerFactory | None = None,
                 scheduler_interval: str = "epoch", loss_form: str = "mixed", box_weight: float = 5.0,
                 landmark_weight: float = 5.0, class_names: Sequence[str] | None = None,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if loss_form not in ("mixed", "squared"):
            raise ValueError(f"loss_form must be 'mixed' or 'squared', got {loss_form!r}")
        if int(image_size) < 1 or int(num_classes) < 1:
            raise ValueError(f"num_classes and image_size must be positive, got {num_classes} and {image_size}")
        self.num_classes, self.image_size = int(num_classes), int(image_size)
        self.num_landmarks = int(getattr(net, "num_landmarks", 0))
        self.loss_form, self.box_weight, self.landmark_weight = loss_form, box_weight, landmark_weight
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    def build_metrics(self, prefix: str) -> MetricCollection:
        n, s = self.num_classes, self.image_size
        metrics = {"iou": BoxIoU(n, s), "acc": ObjectClassAccuracy(n, s), "hit": LocalizationHit(n, s),
                   "objectness_acc": ObjectnessAccuracy(n, s)}
        if self.num_landmarks:
            metrics["landmark_err"] = LandmarkError(n, s)
        return MetricCollection(metrics, prefix=prefix)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/iou", "test box IoU", 1.0), ("test/acc", "test class acc (%)", 100.0),
                ("test/hit", "test IoU>=0.5 & class (%)", 100.0)]

    # -- the step ---------------------------------------------------------------------------------
    def encode(self, targets: Sequence[dict], device=None) -> torch.Tensor:
        """Targets of a batch -> ``(B, 5 + n [+ 2K])`` (boxes and landmarks as fractions)."""
        rows = []
        for i, t in enumerate(targets):
            labels, boxes = t["labels"], t["boxes"]
            if len(labels) == 0:
                row = encode_localization(None, None, self.num_classes, self.image_size)
            else:
                row = encode_localization(boxes[0].float().cpu(), int(labels[0]), self.num_classes, self.image_size)
            if self.num_landmarks:
                lm = torch.zeros(2 * self.num_landmarks)
                if len(labels):
                    if "landmarks" not in t:
                        raise ValueError(f"target {i} has no 'landmarks': a landmark net needs the data's "
                                         "landmarks (e.g. data=digit_canvas_single)")
                    lm = t["landmarks"][0].float().cpu() / self.image_size
                    if lm.numel() != 2 * self.num_landmarks:
                        raise ValueError(f"target {i} has {lm.numel() // 2} landmarks, the net regresses "
                                         f"{self.num_landmarks} (model.num_landmarks)")
                row = torch.cat([row, lm])
            rows.append(row)
        return torch.stack(rows).to(device or self.device)

    def shared_step(self, batch, stage: str):
        images, targets = batch
        out = self.net(images)
        target = self.encode(targets, out.device)
        loss, _ = localization_loss(out, target, self.num_classes, self.loss_form, self.box_weight,
                                    self.landmark_weight)
        self.keep_test_examples(stage, images=images[:8], outputs=out[:8], targets=target[:8])
        return loss, out, target

    # -- test outputs: predicted boxes drawn on held-out images ------------------------------------
    test_pictures = ("test_predictions.png",)

    def draw_test_examples(self, ex: dict, folder: Path) -> None:
        from zoo.reporting import plots

        pred = decode_outputs(ex["outputs"], self.num_classes, self.image_size)
        truth = decode_outputs(_logit_form(ex["targets"], self.num_classes), self.num_classes, self.image_size)
        present = ex["targets"][:, 0] > 0.5
        plots.boxes_on_images(
            ex["images"], [pred["boxes"][i:i + 1] for i in range(len(present))],
            [self.class_names[int(c)] for c in pred["classes"]],
            [truth["boxes"][i:i + 1] if present[i] else torch.zeros(0, 4) for i in range(len(present))],
            folder / "test_predictions.png", title="predicted (red) and true (green) boxes on held-out images")

    # -- predictions --------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int = 0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.net(x)

    def describe_prediction(self, output: torch.Tensor, top: int = 5) -> dict:
        d = decode_outputs(output.reshape(1, -1), self.num_classes, self.image_size)
        record = {"object_probability": round(float(d["p_object"][0]), 4),
                  "class": self.class_names[int(d["classes"][0])],
                  "class_probability": round(float(d["class_probability"][0]), 4),
                  "box_xyxy": [round(float(v), 1) for v in d["boxes"][0]]}
        if "landmarks" in d:
            record["landmarks_xy"] = [round(float(v), 1) for v in d["landmarks"][0]]
        return record
