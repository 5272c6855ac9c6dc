"""Network in Network (Lin, Chen & Yan 2014, "Network in network", ICLR).

Two ideas replace the conv -> fully connected pattern of AlexNet-era networks:

* **mlpconv**: each spatial convolution is followed by two 1x1 convolutions, i.e. a small
  multilayer perceptron slid over the image. A 1x1 convolution with ``C_in`` input and
  ``C_out`` output channels applies the same fully connected layer (a ``C_out x C_in`` matrix,
  plus a bias and a ReLU) to the ``C_in``-vector at every pixel independently: it mixes channels
  and leaves space alone. As in the course notes, it is therefore the tool to change the number
  of channels cheaply -- a 1x1 layer from 192 to 96 maps (a channel bottleneck) costs
  ``192 * 96`` weights and as many multiply-adds per pixel, where a 3x3 layer would cost nine
  times more -- and to add a nonlinearity without touching the spatial resolution.
* **global average pooling**: the last mlpconv has one feature map per class; averaging each map
  gives the logits directly. No fully connected layer remains, so there is nothing to overfit
  there and every map is a confidence map for its class.

Two layouts (each mlpconv = conv k x k -> 1x1 -> 1x1, ReLU after each):

* ``small_input=True``: the paper's CIFAR-10 network (section 4.2; the authors' released
  configuration): mlpconv 192-160-96 (5x5) -> max pool 3x3/2 -> dropout -> mlpconv 192-192-192
  (5x5) -> average pool 3x3/2 -> dropout -> mlpconv 192-192-C (3x3) -> global average pooling.
  On 32x32 inputs the class maps are 8x8; 28x28 digits give 7x7.
* ``small_input=False``: the ImageNet network the authors released with the paper: mlpconv
  96-96-96 (11x11, stride 4) -> max pool -> mlpconv 256-256-256 (5x5) -> max pool -> mlpconv
  384-384-384 (3x3) -> max pool -> dropout -> mlpconv 1024-1024-C (3x3) -> global average pooling
  (6x6 class maps on 224x224 inputs). Pools use ``ceil_mode`` as in the original release.

As in both released configurations, the class maps pass through a ReLU before they are
averaged (the logits are non-negative). ``batch_norm=True`` inserts batch norm after every
convolution, a later addition that makes the net much easier to train with plain SGD.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from zoo.layers import scale_width
from zoo.registry import register_model


def mlpconv(in_channels: int, widths: Sequence[int], kernel_size: int, stride: int = 1,
            batch_norm: bool = False) -> nn.Sequential:
    """One mlpconv block: ``k x k conv -> 1x1 conv -> 1x1 conv``, each with a ReLU.

    The two 1x1 convolutions are the per-pixel fully connected layers of the micro network.
    Input: (B, in_channels, H, W). Output: (B, widths[-1], H', W') with H' = (H + 2p - k) / s + 1,
    p = (k - 1) // 2 (0 for the 11x11 stride-4 ImageNet stem).
    """
    padding = 0 if stride > 1 else (kernel_size - 1) // 2
    layers: list[nn.Module] = []
    c = in_channels
    for i, w in enumerate(widths):
        k = kernel_size if i == 0 else 1
        layers.append(nn.Conv2d(c, w, k, stride if i == 0 else 1, padding if i == 0 else 0,
                                bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(w))
        layers.append(nn.ReLU(inplace=True))
        c = w
    return nn.Sequential(*layers)


class NiN(nn.Module):
    """Network in Network (see the module docstring).

    Args:
        num_classes: output logits (= maps of the last mlpconv).
        in_chans: input channels.
        small_input: the paper's CIFAR-10 layout (for 28x28 / 32x32 inputs) instead of the
            ImageNet layout (224x224 inputs).
        dropout: probability of the dropout layers between mlpconv blocks (0.5 in the paper).
        batch_norm: batch norm after every convolution (not in the paper).
        width_mult: multiplies the hidden widths (not the class maps), rounded to a multiple
            of 8; 1.0 is the published network.
    Input: (B, in_chans, H, W). Output: (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                 dropout: float = 0.5, batch_norm: bool = False, width_mult: float = 1.0):
        super().__init__()
        self.in_chans, self.small_input = in_chans, small_input
        bn = batch_norm

        def w(*widths: int) -> tuple[int, ...]:
            return tuple(scale_width(c, width_mult) for c in widths)

        if small_input:
            self.features = nn.Sequential(
                mlpconv(in_chans, w(192, 160, 96), 5, batch_norm=bn),       # (B, 96, H, W)
                nn.MaxPool2d(3, 2, ceil_mode=True), nn.Dropout(dropout),    # (B, 96, H/2, W/2)
                mlpconv(w(96)[0], w(192, 192, 192), 5, batch_norm=bn),
                nn.AvgPool2d(3, 2, ceil_mode=True), nn.Dropout(dropout),    # (B, 192, H/4, W/4)
                mlpconv(w(192)[0], w(192, 192) + (num_classes,), 3, batch_norm=bn),  # class maps
            )
        else:
            self.features = nn.Sequential(
                mlpconv(in_chans, w(96, 96, 96), 11, stride=4, batch_norm=bn),  # 224 -> 54
                nn.MaxPool2d(3, 2, ceil_mode=True),                              # -> 27
                mlpconv(w(96)[0], w(256, 256, 256), 5, batch_norm=bn),
                nn.MaxPool2d(3, 2, ceil_mode=True),                              # -> 13
                mlpconv(w(256)[0], w(384, 384, 384), 3, batch_norm=bn),
                nn.MaxPool2d(3, 2, ceil_mode=True), nn.Dropout(dropout),         # -> 6
                mlpconv(w(384)[0], w(1024, 1024) + (num_classes,), 3, batch_norm=bn),  # class maps
            )
        self.pool = nn.AdaptiveAvgPool2d(1)  # global average pooling: (B, C, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)  # (B, num_classes, 1, 1) -> (B, num_classes)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        size = 32 if self.small_input else 64
        return (torch.randn(batch_size, self.in_chans, size, size),)


@register_model(task="classification", paper="Lin, Chen & Yan 2014, Network in network, ICLR")
def nin(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
        dropout: float = 0.5, batch_norm: bool = False, width_mult: float = 1.0) -> NiN:
    """Network in Network: mlpconv blocks and global average pooling; ``small_input=True`` is the
    paper's CIFAR-10 network."""
    return NiN(num_classes, in_chans, small_input, dropout, batch_norm, width_mult)
