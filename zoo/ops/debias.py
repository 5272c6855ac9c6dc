"""Hard debiasing of word vectors (Bolukbasi et al. 2016, "Man is to computer programmer as woman
is to homemaker? Debiasing word embeddings", NeurIPS), on unit-normalised vectors:

* the bias direction ``g``: the first principal component of the definitional pairs'
  differences from their centres (``she - (she + he)/2``, ``he - (she + he)/2``, ...), oriented so
  that the first word of each pair projects positively on average;
* **neutralize** a gender-neutral word: ``w <- (w - (w.g) g) / ||w - (w.g) g||``, its projection
  on ``g`` removed;
* **equalize** a pair ``(e1, e2)``: ``mu = (e1 + e2)/2``, ``nu = mu - (mu.g) g``, then
  ``e_i <- nu + sqrt(1 - ||nu||^2) (e_iB - mu_B) / ||e_iB - mu_B||`` with ``x_B = (x.g) g``: both
  words end equidistant from every neutralized word, differing only along ``g``;
* the measured bias: the mean ``|cos(w, g)|`` over a list of gender-neutral words (Bolukbasi et
  al.'s DirectBias with c = 1), before and after.

Pure tensor functions: vectors (V, D) in, vectors out; words are looked up with a ``stoi`` map.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = ["DEFINITIONAL_PAIRS", "EQUALIZE_PAIRS", "NEUTRAL_WORDS", "bias_direction", "neutralize", "equalize",
           "bias_projection", "debias"]

# Bolukbasi et al. 2016's ten definitional pairs (lower-cased)
DEFINITIONAL_PAIRS = (("she", "he"), ("her", "his"), ("woman", "man"), ("mary", "john"), ("herself", "himself"),
                      ("daughter", "son"), ("mother", "father"), ("gal", "guy"), ("girl", "boy"),
                      ("female", "male"))
# pairs that should differ only by gender (a subset of the paper's equalize list)
EQUALIZE_PAIRS = (("woman", "man"), ("women", "men"), ("girl", "boy"), ("girls", "boys"), ("mother", "father"),
                  ("daughter", "son"), ("sister", "brother"), ("wife", "husband"), ("queen", "king"),
                  ("she", "he"), ("her", "his"), ("herself", "himself"), ("female", "male"), ("actress", "actor"),
                  ("mothers", "fathers"), ("daughters", "sons"), ("sisters", "brothers"), ("queens", "kings"))
# gender-neutral words (occupations and the like) on which the bias is measured and removed
NEUTRAL_WORDS = ("doctor", "nurse", "engineer", "teacher", "programmer", "homemaker", "receptionist", "scientist",
                 "lawyer", "architect", "president", "secretary", "professor", "student", "manager", "artist",
                 "writer", "soldier", "officer", "leader", "worker", "author", "designer", "philosopher",
                 "surgeon", "pilot", "chef", "dancer", "singer", "captain", "politician", "minister", "judge",
                 "physician", "mathematician", "economist", "poet", "musician", "farmer", "banker")


def _known(stoi: Mapping[str, int], words: Sequence[str]) -> list[str]:
    return [w for w in words if w in stoi]


def bias_direction(vectors: torch.Tensor, pairs: Sequence[tuple[str, str]], stoi: Mapping[str, int]) -> torch.Tensor:
    """The unit bias direction ``g`` (D,) from the definitional pairs found in ``stoi``."""
    found = [(a, b) for a, b in pairs if a in stoi and b in stoi]
    if not found:
        raise ValueError(f"none of the definitional pairs {list(pairs)[:5]}... is in the vocabulary; "
                         "give pairs of words the vectors know")
    unit = F.normalize(vectors.float(), dim=1)
    rows = []
    for a, b in found:
        va, vb = unit[stoi[a]], unit[stoi[b]]
        center = (va + vb) / 2
        rows += [va - center, vb - center]
    diffs = torch.stack(rows)  # (2P, D)
    # first principal component (the rows are centred pairwise already, as in the paper)
    _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
    g = vh[0]
    # orient: the pairs' first words on the positive side
    if float((diffs[0::2] @ g).mean()) < 0:
        g = -g
    return F.normalize(g, dim=0)


def neutralize(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``(w - (w.g) g)`` renormalised, for vectors ``w`` (..., D) and a unit direction ``g`` (D,)."""
    w = F.normalize(w.float(), dim=-1)
    return F.normalize(w - (w @ g).unsqueeze(-1) * g, dim=-1)


def equalize(e1: torch.Tensor, e2: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bolukbasi et al.'s equalize of one pair of vectors (D,) along the unit direction ``g``."""
    e1, e2 = F.normalize(e1.float(), dim=0), F.normalize(e2.float(), dim=0)
    mu = (e1 + e2) / 2
    mu_b = (mu @ g) * g
    nu = mu - mu_b
    scale = torch.sqrt(torch.clamp(1 - nu @ nu, min=0.0))
    out = []
    for e in (e1, e2):
        e_b = (e @ g) * g
        out.append(nu + scale * F.normalize(e_b - mu_b, dim=0))
    return out[0], out[1]


def bias_projection(vectors: torch.Tensor, g: torch.Tensor, words: Sequence[str], stoi: Mapping[str, int]) -> float:
    """The mean ``|cos(w, g)|`` over the ``words`` found in ``stoi`` (NaN when none is)."""
    found = _known(stoi, words)
    if not found:
        return float("nan")
    w = F.normalize(vectors[torch.tensor([stoi[x] for x in found])].float(), dim=1)
    return float((w @ g).abs().mean())


def debias(vectors: torch.Tensor, stoi: Mapping[str, int],
           definitional: Sequence[tuple[str, str]] = DEFINITIONAL_PAIRS,
           equalize_pairs: Sequence[tuple[str, str]] = EQUALIZE_PAIRS,
           neutral: Sequence[str] = NEUTRAL_WORDS) -> tuple[torch.Tensor, dict]:
    """Neutralize ``neutral`` and equalize ``equalize_pairs`` (those in ``stoi``) along the bias
    direction of ``definitional``. Returns the new unit vectors (V, D) and a report: the bias
    projection before and after, and the words used."""
    g = bias_direction(vectors, definitional, stoi)
    out = F.normalize(vectors.detach().float().clone(), dim=1)
    neutral_found = _known(stoi, neutral)
    before = bias_projection(out, g, neutral_found, stoi)
    if neutral_found:
        idx = torch.tensor([stoi[w] for w in neutral_found])
        out[idx] = neutralize(out[idx], g)
    pairs = [(a, b) for a, b in equalize_pairs if a in stoi and b in stoi]
    for a, b in pairs:
        out[stoi[a]], out[stoi[b]] = equalize(out[stoi[a]], out[stoi[b]], g)
    after = bias_projection(out, g, neutral_found, stoi)
    return out, {"bias_before": before, "bias_after": after, "neutral_words": neutral_found,
                 "equalized_pairs": [list(p) for p in pairs],
                 "definitional_pairs": [list(p) for p in definitional if p[0] in stoi and p[1] in stoi]}
