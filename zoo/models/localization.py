"""Object localization, landmark detection and the sliding-window detector with its
convolutional form -- the first steps from classification to detection.

* :class:`LocalizationNet` (``localizer``): a small CNN whose head outputs the target vector of
  classification with localization, ``[p_c, b_x, b_y, b_h, b_w, c_1 .. c_n]`` -- whether there is
  an object, its box (centre and size as fractions of the image) and its class -- as raw scores
  (a logit for ``p_c``, logits for the box, to be squashed into [0, 1], and class logits); with
  ``num_landmarks=K`` (``landmarker``) it also regresses ``2K`` landmark coordinates
  ``(x_1, y_1, .., x_K, y_K)``, as fractions of the image (Sermanet et al. 2014 regress boxes from
  a classification net's features; the landmark head follows the same idea for points).
* :class:`WindowClassifier` (``window_cnn``): classifies one ``window x window`` crop as one of
  ``num_classes`` objects or background (the last score). :meth:`WindowClassifier.convolutional`
  turns its fully connected layers into convolutions with the same weights (the first into a
  convolution as large as the feature map it reads, the others into 1x1 convolutions), so that
  one pass over a larger image scores every window at the stride of the net's pooling -- the same
  scores as cropping and classifying each window (:func:`sliding_window_scores`), computed once
  for the overlapping parts (Sermanet et al. 2014, OverFeat).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.layers import ConvBNAct
from zoo.registry import register_model

__all__ = ["LocalizationNet", "WindowClassifier", "sliding_window_scores", "localizer", "landmarker",
           "window_cnn"]


class LocalizationNet(nn.Module):
    """CNN trunk (3x3 conv-BN-ReLU blocks, each followed by 2x2 max pooling), an adaptive
    average pool to a ``grid x grid`` map (where the object is stays in the features), then a
    fully connected layer and the head.

    Output: ``(B, 5 + num_classes + 2 * num_landmarks)``: ``[p_c logit, 4 box logits, class logits,
    landmark logits]``; :meth:`split` names the parts.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, image_size: int = 96,
                 widths: tuple[int, ...] = (16, 32, 64, 128), grid: int = 3, hidden: int = 256,
                 num_landmarks: int = 0, dropout: float = 0.0):
        super().__init__()
        if num_classes < 1 or in_chans < 1 or num_landmarks < 0 or grid < 1:
            raise ValueError("num_classes and in_chans must be >= 1, num_landmarks >= 0 and grid >= 1")
        self.num_classes, self.in_chans, self.image_size = num_classes, in_chans, image_size
        self.num_landmarks = num_landmarks
        blocks, c = [], in_chans
        for w in widths:
            blocks += [ConvBNAct(c, w, 3), nn.MaxPool2d(2, ceil_mode=True)]
            c = w
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * grid * grid, hidden), nn.ReLU(inplace=True),
                                nn.Dropout(dropout))
        self.head = nn.Linear(hidden, 5 + num_classes + 2 * num_landmarks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(self.pool(self.features(x))))

    def split(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        """The output's parts: ``objectness`` (B,), ``box`` (B, 4), ``classes`` (B, n) and,
        with landmarks, ``landmarks`` (B, 2K) -- all raw scores."""
        n = self.num_classes
        parts = {"objectness": out[:, 0], "box": out[:, 1:5], "classes": out[:, 5:5 + n]}
        if self.num_landmarks:
            parts["landmarks"] = out[:, 5 + n:]
        return parts

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.image_size, self.image_size),)


class WindowClassifier(nn.Module):
    """A classifier of ``window x window`` crops into ``num_classes`` objects or background.

    Two 5x5 convolutions (valid padding), each followed by ReLU and 2x2 max pooling, then
    fully connected layers ``hidden`` -> ``num_classes + 1`` (the last score is background).
    For a 28x28 window: 28 -> 24 -> 12 -> 8 -> 4, so the first fully connected layer reads a 4x4
    map and the pooling stride is 4.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, window: int = 28,
                 widths: tuple[int, int] = (16, 32), hidden: int = 128):
        super().__init__()
        self.num_classes, self.in_chans, self.window = num_classes, in_chans, window
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(widths[0], widths[1], 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = self.feature_side(window)
        if side < 1:
            raise ValueError(f"window={window} is too small for two 5x5 convolutions and two 2x2 poolings "
                             "(it must be at least 16)")
        self.map_side = side
        self.fc1 = nn.Linear(widths[1] * side * side, hidden)
        self.fc2 = nn.Linear(hidden, num_classes + 1)

    @staticmethod
    def feature_side(window: int) -> int:
        return ((window - 4) // 2 - 4) // 2

    stride = 4  # two 2x2 poolings: one step of the feature map is 4 input pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(self.features(x).flatten(1))))

    def convolutional(self) -> nn.Module:
        """The same net with its fully connected layers as convolutions: the features are the
        same modules, the fully connected weights are reshaped into kernels (a copy: training one
        afterwards leaves the other as it was). On a ``window x window`` input it gives a 1x1 map
        of the classifier's scores; on a larger one, a map of every window's scores at stride 4."""
        c = self.features[3].out_channels
        conv1 = nn.Conv2d(c, self.fc1.out_features, self.map_side)
        conv1.weight.data = self.fc1.weight.data.view(self.fc1.out_features, c, self.map_side, self.map_side).clone()
        conv1.bias.data = self.fc1.bias.data.clone()
        conv2 = nn.Conv2d(self.fc1.out_features, self.fc2.out_features, 1)
        conv2.weight.data = self.fc2.weight.data.view(*self.fc2.weight.shape, 1, 1).clone()
        conv2.bias.data = self.fc2.bias.data.clone()
        return nn.Sequential(self.features, conv1, nn.ReLU(inplace=True), conv2)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.window, self.window),)


def sliding_window_scores(net: WindowClassifier, images: torch.Tensor, stride: int | None = None) -> torch.Tensor:
    """The reference sliding-window detector: crop every ``window x window`` window at ``stride``
    (default: the net's pooling stride) and classify each crop on its own.

    Returns ``(B, num_classes + 1, rows, cols)``, the layout of the convolutional form's output.
    """
    stride = stride or net.stride
    w = net.window
    b, _, h, width = images.shape
    crops = images.unfold(2, w, stride).unfold(3, w, stride)  # (B, C, rows, cols, w, w)
    rows, cols = crops.shape[2], crops.shape[3]
    crops = crops.permute(0, 2, 3, 1, 4, 5).reshape(b * rows * cols, images.shape[1], w, w)
    scores = net(crops)  # (B * rows * cols, K)
    return scores.view(b, rows, cols, -1).permute(0, 3, 1, 2)


@register_model(task="localization", paper="Sermanet et al. 2014, OverFeat: integrated recognition, "
                "localization and detection using convolutional networks, ICLR")
def localizer(num_classes: int = 10, in_chans: int = 1, image_size: int = 96,
              widths: tuple[int, ...] = (16, 32, 64, 128), grid: int = 3, hidden: int = 256,
              dropout: float = 0.0) -> LocalizationNet:
    """Classification with localization: ``[p_c, b_x, b_y, b_h, b_w, c_1..c_n]``."""
    return LocalizationNet(num_classes, in_chans, image_size, tuple(widths), grid, hidden, 0, dropout)


@register_model(task="landmarks", paper="Sun, Wang & Tang 2013, Deep convolutional network cascade for "
                "facial point detection, CVPR")
def landmarker(num_classes: int = 10, in_chans: int = 1, image_size: int = 96, num_landmarks: int = 4,
               widths: tuple[int, ...] = (16, 32, 64, 128), grid: int = 3, hidden: int = 256,
               dropout: float = 0.0) -> LocalizationNet:
    """Localization plus ``num_landmarks`` (x, y) points regressed as fractions of the image."""
    return LocalizationNet(num_classes, in_chans, image_size, tuple(widths), grid, hidden, num_landmarks, dropout)


@register_model(task="sliding_window", paper="Sermanet et al. 2014, OverFeat: integrated recognition, "
                "localization and detection using convolutional networks, ICLR")
def window_cnn(num_classes: int = 10, in_chans: int = 1, window: int = 28,
               widths: tuple[int, int] = (16, 32), hidden: int = 128) -> WindowClassifier:
    """A window classifier (objects + background) with a convolutional form for whole images."""
    return WindowClassifier(num_classes, in_chans, window, tuple(widths), hidden)
