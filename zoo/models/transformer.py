"""The Transformer encoder-decoder (Vaswani et al. 2017, "Attention Is All You Need").

``src -> embedding * sqrt(d_model) + sinusoids -> N x [self-attention, feed-forward]`` gives the
memory; ``tgt_in -> embedding * sqrt(d_model) + sinusoids -> N x [causal self-attention,
cross-attention to the memory, feed-forward] -> Linear(V)`` gives the next-token logits.
Every sub-layer is wrapped in a residual connection, dropout and layer normalisation.

**Normalisation placement.** ``norm_first=True`` (the default of the CPU-sized variants) is the
pre-norm Transformer, ``x + Sublayer(LayerNorm(x))`` with a final LayerNorm after each stack
(Wang et al. 2019, "Learning Deep Transformer Models for Machine Translation"; Xiong et al. 2020,
"On Layer Normalization in the Transformer Architecture"): the residual path is an identity, so
the gradients at initialisation are well scaled and training is stable with a short warm-up and
a larger learning rate -- what a run of a few minutes on 2 CPU cores needs. ``norm_first=False``
is the paper's post-norm ``LayerNorm(x + Sublayer(x))`` (``transformer_base`` uses it, as
published), which needs the long warm-up of the paper's schedule.

**Embeddings.** Token embeddings are multiplied by ``sqrt(d_model)`` (section 3.4) and initialised
``N(0, d_model^-0.5)``, so the scaled embedding has unit-size entries beside the sinusoids.
``tie_output=True`` shares the target embedding with the output projection (section 3.4, after
Press & Wolf 2017); ``share_embeddings=True`` also shares it with the source side (a joint
vocabulary only: ``src_vocab_size == tgt_vocab_size``).

The seq2seq net contract (shared with ``zoo.models.seq2seq``; the task and the decoders in
``zoo.ops.decoding`` use nothing else):

* ``encode(src (B, S) long, src_mask (B, S) bool, True = real token) -> memory``:
  ``{"memory": (B, S, d_model), "src_mask": (B, S)}``;
* ``decode(memory, tgt_in (B, T) long) -> logits (B, T, V)``: teacher forcing over the whole
  prefix; position ``t`` sees ``tgt_in[:, :t+1]`` only (causal self-attention). Target padding
  needs no mask: padding comes after the real tokens, which never look ahead at it;
* ``forward(src, src_mask, tgt_in) = decode(encode(src, src_mask), tgt_in)``;
* ``select(memory, index (N,)) -> memory`` (rows of the batch, for beam search);
* ``attention(memory, tgt_in) -> (B, T, S)``: the last decoder layer's cross-attention
  weights, averaged over the heads (for the heatmaps).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.layers.attention import MultiHeadAttention, SinusoidalPositionalEncoding, causal_mask
from zoo.registry import register_model

__all__ = ["Transformer", "EncoderLayer", "DecoderLayer", "transformer_base", "transformer_small"]

PAPER = "Vaswani et al. 2017, Attention Is All You Need"


class FeedForward(nn.Module):
    """Position-wise feed-forward network (section 3.3): ``max(0, x W1 + b1) W2 + b2``, with
    dropout on the hidden layer (as the paper's reference code, tensor2tensor, does)."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))  # (B, T, d_model)


class EncoderLayer(nn.Module):
    """Self-attention over the source, then the feed-forward network; each sub-layer in a
    residual connection with dropout, layer-normalised before (``norm_first``) or after."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float, norm_first: bool):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ff = FeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout(self.self_attn(h, h, h, key_mask=src_mask)[0])
            return x + self.dropout(self.ff(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, key_mask=src_mask)[0]))
        return self.norm2(x + self.dropout(self.ff(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention over the target prefix, cross-attention to the encoder's memory,
    then the feed-forward network. Returns the output and the cross-attention weights
    ``(B, T, S)`` averaged over the heads."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float, norm_first: bool):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ff = FeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, y: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
                tgt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.norm_first:
            h = self.norm1(y)
            y = y + self.dropout(self.self_attn(h, h, h, attn_mask=tgt_mask)[0])
            context, weights = self.cross_attn(self.norm2(y), memory, memory, key_mask=src_mask)
            y = y + self.dropout(context)
            return y + self.dropout(self.ff(self.norm3(y))), weights
        y = self.norm1(y + self.dropout(self.self_attn(y, y, y, attn_mask=tgt_mask)[0]))
        context, weights = self.cross_attn(y, memory, memory, key_mask=src_mask)
        y = self.norm2(y + self.dropout(context))
        return self.norm3(y + self.dropout(self.ff(y))), weights


class Transformer(nn.Module):
    """Encoder-decoder Transformer for sequence-to-sequence tasks (see the module docstring).

    Args:
        src_vocab_size, tgt_vocab_size: token ids of the source and target sides.
        d_model: model width (the paper's base: 512).
        num_heads: attention heads (h, dividing ``d_model``).
        num_encoder_layers, num_decoder_layers: stack depths (N).
        dim_feedforward: hidden size of the feed-forward networks (d_ff).
        dropout: P_drop on embeddings + encodings, sub-layer outputs, attention weights and the
            feed-forward hidden layer.
        norm_first: pre-norm (True) or the paper's post-norm (False).
        share_embeddings: one embedding for source and target (needs equal vocabulary sizes).
        tie_output: the output projection is the target embedding's transpose.
        max_len: longest source or target sequence accepted.
        example_length: S and T of :meth:`example_inputs`.
    Shapes: src ``(B, S)`` long, src_mask ``(B, S)`` bool (True = real token), tgt_in ``(B, T)``
    long -> logits ``(B, T, tgt_vocab_size)``.
    """

    def __init__(self, src_vocab_size: int = 32, tgt_vocab_size: int = 32, d_model: int = 128,
                 num_heads: int = 4, num_encoder_layers: int = 3, num_decoder_layers: int = 3,
                 dim_feedforward: int = 512, dropout: float = 0.1, norm_first: bool = True,
                 share_embeddings: bool = False, tie_output: bool = True, max_len: int = 256,
                 example_length: int = 10):
        super().__init__()
        if src_vocab_size < 1 or tgt_vocab_size < 1:
            raise ValueError(f"vocabulary sizes must be positive, got src_vocab_size={src_vocab_size}, "
                             f"tgt_vocab_size={tgt_vocab_size}")
        if num_encoder_layers < 1 or num_decoder_layers < 1:
            raise ValueError("num_encoder_layers and num_decoder_layers must be at least 1")
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"share_embeddings=true needs one joint vocabulary, but src_vocab_size="
                             f"{src_vocab_size} != tgt_vocab_size={tgt_vocab_size}; set share_embeddings=false")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.d_model, self.max_len, self.example_length = d_model, max_len, example_length
        self.norm_first = norm_first
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model)
        self.src_embed = self.tgt_embed if share_embeddings else nn.Embedding(src_vocab_size, d_model)
        self.pos_enc = SinusoidalPositionalEncoding(d_model, max_len=max_len, dropout=dropout)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, dim_feedforward, dropout, norm_first) for _ in range(num_encoder_layers))
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, dim_feedforward, dropout, norm_first) for _ in range(num_decoder_layers))
        # pre-norm leaves each stack's output un-normalised: a final LayerNorm closes each stack
        self.encoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.generator = None if tie_output else nn.Linear(d_model, tgt_vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weight matrices, zero biases (the paper's reference code), embeddings
        ``N(0, d_model^-0.5)`` (unit-size entries after the ``sqrt(d_model)`` scale)."""
        for name, p in self.named_parameters():
            if "embed" in name:
                nn.init.normal_(p, mean=0.0, std=self.d_model ** -0.5)
            elif p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias") and "norm" not in name:
                nn.init.zeros_(p)

    # -- input checks: a clear error instead of an index error deep inside an embedding ------------
    @staticmethod
    def _check_ids(ids: torch.Tensor, vocab: int, what: str) -> None:
        if ids.dim() != 2 or ids.dtype not in (torch.long, torch.int):
            raise ValueError(f"{what} must be a (B, T) tensor of token ids, got {ids.dtype} {tuple(ids.shape)}")
        if ids.shape[1] == 0:
            raise ValueError(f"{what} is empty (no positions): every sequence needs at least one token")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise ValueError(f"{what} holds token ids outside [0, {vocab}) (min {int(ids.min())}, max "
                             f"{int(ids.max())}): the model was built for a vocabulary of {vocab}")

    def _embed(self, ids: torch.Tensor, table: nn.Embedding) -> torch.Tensor:
        if ids.shape[1] > self.max_len:
            raise ValueError(f"a sequence of {ids.shape[1]} tokens is longer than max_len={self.max_len}; "
                             "build the model with a larger max_len")
        return self.pos_enc(table(ids) * math.sqrt(self.d_model))  # (B, T, d_model)

    # -- the seq2seq net contract ----------------------------------------------------------------------
    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check_ids(src, self.src_vocab_size, "src")
        if src_mask.dtype != torch.bool or src_mask.shape != src.shape:
            raise ValueError(f"src_mask must be a bool tensor shaped like src {tuple(src.shape)} "
                             f"(True = real token), got {src_mask.dtype} {tuple(src_mask.shape)}")
        x = self._embed(src, self.src_embed)  # (B, S, d_model)
        for layer in self.encoder_layers:
            x = layer(x, src_mask)
        return {"memory": self.encoder_norm(x), "src_mask": src_mask}

    def _decode(self, memory: dict[str, torch.Tensor], tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_ids(tgt_in, self.tgt_vocab_size, "tgt_in")
        y = self._embed(tgt_in, self.tgt_embed)  # (B, T, d_model)
        mask = causal_mask(tgt_in.shape[1], device=tgt_in.device)  # (T, T)
        weights = None
        for layer in self.decoder_layers:
            y, weights = layer(y, memory["memory"], memory["src_mask"], mask)
        return self.decoder_norm(y), weights  # (B, T, d_model), (B, T, S)

    def decode(self, memory: dict[str, torch.Tensor], tgt_in: torch.Tensor) -> torch.Tensor:
        y, _ = self._decode(memory, tgt_in)
        if self.generator is not None:
            return self.generator(y)
        return F.linear(y, self.tgt_embed.weight)  # (B, T, V): the tied output projection

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(src, src_mask), tgt_in)

    @staticmethod
    def select(memory: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.index_select(0, index) for k, v in memory.items()}

    @torch.no_grad()
    def attention(self, memory: dict[str, torch.Tensor], tgt_in: torch.Tensor) -> torch.Tensor:
        """The last decoder layer's cross-attention weights ``(B, T, S)``, averaged over heads."""
        return self._decode(memory, tgt_in)[1]

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(src, src_mask, tgt_in)``: random ids; every other source is padded to 2/3 of its length."""
        g = torch.Generator().manual_seed(0)
        s = t = self.example_length
        src = torch.randint(0, self.src_vocab_size, (batch_size, s), generator=g)
        src_mask = torch.ones(batch_size, s, dtype=torch.bool)
        src_mask[1::2, max(1, 2 * s // 3):] = False
        tgt_in = torch.randint(0, self.tgt_vocab_size, (batch_size, t), generator=g)
        return src, src_mask, tgt_in


@register_model(task="seq2seq", paper=PAPER)
def transformer_base(src_vocab_size: int = 32, tgt_vocab_size: int = 32, d_model: int = 512, num_heads: int = 8,
                     num_encoder_layers: int = 6, num_decoder_layers: int = 6, dim_feedforward: int = 2048,
                     dropout: float = 0.1, norm_first: bool = False, share_embeddings: bool = False,
                     tie_output: bool = True, max_len: int = 256) -> Transformer:
    """The paper's base model (Table 3): N = 6, d_model = 512, d_ff = 2048, h = 8, P_drop = 0.1,
    post-norm as published."""
    return Transformer(src_vocab_size, tgt_vocab_size, d_model, num_heads, num_encoder_layers, num_decoder_layers,
                       dim_feedforward, dropout, norm_first, share_embeddings, tie_output, max_len)


@register_model(task="seq2seq", paper=PAPER)
def transformer_small(src_vocab_size: int = 32, tgt_vocab_size: int = 32, d_model: int = 128, num_heads: int = 4,
                      num_encoder_layers: int = 3, num_decoder_layers: int = 3, dim_feedforward: int = 512,
                      dropout: float = 0.1, norm_first: bool = True, share_embeddings: bool = False,
                      tie_output: bool = True, max_len: int = 256) -> Transformer:
    """A CPU-sized Transformer for the embedded translation benchmarks: N = 3, d_model = 128,
    d_ff = 512, h = 4, pre-norm (trains stably with a short warm-up)."""
    return Transformer(src_vocab_size, tgt_vocab_size, d_model, num_heads, num_encoder_layers, num_decoder_layers,
                       dim_feedforward, dropout, norm_first, share_embeddings, tie_output, max_len)
