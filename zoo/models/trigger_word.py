"""The notes' trigger-word detector (Ng, Deep Learning Specialization, course 5 week 3,
"Trigger word detection"; the GRU of Cho et al. 2014):

    spectrogram -> Conv1D(filters, kernel 15, stride 4) -> BN -> ReLU -> dropout
                -> GRU -> dropout -> BN -> GRU -> dropout -> BN -> dropout
                -> time-distributed Dense(1)   (the sigmoid is applied by the task's loss)

The notes use 196 filters and GRUs of 128 units on 101 spectrogram bins; the zoo's CPU recipe
(``conf/experiment/trigger_word_synth.yaml``) takes 64 filters and 64 units on 40 log-mel bands,
about 13x fewer multiply-adds per step, which trains on 2 CPU cores in minutes. The GRUs are
unidirectional, as in the notes: a detection may use only what has been heard so far.
The net returns logits; ``sigmoid(logits)`` is the per-step probability that the trigger word
has just ended.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.registry import register_model

__all__ = ["TriggerWordNet", "trigger_word_gru"]


class TriggerWordNet(nn.Module):
    """Input: (B, frames, n_mels) log-mel. Output: (B, steps) logits with
    ``steps = (frames - kernel_size) // stride + 1``."""

    def __init__(self, n_mels: int = 40, filters: int = 196, kernel_size: int = 15, stride: int = 4,
                 hidden_size: int = 128, dropout: float = 0.2, input_norm: bool = True,
                 example_frames: int = 101):
        super().__init__()
        self.n_mels, self.example_frames = n_mels, example_frames
        # the log-mel's scale is far from unit variance: a BN without affine parameters centres it
        self.input_norm = nn.BatchNorm1d(n_mels, affine=False) if input_norm else nn.Identity()
        self.conv = nn.Conv1d(n_mels, filters, kernel_size, stride)
        self.bn0 = nn.BatchNorm1d(filters)
        self.gru1 = nn.GRU(filters, hidden_size, batch_first=True)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.gru2 = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)

    @staticmethod
    def _bn(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return bn(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C) -> BN over C -> (B, T, C)

    def output_steps(self, frames: int) -> int:
        return (frames - self.conv.kernel_size[0]) // self.conv.stride[0] + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.n_mels:
            raise ValueError(f"expected log-mel features (B, frames, {self.n_mels}), got {tuple(x.shape)}")
        x = self.input_norm(x.transpose(1, 2))  # (B, n_mels, frames)
        x = torch.relu(self.bn0(self.conv(x)))  # (B, filters, T)
        x = self.drop(x.transpose(1, 2))  # (B, T, filters)
        x, _ = self.gru1(x)  # (B, T, H)
        x = self._bn(self.bn1, self.drop(x))
        x, _ = self.gru2(x)  # (B, T, H)
        x = self.drop(self._bn(self.bn2, self.drop(x)))
        return self.head(x).squeeze(-1)  # (B, T) logits

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.example_frames, self.n_mels),)


@register_model(task="trigger_word", paper="Ng, Deep Learning Specialization course 5, 'Trigger word detection' "
                                           "(Conv1D + 2 GRU; Cho et al. 2014 GRU)")
def trigger_word_gru(n_mels: int = 40, filters: int = 196, kernel_size: int = 15, stride: int = 4,
                     hidden_size: int = 128, dropout: float = 0.2, input_norm: bool = True) -> TriggerWordNet:
    """The notes' trigger-word model (published sizes by default)."""
    return TriggerWordNet(n_mels, filters, kernel_size, stride, hidden_size, dropout, input_norm)
