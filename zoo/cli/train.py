"""``zoo-train``: the one training entry point of the zoo (Hydra app).

    zoo-train                                  # the default experiment: LeNet-5 on embedded MNIST
    zoo-train experiment=mlp_mnist5k seed=1    # any experiment, any seed
    zoo-train experiment=lenet5_mnist5k trainer=ddp_cpu logger=wandb
    zoo-train experiment=lenet5_mnist5k record=true   # also record the run under reports/

Each run folder (``outputs/<experiment>/<time>/``) receives the resolved ``config.yaml``,
``metrics.json`` (val and test metrics of the best checkpoint, the task's own test outputs such
as a confusion matrix, parameters, train time, throughput, peak memory, hardware, library
versions, git commit, the command), ``history.csv``, ``learning_curves.png``, the plots the task
draws (``draw_outputs``: ``confusion_matrix.png`` for classification) and ``checkpoints/``.
Nothing here knows the objective: the task contract (``zoo.tasks.base``) says what to record.
"""
from __future__ import annotations

import csv
import inspect
import json
import logging
import shutil
import sys
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from zoo import conf as zoo_conf
from zoo.callbacks import RunStats
from zoo.flops import count_flops
from zoo.optim import scale_learning_rates
from zoo.registry import count_parameters
from zoo.runinfo import git_info, hardware, library_versions, machine_free_text
from zoo.errors import CheckpointError, ConfigError, unwrapped_user_errors, user_errors
from zoo.tasks.base import read_checkpoint_safely
from zoo.utils.checkpoint_io import AtomicCheckpointIO
from zoo.utils.compiling import compile_failures, compile_nets
from zoo.validate import validate_train_config

log = logging.getLogger("zoo.cli.train")


def instantiate_dict(group: DictConfig | None) -> list:
    """Instantiate every entry with a ``_target_`` of a name -> config mapping."""
    out = []
    if not group:
        return out
    for name, node in group.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            out.append(instantiate(node, _convert_="all"))
    return out


def reproduce_command(cfg: DictConfig) -> str:
    """The command line that reproduces this run (record= is dropped, experiment and seed kept)."""
    if cfg.get("command"):
        return str(cfg.command)
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:
        overrides = []
    overrides = [o for o in overrides if not o.startswith(("record=", "hydra.", "paths."))]
    if not any(o.startswith("experiment=") for o in overrides):
        overrides.insert(0, f"experiment={cfg.experiment_name}")
    if not any(o.startswith("seed=") for o in overrides):
        overrides.append(f"seed={cfg.seed}")
    return " ".join(["zoo-train", *overrides])


def _drop_foreign_keys(node: DictConfig) -> DictConfig:
    """Drop parameters the target does not accept, with a warning. They come from an experiment
    that tunes one scheduler (``step_size`` of step decay) or task (``label_smoothing``) when the
    user picks another one (``scheduler=cosine``, ``task=localization``): Hydra merges the
    experiment's values into the new choice."""
    target = hydra.utils.get_method(node._target_)
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return node
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return node
    foreign = [k for k in node if not str(k).startswith("_") and k not in params]
    if not foreign:
        return node
    log.warning("ignoring %s: not parameters of %s", foreign, node._target_)
    kept = OmegaConf.to_container(node, resolve=True)
    for k in foreign:
        kept.pop(k)
    return OmegaConf.create(kept)


def build(cfg: DictConfig):
    """Instantiate datamodule, net, task, loggers, callbacks and trainer from a composed config.

    The datamodule comes first: model and task configs may read its facts
    (``${data_fact:vocab_size}``), and the task receives the facts it declares it uses
    (``data_facts_used``, e.g. the class names). Reading a fact sets the data up; a config that
    reads none leaves the data to Lightning's ``setup``, as before."""
    validate_train_config(cfg)  # types, ranges and agreements, before any work starts
    with unwrapped_user_errors():  # a builder's refusal (unknown model argument ...) as itself
        return _build(cfg)


def _build(cfg: DictConfig):
    dm = instantiate(cfg.data, _convert_="all")
    with zoo_conf.data_facts_from(dm):
        _resolve_data_facts(cfg)
    net = instantiate(cfg.model, _convert_="all")
    optimizer = instantiate(cfg.optimizer, _convert_="all") if cfg.get("optimizer") else None
    scheduler = None
    if cfg.get("scheduler"):
        if "_target_" in cfg.scheduler:
            scheduler = instantiate(_drop_foreign_keys(cfg.scheduler), _convert_="all")
        else:  # e.g. scheduler=none over an experiment that tunes its scheduler's parameters
            log.warning("scheduler parameters %s without a scheduler (_target_): no LR schedule is used",
                        sorted(cfg.scheduler))
    task_cls = hydra.utils.get_class(cfg.task._target_)
    task_kwargs = data_facts_for(task_cls, dm, cfg.task)
    # the tasks optimize manually (zoo.tasks.base): clipping and gradient accumulation are
    # theirs, the trainer's settings are handed on (Lightning refuses both on the trainer side
    # under manual optimization)
    accumulate = cfg.trainer.get("accumulate_grad_batches")
    accumulate = 1 if accumulate is None else accumulate
    if not isinstance(accumulate, int) or isinstance(accumulate, bool) or accumulate < 1:
        raise ValueError(f"trainer.accumulate_grad_batches must be a positive integer, got {accumulate!r}")
    if accumulate != 1:
        task_kwargs["accumulate_grad_batches"] = accumulate
    if cfg.trainer.get("gradient_clip_val") is not None:
        task_kwargs["gradient_clip_val"] = cfg.trainer.gradient_clip_val
        task_kwargs["gradient_clip_algorithm"] = cfg.trainer.get("gradient_clip_algorithm") or "norm"
    # an experiment's options for its own task (label_smoothing ...) when the user picks another task
    task_cfg = _drop_foreign_keys(cfg.task)
    task = instantiate(task_cfg, _convert_="all", net=net, optimizer=optimizer, scheduler=scheduler, **task_kwargs)
    task.run_config = OmegaConf.to_container(cfg, resolve=True)
    task.stop_on_nonfinite = bool(cfg.get("stop_on_nonfinite", True))
    loggers = instantiate_dict(cfg.get("logger"))
    callbacks = instantiate_dict(cfg.get("callbacks"))
    stats = RunStats()
    callbacks.append(stats)
    if not loggers:  # the LR monitor needs a logger; the run history records the LR anyway
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if getattr(dm, "train_on_val", False):
        _check_no_validation(cfg, callbacks)
    # checkpoints are written beside their target and renamed into place: a run killed while
    # saving keeps its previous complete last.ckpt (zoo.utils.checkpoint_io); a trainer config
    # that names its own plugins keeps them
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, gradient_clip_val=None,
                          accumulate_grad_batches=1, **plugins)
    if cfg.get("lr_scaling"):  # e.g. linear: 8 processes x batch B step 8x the learning rate
        factor = scale_learning_rates(task, cfg.lr_scaling, trainer.world_size)
        log.info("lr_scaling=%s: learning rate x %g for %d processes", cfg.lr_scaling, factor, trainer.world_size)
    # `compile` (null: eager): torch.compile each of the task's nets in place, once the task has
    # wrapped or cut it (finetune.probe_at) and the device is known; see compile_nets
    compile_nets(task, cfg.get("compile"), trainer)
    return dm, task, trainer, stats


def _resolve_data_facts(cfg: DictConfig) -> None:
    """Resolve, in place, the groups that read a data fact, while the datamodule is at hand."""
    for key in ("model", "task"):
        node = cfg.get(key)
        if node is not None and "data_fact:" in OmegaConf.to_yaml(node):
            resolved = OmegaConf.to_container(node, resolve=True)
            with open_dict(cfg):
                cfg[key] = resolved


def data_facts_for(task_cls, dm, task_cfg: DictConfig | None = None) -> dict:
    """The facts of ``dm`` that ``task_cls`` declares it uses, unless the config sets them."""
    wanted = [k for k in getattr(task_cls, "data_facts_used", ()) if not (task_cfg is not None and task_cfg.get(k))]
    if not wanted:
        return {}
    if hasattr(dm, "data_facts"):
        facts = zoo_conf.facts_of(dm, wanted)
    else:  # a plain LightningDataModule: what it exposes as attributes
        facts = {k: getattr(dm, k) for k in wanted if hasattr(dm, k)}
    return {k: (list(facts[k]) if isinstance(facts[k], tuple) else facts[k]) for k in wanted if k in facts}


LIGHTNING_CKPT_WORDS = ("last", "best", "hpc", "registry")


def _resume_checkpoint(ckpt_path, trainer=None):
    """``ckpt_path`` to resume from: a file must exist, and is read once safely first, so that a
    damaged or hostile file is refused with its name before any training starts.

    ``last`` is the ``last.ckpt`` of this run's own folder (``hydra.run.dir``): a killed run is
    resumed by running its command again in its folder with ``ckpt_path=last``. Lightning would
    train from scratch, with a warning only, when there is none; that is refused here. Lightning's
    other words (``best``, ``hpc``, ``registry``) go to it as they are."""
    if not ckpt_path:
        return ckpt_path
    callback = getattr(trainer, "checkpoint_callback", None)
    if str(ckpt_path) == "last" and getattr(callback, "dirpath", None):
        last = Path(callback.dirpath) / "last.ckpt"
        if not last.is_file():
            raise CheckpointError(
                f"ckpt_path=last: there is no last.ckpt in {last.parent}. Resume a run in its own folder: "
                "the same command with hydra.run.dir=<the run's folder> ckpt_path=last, or name the "
                "file: ckpt_path=<run>/checkpoints/last.ckpt")
        read_checkpoint_safely(last)
        return str(last)
    if str(ckpt_path) in LIGHTNING_CKPT_WORDS:
        return ckpt_path
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={ckpt_path}: no such checkpoint file; give the path of a "
                              "checkpoint written by zoo-train (<run>/checkpoints/last.ckpt), or ckpt_path=last")
    read_checkpoint_safely(path)
    return str(path)


def _check_no_validation(cfg: DictConfig, callbacks: list) -> None:
    """``data.train_on_val`` trains on the validation split: refuse, before any training, a
    config that would still validate or choose checkpoints by a validation figure."""
    if cfg.trainer.get("limit_val_batches") != 0:
        raise ValueError("data.train_on_val=true trains on the validation split: set "
                         "trainer.limit_val_batches=0 (there is nothing left to validate on)")
    watching = [f"{type(c).__name__} (monitor={c.monitor})" for c in callbacks
                if str(getattr(c, "monitor", None) or "").startswith("val/")]
    if watching:
        raise ValueError("data.train_on_val=true leaves no validation figures, but "
                         f"{', '.join(watching)} watches one: set callbacks.model_checkpoint.monitor=null "
                         "(keep the last epoch) and drop early stopping")


def _close_loggers(trainer) -> None:
    """Flush and close the W&B run, so that an offline run file is complete when we return
    (several runs in one process, as in a sweep or the tests, each get their own run)."""
    from lightning.pytorch.loggers import WandbLogger

    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger) and trainer.is_global_zero:
            lg.experiment.finish()


def _forward_flops(net, input_shape) -> int | None:
    """Forward FLOPs per example at the training input shape (the datamodule's ``input_shape``).

    A net with ``example_inputs`` is counted on inputs of its own kind: one input -> zeros of the
    training shape in the dtype of its example input (zeros are valid token ids too); several
    inputs -> its ``example_inputs(1)`` (one shape cannot describe them). None, with a warning
    that says why, when the shape is unknown or the count fails: a run that finished is recorded
    with ``flops`` null rather than lost.
    """
    if not input_shape:
        log.warning("FLOPs not counted: the datamodule reports no input_shape; the run records flops = null")
        return None
    # a compiled net is counted on its eager forward (the same arithmetic), not compiled again
    # for a batch of one under the counter
    eager = torch.compiler.set_stance("force_eager") if hasattr(torch.compiler, "set_stance") else nullcontext()
    try:
        example = net.example_inputs(1) if hasattr(net, "example_inputs") else None
        with eager:
            if example is not None and len(example) > 1:
                return count_flops(net, inputs=example)
            if example is not None and not example[0].is_floating_point():
                return count_flops(net, inputs=(torch.zeros(1, *input_shape, dtype=example[0].dtype),))
            return count_flops(net, input_shape)
    except Exception as err:  # an exotic op the counter cannot trace must not lose a finished run
        log.warning("FLOPs not counted for %s at input shape %s: %s: %s; the run records flops = null",
                    type(net).__name__, tuple(input_shape), type(err).__name__, err)
        return None


def _json_safe(facts: dict) -> dict:
    """The data facts that JSON can hold (a vocabulary, anchors, class names ...)."""
    out = {}
    for k, v in facts.items():
        try:
            json.dumps(v)
        except TypeError:
            continue
        out[k] = v
    return out


def _clean(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if not k.endswith("_step")}


def train(cfg: DictConfig) -> dict:
    """Train, evaluate the best checkpoint on val and test, write the run folder.

    Returns the run record (what ``metrics.json`` holds) on rank 0, ``{}`` on other ranks.
    """
    out_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    dm, task, trainer, stats = build(cfg)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    ckpt_path = _resume_checkpoint(cfg.get("ckpt_path"), trainer)
    t0 = time.perf_counter()
    # weights_only: resuming reads tensors and plain containers, never code to run
    with compile_failures(cfg.get("compile")):
        trainer.fit(task, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    fit_wall_s = time.perf_counter() - t0
    if trainer.global_step == 0 and not trainer.fast_dev_run:
        raise ConfigError("the run took no training step (an empty training loader, or a checkpoint "
                          "that had already finished trainer.max_epochs): nothing is recorded")

    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
    eval_ckpt = "best" if best else None
    val_metrics, test_metrics, test_outputs = {}, {}, {}
    # no validation figures when validation is switched off (trainer.limit_val_batches=0, e.g. a
    # refit on train + validation: data.train_on_val)
    with compile_failures(cfg.get("compile")):
        if not trainer.fast_dev_run and trainer.limit_val_batches != 0:
            val_metrics = _clean(trainer.validate(task, datamodule=dm, ckpt_path=eval_ckpt, verbose=False)[0])
        if cfg.get("test", True):
            test_metrics = _clean(trainer.test(task, datamodule=dm, ckpt_path=eval_ckpt, verbose=False)[0])
            test_outputs = trainer.lightning_module.test_outputs()  # e.g. a confusion matrix

    _close_loggers(trainer)
    if not trainer.is_global_zero:
        return {}
    net = task.net
    record = {
        "experiment": cfg.experiment_name,
        "task": type(task).__name__,
        "task_class": f"{type(task).__module__}.{type(task).__qualname__}",
        "family": task.family,
        "model": (task.net_spec or {}).get("name", type(net).__name__),
        "model_kwargs": (task.net_spec or {}).get("kwargs", {}),
        "data": dm.describe() if hasattr(dm, "describe") else {"dataset": type(dm).__name__},
        "seed": int(cfg.seed),
        "params": count_parameters(net),
        "trainable_params": count_parameters(net, trainable_only=True),
        "flops": _forward_flops(net, (dm.describe() if hasattr(dm, "describe") else {}).get("input_shape")),
        "val": val_metrics,
        "test": test_metrics,
        **test_outputs,
        "epochs": int(trainer.current_epoch),
        "global_steps": int(trainer.global_step),
        "train_time_s": round(stats.train_time_s, 3),
        "fit_wall_s": round(fit_wall_s, 3),
        "throughput_samples_per_s": round(stats.throughput, 1),
        "train_samples": int(stats.train_samples),  # examples seen in training, all processes
        "peak_memory": stats.peak_memory_mb(),
        "devices": int(trainer.world_size),
        "strategy": type(trainer.strategy).__name__,
        "device_type": trainer.strategy.root_device.type,  # cpu, cuda ...
        "precision": str(trainer.precision),  # Lightning's: 32-true, bf16-mixed ...
        "compile": OmegaConf.to_container(cfg.compile) if OmegaConf.is_config(cfg.get("compile"))
        else cfg.get("compile"),  # null: eager
        "hardware": hardware(),
        "versions": library_versions(),
        "git": git_info(),
        "started_at": started,
        "command": reproduce_command(cfg),
        "best_checkpoint": best,
        "reference": OmegaConf.to_container(cfg.reference) if cfg.get("reference") else None,
    }
    facts = dm.data_facts() if hasattr(dm, "data_facts") else {}
    record["data_facts"] = _json_safe(facts)
    write_run_folder(out_dir, cfg, record, stats.history, type(task), facts)
    log.info("run folder: %s", out_dir)
    if cfg.get("record"):
        dest = record_run(out_dir, Path(cfg.paths.reports_dir), record)
        log.info("recorded under %s", dest)
    _print_summary(record, out_dir)
    return record


def write_run_folder(out_dir: Path, cfg: DictConfig, record: dict, history: list[dict],
                     task_cls, data_facts: dict) -> None:
    """The run folder: config, metrics, history, learning curves and the task's own plots."""
    from zoo.reporting import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    drawn = []
    if history:
        keys = sorted({k for r in history for k in r}, key=lambda k: (k != "epoch", k))
        with open(out_dir / "history.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(history)
        plots.learning_curves(history, out_dir / "learning_curves.png", title=record["experiment"])
        drawn.append("learning_curves.png")
    drawn += task_cls.draw_outputs(record, out_dir, data_facts)
    record["plots"] = drawn
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")


RECORDED_FILES = ("metrics.json", "config.yaml", "history.csv")  # and the plots the run lists


def record_run(out_dir: Path, reports_dir: Path, record: dict) -> Path:
    """Copy a run's files to ``reports/runs/<experiment>/seed<seed>/`` and rebuild the report."""
    from zoo.reporting.report import write_report

    dest = reports_dir / "runs" / record["experiment"] / f"seed{record['seed']}"
    # copy into a side folder, then swap it in: a run killed mid-copy never leaves a half-written
    # run folder under a name the report reads (it reads seed<k>/ folders only)
    partial = dest.with_name(dest.name + ".partial")
    old = dest.with_name(dest.name + ".old")
    for leftover in (partial, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    partial.mkdir(parents=True)
    for name in (*RECORDED_FILES, *record.get("plots", [])):
        if (out_dir / name).exists():
            shutil.copy2(out_dir / name, partial / name)
    for name in ("metrics.json", "config.yaml"):  # no path of this machine in what is recorded
        if (partial / name).exists():
            (partial / name).write_text(machine_free_text((partial / name).read_text(), out_dir))
    if dest.exists():
        dest.rename(old)
    partial.rename(dest)
    if old.exists():
        shutil.rmtree(old)
    write_report(reports_dir)
    return dest


def _print_summary(record: dict, out_dir: Path) -> None:
    test = record["test"]
    parts = [f"{k}={v:.4f}" for k, v in test.items()]
    print(f"\n[zoo] {record['experiment']} seed={record['seed']}: " + ", ".join(parts)
          + f" | params={record['params']:,} | train {record['train_time_s']:.1f}s"
          + f" | {out_dir}", file=sys.stderr)


@hydra.main(version_base="1.3", config_path=str(zoo_conf.CONF_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    with user_errors("zoo-train"):
        record = train(cfg)
    if not record or not record.get("val"):  # other DDP ranks; fast_dev_run (no validation pass)
        return None
    key = cfg.get("objective") or "val/loss"
    value = record.get("val", {}).get(key)
    if value is None:
        raise KeyError(f"objective {key!r} is not a validation metric of this run; "
                       f"available: {sorted(record.get('val', {}))}")
    return value


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
