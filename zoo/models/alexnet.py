"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep
convolutional neural networks", NeurIPS), in its single-tower form.

The 2012 network was split over two GPUs ("towers") with 48/128/192/192/128 kernels per tower
and local response normalisation after the first two layers. The single-tower layout used here
has 64/192/384/256/256 kernels and no response normalisation (Krizhevsky 2014, "One weird trick
for parallelizing convolutional neural networks", arXiv:1404.5997); it is the layout of the
widely used ImageNet reference weights, with 61,100,840 parameters for 1000 classes.

Layout on a 224x224 input (``small_input=False``):

    conv1 64@11x11 /4 (pad 2) -> 55x55    pool 3x3 /2 -> 27x27
    conv2 192@5x5 (pad 2)     -> 27x27    pool 3x3 /2 -> 13x13
    conv3 384@3x3, conv4 256@3x3, conv5 256@3x3 (pad 1) -> 13x13    pool 3x3 /2 -> 6x6
    adaptive average pool -> 6x6 -> fc6 4096 -> fc7 4096 -> fc8 num_classes

* every convolution and fc6/fc7 are followed by ReLU; pooling is overlapping (3x3, stride 2,
  section 3.4 of the paper); dropout (p = 0.5 by default) precedes fc6 and fc7 (section 4.2);
* the adaptive average pool makes any input of at least 63x63 work: it is the identity on the
  6x6 map of a 224x224 input;
* initialisation: He et al. 2015 normal (fan-in, ReLU gain) for the convolutions and fc6/fc7,
  N(0, 0.01) for fc8, zero biases. (The paper drew every weight from N(0, 0.01) and set some
  biases to 1, which needs its exact learning-rate schedule to start learning.)

Small inputs (``small_input=True``, for 28x28 and 32x32 images): conv1 becomes a 3x3 stride-1
convolution (padding 1) with the same 64 kernels, the three overlapping max-pools stay, and the
classifier reads the globally averaged 256 features of conv5 (``fc6`` takes 256 inputs instead
of 256*6*6). A 32x32 input gives maps of 32 -> 15 -> 7 -> 3 (after each pool); 28x28 gives
28 -> 13 -> 6 -> 2.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.layers import scale_width
from zoo.registry import register_model

# torchvision's AlexNet: ``features.<i>`` for the convolutions, ``classifier.<i>`` for the
# linear layers (its classifier is Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear).
_TORCHVISION_NAMES = {
    "features.0": "conv1",
    "features.3": "conv2",
    "features.6": "conv3",
    "features.8": "conv4",
    "features.10": "conv5",
    "classifier.1": "fc6",
    "classifier.4": "fc7",
    "classifier.6": "fc8",
}


class AlexNet(nn.Module):
    """Single-tower AlexNet (see the module docstring).

    Args:
        num_classes: output logits.
        in_chans: input channels.
        dropout: drop probability before fc6 and fc7.
        small_input: 3x3 stride-1 conv1 and a globally pooled classifier input, for 28x28/32x32
            images (see the module docstring).
        width_mult: multiplies every layer's width (convolutions and fc6/fc7), rounded to a
            multiple of 8; 1.0 is the published network, smaller values the CPU-sized variants.
    Input: (B, in_chans, H, W) with H, W >= 63 (>= 15 with ``small_input``).
    Output: (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
                 small_input: bool = False, width_mult: float = 1.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_chans = in_chans
        self.small_input = small_input
        # a small example the layout accepts (sides >= 63 without small_input: three 3x3/2 pools
        # after a stride-4 conv1; >= 15 with it), so that tests stay fast
        self.example_size = 32 if small_input else 64
        c1, c2, c3, c4, fc = (scale_width(c, width_mult) for c in (64, 192, 384, 256, 4096))
        if small_input:
            self.conv1 = nn.Conv2d(in_chans, c1, kernel_size=3, stride=1, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_chans, c1, kernel_size=11, stride=4, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5, padding=2)
        self.conv3 = nn.Conv2d(c2, c3, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(c3, c4, kernel_size=3, padding=1)
        self.conv5 = nn.Conv2d(c4, c4, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)  # overlapping pooling
        pooled = 1 if small_input else 6
        self.avgpool = nn.AdaptiveAvgPool2d(pooled)
        self.dropout = nn.Dropout(dropout)
        self.fc6 = nn.Linear(c4 * pooled * pooled, fc)
        self.fc7 = nn.Linear(fc, fc)
        self.fc8 = nn.Linear(fc, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc8.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))   # (B, 64, 27, 27) for 224x224
        x = self.pool(F.relu(self.conv2(x)))   # (B, 192, 13, 13)
        x = F.relu(self.conv3(x))              # (B, 384, 13, 13)
        x = F.relu(self.conv4(x))              # (B, 256, 13, 13)
        x = self.pool(F.relu(self.conv5(x)))   # (B, 256, 6, 6)
        x = self.avgpool(x).flatten(1)         # (B, 256*6*6), or (B, 256) with small_input
        x = F.relu(self.fc6(self.dropout(x)))  # (B, 4096)
        x = F.relu(self.fc7(self.dropout(x)))  # (B, 4096)
        return self.fc8(x)                     # (B, num_classes)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        s = self.example_size
        return (torch.randn(batch_size, self.in_chans, s, s),)


def from_torchvision_state_dict(state_dict: dict) -> dict:
    """Rename the keys of a torchvision ``alexnet`` state_dict to this module's names.

    Mapping (each with its ``.weight`` and ``.bias``):
    ``features.0 -> conv1``, ``features.3 -> conv2``, ``features.6 -> conv3``,
    ``features.8 -> conv4``, ``features.10 -> conv5``, ``classifier.1 -> fc6``,
    ``classifier.4 -> fc7``, ``classifier.6 -> fc8``. The tensors are not copied.
    Raises KeyError for a key outside this mapping.
    """
    out = {}
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        if module not in _TORCHVISION_NAMES:
            raise KeyError(f"unexpected key in a torchvision AlexNet state_dict: {key!r}")
        out[f"{_TORCHVISION_NAMES[module]}.{leaf}"] = value
    return out


@register_model(task="classification", paper="Krizhevsky, Sutskever & Hinton 2012, NeurIPS (single-tower widths: Krizhevsky 2014, arXiv:1404.5997)")
def alexnet(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
            small_input: bool = False, width_mult: float = 1.0) -> AlexNet:
    """Single-tower AlexNet: 5 convolutions, 3 fully connected layers, 61.1M parameters."""
    return AlexNet(num_classes, in_chans, dropout, small_input, width_mult)
