"""Callbacks that collect what the reports need, whatever logger is chosen."""
from __future__ import annotations

import resource
import time

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar, WeightAveraging
import torch

from zoo.tasks.base import count_examples


class ZooProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, showing the task's latest step loss (``last_train_loss``, written
    every ``log_every_n_steps``) beside the metrics logged with ``prog_bar=True``."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        loss = getattr(pl_module, "last_train_loss", None)
        if loss is not None and trainer.training:
            metrics = {"loss": f"{loss:.3g}", **metrics}
        return metrics


class RunStats(L.Callback):
    """Records per-epoch metrics (the learning curves), training time, samples seen and peak
    memory, independently of the logger chosen.

    ``history``: one dict per epoch with every epoch-level metric and the learning rate.
    ``train_time_s``: wall time of the training batches only (from each epoch's start to its
    last training batch: validation is excluded); per epoch ``epoch_train_s``, and ``epoch_s``
    for the whole epoch (from its start to the next one's, or to the end of training:
    validation, checkpointing and logging included). ``train_samples``: examples seen over all
    processes.
    """

    def __init__(self):
        self.history: list[dict] = []
        self.train_time_s = 0.0
        self.train_samples = 0
        self._t0: float | None = None
        self._last: float | None = None
        self._epoch_samples = 0
        self._epoch_start: float | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_samples = 0
        self._t0 = self._last = time.perf_counter()
        self._close_epoch(self._t0)
        self._log_learning_rates(trainer)

    @staticmethod
    def _log_learning_rates(trainer) -> None:
        """Write each optimizer's learning rate for the epoch to the loggers (``lr-<Optimizer>``,
        ``/pg<i>`` per parameter group beyond the first): what Lightning's LearningRateMonitor
        logs at epoch interval, without its hooks on every training step
        (``callbacks=lr_monitor`` adds it, for per-step rates)."""
        if not trainer.loggers or not trainer.optimizers:
            return
        rates = {}
        for opt in trainer.optimizers:
            name = f"lr-{type(opt).__name__}"
            for i, group in enumerate(opt.param_groups):
                rates[name if i == 0 else f"{name}/pg{i + 1}"] = float(group["lr"])
        for logger in trainer.loggers:
            logger.log_metrics(rates, step=trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._epoch_samples += count_examples(batch)  # (x, y), a list of images, a dict ...
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        epoch_time = None
        if self._t0 is not None and self._last is not None:
            epoch_time = self._last - self._t0
            self.train_time_s += epoch_time
        self._t0 = None
        self.train_samples += self._epoch_samples * max(1, trainer.world_size)
        row: dict = {"epoch": trainer.current_epoch}
        for k, v in trainer.callback_metrics.items():
            if k.endswith("_step") or k.startswith("lr-") or v.numel() != 1:
                continue
            row[k.removesuffix("_epoch")] = float(v)
        if trainer.optimizers:
            row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        if epoch_time is not None:
            row["epoch_train_s"] = round(epoch_time, 4)
        self.history.append(row)

    def on_train_end(self, trainer, pl_module):
        self._close_epoch(time.perf_counter())

    def _close_epoch(self, now: float) -> None:
        """Give the last recorded epoch its whole wall time, ending ``now``."""
        if self.history and self._epoch_start is not None and "epoch_s" not in self.history[-1]:
            self.history[-1]["epoch_s"] = round(now - self._epoch_start, 4)
        self._epoch_start = now

    @property
    def throughput(self) -> float:
        """Training examples per second (all processes together)."""
        return self.train_samples / self.train_time_s if self.train_time_s > 0 else 0.0

    @staticmethod
    def peak_memory_mb() -> dict:
        out = {"cpu_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
        if torch.cuda.is_available():
            out["gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return out


def ramped_ema(decay: float):
    """The update of an exponential moving average whose decay ramps up with the number ``n`` of
    updates already made: ``min(decay, (1 + n) / (10 + n))``. A fixed decay of 0.999 would keep
    about half of the initial, untrained weights in the average for the first 700 steps (0.999 to
    the power 700 is 0.50), and a run of a few thousand steps would validate and test weights that
    are mostly not trained. With the ramp, the early average follows the net closely, and later
    updates use the full decay. Integer buffers (batch-norm batch counts) take the net's value.
    The signature is torch's ``AveragedModel`` ``multi_avg_fn``."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged) -> None:
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        for a, c in zip(averaged, current):
            if a.is_floating_point() or a.is_complex():
                a.lerp_(c, 1.0 - d)
            else:
                a.copy_(c)

    return update


class EMAWithWarmup(WeightAveraging):
    """Exponential moving average of the weights (and buffers) after every optimizer step, with
    the decay ramped up as ``ramped_ema`` describes. Like Lightning's ``WeightAveraging``,
    validation, checkpoints and the end of training use the averaged weights."""

    def __init__(self, decay: float = 0.999, update_every_n_steps: int = 1, use_buffers: bool = True,
                 device=None):
        if update_every_n_steps < 1:
            raise ValueError(f"update_every_n_steps must be at least 1, got {update_every_n_steps}")
        super().__init__(device=device, use_buffers=use_buffers, multi_avg_fn=ramped_ema(decay))
        self.decay = decay
        self.update_every_n_steps = update_every_n_steps

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx % self.update_every_n_steps == 0
