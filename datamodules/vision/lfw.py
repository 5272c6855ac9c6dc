"""Labeled Faces in the Wild (Huang et al. 2007) for Siamese networks, read from the on-disk
layout of torchvision's ``LFWPeople`` / ``LFWPairs``::

    <data_dir>/lfw-py/
        lfw_funneled/<Name>/<Name>_0001.jpg ...   (lfw/ for image_set=original, lfw-deepfunneled/)
        peopleDevTrain.txt   peopleDevTest.txt      first line: how many people; then "<Name>\\t<images>"
        pairsDevTrain.txt    pairsDevTest.txt       first line: n; then n matched pairs "<Name>\\t<i>\\t<j>",
                                                    then n mismatched pairs "<Name>\\t<i>\\t<Other>\\t<j>"
        pairs.txt                                   the same, 10 folds: first line "10\\t300"

The files are checked as they are read: a malformed line is a :class:`DataFileError` naming the
file and the line, a missing image a :class:`DatasetNotFoundError` naming the image.
LFW cannot be downloaded by torchvision any more (its site is gone): ``download=true`` explains
where to get it, and the folder is placed under ``data_dir`` by hand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from datamodules.base import DataFileError, DatasetNotFoundError, ZooDataModule
from datamodules.vision.oneshot import PKBatchSampler

IMAGE_SETS = {"original": "lfw", "funneled": "lfw_funneled", "deepfunneled": "lfw-deepfunneled"}
GET_IT = ("LFW is no longer downloadable by torchvision: download it by hand (e.g. the Kaggle mirror "
          "jessicali9530/lfw-dataset) and place it as <data_dir>/lfw-py/lfw_funneled/<Name>/<Name>_0001.jpg "
          "with peopleDevTrain.txt, peopleDevTest.txt and pairsDevTest.txt beside lfw_funneled/")


def image_path(images_dir: Path, name: str, number: int) -> Path:
    """``<images_dir>/<Name>/<Name>_<0001>.jpg``, torchvision's ``_get_path``."""
    return images_dir / name / f"{name}_{int(number):04d}.jpg"


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such file. {GET_IT}")
    return path.read_text().splitlines()


def _int(text: str, path: Path, line_no: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DataFileError(f"{path}, line {line_no}: {what} must be an integer, got {text!r}; the file is "
                            "damaged: replace it with the original from the LFW distribution") from None
    if value < 1:
        raise DataFileError(f"{path}, line {line_no}: {what} must be positive, got {value}; the file is damaged: "
                            "replace it with the original from the LFW distribution")
    return value


def read_people(path: str | Path) -> list[tuple[str, int]]:
    """``(name, number of images)`` of every person of a ``people*.txt`` file (one fold, or the
    ten folds of ``people.txt`` one after the other)."""
    path = Path(path)
    lines = [ln for ln in _lines(path)]
    people: list[tuple[str, int]] = []
    ten_fold = path.name == "people.txt"
    s = 0
    folds = _int(lines[0].strip(), path, 1, "the number of folds") if ten_fold else 1
    s = 1 if ten_fold else 0
    for _ in range(folds):
        if s >= len(lines):
            raise DataFileError(f"{path}: ends at line {s}, before all its folds; replace it with the original")
        count = _int(lines[s].strip(), path, s + 1, "the number of people")
        block = lines[s + 1: s + 1 + count]
        if len(block) < count:
            raise DataFileError(f"{path}: line {s + 1} announces {count} people but only {len(block)} lines follow; "
                                "replace it with the original from the LFW distribution")
        for k, line in enumerate(block):
            fields = line.strip().split("\t")
            if len(fields) != 2:
                raise DataFileError(f"{path}, line {s + 2 + k}: expected '<Name>\\t<images>', got {line!r}")
            people.append((fields[0], _int(fields[1], path, s + 2 + k, "the number of images")))
        s += count + 1
    return people


def read_pairs(path: str | Path, images_dir: str | Path, check_images: bool = True
               ) -> list[tuple[Path, Path, int]]:
    """``(image_a, image_b, same)`` of every pair of a ``pairs*.txt`` file, matched pairs
    (``same = 1``) and mismatched ones (``same = 0``) of each fold in the file's order;
    ``check_images`` makes a missing image an error naming it."""
    path, images_dir = Path(path), Path(images_dir)
    lines = _lines(path)
    if not lines:
        raise DataFileError(f"{path} is empty; replace it with the original from the LFW distribution")
    head = lines[0].strip().split("\t")
    if len(head) == 2:  # pairs.txt: "<folds>\t<pairs per kind and fold>"
        folds, n = _int(head[0], path, 1, "the number of folds"), _int(head[1], path, 1, "the number of pairs")
    elif len(head) == 1:
        folds, n = 1, _int(head[0], path, 1, "the number of pairs")
    else:
        raise DataFileError(f"{path}, line 1: expected '<pairs>' or '<folds>\\t<pairs>', got {lines[0]!r}")
    if len(lines) < 1 + 2 * n * folds:
        raise DataFileError(f"{path}: line 1 announces {folds} x 2 x {n} pairs but only {len(lines) - 1} lines follow; "
                            "replace it with the original from the LFW distribution")
    pairs: list[tuple[Path, Path, int]] = []
    for k in range(2 * n * folds):
        line_no = k + 2
        fields = lines[k + 1].strip().split("\t")
        matched = (k // n) % 2 == 0
        if matched and len(fields) == 3:
            a = image_path(images_dir, fields[0], _int(fields[1], path, line_no, "an image number"))
            b = image_path(images_dir, fields[0], _int(fields[2], path, line_no, "an image number"))
        elif not matched and len(fields) == 4:
            a = image_path(images_dir, fields[0], _int(fields[1], path, line_no, "an image number"))
            b = image_path(images_dir, fields[2], _int(fields[3], path, line_no, "an image number"))
        else:
            want = "'<Name>\\t<i>\\t<j>' (a matched pair)" if matched else "'<Name>\\t<i>\\t<Other>\\t<j>' (a mismatched pair)"
            raise DataFileError(f"{path}, line {line_no}: expected {want}, got {lines[k + 1]!r}; replace the file "
                                "with the original from the LFW distribution")
        if check_images:
            for img in (a, b):
                if not img.is_file():
                    raise DatasetNotFoundError(f"{img}: no such image, named by {path}, line {line_no}. {GET_IT}")
        pairs.append((a, b, int(matched)))
    return pairs


class FaceImages(Dataset):
    """uint8 face crops (N, 3, S, S) and labels (N,) -> ``(image normalised to [-1, 1], label)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return (self.images[i].float() / 255.0 - 0.5) / 0.5, self.labels[i]


class LFWDataModule(ZooDataModule):
    """LFW faces for verification and recognition of people never seen in training.

    Training people: those of ``peopleDevTrain.txt`` with at least ``min_images`` images, less
    ``val_fraction`` of them (by person, seeded with ``split_seed``) held out for validation
    (model selection and the verification threshold). Test people: ``peopleDevTest.txt``
    (View 1's development test split; no person of it is in ``peopleDevTrain.txt``). Each image
    is centre-cropped to ``crop_fraction`` of its side (LFW's 250x250 images hold the face in
    the middle) and resized to ``image_size``. :meth:`official_pairs` reads ``pairsDevTest.txt``
    (or another pairs file), LFW's pair protocol.

    Batch contract: ``(images, labels)``, ``images`` float32 (B, 3, image_size, image_size) in
    [-1, 1], ``labels`` int64 (B,) person ids. Training batches: a :class:`PKBatchSampler` of
    ``batch_size / samples_per_class`` people x ``samples_per_class`` images (people with fewer
    images repeat some), augmented by ``augment``.

    Args:
        data_dir: the folder holding ``lfw-py/``.
        image_set: ``funneled`` (default), ``original`` or ``deepfunneled``.
        download: LFW cannot be downloaded any more; ``true`` says where to get it.
        batch_size, samples_per_class, eval_batch_size, num_workers, batches_per_epoch: as
            ``MNIST5kOneShotDataModule``.
        image_size, in_chans: the crops' side and channels (3).
        crop_fraction: the centred share of each side kept before resizing.
        min_images: training people need at least this many images.
        val_fraction: the share of the training people held out for validation.
        split_seed: seeds the validation people and the one shuffle of the evaluation sets.
        augment: a module run on training batches (e.g. ``datamodules.RandomCropFlip``).
    """

    name = "lfw"
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, data_dir: str = "data", image_set: str = "funneled", download: bool = False,
                 batch_size: int = 32, samples_per_class: int = 4, eval_batch_size: int | None = 128,
                 image_size: int = 64, in_chans: int | None = 3, crop_fraction: float = 0.6, min_images: int = 2,
                 val_fraction: float = 0.1, split_seed: int = 0, num_workers: int = 0,
                 batches_per_epoch: int | None = None, augment: nn.Module | Sequence[nn.Module] | None = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        where = type(self).__name__
        if image_set not in IMAGE_SETS:
            raise ValueError(f"{where}: image_set must be one of {', '.join(IMAGE_SETS)}, got {image_set!r}")
        if in_chans not in (None, 3):
            raise ValueError(f"{where}: in_chans must be 3 (LFW is in colour), got {in_chans!r}")
        if not isinstance(samples_per_class, int) or samples_per_class < 2:
            raise ValueError(f"{where}: samples_per_class must be an int >= 2, got {samples_per_class!r}")
        if not isinstance(batch_size, int) or batch_size % samples_per_class or batch_size < samples_per_class:
            raise ValueError(f"{where}: batch_size must be a multiple of samples_per_class={samples_per_class}, "
                             f"got {batch_size!r}")
        if not (isinstance(crop_fraction, (int, float)) and 0 < crop_fraction <= 1):
            raise ValueError(f"{where}: crop_fraction must be in (0, 1], got {crop_fraction!r}")
        if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
            raise ValueError(f"{where}: val_fraction must be in (0, 1), got {val_fraction!r}")
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"{where}: image_size must be an int >= 8, got {image_size!r}")
        self.root = Path(data_dir) / "lfw-py"
        self.image_set, self.download = image_set, bool(download)
        self.images_dir = self.root / IMAGE_SETS[image_set]
        self.samples_per_class, self.batches_per_epoch = samples_per_class, batches_per_epoch
        self.image_size, self.in_chans, self.crop_fraction = image_size, 3, float(crop_fraction)
        self.min_images, self.val_fraction, self.split_seed = int(min_images), float(val_fraction), split_seed
        if isinstance(augment, (list, tuple)):
            augment = nn.Sequential(*augment)
        self.augment = augment
        self.people: dict[str, list[str]] = {}

    def prepare_data(self) -> None:
        if self.download and not self.images_dir.is_dir():
            raise DatasetNotFoundError(GET_IT)
        self.check_files()

    def check_files(self) -> None:
        for need in (self.images_dir, self.root / "peopleDevTrain.txt", self.root / "peopleDevTest.txt"):
            if not need.exists():
                raise DatasetNotFoundError(f"{need}: not found. {GET_IT}")

    # -- reading ------------------------------------------------------------------------------------
    def load_image(self, path: Path, named_by: str = "") -> torch.Tensor:
        """uint8 (3, S, S): the centred crop of the image, resized (bilinear, antialiased)."""
        from datamodules.vision.io import read_image

        if not Path(path).is_file():
            raise DatasetNotFoundError(f"{path}: no such image{named_by}. {GET_IT}")
        img = read_image(Path(path), 3)
        _, h, w = img.shape
        ch, cw = max(1, round(h * self.crop_fraction)), max(1, round(w * self.crop_fraction))
        top, left = (h - ch) // 2, (w - cw) // 2
        crop = img[:, top: top + ch, left: left + cw].float().unsqueeze(0)
        s = self.image_size
        out = F.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return out.round().clamp(0, 255).to(torch.uint8)[0]

    def _read_split(self, file: str, names: list[tuple[str, int]] | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        people = names if names is not None else read_people(self.root / file)
        images, labels, who = [], [], []
        for pid, (name, count) in enumerate(people):
            for k in range(1, count + 1):
                images.append(self.load_image(image_path(self.images_dir, name, k), f", listed in {self.root / file}"))
                labels.append(pid)
            who.append(name)
        if not images:
            raise DataFileError(f"{self.root / file}: no person with images to read")
        return torch.stack(images), torch.tensor(labels, dtype=torch.long), who

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.check_files()
        train_people = [p for p in read_people(self.root / "peopleDevTrain.txt") if p[1] >= self.min_images]
        if len(train_people) < 3:
            raise DataFileError(f"{self.root / 'peopleDevTrain.txt'}: only {len(train_people)} people with at least "
                                f"{self.min_images} images (data.min_images); at least 3 are needed")
        rng = np.random.default_rng(self.split_seed)
        order = rng.permutation(len(train_people))
        n_val = max(1, int(round(self.val_fraction * len(train_people))))
        val_people = [train_people[i] for i in sorted(order[:n_val])]
        fit_people = [train_people[i] for i in sorted(order[n_val:])]
        sets = {}
        for split, file, names in (("train", "peopleDevTrain.txt", fit_people), ("val", "peopleDevTrain.txt", val_people),
                                   ("test", "peopleDevTest.txt", None)):
            images, labels, who = self._read_split(file, names)
            if split != "train":  # one fixed shuffle: evaluation batches mix people
                perm = torch.from_numpy(rng.permutation(len(labels)))
                images, labels = images[perm], labels[perm]
            self.people[split] = who
            sets[split] = FaceImages(images, labels)
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def official_pairs(self, file: str = "pairsDevTest.txt") -> list[tuple[Path, Path, int]]:
        """LFW's pairs ``(image_a, image_b, same)`` of ``file`` (``pairsDevTest.txt``, ``pairs.txt`` ...)."""
        return read_pairs(self.root / file, self.images_dir)

    # -- loaders and facts --------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        p = min(self.batch_size // self.samples_per_class, len(torch.unique(self.train_set.labels)))
        sampler = PKBatchSampler(self.train_set.labels, p, self.samples_per_class, self.batches_per_epoch)
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.augment is not None and self.trainer is not None and self.trainer.training:
            x, y = batch
            batch = (self.augment(x), y)
        return batch

    def data_facts(self) -> dict[str, Any]:
        s = self.image_size
        return {"in_chans": 3, "image_size": s, "input_shape": [3, s, s]}

    def describe(self) -> dict[str, Any]:
        return {"dataset": f"{self.name}[{self.image_set}]", **self.data_facts(),
                **{f"{k}_size": (len(v) if v is not None else None)
                   for k, v in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set))},
                **{f"{k}_people": len(v) for k, v in self.people.items()}, "split_seed": self.split_seed}

    def read_input(self, path: Path) -> tuple[torch.Tensor, dict]:
        """One face image file, cropped and resized as the training images: (3, S, S) in [-1, 1]."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
        img = self.load_image(Path(path))
        return (img.float() / 255.0 - 0.5) / 0.5, {}
