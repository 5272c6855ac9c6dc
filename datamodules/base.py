"""What every DataModule of the zoo shares, whatever its modality.

:class:`ZooDataModule` is a LightningDataModule with four additions the entry points rely on:

* ``data_facts()``: what the data tells the net and the task (class names and count, input
  channels and shape, a vocabulary's size and padding index ...). Model and task configs read a
  fact with the ``${data_fact:<name>}`` interpolation; ``zoo-train`` sets the datamodule up before
  building the net when, and only when, a config asks for one (``zoo.conf.data_facts_from``).
* ``collate``: how examples become a batch (``None``: torch's default collation). A datamodule
  whose examples have different sizes (boxes, token sequences) overrides it.
* ``read_input(path)``: one of the user's own files read into what the datamodule's batches hold,
  for ``zoo-predict`` on a checkpoint.
* loaders whose evaluation iterators draw from a generator of their own, so that validating
  (or not, or more often) leaves the training draws of later epochs as they were.

Two errors say what is wrong with the data on disk: :class:`DatasetNotFoundError` (files missing,
downloads off) and :class:`DataFileError` (a file present but unusable).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing and downloading is switched off."""


class DataFileError(ValueError):
    """A data file is there but cannot be used: truncated, corrupt, of another format, or asking
    for something unsafe (a pickle that imports code, an archive member that escapes its folder).
    The message names the file and says what to do about it."""


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices ``0..N-1`` into len(fractions)+1 stratified parts: the fractions given, then
    the remainder first. Deterministic for a given seed."""
    idx = np.arange(len(labels))
    parts: list[np.ndarray] = []
    rest, rest_labels = idx, labels
    total = len(labels)
    for frac in fractions:
        n = int(round(frac * total))
        if n == 0:
            parts.append(np.array([], dtype=int))
            continue
        rest, part = train_test_split(rest, test_size=n, stratify=rest_labels, random_state=seed)
        rest_labels = labels[rest]
        parts.append(np.sort(part))
    return [np.sort(rest)] + parts


class ZooDataModule(L.LightningDataModule):
    """Base of the zoo's DataModules. Subclasses build ``train_set``, ``val_set`` and ``test_set``
    (map-style datasets) in ``setup`` and state their batch contract in their docstring.

    Args:
        batch_size: training batch size.
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        num_workers: loader worker processes (0: load in the main process).
    """

    name: str = "dataset"

    def __init__(self, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0):
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    # -- what subclasses may override -----------------------------------------------------------
    collate: Callable[[list], Any] | None = None  # None: torch's default collation

    def data_facts(self) -> dict[str, Any]:
        """Facts about the data that the net and the task are built from (after ``setup``)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Facts for reports (split sizes, input shape ...); by default the data facts."""
        return {"dataset": self.name, **self.data_facts()}

    def read_input(self, path: Path) -> Any:
        """One of the user's files as one example of what the batches hold (net inputs only)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read your own files yet")

    # -- loaders ----------------------------------------------------------------------------------
    def _loader(self, ds, shuffle: bool, batch_size: int) -> DataLoader:
        # Every iterator a DataLoader starts draws a base seed for its workers from its
        # generator -- torch's global one when none is given. The training loader shuffles with
        # the global generator (seeded by ``seed``); an evaluation loader gets a generator of its
        # own, so that validating (or not, or more often) leaves the training draws of later
        # epochs as they were.
        generator = None if shuffle else torch.Generator().manual_seed(0)
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, generator=generator,
                          collate_fn=self.collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True, self.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False, self.eval_batch_size)
