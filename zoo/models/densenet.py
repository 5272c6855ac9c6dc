"""DenseNet (Huang, Liu, van der Maaten & Weinberger 2017, "Densely connected convolutional
networks", CVPR).

Inside a dense block every layer receives the concatenation of the block input and of all the
previous layers' outputs, and adds ``k`` (the growth rate) new channels: layer l of a block
sees ``c0 + (l - 1) k`` channels. Features are reused rather than relearned, gradients reach
early layers directly, and each layer can be narrow (k = 12 to 32).

* **Composite function** (pre-activation): ``BN -> ReLU -> conv``.
* **Bottleneck (the "B")**: ``BN -> ReLU -> 1x1 conv (4k) -> BN -> ReLU -> 3x3 conv (k)``.
* **Transition** between blocks: ``BN -> ReLU -> 1x1 conv -> 2x2 average pool``; with
  compression theta (the "C", theta = 0.5) it keeps ``floor(theta m)`` of the block's m maps.
* After the last block: ``BN -> ReLU -> global average pooling -> fully connected``.

Variants:

* ImageNet DenseNet-BC (table 1): 7x7 stride-2 convolution to 2k maps, BN, ReLU, 3x3 stride-2
  max pool, four dense blocks with k = 32: (6, 12, 24, 16) layers for DenseNet-121,
  (6, 12, 32, 32) for DenseNet-169. Compatible with torchvision's ``densenet121/169`` through
  ``from_torchvision_state_dict``.
* CIFAR DenseNet-BC (section 3, "DenseNet-BC (L = 100, k = 12)", 0.8M parameters): a 3x3
  convolution to 2k = 24 maps, three dense blocks of (100 - 4) / 6 = 16 bottleneck layers, two
  transitions with theta = 0.5; 32x32 inputs give 32, 16 and 8 pixel blocks.

``small_input=True`` (ImageNet variants, 28x28 / 32x32 inputs) applies the zoo's rule: the first
two stride-2 steps go -- the 7x7 stride-2 convolution becomes 3x3 stride 1 (still followed by BN
and ReLU) and the max pool is removed -- so that the total stride falls from 32 to 8 (a 32x32
input ends at 4x4 before the average pooling).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn

from zoo.registry import register_model
from zoo.utils.state_dict import remap_state_dict


class DenseLayer(nn.Module):
    """Bottleneck layer ``BN-ReLU-1x1 conv (bn_size k)-BN-ReLU-3x3 conv (k)`` (+ dropout).

    Input: (B, C, H, W), the concatenation of everything before it in the block.
    Output: (B, k, H, W), the new maps only (the block concatenates).
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0):
        super().__init__()
        inner = bn_size * growth_rate
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, growth_rate, 3, padding=1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.act(self.bn1(x)))     # (B, bn_size k, H, W)
        x = self.conv2(self.act(self.bn2(x)))     # (B, k, H, W)
        return self.dropout(x)


class DenseBlock(nn.Module):
    """``num_layers`` dense layers, each fed with the concatenation of all earlier maps.

    Input: (B, C, H, W). Output: (B, C + num_layers k, H, W).
    """

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int = 4,
                 drop_rate: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)
            for i in range(num_layers)
        )
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))  # (B, C + i k, H, W) -> (B, k, H, W)
        return torch.cat(features, dim=1)


class Transition(nn.Sequential):
    """``BN -> ReLU -> 1x1 conv -> 2x2 average pool``: (B, C, H, W) -> (B, C', H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(OrderedDict(
            bn=nn.BatchNorm2d(in_channels),
            act=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            pool=nn.AvgPool2d(2, 2),
        ))


class DenseNet(nn.Module):
    """DenseNet-BC (see the module docstring).

    Modules: ``stem``, ``block1`` ``trans1`` ... ``blockN``, ``final_bn``, ``pool``, ``fc``.

    Args:
        num_classes: output logits.
        in_chans: input channels.
        growth_rate: k.
        block_config: dense layers per block.
        num_init_features: maps out of the stem (2k in the paper).
        bn_size: bottleneck width as a multiple of k (4 in the paper).
        compression: theta, the fraction of maps a transition keeps.
        drop_rate: dropout after each dense layer (0.2 in the paper without augmentation).
        stem: ``imagenet`` (7x7/2 conv, BN, ReLU, 3x3/2 max pool), ``small`` (3x3/1 conv, BN,
            ReLU) or ``cifar`` (a single 3x3 conv: the first dense layer starts with BN-ReLU).
        example_size: side of the example input.
    Input: (B, in_chans, H, W). Output: (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32,
                 block_config: Sequence[int] = (6, 12, 24, 16), num_init_features: int = 64,
                 bn_size: int = 4, compression: float = 0.5, drop_rate: float = 0.0,
                 stem: str = "imagenet", example_size: int = 64):
        super().__init__()
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        self.in_chans, self.example_size = in_chans, example_size
        c = num_init_features
        if stem == "imagenet":
            self.stem = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_chans, c, 7, 2, 3, bias=False),    # (B, 2k, H/2, W/2)
                bn=nn.BatchNorm2d(c), act=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(3, 2, 1),                          # (B, 2k, H/4, W/4)
            ))
        elif stem == "small":
            self.stem = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_chans, c, 3, 1, 1, bias=False),    # (B, 2k, H, W)
                bn=nn.BatchNorm2d(c), act=nn.ReLU(inplace=True),
            ))
        elif stem == "cifar":
            self.stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(in_chans, c, 3, 1, 1, bias=False)))
        else:
            raise ValueError(f"stem must be imagenet, small or cifar, got {stem!r}")
        self.num_blocks = len(block_config)
        for i, n in enumerate(block_config, start=1):
            block = DenseBlock(n, c, growth_rate, bn_size, drop_rate)
            self.add_module(f"block{i}", block)
            c = block.out_channels
            if i < len(block_config):
                out = int(c * compression)
                self.add_module(f"trans{i}", Transition(c, out))  # (B, theta c, H/2, W/2)
                c = out
        self.final_bn = nn.BatchNorm2d(c)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)  # weight: PyTorch's default uniform(+-1/sqrt(fan_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, self.num_blocks + 1):
            x = getattr(self, f"block{i}")(x)
            if i < self.num_blocks:
                x = getattr(self, f"trans{i}")(x)
        x = self.act(self.final_bn(x))
        return self.fc(self.pool(x).flatten(1))  # (B, C, 1, 1) -> (B, C) -> logits

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        s = self.example_size
        return (torch.randn(batch_size, self.in_chans, s, s),)


_PAPER = "Huang et al. 2017, Densely connected convolutional networks, CVPR"


@register_model(task="classification", paper=_PAPER)
def densenet121(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                drop_rate: float = 0.0) -> DenseNet:
    """DenseNet-BC-121 (ImageNet): k = 32, blocks (6, 12, 24, 16)."""
    return DenseNet(num_classes, in_chans, 32, (6, 12, 24, 16), 64, 4, 0.5, drop_rate,
                    "small" if small_input else "imagenet", 32 if small_input else 64)


@register_model(task="classification", paper=_PAPER)
def densenet169(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                drop_rate: float = 0.0) -> DenseNet:
    """DenseNet-BC-169 (ImageNet): k = 32, blocks (6, 12, 32, 32)."""
    return DenseNet(num_classes, in_chans, 32, (6, 12, 32, 32), 64, 4, 0.5, drop_rate,
                    "small" if small_input else "imagenet", 32 if small_input else 64)


@register_model(task="classification", paper=_PAPER + " (DenseNet-BC, L=100, k=12, CIFAR)")
def densenet_bc_100_cifar(num_classes: int = 10, in_chans: int = 3, growth_rate: int = 12,
                          depth: int = 100, compression: float = 0.5,
                          drop_rate: float = 0.0) -> DenseNet:
    """CIFAR DenseNet-BC: 3x3 stem to 2k maps, three blocks of (depth - 4) / 6 bottleneck layers.

    Built for 32x32 (or 28x28) inputs; there is no ``small_input`` switch because there is no
    large-input stem to replace.
    """
    if (depth - 4) % 6:
        raise ValueError(f"DenseNet-BC depth must be 6n + 4, got {depth}")
    n = (depth - 4) // 6
    return DenseNet(num_classes, in_chans, growth_rate, (n, n, n), 2 * growth_rate, 4,
                    compression, drop_rate, "cifar", 32)


_TORCHVISION_RULES = [
    (r"features\.conv0\.(\w+)", r"stem.conv.\1"),
    (r"features\.norm0\.(\w+)", r"stem.bn.\1"),
    (r"features\.denseblock(\d)\.denselayer(\d+)\.(norm|conv)([12])\.(\w+)",
     lambda m: (f"block{m.group(1)}.layers.{int(m.group(2)) - 1}."
                f"{'bn' if m.group(3) == 'norm' else 'conv'}{m.group(4)}.{m.group(5)}")),
    (r"features\.transition(\d)\.norm\.(\w+)", r"trans\1.bn.\2"),
    (r"features\.transition(\d)\.conv\.(\w+)", r"trans\1.conv.\2"),
    (r"features\.norm5\.(\w+)", r"final_bn.\1"),
    (r"classifier\.(\w+)", r"fc.\1"),
]


def from_torchvision_state_dict(state_dict: dict) -> dict:
    """Rename the keys of a ``torchvision.models.densenet121/169`` state dict to ours.

    =============================================  ==============================
    torchvision                                    here
    =============================================  ==============================
    ``features.conv0`` / ``features.norm0``        ``stem.conv`` / ``stem.bn``
    ``features.denseblockB.denselayerL.normN``     ``blockB.layers.(L-1).bnN``
    ``features.denseblockB.denselayerL.convN``     ``blockB.layers.(L-1).convN``
    ``features.transitionT.{norm,conv}``           ``transT.{bn,conv}``
    ``features.norm5``                             ``final_bn``
    ``classifier``                                 ``fc``
    =============================================  ==============================

    (torchvision numbers dense layers from 1; the tail -- weight, bias, running_mean ... -- is
    kept.) Build ours with ``small_input=False``.
    """
    return remap_state_dict(state_dict, _TORCHVISION_RULES)
