"""``zoo-translate``: translate lines with a trained sequence-to-sequence checkpoint.

    zoo-translate outputs/date_attention_lstm/<time>/checkpoints/best.ckpt dates.txt
    echo "jeudi 4 mars 2021" | zoo-translate best.ckpt --beam 4 --alpha 0.6
    zoo-translate best.ckpt sources.txt --greedy --json
    zoo-translate attention_seq2seq.faker_dates dates.txt      # a published weight, by name

Each non-empty line of the file (or of standard input, with no file or ``-``) is one source;
the translations are printed one per line, in order. The checkpoint rebuilds its net and task
(``zoo.tasks.load_task``); the datamodule it was trained with (from the checkpoint's config)
turns each line into tokens exactly as in training, so a line with a character or word the
training data never had is refused with an error naming the line. ``--beam B`` decodes with beam
search of width B and length normalization ``--alpha`` (default: the run's own settings).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable


def load_translator(ckpt: str):
    """(task, datamodule) of a checkpoint written by ``zoo-train`` for a seq2seq task, or of a
    published weight (``<architecture>.<tag>``, hash-verified; ``zoo-weights list``)."""
    from hydra.utils import instantiate

    from zoo.cli.eval import task_from_source

    path = Path(ckpt)
    task = task_from_source(ckpt)
    if not hasattr(task, "generate") or not hasattr(task.net, "encode"):
        raise ValueError(f"{path} is a {type(task).__name__} checkpoint, not a sequence-to-sequence model")
    data_cfg = dict((task.run_config or {}).get("data") or {})
    if not data_cfg:
        raise ValueError(f"{path} stores no data config: it cannot say how to read sources")
    data_cfg.pop("augment", None)
    dm = instantiate(data_cfg, _convert_="all")
    dm.setup("predict")
    if task.src_vocab is not None and list(dm.src_vocab.itos) != list(task.src_vocab):
        raise ValueError(f"{path}: the data config rebuilds a source vocabulary that differs from the one the "
                         "model was trained with (was the data changed?)")
    return task.eval(), dm


def read_lines(source: str | None) -> tuple[str, list[tuple[int, str]]]:
    """(name, [(line number, text)]) of the non-empty lines of a file, or of stdin (None or '-')."""
    if source in (None, "-"):
        name, text = "<stdin>", sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (give a text file with one source per line, or - for stdin)")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text") from None
        name = str(path)
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        raise ValueError(f"{name}: no line to translate (the input is empty)")
    return name, lines


def translate(task, dm, lines: Iterable[tuple[int, str]], name: str = "<input>", beam: int | None = None,
              alpha: float | None = None, greedy: bool = False, batch_size: int = 64) -> list[dict]:
    """One record per line: ``{"line", "source", "translation", "log_prob"}``."""
    import torch

    lines = list(lines)
    examples = [dm.encode_source(text, where=f"{name}:{no}") for no, text in lines]
    if beam is not None:
        task.decode_mode, task.beam_width = "beam", int(beam)
    if greedy:
        task.decode_mode = "greedy"
    if alpha is not None:
        task.alpha = float(alpha)
    out = []
    for start in range(0, len(examples), batch_size):
        batch = dm.collate(examples[start:start + batch_size])
        with torch.no_grad():
            results = task.predict_step(batch, 0)
        for (no, _), (source, translation, score) in zip(lines[start:start + batch_size], results):
            out.append({"line": no, "source": source, "translation": translation, "log_prob": round(score, 4)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-translate", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a checkpoint written by zoo-train for a seq2seq experiment (.ckpt), "
                                      "or a published weight by name (zoo-weights list)")
    p.add_argument("input", nargs="?", default=None, help="a text file, one source per line (default: stdin)")
    p.add_argument("--beam", type=int, default=None, help="beam search of this width (default: the run's decoding)")
    p.add_argument("--alpha", type=float, default=None, help="length normalization: score / len^alpha")
    p.add_argument("--greedy", action="store_true", help="greedy decoding")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", action="store_true", help="one JSON record per line, with the log-probability")
    args = p.parse_args(argv)
    if args.beam is not None and args.beam < 1:
        p.error(f"--beam must be a positive integer, got {args.beam}")
    if args.alpha is not None and args.alpha < 0:
        p.error(f"--alpha must be >= 0, got {args.alpha}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be a positive integer, got {args.batch_size}")
    try:
        name, lines = read_lines(args.input)
        task, dm = load_translator(args.checkpoint)
        results = translate(task, dm, lines, name, args.beam, args.alpha, args.greedy, args.batch_size)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"zoo-translate: {err}", file=sys.stderr)
        return 2
    for r in results:
        print(json.dumps(r, ensure_ascii=False) if args.json else r["translation"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
