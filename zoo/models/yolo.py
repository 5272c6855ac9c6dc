"""YOLO (v2/v3 style): one pass of a convolutional net predicts, for every cell of an
``S x S`` grid and every one of ``A`` anchors, a box, an objectness and the class scores
(Redmon et al. 2016; Redmon & Farhadi 2017, YOLO9000).

* :class:`YOLONet` (``yolo_tiny``): a small trunk of 3x3 conv-BN-LeakyReLU(0.1) blocks and 2x2
  max pooling, a 1x1 convolution as the head, and the output reshaped to
  ``(B, A, S, S, 5 + C)``. The last dimension holds ``[t_x, t_y, t_w, t_h, t_o, class logits]``,
  all raw: the box of anchor ``a`` at cell ``(row i, col j)`` is centred at
  ``((j + sigmoid(t_x)) * stride, (i + sigmoid(t_y)) * stride)`` and sized
  ``(anchor_w * exp(t_w), anchor_h * exp(t_h))`` pixels; its objectness is ``sigmoid(t_o)`` and
  its class probabilities ``softmax(class logits)``.

The anchors themselves are not part of the net: they are facts of the training data (sizes
chosen by k-means on its boxes, ``zoo.ops.kmeans_anchors``), kept with the run and given to the
loss and the decoder (``zoo.losses.yolo``). The net only knows how many there are, so that the
same weights decode with the anchors they were trained with.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from zoo.layers import ConvBNAct
from zoo.registry import register_model

__all__ = ["YOLONet", "yolo_tiny"]


class YOLONet(nn.Module):
    """Trunk, head and the per-anchor layout of the output.

    The trunk is one 3x3 conv-BN-LeakyReLU(0.1) block followed by 2x2 max pooling per entry of
    ``widths`` (stride ``2 ** len(widths)``), then one 3x3 block per entry of ``neck`` at that
    stride; the head is a 1x1 convolution (with bias) to ``A * (5 + C)`` channels.

    Why stride 16 by default: on the 96x96 digit canvases the objects are 20 to 45 px digits,
    one to three per image. Stride 32 would give a 3x3 grid of 32 px cells, in which two digits'
    centres often fall in the same cell and, being of similar shapes, claim the same anchor; only
    one of them can then be learned. Stride 16 gives a 6x6 grid of 16 px cells, smaller than any
    digit, so two digits that overlap little rarely share a cell, while each cell's receptive
    field (110 px with the default widths) still covers the largest digit.

    Input ``(B, in_chans, H, W)``; output ``(B, A, H / stride, W / stride, 5 + C)`` (the
    spatial sizes rounded up).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, image_size: int = 96, num_anchors: int = 3,
                 widths: tuple[int, ...] = (16, 32, 64, 128), neck: tuple[int, ...] = (256, 256)):
        super().__init__()
        if num_classes < 1 or in_chans < 1 or num_anchors < 1:
            raise ValueError(f"num_classes, in_chans and num_anchors must be >= 1, got {num_classes}, {in_chans} "
                             f"and {num_anchors}")
        if not widths:
            raise ValueError("widths must name at least one conv-pool block")
        self.num_classes, self.in_chans, self.image_size = num_classes, in_chans, image_size
        self.num_anchors = num_anchors
        self.stride = 2 ** len(widths)
        if image_size % self.stride:
            raise ValueError(f"image_size={image_size} must be a multiple of the stride {self.stride} "
                             f"(2 ** len(widths)), so that the grid covers the image exactly")
        self.grid = image_size // self.stride
        act = partial(nn.LeakyReLU, 0.1)
        blocks, c = [], in_chans
        for w in widths:
            blocks += [ConvBNAct(c, w, 3, act=act), nn.MaxPool2d(2, ceil_mode=True)]
            c = w
        for w in neck:
            blocks.append(ConvBNAct(c, w, 3, act=act))
            c = w
        self.features = nn.Sequential(*blocks)
        self.head = nn.Conv2d(c, num_anchors * (5 + num_classes), 1)
        # small initial outputs: every anchor starts as its prior box at its cell's centre, with
        # objectness 0.5 and uniform class probabilities
        nn.init.normal_(self.head.weight, 0.0, 0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.features(x))  # (B, A * (5 + C), S, S)
        b, _, s_h, s_w = out.shape
        return out.view(b, self.num_anchors, 5 + self.num_classes, s_h, s_w).permute(0, 1, 3, 4, 2).contiguous()

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.image_size, self.image_size),)


@register_model(task="detection", paper="Redmon & Farhadi 2017, YOLO9000: better, faster, stronger, CVPR")
def yolo_tiny(num_classes: int = 10, in_chans: int = 1, image_size: int = 96, num_anchors: int = 3,
              widths: tuple[int, ...] = (16, 32, 64, 128), neck: tuple[int, ...] = (256, 256)) -> YOLONet:
    """A small YOLOv2-style detector for grey canvases: stride 16, a 6x6 grid at 96x96."""
    return YOLONet(num_classes, in_chans, image_size, num_anchors, tuple(widths), tuple(neck))
