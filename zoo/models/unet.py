"""U-Net (Ronneberger, Fischer & Brox 2015): a per-pixel classifier built as an encoder that
halves the resolution ``depth`` times and a decoder that doubles it back, with each decoder
stage reading the encoder's map of the same resolution through a skip connection.

* The contracting path: a block of two 3x3 convolutions (each followed by ReLU) at ``base_width``
  channels, then ``depth`` times a 2x2 max pooling and a block at twice the channels.
* The expanding path: ``depth`` times an upsampling that halves the channels (a 2x2, stride-2
  transposed convolution, the paper's "up-convolution", or bilinear upsampling followed by a 1x1
  convolution), concatenation with the encoder's map of the same resolution (channels: the skip's
  first, then the upsampled map's), and a block of two 3x3 convolutions.
* A 1x1 convolution maps the last ``base_width`` channels to ``num_classes`` logits per pixel.

Deviations from the paper, each an argument or a documented choice:

* **Padded convolutions.** The paper's 3x3 convolutions are unpadded ("valid"), so every block
  loses 4 pixels and the encoder's maps are cropped before the concatenation; a 572x572 input
  gives a 388x388 map. Here every 3x3 convolution is padded by 1, so the output has the input's
  height and width and no crop is needed. Padding does not change the number of parameters.
* **Batch norm.** The paper has none (it predates Ioffe & Szegedy 2015); ``batch_norm=True`` (the
  default) puts one after every 3x3 convolution, whose bias it then replaces.
  ``batch_norm=False`` gives the paper's convolution + bias + ReLU.
* **Sizes that are not multiples of ``2**depth``.** The 2x2 max pooling rounds down
  (``floor(n / 2)``), so the upsampled map is the skip's size or one pixel smaller per side; it
  is **padded with zeros at the bottom and on the right** to the skip's size before the
  concatenation (never cropped: no pixel of the skip or of the upsampled map is dropped). A 90x90
  input at ``depth=3`` runs 90 -> 45 -> 22 -> 11 and back 22 -> 44 (padded to 45) -> 90.
* **Width and depth.** The paper uses ``base_width=64`` and ``depth=4`` (1024 channels at the
  bottom); the defaults, 16 and 3, fit the 96x96 digit canvases on a CPU.
* The paper's dropout at the end of the contracting path is left out.

Weights are initialised as the paper prescribes (section 3): a Gaussian of standard deviation
``sqrt(2 / N)``, ``N`` the fan-in of the unit (He et al. 2015), with zero biases.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.layers import ConvBNAct, init_cnn_weights
from zoo.registry import register_model

__all__ = ["UNet", "DoubleConv", "Up", "transposed_conv_output_size", "unet"]

UPSAMPLE_MODES = ("transposed", "bilinear")


def transposed_conv_output_size(in_size: int, kernel: int, stride: int = 1, padding: int = 0,
                                output_padding: int = 0) -> int:
    """The side of a transposed convolution's output: ``(in_size - 1) * stride - 2 * padding +
    kernel + output_padding``.

    A transposed convolution scatters: every input value multiplies the whole kernel, and the
    product is added into the output at the value's position times ``stride``; overlapping
    products add up. The last input value's kernel copy starts at ``(in_size - 1) * stride`` and
    reaches ``kernel`` pixels further; ``padding`` then trims that many pixels from each side. A 2x2
    kernel at stride 2 (U-Net's up-convolution) doubles the size: ``(n - 1) * 2 + 2 = 2n``, each
    input value painting its own 2x2 patch with no overlap.
    """
    if in_size < 1 or kernel < 1 or stride < 1 or padding < 0 or output_padding < 0:
        raise ValueError(f"in_size, kernel and stride must be >= 1 and padding, output_padding >= 0, "
                         f"got in_size={in_size}, kernel={kernel}, stride={stride}, padding={padding}, "
                         f"output_padding={output_padding}")
    return (in_size - 1) * stride - 2 * padding + kernel + output_padding


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, padded by 1 (the size is kept), each followed by ReLU: with
    ``batch_norm``, ``ConvBNAct`` blocks (convolution without bias, batch norm, ReLU); without,
    the paper's convolution with bias and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True):
        if batch_norm:
            layers = [ConvBNAct(in_channels, out_channels, 3), ConvBNAct(out_channels, out_channels, 3)]
        else:
            layers = [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
                      nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class Up(nn.Module):
    """One stage of the expanding path: upsample ``x`` to twice its size with half its channels,
    pad it with zeros (bottom, right) to the skip's size, concatenate ``[skip, x]`` on the channels
    and apply a :class:`DoubleConv`.

    ``forward(x, skip)``: ``x`` (B, in_channels, h, w), ``skip`` (B, in_channels // 2, H, W) with
    ``H`` in ``{2h, 2h + 1}`` (likewise ``W``); output (B, in_channels // 2, H, W).
    """

    def __init__(self, in_channels: int, batch_norm: bool = True, upsample: str = "transposed"):
        super().__init__()
        out = in_channels // 2
        if upsample == "transposed":
            self.up = nn.ConvTranspose2d(in_channels, out, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(in_channels, out, kernel_size=1))
        self.conv = DoubleConv(2 * out, out, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dh or dw:
            x = F.pad(x, (0, dw, 0, dh))
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """U-Net for semantic segmentation.

    Args:
        num_classes: output channels, one per class of the per-pixel map, background included
            (11 for the digit canvases: background + 10 digits).
        in_chans: input channels.
        image_size: the side of :meth:`example_inputs`; any input of at least ``2**depth`` pixels
            per side runs.
        base_width: channels of the first block, doubled at every downsampling (paper: 64).
        depth: number of 2x2 max poolings, and of upsamplings (paper: 4).
        batch_norm: batch norm after every 3x3 convolution (the paper has none).
        upsample: ``"transposed"`` (2x2 stride-2 transposed convolution, as in the paper) or
            ``"bilinear"`` (bilinear upsampling, then a 1x1 convolution halving the channels).

    Input: (B, in_chans, H, W) with ``H, W >= 2**depth``. Output: (B, num_classes, H, W) raw
    logits (a softmax over dim 1 gives each pixel's class probabilities; the loss applies it).
    """

    def __init__(self, num_classes: int = 11, in_chans: int = 1, image_size: int = 96, base_width: int = 16,
                 depth: int = 3, batch_norm: bool = True, upsample: str = "transposed"):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1 (the number of downsamplings), got depth={depth}")
        if base_width < 1:
            raise ValueError(f"base_width must be >= 1, got base_width={base_width}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {', '.join(map(repr, UPSAMPLE_MODES))}, "
                             f"got upsample={upsample!r}")
        if num_classes < 1 or in_chans < 1:
            raise ValueError(f"num_classes and in_chans must be >= 1, got num_classes={num_classes}, "
                             f"in_chans={in_chans}")
        if image_size < 2 ** depth:
            raise ValueError(f"image_size={image_size} is smaller than 2**depth={2 ** depth}: "
                             f"{depth} halvings would leave an empty map")
        self.num_classes, self.in_chans, self.image_size = num_classes, in_chans, image_size
        self.depth, self.base_width = depth, base_width
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.stem = DoubleConv(in_chans, widths[0], batch_norm)
        self.pool = nn.MaxPool2d(2)
        self.downs = nn.ModuleList(DoubleConv(widths[i], widths[i + 1], batch_norm) for i in range(depth))
        # ups[0] reads the bottom of the U; ups[-1] reads the stem's map (the first skip)
        self.ups = nn.ModuleList(Up(widths[i + 1], batch_norm, upsample) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        init_cnn_weights(self)

    head_name = "head"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) < 2 ** self.depth:
            raise ValueError(f"input of {h}x{w} pixels is smaller than 2**depth={2 ** self.depth} per side: "
                             f"depth={self.depth} halvings would leave an empty map")
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(self.pool(skips[-1])))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.image_size, self.image_size),)


@register_model(task="segmentation", paper="Ronneberger, Fischer & Brox 2015, U-Net: convolutional "
                "networks for biomedical image segmentation, MICCAI")
def unet(num_classes: int = 11, in_chans: int = 1, image_size: int = 96, base_width: int = 16, depth: int = 3,
         batch_norm: bool = True, upsample: str = "transposed") -> UNet:
    """U-Net with padded convolutions: (B, in_chans, H, W) -> (B, num_classes, H, W) logits.

    ``num_classes`` counts the background: a segmentation config sets it to the data's number of
    object classes + 1 (11 for the digit canvases: background 0, digit ``d`` as class ``d + 1``,
    as the data's semantic mask numbers them). The paper's network is ``base_width=64, depth=4,
    batch_norm=False``."""
    return UNet(num_classes, in_chans, image_size, base_width, depth, batch_norm, upsample)
