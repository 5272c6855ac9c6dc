"""EfficientNet B0-B3 (Tan & Le 2019, "EfficientNet: rethinking model scaling for convolutional
neural networks", ICML).

**Baseline (B0)**, table 1 of the paper, found by neural architecture search: a 3x3 stride-2
stem, seven stages of MBConv blocks (``EFFICIENTNET_B0_SETTING``), a 1x1 convolution to 1280
channels, global average pooling, dropout and a fully connected layer. MBConv is MobileNet v2's
inverted residual (``zoo.layers.inverted_residual``) with a squeeze-and-excitation block after
the depthwise convolution (squeeze width: a quarter of the block's input channels), SiLU
("swish") activations, batch norm, and stochastic depth on the residual branch
whose drop probability grows linearly from 0 at the first block to 0.2 * (n - 1) / n at the last.

**Compound scaling** (section 3.3): depth d = alpha^phi, width w = beta^phi, resolution
r = gamma^phi with alpha * beta^2 * gamma^2 ~= 2 (alpha = 1.2, beta = 1.1, gamma = 1.15), so that
each step of phi roughly doubles the FLOPs. The released coefficients, rounded:

=====  ===========  ===========  ==========  =======
model  width_mult   depth_mult   resolution  dropout
=====  ===========  ===========  ==========  =======
B0     1.0          1.0          224         0.2
B1     1.0          1.1          240         0.2
B2     1.1          1.2          260         0.3
B3     1.2          1.4          300         0.3
=====  ===========  ===========  ==========  =======

Widths are ``make_divisible(channels * width_mult, 8)``; the repeats of each stage are
``ceil(repeats * depth_mult)``; the last convolution has 4x the last stage's width. Batch
norm uses eps = 1e-5 like torchvision's B0-B4 (the authors' TensorFlow code, and torchvision's
ported B5-B7 weights, use 1e-3; ``bn_eps`` of the class). The
resolution is the input size the variant was designed for (``model.resolution``); the network
itself accepts any size. Layout and parameter shapes are those of torchvision's ``efficientnet_b*``
(``from_torchvision_state_dict`` maps its keys).

``small_input=True`` (28x28 / 32x32 inputs) applies the zoo's rule: the first two stride-2
steps -- the stem and the first strided stage -- run at stride 1, so the total stride falls from
32 to 8 (a 32x32 input ends at 4x4 before the average pooling).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from zoo.layers import ConvBNAct, InvertedResidual, make_divisible
from zoo.registry import register_model
from zoo.utils.state_dict import remap_state_dict

# Table 1: expansion, kernel, stride of the first block, output channels, repeats (B0).
EFFICIENTNET_B0_SETTING: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)

class EfficientNet(nn.Module):
    """EfficientNet (see the module docstring).

    Modules: ``stem``, ``stages[i][j]`` (block j of stage i), ``head`` (1x1 conv), ``pool``,
    ``dropout``, ``fc``.

    Args:
        num_classes: output logits.
        in_chans: input channels.
        width_mult, depth_mult: compound-scaling coefficients.
        resolution: the input size the variant was scaled for (informative).
        small_input: stride-1 stem and first strided stage, for 28x28 / 32x32 inputs.
        dropout: before the classifier.
        stochastic_depth: drop probability reached (asymptotically) by the last block.
        bn_eps: batch norm's epsilon.
    Input: (B, in_chans, H, W). Output: (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 depth_mult: float = 1.0, resolution: int = 224, small_input: bool = False,
                 dropout: float = 0.2, stochastic_depth: float = 0.2, bn_eps: float = 1e-5):
        super().__init__()
        self.in_chans, self.small_input, self.resolution = in_chans, small_input, resolution
        c = make_divisible(32 * width_mult)
        self.stem = ConvBNAct(in_chans, c, 3, 1 if small_input else 2, act=nn.SiLU, bn_eps=bn_eps)
        repeats = [math.ceil(n * depth_mult) for *_, n in EFFICIENTNET_B0_SETTING]
        total, k = sum(repeats), 0
        stages = []
        first_strided = True
        for (t, kernel, s, out, _), n in zip(EFFICIENTNET_B0_SETTING, repeats):
            if s == 2 and first_strided:
                first_strided = False
                s = 1 if small_input else 2
            out = make_divisible(out * width_mult)
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidual(
                    c, out, s if j == 0 else 1, t, kernel, act=nn.SiLU, se_ratio=0.25,
                    drop_path=stochastic_depth * k / total, bn_eps=bn_eps))
                c, k = out, k + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)                  # (B, c, H/32, W/32)
        self.head = ConvBNAct(c, 4 * c, 1, act=nn.SiLU, bn_eps=bn_eps)  # (B, 4c, H/32, W/32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)  # the paper's released initialisation
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.stages(self.stem(x)))
        return self.fc(self.dropout(self.pool(x).flatten(1)))  # (B, 4c, 1, 1) -> (B, 4c) -> logits

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        size = 32 if self.small_input else 64
        return (torch.randn(batch_size, self.in_chans, size, size),)


_PAPER = "Tan & Le 2019, EfficientNet: rethinking model scaling for CNNs, ICML"


@register_model(task="classification", paper=_PAPER)
def efficientnet_b0(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                    dropout: float = 0.2, stochastic_depth: float = 0.2, width_mult: float = 1.0) -> EfficientNet:
    """EfficientNet-B0, the searched baseline (224x224)."""
    return EfficientNet(num_classes, in_chans, 1.0 * width_mult, 1.0, 224, small_input, dropout, stochastic_depth)


@register_model(task="classification", paper=_PAPER)
def efficientnet_b1(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                    dropout: float = 0.2, stochastic_depth: float = 0.2, width_mult: float = 1.0) -> EfficientNet:
    """EfficientNet-B1: depth x1.1 (240x240)."""
    return EfficientNet(num_classes, in_chans, 1.0 * width_mult, 1.1, 240, small_input, dropout, stochastic_depth)


@register_model(task="classification", paper=_PAPER)
def efficientnet_b2(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                    dropout: float = 0.3, stochastic_depth: float = 0.2, width_mult: float = 1.0) -> EfficientNet:
    """EfficientNet-B2: width x1.1, depth x1.2 (260x260)."""
    return EfficientNet(num_classes, in_chans, 1.1 * width_mult, 1.2, 260, small_input, dropout, stochastic_depth)


@register_model(task="classification", paper=_PAPER)
def efficientnet_b3(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                    dropout: float = 0.3, stochastic_depth: float = 0.2, width_mult: float = 1.0) -> EfficientNet:
    """EfficientNet-B3: width x1.2, depth x1.4 (300x300)."""
    return EfficientNet(num_classes, in_chans, 1.2 * width_mult, 1.4, 300, small_input, dropout, stochastic_depth)


def from_torchvision_state_dict(state_dict: dict) -> dict:
    """Rename the keys of a ``torchvision.models.efficientnet_b{0..3}`` state dict to ours.

    torchvision: ``features.0`` stem, ``features.1`` ... ``features.7`` the stages,
    ``features.8`` the last 1x1 convolution; an MBConv's ``block`` list is
    ``[expand], depthwise, SE (fc1, fc2), project`` (no expansion in stage 1, whose t = 1).
    Here (``{0,1}`` = conv, bn inside a conv-BN-activation unit; the tail is kept):

    ==============================================  ======================================
    torchvision                                     here
    ==============================================  ======================================
    ``features.0.{0,1}``                            ``stem.{conv,bn}``
    ``features.s.j.block.0.{0,1}`` (t > 1)          ``stages.(s-1).j.expand.{conv,bn}``
    ``features.s.j.block.1.{0,1}`` (t > 1)          ``stages.(s-1).j.depthwise.{conv,bn}``
    ``features.s.j.block.2.fc{1,2}`` (t > 1)        ``stages.(s-1).j.se.{reduce,expand}``
    ``features.s.j.block.3.{0,1}`` (t > 1)          ``stages.(s-1).j.project.{conv,bn}``
    ``features.1.j.block.{0,1,2}`` (t = 1)          ``stages.0.j.{depthwise,se,project}``
    ``features.8.{0,1}``                            ``head.{conv,bn}``
    ``classifier.1``                                ``fc``
    ==============================================  ======================================
    """
    unit = {"0": "conv", "1": "bn"}
    se = {"fc1": "reduce", "fc2": "expand"}
    stage_ids = {int(k.split(".")[1]) for k in state_dict if k.startswith("features.")}
    last = max(stage_ids, default=8)

    def block(m) -> str:
        s, j, pos, part, tail = m.group(1), m.group(2), int(m.group(3)), m.group(4), m.group(5)
        expanded = f"features.{s}.{j}.block.3.0.weight" in state_dict
        names = ["expand", "depthwise", "se", "project"] if expanded else ["depthwise", "se", "project"]
        name = names[pos]
        sub = se[part] if name == "se" else unit[part]
        return f"stages.{int(s) - 1}.{j}.{name}.{sub}.{tail}"

    rules = [
        (r"features\.0\.([01])\.(\w+)", lambda m: f"stem.{unit[m.group(1)]}.{m.group(2)}"),
        (rf"features\.{last}\.([01])\.(\w+)", lambda m: f"head.{unit[m.group(1)]}.{m.group(2)}"),
        (r"features\.(\d+)\.(\d+)\.block\.(\d)\.(\w+)\.(\w+)", block),
        (r"classifier\.1\.(\w+)", r"fc.\1"),
    ]
    return remap_state_dict(state_dict, rules)
