"""Data files from elsewhere, damaged or hostile: every fault is a clear error naming the file and
saying what to do, raised by the zoo's own readers (never a traceback from deep inside numpy,
pickle or torchvision), and nothing in a hostile file runs or lands outside its folder.

Covered: IDX files (MNIST, Fashion-MNIST), CIFAR-10's pickled batches, the archives downloads
are unpacked from, and the user's own image folders. Valid files read exactly as before."""
from __future__ import annotations

import builtins
import io
import logging
import os
import pickle
import re
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import (
    CIFAR10DataModule,
    DataFileError,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    safe_extract,
)
from datamodules.vision.io import read_cifar_batch, read_cifar_meta, read_idx
from fakedata import N_TEST, N_TRAIN, Py2Str, dump_py2, write_cifar, write_cifar_batch, write_mnist

bad_input = pytest.mark.bad_input
REDOWNLOAD = "data.download=true"


def raises(fn, *, cls=DataFileError, names: Path | str, says: str | list[str]) -> str:
    """Call ``fn``, expecting ``cls`` whose message holds the file ``names`` and each of ``says``."""
    with pytest.raises(cls) as err:
        fn()
    message = str(err.value)
    assert str(names) in message, message
    for text in [says] if isinstance(says, str) else says:
        assert text in message, message
    return message


# -- IDX files (MNIST, Fashion-MNIST) ------------------------------------------------------------
def _mnist(tmp_path: Path, folder: str = "MNIST") -> tuple[MNISTDataModule, Path]:
    write_mnist(tmp_path, folder)
    cls = MNISTDataModule if folder == "MNIST" else FashionMNISTDataModule
    return cls(data_dir=str(tmp_path)), tmp_path / folder / "raw"


def test_idx_reader_returns_what_torchvision_reads(tmp_path):
    from torchvision import datasets

    dm, _ = _mnist(tmp_path)
    for train in (True, False):
        ours = dm.read(train)
        theirs = datasets.MNIST(root=str(tmp_path), train=train, download=False)
        assert ours[0].dtype == torch.uint8 and ours[1].dtype == torch.int64
        assert torch.equal(ours[0], theirs.data.unsqueeze(1)) and torch.equal(ours[1], theirs.targets)


@bad_input
def test_truncated_idx_images(tmp_path):
    dm, raw = _mnist(tmp_path)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    raises(dm.setup, names=path, says=["truncated", f"{N_TRAIN} item(s) of shape 28x28",
                                        "holds 5000 bytes", REDOWNLOAD])


@bad_input
def test_idx_with_trailing_bytes(tmp_path):
    dm, raw = _mnist(tmp_path, "FashionMNIST")
    path = raw / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0" * 3)
    raises(dm.setup, names=path, says=["longer than its header says", REDOWNLOAD])


@bad_input
def test_idx_with_the_wrong_magic_number(tmp_path):
    dm, raw = _mnist(tmp_path)
    images, labels = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    images.write_bytes(labels.read_bytes())  # the label file under the images' name
    raises(dm.setup, names=images, says=["magic number is 0x00000801", "(1 dimension(s), where 3 were expected)",
                                          "expected 0x00000803", REDOWNLOAD])


@bad_input
def test_idx_of_another_data_type(tmp_path):
    dm, raw = _mnist(tmp_path)
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(struct.pack(">I", 0x0D03) + path.read_bytes()[4:])  # 0x0D: float32
    raises(dm.setup, names=path, says=["data type code 0x0D", "0x08, unsigned bytes", REDOWNLOAD])


@bad_input
def test_idx_images_of_another_size(tmp_path):
    dm, raw = _mnist(tmp_path)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">IIII", 0x0803, 4, 32, 32) + bytes(4 * 32 * 32))
    raises(dm.setup, names=path, says=["shape 32x32, expected 28x28", REDOWNLOAD])


@bad_input
def test_empty_idx_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"")
    raises(lambda: read_idx(path, 1, "labels"), names=path, says=["holds 0 byte(s)", REDOWNLOAD])


@bad_input
def test_idx_image_and_label_counts_disagree(tmp_path):
    dm, raw = _mnist(tmp_path)
    path = raw / "t10k-labels-idx1-ubyte"
    path.write_bytes(struct.pack(">II", 0x0801, N_TEST - 1) + bytes(N_TEST - 1))
    raises(dm.setup, names=path, says=[f"holds {N_TEST - 1} labels but", str(raw / "t10k-images-idx3-ubyte"),
                                        f"holds {N_TEST} images", "delete both", REDOWNLOAD])


@bad_input
def test_idx_labels_out_of_range(tmp_path):
    dm, raw = _mnist(tmp_path)
    path = raw / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[8 + 3] = 10
    path.write_bytes(bytes(data))
    raises(dm.setup, names=path, says=["label 3 is 10, expected 0..9", REDOWNLOAD])


# -- CIFAR-10 pickles ----------------------------------------------------------------------------
def _cifar(tmp_path: Path) -> tuple[CIFAR10DataModule, Path]:
    write_cifar(tmp_path)
    return CIFAR10DataModule(data_dir=str(tmp_path)), tmp_path / "cifar-10-batches-py"


def test_cifar_reader_returns_what_an_unrestricted_pickle_load_reads(tmp_path):
    _, folder = _cifar(tmp_path)
    for name in ("data_batch_1", "test_batch"):
        with open(folder / name, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")  # what torchvision's CIFAR10 does
        images, labels = read_cifar_batch(folder / name)
        expected = entry["data"].reshape(-1, 3, 32, 32)
        assert images.dtype == torch.uint8 and np.array_equal(images.numpy(), expected)
        assert labels.dtype == torch.int64 and labels.tolist() == entry["labels"]
    assert read_cifar_meta(folder / "batches.meta")[:2] == ["airplane", "automobile"]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_repacked_by_python3_read_alike(tmp_path, protocol):
    """A copy written by Python 3 (bytes keys; protocol 2 encodes bytes through _codecs,
    protocol 5 rebuilds arrays with _frombuffer) is read as the original is."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(6, 3072), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [0, 1, 2, 3, 4, 9]}, protocol=protocol))
    images, labels = read_cifar_batch(path)
    assert np.array_equal(images.numpy().reshape(6, 3072), data) and labels.tolist() == [0, 1, 2, 3, 4, 9]


class _Touch:
    """Pickles as a call that creates the file ``path`` when unpickled by a plain unpickler."""

    def __init__(self, path: Path, how: str):
        self.path, self.how = path, how

    def __reduce__(self):
        if self.how == "os.system":
            return os.system, (f"touch {self.path}",)
        return builtins.open, (str(self.path), "w")


@bad_input
@pytest.mark.parametrize("how, named", [("os.system", f"{os.system.__module__}.system"),
                                        ("builtins.open", f"{builtins.open.__module__}.open")])
def test_hostile_cifar_pickle_is_refused_and_nothing_runs(tmp_path, how, named):
    dm, folder = _cifar(tmp_path)
    marker = tmp_path / "marker"
    path = folder / "data_batch_1"
    payload = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": _Touch(marker, how)}
    path.write_bytes(pickle.dumps(payload, protocol=2))
    raises(dm.setup, names=path, says=["is not a CIFAR-10 batch", f"it asks to import {named}",
                                        "which could run code; refused", REDOWNLOAD])
    assert not marker.exists()
    # the file is genuinely hostile: a plain pickle.load runs it
    with open(path, "rb") as fh:
        pickle.load(fh, encoding="latin1")
    assert marker.exists()


@bad_input
def test_hostile_cifar_meta_is_refused(tmp_path):
    dm, folder = _cifar(tmp_path)
    marker = tmp_path / "marker"
    path = folder / "batches.meta"
    path.write_bytes(pickle.dumps({"label_names": _Touch(marker, "builtins.open")}))
    raises(dm.setup, names=path, says=["is not CIFAR-10's batches.meta", "it asks to import", "refused",
                                        REDOWNLOAD])
    assert not marker.exists()


@bad_input
def test_truncated_cifar_batch(tmp_path):
    dm, folder = _cifar(tmp_path)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:1000])
    raises(dm.setup, names=path, says=["cannot be read as a CIFAR-10 batch",
                                        "truncated or corrupt", REDOWNLOAD])


@bad_input
def test_cifar_batch_with_data_of_the_wrong_shape(tmp_path):
    dm, folder = _cifar(tmp_path)
    path = folder / "test_batch"
    dump_py2({Py2Str(b"data"): np.zeros((N_TEST, 768), np.uint8),  # 16x16 images
              Py2Str(b"labels"): [0] * N_TEST}, path)
    raises(dm.setup, names=path, says=["its 'data' is a uint8 array of shape (20, 768)",
                                        "expected a uint8 array of shape (N, 3072)", REDOWNLOAD])


@bad_input
def test_cifar_batch_with_too_few_labels(tmp_path):
    dm, folder = _cifar(tmp_path)
    path = folder / "data_batch_2"
    write_cifar_batch(path, np.zeros((20, 3072), np.uint8), np.zeros(19, int), "training batch 2 of 5")
    raises(dm.setup, names=path, says=["holds 20 images but 19 labels", REDOWNLOAD])


@bad_input
def test_cifar_batch_that_is_not_a_dict(tmp_path):
    dm, folder = _cifar(tmp_path)
    path = folder / "data_batch_5"
    dump_py2([1, 2, 3], path)
    raises(dm.setup, names=path, says=["holds a list, not a dict with 'data' and 'labels'", REDOWNLOAD])


# -- archives ------------------------------------------------------------------------------------
def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"hello\n") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_a_good_archive_extracts(tmp_path):
    dest = tmp_path / "dest"
    tar = _tar(tmp_path / "good.tar.gz", [_file("top/a.txt"), _file("top/sub/b.txt", b"b"),
                                          _link("top/sub/link", "../a.txt"), _link("top/hard", "top/a.txt",
                                                                                   tarfile.LNKTYPE)])
    assert safe_extract(tar, dest) == ["top/a.txt", "top/sub/b.txt", "top/sub/link", "top/hard"]
    assert (dest / "top" / "sub" / "link").read_text() == "hello\n" and (dest / "top" / "hard").read_text() == "hello\n"
    z = tmp_path / "good.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("top/c.txt", "c")
    safe_extract(z, dest)
    assert (dest / "top" / "c.txt").read_text() == "c"


TAR_CASES = {
    "dotdot": ([_file("data/ok.txt"), _file("../evil.txt")], "'../evil.txt', which would be written outside"),
    "absolute": ([_file("{outside}/evil.txt")], "has an absolute path"),
    "symlink": ([_link("data/evil.txt", "{outside}/evil.txt")], "symbolic link to the absolute path"),
    "symlink_up": ([_link("data/up", "../../outside")], "points outside"),
    "through_symlink": ([_link("data/here", ".."), _file("data/here/../evil.txt")], "would be written outside"),
    "symlink_chain": ([_link("d/l", ".."), _link("escape", "d/l/.."), ], "'escape', which is a symbolic link"),
    "hardlink": ([_link("data/evil.txt", "../evil.txt", tarfile.LNKTYPE)], "is a hard link to '../evil.txt'"),
    "device": ([(_link("data/dev", "", tarfile.CHRTYPE)[0], None)], "is a device file"),
}


@bad_input
@pytest.mark.parametrize("case", list(TAR_CASES))
def test_unsafe_tar_members_are_refused(tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    members, says = TAR_CASES[case]
    fixed = []
    for info, data in members:
        info = pickle.loads(pickle.dumps(info))  # a copy: the cases are shared
        info.name = info.name.format(outside=outside)
        info.linkname = info.linkname.format(outside=outside)
        fixed.append((info, data))
    tar = _tar(tmp_path / f"{case}.tar.gz", fixed)
    dest = tmp_path / "dest"
    raises(lambda: safe_extract(tar, dest), names=tar, says=[says, "nothing was extracted",
                                                             "download it again"])
    assert not dest.exists()  # checked before anything is written
    assert not (tmp_path / "evil.txt").exists() and list(outside.iterdir()) == []


@bad_input
@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "data/../../evil.txt"])
def test_unsafe_zip_members_are_refused(tmp_path, name):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("data/ok.txt", "ok")
        zf.writestr(zipfile.ZipInfo(name), "evil")  # ZipInfo keeps the name as given
    dest = tmp_path / "dest"
    raises(lambda: safe_extract(z, dest), names=z, says=[repr(name), "outside", "download it again"])
    assert not dest.exists() and not (tmp_path / "evil.txt").exists()


@bad_input
def test_truncated_archive(tmp_path):
    tar = _tar(tmp_path / "cut.tar.gz", [_file(f"data/f{i}", os.urandom(50_000)) for i in range(4)])
    tar.write_bytes(tar.read_bytes()[:120_000])
    raises(lambda: safe_extract(tar, tmp_path / "dest"), names=tar, says=["truncated or corrupt",
                                                                           "download it again"])


@bad_input
def test_a_file_that_is_no_archive(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"<html>Service unavailable</html>")
    raises(lambda: safe_extract(path, tmp_path / "dest"), names=path, says=["is not a tar or zip archive",
                                                                            "download it again"])


@bad_input
def test_cifar_download_with_a_hostile_archive_is_refused(tmp_path, monkeypatch):
    from datamodules.vision import torchvision_data

    def fake_download_url(url, root, filename=None, md5=None):
        os.makedirs(root, exist_ok=True)
        _tar(Path(root) / filename, [_file("cifar-10-batches-py/data_batch_1"), _file("../../evil.txt")])

    monkeypatch.setattr(torchvision_data, "download_url", fake_download_url)
    data = tmp_path / "a" / "data"
    raises(CIFAR10DataModule(data_dir=str(data), download=True).prepare_data,
           names=data / "cifar-10-python.tar.gz", says=["'../../evil.txt'", "outside", "nothing was extracted"])
    assert not (tmp_path / "evil.txt").exists() and not (data / "cifar-10-batches-py").exists()


@bad_input
def test_cifar_download_that_fails_its_checksum(tmp_path, monkeypatch):
    from datamodules.vision import torchvision_data

    def fake_download_url(url, root, filename=None, md5=None):
        raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(torchvision_data, "download_url", fake_download_url)
    raises(CIFAR10DataModule(data_dir=str(tmp_path), download=True).prepare_data,
           names=tmp_path / "cifar-10-python.tar.gz", says=["does not match the official CIFAR-10 archive",
                                                            "delete it"])


# -- your own images -----------------------------------------------------------------------------
def _folder(root: Path, per_class: int = 4) -> Path:
    for c, colour in enumerate([(200, 30, 30), (30, 200, 30)]):
        d = root / "train" / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (10, 12), tuple(v + 5 * i for v in colour)).save(d / f"img{i}.png")
    return root


def _break(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:30])  # a PNG cut short
    return path


@bad_input
def test_corrupt_image_in_a_folder(tmp_path):
    bad = _break(_folder(tmp_path) / "train" / "class1" / "img2.png")
    (tmp_path / "train" / "class0" / "notes.jpg").write_text("not an image")
    dm = ImageFolderDataModule(root=str(tmp_path), native_size=8, val_fraction=0.25, test_fraction=0.25)
    raises(dm.setup, names=tmp_path / "train" / "class0" / "notes.jpg",
           says=["is not an image Pillow can read", "replace it with a readable image or delete it",
                 "data.skip_bad=true"])
    (tmp_path / "train" / "class0" / "notes.jpg").unlink()
    dm = ImageFolderDataModule(root=str(tmp_path), native_size=8, val_fraction=0.25, test_fraction=0.25)
    raises(dm.setup, names=bad, says=["is not an image Pillow can read", "data.skip_bad=true"])


def test_skip_bad_skips_counts_and_warns(tmp_path, caplog):
    root = _folder(tmp_path, per_class=6)
    _break(root / "train" / "class0" / "img1.png")
    (root / "train" / "class1" / "img5.png").write_bytes(b"")
    dm = ImageFolderDataModule(root=str(root), native_size=8, val_fraction=0.2, test_fraction=0.2,
                               skip_bad=True)
    with caplog.at_level(logging.WARNING, logger="datamodules.vision.folder"):
        dm.setup()
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 10
    assert dm.describe()["skipped_images"] == 2
    assert [p.name for p in dm.skipped] == ["img1.png", "img5.png"]
    text = caplog.text
    assert "skipped 2 unreadable image file(s)" in text and os.path.join("class0", "img1.png") in text
    assert ImageFolderDataModule(root=str(root)).skip_bad is False  # opt-in


@bad_input
def test_a_class_left_without_images_by_skip_bad(tmp_path):
    root = _folder(tmp_path)
    for f in (root / "train" / "class1").iterdir():
        _break(f)
    dm = ImageFolderDataModule(root=str(root), native_size=8, val_fraction=0.25, test_fraction=0.25,
                               skip_bad=True)
    raises(dm.setup, cls=ValueError, names=root / "train" / "class1",
           says=["has no readable image left: all 4 of its images were unreadable and skipped",
                 "replace them with images Pillow can read"])
