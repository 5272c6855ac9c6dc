"""Decoding a sequence-to-sequence net: greedy search and beam search, for a batch of sources.

Both work with any net of the zoo's seq2seq contract (``encode``, ``decode``, ``select``; see
``zoo.models.seq2seq``): each step re-runs ``decode`` on the whole prefix and reads the last
position's logits -- O(T^2) work, but exact and simple for the short sequences here.

Beam search keeps the ``B`` best prefixes by summed log-probability; a hypothesis that emits
``</s>`` leaves the beam for the finished pool, and the answer is the finished hypothesis with
the best length-normalised score ``log P(y) / |y|^alpha`` (Wu et al. 2016, "Google's Neural
Machine Translation System", section 7, in the plain form ``|y|^alpha``; ``|y|`` counts the
generated tokens with the end token). ``alpha = 0`` ranks by probability alone, which favours
short outputs; ``alpha = 1`` ranks by the mean log-probability per token. The search of a
source stops when ``B`` hypotheses have finished and no live prefix can still beat the worst of
them (log-probabilities only fall as a prefix grows), or at ``max_len`` tokens, where unfinished
prefixes join the pool as they are.

Outputs are token ids without the start token, padded after the end token with ``pad_idx``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["greedy_decode", "beam_search", "Hypotheses", "length_normalized"]


@dataclass
class Hypotheses:
    """Decoded sequences: ``tokens`` (N, L) int64 (no ``<s>``; ``</s>`` included when emitted,
    then ``pad_idx``), ``lengths`` (N,) tokens generated (``</s>`` counted), ``scores`` (N,)
    summed log-probabilities, ``normalized`` (N,) the scores ranked by (beam search)."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    scores: torch.Tensor
    normalized: torch.Tensor


def length_normalized(score: float | torch.Tensor, length: int | torch.Tensor, alpha: float):
    """``score / length^alpha`` (Wu et al. 2016, plain form)."""
    if isinstance(length, torch.Tensor):
        return score / length.clamp(min=1).to(torch.float32) ** alpha
    return score / max(1, int(length)) ** alpha


def _check(max_len: int, bos_idx: int, eos_idx: int) -> None:
    if int(max_len) < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len}")
    if bos_idx == eos_idx:
        raise ValueError(f"the start and end ids must differ, got {bos_idx} for both")


@torch.no_grad()
def greedy_decode(net, src: torch.Tensor, src_mask: torch.Tensor, bos_idx: int, eos_idx: int, max_len: int,
                  pad_idx: int = 0, memory=None) -> Hypotheses:
    """The most likely next token at every step, until ``</s>`` or ``max_len`` tokens.

    src (N, S), src_mask (N, S) -> :class:`Hypotheses` with L <= max_len."""
    _check(max_len, bos_idx, eos_idx)
    n = src.shape[0]
    memory = net.encode(src, src_mask) if memory is None else memory
    prefix = torch.full((n, 1), bos_idx, dtype=torch.long, device=src.device)  # (N, 1)
    done = torch.zeros(n, dtype=torch.bool, device=src.device)
    lengths = torch.zeros(n, dtype=torch.long, device=src.device)
    scores = torch.zeros(n, dtype=torch.float32, device=src.device)
    for _ in range(int(max_len)):
        logp = F.log_softmax(net.decode(memory, prefix)[:, -1].float(), dim=-1)  # (N, V)
        best, token = logp.max(-1)  # (N,)
        token = token.masked_fill(done, pad_idx)
        scores = scores + best.masked_fill(done, 0.0)
        lengths = lengths + (~done).long()
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        done = done | (token == eos_idx)
        if bool(done.all()):
            break
    return Hypotheses(prefix[:, 1:], lengths, scores, scores.clone())


@torch.no_grad()
def beam_search(net, src: torch.Tensor, src_mask: torch.Tensor, bos_idx: int, eos_idx: int, max_len: int,
                beam_width: int = 4, alpha: float = 0.0, pad_idx: int = 0, memory=None) -> Hypotheses:
    """The best finished hypothesis of a beam search of width ``beam_width`` per source, ranked
    by ``score / length^alpha`` (see the module docstring). ``beam_width=1`` is greedy search.

    src (N, S), src_mask (N, S) -> :class:`Hypotheses` of the N best, with L <= max_len."""
    _check(max_len, bos_idx, eos_idx)
    k = int(beam_width)
    if k < 1:
        raise ValueError(f"beam_width must be a positive integer, got {beam_width}")
    if alpha < 0:
        raise ValueError(f"alpha (length normalization) must be >= 0, got {alpha}")
    n, device = src.shape[0], src.device
    memory = net.encode(src, src_mask) if memory is None else memory
    # every source's memory repeated for its K beams: row n * K + j is beam j of source n
    memory = net.select(memory, torch.arange(n, device=device).repeat_interleave(k))
    prefix = torch.full((n * k, 1), bos_idx, dtype=torch.long, device=device)  # (N*K, t)
    beam_scores = torch.zeros(n, k, device=device)
    beam_scores[:, 1:] = float("-inf")  # at first the K beams are the same prefix: keep one
    finished: list[list[tuple[float, float, list[int]]]] = [[] for _ in range(n)]  # (normalized, score, ids)
    open_ = [True] * n
    for step in range(1, int(max_len) + 1):
        logp = F.log_softmax(net.decode(memory, prefix)[:, -1].float(), dim=-1)  # (N*K, V)
        v = logp.shape[-1]
        cand = (beam_scores.view(n * k, 1) + logp).view(n, k * v)  # (N, K*V)
        top_scores, top_ids = cand.topk(min(2 * k, k * v), dim=-1)  # (N, 2K): enough for K live ones
        beam_of, token_of = top_ids // v, top_ids % v  # (N, 2K)
        new_rows = torch.zeros(n, k, dtype=torch.long, device=device)
        new_tokens = torch.full((n, k), pad_idx, dtype=torch.long, device=device)
        new_scores = torch.full((n, k), float("-inf"), device=device)
        ts, bs, tk = top_scores.tolist(), beam_of.tolist(), token_of.tolist()
        prefixes = prefix.tolist() if bool(any(open_)) else None
        for i in range(n):
            if not open_[i]:
                continue
            live = 0
            for rank, (score, beam, token) in enumerate(zip(ts[i], bs[i], tk[i])):
                if score == float("-inf"):
                    break
                if token == eos_idx:
                    if rank < k:  # an end among the K best candidates of this step finishes a hypothesis
                        ids = prefixes[i * k + beam][1:] + [eos_idx]
                        finished[i].append((length_normalized(score, step, alpha), score, ids))
                    continue
                new_rows[i, live], new_tokens[i, live], new_scores[i, live] = i * k + beam, token, score
                live += 1
                if live == k:
                    break
            # done when K hypotheses have finished and no live prefix can still beat the worst of
            # them: a prefix's score only falls, and its normalised score is at best score / L^a
            # at the longest length L = max_len it may reach (or its current one when alpha = 0)
            if len(finished[i]) >= k:
                worst = sorted(f[0] for f in finished[i])[-k]
                best_live = max(new_scores[i].tolist())
                reach = int(max_len) if best_live < 0 else step
                if best_live == float("-inf") or length_normalized(best_live, reach, alpha) <= worst:
                    open_[i] = False
        if not any(open_):
            break
        prefix = torch.cat([prefix.index_select(0, new_rows.view(-1)), new_tokens.view(-1, 1)], dim=1)
        memory = net.select(memory, new_rows.view(-1))
        beam_scores = new_scores
    else:  # max_len reached: the live prefixes of open sources join their pools unfinished
        prefixes = prefix.tolist()
        scores = beam_scores.tolist()
        for i in range(n):
            if open_[i]:
                for j in range(k):
                    if scores[i][j] != float("-inf"):
                        ids = prefixes[i * k + j][1:]
                        finished[i].append((length_normalized(scores[i][j], len(ids), alpha), scores[i][j], ids))
    best = [max(pool, key=lambda f: f[0]) for pool in finished]
    width = max(len(b[2]) for b in best)
    tokens = torch.full((n, width), pad_idx, dtype=torch.long, device=device)
    for i, (_, _, ids) in enumerate(best):
        tokens[i, :len(ids)] = torch.tensor(ids, dtype=torch.long, device=device)
    return Hypotheses(tokens, torch.tensor([len(b[2]) for b in best], device=device),
                      torch.tensor([b[1] for b in best], device=device),
                      torch.tensor([b[0] for b in best], device=device))
