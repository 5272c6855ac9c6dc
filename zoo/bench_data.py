"""``zoo-bench-data``: does the data pipeline keep up with the model?

    zoo-bench-data                                   # the default experiments, to reports/data/
    zoo-bench-data --experiments lenet5_mnist5k,resnet20_mnist5k --workers 0,2

For each experiment the benchmark builds the experiment's datamodule and model exactly as
``zoo-train`` does, then measures, in one process and alternating rounds:

* **loader**: examples per second the training pipeline delivers -- iterating the training
  ``DataLoader`` (indexing, collation, worker processes when ``num_workers`` > 0) and applying
  the experiment's on-device augmentation, with nothing else running;
* **model**: examples per second the model consumes -- a training step (forward, loss,
  backward, optimizer update) on batches already in memory, with nothing loading.

The headroom ``loader / model`` says how many times faster the pipeline produces batches than
the model eats them: above 1 the model never starves once loading overlaps with compute
(worker processes); with ``num_workers: 0`` loading and compute take turns, and the share of a
step spent loading is ``model / (loader + model)`` -- the stall column. Each figure is the median
over rounds of a full pass (loader) or of the same number of steps (model), after a warm-up
pass.

Writes ``<out>/README.md`` and ``<out>/data.csv``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.runinfo import machine_line, write_rows_csv

DEFAULT_EXPERIMENTS = ("mlp_mnist5k", "lenet5_mnist5k", "resnet20_mnist5k", "mobilenet_v2_mnist5k",
                       "mlp_digits8x8", "mnist5k_to_digits8x8_50shot_full")


def _compose(experiment: str, workers: int, out_dir: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from zoo.conf import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[f"experiment={experiment}", f"++data.num_workers={workers}",
                                           f"paths.output_dir={out_dir}", "command=zoo-bench-data"])


def _loader_pass(loader, augment) -> tuple[float, int]:
    """One full pass over the training loader (plus augmentation): seconds, examples."""
    n = 0
    t0 = time.perf_counter()
    for x, y in loader:
        if augment is not None:
            x = augment(x)
        n += int(y.shape[0])
    return time.perf_counter() - t0, n


def _model_steps(net, opt, batches, smoothing: float) -> float:
    """Training steps over batches already in memory: seconds."""
    t0 = time.perf_counter()
    for x, y in batches:
        logits = net(x)
        if isinstance(logits, (tuple, list)):  # auxiliary heads in training (GoogLeNet)
            logits = logits[0]
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def measure(experiment: str, workers: int, rounds: int) -> dict:
    import lightning as L
    from hydra.utils import instantiate

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _compose(experiment, workers, Path(tmp))
    L.seed_everything(cfg.seed, workers=True)
    dm = instantiate(cfg.data, _convert_="all")
    net = instantiate(cfg.model, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    augment = dm.augment
    opt = instantiate(cfg.optimizer, _convert_="all")(net.parameters())
    smoothing = float(cfg.task.get("label_smoothing", 0.0))
    net.train()
    # the model side trains on a pass's worth of batches held in memory, augmented beforehand
    batches = [((augment(x) if augment is not None else x), y) for x, y in loader]
    examples = sum(int(y.shape[0]) for _, y in batches)
    _loader_pass(loader, augment)  # warm-up (worker start-up, caches)
    _model_steps(net, opt, batches[:2], smoothing)
    loader_s, model_s = [], []
    for r in range(rounds):
        sides = ("loader", "model") if r % 2 == 0 else ("model", "loader")
        for side in sides:
            if side == "loader":
                seconds, n = _loader_pass(loader, augment)
                if n != examples:
                    raise RuntimeError(f"{experiment}: a pass gave {n} examples, expected {examples}")
                loader_s.append(seconds)
            else:
                model_s.append(_model_steps(net, opt, batches, smoothing))
    loader_rate = examples / statistics.median(loader_s)
    model_rate = examples / statistics.median(model_s)
    return {
        "experiment": experiment, "model": cfg.model.name, "dataset": dm.name,
        "batch_size": int(cfg.data.batch_size), "num_workers": workers,
        "augment": type(augment).__name__ if augment is not None else "none",
        "examples_per_pass": examples, "rounds": rounds,
        "loader_examples_per_s": round(loader_rate, 1), "model_examples_per_s": round(model_rate, 1),
        "headroom": round(loader_rate / model_rate, 2),
        "stall_share_serial": round(model_rate / (loader_rate + model_rate), 3),
    }


def render(rows: list[dict], command: str) -> str:
    doc = __doc__.split("For each experiment", 1)[1].split("Writes ``", 1)[0].strip()
    lines = [
        "# Data pipeline: loader throughput against what the model consumes",
        "",
        "Generated by `zoo-bench-data`; do not edit by hand. Reproduce with:",
        "",
        f"    {command}",
        "",
        "| experiment | model | batch | workers | augmentation | loader (examples/s) | model (examples/s) "
        "| headroom loader/model | loading share of a serial step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['experiment']} | {r['model']} | {r['batch_size']} | {r['num_workers']} | {r['augment']} "
                     f"| {r['loader_examples_per_s']:,.0f} | {r['model_examples_per_s']:,.0f} | {r['headroom']:.2f} "
                     f"| {100 * r['stall_share_serial']:.1f}% |")
    lines += ["", "## Method", "", "For each experiment " + doc, "", machine_line() + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-bench-data", description=__doc__.splitlines()[0])
    p.add_argument("--experiments", default=",".join(DEFAULT_EXPERIMENTS),
                   help="comma-separated experiment names")
    p.add_argument("--workers", default="0", help="comma-separated DataLoader worker counts, e.g. 0,2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default="reports/data")
    args = p.parse_args(argv)
    from zoo.conf import CONF_DIR

    experiments = [e.strip() for e in args.experiments.split(",") if e.strip()]
    known = {f.stem for f in (CONF_DIR / "experiment").glob("*.yaml")}
    unknown = [e for e in experiments if e not in known]
    if unknown:
        p.error(f"unknown experiment(s) {', '.join(unknown)}; see conf/experiment/")
    try:
        workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        p.error(f"--workers must be comma-separated integers, got {args.workers!r}")
    if any(w < 0 for w in workers) or args.rounds < 1:
        p.error("--workers must be >= 0 and --rounds >= 1")
    command = "zoo-bench-data " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = []
    for i, e in enumerate(experiments, 1):
        for w in workers:
            print(f"[{i}/{len(experiments)}] {e} workers={w} ... ", end="", flush=True)
            row = measure(e, w, args.rounds)
            print(f"loader {row['loader_examples_per_s']:,.0f}/s, model {row['model_examples_per_s']:,.0f}/s, "
                  f"headroom {row['headroom']:.2f}", flush=True)
            rows.append(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows_csv(out / "data.csv", rows)
    (out / "README.md").write_text(render(rows, command.strip()))
    print(f"wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
