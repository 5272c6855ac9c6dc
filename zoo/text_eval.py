"""Intrinsic evaluation of word vectors on the sets gensim ships in ``gensim/test/test_data``:

* WordSim-353 (Finkelstein et al. 2002; ``wordsim353.tsv``) and SimLex-999 (Hill, Reichart &
  Korhonen 2015; ``simlex999.txt``): word pairs with a human similarity score; the figure is the
  Spearman rank correlation between the pairs' cosine similarities and the human scores, over
  the pairs whose two words are in the vocabulary (the *covered* pairs);
* the Google analogy questions (Mikolov et al. 2013a; ``questions-words.txt``): ``a : b :: c : d``;
  the answer is 3CosAdd's ``argmax_w cos(w, b - a + c)`` over the vocabulary without ``a, b, c``
  (vectors unit-normalised first), scored as accuracy over the covered questions (all four words
  in the vocabulary).

Words are lower-cased (the corpora are). The readers refuse a malformed line with an error that
names the file and the line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = ["EvalFormatError", "WordPair", "Analogy", "read_word_pairs", "read_analogies", "gensim_eval_file",
           "EVAL_FILES", "pair_similarities", "analogy_correct", "spearman", "evaluate_vectors"]

EVAL_FILES = {"ws353": "wordsim353.tsv", "simlex": "simlex999.txt", "analogy": "questions-words.txt"}


class EvalFormatError(ValueError):
    """A line of an evaluation file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class WordPair:
    first: str
    second: str
    score: float


@dataclass(frozen=True)
class Analogy:
    section: str
    a: str
    b: str
    c: str
    d: str


def gensim_eval_file(key: str) -> Path:
    """The path of one of gensim's evaluation files (``ws353``, ``simlex``, ``analogy``)."""
    if key not in EVAL_FILES:
        raise KeyError(f"unknown evaluation set {key!r}; choose from {sorted(EVAL_FILES)}")
    import gensim

    return Path(os.path.dirname(gensim.__file__)) / "test" / "test_data" / EVAL_FILES[key]


def _lines(path: Path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such evaluation file (gensim ships it in gensim/test/test_data; "
                                "reinstall gensim or give the right path)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EvalFormatError(f"{path}: not UTF-8 text") from None
    return enumerate(text.splitlines(), start=1)


def read_word_pairs(path: str | Path) -> list[WordPair]:
    """``word1 <tab> word2 <tab> score`` per line (extra columns ignored; ``#`` lines and blank
    lines skipped), as ``wordsim353.tsv`` and ``simlex999.txt``."""
    pairs = []
    for no, line in _lines(Path(path)):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 3:
            raise EvalFormatError(f"{path}, line {no}: expected 'word1<TAB>word2<TAB>score', got {line!r}")
        try:
            score = float(fields[2])
        except ValueError:
            raise EvalFormatError(f"{path}, line {no}: the score {fields[2]!r} is not a number") from None
        if not fields[0].strip() or not fields[1].strip():
            raise EvalFormatError(f"{path}, line {no}: an empty word in {line!r}")
        pairs.append(WordPair(fields[0].strip().lower(), fields[1].strip().lower(), score))
    if not pairs:
        raise EvalFormatError(f"{path}: no word pairs in the file")
    return pairs


def read_analogies(path: str | Path) -> list[Analogy]:
    """``: section`` header lines, then ``a b c d`` per line (``a : b :: c : d``)."""
    questions, section = [], None
    for no, line in _lines(Path(path)):
        if not line.strip():
            continue
        if line.startswith(":"):
            section = line[1:].strip()
            if not section:
                raise EvalFormatError(f"{path}, line {no}: a section header needs a name after ':'")
            continue
        words = line.split()
        if len(words) != 4:
            raise EvalFormatError(f"{path}, line {no}: expected four words 'a b c d', got {line!r}")
        if section is None:
            raise EvalFormatError(f"{path}, line {no}: a question before any ': section' header")
        questions.append(Analogy(section, *(w.lower() for w in words)))
    if not questions:
        raise EvalFormatError(f"{path}: no analogy questions in the file")
    return questions


def pair_similarities(vectors: torch.Tensor, stoi: Mapping[str, int], pairs: Sequence[WordPair]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities (N,) of the covered pairs and their human scores (N,)."""
    covered = [p for p in pairs if p.first in stoi and p.second in stoi]
    gold = torch.tensor([p.score for p in covered], dtype=torch.float32)
    if not covered:
        return torch.zeros(0), gold
    a = vectors[torch.tensor([stoi[p.first] for p in covered])]
    b = vectors[torch.tensor([stoi[p.second] for p in covered])]
    return F.cosine_similarity(a.float(), b.float(), dim=1), gold


def analogy_correct(vectors: torch.Tensor, stoi: Mapping[str, int], questions: Sequence[Analogy],
                    chunk: int = 2048) -> torch.Tensor:
    """Per covered question (N,), 1.0 where 3CosAdd's answer is ``d``: ``argmax_w cos(w, b - a + c)``
    over unit vectors, ``a``, ``b`` and ``c`` excluded."""
    covered = [q for q in questions if all(w in stoi for w in (q.a, q.b, q.c, q.d))]
    if not covered:
        return torch.zeros(0)
    unit = F.normalize(vectors.detach().float(), dim=1)  # (V, D)
    ids = torch.tensor([[stoi[q.a], stoi[q.b], stoi[q.c], stoi[q.d]] for q in covered])  # (N, 4)
    out = []
    for start in range(0, len(ids), chunk):
        q = ids[start:start + chunk]
        target = unit[q[:, 1]] - unit[q[:, 0]] + unit[q[:, 2]]  # (n, D): b - a + c
        scores = F.normalize(target, dim=1) @ unit.T  # (n, V)
        scores.scatter_(1, q[:, :3], float("-inf"))  # the question's own words are not answers
        out.append((scores.argmax(dim=1) == q[:, 3]).float())
    return torch.cat(out)


def spearman(pred: torch.Tensor, gold: torch.Tensor) -> float:
    """Spearman's rank correlation (torchmetrics'); NaN for fewer than 2 pairs."""
    from torchmetrics.functional import spearman_corrcoef

    if len(pred) < 2:
        return float("nan")
    return float(spearman_corrcoef(pred.float(), gold.float()))


def evaluate_vectors(vectors: torch.Tensor, stoi: Mapping[str, int], sets: Mapping[str, Sequence] | None = None
                     ) -> dict[str, float]:
    """Every figure: ``ws353_spearman``, ``simlex_spearman``, ``analogy_accuracy`` and the
    ``*_covered`` / ``*_total`` counts. ``sets``: the read sets (default: gensim's files)."""
    if sets is None:
        sets = {"ws353": read_word_pairs(gensim_eval_file("ws353")),
                "simlex": read_word_pairs(gensim_eval_file("simlex")),
                "analogy": read_analogies(gensim_eval_file("analogy"))}
    vectors = vectors.detach().float().cpu()
    out: dict[str, float] = {}
    for key in ("ws353", "simlex"):
        pred, gold = pair_similarities(vectors, stoi, sets[key])
        out[f"{key}_spearman"] = spearman(pred, gold)
        out[f"{key}_covered"], out[f"{key}_total"] = len(pred), len(sets[key])
    correct = analogy_correct(vectors, stoi, sets["analogy"])
    out["analogy_accuracy"] = float(correct.mean()) if len(correct) else float("nan")
    out["analogy_covered"], out["analogy_total"] = len(correct), len(sets["analogy"])
    return out
