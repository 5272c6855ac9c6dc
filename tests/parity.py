"""Shared step of the torchvision parity tests: load torchvision's weights into our model through
the family's key mapping and run both on the same input."""
from __future__ import annotations

import torch
import torch.nn as nn

import zoo
from zoo.registry import count_parameters


def load_and_compare(name: str, reference: nn.Module, family_module) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Map ``reference``'s state_dict into ``zoo.create_model(name)`` (strict), check the parameter
    counts agree, and return (torchvision output, our output, max abs difference) on one
    seeded 1x3x224x224 input, both nets in eval mode."""
    ours = zoo.create_model(name).eval()
    ours.load_state_dict(family_module.from_torchvision_state_dict(reference.state_dict()), strict=True)
    assert count_parameters(ours) == count_parameters(reference)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    diff = (got - expected).abs().max().item()
    print(f"{name}: max abs diff {diff:.3g}, output std {expected.std().item():.3g}, "
          f"{count_parameters(ours):,} parameters")
    return expected, got, diff
