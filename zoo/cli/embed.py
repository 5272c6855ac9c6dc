"""``zoo-embed``: query the word vectors of a trained embedding checkpoint.

    zoo-embed RUN_OR_CKPT neighbors king -k 10        # nearest words by cosine similarity
    zoo-embed RUN_OR_CKPT analogy man king woman      # man : king :: woman : ?  (3CosAdd)
    zoo-embed RUN_OR_CKPT debias                      # neutralize + equalize, bias before/after
    zoo-embed RUN_OR_CKPT evaluate                    # WordSim-353, SimLex-999, analogies

``RUN_OR_CKPT`` is a checkpoint written by ``zoo-train`` (``experiment=word2vec_enwiki`` or
``glove_enwiki``), or a run folder (its ``checkpoints/best.ckpt``, else ``last.ckpt``). The
vectors are the net's ``vectors()`` (word2vec: input embeddings; GloVe: ``W + W~``), the words the
checkpoint's vocabulary. A word outside it is refused with the closest vocabulary words.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.errors import CheckpointError

__all__ = ["UnknownWordError", "load_vectors", "neighbors", "analogy", "main"]


class UnknownWordError(KeyError):
    """A word outside the vocabulary; the message lists the closest vocabulary words."""

    def __str__(self) -> str:
        return str(self.args[0])


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's ``checkpoints/best.ckpt`` (else ``last.ckpt``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            for cand in (path / "checkpoints" / name, path / name):
                if cand.is_file():
                    return cand
        raise CheckpointError(f"{path}: a folder without checkpoints/best.ckpt or last.ckpt; give a checkpoint "
                              "file or the folder of a zoo-train run")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load_vectors(path: str | Path) -> tuple[torch.Tensor, list[str]]:
    """The word vectors (V, D) and the vocabulary of an embedding checkpoint."""
    from zoo.tasks.base import load_task

    ckpt = resolve_checkpoint(path)
    task = load_task(ckpt)
    vocab = getattr(task, "vocab", None)
    if not hasattr(task.net, "vectors") or vocab is None:
        raise CheckpointError(f"{ckpt}: not a word-embedding checkpoint (its net has no vectors() or its task no "
                              "vocabulary); train one with zoo-train experiment=word2vec_enwiki")
    return task.net.vectors().detach().float(), list(vocab)


def lookup(word: str, stoi: dict[str, int]) -> int:
    w = word.lower()
    if w not in stoi:
        close = difflib.get_close_matches(w, list(stoi), n=8, cutoff=0.6)
        hint = f"; close vocabulary words: {', '.join(close)}" if close else "; no vocabulary word is close to it"
        raise UnknownWordError(f"{word!r} is not in the vocabulary ({len(stoi)} words){hint}")
    return stoi[w]


def neighbors(vectors: torch.Tensor, vocab: list[str], word: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` words closest to ``word`` by cosine similarity (the word itself left out)."""
    stoi = {w: i for i, w in enumerate(vocab)}
    i = lookup(word, stoi)
    unit = F.normalize(vectors, dim=1)
    sims = unit @ unit[i]  # (V,)
    sims[i] = float("-inf")
    top = torch.topk(sims, min(k, len(vocab) - 1))
    return [(vocab[j], float(s)) for s, j in zip(top.values, top.indices)]


def analogy(vectors: torch.Tensor, vocab: list[str], a: str, b: str, c: str, k: int = 5) -> list[tuple[str, float]]:
    """``a : b :: c : ?`` by 3CosAdd: the words closest to ``b - a + c`` (unit vectors), ``a, b, c`` left out."""
    stoi = {w: i for i, w in enumerate(vocab)}
    ia, ib, ic = (lookup(w, stoi) for w in (a, b, c))
    unit = F.normalize(vectors, dim=1)
    sims = unit @ F.normalize(unit[ib] - unit[ia] + unit[ic], dim=0)
    sims[[ia, ib, ic]] = float("-inf")
    top = torch.topk(sims, min(k, len(vocab) - 3))
    return [(vocab[j], float(s)) for s, j in zip(top.values, top.indices)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-embed", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a zoo-train embedding checkpoint (.ckpt) or its run folder")
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("neighbors", help="nearest words by cosine similarity")
    q.add_argument("word")
    q.add_argument("-k", type=int, default=10)
    q = sub.add_parser("analogy", help="a : b :: c : ? (3CosAdd)")
    q.add_argument("a"), q.add_argument("b"), q.add_argument("c")
    q.add_argument("-k", type=int, default=5)
    q = sub.add_parser("debias", help="neutralize and equalize along the gender direction; bias before/after")
    q.add_argument("--words", nargs="*", default=None, help="gender-neutral words to neutralize and measure "
                                                            "(default: zoo.ops.debias.NEUTRAL_WORDS)")
    sub.add_parser("evaluate", help="WordSim-353 and SimLex-999 Spearman, analogy accuracy, coverage")
    for q in sub.choices.values():
        q.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if getattr(args, "k", 1) < 1:
        print("zoo-embed: -k must be a positive integer", file=sys.stderr)
        return 2
    try:
        vectors, vocab = load_vectors(args.checkpoint)
        if args.command == "neighbors":
            result = {"word": args.word, "neighbors": neighbors(vectors, vocab, args.word, args.k)}
            lines = [f"{w:>20}  {s:.4f}" for w, s in result["neighbors"]]
        elif args.command == "analogy":
            result = {"question": [args.a, args.b, args.c], "answers": analogy(vectors, vocab, args.a, args.b,
                                                                                 args.c, args.k)}
            lines = [f"{args.a} : {args.b} :: {args.c} : ?"] + [f"{w:>20}  {s:.4f}" for w, s in result["answers"]]
        elif args.command == "debias":
            from zoo.ops.debias import NEUTRAL_WORDS, debias

            stoi = {w: i for i, w in enumerate(vocab)}
            words = args.words if args.words else NEUTRAL_WORDS
            if args.words:
                for w in args.words:
                    lookup(w, stoi)
            _, result = debias(vectors, stoi, neutral=[w.lower() for w in words])
            lines = [f"bias projection (mean |cos(w, g)| over {len(result['neutral_words'])} neutral words): "
                     f"before {result['bias_before']:.4f}, after {result['bias_after']:.4f}",
                     f"gender direction from {len(result['definitional_pairs'])} definitional pairs; "
                     f"{len(result['equalized_pairs'])} pairs equalized"]
        else:
            from zoo.text_eval import evaluate_vectors

            result = evaluate_vectors(vectors, {w: i for i, w in enumerate(vocab)})
            lines = [f"{k:>20}  {v:.4f}" if isinstance(v, float) else f"{k:>20}  {v}" for k, v in result.items()]
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"zoo-embed: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
