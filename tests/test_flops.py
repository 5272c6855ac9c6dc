"""zoo.flops against FLOPs counted by hand: 2 FLOPs per multiply-accumulate (MAC), forward and
backward (gradient with respect to the input and to the weight; a bias gradient is a sum and is
not counted), for a depthwise and a dense convolution, a training step, and a two-input net."""
import pytest
import torch
from torch import nn

from zoo.flops import count_flops, count_train_flops, flop_counter


def _backward_flops(conv: nn.Conv2d, x: torch.Tensor, *, input_grad: bool, count_padding: bool = True) -> int:
    """FLOPs the counter gives for the backward of ``conv`` alone on ``x`` (forward not counted)."""
    x = x.clone().requires_grad_(input_grad)
    out = conv(x)
    counter = flop_counter(count_padding)
    with counter:
        torch.autograd.grad(out.sum(), [x, conv.weight] if input_grad else [conv.weight])
    return counter.get_total_flops()


# One input of batch 2, 8 channels, 16x16; 3x3 kernels, stride 1, padding 1: the output is 16x16.
N, C, H, W, K = 2, 8, 16, 16, 3


def test_depthwise_convolution_forward_and_backward():
    conv = nn.Conv2d(C, C, K, padding=1, groups=C, bias=False)  # weight (8, 1, 3, 3)
    x = torch.randn(N, C, H, W)
    # forward: each output element (N x C x 16 x 16 = 4096 of them) is a 3x3 window of ONE input
    # channel: 9 MACs -> 4096 x 9 = 36,864 MACs = 73,728 FLOPs
    forward = 2 * (N * C * H * W) * (K * K * 1)
    assert forward == 73_728
    assert count_flops(conv, inputs=(x,)) * N == forward
    # input gradient: each input element collects the 9 taps of its own channel's kernel
    # (as a transposed convolution): N x C x 16 x 16 x 9 MACs
    grad_input = 2 * (N * C * H * W) * (K * K)
    # weight gradient: each of the 8 x 1 x 3 x 3 = 72 weights sums over N x 16 x 16 = 512 output
    # positions of its own channel: 72 x 512 = 36,864 MACs (torch's own formula counts
    # C = 8 times that: it multiplies by all input channels, not the one of the group)
    grad_weight = 2 * (C * 1 * K * K) * (N * H * W)
    assert grad_input == grad_weight == 73_728
    assert _backward_flops(conv, x, input_grad=True) == grad_input + grad_weight
    # a first layer (input without gradient) computes the weight gradient only
    assert _backward_flops(conv, x, input_grad=False) == grad_weight


def test_dense_convolution_forward_and_backward():
    conv = nn.Conv2d(C, 4, K, padding=1, bias=True)  # weight (4, 8, 3, 3)
    x = torch.randn(N, C, H, W)
    # forward: N x 4 x 16 x 16 = 2048 outputs, each 8 channels x 3 x 3 = 72 MACs (the bias add
    # is not counted): 147,456 MACs = 294,912 FLOPs
    forward = 2 * (N * 4 * H * W) * (C * K * K)
    assert forward == 294_912
    assert count_flops(conv, inputs=(x,)) * N == forward
    # input gradient: N x 8 x 16 x 16 = 4096 input elements, each 4 output channels x 3 x 3 = 36
    # MACs: 147,456 MACs; weight gradient: 4 x 8 x 3 x 3 = 288 weights, each N x 16 x 16 = 512
    # MACs: 147,456 MACs; both equal the forward's
    grad_input = 2 * (N * C * H * W) * (4 * K * K)
    grad_weight = 2 * (4 * C * K * K) * (N * H * W)
    assert grad_input == grad_weight == forward
    assert _backward_flops(conv, x, input_grad=True) == grad_input + grad_weight
    assert _backward_flops(conv, x, input_grad=False) == grad_weight


def test_convolution_without_padding_taps():
    # 3x3, padding 1 on a 4x4 map: along one axis the output positions 0..3 see 2, 3, 3, 2 taps
    # inside the input = 10 of 12; in 2-D 10 x 10 = 100 of 16 x 9 = 144 (output position, tap) pairs
    conv = nn.Conv2d(2, 3, K, padding=1, bias=False)
    x = torch.randn(1, 2, 4, 4)
    assert count_flops(conv, inputs=(x,)) == 2 * 3 * 2 * 144
    assert count_flops(conv, inputs=(x,), count_padding=False) == 2 * 3 * 2 * 100
    # both gradients skip the same taps
    assert _backward_flops(conv, x, input_grad=True, count_padding=False) == 2 * (2 * 3 * 2 * 100)
    # stride 2 on a 5x5 map, padding 1: outputs 0..2 read input rows -1..1, 1..3, 3..5 ->
    # 2 + 3 + 2 = 7 taps of 9 per axis
    conv2 = nn.Conv2d(1, 1, K, stride=2, padding=1, bias=False)
    assert count_flops(conv2, inputs=(torch.randn(1, 1, 5, 5),), count_padding=False) == 2 * 7 * 7


class _TwoLinear(nn.Module):
    """forward(a, b) = Linear(5 -> 3)(a) + Linear(7 -> 3)(b)."""

    def __init__(self):
        super().__init__()
        self.fa, self.fb = nn.Linear(5, 3), nn.Linear(7, 3)

    def forward(self, a, b):
        return self.fa(a) + self.fb(b)


def test_two_input_module_counts_both_inputs():
    net = _TwoLinear()
    inputs = (torch.randn(4, 5), torch.randn(4, 7))
    # per example: 5 x 3 + 7 x 3 = 36 MACs = 72 FLOPs (bias and the sum are element-wise)
    assert count_flops(net, inputs=inputs) == 2 * (5 * 3 + 7 * 3) == 72
    # training step per example: forward 72; weight gradients (3x5 and 3x7, one MAC per weight
    # per example) 72; no input gradients (data does not require grad)
    assert count_train_flops(net, inputs=inputs) == 72 + 72


def test_integer_inputs_are_passed_as_they_are():
    net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(6 * 4, 2))
    tokens = torch.randint(0, 10, (3, 6))
    # the embedding is a lookup (0 FLOPs); the linear layer: 24 x 2 MACs per example
    assert count_flops(net, inputs=(tokens,)) == 2 * 24 * 2


def test_training_step_of_a_small_cnn_is_counted_not_estimated():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    # per example, at 3x6x6 (forward MACs): conv1 8 x 36 x 27 = 7776; depthwise 8 x 36 x 9 = 2592;
    # linear 288 x 10 = 2880
    conv1, dw, fc = 8 * 36 * 27, 8 * 36 * 9, 288 * 10
    assert count_flops(net, (3, 6, 6)) == 2 * (conv1 + dw + fc)
    # training step: forward + weight gradients of all three + input gradients of the depthwise
    # conv and the linear layer; conv1's input is data and needs none
    expected = 2 * ((conv1 + dw + fc) + (conv1 + dw + fc) + (dw + fc))
    mean_before = net[1].running_mean.clone()
    assert count_train_flops(net, (3, 6, 6)) == expected
    assert count_train_flops(net, inputs=(torch.randn(4, 3, 6, 6),)) == expected
    # the count leaves the model as it was: eval flag, batch-norm statistics, no .grad
    net.eval()
    count_train_flops(net, (3, 6, 6))
    assert not net.training and torch.equal(net[1].running_mean, mean_before)
    assert all(p.grad is None for p in net.parameters())


def test_input_shape_or_inputs_not_both():
    with pytest.raises(ValueError, match="exactly one"):
        count_flops(nn.Linear(2, 2), (2,), inputs=(torch.zeros(1, 2),))
    with pytest.raises(ValueError, match="exactly one"):
        count_flops(nn.Linear(2, 2))


def test_registered_nets_count_on_their_own_example_inputs():
    import zoo

    net = zoo.create_model("resnet20_cifar")
    by_shape = count_flops(net, (3, 32, 32))
    assert count_flops(net, inputs=net.example_inputs(1)) == by_shape
    # ResNet-20 (He et al. 2016, CIFAR): about 41M multiply-adds
    assert by_shape / 2 == pytest.approx(41e6, rel=0.02)
    # a dense net's training step: a little under 3x its forward (first layer: no input gradient)
    train = count_train_flops(net, inputs=net.example_inputs(2))
    assert 2.9 * by_shape < train < 3 * by_shape


class _TokenNet(nn.Module):
    """Token ids (B, 6) -> embedding (B, 6, 4) -> linear on the flattened 24 features -> 2."""

    def __init__(self):
        super().__init__()
        self.emb, self.fc = nn.Embedding(10, 4), nn.Linear(24, 2)

    def forward(self, ids):
        return self.fc(self.emb(ids).flatten(1))  # (B, 24) -> (B, 2)

    def example_inputs(self, batch_size: int = 2):
        return (torch.randint(0, 10, (batch_size, 6)),)


class _Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("no formula for this op")


def test_train_cli_counts_integer_inputs_and_says_why_it_did_not(caplog):
    import logging

    from zoo.cli.train import _forward_flops

    # a token net is counted at the training shape on integer zeros (valid ids), not float zeros
    assert _forward_flops(_TokenNet(), [6]) == 2 * 24 * 2
    with caplog.at_level(logging.WARNING, logger="zoo.cli.train"):
        assert _forward_flops(_Broken(), [3, 8, 8]) is None
        assert _forward_flops(nn.Linear(2, 2), None) is None
    text = caplog.text
    assert "FLOPs not counted for _Broken at input shape (3, 8, 8): RuntimeError: no formula for this op" in text
    assert "FLOPs not counted: the datamodule reports no input_shape" in text


def test_compute_report_gives_a_reason_for_every_figure_above_the_peak():
    from zoo.bench.compute import over_peak_note

    row = {"train_fraction_of_peak": 0.8, "train_fraction_of_peak_in_bounds": 0.7,
           "train_flops": 100, "train_flops_in_bounds": 88,
           "infer_fraction_of_peak": 1.15, "infer_fraction_of_peak_in_bounds": 0.86,
           "infer_flops": 100, "infer_flops_in_bounds": 75}
    assert over_peak_note(row) == ("inference: 25% of its counted FLOPs multiply zero padding, which the "
                                   "convolution kernels skip; on the FLOPs done, 86% of the peak")
    row.update(infer_fraction_of_peak_in_bounds=1.07)
    assert "not explained by the count" in over_peak_note(row)
    row.update(infer_fraction_of_peak=0.99)
    assert over_peak_note(row) == ""


def test_fused_lstm_is_counted_like_its_matrix_multiplies():
    """On the CPU nn.LSTM runs as fused mkldnn layers, which torch's counter has no formula for:
    the zoo counts each layer's two matrix multiplies per step, so an LSTM costs 4/3 of a GRU of
    the same sizes (4 gates against 3), as the GRU's plain matrix multiplies are counted."""
    from torch import nn

    from zoo.flops import count_flops, count_train_flops

    lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
    gru = nn.GRU(8, 16, num_layers=2, bidirectional=True, batch_first=True)
    # per direction: layer 1 reads 8 inputs, layer 2 the 32 of both directions; 5 steps
    expected = 2 * (2 * 5 * (64 * 8 + 64 * 16) + 2 * 5 * (64 * 32 + 64 * 16))
    assert count_flops(lstm, (5, 8)) == expected
    assert count_flops(gru, (5, 8)) * 4 == expected * 3
    assert count_train_flops(lstm, (5, 8)) == 3 * expected
