"""DataModules over the full datasets that torchvision knows how to download and read:
MNIST, Fashion-MNIST and CIFAR-10.

The files are expected under ``data_dir`` in torchvision's own layout, so a folder filled by
``torchvision.datasets.<Name>(root=data_dir, download=True)`` works as is:

* MNIST: ``<data_dir>/MNIST/raw/`` with the unzipped idx files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``;
* Fashion-MNIST: the same four file names under ``<data_dir>/FashionMNIST/raw/``;
* CIFAR-10: ``<data_dir>/cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5``,
  ``test_batch`` and ``batches.meta`` (the extracted python-pickle archive).

Nothing is downloaded unless ``download=True`` (``data.download=true`` from the command line):
with it off, missing files raise :class:`DatasetNotFoundError` naming the folder and files.
The official test set is the test split; ``val_fraction`` (default 10%) of the official training
set is held out, stratified by class, for validation. See the base class for the batch contract.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torchvision import datasets

from datamodules.vision.base import DatasetNotFoundError, ImageClassificationDataModule

__all__ = ["MNISTDataModule", "FashionMNISTDataModule", "CIFAR10DataModule"]

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class _TorchvisionDataModule(ImageClassificationDataModule):
    """Shared file checks and download for the datasets below.

    Subclasses set ``subdir`` (the folder under ``data_dir`` that holds the files), ``files``
    (their names), ``tv_class`` (the torchvision dataset class used to download) and implement
    ``read(train)`` returning ``(images uint8 (N, C, H, W), labels int64 (N,))``.
    """

    subdir: str = ""
    files: tuple[str, ...] = ()
    tv_class: type = datasets.VisionDataset

    # The base-class arguments are spelled out (no **kwargs) so that a misspelt option in a
    # config fails at construction instead of being silently ignored.
    def __init__(
        self,
        data_dir: str = "data",
        download: bool = False,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        image_size: int | None = None,
        in_chans: int | None = None,
        num_classes: int | None = None,
        positive_class: int | None = None,
        augment: nn.Module | Callable | None = None,
        split_seed: int = 0,
        limit: int | None = None,
        num_workers: int = 0,
        normalize: Sequence[Sequence[float]] | None = None,
        classes: Sequence[int] | None = None,
        resize_to: int | None = None,
    ):
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            image_size=image_size,
            in_chans=in_chans,
            num_classes=num_classes,
            positive_class=positive_class,
            augment=augment,
            split_seed=split_seed,
            limit=limit,
            num_workers=num_workers,
            normalize=normalize,
            classes=classes,
            resize_to=resize_to,
        )
        self.data_dir = str(data_dir)
        self.download = download

    @property
    def files_dir(self) -> str:
        """Absolute path of the folder that must hold ``files``."""
        return os.path.abspath(os.path.join(os.path.expanduser(self.data_dir), self.subdir))

    def check_files(self) -> None:
        """Raise :class:`DatasetNotFoundError` unless every expected file is present."""
        folder = self.files_dir
        missing = [f for f in self.files if not os.path.isfile(os.path.join(folder, f))]
        if missing:
            raise DatasetNotFoundError(
                f"{self.name}: dataset files not found in {folder} "
                f"(missing: {', '.join(missing)}). Expected the files {', '.join(self.files)} "
                f"in that directory. Either set `data.download=true` to download them with "
                f"torchvision (needs internet access), or place the files there yourself "
                f"(data_dir={self.data_dir!r})."
            )

    def prepare_data(self) -> None:
        if self.download:
            for train in (True, False):
                self.tv_class(root=self.data_dir, train=train, download=True)
        self.check_files()

    def read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def load(self):
        self.check_files()  # the same clear error when setup() runs without prepare_data()
        images, labels = self.read(train=True)
        test_images, test_labels = self.read(train=False)
        return images, labels, test_images, test_labels


class _MNISTLike(_TorchvisionDataModule):

    light_on_dark = True
    files = _MNIST_FILES

    def read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ds = self.tv_class(root=self.data_dir, train=train, download=False)
        images = ds.data.to(torch.uint8).unsqueeze(1).contiguous()  # (N, 28, 28) -> (N, 1, 28, 28)
        labels = torch.as_tensor(ds.targets, dtype=torch.int64)
        return images, labels


class MNISTDataModule(_MNISTLike):
    """The full MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 grey.

    Files: ``<data_dir>/MNIST/raw/`` (see the module docstring). Splits: 54,000 train /
    6,000 val (stratified, ``split_seed``) / the official 10,000 test.
    """

    name = "mnist"
    mean = (0.1307,)
    std = (0.3081,)
    subdir = os.path.join("MNIST", "raw")
    tv_class = datasets.MNIST


class FashionMNISTDataModule(_MNISTLike):
    """Zalando's Fashion-MNIST: 60,000 training and 10,000 test images of clothing, 28x28 grey,
    10 classes, in MNIST's file format.

    Files: ``<data_dir>/FashionMNIST/raw/`` (see the module docstring). Splits: 54,000 train /
    6,000 val (stratified, ``split_seed``) / the official 10,000 test.
    """

    name = "fashion_mnist"
    mean = (0.2860,)
    std = (0.3530,)
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    subdir = os.path.join("FashionMNIST", "raw")
    tv_class = datasets.FashionMNIST


class _CIFAR10Files(datasets.CIFAR10):
    """torchvision's CIFAR-10 reader with the integrity check reduced to "the files exist".

    With ``download=False`` torchvision compares the md5 of every batch file and of
    ``batches.meta`` against the official archive's, so it refuses any other copy in the same
    format (a small test fixture, a re-packed subset) and hashes ~180 MB on every load. The
    datamodule checks for the files itself before reading and only ever reads through this
    class; downloads go through the unmodified :class:`torchvision.datasets.CIFAR10`, which
    keeps verifying what it fetches.
    """

    meta = {**datasets.CIFAR10.meta, "md5": None}  # md5 None: check_integrity tests existence only

    def _check_integrity(self) -> bool:
        folder = os.path.join(self.root, self.base_folder)
        return all(os.path.isfile(os.path.join(folder, name)) for name, _ in self.train_list + self.test_list)


class CIFAR10DataModule(_TorchvisionDataModule):
    """CIFAR-10: 50,000 training and 10,000 test colour images, 32x32, 10 classes.

    Files: ``<data_dir>/cifar-10-batches-py/`` (see the module docstring). Splits: 45,000 train
    / 5,000 val (stratified, ``split_seed``) / the official 10,000 test.
    """

    name = "cifar10"
    native_chans = 3
    native_size = 32
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    classes = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
    subdir = datasets.CIFAR10.base_folder
    files = tuple(name for name, _ in datasets.CIFAR10.train_list + datasets.CIFAR10.test_list) + (
        datasets.CIFAR10.meta["filename"],
    )
    tv_class = datasets.CIFAR10

    def read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ds = _CIFAR10Files(root=self.data_dir, train=train, download=False)
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        labels = torch.as_tensor(ds.targets, dtype=torch.int64)
        return images, labels
