"""Real detection and segmentation datasets, read in their own on-disk layouts: Pascal VOC
(boxes and semantic masks) and COCO (boxes).

Layouts, under ``data_dir`` (what the official archives unpack to)::

    VOCdevkit/VOC<year>/                      Pascal VOC 2007 ... 2012
      Annotations/<id>.xml                    one XML file per image: size, objects, boxes
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png              palette PNGs of class indices (segmentation)
      ImageSets/Main/{train,val,trainval,test}.txt          image ids, one a line (detection)
      ImageSets/Segmentation/{train,val,trainval,test}.txt  (segmentation)

    annotations/instances_<split><year>.json  COCO, e.g. instances_train2017.json
    <split><year>/<file_name>                 e.g. train2017/000000000009.jpg

Nothing is downloaded unless ``download=True`` (``data.download=true``): VOC's archives come from
the addresses and MD5 sums torchvision lists (``torchvision.datasets.voc.DATASET_YEAR_DICT``),
COCO's from ``images.cocodataset.org``; both are unpacked by
:func:`datamodules.archives.safe_extract`, which refuses members that would land outside
``data_dir``. With downloads off a missing folder or file is a :class:`DatasetNotFoundError`
naming it and the layout expected. Nothing touches the disk before ``prepare_data``/``setup``,
so a config is built (and checked) without the data.

**Coordinates.** Boxes are ``xyxy`` in pixels with pixel ``(column i, row j)`` covering
``[i, i + 1) x [j, j + 1)`` (as the digit canvases'). VOC numbers pixels from 1 and its corners
are inclusive, so a VOC box ``(xmin, ymin, xmax, ymax)`` becomes
``(xmin - 1, ymin - 1, xmax, ymax)``: a one-pixel box ``xmin = xmax = 5`` is ``[4, 5)``. COCO's
``[x, y, w, h]`` already lies on that grid and becomes ``(x, y, x + w, y + h)``. Boxes are
clipped to the image. Images are resized, aspect ratio not kept, to ``image_size`` x
``image_size`` (bilinear, Pillow) and the boxes scaled by ``image_size / width`` and
``image_size / height``; masks are resized with the nearest neighbour.

**Hard and crowd objects.** VOC marks some objects ``difficult``; its evaluation neither rewards
nor penalises detections of them. COCO marks crowd regions ``iscrowd``, likewise ignored by its
evaluation. Both are left out of a target's ``boxes``/``labels`` (what is trained on and
scored) and carried in ``ignore_boxes``/``ignore_labels`` instead, so an evaluator can pass
them as crowd (``iscrowd = 1``) ground truth; ``keep_difficult=True`` makes VOC's difficult
objects ordinary ones.

**Checks.** Every annotation file is parsed by this module (``xml.etree.ElementTree``, ``json``;
never pickle) and checked: a file that does not parse, a missing box or coordinate, a
coordinate that is not a number, a box with its corners the wrong way round or outside its
image, a class VOC does not have, a COCO annotation pointing to an unknown image or category,
a file name that would leave the image folder: each is a :class:`DataFileError` naming the file
(and, for COCO, the annotation or image id). COCO boxes of zero width or height (two in
``instances_train2017.json``) are dropped, counted in ``describe()`` and logged; negative ones
are errors. An image whose size differs from the one its annotation states is an error when
it is read.
"""
from __future__ import annotations

import json
import logging
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import DataFileError, DatasetNotFoundError, ZooDataModule

__all__ = [
    "VOC_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BoxAnnotations",
    "parse_voc_annotation",
    "read_coco_instances",
    "collate_detection",
    "VOCDetectionDataModule",
    "VOCSegmentationDataModule",
    "COCODetectionDataModule",
]

log = logging.getLogger(__name__)

# the 20 classes of Pascal VOC, in the standard order (label k is VOC_CLASSES[k]; in a
# segmentation mask the class k is the value k + 1)
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
_VOC_INDEX = {name: k for k, name in enumerate(VOC_CLASSES)}
VOC_BORDER = 255  # the value of object borders and unlabelled pixels in VOC's masks
VOC_YEARS = ("2007", "2008", "2009", "2010", "2011", "2012")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_FIX = "fix or remove it, or unpack the official archive again"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# ---------------------------------------------------------------------------------- annotations
@dataclass
class BoxAnnotations:
    """The boxes of one split. The boxes of image ``i`` are rows ``offsets[i]:offsets[i + 1]``.

    Attributes:
        ids: each image's id (VOC's file stem, COCO's image id as a string).
        files: each image's path.
        sizes: int64 (N, 2), each image's ``(height, width)`` in pixels as annotated.
        offsets: int64 (N + 1,).
        boxes: float32 (M, 4), ``xyxy`` in the image's own pixels (see the module docstring).
        labels: int64 (M,), 0-based class indices.
        ignore: bool (M,), objects left out of training and scoring (VOC's difficult ones unless
            kept, COCO's crowds).
        sources: each image's annotation file (for messages).
        dropped: boxes of zero width or height left out while reading.
    """

    ids: list[str]
    files: list[str]
    sizes: np.ndarray
    offsets: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray
    sources: list[str]
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    @classmethod
    def build(cls, ids, files, sizes, per_image: list[tuple[list, list, list]], sources,
              dropped: int = 0) -> "BoxAnnotations":
        """From one ``(boxes, labels, ignore)`` triple of lists per image."""
        counts = [len(b) for b, _, _ in per_image]
        offsets = np.zeros(len(per_image) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(counts)
        boxes = np.array([b for bs, _, _ in per_image for b in bs], dtype=np.float64).reshape(-1, 4)
        labels = np.array([lab for _, ls, _ in per_image for lab in ls], dtype=np.int64)
        ignore = np.array([g for _, _, gs in per_image for g in gs], dtype=bool)
        return cls(list(ids), [str(f) for f in files], np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
                   offsets, boxes.astype(np.float32), labels, ignore, [str(s) for s in sources], dropped)

    def scaled_sizes(self, image_size: int) -> np.ndarray:
        """float64 (K, 2): the width and height of every box not ignored, in pixels after its
        image is resized to ``image_size`` x ``image_size``."""
        counts = np.diff(self.offsets)
        hw = np.repeat(self.sizes, counts, axis=0).astype(np.float64)
        keep = ~self.ignore
        w = (self.boxes[:, 2] - self.boxes[:, 0]).astype(np.float64) * image_size / hw[:, 1]
        h = (self.boxes[:, 3] - self.boxes[:, 1]).astype(np.float64) * image_size / hw[:, 0]
        return np.stack((w, h), axis=1)[keep]


def _number(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _read_xml(path: Path) -> ET.Element:
    """The root element of the XML file at ``path``; a file that does not parse, or declares
    entities (which VOC's files never do), is a :class:`DataFileError`."""
    data = path.read_bytes()
    if b"<!ENTITY" in data or b"<!DOCTYPE" in data:
        raise DataFileError(f"{path} declares a DOCTYPE or entities, which a VOC annotation never does; "
                            f"it is not read: {_FIX}")
    try:
        return ET.fromstring(data)
    except ET.ParseError as err:
        raise DataFileError(f"{path} is not a well-formed XML file ({err}): {_FIX}") from None


def parse_voc_annotation(path: str | os.PathLike) -> tuple[tuple[int, int] | None, list, list, list]:
    """Read one VOC annotation file.

    Returns ``(size, boxes, labels, difficult)``: ``size`` the image's ``(height, width)`` from
    ``<size>`` (``None`` when absent or zero), ``boxes`` a list of 0-based ``xyxy`` tuples
    (``xmin - 1, ymin - 1, xmax, ymax``, see the module docstring), not yet clipped, ``labels``
    their indices into :data:`VOC_CLASSES` and ``difficult`` their flags. Any fault is a
    :class:`DataFileError` naming the file and the object."""
    path = Path(path)
    root = _read_xml(path)
    if root.tag != "annotation":
        raise DataFileError(f"{path} is not a VOC annotation: its root element is <{root.tag}>, "
                            f"expected <annotation>: {_FIX}")
    size = None
    node = root.find("size")
    if node is not None:
        w, h = _number(node.findtext("width")), _number(node.findtext("height"))
        if w is None or h is None or w < 0 or h < 0 or w != int(w) or h != int(h):
            raise DataFileError(f"{path}: <size> holds width {node.findtext('width')!r} and height "
                                f"{node.findtext('height')!r}, expected whole numbers of pixels: {_FIX}")
        if w > 0 and h > 0:
            size = (int(h), int(w))
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.findall("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        where = f"{path}: object {k} ({name or 'no name'})"
        if name not in _VOC_INDEX:
            raise DataFileError(f"{path}: object {k} has the class name {name!r}, which is not one of VOC's "
                                f"20 classes ({', '.join(VOC_CLASSES)}): {_FIX}")
        flag = (obj.findtext("difficult") or "0").strip()
        if flag not in ("0", "1"):
            raise DataFileError(f"{where} has <difficult> {flag!r}, expected 0 or 1: {_FIX}")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise DataFileError(f"{where} has no <bndbox>: {_FIX}")
        coords = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = bnd.findtext(tag)
            value = _number(text)
            if value is None:
                said = "is missing" if text is None else f"is {text.strip()!r}, not a number"
                raise DataFileError(f"{where}: <{tag}> of its <bndbox> {said}: {_FIX}")
            coords.append(value)
        xmin, ymin, xmax, ymax = coords
        if xmax < xmin or ymax < ymin:
            raise DataFileError(f"{where} has a box with xmin={xmin:g}, ymin={ymin:g}, xmax={xmax:g}, "
                                f"ymax={ymax:g}: its corners are the wrong way round (VOC's corners are "
                                f"inclusive pixels, xmin <= xmax and ymin <= ymax): {_FIX}")
        boxes.append((xmin - 1.0, ymin - 1.0, xmax, ymax))
        labels.append(_VOC_INDEX[name])
        difficult.append(flag == "1")
    return size, boxes, labels, difficult


def _clip(box, size: tuple[int, int], where: str) -> tuple[float, float, float, float]:
    """``box`` clipped to an image of ``size`` = (height, width); a box left empty is an error."""
    h, w = size
    x1, y1, x2, y2 = min(max(box[0], 0.0), w), min(max(box[1], 0.0), h), min(max(box[2], 0.0), w), \
        min(max(box[3], 0.0), h)
    if x2 <= x1 or y2 <= y1:
        raise DataFileError(f"{where}: its box {tuple(round(v, 2) for v in box)} (xyxy, 0-based) lies outside "
                            f"the {w}x{h} image: {_FIX}")
    return x1, y1, x2, y2


def _header_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from an image file's header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception as err:  # noqa: BLE001 -- Pillow raises many kinds on a damaged file
        raise DataFileError(f"{path} is not an image Pillow can read ({err.__class__.__name__}): {_FIX}") from None


def _plain_name(name: Any) -> bool:
    """Whether ``name`` is a file name that stays in its folder (no separator, no ``..``)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\x00" not in name and not (len(name) > 1 and name[1] == ":"))


def read_id_list(path: Path) -> list[str]:
    """The image ids of an ImageSets list, one a line (blank lines skipped)."""
    ids = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 1 or not _plain_name(parts[0]):
            raise DataFileError(f"{path}, line {n}: {line.strip()!r} is not one image id (a list of "
                                f"ImageSets holds one file stem a line, e.g. 2008_000008): {_FIX}")
        ids.append(parts[0])
    return ids


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class CocoInstances:
    """What :func:`read_coco_instances` reads from one ``instances_*.json``."""

    categories: list[tuple[int, str]]  # (id, name), sorted by id: label k is categories[k]
    annotations: BoxAnnotations
    images_total: int = 0  # images in the file (before ``limit``)
    without_objects: int = 0  # images kept with no annotation
    dropped_ids: list = field(default_factory=list)  # annotations of zero width or height


def read_coco_instances(path: str | os.PathLike, images_dir: str | os.PathLike,
                        limit: int | None = None) -> CocoInstances:
    """Read a COCO ``instances_*.json`` with the json module and check it: the file must hold
    ``images``, ``annotations`` and ``categories``; every annotation must point to one of its
    images and categories and hold a ``bbox`` ``[x, y, w, h]`` of finite numbers with ``w, h >= 0``
    (boxes of zero width or height are dropped and counted); image file names must stay in
    ``images_dir``. Category ids become labels ``0..K-1`` in increasing id order. Only the first
    ``limit`` images (in the file's order) are kept; images without annotations are kept, with
    no box. A fault is a :class:`DataFileError` naming the file and the image or annotation id."""
    path, images_dir = Path(path), Path(images_dir)
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path} is not a valid JSON file ({err.__class__.__name__}: {err}): "
                            f"delete it and unpack the official annotations again") from None
    if not isinstance(data, dict):
        raise DataFileError(f"{path} holds a JSON {type(data).__name__}, not the object of a COCO instances "
                            f"file: {_FIX}")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DataFileError(f"{path} is not a COCO instances file: it has no list "
                            f"{' / '.join(repr(k) for k in missing)} (one needs 'images', 'annotations' "
                            f"and 'categories'): {_FIX}")

    categories: dict[int, str] = {}
    for k, cat in enumerate(data["categories"]):
        cid = cat.get("id") if isinstance(cat, dict) else None
        name = cat.get("name") if isinstance(cat, dict) else None
        if not _is_int(cid) or not isinstance(name, str):
            raise DataFileError(f"{path}: categories[{k}] needs an integer 'id' and a string 'name', got "
                                f"{cat!r:.120}: {_FIX}")
        if cid in categories:
            raise DataFileError(f"{path}: category id {cid} appears twice: {_FIX}")
        categories[cid] = name
    if not categories:
        raise DataFileError(f"{path} lists no categories: {_FIX}")
    order = sorted(categories)
    label_of = {cid: k for k, cid in enumerate(order)}

    image_rows: dict[int, int] = {}
    ids, files, sizes = [], [], []
    total = len(data["images"])
    for k, img in enumerate(data["images"]):
        iid = img.get("id") if isinstance(img, dict) else None
        if not _is_int(iid):
            raise DataFileError(f"{path}: images[{k}] has no integer 'id' ({img!r:.120}): {_FIX}")
        if iid in image_rows:
            raise DataFileError(f"{path}: image id {iid} appears twice: {_FIX}")
        name, w, h = img.get("file_name"), img.get("width"), img.get("height")
        if not _plain_name(name):
            raise DataFileError(f"{path}: image id {iid} has the file_name {name!r}, which is not a file name "
                                f"inside {images_dir} (no folders, no '..'): {_FIX}")
        if not (_is_int(w) and _is_int(h) and w > 0 and h > 0):
            raise DataFileError(f"{path}: image id {iid} has width {w!r} and height {h!r}, expected positive "
                                f"whole numbers of pixels: {_FIX}")
        if limit is not None and len(ids) >= limit:
            image_rows[iid] = -1  # known, not kept
            continue
        image_rows[iid] = len(ids)
        ids.append(str(iid))
        files.append(images_dir / name)
        sizes.append((h, w))

    per_image: list[tuple[list, list, list]] = [([], [], []) for _ in ids]
    dropped: list = []
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DataFileError(f"{path}: annotations[{k}] is a {type(ann).__name__}, not an object: {_FIX}")
        aid = ann.get("id", f"#{k}")
        where = f"{path}: annotation id {aid}"
        iid, cid = ann.get("image_id"), ann.get("category_id")
        row = image_rows.get(iid) if _is_int(iid) else None
        if row is None:
            raise DataFileError(f"{where} points to image_id {iid!r}, which is not among the file's images: {_FIX}")
        if not _is_int(cid) or cid not in label_of:
            raise DataFileError(f"{where} (image id {iid}) has the category_id {cid!r}, which is not among the "
                                f"file's categories ({', '.join(str(c) for c in order[:10])}"
                                f"{' ...' if len(order) > 10 else ''}): {_FIX}")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise DataFileError(f"{where} (image id {iid}) has the bbox {bbox!r:.80}, expected [x, y, width, "
                                f"height], four finite numbers: {_FIX}")
        x, y, w, h = (float(v) for v in bbox)
        if w < 0 or h < 0:
            raise DataFileError(f"{where} (image id {iid}) has a bbox of width {w:g} and height {h:g}; "
                                f"neither may be negative: {_FIX}")
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            raise DataFileError(f"{where} (image id {iid}) has iscrowd {crowd!r}, expected 0 or 1: {_FIX}")
        if row < 0:
            continue  # an image beyond ``limit``
        if w == 0 or h == 0:
            dropped.append(aid)
            continue
        box = _clip((x, y, x + w, y + h), sizes[row], f"{where} (image id {iid})")
        boxes, labels, ignore = per_image[row]
        boxes.append(box)
        labels.append(label_of[cid])
        ignore.append(bool(crowd))
    if dropped:
        log.warning("%s: %d box(es) of zero width or height left out (annotation id %s%s)", path, len(dropped),
                    ", ".join(str(a) for a in dropped[:5]), " ..." if len(dropped) > 5 else "")
    annotations = BoxAnnotations.build(ids, files, sizes, per_image, [path] * len(ids), len(dropped))
    return CocoInstances([(cid, categories[cid]) for cid in order], annotations, total,
                         sum(1 for b, _, _ in per_image if not b), dropped)


# ---------------------------------------------------------------------------------- datasets
def load_rgb(path: Path, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The image at ``path`` as uint8 (3, size, size), resized bilinearly, and its own
    ``(height, width)``. A missing file is a :class:`DatasetNotFoundError`, one Pillow cannot
    read a :class:`DataFileError`; both name it."""
    from PIL import Image

    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: image file not found (the dataset's images are incomplete: unpack "
                                   f"the official archive again)")
    try:
        with Image.open(path) as im:
            im.load()
            original = (im.height, im.width)
            im = im.convert("RGB")
    except Exception as err:  # noqa: BLE001 -- Pillow raises many kinds on a damaged file
        said = str(err).replace(str(path), "").strip(" :'")
        raise DataFileError(f"{path} is not an image Pillow can read ({err.__class__.__name__}"
                            f"{': ' + said if said else ''}): {_FIX}") from None
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    array = np.asarray(im, dtype=np.uint8).copy()
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), original


def _normalise(image: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (image.float() / 255.0 - mean) / std


class BoxDataset(Dataset):
    """Examples ``(image, target)`` of one split (the batch contract of the datamodules below).
    With ``hflip``, each example is mirrored left-right with probability one half (training)."""

    def __init__(self, annotations: BoxAnnotations, image_size: int, mean: Sequence[float],
                 std: Sequence[float], hflip: bool = False):
        self.annotations = annotations
        self.image_size = int(image_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ann, s = self.annotations, self.image_size
        path = Path(ann.files[i])
        image, (h, w) = load_rgb(path, s)
        if (h, w) != tuple(int(v) for v in ann.sizes[i]):
            ah, aw = (int(v) for v in ann.sizes[i])
            raise DataFileError(f"{path} is {w}x{h} pixels but {ann.sources[i]} says {aw}x{ah} (image id "
                                f"{ann.ids[i]}): the image and its annotation do not belong together: {_FIX}")
        rows = ann.rows(i)
        scale = np.array([s / w, s / h, s / w, s / h])
        boxes = torch.from_numpy((ann.boxes[rows].astype(np.float64) * scale).astype(np.float32))
        labels = torch.from_numpy(ann.labels[rows].copy())
        ignore = torch.from_numpy(ann.ignore[rows].copy())
        if self.hflip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
            boxes = torch.stack((s - boxes[:, 2], boxes[:, 1], s - boxes[:, 0], boxes[:, 3]), dim=1)
        target = {"boxes": boxes[~ignore].reshape(-1, 4), "labels": labels[~ignore],
                  "ignore_boxes": boxes[ignore].reshape(-1, 4), "ignore_labels": labels[ignore],
                  "orig_size": torch.tensor([h, w], dtype=torch.int64)}
        return _normalise(image, self.mean, self.std), target


def read_voc_mask(path: Path, size: int, expected: tuple[int, int], num_classes: int = 20) -> torch.Tensor:
    """A VOC class mask (a palette or grey PNG of class indices: 0 background, ``1..num_classes``
    the classes, 255 borders) as int64 (size, size), resized with the nearest neighbour. A mask
    of another size than its image (``expected`` = (height, width)), of colours rather than
    indices, or holding another value is a :class:`DataFileError` naming it."""
    from PIL import Image

    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: mask file not found (unpack the official archive again)")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("P", "L"):
                original = (im.height, im.width)
                values = np.asarray(im, dtype=np.uint8)
                if im.size != (size, size):
                    im = im.resize((size, size), Image.NEAREST)
                mask = np.asarray(im, dtype=np.uint8).copy()
    except Exception as err:  # noqa: BLE001
        raise DataFileError(f"{path} is not an image Pillow can read ({err.__class__.__name__}): {_FIX}") from None
    if mode not in ("P", "L"):
        raise DataFileError(f"{path} is a {mode} image, not a mask of class indices (VOC's masks are palette "
                            f"PNGs whose pixel values are the classes): {_FIX}")
    if original != tuple(expected):
        raise DataFileError(f"{path} is {original[1]}x{original[0]} pixels but its image is "
                            f"{expected[1]}x{expected[0]}: {_FIX}")
    counts = np.bincount(values.ravel(), minlength=256)
    bad = [v for v in np.nonzero(counts)[0].tolist() if num_classes < v < VOC_BORDER]
    if bad:
        raise DataFileError(f"{path} holds the pixel value {bad[0]}; a VOC mask holds 0 (background), "
                            f"1..{num_classes} (the classes) and {VOC_BORDER} (borders) only: {_FIX}")
    return torch.from_numpy(mask).long()


class MaskDataset(Dataset):
    """Examples ``(image, {"masks": (S, S) int64, "orig_size": (2,) int64})`` of one split; VOC's
    border value 255 becomes ``ignore_index``."""

    def __init__(self, ids: list[str], images: list[Path], masks: list[Path], image_size: int,
                 mean: Sequence[float], std: Sequence[float], ignore_index: int = VOC_BORDER,
                 hflip: bool = False):
        self.ids, self.images, self.masks = ids, images, masks
        self.image_size = int(image_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.ignore_index = int(ignore_index)
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, (h, w) = load_rgb(self.images[i], self.image_size)
        mask = read_voc_mask(self.masks[i], self.image_size, (h, w))
        if self.ignore_index != VOC_BORDER:
            mask[mask == VOC_BORDER] = self.ignore_index
        if self.hflip and bool(torch.rand(()) < 0.5):
            image, mask = image.flip(-1), mask.flip(-1)
        return _normalise(image, self.mean, self.std), {"masks": mask,
                                                        "orig_size": torch.tensor([h, w], dtype=torch.int64)}


def collate_detection(examples: list) -> Any:
    """Loader examples ``(image, target)`` -> ``(images (B, 3, S, S), [target, ...])``; bare
    images (``read_input``'s, for ``zoo-predict``) -> a stacked tensor."""
    if all(isinstance(e, torch.Tensor) for e in examples):
        return torch.stack(examples)
    images, targets = zip(*examples)
    return torch.stack(images), list(targets)


# ---------------------------------------------------------------------------------- datamodules
class _RealImageDataModule(ZooDataModule):
    """What the three datamodules below share: argument checks, the loaders' collation, the
    facts, ``read_input`` and the download switch."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    light_on_dark = False
    in_chans = 3

    def __init__(self, data_dir: str, image_size: int, batch_size: int, eval_batch_size: int | None,
                 num_workers: int, limit: int | None, hflip: bool, download: bool, in_chans: int | None,
                 augment: Any):
        super().__init__(batch_size, eval_batch_size, num_workers)
        where = type(self).__name__
        if augment is not None:
            raise ValueError(f"{where}: augment must be null (augment=none): the image augmentations of "
                             f"datamodules.vision.augment would move the objects off their boxes and masks; "
                             f"use data.hflip=true (boxes and masks are mirrored with the image)")
        if not _is_int(image_size) or image_size < 8:
            raise ValueError(f"{where}: image_size must be an int >= 8 (the side images are resized to), "
                             f"got {image_size!r}")
        if limit is not None and (not _is_int(limit) or limit < 1):
            raise ValueError(f"{where}: limit must be null or an int >= 1 (images per split), got {limit!r}")
        if in_chans is not None and in_chans != 3:
            raise ValueError(f"{where}: in_chans must be 3 (colour images), got {in_chans!r}")
        self.data_dir = str(data_dir)
        self.image_size = int(image_size)
        self.limit = limit
        self.hflip = bool(hflip)
        self.download = bool(download)
        self.split_source: dict[str, str] = {}

    collate = staticmethod(collate_detection)

    @property
    def root(self) -> Path:
        return Path(os.path.abspath(os.path.expanduser(self.data_dir)))

    def _facts(self, class_names: Sequence[str] | None) -> dict[str, Any]:
        s = self.image_size
        return {"num_classes": len(class_names) if class_names is not None else None,
                "class_names": list(class_names) if class_names is not None else None,
                "in_chans": 3, "image_size": s, "input_shape": [3, s, s]}

    def prepare_data(self) -> None:
        if self.download:
            self.fetch()
        self.check_layout()

    def fetch(self) -> None:
        raise NotImplementedError

    def check_layout(self) -> None:
        raise NotImplementedError

    def _sizes(self) -> dict[str, int | None]:
        return {f"{split}_size": (len(ds) if ds is not None else None)
                for split, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set))}

    def read_input(self, path: Path) -> tuple[torch.Tensor, dict]:
        """An image file as one normalised example (3, S, S), with its own size
        (``{"orig_size": [height, width]}``: boxes in the S x S frame scale back with it)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        image, (h, w) = load_rgb(path, self.image_size)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return _normalise(image, mean, std), {"orig_size": [h, w]}


def _missing_message(name: str, folder: Path, missing: list[Path], layout: str, data_dir: str) -> str:
    shown = ", ".join(str(p) for p in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return (f"{name}: dataset not found in {folder} (missing: {shown}). Expected the layout\n{layout}\n"
            f"Either set `data.download=true` to download it (needs internet access), or place the files "
            f"there yourself (data_dir={data_dir!r}).")


class _VOCBase(_RealImageDataModule):
    """Pascal VOC's folder, lists and download, shared by detection and segmentation."""

    image_sets = "Main"
    name = "voc"

    def __init__(self, data_dir: str, year: str | int, image_size: int, batch_size: int,
                 eval_batch_size: int | None, num_workers: int, limit: int | None, hflip: bool,
                 download: bool, train_split: str, val_split: str, test_split: str | None,
                 num_classes: int | None, in_chans: int | None, augment: Any):
        super().__init__(data_dir, image_size, batch_size, eval_batch_size, num_workers, limit, hflip,
                         download, in_chans, augment)
        where = type(self).__name__
        self.year = str(year)
        if self.year not in VOC_YEARS:
            raise ValueError(f"{where}: year must be one of {', '.join(VOC_YEARS)}, got {year!r}")
        for arg, value in (("train_split", train_split), ("val_split", val_split), ("test_split", test_split)):
            if not (value is None and arg == "test_split") and not _plain_name(value):
                raise ValueError(f"{where}: {arg} must name a list of ImageSets/{self.image_sets} "
                                 f"(train, val, trainval, test), got {value!r}")
        if num_classes is not None and num_classes != len(VOC_CLASSES):
            raise ValueError(f"{where}: num_classes must be {len(VOC_CLASSES)} (VOC's object classes), "
                             f"got {num_classes!r}")
        self.splits = {"train": train_split, "val": val_split, "test": test_split}

    @property
    def voc_root(self) -> Path:
        return self.root / "VOCdevkit" / f"VOC{self.year}"

    def list_path(self, split: str) -> Path:
        return self.voc_root / "ImageSets" / self.image_sets / f"{split}.txt"

    def needed_folders(self) -> tuple[str, ...]:
        raise NotImplementedError

    def layout(self) -> str:
        raise NotImplementedError

    def check_layout(self) -> None:
        """Raise :class:`DatasetNotFoundError` unless the folders and the train and val lists are
        there (the test list is optional: without it the val split is tested)."""
        missing = [self.voc_root / d for d in self.needed_folders() if not (self.voc_root / d).is_dir()]
        missing += [self.list_path(self.splits[s]) for s in ("train", "val")
                    if not self.list_path(self.splits[s]).is_file()]
        if missing:
            raise DatasetNotFoundError(_missing_message(self.name, self.voc_root, missing, self.layout(),
                                                        self.data_dir))

    def split_ids(self) -> dict[str, list[str]]:
        """The image ids of each split (the first ``limit``), and where each split came from."""
        self.check_layout()
        out = {}
        for split in ("train", "val", "test"):
            name = self.splits[split]
            if split == "test" and (name is None or not self.list_path(name).is_file()):
                if name is not None:
                    log.info("%s: no %s; the test split is the val split (%s)", self.name,
                             self.list_path(name), self.splits["val"])
                name = self.splits["val"]
            path = self.list_path(name)
            ids = read_id_list(path)
            if self.limit is not None:
                ids = ids[: self.limit]
            if not ids:
                raise DataFileError(f"{path} lists no image: {_FIX}")
            self.split_source[split] = name
            out[split] = ids
        return out

    def _check_images(self, ids: list[str], list_file: Path) -> list[Path]:
        folder = self.voc_root / "JPEGImages"
        present = set(os.listdir(folder))
        missing = [folder / f"{i}.jpg" for i in ids if f"{i}.jpg" not in present]
        if missing:
            shown = ", ".join(str(p) for p in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                                              else "")
            raise DatasetNotFoundError(f"{self.name}: {list_file} lists images that are not in {folder}: {shown}. "
                                       f"Unpack the official archive again (or set data.download=true).")
        return [folder / f"{i}.jpg" for i in ids]

    def fetch(self) -> None:
        """Download VOC's archives for ``year`` (train and val; for 2007 the test set too) into
        ``data_dir``, MD5 checked, and unpack them with :func:`safe_extract`; nothing is fetched
        for the lists already present."""
        from torchvision.datasets.utils import download_url
        from torchvision.datasets.voc import DATASET_YEAR_DICT

        from datamodules.archives import safe_extract

        wanted = ["train", "val"] + (["test"] if self.year == "2007" and self.splits["test"] else [])
        for split in wanted:
            name = self.splits[split]
            if self.list_path(name).is_file() and all((self.voc_root / d).is_dir() for d in self.needed_folders()):
                continue
            info = DATASET_YEAR_DICT[f"{self.year}-test" if split == "test" else self.year]
            self.root.mkdir(parents=True, exist_ok=True)
            archive = self.root / info["filename"]
            try:
                download_url(info["url"], str(self.root), filename=info["filename"], md5=info["md5"])
            except RuntimeError as err:
                if "corrupted" not in str(err):
                    raise
                raise DataFileError(f"{archive} does not match the official VOC archive (MD5 {info['md5']}): "
                                    f"delete it and run again to download it afresh") from None
            safe_extract(archive, self.root)


_VOC_LAYOUT = """  <data_dir>/VOCdevkit/VOC<year>/
    Annotations/<id>.xml
    JPEGImages/<id>.jpg
    ImageSets/Main/<train_split>.txt, <val_split>.txt (and optionally <test_split>.txt)"""

_VOC_SEG_LAYOUT = """  <data_dir>/VOCdevkit/VOC<year>/
    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png
    ImageSets/Segmentation/<train_split>.txt, <val_split>.txt (and optionally <test_split>.txt)"""


class VOCDetectionDataModule(_VOCBase):
    """Pascal VOC detection (2007 ... 2012): 20 object classes, boxes read from VOC's XML files
    (layout, coordinates, checks: the module docstring).

    Splits: the lists ``ImageSets/Main/<train_split>.txt`` (train), ``<val_split>.txt`` (val) and
    ``<test_split>.txt`` (test; VOC 2007's test archive adds ``test.txt``). Without the test
    list the val split is also the test split (``describe()["split_source"]`` says which).

    Batch contract (train/val/test loaders): ``(images, targets)`` with ``images`` float32
    (B, 3, S, S), ``S = image_size``, RGB normalised with ImageNet's mean and std, and
    ``targets`` a list of B dicts, each with the same keys whatever the number of objects:

    * ``boxes``: float32 (n, 4), ``xyxy`` in pixels of the S x S image (VOC's
      ``(xmin - 1, ymin - 1, xmax, ymax)`` scaled by ``S / width``, ``S / height``), n >= 0;
    * ``labels``: int64 (n,), indices into :data:`VOC_CLASSES` (0 = aeroplane ... 19 =
      tvmonitor);
    * ``ignore_boxes``: float32 (m, 4) and ``ignore_labels``: int64 (m,), the difficult objects
      (empty with ``keep_difficult=True``): not trained on; an evaluator following VOC passes
      them as crowd ground truth, so detecting them neither counts nor costs;
    * ``orig_size``: int64 (2,), the image's own ``(height, width)``.

    ``read_input`` gives an image only, with ``{"orig_size": [height, width]}``.

    Args:
        data_dir: the folder holding ``VOCdevkit/``.
        year: 2007 ... 2012.
        image_size: the side ``S`` every image is resized to (aspect ratio not kept).
        train_split, val_split, test_split: the ImageSets lists of the three splits
            (``test_split: null``: test on the val split).
        keep_difficult: train and score the difficult objects as ordinary ones.
        limit: use only the first ``limit`` images of each list (quick runs).
        hflip: mirror training examples left-right with probability 1/2 (boxes with them).
        download: fetch and unpack the official archives in ``prepare_data``.
        num_classes, in_chans: checked (20 and 3) when given; configs interpolate them.
        augment: must be null (see ``hflip``).
        batch_size, eval_batch_size, num_workers: as :class:`ZooDataModule`.
    """

    name = "voc_detection"
    image_sets = "Main"
    class_names = list(VOC_CLASSES)

    def __init__(self, data_dir: str = "data", year: str | int = "2012", image_size: int = 320,
                 batch_size: int = 16, eval_batch_size: int | None = None, train_split: str = "train",
                 val_split: str = "val", test_split: str | None = "test", keep_difficult: bool = False,
                 limit: int | None = None, hflip: bool = False, download: bool = False, num_workers: int = 0,
                 num_classes: int | None = None, in_chans: int | None = None, augment: Any = None):
        super().__init__(data_dir, year, image_size, batch_size, eval_batch_size, num_workers, limit, hflip,
                         download, train_split, val_split, test_split, num_classes, in_chans, augment)
        self.keep_difficult = bool(keep_difficult)
        self.annotations: dict[str, BoxAnnotations] = {}

    def needed_folders(self) -> tuple[str, ...]:
        return ("Annotations", "JPEGImages")

    def layout(self) -> str:
        return _VOC_LAYOUT

    def read_split(self, ids: list[str], list_file: Path) -> BoxAnnotations:
        """Parse the annotations of ``ids`` (listed in ``list_file``) and check their images."""
        files = self._check_images(ids, list_file)
        ann_dir = self.voc_root / "Annotations"
        sizes, per_image, sources = [], [], []
        for image_id, image_file in zip(ids, files):
            path = ann_dir / f"{image_id}.xml"
            if not path.is_file():
                raise DataFileError(f"{list_file} lists the image {image_id}, whose annotation {path} is missing: "
                                    f"{_FIX}")
            size, boxes, labels, difficult = parse_voc_annotation(path)
            if size is None:
                size = _header_size(image_file)
            boxes = [_clip(b, size, f"{path}: object {k}") for k, b in enumerate(boxes, start=1)]
            ignore = [bool(d) and not self.keep_difficult for d in difficult]
            sizes.append(size)
            per_image.append((boxes, labels, ignore))
            sources.append(path)
        return BoxAnnotations.build(ids, files, sizes, per_image, sources)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        ids = self.split_ids()
        sets = {}
        for split in ("train", "val", "test"):
            source = self.split_source[split]
            if split == "test" and source == self.split_source["val"]:
                self.annotations["test"] = self.annotations["val"]
            else:
                self.annotations[split] = self.read_split(ids[split], self.list_path(source))
            sets[split] = BoxDataset(self.annotations[split], self.image_size, self.mean, self.std,
                                     hflip=self.hflip and split == "train")
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def train_box_sizes(self) -> torch.Tensor:
        """(N, 2) widths and heights, in pixels of the S x S images, of every training box (not the
        ignored ones): what a detector's anchors are chosen from."""
        if self.train_set is None:
            self.setup("fit")
        return torch.from_numpy(self.annotations["train"].scaled_sizes(self.image_size).astype(np.float32))

    def data_facts(self) -> dict[str, Any]:
        """Classes and input layout (known before the data is read)."""
        return self._facts(VOC_CLASSES)

    def describe(self) -> dict[str, Any]:
        objects = {split: {"objects": int((~a.ignore).sum()), "ignored": int(a.ignore.sum())}
                   for split, a in self.annotations.items()}
        return {**super().describe(), **self._sizes(), "year": self.year, "split_source": dict(self.split_source),
                "objects": objects or None, "keep_difficult": self.keep_difficult, "limit": self.limit}


class VOCSegmentationDataModule(_VOCBase):
    """Pascal VOC semantic segmentation (2007 ... 2012): a class for every pixel, from the palette
    PNGs of ``SegmentationClass/`` (layout: the module docstring).

    Splits: the lists ``ImageSets/Segmentation/<train_split>.txt`` (train), ``<val_split>.txt``
    (val) and ``<test_split>.txt`` (test, when present; else the val split is tested).

    Batch contract (train/val/test loaders): ``(images, targets)`` with ``images`` float32
    (B, 3, S, S), ``S = image_size``, RGB normalised with ImageNet's mean and std, and
    ``targets`` a list of B dicts:

    * ``masks``: int64 (S, S), resized with the nearest neighbour: 0 background, ``k + 1`` the
      class ``VOC_CLASSES[k]`` (1 = aeroplane ... 20 = tvmonitor), and ``ignore_index`` (255 by
      default, VOC's own value) on object borders and unlabelled pixels, which a loss and the
      metrics must skip (``F.cross_entropy(..., ignore_index=255)``); ``ignore_index: 0`` counts
      them as background instead, for a task that ignores nothing;
    * ``orig_size``: int64 (2,), the image's own ``(height, width)``.

    Args:
        ignore_index: the value border pixels get (255, VOC's; 0 folds them into the background;
            any value outside 1..20).
        data_dir, year, image_size, train_split, val_split, test_split, limit, hflip, download,
        num_classes, in_chans, augment, batch_size, eval_batch_size, num_workers: as
        :class:`VOCDetectionDataModule` (``num_classes`` counts the 20 object classes, without the
        background).
    """

    name = "voc_segmentation"
    image_sets = "Segmentation"
    class_names = list(VOC_CLASSES)

    def __init__(self, data_dir: str = "data", year: str | int = "2012", image_size: int = 320,
                 batch_size: int = 16, eval_batch_size: int | None = None, train_split: str = "train",
                 val_split: str = "val", test_split: str | None = "test", ignore_index: int = VOC_BORDER,
                 limit: int | None = None, hflip: bool = False, download: bool = False, num_workers: int = 0,
                 num_classes: int | None = None, in_chans: int | None = None, augment: Any = None,
                 redraw_train: bool = False):
        super().__init__(data_dir, year, image_size, batch_size, eval_batch_size, num_workers, limit, hflip,
                         download, train_split, val_split, test_split, num_classes, in_chans, augment)
        if redraw_train:  # the canvas recipes draw fresh canvases; a real dataset's images are what they are
            import warnings

            warnings.warn(f"{type(self).__name__}: redraw_train=true has no effect on a real dataset (its "
                          f"training images are the same every epoch); set data.redraw_train=false to silence this")
        if not _is_int(ignore_index) or 1 <= ignore_index <= len(VOC_CLASSES):
            raise ValueError(f"{type(self).__name__}: ignore_index must be an int outside 1..{len(VOC_CLASSES)} "
                             f"(the classes): 255 (VOC's) or 0 (borders become background), got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        self.masks: dict[str, list[Path]] = {}

    def needed_folders(self) -> tuple[str, ...]:
        return ("JPEGImages", "SegmentationClass")

    def layout(self) -> str:
        return _VOC_SEG_LAYOUT

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        ids = self.split_ids()
        sets = {}
        mask_dir = self.voc_root / "SegmentationClass"
        present = set(os.listdir(mask_dir))
        for split in ("train", "val", "test"):
            list_file = self.list_path(self.split_source[split])
            images = self._check_images(ids[split], list_file)
            missing = [mask_dir / f"{i}.png" for i in ids[split] if f"{i}.png" not in present]
            if missing:
                raise DataFileError(f"{list_file} lists the image {missing[0].stem}, whose mask {missing[0]} is "
                                    f"missing{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}: "
                                    f"{_FIX}")
            self.masks[split] = [mask_dir / f"{i}.png" for i in ids[split]]
            sets[split] = MaskDataset(ids[split], images, self.masks[split], self.image_size, self.mean, self.std,
                                      self.ignore_index, hflip=self.hflip and split == "train")
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def data_facts(self) -> dict[str, Any]:
        """Classes (the 20 object classes; the mask adds the background), input layout and the
        value of ignored pixels (``None`` when borders are background)."""
        return {**self._facts(VOC_CLASSES), "ignore_index": self.ignore_index if self.ignore_index else None}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self._sizes(), "year": self.year, "split_source": dict(self.split_source),
                "limit": self.limit}


_COCO_LAYOUT = """  <data_dir>/annotations/instances_<split><year>.json   (e.g. instances_train2017.json)
  <data_dir>/<split><year>/<file_name>                  (e.g. train2017/000000000009.jpg)"""


class COCODetectionDataModule(_RealImageDataModule):
    """COCO object detection (2014, 2017, or any file in COCO's instances format), boxes read
    from ``annotations/instances_<split><year>.json`` (layout, coordinates, checks: the module
    docstring).

    Splits: ``<train_split><year>`` (train), ``<val_split><year>`` (val) and, as COCO's test
    images have no public annotations, the val split again as test unless ``test_split`` names a
    split whose instances file is there. Category ids become labels ``0..K-1`` in increasing id
    order (``class_names`` from the categories, e.g. 80 for 2017); the val file must list the
    same categories as the train file. Images without annotations are kept, with no box.

    Batch contract: that of :class:`VOCDetectionDataModule`, with COCO's crowd regions
    (``iscrowd: 1``) as ``ignore_boxes``/``ignore_labels``. The class names are known after
    ``setup`` (``${data_fact:class_names}``).

    Args:
        data_dir: the folder holding ``annotations/`` and the image folders.
        year: the suffix of the files and folders (2017, 2014 ...).
        train_split, val_split, test_split: the split names (``test_split: null``: the val split).
        num_classes: checked against the categories when given (80 for COCO 2014 and 2017).
        image_size, limit, hflip, download, in_chans, augment, batch_size, eval_batch_size,
        num_workers: as :class:`VOCDetectionDataModule`.
    """

    name = "coco_detection"
    IMAGES_URL = "http://images.cocodataset.org/zips/{split}{year}.zip"
    ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval{year}.zip"

    def __init__(self, data_dir: str = "data", year: str | int = "2017", image_size: int = 320,
                 batch_size: int = 16, eval_batch_size: int | None = None, train_split: str = "train",
                 val_split: str = "val", test_split: str | None = None, limit: int | None = None,
                 hflip: bool = False, download: bool = False, num_workers: int = 0,
                 num_classes: int | None = None, in_chans: int | None = None, augment: Any = None):
        super().__init__(data_dir, image_size, batch_size, eval_batch_size, num_workers, limit, hflip,
                         download, in_chans, augment)
        where = type(self).__name__
        self.year = str(year)
        for arg, value in (("train_split", train_split), ("val_split", val_split), ("test_split", test_split),
                           ("year", self.year)):
            if not (value is None and arg == "test_split") and not _plain_name(value):
                raise ValueError(f"{where}: {arg} must be a plain name (e.g. train, val, 2017), got {value!r}")
        if num_classes is not None and (not _is_int(num_classes) or num_classes < 1):
            raise ValueError(f"{where}: num_classes must be null or a positive int, got {num_classes!r}")
        self.requested_num_classes = num_classes
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.categories: list[tuple[int, str]] | None = None
        self.annotations: dict[str, BoxAnnotations] = {}
        self.instances: dict[str, CocoInstances] = {}

    def json_path(self, split: str) -> Path:
        return self.root / "annotations" / f"instances_{split}{self.year}.json"

    def images_dir(self, split: str) -> Path:
        return self.root / f"{split}{self.year}"

    def check_layout(self) -> None:
        missing = []
        for split in ("train", "val"):
            name = self.splits[split]
            missing += [p for p in (self.json_path(name),) if not p.is_file()]
            missing += [p for p in (self.images_dir(name),) if not p.is_dir()]
        test = self.splits["test"]
        if test is not None:
            missing += [p for p in (self.json_path(test),) if not p.is_file()]
            missing += [p for p in (self.images_dir(test),) if not p.is_dir()]
        if missing:
            raise DatasetNotFoundError(_missing_message(self.name, self.root, missing, _COCO_LAYOUT, self.data_dir))

    def fetch(self) -> None:
        """Download COCO's annotations and the train and val images of ``year`` into ``data_dir``
        and unpack them with :func:`safe_extract` (only what is missing; tens of gigabytes)."""
        from torchvision.datasets.utils import download_url

        from datamodules.archives import safe_extract

        self.root.mkdir(parents=True, exist_ok=True)
        names = [self.splits["train"], self.splits["val"]]
        if not all(self.json_path(n).is_file() for n in names):
            url = self.ANNOTATIONS_URL.format(year=self.year)
            download_url(url, str(self.root))
            safe_extract(self.root / url.rsplit("/", 1)[1], self.root)
        for n in names:
            if not self.images_dir(n).is_dir():
                url = self.IMAGES_URL.format(split=n, year=self.year)
                download_url(url, str(self.root))
                safe_extract(self.root / url.rsplit("/", 1)[1], self.root)

    def read_split(self, name: str) -> CocoInstances:
        path, folder = self.json_path(name), self.images_dir(name)
        inst = read_coco_instances(path, folder, self.limit)
        present = set(os.listdir(folder))
        missing = [f for f in inst.annotations.files if Path(f).name not in present]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise DatasetNotFoundError(f"{self.name}: {path} lists images that are not in {folder}: {shown}. "
                                       f"Unpack the official archive again (or set data.download=true).")
        return inst

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.check_layout()
        sets = {}
        for split in ("train", "val", "test"):
            name = self.splits[split] if split != "test" or self.splits["test"] is not None else self.splits["val"]
            self.split_source[split] = f"{name}{self.year}"
            if split == "test" and name == self.splits["val"]:
                self.instances["test"] = self.instances["val"]
            else:
                self.instances[split] = self.read_split(name)
            inst = self.instances[split]
            if split == "train":
                self.categories = inst.categories
                n = self.requested_num_classes
                if n is not None and n != len(inst.categories):
                    raise ValueError(f"{self.name}: num_classes is {n} but {self.json_path(name)} has "
                                     f"{len(inst.categories)} categories: set data.num_classes="
                                     f"{len(inst.categories)} (or null)")
            elif inst.categories != self.categories:
                raise DataFileError(f"{self.json_path(name)} lists other categories than "
                                    f"{self.json_path(self.splits['train'])} (ids and names must be the same, so "
                                    f"that the labels mean the same): {_FIX}")
            self.annotations[split] = inst.annotations
            sets[split] = BoxDataset(inst.annotations, self.image_size, self.mean, self.std,
                                     hflip=self.hflip and split == "train")
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    @property
    def class_names(self) -> list[str] | None:
        return [name for _, name in self.categories] if self.categories is not None else None

    @property
    def category_ids(self) -> list[int] | None:
        """COCO's category id of each label (to write results in COCO's own ids)."""
        return [cid for cid, _ in self.categories] if self.categories is not None else None

    def train_box_sizes(self) -> torch.Tensor:
        """(N, 2) widths and heights, in pixels of the S x S images, of every training box (not the
        crowds): what a detector's anchors are chosen from."""
        if self.train_set is None:
            self.setup("fit")
        return torch.from_numpy(self.annotations["train"].scaled_sizes(self.image_size).astype(np.float32))

    def data_facts(self) -> dict[str, Any]:
        """Classes (after ``setup``: they come from the categories) and input layout."""
        return self._facts(self.class_names)

    def describe(self) -> dict[str, Any]:
        stats = {split: {"objects": int((~i.annotations.ignore).sum()), "crowds": int(i.annotations.ignore.sum()),
                         "images_without_objects": i.without_objects, "dropped_empty_boxes": len(i.dropped_ids)}
                 for split, i in self.instances.items()}
        return {**super().describe(), **self._sizes(), "year": self.year, "split_source": dict(self.split_source),
                "objects": stats or None, "limit": self.limit}
