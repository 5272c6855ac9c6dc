"""Residual networks (He, Zhang, Ren & Sun 2016, "Deep residual learning for image
recognition", CVPR): the ImageNet ResNet-18/34/50/101/152 of table 1 and the CIFAR-10
ResNet-20/32/44/56/110 of section 4.2.

A residual block computes ``relu(F(x) + shortcut(x))``:

* basic block (ResNet-18/34 and the CIFAR nets): ``F`` = 3x3 conv -> BN -> ReLU -> 3x3 conv -> BN;
* bottleneck block (ResNet-50/101/152): ``F`` = 1x1 conv (reduce to the stage width) -> BN ->
  ReLU -> 3x3 conv -> BN -> ReLU -> 1x1 conv (expand to 4x the width) -> BN. A stage that
  halves the resolution does so with the stride of the 3x3 convolution (the paper puts it on
  the first 1x1 convolution); this is the layout of the common ImageNet reference weights, and
  the parameter count is the same either way;
* shortcuts: the identity where shapes agree; where they do not (first block of a stage),
  option B of section 3.3 (1x1 projection with stride + BN) for the ImageNet nets, and option A
  (parameter-free: stride-2 subsampling of the identity, new channels filled with zeros) for
  the CIFAR nets, as in section 4.2.

``width_mult`` scales every stage width (rounded to a multiple of 8, of 4 for the CIFAR nets);
1.0 is the published network, smaller values are the CPU-sized variants of the benchmarks.

ImageNet nets (stage widths 64/128/256/512, blocks per stage from table 1):

    stem: 7x7 conv 64 /2 -> BN -> ReLU -> 3x3 max-pool /2      (224 -> 56)
    stages 1-4 (the first block of stages 2-4 has stride 2)      (56 -> 28 -> 14 -> 7)
    adaptive average pool -> 1x1 -> fc num_classes

The adaptive pool makes any input size work; a 32x32 input still leaves a 1x1 map after the
last stage (7x7 conv /2, max-pool /2 and three stride-2 stages: 32 -> 8 -> 4 -> 2 -> 1).

Small inputs (``small_input=True``, for 28x28 and 32x32 images): the stem becomes a 3x3
stride-1 convolution (64 channels, padding 1) -> BN -> ReLU without max-pool, so the stages see
the full resolution (32 -> 32 -> 16 -> 8 -> 4); the blocks and the classifier are unchanged.

CIFAR nets (section 4.2): a 3x3 convolution with 16 channels, then three stages of ``n``
basic blocks with 16, 32 and 64 channels on 32x32, 16x16 and 8x8 maps, global average pooling
and a fully connected layer: ``6n + 2`` weighted layers, so depth 20, 32, 44, 56 and 110 for
``n`` = 3, 5, 7, 9 and 18 (0.27M, 0.46M, 0.66M, 0.85M and 1.7M parameters, table 6).

Initialisation (all nets): He et al. 2015 normal (fan-out, ReLU gain) for convolutions, unit
scale and zero shift for batch norm, N(0, 0.01) and a zero bias for the fully connected layer.
``zero_init_residual`` starts the last batch norm of every residual branch at zero scale, so
that each block starts as the identity (Goyal et al. 2017, "Accurate, large minibatch SGD").
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.layers import scale_width
from zoo.registry import register_model


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (batch norm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class ProjectionShortcut(nn.Module):
    """Option B shortcut: 1x1 convolution with stride, then batch norm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv = conv1x1(in_channels, out_channels, stride)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: the identity subsampled with ``stride`` and zero-padded from
    ``in_channels`` to ``out_channels`` channels. No parameters.

    Input (B, C_in, H, W) -> (B, C_out, ceil(H/stride), ceil(W/stride)), the shape a 3x3
    convolution with padding 1 and the same stride produces.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("a zero-padding shortcut cannot reduce the channel count")
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]     # (B, C_in, ceil(H/s), ceil(W/s))
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, C_out, ., .): new channels are 0


def _shortcut(kind: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return ProjectionShortcut(in_channels, out_channels, stride)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; output channels = ``width``."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, shortcut: str = "B"):
        super().__init__()
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = _shortcut(shortcut, in_channels, width, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (B, width, H/stride, W/stride)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (with the stride) -> 1x1 expand; output channels = 4 * ``width``."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, shortcut: str = "B"):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = _shortcut(shortcut, in_channels, out_channels, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))    # (B, width, H, W)
        out = F.relu(self.bn2(self.conv2(out)))  # (B, width, H/stride, W/stride)
        out = self.bn3(self.conv3(out))          # (B, 4*width, H/stride, W/stride)
        return F.relu(out + self.shortcut(x))


class Stem(nn.Module):
    """7x7 stride-2 convolution -> BN -> ReLU -> 3x3 stride-2 max-pool (``small=False``), or
    3x3 stride-1 convolution -> BN -> ReLU (``small=True``)."""

    def __init__(self, in_chans: int, width: int, small: bool = False):
        super().__init__()
        if small:
            self.conv = conv3x3(in_chans, width)
            self.pool = nn.Identity()
        else:
            self.conv = nn.Conv2d(in_chans, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.bn(self.conv(x))))  # (B, width, H/4, W/4) or (B, width, H, W)


class ResNet(nn.Module):
    """A stem, stages of residual blocks (the first block of every stage but the first has
    stride 2), global average pooling and a linear classifier (see the module docstring).

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        blocks_per_stage: number of blocks in each stage.
        widths: width of each stage (block output = width * block.expansion).
        num_classes: output logits.
        in_chans: input channels.
        small_input: 3x3 stride-1 stem without max-pool (see the module docstring).
        shortcut: ``"B"`` (projection where shapes change) or ``"A"`` (zero padding).
        zero_init_residual: start the last batch norm of each residual branch at zero scale.
    Input: (B, in_chans, H, W), any size (224x224 for ImageNet, 32x32 with ``small_input``).
    Output: (B, num_classes) logits.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock,
        blocks_per_stage: tuple[int, ...] = (2, 2, 2, 2),
        widths: tuple[int, ...] = (64, 128, 256, 512),
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        shortcut: str = "B",
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        if len(blocks_per_stage) != len(widths):
            raise ValueError("blocks_per_stage and widths must have the same length")
        self.in_chans = in_chans
        self.small_input = small_input
        self.example_size = 32  # works with either stem; small enough for fast tests
        self.stem = Stem(in_chans, widths[0], small_input)
        stages = []
        channels = widths[0]
        for i, (n, width) in enumerate(zip(blocks_per_stage, widths)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(channels, width, stride, shortcut))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)                # (B, widths[0], H', W')
        for stage in self.stages:
            x = stage(x)                # halves H' and W' from the second stage on
        x = self.avgpool(x).flatten(1)  # (B, num_features)
        return self.fc(x)               # (B, num_classes)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        s = self.example_size
        return (torch.randn(batch_size, self.in_chans, s, s),)


def from_torchvision_state_dict(state_dict: dict) -> dict:
    """Rename the keys of a torchvision ``resnet18/34/50/101/152`` state_dict to this module's.

    Mapping: ``conv1 -> stem.conv``, ``bn1 -> stem.bn``,
    ``layer<i>.<j>.<conv|bn><k> -> stages.<i-1>.<j>.<conv|bn><k>``,
    ``layer<i>.<j>.downsample.0 -> stages.<i-1>.<j>.shortcut.conv``,
    ``layer<i>.<j>.downsample.1 -> stages.<i-1>.<j>.shortcut.bn``, ``fc -> fc``; the leaf
    names (weight, bias, running_mean, running_var, num_batches_tracked) are kept. The tensors
    are not copied. Raises KeyError for a key outside this mapping.
    """
    out = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        head, leaf = parts[:-1], parts[-1]
        if head == ["conv1"]:
            name = "stem.conv"
        elif head == ["bn1"]:
            name = "stem.bn"
        elif head == ["fc"]:
            name = "fc"
        elif len(head) >= 3 and head[0].startswith("layer") and head[0][5:].isdigit():
            prefix = f"stages.{int(head[0][5:]) - 1}.{head[1]}"
            if len(head) == 3 and head[2][:-1] in ("conv", "bn"):
                name = f"{prefix}.{head[2]}"
            elif len(head) == 4 and head[2] == "downsample" and head[3] in ("0", "1"):
                name = f"{prefix}.shortcut.{'conv' if head[3] == '0' else 'bn'}"
            else:
                raise KeyError(f"unexpected key in a torchvision ResNet state_dict: {key!r}")
        else:
            raise KeyError(f"unexpected key in a torchvision ResNet state_dict: {key!r}")
        out[f"{name}.{leaf}"] = value
    return out


_PAPER = "He, Zhang, Ren & Sun 2016, CVPR, 'Deep residual learning for image recognition'"
_PAPER_CIFAR = _PAPER + ", section 4.2 (CIFAR-10, option A shortcuts)"


def _imagenet(block: type[BasicBlock] | type[Bottleneck], blocks: tuple[int, ...], num_classes: int,
              in_chans: int, small_input: bool, zero_init_residual: bool,
              width_mult: float = 1.0) -> ResNet:
    widths = tuple(scale_width(c, width_mult) for c in (64, 128, 256, 512))
    return ResNet(block, blocks, widths, num_classes, in_chans, small_input, "B", zero_init_residual)


def _cifar(depth: int, num_classes: int, in_chans: int, zero_init_residual: bool,
           width_mult: float = 1.0) -> ResNet:
    if (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n+2, got {depth}")
    n = (depth - 2) // 6
    widths = tuple(scale_width(c, width_mult, divisor=4) for c in (16, 32, 64))
    return ResNet(BasicBlock, (n, n, n), widths, num_classes, in_chans, True, "A", zero_init_residual)


@register_model(task="classification", paper=_PAPER)
def resnet18(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
             zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """ResNet-18: basic blocks, 2-2-2-2."""
    return _imagenet(BasicBlock, (2, 2, 2, 2), num_classes, in_chans, small_input, zero_init_residual, width_mult)


@register_model(task="classification", paper=_PAPER)
def resnet34(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
             zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """ResNet-34: basic blocks, 3-4-6-3."""
    return _imagenet(BasicBlock, (3, 4, 6, 3), num_classes, in_chans, small_input, zero_init_residual, width_mult)


@register_model(task="classification", paper=_PAPER)
def resnet50(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
             zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """ResNet-50: bottleneck blocks, 3-4-6-3."""
    return _imagenet(Bottleneck, (3, 4, 6, 3), num_classes, in_chans, small_input, zero_init_residual, width_mult)


@register_model(task="classification", paper=_PAPER)
def resnet101(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
              zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """ResNet-101: bottleneck blocks, 3-4-23-3."""
    return _imagenet(Bottleneck, (3, 4, 23, 3), num_classes, in_chans, small_input, zero_init_residual, width_mult)


@register_model(task="classification", paper=_PAPER)
def resnet152(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
              zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """ResNet-152: bottleneck blocks, 3-8-36-3."""
    return _imagenet(Bottleneck, (3, 8, 36, 3), num_classes, in_chans, small_input, zero_init_residual, width_mult)


@register_model(task="classification", paper=_PAPER_CIFAR)
def resnet20_cifar(num_classes: int = 1000, in_chans: int = 3,
                   zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """CIFAR ResNet-20 (n = 3): 0.27M parameters with 10 classes."""
    return _cifar(20, num_classes, in_chans, zero_init_residual, width_mult)


@register_model(task="classification", paper=_PAPER_CIFAR)
def resnet32_cifar(num_classes: int = 1000, in_chans: int = 3,
                   zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """CIFAR ResNet-32 (n = 5): 0.46M parameters with 10 classes."""
    return _cifar(32, num_classes, in_chans, zero_init_residual, width_mult)


@register_model(task="classification", paper=_PAPER_CIFAR)
def resnet44_cifar(num_classes: int = 1000, in_chans: int = 3,
                   zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """CIFAR ResNet-44 (n = 7): 0.66M parameters with 10 classes."""
    return _cifar(44, num_classes, in_chans, zero_init_residual, width_mult)


@register_model(task="classification", paper=_PAPER_CIFAR)
def resnet56_cifar(num_classes: int = 1000, in_chans: int = 3,
                   zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """CIFAR ResNet-56 (n = 9): 0.85M parameters with 10 classes."""
    return _cifar(56, num_classes, in_chans, zero_init_residual, width_mult)


@register_model(task="classification", paper=_PAPER_CIFAR)
def resnet110_cifar(num_classes: int = 1000, in_chans: int = 3,
                    zero_init_residual: bool = False, width_mult: float = 1.0) -> ResNet:
    """CIFAR ResNet-110 (n = 18): 1.7M parameters with 10 classes."""
    return _cifar(110, num_classes, in_chans, zero_init_residual, width_mult)
