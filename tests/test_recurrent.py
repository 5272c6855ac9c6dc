"""The hand-written recurrent cells and layers (zoo.layers.recurrent) against torch's, their
gradients, the fused path, exploding gradients and clipping, and sampling from a language model
(zoo.models.rnn)."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import zoo
from zoo.layers.recurrent import (GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, from_torch, load_torch_weights,
                                  recurrent_layer)
from zoo.models.rnn import RecurrentClassifier, RecurrentLanguageModel, SequenceTagger, sample

TOL = 1e-5
TORCH_LAYERS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
TORCH_CELLS = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}
B, T, D, H = 4, 7, 3, 5
LENGTHS = torch.tensor([7, 3, 1, 5])  # unsorted, with a full-length and a one-step sequence


def _flat(hidden) -> torch.Tensor:
    return hidden if isinstance(hidden, torch.Tensor) else torch.cat(hidden)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _run_torch(module: nn.RNNBase, x: torch.Tensor, lengths, hx=None):
    if lengths is None:
        return module(x, hx)
    packed = pack_padded_sequence(x, lengths, batch_first=module.batch_first, enforce_sorted=False)
    out, hidden = module(packed, hx)
    steps = x.shape[1 if module.batch_first else 0]
    out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=steps)
    return out, hidden


def _compare(ours: nn.Module, theirs: nn.Module, run_ours, run_theirs, x: torch.Tensor) -> dict[str, float]:
    """Max |difference| of the outputs, the final states, and the gradients of every parameter
    (by torch's name: ``theirs`` is a torch module or a second hand-written layer) and of the
    input, under a loss that weighs every output and state."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, hid_a = run_ours(xa)
    out_b, hid_b = run_theirs(xb)
    g = torch.Generator().manual_seed(1)
    w_out, w_hid = torch.randn(out_a.shape, generator=g), torch.randn(_flat(hid_a).shape, generator=g)
    ((out_a * w_out).sum() + (_flat(hid_a) * w_hid).sum()).backward()
    ((out_b * w_out).sum() + (_flat(hid_b) * w_hid).sum()).backward()
    mine = ours.torch_names()
    theirs = theirs.torch_names() if hasattr(theirs, "torch_names") else dict(theirs.named_parameters())
    assert set(mine) == set(theirs)
    diffs = {"output": _max_diff(out_a, out_b), "final state": _max_diff(_flat(hid_a), _flat(hid_b)),
             "grad input": _max_diff(xa.grad, xb.grad)}
    for name, p in theirs.items():
        diffs[f"grad {name}"] = _max_diff(mine[name].grad, p.grad)
    return diffs


# -- layers against torch's -----------------------------------------------------------------------
@pytest.mark.parametrize("kind,num_layers,bidirectional,with_lengths",
                         list(itertools.product(["rnn", "gru", "lstm"], [1, 2], [False, True], [False, True])))
def test_layer_matches_torch(kind, num_layers, bidirectional, with_lengths):
    torch.manual_seed(0)
    theirs = TORCH_LAYERS[kind](D, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    ours = from_torch(theirs)
    assert type(ours) is {"rnn": RNN, "gru": GRU, "lstm": LSTM}[kind] and not ours.fused
    lengths = LENGTHS if with_lengths else None
    x = torch.randn(B, T, D)
    diffs = _compare(ours, theirs, lambda v: ours(v, lengths=lengths), lambda v: _run_torch(theirs, v, lengths), x)
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= TOL, f"{kind} L={num_layers} bi={bidirectional} lengths={with_lengths}: {worst} {diffs}"


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_time_major_input_and_initial_state_match_torch(kind):
    torch.manual_seed(0)
    theirs = TORCH_LAYERS[kind](D, H, num_layers=2, bidirectional=True, batch_first=False)
    ours = from_torch(theirs)
    shape = (4, B, H)
    hx = torch.randn(shape) if kind != "lstm" else (torch.randn(shape), torch.randn(shape))
    x = torch.randn(T, B, D)  # (T, B, D)
    diffs = _compare(ours, theirs, lambda v: ours(v, hx, lengths=LENGTHS),
                     lambda v: _run_torch(theirs, v, LENGTHS, hx), x)
    assert max(diffs.values()) <= TOL, diffs


def test_relu_rnn_matches_torch():
    torch.manual_seed(0)
    theirs = nn.RNN(D, H, num_layers=2, nonlinearity="relu", batch_first=True)
    ours = from_torch(theirs)
    diffs = _compare(ours, theirs, lambda v: ours(v, lengths=LENGTHS), lambda v: _run_torch(theirs, v, LENGTHS),
                     torch.randn(B, T, D))
    assert max(diffs.values()) <= TOL, diffs


# -- cells, step for step -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_cell_matches_torch_step_for_step(kind):
    torch.manual_seed(0)
    theirs = TORCH_CELLS[kind](D, H)
    ours = from_torch(theirs)
    assert isinstance(ours, {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell}[kind])
    xs = torch.randn(T, B, D)
    xa, xb = xs.clone().requires_grad_(), xs.clone().requires_grad_()
    state_a = state_b = None
    loss_a = loss_b = 0.0
    for t in range(T):
        state_a, state_b = ours(xa[t], state_a), theirs(xb[t], state_b)
        diff = _max_diff(_flat(state_a), _flat(state_b))
        assert diff <= TOL, f"{kind} step {t}: state differs by {diff}"
        w = torch.randn(_flat(state_a).shape)
        loss_a, loss_b = loss_a + (_flat(state_a) * w).sum(), loss_b + (_flat(state_b) * w).sum()
    loss_a.backward()
    loss_b.backward()
    assert _max_diff(xa.grad, xb.grad) <= TOL
    for name, p in theirs.named_parameters():
        assert _max_diff(getattr(ours, name).grad, p.grad) <= TOL, name


def test_unbatched_cell_step():
    torch.manual_seed(0)
    theirs = nn.LSTMCell(D, H)
    ours = from_torch(theirs)
    x, state = torch.randn(D), (torch.randn(H), torch.randn(H))
    for a, b in zip(ours(x, state), theirs(x, state)):
        assert a.shape == (H,) and _max_diff(a, b) <= TOL


# -- gradient checks in float64 -------------------------------------------------------------------
CELL_CASES = {
    "rnn_tanh": lambda: RNNCell(3, 2),
    "gru": lambda: GRUCell(3, 2),
    "gru_notes_form": lambda: GRUCell(3, 2, reset_after=False),
    "lstm": lambda: LSTMCell(3, 2),
}


@pytest.mark.parametrize("name", list(CELL_CASES))
def test_cell_gradcheck(name):
    """Numerical against autograd gradients of the input, the state and every parameter."""
    torch.manual_seed(0)
    cell = CELL_CASES[name]().double()
    names = [n for n, _ in cell.named_parameters()]
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, 2, dtype=torch.float64, requires_grad=True) for _ in range(cell.state_size))
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]

    def f(x, *rest):
        st, ps = rest[: cell.state_size], rest[cell.state_size:]
        out = functional_call(cell, dict(zip(names, ps)), (x, st[0] if len(st) == 1 else st))
        return out if isinstance(out, torch.Tensor) else torch.cat(out)

    assert torch.autograd.gradcheck(f, (x, *state, *params), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_layer_gradcheck_with_lengths(kind):
    """The masked, stacked, bidirectional loop: numerical against autograd gradients."""
    torch.manual_seed(0)
    layer = recurrent_layer(kind, 2, 2, num_layers=2, bidirectional=True).double()
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([3, 2])

    def f(x, *ps):
        out, hidden = functional_call(layer, dict(zip(names, ps)), (x,), {"lengths": lengths})
        return out.sum(-1), _flat(hidden)

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-7)


def test_padding_gets_no_gradient_and_does_not_change_the_final_state():
    torch.manual_seed(0)
    layer = LSTM(D, H, bidirectional=True)
    x = torch.randn(B, T, D, requires_grad=True)
    out, (h, c) = layer(x, lengths=LENGTHS)
    (out.sum() + h.sum() + c.sum()).backward()
    pad = torch.arange(T)[None, :] >= LENGTHS[:, None]  # (B, T)
    assert (x.grad[pad] == 0).all() and (out[pad] == 0).all()
    x2 = x.detach().clone()
    x2[pad] = 1e3  # anything in the padding
    out2, (h2, c2) = layer(x2, lengths=LENGTHS)
    assert torch.equal(out, out2) and torch.equal(h, h2) and torch.equal(c, c2)


# -- the fused path -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,with_lengths", list(itertools.product(["rnn", "gru", "lstm"], [False, True])))
def test_fused_equals_hand_written(kind, with_lengths):
    torch.manual_seed(0)
    hand = recurrent_layer(kind, D, H, num_layers=2, bidirectional=True)
    fused = recurrent_layer(kind, D, H, num_layers=2, bidirectional=True, fused=True)
    fused.load_state_dict(hand.state_dict())
    lengths = LENGTHS if with_lengths else None
    hx = torch.randn(4, B, H) if kind != "lstm" else (torch.randn(4, B, H), torch.randn(4, B, H))
    diffs = _compare(hand, fused, lambda v: hand(v, hx, lengths=lengths), lambda v: fused(v, hx, lengths=lengths),
                     torch.randn(B, T, D))
    assert max(diffs.values()) <= TOL, diffs


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_fused_equals_hand_written_on_cuda(kind):
    """On a GPU the fused path is cuDNN's; float64, so that no TF32 rounding enters."""
    torch.manual_seed(0)
    hand = recurrent_layer(kind, D, H, num_layers=2, bidirectional=True).double().cuda()
    fused = recurrent_layer(kind, D, H, num_layers=2, bidirectional=True, fused=True).double().cuda()
    fused.load_state_dict(hand.state_dict())
    x = torch.randn(B, T, D, dtype=torch.float64, device="cuda")
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    (out_a, hid_a), (out_b, hid_b) = hand(xa, lengths=LENGTHS), fused(xb, lengths=LENGTHS.cuda())
    assert _max_diff(out_a, out_b) <= TOL and _max_diff(_flat(hid_a), _flat(hid_b)) <= TOL
    (out_a.sum() + _flat(hid_a).sum()).backward()
    (out_b.sum() + _flat(hid_b).sum()).backward()
    assert _max_diff(xa.grad, xb.grad) <= TOL
    for name, p in fused.torch_names().items():
        assert _max_diff(hand.torch_names()[name].grad, p.grad) <= TOL, name


def test_fused_gru_needs_torch_form():
    with pytest.raises(ValueError, match="reset_after"):
        GRU(D, H, reset_after=False, fused=True)


# -- weights to and from torch --------------------------------------------------------------------
def test_weights_round_trip():
    torch.manual_seed(0)
    ours = LSTM(D, H, num_layers=2, bidirectional=True)
    theirs = ours.to_torch()
    assert set(theirs.state_dict()) == set(ours.torch_names())
    other = LSTM(D, H, num_layers=2, bidirectional=True)
    load_torch_weights(other, theirs.state_dict())
    for name, p in other.torch_names().items():
        assert torch.equal(p, theirs.state_dict()[name])
    with pytest.raises(ValueError, match="do not fit"):
        load_torch_weights(LSTM(D, H), theirs)
    with pytest.raises(ValueError, match="has"):
        load_torch_weights(LSTM(D, H + 1, num_layers=2, bidirectional=True), theirs)
    with pytest.raises(TypeError):
        from_torch(nn.Linear(2, 2))


def test_bad_lengths_are_refused():
    layer = GRU(D, H)
    with pytest.raises(ValueError, match=r"\[1, T\]"):
        layer(torch.randn(2, 4, D), lengths=torch.tensor([5, 2]))
    with pytest.raises(ValueError, match="expects"):
        layer(torch.randn(2, 4, D + 1))


# -- exploding gradients and clipping -------------------------------------------------------------
def _train_vanilla_rnn(radius: float, nonlinearity: str, clip: float | None, steps: int = 5, lr: float = 0.1):
    """A few SGD steps of a vanilla RNN whose recurrent matrix is ``radius`` times an orthogonal
    one (spectral radius ``radius``) on 60-step sequences; returns the gradient norms before any
    clipping, the losses, and the parameters after."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    rnn, head = RNN(4, 16, nonlinearity=nonlinearity), nn.Linear(16, 1)
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
        rnn.cells[0].weight_hh.copy_(radius * q)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=lr)
    x, y = 0.1 * torch.randn(8, 60, 4, generator=g), torch.randn(8, 1, generator=g)
    norms, losses = [], []
    for _ in range(steps):
        opt.zero_grad()
        _, h_n = rnn(x)
        loss = ((head(h_n[-1]) - y) ** 2).mean()
        loss.backward()
        if clip is None:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        else:
            norm = nn.utils.clip_grad_norm_(params, clip)  # the norm before clipping
            after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
            assert not torch.isfinite(after) or after <= clip * (1 + 1e-5)
        norms.append(norm.item())
        losses.append(loss.item())
        opt.step()
    return norms, losses, torch.cat([p.detach().flatten() for p in params])


@pytest.mark.parametrize("nonlinearity,radius", [("tanh", 3.0), ("relu", 1.5)])
def test_exploding_gradients_and_clipping(nonlinearity, radius):
    healthy, _, _ = _train_vanilla_rnn(0.5, nonlinearity, None)
    norms, losses, params = _train_vanilla_rnn(radius, nonlinearity, None)
    c_norms, c_losses, c_params = _train_vanilla_rnn(radius, nonlinearity, clip=1.0)
    said = (f"{nonlinearity}: gradient norms with spectral radius 0.5: {healthy}; radius {radius} "
            f"unclipped: {norms} (losses {losses}); clipped at 1 (norms before clipping): {c_norms} "
            f"(losses {c_losses}); largest |parameter| unclipped {params.abs().max().item():.3g}, "
            f"clipped {c_params.abs().max().item():.3g}")
    assert max(healthy) < 10, said
    blew_up = not all(map(torch.isfinite, map(torch.tensor, losses))) or max(norms) > 1e4 * max(healthy)
    assert blew_up, said
    # unclipped, one step moves the parameters by lr * norm: they blow up, or turn non-finite
    assert not torch.isfinite(params).all() or params.abs().max() > 1e3, said
    # clipped, each step moves the parameters by lr * 1 at most: they stay finite and small
    assert torch.isfinite(c_params).all() and c_params.abs().max() < 10, said
    assert all(map(lambda v: torch.isfinite(torch.tensor(v)), c_losses)), said


# -- the nets -------------------------------------------------------------------------------------
@pytest.mark.parametrize("pooling,bidirectional", [("last", False), ("last", True), ("mean", True), ("max", False)])
def test_classifier_ignores_padding(pooling, bidirectional):
    torch.manual_seed(0)
    net = RecurrentClassifier(vocab_size=20, num_classes=3, embedding_dim=6, cell="gru", hidden_size=5,
                              num_layers=2, bidirectional=bidirectional, pooling=pooling).eval()
    seqs = [torch.randint(0, 20, (n,)) for n in LENGTHS.tolist()]
    padded = torch.zeros(B, T, dtype=torch.long)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    batch = net(padded, LENGTHS)
    assert batch.shape == (B, 3)
    for i, s in enumerate(seqs):
        alone = net(s[None])
        assert _max_diff(batch[i], alone[0]) <= TOL


def test_feature_input_and_tagger_shapes():
    torch.manual_seed(0)
    net = RecurrentClassifier(vocab_size=0, in_features=D, num_classes=2, cell="lstm", hidden_size=H)
    (x,) = net.example_inputs(3)
    assert x.shape[0] == 3 and x.dim() == 3 and net(x).shape == (3, 2)
    tagger = SequenceTagger(vocab_size=30, num_tags=4, hidden_size=H)
    assert tagger.rnn.bidirectional
    assert tagger(torch.randint(0, 30, (B, T)), LENGTHS).shape == (B, T, 4)
    with pytest.raises(ValueError, match="exactly one"):
        RecurrentClassifier(vocab_size=10, in_features=3)


def test_language_model_carries_its_state():
    """Reading a sequence in two chunks, carrying the state, equals reading it at once."""
    torch.manual_seed(0)
    net = RecurrentLanguageModel(vocab_size=11, embedding_dim=6, cell="lstm", hidden_size=6, num_layers=2,
                                 tie_weights=True).eval()
    tokens = torch.randint(0, 11, (2, 9))
    whole = net(tokens)
    first, state = net.forward_with_state(tokens[:, :4])
    second, _ = net.forward_with_state(tokens[:, 4:], state)
    assert whole.shape == (2, 9, 11)
    assert _max_diff(torch.cat([first, second], 1), whole) <= TOL
    assert net.decoder.weight is net.embedding.weight


def test_registered_nets_build_fused():
    torch.manual_seed(0)
    hand = zoo.create_model("lstm_classifier", vocab_size=30, bidirectional=True, num_layers=2)
    fused = zoo.create_model("lstm_classifier", vocab_size=30, bidirectional=True, num_layers=2, fused=True)
    fused.load_state_dict(hand.state_dict())
    (x,) = hand.example_inputs(3)
    lengths = torch.tensor([12, 5, 9])
    assert _max_diff(hand(x, lengths), fused(x, lengths)) <= TOL


# -- sampling -------------------------------------------------------------------------------------
def _char_lm() -> RecurrentLanguageModel:
    torch.manual_seed(0)
    net = RecurrentLanguageModel(vocab_size=13, embedding_dim=8, cell="gru", hidden_size=16)
    with torch.no_grad():  # sharper distributions than at initialisation, so that draws differ
        net.decoder.weight.mul_(8)
    return net


def _argmax_decode(net: RecurrentLanguageModel, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy decoding the slow way: re-read the whole prefix at every step (no carried state)."""
    tokens = prompt
    with torch.no_grad():
        for _ in range(n):
            tokens = torch.cat([tokens, net.eval()(tokens)[:, -1].argmax(-1, keepdim=True)], 1)
    return tokens[:, prompt.shape[1]:]


def test_sampling_at_low_temperature_and_top1_is_argmax_decoding():
    net = _char_lm()
    prompt = torch.tensor([[0], [3], [7]])
    greedy = _argmax_decode(net, prompt, 12)
    assert torch.equal(sample(net, prompt, 12, temperature=0.0), greedy)
    assert torch.equal(sample(net, prompt, 12, temperature=1e-3, generator=torch.Generator().manual_seed(1)), greedy)
    assert torch.equal(sample(net, prompt, 12, temperature=1.0, top_k=1,
                              generator=torch.Generator().manual_seed(2)), greedy)


def test_sampling_is_reproducible_with_a_seeded_generator():
    net = _char_lm().train()
    prompt = torch.zeros(4, 1, dtype=torch.long)
    a = sample(net, prompt, 20, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(0))
    b = sample(net, prompt, 20, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(0))
    c = sample(net, prompt, 20, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 20) and a.dtype == torch.long and torch.equal(a, b) and not torch.equal(a, c)
    assert net.training  # put back in its mode
    # top-k draws only among the k best scores of each step
    top3 = sample(net, prompt, 20, top_k=3, generator=torch.Generator().manual_seed(0))
    logits, state = net.eval().forward_with_state(prompt)
    for t in range(20):
        best = logits[:, -1].topk(3, dim=-1).indices
        assert (best == top3[:, t, None]).any(-1).all()
        logits, state = net.forward_with_state(top3[:, t, None], state)


def test_sampling_stops_at_the_end_token():
    net = _char_lm()
    out = sample(net, torch.zeros(3, 1, dtype=torch.long), 30, generator=torch.Generator().manual_seed(0),
                 end_token=2)
    for row in out.tolist():
        if 2 in row:
            assert set(row[row.index(2):]) == {2}
