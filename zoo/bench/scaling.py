"""``zoo-bench-scaling``: training throughput with 1 and 2 DDP processes on the CPU, and on the
GPUs when the machine has them.

    zoo-bench-scaling                                  # LeNet-5 on embedded MNIST, to reports/scaling/
    zoo-bench-scaling experiment=resnet20_mnist5k --epochs 3 --repeats 2

Each configuration is a real ``zoo-train`` run in its own process (Lightning launches the DDP
workers itself: strategy ``ddp``, gloo on the CPU, NCCL on GPUs), with the experiment's own
per-process batch size -- so N processes take N times the examples per optimizer step, the
usual data-parallel setting:

* ``cpu x1``: ``trainer=cpu``, one process using every core;
* ``cpu ddp x2``: ``trainer=ddp_cpu``, two processes (Lightning gives each an equal share of the
  cores);
* with CUDA: ``gpu x1`` (``trainer=gpu``) and, with two or more GPUs, ``gpu ddp xN``
  (``trainer=ddp``, every GPU).

Throughput = training examples per second over all processes, from the run's own epoch timer
(start of an epoch to its last training batch, validation excluded), the median over epochs
2.. (the first is warm-up), the median over repeats; runs of the configurations alternate so
that a drift of the machine hits all. Speed-up = throughput / the single-process throughput of
the same device kind; efficiency = speed-up / processes. The validation accuracy of each run's
last epoch is shown so that a fast but broken configuration cannot pass unnoticed.

Writes ``<out>/README.md`` and ``<out>/scaling.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def configurations(cuda_devices: int | None = None) -> list[dict]:
    """The configurations this machine can run: CPU 1 and 2 processes; GPUs when present."""
    n_gpu = torch.cuda.device_count() if cuda_devices is None else cuda_devices
    out = [{"name": "cpu x1", "kind": "cpu", "processes": 1, "overrides": ["trainer=cpu"]},
           {"name": "cpu ddp x2", "kind": "cpu", "processes": 2, "overrides": ["trainer=ddp_cpu"]}]
    if n_gpu >= 1:
        out.append({"name": "gpu x1", "kind": "gpu", "processes": 1, "overrides": ["trainer=gpu"]})
    if n_gpu >= 2:
        out.append({"name": f"gpu ddp x{n_gpu}", "kind": "gpu", "processes": n_gpu,
                    "overrides": ["trainer=ddp", f"trainer.devices={n_gpu}"]})
    return out


def run_one(overrides: list[str], config: dict, epochs: int, run_dir: Path) -> dict:
    """One ``zoo-train`` run; its steady epoch throughput and last validation accuracy."""
    cmd = [sys.executable, "-m", "zoo.cli.train", *overrides, *config["overrides"], f"trainer.max_epochs={epochs}",
           "test=false", "logger=csv", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
           f"hydra.run.dir={run_dir}", "command=zoo-bench-scaling"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HYDRA_FULL_ERROR="1"))
    if r.returncode != 0:
        raise RuntimeError(f"{config['name']}: zoo-train failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    record = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "history.csv") as fh:
        history = list(csv.DictReader(fh))
    times = [float(h["epoch_train_s"]) for h in history if h.get("epoch_train_s")]
    if len(times) < 2:
        raise RuntimeError(f"{config['name']}: expected at least 2 timed epochs in {run_dir}, got {len(times)}")
    per_epoch = record.get("train_samples", 0) / len(times)  # examples of all processes together
    if not per_epoch:
        raise RuntimeError(f"{config['name']}: the run recorded no training examples")
    steady = statistics.median(times[1:])
    last = history[-1]
    return {"examples_per_s": per_epoch / steady, "epoch_s": steady, "examples_per_epoch": per_epoch,
            "val_acc": float(last["val/acc"]) if last.get("val/acc") else None,
            "devices": record.get("devices"), "strategy": record.get("strategy"),
            "gpu": (record.get("hardware") or {}).get("gpu")}


def run(overrides: list[str], epochs: int, repeats: int, configs: list[dict]) -> dict:
    results: dict[str, list[dict]] = {c["name"]: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            order = configs if r % 2 == 0 else configs[::-1]
            for c in order:
                print(f"  repeat {r + 1}/{repeats}: {c['name']} ... ", end="", flush=True)
                res = run_one(overrides, c, epochs, Path(tmp) / f"{c['name'].replace(' ', '_')}_{r}")
                print(f"{res['examples_per_s']:,.0f} examples/s, val acc {res['val_acc']}", flush=True)
                results[c["name"]].append(res)
    rows = []
    for c in configs:
        runs = results[c["name"]]
        rows.append({"name": c["name"], "kind": c["kind"], "processes": c["processes"],
                     "overrides": c["overrides"],
                     "examples_per_s": statistics.median(x["examples_per_s"] for x in runs),
                     "epoch_s": statistics.median(x["epoch_s"] for x in runs),
                     "examples_per_epoch": runs[0]["examples_per_epoch"],
                     "val_acc": [x["val_acc"] for x in runs], "runs": runs,
                     "device_name": runs[0]["gpu"] if c["kind"] == "gpu" else None})
    for row in rows:
        base = next(x for x in rows if x["kind"] == row["kind"] and x["processes"] == 1)
        row["speedup"] = row["examples_per_s"] / base["examples_per_s"]
        row["efficiency"] = row["speedup"] / row["processes"]
    return {"overrides": overrides, "epochs": epochs, "repeats": repeats, "rows": rows}


def render(res: dict, command: str) -> str:
    from zoo.runinfo import machine_line

    doc = __doc__.split("Each configuration", 1)[1].split("Writes ``", 1)[0].strip()
    lines = [
        "# Scaling: data-parallel training with 1 and 2 processes",
        "",
        "Generated by `zoo-bench-scaling`; do not edit by hand. Reproduce with:",
        "",
        f"    {command}",
        "",
        f"Runs: `zoo-train {' '.join(res['overrides']) or '(default experiment)'}`, {res['epochs']} epochs, "
        f"{res['repeats']} repeats per configuration.",
        "",
        "| configuration | processes | examples/s | epoch (s) | speed-up | efficiency | val acc, last epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        accs = ", ".join(f"{100 * a:.2f}%" for a in r["val_acc"] if a is not None)
        device = f", {r['device_name']}" if r.get("device_name") else ""
        lines.append(f"| {r['name']} (`{' '.join(r['overrides'])}`{device}) | {r['processes']} | {r['examples_per_s']:,.0f} "
                     f"| {r['epoch_s']:.3f} | {r['speedup']:.2f}x | {100 * r['efficiency']:.0f}% | {accs} |")
    if not any(r["kind"] == "gpu" for r in res["rows"]):
        lines += ["", "No GPU on this machine: run the same command on one to add the GPU rows."]
    gpus = sorted({r["device_name"] for r in res["rows"] if r.get("device_name")})
    if gpus:
        lines += ["", "GPU: " + ", ".join(gpus) + "."]
    lines += ["", "## Method", "", "Each configuration " + doc, "", machine_line() + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-bench-scaling", description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="zoo-train overrides, e.g. experiment=resnet20_mnist5k")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="reports/scaling")
    p.add_argument("--kinds", default="cpu,gpu",
                   help="device kinds to run, comma-separated (default: cpu,gpu; gpu rows only where CUDA is)")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or set(kinds) - {"cpu", "gpu"}:
        p.error(f"--kinds takes cpu, gpu or both, comma-separated; got {args.kinds!r}")
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch of each run is warm-up)")
    if any(o.startswith("trainer=") for o in args.overrides):
        p.error("the benchmark chooses the trainer itself (trainer=cpu, ddp_cpu, gpu, ddp); leave it out")
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        p.error("torch.distributed with the gloo backend is needed for the DDP runs")
    command = "zoo-bench-scaling " + " ".join(argv if argv is not None else sys.argv[1:])
    configs = [c for c in configurations() if c["kind"] in kinds]
    if not configs:
        p.error("no configuration to run: --kinds gpu needs a machine with CUDA (torch.cuda.device_count() is 0)")
    res = run(args.overrides, args.epochs, args.repeats, configs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "README.md").write_text(render(res, command.strip()))
    for r in res["rows"]:
        print(f"{r['name']}: {r['examples_per_s']:,.0f} examples/s, speed-up {r['speedup']:.2f}x")
    print(f"wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
