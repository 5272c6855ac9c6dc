"""The inverted residual block (MobileNet v2) and its EfficientNet form, MBConv, with the two
pieces MBConv adds: squeeze-and-excitation and stochastic depth."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from zoo.layers.conv_bn_act import ConvBNAct

__all__ = ["DropPath", "SqueezeExcitation", "InvertedResidual"]


class DropPath(nn.Module):
    """Stochastic depth (Huang, Sun, Liu, Sedra & Weinberger 2016, "Deep networks with stochastic
    depth"), applied per example to a residual branch.

    In training, each example's branch output is zeroed with probability ``p`` and the survivors
    are divided by ``1 - p``, so that the expected output is unchanged and evaluation (which keeps
    every branch) needs no rescaling. Placed before the skip addition, a dropped branch turns its
    block into the identity for that example. Input and output: (B, ...).
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)  # (B, 1, 1, 1)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu, Shen & Sun 2018, "Squeeze-and-excitation networks").

    Squeeze: global average pooling summarises each channel by one number. Excitation: a two-layer
    bottleneck (``reduce`` to ``squeeze_channels``, activation, ``expand`` back) followed by a
    sigmoid gives one gate in (0, 1) per channel, which rescales the channel. The two fully
    connected layers are 1x1 convolutions on the (B, C, 1, 1) summary.

    Input and output: (B, channels, H, W).
    """

    def __init__(self, channels: int, squeeze_channels: int, act: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = act()
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)               # squeeze: (B, C, 1, 1)
        s = torch.sigmoid(self.expand(self.act(self.reduce(s))))  # excitation: (B, C, 1, 1)
        return x * s


class InvertedResidual(nn.Module):
    """Inverted residual with linear bottleneck (Sandler et al. 2018), optionally with
    squeeze-and-excitation and stochastic depth (MBConv, Tan & Le 2019).

    ``expand`` (1x1, in -> in * expand_ratio, activation; absent when expand_ratio == 1) ->
    ``depthwise`` (k x k, one filter per channel, stride, activation) -> ``se`` (optional) ->
    ``project`` (1x1 back to out_channels, batch norm, *no* activation: the linear bottleneck).
    The skip connection joins the narrow ends (``stride == 1`` and ``in == out``); it is the
    reverse of a ResNet bottleneck, which is wide at the ends and narrow inside, hence
    "inverted". The projection is linear because a ReLU on a low-dimensional manifold destroys
    information (paper, section 3.2).

    Args:
        in_channels, out_channels: channels at the narrow ends.
        stride: of the depthwise convolution (1 or 2).
        expand_ratio: hidden width = ``round(in_channels * expand_ratio)``.
        kernel_size: of the depthwise convolution.
        act: activation factory (``nn.ReLU6`` in MobileNet v2, ``nn.SiLU`` in EfficientNet).
        se_ratio: squeeze width as a fraction of ``in_channels`` (0 disables the SE block);
            EfficientNet uses 0.25 with the block's own activation inside.
        drop_path: stochastic-depth probability of the residual branch (used only when the block
            has a skip connection).
        bn_eps: batch norm's epsilon.
    Input: (B, in_channels, H, W). Output: (B, out_channels, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 6.0,
        kernel_size: int = 3,
        act: Callable[[], nn.Module] = nn.ReLU6,
        se_ratio: float = 0.0,
        drop_path: float = 0.0,
        bn_eps: float = 1e-5,
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand = (ConvBNAct(in_channels, hidden, 1, act=act, bn_eps=bn_eps)
                       if hidden != in_channels else nn.Identity())
        self.depthwise = ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden, act=act,
                                   bn_eps=bn_eps)
        self.se = (SqueezeExcitation(hidden, max(1, int(in_channels * se_ratio)), act)
                   if se_ratio > 0 else nn.Identity())
        self.project = ConvBNAct(hidden, out_channels, 1, act=None, bn_eps=bn_eps)
        self.drop_path = DropPath(drop_path) if self.use_residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        if self.use_residual:
            out = self.drop_path(out) + x
        return out
