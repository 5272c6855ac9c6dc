"""Log-mel spectrograms with ``torch.stft`` (torchaudio has no release for the zoo's torch), the
mel filterbank written here, and 16-bit PCM WAV files read and written with the standard
library's ``wave``.

The mel scale is the HTK one, ``mel(f) = 2595 log10(1 + f / 700)`` (Young et al., the HTK Book);
the filterbank has ``n_mels`` triangles whose corners are equally spaced on it between ``f_min``
and ``f_max``, each peaking at 1 (no area normalisation).
"""
from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import torch


class AudioFileError(ValueError):
    """A WAV file that cannot be used (not a WAV, not PCM, an unexpected sample rate)."""


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular filters (n_freqs, n_mels) over the ``n_freqs = n_fft // 2 + 1`` STFT bins."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}, "
                         f"sample_rate={sample_rate}")
    bins = np.linspace(0, sample_rate / 2, n_freqs)  # each STFT bin's frequency
    corners = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # (n_mels + 2,)
    lo, mid, hi = corners[:-2, None], corners[1:-1, None], corners[2:, None]  # (n_mels, 1) each
    up = (bins[None] - lo) / (mid - lo)
    down = (hi - bins[None]) / (hi - mid)
    fb = np.clip(np.minimum(up, down), 0.0, None)  # (n_mels, n_freqs)
    return torch.from_numpy(fb.T.astype(np.float32))  # (n_freqs, n_mels)


class LogMel:
    """Waveform (..., N) float in [-1, 1] -> log-mel (..., frames, n_mels).

    ``frames = 1 + N // hop_length`` (centred frames, the signal reflect-padded by ``n_fft // 2``);
    a Hann window of ``win_length``; power spectrum; ``log(mel + 1e-6)``.
    Defaults: 25 ms windows every 10 ms at 16 kHz, 40 mel bands up to 8 kHz.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, hop_length: int = 160,
                 win_length: int | None = None, n_mels: int = 40, f_min: float = 20.0,
                 f_max: float | None = None):
        self.sample_rate, self.n_fft, self.hop_length = int(sample_rate), int(n_fft), int(hop_length)
        self.win_length = int(win_length or n_fft)
        self.n_mels = int(n_mels)
        self.window = torch.hann_window(self.win_length, periodic=True)
        self.fb = mel_filterbank(self.n_fft // 2 + 1, self.n_mels, self.sample_rate, f_min, f_max)

    def power(self, wav: torch.Tensor) -> torch.Tensor:
        """|STFT|^2: (..., N) -> (..., frames, n_fft // 2 + 1)."""
        lead = wav.shape[:-1]
        spec = torch.stft(wav.reshape(-1, wav.shape[-1]).float(), self.n_fft, self.hop_length, self.win_length,
                          self.window, center=True, pad_mode="reflect", return_complex=True)  # (B, F, frames)
        return spec.abs().pow(2).transpose(1, 2).reshape(*lead, -1, spec.shape[1])  # (..., frames, F)

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.log(self.power(wav) @ self.fb + 1e-6)  # (..., frames, n_mels)

    def frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_length


def read_wav(path: str | Path, sample_rate: int | None = None) -> np.ndarray:
    """A 16-bit PCM WAV file as float32 mono samples in [-1, 1] (channels averaged).

    Raises :class:`AudioFileError` (naming the file) for another format, and for a rate other
    than ``sample_rate`` when one is given.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no WAV file at {path}")
    try:
        with wave.open(str(path), "rb") as f:
            rate, width, channels, n = f.getframerate(), f.getsampwidth(), f.getnchannels(), f.getnframes()
            raw = f.readframes(n)
    except (wave.Error, EOFError) as e:
        raise AudioFileError(f"{path} is not a readable WAV file ({e}); give a 16-bit PCM WAV") from e
    if width != 2:
        raise AudioFileError(f"{path} has {8 * width}-bit samples; give a 16-bit PCM WAV "
                             f"(e.g. `sox in.wav -b 16 out.wav`)")
    if sample_rate is not None and rate != sample_rate:
        raise AudioFileError(f"{path} is sampled at {rate} Hz, but the model was trained at {sample_rate} Hz: "
                             f"resample it first (e.g. `sox in.wav -r {sample_rate} out.wav`)")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        x = x.reshape(-1, channels).mean(1)
    if x.size == 0:
        raise AudioFileError(f"{path} holds no samples")
    return x


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Float samples in [-1, 1] (clipped) as a mono 16-bit PCM WAV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())
    return path


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) by the reduced ratio of the rates."""
    if from_rate == to_rate:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(np.asarray(x, dtype=np.float64), to_rate // g, from_rate // g).astype(np.float32)
