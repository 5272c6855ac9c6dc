"""Recurrent encoder-decoders (sequence to sequence, course 5 of the notes).

* :class:`RNNEncoderDecoder` -- no attention (Sutskever et al. 2014, "Sequence to Sequence
  Learning with Neural Networks"; Cho et al. 2014, "Learning Phrase Representations using RNN
  Encoder-Decoder"): a GRU or LSTM encoder reads the source, and its final state is all the
  decoder knows of it -- the decoder starts from that state and, as in Cho et al. 2014, also
  reads the encoder's final top-layer state ``c`` beside each target embedding. One fixed-size
  vector must carry the whole source, which is why it falls behind on long inputs.
  Registered as ``gru_seq2seq`` and ``lstm_seq2seq``.
* :class:`AttentionSeq2Seq` -- the notes' attention model (Bahdanau et al. 2015, "Neural Machine
  Translation by Jointly Learning to Align and Translate"): a bidirectional *pre-attention* LSTM
  turns the source into annotations ``a<t'>``; at each output step the *one-step attention*
  scores every annotation against the previous *post-attention* LSTM state ``s<t-1>``
  (additive scores ``v^T tanh(W_s s<t-1> + W_a a<t'>)``, a softmax over the real source
  positions), and the context ``c<t> = sum_t' alpha<t,t'> a<t'>`` enters the post-attention LSTM
  beside the previous output token; the output layer reads ``[s<t>; c<t>]``. Registered as
  ``attention_seq2seq``.

Both follow the zoo's seq2seq net contract (shared with ``zoo.models.transformer``):
``encode(src (B, S), src_mask (B, S) bool, True = real) -> memory`` (a dict of tensors, batch
first), ``decode(memory, tgt_in (B, T)) -> logits (B, T, V)`` (teacher forcing; step ``t`` sees
``tgt_in[:, :t + 1]`` only), ``forward(src, src_mask, tgt_in) = decode(encode(src, src_mask),
tgt_in)``, ``select(memory, index)`` (rows of the batch, for beam search) and
``attention(memory, tgt_in) -> (B, T, S)`` weights (None without attention).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers.attention import AdditiveAttention
from zoo.layers.recurrent import recurrent_layer
from zoo.registry import register_model

__all__ = ["RNNEncoderDecoder", "AttentionSeq2Seq", "select_memory"]


def select_memory(memory: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows ``index`` (N,) of every tensor of ``memory`` (batch first)."""
    return {k: v.index_select(0, index) for k, v in memory.items()}


def _check_src(src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
    if src.dim() != 2 or src.is_floating_point():
        raise ValueError(f"src must be token ids of shape (B, S), got {src.dtype} {tuple(src.shape)}")
    if src_mask.shape != src.shape or src_mask.dtype != torch.bool:
        raise ValueError(f"src_mask must be a bool tensor of the shape of src {tuple(src.shape)}, got "
                         f"{src_mask.dtype} {tuple(src_mask.shape)}")
    lengths = src_mask.sum(1)  # (B,)
    if lengths.numel() and int(lengths.min()) < 1:
        raise ValueError("an empty source in the batch (no real token): every source needs a token to encode")
    return lengths


def _example(src_vocab: int, tgt_vocab: int, batch_size: int, length: int):
    """(src, src_mask, tgt_in): random ids above the special ids (4), the last row padded."""
    g = torch.Generator().manual_seed(0)
    src = torch.randint(4, max(5, src_vocab), (batch_size, length), generator=g)
    src_mask = torch.ones(batch_size, length, dtype=torch.bool)
    src_mask[-1, length // 2 + 1:] = False
    src = src.masked_fill(~src_mask, 0)
    tgt_in = torch.randint(4, max(5, tgt_vocab), (batch_size, length), generator=g)
    tgt_in[:, 0] = 1  # <s>
    return src, src_mask, tgt_in


class RNNEncoderDecoder(nn.Module):
    """Encoder-decoder without attention.

    Args:
        src_vocab_size, tgt_vocab_size: the vocabularies (specials included).
        embedding_dim: source and target embeddings.
        hidden_size, num_layers, cell (``gru`` | ``lstm`` | ``rnn``): both recurrent stacks.
        dropout: on embeddings, between layers and before the output layer.
        feed_context: give the decoder the encoder's final top state at every step (Cho et al.
            2014); False: only through the initial state (Sutskever et al. 2014).
        fused: torch's fused recurrent kernels (same parameters).
        padding_idx: the padding id (its embedding stays zero).
        example_length: S and T of :meth:`example_inputs`.
    Shapes: src (B, S), src_mask (B, S), tgt_in (B, T) -> logits (B, T, tgt_vocab_size).
    """

    head_name = "fc"

    def __init__(self, src_vocab_size: int = 32, tgt_vocab_size: int = 32, embedding_dim: int = 64,
                 hidden_size: int = 128, num_layers: int = 1, cell: str = "gru", dropout: float = 0.0,
                 feed_context: bool = True, fused: bool = True, padding_idx: int = 0, example_length: int = 12):
        super().__init__()
        if src_vocab_size < 1 or tgt_vocab_size < 1:
            raise ValueError(f"vocabulary sizes must be positive, got {src_vocab_size} and {tgt_vocab_size}")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.cell, self.num_layers, self.hidden_size = cell, num_layers, hidden_size
        self.feed_context, self.example_length = feed_context, example_length
        self.src_embedding = nn.Embedding(src_vocab_size, embedding_dim, padding_idx=padding_idx)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embedding_dim, padding_idx=padding_idx)
        self.encoder = recurrent_layer(cell, embedding_dim, hidden_size, num_layers, False, dropout, fused)
        dec_in = embedding_dim + (hidden_size if feed_context else 0)
        self.decoder = recurrent_layer(cell, dec_in, hidden_size, num_layers, False, dropout, fused)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, tgt_vocab_size)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """-> ``{"h": (B, L, H)[, "c": (B, L, H)], "context": (B, H)}``: the encoder's final
        states (batch first), and the top layer's final hidden state."""
        lengths = _check_src(src, src_mask)
        _, state = self.encoder(self.drop(self.src_embedding(src)), lengths=lengths)
        parts = (state,) if isinstance(state, torch.Tensor) else tuple(state)  # each (L, B, H)
        memory = {"h": parts[0].transpose(0, 1)}  # (B, L, H)
        if len(parts) == 2:
            memory["c"] = parts[1].transpose(0, 1)
        memory["context"] = parts[0][-1]  # (B, H): the top layer's final state
        return memory

    def decode(self, memory: dict[str, torch.Tensor], tgt_in: torch.Tensor) -> torch.Tensor:
        if tgt_in.dim() != 2 or tgt_in.is_floating_point():
            raise ValueError(f"tgt_in must be token ids of shape (B, T), got {tgt_in.dtype} {tuple(tgt_in.shape)}")
        x = self.drop(self.tgt_embedding(tgt_in))  # (B, T, E)
        if self.feed_context:
            ctx = memory["context"][:, None, :].expand(-1, x.shape[1], -1)  # (B, T, H)
            x = torch.cat([x, ctx], dim=-1)  # (B, T, E + H)
        h0 = memory["h"].transpose(0, 1).contiguous()  # (L, B, H)
        hx = (h0, memory["c"].transpose(0, 1).contiguous()) if "c" in memory else h0
        out, _ = self.decoder(x, hx)  # (B, T, H)
        return self.fc(self.drop(out))  # (B, T, V)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(src, src_mask), tgt_in)

    @staticmethod
    def select(memory: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
        return select_memory(memory, index)

    def attention(self, memory: dict[str, torch.Tensor], tgt_in: torch.Tensor) -> None:
        return None  # no attention: the source is one vector

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _example(self.src_vocab_size, self.tgt_vocab_size, batch_size, self.example_length)


class AttentionSeq2Seq(nn.Module):
    """The notes' attention model: BiLSTM pre-attention encoder, one-step additive attention,
    post-attention LSTM (see the module docstring).

    Args:
        src_vocab_size, tgt_vocab_size: the vocabularies (specials included).
        embedding_dim: source and target embeddings.
        encoder_hidden: the pre-attention LSTM's state per direction (annotations: 2x this).
        decoder_hidden: the post-attention LSTM's state ``s``.
        attention_dim: hidden layer of the additive scoring function.
        dropout: on embeddings and before the output layer.
        init_from_encoder: start ``s<0>`` from ``tanh(W [h_fwd_last; h_bwd_first])`` (Bahdanau
            et al. 2015, appendix A.2.2); False: zeros (the notes' exercise).
        fused: torch's fused kernels for the encoder (same parameters).
        padding_idx: the padding id.
        example_length: S and T of :meth:`example_inputs`.
    Shapes: src (B, S), src_mask (B, S), tgt_in (B, T) -> logits (B, T, tgt_vocab_size).
    """

    head_name = "fc"

    def __init__(self, src_vocab_size: int = 32, tgt_vocab_size: int = 32, embedding_dim: int = 64,
                 encoder_hidden: int = 64, decoder_hidden: int = 128, attention_dim: int = 64,
                 dropout: float = 0.0, init_from_encoder: bool = True, fused: bool = True, padding_idx: int = 0,
                 example_length: int = 12):
        super().__init__()
        if src_vocab_size < 1 or tgt_vocab_size < 1:
            raise ValueError(f"vocabulary sizes must be positive, got {src_vocab_size} and {tgt_vocab_size}")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.decoder_hidden, self.init_from_encoder = decoder_hidden, init_from_encoder
        self.example_length = example_length
        self.src_embedding = nn.Embedding(src_vocab_size, embedding_dim, padding_idx=padding_idx)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embedding_dim, padding_idx=padding_idx)
        self.encoder = recurrent_layer("lstm", embedding_dim, encoder_hidden, 1, True, 0.0, fused)
        annotation = 2 * encoder_hidden
        self.attention_layer = AdditiveAttention(decoder_hidden, annotation, attention_dim)
        self.bridge = nn.Linear(annotation, decoder_hidden) if init_from_encoder else None
        self.post_lstm = nn.LSTMCell(embedding_dim + annotation, decoder_hidden)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(decoder_hidden + annotation, tgt_vocab_size)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """-> ``{"annotations": (B, S, 2 Ha), "src_mask": (B, S), "s0": (B, Hs)}``."""
        lengths = _check_src(src, src_mask)
        a, (h_n, _) = self.encoder(self.drop(self.src_embedding(src)), lengths=lengths)  # (B, S, 2Ha); (2, B, Ha)
        if self.bridge is not None:
            s0 = torch.tanh(self.bridge(torch.cat([h_n[0], h_n[1]], dim=-1)))  # (B, Hs)
        else:
            s0 = a.new_zeros(a.shape[0], self.decoder_hidden)
        return {"annotations": a, "src_mask": src_mask, "s0": s0}

    def _run(self, memory: dict[str, torch.Tensor], tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced decoding: (logits (B, T, V), attention weights (B, T, S))."""
        if tgt_in.dim() != 2 or tgt_in.is_floating_point():
            raise ValueError(f"tgt_in must be token ids of shape (B, T), got {tgt_in.dtype} {tuple(tgt_in.shape)}")
        a, mask = memory["annotations"], memory["src_mask"]
        emb = self.drop(self.tgt_embedding(tgt_in))  # (B, T, E)
        s, c = memory["s0"], torch.zeros_like(memory["s0"])  # (B, Hs) each
        outs, weights = [], []
        for t in range(tgt_in.shape[1]):
            # one-step attention: the query is the previous post-attention state s<t-1>
            context, alpha = self.attention_layer(s[:, None, :], a, a, mask)  # (B, 1, 2Ha), (B, 1, S)
            context = context[:, 0]  # (B, 2Ha)
            s, c = self.post_lstm(torch.cat([emb[:, t], context], dim=-1), (s, c))  # (B, Hs)
            outs.append(torch.cat([s, context], dim=-1))  # (B, Hs + 2Ha)
            weights.append(alpha[:, 0])
        out = torch.stack(outs, dim=1)  # (B, T, Hs + 2Ha)
        return self.fc(self.drop(out)), torch.stack(weights, dim=1)  # (B, T, V), (B, T, S)

    def decode(self, memory: dict[str, torch.Tensor], tgt_in: torch.Tensor) -> torch.Tensor:
        return self._run(memory, tgt_in)[0]

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(src, src_mask), tgt_in)

    @staticmethod
    def select(memory: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
        return select_memory(memory, index)

    def attention(self, memory: dict[str, torch.Tensor], tgt_in: torch.Tensor) -> torch.Tensor:
        """The attention weights ``alpha<t, t'>`` of each step: (B, T, S), rows summing to 1
        over the real source positions."""
        return self._run(memory, tgt_in)[1]

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _example(self.src_vocab_size, self.tgt_vocab_size, batch_size, self.example_length)


_SEQ2SEQ_PAPER = "Sutskever et al. 2014 (NeurIPS); Cho et al. 2014 (EMNLP)"


@register_model(task="seq2seq", paper=_SEQ2SEQ_PAPER)
def gru_seq2seq(src_vocab_size: int = 32, tgt_vocab_size: int = 32, embedding_dim: int = 64,
                hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0, feed_context: bool = True,
                fused: bool = True) -> RNNEncoderDecoder:
    """GRU encoder-decoder without attention."""
    return RNNEncoderDecoder(src_vocab_size, tgt_vocab_size, embedding_dim, hidden_size, num_layers, "gru", dropout,
                             feed_context, fused)


@register_model(task="seq2seq", paper=_SEQ2SEQ_PAPER)
def lstm_seq2seq(src_vocab_size: int = 32, tgt_vocab_size: int = 32, embedding_dim: int = 64,
                 hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0, feed_context: bool = True,
                 fused: bool = True) -> RNNEncoderDecoder:
    """LSTM encoder-decoder without attention."""
    return RNNEncoderDecoder(src_vocab_size, tgt_vocab_size, embedding_dim, hidden_size, num_layers, "lstm", dropout,
                             feed_context, fused)


@register_model(task="seq2seq", paper="Bahdanau, Cho & Bengio 2015 (ICLR)")
def attention_seq2seq(src_vocab_size: int = 32, tgt_vocab_size: int = 32, embedding_dim: int = 64,
                      encoder_hidden: int = 64, decoder_hidden: int = 128, attention_dim: int = 64,
                      dropout: float = 0.0, init_from_encoder: bool = True, fused: bool = True) -> AttentionSeq2Seq:
    """The notes' attention model: BiLSTM encoder, one-step additive attention, post-attention LSTM."""
    return AttentionSeq2Seq(src_vocab_size, tgt_vocab_size, embedding_dim, encoder_hidden, decoder_hidden,
                            attention_dim, dropout, init_from_encoder, fused)
