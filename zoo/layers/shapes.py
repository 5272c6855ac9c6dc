"""Shape helpers shared by families that flatten images."""
from __future__ import annotations


def example_shape(in_features: int, in_chans: int, image_size: int) -> tuple[int, ...]:
    """The shape of one example: ``(C, H, W)`` when ``in_features == C*H*W``, else ``(in_features,)``."""
    if in_chans * image_size * image_size == in_features:
        return (in_chans, image_size, image_size)
    return (in_features,)
