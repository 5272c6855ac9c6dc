"""Spoken digit strings, synthesized offline, for speech recognition with CTC (Graves et al.
2006): utterances of 3 to 7 digits ("three one four one five"), optionally after a short
phrase ("call", "dial", "my number is" ...), each word said by eSpeak NG
(``datamodules.audio.espeak``), joined with short random gaps, over a light generated
background (coloured noise or mains hum).

**Targets are characters of the spoken words**, lower case, words separated by one space:
``"call three one four"``. The alphabet (:data:`ALPHABET`) is the space, ``a``-``z`` and the
apostrophe; class 0 is the CTC blank, so character ``ALPHABET[k]`` has class ``k + 1``. Why
characters of words rather than the digits themselves (``"314"``): it is the character-level
CTC of speech recognizers (Graves & Jaitly 2014; Hannun et al. 2014), the net must learn to
spell what it hears and to place word boundaries, phrases use the same alphabet as digits, and
the two error rates answer different questions: the character error rate (CER) counts letters,
and the word error rate (WER) counts spoken words, i.e. wrongly recognised digits. Both are
reported.

**Voices.** The voice split of the trigger-word data (``datamodules.audio.trigger_word``):
validation and test utterances are spoken by eSpeak NG voice variants never heard in training.
One voice says a whole utterance; each word is one of ``takes`` takes of that voice (a speed
and a pitch drawn from the seed), further sped up or slowed down by up to ``speed_jitter`` and
scaled in loudness.

**Reproducible and lazy.** Utterance ``i`` of a split is drawn from a generator seeded with
``(seed, split, i)`` alone, so it is the same whatever was drawn before; it is made the first
time it is read, and its features are kept in memory after that. Each (word, voice, take) is
synthesized once and cached on disk under ``cache_dir``.

**Features.** Log-mel (``datamodules.audio.features.LogMel``: 25 ms windows every 10 ms at
16 kHz, 40 bands), each band normalised to zero mean and unit variance over the utterance
(cepstral mean and variance normalisation), so that loudness and the channel do not matter and
zero padding is the mean.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.audio.features import LogMel, read_wav
from datamodules.audio.trigger_word import SPLITS, UtteranceBank, make_background, split_voices, stretch
from datamodules.base import ZooDataModule

__all__ = ["SpokenDigitsSynthDataModule", "DIGIT_WORDS", "PHRASES", "ALPHABET", "encode_text", "decode_ids",
           "make_utterance", "draw_words", "normalize_features", "collate_utterances"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PHRASES = ("call", "dial", "press", "room", "my number is", "pin code", "extension")
ALPHABET = tuple(" abcdefghijklmnopqrstuvwxyz'")  # class k + 1; class 0 is the CTC blank
BLANK = 0
LIGHT_BACKGROUNDS = ("noise", "hum")  # babble is made of other words (one is "seven"): not for transcripts


def encode_text(text: str, alphabet: Sequence[str] = ALPHABET, where: str = "transcript") -> list[int]:
    """Class ids (1..len(alphabet)) of ``text``'s characters. An empty text or a character
    outside the alphabet is a ``ValueError`` naming it (``where`` says whose text it is)."""
    if not text or not text.strip():
        raise ValueError(f"{where} is empty: CTC needs at least one character to align")
    index = {c: k + 1 for k, c in enumerate(alphabet)}
    bad = sorted({c for c in text if c not in index})
    if bad:
        raise ValueError(f"{where} {text!r} has characters outside the alphabet: {bad}; the alphabet is "
                         f"{''.join(alphabet)!r} (lower-case letters, space, apostrophe)")
    return [index[c] for c in text]


def decode_ids(ids: Sequence[int], alphabet: Sequence[str] = ALPHABET) -> str:
    """The text of class ids (blanks, id 0, skipped)."""
    return "".join(alphabet[i - 1] for i in ids if 0 < i <= len(alphabet))


def draw_words(rng: np.random.Generator, min_digits: int, max_digits: int, phrase_fraction: float,
               phrases: Sequence[str] = PHRASES) -> list[str]:
    """The words of one utterance: an optional phrase (with probability ``phrase_fraction``),
    then ``min_digits``..``max_digits`` digit words, uniformly."""
    words: list[str] = []
    if rng.uniform() < phrase_fraction:
        words += phrases[int(rng.integers(len(phrases)))].split()
    n = int(rng.integers(min_digits, max_digits + 1))
    words += [DIGIT_WORDS[int(d)] for d in rng.integers(0, 10, n)]
    return words


def make_utterance(rng: np.random.Generator, bank: UtteranceBank, words: Sequence[str], sample_rate: int,
                   speed_jitter: float = 0.1, gap_seconds: tuple[float, float] = (0.02, 0.2),
                   edge_seconds: tuple[float, float] = (0.05, 0.35),
                   backgrounds: Sequence[str] = LIGHT_BACKGROUNDS) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """One utterance: ``(waveform (N,) float32 in [-1, 1], [(word, start_s, end_s), ...])``.

    One voice (drawn from ``bank``) says every word, each a take of its own, played up to
    ``speed_jitter`` faster or slower and at a loudness in [0.3, 0.9]; the words follow each
    other with gaps drawn in ``gap_seconds``, after and before silences drawn in
    ``edge_seconds``; a background (coloured noise or hum, ``make_background``) lies under all."""
    voice = bank.voices[int(rng.integers(len(bank.voices)))]
    audio = []
    for w in words:
        x = bank.get(w, voice, int(rng.integers(bank.takes)))
        audio.append(stretch(x, rng.uniform(1 - speed_jitter, 1 + speed_jitter)) * float(rng.uniform(0.3, 0.9)))
    gaps = [int(rng.uniform(*gap_seconds) * sample_rate) for _ in range(len(words) - 1)]
    lead, tail = (int(rng.uniform(*edge_seconds) * sample_rate) for _ in range(2))
    n = lead + sum(len(a) for a in audio) + sum(gaps) + tail
    wav = make_background(rng, n, sample_rate, bank, backgrounds)
    segments = []
    at = lead
    for k, (w, a) in enumerate(zip(words, audio)):
        wav[at: at + len(a)] += a
        segments.append((w, at / sample_rate, (at + len(a)) / sample_rate))
        at += len(a) + (gaps[k] if k < len(gaps) else 0)
    peak = np.abs(wav).max()
    if peak > 0.99:
        wav = wav * (0.99 / peak)
    return wav.astype(np.float32), segments


def normalize_features(feats: torch.Tensor) -> torch.Tensor:
    """Per-band mean and variance normalisation over time: (frames, n_mels) -> same shape."""
    mean = feats.mean(0, keepdim=True)  # (1, n_mels)
    std = feats.std(0, keepdim=True) if feats.shape[0] > 1 else torch.ones_like(mean)
    return (feats - mean) / (std + 1e-5)


def collate_utterances(items: list[dict]) -> dict[str, Any]:
    """Utterances of different lengths as one batch (the module's batch contract): features
    zero-padded at the end, targets padded with the blank (0)."""
    lengths = torch.tensor([it["features"].shape[0] for it in items], dtype=torch.int64)
    target_lengths = torch.tensor([it["targets"].numel() for it in items], dtype=torch.int64)
    n_mels = items[0]["features"].shape[1]
    feats = torch.zeros(len(items), int(lengths.max()), n_mels)  # (B, T, n_mels)
    targets = torch.zeros(len(items), max(1, int(target_lengths.max())), dtype=torch.int64)  # (B, S)
    for i, it in enumerate(items):
        feats[i, : lengths[i]] = it["features"]
        targets[i, : target_lengths[i]] = it["targets"]
    return {"features": feats, "lengths": lengths, "targets": targets, "target_lengths": target_lengths,
            "text": [it["text"] for it in items]}


class SpokenDigitUtterances(Dataset):
    """Utterance ``i`` of one split, made on first read from ``(seed, split, i)``; its features kept."""

    def __init__(self, dm: "SpokenDigitsSynthDataModule", split: str, size: int, bank: UtteranceBank):
        self.dm, self.split, self.size, self.bank = dm, split, int(size), bank
        self._kept: dict[int, tuple[torch.Tensor, torch.Tensor, str]] = {}

    def __len__(self) -> int:
        return self.size

    def utterance(self, i: int) -> tuple[np.ndarray, str, list]:
        """``(waveform, transcript, segments)`` of utterance ``i``."""
        if not 0 <= i < self.size:
            raise IndexError(f"utterance {i} of a {self.size}-utterance {self.split} split")
        d = self.dm
        rng = np.random.default_rng([d.seed, SPLITS[self.split], i])
        words = draw_words(rng, d.min_digits, d.max_digits, d.phrase_fraction, d.phrases)
        wav, segments = make_utterance(rng, self.bank, words, d.sample_rate, d.speed_jitter,
                                       backgrounds=d.backgrounds)
        return wav, " ".join(words), segments

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i not in self._kept:
            wav, text, _ = self.utterance(i)
            feats = self.dm.features(wav)  # (frames, n_mels)
            ids = torch.tensor(encode_text(text, where=f"{self.split} utterance {i}"), dtype=torch.int64)
            self._kept[i] = (feats.to(torch.float16), ids, text)
        feats, ids, text = self._kept[i]
        return {"features": feats.float(), "targets": ids, "text": text}


class SpokenDigitsSynthDataModule(ZooDataModule):
    """Speech recognition of spoken digit strings (and short phrases) synthesized offline by
    eSpeak NG, for CTC training (module docstring).

    Batch contract: ``dict(features=float32 (B, T, n_mels) normalised log-mel, zero-padded;
    lengths=int64 (B,) frames of each utterance; targets=int64 (B, S) class ids (1..len(alphabet);
    ``ALPHABET[k]`` is class ``k + 1``), padded with 0, the CTC blank; target_lengths=int64 (B,);
    text=list of B transcripts)``. ``T = 1 + samples // hop_length`` of the longest utterance.

    Args:
        train_utterances, val_utterances, test_utterances: utterances per split.
        train_voices, val_voices, test_voices: voices per split (disjoint voice variants).
        takes: speed/pitch settings per (voice, word).
        min_digits, max_digits: digits per utterance (uniform).
        phrase_fraction: the share of utterances that start with a phrase of ``phrases``.
        phrases: the phrases (words of the alphabet's characters).
        speed_jitter: each word is played up to this much faster or slower.
        backgrounds: background kinds (``noise``, ``hum``).
        sample_rate, n_fft, hop_length, n_mels: the audio and its log-mel front end.
        max_input_seconds: the longest file ``read_input`` (``zoo-predict``) accepts.
        cache_dir: where synthesized words are kept (``null``: not kept).
        seed: everything is drawn from it (independent of the training seed).
        augment: must be null (the ``augment`` config group fills it in every data config).
    """

    name = "spoken_digits_synth"
    collate = staticmethod(collate_utterances)

    def __init__(self, batch_size: int = 32, eval_batch_size: int | None = None, num_workers: int = 0,
                 train_utterances: int = 3000, val_utterances: int = 300, test_utterances: int = 500,
                 train_voices: int = 40, val_voices: int = 8, test_voices: int = 12, takes: int = 2,
                 min_digits: int = 3, max_digits: int = 7, phrase_fraction: float = 0.2,
                 phrases: Sequence[str] = PHRASES, speed_jitter: float = 0.1,
                 backgrounds: Sequence[str] = LIGHT_BACKGROUNDS, sample_rate: int = 16000, n_fft: int = 400,
                 hop_length: int = 160, n_mels: int = 40, max_input_seconds: float = 30.0,
                 cache_dir: str | None = "data/synth_speech", seed: int = 0, augment: Any = None):
        super().__init__(batch_size, eval_batch_size, num_workers)
        if augment is not None:
            raise ValueError("data.augment must be null (augment=none): image augmentations do not apply to audio")
        for key, value in (("train_utterances", train_utterances), ("val_utterances", val_utterances),
                           ("test_utterances", test_utterances), ("train_voices", train_voices),
                           ("val_voices", val_voices), ("test_voices", test_voices), ("takes", takes),
                           ("min_digits", min_digits)):
            if int(value) < 1:
                raise ValueError(f"data.{key} must be at least 1, got {value}")
        if int(max_digits) < int(min_digits):
            raise ValueError(f"data.max_digits={max_digits} is below data.min_digits={min_digits}")
        if not 0.0 <= float(phrase_fraction) <= 1.0:
            raise ValueError(f"data.phrase_fraction must lie in [0, 1], got {phrase_fraction}")
        if float(phrase_fraction) > 0 and not phrases:
            raise ValueError("data.phrases is empty but data.phrase_fraction > 0: give phrases or set it to 0")
        for p in phrases:
            encode_text(p, where=f"data.phrases entry {p!r}")  # empty or foreign characters: refused here
            if p != " ".join(p.split()):
                raise ValueError(f"data.phrases entry {p!r}: words separated by single spaces, no edge spaces")
        bad = [b for b in backgrounds if b not in LIGHT_BACKGROUNDS]
        if bad or not backgrounds:
            raise ValueError(f"data.backgrounds are drawn from {list(LIGHT_BACKGROUNDS)}, got {list(backgrounds)}"
                             + (" (babble is made of words, which would be heard in the transcript)"
                                if "babble" in bad else ""))
        self.sizes = {"train": int(train_utterances), "val": int(val_utterances), "test": int(test_utterances)}
        self.voice_counts = {"train": int(train_voices), "val": int(val_voices), "test": int(test_voices)}
        self.takes, self.seed = int(takes), int(seed)
        self.min_digits, self.max_digits = int(min_digits), int(max_digits)
        self.phrase_fraction, self.phrases = float(phrase_fraction), tuple(phrases)
        self.speed_jitter, self.backgrounds = float(speed_jitter), tuple(backgrounds)
        self.sample_rate, self.n_mels = int(sample_rate), int(n_mels)
        self.logmel = LogMel(self.sample_rate, n_fft, hop_length, n_mels=self.n_mels)
        self.max_input_seconds = float(max_input_seconds)
        self.cache_dir = str(cache_dir) if cache_dir else None

    def features(self, wav: np.ndarray) -> torch.Tensor:
        """A waveform (N,) at ``sample_rate`` -> normalised log-mel (frames, n_mels)."""
        return normalize_features(self.logmel(torch.from_numpy(np.asarray(wav, dtype=np.float32))))

    def split_voices(self) -> dict[str, list[str]]:
        return split_voices(self.voice_counts, self.seed)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        voices = self.split_voices()
        sets = {s: SpokenDigitUtterances(self, s, self.sizes[s],
                                         UtteranceBank(voices[s], self.takes, self.seed, self.sample_rate,
                                                       self.cache_dir))
                for s in SPLITS}
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def data_facts(self) -> dict[str, Any]:
        return {"alphabet": list(ALPHABET), "num_classes": len(ALPHABET) + 1, "blank": BLANK,
                "n_mels": self.n_mels, "sample_rate": self.sample_rate, "hop_length": self.logmel.hop_length,
                "n_fft": self.logmel.n_fft}

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, **self.data_facts(), "voices": self.split_voices(),
                "utterances": dict(self.sizes), "digits": [self.min_digits, self.max_digits],
                "phrase_fraction": self.phrase_fraction}

    def read_input(self, path: Path) -> Any:
        """A user's 16-bit PCM WAV at ``sample_rate`` as one example (no transcript)."""
        wav = read_wav(path, self.sample_rate)  # a wrong rate or format: AudioFileError naming the file
        seconds = wav.size / self.sample_rate
        if wav.size < self.logmel.n_fft:
            raise ValueError(f"{path} is {seconds:.3f} s long: too short to hear anything")
        if seconds > self.max_input_seconds:
            raise ValueError(f"{path} is {seconds:.1f} s long; the model was trained on utterances of a few "
                             f"seconds and reads at most data.max_input_seconds={self.max_input_seconds:g} s: "
                             "cut the file into shorter pieces")
        example = {"features": self.features(wav), "targets": torch.zeros(0, dtype=torch.int64), "text": ""}
        return example, {"seconds": round(seconds, 3)}
