"""YOLO (v2/v3 style): the targets on the grid, the loss, and the decoding of predictions into
boxes (Redmon & Farhadi 2017, YOLO9000; Redmon & Farhadi 2018, YOLOv3).

A prediction ``pred`` has shape ``(B, A, S, S, 5 + C)``: for every image, anchor ``a`` and grid
cell ``(row i, col j)``, the raw ``[t_x, t_y, t_w, t_h, t_o, class logits]`` (the layout of
``zoo.models.yolo``). With the grid's ``stride`` in pixels and the anchors ``(A, 2)`` as
``(w, h)`` in pixels, the predicted box is::

    centre = ((j + sigmoid(t_x)) * stride, (i + sigmoid(t_y)) * stride)
    size   = (anchor_w * exp(t_w), anchor_h * exp(t_h))

its objectness ``sigmoid(t_o)`` and its class probabilities ``softmax(class logits)`` (one
class per object, as in YOLOv2). Ground truth is given per image as a dict
``{"boxes": (n, 4) float xyxy in pixels, "labels": (n,) int64}``.

* :func:`build_yolo_targets` puts each ground-truth box in the cell holding its centre, on the
  anchor of best centre-aligned IoU (``zoo.ops.anchor_iou``), and encodes it as the net should
  predict it. When two boxes claim the same cell and anchor, the larger one (by area) is kept
  and the other is dropped and counted (``collisions``, per image, for the task to log).
* :func:`yolo_loss`: squared error on ``sigmoid(t_x), sigmoid(t_y), t_w, t_h`` of the object
  predictions, logistic loss on the objectness (target 1 at object predictions, 0 at the
  others, the latter weighted by ``lambda_noobj``), softmax cross-entropy on the classes of
  object predictions. The no-object term skips predictions that are already good boxes of
  another object (YOLOv2 and v3 ignore predictions whose box overlaps a ground truth by more
  than a threshold): this needs the predicted boxes, so it is computed here, not in the targets.
* :func:`decode_yolo`: boxes, scores and labels per image, after per-class non-maximum
  suppression (``zoo.ops.batched_nms``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.ops import anchor_iou, batched_nms, box_iou_aligned, clip_boxes, cxcywh_to_xyxy, xyxy_to_cxcywh

__all__ = ["build_yolo_targets", "yolo_loss", "decode_yolo", "yolo_boxes", "MAX_LOG_SCALE"]

# t_w and t_h are clamped to this before exp when boxes are decoded: a box at most 62.5 anchors
# wide (the bound torchvision's box coders use), which keeps exp finite whatever the net outputs
MAX_LOG_SCALE = math.log(1000.0 / 16)

TARGET_KEYS = ("obj_mask", "noobj_mask", "box_target", "class_target", "gt_boxes", "gt_mask", "gt_kept",
               "collisions")


# --------------------------------------------------------------------------- validation

def _check_int(fn: str, name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: argument `{name}` must be an int >= {minimum}, got {value!r}")
    return value


def _check_fraction(fn: str, name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: argument `{name}` must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        raise ValueError(f"{fn}: argument `{name}` must lie in [0, 1], got {value!r}")
    return v


def _check_weight(fn: str, name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: argument `{name}` must be a finite number >= 0, got {value!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{fn}: argument `{name}` must be a finite number >= 0, got {value!r}")
    return v


def _check_anchors(fn: str, anchors) -> None:
    if not isinstance(anchors, Tensor):
        raise ValueError(f"{fn}: argument `anchors` must be a torch.Tensor of shape (A, 2), got "
                         f"{type(anchors).__name__}")
    if anchors.ndim != 2 or anchors.shape[1] != 2 or anchors.shape[0] < 1:
        raise ValueError(f"{fn}: argument `anchors` must have shape (A, 2), one (w, h) in pixels per anchor, "
                         f"got {tuple(anchors.shape)}")
    if not anchors.is_floating_point():
        raise ValueError(f"{fn}: argument `anchors` must be a floating tensor, got dtype {anchors.dtype}")
    if not bool((torch.isfinite(anchors) & (anchors > 0)).all()):
        raise ValueError(f"{fn}: argument `anchors` must hold finite, positive sizes, got {anchors.tolist()}")


def _check_pred(fn: str, pred, anchors: Tensor, num_classes: int | None) -> None:
    if not isinstance(pred, Tensor):
        raise ValueError(f"{fn}: argument `pred` must be a torch.Tensor, got {type(pred).__name__}")
    a = anchors.shape[0]
    expected = f"(B, {a}, S, S, 5 + {num_classes if num_classes is not None else 'C'})"
    if pred.ndim != 5 or pred.shape[1] != a or pred.shape[-1] < 6 or \
            (num_classes is not None and pred.shape[-1] != 5 + num_classes):
        raise ValueError(f"{fn}: argument `pred` must have shape {expected} for {a} anchors"
                         f"{f' and {num_classes} classes' if num_classes is not None else ''}, "
                         f"got {tuple(pred.shape)}")
    if not pred.is_floating_point():
        raise ValueError(f"{fn}: argument `pred` must be a floating tensor, got dtype {pred.dtype}")


def _check_image_targets(fn: str, i: int, target, num_classes: int, size: float) -> tuple[Tensor, Tensor]:
    """One image's ``{"boxes", "labels"}``, checked: (n, 4) finite boxes of positive size whose
    centres lie on the grid, (n,) integer labels in [0, num_classes)."""
    where = f"targets[{i}]"
    if not isinstance(target, Mapping) or "boxes" not in target or "labels" not in target:
        keys = f" with keys {sorted(target)}" if isinstance(target, Mapping) else ""
        raise ValueError(f"{fn}: argument `{where}` must be a dict with 'boxes' (n, 4) and 'labels' (n,), got "
                         f"{type(target).__name__}{keys}")
    boxes, labels = target["boxes"], target["labels"]
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{fn}: argument `{where}['boxes']` must be a tensor of shape (n, 4), xyxy in pixels, "
                         f"got {shape}")
    if not boxes.is_floating_point():
        raise ValueError(f"{fn}: argument `{where}['boxes']` must be a floating tensor, got dtype {boxes.dtype}")
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.shape[0] != boxes.shape[0]:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{fn}: argument `{where}['labels']` must be a tensor of shape ({boxes.shape[0]},), one "
                         f"label per box, got {shape}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{fn}: argument `{where}['labels']` must hold integer class indices, got dtype "
                         f"{labels.dtype}")
    if boxes.shape[0] == 0:
        return boxes, labels
    out = (labels < 0) | (labels >= num_classes)
    if bool(out.any()):
        j = int(torch.nonzero(out)[0])
        raise ValueError(f"{fn}: argument `{where}['labels']` must lie in [0, {num_classes}), got {int(labels[j])} "
                         f"at row {j}")
    bad = ~torch.isfinite(boxes).all(dim=1) | ~(boxes[:, 2] > boxes[:, 0]) | ~(boxes[:, 3] > boxes[:, 1])
    if bool(bad.any()):
        j = int(torch.nonzero(bad)[0])
        raise ValueError(f"{fn}: argument `{where}['boxes']` must hold finite (x1, y1, x2, y2) with x2 > x1 and "
                         f"y2 > y1 (a box needs a positive size to be matched to an anchor); row {j} is "
                         f"{boxes[j].tolist()}")
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    off = (cx < 0) | (cx > size) | (cy < 0) | (cy > size)
    if bool(off.any()):
        j = int(torch.nonzero(off)[0])
        raise ValueError(f"{fn}: argument `{where}['boxes']` has a box whose centre lies off the grid "
                         f"[0, {size:g}] x [0, {size:g}] (grid * stride pixels) at row {j}: {boxes[j].tolist()}")
    return boxes, labels


def _check_targets_dict(fn: str, targets, pred: Tensor) -> None:
    if not isinstance(targets, Mapping) or any(k not in targets for k in TARGET_KEYS):
        missing = [k for k in TARGET_KEYS if not isinstance(targets, Mapping) or k not in targets]
        raise ValueError(f"{fn}: argument `targets` must be the dict of build_yolo_targets; missing {missing}")
    grid_shape = tuple(targets["obj_mask"].shape)
    if grid_shape != tuple(pred.shape[:4]):
        raise ValueError(f"{fn}: argument `pred` has shape {tuple(pred.shape)}, whose (B, A, S, S) does not match "
                         f"the targets' {grid_shape} (batch, anchors or grid differ)")


# --------------------------------------------------------------------------- targets

def build_yolo_targets(targets: Sequence[Mapping[str, Tensor]], anchors: Tensor, grid: int, stride: int,
                       num_classes: int) -> dict[str, Tensor]:
    """The grid targets of a batch.

    Args:
        targets: one dict per image, ``{"boxes": (n, 4) float xyxy in pixels, "labels": (n,)
            int}``; ``n`` may be 0. Every box must have a positive width and height and its
            centre on the ``grid * stride`` square image.
        anchors: (A, 2) anchor sizes ``(w, h)`` in pixels.
        grid: ``S``, the side of the grid in cells; ``stride``: the side of a cell in pixels.
        num_classes: ``C``; labels must lie in ``[0, C)``.

    A box of centre ``(cx, cy)`` goes to cell ``(row, col) = (floor(cy / stride), floor(cx /
    stride))`` (a centre on the image's far edge to the last cell) and to the anchor of highest
    centre-aligned IoU with its size (the first on ties). Its target is ``t_x = cx / stride - col``
    and ``t_y = cy / stride - row`` (the centre's offset in the cell, in [0, 1]),
    ``t_w = log(w / anchor_w)`` and ``t_h = log(h / anchor_h)``. Boxes that claim the same image,
    cell and anchor collide: the one of largest area is kept (the earlier one on ties), the
    others are dropped from the targets and counted.

    Returns a dict of tensors on ``anchors``' device, float ones in ``anchors``' dtype:

    * ``obj_mask`` (B, A, S, S) bool: the predictions responsible for an object;
    * ``noobj_mask`` (B, A, S, S) bool: the others (``~obj_mask``); :func:`yolo_loss` further
      removes the predictions it ignores because their box already matches a ground truth;
    * ``box_target`` (B, A, S, S, 4): ``[t_x, t_y, t_w, t_h]`` at object predictions, 0 elsewhere;
    * ``class_target`` (B, A, S, S) int64: the label at object predictions, -1 elsewhere;
    * ``gt_boxes`` (B, M, 4): every image's boxes, zero-padded to the largest count ``M``;
      ``gt_mask`` (B, M) bool: the real ones; ``gt_kept`` (B, M) bool: those that got a
      prediction (not dropped in a collision);
    * ``collisions`` (B,) int64: the boxes of each image dropped in a collision.
    """
    fn = "build_yolo_targets"
    _check_anchors(fn, anchors)
    grid = _check_int(fn, "grid", grid)
    stride = _check_int(fn, "stride", stride)
    num_classes = _check_int(fn, "num_classes", num_classes)
    if isinstance(targets, (Mapping, str, bytes)) or not isinstance(targets, Sequence):
        raise ValueError(f"{fn}: argument `targets` must be a list of dicts, one per image, got "
                         f"{type(targets).__name__}")
    device, dtype = anchors.device, anchors.dtype
    b_count, a_count, s = len(targets), anchors.shape[0], grid
    size = float(grid * stride)
    checked = [_check_image_targets(fn, i, t, num_classes, size) for i, t in enumerate(targets)]
    counts = [int(boxes.shape[0]) for boxes, _ in checked]
    m = max(counts, default=0)
    cells = b_count * a_count * s * s

    obj = torch.zeros(cells, dtype=torch.bool, device=device)
    box_target = torch.zeros(cells, 4, dtype=dtype, device=device)
    class_target = torch.full((cells,), -1, dtype=torch.long, device=device)
    gt_boxes = torch.zeros(b_count, m, 4, dtype=dtype, device=device)
    gt_mask = torch.zeros(b_count, m, dtype=torch.bool, device=device)
    gt_kept = torch.zeros(b_count, m, dtype=torch.bool, device=device)
    collisions = torch.zeros(b_count, dtype=torch.long, device=device)

    total = sum(counts)
    if total:
        boxes = torch.cat([bx.to(device=device, dtype=dtype) for bx, _ in checked])
        labels = torch.cat([lb.to(device=device, dtype=torch.long) for _, lb in checked])
        image = torch.repeat_interleave(torch.arange(b_count, device=device),
                                        torch.tensor(counts, device=device))
        offsets = torch.tensor([0, *counts], device=device).cumsum(0)[:-1]
        within = torch.arange(total, device=device) - offsets[image]  # each box's row in its image

        cx, cy, w, h = xyxy_to_cxcywh(boxes).unbind(-1)
        col = torch.floor(cx / stride).long().clamp(0, s - 1)
        row = torch.floor(cy / stride).long().clamp(0, s - 1)
        best = anchor_iou(torch.stack((w, h), dim=1), anchors).argmax(dim=1)
        encoded = torch.stack((cx / stride - col, cy / stride - row,
                               torch.log(w / anchors[best, 0]), torch.log(h / anchors[best, 1])), dim=1)
        slot = ((image * a_count + best) * s + row) * s + col

        # larger boxes first (a stable sort: the earlier box on equal areas); the first box of
        # each slot in that order is kept
        order = torch.sort(w * h, descending=True, stable=True).indices
        _, inverse = torch.unique(slot[order], return_inverse=True)
        position = torch.arange(total, device=device)
        first = torch.full((int(inverse.max()) + 1,), total, dtype=torch.long, device=device)
        first = first.scatter_reduce(0, inverse, position, reduce="amin")
        kept = torch.empty(total, dtype=torch.bool, device=device)
        kept[order] = position == first[inverse]

        obj[slot[kept]] = True
        box_target[slot[kept]] = encoded[kept]
        class_target[slot[kept]] = labels[kept]
        gt_boxes[image, within] = boxes
        gt_mask[image, within] = True
        gt_kept[image, within] = kept
        collisions = torch.bincount(image[~kept], minlength=b_count)

    shape = (b_count, a_count, s, s)
    obj = obj.view(shape)
    return {
        "obj_mask": obj,
        "noobj_mask": ~obj,
        "box_target": box_target.view(*shape, 4),
        "class_target": class_target.view(shape),
        "gt_boxes": gt_boxes,
        "gt_mask": gt_mask,
        "gt_kept": gt_kept,
        "collisions": collisions,
    }


# --------------------------------------------------------------------------- boxes of a prediction

def yolo_boxes(pred: Tensor, anchors: Tensor, stride: int) -> Tensor:
    """The boxes ``pred`` (B, A, S_h, S_w, 5 + C) stands for, (B, A, S_h, S_w, 4) ``xyxy`` in
    pixels: centre ``((col + sigmoid(t_x)) * stride, (row + sigmoid(t_y)) * stride)``, size
    ``anchor * exp(t_wh)`` with ``t_wh`` clamped to at most :data:`MAX_LOG_SCALE`. Differentiable;
    not clipped to the image."""
    fn = "yolo_boxes"
    _check_anchors(fn, anchors)
    _check_pred(fn, pred, anchors, None)
    return _boxes_of(pred, anchors, _check_int(fn, "stride", stride))


def _boxes_of(pred: Tensor, anchors: Tensor, stride: int) -> Tensor:
    """:func:`yolo_boxes` without the checks."""
    _, a_count, s_h, s_w, _ = pred.shape
    cols = torch.arange(s_w, device=pred.device, dtype=pred.dtype).view(1, 1, 1, s_w)
    rows = torch.arange(s_h, device=pred.device, dtype=pred.dtype).view(1, 1, s_h, 1)
    anchors = anchors.to(device=pred.device, dtype=pred.dtype)
    cx = (cols + torch.sigmoid(pred[..., 0])) * stride
    cy = (rows + torch.sigmoid(pred[..., 1])) * stride
    scale = torch.exp(pred[..., 2:4].clamp(max=MAX_LOG_SCALE))
    w = anchors[:, 0].view(1, a_count, 1, 1) * scale[..., 0]
    h = anchors[:, 1].view(1, a_count, 1, 1) * scale[..., 1]
    return cxcywh_to_xyxy(torch.stack((cx, cy, w, h), dim=-1))


# --------------------------------------------------------------------------- loss

def yolo_loss(pred: Tensor, targets: Mapping[str, Tensor], anchors: Tensor, stride: int,
              lambda_coord: float = 5.0, lambda_noobj: float = 0.5, ignore_threshold: float = 0.5, *,
              num_classes: int | None = None, check: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """The YOLO loss of a batch, and its parts (detached).

    Args:
        pred: (B, A, S, S, 5 + C) raw outputs.
        targets: the dict of :func:`build_yolo_targets` for the same anchors and grid.
        anchors: (A, 2) in pixels; ``stride``: a cell's side in pixels (to decode the predicted
            boxes for the ignore rule).
        lambda_coord: weight of the coordinate term; ``lambda_noobj``: weight of the no-object
            objectness term (YOLOv1's 5 and 0.5).
        ignore_threshold: a prediction that is not responsible for an object but whose decoded
            box has an IoU above this with some ground truth of its image is left out of the
            no-object term (YOLOv3's 0.5; 1 ignores nothing). The boxes are decoded from
            ``pred`` without gradient.
        num_classes: when given, ``pred``'s last dimension must be ``5 + num_classes``.
        check: check that the targets' labels are below ``C`` (one synchronization on a GPU).

    A half-precision ``pred`` (under autocast) is cast to float32 first; the loss is float32.

    With ``O`` the object predictions and ``N`` the no-object ones (not ignored), per image::

        coord = lambda_coord * sum_O [(sigmoid(t_x) - t_x*)^2 + (sigmoid(t_y) - t_y*)^2
                                      + (t_w - t_w*)^2 + (t_h - t_h*)^2]
        obj   = sum_O BCE(t_o, 1)
        noobj = lambda_noobj * sum_N BCE(t_o, 0)
        class = sum_O CE(class logits, label)

    Each term is summed over the image's predictions (so an image with more objects weighs more,
    as in the papers) and averaged over the images of the batch. Returns ``(loss, parts)`` with
    ``loss = coord + obj + noobj + class`` and ``parts`` these four terms (weights included),
    detached, plus ``ignored``, the mean count per image of predictions left out by the ignore
    rule (not a term of the loss).
    """
    fn = "yolo_loss"
    _check_anchors(fn, anchors)
    _check_pred(fn, pred, anchors, num_classes)
    stride = _check_int(fn, "stride", stride)
    lambda_coord = _check_weight(fn, "lambda_coord", lambda_coord)
    lambda_noobj = _check_weight(fn, "lambda_noobj", lambda_noobj)
    ignore_threshold = _check_fraction(fn, "ignore_threshold", ignore_threshold)
    _check_targets_dict(fn, targets, pred)
    if pred.dtype in (torch.float16, torch.bfloat16):
        pred = pred.float()  # the loss in float32: half precision would round the targets' offsets
    c = pred.shape[-1] - 5
    obj = targets["obj_mask"].to(pred.device)
    noobj = targets["noobj_mask"].to(pred.device)
    box_target = targets["box_target"].to(device=pred.device, dtype=pred.dtype)
    class_target = targets["class_target"].to(pred.device)
    if check and obj.any():
        top = int(class_target.max())
        if top >= c:
            raise ValueError(f"{fn}: argument `pred` has {c} class scores (last dimension {pred.shape[-1]} = 5 + {c}) "
                             f"but the targets hold label {top}")
    batch = pred.shape[0]

    gt_boxes = targets["gt_boxes"].to(device=pred.device, dtype=pred.dtype)
    gt_mask = targets["gt_mask"].to(pred.device)
    if ignore_threshold < 1.0 and gt_boxes.shape[1] > 0:
        with torch.no_grad():
            boxes = _boxes_of(pred.detach(), anchors, stride).flatten(1, 3)  # (B, P, 4)
            p, m = boxes.shape[1], gt_boxes.shape[1]
            iou = box_iou_aligned(boxes[:, :, None, :].expand(batch, p, m, 4),
                                  gt_boxes[:, None, :, :].expand(batch, p, m, 4), check=False)
            iou = torch.where(gt_mask[:, None, :], iou, torch.zeros_like(iou))
            ignore = (iou.max(dim=2).values > ignore_threshold).view(obj.shape)
        ignored = noobj & ignore
        noobj = noobj & ~ignore
    else:
        ignored = torch.zeros_like(noobj)

    zero = pred.new_zeros(())
    xy_err = ((torch.sigmoid(pred[..., :2]) - box_target[..., :2]) ** 2).sum(-1)
    wh_err = ((pred[..., 2:4] - box_target[..., 2:4]) ** 2).sum(-1)
    # torch.where, not a product with the mask: no gradient (nor NaN) reaches other predictions
    coord = lambda_coord * torch.where(obj, xy_err + wh_err, zero).sum() / batch
    logit = pred[..., 4]
    obj_term = torch.where(obj, F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit), reduction="none"),
                           zero).sum() / batch
    noobj_term = lambda_noobj * torch.where(
        noobj, F.binary_cross_entropy_with_logits(logit, torch.zeros_like(logit), reduction="none"), zero).sum() / batch
    class_term = F.cross_entropy(pred[..., 5:].reshape(-1, c), class_target.reshape(-1), ignore_index=-1,
                                 reduction="sum") / batch
    loss = coord + obj_term + noobj_term + class_term
    parts = {"coord": coord, "obj": obj_term, "noobj": noobj_term, "class": class_term,
             "ignored": ignored.sum(dtype=pred.dtype) / batch}
    return loss, {k: v.detach() for k, v in parts.items()}


# --------------------------------------------------------------------------- decoding

def decode_yolo(pred: Tensor, anchors: Tensor, stride: int, conf_threshold: float = 0.05,
                iou_threshold: float = 0.5, max_detections: int = 100, *, num_classes: int | None = None,
                image_size: int | tuple[int, int] | None = None) -> list[dict[str, Tensor]]:
    """The detections of each image of ``pred`` (B, A, S_h, S_w, 5 + C), as a list of B dicts
    ``{"boxes": (K, 4) xyxy in pixels, "scores": (K,), "labels": (K,) int64}``, by decreasing
    score.

    Each prediction's box is decoded as in :func:`yolo_boxes` and clipped to the image
    (``image_size``: an int or ``(height, width)``; by default the grid's ``S * stride``). Its
    score for class ``k`` is ``sigmoid(t_o) * softmax(class logits)_k``; every (box, class) pair
    with a score above ``conf_threshold`` is a candidate (a box may be a candidate for several
    classes, as in Darknet's evaluation). Non-maximum suppression runs within each class with
    ``iou_threshold`` (``zoo.ops.batched_nms``), and the ``max_detections`` best are kept.
    Computed without gradient.
    """
    fn = "decode_yolo"
    _check_anchors(fn, anchors)
    _check_pred(fn, pred, anchors, num_classes)
    stride = _check_int(fn, "stride", stride)
    conf_threshold = _check_fraction(fn, "conf_threshold", conf_threshold)
    iou_threshold = _check_fraction(fn, "iou_threshold", iou_threshold)
    max_detections = _check_int(fn, "max_detections", max_detections, minimum=0)
    batch, _, s_h, s_w, _ = pred.shape
    if image_size is None:
        height, width = s_h * stride, s_w * stride
    elif isinstance(image_size, int) and not isinstance(image_size, bool):
        height = width = image_size
    else:
        try:
            height, width = image_size
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: argument `image_size` must be an int or (height, width), got "
                             f"{image_size!r}") from None
    c = pred.shape[-1] - 5
    with torch.no_grad():
        pred = pred.detach()
        boxes = clip_boxes(_boxes_of(pred, anchors, stride), height, width).reshape(batch, -1, 4)
        scores = (torch.sigmoid(pred[..., 4:5]) * torch.softmax(pred[..., 5:], dim=-1)).reshape(batch, -1, c)
        out = []
        for b in range(batch):
            box_index, label = torch.nonzero(scores[b] > conf_threshold, as_tuple=True)
            cand_boxes, cand_scores = boxes[b, box_index], scores[b, box_index, label]
            keep = batched_nms(cand_boxes, cand_scores, label, iou_threshold, check=False)[:max_detections]
            out.append({"boxes": cand_boxes[keep], "scores": cand_scores[keep], "labels": label[keep]})
    return out
