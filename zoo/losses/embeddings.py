"""Losses of the word-embedding objectives (``zoo.tasks.embeddings``).

* Skip-gram with negative sampling (Mikolov et al. 2013, eq. 4):
  ``-log s(u_o . v_c) - sum_k log s(-u_k . v_c)``, ``s`` the logistic sigmoid.
* GloVe's weighted least squares (Pennington et al. 2014, eq. 8-9):
  ``f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2`` with ``f(x) = min(1, (x / x_max)^alpha)``,
  ``x_max = 100``, ``alpha = 3/4``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sgns_loss", "glove_weight", "glove_loss"]


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    if reduction == "none":
        return per_example
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def sgns_loss(scores: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Negative-sampling loss of skip-gram scores (B, 1 + K): column 0 the true context's
    ``u_o . v_c``, columns 1..K the noise words' ``u_k . v_c``."""
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (B, 1 + K) with K >= 1, got {tuple(scores.shape)}")
    # -log s(u_o . v_c) - sum_k log s(-u_k . v_c); logsigmoid is the stable log s
    per_pair = -F.logsigmoid(scores[:, 0]) - F.logsigmoid(-scores[:, 1:]).sum(dim=1)  # (B,)
    return _reduce(per_pair, reduction)


def glove_weight(x: torch.Tensor, x_max: float = 100.0, alpha: float = 0.75) -> torch.Tensor:
    """``f(x) = min(1, (x / x_max)^alpha)``: rare co-occurrences count less, frequent ones are capped."""
    return torch.clamp(x / x_max, max=1.0) ** alpha


def glove_loss(pred: torch.Tensor, x: torch.Tensor, x_max: float = 100.0, alpha: float = 0.75,
               reduction: str = "mean") -> torch.Tensor:
    """``f(X_ij) (pred - log X_ij)^2`` for predictions (B,) and counts ``x`` (B,), all > 0."""
    if pred.shape != x.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and counts {tuple(x.shape)} must have one shape")
    per_entry = glove_weight(x, x_max, alpha) * (pred - torch.log(x)) ** 2  # (B,)
    return _reduce(per_entry, reduction)
