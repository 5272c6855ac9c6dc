"""The Transformer (zoo.models.transformer) against the seq2seq net contract: causality, source
padding, beam-search row selection, cross-attention weights, bad inputs; its warm-up schedule;
and a tiny copy task it must learn."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.models.transformer import Transformer
from zoo.optim import WarmupInverseSqrt


def tiny(**kwargs) -> Transformer:
    args = dict(src_vocab_size=11, tgt_vocab_size=13, d_model=16, num_heads=2, num_encoder_layers=2,
                num_decoder_layers=2, dim_feedforward=32, dropout=0.1, max_len=32)
    args.update(kwargs)
    torch.manual_seed(0)
    return Transformer(**args).eval()


def test_registered_variants_and_contract():
    assert {"transformer_small", "transformer_base"} <= set(zoo.list_models(task="seq2seq"))
    net = zoo.create_model("transformer_small", src_vocab_size=20, tgt_vocab_size=30)
    assert net.zoo_spec["name"] == "transformer_small" and net.norm_first
    assert zoo.model_card("transformer_base").defaults["norm_first"] is False  # post-norm, as published
    src, src_mask, tgt_in = net.example_inputs(3)
    assert src.shape == src_mask.shape and src_mask.dtype == torch.bool and not src_mask.all()
    memory = net.encode(src, src_mask)
    assert isinstance(memory, dict) and all(v.shape[0] == 3 for v in memory.values())
    logits = net.decode(memory, tgt_in)
    assert logits.shape == (3, tgt_in.shape[1], 30)
    net.eval()
    torch.testing.assert_close(net(src, src_mask, tgt_in), net.decode(net.encode(src, src_mask), tgt_in))


def test_forward_backward_reaches_every_parameter():
    net = tiny().train()
    src, src_mask, tgt_in = net.example_inputs(4)
    out = net(src, src_mask, tgt_in)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_is_causal(norm_first):
    """Changing a later target token changes no earlier position's logits."""
    net = tiny(norm_first=norm_first)
    src, src_mask, tgt_in = net.example_inputs(2)
    memory = net.encode(src, src_mask)
    base = net.decode(memory, tgt_in)
    for t in (0, 4, tgt_in.shape[1] - 1):
        changed = tgt_in.clone()
        changed[:, t] = (changed[:, t] + 1) % 13
        out = net.decode(memory, changed)
        torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(out[:, t], base[:, t])
    # and a prefix decodes to the same logits as the whole sequence's first positions
    torch.testing.assert_close(net.decode(memory, tgt_in[:, :3]), base[:, :3], atol=1e-6, rtol=0)


@pytest.mark.parametrize("norm_first", [True, False])
def test_source_padding_changes_nothing(norm_first):
    """Extra padded source positions (any ids under a False mask) leave the logits and the real
    positions' memory unchanged."""
    net = tiny(norm_first=norm_first)
    src, src_mask, tgt_in = net.example_inputs(2)
    memory = net.encode(src, src_mask)
    base = net.decode(memory, tgt_in)
    padded = torch.cat([src, torch.randint(0, 11, (2, 5))], dim=1)
    padded_mask = torch.cat([src_mask, torch.zeros(2, 5, dtype=torch.bool)], dim=1)
    memory2 = net.encode(padded, padded_mask)
    torch.testing.assert_close(net.decode(memory2, tgt_in), base, atol=1e-5, rtol=0)
    real = src_mask
    torch.testing.assert_close(memory2["memory"][:, : src.shape[1]][real], memory["memory"][real], atol=1e-5, rtol=0)
    # the ids under the mask do not matter either
    other = src.clone()
    other[~src_mask] = (other[~src_mask] + 3) % 11
    torch.testing.assert_close(net(other, src_mask, tgt_in), base, atol=1e-6, rtol=0)


def test_select_picks_rows_for_beam_search():
    net = tiny()
    src, src_mask, tgt_in = net.example_inputs(3)
    memory = net.encode(src, src_mask)
    index = torch.tensor([2, 0, 2, 1])
    chosen = net.select(memory, index)
    assert set(chosen) == set(memory) and chosen["memory"].shape[0] == 4
    out = net.decode(chosen, tgt_in[index])
    torch.testing.assert_close(out, net.decode(memory, tgt_in)[index], atol=1e-6, rtol=0)


def test_cross_attention_weights():
    net = tiny()
    src, src_mask, tgt_in = net.example_inputs(2)
    memory = net.encode(src, src_mask)
    w = net.attention(memory, tgt_in)
    assert w.shape == (2, tgt_in.shape[1], src.shape[1])
    torch.testing.assert_close(w.sum(-1), torch.ones(2, tgt_in.shape[1]))
    assert torch.all(w[1][:, ~src_mask[1]] == 0)


def test_embeddings_tied_and_shared():
    net = tiny()
    assert net.generator is None and net.src_embed is not net.tgt_embed
    shared = tiny(src_vocab_size=13, share_embeddings=True)
    assert shared.src_embed is shared.tgt_embed
    untied = tiny(tie_output=False)
    assert untied.generator.weight is not untied.tgt_embed.weight
    src, src_mask, tgt_in = untied.example_inputs(2)
    assert untied(src, src_mask, tgt_in).shape == (2, tgt_in.shape[1], 13)
    # embeddings scaled by sqrt(d_model): the first layer sees unit-size entries
    assert abs(float(net.tgt_embed.weight.detach().std()) * math.sqrt(16) - 1.0) < 0.2


@pytest.mark.bad_input
def test_bad_inputs_get_clear_errors():
    net = tiny()
    src, src_mask, tgt_in = net.example_inputs(2)
    with pytest.raises(ValueError, match="share_embeddings=true needs one joint vocabulary"):
        tiny(share_embeddings=True)
    with pytest.raises(ValueError, match=r"src holds token ids outside \[0, 11\)"):
        net(src + 11, src_mask, tgt_in)
    with pytest.raises(ValueError, match=r"tgt_in holds token ids outside \[0, 13\)"):
        net(src, src_mask, tgt_in - 20)
    with pytest.raises(ValueError, match="src is empty"):
        net(src[:, :0], src_mask[:, :0], tgt_in)
    with pytest.raises(ValueError, match="longer than max_len=32"):
        net(torch.zeros(1, 33, dtype=torch.long), torch.ones(1, 33, dtype=torch.bool), tgt_in[:1])
    with pytest.raises(ValueError, match="src_mask must be a bool tensor"):
        net(src, src_mask.long(), tgt_in)
    with pytest.raises(ValueError, match="token ids"):
        net(src.float(), src_mask, tgt_in)
    with pytest.raises(ValueError, match="divide embed_dim"):
        tiny(num_heads=3)


# ---------------------------------------------------------------- the warm-up schedule

def _lrs(steps: int, **kwargs) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=kwargs.pop("lr", 1.0))
    sched = WarmupInverseSqrt(opt, **kwargs)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_inverse_sqrt_peaks_at_the_optimizer_lr():
    lrs = _lrs(40, warmup_steps=10, lr=2e-3)
    assert lrs[0] == pytest.approx(2e-4)            # step 1 of 10
    assert max(lrs) == pytest.approx(2e-3) == lrs[9]  # step 10: the peak
    assert lrs[39] == pytest.approx(2e-3 * math.sqrt(10 / 40))
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10])) and all(a > b for a, b in zip(lrs[9:], lrs[10:]))


def test_noam_formula_as_written():
    d, w = 512, 4000
    lrs = _lrs(5, warmup_steps=w, d_model=d)
    for s, lr in enumerate(lrs, start=1):
        assert lr == pytest.approx(d ** -0.5 * min(s ** -0.5, s * w ** -1.5))
    with pytest.raises(ValueError, match="warmup_steps"):
        _lrs(1, warmup_steps=0)


# ---------------------------------------------------------------- it learns

def test_learns_to_copy_sequences():
    """A 1-layer model learns to copy random digit strings in a few hundred steps; greedy
    decoding (re-running ``decode`` on the growing prefix) reproduces held-out strings."""
    torch.manual_seed(0)
    pad, bos, eos, n_sym, length = 0, 1, 2, 8, 6
    vocab = 3 + n_sym
    net = Transformer(vocab, vocab, d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1,
                      dim_feedforward=64, dropout=0.0, max_len=16)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, betas=(0.9, 0.98))
    sched = WarmupInverseSqrt(opt, warmup_steps=30)

    def batch(n):
        src = torch.randint(3, vocab, (n, length))
        tgt_in = torch.cat([torch.full((n, 1), bos), src], dim=1)
        tgt_out = torch.cat([src, torch.full((n, 1), eos)], dim=1)
        return src, torch.ones(n, length, dtype=torch.bool), tgt_in, tgt_out

    net.train()
    for _ in range(250):
        src, mask, tgt_in, tgt_out = batch(64)
        logits = net(src, mask, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, vocab), tgt_out.reshape(-1), label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    src, mask, _, _ = batch(50)
    with torch.no_grad():
        memory = net.encode(src, mask)
        out = torch.full((50, 1), bos)
        for _ in range(length + 1):
            nxt = net.decode(memory, out)[:, -1].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], dim=1)
    exact = (out[:, 1:length + 1] == src).all(1).float().mean().item()
    assert exact >= 0.9, f"copied {exact:.0%} of held-out strings exactly"
    assert (out[:, length + 1] == eos).float().mean() >= 0.9
