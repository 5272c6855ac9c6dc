"""Bounding-box operations for the detection family: format conversions, areas, IoU,
non-maximum suppression, clipping and the localization target vector.

Boxes are tensors whose last dimension holds 4 numbers, in one of three formats:

* ``xyxy``: ``(x1, y1, x2, y2)``, the top-left and bottom-right corners (the format every
  function here takes unless its name says otherwise);
* ``cxcywh``: ``(cx, cy, w, h)``, the centre and the size;
* ``xywh``: ``(x, y, w, h)``, the top-left corner and the size.

A box is valid when ``x2 >= x1`` and ``y2 >= y1`` and its coordinates are finite; a box of
zero width or height is valid and has area 0. The functions that need valid boxes (areas,
IoU, NMS, the localization target) check them and raise a ``ValueError`` that names the
function, the argument and the first offending row. The check costs one pass over the boxes
and, on a GPU, one synchronization; a training loop that feeds boxes valid by construction
(sizes from ``exp`` or ``softplus``, say) may pass ``check=False`` to skip it.

Every function is pure: tensors in, new tensors out, inputs untouched, the device and (for
floating inputs) the dtype kept.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "xyxy_to_cxcywh", "cxcywh_to_xyxy", "xyxy_to_xywh", "xywh_to_xyxy",
    "box_area", "box_iou", "box_iou_aligned", "nms", "batched_nms", "clip_boxes",
    "encode_localization", "decode_localization",
]


# --------------------------------------------------------------------------- validation

def _where(index: tuple[int, ...]) -> str:
    """``row 3`` for a (N, 4) tensor, ``row (0, 3)`` for a batch of them, ``the box`` for one."""
    if not index:
        return "the box"
    return f"row {index[0]}" if len(index) == 1 else f"row {index}"


def _check_shape(fn: str, name: str, boxes: Tensor, ndim: int | None = None) -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{fn}: argument `{name}` must be a torch.Tensor of boxes, got {type(boxes).__name__}")
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"{fn}: argument `{name}` must have a last dimension of 4 (x1, y1, x2, y2 or the "
                         f"like), got shape {tuple(boxes.shape)}")
    if ndim is not None and boxes.ndim != ndim:
        raise ValueError(f"{fn}: argument `{name}` must have shape (N, 4), got {tuple(boxes.shape)}")


def _check_valid(fn: str, name: str, boxes: Tensor) -> None:
    """Shape, then finite coordinates, then ``x2 >= x1`` and ``y2 >= y1`` on every row."""
    _check_shape(fn, name, boxes)
    if boxes.is_floating_point():
        finite = torch.isfinite(boxes).all(dim=-1)
        if not bool(finite.all()):
            index = tuple(int(i) for i in torch.nonzero(~finite)[0])
            raise ValueError(f"{fn}: argument `{name}` has a non-finite coordinate at {_where(index)}: "
                             f"{boxes[index].tolist()}")
    bad = (boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1])
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"{fn}: argument `{name}` has x2 < x1 or y2 < y1 at {_where(index)}: "
                         f"{boxes[index].tolist()} (boxes must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1)")


def _check_threshold(fn: str, iou_threshold: float) -> float:
    try:
        value = float(iou_threshold)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: argument `iou_threshold` must be a number in [0, 1], got {iou_threshold!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"{fn}: argument `iou_threshold` must lie in [0, 1], got {iou_threshold!r}")
    return value


def _check_per_box(fn: str, name: str, values: Tensor, boxes: Tensor) -> None:
    if not isinstance(values, Tensor):
        raise TypeError(f"{fn}: argument `{name}` must be a torch.Tensor, got {type(values).__name__}")
    if values.ndim != 1 or values.shape[0] != boxes.shape[0]:
        raise ValueError(f"{fn}: argument `{name}` must have shape ({boxes.shape[0]},), one value per box of "
                         f"`boxes` {tuple(boxes.shape)}, got {tuple(values.shape)}")


# --------------------------------------------------------------------------- conversions

def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``(x1, y1, x2, y2)`` to ``(cx, cy, w, h)``."""
    _check_shape("xyxy_to_cxcywh", "boxes", boxes)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(cx, cy, w, h)`` to ``(x1, y1, x2, y2)``."""
    _check_shape("cxcywh_to_xyxy", "boxes", boxes)
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``(x1, y1, x2, y2)`` to ``(x, y, w, h)``."""
    _check_shape("xyxy_to_xywh", "boxes", boxes)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(x, y, w, h)`` to ``(x1, y1, x2, y2)``."""
    _check_shape("xywh_to_xyxy", "boxes", boxes)
    x, y, w, h = boxes.unbind(-1)
    return torch.stack((x, y, x + w, y + h), dim=-1)


# --------------------------------------------------------------------------- areas and IoU

def _area(boxes: Tensor) -> Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _safe_divide(inter: Tensor, union: Tensor) -> Tensor:
    """``inter / union``, 0 where the union is 0 (two boxes of zero area), with no NaN in the
    value or in its gradient (the zero unions are divided by 1, never by 0)."""
    if not union.is_floating_point():
        union = union.to(torch.get_default_dtype())
    positive = union > 0
    return torch.where(positive, inter / torch.where(positive, union, torch.ones_like(union)),
                       torch.zeros_like(union))


def box_area(boxes: Tensor, *, check: bool = True) -> Tensor:
    """The area of each box, shape ``boxes.shape[:-1]``."""
    if check:
        _check_valid("box_area", "boxes", boxes)
    else:
        _check_shape("box_area", "boxes", boxes)
    return _area(boxes)


def box_iou(a: Tensor, b: Tensor, *, check: bool = True) -> Tensor:
    """The intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4),
    shape (N, M). A pair of boxes whose union has area 0 has IoU 0."""
    for name, boxes in (("a", a), ("b", b)):
        _check_shape("box_iou", name, boxes, ndim=2)
        if check:
            _check_valid("box_iou", name, boxes)
    area_a, area_b = _area(a), _area(b)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return _safe_divide(inter, area_a[:, None] + area_b[None, :] - inter)


def box_iou_aligned(a: Tensor, b: Tensor, *, check: bool = True) -> Tensor:
    """The intersection over union of each box of ``a`` with the box of ``b`` at the same
    position: ``a`` and ``b`` of the same shape (..., 4), the result of shape (...). A pair of
    boxes whose union has area 0 has IoU 0. This is the diagonal of :func:`box_iou`, at the
    cost of one IoU per pair."""
    if check:
        _check_valid("box_iou_aligned", "a", a)
        _check_valid("box_iou_aligned", "b", b)
    else:
        _check_shape("box_iou_aligned", "a", a)
        _check_shape("box_iou_aligned", "b", b)
    if a.shape != b.shape:
        raise ValueError(f"box_iou_aligned: arguments `a` and `b` must have the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    top_left = torch.maximum(a[..., :2], b[..., :2])
    bottom_right = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return _safe_divide(inter, _area(a) + _area(b) - inter)


# --------------------------------------------------------------------------- suppression

# up to this many candidates, suppression works from the whole IoU matrix (memory O(N^2), one
# vectorised IoU and a loop over plain booleans: about 50x faster than a tensor loop for the few
# hundred boxes of a detector's decoding); above it, one row of IoUs at a time (memory O(N))
_MATRIX_NMS_LIMIT = 2048


def _greedy_nms(boxes: Tensor, scores: Tensor, classes: Tensor | None, iou_threshold: float) -> Tensor:
    """Greedy suppression: take the best remaining box, keep it, drop every remaining box (of
    its class, when ``classes`` is given) whose IoU with it exceeds the threshold; repeat.

    The IoU is computed as ``inter / (area_i + area_j - inter)`` in the boxes' dtype and compared
    with the threshold in float64, as torchvision's CPU kernel does, so that both keep the same
    boxes: a float32 IoU of 30/100 rounds to 0.30000001 and is dropped at threshold 0.3. Up to
    ``_MATRIX_NMS_LIMIT`` boxes the IoUs come from one (N, N) matrix; beyond, from one row per
    kept box (time O(K * N) for K kept boxes). Both give the same IoUs, bit for bit."""
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    # ties in score keep the lower index first (a stable sort), so the result is deterministic
    order = torch.sort(scores, descending=True, stable=True).indices
    if n <= _MATRIX_NMS_LIMIT:
        ranked = boxes[order]
        areas = _area(ranked)
        top_left = torch.maximum(ranked[:, None, :2], ranked[None, :, :2])      # (N, N, 2)
        bottom_right = torch.minimum(ranked[:, None, 2:], ranked[None, :, 2:])  # (N, N, 2)
        wh = (bottom_right - top_left).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        iou = _safe_divide(inter, areas[:, None] + areas[None, :] - inter)     # (N, N)
        drop = iou.to(torch.float64) > iou_threshold
        if classes is not None:
            ranked_classes = classes[order]
            drop &= ranked_classes[:, None] == ranked_classes[None, :]
        drop_rows = drop.cpu().numpy()
        removed = np.zeros(n, dtype=bool)
        kept = []
        for i in range(n):  # in rank order: a box still standing is kept and drops its overlaps
            if not removed[i]:
                kept.append(i)
                removed |= drop_rows[i]
        return order[torch.tensor(kept, dtype=torch.long, device=order.device)]
    areas = _area(boxes)
    kept = []
    while order.numel() > 0:
        best, rest = order[0], order[1:]
        kept.append(best)
        if rest.numel() == 0:
            break
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:], boxes[rest, 2:])
        wh = (bottom_right - top_left).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        iou = _safe_divide(inter, areas[best] + areas[rest] - inter)
        drop = iou.to(torch.float64) > iou_threshold
        if classes is not None:
            drop &= classes[rest] == classes[best]
        order = rest[~drop]
    return torch.stack(kept)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, *, check: bool = True) -> Tensor:
    """Non-maximum suppression: the indices of the boxes kept, sorted by decreasing score.

    Greedy: the box of highest score is kept and every remaining box whose IoU with it is
    greater than ``iou_threshold`` is dropped; the same is repeated on the boxes left. Boxes
    (N, 4) in ``xyxy``; scores (N,); boxes of equal score are taken in index order."""
    _check_shape("nms", "boxes", boxes, ndim=2)
    if check:
        _check_valid("nms", "boxes", boxes)
    _check_per_box("nms", "scores", scores, boxes)
    if bool(torch.isnan(scores).any()):
        raise ValueError(f"nms: argument `scores` has a NaN at index {int(torch.nonzero(torch.isnan(scores))[0])}")
    threshold = _check_threshold("nms", iou_threshold)
    return _greedy_nms(boxes, scores, None, threshold)


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float, *,
                check: bool = True) -> Tensor:
    """Non-maximum suppression within each class: boxes of different classes never suppress
    each other. The indices of the boxes kept, sorted by decreasing score (over all classes).
    ``classes`` (N,) holds an integer class index per box."""
    _check_shape("batched_nms", "boxes", boxes, ndim=2)
    if check:
        _check_valid("batched_nms", "boxes", boxes)
    _check_per_box("batched_nms", "scores", scores, boxes)
    _check_per_box("batched_nms", "classes", classes, boxes)
    if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
        raise ValueError(f"batched_nms: argument `classes` must hold integer class indices, got dtype {classes.dtype}")
    if bool(torch.isnan(scores).any()):
        raise ValueError(f"batched_nms: argument `scores` has a NaN at index "
                         f"{int(torch.nonzero(torch.isnan(scores))[0])}")
    threshold = _check_threshold("batched_nms", iou_threshold)
    return _greedy_nms(boxes, scores, classes, threshold)


# --------------------------------------------------------------------------- clipping

def clip_boxes(boxes: Tensor, height: float, width: float) -> Tensor:
    """Boxes (..., 4) in ``xyxy`` clipped to an image of ``height`` x ``width``: x into
    ``[0, width]``, y into ``[0, height]``. A box wholly outside the image becomes a box of
    zero width or height on its edge."""
    _check_shape("clip_boxes", "boxes", boxes)
    for name, value in (("height", height), ("width", width)):
        if not float(value) >= 0:  # also refuses NaN
            raise ValueError(f"clip_boxes: argument `{name}` must be >= 0, got {value!r}")
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)), dim=-1)


# --------------------------------------------------------------------------- localization target

def _image_hw(fn: str, image_size: int | float | Sequence[int | float]) -> tuple[float, float]:
    """``image_size`` as ``(height, width)``: one number is a square image."""
    if isinstance(image_size, (int, float)):
        height = width = image_size
    else:
        try:
            height, width = image_size
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: argument `image_size` must be a number or (height, width), "
                             f"got {image_size!r}") from None
    if not (float(height) > 0 and float(width) > 0):
        raise ValueError(f"{fn}: argument `image_size` must be positive, got {image_size!r}")
    return float(height), float(width)


def encode_localization(box_xyxy: Tensor | Sequence[float] | None, label: int | None, num_classes: int,
                        image_size: int | float | Sequence[int | float], *,
                        dtype: torch.dtype = torch.float32) -> Tensor:
    """One example's localization target, ``[p_c, b_x, b_y, b_h, b_w, c_1, ..., c_n]``:

    * ``p_c``: 1 when the image holds an object, else 0;
    * ``b_x``, ``b_y``: the centre of its box as fractions of the image's width and height;
    * ``b_h``, ``b_w``: the box's height and width as fractions of the image's height and width;
    * ``c_1 .. c_n``: the one-hot class of the object.

    ``box_xyxy`` is in pixels, ``image_size`` an int (square) or ``(height, width)``. A missing
    object (``label`` None or -1) gives ``p_c = 0`` and zeros everywhere else; its box is then
    ignored. Shape ``(5 + num_classes,)``."""
    fn = "encode_localization"
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{fn}: argument `num_classes` must be a positive int, got {num_classes!r}")
    height, width = _image_hw(fn, image_size)
    target = torch.zeros(5 + num_classes, dtype=dtype)
    if label is None:
        return target
    label = int(label)
    if label == -1:
        return target
    if not 0 <= label < num_classes:
        raise ValueError(f"{fn}: argument `label` must be in [0, {num_classes}) or None/-1 for no object, got {label}")
    if box_xyxy is None:
        raise ValueError(f"{fn}: argument `box_xyxy` is None but `label` is {label}: an object needs its box")
    box = torch.as_tensor(box_xyxy, dtype=torch.float64)
    if box.shape != (4,):
        raise ValueError(f"{fn}: argument `box_xyxy` must be 4 numbers (x1, y1, x2, y2), got shape {tuple(box.shape)}")
    _check_valid(fn, "box_xyxy", box)
    cx, cy, w, h = xyxy_to_cxcywh(box).tolist()
    target[:5] = torch.tensor([1.0, cx / width, cy / height, h / height, w / width], dtype=dtype)
    target[5 + label] = 1
    return target


def decode_localization(target: Tensor, image_size: int | float | Sequence[int | float], *,
                        threshold: float = 0.5) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`encode_localization`, on one target or a batch (..., 5 + n):
    ``(boxes_xyxy, labels)`` with boxes (..., 4) in pixels and labels (...) the class of largest
    ``c_i``; where ``p_c < threshold`` (no object) the label is -1 and the box zeros.

    A net's raw output should pass through a sigmoid (for ``p_c``) first; the class scores may
    be logits or probabilities, only their argmax is used."""
    fn = "decode_localization"
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}: argument `target` must be a torch.Tensor, got {type(target).__name__}")
    if target.ndim == 0 or target.shape[-1] < 6:
        raise ValueError(f"{fn}: argument `target` must have a last dimension of 5 + num_classes "
                         f"(p_c, b_x, b_y, b_h, b_w, c_1..c_n), got shape {tuple(target.shape)}")
    height, width = _image_hw(fn, image_size)
    p_c, b_x, b_y, b_h, b_w = target[..., :5].unbind(-1)
    present = p_c >= threshold
    cxcywh = torch.stack((b_x * width, b_y * height, b_w * width, b_h * height), dim=-1)
    boxes = torch.where(present[..., None], cxcywh_to_xyxy(cxcywh), torch.zeros_like(cxcywh))
    labels = torch.where(present, target[..., 5:].argmax(dim=-1), torch.full_like(p_c, -1, dtype=torch.long))
    return boxes, labels
