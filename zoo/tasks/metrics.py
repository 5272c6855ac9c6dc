"""Metrics shared by the task families: a ratio of two integer counts summed over the epoch
(and over processes), such as token accuracy, exact match or analogy accuracy. Integer states
make the figure exact: the same predictions give the same float64 division on any machine."""
from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

__all__ = ["CountRatio"]


class CountRatio(Metric):
    """``hits / count`` over everything seen since the last reset. A subclass says how a batch
    counts (``counts``: ``(hits, count)`` as ints or integer tensors); with nothing counted the
    figure is ``empty_value`` (0.0 by default; NaN where "no question covered" must show)."""

    full_state_update = False
    higher_is_better = True
    empty_value: float = 0.0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("hits", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def counts(self, preds: Any, target: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def update(self, preds: Any, target: Any = None) -> None:
        hits, count = self.counts(preds, target)
        self.hits += torch.as_tensor(hits, dtype=torch.long, device=self.hits.device)
        self.count += torch.as_tensor(count, dtype=torch.long, device=self.count.device)

    def compute(self) -> torch.Tensor:
        if int(self.count) == 0:
            return torch.tensor(float(self.empty_value), dtype=torch.float64)
        return self.hits.double() / self.count
