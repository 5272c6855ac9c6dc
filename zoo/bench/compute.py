"""``zoo-bench-compute``: training and inference throughput of every registered image model,
and the FLOP rate it achieves as a fraction of the machine's measured peak.

    zoo-bench-compute                         # every model, to reports/compute/
    zoo-bench-compute --models 'resnet*' --batch-size 16

Peak. The benchmark measures it itself, on dense float32 kernels that do every multiply they
are credited with: square matrix multiplies (``torch.mm``, MKL) of sizes 512 to 4096 (2·n³ FLOPs
each) and two 3x3 convolutions without padding (oneDNN's direct algorithm; no Winograd or FFT,
as ``ONEDNN_VERBOSE=1`` shows: ``alg:convolution_direct``), with torch's default threads, each
timed over repeated calls for at least half a second. The peak is the best rate of any of them,
measured before and after the models (a busy moment of a shared machine lowers one
measurement, not both). Convolutions are among the probes because oneDNN's kernels can beat the
BLAS matmul by a few per cent on the same machine; a peak from the matmul alone would be lower
than what the models' own kernels reach. Model efficiencies are fractions of something actually
achieved here, not of a datasheet figure.

Models. Each model runs at a CPU-sized input: 3x64x64 for ImageNet-style nets (their
large-input stem: the layout whose FLOPs papers quote), the model's own example input otherwise
(32x32 CIFAR nets and LeNet-5, 28x28 MNIST MLPs). Training step = forward, cross-entropy,
backward, SGD update on a fixed batch; inference = eval-mode forward without gradients. Times
are medians over rounds after warm-up.

Counts. FLOPs per step are counted by ``zoo.flops`` (``torch.utils.flop_counter`` with two
corrections) on the step's own model, inputs and loss: the training step by running its forward
and backward under the counter (``count_train_flops``, the gradients a step computes, not a
multiple of the forward), inference by its forward (``count_flops``); matrix multiplies and
convolutions at 2 FLOPs per multiply-add, element-wise work not counted. First correction:
torch's formula for the weight gradient of a grouped convolution forgets the group count and
counts a depthwise convolution's weight gradient ``channels`` times over (torch's own count of
EfficientNet-B0's training step at 64x64 is 13 times the multiplies done, MobileNet v1's 3.5
times, which put them above 100% of the peak); here it costs what the forward costs. Second:
the nominal count, which papers quote and which the "% of peak" column uses, includes the
multiplies of kernel taps that fall on a convolution's zero padding; oneDNN's direct kernels
skip them (timed on one core: a 3x3 convolution with padding 1 on 8x8 and 16x16 maps took 0.84
and 0.92 of the time of the same convolution on an input padded with real zeros, which are the
shares of its taps inside the input, 0.84 and 0.92). At 64x64 input the deep layers of VGG and
ResNet work on 2x2 to 8x8 maps, where 16-56% of a 3x3 convolution's nominal taps are padding,
so a fast model can pass 100% of the peak on the nominal count while doing less work than it is
credited with. The "in-bounds" columns count only the taps inside the input
(``count_padding=False``), the work done; a figure above 100% carries its reason in the last
column.

Writes ``<out>/README.md``, ``<out>/compute.csv`` and ``<out>/efficiency.png``.
"""
from __future__ import annotations

import argparse
import fnmatch
import inspect
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.flops import count_flops, count_train_flops
from zoo.runinfo import write_rows_csv
from zoo.registry import count_parameters, create_model, list_models, model_card

# Convolution probes of the peak: (batch, channels, input side) of a 3x3 convolution, stride 1,
# no padding, channels in = out: VGG/ResNet-like layers (128 channels at 64x64, 256 at 32x32)
# big enough to keep the kernels busy (1.2 and 1.1 GFLOP per call at batch 8).
CONV_PROBES = ((8, 128, 66), (8, 256, 34))


def _rate(fn, flops: float, min_time: float) -> float:
    """FLOP/s of ``fn`` (doing ``flops`` per call): one warm-up call, then calls until at least
    ``min_time`` s and two calls have passed."""
    fn()
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        dt = time.perf_counter() - t0
        if dt >= min_time and reps >= 2:
            return flops * reps / dt


def measure_peak(sizes=(512, 1024, 2048, 4096), min_time: float = 0.5, conv_probes=CONV_PROBES) -> dict:
    """Best float32 rate (FLOP/s) of dense kernels that skip no work: ``torch.mm`` of n x n
    matrices for n in ``sizes`` and the 3x3 unpadded convolutions ``conv_probes`` (batch,
    channels, input side). Returns ``{"flops_per_s", "kernel", "per_kernel": {name: rate}}``."""
    per_kernel = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        per_kernel[f"mm {n}"] = _rate(lambda: torch.mm(a, b), 2 * n ** 3, min_time)
    with torch.no_grad():
        for batch, chans, side in conv_probes:
            x, w = torch.randn(batch, chans, side, side), torch.randn(chans, chans, 3, 3)
            out = side - 2  # no padding
            per_kernel[f"conv3x3 {chans}ch {out}x{out}"] = _rate(
                lambda: F.conv2d(x, w), 2 * batch * chans * chans * 9 * out * out, min_time)
    kernel = max(per_kernel, key=per_kernel.get)
    return {"flops_per_s": per_kernel[kernel], "kernel": kernel, "per_kernel": per_kernel}


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
    """Throughput and counted FLOPs of one model's training step and inference on a fixed batch.
    FLOPs are counted per example on the first two examples of the batch (every counted
    operation scales linearly with the batch; two, since batch norm in training mode needs more
    than one value per channel) and multiplied by ``batch_size``."""
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

    def counts(mode: str, count_padding: bool) -> int:
        if mode == "train":
            n = min(2, batch_size)
            per_example = count_train_flops(net, inputs=(x[:n],), loss_fn=lambda out: _loss(out, y[:n]),
                                            count_padding=count_padding)
        else:
            per_example = count_flops(net, inputs=(x[:1],), count_padding=count_padding)
        return per_example * batch_size

    row = {"model": name, "family": model_card(name).family, "params": count_parameters(net),
           "input": "x".join(map(str, shape)), "batch_size": batch_size}
    for mode, step, training in (("train", train_step, True), ("infer", infer_step, False)):
        flops, flops_in = counts(mode, True), counts(mode, False)
        net.train(training)
        for _ in range(warmup):
            step()
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        row[f"{mode}_ex_s"] = batch_size / t
        row[f"{mode}_flops"] = flops
        row[f"{mode}_flops_in_bounds"] = flops_in
        row[f"{mode}_gflops_per_s"] = flops / t / 1e9
        row[f"{mode}_gflops_per_s_in_bounds"] = flops_in / t / 1e9
    return row


def over_peak_note(row: dict) -> str:
    """The reason beside every fraction of the peak above 1 in ``row`` ('' when none is)."""
    notes = []
    for mode, label in (("train", "training"), ("infer", "inference")):
        if row[f"{mode}_fraction_of_peak"] <= 1:
            continue
        padding = 1 - row[f"{mode}_flops_in_bounds"] / row[f"{mode}_flops"]
        done = 100 * row[f"{mode}_fraction_of_peak_in_bounds"]
        if done <= 100:
            notes.append(f"{label}: {100 * padding:.0f}% of its counted FLOPs multiply zero padding, which the "
                         f"convolution kernels skip; on the FLOPs done, {done:.0f}% of the peak")
        else:
            notes.append(f"{label}: {done:.0f}% of the peak even without the {100 * padding:.0f}% padding "
                         f"FLOPs: not explained by the count; the timing may be disturbed (see the load average)")
    return "; ".join(notes)


def _plot(rows: list[dict], path: Path) -> None:
    from zoo.reporting import plots  # noqa: F401  (non-interactive backend)
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["train_fraction_of_peak_in_bounds"])
    fig, ax = plt.subplots(figsize=(7, max(4, 0.22 * len(rows) + 1)))
    names = [r["model"] for r in rows]
    ax.barh(names, [100 * r["train_fraction_of_peak_in_bounds"] for r in rows], label="train")
    ax.barh(names, [100 * r["infer_fraction_of_peak_in_bounds"] for r in rows], height=0.35, label="inference")
    ax.axvline(100, color="k", lw=0.8, ls="--")
    ax.set_xlabel("achieved FLOP/s on the FLOPs done (zero-padding multiplies left out),\n"
                  "% of the measured peak")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(rows: list[dict], peak: dict, peaks: list[dict], load: tuple[float, float], args, command: str,
           elapsed: float) -> str:
    from zoo.runinfo import machine_line

    method = __doc__.split("Peak.", 1)[1].split("Writes ``", 1)[0].strip()
    when = ("before", "after")
    rates = "; ".join(f"{w} the models: " + ", ".join(f"{k} {r / 1e9:.1f}" for k, r in p["per_kernel"].items())
                      for w, p in zip(when, peaks))
    lines = [
        "# Compute efficiency: throughput and fraction of the measured peak",
        "",
        "Generated by `zoo-bench-compute`; do not edit by hand. Reproduce with:",
        "",
        f"    {command}",
        "",
        f"**Measured peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s** (float32, {peak['kernel']}, "
        f"{when[peaks.index(peak)]} the models; GFLOP/s by kernel {rates}).",
        "",
        machine_line() + f"; batch {args.batch_size}; "
        f"{args.rounds} timed rounds after {args.warmup} warm-up steps; benchmark wall time {elapsed:.0f} s; "
        f"load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end, on {os.cpu_count()} CPUs.",
        "",
        "FLOPs: 2 per multiply-add of matrix multiplies and convolutions, counted by `zoo.flops` on each "
        "step (training: its forward and backward run under the counter). \"% of peak\" uses the nominal "
        "count (what papers quote, zero-padding multiplies included); \"in-bounds\" leaves out the "
        "multiplies by zero padding, which the convolution kernels skip. See Method.",
        "",
        "| model | family | params | input | train (ex/s) | train GFLOP/s | train % of peak | train % in-bounds "
        "| inference (ex/s) | inference GFLOP/s | inference % of peak | inference % in-bounds | why above 100% |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['family']} | {r['params']:,} | {r['input']} | {r['train_ex_s']:.1f} "
            f"| {r['train_gflops_per_s']:.2f} | {100 * r['train_fraction_of_peak']:.1f} "
            f"| {100 * r['train_fraction_of_peak_in_bounds']:.1f} | {r['infer_ex_s']:.1f} "
            f"| {r['infer_gflops_per_s']:.2f} | {100 * r['infer_fraction_of_peak']:.1f} "
            f"| {100 * r['infer_fraction_of_peak_in_bounds']:.1f} | {r['note']} |")
    lines += ["", "![efficiency](efficiency.png)", "", "## Method", "", "Peak. " + method, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-bench-compute", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="*", help="shell-style pattern(s), comma-separated (default: all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--peak-sizes", default="512,1024,2048,4096", help="matmul sizes n of the peak probes")
    p.add_argument("--no-conv-peak", action="store_true",
                   help="measure the peak on matmuls only (no 3x3 convolution probes)")
    p.add_argument("--out", default="reports/compute")
    args = p.parse_args(argv)
    patterns = [s.strip() for s in args.models.split(",") if s.strip()]
    names = [n for n in list_models(task="classification") if any(fnmatch.fnmatch(n, pat) for pat in patterns)]
    if not names:
        print(f"zoo-bench-compute: no registered model matches {args.models!r}; see zoo-models", file=sys.stderr)
        return 2
    command = "zoo-bench-compute " + " ".join(argv if argv is not None else sys.argv[1:])
    sizes = tuple(int(s) for s in args.peak_sizes.split(","))
    probes = () if args.no_conv_peak else CONV_PROBES
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    peaks = [measure_peak(sizes, conv_probes=probes)]
    print(f"measured peak: {peaks[0]['flops_per_s'] / 1e9:.1f} GFLOP/s ({peaks[0]['kernel']})", flush=True)
    rows = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ... ", end="", flush=True)
        rows.append(measure_model(name, args.batch_size, args.rounds, args.warmup))
        print(f"train {rows[-1]['train_ex_s']:.1f} ex/s", flush=True)
    peaks.append(measure_peak(sizes, conv_probes=probes))
    peak = max(peaks, key=lambda q: q["flops_per_s"])
    print(f"measured peak after the models: {peaks[1]['flops_per_s'] / 1e9:.1f} GFLOP/s; "
          f"using {peak['flops_per_s'] / 1e9:.1f}", flush=True)
    for row in rows:
        for mode in ("train", "infer"):
            row[f"{mode}_fraction_of_peak"] = row[f"{mode}_gflops_per_s"] * 1e9 / peak["flops_per_s"]
            row[f"{mode}_fraction_of_peak_in_bounds"] = row[f"{mode}_gflops_per_s_in_bounds"] * 1e9 / peak["flops_per_s"]
        row["note"] = over_peak_note(row)
        print(f"{row['model']}: train {100 * row['train_fraction_of_peak']:.1f}% of peak "
              f"({100 * row['train_fraction_of_peak_in_bounds']:.1f}% in-bounds), inference "
              f"{100 * row['infer_fraction_of_peak']:.1f}% ({100 * row['infer_fraction_of_peak_in_bounds']:.1f}%)"
              + (f"  [{row['note']}]" if row["note"] else ""))
    elapsed = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows_csv(out / "compute.csv", rows, digits=5)
    _plot(rows, out / "efficiency.png")
    (out / "README.md").write_text(render(rows, peak, peaks, (load_start, os.getloadavg()[0]), args,
                                          command.strip(), elapsed))
    print(f"wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
