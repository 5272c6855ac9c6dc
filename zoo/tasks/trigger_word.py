"""Trigger-word detection (Ng, Deep Learning Specialization, course 5 week 3): a per-step binary
label, 1 for the output steps just after the trigger word ends, trained with the per-step
binary cross-entropy (``BCEWithLogits``: the notes' time-distributed sigmoid and
``binary_crossentropy`` in one stable step).

Metrics (exact ratios of counts):

* ``step_f1`` (and ``step_precision``, ``step_recall``): every output step of every clip is a
  binary decision, ``sigmoid(logit) > threshold``;
* ``event_f1``, ``event_precision``, ``event_recall``: detections against trigger words.

**The event matching rule.** A *true event* is a maximal run of 1s in the labels (one per
trigger word). A *detection* is a maximal run of steps whose probability exceeds ``threshold``,
runs closer than ``merge_gap`` steps joined into one. A detection matches a true event when
their step ranges overlap once the true event is widened by ``tolerance`` steps on each side;
matching is one-to-one, greedy in time order (each true event takes the first unmatched
detection that overlaps it). Matched pairs are true positives, unmatched detections false
positives, unmatched true events false negatives.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection

from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask

__all__ = ["TriggerWordTask", "runs", "match_events", "EventCounts", "StepCounts"]


def runs(active: Sequence[bool] | np.ndarray, merge_gap: int = 0) -> list[tuple[int, int]]:
    """Maximal runs of True as ``[start, end)``; runs separated by fewer than ``merge_gap``
    False steps are joined."""
    a = np.asarray(active, dtype=bool)
    if a.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], a.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    out: list[tuple[int, int]] = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        if out and s - out[-1][1] < merge_gap:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def match_events(detections: list[tuple[int, int]], truths: list[tuple[int, int]],
                 tolerance: int = 0) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` under the module's matching rule."""
    used = [False] * len(detections)
    tp = 0
    for ts, te in truths:
        lo, hi = ts - tolerance, te + tolerance
        for k, (ds, de) in enumerate(detections):
            if not used[k] and ds < hi and de > lo:
                used[k] = True
                tp += 1
                break
    return tp, len(detections) - tp, len(truths) - tp


class _PRF(Metric):
    full_state_update = False
    higher_is_better = True

    def __init__(self, which: str = "f1", **kwargs):
        super().__init__(**kwargs)
        if which not in ("f1", "precision", "recall"):
            raise ValueError(f"which is f1, precision or recall, got {which!r}")
        self.which = which
        for state in ("tp", "fp", "fn"):
            self.add_state(state, torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def compute(self) -> torch.Tensor:
        tp, fp, fn = self.tp.double(), self.fp.double(), self.fn.double()
        num = {"f1": 2 * tp, "precision": tp, "recall": tp}[self.which]
        den = {"f1": 2 * tp + fp + fn, "precision": tp + fp, "recall": tp + fn}[self.which]
        return torch.where(den > 0, num / den.clamp(min=1), torch.ones_like(den))


class StepCounts(_PRF):
    """Per-step precision/recall/F1; ``update(probs (N, T), labels (N, T))``."""

    def __init__(self, which: str = "f1", threshold: float = 0.5, **kwargs):
        super().__init__(which, **kwargs)
        self.threshold = float(threshold)

    def update(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        p, t = probs > self.threshold, labels > 0.5
        self.tp += (p & t).sum()
        self.fp += (p & ~t).sum()
        self.fn += (~p & t).sum()


class EventCounts(_PRF):
    """Event-level precision/recall/F1 (the module's matching rule); ``update(probs, labels)``."""

    def __init__(self, which: str = "f1", threshold: float = 0.5, tolerance: int = 0, merge_gap: int = 0,
                 **kwargs):
        super().__init__(which, **kwargs)
        self.threshold, self.tolerance, self.merge_gap = float(threshold), int(tolerance), int(merge_gap)

    def update(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        p = (probs > self.threshold).cpu().numpy()
        t = (labels > 0.5).cpu().numpy()
        tp = fp = fn = 0
        for pi, ti in zip(p, t):
            a, b, c = match_events(runs(pi, self.merge_gap), runs(ti), self.tolerance)
            tp, fp, fn = tp + a, fp + b, fn + c
        self.tp += tp
        self.fp += fp
        self.fn += fn


class TriggerWordTask(ZooTask):
    """Per-step trigger-word detection.

    Args:
        net: (B, frames, n_mels) -> (B, steps) logits (``zoo.models.trigger_word``).
        threshold: a step is a detection when its probability exceeds it.
        tolerance, merge_gap: the event matching rule's slack (module docstring), in output steps.
        pos_weight: weight of the positive steps in the loss (1: the notes' plain BCE).
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Audio: trigger word detection"
    batch_contract = "dict: features float32 (B, frames, n_mels), labels float32 (B, steps) in {0, 1}"
    primary_metric = "event_f1"
    higher_is_better = True
    exact_metrics = ("event_f1", "event_precision", "event_recall", "step_f1", "step_precision", "step_recall")
    test_pictures = ("trigger_word_probabilities.png",)

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 threshold: float = 0.5, tolerance: int = 2, merge_gap: int = 3, pos_weight: float = 1.0,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if not 0 < threshold < 1:
            raise ValueError(f"task.threshold must lie in (0, 1), got {threshold}")
        if pos_weight <= 0:
            raise ValueError(f"task.pos_weight must be positive, got {pos_weight}")
        self.threshold, self.tolerance, self.merge_gap = float(threshold), int(tolerance), int(merge_gap)
        self.pos_weight = float(pos_weight)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    def build_metrics(self, prefix: str) -> MetricCollection:
        ev = dict(threshold=self.threshold, tolerance=self.tolerance, merge_gap=self.merge_gap)
        return MetricCollection({
            "event_f1": EventCounts("f1", **ev), "event_precision": EventCounts("precision", **ev),
            "event_recall": EventCounts("recall", **ev), "step_f1": StepCounts("f1", self.threshold),
            "step_precision": StepCounts("precision", self.threshold),
            "step_recall": StepCounts("recall", self.threshold)}, prefix=prefix, compute_groups=False)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/event_f1", "test event F1 (%)", 100.0), ("test/event_precision", "event precision (%)", 100.0),
                ("test/event_recall", "event recall (%)", 100.0), ("test/step_f1", "test step F1 (%)", 100.0)]

    def shared_step(self, batch, stage: str):
        x, y = batch["features"], batch["labels"]
        logits = self.net(x)  # (B, steps)
        if logits.shape != y.shape:
            raise ValueError(f"the net gives {tuple(logits.shape)} steps for labels {tuple(y.shape)}: the "
                             "model's kernel_size/stride must be the data's conv_kernel/conv_stride")
        weight = torch.tensor(self.pos_weight, device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=weight)
        probs = torch.sigmoid(logits.detach())
        self.keep_test_examples(stage, probs=probs[:4], labels=y[:4], features=x[:4])
        return loss, probs, y

    def predict_step(self, batch, batch_idx: int = 0):
        x = batch["features"] if isinstance(batch, dict) else batch
        if x.dim() == 2:
            x = x.unsqueeze(0)
        return torch.sigmoid(self.net(x))

    def describe_prediction(self, output, top: int = 5) -> dict[str, Any]:
        probs = output.squeeze(0) if output.dim() > 1 else output
        det = runs((probs > self.threshold).cpu().numpy(), self.merge_gap)
        return {"detections": [{"start_step": s, "end_step": e, "peak": round(float(probs[s:e].max()), 4)}
                               for s, e in det], "steps": int(probs.numel())}

    def draw_test_examples(self, examples: dict, folder) -> None:
        from zoo.reporting.plots import plt  # the plotting primitives' matplotlib (Agg)

        probs, labels, feats = examples["probs"], examples["labels"], examples["features"]
        n = probs.shape[0]
        fig, axes = plt.subplots(n, 1, figsize=(9, 2.2 * n), squeeze=False)
        for i in range(n):
            ax = axes[i, 0]
            ax.imshow(feats[i].T.numpy(), aspect="auto", origin="lower", cmap="magma", alpha=0.6,
                      extent=(0, probs.shape[1], 0, 1))
            ax.plot(labels[i].numpy(), color="tab:green", lw=1.5, label="label")
            ax.plot(probs[i].numpy(), color="white", lw=1.2, label="P(trigger)")
            ax.axhline(self.threshold, color="tab:red", lw=0.8, ls="--")
            ax.set_ylim(0, 1.02)
            ax.set_ylabel(f"clip {i}")
        axes[0, 0].legend(loc="upper right", fontsize=7)
        axes[-1, 0].set_xlabel("output step")
        fig.tight_layout()
        fig.savefig(Path(folder) / self.test_pictures[0], dpi=90)
        plt.close(fig)
