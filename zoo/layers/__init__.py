"""Blocks shared by two or more model families."""
from zoo.layers.activations import get_activation
from zoo.layers.conv_bn_act import ConvBNAct, init_cnn_weights, make_divisible, scale_width
from zoo.layers.inverted_residual import DropPath, InvertedResidual, SqueezeExcitation
from zoo.layers.shapes import example_shape

__all__ = [
    "get_activation", "example_shape", "ConvBNAct", "init_cnn_weights", "make_divisible", "scale_width",
    "DropPath", "InvertedResidual", "SqueezeExcitation",
]
from zoo.layers.attention import (  # noqa: E402
    AdditiveAttention, DotProductAttention, MultiHeadAttention, SinusoidalPositionalEncoding, causal_mask,
    masked_softmax,
)

__all__ += [
    "masked_softmax", "causal_mask", "AdditiveAttention", "DotProductAttention", "MultiHeadAttention",
    "SinusoidalPositionalEncoding",
]
