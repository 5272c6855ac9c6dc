"""Reading the user's own image files."""
from __future__ import annotations

from pathlib import Path

import torch


def read_image(path: Path, channels: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(C, H, W) uint8 tensor of the image at ``path``, converted to 1 (grey) or 3 (RGB)
    channels and, when ``size`` = (H, W) is given, resized bilinearly. A missing file or one
    Pillow cannot read is a clear error naming it."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path} is not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP ...): "
                         f"{err.__class__.__name__}") from None
    if size is not None and (im.height, im.width) != tuple(size):
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    return t.view(im.height, im.width, channels).permute(2, 0, 1).contiguous()  # (H, W, C) -> (C, H, W)
