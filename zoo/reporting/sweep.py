"""The report of a hyperparameter sweep: every trial's swept values and metrics, the best trial,
and a plot, written to ``reports/sweeps/<name>/`` from the trials' run folders.

Runs by itself at the end of a Hydra multirun (``SweepReport``, a Hydra callback that the
``hparams_search`` configs install), or by hand on a finished sweep folder:

    python -m zoo.reporting.sweep multirun/sweeps/lenet5_lr_wd --name lenet5_lr_wd --objective val/loss
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from omegaconf import OmegaConf

try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra < 1.2
    Callback = object


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def collect_trials(sweep_dir: Path, swept: list[str]) -> list[dict]:
    """One row per finished trial: its number, swept values, val and test metrics, command."""
    trials = []
    for metrics_path in sorted(sweep_dir.glob("*/metrics.json")):
        rec = json.loads(metrics_path.read_text())
        cfg = _flatten(OmegaConf.to_container(OmegaConf.load(metrics_path.parent / "config.yaml")))
        name = metrics_path.parent.name
        num = int(name.removeprefix("trial")) if name.removeprefix("trial").isdigit() else name
        trials.append({"trial": num, **{k: cfg.get(k) for k in swept}, **rec.get("val", {}),
                       **rec.get("test", {}), "train_time_s": rec.get("train_time_s"),
                       "command": rec.get("command"), "commit": (rec.get("git") or {}).get("commit")})
    return sorted(trials, key=lambda t: (isinstance(t["trial"], str), t["trial"]))


def write_sweep_report(sweep_dir: Path, name: str, objective: str, direction: str,
                       swept: list[str], reports_dir: Path, sampler: str = "", command: str = "") -> Path:
    trials = collect_trials(Path(sweep_dir), swept)
    if not trials:
        raise FileNotFoundError(f"no finished trial (*/metrics.json) under {sweep_dir}")
    missing = [t["trial"] for t in trials if objective not in t]
    if missing:
        raise KeyError(f"trials {missing} have no {objective!r}")
    sign = 1 if direction == "minimize" else -1
    ranked = sorted(trials, key=lambda t: sign * t[objective])
    best = ranked[0]
    out = Path(reports_dir) / "sweeps" / name
    out.mkdir(parents=True, exist_ok=True)
    keys = ["trial", *swept, objective] + sorted({k for t in trials for k in t} - {"trial", objective, "command", "commit", *swept})
    with open(out / "trials.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys + ["command", "commit"])
        w.writeheader()
        w.writerows(trials)
    _plot(trials, swept, objective, best, out / "sweep.png")
    shown = sorted({k for t in trials for k in t if k.startswith(("val/", "test/")) and k != objective
                    and not k.endswith("/loss")})
    lines = [
        f"# Sweep {name}",
        "",
        "Generated from the trials' run folders by `zoo.reporting.sweep`; do not edit by hand.",
        "",
        f"{len(trials)} trials, {sampler or 'sampler as configured'}; objective: **{objective}** ({direction}) "
        "of each trial's best checkpoint on the validation split. Test figures are shown, never used to choose.",
        "",
        "**Best trial**: " + ", ".join(f"`{k}={best[k]:.4g}`" if isinstance(best[k], float) else f"`{k}={best[k]}`"
                                       for k in swept)
        + f" → {objective} {best[objective]:.4f}"
        + "".join(f", {k} {100 * best[k]:.2f}%" for k in shown if k in best),
        "",
        f"Reproduce the sweep: `{command}`" if command else "",
        "",
        "| rank | trial | " + " | ".join(swept) + f" | {objective} | " + " | ".join(shown) + " |",
        "|---|---|" + "---|" * (len(swept) + 1 + len(shown)),
    ]
    for i, t in enumerate(ranked, 1):
        vals = " | ".join(f"{t[k]:.4g}" if isinstance(t[k], float) else str(t[k]) for k in swept)
        extra = " | ".join(f"{100 * t[k]:.2f}" if k in t else "—" for k in shown)
        lines.append(f"| {i} | {t['trial']} | {vals} | {t[objective]:.4f} | {extra} |")
    lines += ["", "![sweep](sweep.png)", ""]
    (out / "README.md").write_text("\n".join(lines))
    (out / "best.json").write_text(json.dumps({"objective": objective, "direction": direction,
                                                 "best": best, "n_trials": len(trials)}, indent=2) + "\n")
    return out / "README.md"


def _plot(trials: list[dict], swept: list[str], objective: str, best: dict, path: Path) -> None:
    from zoo.reporting import plots  # noqa: F401  (non-interactive backend)
    import matplotlib.pyplot as plt

    if len(swept) >= 2:
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        sc = ax.scatter([t[swept[0]] for t in trials], [t[swept[1]] for t in trials],
                        c=[t[objective] for t in trials], cmap="viridis_r", s=50)
        ax.scatter([best[swept[0]]], [best[swept[1]]], marker="*", s=250, c="red", label="best")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(swept[0])
        ax.set_ylabel(swept[1])
        fig.colorbar(sc, ax=ax, label=objective)
        ax.legend()
    else:
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        ax.scatter([t[swept[0]] for t in trials], [t[objective] for t in trials])
        ax.set_xscale("log")
        ax.set_xlabel(swept[0])
        ax.set_ylabel(objective)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class SweepReport(Callback):
    """Hydra callback: writes the sweep's report when the multirun ends."""

    def __init__(self, name: str, objective: str = "val/loss", direction: str = "minimize",
                 reports_dir: str = "reports"):
        self.name, self.objective, self.direction, self.reports_dir = name, objective, direction, reports_dir

    def on_multirun_end(self, config, **kwargs) -> None:
        swept = list(OmegaConf.to_container(config.hydra.sweeper.get("params") or {}).keys())
        sampler = config.hydra.sweeper.get("sampler", {}).get("_target_", "")
        command = "zoo-train -m " + " ".join(config.hydra.overrides.task)
        path = write_sweep_report(Path(config.hydra.sweep.dir), self.name, self.objective, self.direction,
                                  swept, Path(self.reports_dir), sampler.rsplit(".", 1)[-1], command)
        print(f"[zoo] sweep report: {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zoo.reporting.sweep", description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir")
    p.add_argument("--name", required=True)
    p.add_argument("--objective", default="val/loss")
    p.add_argument("--direction", default="minimize", choices=["minimize", "maximize"])
    p.add_argument("--params", default="optimizer.lr,optimizer.weight_decay")
    p.add_argument("--reports", default="reports")
    p.add_argument("--command", default="", help="the command that ran the sweep, for the report")
    args = p.parse_args(argv)
    try:
        path = write_sweep_report(Path(args.sweep_dir), args.name, args.objective, args.direction,
                                  args.params.split(","), Path(args.reports), command=args.command)
    except (FileNotFoundError, KeyError) as err:
        print(f"zoo.reporting.sweep: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
