"""What every task shares: optimizer/scheduler construction from Hydra partials, and
checkpoints that rebuild their own net.

A checkpoint written by a ``ZooTask`` holds, beside Lightning's own state, a ``"zoo"`` entry
``{"task_class": "module.Class", "net_spec": {"name": ..., "kwargs": ...}, "config": {...}}``:
``load_task(path)`` rebuilds the net from the registry with those arguments, then restores the
weights, so a user never re-states the model config.
"""
from __future__ import annotations

import importlib
import inspect
import logging
from functools import partial
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
import torch.nn as nn

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class ZooTask(L.LightningModule):
    """Base of every task. Subclasses call ``super().__init__(net, optimizer, scheduler, ...)``
    and then ``self.save_hyperparameters(ignore=[...])``."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        finetune: dict | None = None,
    ):
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.net_spec = getattr(net, "zoo_spec", None)
        from zoo.finetune import FinetuneSpec

        self.finetune = FinetuneSpec(**finetune) if finetune else None
        if self.finetune is not None and self.finetune.reset_head:
            from zoo.finetune import reset_head

            head = reset_head(net)
            logging.getLogger(__name__).warning("finetune: re-initialised the head %r (reset_head)", head)
        self.run_config: dict | None = None  # the resolved training config, stored in checkpoints

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("no optimizer configured: pass optimizer=functools.partial(torch.optim.X, ...)")
        if self.finetune is not None:
            from zoo.finetune import param_groups

            base_lr = (self.optimizer_factory.keywords.get("lr") if isinstance(self.optimizer_factory, partial)
                       else None)
            if base_lr is None:
                raise ValueError("fine-tuning presets need the optimizer's lr in its config")
            opt = self.optimizer_factory(param_groups(self.net, base_lr, self.finetune))
        else:
            params = [p for p in self.parameters() if p.requires_grad]
            opt = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return opt
        sched = self._build_scheduler(opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": self.scheduler_interval}}

    def on_train_epoch_start(self) -> None:
        if self.finetune is not None:
            from zoo.finetune import apply_freezing

            frozen = apply_freezing(self.net, self.finetune, self.current_epoch)
            if self.current_epoch == 0 or self.finetune.mode == "gradual_unfreeze":
                n = sum(1 for _ in self.net.parameters())
                self.print(f"[finetune {self.finetune.mode}] epoch {self.current_epoch}: "
                           f"{n - len(frozen)}/{n} parameter tensors train")

    def _build_scheduler(self, opt):
        """Fill in the schedule length when the config leaves it out: ``total_steps`` (one-cycle)
        and ``T_max`` (cosine) are derived from the trainer, in steps or epochs to match
        ``scheduler_interval``."""
        factory = self.scheduler_factory
        target = factory.func if isinstance(factory, partial) else factory
        given = factory.keywords if isinstance(factory, partial) else {}
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            params = {}
        extra: dict[str, Any] = {}
        if self.scheduler_interval == "step":
            length = int(self.trainer.estimated_stepping_batches)
        else:
            length = int(self.trainer.max_epochs or 1)
        if "total_steps" in params and given.get("total_steps") is None:
            extra["total_steps"] = length
            if "epochs" in given or "steps_per_epoch" in given:
                extra.update(epochs=None, steps_per_epoch=None)
        if "T_max" in params and given.get("T_max") is None:
            extra["T_max"] = length
        return factory(opt, **extra)

    # -- checkpoints ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["zoo"] = {
            "task_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "net_spec": self.net_spec,
            "config": self.run_config,
        }


def _read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # weights_only: a checkpoint is data, never code to run
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a damaged or foreign file
        raise ValueError(
            f"could not read checkpoint {path}: {err.__class__.__name__}: {str(err).splitlines()[0]}. "
            "Is the file complete and written by zoo-train?"
        ) from err


def load_task(path: str | Path, map_location: str | torch.device = "cpu") -> ZooTask:
    """Rebuild a task and its net from a checkpoint written by ``zoo-train``."""
    ckpt = _read_checkpoint(path)
    meta = ckpt.get("zoo")
    if not meta or not meta.get("net_spec"):
        raise ValueError(
            f"{path} holds no zoo metadata (net name and arguments); only checkpoints written by "
            "zoo-train can be loaded by name-free rebuilding"
        )
    from zoo.registry import create_model

    module_name, _, cls_name = meta["task_class"].rpartition(".")
    if not module_name.startswith("zoo.tasks"):
        raise ValueError(f"{path}: refusing task class {meta['task_class']!r} outside zoo.tasks")
    cls = getattr(importlib.import_module(module_name), cls_name)
    spec = meta["net_spec"]
    net = create_model(spec["name"], **spec["kwargs"])
    hparams = dict(ckpt.get("hyper_parameters", {}))
    task = cls(net=net, **hparams)
    task.load_state_dict(ckpt["state_dict"])
    task.run_config = meta.get("config")
    return task.to(map_location)
