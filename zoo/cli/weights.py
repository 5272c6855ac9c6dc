"""``zoo-weights``: list, show, verify and publish the zoo's weights.

    zoo-weights                                  # every published weight, with its test metric
    zoo-weights show lenet5.mnist5k              # the whole card
    zoo-weights verify                           # check every file's size and sha256
    zoo-weights export reports/runs/lenet5_mnist5k/seed0 --tag mnist5k   # its best checkpoint
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from zoo.weights import PACKAGE_DIR, WeightsError, export_run, list_weights, locate, weight_card


def _task_path(target: str) -> str:
    """``zoo.tasks.ClassificationTask`` (a config's short path) -> the class's full path."""
    from hydra.utils import get_class

    try:
        cls = get_class(target)
    except Exception:  # an unknown task: the listing shows no figure rather than failing
        return target
    return f"{cls.__module__}.{cls.__qualname__}"


def _list(pattern: str) -> int:
    from zoo.reporting.report import primary_figure

    names = list_weights(pattern)
    if not names:
        print(f"no published weights match {pattern!r}", file=sys.stderr)
        return 1
    rows = []
    for n in names:
        c = weight_card(n)
        task = c.config.get("task", {}).get("_target_", "")
        figure = primary_figure({"task_class": _task_path(task), "task": task.rsplit(".", 1)[-1],
                                 "test": c.metrics})
        rows.append([n, c.dataset, figure or "—", str(c.num_classes),
                     f"{c.size / 1e6:.2f}", c.sha256[:12], c.license])
    headers = ["name", "dataset", "primary test figure", "classes", "MB", "sha256", "license"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-weights", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd")
    ls = sub.add_parser("list", help="list published weights")
    ls.add_argument("pattern", nargs="?", default="*")
    show = sub.add_parser("show", help="print a weight's card")
    show.add_argument("name")
    ver = sub.add_parser("verify", help="check size and sha256 of weight files")
    ver.add_argument("pattern", nargs="?", default="*")
    ex = sub.add_parser("export", help="publish a run's checkpoint as safetensors with its card")
    ex.add_argument("run_dir", help="the recorded run folder (holds metrics.json)")
    ex.add_argument("ckpt_path", nargs="?", default=None,
                    help="the checkpoint of that run to publish (default: its best checkpoint, as recorded)")
    ex.add_argument("--tag", required=True)
    ex.add_argument("--out", default=str(PACKAGE_DIR))
    ex.add_argument("--license", default="Apache-2.0")
    ex.add_argument("--url", action="append", default=[], help="where users who are online can fetch it")
    args = p.parse_args(argv)
    try:
        if args.cmd in (None, "list"):
            return _list(getattr(args, "pattern", "*"))
        if args.cmd == "show":
            card = weight_card(args.name)
            print(json.dumps({**asdict(card), "reproducibility": card.reproducibility()}, indent=2))
            return 0
        if args.cmd == "verify":
            names = list_weights(args.pattern)
            for n in names:
                print(f"{n}: {locate(weight_card(n), download=False)} ok")
            print(f"{len(names)} weight file(s) verified")
            return 0
        ckpt = args.ckpt_path or json.loads((Path(args.run_dir) / "metrics.json").read_text())["best_checkpoint"]
        if not ckpt or not Path(ckpt).is_file():
            raise FileNotFoundError(f"checkpoint {ckpt!r} not found: a recorded run keeps no checkpoint (its "
                                    "folder names it <run>/checkpoints/...); give the checkpoint the run wrote "
                                    "under outputs/ as the second argument")
        card = export_run(Path(args.run_dir), Path(ckpt), args.tag, Path(args.out),
                          args.license, args.url)
        print(f"published {card.name}: {Path(args.out) / card.file} ({card.size:,} bytes, sha256 {card.sha256})")
        return 0
    except (WeightsError, KeyError, FileNotFoundError, ValueError) as err:
        print(f"zoo-weights: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
