"""The zoo's models that torchvision also implements, and the way between their weights.

    >>> from zoo.torchvision_compat import torchvision_model, load_torchvision_state_dict
    >>> ref = torchvision_model("resnet18")                      # torchvision's, random weights
    >>> ours = load_torchvision_state_dict("resnet18", ref.state_dict())   # same outputs

Each family file maps torchvision's state-dict keys to ours (``from_torchvision_state_dict``,
documented there); this module only finds the right mapping for a registered name.
"""
from __future__ import annotations

import importlib

from torch import nn

from zoo.registry import create_model, model_card

# our registered name -> torchvision builder keyword arguments (beyond weights=None)
TORCHVISION_EQUIVALENTS: dict[str, dict] = {
    "alexnet": {},
    **{f"vgg{d}{bn}": {} for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    **{f"resnet{d}": {} for d in (18, 34, 50, 101, 152)},
    # torchvision's defaults differ from the paper's network only in these two switches
    "googlenet": {"aux_logits": True, "init_weights": True, "transform_input": False},
    "mobilenet_v2": {},
    **{f"efficientnet_b{i}": {} for i in range(4)},
    "densenet121": {},
    "densenet169": {},
}


def has_torchvision_equivalent(name: str) -> bool:
    return name in TORCHVISION_EQUIVALENTS


def _check(name: str) -> None:
    if name not in TORCHVISION_EQUIVALENTS:
        raise KeyError(f"torchvision has no implementation of {name!r}; models with one: "
                       f"{', '.join(sorted(TORCHVISION_EQUIVALENTS))}")


def torchvision_model(name: str, num_classes: int = 1000) -> nn.Module:
    """torchvision's implementation of the registered model ``name``, randomly initialised
    (nothing is downloaded)."""
    _check(name)
    import torchvision.models as tvm

    return getattr(tvm, name)(weights=None, num_classes=num_classes, **TORCHVISION_EQUIVALENTS[name])


def map_torchvision_state_dict(name: str, state_dict: dict) -> dict:
    """torchvision's ``state_dict`` of ``name`` with its keys renamed to ours."""
    _check(name)
    family = importlib.import_module(f"zoo.models.{model_card(name).family}")
    return family.from_torchvision_state_dict(state_dict)


def load_torchvision_state_dict(name: str, state_dict: dict, **kwargs) -> nn.Module:
    """Our ``name`` (built with ``kwargs``) holding the weights of torchvision's ``state_dict``
    (strict: every tensor must find its place)."""
    net = create_model(name, **kwargs)
    net.load_state_dict(map_torchvision_state_dict(name, state_dict), strict=True)
    return net
