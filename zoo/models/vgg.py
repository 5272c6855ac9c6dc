"""VGG networks (Simonyan & Zisserman 2015, "Very deep convolutional networks for large-scale
image recognition", ICLR), configurations A, B, D and E of table 1 (VGG-11/13/16/19), with
optional batch normalisation (Ioffe & Szegedy 2015) after every convolution.

Five stages of 3x3 convolutions (stride 1, padding 1, ReLU), each followed by a 2x2 stride-2
max-pool; the stages have 64, 128, 256, 512 and 512 channels and, per configuration,

    VGG-11 (A): 1, 1, 2, 2, 2 convolutions      VGG-13 (B): 2, 2, 2, 2, 2
    VGG-16 (D): 2, 2, 3, 3, 3                   VGG-19 (E): 2, 2, 4, 4, 4

then an adaptive average pool to 7x7 (the identity for a 224x224 input), fc6 4096 -> fc7 4096
-> fc8 num_classes, with ReLU and dropout (p = 0.5 by default, section 3.1) after fc6 and fc7.
The ``_bn`` variants insert batch normalisation between each convolution and its ReLU; their
convolutions keep their bias (redundant with the normalisation's shift) so that the parameter
layout is the one of the common ImageNet reference weights.

Initialisation: He et al. 2015 normal (fan-out, ReLU gain) for the convolutions, N(0, 0.01)
for the linear layers, zero biases, unit scale and zero shift for batch normalisation. (The
paper trained configuration A from N(0, 0.01) and initialised deeper nets from it.)

Small inputs (``small_input=True``, for 28x28 and 32x32 images): VGG has no large-stride stem, so
the convolutions are unchanged; the fifth max-pool is left out (a 28x28 input would otherwise
shrink to 0x0: 28 -> 14 -> 7 -> 3 -> 1) and the classifier reads the globally averaged 512
features of the last stage (``fc6`` takes 512 inputs instead of 512*7*7). A 32x32 input ends
the last stage at 2x2, a 28x28 one at 1x1.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.layers import scale_width
from zoo.registry import register_model

STAGE_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512)
# convolutions per stage for each depth (table 1 of the paper)
STAGE_DEPTHS: dict[int, tuple[int, ...]] = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}


class ConvUnit(nn.Module):
    """3x3 convolution (stride 1, padding 1) -> optional batch norm -> ReLU; keeps H and W."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class VGG(nn.Module):
    """VGG-``depth`` (see the module docstring).

    Args:
        depth: 11, 13, 16 or 19.
        num_classes: output logits.
        in_chans: input channels.
        batch_norm: batch normalisation after every convolution.
        dropout: drop probability after fc6 and fc7.
        small_input: no fifth max-pool and a globally pooled classifier input, for 28x28/32x32
            images (see the module docstring).
        width_mult: multiplies every width (convolutions and fc6/fc7), rounded to a multiple
            of 8; 1.0 is the published network, smaller values the CPU-sized variants.
    Input: (B, in_chans, H, W) with H, W >= 32 (>= 16 with ``small_input``).
    Output: (B, num_classes) logits.
    """

    def __init__(self, depth: int = 16, num_classes: int = 1000, in_chans: int = 3,
                 batch_norm: bool = False, dropout: float = 0.5, small_input: bool = False,
                 width_mult: float = 1.0):
        super().__init__()
        if depth not in STAGE_DEPTHS:
            raise ValueError(f"VGG depth must be one of {sorted(STAGE_DEPTHS)}, got {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_chans = in_chans
        self.small_input = small_input
        self.example_size = 32  # the smallest side five 2x2 pools accept; also small enough
        stages = []
        width = in_chans
        for n_convs, out in zip(STAGE_DEPTHS[depth], STAGE_WIDTHS):
            out = scale_width(out, width_mult)
            units = []
            for _ in range(n_convs):
                units.append(ConvUnit(width, out, batch_norm))
                width = out
            stages.append(nn.Sequential(*units))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        pooled = 1 if small_input else 7
        self.avgpool = nn.AdaptiveAvgPool2d(pooled)
        fc = scale_width(4096, width_mult)
        self.fc6 = nn.Linear(width * pooled * pooled, fc)
        self.fc7 = nn.Linear(fc, fc)
        self.fc8 = nn.Linear(fc, num_classes)
        self.dropout = nn.Dropout(dropout)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.stages) - 1
        for i, stage in enumerate(self.stages):
            x = stage(x)                       # (B, width_i, H / 2^i, W / 2^i)
            if not (self.small_input and i == last):
                x = self.pool(x)               # halves H and W
        x = self.avgpool(x).flatten(1)         # (B, 512*7*7), or (B, 512) with small_input
        x = self.dropout(F.relu(self.fc6(x)))  # (B, 4096)
        x = self.dropout(F.relu(self.fc7(x)))  # (B, 4096)
        return self.fc8(x)                     # (B, num_classes)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        s = self.example_size
        return (torch.randn(batch_size, self.in_chans, s, s),)


def from_torchvision_state_dict(state_dict: dict) -> dict:
    """Rename the keys of a torchvision ``vgg*`` / ``vgg*_bn`` state_dict to this module's names.

    torchvision numbers the layers of one ``features`` sequence (convolution, [batch norm],
    ReLU, ..., max-pool, ...); here the ``k``-th convolution of stage ``s`` (both from 0) is
    ``stages.<s>.<k>.conv`` and its batch norm ``stages.<s>.<k>.bn``. The depth is read from the
    number of convolutions (8, 10, 13, 16 -> VGG-11, 13, 16, 19) and batch norm from the presence
    of running statistics; the ``i``-th convolution at ``features.<j>`` has its batch norm at
    ``features.<j+1>``. The classifier maps ``classifier.0 -> fc6``, ``classifier.3 -> fc7``,
    ``classifier.6 -> fc8``. The tensors are not copied. Raises KeyError for a key outside
    this mapping.
    """
    conv_indices = sorted(
        int(k.split(".")[1]) for k, v in state_dict.items()
        if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4
    )
    depths = {sum(d): depth for depth, d in STAGE_DEPTHS.items()}
    if len(conv_indices) not in depths:
        raise KeyError(f"a VGG state_dict has 8, 10, 13 or 16 convolutions, found {len(conv_indices)}")
    batch_norm = any(k.endswith("running_mean") for k in state_dict)
    positions = [(s, k) for s, n in enumerate(STAGE_DEPTHS[depths[len(conv_indices)]]) for k in range(n)]
    names = {}
    for j, (s, k) in zip(conv_indices, positions):
        names[f"features.{j}"] = f"stages.{s}.{k}.conv"
        if batch_norm:
            names[f"features.{j + 1}"] = f"stages.{s}.{k}.bn"
    names.update({"classifier.0": "fc6", "classifier.3": "fc7", "classifier.6": "fc8"})
    out = {}
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        if module not in names:
            raise KeyError(f"unexpected key in a torchvision VGG state_dict: {key!r}")
        out[f"{names[module]}.{leaf}"] = value
    return out


_PAPER = "Simonyan & Zisserman 2015, ICLR, 'Very deep convolutional networks for large-scale image recognition'"
_PAPER_BN = _PAPER + "; batch norm: Ioffe & Szegedy 2015"


@register_model(task="classification", paper=_PAPER)
def vgg11(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
          small_input: bool = False, width_mult: float = 1.0) -> VGG:
    """VGG-11 (configuration A): 8 convolutions, 3 fully connected layers."""
    return VGG(11, num_classes, in_chans, False, dropout, small_input, width_mult)


@register_model(task="classification", paper=_PAPER)
def vgg13(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
          small_input: bool = False, width_mult: float = 1.0) -> VGG:
    """VGG-13 (configuration B): 10 convolutions, 3 fully connected layers."""
    return VGG(13, num_classes, in_chans, False, dropout, small_input, width_mult)


@register_model(task="classification", paper=_PAPER)
def vgg16(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
          small_input: bool = False, width_mult: float = 1.0) -> VGG:
    """VGG-16 (configuration D): 13 convolutions, 3 fully connected layers."""
    return VGG(16, num_classes, in_chans, False, dropout, small_input, width_mult)


@register_model(task="classification", paper=_PAPER)
def vgg19(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
          small_input: bool = False, width_mult: float = 1.0) -> VGG:
    """VGG-19 (configuration E): 16 convolutions, 3 fully connected layers."""
    return VGG(19, num_classes, in_chans, False, dropout, small_input, width_mult)


@register_model(task="classification", paper=_PAPER_BN)
def vgg11_bn(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
             small_input: bool = False, width_mult: float = 1.0) -> VGG:
    """VGG-11 with batch normalisation after every convolution."""
    return VGG(11, num_classes, in_chans, True, dropout, small_input, width_mult)


@register_model(task="classification", paper=_PAPER_BN)
def vgg13_bn(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
             small_input: bool = False, width_mult: float = 1.0) -> VGG:
    """VGG-13 with batch normalisation after every convolution."""
    return VGG(13, num_classes, in_chans, True, dropout, small_input, width_mult)


@register_model(task="classification", paper=_PAPER_BN)
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
             small_input: bool = False, width_mult: float = 1.0) -> VGG:
    """VGG-16 with batch normalisation after every convolution."""
    return VGG(16, num_classes, in_chans, True, dropout, small_input, width_mult)


@register_model(task="classification", paper=_PAPER_BN)
def vgg19_bn(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
             small_input: bool = False, width_mult: float = 1.0) -> VGG:
    """VGG-19 with batch normalisation after every convolution."""
    return VGG(19, num_classes, in_chans, True, dropout, small_input, width_mult)
