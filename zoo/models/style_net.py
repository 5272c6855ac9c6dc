"""The feed-forward image transformation network of Johnson, Alahi & Fei-Fei 2016 ("Perceptual
losses for real-time style transfer and super-resolution", ECCV; supplementary material, table 1),
with the instance normalisation of Ulyanov, Vedaldi & Lempitsky 2016 ("Instance normalization:
the missing ingredient for fast stylization").

    9x9 conv, w, stride 1          (B, w,  H,   W)
    3x3 conv, 2w, stride 2         (B, 2w, H/2, W/2)     downsampling
    3x3 conv, 4w, stride 2         (B, 4w, H/4, W/4)
    n residual blocks, 4w          (B, 4w, H/4, W/4)     two 3x3 convs each, identity shortcut
    upsample x2, 3x3 conv, 2w      (B, 2w, H/2, W/2)     upsampling
    upsample x2, 3x3 conv, w       (B, w,  H,   W)
    9x9 conv, 3                    (B, 3,  H,   W)      -> (tanh + 1) / 2, in [0, 1]

Every convolution but the last is followed by instance normalisation and a ReLU (the residual
blocks' second convolution has no ReLU, as in Johnson et al.). The paper has w = 32 and five
residual blocks; it upsamples with fractionally strided convolutions, which leave checkerboard
artefacts (Odena et al. 2016, "Deconvolution and checkerboard artifacts"), so the default here is
nearest-neighbour upsampling followed by a convolution (``upsample="transposed"`` is the paper's).
Convolutions pad by reflection (Johnson et al.'s released code), which avoids dark borders.

Input: RGB images (B, 3, H, W) in [0, 1], any H, W >= 4 (a side that is not a multiple of 4 is
padded by reflection and the output cropped back). Output: (B, 3, H, W) in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.registry import register_model


class ConvIN(nn.Sequential):
    """Reflection-padded convolution -> instance norm (affine) -> optional ReLU; keeps H, W at stride 1."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, relu: bool = True):
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_ch, out_ch, kernel, stride),
                                   nn.InstanceNorm2d(out_ch, affine=True)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))), both 3x3 with ``channels`` channels (Johnson et al., figure 1 of
    the supplementary material, with padding so that H and W are kept)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvIN(channels, channels, 3), ConvIN(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Module):
    """x2 upsampling: nearest neighbour then a 3x3 conv, or a 3x3 transposed conv of stride 2;
    then instance norm and ReLU."""

    def __init__(self, in_ch: int, out_ch: int, mode: str = "nearest"):
        super().__init__()
        self.mode = mode
        if mode == "nearest":
            self.conv = ConvIN(in_ch, out_ch, 3)
        else:
            self.conv = nn.Sequential(
                nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(out_ch, affine=True), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2H, 2W)
        return self.conv(x)


class StyleTransferNet(nn.Module):
    """Johnson et al.'s image transformation network (see the module docstring).

    Args:
        base_width: channels of the first convolution (w); the paper's is 32.
        num_residual: residual blocks at a quarter of the resolution; the paper's is 5.
        upsample: ``nearest`` (upsample + conv) or ``transposed`` (the paper's fractionally strided conv).
    """

    def __init__(self, base_width: int = 32, num_residual: int = 5, upsample: str = "nearest"):
        super().__init__()
        if upsample not in ("nearest", "transposed"):
            raise ValueError(f"upsample must be 'nearest' or 'transposed', got {upsample!r}")
        if int(base_width) < 1 or int(num_residual) < 0:
            raise ValueError(f"base_width must be positive and num_residual >= 0, got {base_width}, {num_residual}")
        w = int(base_width)
        self.down = nn.Sequential(ConvIN(3, w, 9), ConvIN(w, 2 * w, 3, stride=2), ConvIN(2 * w, 4 * w, 3, stride=2))
        self.res = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(int(num_residual))])
        self.up = nn.Sequential(Upsample(4 * w, 2 * w, upsample), Upsample(2 * w, w, upsample))
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(w, 3, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4          # two stride-2 convolutions: sides multiple of 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        y = self.down(x)                            # (B, 4w, H/4, W/4)
        y = self.res(y)                             # (B, 4w, H/4, W/4)
        y = self.up(y)                              # (B, w, H, W)
        y = (torch.tanh(self.out(y)) + 1.0) / 2.0  # (B, 3, H, W) in [0, 1]
        return y[..., :h, :w]

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.rand(batch_size, 3, 32, 32),)


_PAPER = ("Johnson, Alahi & Fei-Fei 2016, ECCV, 'Perceptual losses for real-time style transfer and "
          "super-resolution'; instance norm: Ulyanov et al. 2016")


@register_model(task="style_transfer", paper=_PAPER)
def style_net(base_width: int = 32, num_residual: int = 5, upsample: str = "nearest") -> StyleTransferNet:
    """The image transformation network (the paper's: base_width=32, num_residual=5, upsample='transposed')."""
    return StyleTransferNet(base_width, num_residual, upsample)
