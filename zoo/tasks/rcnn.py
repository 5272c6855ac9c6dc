"""Object detection with Faster R-CNN (Ren et al. 2015): a region proposal network and a Fast
R-CNN head on one backbone, from torchvision's detection framework (``zoo.models.rcnn``).

The batch contract, the metrics and the outputs are those of the YOLO task
(``zoo.tasks.detection``): ``(images, targets)`` batches, COCO's mean average precision on the
validation and test splits (``map50``, the primary metric, and ``map``), held-out detections
drawn on the test images (``test_detections.png``), the same predictions.

**Labels.** torchvision's detectors keep class 0 for the background: the data's class ``c`` is
handed to the net as ``c + 1``, and the detections' labels come back as ``label - 1``. The data
and every output of the task keep the data's classes ``0 .. num_classes - 1``.

**Training** minimises the sum of the net's four losses (the paper's approximate joint
training): the RPN's objectness and box regression (``loss_objectness``, ``loss_rpn_box_reg``)
and the second stage's classification and box regression (``loss_classifier``,
``loss_box_reg``). Each part's epoch mean is logged beside the loss (``train/loss_objectness``
...): the parts are kept with the step's outputs and averaged at the flushes, so they cost no
logging call per step.

**Validation and testing** need both the losses, which torchvision computes only in training
mode (they sample anchors and proposals and match them to the targets), and the detections,
which it returns only in evaluation mode. ``FasterRCNNNet.detect_with_losses`` runs the
backbone once, in evaluation mode (batch norm normalises with its running statistics and does
not update them: validating leaves the net as it was), then the two heads on its features twice,
in training mode for the losses and in evaluation mode for the detections. The cost beyond an
evaluation pass is the RPN head's convolution and the second stage on
``box_batch_size_per_image`` sampled proposals per image, a fraction of the backbone's. The loss
is that of the net as it evaluates (running statistics), like every task's validation loss; its
sampling is seeded (the same figure for the same net and data) in a forked random state, so
validating does not move the random stream training draws from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
from torchmetrics import Metric, MetricCollection

from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask
from zoo.tasks.detection import MAP, describe_detections, draw_detections

__all__ = ["RCNNTask", "LossPart"]

# the net's losses, in the order their parts are kept
LOSS_PARTS = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")


class LossPart(Metric):
    """The epoch mean of one column of the kept loss parts ``(N, len(LOSS_PARTS))`` (each
    example holds its batch's losses, so the mean is weighted by batch size, as the loss's is)."""

    full_state_update = False

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = index
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, parts: torch.Tensor, target=None) -> None:
        self.total = self.total + parts[:, self.index].float().sum()
        self.count = self.count + parts.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class RCNNTask(ZooTask):
    """Trains a Faster R-CNN net on ``(images, targets)``. See the module docstring.

    Args:
        net: the network (injected): a ``zoo.models.rcnn.FasterRCNNNet`` (``faster_rcnn_resnet``,
            ``faster_rcnn_mobilenet``), with ``num_classes`` object classes.
        num_classes: object classes of the data (the net adds the background).
        loss_seed: seeds the sampling of the validation and test losses (``None``: drawn from
            the running random stream).
        class_names: names for predictions and plots (a data fact).
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Detection"
    batch_contract = ("(images, targets): images float32 (B, C, S, S); targets a list of B dicts with "
                      "'boxes' (n, 4) float32 xyxy pixels and 'labels' (n,) int64 in 0..num_classes-1, any n >= 0")
    data_facts_used = ("class_names",)
    primary_metric = "map50"
    ap_metrics = ("map50", "map")  # boxes matched at IoU thresholds: zoo.reproducibility.AP_MATCH
    higher_is_better = True

    def __init__(self, net: nn.Module, num_classes: int, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 loss_seed: int | None = 0, class_names: Sequence[str] | None = None,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if not hasattr(net, "detect_with_losses"):
            raise ValueError(f"RCNNTask needs a Faster R-CNN net (model=faster_rcnn_mobilenet or "
                             f"model=faster_rcnn_resnet); {type(net).__name__} is not one")
        if int(num_classes) != int(net.num_classes):
            raise ValueError(f"num_classes={num_classes} disagrees with the net's {net.num_classes} object classes "
                             "(the background is the net's own, not counted in either)")
        self.num_classes = int(num_classes)
        self.loss_seed = loss_seed
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    def build_metrics(self, prefix: str) -> MetricCollection:
        if prefix == "train/":  # no decoding while training: the loss's parts
            return MetricCollection({k: LossPart(i) for i, k in enumerate(LOSS_PARTS)}, prefix=prefix,
                                    compute_groups=False)
        return MetricCollection({"map50": MAP("map_50"), "map": MAP("map")}, prefix=prefix, compute_groups=False)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/map50", "test mAP@0.5", 1.0), ("test/map", "test mAP@[.5:.95]", 1.0)]

    # -- the step -----------------------------------------------------------------------------------
    @staticmethod
    def net_targets(targets: list[dict], device: torch.device) -> list[dict[str, torch.Tensor]]:
        """The targets as the net takes them: boxes and labels only, labels shifted by +1
        (class 0 is torchvision's background)."""
        return [{"boxes": t["boxes"].to(device=device, dtype=torch.float32),
                 "labels": t["labels"].to(device=device, dtype=torch.int64) + 1} for t in targets]

    @staticmethod
    def data_detections(detections: list[dict]) -> list[dict[str, torch.Tensor]]:
        """The net's detections with the data's labels (shifted by -1)."""
        return [{"boxes": d["boxes"], "scores": d["scores"], "labels": d["labels"] - 1} for d in detections]

    def shared_step(self, batch, stage: str):
        images, targets = batch
        wanted = self.net_targets(targets, images.device)
        if stage == "train":
            losses = self.net(images, wanted)
            loss = sum(losses[k] for k in LOSS_PARTS)
            parts = torch.stack([losses[k].detach() for k in LOSS_PARTS])
            return loss, parts.expand(len(targets), -1), [None] * len(targets)
        losses, detections = self.net.detect_with_losses(images, wanted, seed=self.loss_seed)
        loss = sum(losses[k] for k in LOSS_PARTS)
        detections = self.data_detections(detections)
        truth = [{"boxes": t["boxes"].to(images.device), "labels": t["labels"].to(images.device)} for t in targets]
        self.keep_test_examples(stage, images=images[:8], detections=detections[:8], truth=truth[:8])
        return loss, detections, truth

    test_pictures = ("test_detections.png",)

    def draw_test_examples(self, ex: dict, folder: Path) -> None:
        draw_detections(ex, self.class_names, folder / "test_detections.png", "Faster R-CNN")

    def test_outputs(self) -> dict:
        return {"anchor_sizes": list(getattr(self.net, "anchor_sizes", ())),
                "aspect_ratios": list(getattr(self.net, "aspect_ratios", ()))}

    # -- predictions --------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int = 0):
        """Detections of a batch of images (the net in evaluation mode for the call), with the
        data's labels: a list of dicts ``boxes`` (n, 4) xyxy pixels, ``scores`` (n,), ``labels`` (n,)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        was_training = self.net.training
        self.net.eval()
        try:
            return self.data_detections(self.net(x))
        finally:
            self.net.train(was_training)

    def describe_prediction(self, output: dict, top: int = 5) -> dict:
        return describe_detections(output, self.class_names)
