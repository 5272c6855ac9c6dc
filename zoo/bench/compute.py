"""``zoo-bench-compute``: training and inference throughput of every registered image model,
and the FLOP rate it achieves as a fraction of the machine's measured matrix-multiply peak.

    zoo-bench-compute                         # every model, to reports/compute/
    zoo-bench-compute --models 'resnet*' --batch-size 16

Peak. The benchmark measures it itself: square float32 matrix multiplies (``torch.mm``) of sizes
512 to 4096 with torch's default threads, each timed over repeated calls; the peak is the best
rate of any size (2·n³ FLOPs per multiply). It is the rate the machine reaches on the work it
does best, so model efficiencies are fractions of something actually achievable here, not of a
datasheet figure.

Models. Each model runs at a CPU-sized input: 3x64x64 for ImageNet-style nets (their
large-input stem: the layout whose FLOPs papers quote), the model's own example input otherwise
(32x32 CIFAR nets and LeNet-5, 28x28 MNIST MLPs). Training step = forward, cross-entropy,
backward, SGD update on a fixed batch; inference = eval-mode forward without gradients. Times
are medians over rounds after warm-up. FLOPs per step are counted with
``torch.utils.flop_counter`` on the step itself (forward and backward, 2 per multiply-add), so
achieved FLOP/s = counted FLOPs / measured time.

Writes ``<out>/README.md``, ``<out>/compute.csv`` and ``<out>/efficiency.png``.
"""
from __future__ import annotations

import argparse
import fnmatch
import inspect
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from zoo.runinfo import write_rows_csv
from zoo.registry import count_parameters, create_model, list_models, model_card


def measure_peak(sizes=(512, 1024, 2048, 4096), min_time: float = 0.5) -> dict:
    """Best float32 matmul rate (FLOP/s) over ``sizes``; each size repeated for ``min_time`` s."""
    best = {"flops_per_s": 0.0, "size": None}
    per_size = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)  # warm-up
        reps, t0 = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            reps += 1
            dt = time.perf_counter() - t0
            if dt >= min_time and reps >= 2:
                break
        rate = 2 * n ** 3 * reps / dt
        per_size[n] = rate
        if rate > best["flops_per_s"]:
            best = {"flops_per_s": rate, "size": n}
    best["per_size"] = per_size
    return best


def bench_input_shape(name: str) -> tuple[int, ...]:
    params = inspect.signature(model_card(name).builder).parameters
    if "small_input" in params:
        return (3, 64, 64)
    net = create_model(name)
    if hasattr(net, "example_inputs"):
        return tuple(net.example_inputs(batch_size=1)[0].shape[1:])
    return (1, 28, 28)


def _loss(out, y):
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.dim() == 1 or out.shape[-1] == 1:  # binary heads
        return F.binary_cross_entropy_with_logits(out.reshape(-1), y.float().clamp(max=1))
    return F.cross_entropy(out, y)


def measure_model(name: str, batch_size: int, rounds: int, warmup: int) -> dict:
    torch.manual_seed(0)
    net = create_model(name)
    shape = bench_input_shape(name)
    x = torch.randn(batch_size, *shape)
    with torch.no_grad():
        n_out = net.eval()(x[:1])
    n_out = (n_out[0] if isinstance(n_out, (tuple, list)) else n_out).shape[-1]
    y = torch.randint(0, max(n_out, 2), (batch_size,))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def train_step():
        opt.zero_grad(set_to_none=True)
        _loss(net(x), y).backward()
        opt.step()

    def infer_step():
        with torch.no_grad():
            net(x)

    row = {"model": name, "family": model_card(name).family, "params": count_parameters(net),
           "input": "x".join(map(str, shape)), "batch_size": batch_size}
    for mode, step, training in (("train", train_step, True), ("infer", infer_step, False)):
        net.train(training)
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        flops = counter.get_total_flops()
        for _ in range(warmup):
            step()
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        row[f"{mode}_ex_s"] = batch_size / t
        row[f"{mode}_gflops_per_s"] = flops / t / 1e9
    return row


def _plot(rows: list[dict], path: Path) -> None:
    from zoo import plots  # noqa: F401  (non-interactive backend)
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["train_fraction_of_peak"])
    fig, ax = plt.subplots(figsize=(7, max(4, 0.22 * len(rows) + 1)))
    ax.barh([r["model"] for r in rows], [100 * r["train_fraction_of_peak"] for r in rows], label="train")
    ax.barh([r["model"] for r in rows], [100 * r["infer_fraction_of_peak"] for r in rows], height=0.35,
            label="inference")
    ax.set_xlabel("achieved FLOP/s, % of the measured matmul peak")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(rows: list[dict], peak: dict, args, command: str, elapsed: float) -> str:
    from zoo.runinfo import machine_line

    method = __doc__.split("Peak.", 1)[1].split("Writes ``", 1)[0].strip()
    sizes = ", ".join(f"{n}: {r / 1e9:.1f}" for n, r in peak["per_size"].items())
    lines = [
        "# Compute efficiency: throughput and fraction of the measured peak",
        "",
        "Generated by `zoo-bench-compute`; do not edit by hand. Reproduce with:",
        "",
        f"    {command}",
        "",
        f"**Measured peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s** (float32 matmul, n = {peak['size']}; "
        f"GFLOP/s by size: {sizes}).",
        "",
        machine_line() + f"; batch {args.batch_size}; "
        f"{args.rounds} timed rounds after {args.warmup} warm-up steps; benchmark wall time {elapsed:.0f} s.",
        "",
        "| model | family | params | input | train (ex/s) | train GFLOP/s | train % of peak | inference (ex/s) | inference GFLOP/s | inference % of peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['family']} | {r['params']:,} | {r['input']} | {r['train_ex_s']:.1f} "
            f"| {r['train_gflops_per_s']:.2f} | {100 * r['train_fraction_of_peak']:.1f} | {r['infer_ex_s']:.1f} "
            f"| {r['infer_gflops_per_s']:.2f} | {100 * r['infer_fraction_of_peak']:.1f} |")
    lines += ["", "![efficiency](efficiency.png)", "", "## Method", "", "Peak. " + method, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-bench-compute", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="*", help="shell-style pattern(s), comma-separated (default: all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--peak-sizes", default="512,1024,2048,4096")
    p.add_argument("--out", default="reports/compute")
    args = p.parse_args(argv)
    patterns = [s.strip() for s in args.models.split(",") if s.strip()]
    names = [n for n in list_models(task="classification") if any(fnmatch.fnmatch(n, pat) for pat in patterns)]
    if not names:
        print(f"zoo-bench-compute: no registered model matches {args.models!r}; see zoo-models", file=sys.stderr)
        return 2
    command = "zoo-bench-compute " + " ".join(argv if argv is not None else sys.argv[1:])
    t0 = time.perf_counter()
    peak = measure_peak(tuple(int(s) for s in args.peak_sizes.split(",")))
    print(f"measured peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s (n = {peak['size']})", flush=True)
    rows = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ... ", end="", flush=True)
        row = measure_model(name, args.batch_size, args.rounds, args.warmup)
        for mode in ("train", "infer"):
            row[f"{mode}_fraction_of_peak"] = row[f"{mode}_gflops_per_s"] * 1e9 / peak["flops_per_s"]
        rows.append(row)
        print(f"train {row['train_ex_s']:.1f} ex/s, {100 * row['train_fraction_of_peak']:.1f}% of peak", flush=True)
    elapsed = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows_csv(out / "compute.csv", rows, digits=5)
    _plot(rows, out / "efficiency.png")
    (out / "README.md").write_text(render(rows, peak, args, command.strip(), elapsed))
    print(f"wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
