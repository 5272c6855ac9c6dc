"""Recurrent networks over sequences (course 5 of the notes): the three shapes of the notes'
RNN architectures, on the cells of :mod:`zoo.layers.recurrent` (vanilla RNN, GRU, LSTM).

* many-to-one, :class:`RecurrentClassifier`: a sequence in, one label out (sentiment
  classification): ``rnn_classifier``, ``gru_classifier``, ``lstm_classifier``;
* many-to-many with ``T_x = T_y``, :class:`SequenceTagger`: one label per step (named-entity
  tagging), optionally bidirectional: ``lstm_tagger``;
* one-to-many / language model, :class:`RecurrentLanguageModel`: each step predicts the next
  token (``y<t> = x<t+1>``), and :func:`sample` draws a sequence from it one token at a time
  (the notes' character-level model of dinosaur names): ``char_rnn_lm``, ``word_lstm_lm``.

Inputs are either token ids (B, T), embedded by an ``nn.Embedding`` (``vocab_size > 0``), or
feature vectors (B, T, in_features) (``in_features > 0``, e.g. audio frames). Every net takes
optional ``lengths`` (B,) for padded batches; padding never changes a sequence's result.
Nets are pure; sampling, which draws random numbers, is the function :func:`sample`, which
takes the net and a ``torch.Generator``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers.recurrent import RecurrentLayer, draw_tokens, length_mask, recurrent_layer
from zoo.registry import register_model

__all__ = ["SequenceInput", "RecurrentClassifier", "SequenceTagger", "RecurrentLanguageModel", "sample"]


class SequenceInput(nn.Module):
    """Token ids (B, T) -> embeddings (B, T, embedding_dim), or features (B, T, in_features)
    passed through: exactly one of ``vocab_size`` and ``in_features`` is positive."""

    def __init__(self, vocab_size: int = 0, embedding_dim: int = 64, in_features: int = 0,
                 padding_idx: int | None = None):
        super().__init__()
        if (vocab_size > 0) == (in_features > 0):
            raise ValueError(f"give exactly one of vocab_size (token ids) and in_features (feature vectors), "
                             f"got vocab_size={vocab_size}, in_features={in_features}")
        self.vocab_size, self.in_features = vocab_size, in_features
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx) if vocab_size > 0 else None
        self.out_features = embedding_dim if vocab_size > 0 else in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            if x.dim() != 2 or x.is_floating_point():
                raise ValueError(f"expected token ids of shape (B, T), got {x.dtype} {tuple(x.shape)}")
            return self.embedding(x)  # (B, T, E)
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ValueError(f"expected features of shape (B, T, {self.in_features}), got {tuple(x.shape)}")
        return x

    def example(self, batch_size: int, steps: int) -> torch.Tensor:
        if self.embedding is not None:
            return torch.randint(0, self.vocab_size, (batch_size, steps))
        return torch.randn(batch_size, steps, self.in_features)


def _final_top_state(rnn: RecurrentLayer, hidden) -> torch.Tensor:
    """The top layer's final state, both directions side by side: (B, dirs * H)."""
    h_n = hidden if isinstance(hidden, torch.Tensor) else hidden[0]  # (L * dirs, B, H)
    top = h_n[-rnn.num_directions:]  # (dirs, B, H)
    return top.transpose(0, 1).reshape(h_n.shape[1], -1)  # (B, dirs * H)


class RecurrentClassifier(nn.Module):
    """Many-to-one: ``input -> recurrent layer -> pooled summary -> dropout -> Linear``.

    Args:
        vocab_size / embedding_dim / in_features / padding_idx: the input (:class:`SequenceInput`).
        num_classes: output logits.
        cell: rnn | gru | lstm.
        hidden_size, num_layers, bidirectional, dropout (between layers and before the head).
        pooling: ``last`` (the final state of the top layer; both directions' when
            bidirectional: the backward one has read the whole sequence), ``mean`` or ``max``
            over the real steps of the top layer's outputs.
        fused: run torch's fused kernels (same parameters).
        example_length: T of :meth:`example_inputs`.
    Input: (B, T) token ids or (B, T, in_features), optional lengths (B,).
    Output: (B, num_classes) logits.
    """

    head_name = "fc"

    def __init__(self, vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 64,
                 in_features: int = 0, cell: str = "lstm", hidden_size: int = 128, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, pooling: str = "last",
                 fused: bool = False, padding_idx: int | None = None, example_length: int = 12):
        super().__init__()
        if pooling not in ("last", "mean", "max"):
            raise ValueError(f"pooling must be last, mean or max, got {pooling!r}")
        self.pooling, self.example_length = pooling, example_length
        self.input = SequenceInput(vocab_size, embedding_dim, in_features, padding_idx)
        self.rnn = recurrent_layer(cell, self.input.out_features, hidden_size, num_layers, bidirectional,
                                   dropout, fused)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size * self.rnn.num_directions, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        out, hidden = self.rnn(self.input(x), lengths=lengths)  # out (B, T, dirs * H)
        if self.pooling == "last":
            summary = _final_top_state(self.rnn, hidden)  # (B, dirs * H)
        else:
            mask = (torch.ones(out.shape[:2], dtype=torch.bool, device=out.device) if lengths is None
                    else length_mask(lengths, out.shape[1], out.device))[..., None]  # (B, T, 1)
            if self.pooling == "mean":
                summary = (out * mask).sum(1) / mask.sum(1)
            else:
                summary = out.masked_fill(~mask, float("-inf")).amax(1)
        return self.fc(self.drop(summary))  # (B, num_classes)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (self.input.example(batch_size, self.example_length),)


class SequenceTagger(nn.Module):
    """Many-to-many (``T_y = T_x``): ``input -> recurrent layer -> dropout -> Linear`` per step.

    A bidirectional layer lets each step's label see the whole sentence (the notes' "Teddy
    Roosevelt" vs "teddy bear"). Args as :class:`RecurrentClassifier`, with ``num_tags`` labels.
    Input: (B, T) token ids or (B, T, in_features), optional lengths (B,).
    Output: (B, T, num_tags) logits (padded steps hold the head's bias: mask them in the loss).
    """

    head_name = "fc"

    def __init__(self, vocab_size: int = 1000, num_tags: int = 10, embedding_dim: int = 64,
                 in_features: int = 0, cell: str = "lstm", hidden_size: int = 128, num_layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.0, fused: bool = False,
                 padding_idx: int | None = None, example_length: int = 12):
        super().__init__()
        self.example_length = example_length
        self.input = SequenceInput(vocab_size, embedding_dim, in_features, padding_idx)
        self.rnn = recurrent_layer(cell, self.input.out_features, hidden_size, num_layers, bidirectional,
                                   dropout, fused)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size * self.rnn.num_directions, num_tags)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = self.rnn(self.input(x), lengths=lengths)  # (B, T, dirs * H)
        return self.fc(self.drop(out))  # (B, T, num_tags)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (self.input.example(batch_size, self.example_length),)


class RecurrentLanguageModel(nn.Module):
    """A next-token model: ``embedding -> dropout -> recurrent layer -> dropout -> Linear(V)``.

    Dropout on the embeddings, between layers and before the decoder follows Zaremba et al. 2014
    (non-recurrent connections only). ``tie_weights`` shares the embedding matrix with the
    decoder (Press & Wolf 2017; needs ``embedding_dim == hidden_size``).

    Input: token ids (B, T), optional lengths (B,). Output: (B, T, vocab_size) logits, step t
    scoring token t + 1. :meth:`forward_with_state` also takes and returns the recurrent state,
    for generation one step at a time (:func:`sample`) and for truncated backpropagation.
    """

    head_name = "decoder"

    def __init__(self, vocab_size: int = 64, embedding_dim: int = 32, cell: str = "rnn",
                 hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0,
                 tie_weights: bool = False, fused: bool = False, padding_idx: int | None = None,
                 example_length: int = 16):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        if tie_weights and embedding_dim != hidden_size:
            raise ValueError(f"tie_weights needs embedding_dim == hidden_size, got {embedding_dim} and {hidden_size}")
        self.vocab_size, self.example_length = vocab_size, example_length
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.rnn = recurrent_layer(cell, embedding_dim, hidden_size, num_layers, False, dropout, fused)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight  # (V, H) both

    def forward_with_state(self, tokens: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        """tokens (B, T) and the state of the recurrent layer (None: zeros) -> logits
        (B, T, V) and the final state (layout of :class:`~zoo.layers.recurrent.RecurrentLayer`)."""
        if tokens.dim() != 2 or tokens.is_floating_point():
            raise ValueError(f"expected token ids of shape (B, T), got {tokens.dtype} {tuple(tokens.shape)}")
        out, state = self.rnn(self.drop(self.embedding(tokens)), state, lengths=lengths)  # (B, T, H)
        return self.decoder(self.drop(out)), state  # (B, T, V)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_with_state(tokens, None, lengths)[0]  # (B, T, V)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randint(0, self.vocab_size, (batch_size, self.example_length)),)


@torch.no_grad()
def sample(net: RecurrentLanguageModel, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
           top_k: int | None = None, generator: torch.Generator | None = None,
           end_token: int | None = None) -> torch.Tensor:
    """Draw ``max_new_tokens`` tokens after ``prompt`` from a language model, one at a time.

    The prompt (B, T0), T0 >= 1 (a start token, or the beginning of a text), is read once;
    each drawn token is fed back with the carried state. At each step the logits are divided by
    ``temperature`` (``0``: greedy, the argmax) and, with ``top_k``, all but the k best are
    removed, before one token is drawn from the softmax with ``generator`` (its device must be
    the net's; None: torch's global generator). After ``end_token``, a sequence repeats it.
    The net runs in eval mode (no dropout) and is put back in its mode after.

    Returns: (B, max_new_tokens) token ids (the prompt not included).
    """
    was_training = net.training
    net.eval()
    try:
        return draw_tokens(net, prompt, max_new_tokens, temperature, top_k, generator, end_token)
    finally:
        net.train(was_training)


# -- registered variants --------------------------------------------------------------------------
_ELMAN = "Elman 1990, 'Finding structure in time'"
_GRU = "Cho et al. 2014, 'Learning phrase representations using RNN encoder-decoder'"
_LSTM = "Hochreiter & Schmidhuber 1997, 'Long short-term memory'"


@register_model(task="classification", paper=_ELMAN + " (many-to-one)")
def rnn_classifier(vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 64, in_features: int = 0,
                   hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
                   dropout: float = 0.0, pooling: str = "last", fused: bool = False,
                   padding_idx: int | None = None) -> RecurrentClassifier:
    """Sequence classifier on a vanilla (tanh) RNN; ``in_features > 0`` with ``vocab_size=0``
    reads feature vectors instead of token ids."""
    return RecurrentClassifier(vocab_size, num_classes, embedding_dim, in_features, "rnn", hidden_size,
                               num_layers, bidirectional, dropout, pooling, fused, padding_idx)


@register_model(task="classification", paper=_GRU + " (many-to-one)")
def gru_classifier(vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 64, in_features: int = 0,
                   hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
                   dropout: float = 0.0, pooling: str = "last", fused: bool = False,
                   padding_idx: int | None = None) -> RecurrentClassifier:
    """Sequence classifier on a GRU."""
    return RecurrentClassifier(vocab_size, num_classes, embedding_dim, in_features, "gru", hidden_size,
                               num_layers, bidirectional, dropout, pooling, fused, padding_idx)


@register_model(task="classification", paper=_LSTM + " (many-to-one)")
def lstm_classifier(vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 64, in_features: int = 0,
                    hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
                    dropout: float = 0.0, pooling: str = "last", fused: bool = False,
                    padding_idx: int | None = None) -> RecurrentClassifier:
    """Sequence classifier on an LSTM."""
    return RecurrentClassifier(vocab_size, num_classes, embedding_dim, in_features, "lstm", hidden_size,
                               num_layers, bidirectional, dropout, pooling, fused, padding_idx)


@register_model(task="tagging", paper="Graves & Schmidhuber 2005, 'Framewise phoneme classification with "
                                      "bidirectional LSTM' (many-to-many)")
def lstm_tagger(vocab_size: int = 1000, num_tags: int = 10, embedding_dim: int = 64, in_features: int = 0,
                hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                dropout: float = 0.0, fused: bool = False, padding_idx: int | None = None) -> SequenceTagger:
    """Per-step tagger on a (by default bidirectional) LSTM: one label per input step."""
    return SequenceTagger(vocab_size, num_tags, embedding_dim, in_features, "lstm", hidden_size, num_layers,
                          bidirectional, dropout, fused, padding_idx)


@register_model(task="language_modelling", paper=_ELMAN + "; the notes' character-level model (dinosaur names)")
def char_rnn_lm(vocab_size: int = 64, embedding_dim: int = 32, cell: str = "rnn", hidden_size: int = 128,
                num_layers: int = 1, dropout: float = 0.0, tie_weights: bool = False, fused: bool = False,
                padding_idx: int | None = None) -> RecurrentLanguageModel:
    """Character-level language model: a vanilla RNN by default (``cell=gru|lstm`` for gated ones)."""
    return RecurrentLanguageModel(vocab_size, embedding_dim, cell, hidden_size, num_layers, dropout,
                                  tie_weights, fused, padding_idx)


@register_model(task="language_modelling",
                paper="Zaremba, Sutskever & Vinyals 2014, 'Recurrent neural network regularization' (medium)")
def word_lstm_lm(vocab_size: int = 10000, embedding_dim: int = 650, hidden_size: int = 650, num_layers: int = 2,
                 dropout: float = 0.5, tie_weights: bool = False, fused: bool = False,
                 padding_idx: int | None = None) -> RecurrentLanguageModel:
    """Word-level LSTM language model, Zaremba et al.'s medium setting (2 x 650, dropout 0.5;
    82.7 test perplexity on Penn Treebank)."""
    return RecurrentLanguageModel(vocab_size, embedding_dim, "lstm", hidden_size, num_layers, dropout,
                                  tie_weights, fused, padding_idx, example_length=20)
