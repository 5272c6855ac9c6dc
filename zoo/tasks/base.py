"""What every task shares: optimizer/scheduler construction from Hydra partials, and
checkpoints that rebuild their own net.

A checkpoint written by a ``ZooTask`` holds, beside Lightning's own state, a ``"zoo"`` entry
``{"task_class": "module.Class", "net_spec": {"name": ..., "kwargs": ...}, "config": {...}}``:
``load_task(path)`` rebuilds the net from the registry with those arguments, then restores the
weights, so a user never re-states the model config.

Optimization is manual (``automatic_optimization = False``), still in Lightning's own loop
and strategies: ``training_step`` takes the subclass's ``training_loss``, then zeroes the
gradients, calls ``manual_backward``, clips (in ``on_before_optimizer_step``, where mixed
precision has already unscaled the gradients) and steps the optimizer and the scheduler. The
arithmetic is that of Lightning's automatic loop, in the same order; what goes is the
closure machinery and half a dozen hook dispatches per step, which on a small net cost more
than the net's own step (``zoo-bench-overhead`` measures it). Gradient clipping is therefore
a task argument (``gradient_clip_val``, ``gradient_clip_algorithm``); ``zoo-train`` passes
``trainer.gradient_clip_val`` on to it. Gradient accumulation is not supported.

It also holds the random-number generators' states (torch, CUDA, NumPy, Python) at the moment
it was written. Lightning restores weights, optimizer, scheduler and loop counters on
``ckpt_path=...``; the zoo restores the generators as training resumes (after the sanity
check, which draws from them), so the shuffling and the augmentation of the remaining epochs
are those the uninterrupted run would have drawn, and a run resumed from a checkpoint written
at the end of an epoch (``last.ckpt``) ends bit-identical to it.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import random
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

    # metrics that are ratios of integer counts, hence identical on any machine that makes the
    # same predictions (zoo.reproducibility); every other metric is compared within a tolerance
    exact_metrics: tuple[str, ...] = ()

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        finetune: dict | None = None,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
    ):
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        if gradient_clip_algorithm not in ("norm", "value"):
            raise ValueError(f"gradient_clip_algorithm must be 'norm' or 'value', got {gradient_clip_algorithm!r}")
        self.automatic_optimization = False
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self._stepped_epoch_scheduler = False
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.net_spec = getattr(net, "zoo_spec", None)
        from zoo.finetune import FinetuneSpec

        self.finetune = FinetuneSpec(**finetune) if finetune else None
        if self.finetune is not None and self.finetune.probe_at:
            from zoo.finetune import CutNet, num_outputs

            self.net = net = CutNet(net, self.finetune.probe_at, num_outputs(net))
            logging.getLogger(__name__).warning(
                "finetune: cut the net after %r; a new linear head (%d -> %d) replaces the layers above",
                self.finetune.probe_at, net.head.in_features, net.head.out_features)
        elif self.finetune is not None and self.finetune.reset_head:
            from zoo.finetune import reset_head

            head = reset_head(net)
            logging.getLogger(__name__).warning("finetune: re-initialised the head %r (reset_head)", head)
        self.run_config: dict | None = None  # the resolved training config, stored in checkpoints

    # Lightning sets ``_current_fx_name`` (a hook's name, or None) twice around every hook it
    # calls: about thirty times per training step. ``nn.Module.__setattr__`` checks each
    # assignment against parameters, buffers and submodules, which costs more than some small
    # nets' layers. A string or None can be none of those, so it is stored directly.
    _PLAIN_ATTRIBUTES = frozenset({"_current_fx_name"})

    def __setattr__(self, name: str, value) -> None:
        if name in ZooTask._PLAIN_ATTRIBUTES and (value is None or isinstance(value, str)):
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    # -- optimisation ---------------------------------------------------------------------------
    def training_loss(self, batch, batch_idx: int) -> torch.Tensor:
        """The loss of one training batch (subclasses implement it; metrics are theirs too)."""
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        loss = self.training_loss(batch, batch_idx)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()  # on_before_optimizer_step (clipping) runs inside, after any unscaling
        if self.scheduler_factory is not None:
            self._step_scheduler(batch_idx)
        return loss.detach()

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val,
                                gradient_clip_algorithm=self.gradient_clip_algorithm)

    def _step_scheduler(self, batch_idx: int) -> None:
        """Step the scheduler where Lightning's automatic loop does: after every optimizer step
        (``scheduler_interval='step'``), or after the epoch's last training batch."""
        if self.scheduler_interval == "step":
            self.lr_schedulers().step()
            return
        if batch_idx + 1 >= self.trainer.num_training_batches:  # inf for a loader of unknown length
            self.lr_schedulers().step()
            self._stepped_epoch_scheduler = True

    def on_train_epoch_end(self) -> None:
        if (self.scheduler_factory is not None and self.scheduler_interval == "epoch"
                and not self._stepped_epoch_scheduler and self.trainer.num_training_batches == float("inf")):
            self.lr_schedulers().step()  # a loader of unknown length: its end is known only now
        self._stepped_epoch_scheduler = False

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
            "rng_states": capture_rng_states(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._resume_rng_states = (checkpoint.get("zoo") or {}).get("rng_states")

    # The generators are set back to the checkpoint's states just before the training loop
    # builds its first data iterator (which draws from them): at the start of fit, and again
    # after the sanity check, which draws from them too. In the uninterrupted run that
    # iterator was built right after the checkpoint was written.
    def on_fit_start(self) -> None:
        self._restore_resume_rng()

    def on_validation_end(self) -> None:
        if self._trainer is not None and self.trainer.sanity_checking:
            self._restore_resume_rng()

    def on_train_start(self) -> None:
        self._resume_rng_states = None  # training has begun: later validations keep their draws

    def _restore_resume_rng(self) -> None:
        states = getattr(self, "_resume_rng_states", None)
        if states is not None:
            restore_rng_states(states)


def capture_rng_states() -> dict:
    """The states of the generators training draws from, as plain data (tensors, ints, tuples:
    loadable with ``torch.load(weights_only=True)``)."""
    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    """Set the generators to states written by :func:`capture_rng_states`."""
    import numpy as np

    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


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
