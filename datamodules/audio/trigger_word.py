"""The notes' trigger-word data, synthesized offline: 10-second clips of generated background
(noise, hum, babble) with the trigger word ("activate") and other words spoken by eSpeak NG
inserted where they do not overlap; the label of an output step is 1 for the ``label_steps``
steps that follow the end of each trigger word (the notes: 50 of 1,375 steps, 0.36 s), else 0.

**Voices.** A voice is an eSpeak NG accent with a variant (``en-gb-scotland+m3``). The variants
are split three ways, so validation and test clips are spoken by voices never heard in training
(``TRAIN_VARIANTS``, ``VAL_VARIANTS``, ``TEST_VARIANTS``; accents are shared). Each (voice, word)
is said in ``takes`` ways, each with a speed and a pitch drawn from the seed, and every insertion
is further sped up or slowed down by up to ``speed_jitter`` and scaled in loudness.

**Reproducible and lazy.** Clip ``i`` of a split is drawn from a generator seeded with
``(seed, split, i)`` alone, so a clip is the same whatever was drawn before, and is made the
first time it is read (its features are kept in memory after that); each utterance is
synthesized once and cached on disk under ``cache_dir`` (``datamodules.audio.espeak``).

**Output geometry.** The net's front end is a Conv1D of ``conv_kernel``/``conv_stride`` over the
spectrogram frames (no padding), so ``output_steps = (frames - conv_kernel) // conv_stride + 1``;
a time ``t`` seconds maps to output step ``floor(t / clip_seconds * output_steps)``, as in the
notes' ``insert_ones``.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.audio.espeak import SAMPLE_RATE as ESPEAK_RATE
from datamodules.audio.espeak import cached_synthesize
from datamodules.audio.features import LogMel, resample
from datamodules.base import ZooDataModule

TRIGGER = "activate"
NEGATIVES = ("baby", "coffee", "weather", "music", "tomorrow", "window", "purple", "elephant", "happy",
             "computer", "seven", "yellow", "garden", "active", "vacation", "navigate")
ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-us-nyc",
           "en-gb-x-gbcwmd")
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "klatt", "klatt2", "klatt3", "Alex",
                  "Annie", "Michael", "max", "john", "linda", "robert", "edward", "adam", "iven", "grandma")
VAL_VARIANTS = ("m6", "f4", "klatt4", "steph", "david", "quincy")
TEST_VARIANTS = ("m7", "f5", "klatt5", "paul", "travis", "shelby", "belinda", "grandpa")
SPLITS = {"train": 0, "val": 1, "test": 2}
BACKGROUNDS = ("noise", "babble", "hum")


def split_voices(voice_counts: dict[str, int], seed: int) -> dict[str, list[str]]:
    """The voices of each split: training, validation and test voices come from disjoint sets of
    eSpeak NG variants (``TRAIN_VARIANTS``, ``VAL_VARIANTS``, ``TEST_VARIANTS``), so held-out
    clips are spoken by voices never heard in training."""
    return {"train": voices_for(TRAIN_VARIANTS, voice_counts["train"], seed),
            "val": voices_for(VAL_VARIANTS, voice_counts["val"], seed),
            "test": voices_for(TEST_VARIANTS, voice_counts["test"], seed)}


def voices_for(variants: Sequence[str], count: int, seed: int) -> list[str]:
    """``count`` (accent, variant) voices drawn without replacement, every variant used before
    any is used twice."""
    rng = np.random.default_rng(seed)
    accents = list(ACCENTS)
    out: list[str] = []
    pairs = [(a, v) for v in variants for a in accents]
    order = rng.permutation(len(pairs))
    by_variant: dict[str, list[str]] = {v: [] for v in variants}
    for k in order:
        a, v = pairs[k]
        by_variant[v].append(f"{a}+{v}")
    while len(out) < count and any(by_variant.values()):
        for v in variants:
            if by_variant[v] and len(out) < count:
                out.append(by_variant[v].pop())
    return out


def _stable_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha1("|".join(map(str, parts)).encode()).digest()[:8], "little")


def take_settings(voice: str, word: str, take: int, seed: int, rates=(130, 200), pitches=(30, 70)) -> tuple[int, int]:
    """The speed (words per minute) and pitch of one take, from the seed."""
    rng = np.random.default_rng(_stable_seed(seed, voice, word, take))
    return int(rng.integers(rates[0], rates[1] + 1)), int(rng.integers(pitches[0], pitches[1] + 1))


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise of power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (x / (x.std() + 1e-12)).astype(np.float32)


def trim_silence(x: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """The utterance without its leading and trailing near-silence (word boundaries for labels)."""
    idx = np.nonzero(np.abs(x) > threshold * max(np.abs(x).max(), 1e-9))[0]
    return x[idx[0]: idx[-1] + 1] if idx.size else x


def place_segments(rng: np.random.Generator, durations: Sequence[int], total: int, gap: int,
                   tries: int = 50) -> list[tuple[int, int] | None]:
    """Non-overlapping ``[start, end)`` sample ranges for words of ``durations`` in ``total``
    samples, at least ``gap`` apart (the notes' ``get_random_time_segment``/``is_overlapping``);
    ``None`` for a word that found no room in ``tries`` draws."""
    taken: list[tuple[int, int]] = []
    out: list[tuple[int, int] | None] = []
    for d in durations:
        placed = None
        if d < total:
            for _ in range(tries):
                s = int(rng.integers(0, total - d))
                e = s + d
                if all(e + gap <= a or s >= b + gap for a, b in taken):
                    placed = (s, e)
                    taken.append(placed)
                    break
        out.append(placed)
    return out


def insert_ones(labels: np.ndarray, end_seconds: float, clip_seconds: float, label_steps: int) -> None:
    """Set the ``label_steps`` output steps after ``end_seconds`` to 1 (the notes' ``insert_ones``)."""
    steps = labels.shape[0]
    end = int(end_seconds / clip_seconds * steps)
    labels[end + 1: min(end + 1 + label_steps, steps)] = 1


class UtteranceBank:
    """Words said by the voices of one split, synthesized on first use, resampled and trimmed."""

    def __init__(self, voices: Sequence[str], takes: int, seed: int, sample_rate: int, cache_dir: str | None):
        if not voices:
            raise ValueError("no voices: ask for at least one (data.train_voices / val_voices / test_voices)")
        self.voices, self.takes, self.seed = list(voices), int(takes), int(seed)
        self.sample_rate, self.cache_dir = int(sample_rate), cache_dir
        self._memo: dict[tuple[str, str, int], np.ndarray] = {}

    def get(self, word: str, voice: str, take: int) -> np.ndarray:
        key = (word, voice, take)
        if key not in self._memo:
            rate, pitch = take_settings(voice, word, take, self.seed)
            raw = cached_synthesize(self.cache_dir, word, voice, rate, pitch).astype(np.float32) / 32768.0
            x = trim_silence(resample(raw, ESPEAK_RATE, self.sample_rate))
            self._memo[key] = x / (np.abs(x).max() + 1e-9)  # peak 1; loudness is drawn per insertion
        return self._memo[key]

    def draw(self, rng: np.random.Generator, word: str) -> np.ndarray:
        return self.get(word, self.voices[int(rng.integers(len(self.voices)))], int(rng.integers(self.takes)))


def stretch(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (linear interpolation; pitch moves with it)."""
    n = max(2, int(round(len(x) / factor)))
    return np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x).astype(np.float32)


def make_background(rng: np.random.Generator, n: int, sample_rate: int, bank: UtteranceBank,
                    kinds: Sequence[str] = BACKGROUNDS) -> np.ndarray:
    """A generated background of ``n`` samples: coloured noise, mains hum with harmonics, or
    babble (several other words overlapping, quiet), or a mixture; RMS drawn in [0.005, 0.08]."""
    kind = kinds[int(rng.integers(len(kinds)))]
    t = np.arange(n) / sample_rate
    bg = colored_noise(rng, n, float(rng.uniform(0, 2)))
    if kind == "hum":
        f0 = float(rng.choice([50.0, 60.0])) * rng.uniform(0.98, 1.02)
        hum = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
                  for k in range(1, 6))
        bg = 0.3 * bg + hum / (np.std(hum) + 1e-9)
    elif kind == "babble":
        babble = np.zeros(n, np.float32)
        for _ in range(int(rng.integers(4, 10))):
            w = stretch(bank.draw(rng, NEGATIVES[int(rng.integers(len(NEGATIVES)))]), rng.uniform(0.8, 1.25))
            s = int(rng.integers(0, max(1, n - len(w))))
            babble[s: s + len(w)] += w[: n - s] * rng.uniform(0.3, 1.0)
        bg = 0.3 * bg + babble / (np.std(babble) + 1e-9)
    bg = bg / (np.std(bg) + 1e-9)
    return (bg * np.exp(rng.uniform(np.log(0.005), np.log(0.08)))).astype(np.float32)


def make_clip(rng: np.random.Generator, bank: UtteranceBank, sample_rate: int, clip_seconds: float,
              output_steps: int, label_steps: int, max_positives: int = 4, max_negatives: int = 3,
              speed_jitter: float = 0.1, min_gap_seconds: float = 0.1, backgrounds: Sequence[str] = BACKGROUNDS):
    """One clip: ``(waveform (N,) float32, labels (output_steps,) uint8, segments)`` where each
    segment is ``(word, start_s, end_s)`` in seconds."""
    n = int(round(clip_seconds * sample_rate))
    wav = make_background(rng, n, sample_rate, bank, backgrounds)
    n_pos = int(rng.integers(0, max_positives + 1))
    n_neg = int(rng.integers(0, max_negatives + 1))
    words = [TRIGGER] * n_pos + [NEGATIVES[int(rng.integers(len(NEGATIVES)))] for _ in range(n_neg)]
    audio = [stretch(bank.draw(rng, w), rng.uniform(1 - speed_jitter, 1 + speed_jitter)) for w in words]
    spans = place_segments(rng, [len(a) for a in audio], n, int(min_gap_seconds * sample_rate))
    labels = np.zeros(output_steps, np.uint8)
    segments = []
    for word, a, span in zip(words, audio, spans):
        if span is None:
            continue
        s, e = span
        wav[s:e] += a * float(rng.uniform(0.25, 0.9))
        segments.append((word, s / sample_rate, e / sample_rate))
        if word == TRIGGER:
            insert_ones(labels, e / sample_rate, clip_seconds, label_steps)
    peak = np.abs(wav).max()
    if peak > 0.99:
        wav = wav * (0.99 / peak)
    return wav.astype(np.float32), labels, sorted(segments, key=lambda s: s[1])


class TriggerClips(Dataset):
    """Clip ``i`` of one split, made on first read from ``(seed, split, i)``; its features kept."""

    def __init__(self, dm: "TriggerWordSynthDataModule", split: str, size: int, bank: UtteranceBank):
        self.dm, self.split, self.size, self.bank = dm, split, int(size), bank
        self._features: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return self.size

    def clip(self, i: int):
        if not 0 <= i < self.size:
            raise IndexError(f"clip {i} of a {self.size}-clip {self.split} split")
        rng = np.random.default_rng([self.dm.seed, SPLITS[self.split], i])
        d = self.dm
        return make_clip(rng, self.bank, d.sample_rate, d.clip_seconds, d.output_steps, d.label_steps,
                         d.max_positives, d.max_negatives, d.speed_jitter, backgrounds=d.backgrounds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i not in self._features:
            wav, labels, _ = self.clip(i)
            feats = self.dm.logmel(torch.from_numpy(wav))  # (frames, n_mels)
            self._features[i] = (feats.to(torch.float16), torch.from_numpy(labels))
        feats, labels = self._features[i]
        return {"features": feats.float(), "labels": labels.float()}


class TriggerWordSynthDataModule(ZooDataModule):
    """Trigger-word detection on synthesized 10-second clips (Ng, Deep Learning Specialization,
    course 5, week 3: "Trigger word detection").

    Batch contract: ``dict(features=float32 (B, frames, n_mels) log-mel, labels=float32
    (B, output_steps) in {0, 1})`` with ``frames = 1 + clip_samples // hop_length`` and
    ``output_steps = (frames - conv_kernel) // conv_stride + 1``.

    Args:
        train_clips, val_clips, test_clips: clips per split.
        train_voices, val_voices, test_voices: voices per split (disjoint variants, see the module).
        takes: speed/pitch settings per (voice, word).
        clip_seconds, sample_rate, n_fft, hop_length, n_mels: the audio and its log-mel front end.
        conv_kernel, conv_stride: the net's first convolution (it fixes ``output_steps``).
        label_seconds: how long the labels stay 1 after a trigger word ends (0.364 s: the notes'
            50 of 1,375 steps).
        max_positives, max_negatives: trigger words and other words per clip (0..max each).
        speed_jitter: each insertion is played up to this much faster or slower.
        backgrounds: the background kinds drawn from (``noise``, ``babble``, ``hum``).
        cache_dir: where synthesized words are kept (``null``: not kept).
        seed: everything is drawn from it (independent of the training seed).
        augment: must be null (the ``augment`` config group fills it in every data config).
    """

    name = "trigger_word_synth"

    def __init__(self, batch_size: int = 32, eval_batch_size: int | None = None, num_workers: int = 0,
                 train_clips: int = 1200, val_clips: int = 200, test_clips: int = 300,
                 train_voices: int = 40, val_voices: int = 8, test_voices: int = 12, takes: int = 3,
                 clip_seconds: float = 10.0, sample_rate: int = 16000, n_fft: int = 400, hop_length: int = 160,
                 n_mels: int = 40, conv_kernel: int = 15, conv_stride: int = 4, label_seconds: float = 0.364,
                 max_positives: int = 4, max_negatives: int = 3, speed_jitter: float = 0.1,
                 backgrounds: Sequence[str] = BACKGROUNDS, cache_dir: str | None = "data/synth_speech",
                 seed: int = 0, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        if augment is not None:  # the augment config group fills every data config
            raise ValueError("data.augment must be null (augment=none): image augmentations do not apply to audio")
        for key, value in (("train_clips", train_clips), ("val_clips", val_clips), ("test_clips", test_clips),
                           ("train_voices", train_voices), ("val_voices", val_voices),
                           ("test_voices", test_voices), ("takes", takes)):
            if int(value) < 1:
                raise ValueError(f"data.{key} must be at least 1, got {value}")
        bad = [b for b in backgrounds if b not in BACKGROUNDS]
        if bad or not backgrounds:
            raise ValueError(f"data.backgrounds are drawn from {list(BACKGROUNDS)}, got {list(backgrounds)}")
        self.train_clips, self.val_clips, self.test_clips = int(train_clips), int(val_clips), int(test_clips)
        self.voice_counts = {"train": int(train_voices), "val": int(val_voices), "test": int(test_voices)}
        self.takes, self.seed = int(takes), int(seed)
        self.clip_seconds, self.sample_rate = float(clip_seconds), int(sample_rate)
        self.logmel = LogMel(sample_rate, n_fft, hop_length, n_mels=n_mels)
        self.n_mels = int(n_mels)
        self.frames = self.logmel.frames(int(round(self.clip_seconds * self.sample_rate)))
        self.conv_kernel, self.conv_stride = int(conv_kernel), int(conv_stride)
        if self.frames < self.conv_kernel:
            raise ValueError(f"a {clip_seconds}-second clip has {self.frames} frames, fewer than "
                             f"data.conv_kernel={conv_kernel}")
        self.output_steps = (self.frames - self.conv_kernel) // self.conv_stride + 1
        self.label_steps = max(1, int(round(label_seconds / self.clip_seconds * self.output_steps)))
        self.max_positives, self.max_negatives = int(max_positives), int(max_negatives)
        self.speed_jitter = float(speed_jitter)
        self.backgrounds = tuple(backgrounds)
        self.cache_dir = str(cache_dir) if cache_dir else None

    def split_voices(self) -> dict[str, list[str]]:
        return split_voices(self.voice_counts, self.seed)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        voices = self.split_voices()
        sizes = {"train": self.train_clips, "val": self.val_clips, "test": self.test_clips}
        sets = {s: TriggerClips(self, s, sizes[s], UtteranceBank(voices[s], self.takes, self.seed,
                                                                  self.sample_rate, self.cache_dir))
                for s in SPLITS}
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def data_facts(self) -> dict[str, Any]:
        return {"n_mels": self.n_mels, "frames": self.frames, "output_steps": self.output_steps,
                "label_steps": self.label_steps, "sample_rate": self.sample_rate,
                "clip_seconds": self.clip_seconds, "hop_length": self.logmel.hop_length,
                "n_fft": self.logmel.n_fft}

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, **self.data_facts(), "voices": self.split_voices(),
                "clips": {"train": self.train_clips, "val": self.val_clips, "test": self.test_clips}}

    def read_input(self, path: Path) -> Any:
        from datamodules.audio.features import read_wav

        wav = read_wav(path, self.sample_rate)
        if wav.size < self.logmel.n_fft:
            raise ValueError(f"{path} is {wav.size / self.sample_rate:.3f} s long: too short to hear anything")
        return self.logmel(torch.from_numpy(wav)), {"seconds": round(wav.size / self.sample_rate, 3)}
