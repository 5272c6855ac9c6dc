"""Multi-label classification: one net names every class present in an image at once.

:class:`MultiLabelCNN` (``multilabel_cnn``) ends in ``num_classes`` independent logits, one
yes/no question per class ("is there a 3?"), instead of one softmax over mutually exclusive
classes: the sigmoid of each logit is that class's probability of being present, and the loss
(binary cross-entropy with logits, applied by the task, not by the net) is the sum of
``num_classes`` binary problems that share one trunk -- multitask learning in its simplest form
(Caruana 1997): the shared features serve every class's question.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ConvBNAct
from zoo.registry import register_model

__all__ = ["MultiLabelCNN", "multilabel_cnn"]


class MultiLabelCNN(nn.Module):
    """CNN trunk (a 3x3 conv-BN-ReLU block and a 2x2 max pooling per width, as in
    ``LocalizationNet``), global average pooling, dropout and a linear head of ``num_classes``
    logits. Global pooling makes the answer independent of where an object is, and lets any input
    size run.

    Input: (B, in_chans, H, W). Output: (B, num_classes) raw logits, one per class (no sigmoid).
    """

    head_name = "head"

    def __init__(self, num_classes: int = 10, in_chans: int = 1, image_size: int = 96,
                 widths: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.0):
        super().__init__()
        if num_classes < 1 or in_chans < 1:
            raise ValueError(f"num_classes and in_chans must be >= 1, got num_classes={num_classes}, "
                             f"in_chans={in_chans}")
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty list of positive channel counts, got widths={list(widths)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")
        self.num_classes, self.in_chans, self.image_size = num_classes, in_chans, image_size
        blocks, c = [], in_chans
        for w in widths:
            blocks += [ConvBNAct(c, w, 3), nn.MaxPool2d(2, ceil_mode=True)]
            c = w
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.image_size, self.image_size),)


@register_model(task="multilabel", paper="Caruana 1997, Multitask learning, Machine Learning 28")
def multilabel_cnn(num_classes: int = 10, in_chans: int = 1, image_size: int = 96,
                   widths: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.0) -> MultiLabelCNN:
    """Every class present at once: ``num_classes`` logits, one sigmoid each (in the loss)."""
    return MultiLabelCNN(num_classes, in_chans, image_size, tuple(widths), dropout)
