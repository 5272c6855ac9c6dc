"""Your own images, sorted into one folder per class (torchvision's ``ImageFolder`` layout).

::

    root/
      train/<class>/*.png|jpg|...   required: one sub-folder per class, its images inside
                                    (sub-folders of a class folder are searched too)
      val/<class>/*                 optional: the validation split as given
      test/<class>/*                optional: the test split as given

The classes are the sub-folders of ``train/``, sorted by name; their position in that order is
the label. ``val/`` and ``test/`` may only use class folders that ``train/`` has, and every class
must have images in every split. A split whose folder is absent is drawn from the training
images instead: stratified by class and seeded by ``split_seed`` (``val_fraction``,
``test_fraction`` of them), so the same seed gives the same split.

Files are read with Pillow (PNG, JPEG, BMP, GIF, TIFF, WebP ...; other files and hidden entries
are skipped), resized to ``native_size`` x ``native_size`` and kept in memory as uint8 tensors.
An image file Pillow cannot read (truncated, corrupt, misnamed) is an error naming it; with
``skip_bad=True`` such files are skipped instead, counted (``describe()["skipped_images"]``) and
named in a warning, but a class folder left without a readable image is still an error.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from datamodules.base import DataFileError, DatasetNotFoundError, stratified_split
from datamodules.vision.base import ImageClassificationDataModule
from datamodules.vision.io import read_image

__all__ = ["ImageFolderDataModule", "IMAGE_EXTENSIONS"]

# what Pillow reads out of the box (the suffixes torchvision's ImageFolder accepts, and GIF/WebP)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm", ".pnm")

SPLITS = ("train", "val", "test")

log = logging.getLogger(__name__)


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _image_files(folder: Path) -> list[Path]:
    """Image files anywhere under ``folder`` (hidden entries skipped), sorted by path."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and all(_visible(part) for part in p.relative_to(folder).parents if part.name)
                  and _visible(p))


class ImageFolderDataModule(ImageClassificationDataModule):
    """Image classification on a folder of your own images (layout: see the module docstring).

    Batch contract (train/val/test loaders), that of the base class: ``(x, y)`` with ``x``
    float32 (B, in_chans, image_size, image_size), normalised per channel, and ``y`` int64 (B,)
    class indices into ``class_names`` (the sorted class folders of ``train/``). Training
    batches are augmented on the device by ``augment``.

    What the data decides is known after ``setup`` (``data_facts()``: ``num_classes``,
    ``class_names``, ``in_chans``, ``image_size``, ``input_shape``), so that a config builds the
    net from it with ``${data_fact:num_classes}``; ``num_classes`` and ``in_chans`` given here
    are checks / choices, not needed.

    Preprocessing is reproducible: the mean and std are those of the training split (unless
    ``normalize`` is given), kept in ``mean``/``std``, reported by ``describe()`` and stored in
    checkpoints (``state_dict``); restoring a checkpoint re-normalises with its statistics and
    refuses a folder whose classes differ from the checkpoint's.

    Args:
        root: the folder holding ``train/`` (and optionally ``val/``, ``test/``).
        native_size: every image is resized (bilinearly, aspect ratio not kept) to this side
            when read; ``image_size`` (default the same) is what the net sees (see the base
            class: a larger ``image_size`` differing by an even number pads with black).
        channels: how images are read and kept: 1 (grey) or 3 (RGB); ``None``: 1 when
            ``in_chans`` is 1 or every training image is grey (its three channels equal), else 3.
        in_chans: the net's input channels, 1 or 3 (default: ``channels``). 1 converts colour
            images to grey (as a net pretrained on grey digits needs); 3 replicates grey ones.
        num_classes: if given, checked against the number of class folders.
        val_fraction, test_fraction: the share of the training images drawn (stratified) as the
            validation / test split when ``val/`` / ``test/`` is absent.
        normalize: ``[mean, std]`` per channel instead of the training split's own statistics.
        skip_bad: skip the image files Pillow cannot read instead of stopping at the first one;
            how many were skipped is logged (with the first few names) and reported by
            ``describe()`` (``skipped_images``). A class folder with no readable image left is
            still an error.
        split_seed, limit, augment, resize_to, train_on_val, batch_size, eval_batch_size,
        num_workers: as in the base class.
    """

    name = "image_folder"
    classes: tuple[str, ...] = ()

    def __init__(
        self,
        root: str,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        native_size: int = 64,
        channels: int | None = None,
        image_size: int | None = None,
        in_chans: int | None = None,
        num_classes: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        augment: nn.Module | Sequence[nn.Module] | None = None,
        split_seed: int = 0,
        limit: int | None = None,
        num_workers: int = 0,
        normalize: Sequence[Sequence[float]] | None = None,
        resize_to: int | None = None,
        train_on_val: bool = False,
        skip_bad: bool = False,
    ):
        if int(native_size) < 1:
            raise ValueError(f"image_folder: native_size must be positive, got {native_size}")
        for arg, value in (("channels", channels), ("in_chans", in_chans)):
            if value is not None and value not in (1, 3):
                raise ValueError(f"image_folder: {arg} must be 1 or 3 (or null), got {value}")
        if channels == 3 and in_chans == 1:
            raise ValueError("image_folder: in_chans=1 reads the images as grey: set channels to 1 or null, "
                             "not 3")
        self.native_size = int(native_size)  # read by the base class (default image_size)
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, val_fraction=val_fraction,
                         test_fraction=test_fraction, image_size=image_size, in_chans=in_chans or 3,
                         augment=augment, split_seed=split_seed, limit=limit, num_workers=num_workers,
                         normalize=normalize, resize_to=resize_to, train_on_val=train_on_val)
        self.root = Path(root).expanduser()
        self.requested_channels = 1 if in_chans == 1 else channels  # None: decided by the data
        self.requested_in_chans = in_chans
        self.requested_num_classes = num_classes
        self.given_normalize = normalize is not None
        if not self.given_normalize:
            self.mean, self.std = None, None  # the training split's, set in setup
        # known once the data is read (setup); in_chans may already be fixed by the arguments
        self.native_chans = self.requested_channels
        self.in_chans = in_chans or self.requested_channels
        self.num_classes = None
        self.split_source: dict[str, str] = {}
        self._raw: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.skip_bad = bool(skip_bad)
        self.skipped: list[Path] = []  # the unreadable files skipped by the last read (skip_bad)

    # -- the folder -------------------------------------------------------------------------------
    def _class_folders(self) -> list[Path]:
        """The class folders of ``train/``, sorted by name, after checking the layout."""
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"image_folder: root folder {self.root} does not exist (data.root); "
                                       "expected root/train/<class>/<images>")
        train = self.root / "train"
        if not train.is_dir():
            raise DatasetNotFoundError(f"image_folder: {train} not found: the images go in "
                                       f"{train}/<class>/*.png|jpg|..., one sub-folder per class "
                                       "(optionally val/ and test/ beside train/, in the same layout)")
        strays = [p.name for p in train.iterdir()
                  if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS]
        if strays:
            raise ValueError(f"image_folder: {train} holds images outside any class folder "
                             f"({', '.join(sorted(strays)[:5])}{' ...' if len(strays) > 5 else ''}): "
                             "move each into train/<class>/")
        folders = sorted((p for p in train.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)
        if len(folders) < 2:
            raise ValueError(f"image_folder: {train} has {len(folders)} class folder(s)"
                             f"{' (' + folders[0].name + ')' if folders else ''}: classification needs at "
                             "least 2, one sub-folder of images per class")
        return folders

    @property
    def class_names(self) -> list[str]:
        if not self.classes:  # the class folders are known without reading any image
            self.classes = tuple(p.name for p in self._class_folders())
        return list(self.classes)

    def _read_split(self, split: str, channels: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(images uint8 (N, channels, native_size, native_size), labels int64 (N,)) of
        ``root/<split>/``, or ``None`` when that folder is absent (not for train)."""
        folder = self.root / split
        if split != "train" and not folder.is_dir():
            return None
        index = {name: i for i, name in enumerate(self.classes)}
        files: list[Path] = []
        labels: list[int] = []
        found = sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)
        unknown = [p.name for p in found if p.name not in index]
        if unknown:
            raise ValueError(f"image_folder: {folder} has class folder(s) {', '.join(unknown)} that "
                             f"{self.root / 'train'} does not have (classes: {', '.join(self.classes)})")
        strays = [p.name for p in folder.iterdir()
                  if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS]
        if strays:
            raise ValueError(f"image_folder: {folder} holds images outside any class folder "
                             f"({', '.join(sorted(strays)[:5])}): move each into {split}/<class>/")
        for sub in found:
            imgs = _image_files(sub)
            if not imgs:
                raise ValueError(f"image_folder: {sub} holds no images (looked for "
                                 f"{', '.join(IMAGE_EXTENSIONS)})")
            files += imgs
            labels += [index[sub.name]] * len(imgs)
        missing = [c for c in self.classes if c not in {p.name for p in found}]
        if missing:
            raise ValueError(f"image_folder: class {', '.join(map(repr, missing))} has no examples in the "
                             f"{split} split: {folder} has no folder {', '.join(m + '/' for m in missing)} (every class needs "
                             f"images in {split}/, or remove {folder} to draw the {split} split from train/)")
        size = (self.native_size, self.native_size)
        images = torch.empty(len(files), channels, *size, dtype=torch.uint8)
        keep: list[int] = []
        advice = ("replace it with a readable image or delete it (or set data.skip_bad=true to skip "
                  "unreadable images)")
        for i, f in enumerate(files):
            try:
                images[i] = read_image(f, channels, size, advice=advice)
            except DataFileError:
                if not self.skip_bad:
                    raise
                self.skipped.append(f)
                continue
            keep.append(i)
        if len(keep) < len(files):
            kept = {labels[i] for i in keep}
            for sub in found:
                if index[sub.name] not in kept:
                    bad = [f for f in self.skipped if sub in f.parents]
                    raise ValueError(f"image_folder: {sub} has no readable image left: all {len(bad)} of its "
                                     f"images were unreadable and skipped (skip_bad=true; e.g. {bad[0].name}); "
                                     "replace them with images Pillow can read")
            images = images[keep]
            labels = [labels[i] for i in keep]
        return images, torch.tensor(labels, dtype=torch.int64)

    def _decide_channels(self) -> int:
        """1 or 3: as asked, else 1 exactly when every training image is grey. Reading the
        training images as RGB once tells; they are kept (in grey, if so) for ``load``."""
        if self.requested_channels is not None:
            return self.requested_channels
        rgb = self._read_split("train", 3)
        images, labels = rgb
        grey = bool((images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all())
        # a grey image read as RGB has three equal channels: the first one is the grey image
        self._raw["train"] = (images[:, :1].contiguous(), labels) if grey else rgb
        return 1 if grey else 3

    # -- ImageClassificationDataModule ------------------------------------------------------------
    def prepare_data(self) -> None:
        self._class_folders()  # the layout errors, early (nothing to download)

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The training images and labels, and the test folder's (``None`` when absent). The
        validation folder's, when present, are kept in ``self._raw["val"]``."""
        self.classes = tuple(p.name for p in self._class_folders())
        if self.requested_num_classes is not None and self.requested_num_classes != len(self.classes):
            raise ValueError(f"image_folder: num_classes={self.requested_num_classes} but {self.root / 'train'} "
                             f"has {len(self.classes)} class folders ({', '.join(self.classes)})")
        self._raw.clear()
        self.skipped = []
        channels = self._decide_channels()
        for split in SPLITS:
            if split not in self._raw:
                pair = self._read_split(split, channels)
                if pair is not None:
                    self._raw[split] = pair
        if self.skipped:
            names = [str(p.relative_to(self.root)) for p in self.skipped[:5]]
            log.warning("image_folder: skipped %d unreadable image file(s) under %s (skip_bad=true): %s%s",
                        len(self.skipped), self.root, ", ".join(names), " ..." if len(self.skipped) > 5 else "")
        self.native_chans = channels
        self.in_chans = self.requested_in_chans or channels
        self.num_classes = len(self.classes)
        if self.given_normalize and len(self.mean) not in (1, self.in_chans):
            raise ValueError(f"image_folder: normalize has {len(self.mean)} values per statistic, the images of "
                             f"{self.root} go to the net in {self.in_chans} channel(s): give "
                             f"{'1' if self.in_chans == 1 else '1 or 3'}")
        images, labels = self._raw["train"]
        test = self._raw.get("test")
        return images, labels, *(test if test is not None else (None, None))

    def setup(self, stage: str | None = None) -> None:
        """Read the folder, draw the missing splits, compute the statistics, preprocess."""
        if self.train_set is not None:
            return
        images, labels, test_images, test_labels = self.load()
        val = self._raw.get("val")
        drawn = [s for s in ("val", "test") if s not in self._raw]
        self.split_source = {"train": "train/", **{s: ("drawn from train/" if s in drawn else f"{s}/")
                                                   for s in ("val", "test")}}
        y = labels.numpy()
        fractions = [self.val_fraction if s == "val" else self.test_fraction for s in drawn]
        parts = self._split(y, drawn, fractions)
        train_idx, drawn_idx = parts[0], dict(zip(drawn, parts[1:]))
        if self.limit is not None and self.limit < len(train_idx):
            keep, _ = train_test_split(train_idx, train_size=self.limit, stratify=y[train_idx],
                                       random_state=self.split_seed)
            train_idx = np.sort(keep)
        splits = {"train": (images[train_idx], labels[train_idx])}
        splits["val"] = (images[drawn_idx["val"]], labels[drawn_idx["val"]]) if "val" in drawn else val
        splits["test"] = ((images[drawn_idx["test"]], labels[drawn_idx["test"]]) if "test" in drawn
                          else (test_images, test_labels))
        for split, (_, lab) in splits.items():
            self._check_every_class(split, lab)
        if self.train_on_val:  # the validation split joins training; nothing is left to validate on
            (xt, yt), (xv, yv) = splits["train"], splits["val"]
            splits["train"], splits["val"] = (torch.cat([xt, xv]), torch.cat([yt, yv])), (xv[:0], yv[:0])
        self._raw = splits
        if not self.given_normalize:
            self.mean, self.std = self._statistics(splits["train"][0])
        self._build_sets()

    def _split(self, y: np.ndarray, drawn: list[str], fractions: list[float]) -> list[np.ndarray]:
        """``stratified_split`` of the training labels, with the errors it would raise on too few
        images said in terms of the folder."""
        if not drawn:
            return [np.arange(len(y))]
        counts = np.bincount(y, minlength=len(self.classes))
        need = 1 + len(drawn)
        short = [c for c, n in zip(self.classes, counts) if n < need]
        if short:
            raise ValueError(f"image_folder: class {short[0]!r} has {counts[self.classes.index(short[0])]} "
                             f"image(s) in {self.root / 'train' / short[0]}: it would have no examples in the "
                             f"{' or '.join(drawn)} split drawn from train/ (needs at least {need}: one for "
                             f"train and one for each of {', '.join(drawn)}; or give {'/ and '.join(drawn)}/ "
                             "folders)")
        for split, frac in zip(drawn, fractions):
            n = int(round(frac * len(y)))
            if n < len(self.classes):
                raise ValueError(f"image_folder: the {split} split drawn from train/ would hold {n} image(s) "
                                 f"({split}_fraction={frac} of {len(y)}), fewer than the {len(self.classes)} "
                                 f"classes: some class would have no examples in the {split} split. Raise "
                                 f"data.{split}_fraction, add images, or give a {self.root / split} folder")
        return stratified_split(y, fractions, self.split_seed)

    def _check_every_class(self, split: str, labels: torch.Tensor) -> None:
        counts = torch.bincount(labels, minlength=len(self.classes)).tolist()
        empty = [c for c, n in zip(self.classes, counts) if n == 0]
        if empty:
            raise ValueError(f"image_folder: class {', '.join(map(repr, empty))} has no examples in the "
                             f"{split} split ({self.split_source.get(split, split + '/')} of {self.root}): "
                             "add images of it, or change the split fractions")

    @staticmethod
    def _statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of uint8 images (N, C, H, W) scaled to [0, 1], from each
        channel's histogram of the 256 values: exact (float64), whatever the order of the
        images, and without a float copy of the whole split."""
        values = torch.arange(256, dtype=torch.float64) / 255.0
        mean, std = [], []
        for c in range(images.shape[1]):
            hist = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
            m = float((hist * values).sum() / hist.sum())
            var = float((hist * (values - m) ** 2).sum() / hist.sum())
            mean.append(round(m, 6))
            std.append(round(max(var ** 0.5, 1e-3), 6))  # a constant channel: no division by 0
        return tuple(mean), tuple(std)

    def _build_sets(self) -> None:
        x, y = self._raw["train"]
        self.train_set = TensorDataset(self.preprocess(x), self.targets(y))
        x, y = self._raw["val"]
        self.val_set = TensorDataset(self.preprocess(x), self.targets(y))
        x, y = self._raw["test"]
        self.test_set = TensorDataset(self.preprocess(x), self.targets(y))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise RuntimeError("image_folder: the normalisation statistics are known after setup() "
                               "(or give normalize=[mean, std])")
        return super().preprocess(images)

    # -- reproducibility: statistics and classes travel with checkpoints --------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.num_classes is None:
            return {}
        return {"class_names": list(self.classes), "channels": int(self.native_chans),
                "native_size": self.native_size, "mean": list(self.mean), "std": list(self.std)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the preprocessing of the run that wrote the checkpoint (after ``setup``)."""
        if not state:
            return
        if self.num_classes is None:
            self.setup()
        if list(state["class_names"]) != list(self.classes):
            raise ValueError(f"image_folder: the checkpoint was trained on the classes {list(state['class_names'])}, "
                             f"but {self.root / 'train'} has {list(self.classes)}")
        if (state["channels"], state["native_size"]) != (self.native_chans, self.native_size):
            raise ValueError(f"image_folder: the checkpoint read images as {state['channels']} channel(s) at "
                             f"{state['native_size']}x{state['native_size']}; this datamodule reads "
                             f"{self.native_chans} at {self.native_size}x{self.native_size}")
        mean, std = tuple(state["mean"]), tuple(state["std"])
        if (mean, std) != (tuple(self.mean), tuple(self.std)):
            self.mean, self.std = mean, std
            self._build_sets()

    # -- facts ----------------------------------------------------------------------------------
    def read_input(self, path: Path) -> tuple[torch.Tensor, dict]:
        if self.native_chans is None or self.mean is None:  # decided by the data: read it first
            self.setup()
        return super().read_input(path)

    def describe(self) -> dict:
        out = super().describe()
        out.update({
            "dataset": self.name,
            "root": str(self.root),
            "native_size": self.native_size,
            "channels": self.native_chans,
            "splits": dict(self.split_source),
            "normalize": [list(self.mean), list(self.std)] if self.mean is not None else None,
            **({"skipped_images": len(self.skipped)} if self.skip_bad else {}),
        })
        return out
