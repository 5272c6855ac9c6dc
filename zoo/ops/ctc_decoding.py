"""Decoding the frame-wise outputs of a net trained with CTC (Graves et al. 2006,
"Connectionist Temporal Classification: Labelling Unsegmented Sequence Data with Recurrent
Neural Networks").

A CTC net gives, for each of ``T`` frames, a distribution over ``C`` classes, one of them the
*blank*. An *alignment* is one class per frame; it maps to a *labelling* by the collapse
``B``: merge runs of equal classes, then drop blanks (``a a - a b b`` -> ``a a b``). The
probability of a labelling is the sum over all its alignments of the product of the frames'
probabilities.

* :func:`greedy_decode` (best path): the most probable class of each frame, collapsed. It finds
  the best *alignment*, which need not collapse to the best *labelling*.
* :func:`prefix_beam_search` (Hannun, Maas, Jurafsky & Ng 2014, "First-Pass Large Vocabulary
  Continuous Speech Recognition using Bi-Directional Recurrent DNNs", arXiv:1408.2873, Algorithm
  1, without a language model): keeps the ``beam_width`` best *prefixes* (labellings so far),
  each with two probabilities, of all alignments of the frames so far that collapse to it and end
  in a blank (``p_b``) or in its last label (``p_nb``). Extending prefix ``l`` by class ``c`` at
  frame ``t``, with ``y = p_t(c)``::

      c blank:             p_b(l)      += (p_b(l) + p_nb(l)) y       (stays l)
      c == last(l):        p_nb(l)     += p_nb(l) y                  (a repeat collapses: stays l)
                           p_nb(l + c) += p_b(l) y                   (a blank in between: a new c)
      c != last(l):        p_nb(l + c) += (p_b(l) + p_nb(l)) y

  (right-hand sides use the previous frame's values). A prefix's score is ``p_b + p_nb``: the
  summed probability of its alignments, exact as long as no contributing prefix left the beam.
  With a beam as wide as the number of prefixes, the search is exact.

Everything works in log space. ``zoo.ops`` imports nothing of the zoo.
"""
from __future__ import annotations

from typing import Sequence

import math

import numpy as np
import torch

__all__ = ["collapse", "greedy_decode", "prefix_beam_search", "beam_decode", "labelling_log_prob"]

NEG_INF = -math.inf


def _logaddexp(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` of two Python floats (``numpy.logaddexp`` costs far more per scalar)."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


def collapse(path: Sequence[int], blank: int = 0) -> list[int]:
    """The CTC collapse ``B``: merge runs of equal classes, then drop blanks."""
    out: list[int] = []
    prev = None
    for c in path:
        c = int(c)
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return out


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None,
                  blank: int = 0) -> list[list[int]]:
    """Best-path decoding of a batch: ``log_probs`` (B, T, C) (or probabilities, or logits: only
    the argmax matters), ``lengths`` (B,) valid frames of each (default: all T) -> B labellings."""
    if log_probs.dim() != 3:
        raise ValueError(f"expected (B, T, C) frame scores, got shape {tuple(log_probs.shape)}")
    best = log_probs.argmax(-1).cpu()  # (B, T)
    n, t = best.shape
    lens = [t] * n if lengths is None else [int(x) for x in (lengths.tolist() if torch.is_tensor(lengths) else lengths)]
    # merge runs and drop blanks, vectorised over the batch: keep frame t when it differs from t-1
    keep = torch.ones_like(best, dtype=torch.bool)
    keep[:, 1:] = best[:, 1:] != best[:, :-1]
    keep &= best != blank
    return [best[i, : lens[i]][keep[i, : lens[i]]].tolist() for i in range(n)]


def prefix_beam_search(log_probs: np.ndarray | torch.Tensor, beam_width: int = 8, blank: int = 0,
                       prune: float | None = None) -> list[tuple[tuple[int, ...], float]]:
    """CTC prefix beam search of one utterance (module docstring).

    Args:
        log_probs: (T, C) log-probabilities of the valid frames (log-softmax outputs).
        beam_width: prefixes kept after each frame.
        blank: the blank's class.
        prune: only classes with a log-probability above ``prune`` extend prefixes at a frame
            (the blank always does); ``None``: every class.

    Returns:
        The kept labellings, best first, each with its log-probability (the log of the summed
        probabilities of its alignments that stayed in the beam).
    """
    lp = log_probs.detach().cpu().double().numpy() if torch.is_tensor(log_probs) else np.asarray(log_probs, np.float64)
    if lp.ndim != 2:
        raise ValueError(f"expected (T, C) log-probabilities of one utterance, got shape {lp.shape}")
    if int(beam_width) < 1:
        raise ValueError(f"beam_width must be a positive integer, got {beam_width}")
    num_classes = lp.shape[1]
    if not 0 <= blank < num_classes:
        raise ValueError(f"blank={blank} is not one of the {num_classes} classes")
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # prefix -> (log p_b, log p_nb)
    for t in range(lp.shape[0]):
        frame = lp[t].tolist()
        classes = range(num_classes) if prune is None else \
            sorted(set(np.nonzero(lp[t] > prune)[0].tolist()) | {blank})
        nxt: dict[tuple[int, ...], list[float]] = {}

        def slot(prefix):
            s = nxt.get(prefix)
            if s is None:
                s = nxt[prefix] = [NEG_INF, NEG_INF]
            return s

        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            last = prefix[-1] if prefix else None
            for c in classes:
                y = frame[c]
                if c == blank:
                    s = slot(prefix)
                    s[0] = _logaddexp(s[0], total + y)
                    continue
                ext = slot(prefix + (c,))
                if c == last:
                    ext[1] = _logaddexp(ext[1], pb + y)  # needs a blank between the two c's
                    s = slot(prefix)
                    s[1] = _logaddexp(s[1], pnb + y)  # a repeat collapses into the same prefix
                else:
                    ext[1] = _logaddexp(ext[1], total + y)
        scored = [(_logaddexp(*v), p, v) for p, v in nxt.items()]
        scored = sorted((x for x in scored if x[0] > NEG_INF), key=lambda x: x[0], reverse=True)  # none impossible
        beams = {p: (v[0], v[1]) for _, p, v in scored[: int(beam_width)]} or {(): (NEG_INF, NEG_INF)}
    out = [(p, float(_logaddexp(pb, pnb))) for p, (pb, pnb) in beams.items()]
    return sorted(out, key=lambda x: x[1], reverse=True)


def beam_decode(log_probs: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None,
                beam_width: int = 8, blank: int = 0, prune: float | None = None) -> list[list[int]]:
    """:func:`prefix_beam_search` over a batch: ``log_probs`` (B, T, C) log-softmax outputs,
    ``lengths`` (B,) valid frames -> B best labellings."""
    if log_probs.dim() != 3:
        raise ValueError(f"expected (B, T, C) log-probabilities, got shape {tuple(log_probs.shape)}")
    lp = log_probs.detach().cpu().double().numpy()
    n, t, _ = lp.shape
    lens = [t] * n if lengths is None else [int(x) for x in (lengths.tolist() if torch.is_tensor(lengths) else lengths)]
    return [list(prefix_beam_search(lp[i, : lens[i]], beam_width, blank, prune)[0][0]) for i in range(n)]


def labelling_log_prob(log_probs: np.ndarray | torch.Tensor, labels: Sequence[int], blank: int = 0) -> float:
    """``log p(labels | x)``: the CTC forward recursion (Graves et al. 2006, eq. 6-8) over the
    blank-extended labelling ``- l1 - l2 - ... -``; the reference against which a decoder's
    scores are checked."""
    lp = log_probs.detach().cpu().double().numpy() if torch.is_tensor(log_probs) else np.asarray(log_probs, np.float64)
    ext = [blank]
    for c in labels:
        ext += [int(c), blank]
    s_len = len(ext)
    alpha = np.full(s_len, NEG_INF)
    alpha[0] = lp[0, blank]
    if s_len > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, lp.shape[0]):
        new = np.full(s_len, NEG_INF)
        for s in range(s_len):
            a = alpha[s]
            if s >= 1:
                a = _logaddexp(a, alpha[s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                a = _logaddexp(a, alpha[s - 2])  # skip the blank between two different labels
            new[s] = a + lp[t, ext[s]]
        alpha = new
    return float(_logaddexp(alpha[-1], alpha[-2]) if s_len > 1 else alpha[-1])
