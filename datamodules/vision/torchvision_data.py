"""DataModules over the full datasets that torchvision knows how to download: MNIST,
Fashion-MNIST and CIFAR-10.

The files are expected under ``data_dir`` in torchvision's own layout, so a folder filled by
``torchvision.datasets.<Name>(root=data_dir, download=True)`` works as is:

* MNIST: ``<data_dir>/MNIST/raw/`` with the unzipped idx files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``;
* Fashion-MNIST: the same four file names under ``<data_dir>/FashionMNIST/raw/``;
* CIFAR-10: ``<data_dir>/cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5``,
  ``test_batch`` and ``batches.meta`` (the extracted python-pickle archive).

Nothing is downloaded unless ``download=True`` (``data.download=true`` from the command line):
with it off, missing files raise :class:`DatasetNotFoundError` naming the folder and files.
MNIST and Fashion-MNIST are downloaded by torchvision; CIFAR-10's archive is fetched with
torchvision's ``download_url`` (its MD5 checked) and unpacked by
:func:`datamodules.archives.safe_extract`, which refuses members that would land outside
``data_dir``.

The files are read by the zoo's own readers (:mod:`datamodules.vision.io`), not torchvision's
classes: an IDX file's magic number, dimensions and size are checked, and its images and labels
must agree in number with labels in 0..9; CIFAR-10's pickles are read by an unpickler that may
build only numpy arrays, lists, dicts and numbers, so a file that asks to import anything else
(which could run code) is refused before anything in it runs. A damaged file raises
:class:`DataFileError` naming it and saying to delete it and download it again. The values read
are the ones torchvision's dataset classes return for the same files.

The official test set is the test split; ``val_fraction`` (default 10%) of the official training
set is held out, stratified by class, for validation. See the base class for the batch contract.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torchvision import datasets
from torchvision.datasets.utils import download_url

from datamodules.archives import safe_extract
from datamodules.base import DataFileError
from datamodules.vision.base import DatasetNotFoundError, ImageClassificationDataModule
from datamodules.vision.io import REDOWNLOAD, read_cifar_batch, read_cifar_meta, read_idx

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
    (their names), ``tv_class`` (the torchvision dataset class used to download, unless they
    override ``fetch``) and implement ``read(train)`` returning
    ``(images uint8 (N, C, H, W), labels int64 (N,))``.
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

    def fetch(self) -> None:
        """Download the files into ``data_dir`` (``download=True`` only)."""
        for train in (True, False):
            self.tv_class(root=self.data_dir, train=train, download=True)

    def prepare_data(self) -> None:
        if self.download:
            self.fetch()
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
        """The images (N, 1, 28, 28) and labels of the training or test idx files, checked."""
        prefix = "train" if train else "t10k"
        image_path = os.path.join(self.files_dir, f"{prefix}-images-idx3-ubyte")
        label_path = os.path.join(self.files_dir, f"{prefix}-labels-idx1-ubyte")
        images = read_idx(image_path, 3, "images", shape=(28, 28))
        labels = read_idx(label_path, 1, "labels")
        if len(images) != len(labels):
            raise DataFileError(
                f"{label_path} holds {len(labels)} labels but {image_path} holds {len(images)} images, "
                f"where each image needs one label; delete both and run again with data.download=true "
                f"to download fresh copies"
            )
        if len(labels) and int(labels.max()) >= len(self.classes):
            first = int(torch.nonzero(labels >= len(self.classes))[0, 0])
            raise DataFileError(
                f"{label_path} is not a file of {self.name} labels: label {first} is "
                f"{int(labels[first])}, expected 0..{len(self.classes) - 1}; {REDOWNLOAD}"
            )
        return images.unsqueeze(1).contiguous(), labels.long()  # (N, 28, 28) -> (N, 1, 28, 28)


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
    archive = datasets.CIFAR10.filename  # cifar-10-python.tar.gz
    url = datasets.CIFAR10.url
    archive_md5 = datasets.CIFAR10.tgz_md5

    def fetch(self) -> None:
        """Download the official archive into ``data_dir`` (MD5 checked) and unpack it there
        with :func:`safe_extract`; nothing is fetched when the files are all present."""
        folder = self.files_dir
        if all(os.path.isfile(os.path.join(folder, f)) for f in self.files):
            return
        root = os.path.expanduser(self.data_dir)
        path = os.path.join(os.path.abspath(root), self.archive)
        try:
            download_url(self.url, root, filename=self.archive, md5=self.archive_md5)
        except RuntimeError as err:
            if "corrupted" not in str(err):
                raise
            raise DataFileError(f"{path} does not match the official CIFAR-10 archive (MD5 "
                                f"{self.archive_md5}): delete it and run again to download it afresh") from None
        safe_extract(path, root)

    def read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The images (N, 3, 32, 32) and labels of the five training batches or the test batch,
        read with the restricted unpickler (``batches.meta`` is checked too)."""
        names = [n for n, _ in (datasets.CIFAR10.train_list if train else datasets.CIFAR10.test_list)]
        read_cifar_meta(os.path.join(self.files_dir, datasets.CIFAR10.meta["filename"]))
        parts = [read_cifar_batch(os.path.join(self.files_dir, n)) for n in names]
        images = torch.cat([p[0] for p in parts])
        labels = torch.cat([p[1] for p in parts])
        return images, labels
