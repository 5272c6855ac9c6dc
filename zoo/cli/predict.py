"""``zoo-predict``: run a published weight, or a checkpoint of your own run, on your own files.

    zoo-predict lenet5.mnist5k digit.png photo_of_a_seven.jpg
    zoo-predict resnet20_cifar.mnist5k *.png --top 3 --json
    zoo-predict outputs/finetune_folder/<time>/checkpoints/best.ckpt new_photo.jpg

What a file becomes, and what is printed, is the task's and its datamodule's business (the task
contract, ``zoo.tasks.base``): the datamodule the model was trained with reads each file
(``read_input``: for images, Pillow -- PNG, JPEG, BMP, GIF, TIFF, WebP ... -- converted to the
data's colour format, resized to its stored size, then padded and normalised exactly as in
training), and the task describes each output (``describe_prediction``: for classification, the
top classes with the run's own class names). The digit datasets are white strokes on black; an
image whose mean brightness is above one half (dark ink on white paper) is inverted first, and
the output says so (``--no-invert`` turns this off).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def _task_and_data(source: str):
    """(task, datamodule) of a published weight's name or a checkpoint file's path."""
    from hydra.utils import instantiate

    from zoo.cli.eval import task_from_source

    task = task_from_source(source)
    data_cfg = dict((task.run_config or {}).get("data") or {})
    if not data_cfg:
        raise ValueError(f"{source} stores no data config: it cannot say how to read your files")
    data_cfg.pop("augment", None)
    return task.eval(), instantiate(data_cfg, _convert_="all")


def predict(source: str, files: list[Path], top: int = 5, invert: bool = True) -> list[dict]:
    """One record per file: its name, how it was read (e.g. ``inverted``), and the task's
    description of the model's output for it."""
    task, dm = _task_and_data(source)
    if not invert and hasattr(dm, "light_on_dark"):
        dm.light_on_dark = False
    examples, notes = [], []
    for f in files:
        example, note = dm.read_input(Path(f))
        examples.append(example)
        notes.append(note)
    batch = dm.collate(examples) if dm.collate is not None else torch.stack(examples)
    with torch.no_grad():
        outputs = task.predict_step(batch, 0)
    return [{"file": str(f), **note, **task.describe_prediction(out, top=top)}
            for f, note, out in zip(files, notes, outputs)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-predict", description=__doc__.splitlines()[0])
    p.add_argument("model", help="a published weight, <architecture>.<tag> (see zoo-weights), or a "
                                 "checkpoint written by zoo-train (a .ckpt file)")
    p.add_argument("inputs", nargs="+", help="your files (images, for the image models)")
    p.add_argument("--top", type=int, default=5, help="how many classes to print per input")
    p.add_argument("--no-invert", action="store_true", help="never invert bright grey images")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        results = predict(args.model, [Path(f) for f in args.inputs], args.top, not args.no_invert)
    except (ValueError, FileNotFoundError, KeyError, NotImplementedError) as err:
        print(f"zoo-predict: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        note = " (inverted: dark on light)" if r.get("inverted") else ""
        print(f"{r['file']}{note}")
        if "top" in r:
            for t in r["top"]:
                print(f"  {t['class']:>12}  {100 * t['probability']:6.2f}%")
        else:
            shown = {k: v for k, v in r.items() if k not in ("file", "inverted")}
            print("  " + json.dumps(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
