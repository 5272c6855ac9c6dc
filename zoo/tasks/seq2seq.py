"""Sequence to sequence (course 5 of the notes: machine translation, date normalisation): an
encoder-decoder net is trained with the teacher-forced cross-entropy of the target tokens
(optionally label-smoothed, Szegedy et al. 2016) and scored on what it *decodes*.

Any net of the zoo's seq2seq contract works (``zoo.models.seq2seq``, ``zoo.models.transformer``):
``encode``, ``decode``, ``select`` and ``attention``. Validation and test decode each source
with greedy search or beam search (``decode``, ``beam_width``, ``alpha``; ``zoo.ops.decoding``)
up to ``max_tgt_len + max_len_extra`` tokens, and score the detokenized text:

* ``exact_match``: the share of outputs identical to their reference (a ratio of counts);
* ``bleu``: corpus BLEU (Papineni et al. 2002) on white-space tokens (characters when
  ``bleu_tokenize`` is ``char``), torchmetrics' ``BLEUScore``;
* ``sacrebleu``: corpus BLEU as ``sacrebleu`` computes it (Post 2018; torchmetrics'
  ``SacreBLEUScore``, tokenizer ``bleu_tokenize``); the test run stores the ``sacrebleu``
  package's signature beside it (``sacrebleu.signature``) and that package's own score on the
  same outputs (``sacrebleu.package_score``), so the figure can be reproduced and compared;
* ``token_acc``: teacher-forced next-token accuracy (also on the training split).

BLEU figures are fractions in [0, 1] in the metrics (x100 in reports). The test run also records
a few example translations with their attention weights (heatmaps in the run folder) and BLEU by
source length (``bleu_by_src_len``: where a net without attention falls behind).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.text import BLEUScore, SacreBLEUScore

from zoo.ops.decoding import Hypotheses, beam_search, greedy_decode
from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask
from zoo.tasks.metrics import CountRatio

__all__ = ["Seq2SeqTask", "detokenize", "TokenAccuracy", "ExactMatch", "CorpusBLEU", "CorpusSacreBLEU",
           "sacrebleu_signature"]

IGNORE_INDEX = -100  # padded targets (the datamodules' convention, torch's default)
END_OF_WORD = "</w>"  # the subword tokenizer's end-of-word suffix (datamodules.text.translation)
DETOK_STYLES = ("chars", "words", "subwords")


def detokenize(tokens: Sequence[str], style: str) -> str:
    """Target tokens as text: ``chars`` joined as they are; ``words`` joined by spaces, hyphens
    glued to both neighbours and ``, . ; : ! ?`` to the word before; ``subwords`` joined, each
    ``</w>`` ending a word."""
    if style == "chars":
        return "".join(tokens)
    if style == "subwords":
        return " ".join("".join(tokens).replace(END_OF_WORD, " ").split())
    if style == "words":
        text = " ".join(tokens)
        text = re.sub(r"\s*-\s*", "-", text)
        return re.sub(r"\s+([,.;:!?])", r"\1", text)
    raise ValueError(f"unknown detokenization style {style!r}: one of {', '.join(DETOK_STYLES)}")


# -- metrics ------------------------------------------------------------------------------------
# Validation and test outputs are per-example records (correct, total, hypothesis, source length)
# with the reference text as target; training outputs are (B, 2) counts (correct, total).
class TokenAccuracy(CountRatio):
    """Teacher-forced next-token accuracy: correct target tokens / target tokens."""

    def counts(self, preds, target):
        if isinstance(preds, torch.Tensor):  # (N, 2) counts
            return preds[:, 0].sum().long(), preds[:, 1].sum().long()
        return sum(int(r[0]) for r in preds), sum(int(r[1]) for r in preds)


class ExactMatch(CountRatio):
    """Outputs identical to their reference / outputs."""

    def counts(self, preds, target):
        return sum(int(r[2] == t) for r, t in zip(preds, target)), len(target)


class CorpusBLEU(BLEUScore):
    """torchmetrics' corpus BLEU fed with (records, reference texts): one reference per output.
    With ``chars`` the tokens are the characters (white space dropped), as SacreBLEU's ``char``
    tokenizer has them: a date is one word, and word 4-grams would score it 0."""

    def __init__(self, chars: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.chars = bool(chars)

    def _tokens(self, text: str) -> str:
        return " ".join(text.replace(" ", "")) if self.chars else text

    def update(self, preds, target) -> None:
        super().update([self._tokens(r[2]) for r in preds], [[self._tokens(t)] for t in target])


class CorpusSacreBLEU(SacreBLEUScore):
    """torchmetrics' SacreBLEU fed with (records, reference texts): one reference per output."""

    def update(self, preds, target) -> None:
        super().update([r[2] for r in preds], [[t] for t in target])


def sacrebleu_signature(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a",
                        lowercase: bool = False) -> tuple[str, float]:
    """The ``sacrebleu`` package's signature of corpus BLEU with the settings the task's
    ``sacrebleu`` metric uses (no smoothing, one reference), and that package's score (0-100)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method="none")
    score = bleu.corpus_score(list(hypotheses), [list(references)]).score
    return str(bleu.get_signature()), float(score)


class Seq2SeqTask(ZooTask):
    """Teacher-forced cross-entropy; decoding, exact match and BLEU on val/test.

    Args:
        net: a seq2seq net (``encode``, ``decode``, ``select``, ``attention``; forward
            ``(src, src_mask, tgt_in) -> (B, T, V)`` logits).
        label_smoothing: of the cross-entropy (0: none; the Transformer recipe uses 0.1).
        src_vocab, tgt_vocab: the tokens by id (data facts): decode outputs, label heatmaps.
        pad_idx, bos_idx, eos_idx, unk_idx: the special ids (data facts).
        tgt_detok: how target tokens join into text (``chars`` | ``words`` | ``subwords``; a data fact).
        max_tgt_len: the longest target of the data in tokens (a data fact); decoding stops after
            ``max_tgt_len + max_len_extra`` tokens.
        decode: ``greedy`` or ``beam`` (validation, test and predictions).
        beam_width, alpha: beam search's width and length normalization ``score / len^alpha``.
        bleu_tokenize: the SacreBLEU tokenizer (``13a``, ``intl``, ``char``, ``none`` ...).
        lowercase_bleu: case-insensitive BLEU.
        num_examples: test examples recorded with their attention weights.
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Sequence to sequence"
    batch_contract = ("dict: src int64 (B, S), src_mask bool (B, S) True = real token, tgt_in int64 (B, T) "
                      "starting with <s>, tgt_out int64 (B, T) ending with </s> (-100 = padding), tgt_text "
                      "(B reference strings); predictions: src, src_mask (and src_text)")
    data_facts_used = ("src_vocab", "tgt_vocab", "pad_idx", "bos_idx", "eos_idx", "unk_idx", "tgt_detok",
                       "max_tgt_len")
    primary_metric = "sacrebleu"
    higher_is_better = True
    exact_metrics = ("exact_match", "token_acc")

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 label_smoothing: float = 0.0, src_vocab: Sequence[str] | None = None,
                 tgt_vocab: Sequence[str] | None = None, pad_idx: int = 0, bos_idx: int = 1, eos_idx: int = 2,
                 unk_idx: int | None = 3, tgt_detok: str = "words", max_tgt_len: int | None = None,
                 max_len_extra: int = 5, decode: str = "greedy", beam_width: int = 4, alpha: float = 0.6,
                 bleu_tokenize: str = "13a", lowercase_bleu: bool = False, num_examples: int = 4,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if decode not in ("greedy", "beam"):
            raise ValueError(f"decode must be greedy or beam, got {decode!r}")
        if int(beam_width) < 1:
            raise ValueError(f"beam_width must be a positive integer, got {beam_width}")
        if float(alpha) < 0:
            raise ValueError(f"alpha (length normalization) must be >= 0, got {alpha}")
        if tgt_detok not in DETOK_STYLES:
            raise ValueError(f"tgt_detok must be one of {', '.join(DETOK_STYLES)}, got {tgt_detok!r}")
        if max_tgt_len is not None and int(max_tgt_len) < 1:
            raise ValueError(f"max_tgt_len must be a positive integer or null, got {max_tgt_len}")
        self.label_smoothing = float(label_smoothing)
        self.src_vocab = list(src_vocab) if src_vocab is not None else None
        self.tgt_vocab = list(tgt_vocab) if tgt_vocab is not None else None
        self.pad_idx, self.bos_idx, self.eos_idx, self.unk_idx = pad_idx, bos_idx, eos_idx, unk_idx
        self.tgt_detok = tgt_detok
        self.max_decode_len = (int(max_tgt_len) if max_tgt_len else 45) + int(max_len_extra) + 1  # + </s>
        self.decode_mode, self.beam_width, self.alpha = decode, int(beam_width), float(alpha)
        self.bleu_tokenize, self.lowercase_bleu = bleu_tokenize, bool(lowercase_bleu)
        self.num_examples = int(num_examples)
        self._test_records: list[tuple[int, str, str]] = []
        self._examples: list[dict] = []
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    # -- metrics -----------------------------------------------------------------------------------
    def build_metrics(self, prefix: str) -> MetricCollection:
        metrics: dict[str, Metric] = {"token_acc": TokenAccuracy()}
        if prefix != "train/":
            metrics.update(exact_match=ExactMatch(), bleu=CorpusBLEU(chars=self.bleu_tokenize == "char"),
                           sacrebleu=CorpusSacreBLEU(tokenize=self.bleu_tokenize, lowercase=self.lowercase_bleu))
        return MetricCollection(metrics, prefix=prefix, compute_groups=False)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/sacrebleu", "test SacreBLEU", 100.0), ("test/bleu", "test BLEU", 100.0),
                ("test/exact_match", "test exact match (%)", 100.0)]

    # -- text ----------------------------------------------------------------------------------------
    def ids_to_text(self, ids: Sequence[int]) -> str:
        """Target ids as text, up to ``</s>`` (padding and ``<s>`` left out)."""
        tokens = []
        for i in ids:
            i = int(i)
            if i == self.eos_idx:
                break
            if i in (self.pad_idx, self.bos_idx):
                continue
            tokens.append(self.tgt_vocab[i] if self.tgt_vocab is not None and i < len(self.tgt_vocab) else f"<{i}>")
        return detokenize(tokens, self.tgt_detok)

    def src_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.src_vocab[int(i)] if self.src_vocab is not None else str(int(i)) for i in ids]

    # -- decoding ------------------------------------------------------------------------------------
    def generate(self, src: torch.Tensor, src_mask: torch.Tensor, memory=None, decode: str | None = None,
                 beam_width: int | None = None, alpha: float | None = None,
                 max_len: int | None = None) -> Hypotheses:
        """Decode a batch of sources with the task's settings (or those given)."""
        mode = decode or self.decode_mode
        max_len = int(max_len or self.max_decode_len)
        if mode == "beam":
            return beam_search(self.net, src, src_mask, self.bos_idx, self.eos_idx, max_len,
                               beam_width or self.beam_width, self.alpha if alpha is None else alpha,
                               self.pad_idx, memory=memory)
        return greedy_decode(self.net, src, src_mask, self.bos_idx, self.eos_idx, max_len, self.pad_idx, memory=memory)

    # -- the step ----------------------------------------------------------------------------------
    def shared_step(self, batch, stage: str):
        src, src_mask, tgt_in, tgt_out = batch["src"], batch["src_mask"], batch["tgt_in"], batch["tgt_out"]
        if tgt_in.shape != tgt_out.shape:
            raise ValueError(f"tgt_in {tuple(tgt_in.shape)} and tgt_out {tuple(tgt_out.shape)} must have one shape")
        if src.shape != src_mask.shape:
            raise ValueError(f"src {tuple(src.shape)} and src_mask {tuple(src_mask.shape)} must have one shape")
        memory = self.net.encode(src, src_mask)
        logits = self.net.decode(memory, tgt_in)  # (B, T, V)
        b, t, v = logits.shape
        if self.tgt_vocab is not None and v != len(self.tgt_vocab):
            raise ValueError(f"the net scores {v} target tokens but the target vocabulary has {len(self.tgt_vocab)} "
                             "(model.tgt_vocab_size)")
        loss = F.cross_entropy(logits.reshape(b * t, v), tgt_out.reshape(-1), ignore_index=IGNORE_INDEX,
                               label_smoothing=self.label_smoothing)
        real = tgt_out != IGNORE_INDEX  # (B, T)
        correct = ((logits.detach().argmax(-1) == tgt_out) & real).sum(1)  # (B,)
        counts = torch.stack([correct, real.sum(1)], dim=1)  # (B, 2)
        if stage == "train":
            return loss, counts, counts
        hyps = self.generate(src, src_mask, memory=memory)
        texts = [self.ids_to_text(row) for row in hyps.tokens.tolist()]
        src_lens = src_mask.sum(1).tolist()
        refs = list(batch["tgt_text"]) if "tgt_text" in batch else [self.ids_to_text(r) for r in tgt_in[:, 1:].tolist()]
        records = [(c, n, h, s) for (c, n), h, s in zip(counts.tolist(), texts, src_lens)]
        if stage == "test":
            self._keep_examples(batch, memory, hyps, texts, refs)
        return loss, records, refs

    def on_metrics_flushed(self, stage: str, preds, target) -> None:
        if stage == "test" and not isinstance(preds, torch.Tensor):
            self._test_records.extend((int(r[3]), r[2], t) for r, t in zip(preds, target))

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._test_records, self._examples = [], []

    def _keep_examples(self, batch, memory, hyps: Hypotheses, texts: list[str], refs: list[str]) -> None:
        """The first ``num_examples`` test pairs: source tokens, output tokens, reference and the
        attention weights of the output (None when the net has none)."""
        room = self.num_examples - len(self._examples)
        if room <= 0:
            return
        idx = torch.arange(min(room, hyps.tokens.shape[0]), device=hyps.tokens.device)
        tgt_in = torch.cat([torch.full((len(idx), 1), self.bos_idx, dtype=torch.long, device=idx.device),
                            hyps.tokens.index_select(0, idx)], dim=1)  # (n, 1 + L)
        weights = None
        if hasattr(self.net, "attention"):
            with torch.no_grad():
                weights = self.net.attention(self.net.select(memory, idx), tgt_in)  # (n, 1 + L, S) or None
        for j in range(len(idx)):
            s_len = int(batch["src_mask"][j].sum())
            out_len = int(hyps.lengths[j])
            out_ids = hyps.tokens[j, :out_len].tolist()
            self._examples.append({
                "source": batch["src_text"][j] if "src_text" in batch else None,
                "reference": refs[j], "output": texts[j],
                "src_tokens": self.src_tokens(batch["src"][j, :s_len].tolist()),
                "out_tokens": [self.tgt_vocab[i] if self.tgt_vocab else str(i) for i in out_ids],
                # row t: the weights with which output token t was produced (read at input t)
                "attention": None if weights is None else
                [[round(float(w), 4) for w in row[:s_len]] for row in weights[j, :out_len].tolist()],
            })

    def test_outputs(self) -> dict[str, Any]:
        """``examples`` (translations and attention weights), ``sacrebleu`` (the package's
        signature and score on the test outputs), ``bleu_by_src_len`` and the decoding settings."""
        out: dict[str, Any] = {"decoding": {"mode": self.decode_mode, "beam_width": self.beam_width,
                                            "alpha": self.alpha, "max_len": self.max_decode_len}}
        if self._examples:
            out["examples"] = self._examples
        if self._test_records:
            hyps = [r[1] for r in self._test_records]
            refs = [r[2] for r in self._test_records]
            signature, score = sacrebleu_signature(hyps, refs, self.bleu_tokenize, self.lowercase_bleu)
            out["sacrebleu"] = {"signature": signature, "package_score": round(score, 4)}
            out["bleu_by_src_len"] = self.bleu_by_length(self._test_records)
        return out

    def bleu_by_length(self, records: list[tuple[int, str, str]], bins: int = 8) -> list[dict]:
        """Corpus SacreBLEU (0-100) and exact match of the test outputs grouped by source length
        (tokens), in up to ``bins`` ranges of equal width."""
        from sacrebleu.metrics import BLEU

        lo, hi = min(r[0] for r in records), max(r[0] for r in records)
        width = max(1, math.ceil((hi - lo + 1) / bins))
        out = []
        for start in range(lo, hi + 1, width):
            group = [r for r in records if start <= r[0] < start + width]
            if not group:
                continue
            bleu = BLEU(tokenize=self.bleu_tokenize, lowercase=self.lowercase_bleu, smooth_method="none")
            score = bleu.corpus_score([g[1] for g in group], [[g[2] for g in group]]).score
            out.append({"src_len_min": start, "src_len_max": start + width - 1, "count": len(group),
                        "sacrebleu": round(float(score), 3),
                        "exact_match": round(sum(g[1] == g[2] for g in group) / len(group), 4)})
        return out

    # -- predictions ---------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int = 0):
        """Per source of ``{"src", "src_mask"[, "src_text"]}``: ``(source text, translation, log-probability)``."""
        src, src_mask = batch["src"].to(self.device), batch["src_mask"].to(self.device)
        was_training = self.net.training
        self.net.eval()
        try:
            hyps = self.generate(src, src_mask)
        finally:
            self.net.train(was_training)
        sources = batch.get("src_text") or [" ".join(self.src_tokens(r[m].tolist())) for r, m in zip(src, src_mask)]
        return [(s, self.ids_to_text(row), float(score))
                for s, row, score in zip(sources, hyps.tokens.tolist(), hyps.scores.tolist())]

    def describe_prediction(self, output, top: int = 5) -> dict[str, Any]:
        source, translation, score = output
        return {"source": source, "translation": translation, "log_prob": round(score, 4)}

    @classmethod
    def draw_outputs(cls, record: dict, folder: Path, data_facts: dict) -> list[str]:
        """``attention.png`` (heatmaps of the test examples' attention weights, when the net has
        attention), ``bleu_by_length.png`` and ``translations.txt``."""
        from zoo.reporting import seq2seq_plots

        drawn = []
        examples = record.get("examples") or []
        if examples:
            lines = [f"{e['source']}\t{e['output']}\t{e['reference']}" for e in examples]
            (folder / "translations.txt").write_text("source\toutput\treference\n" + "\n".join(lines) + "\n",
                                                     encoding="utf-8")
            if any(e.get("attention") for e in examples):
                seq2seq_plots.attention_heatmaps(examples, folder / "attention.png",
                                                 title=record.get("experiment", ""))
                drawn.append("attention.png")
        if record.get("bleu_by_src_len"):
            seq2seq_plots.bleu_by_length({record.get("experiment", "run"): record["bleu_by_src_len"]},
                                         folder / "bleu_by_length.png")
            drawn.append("bleu_by_length.png")
        return drawn

    @classmethod
    def draw_family_plots(cls, runs: list[dict], folder: Path) -> list[tuple[str, str]]:
        """Per dataset: ``bleu_by_length_<dataset>.png``, test SacreBLEU by source length with
        one line per experiment (the mean over its recorded seeds, per length range), so nets
        with and without attention are compared on the same test split."""
        from collections import defaultdict

        from zoo.reporting import seq2seq_plots

        by_data: dict[str, dict[str, list[list[dict]]]] = defaultdict(lambda: defaultdict(list))
        for rec in runs:
            if rec.get("bleu_by_src_len"):
                by_data[rec.get("data", {}).get("dataset", "data")][rec["experiment"]].append(rec["bleu_by_src_len"])
        out = []
        for dataset in sorted(by_data):
            series, seeds = {}, set()
            for experiment in sorted(by_data[dataset]):
                per_seed = by_data[dataset][experiment]
                seeds.add(len(per_seed))
                ranges: dict[tuple[int, int], list[dict]] = defaultdict(list)
                for rows in per_seed:
                    for r in rows:
                        ranges[(r["src_len_min"], r["src_len_max"])].append(r)
                series[experiment] = [
                    {"src_len_min": lo, "src_len_max": hi, "count": group[0]["count"],
                     "sacrebleu": sum(g["sacrebleu"] for g in group) / len(group),
                     "exact_match": sum(g["exact_match"] for g in group) / len(group)}
                    for (lo, hi), group in sorted(ranges.items()) if len(group) == len(per_seed)]
            name = f"bleu_by_length_{re.sub(r'[^A-Za-z0-9_.-]+', '_', dataset)}.png"
            n = "/".join(str(k) for k in sorted(seeds))
            title = f"{dataset}: test SacreBLEU by source length (mean of {n} seed{'' if seeds == {1} else 's'})"
            if seq2seq_plots.bleu_by_length(series, folder / name, title=title):
                out.append((name, f"{dataset}: test SacreBLEU by source length, one line per experiment "
                                  f"(mean over its seeds; same test split)"))
        return out
