"""An acoustic model for CTC speech recognition (Graves et al. 2006, "Connectionist Temporal
Classification"; the convolution + bidirectional recurrent stack of Deep Speech 2, Amodei et al.
2016, at CPU size; the GRU of Cho et al. 2014):

    log-mel (B, T, n_mels)
      -> Conv1d(n_mels -> channels, kernel k, stride 2) -> BN -> ReLU     (B, channels, T')
      -> Conv1d(channels -> channels, kernel k, stride 1) -> BN -> ReLU   (B, channels, T')
      -> num_layers x bidirectional GRU(hidden_size), dropout between   (B, T', 2 hidden_size)
      -> Linear(2 hidden_size -> num_classes)                           (B, T', num_classes) logits

``T' = (T - 1) // stride + 1`` (convolutions padded by ``k // 2``): the first convolution halves
the frame rate (10 ms -> 20 ms frames at the data's defaults), which halves the recurrent work
and still leaves CTC at least one output frame per character (a spoken digit of ~0.35 s spans
~17 frames for at most 5 letters and a space). Class 0 is the CTC blank by the data's
convention; the net itself does not know which class is which.

Padding: the GRUs run on packed sequences, so the backward direction starts at each
utterance's own last frame, never in the padding; the inputs and the convolutions' outputs
beyond an utterance's length are zeroed, so an utterance's outputs do not depend on the padding.
The net returns logits; the task applies ``log_softmax``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.registry import register_model

__all__ = ["CTCAcousticModel", "ctc_conv_bigru"]


class CTCAcousticModel(nn.Module):
    """Input: ``features`` (B, T, n_mels) and optional ``lengths`` (B,) valid frames (default:
    all T). Output: (B, T', num_classes) logits, ``T' = output_lengths(T)``; frames of an
    utterance beyond ``output_lengths(lengths)`` are padding."""

    def __init__(self, n_mels: int = 40, num_classes: int = 29, channels: int = 128, kernel_size: int = 5,
                 stride: int = 2, hidden_size: int = 128, num_layers: int = 2, dropout: float = 0.1,
                 example_frames: int = 120):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (the convolutions are padded by kernel_size // 2), "
                             f"got {kernel_size}")
        if stride < 1 or num_layers < 1 or num_classes < 2:
            raise ValueError(f"need stride >= 1, num_layers >= 1 and num_classes >= 2 (blank + one label), got "
                             f"stride={stride}, num_layers={num_layers}, num_classes={num_classes}")
        self.n_mels, self.num_classes, self.example_frames = n_mels, num_classes, example_frames
        self.stride = stride
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(n_mels, channels, kernel_size, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.gru = nn.GRU(channels, hidden_size, num_layers, batch_first=True, bidirectional=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_size, num_classes)

    def output_lengths(self, lengths: torch.Tensor | int):
        """Output frames of inputs of ``lengths`` frames: ``(T - 1) // stride + 1`` (kernel k, padding
        k // 2, stride s)."""
        return (lengths - 1) // self.stride + 1

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if features.dim() != 3 or features.shape[-1] != self.n_mels:
            raise ValueError(f"expected log-mel features (B, frames, {self.n_mels}), got {tuple(features.shape)}")
        b, t, _ = features.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.int64, device=features.device)
        out_len = self.output_lengths(lengths.to(features.device))  # (B,)
        in_mask = torch.arange(t, device=features.device)[None] < lengths.to(features.device)[:, None]  # (B, T)
        x = (features * in_mask.unsqueeze(-1)).transpose(1, 2)  # (B, n_mels, T), zero past each length
        x = torch.relu(self.bn1(self.conv1(x)))  # (B, channels, T')
        steps = x.shape[-1]
        mask = (torch.arange(steps, device=x.device)[None] < out_len[:, None]).unsqueeze(1)  # (B, 1, T')
        x = x * mask
        x = torch.relu(self.bn2(self.conv2(x))) * mask  # (B, channels, T')
        x = self.drop(x.transpose(1, 2))  # (B, T', channels)
        packed = pack_padded_sequence(x, out_len.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.gru(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=steps)  # (B, T', 2 hidden)
        return self.head(self.drop(y))  # (B, T', num_classes)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        """Log-mel features (B, example_frames, n_mels) and lengths (B,), the last utterance shorter."""
        lengths = torch.full((batch_size,), self.example_frames, dtype=torch.int64)
        if batch_size > 1:
            lengths[-1] = max(1, self.example_frames * 2 // 3)
        return torch.randn(batch_size, self.example_frames, self.n_mels), lengths


@register_model(task="ctc_speech", paper="Graves et al. 2006 (CTC); Amodei et al. 2016, Deep Speech 2 "
                                          "(conv + bidirectional GRU); Cho et al. 2014 (GRU)")
def ctc_conv_bigru(n_mels: int = 40, num_classes: int = 29, channels: int = 128, kernel_size: int = 5,
                   stride: int = 2, hidden_size: int = 128, num_layers: int = 2,
                   dropout: float = 0.1) -> CTCAcousticModel:
    """Conv front end (time stride 2) + bidirectional GRUs + per-frame classes (blank included)."""
    return CTCAcousticModel(n_mels, num_classes, channels, kernel_size, stride, hidden_size, num_layers, dropout)
