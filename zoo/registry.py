"""The model registry: every architecture variant is a registered builder function.

``register_model`` records a builder under its function name together with a model card (the
task it serves, the paper it follows); ``create_model`` builds a variant by name;
``list_models`` filters the registered names with a shell-style pattern.  Names are unique: a
second registration under the same name is refused, and an unknown name fails with the closest
registered names.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

from zoo.errors import ConfigError

__all__ = [
    "ModelCard",
    "UnknownModelError",
    "register_model",
    "create_model",
    "list_models",
    "model_card",
    "count_parameters",
]


class UnknownModelError(ConfigError, KeyError):
    """Raised for a model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


@dataclass(frozen=True)
class ModelCard:
    """What the registry knows about one variant."""

    name: str
    builder: Callable[..., nn.Module]
    task: str
    paper: str = ""
    family: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelCard] = {}


def register_model(task: str, paper: str = "", name: str | None = None):
    """Decorator registering a builder function as a model variant.

    Args:
        task: the objective the variant is trained for (``classification``, ``detection`` ...).
        paper: short citation of the paper the variant follows.
        name: registered name; defaults to the function's name.
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(
                f"model name {key!r} is already registered by {_REGISTRY[key].builder.__module__}; "
                "choose another name"
            )
        sig = inspect.signature(fn)
        defaults = {
            k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty
        }
        family = fn.__module__.rsplit(".", 1)[-1]
        _REGISTRY[key] = ModelCard(key, fn, task, paper, family, defaults)
        return fn

    return decorator


def _ensure_loaded() -> None:
    # Importing the models package registers every family.
    import zoo.models  # noqa: F401


class UnknownArgumentError(ConfigError, TypeError):
    """Raised for a keyword argument the model's builder does not take (``model.<typo>=...``)."""


def model_card(name: str) -> ModelCard:
    """The card of a registered model; unknown names fail with the closest matches."""
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"Unknown model {name!r}.{hint} Run `zoo-models` to list every registered model."
        )
    return _REGISTRY[name]


def create_model(name: str, pretrained: str | None = None, pretrained_path: str | None = None,
                 **kwargs: Any) -> nn.Module:
    """Build the registered variant ``name`` with keyword arguments overriding its defaults.

    ``pretrained="<tag>"`` loads the published weights ``<name>.<tag>`` (hash-verified, see
    ``zoo.weights``); their arguments (class count, input channels ...) become the defaults, and
    an argument that changes a tensor's shape (another ``num_classes``) leaves that tensor freshly
    initialised, which the log reports. ``pretrained="imagenet"`` loads torchvision's ImageNet
    weights into a model torchvision also has (from ``pretrained_path``, torch's hub cache, or a
    download when online; see ``zoo.weights.torchvision``).

    The returned module carries ``zoo_spec = {"name": ..., "kwargs": ...}`` so that a
    checkpoint can rebuild it without the caller re-stating the configuration.
    """
    card = model_card(name)
    if pretrained and pretrained != "imagenet":
        from zoo.weights import weights_for

        kwargs = {**weights_for(name, pretrained).model_kwargs, **kwargs}
    sig = inspect.signature(card.builder)
    unknown = [k for k in kwargs if k not in sig.parameters]
    if unknown:
        raise UnknownArgumentError(
            f"model {name!r} got unknown argument(s) {unknown}; it accepts: "
            f"{', '.join(sig.parameters)}"
        )
    model = card.builder(**kwargs)
    model.zoo_spec = {"name": name, "kwargs": dict(kwargs)}
    if pretrained == "imagenet":
        from zoo.weights.torchvision import load_torchvision_pretrained

        load_torchvision_pretrained(model, name, pretrained_path)
    elif pretrained:
        from zoo.weights import load_pretrained

        load_pretrained(model, name, pretrained)
    elif pretrained_path:
        raise ValueError("pretrained_path needs pretrained='imagenet' (torchvision's weights)")
    return model


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (and ``task`` if given), sorted."""
    _ensure_loaded()
    return sorted(
        n
        for n, c in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern) and (task is None or c.task == task)
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
