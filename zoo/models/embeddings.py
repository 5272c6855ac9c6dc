"""Word embeddings: skip-gram with negative sampling (word2vec; Mikolov et al. 2013, "Distributed
representations of words and phrases and their compositionality", NeurIPS) and GloVe
(Pennington, Socher & Manning 2014, "GloVe: global vectors for word representation", EMNLP).

Both nets are pure scorers: they return dot products (and biases); the losses live in
``zoo.losses.embeddings``. ``vectors()`` gives the final word vectors, (V, D): the input
embeddings for word2vec, ``W + W~`` for GloVe (Pennington et al. 2014, section 4.2).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.registry import register_model

__all__ = ["SkipGramNegativeSampling", "GloVe", "word2vec_sgns", "glove"]


class SkipGramNegativeSampling(nn.Module):
    """Skip-gram scores: input vectors ``v`` (the centre words) and output vectors ``u`` (the
    contexts and the noise words).

    ``forward(center (B,), context (B,), negatives (B, K)) -> (B, 1 + K)``: column 0 is
    ``u_o . v_c`` (the true context), columns 1..K are ``u_k . v_c`` (the noise words). The packed
    form ``forward(ids (B, 2 + K))`` takes ``[center, context, negatives...]`` as one tensor.

    Initialisation as word2vec's code: ``v`` uniform in ``+-0.5/D``, ``u`` zeros.
    ``sparse``: the embeddings give sparse gradients (for SGD and SparseAdam on large vocabularies).
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 100, sparse: bool = False, example_negatives: int = 5):
        super().__init__()
        if vocab_size < 1 or embedding_dim < 1:
            raise ValueError(f"vocab_size and embedding_dim must be positive, got {vocab_size}, {embedding_dim}")
        self.vocab_size, self.embedding_dim, self.example_negatives = vocab_size, embedding_dim, example_negatives
        self.input_embeddings = nn.Embedding(vocab_size, embedding_dim, sparse=sparse)  # v
        self.output_embeddings = nn.Embedding(vocab_size, embedding_dim, sparse=sparse)  # u
        with torch.no_grad():
            self.input_embeddings.weight.uniform_(-0.5 / embedding_dim, 0.5 / embedding_dim)
            self.output_embeddings.weight.zero_()

    def forward(self, center: torch.Tensor, context: torch.Tensor | None = None,
                negatives: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            if center.dim() != 2 or center.shape[1] < 2:
                raise ValueError(f"packed skip-gram input must be (B, 2 + K) ids, got {tuple(center.shape)}")
            center, context, negatives = center[:, 0], center[:, 1], center[:, 2:]
        if negatives is None:
            raise ValueError("give negatives (B, K) with center and context")
        v = self.input_embeddings(center)  # (B, D)
        u = self.output_embeddings(torch.cat([context.unsqueeze(1), negatives], dim=1))  # (B, 1 + K, D)
        return torch.bmm(u, v.unsqueeze(2)).squeeze(2)  # (B, 1 + K): u_o . v_c, u_k . v_c

    def vectors(self) -> torch.Tensor:
        """The word vectors (V, D): the input embeddings."""
        return self.input_embeddings.weight

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randint(0, self.vocab_size, (batch_size, 2 + self.example_negatives)),)


class GloVe(nn.Module):
    """GloVe's model of a log co-occurrence: ``forward(i (B,), j (B,)) -> w_i . w~_j + b_i + b~_j``
    (B,). The packed form ``forward(pairs (B, 2))`` takes ``[i, j]``.

    Initialisation as the reference code: every weight and bias uniform in ``+-0.5/D``.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 100, sparse: bool = False):
        super().__init__()
        if vocab_size < 1 or embedding_dim < 1:
            raise ValueError(f"vocab_size and embedding_dim must be positive, got {vocab_size}, {embedding_dim}")
        self.vocab_size, self.embedding_dim = vocab_size, embedding_dim
        self.word = nn.Embedding(vocab_size, embedding_dim, sparse=sparse)  # W
        self.context = nn.Embedding(vocab_size, embedding_dim, sparse=sparse)  # W~
        self.word_bias = nn.Embedding(vocab_size, 1, sparse=sparse)  # b
        self.context_bias = nn.Embedding(vocab_size, 1, sparse=sparse)  # b~
        with torch.no_grad():
            for emb in (self.word, self.context, self.word_bias, self.context_bias):
                emb.weight.uniform_(-0.5 / embedding_dim, 0.5 / embedding_dim)

    def forward(self, i: torch.Tensor, j: torch.Tensor | None = None) -> torch.Tensor:
        if j is None:
            if i.dim() != 2 or i.shape[1] != 2:
                raise ValueError(f"packed GloVe input must be (B, 2) ids, got {tuple(i.shape)}")
            i, j = i[:, 0], i[:, 1]
        dot = (self.word(i) * self.context(j)).sum(-1)  # (B,): w_i . w~_j
        return dot + self.word_bias(i).squeeze(-1) + self.context_bias(j).squeeze(-1)

    def vectors(self) -> torch.Tensor:
        """The word vectors (V, D): ``W + W~``."""
        return self.word.weight + self.context.weight

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randint(0, self.vocab_size, (batch_size, 2)),)


@register_model(task="embeddings", paper="Mikolov et al. 2013, Distributed representations of words and phrases "
                                         "(NeurIPS): skip-gram with negative sampling")
def word2vec_sgns(vocab_size: int = 1000, embedding_dim: int = 100, sparse: bool = False) -> SkipGramNegativeSampling:
    """Skip-gram with negative sampling, D = 100 (gensim's default size)."""
    return SkipGramNegativeSampling(vocab_size, embedding_dim, sparse)


@register_model(task="embeddings", paper="Pennington, Socher & Manning 2014, GloVe: global vectors for word "
                                         "representation (EMNLP)")
def glove(vocab_size: int = 1000, embedding_dim: int = 100, sparse: bool = False) -> GloVe:
    """GloVe, D = 100."""
    return GloVe(vocab_size, embedding_dim, sparse)
