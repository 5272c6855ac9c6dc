"""Facts about the machine, the libraries and the code that produced a run."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

_PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "numpy", "wandb")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    info = {
        "cpu": cpu_name(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def hardware_summary(hw: dict) -> str:
    if hw.get("gpu"):
        return f"{hw.get('gpu_count', 1)}x {hw['gpu']}"
    return f"{hw['cpu_cores']} CPU cores ({hw['cpu']})"


def threads_words(threads) -> str:
    """``2 torch threads``, ``1 torch thread``; ``? torch threads`` when the count is unknown."""
    return f"{'?' if threads is None else threads} torch thread{'' if threads == 1 else 's'}"


def hardware_with_threads(hw: dict) -> str:
    """The machine and its torch threads, ``2 CPU cores (Xeon), 2 torch threads``: what must be
    alike for two runs' times to be compared (the threads left out when not recorded)."""
    threads = hw.get("torch_threads")
    return hardware_summary(hw) + ("" if threads is None else f", {threads_words(threads)}")


def git_info(cwd: str | Path | None = None) -> dict:
    cwd = cwd or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True).stdout.strip()
        # dirty: a tracked file of the code or configs changed. The records and reports under
        # reports/ are what runs write, so a suite recording its third run is still clean
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                     ":(exclude)reports"],
                                    cwd=cwd, capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        # a copy of the tree without its .git (a container image, a tarball): the commit it was
        # made from may be given in ZOO_GIT_COMMIT; whether the copy was changed is then unknown
        return {"commit": os.environ.get("ZOO_GIT_COMMIT") or None, "dirty": None}


def machine_line() -> str:
    """One line for a benchmark report: machine, threads, library versions, commit."""
    hw = hardware()
    return (f"Machine: {hardware_summary(hw)} ({hw['cpu']}, {threads_words(hw['torch_threads'])}); "
            + ", ".join(f"{k} {v}" for k, v in library_versions().items())
            + f"; commit `{(git_info().get('commit') or 'unknown')[:10]}`")


def write_rows_csv(path, rows: list[dict], digits: int = 5) -> None:
    """Benchmark rows (dicts with the same keys) as CSV, floats rounded to ``digits``."""
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: (round(v, digits) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)


def machine_free_text(text: str, run_dir: Path) -> str:
    """``text`` with the absolute paths of this machine made relative: the run folder becomes
    ``<run>``, the working directory ``.``, the home directory ``~``."""
    for path, word in ((run_dir.resolve(), "<run>"), (Path(run_dir).absolute(), "<run>"),
                       (Path.cwd().resolve(), "."), (Path.home().resolve(), "~")):
        if len(path.parts) > 1:  # never the file system's root
            text = text.replace(str(path), word)
    return text
