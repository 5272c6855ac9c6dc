"""Attention: scoring functions with masking, multi-head attention and positional encoding.

Shared by the sequence-to-sequence families (``zoo.models.seq2seq``'s attention decoder,
``zoo.models.transformer``). Every mask here is boolean with **True = keep / may attend**
(torch's own ``nn.MultiheadAttention`` uses the opposite convention for its masks):

* ``key_mask`` ``(B, K)``: True for the real tokens of each key sequence, False for padding;
* ``attn_mask`` ``(Q, K)`` or ``(B, Q, K)``: True where query ``q`` may look at key ``k``
  (``causal_mask(T)`` is the decoder's lower triangle).

A query row whose keys are all masked gets all-zero weights (hence a zero context), never NaN.

References: Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly Learning to Align
and Translate" (additive attention); Vaswani et al. 2017, "Attention Is All You Need" (scaled
dot-product and multi-head attention, sinusoidal positional encoding, section 3.2 and 3.5).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "masked_softmax", "causal_mask", "combine_masks", "AdditiveAttention", "DotProductAttention",
    "MultiHeadAttention", "SinusoidalPositionalEncoding",
]


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax of ``scores`` over ``dim`` among the entries where ``mask`` is True.

    ``mask`` is boolean, broadcastable to ``scores`` (True = keep), or None (plain softmax).
    Masked entries get weight 0; a row with every entry masked gets all zeros (not NaN, which
    a ``-inf`` fill alone would give: ``exp(-inf - (-inf))``)."""
    if mask is None:
        return F.softmax(scores, dim=dim)
    if mask.dtype != torch.bool:
        raise TypeError(f"masked_softmax: mask must be boolean (True = keep), got {mask.dtype}")
    # the most negative finite value, not -inf: a fully masked row then stays finite (uniform),
    # and the final multiplication by the mask zeroes it; elsewhere exp(min - max) is exactly 0
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return F.softmax(filled, dim=dim) * mask


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(length, length)`` bool, True on and below the diagonal: position ``t`` may attend to
    positions ``0..t`` only (the decoder's self-attention, Vaswani et al. 2017 section 3.2.3)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def combine_masks(key_mask: torch.Tensor | None, attn_mask: torch.Tensor | None,
                  batch: int, queries: int, keys: int) -> torch.Tensor | None:
    """One boolean mask broadcastable to ``(B, Q, K)`` from a key padding mask ``(B, K)`` and an
    attention mask ``(Q, K)`` or ``(B, Q, K)`` (True = may attend), or None when both are None.
    Shapes are checked, so that a mask built for another sequence fails here with its shape."""
    mask = None
    if key_mask is not None:
        if key_mask.dtype != torch.bool or tuple(key_mask.shape) != (batch, keys):
            raise ValueError(f"key_mask must be a bool tensor of shape (B, K) = {(batch, keys)}, "
                             f"got {key_mask.dtype} {tuple(key_mask.shape)}")
        mask = key_mask[:, None, :]  # (B, 1, K)
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool or tuple(attn_mask.shape) not in ((queries, keys), (batch, queries, keys)):
            raise ValueError(f"attn_mask must be a bool tensor of shape (Q, K) = {(queries, keys)} or "
                             f"(B, Q, K), got {attn_mask.dtype} {tuple(attn_mask.shape)}")
        mask = attn_mask if mask is None else mask & attn_mask  # (B, Q, K) or (Q, K)
    return mask


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) attention: ``score(q, k) = v^T tanh(W_q q + W_k k)``
    (Bahdanau et al. 2015, appendix A.1.2), softmax over the keys, weighted sum of the values.

    Args:
        query_dim, key_dim: features of a query and of a key.
        hidden_dim: size of the hidden layer of the scoring MLP.
        dropout: dropout on the attention weights (training only).
    Shapes: query ``(B, Q, dq)``, keys ``(B, K, dk)``, values ``(B, K, dv)``, key_mask ``(B, K)``
    -> context ``(B, Q, dv)``, weights ``(B, Q, K)``.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.w_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.w_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, q, k = query.shape[0], query.shape[1], keys.shape[1]
        # (B, Q, 1, h) + (B, 1, K, h) -> (B, Q, K, h): every query against every key
        features = torch.tanh(self.w_q(query)[:, :, None, :] + self.w_k(keys)[:, None, :, :])
        scores = self.v(features).squeeze(-1)  # (B, Q, K)
        weights = masked_softmax(scores, combine_masks(key_mask, None, b, q, k))
        return torch.bmm(self.dropout(weights), values), weights  # (B, Q, dv), (B, Q, K)


class DotProductAttention(nn.Module):
    """(Scaled) dot-product attention: ``softmax(Q K^T / sqrt(d)) V`` (Vaswani et al. 2017,
    equation 1; ``scaled=False`` drops the ``1/sqrt(d)``, Luong et al. 2015's "dot" score).

    Shapes: query ``(B, Q, d)``, keys ``(B, K, d)``, values ``(B, K, dv)``, key_mask ``(B, K)``,
    attn_mask ``(Q, K)`` or ``(B, Q, K)`` -> context ``(B, Q, dv)``, weights ``(B, Q, K)``.
    """

    def __init__(self, scaled: bool = True, dropout: float = 0.0):
        super().__init__()
        self.scaled = scaled
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                key_mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if query.shape[-1] != keys.shape[-1]:
            raise ValueError(f"dot-product attention needs queries and keys of the same size, got "
                             f"{query.shape[-1]} and {keys.shape[-1]}")
        b, q, k = query.shape[0], query.shape[1], keys.shape[1]
        scores = torch.bmm(query, keys.transpose(1, 2))  # (B, Q, K)
        if self.scaled:  # keeps the scores' variance near 1 whatever d (section 3.2.1)
            scores = scores / math.sqrt(query.shape[-1])
        weights = masked_softmax(scores, combine_masks(key_mask, attn_mask, b, q, k))
        return torch.bmm(self.dropout(weights), values), weights


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, section 3.2.2):
    ``MultiHead(Q, K, V) = Concat(head_1..head_h) W^O``,
    ``head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)`` with scaled dot-product attention and
    ``d_k = d_v = embed_dim / num_heads``.

    The same arithmetic as ``torch.nn.MultiheadAttention(embed_dim, num_heads, bias=bias,
    batch_first=True)``; :meth:`load_torch_state_dict` copies its weights in (its packed
    ``in_proj_weight`` is our ``q_proj``, ``k_proj``, ``v_proj`` stacked).

    Args:
        embed_dim: features of queries, keys, values and output (E).
        num_heads: heads (h); must divide ``embed_dim``.
        dropout: dropout on the attention weights (training only).
        bias: biases in the four projections.
    Shapes: query ``(B, Q, E)``, key ``(B, K, E)``, value ``(B, K, E)``, key_mask ``(B, K)``
    (True = real token), attn_mask ``(Q, K)`` or ``(B, Q, K)`` (True = may attend)
    -> out ``(B, Q, E)``, weights ``(B, Q, K)`` averaged over the heads (before dropout).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must be positive and divide embed_dim ({embed_dim})")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Glorot-uniform projections and zero biases, as torch's MultiheadAttention initialises them
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, T, d)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, q_len, e = query.shape
        k_len = key.shape[1]
        if e != self.embed_dim or key.shape[-1] != e or value.shape[-1] != e:
            raise ValueError(f"MultiHeadAttention(embed_dim={self.embed_dim}) got query/key/value with "
                             f"{e}/{key.shape[-1]}/{value.shape[-1]} features")
        mask = combine_masks(key_mask, attn_mask, b, q_len, k_len)  # (B, Q, K), (B, 1, K) or (Q, K)
        q = self._split(self.q_proj(query))  # (B, h, Q, d)
        k = self._split(self.k_proj(key))    # (B, h, K, d)
        v = self._split(self.v_proj(value))  # (B, h, K, d)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, h, Q, K)
        if mask is not None and mask.dim() == 3:
            mask = mask[:, None]  # (B, 1, Q|1, K): the same mask for every head
        weights = masked_softmax(scores, mask)  # (B, h, Q, K)
        context = torch.matmul(self.dropout(weights), v)  # (B, h, Q, d)
        context = context.transpose(1, 2).reshape(b, q_len, e)  # (B, Q, h*d): the heads concatenated
        return self.out_proj(context), weights.mean(dim=1)  # (B, Q, E), (B, Q, K)

    @torch.no_grad()
    def load_torch_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` with the same ``embed_dim`` (and
        equal query/key/value sizes: its packed ``in_proj_weight``) into this module."""
        if "in_proj_weight" not in state:
            raise KeyError("expected torch.nn.MultiheadAttention's state dict with a packed "
                           "'in_proj_weight' (query, key and value of the same size)")
        for proj, w in zip((self.q_proj, self.k_proj, self.v_proj), state["in_proj_weight"].chunk(3)):
            proj.weight.copy_(w)
        if self.q_proj.bias is not None:
            for proj, bias in zip((self.q_proj, self.k_proj, self.v_proj), state["in_proj_bias"].chunk(3)):
                proj.bias.copy_(bias)
            self.out_proj.bias.copy_(state["out_proj.bias"])
        self.out_proj.weight.copy_(state["out_proj.weight"])


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoids of Vaswani et al. 2017, section 3.5, then dropout:
    ``PE(pos, 2i) = sin(pos / 10000^(2i/E))``, ``PE(pos, 2i+1) = cos(pos / 10000^(2i/E))``.

    Args:
        embed_dim: features (E).
        max_len: longest sequence accepted; a longer one is refused with an error saying so.
        dropout: dropout on the sum (the paper's P_drop on embeddings + encodings).
    Shapes: ``(B, T, E) -> (B, T, E)``; ``offset`` shifts the positions (``T + offset <= max_len``).
    """

    def __init__(self, embed_dim: int, max_len: int = 512, dropout: float = 0.0):
        super().__init__()
        if embed_dim <= 0 or max_len <= 0:
            raise ValueError(f"embed_dim and max_len must be positive, got {embed_dim} and {max_len}")
        self.embed_dim, self.max_len = embed_dim, max_len
        position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (L, 1)
        # 1 / 10000^(2i/E) for i = 0 .. ceil(E/2)-1 (float64: exact to float32's last bit)
        inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, embed_dim, 2, dtype=torch.float64) / embed_dim)
        angles = position * inv_freq  # (L, ceil(E/2))
        pe = torch.zeros(max_len, embed_dim, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(angles)
        pe[:, 1::2] = torch.cos(angles[:, : embed_dim // 2])  # an odd E has one sine more than cosines
        # a buffer (moves with .to(device)) that is not saved: it is a function of the arguments
        self.register_buffer("pe", pe.float(), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        t = x.shape[1]
        if t + offset > self.max_len:
            raise ValueError(f"sequence of {t + offset} positions is longer than the positional "
                             f"encoding's max_len={self.max_len}; build the model with a larger max_len")
        if x.shape[-1] != self.embed_dim:
            raise ValueError(f"positional encoding of {self.embed_dim} features got inputs with {x.shape[-1]}")
        return self.dropout(x + self.pe[offset:offset + t].to(x.dtype))  # (B, T, E)
