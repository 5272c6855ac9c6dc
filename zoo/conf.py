"""Hydra/OmegaConf helpers shared by the entry points."""
from __future__ import annotations

import math
from pathlib import Path

from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def register_resolvers() -> None:
    """``${zoo.mul:a,b,...}``: product of integers (e.g. flattened input size C*H*W)."""
    if not OmegaConf.has_resolver("zoo.mul"):
        OmegaConf.register_new_resolver("zoo.mul", lambda *xs: math.prod(int(x) for x in xs))


register_resolvers()
