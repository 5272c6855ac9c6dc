"""Plots of sequence-to-sequence runs: attention heatmaps of example translations, and BLEU by
source length (one line per run or model, to compare nets with and without attention)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from zoo.reporting.plots import plt, save


def attention_heatmaps(examples: Sequence[dict], path: str | Path, title: str = "", limit: int = 4) -> Path | None:
    """One heatmap per example: output tokens (rows) against source tokens (columns), each row
    the attention weights with which that output token was produced. ``examples`` hold
    ``src_tokens``, ``out_tokens`` and ``attention`` (rows x columns); those without are skipped."""
    shown = [e for e in examples if e.get("attention")][:limit]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(max(4.0, 0.28 * max(len(e["src_tokens"]) for e in shown) + 1.5)
                                                     * len(shown), 4.2), squeeze=False)
    for ax, e in zip(axes[0], shown):
        weights = e["attention"]
        ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(e["src_tokens"])))
        ax.set_xticklabels([t if t.strip() else "␣" for t in e["src_tokens"]], fontsize=7, rotation=90)
        ax.set_yticks(range(len(weights)))
        ax.set_yticklabels(e["out_tokens"][:len(weights)], fontsize=7)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        ax.set_title(str(e.get("output", ""))[:40], fontsize=8)
    if title:
        fig.suptitle(f"{title}: attention weights", fontsize=10)
    return save(fig, path)


SMALL_BIN = 20


def bleu_by_length(series: Mapping[str, Sequence[dict]], path: str | Path, metric: str = "sacrebleu",
                   title: str = "BLEU by source length") -> Path | None:
    """One line per name of ``series``: ``metric`` (``sacrebleu`` 0-100, or ``exact_match``)
    against the middle of each source-length range (the records' ``bleu_by_src_len``). Ranges
    holding fewer than ``SMALL_BIN`` test sources are drawn hollow: their score is noisy."""
    if not any(series.values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, rows in series.items():
        if not rows:
            continue
        xs = [(r["src_len_min"] + r["src_len_max"]) / 2 for r in rows]
        ys = [r[metric] * (100 if metric == "exact_match" else 1) for r in rows]
        line, = ax.plot(xs, ys, marker="o", label=name)
        small = [(x, y) for x, y, r in zip(xs, ys, rows) if r.get("count", SMALL_BIN) < SMALL_BIN]
        if small:
            ax.plot(*zip(*small), linestyle="none", marker="o", markersize=9, markerfacecolor="white", color=line.get_color(),
                    markeredgecolor=line.get_color())
    ax.set_xlabel(f"source length (tokens); hollow: fewer than {SMALL_BIN} sources")
    ax.set_ylabel("SacreBLEU" if metric == "sacrebleu" else f"{metric} (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save(fig, path)
