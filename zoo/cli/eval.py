"""``zoo-eval``: evaluate a checkpoint written by ``zoo-train``.

    zoo-eval ckpt_path=outputs/lenet5_mnist5k/<time>/checkpoints/best.ckpt
    zoo-eval ckpt_path=... split=val trainer=cpu output=metrics.json
    zoo-eval ckpt_path=... data=mnist data.data_dir=/datasets     # another dataset
    zoo-eval weights=lenet5.mnist5k                               # a published weight, by name

The checkpoint rebuilds its own net (registry name and arguments are stored in it) and, unless
``data=`` is given, its own datamodule from the training config stored beside the weights.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zoo import conf as zoo_conf
from zoo.tasks import load_task
from zoo.validate import positive_int
from zoo.errors import ConfigError, user_errors


def task_from_weights(name: str):
    """A task holding the published weights ``<architecture>.<tag>`` (hash-verified), set up as
    the run that produced them was (same loss and metrics), with that run's config attached and
    the data facts the task uses (class names, a vocabulary ...) from the card."""
    from zoo.registry import create_model
    from zoo.weights import weight_card

    card = weight_card(name)
    net = create_model(card.architecture, pretrained=card.tag)
    task_cfg = dict(card.config.get("task", {}))
    task_cls = hydra.utils.get_class(task_cfg["_target_"])
    facts = {"class_names": card.class_names or None, "num_classes": card.num_classes or None, **card.data_facts}
    for key in getattr(task_cls, "data_facts_used", ()):
        if facts.get(key) is not None:
            task_cfg[key] = facts[key]
    task = instantiate(task_cfg, _convert_="all", net=net)
    task.run_config = card.config
    return task


def task_from_source(source: str | Path):
    """A task from a checkpoint file written by ``zoo-train``, or from a published weight's name
    (``<architecture>.<tag>``, hash-verified; ``zoo-weights list``): what ``zoo-predict`` and the
    family verbs (``zoo-translate``, ``zoo-trigger``, ``zoo-face``) take. An unknown name is refused
    with the published weights' nearest names."""
    from zoo.weights import UnknownWeightsError

    if Path(source).is_file():
        return load_task(Path(source))
    if str(source).endswith(".ckpt"):
        raise FileNotFoundError(f"{source} is neither a checkpoint file nor a published weight: no such file")
    try:
        return task_from_weights(str(source))
    except UnknownWeightsError as err:
        raise FileNotFoundError(f"{source} is neither a checkpoint file nor a published weight. {err}") from None


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` (or the published ``cfg.weights``) on ``cfg.split``; returns
    ``{metric: value}``."""
    if cfg.split not in ("test", "val"):
        raise ConfigError(f"split={cfg.split!r} is not allowed: split must be 'test' or 'val'")
    if cfg.get("batch_size") is not None and not positive_int(cfg.batch_size):
        raise ConfigError(f"batch_size={cfg.batch_size!r} is not allowed: batch_size must be a positive integer")
    if bool(cfg.get("ckpt_path")) == bool(cfg.get("weights")):
        raise ConfigError("give exactly one of ckpt_path=<file> or weights=<architecture>.<tag> "
                         "(`zoo-weights` lists the published weights)")
    task = task_from_weights(cfg.weights) if cfg.get("weights") else load_task(cfg.ckpt_path)
    if cfg.get("data"):
        data_cfg = cfg.data
    else:
        stored = (task.run_config or {}).get("data")
        if not stored:
            raise ConfigError(f"{cfg.ckpt_path or cfg.weights} stores no data config: pass data=<name>")
        data_cfg = OmegaConf.create(stored)
    if cfg.get("data"):
        _check_net_reads_data(task, data_cfg, cfg.ckpt_path or cfg.weights)
    if cfg.get("batch_size"):
        data_cfg = OmegaConf.merge(data_cfg, {"batch_size": cfg.batch_size, "eval_batch_size": cfg.batch_size})
    dm = instantiate(data_cfg, _convert_="all")
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_model_summary=False)
    run = trainer.test if cfg.split == "test" else trainer.validate
    metrics = {k: float(v) for k, v in run(task, datamodule=dm, verbose=False)[0].items()}
    if trainer.is_global_zero:
        print(json.dumps(metrics, indent=2))
        if cfg.get("weights") and not cfg.get("data"):
            _compare_with_card(cfg.weights, cfg.split, metrics)
        if cfg.get("output"):
            Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
            Path(cfg.output).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _check_net_reads_data(task, data_cfg: DictConfig, source: str) -> None:
    """Other data than the training run's (``data=...``) must give the net the input channels
    and the class count it was built for: say which, before any evaluation starts."""
    built = ((task.net_spec or {}).get("kwargs") or {})
    for key, what in (("in_chans", "input channels"), ("num_classes", "classes")):
        want, given = built.get(key), data_cfg.get(key)
        if isinstance(want, int) and isinstance(given, int) and want != given:
            raise ConfigError(f"data.{key}={given} disagrees with {source}, whose net was built for {want} "
                              f"{what}: set data.{key}={want}" + (" (the datamodule converts the images)"
                                                                 if key == "in_chans" else ""))


def _compare_with_card(name: str, split: str, metrics: dict) -> None:
    """Say how a published weight's figures compare with its card, and what each promises on a
    machine other than the one that recorded them (``zoo.reproducibility``)."""
    from zoo.reproducibility import compare_metrics
    from zoo.weights import weight_card

    card = weight_card(name)
    if (card.split or {}).get("name", "test") != split:
        return
    checks = compare_metrics(metrics, card.metrics, card.tolerances())
    ok = all(c.ok for c in checks)
    print(f"zoo-eval: {name} {'reproduces' if ok else 'does NOT reproduce'} its card "
          "(count-based metrics exactly; floating-point sums within a tolerance, since another CPU "
          "or thread count adds in another order):", file=sys.stderr)
    for c in checks:
        print(f"  {c.line()}", file=sys.stderr)


@hydra.main(version_base="1.3", config_path=str(zoo_conf.CONF_DIR), config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    L.seed_everything(0, workers=True, verbose=False)
    with user_errors("zoo-eval"):
        evaluate(cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
