"""Siamese networks: one encoder, its weights shared by every input, maps an image to an
embedding ``f(x)`` on the unit sphere, and the distance between two embeddings says whether two
images show the same identity (Bromley et al. 1993; Taigman et al. 2014; Schroff et al. 2015).

* :class:`SiameseEncoder` -- conv-BN-ReLU stages with 2x2 max pooling, a small adaptive average
  pooling, a linear projection and L2 normalisation: ``f(x) = g(x) / ||g(x)||_2``. "Siamese" is
  the way it is used: both images of a pair go through this one module (the same weights).
  Variants: ``siamese_digits`` (28x28 grey digits, 64-d) and ``siamese_faces`` (64x64 RGB faces,
  128-d, e.g. LFW).
* :class:`VerificationHead` (``verification_head``) -- the pair score of the course notes
  (Koch et al. 2015, eq. 1; Taigman et al. 2014, section 4)::

      y_hat = sigmoid( sum_k w_k |f(x_i)_k - f(x_j)_k| + b )

  It returns the logit (the sigmoid is applied by the loss, or by whoever wants a probability).

Both are pure: tensors in, tensors out. The losses are in ``zoo.losses.metric_learning``; the
training objective in ``zoo.tasks.metric_learning``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.layers import ConvBNAct
from zoo.registry import register_model

__all__ = ["SiameseEncoder", "VerificationHead", "siamese_digits", "siamese_faces", "verification_head"]


class SiameseEncoder(nn.Module):
    """Image -> L2-normalised embedding.

    Args:
        in_chans: input channels (1 grey, 3 RGB).
        image_size: the side of the square input (used for ``example_inputs`` only: the adaptive
            pooling takes any size of at least ``2 ** len(widths)``).
        widths: one 3x3 conv-BN-ReLU block and a 2x2 max pooling per width.
        embedding_dim: the embedding's size ``D``.
        pool_size: the side of the adaptive average pooling before the projection (2: the
            projection still sees where in the image a feature is).
        dropout: before the projection.

    Input: (B, in_chans, H, W). Output: (B, embedding_dim), each row of unit L2 norm.
    """

    def __init__(self, in_chans: int = 1, image_size: int = 28, widths: tuple[int, ...] = (32, 64, 128),
                 embedding_dim: int = 64, pool_size: int = 2, dropout: float = 0.0):
        super().__init__()
        if in_chans < 1 or embedding_dim < 1 or pool_size < 1:
            raise ValueError(f"in_chans, embedding_dim and pool_size must be >= 1, got in_chans={in_chans}, "
                             f"embedding_dim={embedding_dim}, pool_size={pool_size}")
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty list of positive channel counts, got {list(widths)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")
        self.in_chans, self.image_size, self.embedding_dim = in_chans, image_size, embedding_dim
        blocks, c = [], in_chans
        for w in widths:
            blocks += [ConvBNAct(c, w, 3), nn.MaxPool2d(2, ceil_mode=True)]
            c = w
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.drop = nn.Dropout(dropout)
        self.project = nn.Linear(c * pool_size * pool_size, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.features(x)).flatten(1)  # (B, C, p, p) -> (B, C * p * p)
        g = self.project(self.drop(h))  # (B, D)
        return F.normalize(g, p=2.0, dim=1)  # f(x) = g(x) / ||g(x)||_2

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.image_size, self.image_size),)


class VerificationHead(nn.Module):
    """``sum_k w_k |a_k - b_k| + b``: the logit that two embeddings show the same identity.

    ``forward(a, b)`` takes two (..., D) tensors (broadcast against each other); ``forward(pairs)``
    takes the pairs stacked as (B, 2, D). Output: (...,) or (B,) logits.

    ``w`` starts at ``-1 / sqrt(D)`` (a larger difference, a lower score) and ``b`` at 1, so that at
    the start the pairs of random unit vectors score near one half.
    """

    def __init__(self, embedding_dim: int = 64):
        super().__init__()
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        self.embedding_dim = embedding_dim
        self.weight = nn.Parameter(torch.full((embedding_dim,), -1.0 / math.sqrt(embedding_dim)))
        self.bias = nn.Parameter(torch.ones(()))

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if b is None:
            if a.dim() != 3 or a.shape[1] != 2:
                raise ValueError(f"VerificationHead takes two embeddings (..., D) or pairs (B, 2, D), got "
                                 f"{tuple(a.shape)}")
            a, b = a[:, 0], a[:, 1]
        if a.shape[-1] != self.embedding_dim or b.shape[-1] != self.embedding_dim:
            raise ValueError(f"VerificationHead(embedding_dim={self.embedding_dim}) got embeddings of size "
                             f"{a.shape[-1]} and {b.shape[-1]}: set the head's embedding_dim to the encoder's")
        return (a - b).abs() @ self.weight + self.bias  # sum_k w_k |a_k - b_k| + b

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (F.normalize(torch.randn(batch_size, 2, self.embedding_dim), dim=-1),)


@register_model(task="metric_learning", paper="Schroff et al. 2015, FaceNet (CVPR); Koch et al. 2015, "
                                              "Siamese networks for one-shot image recognition (ICML DL workshop)")
def siamese_digits(in_chans: int = 1, image_size: int = 28, widths: tuple[int, ...] = (32, 64, 128),
                   embedding_dim: int = 64, pool_size: int = 2, dropout: float = 0.0) -> SiameseEncoder:
    """A small encoder for 28x28 grey digits: 3 conv stages, 64-d unit embeddings."""
    return SiameseEncoder(in_chans, image_size, tuple(widths), embedding_dim, pool_size, dropout)


@register_model(task="metric_learning", paper="Schroff et al. 2015, FaceNet: a unified embedding for face "
                                              "recognition and clustering (CVPR)")
def siamese_faces(in_chans: int = 3, image_size: int = 64, widths: tuple[int, ...] = (32, 64, 128, 256),
                  embedding_dim: int = 128, pool_size: int = 2, dropout: float = 0.0) -> SiameseEncoder:
    """An encoder for RGB face crops (64x64 by default, e.g. LFW): 4 conv stages, 128-d unit embeddings."""
    return SiameseEncoder(in_chans, image_size, tuple(widths), embedding_dim, pool_size, dropout)


@register_model(task="metric_learning", paper="Koch et al. 2015, Siamese neural networks for one-shot image "
                                              "recognition (ICML deep learning workshop), eq. 1")
def verification_head(embedding_dim: int = 64) -> VerificationHead:
    """``sigmoid(sum_k w_k |f(x_i)_k - f(x_j)_k| + b)`` on two embeddings (logit out)."""
    return VerificationHead(embedding_dim)
