"""Attention layers (zoo.layers.attention): masking, shapes, and our multi-head attention against
torch.nn.MultiheadAttention with the same weights."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.layers.attention import (
    AdditiveAttention, DotProductAttention, MultiHeadAttention, SinusoidalPositionalEncoding, causal_mask,
    masked_softmax,
)


# ---------------------------------------------------------------- masked softmax

def test_masked_softmax_is_softmax_over_the_kept_entries():
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 1, 0, 1]], dtype=torch.bool)[:, None, :]  # (B, 1, K)
    w = masked_softmax(scores, mask)
    assert torch.all(w[~mask.expand_as(w)] == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3))
    expected = torch.softmax(scores[0, :, :3], dim=-1)
    torch.testing.assert_close(w[0, :, :3], expected)


def test_masked_softmax_fully_masked_rows_are_zero_not_nan():
    scores = torch.randn(2, 4, requires_grad=True)
    mask = torch.tensor([[True, False, True, True], [False, False, False, False]])
    w = masked_softmax(scores, mask)
    assert torch.isfinite(w).all()
    assert torch.equal(w[1], torch.zeros(4))
    torch.testing.assert_close(w[0].sum(), torch.tensor(1.0))
    (w * torch.randn(2, 4)).sum().backward()
    assert torch.isfinite(scores.grad).all() and torch.equal(scores.grad[1], torch.zeros(4))


def test_masked_softmax_without_mask_and_bad_mask():
    scores = torch.randn(3, 4)
    torch.testing.assert_close(masked_softmax(scores, None), torch.softmax(scores, -1))
    with pytest.raises(TypeError, match="boolean"):
        masked_softmax(scores, torch.ones(3, 4))


def test_masked_softmax_under_half_precision_is_finite():
    scores = torch.randn(2, 4).to(torch.bfloat16)
    mask = torch.tensor([[True, True, False, False], [False] * 4])
    w = masked_softmax(scores, mask)
    assert torch.isfinite(w.float()).all() and w[1].abs().sum() == 0


def test_causal_mask():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert torch.equal(m, torch.tril(torch.ones(4, 4)).bool())


# ---------------------------------------------------------------- additive and dot-product attention

def test_additive_attention_shapes_and_masking():
    torch.manual_seed(0)
    att = AdditiveAttention(query_dim=6, key_dim=5, hidden_dim=7)
    q, k, v = torch.randn(2, 3, 6), torch.randn(2, 4, 5), torch.randn(2, 4, 9)
    key_mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    context, weights = att(q, k, v, key_mask)
    assert context.shape == (2, 3, 9) and weights.shape == (2, 3, 4)
    assert torch.all(weights[1, :, 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    # the padded keys' values do not matter
    v2 = v.clone()
    v2[1, 2:] = 100.0
    k2 = k.clone()
    k2[1, 2:] = -7.0
    torch.testing.assert_close(att(q, k2, v2, key_mask)[0], context)
    # the score is v^T tanh(W_q q + W_k k)
    s = att.v(torch.tanh(att.w_q(q[0, 0]) + att.w_k(k[0, 1])))
    expected = torch.softmax(att.v(torch.tanh(att.w_q(q[0, 0]) + att.w_k(k[0]))).squeeze(-1), -1)[1]
    assert s.shape == (1,)
    torch.testing.assert_close(weights[0, 0, 1], expected)


def test_additive_attention_without_mask_and_fully_masked():
    att = AdditiveAttention(4, 4, 8)
    q, k, v = torch.randn(2, 1, 4), torch.randn(2, 3, 4), torch.randn(2, 3, 2)
    context, weights = att(q, k, v)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 1))
    context, weights = att(q, k, v, torch.zeros(2, 3, dtype=torch.bool))
    assert torch.equal(context, torch.zeros(2, 1, 2)) and torch.equal(weights, torch.zeros(2, 1, 3))


def test_dot_product_attention():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 4, 8), torch.randn(2, 4, 5)
    key_mask = torch.tensor([[True] * 4, [True, True, True, False]])
    context, weights = DotProductAttention()(q, k, v, key_mask)
    scores = q @ k.transpose(1, 2) / math.sqrt(8)
    scores[1, :, 3] = float("-inf")
    expected = torch.softmax(scores, -1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, expected @ v)
    # unscaled, and with an attention mask (Q, K) and (B, Q, K)
    _, w_unscaled = DotProductAttention(scaled=False)(q, k, v)
    torch.testing.assert_close(w_unscaled, torch.softmax(q @ k.transpose(1, 2), -1))
    attn_mask = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    _, w = DotProductAttention()(q, k, v, key_mask, attn_mask)
    assert torch.all(w[:, ~attn_mask] == 0)
    _, w3 = DotProductAttention()(q, k, v, key_mask, attn_mask.expand(2, 3, 4))
    torch.testing.assert_close(w, w3)


@pytest.mark.bad_input
def test_masks_of_the_wrong_shape_are_refused():
    q, k = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"key_mask must be a bool tensor of shape \(B, K\)"):
        DotProductAttention()(q, k, k, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_mask"):
        DotProductAttention()(q, k, k, torch.ones(2, 4))  # not boolean
    with pytest.raises(ValueError, match="attn_mask"):
        DotProductAttention()(q, k, k, None, torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="same size"):
        DotProductAttention()(q, torch.randn(2, 4, 7), k)
    with pytest.raises(ValueError, match="divide embed_dim"):
        MultiHeadAttention(10, 3)


# ---------------------------------------------------------------- multi-head attention vs torch

def _pair(embed_dim=16, num_heads=4, bias=True, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    ref = torch.nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=True).to(dtype)
    if bias:  # torch zeroes its biases at init: give them values, so that copying them is tested
        with torch.no_grad():
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    ours = MultiHeadAttention(embed_dim, num_heads, bias=bias).to(dtype)
    ours.load_torch_state_dict(ref.state_dict())
    return ours.eval(), ref.eval()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("bias", [True, False])
def test_mha_matches_torch_cross_attention_with_key_padding(dtype, tol, bias):
    ours, ref = _pair(bias=bias, dtype=dtype)
    q, kv = torch.randn(3, 5, 16, dtype=dtype), torch.randn(3, 7, 16, dtype=dtype)
    key_mask = torch.ones(3, 7, dtype=torch.bool)
    key_mask[1, 4:] = False
    key_mask[2, 1:] = False
    out, w = ours(q, kv, kv, key_mask=key_mask)
    out_ref, w_ref = ref(q, kv, kv, key_padding_mask=~key_mask, need_weights=True, average_attn_weights=True)
    assert out.shape == (3, 5, 16) and w.shape == (3, 5, 7)
    torch.testing.assert_close(out, out_ref, atol=tol, rtol=0)
    torch.testing.assert_close(w, w_ref, atol=tol, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_mha_matches_torch_self_attention_with_causal_and_padding_masks(dtype, tol):
    ours, ref = _pair(embed_dim=12, num_heads=3, dtype=dtype, seed=1)
    x = torch.randn(4, 6, 12, dtype=dtype)
    key_mask = torch.ones(4, 6, dtype=torch.bool)
    key_mask[0, 3:] = False
    key_mask[3, 5:] = False
    causal = causal_mask(6)
    out, w = ours(x, x, x, key_mask=key_mask, attn_mask=causal)
    out_ref, w_ref = ref(x, x, x, key_padding_mask=~key_mask, attn_mask=~causal, need_weights=True)
    torch.testing.assert_close(out, out_ref, atol=tol, rtol=0)
    torch.testing.assert_close(w, w_ref, atol=tol, rtol=0)
    assert torch.all(w[:, ~causal] == 0)
    # a (B, Q, K) attention mask: torch takes one per head, (B * heads, Q, K)
    per_example = causal.expand(4, 6, 6).clone()
    per_example[2, :, 0] = False
    per_example[2, 0, 0] = True  # keep a key for every row (torch gives NaN for a fully masked one)
    out, w = ours(x, x, x, attn_mask=per_example)
    out_ref, w_ref = ref(x, x, x, attn_mask=~per_example.repeat_interleave(3, dim=0), need_weights=True)
    torch.testing.assert_close(out, out_ref, atol=tol, rtol=0)
    torch.testing.assert_close(w, w_ref, atol=tol, rtol=0)


def test_mha_gradients_match_torch():
    ours, ref = _pair()
    q = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    kv = torch.randn(2, 4, 16, dtype=torch.float64)
    q2 = q.detach().clone().requires_grad_(True)
    key_mask = torch.tensor([[True] * 4, [True, True, False, False]])
    g = torch.randn(2, 3, 16, dtype=torch.float64)
    (ours(q, kv, kv, key_mask=key_mask)[0] * g).sum().backward()
    (ref(q2, kv, kv, key_padding_mask=~key_mask)[0] * g).sum().backward()
    torch.testing.assert_close(q.grad, q2.grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours.out_proj.weight.grad, ref.out_proj.weight.grad, atol=1e-12, rtol=0)


def test_mha_fully_masked_query_gives_zero_weights_and_finite_output():
    ours, _ = _pair(dtype=torch.float32)
    x = torch.randn(1, 3, 16)
    attn_mask = torch.tensor([[False, False, False], [True, False, False], [True, True, True]])
    out, w = ours(x, x, x, attn_mask=attn_mask)
    assert torch.isfinite(out).all() and torch.equal(w[0, 0], torch.zeros(3))
    # a query that attends to nothing gets the output projection's bias only
    torch.testing.assert_close(out[0, 0], ours.out_proj.bias)


def test_mha_dropout_only_in_training():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    mha.eval()
    a, b = mha(x, x, x)[0], mha(x, x, x)[0]
    assert torch.equal(a, b)
    mha.train()
    assert not torch.equal(mha(x, x, x)[0], a)


def test_load_torch_state_dict_refuses_other_layouts():
    with pytest.raises(KeyError, match="in_proj_weight"):
        MultiHeadAttention(8, 2).load_torch_state_dict({"q_proj.weight": torch.zeros(8, 8)})


# ---------------------------------------------------------------- positional encoding

def test_sinusoidal_positional_encoding_values():
    pe = SinusoidalPositionalEncoding(6, max_len=50)
    x = torch.zeros(2, 10, 6)
    y = pe(x)
    pos, i = 7, 1  # dimension 2i = 2 and 2i + 1 = 3
    torch.testing.assert_close(y[0, pos, 2], torch.tensor(math.sin(pos / 10000 ** (2 * i / 6))))
    torch.testing.assert_close(y[1, pos, 3], torch.tensor(math.cos(pos / 10000 ** (2 * i / 6))))
    torch.testing.assert_close(y[0, 0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    torch.testing.assert_close(pe(x[:, :3], offset=7)[:, 0], y[:, 7])
    assert "pe" not in pe.state_dict()  # a function of the arguments: not saved
    # an odd width: one more sine than cosines
    assert SinusoidalPositionalEncoding(5, max_len=8)(torch.zeros(1, 8, 5)).shape == (1, 8, 5)


@pytest.mark.bad_input
def test_positional_encoding_refuses_too_long_sequences():
    pe = SinusoidalPositionalEncoding(4, max_len=8)
    with pytest.raises(ValueError, match="longer than the positional encoding's max_len=8"):
        pe(torch.zeros(1, 9, 4))
    with pytest.raises(ValueError, match="4 features"):
        pe(torch.zeros(1, 3, 5))


def test_gradients_of_the_attention_layers_are_exact():
    """Finite differences against autograd (float64), masks included."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double()
    add = AdditiveAttention(8, 8, 6).double()
    q = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    kv = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    key_mask = torch.tensor([[True] * 4, [True, True, False, False]])
    attn_mask = causal_mask(4)[:3]
    assert torch.autograd.gradcheck(lambda a, b: mha(a, b, b, key_mask=key_mask, attn_mask=attn_mask)[0], (q, kv))
    assert torch.autograd.gradcheck(lambda a, b: add(a, b, b, key_mask)[0], (q, kv))
