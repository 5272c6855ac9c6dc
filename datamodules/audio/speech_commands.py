"""Google Speech Commands (Warden 2018, "Speech Commands: A Dataset for Limited-Vocabulary
Speech Recognition"), read from its own layout, for keyword spotting::

    <root>/<keyword>/<speaker>_nohash_<n>.wav     1-second 16-bit PCM WAVs at 16 kHz
    <root>/validation_list.txt                    one "<keyword>/<file>.wav" a line
    <root>/testing_list.txt
    <root>/_background_noise_/                    (skipped)

A file listed in neither list is a training file. The classes are the keyword folders, sorted
(or ``keywords``, when given: the others are left out). Clips are padded with zeros or cut to
``clip_seconds`` and turned into log-mel features. Nothing is downloaded here: fetch
``speech_commands_v0.02.tar.gz`` and unpack it under ``root`` yourself.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.audio.features import LogMel, read_wav
from datamodules.base import DatasetNotFoundError, DataFileError, ZooDataModule


def read_list(path: Path, root: Path) -> set[str]:
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} is missing: a Speech Commands folder has validation_list.txt "
                                   f"and testing_list.txt beside its keyword folders (root={root})")
    names = {ln.strip() for ln in path.read_text().splitlines() if ln.strip()}
    for n in names:
        if "/" not in n or n.startswith(("/", "..")) or ".." in Path(n).parts:
            raise DataFileError(f"{path}: line {n!r} is not '<keyword>/<file>.wav'")
    return names


class _Clips(Dataset):
    def __init__(self, dm: "SpeechCommandsDataModule", files: list[tuple[Path, int]]):
        self.dm, self.files = dm, files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path, label = self.files[i]
        return self.dm.features(path), label


class SpeechCommandsDataModule(ZooDataModule):
    """Keyword spotting on Google Speech Commands.

    Batch contract: ``(features float32 (B, frames, n_mels) log-mel, labels int64 (B,))``.

    Args:
        root: the unpacked dataset folder.
        keywords: the classes (default: every keyword folder).
        clip_seconds, sample_rate, n_fft, hop_length, n_mels: the log-mel front end.
    """

    name = "speech_commands"

    def __init__(self, root: str = "data/speech_commands", keywords: Sequence[str] | None = None,
                 batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0,
                 clip_seconds: float = 1.0, sample_rate: int = 16000, n_fft: int = 400, hop_length: int = 160,
                 n_mels: int = 40, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        if augment is not None:  # the augment config group fills every data config
            raise ValueError("data.augment must be null (augment=none): image augmentations do not apply to audio")
        self.root = Path(root)
        self.keywords = list(keywords) if keywords else None
        self.sample_rate, self.clip_samples = int(sample_rate), int(round(clip_seconds * sample_rate))
        self.logmel = LogMel(sample_rate, n_fft, hop_length, n_mels=n_mels)
        self.class_names: list[str] = []

    def features(self, path: Path) -> torch.Tensor:
        x = read_wav(path, self.sample_rate)[: self.clip_samples]
        x = np.pad(x, (0, self.clip_samples - x.size))
        return self.logmel(torch.from_numpy(x))  # (frames, n_mels)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"no Speech Commands folder at {self.root}: unpack "
                                       "speech_commands_v0.02.tar.gz there (data.root=<folder>)")
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        if self.keywords:
            missing = [k for k in self.keywords if k not in folders]
            if missing:
                raise DatasetNotFoundError(f"no folder for keywords {missing} under {self.root} (found {folders})")
        self.class_names = self.keywords or folders
        if not self.class_names:
            raise DatasetNotFoundError(f"{self.root} has no keyword folders of WAV files")
        val = read_list(self.root / "validation_list.txt", self.root)
        test = read_list(self.root / "testing_list.txt", self.root)
        splits: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
        for label, kw in enumerate(self.class_names):
            for f in sorted((self.root / kw).glob("*.wav")):
                rel = f"{kw}/{f.name}"
                splits["val" if rel in val else "test" if rel in test else "train"].append((f, label))
        for name, files in splits.items():
            if not files:
                raise DatasetNotFoundError(f"the {name} split of {self.root} is empty: check the WAV files and "
                                           "validation_list.txt / testing_list.txt")
        self.train_set, self.val_set, self.test_set = (_Clips(self, splits[s]) for s in ("train", "val", "test"))

    def data_facts(self) -> dict[str, Any]:
        return {"num_classes": len(self.class_names), "class_names": list(self.class_names),
                "n_mels": self.logmel.n_mels, "frames": self.logmel.frames(self.clip_samples)}

    def read_input(self, path: Path) -> Any:
        return self.features(Path(path)), {}
