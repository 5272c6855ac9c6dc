"""``zoo-trigger``: run a trained trigger-word model over a WAV file, mark each detection with a
chime (as the notes' ``chime_on_activate`` does), and write the output WAV and a plot of the
per-step probabilities.

    zoo-trigger outputs/trigger_word_synth/<time>/checkpoints/best.ckpt speech.wav
    zoo-trigger best.ckpt speech.wav --out chimed.wav --plot probs.png --threshold 0.6
    zoo-trigger trigger_word_gru.synth_activate speech.wav     # the published weights, by name

The WAV must be 16-bit PCM at the sample rate the model was trained at (16 kHz for
``trigger_word_synth``); any length. A detection is a run of steps above the threshold (the
task's rule); the chime sounds where the run starts, and no two chimes come closer than
``--refractory`` seconds (the notes wait 75 of 1,375 steps, 0.55 s).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def chime(sample_rate: int, seconds: float = 0.25) -> np.ndarray:
    """A short bell: two partials (880 and 1320 Hz) under an exponential decay, peak 0.5."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = np.sin(2 * np.pi * 880 * t) + 0.5 * np.sin(2 * np.pi * 1320 * t)
    return (0.5 * tone * np.exp(-t / (seconds / 4)) / 1.5).astype(np.float32)


def detect(task, features: torch.Tensor) -> np.ndarray:
    """Per-step probabilities (steps,) for one clip's features (frames, n_mels)."""
    with torch.no_grad():
        return torch.sigmoid(task.net(features.unsqueeze(0)))[0].cpu().numpy()


def run(ckpt: str | Path, wav_path: str | Path, out: str | Path | None = None, plot: str | Path | None = None,
        threshold: float | None = None, refractory: float = 0.55) -> dict:
    from hydra.utils import instantiate

    from datamodules.audio.features import read_wav, write_wav
    from zoo.cli.eval import task_from_source
    from zoo.tasks.trigger_word import runs

    wav_path = Path(wav_path)
    task = task_from_source(ckpt).eval()  # a checkpoint file, or a published weight by name
    data_cfg = dict((task.run_config or {}).get("data") or {})
    if not hasattr(task, "merge_gap") or "sample_rate" not in data_cfg:
        raise ValueError(f"{ckpt} is not a trigger-word model (experiment=trigger_word_synth)")
    data_cfg["cache_dir"] = None
    dm = instantiate(data_cfg, _convert_="all")
    rate = dm.sample_rate
    wav = read_wav(wav_path, rate)  # a wrong rate is an AudioFileError naming the file
    if dm.logmel.frames(wav.size) < dm.conv_kernel:
        raise ValueError(f"{wav_path} is {wav.size / rate:.3f} s long: the model needs at least "
                         f"{dm.conv_kernel * dm.logmel.hop_length / rate:.2f} s")
    feats = dm.logmel(torch.from_numpy(wav))  # (frames, n_mels)
    probs = detect(task, feats)  # (steps,)
    thr = task.threshold if threshold is None else float(threshold)
    seconds = wav.size / rate
    step_s = seconds / len(probs)
    times: list[float] = []
    for s, _ in runs(probs > thr, task.merge_gap):
        t = s * step_s
        if not times or t - times[-1] >= refractory:
            times.append(t)
    out_wav = wav.copy()
    bell = chime(rate)
    for t in times:
        i = int(t * rate)
        n = min(len(bell), out_wav.size - i)
        out_wav[i: i + n] += bell[:n]
    out = Path(out) if out else wav_path.with_name(wav_path.stem + "_chimed.wav")
    plot = Path(plot) if plot else out.with_suffix(".png")
    write_wav(out, out_wav, rate)
    _plot(wav, rate, probs, thr, times, plot, wav_path.name)
    return {"file": str(wav_path), "output": str(out), "plot": str(plot), "threshold": thr,
            "detections_s": [round(t, 3) for t in times]}


def _plot(wav: np.ndarray, rate: int, probs: np.ndarray, thr: float, times: list[float], path: Path,
          title: str) -> None:
    from zoo.reporting.plots import plt

    seconds = wav.size / rate
    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True)
    a.plot(np.arange(wav.size) / rate, wav, lw=0.3, color="tab:blue")
    a.set_ylabel("waveform")
    a.set_title(title)
    t = (np.arange(len(probs)) + 0.5) * seconds / len(probs)
    b.plot(t, probs, color="tab:orange", label="P(trigger word just ended)")
    b.axhline(thr, color="tab:red", ls="--", lw=0.8, label="threshold")
    for x in times:
        a.axvline(x, color="tab:green", lw=1)
        b.axvline(x, color="tab:green", lw=1)
    b.set_ylim(0, 1.02)
    b.set_xlabel("seconds")
    b.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-trigger", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a trigger-word checkpoint written by zoo-train, or a published weight "
                                      "by name (zoo-weights list)")
    p.add_argument("wav", help="a 16-bit PCM WAV at the model's sample rate")
    p.add_argument("--out", help="output WAV (default: <wav>_chimed.wav)")
    p.add_argument("--plot", help="output PNG (default: beside the output WAV)")
    p.add_argument("--threshold", type=float, help="detection threshold (default: the task's)")
    p.add_argument("--refractory", type=float, default=0.55, help="seconds between two chimes at least")
    args = p.parse_args(argv)
    try:
        rec = run(args.checkpoint, args.wav, args.out, args.plot, args.threshold, args.refractory)
    except (FileNotFoundError, ValueError) as e:
        print(f"zoo-trigger: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
