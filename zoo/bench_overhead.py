"""``zoo-bench-overhead``: the cost of the zoo's training path against a plain PyTorch loop.

    zoo-bench-overhead                                   # LeNet-5 on embedded MNIST (the default experiment)
    zoo-bench-overhead experiment=mlp_mnist5k --epochs 6 --repeats 4

Both sides train the same model (same registry name, arguments and seeded initialisation) on the
same data (the experiment's datamodule: same split, batch size, shuffling and on-device
augmentation) with the same optimizer, learning-rate schedule and loss, for the same number of
epochs, in one process:

* **zoo**: ``zoo.train.train(cfg)`` -- Hydra-composed config, Lightning ``Trainer`` with the
  experiment's callbacks (checkpointing, learning-rate monitor, run statistics) and CSV logger,
  torchmetrics accuracy, F1 and mean loss over every batch, validation every epoch -- the path
  ``zoo-train`` takes, less the progress bar (a display);
* **plain**: a hand-written loop over the same ``DataLoader`` -- augment, forward, loss,
  backward, optimizer step, scheduler step, running loss and accuracy.

The figure is the training-epoch time, measured alike on both sides: from the start of an
epoch to the end of its last training batch (validation and checkpointing excluded; they are
work the plain loop does not do). The first epoch of every run is dropped (warm-up). Runs
alternate plain, zoo, zoo, plain ... so that drifts of the machine hit both sides; each repeat
(one plain and one zoo run, back to back) gives a ratio of the two runs' median epoch times, and
the figure is the median of those ratios -- a shared machine's speed drifts by more than the
overhead being measured, so only runs close in time are compared. Ratio = zoo / plain
(1.00 = no overhead).

Writes ``<out>/README.md`` and ``<out>/overhead.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def _compose(overrides: list[str], out_dir: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from zoo.conf import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={out_dir}",
                                           "trainer.enable_progress_bar=false",
                                           "trainer.enable_model_summary=false",
                                           "command=zoo-bench-overhead"])


def plain_loop(cfg, epochs: int) -> list[float]:
    """Train with a hand-written loop; return the training time of every epoch."""
    import lightning as L
    from hydra.utils import instantiate

    from zoo.train import _drop_foreign_keys

    L.seed_everything(cfg.seed, workers=True)
    dm = instantiate(cfg.data, _convert_="all")
    net = instantiate(cfg.model, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    opt = instantiate(cfg.optimizer, _convert_="all")(net.parameters())
    sched = None
    if cfg.get("scheduler") and "_target_" in cfg.scheduler:
        kwargs = {}
        steps = epochs * len(loader) if cfg.scheduler_interval == "step" else epochs
        partial = instantiate(_drop_foreign_keys(cfg.scheduler), _convert_="all")
        import inspect

        params = inspect.signature(partial.func).parameters
        if "T_max" in params and cfg.scheduler.get("T_max") is None:
            kwargs["T_max"] = steps
        if "total_steps" in params and cfg.scheduler.get("total_steps") is None:
            kwargs["total_steps"] = steps
        sched = partial(opt, **kwargs)
    smoothing = float(cfg.task.get("label_smoothing", 0.0))
    augment = dm.augment
    times = []
    net.train()
    for _ in range(epochs):
        t0 = last = time.perf_counter()
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.long)
        for x, y in loader:
            if augment is not None:
                x = augment(x)
            logits = net(x)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None and cfg.scheduler_interval == "step":
                sched.step()
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            last = time.perf_counter()
        if sched is not None and cfg.scheduler_interval == "epoch":
            sched.step()
        times.append(last - t0)
    return times


def zoo_path(cfg) -> list[float]:
    """Train through ``zoo.train.train``; return the training time of every epoch."""
    from zoo.train import train

    record = train(cfg)
    history_path = Path(cfg.paths.output_dir) / "history.csv"
    import csv

    with open(history_path) as fh:
        rows = list(csv.DictReader(fh))
    times = [float(r["epoch_train_s"]) for r in rows if r.get("epoch_train_s")]
    if len(times) != record["epochs"]:
        raise RuntimeError(f"expected {record['epochs']} epoch times in {history_path}, got {len(times)}")
    return times


def run(overrides: list[str], epochs: int, repeats: int) -> dict:
    plain, zoo_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            order = ("plain", "zoo") if r % 2 == 0 else ("zoo", "plain")
            for side in order:
                cfg = _compose([*overrides, f"trainer.max_epochs={epochs}", "test=false"],
                               Path(tmp) / f"{side}{r}")
                print(f"  repeat {r + 1}/{repeats}: {side} ... ", end="", flush=True)
                times = plain_loop(cfg, epochs) if side == "plain" else zoo_path(cfg)
                print(" ".join(f"{t:.3f}" for t in times) + " s/epoch", flush=True)
                (plain if side == "plain" else zoo_t).append(times)
        cfg = _compose(overrides, Path(tmp) / "cfg")
    steady_plain = [t for run_ in plain for t in run_[1:]]
    steady_zoo = [t for run_ in zoo_t for t in run_[1:]]
    mp, mz = statistics.median(steady_plain), statistics.median(steady_zoo)
    pair_ratios = [statistics.median(z[1:]) / statistics.median(p[1:]) for p, z in zip(plain, zoo_t)]
    return {
        "experiment": cfg.experiment_name, "model": cfg.model.name, "batch_size": cfg.data.batch_size,
        "epochs": epochs, "repeats": repeats,
        "plain_epoch_s": plain, "zoo_epoch_s": zoo_t,
        "plain_median_s": mp, "zoo_median_s": mz, "pair_ratios": pair_ratios,
        "ratio": statistics.median(pair_ratios), "overhead_s_per_epoch": mz - mp,
    }


def render(res: dict, command: str) -> str:
    from zoo.runinfo import machine_line

    doc = __doc__.split("Both sides", 1)[1].split("Writes ``", 1)[0].strip()
    return "\n".join([
        "# Harness overhead: the zoo's training path against a plain PyTorch loop",
        "",
        "Generated by `zoo-bench-overhead`; do not edit by hand. Reproduce with:",
        "",
        f"    {command}",
        "",
        f"| experiment | model | batch | plain loop (s/epoch) | zoo (s/epoch) | ratio zoo/plain | overhead (s/epoch) |",
        "|---|---|---|---|---|---|---|",
        f"| {res['experiment']} | {res['model']} | {res['batch_size']} | {res['plain_median_s']:.4f} "
        f"| {res['zoo_median_s']:.4f} | {res['ratio']:.3f} | {res['overhead_s_per_epoch']:+.4f} |",
        "",
        f"{res['repeats']} repeats of {res['epochs']} epochs per side. Epoch times: medians over epochs "
        f"2..{res['epochs']} of all repeats. Ratio: median of the per-repeat ratios "
        f"({', '.join(f'{r:.3f}' for r in res['pair_ratios'])}).",
        f"Lightning's own parity benchmark allows about 0.3 s per epoch on MNIST.",
        "",
        "## Method",
        "",
        "Both sides " + doc,
        "",
        machine_line() + ".",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-bench-overhead", description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="zoo-train overrides, e.g. experiment=mlp_mnist5k")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--out", default="reports/overhead")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch of each run is warm-up)")
    command = "zoo-bench-overhead " + " ".join(argv if argv is not None else sys.argv[1:])
    res = run(args.overrides, args.epochs, args.repeats)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "README.md").write_text(render(res, command.strip()))
    print(f"zoo {res['zoo_median_s']:.4f} s/epoch, plain {res['plain_median_s']:.4f} s/epoch: "
          f"ratio {res['ratio']:.3f}; wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
