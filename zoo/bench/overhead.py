"""``zoo-bench-overhead``: the cost of the zoo's training path against a plain PyTorch loop.

    zoo-bench-overhead                                   # LeNet-5 on embedded MNIST (the default experiment)
    zoo-bench-overhead experiment=mlp_mnist5k --epochs 6 --repeats 8

All three sides train the same model (same registry name, arguments and seeded initialisation)
on the same data (the experiment's datamodule: same split, batch size, shuffling and on-device
augmentation) with the same optimizer, learning-rate schedule and loss, for the same number of
epochs, in one process:

* **zoo**: ``zoo.cli.train.train(cfg)`` -- Hydra-composed config, Lightning ``Trainer`` with the
  experiment's callbacks (checkpointing, run statistics with the learning-rate log) and CSV
  logger, torchmetrics accuracy, F1 and mean loss over every batch, validation every epoch --
  the path ``zoo-train`` takes, less the progress bar (a display);
* **plain**: a hand-written loop over the same ``DataLoader`` -- augment, forward, loss,
  backward, optimizer step, scheduler step, running loss and accuracy -- and after every
  epoch a validation pass over the same validation loader (loss and accuracy, no gradients),
  as the classic PyTorch training loop does;
* **bare Lightning**: a ``LightningModule`` whose training step computes the loss and steps
  the optimizer by hand (manual optimization, as the zoo's tasks do) and whose validation
  step computes the loss, under a ``Trainer`` with no logger, metrics or checkpointing --
  what Lightning's own loop costs, for reference.

Every side validates after every epoch, so that the three train the same trajectory bit for
bit: creating a ``DataLoader`` iterator draws from torch's global generator (a validation
loader's too), and the next epoch's shuffle and augmentation depend on that draw. The
benchmark checks it: each epoch's mean training loss must be the same on the three sides of a
repeat, or it stops with an error. (A side that skipped validation would also start its
epochs with warmer caches than a side that validated.)

The figure is the training-epoch time, measured alike on every side: from the start of an
epoch to the end of its last training batch. Validation, and the zoo's checkpointing and
logging after it, are outside that window; the whole epoch's time (from its start to the next
one's) is reported beside it. The first epoch of every run is dropped (warm-up). Runs
alternate plain, Lightning, zoo, zoo, Lightning, plain ... so that drifts of the machine hit
every side; each repeat (one run per side, back to back) gives a ratio of each run's median
epoch time to the plain run's, and the figure is the median of those ratios -- a shared
machine's speed drifts by more than the overhead being measured, so only runs close in time
are compared. Ratio = zoo / plain
(1.00 = no overhead).

The three runs of a repeat share a seed; each repeat has its own (the experiment's seed plus
the repeat's index): a net's step time depends a little on the values it computes (denormal
floats, in a tanh net such as LeNet-5), so the repeats sample several trajectories.

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


def _setup(cfg, epochs: int):
    """The seeded datamodule, net, optimizer and scheduler that the plain and bare-Lightning
    sides share (the zoo side builds its own through ``zoo.cli.train``)."""
    import inspect

    import lightning as L
    from hydra.utils import instantiate

    from zoo.cli.train import _drop_foreign_keys

    L.seed_everything(cfg.seed, workers=True)
    dm = instantiate(cfg.data, _convert_="all")
    net = instantiate(cfg.model, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    val_loader = dm.val_dataloader()
    opt = instantiate(cfg.optimizer, _convert_="all")(net.parameters())
    sched = None
    if cfg.get("scheduler") and "_target_" in cfg.scheduler:
        kwargs = {}
        steps = epochs * len(loader) if cfg.scheduler_interval == "step" else epochs
        partial = instantiate(_drop_foreign_keys(cfg.scheduler), _convert_="all")
        params = inspect.signature(partial.func).parameters
        if "T_max" in params and cfg.scheduler.get("T_max") is None:
            kwargs["T_max"] = steps
        if "total_steps" in params and cfg.scheduler.get("total_steps") is None:
            kwargs["total_steps"] = steps
        sched = partial(opt, **kwargs)
    return dm, net, loader, val_loader, opt, sched


def plain_loop(cfg, epochs: int) -> dict:
    """Train with a hand-written loop, validating after every epoch; return the training time,
    the whole time and the mean training loss of every epoch."""
    dm, net, loader, val_loader, opt, sched = _setup(cfg, epochs)
    smoothing = float(cfg.task.get("label_smoothing", 0.0))
    augment = dm.augment
    times, whole, losses = [], [], []
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
            if cfg.trainer.gradient_clip_val:
                clip_fn = (torch.nn.utils.clip_grad_norm_ if cfg.trainer.gradient_clip_algorithm == "norm"
                           else torch.nn.utils.clip_grad_value_)
                clip_fn(net.parameters(), cfg.trainer.gradient_clip_val)
            opt.step()
            if sched is not None and cfg.scheduler_interval == "step":
                sched.step()
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            last = time.perf_counter()
        if sched is not None and cfg.scheduler_interval == "epoch":
            sched.step()
        times.append(last - t0)
        losses.append(float(loss_sum) / len(loader.dataset))
        net.eval()
        with torch.no_grad():
            val_loss, val_correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
            for x, y in val_loader:
                logits = net(x)
                val_loss += F.cross_entropy(logits, y, label_smoothing=smoothing) * y.shape[0]
                val_correct += (logits.argmax(1) == y).sum()
        net.train()
        whole.append(time.perf_counter() - t0)
    return {"train": times, "whole": whole, "loss": losses}


def bare_lightning(cfg, epochs: int) -> list[float]:
    """Train through a minimal ``LightningModule`` (loss and a hand-made optimizer step, as the
    zoo's tasks do: no metrics, logging, validation, checkpointing or callbacks beyond the
    epoch timer) under a Lightning ``Trainer``; return the training time of every epoch. The
    gap between this side and the plain loop is Lightning's own loop; the gap between it and
    the zoo is the zoo's additions."""
    import lightning as L

    from zoo.callbacks import RunStats

    dm, net, loader, val_loader, opt, sched = _setup(cfg, epochs)
    smoothing = float(cfg.task.get("label_smoothing", 0.0))
    augment = dm.augment

    clip = cfg.trainer.gradient_clip_val
    step_interval = sched is not None and cfg.scheduler_interval == "step"

    class BareModule(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = net
            self.automatic_optimization = False
            self.loss_sum = torch.zeros(())
            self.correct = torch.zeros((), dtype=torch.long)
            self.epoch_losses: list[float] = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            if augment is not None:
                x = augment(x)
            logits = self.net(x)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
            o = self.optimizers()
            o.zero_grad()
            self.manual_backward(loss)
            if clip:
                self.clip_gradients(o, gradient_clip_val=clip, gradient_clip_algorithm=cfg.trainer.gradient_clip_algorithm)
            o.step()
            if step_interval:
                self.lr_schedulers().step()
            self.loss_sum += loss.detach() * y.shape[0]  # the plain loop's running figures
            self.correct += (logits.detach().argmax(1) == y).sum()
            return loss.detach()

        def validation_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y, label_smoothing=smoothing)

        def on_train_epoch_end(self):
            if sched is not None and not step_interval:
                self.lr_schedulers().step()
            self.epoch_losses.append(float(self.loss_sum) / len(loader.dataset))
            self.loss_sum.zero_()
            self.correct.zero_()

        def configure_optimizers(self):
            if sched is None:
                return opt
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": cfg.scheduler_interval}}

    stats = RunStats()
    trainer = L.Trainer(max_epochs=epochs, accelerator=cfg.trainer.accelerator, devices=1,
                        precision=cfg.trainer.precision, deterministic=cfg.trainer.deterministic, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=cfg.trainer.num_sanity_val_steps, callbacks=[stats])
    module = BareModule()
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=val_loader)
    return {"train": [row["epoch_train_s"] for row in stats.history],
            "whole": [row["epoch_s"] for row in stats.history], "loss": module.epoch_losses}


def zoo_path(cfg) -> dict:
    """Train through ``zoo.cli.train.train``; return the training time, the whole time and the mean
    training loss of every epoch."""
    from zoo.cli.train import train

    record = train(cfg)
    history_path = Path(cfg.paths.output_dir) / "history.csv"
    import csv

    with open(history_path) as fh:
        rows = list(csv.DictReader(fh))
    rows = [r for r in rows if r.get("epoch_train_s")]
    if len(rows) != record["epochs"]:
        raise RuntimeError(f"expected {record['epochs']} epoch times in {history_path}, got {len(rows)}")
    return {"train": [float(r["epoch_train_s"]) for r in rows], "whole": [float(r["epoch_s"]) for r in rows],
            "loss": [float(r["train/loss"]) for r in rows]}


def check_same_training(runs: dict[str, dict], repeat: int, rel_tol: float = 1e-5) -> None:
    """Stop unless the sides of a repeat had the same mean training loss in every epoch: the
    sign that they trained the same trajectory (sums rounded in another order differ by about
    1e-7; another shuffle or augmentation changes the loss in the third digit)."""
    ref = runs["plain"]["loss"]
    for side, res in runs.items():
        bad = [(e, a, b) for e, (a, b) in enumerate(zip(ref, res["loss"]))
               if abs(a - b) > rel_tol * max(abs(a), 1e-12)]
        if bad or len(res["loss"]) != len(ref):
            e, a, b = bad[0] if bad else (len(ref), None, None)
            raise RuntimeError(f"repeat {repeat + 1}: the {side} side trained another trajectory than the "
                               f"plain loop (epoch {e + 1}: mean training loss {b} vs {a}); the timing "
                               "would compare different work")


SIDES = ("plain", "lightning", "zoo")


def run(overrides: list[str], epochs: int, repeats: int) -> dict:
    times: dict[str, list[list[float]]] = {side: [] for side in SIDES}
    whole: dict[str, list[list[float]]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            order = SIDES if r % 2 == 0 else SIDES[::-1]
            runs = {}
            for side in order:
                cfg = _compose([*overrides, f"trainer.max_epochs={epochs}", "test=false"],
                               Path(tmp) / f"{side}{r}")
                cfg.seed = int(cfg.seed) + r  # one seed per repeat, shared by its three sides
                print(f"  repeat {r + 1}/{repeats}: {side} ... ", end="", flush=True)
                if side == "plain":
                    t = plain_loop(cfg, epochs)
                elif side == "lightning":
                    t = bare_lightning(cfg, epochs)
                else:
                    t = zoo_path(cfg)
                print(" ".join(f"{x:.3f}" for x in t["train"]) + " s/epoch", flush=True)
                runs[side] = t
                times[side].append(t["train"])
                whole[side].append(t["whole"])
            check_same_training(runs, r)
        cfg = _compose(overrides, Path(tmp) / "cfg")
    def medians(table: dict) -> dict[str, float]:  # per side, over every run's epochs 2..
        return {side: statistics.median([x for run_ in runs for x in run_[1:]]) for side, runs in table.items()}

    def pair_ratios(side: str, table=times, base: str = "plain") -> list[float]:
        return [statistics.median(a[1:]) / statistics.median(p[1:]) for p, a in zip(table[base], table[side])]

    med, whole_med = medians(times), medians(whole)

    zoo_ratios, lightning_ratios = pair_ratios("zoo"), pair_ratios("lightning")
    with tempfile.TemporaryDirectory() as tmp:
        dm, _, loader, val_loader = _setup(_compose(overrides, Path(tmp) / "n"), 1)[:4]
        steps, val_steps = len(loader), len(val_loader)
    return {
        "experiment": cfg.experiment_name, "model": cfg.model.name, "batch_size": cfg.data.batch_size,
        "steps_per_epoch": steps, "val_steps_per_epoch": val_steps, "epochs": epochs, "repeats": repeats,
        "plain_epoch_s": times["plain"], "lightning_epoch_s": times["lightning"], "zoo_epoch_s": times["zoo"],
        "plain_median_s": med["plain"], "lightning_median_s": med["lightning"], "zoo_median_s": med["zoo"],
        "pair_ratios": zoo_ratios, "lightning_pair_ratios": lightning_ratios,
        "ratio": statistics.median(zoo_ratios), "lightning_ratio": statistics.median(lightning_ratios),
        # what the zoo adds to Lightning's own loop: zoo over bare Lightning, repeat by repeat
        "zoo_over_lightning_ratio": statistics.median(pair_ratios("zoo", base="lightning")),
        "plain_whole_epoch_s": whole["plain"], "lightning_whole_epoch_s": whole["lightning"],
        "zoo_whole_epoch_s": whole["zoo"], "whole_median_s": whole_med,
        "whole_ratio": statistics.median(pair_ratios("zoo", whole)),
        "lightning_whole_ratio": statistics.median(pair_ratios("lightning", whole)),
        "overhead_s_per_epoch": med["zoo"] - med["plain"],
        "overhead_ms_per_step": 1000 * (med["zoo"] - med["plain"]) / steps,
    }


def render(res: dict, command: str) -> str:
    from zoo.runinfo import machine_line

    doc = __doc__.split("All three sides", 1)[1].split("Writes ``", 1)[0].strip()
    steps = res["steps_per_epoch"]

    def row(name: str, side: str, ratio: str, whole_ratio: str) -> str:
        median = res[f"{side}_median_s"]
        extra = median - res["plain_median_s"]
        return (f"| {name} | {median:.4f} | {ratio} | {extra:+.4f} | {1000 * extra / steps:+.3f} "
                f"| {res['whole_median_s'][side]:.4f} | {whole_ratio} |")

    return "\n".join([
        "# Harness overhead: the zoo's training path against a plain PyTorch loop",
        "",
        "Generated by `zoo-bench-overhead`; do not edit by hand. Reproduce with:",
        "",
        f"    {command}",
        "",
        f"Experiment `{res['experiment']}`: model `{res['model']}`, batch {res['batch_size']}, "
        f"{steps} training steps and {res['val_steps_per_epoch']} validation steps per epoch. The "
        "training figure is the one the overhead goal is about; the whole epoch adds validation "
        "and, for the zoo, its metrics, checkpoint and logs.",
        "",
        "| side | training s/epoch | ratio to plain | overhead (s/epoch) | overhead (ms/step) "
        "| whole epoch s | ratio to plain |",
        "|---|---|---|---|---|---|---|",
        row("plain PyTorch loop", "plain", "1.000", "1.000"),
        row("bare Lightning (loss and optimizer step only)", "lightning", f"{res['lightning_ratio']:.3f}",
            f"{res['lightning_whole_ratio']:.3f}"),
        row("**zoo** (`zoo-train`'s path)", "zoo", f"**{res['ratio']:.3f}**", f"{res['whole_ratio']:.3f}"),
        "",
        f"{res['repeats']} repeats of {res['epochs']} epochs per side. Epoch times: medians over epochs "
        f"2..{res['epochs']} of all repeats. Ratios: medians of the per-repeat ratios "
        f"(zoo: {', '.join(f'{r:.3f}' for r in res['pair_ratios'])}; "
        f"bare Lightning: {', '.join(f'{r:.3f}' for r in res['lightning_pair_ratios'])}).",
        f"What the zoo adds to Lightning's own loop: zoo / bare Lightning = "
        f"{res['zoo_over_lightning_ratio']:.3f} (median of the per-repeat ratios).",
        "Lightning's own parity benchmark allows about 0.3 s per epoch on MNIST. The overhead is a",
        "fixed cost per step, so its ratio falls as the step's own work grows (a larger batch or",
        "model, a GPU's asynchronous kernels).",
        "",
        "## Method",
        "",
        "All three sides " + doc,
        "",
        machine_line() + ".",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-bench-overhead", description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="zoo-train overrides, e.g. experiment=mlp_mnist5k")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=20)
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
    print(f"zoo {res['zoo_median_s']:.4f} s/epoch, bare Lightning {res['lightning_median_s']:.4f}, "
          f"plain {res['plain_median_s']:.4f}: ratio {res['ratio']:.3f} (Lightning alone "
          f"{res['lightning_ratio']:.3f}); wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
