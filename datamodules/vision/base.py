"""Shared machinery for image-classification DataModules whose data fits in memory."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from datamodules.base import DataFileError, DatasetNotFoundError, ZooDataModule, stratified_split


class ImageClassificationDataModule(ZooDataModule):
    """Base for in-memory image classification data.

    Subclasses implement ``load()`` returning ``(images, labels, test_images, test_labels)``:
    images as uint8 (N, C, H, W) tensors (or float in [0, 1]), labels as int64 (N,); the test
    pair is ``None`` when the dataset has no official test split, in which case ``test_fraction``
    of the data is held out (stratified by class) as the test split. ``val_fraction`` of the
    training data is always held out (stratified) for model selection; the test split is never
    used for it.

    Batch contract (train/val/test loaders): ``(x, y)`` with ``x`` float32
    (B, in_chans, image_size, image_size), normalised with the dataset's mean and std, and ``y``
    int64 (B,) class indices; with ``positive_class`` set, ``y`` is 1 for that class and 0 for
    every other (binary task). Training batches are augmented on the device by ``augment``.

    Args:
        batch_size: training batch size (``eval_batch_size`` for val/test, default the same).
        val_fraction, test_fraction: held-out fractions (see above).
        image_size: output side; smaller native images are padded with background (as LeNet-5's
            32x32 input from 28x28 digits), other sizes are resized bilinearly.
        in_chans: 1 or 3; grey images are replicated to 3 channels when 3 is asked.
        num_classes: must match the dataset (2 with ``positive_class``); checked, so a config
            that says otherwise fails early.
        positive_class: turn the task into "this class against the rest".
        augment: a module (or a list of modules, applied in order) run on training batches
            after transfer (see ``augment.py``).
        split_seed: seed of the train/val/test split (independent of the training seed, so that
            every training seed is measured on the same test split).
        limit: keep only this many training examples (stratified), for few-label experiments.
        classes: keep only these classes (original labels), relabelled 0..k-1 in this order,
            e.g. ``[5, 6, 7, 8, 9]`` (transfer between disjoint class sets).
        normalize: ``[mean, std]`` (per channel) replacing the dataset's own statistics, e.g. those
            a pretrained net was trained with.
        resize_to: first resize the native image (bilinearly) to this side, then pad it to
            ``image_size``: e.g. 8x8 digits drawn into a 20x20 box on a 32x32 canvas, the framing
            of MNIST digits (20x20 inside 28x28) that LeNet-5 sees.
        train_on_val: add the validation split to the training data -- the final refit once a
            recipe has been chosen on validation. The splits are drawn as usual (the test split
            is the same), but nothing is left to validate on: ``val_dataloader`` returns no loader,
            and ``zoo-train`` refuses a config that still validates or picks checkpoints by a
            validation figure (set ``trainer.limit_val_batches: 0`` and keep the last epoch).
    """

    name: str = "dataset"
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    native_chans: int = 1
    native_size: int = 28
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        image_size: int | None = None,
        in_chans: int | None = None,
        num_classes: int | None = None,
        positive_class: int | None = None,
        augment: nn.Module | Sequence[nn.Module] | None = None,
        split_seed: int = 0,
        limit: int | None = None,
        num_workers: int = 0,
        normalize: Sequence[Sequence[float]] | None = None,
        classes: Sequence[int] | None = None,
        resize_to: int | None = None,
        train_on_val: bool = False,
    ):
        super().__init__(batch_size, eval_batch_size, num_workers)
        self.train_on_val = bool(train_on_val)
        self.subset = None
        if classes is not None:  # a subset of the classes, relabelled 0..k-1 in the given order
            self.subset = [int(c) for c in classes]
            if len(set(self.subset)) != len(self.subset) or len(self.subset) < 2 or \
                    not all(0 <= c < len(self.classes) for c in self.subset):
                raise ValueError(f"{self.name}: classes must be at least two distinct labels in "
                                 f"0..{len(self.classes) - 1}, got {list(classes)}")
            if positive_class is not None:
                raise ValueError(f"{self.name}: give classes or positive_class, not both")
        if normalize is not None:  # (mean, std) per channel, e.g. a pretrained net's statistics
            mean, std = (tuple(float(v) for v in seq) for seq in normalize)
            if len(mean) != len(std) or len(mean) not in (1, 3) or min(std) <= 0:
                raise ValueError(f"{self.name}: normalize must be [mean, std] with 1 or 3 values each "
                                 f"and positive std, got {normalize}")
            self.mean, self.std = mean, std
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.image_size = image_size or self.native_size
        if resize_to is not None and not (0 < resize_to <= self.image_size
                                          and (self.image_size - resize_to) % 2 == 0):
            raise ValueError(f"{self.name}: resize_to must be positive, at most image_size "
                             f"({self.image_size}) and differ from it by an even number, got {resize_to}")
        self.resize_to = resize_to
        self.in_chans = in_chans or self.native_chans
        if self.in_chans not in (self.native_chans, 3):
            raise ValueError(f"{self.name}: in_chans must be {self.native_chans} or 3, got {in_chans}")
        if positive_class is not None and not 0 <= positive_class < len(self.classes):
            raise ValueError(f"{self.name}: positive_class must be in 0..{len(self.classes) - 1}")
        self.positive_class = positive_class
        expected = 2 if positive_class is not None else len(self.subset or self.classes)
        if num_classes is not None and num_classes != expected:
            raise ValueError(
                f"{self.name}: num_classes={num_classes} but the data has {expected} classes"
                + (" (binary: positive_class is set)" if positive_class is not None else "")
            )
        self.num_classes = expected
        if isinstance(augment, (list, tuple)):
            augment = nn.Sequential(*augment)
        self.augment = augment
        self.split_seed = split_seed
        self.limit = limit

    # -- to implement ---------------------------------------------------------------------------
    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        if self.positive_class is not None:
            return [f"not {self.classes[self.positive_class]}", self.classes[self.positive_class]]
        if self.subset is not None:
            return [self.classes[c] for c in self.subset]
        return list(self.classes)

    # -- preprocessing --------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8/float (N, C, H, W) -> normalised float32 (N, in_chans, image_size, image_size)."""
        x = images.float()
        if images.dtype == torch.uint8:
            x = x / 255.0
        if self.resize_to is not None and self.resize_to != x.shape[-1]:
            r = self.resize_to
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=r < x.shape[-1])
        h = x.shape[-1]
        s = self.image_size
        if s > h and (s - h) % 2 == 0:
            p = (s - h) // 2
            x = F.pad(x, (p, p, p, p), value=0.0)  # background is black (0) before normalising
        elif s != h:
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=s < h)
        if self.in_chans == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        if len(self.mean) == 1 and self.in_chans == 3:
            mean, std = mean.expand(1, 3, 1, 1), std.expand(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.long()
        if self.positive_class is not None:
            return (labels == self.positive_class).long()
        return labels

    # -- Lightning hooks ------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels, test_images, test_labels = self.load()
        if self.subset is not None:
            images, labels = self._keep_subset(images, labels)
            if test_images is not None:
                test_images, test_labels = self._keep_subset(test_images, test_labels)
        y = labels.numpy()
        if test_images is None:
            train_idx, val_idx, test_idx = stratified_split(y, [self.val_fraction, self.test_fraction], self.split_seed)
            test_images, test_labels = images[test_idx], labels[test_idx]
        else:
            train_idx, val_idx = stratified_split(y, [self.val_fraction], self.split_seed)
        if self.limit is not None and self.limit < len(train_idx):
            keep, _ = train_test_split(train_idx, train_size=self.limit, stratify=y[train_idx],
                                       random_state=self.split_seed)
            train_idx = np.sort(keep)
        if self.train_on_val:  # the validation split joins training; nothing is left to validate on
            train_idx, val_idx = np.sort(np.concatenate([train_idx, val_idx])), val_idx[:0]
        self.train_set = TensorDataset(self.preprocess(images[train_idx]), self.targets(labels[train_idx]))
        self.val_set = TensorDataset(self.preprocess(images[val_idx]), self.targets(labels[val_idx]))
        self.test_set = TensorDataset(self.preprocess(test_images), self.targets(test_labels))

    def _keep_subset(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Only the examples of ``self.subset``'s classes, relabelled by their position in it."""
        lookup = torch.full((len(self.classes),), -1, dtype=torch.long)
        lookup[torch.tensor(self.subset)] = torch.arange(len(self.subset))
        new = lookup[labels.long()]
        keep = new >= 0
        return images[keep], new[keep]

    def val_dataloader(self) -> DataLoader | list:
        if self.train_on_val:  # an empty validation split: no loader (Lightning skips validation)
            return []
        return super().val_dataloader()

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.augment is not None and self.trainer is not None and self.trainer.training:
            x, y = batch
            batch = (self.augment(x), y)
        return batch

    def data_facts(self) -> dict:
        """Classes and input layout, for the net (``${data_fact:num_classes}``) and the task."""
        return {"num_classes": self.num_classes, "class_names": self.class_names,
                "in_chans": self.in_chans, "image_size": self.image_size,
                "input_shape": [self.in_chans, self.image_size, self.image_size]}

    # Digits are light strokes on a dark background; a photo of ink on paper is the reverse.
    light_on_dark: bool = False

    def read_input(self, path: Path) -> tuple[torch.Tensor, dict]:
        """An image file (PNG, JPEG, BMP, GIF, TIFF, WebP ...) as one preprocessed example
        (in_chans, image_size, image_size), and how it was read: converted to the dataset's
        colour format, resized to its native size, inverted when the dataset is light on dark
        and the image is mostly bright (``{"inverted": True}``)."""
        from datamodules.vision.io import read_image

        img = read_image(Path(path), self.native_chans, (self.native_size, self.native_size))
        inverted = False
        if self.light_on_dark and self.native_chans == 1 and img.float().mean() > 127.5:
            img, inverted = 255 - img, True
        return self.preprocess(img.unsqueeze(0))[0], {"inverted": inverted}

    def describe(self) -> dict:
        """Facts for reports: sizes of each split and the input shape."""
        return {
            "dataset": self.name + (f"[{','.join(map(str, self.subset))}]" if self.subset else ""),
            "train_size": len(self.train_set) if self.train_set is not None else None,
            "val_size": len(self.val_set) if self.val_set is not None else None,
            **({"train_on_val": True} if self.train_on_val else {}),
            "test_size": len(self.test_set) if self.test_set is not None else None,
            "input_shape": [self.in_chans, self.image_size, self.image_size],
            **({"resize_to": self.resize_to} if self.resize_to is not None else {}),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
        }
