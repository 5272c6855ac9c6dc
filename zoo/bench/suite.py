"""``zoo-bench``: run a named benchmark suite over several seeds, resumably, and regenerate the
reports.

    zoo-bench --list                     # the suites (conf/bench/*.yaml)
    zoo-bench cnn_mnist5k                # every experiment of the suite, seeds 0 1 2
    zoo-bench cnn_mnist5k --seeds 0      # one seed
    zoo-bench quick --dry-run            # what would run, and what is already done
    zoo-bench cnn_mnist5k --verify       # run the recorded runs again: are the metrics identical?

Each (experiment, seed) runs as its own ``zoo-train experiment=<e> seed=<k> record=true``
process (one at a time: the runs are timed, and two trainings would share the cores), and
lands in ``reports/runs/<e>/seed<k>/``. A run whose recorded folder already holds a finished
run of the same configuration is skipped, so an interrupted suite resumes where it stopped;
``--force`` re-runs everything. A run counts as the same when its recorded ``config.yaml``
equals the configuration the suite would compose now in every part that decides what is
computed (model, data, task, optimizer, schedule, trainer, seed): a changed experiment is
re-run, not silently kept; paths, loggers and progress bars do not matter.

The suite's own record (``reports/bench/<suite>.json``) keeps, per run, the wall time of the
whole process (start-up, training, evaluation, writing) and when it ran; its total is the
suite's cost on this machine. It is rewritten atomically after every run.

A suite may also list ``benchmarks``: the commands that write the other reports (throughput,
compute, overhead, data pipeline, scaling, a hyperparameter sweep), run after the training runs,
one at a time, each recorded in the book when it succeeds; a recorded one is skipped on the
next call (``--force`` runs it again, ``--no-benchmarks`` skips them all). The default suite
lists every such command, so that ``zoo-bench`` regenerates every table under ``reports/``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from zoo import conf as zoo_conf

BENCH_DIR = zoo_conf.CONF_DIR / "bench"
# the parts of a composed config that decide what a run computes; the rest (paths, loggers,
# progress bars, keys added later with neutral defaults) does not make a recorded run stale
_COMPUTE_KEYS = ("experiment_name", "seed", "model", "data", "task", "optimizer", "scheduler",
                 "scheduler_interval", "trainer", "callbacks", "compile", "lr_scaling")
# callbacks that only display or log (the rest -- checkpointing, early stopping, EMA -- decide
# what is computed or which checkpoint is tested)
_DISPLAY_CALLBACKS = ("progress_bar", "lr_monitor")


class SuiteError(ValueError):
    """An unknown suite or a malformed suite file."""


def list_suites() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.yaml"))


def load_suite(name: str) -> dict:
    """A suite by name (``conf/bench/<name>.yaml``) or by the path of a suite file."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else BENCH_DIR / f"{name}.yaml"
    name = path.stem
    if not path.exists():
        raise SuiteError(f"unknown suite {name!r}; available: {', '.join(list_suites()) or 'none'} "
                         f"(files in {BENCH_DIR})")
    suite = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(suite, dict) or not suite.get("experiments"):
        raise SuiteError(f"{path} must define a non-empty 'experiments' list")
    experiments = zoo_conf.CONF_DIR / "experiment"
    missing = [e for e in suite["experiments"] if not (experiments / f"{e}.yaml").exists()]
    if missing:
        raise SuiteError(f"suite {name!r} names unknown experiment(s) {missing}; "
                         f"see conf/experiment/")
    suite.setdefault("seeds", [0, 1, 2])
    suite.setdefault("overrides", [])
    suite.setdefault("benchmarks", [])
    for command in suite["benchmarks"]:
        benchmark_argv(command, name)  # an unknown command fails now, not after the runs
    suite["name"] = name
    return suite


def benchmark_argv(command: str, suite: str = "") -> list[str]:
    """``zoo-bench-overhead --repeats 8`` -> ``[python, -m, zoo.bench.overhead, --repeats, 8]``:
    a suite's benchmark command, run with this interpreter (no shell)."""
    import importlib.util
    import shlex

    words = shlex.split(command)
    if not words or not words[0].startswith("zoo-"):
        raise SuiteError(f"suite {suite!r}: benchmark {command!r} must start with a zoo command (zoo-...)")
    module = _console_scripts().get(words[0])
    if module is None or module == __name__ or importlib.util.find_spec(module) is None:
        raise SuiteError(f"suite {suite!r}: benchmark {command!r}: no command {words[0]!r} "
                         f"(see [project.scripts] in pyproject.toml)")
    return [sys.executable, "-m", module, *words[1:]]


def _console_scripts() -> dict[str, str]:
    """The zoo's commands and the modules behind them, as installed (``[project.scripts]``)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.module for ep in entry_points(group="console_scripts") if ep.name.startswith("zoo-")}


def compose(experiment: str, seed: int, overrides: list[str]) -> dict:
    """The configuration ``zoo-train experiment=<experiment> seed=<seed> <overrides>`` would run,
    resolved, without the bookkeeping keys."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(zoo_conf.CONF_DIR)):
        cfg = hydra_compose("train", overrides=[f"experiment={experiment}", f"seed={seed}", *overrides],
                            return_hydra_config=True)
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)  # so that ${hydra:...} interpolations resolve
        with open_dict(cfg):
            del cfg["hydra"]
        # ${data_fact:...} (a vocabulary size ...) is known only once the data is read: it stays a
        # placeholder here, which matches whatever value the recorded run resolved it to
        raw = _hold_data_facts(OmegaConf.to_container(cfg, resolve=False))
        plain = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    return _strip(plain)


DATA_FACT = "<data fact "  # the placeholder's prefix


def _hold_data_facts(node):
    if isinstance(node, dict):
        return {k: _hold_data_facts(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_hold_data_facts(v) for v in node]
    if isinstance(node, str) and node.startswith("${data_fact:") and node.endswith("}"):
        return f"{DATA_FACT}{node[len('${data_fact:'):-1]}>"
    return node


def same_config(wanted, recorded) -> bool:
    """``recorded == wanted``, where a data-fact placeholder in ``wanted`` matches any value."""
    if isinstance(wanted, str) and wanted.startswith(DATA_FACT):
        return recorded is not None
    if isinstance(wanted, dict):
        return (isinstance(recorded, dict) and wanted.keys() == recorded.keys()
                and all(same_config(v, recorded[k]) for k, v in wanted.items()))
    if isinstance(wanted, list):
        return (isinstance(recorded, list) and len(wanted) == len(recorded)
                and all(same_config(a, b) for a, b in zip(wanted, recorded)))
    return wanted == recorded


def _drop_nones(node):
    """Options left at None are off: a recorded run predating such an option is still the same."""
    if isinstance(node, dict):
        return {k: _drop_nones(v) for k, v in node.items() if v is not None}
    return node


def _strip(cfg: dict) -> dict:
    out = _drop_nones({k: cfg.get(k) for k in _COMPUTE_KEYS})
    trainer = dict(out.get("trainer") or {})
    for k in ("default_root_dir", "enable_progress_bar", "enable_model_summary"):
        trainer.pop(k, None)
    out["trainer"] = trainer
    if out.get("callbacks"):
        out["callbacks"] = {k: ({kk: vv for kk, vv in v.items() if kk != "dirpath"} if isinstance(v, dict) else v)
                            for k, v in out["callbacks"].items() if k not in _DISPLAY_CALLBACKS}
    return out


def recorded_config(reports_dir: Path, experiment: str, seed: int) -> dict | None:
    """The configuration of a finished recorded run, or None when there is none."""
    run = reports_dir / "runs" / experiment / f"seed{seed}"
    if not (run / "metrics.json").exists() or not (run / "config.yaml").exists():
        return None
    try:
        json.loads((run / "metrics.json").read_text())
        return _strip(OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=False))
    except Exception:  # damaged files: the run is redone
        return None


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _fmt_s(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def run_suite(suite: dict, reports_dir: Path, log_dir: Path, seeds: list[int] | None = None,
              force: bool = False, dry_run: bool = False, out=None, benchmarks: bool = True) -> int:
    out = out or sys.stdout
    seeds = list(seeds if seeds is not None else suite["seeds"])
    jobs = [(e, s) for s in seeds for e in suite["experiments"]]
    record_path = reports_dir / "bench" / f"{suite['name']}.json"
    book = json.loads(record_path.read_text()) if record_path.exists() else {}
    book.setdefault("suite", suite["name"])
    book.setdefault("runs", {})
    book.setdefault("benchmarks", {})

    todo = []
    for e, s in jobs:
        wanted = compose(e, s, suite["overrides"])
        same = same_config(wanted, recorded_config(reports_dir, e, s))
        if not same:  # the booked run's record is gone or is of another configuration
            book["runs"].pop(f"{e}/seed{s}", None)
        todo.append((e, s, not force and same))
    for key in [k for k in book["runs"] if not (reports_dir / "runs" / k / "metrics.json").is_file()]:
        del book["runs"][key]  # a record removed (to be made again): its book entry goes with it
    n_done = sum(d for *_, d in todo)
    _borrow_wall_times(book, [(e, s) for e, s, d in todo if d], reports_dir, suite["name"])
    _book_unbooked_runs(book, [(e, s) for e, s, d in todo if d], reports_dir)
    print(f"suite {suite['name']}: {len(jobs)} runs ({len(suite['experiments'])} experiments x "
          f"seeds {seeds}); {n_done} already recorded, {len(jobs) - n_done} to run", file=out)
    bench_todo = [(c, not force and (book["benchmarks"].get(c) or {}).get("rc") == 0)
                  for c in (suite["benchmarks"] if benchmarks else [])]
    if dry_run:
        for e, s, d in todo:
            print(f"  {'done' if d else 'todo'}  {e} seed={s}", file=out)
        for c, d in bench_todo:
            print(f"  {'done' if d else 'todo'}  benchmark: {c}", file=out)
        return 0

    failures = []
    t_suite = time.perf_counter()
    ran = 0
    remaining = [(e, s) for e, s, d in todo if not d]
    for i, (e, s) in enumerate(remaining, 1):
        cmd = [sys.executable, "-m", "zoo.cli.train", f"experiment={e}", f"seed={s}", "record=true",
               f"paths.reports_dir={reports_dir}", "trainer.enable_progress_bar=false",
               f"hydra.run.dir={log_dir / e / f'seed{s}'}", *suite["overrides"]]
        log_dir.mkdir(parents=True, exist_ok=True)
        run_dir = log_dir / e / f"seed{s}"
        if run_dir.exists():  # a previous attempt's files (checkpoints would get -v1 names)
            shutil.rmtree(run_dir)
        log_path = log_dir / f"{e}-seed{s}.log"
        print(f"[{i}/{len(remaining)}] {e} seed={s} ... ", end="", flush=True, file=out)
        t0 = time.perf_counter()
        with open(log_path, "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
        ran += 1
        record = reports_dir / "runs" / e / f"seed{s}" / "metrics.json"
        if rc != 0 or not record.is_file():
            # a run stopped by SIGTERM may end with exit 0 (Lightning stops the fit gracefully)
            # and no record: a failure all the same
            why = f"exit {rc}" if rc != 0 else "exit 0 but no record written: was it stopped?"
            failures.append((e, s, log_path))
            print(f"FAILED ({why}) after {_fmt_s(wall)}; log: {log_path}", file=out, flush=True)
            continue
        metrics = json.loads(record.read_text())
        book["runs"][f"{e}/seed{s}"] = {"experiment": e, "seed": s, "wall_s": round(wall, 1),
                                        "train_time_s": metrics.get("train_time_s"),
                                        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        "commit": (metrics.get("git") or {}).get("commit")}
        _write_json_atomic(record_path, _summarise_book(book, suite, seeds, reports_dir))
        elapsed = time.perf_counter() - t_suite
        eta = elapsed / ran * (len(remaining) - i)
        from zoo.reporting.report import primary_figure

        figure = primary_figure(metrics)
        print(f"{figure + ', ' if figure else ''}{_fmt_s(wall)} (elapsed {_fmt_s(elapsed)}, ETA {_fmt_s(eta)})", file=out, flush=True)

    _write_json_atomic(record_path, _summarise_book(book, suite, seeds, reports_dir))
    pending = [c for c, d in bench_todo if not d]
    for i, command in enumerate(pending, 1):
        log_path = log_dir / f"benchmark-{i}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        print(f"[benchmark {i}/{len(pending)}] {command} ... ", end="", flush=True, file=out)
        t0 = time.perf_counter()
        with open(log_path, "w") as log:
            rc = subprocess.call(benchmark_argv(command, suite["name"]), stdout=log, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
        from zoo.runinfo import git_info

        book["benchmarks"][command] = {"rc": rc, "wall_s": round(wall, 1), "log": str(log_path),
                                       "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                       "commit": git_info().get("commit")}
        _write_json_atomic(record_path, _summarise_book(book, suite, seeds, reports_dir))
        if rc != 0:
            failures.append((f"benchmark {command!r}", None, log_path))
        print(("done" if rc == 0 else f"FAILED (exit {rc}); log: {log_path}") + f" in {_fmt_s(wall)}",
              file=out, flush=True)
    from zoo.reporting.report import write_report

    write_report(reports_dir)
    total = book.get("total_wall_s")
    print(f"suite {suite['name']}: ran {ran}, skipped {n_done}, failed {len(failures)}; "
          f"recorded wall time of the suite's runs: {_fmt_s(total or 0)}"
          + (f" ({book['runs_without_wall_time']} recorded without the suite's timing)"
             if book.get("runs_without_wall_time") else "") + f"; report: {reports_dir / 'README.md'}",
          file=out)
    for e, s, log_path in failures:
        print(f"  failed: {e}" + (f" seed={s}" if s is not None else "") + f" (log: {log_path})", file=out)
    return 1 if failures else 0


def _book_unbooked_runs(book: dict, done: list[tuple[str, int]], reports_dir: Path) -> None:
    """A run recorded with the suite's configuration but in no suite's book (``zoo-train
    record=true`` by hand, or a book that was not kept) belongs to the suite all the same: it
    is booked from its record, with its training time and commit, and no wall time
    (``wall_s`` None: the whole process was not timed), so that the book says which runs the
    suite holds and which of its totals are partial."""
    for e, s in done:
        key = f"{e}/seed{s}"
        if key in book["runs"]:
            continue
        try:
            metrics = json.loads((reports_dir / "runs" / e / f"seed{s}" / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        book["runs"][key] = {"experiment": e, "seed": s, "wall_s": None,
                             "train_time_s": metrics.get("train_time_s"),
                             "finished_at": None, "started_at": metrics.get("started_at"),
                             "commit": (metrics.get("git") or {}).get("commit"),
                             "booked_from_record": True}


def _borrow_wall_times(book: dict, done: list[tuple[str, int]], reports_dir: Path, name: str) -> None:
    """A run recorded by another suite (same experiment, seed and configuration) is not run
    again; its wall time comes from that suite's record (the newest one, when this suite's own
    entry predates it: the run was recorded again since)."""
    others = []
    for path in sorted((reports_dir / "bench").glob("*.json")):
        if path.stem != name:
            try:
                others.append(json.loads(path.read_text()).get("runs", {}))
            except ValueError:
                continue
    for e, s in done:
        key = f"{e}/seed{s}"
        for runs in others:
            theirs = runs.get(key)
            mine = book["runs"].get(key)
            if theirs and theirs.get("wall_s") is not None and (
                    mine is None or (theirs.get("finished_at") or "") > (mine.get("finished_at") or "")):
                book["runs"][key] = dict(theirs)


def verify_suite(suite: dict, reports_dir: Path, log_dir: Path, seeds: list[int] | None = None,
                 out=None) -> int:
    """Run the suite's recorded runs again in a scratch folder and compare every validation and
    test metric with the recorded one, exactly. Writes ``reports/bench/verify/<suite>.json``
    (``<suite>.partial.json`` while it runs: a call after an interruption goes on from there).

    Bit-identity is promised on the machine that recorded a run (same CPU model, torch threads,
    GPU and torch version: ``zoo.reproducibility``). A run recorded on another machine is run and
    its differences listed, but not judged: training compounds the last-bit differences of
    another CPU's sums. Exit status: 0 when every run recorded on this machine is identical, 1
    when one differs or fails, 3 when no run of the suite was recorded on this machine."""
    import shutil
    import tempfile

    from zoo.reproducibility import same_machine
    from zoo.runinfo import git_info

    out = out or sys.stdout
    seeds = list(seeds if seeds is not None else suite["seeds"])
    results, mismatches = [], 0
    jobs = [(e, s) for s in seeds for e in suite["experiments"]]
    path = reports_dir / "bench" / "verify" / f"{suite['name']}.json"
    # written after every run, so that an interrupted verification keeps what it checked and the
    # next call goes on where it stopped (the runs it found identical, when they are still the
    # same records, are kept); the finished file replaces it, and is never resumed
    partial = path.with_suffix(".partial.json")
    try:
        previous = json.loads(partial.read_text()) if partial.exists() else {}
    except ValueError:
        previous = {}
    unfinished = {(r.get("experiment"), r.get("seed")): r for r in previous.get("runs", [])
                  if previous.get("seeds") == seeds}

    def save(complete: bool) -> None:
        judged = [r for r in results if r.get("same_machine", True)]
        _write_json_atomic(path if complete else partial, {
            "suite": suite["name"], "seeds": seeds, "complete": complete, "planned": len(jobs),
            "checked": len(judged), "identical": sum(bool(r.get("match")) for r in judged),
            "recorded_elsewhere": len(results) - len(judged),
            "machine": next((r["run_on"] for r in reversed(judged) if r.get("run_on")), None),
            "commit": git_info().get("commit"),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs": results})
        if complete:
            partial.unlink(missing_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "reports"
        for i, (e, s) in enumerate(jobs, 1):
            recorded = reports_dir / "runs" / e / f"seed{s}" / "metrics.json"
            if not recorded.exists():
                print(f"[{i}/{len(jobs)}] {e} seed={s}: not recorded, skipped", file=out)
                continue
            old = json.loads(recorded.read_text())
            resumed = unfinished.get((e, s))
            if resumed is not None and _verifies(resumed, old, resumed.get("verified_at", "")) \
                    and same_machine(old, _this_machine(old)):
                results.append(resumed)
                print(f"[{i}/{len(jobs)}] {e} seed={s}: identical (verified at {resumed['verified_at']} by the "
                      "interrupted verification this one continues)", file=out, flush=True)
                save(complete=False)
                continue
            earlier = _earlier_verification(reports_dir, suite["name"], e, s, old)
            if earlier is not None:
                results.append(earlier)
                print(f"[{i}/{len(jobs)}] {e} seed={s}: identical (already verified by "
                      f"zoo-bench {earlier['verified_by']} --verify at {earlier['verified_at']}, "
                      "commit " + str(earlier.get("verified_commit") or "?")[:7] + "; not run again)",
                      file=out, flush=True)
                save(complete=False)
                continue
            print(f"[{i}/{len(jobs)}] {e} seed={s} ... ", end="", flush=True, file=out)
            started = datetime.now(timezone.utc).isoformat(timespec="seconds")
            cmd = [sys.executable, "-m", "zoo.cli.train", f"experiment={e}", f"seed={s}", "record=true",
                   f"paths.reports_dir={scratch}", "trainer.enable_progress_bar=false",
                   f"hydra.run.dir={Path(tmp) / 'runs' / e / f'seed{s}'}", *suite["overrides"]]
            log_dir.mkdir(parents=True, exist_ok=True)
            with open(log_dir / f"verify-{e}-seed{s}.log", "w") as log:
                rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
            if rc != 0:
                mismatches += 1
                results.append({"experiment": e, "seed": s, "match": False, "error": f"exit {rc}"})
                print(f"FAILED (exit {rc})", file=out)
                save(complete=False)
                continue
            new = json.loads((scratch / "runs" / e / f"seed{s}" / "metrics.json").read_text())
            diff = {f"{split}:{k}": [old[split].get(k), new[split].get(k)]
                    for split in ("val", "test") for k in sorted(set(old[split]) | set(new[split]))
                    if old[split].get(k) != new[split].get(k)}
            match = not diff
            here = same_machine(old, new)  # as both runs recorded it (threads included)
            mismatches += here and not match
            results.append({"experiment": e, "seed": s, "match": match, "same_machine": here,
                            "recorded_on": _machine_words(old), "run_on": _machine_words(new),
                            "differences": diff, "metrics": new["test"], "val_metrics": new["val"],
                            "record_started_at": old.get("started_at"), "verified_at": started,
                            "verified_commit": new.get("git", {}).get("commit")})
            verdict = "identical" if match else f"DIFFERENT: {diff}"
            if not here:
                verdict = f"recorded on another machine ({_machine_words(old)}), not judged: {verdict}"
            print(verdict, file=out, flush=True)
            save(complete=False)
            shutil.rmtree(scratch / "runs" / e / f"seed{s}", ignore_errors=True)
    judged = [r for r in results if r.get("same_machine", True)]
    elsewhere = len(results) - len(judged)
    if not judged:
        print(f"suite {suite['name']}: no run was recorded on this machine "
              f"({results[-1]['run_on'] if results else '?'}), so none "
              "can be checked bit for bit here; record the suite on this machine first "
              f"(zoo-bench {suite['name']} --force), then verify", file=out)
        partial.unlink(missing_ok=True)  # nothing was judged: nothing to go on from
        return 3
    save(complete=True)
    print(f"suite {suite['name']}: {len(judged) - mismatches}/{len(judged)} runs recorded on this machine "
          "reproduced every validation and test metric exactly"
          + (f"; {elsewhere} recorded on another machine, listed above, not judged" if elsewhere else ""),
          file=out)
    return 1 if mismatches else 0


def _earlier_verification(reports_dir: Path, suite_name: str, experiment: str, seed: int,
                          record: dict) -> dict | None:
    """The entry of another suite's verification (``reports/bench/verify/*.json``) that already
    re-ran this very record on this machine and found it identical, or None.

    Suites share runs (the default suite holds every other suite's), so a run verified by one need
    not be trained a third time for another. The entry is the same record's when that verification
    came after the record was started and its re-run's metrics equal the record's, every test
    metric (and every validation metric where the entry lists them). A record made again later, a
    differing entry, or one judged on another machine is run again. A suite's own file is never
    used, nor an entry that came from it: ``zoo-bench <suite> --verify`` twice checks its runs
    twice."""
    from zoo.reproducibility import same_machine

    if not same_machine(record, _this_machine(record)):  # made elsewhere: this machine judges nothing
        return None
    for path in sorted((reports_dir / "bench" / "verify").glob("*.json")):
        if path.stem == suite_name:
            continue
        try:
            check = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for entry in check.get("runs", []):
            if (entry.get("experiment"), entry.get("seed")) != (experiment, seed):
                continue
            verified_by = entry.get("verified_by") or check.get("suite", path.stem)  # reused: its origin
            if verified_by == suite_name:
                continue
            verified_at = entry.get("verified_at") or check.get("finished_at", "")
            if not _verifies(entry, record, verified_at):
                continue
            return dict(entry, verified_by=verified_by, verified_at=verified_at,
                        verified_commit=entry.get("verified_commit") or check.get("commit"))
    return None


def _verifies(entry: dict, record: dict, verified_at: str) -> bool:
    """Does a verification entry speak of this very record: judged identical on the record's
    machine, after the record was started, with the record's every test metric (and validation
    metric, where the entry lists them)?"""
    return bool(entry.get("match") and entry.get("same_machine", True)
                and verified_at > record.get("started_at", "")
                and entry.get("metrics") == record.get("test")
                and entry.get("val_metrics", record.get("val")) == record.get("val"))


def _this_machine(record: dict) -> dict:
    """This machine as a verification's re-runs see it: they are processes of their own with
    torch's default threads, so this process's thread count (a test may have changed it) does
    not count; the record's stands for it."""
    from zoo.runinfo import hardware, library_versions

    return {"hardware": dict(hardware(), torch_threads=record.get("hardware", {}).get("torch_threads")),
            "versions": library_versions()}


def _machine_words(record: dict) -> str:
    from zoo.runinfo import threads_words

    hw, versions = record.get("hardware", {}), record.get("versions", {})
    return (f"{hw.get('cpu', '?')}, {threads_words(hw.get('torch_threads'))}"
            + (f", {hw['gpu']}" if hw.get("gpu") else "") + f", torch {versions.get('torch', '?')}")


def _summarise_book(book: dict, suite: dict, seeds: list[int], reports_dir: Path) -> dict:
    """Totals over the runs of the suite's current experiments and seeds that have a wall time."""
    wanted = {f"{e}/seed{s}" for e in suite["experiments"] for s in suite["seeds"]}
    runs = {k: v for k, v in book["runs"].items() if k in wanted}
    book["runs"] = runs  # an experiment the suite no longer lists leaves its book too
    book["experiments"] = suite["experiments"]
    book["seeds"] = suite["seeds"]
    book["complete"] = len(runs) == len(wanted)
    book["total_wall_s"] = round(sum(r["wall_s"] or 0 for r in runs.values()), 1)
    # runs booked from their records alone (_book_unbooked_runs): in the book, not in the total
    book["runs_without_wall_time"] = sum(r.get("wall_s") is None for r in runs.values())
    book["total_train_s"] = round(sum(r.get("train_time_s") or 0 for r in runs.values()), 1)
    wanted_b = set(suite.get("benchmarks", []))
    book["benchmarks"] = {c: v for c, v in book.get("benchmarks", {}).items() if c in wanted_b}
    book["benchmarks_wall_s"] = round(sum(v["wall_s"] for v in book["benchmarks"].values()), 1)
    book["hardware"] = _machines_of(runs, reports_dir)
    return book


def _machines_of(runs: dict, reports_dir: Path) -> str:
    """The machines the booked runs were recorded on, from their records: one summary when they
    all ran alike, else each machine and thread count with its number of runs (the suite's wall
    time is then a sum over them). A suite with no readable record (benchmarks only) names this
    machine."""
    from collections import Counter

    from zoo.runinfo import hardware, hardware_summary, hardware_with_threads

    counts: Counter[str] = Counter()
    summaries: set[str] = set()
    for key in runs:
        try:
            hw = json.loads((reports_dir / "runs" / key / "metrics.json").read_text())["hardware"]
            counts[hardware_with_threads(hw)] += 1
            summaries.add(hardware_summary(hw))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if len(counts) <= 1:
        return next(iter(summaries), None) or hardware_summary(hardware())
    return "; ".join(f"{h} ({n} run{'s' * (n != 1)})" for h, n in counts.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-bench", description=__doc__.splitlines()[0])
    p.add_argument("suite", nargs="?", default="embedded",
                   help="suite name (conf/bench/<suite>.yaml) or the path of a suite file")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the suite's)")
    p.add_argument("--force", action="store_true", help="re-run recorded runs (and benchmarks) too")
    p.add_argument("--no-benchmarks", action="store_true",
                   help="only the training runs, not the suite's benchmark commands")
    p.add_argument("--dry-run", action="store_true", help="list what would run and stop")
    p.add_argument("--list", action="store_true", help="list the suites and stop")
    p.add_argument("--verify", action="store_true",
                   help="re-run the recorded runs in a scratch folder and check every metric is identical")
    p.add_argument("--reports", default="reports", help="reports folder (default: reports)")
    p.add_argument("--logs", default="outputs/bench", help="folder for the runs' logs and run folders")
    args = p.parse_args(argv)
    if args.list:
        for name in list_suites():
            s = load_suite(name)
            print(f"{name}: {s.get('description', '')} ({len(s['experiments'])} experiments, seeds {s['seeds']})")
        return 0
    try:
        suite = load_suite(args.suite)
        seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    except (SuiteError, ValueError) as err:
        print(f"zoo-bench: {err}", file=sys.stderr)
        return 2
    if args.verify:
        return verify_suite(suite, Path(args.reports), Path(args.logs) / suite["name"], seeds)
    return run_suite(suite, Path(args.reports), Path(args.logs) / suite["name"], seeds,
                     args.force, args.dry_run, benchmarks=not args.no_benchmarks)


if __name__ == "__main__":
    sys.exit(main())
