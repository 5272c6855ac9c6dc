"""Semantic segmentation: a class for every pixel (U-Net, ``zoo.models.unet``).

The net maps images (B, C, H, W) to logits (B, K, H, W), K = the object classes + background
(class 0); the loss is the per-pixel cross-entropy. Metrics (torchmetrics objects over every
pixel of the split, summed across processes before the ratios are taken):

* ``miou``: the mean over the object classes (background left out) of each class's IoU,
  ``TP / (TP + FP + FN)`` counted over all pixels of the split -- the PASCAL VOC figure;
* ``dice``: the mean over the object classes of ``2 TP / (2 TP + FP + FN)`` (the F1 of pixels);
* ``pixel_acc``: the share of pixels whose class is right (background included).

The step keeps the predicted class map (B, H, W), not the logits, so that a split's figures cost
one int64 per pixel until they are counted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask, exact_counting

__all__ = ["SegmentationTask", "ObjectClassIoU", "ObjectClassDice"]


class ObjectClassIoU(MulticlassJaccardIndex):
    """Per-class IoU from pixel counts, averaged over the classes after ``background`` (0);
    pixels labelled ``ignore_index`` (VOC's object borders, 255) are not counted."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, **kwargs):
        super().__init__(num_classes, average="none", ignore_index=ignore_index, validate_args=False, **kwargs)

    def compute(self) -> torch.Tensor:
        return super().compute()[1:].mean()


class ObjectClassDice(MulticlassF1Score):
    """Per-class Dice (the F1 of pixels), averaged over the classes after ``background`` (0)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, **kwargs):
        super().__init__(num_classes, average="none", multidim_average="global", ignore_index=ignore_index,
                         validate_args=False, **kwargs)

    def compute(self) -> torch.Tensor:
        return super().compute()[1:].mean()


def _masks(targets) -> torch.Tensor:
    """The batch's class maps: a (B, H, W) tensor, or the ``masks`` of a list of target dicts."""
    if isinstance(targets, torch.Tensor):
        return targets
    return torch.stack([t["masks"] for t in targets])


class SegmentationTask(ZooTask):
    """Trains a segmentation net on ``(images, masks)``. See the module docstring.

    Args:
        net: the network (injected), images (B, C, H, W) -> logits (B, num_classes, H, W).
        num_classes: classes of the map, background (0) included.
        class_weights: optional weights of the classes in the cross-entropy (background is most
            of the pixels of a canvas).
        background_weight: the background's weight in the cross-entropy, every object class
            weighing 1: ``class_weights`` for any number of classes (not both).
        class_names: names of the object classes (a data fact); the map's class ``k`` is object
            class ``k - 1``.
        ignore_index: a mask value that marks pixels to leave out of the loss and the metrics
            (a data fact: VOC's object borders, 255), or None.
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Segmentation"
    batch_contract = ("(images, targets): images float32 (B, C, H, W); targets int64 (B, H, W) class maps "
                      "(0 background, k the k-th object class), or a list of B dicts with such a 'masks' map")
    data_facts_used = ("class_names", "ignore_index")
    primary_metric = "miou"
    extra_classes = 1  # the background
    higher_is_better = True
    exact_metrics = ("miou", "dice", "pixel_acc")

    def __init__(self, net: nn.Module, num_classes: int, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 class_weights: Sequence[float] | None = None, class_names: Sequence[str] | None = None,
                 ignore_index: int | None = None, gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1, background_weight: float | None = None):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if int(num_classes) < 2:
            raise ValueError(f"num_classes counts background and the object classes: at least 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        weights = None if class_weights is None else [float(w) for w in class_weights]
        if background_weight is not None:
            if not float(background_weight) > 0:
                raise ValueError(f"background_weight must be positive, got {background_weight!r}")
            derived = [float(background_weight)] + [1.0] * (self.num_classes - 1)
            # both are accepted only when they agree: checkpoints written before the hyperparameters
            # were saved from the arguments as given hold the derived weights beside background_weight
            if weights is not None and weights != derived:
                raise ValueError("give class_weights or background_weight, not both (background_weight is "
                                 "class_weights with the background's weight and 1 for every object class)")
            weights = derived
        if weights is not None and len(weights) != self.num_classes:
            raise ValueError(f"class_weights has {len(weights)} values, one per class of the map "
                             f"({self.num_classes}, background included) is needed")
        self.register_buffer("class_weights", torch.tensor(weights, dtype=torch.float32)
                             if weights is not None else None, persistent=False)
        names = list(class_names) if class_names else [str(i) for i in range(self.num_classes - 1)]
        self.class_names = ["background", *names]
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    def build_metrics(self, prefix: str) -> MetricCollection:
        k = self.num_classes
        ig = self.ignore_index
        return MetricCollection({"miou": ObjectClassIoU(k, ig), "dice": ObjectClassDice(k, ig),
                                 "pixel_acc": MulticlassAccuracy(k, average="micro", ignore_index=ig,
                                                                 validate_args=False)},
                                prefix=prefix)

    def metric_update_context(self):
        return exact_counting()  # pixel counts by bincount, exact in any order

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/miou", "test mean IoU (objects)", 1.0), ("test/dice", "test Dice (objects)", 1.0),
                ("test/pixel_acc", "test pixel acc (%)", 100.0)]

    def shared_step(self, batch, stage: str):
        images, targets = batch
        masks = _masks(targets).to(images.device)
        logits = self.net(images)
        if logits.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"the net's map is {tuple(logits.shape[-2:])} but the masks are "
                             f"{tuple(masks.shape[-2:])}: a segmentation net must keep the image size")
        loss = F.cross_entropy(logits, masks, weight=self.class_weights,
                               ignore_index=-100 if self.ignore_index is None else self.ignore_index)
        preds = logits.argmax(dim=1)
        self.keep_test_examples(stage, images=images[:4], preds=preds[:4], masks=masks[:4])
        return loss, preds, masks

    test_pictures = ("test_segmentation.png",)

    def draw_test_examples(self, ex: dict, folder: Path) -> None:
        from zoo.reporting import plots

        plots.segmentation_overlays(ex["images"], ex["masks"], ex["preds"], self.num_classes,
                                    folder / "test_segmentation.png",
                                    title="held-out images: true map (middle), predicted map (right)")

    def predict_step(self, batch, batch_idx: int = 0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.net(x).softmax(dim=1)  # (B, K, H, W)

    def describe_prediction(self, output: torch.Tensor, top: int = 5) -> dict:
        """The classes found in one image's map, with their pixel counts (background left out)."""
        classes = output.argmax(dim=0)
        counts = torch.bincount(classes.flatten(), minlength=self.num_classes)
        found = [(self.class_names[k], int(counts[k])) for k in range(1, self.num_classes) if counts[k] > 0]
        found.sort(key=lambda kv: -kv[1])
        return {"classes": [{"class": name, "pixels": n} for name, n in found[:top]],
                "map_size": list(classes.shape)}
