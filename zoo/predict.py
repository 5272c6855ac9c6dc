"""``zoo-predict``: run a published weight on your own image files and print the top classes.

    zoo-predict lenet5.mnist5k digit.png photo_of_a_seven.jpg
    zoo-predict resnet20_cifar.mnist5k *.png --top 3 --json

Each image is read with Pillow (PNG, JPEG, BMP, GIF, TIFF, WebP ...), converted to the weight's
colour format (grey for the digit datasets), resized to the dataset's stored size, and then
preprocessed by the very datamodule the weight was trained with (padding, normalisation). The
digit datasets are white strokes on black; an image whose mean brightness is above one half
(dark ink on white paper) is inverted first, and the output says so (``--no-invert`` turns this
off).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def load_image(path: Path, channels: int, size: tuple[int, int], invert: bool) -> tuple[torch.Tensor, bool]:
    """(C, H, W) uint8 tensor of ``path`` in the weight's format; and whether it was inverted."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path} is not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP ...): "
                         f"{err.__class__.__name__}") from None
    im = im.resize((size[1], size[0]), Image.BILINEAR)
    inverted = False
    if invert and channels == 1:
        hist_mean = sum(i * c for i, c in enumerate(im.histogram())) / (im.width * im.height)
        if hist_mean > 127.5:
            im, inverted = ImageOps.invert(im), True
    t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    return t.view(im.height, im.width, channels).permute(2, 0, 1).contiguous(), inverted


def predict(name: str, files: list[Path], top: int = 5, invert: bool = True) -> list[dict]:
    from hydra.utils import instantiate

    from zoo.registry import create_model
    from zoo.weights import weight_card

    card = weight_card(name)
    net = create_model(card.architecture, pretrained=card.tag).eval()
    data_cfg = {k: v for k, v in card.config["data"].items() if k != "augment"}
    dm = instantiate(data_cfg, _convert_="all")
    c, h, w = dm.native_chans, dm.native_size, dm.native_size
    images, flags = [], []
    for f in files:
        img, inv = load_image(Path(f), c, (h, w), invert)
        images.append(img)
        flags.append(inv)
    x = dm.preprocess(torch.stack(images))
    with torch.no_grad():
        logits = net(x)
    names = card.class_names or [str(i) for i in range(card.num_classes)]
    if logits.dim() == 1 or logits.shape[-1] == 1:  # binary head: P(positive class)
        p = torch.sigmoid(logits.reshape(-1, 1))
        probs = torch.cat([1 - p, p], dim=1)
    else:
        probs = torch.softmax(logits, dim=1)
    out = []
    for f, inv, pr in zip(files, flags, probs):
        k = min(top, pr.numel())
        vals, idx = pr.topk(k)
        out.append({"file": str(f), "inverted": inv,
                    "top": [{"class": names[i], "probability": round(float(v), 4)} for v, i in zip(vals, idx.tolist())]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-predict", description=__doc__.splitlines()[0])
    p.add_argument("weights", help="a published weight, <architecture>.<tag> (see zoo-weights)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top", type=int, default=5, help="how many classes to print per image")
    p.add_argument("--no-invert", action="store_true", help="never invert bright grey images")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        results = predict(args.weights, [Path(f) for f in args.images], args.top, not args.no_invert)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"zoo-predict: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        note = " (inverted: dark on light)" if r["inverted"] else ""
        print(f"{r['file']}{note}")
        for t in r["top"]:
            print(f"  {t['class']:>12}  {100 * t['probability']:6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
