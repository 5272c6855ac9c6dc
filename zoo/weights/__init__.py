"""Published weights: a registry of named, hash-verified safetensors files.

Every weight has a name ``<architecture>.<tag>`` (``lenet5.mnist5k``) and a card
(``zoo/weights/<name>.json``) holding the sha256 and size of its file, where the file lives (a
file inside the package, else the cache, else URLs for users who are online), the dataset, the
metrics the run that produced it reached, the preprocessing, the classes, the experiment config
and git commit, and the license.

    >>> import zoo
    >>> net = zoo.create_model("lenet5", pretrained="mnist5k")      # verified, then loaded
    >>> from zoo.weights import list_weights, load_weights
    >>> list_weights()
    >>> state_dict, card = load_weights("resnet20_cifar.mnist5k")

Files are safetensors (no pickle: loading runs no code), and the sha256 is checked on every
load; a file whose size or hash differs from its card is refused, never loaded. The cache
directory is ``$ZOO_CACHE`` (default ``~/.cache/zoo``); nothing is downloaded when the file is
in the package or the cache (offline-first).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import shutil
import struct
import sys
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent  # the published files and cards sit beside this module
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+, zip (torch.save) archives


class WeightsError(ValueError):
    """A weight that cannot be used: unknown name, missing file, wrong hash or format."""


def user_errors(prog: str):
    """See :func:`zoo.errors.user_errors` (kept here for code that imports it from this module)."""
    from zoo.errors import user_errors as _user_errors

    return _user_errors(prog)


class UnknownWeightsError(WeightsError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class WeightCard:
    """What the registry knows about one published weight."""

    name: str                       # "<architecture>.<tag>"
    architecture: str               # registered model name
    model_kwargs: dict[str, Any]    # arguments of zoo.create_model
    file: str                       # file name (in the package, the cache, or at the URLs)
    sha256: str
    size: int                       # bytes
    dataset: str = ""
    metrics: dict[str, float] = field(default_factory=dict)   # from the run that produced it
    split: dict[str, Any] = field(default_factory=dict)       # the held-out split the metrics are on
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    # other facts of the data the task needs to decode its outputs (a vocabulary, anchors ...)
    data_facts: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)  # the datamodule config
    config: dict[str, Any] = field(default_factory=dict)         # the experiment's resolved config
    commit: str = ""
    command: str = ""
    license: str = ""
    urls: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1]

    def tolerances(self) -> dict:
        """The tolerance of each metric the task that produced the weight names
        (``zoo.reproducibility.tolerances_of``: its count-based metrics exact, its mean average
        precisions within ``AP_MATCH`` ...); a metric not in it is a float sum, within
        ``FLOAT_SUM``."""
        from zoo.reproducibility import tolerances_of

        target = (self.config.get("task") or {}).get("_target_")
        if not target:
            return {}
        from hydra.utils import get_class

        return tolerances_of(get_class(target))

    def reproducibility(self) -> dict[str, str]:
        """What each recorded metric promises when the weight is evaluated on another machine."""
        from zoo.reproducibility import promises

        return promises(self.metrics, self.tolerances())


def cache_dir() -> Path:
    return Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "zoo"))


def _cards() -> dict[str, WeightCard]:
    cards = {}
    for path in sorted(PACKAGE_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        cards[data["name"]] = WeightCard(**data)
    return cards


def list_weights(pattern: str = "*") -> list[str]:
    import fnmatch

    return sorted(n for n in _cards() if fnmatch.fnmatch(n, pattern))


def weight_card(name: str) -> WeightCard:
    cards = _cards()
    if name not in cards:
        close = difflib.get_close_matches(name, list(cards), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownWeightsError(f"Unknown weights {name!r}.{hint} Run `zoo-weights` to list the "
                                  f"published weights (names are <architecture>.<tag>).")
    return cards[name]


def weights_for(architecture: str, tag: str) -> WeightCard:
    """The card of ``<architecture>.<tag>``, with a clear error listing the tags that exist."""
    name = f"{architecture}.{tag}"
    try:
        return weight_card(name)
    except UnknownWeightsError:
        tags = [n.split(".", 1)[1] for n in list_weights(f"{architecture}.*")]
        raise UnknownWeightsError(
            f"No weights {name!r}; {architecture!r} has "
            + (f"these tags: {', '.join(tags)}" if tags else "no published weights")
            + ". Run `zoo-weights` to list them all.") from None


# -- files --------------------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, sha256: str, size: int) -> None:
    """Refuse a file whose size or sha256 differs from the card's, or that is not safetensors."""
    actual = path.stat().st_size
    if actual != size:
        kind = "truncated" if actual < size else "longer than published"
        raise WeightsError(f"{path} is {kind}: {actual} bytes, the card says {size}. Delete it and "
                           "fetch it again (or restore it from the package).")
    check_safetensors(path)
    digest = sha256_of(path)
    if digest != sha256:
        raise WeightsError(f"{path}: sha256 {digest} does not match the published {sha256}; the file "
                           "is damaged or not the published one. It was not loaded. Delete it and fetch it again.")


def check_safetensors(path: Path) -> None:
    """Refuse anything that is not a safetensors file (pickle-based checkpoints can run code).

    A safetensors file starts with the length of its JSON header (8 bytes, little-endian) and
    then the header itself, which opens with ``{``."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 2 <= header_len <= size - 8:
            return
    if head.startswith(_PICKLE_MAGIC):
        raise WeightsError(f"{path} is a pickle-based file (torch.save / pickle). Pickles from an "
                           "unknown source can run arbitrary code when loaded, so they are refused; "
                           "publish weights as safetensors (`zoo-weights export`).")
    raise WeightsError(f"{path} is not a safetensors file (no JSON header); refused")


def locate(card: WeightCard, download: bool = True) -> Path:
    """The verified local file of ``card``: the package's, else the cache's, else downloaded into
    the cache from the card's URLs (when ``download`` and online)."""
    candidates = [PACKAGE_DIR / card.file, cache_dir() / card.file]
    for path in candidates:
        if path.is_file():
            verify_file(path, card.sha256, card.size)
            return path
    if download and card.urls:
        dest = cache_dir() / card.file
        dest.parent.mkdir(parents=True, exist_ok=True)
        errors = []
        for url in card.urls:
            tmp = dest.with_suffix(dest.suffix + ".part")
            try:
                with urllib.request.urlopen(url, timeout=30) as resp, open(tmp, "wb") as fh:
                    shutil.copyfileobj(resp, fh)
                verify_file(tmp, card.sha256, card.size)
                os.replace(tmp, dest)
                return dest
            except Exception as err:  # offline, 404, bad file: try the next URL
                errors.append(f"{url}: {err}")
                tmp.unlink(missing_ok=True)
        raise WeightsError(f"could not fetch {card.name}: " + "; ".join(errors)
                           + f". Offline? Put the file at {cache_dir() / card.file}.")
    raise WeightsError(f"the file of {card.name} ({card.file}) is neither in the package ({PACKAGE_DIR}) "
                       f"nor in the cache ({cache_dir()}); put it at {cache_dir() / card.file} "
                       "(the cache is $ZOO_CACHE).")


def load_weights(name: str, download: bool = True) -> tuple[dict[str, torch.Tensor], WeightCard]:
    """The verified state dict of the published weight ``name`` and its card."""
    from safetensors.torch import load_file

    card = weight_card(name)
    path = locate(card, download)
    return load_file(str(path)), card


def load_matching(net: torch.nn.Module, state: dict, source: str) -> torch.nn.Module:
    """Load ``state`` into ``net``, leaving every tensor of another shape (a head for another
    class count) at its fresh initialisation; the log names those, and ``net`` keeps their names
    in ``pretrained_reinitialised``. A tensor ``net`` does not have is an error."""
    own = net.state_dict()
    unknown = sorted(k for k in state if k not in own)
    if unknown:
        raise WeightsError(f"{source} does not fit this {type(net).__name__} built with these arguments: "
                           f"unexpected tensors {unknown[:5]}")
    fresh = sorted(k for k in own if k not in state or own[k].shape != state[k].shape)
    net.load_state_dict({k: v for k, v in state.items() if k not in fresh}, strict=False)
    if fresh:
        log.warning("%s: re-initialised %d tensor(s) whose shape differs from the pretrained ones "
                    "(a new head): %s", source, len(fresh), ", ".join(fresh))
    net.pretrained_reinitialised = fresh
    return net


def load_pretrained(net: torch.nn.Module, architecture: str, tag: str) -> torch.nn.Module:
    """Load ``<architecture>.<tag>`` into ``net`` (built by the registry); see ``load_matching``."""
    card = weights_for(architecture, tag)
    state, _ = load_weights(card.name)
    return load_matching(net, state, card.name)


# -- publishing ---------------------------------------------------------------------------------

def export_run(run_dir: Path, ckpt_path: Path, tag: str, out_dir: Path = PACKAGE_DIR,
               license: str = "Apache-2.0", urls: list[str] | None = None) -> WeightCard:
    """Publish the net of ``ckpt_path`` (written by the run recorded in ``run_dir``) as
    ``<architecture>.<tag>``: a safetensors file and its card, metrics taken from the run."""
    from safetensors.torch import save_file

    from zoo.tasks import load_task

    record = json.loads((Path(run_dir) / "metrics.json").read_text())
    task = load_task(ckpt_path)
    spec = getattr(task.net, "zoo_spec", None)
    if spec is None:
        raise WeightsError(f"{ckpt_path} holds a {type(task.net).__name__}, not a registry architecture "
                           "(a net cut by finetune.probe_at): it cannot be published by name")
    if spec["name"] != record["model"]:
        raise WeightsError(f"{ckpt_path} holds {spec['name']}, the run in {run_dir} trained {record['model']}")
    from omegaconf import OmegaConf

    run_cfg = OmegaConf.to_container(OmegaConf.load(Path(run_dir) / "config.yaml"))
    # the record names the run folder ``<run>`` (zoo.runinfo.machine_free_text); the
    # checkpoint's config holds the folder it was trained in: compared in the record's words.
    # Where the files were (``paths``) is recorded without this machine's folders: not compared
    ckpt_cfg = task.run_config or {}
    trained_in = Path((ckpt_cfg.get("trainer") or {}).get("default_root_dir") or Path(ckpt_path).resolve().parent.parent)
    from zoo.runinfo import machine_free_text

    def in_record_words(cfg: dict) -> dict:
        text = machine_free_text(OmegaConf.to_yaml(OmegaConf.create(cfg)), trained_in)
        return {k: v for k, v in OmegaConf.to_container(OmegaConf.create(text)).items() if k != "paths"}

    if in_record_words(ckpt_cfg) != in_record_words(run_cfg):
        raise WeightsError(f"{ckpt_path} was not written by the run recorded in {run_dir} (their configs "
                           "differ): its metrics would not be this checkpoint's")
    name = f"{spec['name']}.{tag}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    file = f"{name}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in task.net.state_dict().items()}
    # one metadata key: safetensors writes a dict's keys in hash order, so two keys would make
    # exports of the same checkpoint differ byte for byte (and in sha256); the name holds both
    save_file(state, str(out_dir / file), metadata={"name": name})
    config = task.run_config or {}
    data = record.get("data", {})
    card = WeightCard(
        name=name, architecture=spec["name"], model_kwargs=spec["kwargs"], file=file,
        sha256=sha256_of(out_dir / file), size=(out_dir / file).stat().st_size,
        dataset=data.get("dataset", ""), metrics=record.get("test", {}),
        split={"name": "test", "size": data.get("test_size"), "split_seed": config.get("data", {}).get("split_seed")},
        num_classes=data.get("num_classes", 0), class_names=data.get("class_names", []),
        data_facts={**{k: v for k, v in record.get("data_facts", {}).items()
                       if k not in ("num_classes", "class_names", "in_chans", "image_size", "input_shape")},
                    **task.published_facts()},
        preprocessing={k: v for k, v in config.get("data", {}).items() if k not in ("augment", "data_dir")},
        config=config, commit=(record.get("git") or {}).get("commit", ""), command=record.get("command", ""),
        license=license, urls=list(urls or []),
    )
    (out_dir / f"{name}.json").write_text(json.dumps(asdict(card), indent=2) + "\n")
    return card
