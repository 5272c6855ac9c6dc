"""A deterministic wrapper around the eSpeak NG speech synthesizer (Dunn et al., eSpeak NG;
formant synthesis after Klatt 1980), the source of the zoo's synthesized speech data.

Where the synthesizer comes from, in order:

1. the ``espeakng-loader`` wheel (a PyPI dependency of the zoo: it carries ``libespeak-ng.so``
   and its voice data, so ``pip install`` is all a fresh machine needs), called through ``ctypes``;
2. else the ``espeak-ng`` program on ``PATH`` (Debian: ``apt-get install espeak-ng``).

Neither: :class:`SynthesizerNotFoundError`, saying how to install one.

**Determinism.** The library keeps state between utterances (its pitch "flutter" table index,
its noise generator), so two identical calls in one process give slightly different samples.
Each utterance is therefore synthesized in a freshly forked child process, from the library's
initial state, with the random seed fixed (``espeak_ng_SetRandSeed``): the same
``(text, voice, rate, pitch)`` gives the same samples, bit for bit, whatever was said before.
The program fallback is a fresh process per call anyway. Samples are int16 at 22,050 Hz.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 22050  # eSpeak NG's output rate
_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: samples come back through the callback
_RATE, _PITCH = 1, 3  # espeak_PARAMETER: words per minute, base pitch 0..100
_POS_CHARACTER, _CHARS_UTF8 = 1, 1


class SynthesizerNotFoundError(RuntimeError):
    """No eSpeak NG library or program could be found."""


class SynthesisError(RuntimeError):
    """The synthesizer refused an utterance (an unknown voice, empty text ...)."""


INSTALL_HINT = ("install the synthesizer: `pip install espeakng-loader` (a wheel carrying libespeak-ng "
                "and its voices; a dependency of the zoo, so `make env` installs it) or "
                "`apt-get install espeak-ng` (Debian/Ubuntu)")


@lru_cache(maxsize=1)
def find_backend() -> tuple[str, str, str]:
    """``("library", libpath, datapath)`` or ``("program", path, "")``; raises
    :class:`SynthesizerNotFoundError` when there is neither."""
    if os.environ.get("ZOO_ESPEAK_BACKEND", "") != "program":
        try:
            import espeakng_loader  # the wheel: library and voice data side by side

            lib, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
            if Path(lib).is_file() and Path(data).is_dir():
                return "library", lib, data
        except (ImportError, RuntimeError):
            pass
    if os.environ.get("ZOO_ESPEAK_BACKEND", "") != "library":
        exe = shutil.which("espeak-ng")
        if exe:
            return "program", exe, ""
    raise SynthesizerNotFoundError(f"no speech synthesizer: {INSTALL_HINT}")


def _synth_in_child(lib_path: str, data_path: str, text: str, voice: str, rate: int, pitch: int) -> bytes:
    """Fork; the child initializes the library from scratch, says ``text`` and pipes back the
    int16 samples. Status 3 from the child: the voice is unknown."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, only os._exit
        code = 1
        try:
            os.close(r)
            lib = ctypes.CDLL(lib_path)
            callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                             ctypes.c_void_p)
            chunks: list[bytes] = []

            def on_samples(wav, n, events):
                if wav and n > 0:
                    chunks.append(ctypes.string_at(wav, 2 * n))
                return 0

            cb = callback_type(on_samples)
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            if lib.espeak_Initialize(_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0) <= 0:
                os._exit(4)
            lib.espeak_SetSynthCallback(cb)
            lib.espeak_ng_SetRandSeed(ctypes.c_long(0))
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                os._exit(3)
            lib.espeak_SetParameter(_RATE, int(rate), 0)
            lib.espeak_SetParameter(_PITCH, int(pitch), 0)
            raw = text.encode("utf-8")
            lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                         ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            lib.espeak_Synth(raw, len(raw) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
            with os.fdopen(w, "wb") as f:
                f.write(b"".join(chunks))
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 3:
        raise SynthesisError(f"eSpeak NG has no voice {voice!r} (e.g. 'en', 'en-us+f2', 'en-gb-scotland+m3')")
    if code != 0:
        raise SynthesisError(f"eSpeak NG failed (status {code}) saying {text!r} with voice {voice!r}")
    return data


def _synth_program(exe: str, text: str, voice: str, rate: int, pitch: int) -> bytes:
    proc = subprocess.run([exe, "-v", voice, "-s", str(int(rate)), "-p", str(int(pitch)), "--stdout", text],
                          capture_output=True, timeout=60)
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        raise SynthesisError(f"espeak-ng failed saying {text!r} with voice {voice!r}: "
                             f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout[44:]  # a canonical 44-byte WAV header, then int16 mono at 22,050 Hz


def synthesize(text: str, voice: str = "en", rate: int = 175, pitch: int = 50) -> np.ndarray:
    """``text`` spoken by eSpeak NG: int16 samples (N,) at :data:`SAMPLE_RATE`, deterministic.

    Args:
        voice: a language with an optional variant, ``lang[+variant]`` (``en-us+f2``).
        rate: speed in words per minute (80..450; eSpeak's default 175).
        pitch: base pitch, 0..100 (default 50).
    """
    if not text or not text.strip():
        raise SynthesisError("nothing to say: the text is empty")
    if not 80 <= int(rate) <= 450:
        raise SynthesisError(f"rate {rate} words per minute is outside eSpeak NG's 80..450")
    if not 0 <= int(pitch) <= 100:
        raise SynthesisError(f"pitch {pitch} is outside eSpeak NG's 0..100")
    kind, path, data = find_backend()
    raw = (_synth_in_child(path, data, text, voice, rate, pitch) if kind == "library"
           else _synth_program(path, text, voice, rate, pitch))
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
    if samples.size == 0:
        raise SynthesisError(f"eSpeak NG produced no sound for {text!r} with voice {voice!r}")
    return samples


def cached_synthesize(cache_dir: str | Path | None, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    """:func:`synthesize`, kept on disk under ``cache_dir`` (one ``.npy`` per utterance, named by
    a hash of its arguments); ``None``: no cache."""
    if cache_dir is None:
        return synthesize(text, voice, rate, pitch)
    key = hashlib.sha1(f"{text}|{voice}|{int(rate)}|{int(pitch)}".encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache entry is made again
    samples = synthesize(text, voice, rate, pitch)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, samples)
    os.replace(tmp, path)
    return samples
