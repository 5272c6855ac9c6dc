"""GoogLeNet / Inception v1 (Szegedy et al. 2015, "Going deeper with convolutions", CVPR).

An Inception module runs four branches in parallel on the same input and concatenates their
outputs along the channels: a 1x1 convolution, a 1x1 reduction followed by a 3x3 convolution,
a 1x1 reduction followed by a larger convolution, and a 3x3 max pool followed by a 1x1
projection. The 1x1 reductions are channel bottlenecks (see ``zoo.models.nin``): they make the
expensive 3x3 and 5x5 convolutions run on few channels, which is what lets the network be 22
layers deep at 1.5 GFLOPs. Table 1 of the paper gives the widths (``INCEPTION_WIDTHS`` below).

Two auxiliary classifiers (average pool 4x4 -> 1x1 conv 128 -> fc 1024 -> dropout 0.7 -> fc)
tap the outputs of inception 4a and 4d. During training they add gradient signal to the middle
of the network; the paper weights their losses by 0.3. They are discarded at inference.

Output contract:

* ``aux_logits=True`` (default) and training mode: ``forward`` returns a
  ``GoogLeNetOutput(logits, aux1, aux2)`` named tuple (a tuple of three (B, num_classes) tensors;
  ``aux1`` taps inception 4a, ``aux2`` 4d) -- the loss is ``CE(logits) + 0.3 * (CE(aux1) +
  CE(aux2))``.
* evaluation mode, or ``aux_logits=False``: ``forward`` returns the (B, num_classes) logits
  tensor only. With ``aux_logits=False`` the auxiliary heads are not built at all. The zoo's
  classification task accepts the tuple (it adds the auxiliary losses, weighted by
  ``aux_loss_weight``); a training loop that expects a tensor needs ``aux_logits=False``.

Deviations from the paper, all shared with torchvision's implementation (so that its weights
load, see ``from_torchvision_state_dict``): batch norm (eps 1e-3) after every convolution instead
of local response normalisation; the "5x5" branch uses a 3x3 kernel by default
(``branch3_kernel=5`` restores the paper's); the auxiliary heads pool adaptively to 4x4
(the paper's 5x5/3 average pool gives 4x4 on its 14x14 maps). Dropout before the classifier is
the paper's 0.4 (torchvision: 0.2).

``small_input=True`` (28x28 / 32x32 inputs) follows the rule used throughout the zoo: the first
two stride-2 steps go, so that the total stride drops from 32 to 8 -- the 7x7 stride-2 stem
convolution becomes 3x3 stride 1 and the first max pool is removed. A 32x32 input then reaches
inception 3 at 16x16, inception 4 at 8x8 and inception 5 at 4x4.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn as nn

from zoo.layers import ConvBNAct, scale_width
from zoo.registry import register_model
from zoo.utils.state_dict import remap_state_dict

# Table 1: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) per inception module.
INCEPTION_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}

_BN_EPS = 1e-3


def _unit(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> ConvBNAct:
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, act=nn.ReLU, bn_eps=_BN_EPS)


class GoogLeNetOutput(NamedTuple):
    """What GoogLeNet returns in training mode with auxiliary classifiers: three (B, C) tensors."""

    logits: torch.Tensor
    aux1: torch.Tensor  # from inception 4a
    aux2: torch.Tensor  # from inception 4d


class Inception(nn.Module):
    """Four parallel branches, concatenated along the channels.

    Input: (B, in_channels, H, W). Output: (B, n1x1 + n3x3 + n5x5 + pool_proj, H, W).
    """

    def __init__(self, in_channels: int, n1x1: int, n3x3red: int, n3x3: int, n5x5red: int,
                 n5x5: int, pool_proj: int, branch3_kernel: int = 3):
        super().__init__()
        self.b1x1 = _unit(in_channels, n1x1, 1)
        self.b3x3 = nn.Sequential(OrderedDict(
            reduce=_unit(in_channels, n3x3red, 1), conv=_unit(n3x3red, n3x3, 3)))
        self.b5x5 = nn.Sequential(OrderedDict(
            reduce=_unit(in_channels, n5x5red, 1), conv=_unit(n5x5red, n5x5, branch3_kernel)))
        self.pool_proj = nn.Sequential(OrderedDict(
            pool=nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            proj=_unit(in_channels, pool_proj, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.b1x1(x), self.b3x3(x), self.b5x5(x), self.pool_proj(x)]
        return torch.cat(branches, dim=1)  # (B, sum of the branch widths, H, W)


class AuxClassifier(nn.Module):
    """Auxiliary head: average pool to 4x4 -> 1x1 conv 128 -> fc 1024 -> ReLU -> dropout -> fc.

    Input: (B, in_channels, H, W). Output: (B, num_classes).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7,
                 proj_width: int = 128, hidden: int = 1024):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.proj = _unit(in_channels, proj_width, 1)
        self.fc1 = nn.Linear(proj_width * 4 * 4, hidden)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.pool(x)).flatten(1)  # (B, 128, 4, 4) -> (B, 2048)
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class GoogLeNet(nn.Module):
    """GoogLeNet (see the module docstring for the output contract and the small-input rule).

    Args:
        num_classes: output logits.
        in_chans: input channels.
        aux_logits: build the two auxiliary classifiers and return them in training mode.
        small_input: CIFAR-style stem for 28x28 / 32x32 inputs.
        dropout: before the final classifier (paper: 0.4).
        aux_dropout: inside the auxiliary classifiers (paper: 0.7).
        branch3_kernel: kernel of the third inception branch (5 in the paper, 3 in torchvision).
        width_mult: multiplies every width (stem, inception branches, auxiliary heads), rounded
            to a multiple of 8; 1.0 is the published network.
    Input: (B, in_chans, H, W). Output: (B, num_classes) logits, or ``GoogLeNetOutput``.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 small_input: bool = False, dropout: float = 0.4, aux_dropout: float = 0.7,
                 branch3_kernel: int = 3, width_mult: float = 1.0):
        super().__init__()

        def w(c: int) -> int:
            return scale_width(c, width_mult)

        self.in_chans, self.small_input, self.aux_logits = in_chans, small_input, aux_logits
        if small_input:
            conv1, pool1 = _unit(in_chans, w(64), 3), nn.Identity()
        else:
            conv1, pool1 = _unit(in_chans, w(64), 7, stride=2), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.stem = nn.Sequential(OrderedDict(
            conv1=conv1,                                     # (B, 64, H/2, W/2); H, W if small
            pool1=pool1,                                     # (B, 64, H/4, W/4)
            conv2=_unit(w(64), w(64), 1),
            conv3=_unit(w(64), w(192), 3),
            pool2=nn.MaxPool2d(3, 2, ceil_mode=True),        # (B, 192, H/8, W/8); H/2 if small
        ))

        def stage(names: list[str], in_channels: int) -> tuple[nn.Sequential, int]:
            blocks = OrderedDict()
            for n in names:
                widths = [w(c) for c in INCEPTION_WIDTHS[n]]
                blocks[n[1]] = Inception(in_channels, *widths, branch3_kernel=branch3_kernel)
                in_channels = widths[0] + widths[2] + widths[4] + widths[5]
            return nn.Sequential(blocks), in_channels

        self.stage3, c = stage(["3a", "3b"], w(192))            # (B, 480, H/8, W/8)
        self.pool3 = nn.MaxPool2d(3, 2, ceil_mode=True)      # (B, 480, H/16, W/16)
        self.stage4, c = stage(["4a", "4b", "4c", "4d", "4e"], c)  # (B, 832, H/16, W/16)

        def out_width(name: str) -> int:  # an inception block's output: 1x1 + 3x3 + 5x5 + pool proj
            return sum(w(x) for i, x in enumerate(INCEPTION_WIDTHS[name]) if i in (0, 2, 4, 5))

        c4a, c4d = out_width("4a"), out_width("4d")          # 512 and 528 at width_mult 1
        self.pool4 = nn.MaxPool2d(2, 2, ceil_mode=True)      # (B, 832, H/32, W/32)
        self.stage5, c = stage(["5a", "5b"], c)              # (B, 1024, H/32, W/32)
        if aux_logits:
            self.aux1 = AuxClassifier(c4a, num_classes, aux_dropout, w(128), w(1024))  # on 4a's output
            self.aux2 = AuxClassifier(c4d, num_classes, aux_dropout, w(128), w(1024))  # on 4d's output
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutput:
        with_aux = self.aux_logits and self.training
        x = self.pool3(self.stage3(self.stem(x)))
        aux1 = aux2 = None
        for name, block in self.stage4.named_children():
            x = block(x)
            if with_aux and name == "a":
                aux1 = self.aux1(x)
            elif with_aux and name == "d":
                aux2 = self.aux2(x)
        x = self.stage5(self.pool4(x))
        logits = self.fc(self.dropout(self.pool(x).flatten(1)))  # (B, 1024, 1, 1) -> (B, 1024) -> (B, C)
        if with_aux:
            return GoogLeNetOutput(logits, aux1, aux2)
        return logits

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        size = 32 if self.small_input else 64
        return (torch.randn(batch_size, self.in_chans, size, size),)


@register_model(task="classification", paper="Szegedy et al. 2015, Going deeper with convolutions, CVPR")
def googlenet(num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
              small_input: bool = False, dropout: float = 0.4, aux_dropout: float = 0.7,
              branch3_kernel: int = 3, width_mult: float = 1.0) -> GoogLeNet:
    """GoogLeNet (Inception v1) with batch norm; auxiliary classifiers active in training mode."""
    return GoogLeNet(num_classes, in_chans, aux_logits, small_input, dropout, aux_dropout,
                     branch3_kernel, width_mult)


# torchvision key (regex)                     -> our key
_TORCHVISION_RULES = [
    (r"conv([123])\.(conv|bn)\.(\w+)", r"stem.conv\1.\2.\3"),
    (r"inception(\d)([a-e])\.branch1\.(conv|bn)\.(\w+)", r"stage\1.\2.b1x1.\3.\4"),
    (r"inception(\d)([a-e])\.branch2\.0\.(conv|bn)\.(\w+)", r"stage\1.\2.b3x3.reduce.\3.\4"),
    (r"inception(\d)([a-e])\.branch2\.1\.(conv|bn)\.(\w+)", r"stage\1.\2.b3x3.conv.\3.\4"),
    (r"inception(\d)([a-e])\.branch3\.0\.(conv|bn)\.(\w+)", r"stage\1.\2.b5x5.reduce.\3.\4"),
    (r"inception(\d)([a-e])\.branch3\.1\.(conv|bn)\.(\w+)", r"stage\1.\2.b5x5.conv.\3.\4"),
    (r"inception(\d)([a-e])\.branch4\.1\.(conv|bn)\.(\w+)", r"stage\1.\2.pool_proj.proj.\3.\4"),
    (r"aux([12])\.conv\.(conv|bn)\.(\w+)", r"aux\1.proj.\2.\3"),
    (r"aux([12])\.(fc[12])\.(\w+)", r"aux\1.\2.\3"),
    (r"fc\.(\w+)", r"fc.\1"),
]


def from_torchvision_state_dict(state_dict: dict) -> dict:
    """Rename the keys of a ``torchvision.models.googlenet`` state dict to ours.

    Mapping (``N`` = 3, 4, 5; ``x`` = a ... e; ``P`` = conv | bn; the tail is kept):

    ==========================================  ===========================================
    torchvision                                 here
    ==========================================  ===========================================
    ``conv{1,2,3}.P``                           ``stem.conv{1,2,3}.P``
    ``inceptionNx.branch1.P``                   ``stageN.x.b1x1.P``
    ``inceptionNx.branch2.{0,1}.P``             ``stageN.x.b3x3.{reduce,conv}.P``
    ``inceptionNx.branch3.{0,1}.P``             ``stageN.x.b5x5.{reduce,conv}.P``
    ``inceptionNx.branch4.1.P``                 ``stageN.x.pool_proj.proj.P``
    ``aux{1,2}.conv.P`` / ``aux{1,2}.fc{1,2}``  ``aux{1,2}.proj.P`` / ``aux{1,2}.fc{1,2}``
    ``fc``                                      ``fc``
    ==========================================  ===========================================

    Build ours with the defaults (``branch3_kernel=3``, ``small_input=False``); torchvision's
    model must use ``transform_input=False`` (its input re-normalisation has no counterpart here).
    """
    return remap_state_dict(state_dict, _TORCHVISION_RULES)
