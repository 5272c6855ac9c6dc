"""Test-only pieces that the multi-process and crash tests hand to ``zoo-train`` by import path
(the tests put this folder on ``PYTHONPATH``): a callback that kills its own process mid-epoch,
and the embedded MNIST digits in the order DDP deals them."""
from __future__ import annotations

import os
import signal

import lightning as L
from torch.utils.data import DataLoader, DistributedSampler

from datamodules import MNIST5kDataModule


class KillMidEpoch(L.Callback):
    """``SIGKILL`` to this process after training batch ``batch`` of epoch ``epoch``: no Python
    clean-up, no ``finally``, no checkpoint hook -- what a crashed machine or the OOM killer does."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


class DistributedOrderMNIST5k(MNIST5kDataModule):
    """The embedded digits, with a single process's training batches drawn in the order that
    Lightning's distributed sampler deals them to several. Under DDP Lightning shuffles the
    training set with ``DistributedSampler(seed=<the run's seed>)`` (the permutation of epoch e
    seeded with seed + e) and deals its indices r, r+N, r+2N ... to rank r. One process reading
    that same permutation in order, with batch B, then sees at every step exactly the B examples
    that N processes with batch B/N see together."""

    def train_dataloader(self):
        if self.trainer is not None and self.trainer.world_size > 1:
            return super().train_dataloader()  # Lightning puts its distributed sampler in
        sampler = DistributedSampler(self.train_set, num_replicas=1, rank=0, shuffle=True,
                                     seed=int(os.environ.get("PL_GLOBAL_SEED", 0)))
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.num_workers, collate_fn=self.collate)
