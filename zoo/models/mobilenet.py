"""MobileNets: depthwise-separable convolutions (v1) and inverted residuals (v2).

**MobileNet v1** (Howard et al. 2017, "MobileNets: efficient convolutional neural networks for
mobile vision applications", arXiv:1704.04861). A k x k convolution from M to N channels costs
``k^2 M N`` multiply-adds per output pixel. A depthwise-separable convolution factorises it into
a depthwise k x k convolution (one filter per input channel: ``k^2 M``) and a pointwise 1x1
convolution that mixes the channels (``M N``), i.e. ``1/N + 1/k^2`` of the cost: 8 to 9 times
fewer operations for 3x3 kernels, for a small loss of accuracy (paper, section 3.1). Table 1's
body: a 3x3 stride-2 convolution to 32 channels, then 13 depthwise-separable blocks (each
convolution followed by batch norm and ReLU), global average pooling and a fully connected
layer. The width multiplier alpha (``width_mult``) thins every layer to ``alpha * channels``
(cost and parameters fall roughly as alpha^2); the resolution multiplier is simply the input
size. Widths are rounded to multiples of 8 (exact for alpha = 1, 0.75, 0.5, 0.25).

**MobileNet v2** (Sandler, Howard, Zhu, Zhmoginov & Chen 2018, "MobileNetV2: inverted residuals
and linear bottlenecks", CVPR): a stack of inverted residual blocks
(``zoo.layers.inverted_residual``: 1x1 expansion by t -> 3x3 depthwise -> linear 1x1 projection,
ReLU6, skip connections between the narrow bottlenecks), table 2 of the paper
(``MOBILENET_V2_SETTING``), then a 1x1 convolution to 1280 channels, global average pooling,
dropout 0.2 and a fully connected layer. ``width_mult`` scales every width (rounded to multiples
of 8); the last convolution is never made narrower than 1280. The layout and parameter names
are compatible with torchvision's ``mobilenet_v2`` through ``from_torchvision_state_dict``.

``small_input=True`` (28x28 / 32x32 inputs), for both versions, applies the zoo's rule: the first
two stride-2 steps -- the stem convolution and the first strided block -- run at stride 1, so
the total stride falls from 32 to 8 (a 32x32 input ends at 4x4 before the average pooling).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import ConvBNAct, InvertedResidual, init_cnn_weights, make_divisible
from zoo.registry import register_model
from zoo.utils.state_dict import remap_state_dict

# Table 1 of the v1 paper after the stem: (output channels, stride) of each separable block.
MOBILENET_V1_SETTING: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),  # table 1 prints s2 for the last block; at 7x7 it is stride 1
)

# Table 2 of the v2 paper: expansion t, output channels c, repeats n, stride s of the first.
MOBILENET_V2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv (stride) -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU.

    Input: (B, in_channels, H, W). Output: (B, out_channels, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.depthwise = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    """MobileNet v1 (see the module docstring).

    Args:
        num_classes: output logits.
        in_chans: input channels.
        width_mult: the width multiplier alpha.
        small_input: stride-1 stem and first strided block, for 28x28 / 32x32 inputs.
        dropout: before the classifier (0 in the paper).
    Input: (B, in_chans, H, W). Output: (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 small_input: bool = False, dropout: float = 0.0):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.in_chans, self.small_input = in_chans, small_input
        c = make_divisible(32 * width_mult)
        self.stem = ConvBNAct(in_chans, c, 3, 1 if small_input else 2)  # (B, c, H/2, W/2)
        blocks = []
        first_strided = True
        for out, stride in MOBILENET_V1_SETTING:
            if stride == 2 and first_strided:
                first_strided = False
                stride = 1 if small_input else 2
            out = make_divisible(out * width_mult)
            blocks.append(DepthwiseSeparable(c, out, stride))
            c = out
        self.blocks = nn.Sequential(*blocks)                 # (B, 1024 alpha, H/32, W/32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        init_cnn_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(self.dropout(self.pool(x).flatten(1)))  # (B, C, 1, 1) -> (B, C) -> logits

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        size = 32 if self.small_input else 64
        return (torch.randn(batch_size, self.in_chans, size, size),)


class MobileNetV2(nn.Module):
    """MobileNet v2 (see the module docstring).

    Modules: ``stem`` (3x3 conv, stride 2), ``stages[i][j]`` (block j of row i of table 2),
    ``head`` (1x1 conv to 1280), ``pool``, ``dropout``, ``fc``.

    Args:
        num_classes: output logits.
        in_chans: input channels.
        width_mult: width multiplier.
        small_input: stride-1 stem and first strided stage, for 28x28 / 32x32 inputs.
        dropout: before the classifier.
    Input: (B, in_chans, H, W). Output: (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 small_input: bool = False, dropout: float = 0.2):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.in_chans, self.small_input = in_chans, small_input
        c = make_divisible(32 * width_mult)
        self.stem = ConvBNAct(in_chans, c, 3, 1 if small_input else 2, act=nn.ReLU6)
        stages = []
        first_strided = True
        for t, out, n, s in MOBILENET_V2_SETTING:
            if s == 2 and first_strided:
                first_strided = False
                s = 1 if small_input else 2
            out = make_divisible(out * width_mult)
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidual(c, out, s if j == 0 else 1, t, 3, act=nn.ReLU6))
                c = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)                 # (B, 320 alpha, H/32, W/32)
        last = make_divisible(1280 * max(1.0, width_mult))
        self.head = ConvBNAct(c, last, 1, act=nn.ReLU6)      # (B, 1280, H/32, W/32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(last, num_classes)
        init_cnn_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.stages(self.stem(x)))
        return self.fc(self.dropout(self.pool(x).flatten(1)))  # (B, 1280, 1, 1) -> (B, 1280) -> logits

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        size = 32 if self.small_input else 64
        return (torch.randn(batch_size, self.in_chans, size, size),)


@register_model(task="classification", paper="Howard et al. 2017, MobileNets, arXiv:1704.04861")
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 small_input: bool = False, dropout: float = 0.0) -> MobileNetV1:
    """MobileNet v1: a stem and 13 depthwise-separable blocks; width multiplier alpha."""
    return MobileNetV1(num_classes, in_chans, width_mult, small_input, dropout)


@register_model(task="classification", paper="Sandler et al. 2018, MobileNetV2: inverted residuals and linear bottlenecks, CVPR")
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 small_input: bool = False, dropout: float = 0.2) -> MobileNetV2:
    """MobileNet v2: inverted residuals with linear bottlenecks; width multiplier."""
    return MobileNetV2(num_classes, in_chans, width_mult, small_input, dropout)


def _v2_block_index() -> dict[int, tuple[int, int]]:
    """torchvision's flat ``features`` index of each block -> (row of table 2, block in row)."""
    index, i = {}, 1
    for row, (_, _, n, _) in enumerate(MOBILENET_V2_SETTING):
        for j in range(n):
            index[i] = (row, j)
            i += 1
    return index


def from_torchvision_state_dict(state_dict: dict) -> dict:
    """Rename the keys of a ``torchvision.models.mobilenet_v2`` state dict to ours (v2 only;
    torchvision has no MobileNet v1).

    torchvision keeps one flat ``features`` list: 0 is the stem, 1 ... 17 the blocks, 18 the last
    1x1 convolution; a block's ``conv`` list is ``[expand], depthwise, project conv, project BN``
    (the expansion is absent in the first block, whose t = 1). Here (``P`` = conv | bn; ``{0,1}``
    = conv, bn inside a conv-BN-activation unit; the tail is kept):

    ===========================================  ==================================
    torchvision                                  here
    ===========================================  ==================================
    ``features.0.{0,1}``                         ``stem.{conv,bn}``
    ``features.i.conv.0.{0,1}`` (t > 1)          ``stages.r.j.expand.{conv,bn}``
    ``features.i.conv.1.{0,1}`` (t > 1)          ``stages.r.j.depthwise.{conv,bn}``
    ``features.i.conv.{2,3}``   (t > 1)          ``stages.r.j.project.{conv,bn}``
    ``features.1.conv.0.{0,1}``                  ``stages.0.0.depthwise.{conv,bn}``
    ``features.1.conv.{1,2}``                    ``stages.0.0.project.{conv,bn}``
    ``features.18.{0,1}``                        ``head.{conv,bn}``
    ``classifier.1``                             ``fc``
    ===========================================  ==================================

    where block ``i`` (1 ... 17) is block ``j`` of row ``r`` of table 2 (``MOBILENET_V2_SETTING``).
    """
    index = _v2_block_index()
    last = len(index) + 1
    unit = {"0": "conv", "1": "bn"}

    def block(m) -> str:
        i, pos, rest = int(m.group(1)), m.group(2), m.group(3)
        r, j = index[i]
        expanded = f"features.{i}.conv.3.weight" in state_dict
        names = (["expand", "depthwise", "project.conv", "project.bn"] if expanded
                 else ["depthwise", "project.conv", "project.bn"])
        name = names[int(pos)]
        if name in ("expand", "depthwise"):  # a conv-BN-ReLU6 unit: rest = "0.weight" ...
            sub, _, tail = rest.partition(".")
            return f"stages.{r}.{j}.{name}.{unit[sub]}.{tail}"
        return f"stages.{r}.{j}.{name}.{rest}"

    rules = [
        (r"features\.0\.([01])\.(\w+)", lambda m: f"stem.{unit[m.group(1)]}.{m.group(2)}"),
        (rf"features\.{last}\.([01])\.(\w+)", lambda m: f"head.{unit[m.group(1)]}.{m.group(2)}"),
        (r"features\.(\d+)\.conv\.(\d)\.([\w.]+)", block),
        (r"classifier\.1\.(\w+)", r"fc.\1"),
    ]
    return remap_state_dict(state_dict, rules)
