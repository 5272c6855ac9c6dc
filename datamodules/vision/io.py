"""Reading image files that come from elsewhere, checking them before trusting them.

* :func:`read_image`: one of the user's image files, through Pillow.
* :func:`read_idx`: an IDX file (MNIST, Fashion-MNIST): the magic number, the dimensions and
  the file size are checked against each other before a byte of data is used.
* :func:`read_cifar_batch` / :func:`read_cifar_meta`: CIFAR-10's python pickles, read with a
  restricted unpickler that may build only what a genuine batch holds (a dict of strings, lists
  and numbers, and numpy uint8 arrays): a pickle that asks for any other global (``os.system``,
  ``builtins.eval`` ...) is refused before it can run anything.

Every fault is a :class:`~datamodules.base.DataFileError` naming the file, what was expected,
what was found, and what to do.
"""
from __future__ import annotations

import codecs
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from datamodules.base import DataFileError

__all__ = ["read_image", "read_idx", "read_cifar_batch", "read_cifar_meta", "REDOWNLOAD"]

# what to do about a damaged file of a dataset the zoo downloads
REDOWNLOAD = "delete it and run again with data.download=true to download a fresh copy"


def read_image(path: Path, channels: int, size: tuple[int, int] | None = None,
               advice: str = "convert it to PNG or JPEG, or give another file") -> torch.Tensor:
    """(C, H, W) uint8 tensor of the image at ``path``, converted to 1 (grey) or 3 (RGB)
    channels and, when ``size`` = (H, W) is given, resized bilinearly. A missing file is a
    :class:`FileNotFoundError`, one Pillow cannot read a :class:`DataFileError`; both name it,
    the second ends with ``advice``."""
    from PIL import Image

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("L" if channels == 1 else "RGB")
    except Exception as err:  # noqa: BLE001 -- Pillow raises many kinds on a damaged file
        said = str(err).replace(f"'{path}'", "").replace(str(path), "").strip(" :")  # named once, below
        reason = f"{err.__class__.__name__}: {said}" if said else err.__class__.__name__
        raise DataFileError(f"{path} is not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP ...; "
                            f"{reason}): {advice}") from None
    if size is not None and (im.height, im.width) != tuple(size):
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    return t.view(im.height, im.width, channels).permute(2, 0, 1).contiguous()  # (H, W, C) -> (C, H, W)


# -- IDX ---------------------------------------------------------------------------------------
def read_idx(path: str | Path, ndim: int, what: str = "data",
             shape: tuple[int, ...] | None = None, advice: str = REDOWNLOAD) -> torch.Tensor:
    """The uint8 array of the IDX file at ``path`` as a tensor of ``ndim`` dimensions.

    The format: the magic number ``0x000008<ndim>`` (``0x08``: unsigned bytes), ``ndim``
    big-endian 32-bit sizes, then exactly ``prod(sizes)`` bytes. ``what`` names the content in
    messages (``"images"``, ``"labels"``); ``shape``, when given, is what every dimension but the
    first must be (e.g. ``(28, 28)``). A file that breaks any of this is a
    :class:`DataFileError` that ends with ``advice``."""
    path = Path(path)
    data = path.read_bytes()
    magic = 0x0800 | ndim
    header = 4 + 4 * ndim

    def fail(problem: str) -> DataFileError:
        return DataFileError(f"{path} is not a valid IDX file of {what}: {problem}; {advice}")

    if len(data) < 4:
        raise fail(f"it holds {len(data)} byte(s), fewer than the 4 of the magic number 0x{magic:08X}")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        detail = ""
        if found >> 16 == 0 and (found >> 8) & 0xFF != 0x08:
            detail = f" (data type code 0x{(found >> 8) & 0xFF:02X}, where 0x08, unsigned bytes, was expected)"
        elif found >> 8 == 0x08:
            detail = f" ({found & 0xFF} dimension(s), where {ndim} were expected)"
        raise fail(f"its magic number is 0x{found:08X}{detail}, expected 0x{magic:08X}")
    if len(data) < header:
        raise fail(f"it is truncated inside its header: {len(data)} bytes, the header alone takes {header}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if shape is not None and tuple(dims[1:]) != tuple(shape):
        raise fail(f"its header gives {dims[0]} item(s) of shape {'x'.join(map(str, dims[1:]))}, "
                   f"expected {'x'.join(map(str, shape))}")
    expected = header + math.prod(dims)
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        items = f"{dims[0]} item(s)" + (f" of shape {'x'.join(map(str, dims[1:]))}" if ndim > 1 else "")
        raise fail(f"it is {state}: its header announces {items}, {expected} bytes in all, but the file "
                   f"holds {len(data)} bytes")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(dims)


# -- CIFAR-10 pickles --------------------------------------------------------------------------
def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as a pickle written by Python 3 with protocol 2 uses it for a bytes
    object (the pixels of a numpy array), limited to that one codec."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode is allowed for latin-1 text only, not {encoding!r}")
    return text.encode("latin1")


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _numpy_frombuffer():
    try:
        from numpy._core.numeric import _frombuffer  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.numeric import _frombuffer
    return _frombuffer


# The globals a CIFAR-10 batch refers to: numpy rebuilds its arrays with these (written by numpy
# 1.x as numpy.core.*, by numpy 2 as numpy._core.*; _frombuffer by pickle protocol 5); a
# Python-3 pickle of protocol 2 also encodes bytes through _codecs.encode.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualname = f"{module}.{name}"


class _CIFARUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR-10 file holds; any other global is refused
    before it is imported, so nothing in the file can run."""

    def find_class(self, module: str, name: str):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise _RefusedGlobal(module, name)
        return make()

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not part of a CIFAR-10 file")


def _load_cifar_pickle(path: Path, what: str, advice: str) -> object:
    try:
        with open(path, "rb") as fh:
            return _CIFARUnpickler(fh, encoding="latin1").load()
    except _RefusedGlobal as err:
        raise DataFileError(f"{path} is not {what}: it asks to import {err.qualname}, which could run "
                            f"code; refused (nothing in it was run): {advice}") from None
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001 -- a damaged pickle fails in many ways
        raise DataFileError(f"{path} cannot be read as {what} (truncated or corrupt: "
                            f"{err.__class__.__name__}: {err}): {advice}") from None


def _str_keys(entry: dict) -> dict:
    """The official files are Python-2 pickles whose keys come back as str (latin-1); a copy
    written by Python 3 may hold bytes keys (``b"data"``): both are read alike."""
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def read_cifar_batch(path: str | Path, advice: str = REDOWNLOAD) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one CIFAR-10 batch file (a pickled
    dict with ``data``, uint8 (N, 3072) rows of 1024 red, 1024 green and 1024 blue values, and
    ``labels``, N integers in 0..9). The same values torchvision's CIFAR10 reads."""
    path = Path(path)
    what = "a CIFAR-10 batch"
    entry = _load_cifar_pickle(path, what, advice)

    def fail(problem: str) -> DataFileError:
        return DataFileError(f"{path} is not {what}: {problem}; {advice}")

    if not isinstance(entry, dict):
        raise fail(f"it holds a {type(entry).__name__}, not a dict with 'data' and 'labels'")
    entry = _str_keys(entry)
    missing = [k for k in ("data", "labels") if k not in entry]
    if missing:
        raise fail(f"its dict has no {' and no '.join(map(repr, missing))} entry "
                   f"(keys: {', '.join(sorted(map(str, entry)))})")
    data, labels = entry["data"], entry["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = (f"a {data.dtype} array of shape {tuple(data.shape)}" if isinstance(data, np.ndarray)
                 else f"a {type(data).__name__}")
        raise fail(f"its 'data' is {found}, expected a uint8 array of shape (N, 3072) (N 32x32 RGB images)")
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise fail("its 'labels' is not a list of integers")
    if len(labels) != len(data):
        raise fail(f"it holds {len(data)} images but {len(labels)} labels")
    bad = [v for v in labels if not 0 <= v <= 9]
    if bad:
        raise fail(f"its labels must lie in 0..9, found {bad[0]}")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    return images, torch.tensor(labels, dtype=torch.int64)


def read_cifar_meta(path: str | Path, advice: str = REDOWNLOAD) -> list[str]:
    """The ten class names of CIFAR-10's ``batches.meta`` (a pickled dict with ``label_names``)."""
    path = Path(path)
    what = "CIFAR-10's batches.meta"
    meta = _load_cifar_pickle(path, what, advice)
    names = _str_keys(meta).get("label_names") if isinstance(meta, dict) else None
    if isinstance(names, list):
        names = [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, str) for n in names):
        raise DataFileError(f"{path} is not {what}: expected a dict whose 'label_names' lists the 10 class "
                            f"names; {advice}")
    return names
