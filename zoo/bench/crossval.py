"""k-fold cross-validation of an experiment whose datamodule takes a ``fold`` (and ``num_folds``):
every fold in turn is the test split, for every seed; the figure is the mean over the folds
(as Pang & Lee 2005 report theirs), then its mean ± standard deviation over the seeds.

    python -m zoo.bench.crossval sentiment_avg_polarity                 # 10 folds x seeds 0 1 2
    python -m zoo.bench.crossval sentiment_avg_polarity sentiment_lstm_polarity --seeds 0
    python -m zoo.bench.crossval sentiment_lstm_polarity --out /tmp/cv trainer.max_epochs=5

Why a driver and not a suite entry: a suite (``zoo-bench``) runs each experiment once per seed
with one set of overrides, and a run trains one net on one split. A cross-validated figure needs
``num_folds`` nets per seed, so the folds are runs of their own (``zoo-train experiment=<e>
seed=<s> data.fold=<k>``, each a complete, reproducible run folder), and this driver runs them
and adds them up. The folds are drawn from ``data.split_seed`` alone, so every seed is tested on
the same folds and the spread over seeds is that of training.

Each fold's run folder is ``<out>/<experiment>/seed<s>/fold<k>/`` (``metrics.json`` ...); a fold
whose ``metrics.json`` is there is not run again (``--force`` re-runs it), so an interrupted
cross-validation goes on where it stopped. The summary, ``<out>/<experiment>/crossval.json``,
holds every fold's test metrics and times, the per-seed means over folds, and their mean and
standard deviation over seeds. The runs are trained in this process, one after the other.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from zoo import conf as zoo_conf


def _compose(experiment: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(zoo_conf.CONF_DIR)):
        return compose("train", overrides=[f"experiment={experiment}", *overrides])


def num_folds_of(experiment: str, overrides: list[str]) -> int:
    cfg = _compose(experiment, overrides)
    if "fold" not in cfg.data or "num_folds" not in cfg.data:
        raise ValueError(f"experiment {experiment!r}: its data ({cfg.data._target_}) takes no fold/num_folds; "
                         "only a cross-validated datamodule can be run fold by fold")
    return int(cfg.data.num_folds)


def run_fold(experiment: str, seed: int, fold: int, run_dir: Path, overrides: list[str]) -> dict:
    """Train and test one fold in this process; its record (``metrics.json``)."""
    from zoo.cli.train import train

    command = f"zoo-train experiment={experiment} seed={seed} data.fold={fold} " + " ".join(overrides)
    cfg = _compose(experiment, [f"seed={seed}", f"data.fold={fold}", "trainer.enable_progress_bar=false",
                                f"paths.output_dir={run_dir}", f"command='{command.strip()}'", *overrides])
    return train(cfg)


def _reference(experiment: str, overrides: list[str]) -> dict | None:
    """The paper's figure the experiment names (its ``reference``), or None."""
    from omegaconf import OmegaConf

    cfg = _compose(experiment, overrides)
    ref = cfg.get("reference")
    return OmegaConf.to_container(ref, resolve=True) if ref else None


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(experiment: str, runs: dict[int, dict[int, dict]]) -> dict:
    """Per seed, the mean over folds of every test metric; over seeds, their mean and std."""
    per_seed = {}
    for seed, folds in sorted(runs.items()):
        keys = sorted(set.intersection(*(set(r["test"]) for r in folds.values())))
        per_seed[seed] = {k: statistics.fmean(r["test"][k] for r in folds.values()) for k in keys}
    keys = sorted(set.intersection(*(set(m) for m in per_seed.values()))) if per_seed else []
    over_seeds = {k: dict(zip(("mean", "std"), _mean_std([m[k] for m in per_seed.values()]))) for k in keys}
    return {
        "experiment": experiment,
        "seeds": sorted(runs),
        "folds": sorted({f for folds in runs.values() for f in folds}),
        "runs": {f"seed{s}/fold{f}": {"test": r["test"], "val": r.get("val", {}), "train_time_s": r.get("train_time_s"),
                                      "fit_wall_s": r.get("fit_wall_s"), "epochs": r.get("epochs"),
                                      "test_size": (r.get("data") or {}).get("test_size"),
                                      "train_size": (r.get("data") or {}).get("train_size"),
                                      "test_unk_rate": (r.get("data") or {}).get("test_unk_rate"),
                                      "test_positive": (r.get("data") or {}).get("test_positive")}
                 for s, folds in sorted(runs.items()) for f, r in sorted(folds.items())},
        "per_seed_mean_over_folds": {f"seed{s}": m for s, m in per_seed.items()},
        "mean_over_folds": over_seeds,
    }


def crossvalidate(experiment: str, seeds: list[int], out: Path, overrides: list[str], force: bool = False,
                  folds: list[int] | None = None, stream=None) -> dict:
    stream = stream or sys.stdout
    k = num_folds_of(experiment, overrides)
    folds = list(range(k)) if folds is None else folds
    runs: dict[int, dict[int, dict]] = {}
    for seed in seeds:
        for fold in folds:
            run_dir = out / experiment / f"seed{seed}" / f"fold{fold}"
            metrics = run_dir / "metrics.json"
            t0 = time.perf_counter()
            if metrics.is_file() and not force:
                record, how = json.loads(metrics.read_text()), "recorded"
            else:
                record, how = run_fold(experiment, seed, fold, run_dir, overrides), "ran"
            runs.setdefault(seed, {})[fold] = record
            test = record.get("test", {})
            print(f"{experiment} seed={seed} fold={fold}/{k}: " + ", ".join(f"{m}={v:.4f}" for m, v in sorted(test.items()))
                  + f" | train {record.get('train_time_s', 0):.1f}s, {how} in {time.perf_counter() - t0:.1f}s",
                  file=stream, flush=True)
    summary = summarise(experiment, runs)
    summary["num_folds"] = k
    summary["overrides"] = overrides
    summary["reference"] = _reference(experiment, overrides)
    path = out / experiment / "crossval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    shown = ", ".join(f"{m} {100 * v['mean']:.1f} ± {100 * v['std']:.1f}%"
                      for m, v in summary["mean_over_folds"].items() if m != "test/loss")
    print(f"{experiment}: {len(folds)}-fold cross-validation (mean over folds), over seeds {seeds}: {shown} "
          f"({path})", file=stream, flush=True)
    return summary


def _span(runs: list[dict], key: str) -> str:
    """The value of ``key`` over the runs: one number, ``lo–hi``, or — when none records it."""
    values = sorted({r[key] for r in runs if r.get(key) is not None})
    return "—" if not values else str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def write_report(summaries: list[dict], path: Path, command: str) -> Path:
    """A Markdown table of cross-validated figures (``path``; ``path`` with ``.json`` beside it
    holds the summaries): per experiment, every test metric's mean over folds, then mean ± std
    over seeds; the paper's figure beside it where the experiment names one; the command."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for s in summaries for k in s["mean_over_folds"] if k != "test/loss"})
    head = ["experiment", "folds x seeds", *keys, "train / test sentences per fold",
            "test tokens unseen in training (%)", "chance: majority class of test (%)", "train time per fold (s)",
            "reference (paper, setting)"]
    lines = [f"# Cross-validation\n", f"Command: `{command}`\n",
             "Every fold is in turn the test split; a figure is the mean over the folds (as Pang & Lee 2005 "
             "report theirs), then its mean ± standard deviation over the seeds (every seed sees the same "
             "folds, so the spread is that of training). Percentages.\n",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        cells = [f"{100 * s['mean_over_folds'][k]['mean']:.1f} ± {100 * s['mean_over_folds'][k]['std']:.1f}"
                 if k in s["mean_over_folds"] else "—" for k in keys]
        runs = list(s["runs"].values())
        times = [r["train_time_s"] for r in runs if r.get("train_time_s") is not None]
        unseen = [r["test_unk_rate"] for r in runs if r.get("test_unk_rate") is not None]
        ref = s.get("reference") or {}
        shown_ref = (f"{ref['metric']} {100 * ref['value']:.1f}: {ref.get('source', '')}; {ref.get('setting', '')}"
                     if ref.get("value") is not None else "—")
        size = f"{_span(runs, 'train_size')} / {_span(runs, 'test_size')}"
        unseen_cell = f"{100 * statistics.fmean(unseen):.1f}" if unseen else "—"
        majority = [max(r["test_positive"], r["test_size"] - r["test_positive"]) / r["test_size"] for r in runs
                    if r.get("test_positive") is not None and r.get("test_size")]
        chance_cell = f"{100 * statistics.fmean(majority):.1f}" if majority else "—"
        time_cell = f"{statistics.fmean(times):.1f}" if times else "—"
        lines.append(" | ".join([f"| {s['experiment']}", f"{len(s['folds'])} x {len(s['seeds'])}", *cells,
                                 size, unseen_cell, chance_cell, time_cell, shown_ref]) + " |")
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"command": command, "summaries": summaries}, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zoo.bench.crossval", description=__doc__.splitlines()[0])
    p.add_argument("experiments", nargs="+", help="experiment names (conf/experiment/), then any zoo-train "
                                                  "overrides (key=value)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--folds", default=None, help="comma-separated folds (default: all of data.num_folds)")
    p.add_argument("--out", default="outputs/crossval", help="folder of the fold runs and summaries")
    p.add_argument("--force", action="store_true", help="re-run folds already run")
    p.add_argument("--report", default=None,
                   help="also write a Markdown table of the figures here (and its .json beside it), "
                        "e.g. reports/text/sentiment_crossval.md")
    args = p.parse_intermixed_args(argv)  # overrides may follow the options
    experiments = [e for e in args.experiments if "=" not in e]
    overrides = [e for e in args.experiments if "=" in e]
    known = {q.stem for q in (zoo_conf.CONF_DIR / "experiment").glob("*.yaml")}
    unknown = [e for e in experiments if e not in known]
    if unknown or not experiments:
        print(f"crossval: unknown experiment(s) {unknown or '(none given)'}; see conf/experiment/", file=sys.stderr)
        return 2
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        folds = [int(f) for f in args.folds.split(",")] if args.folds else None
        summaries = [crossvalidate(e, seeds, Path(args.out), overrides, args.force, folds) for e in experiments]
        if args.report:
            argv_shown = sys.argv[1:] if argv is None else list(argv)
            command = " ".join(["python -m zoo.bench.crossval", *argv_shown])
            print(f"wrote {write_report(summaries, Path(args.report), command)}")
    except ValueError as err:
        print(f"crossval: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
