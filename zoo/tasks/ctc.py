"""Speech recognition with Connectionist Temporal Classification (Graves et al. 2006): a net
gives per-frame scores over an alphabet plus a blank (class 0), trained with the CTC loss
(``torch.nn.functional.ctc_loss``: minus the log of the summed probability of every alignment
that collapses to the transcript), and decoded into text by best-path (greedy) decoding or by
CTC prefix beam search (Hannun et al. 2014, no language model; ``zoo.ops.ctc_decoding``).

Metrics (exact ratios of counts, torchmetrics): ``cer``, the character error rate (character
edits -- substitutions, deletions, insertions -- needed to turn the hypothesis into the
reference, over the reference's characters, spaces included), and ``wer``, the word error rate
(the same over words). Both are summed over the whole split before dividing, not averaged per
utterance. Training batches are decoded greedily; validation and test batches with ``decoder``.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.text import CharErrorRate, WordErrorRate

from zoo.ops.ctc_decoding import beam_decode, greedy_decode
from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask

__all__ = ["CTCTask", "min_ctc_frames"]

BLANK = 0


def min_ctc_frames(targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """The fewest frames CTC needs for each padded target (B, S): one per label, plus one blank
    between each pair of equal neighbours (``"ee"`` needs 3 frames)."""
    s = targets.shape[1]
    if s < 2:
        return target_lengths.clone()
    inside = torch.arange(1, s, device=targets.device)[None] < target_lengths[:, None]  # (B, S-1)
    repeats = ((targets[:, 1:] == targets[:, :-1]) & inside).sum(1)
    return target_lengths + repeats


class CTCTask(ZooTask):
    """Speech (or any sequence) to text with the CTC loss.

    Args:
        net: ``(features (B, T, F), lengths (B,)) -> (B, T', C)`` logits, ``C = len(alphabet) + 1``
            (class 0 the blank); a net with ``output_lengths(lengths)`` says which of its ``T'``
            frames are real (``zoo.models.ctc``), otherwise ``T' = T``.
        alphabet: the characters of classes 1..C-1 (a data fact), kept in the checkpoint.
        decoder: ``greedy`` (best path) or ``beam`` (prefix beam search) for validation, test
            and prediction.
        beam_width: prefixes the beam search keeps.
        beam_prune: the beam search extends a prefix only by classes whose probability at the
            frame exceeds this (the blank always): far fewer candidates, the same answers in
            practice; 0: every class.
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Audio: speech recognition (CTC)"
    batch_contract = ("dict: features float32 (B, T, n_mels), lengths int64 (B,), targets int64 (B, S) "
                      "padded with 0 (the blank), target_lengths int64 (B,), text list[str]")
    data_facts_used = ("alphabet",)
    primary_metric = "cer"
    higher_is_better = False
    # edit-distance ratios of a decode that takes an argmax at every frame: a frame within float
    # error of a tie decodes otherwise on another CPU (zoo.reproducibility.DECODE_MATCH)
    decoded_metrics = ("cer", "wer")

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 alphabet: Sequence[str] | None = None, decoder: str = "greedy", beam_width: int = 8,
                 beam_prune: float = 1e-3, gradient_clip_val: float | None = None,
                 gradient_clip_algorithm: str = "norm", accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if decoder not in ("greedy", "beam"):
            raise ValueError(f"task.decoder must be 'greedy' or 'beam', got {decoder!r}")
        if int(beam_width) < 1:
            raise ValueError(f"task.beam_width must be a positive integer, got {beam_width}")
        if not 0 <= float(beam_prune) < 1:
            raise ValueError(f"task.beam_prune is a probability in [0, 1), got {beam_prune}")
        self.alphabet = [str(c) for c in alphabet] if alphabet is not None else None
        if self.alphabet is not None:
            if len(set(self.alphabet)) != len(self.alphabet) or any(len(c) != 1 for c in self.alphabet):
                raise ValueError(f"task.alphabet must be distinct single characters, got {self.alphabet}")
            classes = getattr(net, "num_classes", None)
            if classes is not None and classes != len(self.alphabet) + 1:
                raise ValueError(f"the net scores {classes} classes but the alphabet has {len(self.alphabet)} "
                                 f"characters plus the blank: set model.num_classes={len(self.alphabet) + 1}")
        self.decoder, self.beam_width, self.beam_prune = decoder, int(beam_width), float(beam_prune)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self._examples: list[dict[str, str]] = []
        self.init_metrics()

    def build_metrics(self, prefix: str) -> MetricCollection:
        return MetricCollection({"cer": CharErrorRate(), "wer": WordErrorRate()}, prefix=prefix,
                                compute_groups=False)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/cer", "test CER (%)", 100.0), ("test/wer", "test WER (%)", 100.0)]

    # -- decoding ---------------------------------------------------------------------------------
    def text_of(self, ids: Sequence[int]) -> str:
        if self.alphabet is None:
            return " ".join(str(int(i)) for i in ids)  # no alphabet: class ids as words
        return "".join(self.alphabet[i - 1] for i in ids if 0 < i <= len(self.alphabet))

    def frames_of(self, lengths: torch.Tensor, steps: int) -> torch.Tensor:
        """The net's real output frames for inputs of ``lengths`` frames."""
        fn = getattr(self.net, "output_lengths", None)
        out = fn(lengths) if fn is not None else lengths
        return out.clamp(max=steps)

    def decode(self, log_probs: torch.Tensor, out_lengths: torch.Tensor, decoder: str | None = None) -> list[str]:
        """Texts of a batch of log-probabilities (B, T', C) with ``out_lengths`` (B,) real frames."""
        if (decoder or self.decoder) == "beam":
            prune = None if self.beam_prune <= 0 else float(torch.log(torch.tensor(self.beam_prune)))
            ids = beam_decode(log_probs, out_lengths, self.beam_width, BLANK, prune)
        else:
            ids = greedy_decode(log_probs, out_lengths, BLANK)
        return [self.text_of(i) for i in ids]

    # -- the step ---------------------------------------------------------------------------------
    def shared_step(self, batch, stage: str):
        x, lengths = batch["features"], batch["lengths"]
        targets, target_lengths = batch["targets"], batch["target_lengths"]
        if bool((target_lengths < 1).any()):
            raise ValueError("a transcript in the batch is empty: CTC needs at least one character per utterance")
        logits = self.net(x, lengths)  # (B, T', C)
        log_probs = F.log_softmax(logits.float(), dim=-1)
        out_len = self.frames_of(lengths, log_probs.shape[1])  # (B,)
        need = min_ctc_frames(targets, target_lengths)
        if bool((out_len < need).any()):
            i = int(torch.nonzero(out_len < need)[0])
            raise ValueError(f"utterance {i} of the batch has {int(out_len[i])} output frames but its transcript "
                             f"needs at least {int(need[i])} for CTC: lower model.stride or use shorter transcripts")
        # F.ctc_loss takes (T', B, C); 'mean' divides each utterance's loss by its target length
        loss = F.ctc_loss(log_probs.transpose(0, 1), targets, out_len, target_lengths, blank=BLANK,
                          reduction="mean", zero_infinity=False)
        texts = batch.get("text")
        if texts is None:
            texts = [self.text_of(t[: n].tolist()) for t, n in zip(targets, target_lengths.tolist())]
        hyps = self.decode(log_probs.detach(), out_len, "greedy" if stage == "train" else None)
        if stage == "test" and len(self._examples) < 8:
            pairs = [{"reference": r, "hypothesis": h} for r, h in zip(texts, hyps)]
            self._examples += pairs[: 8 - len(self._examples)]
        return loss, list(hyps), list(texts)

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._examples = []

    def test_outputs(self) -> dict[str, Any]:
        return {"examples": list(self._examples), "decoder": self.decoder}

    # -- prediction (zoo-predict) ---------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int = 0):
        if not isinstance(batch, dict):
            raise ValueError("CTCTask.predict_step takes a batch of the datamodule's collate (a dict with "
                             "features and lengths)")
        x, lengths = batch["features"], batch["lengths"]
        log_probs = F.log_softmax(self.net(x, lengths).float(), dim=-1)
        return self.decode(log_probs, self.frames_of(lengths, log_probs.shape[1]))

    def describe_prediction(self, output, top: int = 5) -> dict[str, Any]:
        return {"transcript": output, "decoder": self.decoder}
