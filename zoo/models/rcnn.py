"""Faster R-CNN (Ren, He, Girshick & Sun 2015, "Faster R-CNN: towards real-time object detection
with region proposal networks", NeurIPS) on the zoo's own backbones, assembled from torchvision's
detection framework (``torchvision.models.detection.FasterRCNN``).

Two stages share one feature map:

* **backbone** (:class:`StageFeatures`): the stem and the first stages of a registered zoo
  classifier (a ResNet or a MobileNet), up to the deepest stage whose output has stride
  ``feature_stride``; its classifier (pooling, head, ``fc``) is dropped. Stride 8 gives a 12x12
  map of 8 px cells on the 96x96 digit canvases, whose digits' boxes are 12 to 34 px tall.
* **region proposal network** (torchvision's ``RegionProposalNetwork`` and ``RPNHead``): a 3x3
  convolution and two sibling 1x1 convolutions score ``k`` anchors per cell (objectness) and
  regress their boxes; ``AnchorGenerator`` places ``len(anchor_sizes) x len(aspect_ratios)``
  anchors (the paper's 3 scales x 3 ratios) at every cell. Proposals are the decoded boxes of the
  best-scored anchors after non-maximum suppression (IoU 0.7).
* **Fast R-CNN head** (torchvision's ``RoIHeads``): ``MultiScaleRoIAlign`` on the one map (RoI
  Align, the bilinear successor of the paper's RoI max pooling), two fully connected layers of
  ``representation_size`` (``TwoMLPHead``) and ``FastRCNNPredictor``: scores for
  ``num_classes + 1`` classes and class-specific box deltas.

**Labels.** torchvision reserves class 0 for the background, so the data's class ``c`` is label
``c + 1`` here: targets carry labels in ``1 .. num_classes`` and detections come back with
them. The detection task shifts them on the way in and out (``zoo.tasks.rcnn``); the data keep
``0 .. num_classes - 1``.

**Preprocessing.** torchvision's ``GeneralizedRCNNTransform`` would resize every image to
``min_size`` and normalise it with ImageNet's mean and standard deviation. Here
``min_size = max_size = image_size`` (scale factor 1: the image is left as it is), the mean is 0
and the standard deviation 1 (the images arrive normalised by their datamodule), and images are
padded to a multiple of ``feature_stride``, which ``image_size`` already is: a
``(B, C, image_size, image_size)`` batch reaches the backbone unchanged.

**What ``forward(images, targets=None, proposals=None)`` returns** (``images``: float
``(B, in_chans, H, W)``, or a list of ``(in_chans, H, W)``):

* training mode, with ``targets`` (a list of B dicts, ``boxes`` ``(n, 4)`` float xyxy pixels,
  ``labels`` ``(n,)`` int64 in ``1 .. num_classes``): torchvision's dict of the four losses,
  unchanged: ``loss_objectness``, ``loss_rpn_box_reg`` (the RPN's), ``loss_classifier``,
  ``loss_box_reg`` (the second stage's). Training minimises their sum (the paper's approximate
  joint training: the proposals are constants to the second stage).
* evaluation mode: torchvision's list of B dicts, unchanged: ``boxes`` ``(n, 4)`` xyxy pixels,
  ``scores`` ``(n,)``, ``labels`` ``(n,)`` int64 in ``1 .. num_classes``, after per-class NMS.
* training mode without targets: the raw outputs of both stages, a tuple of four tensors with
  the batch first (no loss can be formed without targets; these are what one would be formed
  from): the RPN's objectness logits ``(B, N)`` and box deltas ``(B, N, 4)`` at all ``N``
  anchors, then, for the ``box_batch_size_per_image`` best-scored anchors of each image (their
  decoded, clipped boxes, before NMS), the second stage's class logits ``(B, K, num_classes + 1)``
  and box deltas ``(B, K, num_classes + 1, 4)``. Every parameter takes part, so the generic
  forward-backward check and the FLOP counter of a training step see the whole net.
* with ``proposals`` (a list of B ``(m, 4)`` float tensors, xyxy pixels): **Fast R-CNN**
  (Girshick 2015): the RPN is skipped and the second stage classifies and refines the given
  boxes; training mode returns ``loss_classifier`` and ``loss_box_reg`` only.

:meth:`FasterRCNNNet.detect_with_losses` gives the losses and the detections of a batch at once,
with the backbone in evaluation mode (what validation needs; see its docstring).
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Sequence

import torch
import torch.nn as nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import AnchorGenerator, concat_box_prediction_layers
from torchvision.ops import MultiScaleRoIAlign, clip_boxes_to_image

from zoo.registry import create_model, model_card, register_model

__all__ = ["FasterRCNNNet", "StageFeatures", "faster_rcnn_mobilenet", "faster_rcnn_resnet"]

LOSS_KEYS = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")
_PAPER = "Ren et al. 2015, Faster R-CNN: towards real-time object detection with region proposal networks, NeurIPS"


class StageFeatures(nn.Module):
    """The stem and the first stages of a zoo classifier, as a feature extractor.

    Input ``(B, in_chans, H, W)`` with ``H`` and ``W`` multiples of ``stride``; output
    ``(B, out_channels, H / stride, W / stride)``. ``body`` holds the stem and the stages in
    order, the same modules (and so the same weights) as in the classifier they come from.
    """

    def __init__(self, units: Sequence[nn.Module], out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*units)
        self.out_channels = int(out_channels)  # torchvision's FasterRCNN reads this
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _units(net: nn.Module, name: str) -> list[nn.Module]:
    """The stem and the stages of a zoo classifier, in order (ResNet and MobileNet v2:
    ``stem`` and ``stages``; MobileNet v1: ``stem`` and ``blocks``)."""
    stages = getattr(net, "stages", None)
    if stages is None:
        stages = getattr(net, "blocks", None)
    if not hasattr(net, "stem") or stages is None:
        raise ValueError(f"backbone={name!r} has no stem and stages to take features from; use a ResNet "
                         "(resnet18, resnet20_cifar ...) or a MobileNet (mobilenet_v2, mobilenet_v1)")
    return [net.stem, *stages]


@torch.no_grad()
def _stage_shapes(units: Sequence[nn.Module], in_chans: int, size: int) -> list[tuple[int, int]]:
    """(channels, side) after each unit, for a ``size`` x ``size`` input (evaluation mode)."""
    modes = [u.training for u in units]
    x = torch.zeros(1, in_chans, size, size)
    shapes = []
    try:
        for u in units:
            u.eval()
            x = u(x)
            shapes.append((int(x.shape[1]), int(x.shape[-1])))
    finally:
        for u, mode in zip(units, modes):
            u.train(mode)
    return shapes


def _cut(net: nn.Module, name: str, in_chans: int, feature_stride: int) -> StageFeatures:
    """The units of ``net`` up to the deepest one whose output has stride ``feature_stride``."""
    units = _units(net, name)
    probe = max(64, 4 * feature_stride)  # a power of two: every stride divides it exactly
    shapes = _stage_shapes(units, in_chans, probe)
    strides = [probe // side for _, side in shapes]
    if feature_stride not in strides:
        raise ValueError(f"feature_stride={feature_stride} is not the stride of any stage of backbone={name!r} "
                         f"with these options: its stem and stages have strides {strides}")
    last = max(i for i, s in enumerate(strides) if s == feature_stride)
    return StageFeatures(units[: last + 1], shapes[last][0], feature_stride)


def build_backbone(name: str, in_chans: int, feature_stride: int, options: dict[str, Any],
                   pretrained: str | None = None) -> StageFeatures:
    """The feature extractor of the registered classifier ``name``: built with ``in_chans`` and
    ``options`` (arguments of its builder; ``None`` values are left to the builder or to the
    weights), cut at ``feature_stride``.

    ``pretrained`` (a published weight tag of ``name``, e.g. ``"mnist5k"``) starts the extractor
    from those weights, loaded by ``create_model(name, pretrained=tag)``. Arguments left ``None``
    follow the weights. An explicit one may differ from the weights' where every kept tensor
    keeps its shape (``small_input``, which changes strides only); one that changes a kept
    tensor's shape (another ``in_chans`` or ``width_mult``) is refused, since that tensor would
    start untrained.
    """
    try:
        card = model_card(name)
    except KeyError as err:
        raise ValueError(f"backbone={name!r}: {err}") from None
    accepted = card.defaults
    explicit = {"in_chans": in_chans, **{k: v for k, v in options.items() if v is not None}}
    unknown = [k for k in explicit if k not in accepted]
    if unknown:
        raise ValueError(f"backbone={name!r} takes no argument {unknown[0]!r}; its builder takes "
                         f"{', '.join(accepted)}")
    if pretrained is None:
        return _cut(create_model(name, **explicit), name, in_chans, feature_stride)
    try:
        published = create_model(name, pretrained=pretrained)
    except KeyError as err:  # zoo.weights.UnknownWeightsError: no such tag
        raise ValueError(f"pretrained_backbone={pretrained!r}: {err}") from None
    spec = {**accepted, **published.zoo_spec["kwargs"]}  # the weights' arguments, defaults filled in
    wanted = {**spec, **explicit}
    if wanted == spec:
        return _cut(published, name, in_chans, feature_stride)
    target = _cut(create_model(name, **wanted), name, in_chans, feature_stride)
    # the same units, in the same order, as the target's ``body`` (the target may keep fewer)
    theirs = StageFeatures(_units(published, name), 0, 1).state_dict()
    ours = target.state_dict()
    if any(k not in theirs or theirs[k].shape != v.shape for k, v in ours.items()):
        said = ", ".join(f"{k}={v!r} (the weights: {spec[k]!r})" for k, v in explicit.items() if spec[k] != v)
        raise ValueError(f"pretrained_backbone={pretrained!r}: the weights {name}.{pretrained} do not fit this "
                         f"backbone: {said}. Leave these options to the weights (null) or set them as the "
                         "weights have them")
    theirs = {k: theirs[k] for k in ours}
    target.load_state_dict(theirs)
    return target


class FasterRCNNNet(nn.Module):
    """A torchvision ``FasterRCNN`` (``detector``) over a zoo backbone (see the module docstring
    for what ``forward`` returns in each mode).

    Args:
        backbone: the feature extractor (``out_channels`` and ``stride`` attributes).
        num_classes: object classes; the second stage scores one more (background, label 0).
        in_chans, image_size: the input; ``image_size`` must be a multiple of the backbone's stride.
        anchor_sizes: anchor sides in pixels (the square root of their area).
        aspect_ratios: anchor height / width ratios; ``len(anchor_sizes) * len(aspect_ratios)``
            anchors per feature-map cell.
        rpn_*: the RPN's settings (torchvision's names): proposals kept before and after NMS in
            training and testing, the NMS IoU, the IoU above which an anchor is positive and
            below which it is negative, and the anchors sampled per image for its loss.
        roi_output_size, sampling_ratio: RoI Align's output grid and its bilinear samples per bin.
        representation_size: width of the second stage's two fully connected layers.
        box_*: the second stage's settings (torchvision's names): proposals sampled per image
            for its loss and their positive share, the IoU for a positive proposal, and the
            detections' score threshold, per-class NMS IoU and count per image.
    """

    head_name = "detector.roi_heads.box_predictor"  # class scores and box deltas: sized by the classes

    def __init__(self, backbone: StageFeatures, num_classes: int = 10, in_chans: int = 1, image_size: int = 96,
                 anchor_sizes: Sequence[int] = (16, 24, 32), aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 rpn_pre_nms_top_n_train: int = 1000, rpn_post_nms_top_n_train: int = 300,
                 rpn_pre_nms_top_n_test: int = 500, rpn_post_nms_top_n_test: int = 100,
                 rpn_nms_thresh: float = 0.7, rpn_fg_iou_thresh: float = 0.7, rpn_bg_iou_thresh: float = 0.3,
                 rpn_batch_size_per_image: int = 256, roi_output_size: int = 7, sampling_ratio: int = 2,
                 representation_size: int = 256, box_batch_size_per_image: int = 64,
                 box_positive_fraction: float = 0.25, box_fg_iou_thresh: float = 0.5,
                 box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5, box_detections_per_img: int = 100):
        super().__init__()
        _check_int("num_classes", num_classes, 1, "object classes; the background class is added to them")
        _check_int("in_chans", in_chans, 1)
        _check_image_size(image_size, backbone.stride)
        if not anchor_sizes or any(not s > 0 for s in anchor_sizes):
            raise ValueError(f"anchor_sizes must be positive sides in pixels, got {anchor_sizes!r}")
        if not aspect_ratios or any(not r > 0 for r in aspect_ratios):
            raise ValueError(f"aspect_ratios must be positive height/width ratios, got {aspect_ratios!r}")
        self.num_classes, self.in_chans, self.image_size = int(num_classes), int(in_chans), int(image_size)
        self.anchor_sizes = tuple(int(s) for s in anchor_sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.stride = backbone.stride
        self.rois_per_image = int(box_batch_size_per_image)
        anchors = AnchorGenerator(sizes=(self.anchor_sizes,), aspect_ratios=(self.aspect_ratios,))
        roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=roi_output_size, sampling_ratio=sampling_ratio)
        box_head = TwoMLPHead(backbone.out_channels * roi_output_size ** 2, representation_size)
        self.detector = FasterRCNN(
            backbone, num_classes=None,
            min_size=self.image_size, max_size=self.image_size,
            image_mean=[0.0] * self.in_chans, image_std=[1.0] * self.in_chans, size_divisible=self.stride,
            rpn_anchor_generator=anchors,
            rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train, rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_train=rpn_post_nms_top_n_train, rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
            rpn_nms_thresh=rpn_nms_thresh, rpn_fg_iou_thresh=rpn_fg_iou_thresh, rpn_bg_iou_thresh=rpn_bg_iou_thresh,
            rpn_batch_size_per_image=rpn_batch_size_per_image,
            box_roi_pool=roi_pool, box_head=box_head,
            box_predictor=FastRCNNPredictor(representation_size, self.num_classes + 1),
            box_score_thresh=box_score_thresh, box_nms_thresh=box_nms_thresh,
            box_detections_per_img=box_detections_per_img, box_fg_iou_thresh=box_fg_iou_thresh,
            box_batch_size_per_image=box_batch_size_per_image,
            box_positive_fraction=box_positive_fraction,
        )

    # -- the passes -----------------------------------------------------------------------------
    def forward(self, images: torch.Tensor | list[torch.Tensor], targets: list[dict] | None = None,
                proposals: list[torch.Tensor] | None = None):
        """See the module docstring: a dict of losses (training, with targets), a list of
        detections (evaluation), the raw outputs of both stages (training, without targets)."""
        if proposals is not None:
            return self._fast_rcnn(images, proposals, targets)
        if self.training and targets is None:
            return self.raw_outputs(images)
        return self.detector(images, targets)

    def raw_outputs(self, images: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The outputs of both stages before any loss or post-processing (module docstring):
        ``(objectness (B, N), rpn deltas (B, N, 4), class logits (B, K, C + 1), box deltas
        (B, K, C + 1, 4))``, ``K = min(box_batch_size_per_image, N)``."""
        det = self.detector
        image_list, _ = det.transform(images)
        feature = det.backbone(image_list.tensors)
        b = feature.shape[0]
        objectness, deltas = det.rpn.head([feature])
        anchors = det.rpn.anchor_generator(image_list, [feature])
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)  # (B * N, 1), (B * N, 4)
        boxes = det.rpn.box_coder.decode(deltas.detach(), anchors).view(b, -1, 4)
        objectness, deltas = objectness.view(b, -1), deltas.view(b, -1, 4)
        k = min(self.rois_per_image, objectness.shape[1])
        best = objectness.detach().topk(k, dim=1).indices
        rois = [clip_boxes_to_image(boxes[i, best[i]], image_list.image_sizes[i]) for i in range(b)]
        heads = det.roi_heads
        pooled = heads.box_roi_pool(OrderedDict([("0", feature)]), rois, image_list.image_sizes)
        logits, box_deltas = heads.box_predictor(heads.box_head(pooled))
        return objectness, deltas, logits.view(b, k, -1), box_deltas.view(b, k, -1, 4)

    def _fast_rcnn(self, images, proposals: list[torch.Tensor], targets: list[dict] | None):
        """The second stage alone on given boxes (Fast R-CNN)."""
        det = self.detector
        if self.training and targets is None:
            raise ValueError("Fast R-CNN training (proposals given, training mode) needs targets")
        if len(proposals) != len(images):
            raise ValueError(f"proposals must hold one (m, 4) tensor per image: {len(proposals)} for "
                             f"{len(images)} images")
        sizes = [tuple(img.shape[-2:]) for img in images]
        image_list, targets = det.transform(images, targets)
        features = OrderedDict([("0", det.backbone(image_list.tensors))])
        proposals = [p.to(features["0"].dtype) for p in proposals]
        detections, losses = det.roi_heads(features, proposals, image_list.image_sizes, targets)
        if self.training:
            return losses
        return det.transform.postprocess(detections, image_list.image_sizes, sizes)

    def detect_with_losses(self, images: torch.Tensor | list[torch.Tensor], targets: list[dict],
                           seed: int | None = 0) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        """The four losses and the detections of one batch, for validation and testing.

        The losses need the RPN and the second stage in training mode (they sample anchors and
        proposals and match them to the targets), the detections need them in evaluation mode.
        The backbone runs once, in evaluation mode whatever the net's mode: batch norm normalises
        with its running statistics and does not update them. Both heads then run twice on its
        features (in training mode for the losses, in evaluation mode for the detections): the
        cost beyond one evaluation pass is the RPN head's convolution and the second stage on
        ``box_batch_size_per_image`` sampled proposals per image. Every mode is restored after.

        ``seed`` fixes the sampling of the losses (the same loss for the same net and batch), in
        a forked random state, so the caller's random stream is left as it was; ``None`` draws
        from the caller's stream. Run it under ``torch.no_grad()`` (validation does).
        """
        det = self.detector
        sizes = [tuple(img.shape[-2:]) for img in images]
        modes = [(m, m.training) for m in (det.transform, det.backbone, det.rpn, det.roi_heads)]
        try:
            det.transform.eval()
            det.backbone.eval()
            image_list, targets = det.transform(images, targets)
            features = OrderedDict([("0", det.backbone(image_list.tensors))])
            det.rpn.train()
            det.roi_heads.train()
            with _seeded(features["0"].device, seed):
                proposals, rpn_losses = det.rpn(image_list, features, targets)
                _, roi_losses = det.roi_heads(features, proposals, image_list.image_sizes, targets)
            det.rpn.eval()
            det.roi_heads.eval()
            proposals, _ = det.rpn(image_list, features)
            detections, _ = det.roi_heads(features, proposals, image_list.image_sizes)
            detections = det.transform.postprocess(detections, image_list.image_sizes, sizes)
        finally:
            for module, mode in modes:
                module.train(mode)
        return {**roi_losses, **rpn_losses}, detections

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.image_size, self.image_size),)


@contextmanager
def _seeded(device: torch.device, seed: int | None):
    """Draw from generators seeded with ``seed`` (CPU, and ``device`` if a GPU), restored after."""
    if seed is None:
        yield
        return
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def _check_int(name: str, value: Any, low: int, note: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}{f' ({note})' if note else ''}, got {value!r}")


def _check_image_size(image_size: Any, stride: int) -> None:
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < stride or image_size % stride:
        lower = max(stride, (image_size // stride) * stride) if isinstance(image_size, int) else stride
        raise ValueError(f"image_size={image_size!r} cannot be handled by the backbone: its features have stride "
                         f"{stride}, so image_size must be a positive multiple of {stride} (e.g. {lower} or "
                         f"{lower + stride}); anchors are placed on the feature grid and would be misaligned")


def _build(backbone_name: str, options: dict[str, Any], num_classes: int, in_chans: int, image_size: int,
           feature_stride: int, pretrained_backbone: str | None, family: str, **settings) -> FasterRCNNNet:
    _check_int("num_classes", num_classes, 1, "object classes; the background class is added to them")
    _check_int("in_chans", in_chans, 1)
    if not isinstance(feature_stride, int) or feature_stride < 1 or feature_stride & (feature_stride - 1):
        raise ValueError(f"feature_stride must be a power of two (8 or 16 suit the digit canvases), "
                         f"got {feature_stride!r}")
    _check_image_size(image_size, feature_stride)  # before building anything
    try:
        found = model_card(backbone_name).family
    except KeyError as err:
        raise ValueError(f"backbone={backbone_name!r}: {err}") from None
    if found != family:
        raise ValueError(f"backbone={backbone_name!r} is a {found} net; this detector takes a {family} backbone")
    backbone = build_backbone(backbone_name, in_chans, feature_stride, options, pretrained_backbone)
    return FasterRCNNNet(backbone, num_classes, in_chans, image_size, **settings)


def _settings(anchor_sizes, aspect_ratios, representation_size, rpn_post_nms_top_n_test,
              box_batch_size_per_image, box_score_thresh) -> dict[str, Any]:
    return dict(anchor_sizes=tuple(anchor_sizes), aspect_ratios=tuple(aspect_ratios),
                representation_size=representation_size, rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
                box_batch_size_per_image=box_batch_size_per_image, box_score_thresh=box_score_thresh)


@register_model(task="detection", paper=_PAPER)
def faster_rcnn_resnet(num_classes: int = 10, in_chans: int = 1, image_size: int = 96,
                       backbone: str = "resnet18", width_mult: float | None = 0.25,
                       small_input: bool | None = None, feature_stride: int = 8,
                       pretrained_backbone: str | None = None,
                       anchor_sizes: tuple[int, ...] = (16, 24, 32),
                       aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
                       representation_size: int = 256, rpn_post_nms_top_n_test: int = 100,
                       box_batch_size_per_image: int = 64, box_score_thresh: float = 0.05) -> FasterRCNNNet:
    """Faster R-CNN on a zoo ResNet's first stages: by default ResNet-18 at a quarter width
    (stages of 16, 32, 64, 128 channels), cut after its second stage (stride 8, 32 channels).

    ``backbone`` is any registered ResNet (``resnet18`` ... ``resnet20_cifar`` ...);
    ``width_mult`` and ``small_input`` go to its builder (``None``: the builder's default, or the
    weights' with ``pretrained_backbone``, e.g. ``backbone=resnet20_cifar,
    pretrained_backbone=mnist5k, width_mult=None, feature_stride=4``).
    """
    options = {"width_mult": width_mult, "small_input": small_input}
    return _build(backbone, options, num_classes, in_chans, image_size, feature_stride, pretrained_backbone,
                  "resnet", **_settings(anchor_sizes, aspect_ratios, representation_size, rpn_post_nms_top_n_test,
                                        box_batch_size_per_image, box_score_thresh))


@register_model(task="detection", paper=_PAPER)
def faster_rcnn_mobilenet(num_classes: int = 10, in_chans: int = 1, image_size: int = 96,
                          backbone: str = "mobilenet_v2", width_mult: float | None = 0.5,
                          small_input: bool | None = None, feature_stride: int = 8,
                          pretrained_backbone: str | None = None,
                          anchor_sizes: tuple[int, ...] = (16, 24, 32),
                          aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
                          representation_size: int = 256, rpn_post_nms_top_n_test: int = 100,
                          box_batch_size_per_image: int = 64, box_score_thresh: float = 0.05) -> FasterRCNNNet:
    """Faster R-CNN on a zoo MobileNet's first stages: by default MobileNet v2 at half width, cut
    after the third row of its table 2 (stride 8, 16 channels).

    ``backbone`` is ``mobilenet_v2`` or ``mobilenet_v1``; ``width_mult`` and ``small_input`` go
    to its builder (``None``: the builder's default, or the weights' with
    ``pretrained_backbone``, e.g. ``pretrained_backbone=mnist5k, width_mult=None``).
    """
    options = {"width_mult": width_mult, "small_input": small_input}
    return _build(backbone, options, num_classes, in_chans, image_size, feature_stride, pretrained_backbone,
                  "mobilenet", **_settings(anchor_sizes, aspect_ratios, representation_size, rpn_post_nms_top_n_test,
                                           box_batch_size_per_image, box_score_thresh))
