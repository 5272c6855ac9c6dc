"""The zoo's models that torchvision also implements, and the way between their weights.

    >>> from zoo.weights.torchvision import torchvision_model, load_torchvision_state_dict
    >>> ref = torchvision_model("resnet18")                      # torchvision's, random weights
    >>> ours = load_torchvision_state_dict("resnet18", ref.state_dict())   # same outputs
    >>> net = zoo.create_model("resnet18", pretrained="imagenet")   # torchvision's ImageNet weights
    >>> net = zoo.create_model("resnet18", pretrained="imagenet", pretrained_path="resnet18-f37072fd.pth")

Each family file maps torchvision's state-dict keys to ours (``from_torchvision_state_dict``,
documented there); this module only finds the right mapping for a registered name.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

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


# -- torchvision's published (ImageNet) weights ---------------------------------------------------

def torchvision_weights(name: str):
    """torchvision's default ImageNet weights enum entry for our ``name``."""
    _check(name)
    import torchvision.models as tvm

    return tvm.get_model_weights(name).DEFAULT


def torchvision_weights_file(name: str) -> Path:
    """Where torch's hub cache keeps torchvision's weights of ``name`` once downloaded."""
    import torch

    url = torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _hash_prefix(path: Path) -> str | None:
    """torchvision names its files ``<arch>-<first 8 hex digits of the sha256>.pth``."""
    m = re.search(r"-([0-9a-f]{8,})\.pth$", path.name)
    return m.group(1) if m else None


def read_torchvision_state_dict(name: str, path: str | Path | None = None, download: bool = True) -> dict:
    """torchvision's ImageNet ``state_dict`` of ``name``: from ``path`` if given, else from torch's
    hub cache, else downloaded (online, with torchvision's hash check). Read with
    ``weights_only=True`` (tensors only, no code); a file under torchvision's own name must match
    the hash prefix in that name."""
    import torch

    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"torchvision weights file not found: {file}")
    else:
        file = torchvision_weights_file(name)
        if not file.is_file():
            url = torchvision_weights(name).url
            if not download:
                raise FileNotFoundError(
                    f"torchvision's {name} weights are not in torch's hub cache; put {url.rsplit('/', 1)[-1]} "
                    f"(from {url}) at {file}, or pass its path")
            try:
                return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True,
                                                          check_hash=True, weights_only=True)
            except Exception as err:  # offline, blocked, damaged download
                raise FileNotFoundError(
                    f"could not download torchvision's {name} weights ({err.__class__.__name__}: {err}). "
                    f"Offline? Put {url.rsplit('/', 1)[-1]} (from {url}) at {file}, or pass its path.") from None
        prefix = _hash_prefix(file)
        if prefix:
            from zoo.weights import sha256_of

            if not sha256_of(file).startswith(prefix):
                raise ValueError(f"{file}: its sha256 does not start with {prefix} as torchvision's file "
                                 "name promises; the file is damaged or not torchvision's. Delete it.")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"could not read {file} as a state dict of tensors: {err.__class__.__name__}: "
                         f"{str(err).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{file} holds a {type(state).__name__}, not a state dict")
    return state


def load_torchvision_pretrained(net: nn.Module, name: str, path: str | Path | None = None) -> nn.Module:
    """Load torchvision's ImageNet weights into our ``net`` (built as ``name``). A head of another
    size (another ``num_classes``) keeps its fresh initialisation; the log says which tensors."""
    from zoo.weights import load_matching

    mapped = map_torchvision_state_dict(name, read_torchvision_state_dict(name, path))
    return load_matching(net, mapped, f"torchvision's {name} weights")
