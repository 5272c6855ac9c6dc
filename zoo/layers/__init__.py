"""Blocks shared by two or more model families."""
from zoo.layers.activations import get_activation
from zoo.layers.shapes import example_shape

__all__ = ["get_activation", "example_shape"]
