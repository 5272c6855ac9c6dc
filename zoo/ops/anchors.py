"""Anchor boxes for grid detectors: the centre-aligned IoU of box sizes and the k-means choice
of anchors from a training set's boxes (YOLOv2, Redmon & Farhadi 2017, section "Dimension
Clusters").

An anchor is a box size ``(w, h)`` in pixels, with no position. Two sizes are compared as if
the boxes shared their centre: their intersection is ``min(w_a, w_b) * min(h_a, h_b)``, so the
IoU depends on the shapes alone. YOLOv2 clusters the training boxes' sizes with the distance
``d(box, centroid) = 1 - IoU(box, centroid)`` rather than the Euclidean one, which would let
large boxes dominate the error, and reports the mean over the training boxes of the best IoU
with an anchor (:func:`mean_best_iou`) as the quality of the choice.

Sizes are tensors of shape (N, 2) holding ``(w, h)``; every size must be finite and positive
(a zero-sized box has no shape to match). The functions raise a ``ValueError`` that names the
function and the argument otherwise.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["anchor_iou", "kmeans_anchors", "mean_best_iou"]


def _check_sizes(fn: str, name: str, wh: Tensor) -> None:
    """(N, 2), finite, every width and height > 0."""
    if not isinstance(wh, Tensor):
        raise TypeError(f"{fn}: argument `{name}` must be a torch.Tensor of (w, h) sizes, got {type(wh).__name__}")
    if wh.ndim != 2 or wh.shape[1] != 2:
        raise ValueError(f"{fn}: argument `{name}` must have shape (N, 2), one (w, h) per row, "
                         f"got {tuple(wh.shape)}")
    if wh.is_complex() or wh.dtype == torch.bool:
        raise ValueError(f"{fn}: argument `{name}` must hold real numbers, got dtype {wh.dtype}")
    bad = ~(wh > 0).all(dim=1)  # also catches NaN
    if wh.is_floating_point():
        bad |= ~torch.isfinite(wh).all(dim=1)
    if bool(bad.any()):
        row = int(torch.nonzero(bad)[0])
        raise ValueError(f"{fn}: argument `{name}` must hold finite, positive widths and heights; row {row} is "
                         f"{wh[row].tolist()}")


def _float(wh: Tensor) -> Tensor:
    return wh if wh.is_floating_point() else wh.to(torch.float32)


def _iou(wh_a: Tensor, wh_b: Tensor) -> Tensor:
    """The centre-aligned IoU matrix, without checks."""
    inter = torch.minimum(wh_a[:, None, 0], wh_b[None, :, 0]) * torch.minimum(wh_a[:, None, 1], wh_b[None, :, 1])
    area_a = wh_a[:, 0] * wh_a[:, 1]
    area_b = wh_b[:, 0] * wh_b[:, 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def anchor_iou(wh_a: Tensor, wh_b: Tensor) -> Tensor:
    """The IoU of every size of ``wh_a`` (N, 2) with every size of ``wh_b`` (M, 2), the boxes
    placed on a common centre: ``min(w_a, w_b) * min(h_a, h_b) / (w_a h_a + w_b h_b - inter)``.
    Shape (N, M), in the promoted floating dtype of the two."""
    _check_sizes("anchor_iou", "wh_a", wh_a)
    _check_sizes("anchor_iou", "wh_b", wh_b)
    dtype = torch.promote_types(_float(wh_a).dtype, _float(wh_b).dtype)
    return _iou(wh_a.to(dtype), wh_b.to(dtype))


def mean_best_iou(wh: Tensor, anchors: Tensor) -> float:
    """The mean over the boxes ``wh`` (N, 2) of their best centre-aligned IoU with one of the
    ``anchors`` (K, 2): the "Avg IOU" by which YOLOv2 compares anchor choices."""
    return float(anchor_iou(wh, anchors).max(dim=1).values.mean())


def kmeans_anchors(wh: Tensor, k: int, seed: int, iters: int = 100) -> Tensor:
    """``k`` anchors (k, 2) chosen by k-means over the box sizes ``wh`` (N, 2), with the
    distance ``1 - IoU`` of centre-aligned boxes; sorted by increasing area (ties by width).

    The centroids are seeded as in k-means++ (the first a box drawn uniformly among the distinct
    sizes, each next one drawn with probability proportional to the squared distance to the
    nearest centroid already chosen), from a ``torch.Generator`` seeded with ``seed``: the same
    sizes and seed give the same anchors on any machine. Each iteration assigns every box to
    the centroid of highest IoU (the first on ties) and moves each centroid to the mean size of
    its boxes; a centroid left without boxes jumps to the box farthest from its own centroid.
    It stops when no assignment changes, or after ``iters`` iterations. The arithmetic is in
    float64 on the CPU; the result has ``wh``'s floating dtype (float32 for integer sizes) and
    device.

    Raises ``ValueError`` for ``k < 1``, for ``k`` larger than the number of distinct sizes
    (some centroids would coincide), for ``iters < 1`` and for sizes that are not positive.
    """
    fn = "kmeans_anchors"
    _check_sizes(fn, "wh", wh)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{fn}: argument `k` must be an int >= 1, got {k!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"{fn}: argument `iters` must be an int >= 1, got {iters!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{fn}: argument `seed` must be an int, got {seed!r}")
    out_dtype, device = _float(wh).dtype, wh.device
    boxes = wh.detach().to("cpu", torch.float64)
    distinct = torch.unique(boxes, dim=0)  # sorted rows: the seeding does not depend on the boxes' order
    if k > distinct.shape[0]:
        raise ValueError(f"{fn}: argument `k` ({k}) exceeds the number of distinct box sizes in `wh` "
                         f"({distinct.shape[0]} among {boxes.shape[0]} boxes)")
    gen = torch.Generator().manual_seed(seed)

    # k-means++ seeding on the distinct sizes
    chosen = [int(torch.randint(distinct.shape[0], (1,), generator=gen))]
    for _ in range(1, k):
        dist = 1.0 - _iou(distinct, distinct[chosen]).max(dim=1).values
        dist[chosen] = 0.0
        weights = dist.clamp(min=0) ** 2
        if float(weights.sum()) > 0:
            nxt = int(torch.multinomial(weights, 1, generator=gen))
        else:  # every size left is (to rounding) a centroid already: take the first not chosen
            nxt = next(i for i in range(distinct.shape[0]) if i not in chosen)
        chosen.append(nxt)
    centroids = distinct[chosen].clone()

    assign = None
    for _ in range(iters):
        iou = _iou(boxes, centroids)
        new_assign = iou.argmax(dim=1)
        if assign is not None and torch.equal(new_assign, assign):
            break
        assign = new_assign
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros(k, 2, dtype=torch.float64).index_add_(0, assign, boxes)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(torch.float64)
        empty = torch.nonzero(~filled).flatten().tolist()
        if empty:
            # an empty cluster takes the box worst served by its centroid (each box once)
            served = iou.gather(1, assign[:, None]).squeeze(1)
            for j in empty:
                far = int(served.argmin())
                centroids[j] = boxes[far]
                served[far] = float("inf")
            assign = None  # the assignments must be recomputed before the next convergence test
    area = centroids[:, 0] * centroids[:, 1]
    # sort by area, then by width: a stable, total order
    order = sorted(range(k), key=lambda i: (float(area[i]), float(centroids[i, 0])))
    return centroids[order].to(device=device, dtype=out_dtype)
