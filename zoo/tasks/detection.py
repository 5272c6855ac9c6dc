"""Object detection with YOLO (v2/v3 style): every object of an image, its box and class, from one
pass of a grid net (``zoo.models.yolo``), the loss and decoding of ``zoo.losses.yolo``.

**Anchors** are chosen from the data, as YOLOv2 does: k-means with the distance ``1 - IoU`` on
the widths and heights of the training boxes (``zoo.ops.kmeans_anchors``), when training starts
(the datamodule's ``train_box_sizes()``). They are a buffer of the task, so a checkpoint carries
them to evaluation and prediction, and the run records them with their mean best IoU.

**Metrics** (torchmetrics' ``MeanAveragePrecision``, COCO's definition, on the validation and
test splits; training logs its loss only, decoding every step would cost more than the step):
``map50``, the mean average precision at IoU 0.5 (PASCAL VOC's figure), and ``map``, the mean
over IoU thresholds 0.50:0.05:0.95 (COCO's). ``collisions`` counts ground-truth boxes a
training batch could not place (two boxes on the same cell and anchor).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.detection import MeanAveragePrecision

from zoo.losses.yolo import build_yolo_targets, decode_yolo, yolo_loss
from zoo.ops import kmeans_anchors, mean_best_iou
from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask

__all__ = ["DetectionTask", "MAP", "draw_detections", "describe_detections"]

log = logging.getLogger(__name__)
# the COCO evaluator prints its whole summary table at every evaluation; the figures are logged
logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)


class MAP(MeanAveragePrecision):
    """One figure of COCO's mean average precision as a scalar metric: ``map`` (IoU
    0.50:0.05:0.95) or ``map_50``."""

    # COCO's thresholds as its own evaluator makes them (float64): torchmetrics' defaults are
    # float32 (0.3 becomes 0.30000001), which moves a recall of exactly 3/10 to the other side of
    # its threshold and the figure by a few 1e-4 (measured against pycocotools)
    IOU_THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(10)]
    RECALL_THRESHOLDS = [round(0.01 * i, 2) for i in range(101)]

    def __init__(self, key: str = "map", **kwargs):
        thresholds = [0.5] if key == "map_50" else self.IOU_THRESHOLDS
        super().__init__(box_format="xyxy", iou_type="bbox", iou_thresholds=thresholds,
                         rec_thresholds=self.RECALL_THRESHOLDS, backend="faster_coco_eval", **kwargs)
        self.key = key

    def compute(self) -> torch.Tensor:
        return super().compute()[self.key]


class DetectionTask(ZooTask):
    """Trains a YOLO net on ``(images, targets)``. See the module docstring.

    Args:
        net: the network (injected): ``(B, C, S, S)`` -> ``(B, A, G, G, 5 + num_classes)``, with
            ``num_anchors``, ``stride`` and ``grid`` attributes.
        num_classes: object classes.
        lambda_coord, lambda_noobj, ignore_threshold: the loss's weights and ignore rule
            (``zoo.losses.yolo.yolo_loss``).
        conf_threshold, nms_iou, max_detections: decoding (``zoo.losses.yolo.decode_yolo``).
        anchor_seed: the seed of the anchors' k-means.
        class_names: names for predictions and plots (a data fact).
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Detection"
    batch_contract = ("(images, targets): images float32 (B, C, S, S); targets a list of B dicts with "
                      "'boxes' (n, 4) float32 xyxy pixels and 'labels' (n,) int64, any n >= 0")
    data_facts_used = ("class_names", "anchors")  # anchors: a published weight's card holds them
    primary_metric = "map50"
    ap_metrics = ("map50", "map")  # boxes matched at IoU thresholds: zoo.reproducibility.AP_MATCH
    higher_is_better = True

    def __init__(self, net: nn.Module, num_classes: int, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 lambda_coord: float = 5.0, lambda_noobj: float = 0.5, ignore_threshold: float = 0.5,
                 conf_threshold: float = 0.05, nms_iou: float = 0.5, max_detections: int = 100,
                 anchor_seed: int = 0, class_names: Sequence[str] | None = None,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1, anchors: Sequence[Sequence[float]] | None = None):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        for attr in ("num_anchors", "stride", "grid"):
            if not hasattr(net, attr):
                raise ValueError(f"DetectionTask needs a grid net with `{attr}` (e.g. model=yolo_tiny); "
                                 f"{type(net).__name__} has none")
        self.num_classes = int(num_classes)
        self.lambda_coord, self.lambda_noobj, self.ignore_threshold = lambda_coord, lambda_noobj, ignore_threshold
        self.conf_threshold, self.nms_iou, self.max_detections = conf_threshold, nms_iou, max_detections
        self.anchor_seed = anchor_seed
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.register_buffer("anchors", torch.zeros(net.num_anchors, 2))  # (w, h) pixels; set in on_fit_start
        if anchors is not None:  # given (a published weight's anchors): kept, not chosen again
            given = torch.as_tensor(anchors, dtype=torch.float32)
            if given.shape != self.anchors.shape or not bool((given > 0).all()):
                raise ValueError(f"anchors must be {net.num_anchors} positive (w, h) pairs in pixels, one per "
                                 f"anchor of the net, got {anchors!r}")
            self.anchors.copy_(given)
        self.anchor_iou: float | None = None
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    def build_metrics(self, prefix: str) -> MetricCollection:
        if prefix == "train/":
            return MetricCollection({}, prefix=prefix)
        return MetricCollection({"map50": MAP("map_50"), "map": MAP("map")}, prefix=prefix, compute_groups=False)

    def published_facts(self) -> dict:
        """The anchors, in full precision: they are the task's, not the net's, and decode its outputs."""
        return {"anchors": self.anchors.tolist()}

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/map50", "test mAP@0.5", 1.0), ("test/map", "test mAP@[.5:.95]", 1.0)]

    # -- anchors ------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if bool((self.anchors > 0).all()):  # resumed, or set by hand
            return
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "train_box_sizes"):
            raise ValueError("DetectionTask chooses its anchors from the training boxes: the datamodule must "
                             "offer train_box_sizes() (e.g. data=digit_canvas)")
        wh = dm.train_box_sizes().float()
        anchors = kmeans_anchors(wh, self.net.num_anchors, seed=self.anchor_seed)
        self.anchors.copy_(anchors.to(self.anchors))
        self.anchor_iou = float(mean_best_iou(wh, anchors))
        log.info("anchors (w, h in pixels, k-means on %d training boxes): %s; mean best IoU %.3f",
                 len(wh), [[round(float(v), 1) for v in a] for a in anchors], self.anchor_iou)

    # -- the step -----------------------------------------------------------------------------------
    def shared_step(self, batch, stage: str):
        images, targets = batch
        if not bool((self.anchors > 0).all()):
            raise ValueError("the task has no anchors yet: train it (they are chosen when training starts) "
                             "or load a checkpoint that holds them")
        pred = self.net(images)
        built = build_yolo_targets(targets, self.anchors, self.net.grid, self.net.stride, self.num_classes)
        loss, parts = yolo_loss(pred, built, self.anchors, self.net.stride, self.lambda_coord,
                                self.lambda_noobj, self.ignore_threshold, num_classes=self.num_classes)
        if stage == "train":
            return loss, [None] * len(targets), [None] * len(targets)  # no decoding while training
        detections = decode_yolo(pred.detach(), self.anchors, self.net.stride, self.conf_threshold, self.nms_iou,
                                 self.max_detections, num_classes=self.num_classes,
                                 image_size=tuple(images.shape[-2:]))
        truth = [{"boxes": t["boxes"].to(pred.device), "labels": t["labels"].to(pred.device)} for t in targets]
        self.keep_test_examples(stage, images=images[:8], detections=detections[:8], truth=truth[:8])
        return loss, detections, truth

    def metric_inputs(self, outputs, target, stage: str):
        return outputs, target

    test_pictures = ("test_detections.png",)

    def draw_test_examples(self, ex: dict, folder: Path) -> None:
        draw_detections(ex, self.class_names, folder / "test_detections.png", "YOLO")

    def test_outputs(self) -> dict:
        out = {"anchors": [[round(float(v), 2) for v in a] for a in self.anchors]}
        if self.anchor_iou is not None:
            out["anchor_mean_iou"] = round(self.anchor_iou, 4)
        return out

    # -- predictions --------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int = 0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return decode_yolo(self.net(x), self.anchors, self.net.stride, self.conf_threshold, self.nms_iou,
                           self.max_detections, num_classes=self.num_classes, image_size=tuple(x.shape[-2:]))

    def describe_prediction(self, output: dict, top: int = 5) -> dict:
        return describe_detections(output, self.class_names)


def draw_detections(ex: dict, class_names: Sequence[str], path: Path, name: str) -> None:
    """Kept test examples (``images``, ``detections``, ``truth``) drawn: the detections scoring at
    least 0.5 in red with their classes, the true boxes in green."""
    from zoo.reporting import plots

    shown = [d["scores"] >= 0.5 for d in ex["detections"]]
    plots.boxes_on_images(
        ex["images"], [d["boxes"][keep] for d, keep in zip(ex["detections"], shown)],
        [" ".join(class_names[int(c)] for c in d["labels"][keep]) for d, keep in zip(ex["detections"], shown)],
        [t["boxes"] for t in ex["truth"]], path,
        title=f"{name}: detections with score >= 0.5 (red) and true boxes (green) on held-out images")


def describe_detections(output: dict, class_names: Sequence[str], threshold: float = 0.5) -> dict:
    """One image's detections scoring at least ``threshold``: class, score and box in pixels."""
    keep = output["scores"] >= threshold
    return {"objects": [{"class": class_names[int(c)], "score": round(float(s), 4),
                         "box_xyxy": [round(float(v), 1) for v in b]}
                        for b, s, c in zip(output["boxes"][keep], output["scores"][keep], output["labels"][keep])]}
