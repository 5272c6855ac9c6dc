"""The task contract, and what every task shares: cheap exact metric logging, manual
optimization (closures for L-BFGS, gradient accumulation), optimizer and scheduler construction
from Hydra partials, and checkpoints that rebuild their own nets.

A checkpoint written by a ``ZooTask`` holds, beside Lightning's own state, a ``"zoo"`` entry
``{"task_class": "module.Class", "net_specs": {"net": {"name": ..., "kwargs": ...}, ...},
"config": {...}, "rng_states": {...}}``: ``load_task(path)`` rebuilds each net from the registry
with those arguments, then the task with its saved hyperparameters, then restores the weights,
so a user never re-states the model config.

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
import math
import random
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
import torch.nn as nn
from torchmetrics import Metric, MetricCollection

from zoo.errors import CheckpointError, NonFiniteLossError

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class ZooTask(L.LightningModule):
    """Base of every task: the task contract, and the machinery every objective shares.

    **The contract.** A task is the only place that knows its objective. ``zoo-train``,
    ``zoo-eval``, ``zoo-predict``, weight export, ``zoo-bench`` and the report consult these
    and nothing else:

    * ``family`` (report section), ``batch_contract`` (what a batch holds), ``nets`` (the init
      arguments that are nets, each rebuilt from the registry by :func:`load_task`),
      ``data_facts_used`` (datamodule facts handed to ``__init__`` by the entry points, e.g.
      ``class_names``; a vocabulary for decoding travels the same way and is kept in the
      checkpoint's hyperparameters);
    * metrics: ``build_metrics(prefix)`` (one ``MetricCollection`` per stage), ``primary_metric``
      with ``higher_is_better``, ``exact_metrics`` (ratios of counts: identical on any machine,
      ``zoo.reproducibility``), ``ap_metrics`` (mean average precisions, compared within
      ``AP_MATCH``), ``decoded_metrics`` (error rates of frame-by-frame decodes, within
      ``DECODE_MATCH``) -- ``zoo.reproducibility.tolerances_of`` turns these lists into one
      mapping from metric name to tolerance, and refuses a name listed in two --,
      ``report_columns()`` (the family's columns, primary first);
    * the step: ``shared_step(batch, stage) -> (loss, outputs, target)``; ``metric_inputs``
      turns a flush's concatenated outputs into what the metrics take;
    * outputs: ``predict_step`` and ``describe_prediction`` (one JSON-able record per input,
      for ``zoo-predict``); ``test_outputs()`` (extra figures a test run records, e.g. a
      confusion matrix) and ``draw_outputs(record, folder, data_facts)`` (the family's plots,
      PNG names returned; the report shows them inline).

    A new task writes ``shared_step``, ``build_metrics`` and, where it has them, its outputs;
    the base keeps the per-step cost low and the figures exact:

    **Logging cost.** On a CPU a small net's training step takes a few milliseconds, and both
    ``self.log`` and a torchmetrics ``update`` cost a sizeable fraction of that. So a step only
    keeps its outputs, targets and loss (``_EpochAccumulator``); the metric objects receive them
    in one ``update`` every ``flush_every`` batches (sooner for large outputs) and on the
    epoch's last batch, and are logged once per epoch (Lightning computes, syncs across
    processes and resets a logged metric object at the epoch's end). The step loss is written to
    the loggers directly, on the steps Lightning's logger cadence would write
    (``log_every_n_steps``). The figures are exactly those of per-step updates, and the loss is
    summed in the same order as Lightning's own mean.

    **Optimization** is manual (``automatic_optimization = False``), still in Lightning's own
    loop and strategies: ``training_step`` takes ``training_loss``, then zeroes the gradients,
    calls ``manual_backward``, clips (in ``on_before_optimizer_step``, where mixed precision has
    already unscaled the gradients) and steps the optimizer and the scheduler -- the arithmetic
    of Lightning's automatic loop, in the same order, without the closure machinery and half a
    dozen hook dispatches per step. Two cases add to it:

    * an optimizer whose ``step`` needs a closure (L-BFGS, which re-evaluates the loss during
      its line search) gets one; the batch's metrics are kept from the first evaluation only;
    * ``accumulate_grad_batches=k`` adds the gradients of ``k`` batches (each loss divided by
      ``k``) before one optimizer step -- the gradient of a k-times larger batch, for recipes
      whose batch does not fit (``zoo-train`` hands ``trainer.accumulate_grad_batches`` on).
    """

    # -- the contract (class attributes; see the docstring) ---------------------------------------
    family: str = "Other"
    batch_contract: str = "a batch as its datamodule's docstring states"
    nets: tuple[str, ...] = ("net",)
    data_facts_used: tuple[str, ...] = ()
    primary_metric: str = "loss"
    higher_is_better: bool = False
    # metrics that are ratios of integer counts, hence identical on any machine that makes the
    # same predictions (zoo.reproducibility); every other metric is compared within a tolerance
    exact_metrics: tuple[str, ...] = ()
    # mean average precisions (boxes matched at IoU thresholds): within zoo.reproducibility.AP_MATCH
    ap_metrics: tuple[str, ...] = ()
    # error rates of sequences decoded by an argmax at every frame (CTC): a near-tie frame may
    # decode otherwise on another CPU; within zoo.reproducibility.DECODE_MATCH
    decoded_metrics: tuple[str, ...] = ()
    # classes the net scores beyond the data's classes (a segmentation map's background: 1)
    extra_classes: int = 0
    # a NaN or infinite training loss stops the run, naming the step (zoo.errors.NonFiniteLossError)
    stop_on_nonfinite: bool = True

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        accumulate_grad_batches: int = 1,
    ):
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        if gradient_clip_algorithm not in ("norm", "value"):
            raise ValueError(f"gradient_clip_algorithm must be 'norm' or 'value', got {gradient_clip_algorithm!r}")
        if int(accumulate_grad_batches) < 1:
            raise ValueError(f"accumulate_grad_batches must be a positive integer, got {accumulate_grad_batches!r}")
        self.automatic_optimization = False
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.accumulate_grad_batches = int(accumulate_grad_batches)
        self._stepped_epoch_scheduler = False
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.net_spec = getattr(net, "zoo_spec", None)
        self.run_config: dict | None = None  # the resolved training config, stored in checkpoints
        self.last_train_loss: float | None = None  # the last step loss written (progress bar)
        self._metrics_ready = False
        self._closure_optimizer: bool | None = None

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

    # -- what a task implements -----------------------------------------------------------------
    def shared_step(self, batch, stage: str) -> tuple[torch.Tensor, Any, Any]:
        """``(loss, outputs, target)`` of one batch: the loss to train on (a scalar), and what the
        metrics are updated with at the next flush (tensors with the batch first, concatenated
        across batches; see ``metric_inputs``)."""
        raise NotImplementedError

    def build_metrics(self, prefix: str) -> MetricCollection:
        """A new ``MetricCollection`` for one stage (``prefix`` is ``train/``, ``val/`` or ``test/``)."""
        raise NotImplementedError

    def metric_inputs(self, outputs: torch.Tensor, target: torch.Tensor, stage: str):
        """What the metric objects' ``update`` takes, from a flush's concatenated outputs."""
        return outputs, target

    def metric_update_context(self):
        """The context the metric updates run in (e.g. exact counting under deterministic mode)."""
        return nullcontext()

    def on_metrics_flushed(self, stage: str, preds, target) -> None:
        """After each flush's update: for figures beside the collection (a test confusion matrix)."""

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        """The family's report columns: ``(metric key, header, scale)``, primary metric first;
        a scale of 100 prints a fraction as a percentage."""
        return [(f"test/{cls.primary_metric}", f"test {cls.primary_metric}", 1.0)]

    def test_outputs(self) -> dict[str, Any]:
        """Figures beside the metrics that a test run records (JSON-able)."""
        return {}

    @classmethod
    def draw_outputs(cls, record: dict, folder: Path, data_facts: dict) -> list[str]:
        """Draw the family's plots of a finished run into ``folder``; return the file names
        (by default: the ``test_pictures`` the test run drew there)."""
        return [name for name in cls.test_pictures if (folder / name).is_file()]

    def published_facts(self) -> dict:
        """What a published weight's card must hold beside the net's tensors for this task to use
        them (e.g. a detector's anchors): stored in the card's ``data_facts`` by
        ``zoo-weights export`` and handed back to ``__init__`` (list the keys in
        ``data_facts_used``). None by default."""
        return {}

    @classmethod
    def draw_family_plots(cls, runs: list[dict], folder: Path) -> list[tuple[str, str]]:
        """Draw plots that compare the family's recorded runs (``runs``: their records, every
        seed) into ``folder`` (the reports folder); return ``(file name, caption)`` pairs for the
        family's report section. None by default."""
        return []

    # -- pictures of held-out predictions --------------------------------------------------------
    # A task that shows its predictions keeps a few test examples (``keep_test_examples`` in its
    # step) and draws them at the end of the test epoch (``draw_test_examples``) into the run
    # folder, under the names it lists here; the run records them as plots.
    test_pictures: tuple[str, ...] = ()
    _test_examples: dict | None = None

    def keep_test_examples(self, stage: str, **examples) -> None:
        """Keep the first test batch's examples (tensors, or lists of per-image items), on the CPU."""
        if stage != "test" or self._test_examples is not None:
            return
        self._test_examples = {k: _to_cpu(v) for k, v in examples.items()}

    def draw_test_examples(self, examples: dict, folder: Path) -> None:
        """Draw the kept examples into ``folder`` (the run folder); rank 0 only."""

    def on_test_epoch_start(self) -> None:
        self._test_examples = None

    def describe_prediction(self, output, top: int = 5) -> dict:
        """One JSON-able record of ``predict_step``'s output for one input."""
        value = output.tolist() if isinstance(output, torch.Tensor) else output
        return {"output": value}

    def predict_step(self, batch, batch_idx: int = 0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.net(x)

    # -- metrics, kept cheap ------------------------------------------------------------------------
    flush_every = 64  # batches of outputs kept before the torchmetrics objects are updated
    flush_values = 1 << 20  # ... or this many kept values (4 MiB of float32), whichever comes first

    def init_metrics(self) -> None:
        """Build each stage's metric collection and loss mean (a subclass calls it at the end
        of its ``__init__``, once what ``build_metrics`` needs is set)."""
        self.train_metrics = self.build_metrics("train/")
        self.val_metrics = self.build_metrics("val/")
        self.test_metrics = self.build_metrics("test/")
        self.train_loss, self.val_loss, self.test_loss = EpochMean(), EpochMean(), EpochMean()
        self._pending = {stage: _EpochAccumulator() for stage in ("train", "val", "test")}
        self._metrics_ready = True

    def _stage_metrics(self, stage: str) -> MetricCollection:
        return {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}[stage]

    def _mean_loss(self, stage: str) -> "EpochMean":
        return {"train": self.train_loss, "val": self.val_loss, "test": self.test_loss}[stage]

    def _step(self, batch, stage: str, batch_idx: int = 0) -> torch.Tensor:
        if not self._metrics_ready:
            raise RuntimeError(f"{type(self).__name__}.__init__ must end with self.init_metrics()")
        loss, outputs, target = self.shared_step(batch, stage)
        pending = self._pending[stage]
        if batch_idx == 0:  # a new epoch (or a sanity check before it): nothing carries over
            pending.clear()
        pending.add(_detached(outputs), target, loss.detach())
        last = batch_idx + 1 >= self._batches_per_epoch(stage)
        if last or len(pending) >= self.flush_every or pending.kept_values >= self.flush_values:
            self._flush(stage, end_of_epoch=last)
        if batch_idx == 0:  # the objects are registered once; Lightning computes them at epoch end
            name = "train/loss_epoch" if stage == "train" else f"{stage}/loss"
            self.log(name, self._mean_loss(stage), on_step=False, on_epoch=True, prog_bar=True)
            self.log_dict(self._stage_metrics(stage), on_step=False, on_epoch=True, prog_bar=stage != "train")
        if stage == "train" and self._logger_writes_this_step():
            self._log_step_loss(loss)
        return loss

    def _logger_writes_this_step(self) -> bool:
        """True on the training steps whose logged values reach the logger (Lightning writes
        every ``log_every_n_steps``-th step) -- and on every step when there is no trainer."""
        trainer = self._trainer
        if trainer is None:
            return True
        every = max(1, int(trainer.log_every_n_steps or 1))
        return (self.global_step + 1) % every == 0 or self.global_step == 0

    def _log_step_loss(self, loss: torch.Tensor) -> None:
        """Write the step loss straight to the loggers (``train/loss_step``) and keep it for the
        progress bar (``last_train_loss``). Going through ``self.log`` would make Lightning
        gather, convert and hand on the logged values on every step, not only on these."""
        value = float(loss.detach())
        self.last_train_loss = value
        trainer = self._trainer
        if trainer is None:
            return
        for logger in trainer.loggers:
            logger.log_metrics({"train/loss_step": value, "epoch": self.current_epoch}, step=self.global_step)

    def _batches_per_epoch(self, stage: str) -> float:
        """Batches the running epoch of ``stage`` has (1 without a trainer: every step flushes;
        inf for an iterable loader of unknown length: the epoch-end hooks flush)."""
        trainer = self._trainer
        if trainer is None:
            return 1
        if stage == "train":
            n = trainer.num_training_batches
        elif stage == "val":
            n = trainer.num_sanity_val_batches if trainer.sanity_checking else trainer.num_val_batches
        else:
            n = trainer.num_test_batches
        if isinstance(n, (list, tuple)):
            n = n[0] if len(n) == 1 else float("inf")
        return n

    def _flush(self, stage: str, end_of_epoch: bool) -> None:
        """Hand the kept outputs to the metric objects (and, at the epoch's end, the loss sum)."""
        pending = self._pending[stage]
        if len(pending):
            outputs, target = pending.take_outputs()
            preds, target = self.metric_inputs(outputs, target, stage)
            with self.metric_update_context():
                self._stage_metrics(stage).update(preds, target)
                self.on_metrics_flushed(stage, preds, target)
        if end_of_epoch and pending.loss_count:
            total, count = pending.take_loss()
            self._mean_loss(stage).update(total, count)

    def training_loss(self, batch, batch_idx: int) -> torch.Tensor:
        """The loss of one training batch, its outputs kept for the epoch's metrics."""
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", batch_idx)

    def test_step(self, batch, batch_idx):
        self._step(batch, "test", batch_idx)

    def on_validation_epoch_end(self) -> None:
        self._flush("val", end_of_epoch=True)

    def on_test_epoch_end(self) -> None:
        self._flush("test", end_of_epoch=True)
        trainer = self._trainer
        if self._test_examples is not None and trainer is not None and trainer.is_global_zero:
            folder = Path(trainer.default_root_dir)  # zoo-eval's folder may not exist yet
            folder.mkdir(parents=True, exist_ok=True)
            self.draw_test_examples(self._test_examples, folder)

    # -- optimisation ---------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        if self._closure_optimizer is None:  # looked up once: a signature costs more than a small step
            self._closure_optimizer = _needs_closure(opt)
        if self._closure_optimizer:
            return self._closure_step(opt, batch, batch_idx)
        k = self.accumulate_grad_batches
        if k == 1:
            loss = self.training_loss(batch, batch_idx)
            self._check_finite(loss, batch_idx)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()  # on_before_optimizer_step (clipping) runs inside, after any unscaling
            if self.scheduler_factory is not None:
                self._step_scheduler(batch_idx)
            return loss.detach()
        # gradient accumulation: a window of k batches (the epoch's last window may be shorter)
        total = self.trainer.num_training_batches
        first_of_window = batch_idx % k == 0
        last_of_window = (batch_idx + 1) % k == 0 or batch_idx + 1 >= total
        loss = self.training_loss(batch, batch_idx)
        self._check_finite(loss, batch_idx)
        if first_of_window:
            opt.zero_grad()
        self.manual_backward(loss / k)
        if last_of_window:
            opt.step()
            if self.scheduler_factory is not None:
                self._step_scheduler(batch_idx)
        return loss.detach()

    def _closure_step(self, opt, batch, batch_idx):
        """One step of an optimizer that re-evaluates the loss (L-BFGS): the first evaluation is
        the step's own (its outputs feed the metrics), the line search's later ones only
        recompute the loss."""
        if self.accumulate_grad_batches != 1:
            raise ValueError(f"{type(opt.optimizer).__name__} re-evaluates the loss within a step; "
                             "it cannot accumulate gradients over batches (set accumulate_grad_batches=1)")
        first: list[torch.Tensor] = []

        def closure():
            opt.zero_grad()
            if not first:
                loss = self.training_loss(batch, batch_idx)
                self._check_finite(loss, batch_idx)
                first.append(loss.detach())
            else:
                loss = self.shared_step(batch, "train")[0]
            self.manual_backward(loss)
            return loss

        opt.step(closure=closure)
        if self.scheduler_factory is not None:
            self._step_scheduler(batch_idx)
        return first[0]

    def _check_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Stop training at a NaN or infinite loss, before it reaches the weights
        (``stop_on_nonfinite``, on by default; ``zoo-train stop_on_nonfinite=false`` trains on)."""
        if not self.stop_on_nonfinite or bool(torch.isfinite(loss.detach()).all()):
            return
        trainer = self._trainer
        saved = None
        if trainer is not None and trainer.checkpoint_callback is not None:
            cb = trainer.checkpoint_callback
            saved = getattr(cb, "last_model_path", None) or getattr(cb, "best_model_path", None) or None
        where = (f"the checkpoint of the last finished epoch is kept: {saved}" if saved else
                 "no checkpoint had been written yet (the fault came in the first epoch)")
        raise NonFiniteLossError(
            f"the training loss is {float(loss.detach().float().mean())} at step {self.global_step} "
            f"(epoch {self.current_epoch}, batch {batch_idx}): training stopped before that step changed "
            f"the weights, and nothing was recorded; {where}. Lower optimizer.lr, set "
            "trainer.gradient_clip_val, or check the data (stop_on_nonfinite=false trains on regardless)",
            step=self.global_step, epoch=self.current_epoch, checkpoint=saved)

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
        self._flush("train", end_of_epoch=True)  # a no-op unless the loader's length was unknown
        if (self.scheduler_factory is not None and self.scheduler_interval == "epoch"
                and not self._stepped_epoch_scheduler and self.trainer.num_training_batches == float("inf")):
            self.lr_schedulers().step()  # a loader of unknown length: its end is known only now
        self._stepped_epoch_scheduler = False

    def parameter_groups(self) -> list | Any:
        """What the optimizer is built over: every parameter that trains (a task may return
        groups with their own learning rates, e.g. fine-tuning presets)."""
        return [p for p in self.parameters() if p.requires_grad]

    def optimizer_base_lr(self) -> float | None:
        factory = self.optimizer_factory
        return factory.keywords.get("lr") if isinstance(factory, partial) else None

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("no optimizer configured: pass optimizer=functools.partial(torch.optim.X, ...)")
        opt = self.optimizer_factory(self.parameter_groups())
        self._closure_optimizer = None
        if self.scheduler_factory is None:
            return opt
        sched = self._build_scheduler(opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": self.scheduler_interval}}

    def _build_scheduler(self, opt):
        """Fill in the schedule length when the config leaves it out: ``total_steps`` (one-cycle)
        and ``T_max`` (cosine) are derived from the trainer, in optimizer steps or epochs to
        match ``scheduler_interval``."""
        factory = self.scheduler_factory
        target = factory.func if isinstance(factory, partial) else factory
        given = factory.keywords if isinstance(factory, partial) else {}
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            params = {}
        extra: dict[str, Any] = {}
        if self.scheduler_interval == "step":
            length = math.ceil(int(self.trainer.estimated_stepping_batches) / self.accumulate_grad_batches)
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
    def net_specs(self) -> dict[str, dict | None]:
        """The registry name and arguments of each of the task's nets (``nets``)."""
        specs = {}
        for name in self.nets:
            module = getattr(self, name, None)
            specs[name] = self.net_spec if name == "net" else getattr(module, "zoo_spec", None)
        return specs

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["zoo"] = {
            "task_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "net_spec": self.net_spec,
            "net_specs": self.net_specs(),
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

    # every task class, by qualified name: what load_task may rebuild (a class is known once its
    # module is imported -- zoo.tasks' own, or a user's or a test's that defines one)
    registry: dict[str, type] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ZooTask.registry[f"{cls.__module__}.{cls.__qualname__}"] = cls


def count_examples(batch, field: bool = False) -> int:
    """Examples in a batch: its first field's; a field counts a tensor's leading dimension, or
    the items of a list (one per example: images of different sizes, annotations), or its
    mapping's first entry. ``field=True``: ``batch`` is one field already (a target, an output)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, dict):
        return count_examples(next(iter(batch.values())), field=True) if batch else 0
    if isinstance(batch, (list, tuple)):
        if field:
            return len(batch)
        return count_examples(batch[0], field=True) if batch else 0
    return 0


def _detached(outputs):
    if isinstance(outputs, torch.Tensor):
        return outputs.detach()
    if isinstance(outputs, (list, tuple)):
        return [_detached(o) for o in outputs]
    if isinstance(outputs, dict):
        return {k: _detached(v) for k, v in outputs.items()}
    return outputs


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return [_to_cpu(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def _join(parts: list):
    """Batches kept since a flush as one: tensors concatenated, per-example lists chained."""
    if parts and all(isinstance(p, torch.Tensor) for p in parts):
        return torch.cat(parts)
    return [item for part in parts for item in part]


def _needs_closure(opt) -> bool:
    """Does this (Lightning-wrapped) optimizer's ``step`` require a closure (L-BFGS)?"""
    inner = getattr(opt, "optimizer", opt)
    try:
        param = inspect.signature(type(inner).step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is inspect.Parameter.empty


class EpochMean(Metric):
    """The sample-weighted mean of per-batch losses over an epoch, fed with a running sum
    (``update(sum of loss * batch size, number of samples)``); summed across processes."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, total: torch.Tensor, count: int | torch.Tensor) -> None:
        self.total = self.total + total
        self.count = self.count + count

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class _EpochAccumulator:
    """What the steps of one stage hand on, kept until the next flush: the outputs, the targets
    and the batch losses. A step only appends to lists -- no tensor operation of its own, so it
    adds no kernel launches to the step. At a flush the kept outputs and targets are
    concatenated, and the losses are added into the running sum as ``sum(loss_b * size_b)`` one
    batch at a time, in step order (the arithmetic and the order of Lightning's own epoch mean,
    so the figure is the same to the last bit)."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.outputs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.losses: list[tuple[torch.Tensor, int]] = []
        self.loss_total: torch.Tensor | None = None
        self.loss_count = 0
        self.kept_values = 0

    def __len__(self) -> int:
        return len(self.outputs)

    def add(self, outputs, target, loss: torch.Tensor) -> None:
        """One batch: outputs and targets are tensors with the batch first, or lists with one
        item per example (boxes, sequences of different lengths)."""
        self.outputs.append(outputs)
        self.targets.append(target)
        n = count_examples(target, field=True)
        self.losses.append((loss, n))
        self.loss_count += n
        self.kept_values += outputs.numel() if isinstance(outputs, torch.Tensor) else len(outputs)

    def take_outputs(self):
        """The kept outputs and targets of every batch since the last flush, in step order:
        concatenated tensors, or one list of per-example items."""
        self._fold_losses()
        outputs, target = _join(self.outputs), _join(self.targets)
        self.outputs, self.targets, self.kept_values = [], [], 0
        return outputs, target

    def _fold_losses(self) -> None:
        for loss, n in self.losses:
            weighted = loss.float() * n
            self.loss_total = weighted if self.loss_total is None else self.loss_total + weighted
        self.losses = []

    def take_loss(self) -> tuple[torch.Tensor, int]:
        self._fold_losses()
        total, count = self.loss_total, self.loss_count
        self.loss_total, self.loss_count = None, 0
        return total, count


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
        raise CheckpointError(f"checkpoint not found: {path}")
    return read_checkpoint_safely(path)


def read_checkpoint_safely(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only. A file whose
    unpickling would import and call anything else (code to run) is refused before any of it runs;
    a damaged or foreign file gets an error naming it."""
    import pickle
    import re

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err)) or re.search(r"global:? ([\w.]+)", str(err))
        if found:
            raise CheckpointError(
                f"refused checkpoint {path}: reading it would import and call {found.group(1)}, which is "
                "not a tensor or plain container and could run code; nothing of it was run. Load only "
                "checkpoints written by zoo-train, from a source you trust") from None
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"could not read checkpoint {path}: {first}. Is the file complete and "
                              "written by zoo-train?") from None
    except Exception as err:  # torch raises several types for a damaged or foreign file
        raise CheckpointError(
            f"could not read checkpoint {path}: {err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''}. "
            "Is the file complete and written by zoo-train?"
        ) from None


def task_class(name: str) -> type[ZooTask]:
    """The task class a checkpoint names. Classes of ``zoo.tasks`` are imported by name; any other
    must already be defined in this process (its module imported by the user), so that reading a
    checkpoint never imports a module it names."""
    if name not in ZooTask.registry and name.startswith("zoo.tasks."):
        importlib.import_module(name.rpartition(".")[0])
    if name not in ZooTask.registry:
        raise ValueError(f"task class {name!r} is neither in zoo.tasks nor defined in this process: "
                         "import the module that defines it before loading the checkpoint")
    return ZooTask.registry[name]


def load_task(path: str | Path, map_location: str | torch.device = "cpu") -> ZooTask:
    """Rebuild a task and its nets from a checkpoint written by ``zoo-train``."""
    ckpt = _read_checkpoint(path)
    meta = ckpt.get("zoo")
    specs = (meta or {}).get("net_specs") or ({"net": meta["net_spec"]} if meta and meta.get("net_spec") else None)
    if not specs or not specs.get("net"):
        raise ValueError(
            f"{path} holds no zoo metadata (net name and arguments); only checkpoints written by "
            "zoo-train can be loaded by name-free rebuilding"
        )
    from zoo.registry import create_model

    cls = task_class(meta["task_class"])
    nets = {}
    for name, spec in specs.items():
        if not spec:
            raise ValueError(f"{path}: the task's net {name!r} was not built by the registry; it cannot be rebuilt")
        nets[name] = create_model(spec["name"], **spec["kwargs"])
    hparams = dict(ckpt.get("hyper_parameters", {}))
    task = cls(**nets, **hparams)
    task.load_state_dict(ckpt["state_dict"])
    task.run_config = meta.get("config")
    return task.to(map_location)


@contextmanager
def exact_counting():
    """Let torchmetrics count classes with ``torch.bincount``. Under deterministic mode it falls
    back to comparing every prediction with every class pair (a ``(N, C*C)`` tensor), because
    CUDA's bincount adds atomically, in no fixed order. Counting integers is exact in any order,
    so the result is the same either way; only the deterministic flag is lifted, for the update."""
    enabled = torch.are_deterministic_algorithms_enabled()
    if not enabled:
        yield
        return
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)
