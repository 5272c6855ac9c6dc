"""Plots written into run folders and reports (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, path: str | Path) -> Path:
    """Lay the figure out, write it as PNG at 100 dpi and free it."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_curves(history: list[dict], path: str | Path, title: str = "") -> Path | None:
    """Loss and metric curves per epoch, train and val side by side."""
    if not history:
        return None
    epochs = [r["epoch"] + 1 for r in history]
    keys = sorted({k.split("/", 1)[1] for r in history for k in r if "/" in k})
    panels = [k for k in ("loss", "acc", "f1") if k in keys] + [k for k in keys if k not in ("loss", "acc", "f1")]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 3.4), squeeze=False)
    axes = axes[0]  # one row; a history with no metric columns still gets its learning-rate panel
    for ax, key in zip(axes, panels):
        for stage, style in (("train", "-"), ("val", "--")):
            ys = [r.get(f"{stage}/{key}") for r in history]
            pts = [(e, y) for e, y in zip(epochs, ys) if y is not None]
            if pts:
                ax.plot(*zip(*pts), style, marker=".", label=stage)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    lr = [(e, r["lr"]) for e, r in zip(epochs, history) if "lr" in r]
    ax = axes[-1]
    if lr:
        ax.plot(*zip(*lr), marker=".")
    ax.set_title("learning rate (end of epoch)")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path,
                     title: str = "") -> Path:
    """Counts with true classes on rows and predicted classes on columns."""
    n = len(matrix)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(r) for r in matrix) or 1
    for i in range(n):
        for j in range(n):
            v = matrix[i][j]
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if v > peak / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title or "confusion matrix (test)")
    return save(fig, path)


def comparison(rows: Sequence[dict], path: str | Path, metric: str = "test/acc", scale: float = 100.0,
               label: str | None = None) -> Path | None:
    """Two panels over the experiments of a report section: the metric's mean ± std over seeds
    (bars), and the metric against forward FLOPs per example (log scale), one point per
    experiment. ``scale`` 100 shows a fraction as a percentage (bars then end at 100)."""
    rows = [r for r in rows if r["test"].get(metric)]
    if not rows:
        return None
    import statistics

    means = [scale * statistics.fmean(r["test"][metric]) for r in rows]
    stds = [scale * statistics.stdev(r["test"][metric]) if len(r["test"][metric]) > 1 else 0.0 for r in rows]
    label = label or metric
    order = sorted(range(len(rows)), key=lambda i: means[i])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, max(3.5, 0.32 * len(rows) + 1.2)),
                                   gridspec_kw={"width_ratios": [1.2, 1]})
    names = [f"{rows[i]['experiment']} ({len(rows[i]['seeds'])})" for i in order]
    ax1.barh(names, [means[i] for i in order], xerr=[stds[i] for i in order], color="tab:blue", alpha=0.8)
    if scale == 100.0:  # a percentage: from a little below the lowest bar to 100
        lo = min(means[i] - stds[i] for i in order)
        ax1.set_xlim(max(0.0, lo - 2.0), 100.0)
    ax1.set_xlabel(f"{label}, mean ± std over seeds (seed count in brackets)")
    ax1.grid(axis="x", alpha=0.3)
    pts = [(r["flops"], m, r["experiment"]) for r, m in zip(rows, means) if r.get("flops")]
    for flops, m, name in pts:
        ax2.scatter(flops, m, s=30)
        ax2.annotate(name.removesuffix("_mnist5k"), (flops, m), fontsize=7, xytext=(3, 2),
                     textcoords="offset points")
    ax2.set_xscale("log")
    ax2.set_xlabel("forward FLOPs per example")
    ax2.set_ylabel(label)
    ax2.grid(alpha=0.3)
    return save(fig, path)


def histogram(values: Sequence[float], path: str | Path, title: str = "", bins: int = 30,
              xlabel: str = "value") -> Path:
    """A histogram of ``values`` (e.g. a regression's test residuals)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.hist(list(values), bins=bins, color="tab:blue", alpha=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return save(fig, path)


def boxes_on_images(images, pred_boxes: Sequence, pred_names: Sequence[str], true_boxes: Sequence,
                    path: str | Path, title: str = "", columns: int = 4) -> Path:
    """Images (N, C, H, W) in a grid, each with its predicted boxes (red, named) and its true
    boxes (green); boxes are (k, 4) xyxy pixels per image. Pixel values are shown min-max scaled."""
    from matplotlib.patches import Rectangle

    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        img = images[i].float()
        img = (img - img.min()) / (img.max() - img.min()).clamp(min=1e-8)
        ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if img.shape[0] == 1 else None)
        for boxes, colour in ((true_boxes[i], "lime"), (pred_boxes[i], "red")):
            for x1, y1, x2, y2 in boxes.tolist():
                ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color=colour, lw=1.5))
        if i < len(pred_names):
            ax.set_title(str(pred_names[i]), color="red", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def segmentation_overlays(images, true_maps, pred_maps, num_classes: int, path: str | Path, title: str = "") -> Path:
    """One row per image: the image, its true class map and the predicted one (class 0, the
    background, black; each other class its own colour)."""
    from matplotlib.colors import ListedColormap

    colours = ["black"] + [plt.get_cmap("tab10" if num_classes <= 11 else "tab20")(i % 20)
                           for i in range(num_classes - 1)]
    cmap = ListedColormap(colours)
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.3 * n), squeeze=False)
    for i in range(n):
        img = images[i].float()
        img = (img - img.min()) / (img.max() - img.min()).clamp(min=1e-8)
        axes[i, 0].imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if img.shape[0] == 1 else None)
        for ax, m in ((axes[i, 1], true_maps[i]), (axes[i, 2], pred_maps[i])):
            ax.imshow(m.numpy(), cmap=cmap, vmin=0, vmax=num_classes - 1, interpolation="nearest")
        for ax in axes[i]:
            ax.axis("off")
    for ax, name in zip(axes[0], ("image", "true", "predicted")):
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)
