"""Convolution -> batch norm -> activation, the unit that most modern CNN families stack, and the
channel-rounding rule of the mobile families."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch.nn as nn

__all__ = ["ConvBNAct", "make_divisible", "init_cnn_weights"]


class ConvBNAct(nn.Sequential):
    """``Conv2d (no bias) -> BatchNorm2d -> activation``; children ``conv``, ``bn`` and ``act``.

    The convolution has no bias because batch norm's shift (beta) replaces it (Ioffe & Szegedy
    2015). ``padding`` defaults to ``(kernel_size - 1) // 2``, which keeps the spatial size at
    stride 1 for odd kernels and divides it by the stride otherwise (rounding up).

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size, stride, groups: as in ``nn.Conv2d`` (``groups == in_channels`` is a
            depthwise convolution).
        act: a factory for the activation (``nn.ReLU``, ``nn.ReLU6``, ``nn.SiLU`` ...), or None for
            a linear unit (no ``act`` child), as in the projection of an inverted residual.
        bn_eps: batch norm's epsilon.
        padding: overrides the default padding.
    Input: (B, in_channels, H, W). Output: (B, out_channels, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        bn_eps: float = 1e-5,
        padding: int | None = None,
    ):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride,
            (kernel_size - 1) // 2 if padding is None else padding, groups=groups, bias=False,
        )
        layers["bn"] = nn.BatchNorm2d(out_channels, eps=bn_eps)
        if act is not None:
            layers["act"] = act()
        super().__init__(layers)


def scale_width(channels: int, width_mult: float = 1.0, divisor: int = 8) -> int:
    """A published channel count times a width multiplier, rounded with ``make_divisible``;
    ``width_mult=1`` returns ``channels`` unchanged (the published network, bit for bit)."""
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")
    return channels if width_mult == 1.0 else make_divisible(channels * width_mult, divisor)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a (width-multiplied) channel count to the nearest multiple of ``divisor``.

    The result is at least ``divisor`` and never more than 10% below ``value`` (if rounding down
    loses more, one more ``divisor`` is added). Hardware runs channel counts that are multiples
    of 8 faster; MobileNet v2 and EfficientNet round every width this way.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def init_cnn_weights(module: nn.Module, linear_std: float = 0.01) -> None:
    """He et al. 2015 (fan-in, ReLU gain) for every convolution, ``N(0, linear_std^2)`` for linear
    layers, zero biases, and batch norm at the identity (gamma = 1, beta = 0).

    Fan-in scaling keeps the variance of the signal roughly constant from layer to layer, with
    or without batch norm; for a depthwise convolution the fan-in is ``k * k``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
