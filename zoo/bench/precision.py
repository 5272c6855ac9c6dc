"""``zoo-bench-precision``: bf16 mixed precision and ``torch.compile`` against fp32 eager training.

    zoo-bench-precision                                   # LeNet-5 on embedded MNIST, its full schedule
    zoo-bench-precision experiment=mlp_mnist5k --epochs 20 --repeats 3
    zoo-bench-precision --configs bf16                    # fp32 eager and bf16-mixed only

Each configuration is a real ``zoo-train`` run of the same experiment and seed, in its own
process, with the experiment's own schedule, data, batch size and trainer:

* ``fp32 eager``: the experiment as it is (``trainer.precision=32-true``, ``compile=null``), the
  reference of every comparison;
* ``bf16-mixed``: ``trainer.precision=bf16-mixed`` (Lightning's autocast to bfloat16; the
  weights, the gradients and the optimizer stay float32);
* ``fp32 compiled``: ``compile=true`` (the net compiled in place by ``torch.compile`` with its
  defaults: the inductor backend);
* ``bf16-mixed compiled``: both.

Accuracy: the test accuracy of each run's best checkpoint (what ``zoo-train`` records), and its
difference from fp32 eager in percentage points; the bar is a difference of at most 0.5 points
either way. The runs share a seed, not a trajectory: rounding to bfloat16, or a compiled
kernel's other order of float additions, changes the last bits of a step, and thousands of steps
take the run elsewhere, so a difference is that of another run of the same recipe, not an error
of the arithmetic.

Speed, from each run's own timer (``metrics.json`` and ``history.csv``: from the start of an
epoch to its last training batch; validation and checkpoints excluded): the whole run's training
throughput (examples/s over every epoch, compilation included) and the median epoch of epochs
2.. (steady state), each as a ratio to fp32 eager (above 1: faster). Compile time: each compiled
run starts with an empty compile cache of its own (``TORCHINDUCTOR_CACHE_DIR`` and
``TRITON_CACHE_DIR`` in its run folder), so it pays torch.compile's whole cost, as a first run
on a fresh machine does. The code is generated during the sanity check's validation steps (the
evaluation graph) and the first training steps (the training graph): the first epoch's extra time
(first epoch minus the median later epoch) beyond that of the eager run of the same precision
is the training graph's compile time; the whole fit's wall time (sanity check, validation and
checkpoints included) is shown beside it. With several repeats every figure is the median over
repeats, the runs of the configurations alternating so that a drift of the machine hits all.

Writes ``<out>/README.md`` and ``<out>/precision.json``.
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

# key, name, zoo-train overrides; the first is the reference of every comparison
CONFIGS = [
    ("eager", "fp32 eager", []),
    ("bf16", "bf16-mixed", ["trainer.precision=bf16-mixed"]),
    ("compile", "fp32 compiled", ["compile=true"]),
    ("bf16_compile", "bf16-mixed compiled", ["trainer.precision=bf16-mixed", "compile=true"]),
]
BAR_POINTS = 0.5  # the largest test-accuracy difference from fp32 eager that passes, in points
# the eager configuration each compiled one is compared with for its compile time
_EAGER_TWIN = {"compile": "eager", "bf16_compile": "bf16"}
_SET_BY_BENCHMARK = ("trainer.precision=", "compile=", "+compile=", "hydra.run.dir=", "trainer.max_epochs=")


def configurations(keys: list[str] | None = None) -> list[dict]:
    """The configurations to run, fp32 eager first (always: every figure is relative to it)."""
    known = [k for k, _, _ in CONFIGS]
    wanted = set(keys or known) | {"eager"}
    unknown = wanted - set(known)
    if unknown:
        raise ValueError(f"unknown configuration(s) {sorted(unknown)}; known: {', '.join(known)}")
    return [{"key": k, "name": n, "overrides": list(o)} for k, n, o in CONFIGS if k in wanted]


def bf16_support(device_type: str = "cpu") -> dict:
    """Whether the device the runs train on computes bfloat16 natively, in words for the report."""
    import torch

    if device_type == "cuda" and torch.cuda.is_available():
        ok = bool(torch.cuda.is_bf16_supported())
        name = torch.cuda.get_device_name(0)
        return {"device": name, "native": ok,
                "words": f"{name} supports bfloat16" if ok else f"{name} does not support bfloat16"}
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = None
    from zoo.runinfo import cpu_name

    cpu = cpu_name()
    if native:
        words = f"the CPU ({cpu}) has bfloat16 instructions (AVX512-BF16 or AMX), used by oneDNN"
    elif native is False:
        words = (f"the CPU ({cpu}) has no bfloat16 instructions: bf16-mixed runs emulated, so expect it "
                 "slower than fp32")
    else:
        words = f"unknown whether the CPU ({cpu}) computes bfloat16 natively (this torch cannot tell)"
    return {"device": cpu, "native": native, "words": words}


# -- one run ----------------------------------------------------------------------------------------
def parse_run(record: dict, history: list[dict], metric: str = "test/acc") -> dict:
    """The figures of one finished run, from its ``metrics.json`` record and ``history.csv`` rows."""
    times = [float(h["epoch_train_s"]) for h in history if h.get("epoch_train_s") not in (None, "")]
    first = times[0] if times else None
    later = statistics.median(times[1:]) if len(times) >= 2 else None
    value = (record.get("test") or {}).get(metric)
    samples = record.get("train_samples") or 0
    return {
        "metric": None if value is None else float(value),
        "train_time_s": record.get("train_time_s"),
        "throughput": record.get("throughput_samples_per_s"),
        "fit_wall_s": record.get("fit_wall_s"),
        "epochs": len(times),
        "first_epoch_s": first,
        "later_epoch_s": later,
        "warmup_s": None if first is None or later is None else first - later,
        "examples_per_epoch": samples / len(times) if times else None,
        "precision": record.get("precision"),
        "compile": record.get("compile"),
        "device_type": record.get("device_type"),
        "seed": record.get("seed"),
    }


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no message)"


def run_one(overrides: list[str], config: dict, epochs: int | None, run_dir: Path, metric: str) -> dict:
    """One ``zoo-train`` run in its own process; its figures, or ``{"error": ...}`` if it failed."""
    cmd = [sys.executable, "-m", "zoo.cli.train", *overrides, *config["overrides"],
           *([f"trainer.max_epochs={epochs}"] if epochs else []),
           "logger=csv", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
           f"hydra.run.dir={run_dir}", "command=zoo-bench-precision"]
    cache = run_dir / "compile_cache"  # an empty cache per run: every compiled run compiles from scratch
    env = dict(os.environ, HYDRA_FULL_ERROR="1", TORCHINDUCTOR_CACHE_DIR=str(cache / "inductor"),
               TRITON_CACHE_DIR=str(cache / "triton"))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0 or not (run_dir / "metrics.json").exists():
        return {"error": f"zoo-train failed (exit {r.returncode}): {_last_line(r.stderr)}"}
    record = json.loads((run_dir / "metrics.json").read_text())
    history = []
    if (run_dir / "history.csv").exists():
        with open(run_dir / "history.csv") as fh:
            history = list(csv.DictReader(fh))
    return parse_run(record, history, metric)


# -- the table ------------------------------------------------------------------------------------
def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(configs: list[dict], results: dict[str, list[dict]], bar_points: float = BAR_POINTS) -> list[dict]:
    """One row per configuration from its runs (``results[key]``: ``parse_run`` figures or
    ``{"error": ...}``): medians over the repeats, the accuracy difference from fp32 eager in
    points with the bar's verdict, speed ratios to fp32 eager and the compile time."""
    rows = []
    for c in configs:
        runs = results.get(c["key"], [])
        ok = [r for r in runs if "error" not in r]
        errors = [r["error"] for r in runs if "error" in r]
        row = {"key": c["key"], "name": c["name"], "overrides": c["overrides"], "runs": runs,
               "errors": errors, "ok": bool(ok) and not errors}
        for field in ("metric", "train_time_s", "throughput", "fit_wall_s", "first_epoch_s", "later_epoch_s",
                      "warmup_s", "examples_per_epoch"):
            row[field] = _median([r.get(field) for r in ok])
        row["metric_values"] = [r.get("metric") for r in ok]
        row["steady_throughput"] = (row["examples_per_epoch"] / row["later_epoch_s"]
                                    if row["examples_per_epoch"] and row["later_epoch_s"] else None)
        rows.append(row)
    by_key = {r["key"]: r for r in rows}
    ref = by_key.get("eager")
    for row in rows:
        base = ref if ref and ref["ok"] else None
        row["diff_points"] = (100.0 * (row["metric"] - base["metric"])
                              if base and row["ok"] and row["metric"] is not None and base["metric"] is not None
                              else None)
        if row["key"] == "eager":
            row["verdict"] = "reference" if row["ok"] else "failed"
        elif not row["ok"]:
            row["verdict"] = "failed"
        elif row["diff_points"] is None:
            row["verdict"] = "n/a"
        else:
            row["verdict"] = "pass" if abs(row["diff_points"]) <= bar_points + 1e-9 else "fail"
        row["speed_whole"] = _ratio(row["throughput"], base["throughput"]) if base and row["ok"] else None
        row["speed_steady"] = (_ratio(base["later_epoch_s"], row["later_epoch_s"])
                               if base and row["ok"] else None)
        twin = by_key.get(_EAGER_TWIN.get(row["key"], ""))
        row["compile_s"] = (row["warmup_s"] - twin["warmup_s"]
                            if twin and twin["ok"] and row["ok"] and row["warmup_s"] is not None
                            and twin["warmup_s"] is not None else None)
        row["fit_wall_extra_s"] = (row["fit_wall_s"] - twin["fit_wall_s"]
                                   if twin and twin["ok"] and row["ok"] and row["fit_wall_s"] is not None
                                   and twin["fit_wall_s"] is not None else None)
    return rows


def _f(value, fmt: str, none: str = "n/a") -> str:
    return none if value is None else format(value, fmt)


def _signed(value, fmt: str) -> str:
    return "n/a" if value is None else ("+" if value >= 0 else "") + format(value, fmt)


def render(res: dict, command: str, machine: str | None = None) -> str:
    """The report (markdown) of a benchmark result (``run``'s dict)."""
    if machine is None:
        from zoo.runinfo import machine_line

        machine = machine_line()
    doc = __doc__.split("Each configuration", 1)[1].split("Writes ``", 1)[0].strip()
    metric, bar = res["metric"], res["bar_points"]
    bf16 = res.get("bf16") or {}
    epochs = res["epochs"] if res["epochs"] else "the experiment's own number of"
    lines = [
        "# Precision and compilation: bf16 mixed precision and torch.compile against fp32 eager",
        "",
        "Generated by `zoo-bench-precision`; do not edit by hand. Reproduce with:",
        "",
        f"    {command}",
        "",
        f"Runs: `zoo-train {' '.join(res['overrides']) or '(default experiment)'}`, {epochs} epochs, "
        f"seed {res.get('seed', 'n/a')}, {res['repeats']} repeat(s) per configuration; "
        f"device: {res.get('device_type') or 'n/a'}.",
        "",
        f"bfloat16 on this machine: {bf16.get('words', 'n/a')}.",
        "",
        f"## Accuracy ({metric}, best checkpoint; bar: within {bar:g} points of fp32 eager)",
        "",
        f"| configuration | {metric} | difference from fp32 eager (points) | within {bar:g} points |",
        "|---|---|---|---|",
    ]
    for r in res["rows"]:
        over = f" (`{' '.join(r['overrides'])}`)" if r["overrides"] else ""
        values = sorted({v for v in r["metric_values"] if v is not None})
        if r["errors"]:
            shown = "failed: " + r["errors"][0].replace("|", "/")
        elif r["metric"] is None:
            shown = "n/a"
        elif len(values) > 1:  # the repeats disagree: each value, the median is compared
            shown = f"{100 * r['metric']:.2f}% (median of " + ", ".join(f"{100 * v:.2f}%" for v in values) + ")"
        else:
            shown = f"{100 * r['metric']:.2f}%"
        verdict = r["verdict"]
        if r["key"].startswith("bf16") and bf16.get("native") is False:
            verdict += " (bf16 emulated)"
        lines.append(f"| {r['name']}{over} | {shown} | {_signed(r['diff_points'], '.2f')} | {verdict} |")
    lines += [
        "",
        "## Speed (ratios to fp32 eager; above 1 is faster)",
        "",
        "| configuration | train time (s) | throughput (examples/s) | speed, whole run | first epoch (s) "
        "| later epochs, median (s) | speed, later epochs | compile time (s) | fit wall time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        if not r["ok"]:
            lines.append(f"| {r['name']} | failed | | | | | | | |")
            continue
        compiled = r["key"] in _EAGER_TWIN
        compile_s = _f(r["compile_s"], ".1f") if compiled else "-"
        lines.append(
            f"| {r['name']} | {_f(r['train_time_s'], '.1f')} | {_f(r['throughput'], ',.0f')} "
            f"| {_f(r['speed_whole'], '.2f')}x | {_f(r['first_epoch_s'], '.2f')} | {_f(r['later_epoch_s'], '.3f')} "
            f"| {_f(r['speed_steady'], '.2f')}x | {compile_s} | {_f(r['fit_wall_s'], '.1f')} |")
    lines += ["", "Compile time: the first epoch's extra time (first epoch minus the median later epoch) beyond "
              "that of the eager run of the same precision; the evaluation graph, compiled during the sanity "
              "check, is in the fit wall time only."]
    failed = [r for r in res["rows"] if r["errors"]]
    if failed:
        lines += ["", "Failed runs:", ""] + [f"* {r['name']}: {e}" for r in failed for e in r["errors"]]
    lines += ["", "## Method", "", "Each configuration " + doc, "", machine + ".", ""]
    return "\n".join(lines)


def run(overrides: list[str], epochs: int | None, repeats: int, configs: list[dict],
        metric: str = "test/acc", bar_points: float = BAR_POINTS) -> dict:
    results: dict[str, list[dict]] = {c["key"]: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="zoo-bench-precision-") as tmp:
        for rep in range(repeats):
            order = configs if rep % 2 == 0 else configs[::-1]
            for c in order:
                print(f"  repeat {rep + 1}/{repeats}: {c['name']} ... ", end="", flush=True)
                res = run_one(overrides, c, epochs, Path(tmp) / f"{c['key']}_{rep}", metric)
                if "error" in res:
                    print(res["error"], flush=True)
                else:
                    print(f"{metric} {_f(res['metric'], '.4f')}, train {res['train_time_s']:.1f}s", flush=True)
                results[c["key"]].append(res)
    rows = summarize(configs, results, bar_points)
    device = next((r.get("device_type") for c in configs for r in results[c["key"]] if r.get("device_type")), None)
    seed = next((r.get("seed") for c in configs for r in results[c["key"]] if r.get("seed") is not None), None)
    from zoo.runinfo import hardware, library_versions

    return {"overrides": overrides, "epochs": epochs, "repeats": repeats, "metric": metric,
            "bar_points": bar_points, "seed": seed, "device_type": device, "bf16": bf16_support(device or "cpu"),
            "rows": rows, "hardware": hardware(), "versions": library_versions()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-bench-precision", description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="zoo-train overrides, e.g. experiment=mlp_mnist5k seed=1")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per run (default: the experiment's own schedule)")
    p.add_argument("--repeats", type=int, default=1, help="runs per configuration; figures are medians")
    p.add_argument("--configs", default=None,
                   help=f"comma-separated subset of {', '.join(k for k, _, _ in CONFIGS)} (eager always runs)")
    p.add_argument("--metric", default="test/acc", help="the test metric compared (a fraction), default test/acc")
    p.add_argument("--out", default="reports/precision")
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be at least 1 (2 or more to separate the first epoch, and compilation, from the rest)")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    taken = [o for o in args.overrides if o.startswith(_SET_BY_BENCHMARK)]
    if taken:
        p.error(f"the benchmark sets {', '.join(taken)} itself (precision, compile and epochs: use --epochs); "
                "leave them out")
    try:
        configs = configurations(args.configs.split(",") if args.configs else None)
    except ValueError as err:
        p.error(str(err))
    command = "zoo-bench-precision " + " ".join(argv if argv is not None else sys.argv[1:])
    res = run(args.overrides, args.epochs, args.repeats, configs, args.metric)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "README.md").write_text(render(res, command.strip()))
    for r in res["rows"]:
        print(f"{r['name']}: {r['verdict']}, difference {_signed(r['diff_points'], '.2f')} points, "
              f"speed {_f(r['speed_whole'], '.2f')}x whole run, {_f(r['speed_steady'], '.2f')}x later epochs")
    print(f"wrote {out / 'README.md'}")
    return 0 if all(r["ok"] for r in res["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
