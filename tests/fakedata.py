"""Tiny copies of real datasets written in their real on-disk formats (idx files for
MNIST/Fashion-MNIST; python-2 pickled batches for CIFAR-10), for offline tests."""
from __future__ import annotations

import os
import pickle
import struct

import numpy as np

N_TRAIN, N_TEST = 100, 20  # 10 / 2 examples per class
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def make_data(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images whose first pixel is the example's index (to trace it through the
    split), and shuffled labels with every class present n/10 times."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    images.reshape(n, -1)[:, 0] = np.arange(n)
    labels = rng.permutation(np.repeat(np.arange(10), n // 10)).astype(np.uint8)
    return images, labels


# -- MNIST idx format --------------------------------------------------------------------------
def write_idx_images(path, images: np.ndarray) -> None:
    n, h, w = images.shape
    with open(path, "wb") as fh:
        fh.write(struct.pack(">IIII", 2051, n, h, w))
        fh.write(images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels: np.ndarray) -> None:
    with open(path, "wb") as fh:
        fh.write(struct.pack(">II", 2049, len(labels)))
        fh.write(labels.astype(np.uint8).tobytes())


def write_mnist(root, folder: str):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    train_x, train_y = make_data(N_TRAIN, (28, 28), seed=1)
    test_x, test_y = make_data(N_TEST, (28, 28), seed=2)
    train_x[7, 3, 5] = 201  # a known pixel: image 7, row 3, column 5
    write_idx_images(raw / "train-images-idx3-ubyte", train_x)
    write_idx_labels(raw / "train-labels-idx1-ubyte", train_y)
    write_idx_images(raw / "t10k-images-idx3-ubyte", test_x)
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", test_y)
    return train_x[:, None], train_y, test_x[:, None], test_y


# -- CIFAR-10 python format --------------------------------------------------------------------
class Py2Str(bytes):
    """Marks bytes to be pickled as a python-2 ``str``, as in the official CIFAR files: loaded
    with ``encoding="bytes"`` they come back as bytes (b'data'), with ``encoding="latin1"`` (what
    torchvision uses) as str ('data')."""


class Py2Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + bytes(obj))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2_str


def dump_py2(obj, path) -> None:
    with open(path, "wb") as fh:
        Py2Pickler(fh, protocol=2).dump(obj)


def write_cifar_batch(path, images: np.ndarray, labels: np.ndarray, name: str) -> None:
    # One row per image: 1024 red values, then 1024 green, then 1024 blue, each plane row-major.
    dump_py2({
        Py2Str(b"batch_label"): Py2Str(name.encode()),
        Py2Str(b"labels"): [int(v) for v in labels],
        Py2Str(b"data"): images.reshape(len(images), 3072),
        Py2Str(b"filenames"): [Py2Str(b"img_%d.png" % i) for i in range(len(images))],
    }, path)


def write_cifar(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x, train_y = make_data(N_TRAIN, (3, 32, 32), seed=3)
    test_x, test_y = make_data(N_TEST, (3, 32, 32), seed=4)
    # a known pixel: image 7, row 3, column 5 is (R, G, B) = (11, 22, 33)
    row = train_x.reshape(N_TRAIN, 3072)[7]
    row[0 * 1024 + 3 * 32 + 5], row[1 * 1024 + 3 * 32 + 5], row[2 * 1024 + 3 * 32 + 5] = 11, 22, 33
    per_batch = N_TRAIN // 5
    for b in range(5):
        sl = slice(b * per_batch, (b + 1) * per_batch)
        write_cifar_batch(folder / f"data_batch_{b + 1}", train_x[sl], train_y[sl], f"training batch {b + 1} of 5")
    write_cifar_batch(folder / "test_batch", test_x, test_y, "testing batch 1 of 1")
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    dump_py2({Py2Str(b"num_cases_per_batch"): per_batch,
              Py2Str(b"label_names"): [Py2Str(n) for n in names],
              Py2Str(b"num_vis"): 3072}, folder / "batches.meta")
    return train_x, train_y, test_x, test_y


# -- helpers -----------------------------------------------------------------------------------
