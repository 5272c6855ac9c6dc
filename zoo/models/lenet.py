"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11)), as published and in its modern form.

Published layout on a 32x32 input (28x28 digits padded with background, as in the paper):

    C1 conv 6@5x5 -> 28x28      S2 subsampling -> 14x14      C3 conv 16@5x5 (table I) -> 10x10
    S4 subsampling -> 5x5       C5 conv 120@5x5 -> 1x1        F6 fully connected 84    output 10

* the squashing function is the scaled tanh ``f(a) = A tanh(S a)``, A = 1.7159, S = 2/3
  (paper, appendix A), chosen so that f(1) = 1 and f(-1) = -1;
* a subsampling unit sums its 2x2 receptive field, multiplies the sum by a trainable
  coefficient, adds a trainable bias and squashes (section II.B);
* C3 connects each of its 16 maps to a subset of S2's 6 maps (table I) to break symmetry and keep
  the connection count down: 1,516 trainable parameters instead of 2,416;
* initialisation: ``init="paper"`` draws weights uniformly in ``[-2.4/F_in, 2.4/F_in]``
  (appendix A); the default ``init="lecun_normal"`` draws them with standard deviation
  ``F_in^-1/2`` (LeCun, Bottou, Orr & Mueller 1998, "Efficient BackProp", section 4.6), which
  keeps unit-variance signals through the scaled tanh and trains faster with adaptive optimizers.

One documented deviation: the output layer is a linear map to logits trained with cross-entropy
instead of the paper's Euclidean RBF units with fixed 7x12 bitmap targets.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.registry import register_model

# Table I of the paper: the S2 maps feeding each C3 map. Maps 0-5 take 3 contiguous S2 maps,
# 6-11 take 4 contiguous maps, 12-14 take 4 non-contiguous maps, 15 takes all six.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """``f(a) = A tanh(S a)`` with A = 1.7159 and S = 2/3 (LeCun et al. 1998, appendix A)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0):
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


class Subsampling(nn.Module):
    """Trainable subsampling (paper section II.B): ``y_c = w_c * sum_{2x2}(x_c) + b_c``.

    One coefficient and one bias per channel. Input (B, C, H, W) -> (B, C, H/2, W/2).
    """

    def __init__(self, channels: int, kernel_size: int = 2):
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        # A unit has F_in = 4 inputs through a shared coefficient; keep it positive at the start so
        # that the layer begins as a plain (scaled) average.
        nn.init.uniform_(self.weight, 0.5 * 2.4 / kernel_size**2, 2.4 / kernel_size**2)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        pooled = F.avg_pool2d(x, k) * (k * k)  # sum over each k x k field: (B, C, H/k, W/k)
        return pooled * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ConnectionTableConv2d(nn.Module):
    """A convolution in which output map ``o`` sees only the input maps ``table[o]``.

    Only the connected kernels are parameters (packed in ``weight``: (connections, k, k)); the
    dense (out, in, k, k) kernel is assembled at each forward pass, so gradients reach the
    connected kernels only.
    """

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...], kernel_size: int = 5):
        super().__init__()
        pairs = [(o, i) for o, ins in enumerate(table) for i in ins]
        if any(not 0 <= i < in_channels for _, i in pairs):
            raise ValueError(f"connection table refers to input maps outside 0..{in_channels - 1}")
        self.in_channels = in_channels
        self.out_channels = len(table)
        self.kernel_size = kernel_size
        self.register_buffer("out_index", torch.tensor([o for o, _ in pairs]), persistent=False)
        self.register_buffer("in_index", torch.tensor([i for _, i in pairs]), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        _init_layer(self, "lecun_normal")

    def dense_weight(self) -> torch.Tensor:
        k = self.kernel_size
        w = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return w.index_put((self.out_index, self.in_index), self.weight)  # (out, in, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)


def _init_layer(m: nn.Module, init: str) -> None:
    """``paper``: uniform in [-2.4/F_in, 2.4/F_in] (appendix A); ``lecun_normal``: N(0, 1/F_in)
    (Efficient BackProp, section 4.6); biases start at zero for ``lecun_normal``."""
    if isinstance(m, ConnectionTableConv2d):
        fan_in = torch.bincount(m.out_index, minlength=m.out_channels).float() * m.kernel_size ** 2
        per_conn = fan_in[m.out_index].view(-1, 1, 1)  # (connections, 1, 1)
        with torch.no_grad():
            if init == "paper":
                m.weight.uniform_(-1, 1).mul_(2.4 / per_conn)
                m.bias.uniform_(-1, 1).mul_(2.4 / fan_in)
            else:
                m.weight.normal_().mul_(per_conn.rsqrt())
                m.bias.zero_()
    elif isinstance(m, (nn.Conv2d, nn.Linear)):
        fan_in = m.weight[0].numel()
        if init == "paper":
            nn.init.uniform_(m.weight, -2.4 / fan_in, 2.4 / fan_in)
            nn.init.uniform_(m.bias, -2.4 / fan_in, 2.4 / fan_in)
        else:
            nn.init.normal_(m.weight, 0.0, fan_in ** -0.5)
            nn.init.zeros_(m.bias)


class LeNet5(nn.Module):
    """LeNet-5 as published (see the module docstring).

    Args:
        num_classes: output logits.
        in_chans: input channels (1 for digits; 3 replicates C1's kernels over RGB).
        image_size: input height = width; at least 32 (pad 28x28 digits to 32x32 as the paper
            does). A larger input gives C5 a larger map, which F6 flattens.
        connection_table: use table I for C3; ``False`` connects C3 to every S2 map.
        init: ``lecun_normal`` (default) or ``paper`` (see the module docstring).
    Input: (B, in_chans, image_size, image_size). Output: (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, image_size: int = 32,
                 connection_table: bool = True, init: str = "lecun_normal"):
        super().__init__()
        if init not in ("lecun_normal", "paper"):
            raise ValueError(f"init must be 'lecun_normal' or 'paper', got {init!r}")
        c5_size = ((image_size - 4) // 2 - 4) // 2 - 4  # C1, S2, C3, S4, C5
        if c5_size < 1:
            raise ValueError(
                f"LeNet-5 needs image_size >= 32, got {image_size}; pad 28x28 digits to 32x32 "
                "as the paper does (data.image_size=32)"
            )
        self.in_chans, self.image_size = in_chans, image_size
        c3 = ConnectionTableConv2d(6, C3_TABLE, 5) if connection_table else nn.Conv2d(6, 16, 5)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5), ScaledTanh(),    # C1: (B, 6, S-4, S-4)
            Subsampling(6), ScaledTanh(),               # S2: (B, 6, (S-4)/2, ...)
            c3, ScaledTanh(),                           # C3: (B, 16, ., .)
            Subsampling(16), ScaledTanh(),              # S4: (B, 16, ., .)
            nn.Conv2d(16, 120, 5), ScaledTanh(),        # C5: (B, 120, c5, c5); 1x1 for S = 32
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),                                # (B, 120 * c5 * c5)
            nn.Linear(120 * c5_size * c5_size, 84), ScaledTanh(),   # F6
            nn.Linear(84, num_classes),                  # output logits
        )
        for m in self.modules():
            _init_layer(m, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.image_size, self.image_size),)


class LeNet5Modern(nn.Module):
    """LeNet-5's layout with today's defaults: ReLU, max pooling, full C3, optional dropout.

    Input: (B, in_chans, image_size, image_size) with image_size >= 28 (C1 pads by 2, so 28x28
    digits need no padding). Output: (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, image_size: int = 28,
                 dropout: float = 0.0):
        super().__init__()
        self.in_chans, self.image_size = in_chans, image_size
        s = ((image_size // 2) - 4) // 2  # after conv(pad 2), pool, conv 5x5, pool
        if s < 1:
            raise ValueError(f"LeNet-5 (modern) needs image_size >= 12, got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5, padding=2), nn.ReLU(inplace=True),  # (B, 6, S, S)
            nn.MaxPool2d(2),                                              # (B, 6, S/2, S/2)
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True),                   # (B, 16, S/2-4, .)
            nn.MaxPool2d(2),                                              # (B, 16, s, s)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * s * s, 120), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(84, num_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.image_size, self.image_size),)


@register_model(task="classification", paper="LeCun et al. 1998, Proc. IEEE 86(11):2278-2324")
def lenet5(num_classes: int = 10, in_chans: int = 1, image_size: int = 32,
           connection_table: bool = True, init: str = "lecun_normal") -> LeNet5:
    """LeNet-5 as published: scaled tanh, trainable subsampling, C3 connection table."""
    return LeNet5(num_classes, in_chans, image_size, connection_table, init)


@register_model(task="classification", paper="LeCun et al. 1998 layout; ReLU (Nair & Hinton 2010), max pooling")
def lenet5_modern(num_classes: int = 10, in_chans: int = 1, image_size: int = 28,
                  dropout: float = 0.0) -> LeNet5Modern:
    """LeNet-5 with ReLU and max pooling."""
    return LeNet5Modern(num_classes, in_chans, image_size, dropout)
