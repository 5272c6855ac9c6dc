"""MNIST, Fashion-MNIST and CIFAR-10 DataModules read tiny copies written in the real on-disk
formats (idx files; python-2 pickled CIFAR batches), so no download is needed."""
from __future__ import annotations

import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch

from datamodules import (
    CIFAR10DataModule,
    DatasetNotFoundError,
    FashionMNISTDataModule,
    MNISTDataModule,
)

from fakedata import (  # noqa: E402
    CIFAR_FILES, MNIST_FILES, N_TEST, N_TRAIN, Py2Pickler, Py2Str, dump_py2, make_data,
    write_cifar, write_cifar_batch, write_idx_images, write_idx_labels, write_mnist,
)


def to_uint8(x: torch.Tensor, dm) -> np.ndarray:
    """Undo the normalisation: float (N, C, H, W) -> uint8 values."""
    mean = torch.tensor(dm.mean).view(1, -1, 1, 1)
    std = torch.tensor(dm.std).view(1, -1, 1, 1)
    return torch.round((x * std + mean) * 255).clamp(0, 255).to(torch.uint8).numpy()


def check_split(x: torch.Tensor, y: torch.Tensor, dm, images: np.ndarray, labels: np.ndarray, crop: int):
    """Every example of a split equals the written image and label with the index it carries."""
    raw = to_uint8(x, dm)
    if crop:
        raw = raw[:, :, crop:-crop, crop:-crop]
    idx = raw.reshape(len(raw), -1)[:, 0].astype(int)
    np.testing.assert_array_equal(raw, images[idx])
    np.testing.assert_array_equal(y.numpy(), labels[idx])
    return idx


MNIST_CASES = [(MNISTDataModule, "MNIST"), (FashionMNISTDataModule, "FashionMNIST")]


# -- tests -------------------------------------------------------------------------------------
def test_idx_files_have_the_mnist_layout(tmp_path):
    train_x, train_y, _, _ = write_mnist(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    data = (raw / "train-images-idx3-ubyte").read_bytes()
    assert struct.unpack(">IIII", data[:16]) == (2051, N_TRAIN, 28, 28)
    assert data[16 + 7 * 784 + 3 * 28 + 5] == 201
    labels = (raw / "train-labels-idx1-ubyte").read_bytes()
    assert struct.unpack(">II", labels[:8]) == (2049, N_TRAIN)
    assert list(labels[8:]) == train_y.tolist()


@pytest.mark.parametrize("cls,folder", MNIST_CASES)
def test_mnist_like_reads_real_format(tmp_path, cls, folder):
    train_x, train_y, test_x, test_y = write_mnist(tmp_path, folder)
    dm = cls(data_dir=str(tmp_path), download=False, batch_size=16, image_size=32)
    dm.prepare_data()
    dm.setup()

    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (90, 10, N_TEST)
    x, y = dm.train_set.tensors
    assert x.shape == (90, 1, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    # padding to 32x32 is background (0 before normalisation; float32 vs float64 quotient: ulps)
    assert torch.allclose(x[:, :, :2], torch.tensor(-dm.mean[0] / dm.std[0]))
    assert torch.allclose(x[:, :, :, -2:], torch.tensor(-dm.mean[0] / dm.std[0]))

    train_idx = check_split(x, y, dm, train_x, train_y, crop=2)
    val_idx = check_split(*dm.val_set.tensors, dm, train_x, train_y, crop=2)
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(N_TRAIN))
    assert np.bincount(train_y[val_idx], minlength=10).tolist() == [1] * 10  # stratified
    # the official test set is the test split, in file order
    test_idx = check_split(*dm.test_set.tensors, dm, test_x, test_y, crop=2)
    assert test_idx.tolist() == list(range(N_TEST))

    # the known pixel (image 7, row 3, column 5), shifted by the 2-pixel padding
    split, pos = (dm.train_set, train_idx) if 7 in train_idx else (dm.val_set, val_idx)
    j = int(np.flatnonzero(pos == 7)[0])
    value = split.tensors[0][j, 0, 3 + 2, 5 + 2] * dm.std[0] + dm.mean[0]
    assert round(float(value) * 255) == 201

    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (16, 1, 32, 32) and yb.shape == (16,)


def test_fashion_mnist_class_names():
    dm = FashionMNISTDataModule()
    assert dm.class_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert dm.num_classes == 10 and dm.name == "fashion_mnist"


def test_cifar_files_have_the_python_pickle_layout(tmp_path):
    train_x, train_y, _, _ = write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "rb") as fh:
        entry = pickle.load(fh, encoding="bytes")  # as the CIFAR web page reads it
    assert entry[b"data"].shape == (20, 3072) and entry[b"data"].dtype == np.uint8
    assert entry[b"labels"] == train_y[:20].tolist()
    assert [entry[b"data"][7][c * 1024 + 3 * 32 + 5] for c in range(3)] == [11, 22, 33]
    with open(folder / "batches.meta", "rb") as fh:
        meta = pickle.load(fh, encoding="latin1")  # as torchvision reads it
    assert meta["label_names"][0] == "airplane"


def test_cifar10_reads_real_format(tmp_path):
    train_x, train_y, test_x, test_y = write_cifar(tmp_path)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), download=False, batch_size=8)
    dm.prepare_data()
    dm.setup()

    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (90, 10, N_TEST)
    x, y = dm.train_set.tensors
    assert x.shape == (90, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    train_idx = check_split(x, y, dm, train_x, train_y, crop=0)
    val_idx = check_split(*dm.val_set.tensors, dm, train_x, train_y, crop=0)
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(N_TRAIN))
    test_idx = check_split(*dm.test_set.tensors, dm, test_x, test_y, crop=0)
    assert test_idx.tolist() == list(range(N_TEST))

    # the known pixel comes back as (R, G, B) = (11, 22, 33) in channels 0, 1, 2
    split, pos = (dm.train_set, train_idx) if 7 in train_idx else (dm.val_set, val_idx)
    j = int(np.flatnonzero(pos == 7)[0])
    rgb = to_uint8(split.tensors[0][j:j + 1], dm)[0, :, 3, 5]
    assert rgb.tolist() == [11, 22, 33]

    xb, yb = next(iter(dm.test_dataloader()))
    assert xb.shape == (8, 3, 32, 32) and yb.shape == (8,)
    assert dm.describe()["class_names"][0] == "airplane"


CASES = [
    (MNISTDataModule, lambda root: write_mnist(root, "MNIST"), os.path.join("MNIST", "raw"), MNIST_FILES),
    (FashionMNISTDataModule, lambda root: write_mnist(root, "FashionMNIST"),
     os.path.join("FashionMNIST", "raw"), MNIST_FILES),
    (CIFAR10DataModule, write_cifar, "cifar-10-batches-py", CIFAR_FILES),
]


@pytest.mark.parametrize("cls,write,subdir,files", CASES)
def test_missing_files_raise_a_clear_error(tmp_path, cls, write, subdir, files):
    dm = cls(data_dir=str(tmp_path), download=False)
    with pytest.raises(DatasetNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str(tmp_path / subdir) in message
    assert "data.download=true" in message and dm.name in message
    assert all(f in message for f in files)
    # setup() without prepare_data() fails the same way
    with pytest.raises(DatasetNotFoundError, match="download"):
        cls(data_dir=str(tmp_path), download=False).setup()


@pytest.mark.parametrize("cls,write,subdir,files", CASES)
def test_one_missing_file_is_named(tmp_path, cls, write, subdir, files):
    write(tmp_path)
    os.remove(tmp_path / subdir / files[-1])
    with pytest.raises(DatasetNotFoundError, match=f"missing: {files[-1]}"):
        cls(data_dir=str(tmp_path)).setup()


@pytest.mark.parametrize("cls,write,subdir,files", CASES[:2])
def test_download_uses_torchvision(tmp_path, monkeypatch, cls, write, subdir, files):
    calls = []
    fake = staticmethod(lambda root, train, download: calls.append((root, train, download)))
    monkeypatch.setattr(cls, "tv_class", fake)
    write(tmp_path)  # stands in for the files the download would fetch
    cls(data_dir=str(tmp_path), download=True).prepare_data()
    assert sorted(calls) == [(str(tmp_path), False, True), (str(tmp_path), True, True)]


def test_cifar10_download_fetches_the_archive_and_extracts_it_safely(tmp_path, monkeypatch):
    from datamodules.vision import torchvision_data

    # the archive the download would fetch: the real layout, packed as the official tar.gz is
    source = tmp_path / "source"
    train_x, train_y, _, _ = write_cifar(source)
    calls = []

    def fake_download_url(url, root, filename=None, md5=None):
        calls.append((url, filename, md5))
        os.makedirs(root, exist_ok=True)  # as download_url does
        with tarfile.open(os.path.join(root, filename), "w:gz") as tf:
            tf.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")

    monkeypatch.setattr(torchvision_data, "download_url", fake_download_url)
    data = tmp_path / "data"
    dm = CIFAR10DataModule(data_dir=str(data), download=True)
    dm.prepare_data()
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                      "c58f30108f718f92721af3b95e74349a")]
    assert sorted(os.listdir(data / "cifar-10-batches-py")) == sorted(CIFAR_FILES)
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == N_TRAIN
    CIFAR10DataModule(data_dir=str(data), download=True).prepare_data()  # files there: no download
    assert len(calls) == 1


def test_constructor_rejects_unknown_options():
    with pytest.raises(TypeError):
        MNISTDataModule(batch_sise=32)
    dm = CIFAR10DataModule(data_dir="somewhere", batch_size=32, val_fraction=0.2, in_chans=3)
    assert (dm.data_dir, dm.download, dm.batch_size, dm.val_fraction) == ("somewhere", False, 32, 0.2)
    assert dm.describe()["input_shape"] == [3, 32, 32]
