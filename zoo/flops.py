"""Floating-point operation counts of a model's forward pass.

Counted with ``torch.utils.flop_counter.FlopCounterMode``: matrix multiplies and convolutions
(including their grouped/depthwise forms) at two FLOPs per multiply-accumulate; element-wise
operations (activations, batch norm, pooling, additions) are not counted, which is the usual
convention of papers and of torchvision's model tables (they report GFLOPS = 2 x GMACs of the
same operators). A training step costs about three times the forward count (forward, plus the
gradients with respect to inputs and weights).

    >>> from zoo.flops import count_flops
    >>> count_flops(create_model("resnet20_cifar", num_classes=10), (3, 32, 32))   # ~81 MFLOPs
"""
from __future__ import annotations

import inspect
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from zoo.registry import create_model, model_card


def count_flops(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1) -> int:
    """Forward FLOPs per example for inputs of ``input_shape`` = (C, H, W) (or any per-example
    shape), counted in eval mode (no auxiliary heads) on a batch of ``batch_size``.

    The model's training flag is restored afterwards; parameters are not changed.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        x = torch.zeros(batch_size, *input_shape, device=device, dtype=dtype)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        total = counter.get_total_flops()
    finally:
        model.train(was_training)
    return int(total) // batch_size


def reference_input_shape(name: str, in_chans: int | None = None) -> tuple[int, int, int]:
    """The input a registered model is usually quoted at: 224x224 for ImageNet-style models
    (those with a ``small_input`` switch, in their default large-input layout), otherwise the
    model's own example input (32x32 for the CIFAR nets and LeNet-5, 28x28 for the MNIST MLPs)."""
    card = model_card(name)
    params = inspect.signature(card.builder).parameters
    chans = in_chans if in_chans is not None else (params["in_chans"].default if "in_chans" in params else 1)
    if "small_input" in params:
        return (chans, 224, 224)
    net = create_model(name)
    if hasattr(net, "example_inputs"):
        return tuple(net.example_inputs(batch_size=1)[0].shape[1:])
    return (chans, 28, 28)


def format_flops(flops: float) -> str:
    """1234567 -> '1.23M'; 4.1e9 -> '4.10G'."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.2f}{unit}"
    return f"{flops:.0f}"
