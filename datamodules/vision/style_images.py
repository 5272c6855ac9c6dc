"""Images for style transfer: the photographs and textures that ship with scikit-image, your own
files, and a deterministic set of content crops for training a feed-forward style network.

An image is named by a *source* string:

* ``skimage:<name>``: one of the images bundled with ``skimage.data`` (no download), e.g.
  ``skimage:astronaut``, ``skimage:chelsea``, ``skimage:coffee`` (content) or ``skimage:brick``,
  ``skimage:grass``, ``skimage:gravel`` (textures, grey: repeated on three channels);
* anything else: a path to an image file Pillow reads (PNG, JPEG, BMP, TIFF, WebP ...).

:func:`load_image` returns float32 ``(3, H, W)`` in ``[0, 1]``.

:class:`StyleCropsDataModule` cuts square crops out of a few of those images, drawn from a
seeded generator (the same arguments give bit-identical crops), for the style-transfer task.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from datamodules.base import DataFileError, ZooDataModule

# images bundled inside scikit-image (read without a download), colour and grey
SKIMAGE_IMAGES: tuple[str, ...] = (
    "astronaut", "brick", "camera", "cat", "chelsea", "coffee", "coins", "colorwheel", "grass",
    "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text",
)
SKIMAGE_PREFIX = "skimage:"


def skimage_array(name: str):
    """The uint8 array of ``skimage.data.<name>`` ((H, W) grey or (H, W, 3) RGB)."""
    if name not in SKIMAGE_IMAGES:
        import difflib

        close = difflib.get_close_matches(name, SKIMAGE_IMAGES, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown scikit-image image {name!r}.{hint} Bundled images: "
                         f"{', '.join(SKIMAGE_IMAGES)} (write skimage:<name>), or give the path of an image file")
    try:
        import skimage.data
    except ImportError:
        raise ImportError("skimage:<name> images need scikit-image: pip install scikit-image") from None
    return getattr(skimage.data, name)()


def _resize(img: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize (3, H, W) so that its longer side is ``size`` (area-averaged when shrinking)."""
    if size is None:
        return img
    h, w = img.shape[-2:]
    scale = size / max(h, w)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    if new == (h, w):
        return img
    mode = "area" if scale < 1 else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(img[None], size=new, mode=mode, **kwargs)[0].clamp(0, 1)


def load_image(source: str | Path, size: int | None = None) -> torch.Tensor:
    """float32 (3, H, W) in [0, 1] of ``skimage:<name>`` or an image file, its longer side resized
    to ``size`` (None: as it is). A missing file is a :class:`FileNotFoundError`, an unreadable one
    a :class:`DataFileError`, an unknown scikit-image name a :class:`ValueError`; each says what to do."""
    source = str(source)
    if source.startswith(SKIMAGE_PREFIX):
        arr = skimage_array(source[len(SKIMAGE_PREFIX):])
        t = torch.as_tensor(arr.astype("float32") / (255.0 if arr.dtype.kind == "u" else 1.0))
        t = t[None].expand(3, *t.shape) if t.dim() == 2 else t[..., :3].permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
        img = t.contiguous()
    else:
        from datamodules.vision.io import read_image

        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{source}: no such image file; give the path of a PNG or JPEG file, or "
                                    f"skimage:<name> for an image bundled with scikit-image (e.g. skimage:astronaut)")
        img = read_image(path, 3).float() / 255.0
    return _resize(img, size)


def save_image(img: torch.Tensor, path: str | Path) -> Path:
    """Write float (3, H, W) in [0, 1] (clamped) as an 8-bit RGB PNG."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (img.detach().float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(arr, mode="RGB").save(path)
    return path


def random_crops(images: Sequence[torch.Tensor], count: int, size: int, generator: torch.Generator,
                 min_fraction: float = 0.35) -> torch.Tensor:
    """``count`` square crops resized to ``size``: each from an image drawn uniformly, with a side
    drawn uniformly in [min_fraction, 1] of the image's shorter side and a uniform place, and a
    horizontal flip half the time. Returns float32 (count, 3, size, size)."""
    out = torch.empty(count, 3, size, size)
    for i in range(count):
        img = images[int(torch.randint(len(images), (1,), generator=generator))]
        h, w = img.shape[-2:]
        short = min(h, w)
        side = int(round(short * (min_fraction + (1 - min_fraction) * float(torch.rand(1, generator=generator)))))
        side = max(1, min(side, short))
        y = int(torch.randint(h - side + 1, (1,), generator=generator))
        x = int(torch.randint(w - side + 1, (1,), generator=generator))
        crop = img[:, y:y + side, x:x + side]
        crop = F.interpolate(crop[None], size=(size, size), mode="area" if side >= size else "bilinear",
                             **({} if side >= size else {"align_corners": False}))[0]
        if float(torch.rand(1, generator=generator)) < 0.5:
            crop = crop.flip(-1)
        out[i] = crop.clamp(0, 1)
    return out


class StyleCropsDataModule(ZooDataModule):
    """Content images for training a feed-forward style network: square crops of scikit-image's
    photographs, made in ``setup`` from ``split_seed`` (offline, bit-identical for the same
    arguments). The validation and test crops come from photographs the training crops never
    saw (``eval_images``).

    Batch contract: ``(images,)``, images float32 (B, 3, image_size, image_size) in [0, 1] (no
    normalisation: the task normalises for its feature network). Your own file
    (``read_input``): an image, its longer side resized to ``predict_size``.

    Args:
        train_images, eval_images: ``skimage.data`` names of the training and of the held-out photographs.
        image_size: side of a crop, in pixels.
        train_crops, val_crops, test_crops: crops per split.
        source_size: the photographs' longer side before cropping (a crop of a 512-pixel
            photograph resized to 64 would otherwise show only texture).
        augment: a module run on training batches after transfer (e.g. a random flip).
    """

    name = "skimage_crops"

    def __init__(self, train_images: Sequence[str] = ("astronaut", "coffee", "rocket", "hubble_deep_field"),
                 eval_images: Sequence[str] = ("chelsea",), image_size: int = 64, train_crops: int = 96,
                 val_crops: int = 8, test_crops: int = 8, source_size: int = 256, predict_size: int = 256,
                 split_seed: int = 0, batch_size: int = 8, eval_batch_size: int | None = None,
                 num_workers: int = 0, augment: nn.Module | Sequence[nn.Module] | None = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        for n in (*train_images, *eval_images):
            if n not in SKIMAGE_IMAGES:
                skimage_array(n)  # the clear error for an unknown name
        if int(image_size) < 8:
            raise ValueError(f"{self.name}: image_size must be at least 8, got {image_size}")
        self.train_images, self.eval_images = list(train_images), list(eval_images)
        self.image_size, self.source_size, self.predict_size = int(image_size), int(source_size), int(predict_size)
        self.counts = (int(train_crops), int(val_crops), int(test_crops))
        self.split_seed = split_seed
        if isinstance(augment, (list, tuple)):
            augment = nn.Sequential(*augment)
        self.augment = augment

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        g = torch.Generator().manual_seed(self.split_seed)
        train = [load_image(SKIMAGE_PREFIX + n, self.source_size) for n in self.train_images]
        held = [load_image(SKIMAGE_PREFIX + n, self.source_size) for n in self.eval_images]
        n_train, n_val, n_test = self.counts
        self.train_set = TensorDataset(random_crops(train, n_train, self.image_size, g))
        self.val_set = TensorDataset(random_crops(held, n_val, self.image_size, g))
        self.test_set = TensorDataset(random_crops(held, n_test, self.image_size, g))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.augment is not None and self.trainer is not None and self.trainer.training:
            batch = (self.augment(batch[0]),)
        return batch

    def data_facts(self) -> dict:
        return {"in_chans": 3, "image_size": self.image_size, "input_shape": [3, self.image_size, self.image_size]}

    def describe(self) -> dict:
        n_train, n_val, n_test = self.counts
        return {"dataset": self.name, "train_images": self.train_images, "eval_images": self.eval_images,
                "train_size": n_train, "val_size": n_val, "test_size": n_test,
                "input_shape": [3, self.image_size, self.image_size]}

    def read_input(self, path: Path) -> tuple[torch.Tensor, dict]:
        img = load_image(path, self.predict_size)
        return img, {"size": list(img.shape[-2:])}


__all__ = ["SKIMAGE_IMAGES", "DataFileError", "StyleCropsDataModule", "load_image", "random_crops", "save_image",
           "skimage_array"]
