"""Hydra/OmegaConf helpers shared by the entry points.

Resolvers:

* ``${zoo.mul:a,b,...}``: the product of integers (e.g. a flattened input size C*H*W).
* ``${zoo.add:a,b,...}``: the sum of integers (e.g. the object classes plus background).
* ``${data_fact:name}``: a fact the datamodule learns from its data (``num_classes``,
  ``class_names``, ``in_chans``, ``vocab_size``, ``pad_idx`` ...: ``ZooDataModule.data_facts``).
  It resolves only inside :func:`data_facts_from`, which sets the datamodule up the first time a
  config asks for a fact -- so a net whose size depends on a corpus is built after the corpus is
  read, and a config that asks for no fact never sets the data up early.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from omegaconf import OmegaConf


def _find_conf_dir() -> Path:
    """``conf/`` beside the package in a source checkout (editable install); in an installed
    wheel, the copy shipped inside the package (``zoo/_conf``)."""
    checkout = Path(__file__).resolve().parent.parent / "conf"
    if (checkout / "train.yaml").is_file():
        return checkout
    return Path(str(resources.files("zoo") / "_conf"))


CONF_DIR = _find_conf_dir()

_facts_source: list[Any] = []  # the datamodule whose facts ${data_fact:...} reads, while building


class DataFactError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def facts_of(dm, names) -> dict:
    """``dm.data_facts()`` holding ``names``: what the datamodule knows before reading its data
    (class names of folders ...), and, when one of ``names`` needs the data read, after its
    ``setup`` (done once; the result is kept on the datamodule)."""
    facts = getattr(dm, "_zoo_facts", None)
    if facts is None:
        facts = dm.data_facts()
        if any(facts.get(n) is None for n in names):
            dm.prepare_data()
            dm.setup("fit")
            facts = dm._zoo_facts = dm.data_facts()
    return facts


def _data_fact(name: str):
    if not _facts_source:
        raise DataFactError(f"${{data_fact:{name}}} is known only once the data is read: it resolves "
                            "while zoo-train builds the net and the task (zoo.conf.data_facts_from)")
    dm = _facts_source[-1]
    facts = facts_of(dm, [name])
    if name not in facts:
        raise DataFactError(f"${{data_fact:{name}}}: {type(dm).__name__} has no such fact; it has: "
                            f"{', '.join(sorted(facts)) or 'none'}")
    return facts[name]


@contextmanager
def data_facts_from(datamodule) -> Iterator[None]:
    """Within this block ``${data_fact:name}`` reads ``datamodule.data_facts()``."""
    _facts_source.append(datamodule)
    try:
        yield
    finally:
        _facts_source.pop()


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("zoo.mul"):
        OmegaConf.register_new_resolver("zoo.mul", lambda *xs: math.prod(int(x) for x in xs))
    if not OmegaConf.has_resolver("zoo.add"):
        OmegaConf.register_new_resolver("zoo.add", lambda *xs: sum(int(x) for x in xs))
    if not OmegaConf.has_resolver("data_fact"):
        OmegaConf.register_new_resolver("data_fact", _data_fact)


register_resolvers()
