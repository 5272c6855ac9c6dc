"""Bag-of-embeddings text classifiers: the mean of a text's word embeddings, then a linear layer
or a small MLP. Word order is ignored.

* ``bag_of_embeddings``: average -> Linear, the fastText classifier (Joulin, Grave, Bojanowski &
  Mikolov 2017, "Bag of tricks for efficient text classification"; without its n-grams);
* ``deep_averaging_network``: average -> (Linear -> ReLU -> dropout) x depth -> Linear, the deep
  averaging network (Iyyer, Manjunatha, Boyd-Graber & Daumé III 2015, "Deep unordered
  composition rivals syntactic methods for text classification"; without its word dropout).

Input: token ids (B, T) and optional ``lengths`` (B,) (the real tokens of each padded row: only
they are averaged; without lengths every step counts). Output: (B, num_classes) logits.
The embedding matrix (``embedding``) may start from pretrained word vectors: the text
classification task copies them in (``zoo.tasks.text_classification``); the net reads no file.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from zoo.registry import register_model

__all__ = ["BagOfEmbeddings"]


class BagOfEmbeddings(nn.Module):
    """``Embedding -> masked mean over the tokens -> dropout -> [Linear -> ReLU -> dropout]* -> Linear``.

    Args:
        vocab_size: word ids ``0 .. vocab_size - 1``.
        num_classes: output logits.
        embedding_dim: size of a word vector.
        hidden: widths of the hidden layers (empty: the average goes straight to the linear head).
        dropout: on the average and after each hidden layer.
        padding_idx: the padding id (its embedding stays zero and gets no gradient), or None.
        example_length: T of :meth:`example_inputs`.
    """

    head_name = "fc"

    def __init__(self, vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 64,
                 hidden: Sequence[int] = (), dropout: float = 0.0, padding_idx: int | None = None,
                 example_length: int = 12):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.vocab_size, self.example_length = vocab_size, example_length
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        width = embedding_dim
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.is_floating_point():
            raise ValueError(f"expected token ids of shape (B, T), got {x.dtype} {tuple(x.shape)}")
        emb = self.embedding(x)  # (B, T, E)
        if lengths is None:
            mean = emb.mean(1)  # (B, E)
        else:
            lengths = torch.as_tensor(lengths, device=x.device)
            if lengths.shape != x.shape[:1] or (lengths.numel() and (int(lengths.min()) < 1
                                                                     or int(lengths.max()) > x.shape[1])):
                raise ValueError(f"lengths must be (B,) = ({x.shape[0]},) integers in [1, T={x.shape[1]}], "
                                 f"got {lengths.tolist()}")
            mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]  # (B, T)
            # the average of the real tokens: sum_t m_t e_t / sum_t m_t
            mean = (emb * mask[..., None]).sum(1) / lengths[:, None].to(emb.dtype)  # (B, E)
        return self.fc(self.body(mean))  # (B, num_classes)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randint(0, self.vocab_size, (batch_size, self.example_length)),)


_FASTTEXT = ("Joulin, Grave, Bojanowski & Mikolov 2017, 'Bag of tricks for efficient text classification' "
             "(averaged word embeddings, linear head)")
_DAN = "Iyyer et al. 2015, 'Deep unordered composition rivals syntactic methods for text classification'"


@register_model(task="classification", paper=_FASTTEXT)
def bag_of_embeddings(vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 64,
                      dropout: float = 0.0, padding_idx: int | None = None) -> BagOfEmbeddings:
    """Averaged word embeddings -> a linear layer."""
    return BagOfEmbeddings(vocab_size, num_classes, embedding_dim, (), dropout, padding_idx)


@register_model(task="classification", paper=_DAN)
def deep_averaging_network(vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 64,
                           hidden: Sequence[int] = (64, 64), dropout: float = 0.0,
                           padding_idx: int | None = None) -> BagOfEmbeddings:
    """Averaged word embeddings -> ReLU hidden layers -> a linear layer."""
    return BagOfEmbeddings(vocab_size, num_classes, embedding_dim, tuple(hidden), dropout, padding_idx)
