"""The committed reports are generated from run files only: every recorded run has its row, every
row has a run behind it, and regenerating the report from the runs gives the committed files."""
from __future__ import annotations

import csv
import shutil

from conftest import ROOT
from zoo.reporting.report import load_runs, summarise, write_report

REPORTS = ROOT / "reports"


def test_every_run_has_a_row_and_every_row_a_run():
    runs = {(r["experiment"], int(r["seed"])) for r in load_runs(REPORTS)}
    with open(REPORTS / "results.csv") as fh:
        rows = {(r["experiment"], int(r["seed"])) for r in csv.DictReader(fh)}
    assert runs, "no recorded runs under reports/runs/"
    assert rows == runs, f"rows without runs: {rows - runs}; runs without rows: {runs - rows}"
    table = (REPORTS / "README.md").read_text()
    for row in summarise(load_runs(REPORTS)):
        assert f"| {row['experiment']} | {row['model']} |" in table
    classification = table.split("## Classification", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    experiments_in_table = {line.split("|")[1].strip() for line in classification.splitlines()
                            if line.startswith("| ") and not line.startswith("| experiment ")}
    assert experiments_in_table <= {e for e, _ in runs}


def test_committed_report_is_what_the_runs_generate(tmp_path):
    copy = tmp_path / "reports"
    shutil.copytree(REPORTS, copy)
    write_report(copy)
    assert (copy / "README.md").read_text() == (REPORTS / "README.md").read_text()
    assert (copy / "results.csv").read_text() == (REPORTS / "results.csv").read_text()


def test_each_run_carries_its_reproduction_facts():
    for r in load_runs(REPORTS):
        assert r["command"].startswith("zoo-train experiment=")
        assert r["git"].get("commit") and r["versions"].get("torch") and r["hardware"].get("cpu")
        assert r["test"] and r["params"] > 0


def test_transfer_table_gives_each_arm_its_difference_from_scratch_and_scratchs_errors():
    from zoo.reporting.report import transfer_table

    def row(name, accs):
        return {"experiment": name, "test": {"test/acc": accs}, "test_size": 200}

    lines = transfer_table([row("t_10shot_scratch", [0.90, 0.92]), row("t_10shot_full", [0.95, 0.95]),
                            row("t_50shot_scratch", [0.99, 0.99]), row("t_50shot_full", [0.985, 0.995]),
                            row("lenet5_mnist5k", [0.99])])
    text = "\n".join(lines)
    assert "### Transfer: t" in text and "lenet5_mnist5k" not in text
    full = next(line for line in lines if line.startswith("| full |"))
    assert "+4.00" in full and "+0.00" in full  # 95 - 91 at 10 labels; 99 - 99 at 50
    assert "of 200 images: 18.0 at 10 labels/class; 2.0 at 50 labels/class" in text


def test_the_reference_column_keeps_each_metric_in_its_own_scale():
    """A percentage stays a percentage, and a figure that is not a fraction (BLEU, perplexity)
    is printed as it is: 27.3 BLEU must not read 2730.00."""
    from zoo.reporting.report import _reference

    pct = [("test/acc", "test acc (%)", 100.0)]
    assert _reference({"metric": "test/acc", "value": 0.9905, "source": "LeCun et al. 1998",
                       "setting": "full MNIST"}, pct) == "99.05 (LeCun et al. 1998; full MNIST)"
    bleu = [("test/bleu", "test BLEU", 1.0)]
    assert _reference({"metric": "test/bleu", "value": 27.3, "source": "Vaswani et al. 2017"}, bleu) \
        == "27.3 (Vaswani et al. 2017)"
    assert _reference(None, pct) == "—"


def test_every_experiment_with_a_published_architecture_figure_shows_it():
    table = (REPORTS / "README.md").read_text()
    for exp in ("lenet5_mnist5k", "resnet20_mnist5k", "mobilenet_v2_mnist5k", "efficientnet_b0_mnist5k"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {exp} |"))
        cells = [c.strip() for c in row.split("|")]
        ref = cells[8]  # experiment, model, data, seeds, 3 metric columns, then the reference
        assert ref != "—" and "(" in ref and float(ref.split()[0]) < 100, row


def test_recorded_runs_carry_no_path_of_the_machine_they_ran_on():
    import json

    from omegaconf import OmegaConf

    def strings(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node

    for run in sorted((REPORTS / "runs").glob("*/seed*")):
        record = json.loads((run / "metrics.json").read_text())
        config = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"))
        # a path is "/" followed by a name ("/" alone, or "/12" in a date, is text, not a path)
        absolute = [s for s in [*strings(record), *strings(config)]
                    if len(s) > 1 and s[0] == "/" and (s[1].isalpha() or s[1] in "._~")]
        assert not absolute, f"{run}: {absolute[:3]}"


def test_machine_free_text_makes_paths_relative(tmp_path, monkeypatch):
    from pathlib import Path

    from zoo.runinfo import machine_free_text

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "outputs" / "x" / "seed0"
    text = f'{{"best_checkpoint": "{run}/checkpoints/best.ckpt", "data": "{tmp_path}/data", "h": "{Path.home()}/d"}}'
    out = machine_free_text(text, run)
    assert out == '{"best_checkpoint": "<run>/checkpoints/best.ckpt", "data": "./data", "h": "~/d"}'


def test_an_experiment_whose_seeds_ran_on_other_machines_says_which_ran_where():
    from zoo.reporting.report import _hardware_of

    def run(seed, cpu, threads):
        return {"seed": seed, "hardware": {"cpu": cpu, "cpu_cores": 2, "torch_threads": threads}}

    same = [run(0, "Xeon", 2), run(1, "Xeon", 2)]
    assert _hardware_of(same) == "2 CPU cores (Xeon)"
    mixed = [run(0, "EPYC", 1), run(1, "Xeon", 2), run(2, "Xeon", 2)]
    assert _hardware_of(mixed) == ("2 CPU cores (EPYC), 1 torch thread (seed 0); "
                                   "2 CPU cores (Xeon), 2 torch threads (seeds 1, 2)")


def test_an_experiment_whose_seeds_were_recorded_at_other_commits_says_which_at_which():
    from zoo.reporting.report import _commit_of

    def run(seed, commit):
        return {"seed": seed, "git": {"commit": commit, "dirty": False}}

    assert _commit_of([run(0, "a" * 40), run(1, "a" * 40)]) == "`aaaaaaaaaa`"
    assert _commit_of([run(0, "a" * 40), run(1, "b" * 40), run(2, "b" * 40)]) == (
        "`aaaaaaaaaa` (seed 0); `bbbbbbbbbb` (seeds 1, 2)")
    assert _commit_of([{"seed": 0}]) == "`unknown`"


def test_a_verification_names_the_machine_in_words_with_one_thread_singular():
    from zoo.bench.suite import _machine_words

    def record(threads, gpu=None):
        return {"hardware": {"cpu": "EPYC", "torch_threads": threads, "gpu": gpu}, "versions": {"torch": "2.1"}}

    assert _machine_words(record(1)) == "EPYC, 1 torch thread, torch 2.1"
    assert _machine_words(record(2, "H100")) == "EPYC, 2 torch threads, H100, torch 2.1"
    assert _machine_words({}) == "?, ? torch threads, torch ?"


def test_the_data_column_names_the_printed_character_classes_a_run_trained_on():
    from zoo.reporting.report import dataset_of

    plain = {"data": {"dataset": "mnist5k_oneshot[train 0,1,2,3,4; test 5,6,7,8,9]", "glyph_classes": 0}}
    assert dataset_of(plain) == "mnist5k_oneshot[train 0,1,2,3,4; test 5,6,7,8,9]"
    glyphs = {"data": {**plain["data"], "glyph_classes": 269}}
    assert dataset_of(glyphs) == ("mnist5k_oneshot[train 0,1,2,3,4; test 5,6,7,8,9] + 269 printed-character "
                                  "classes in training")
    assert dataset_of({"data": {"dataset": "mnist5k"}}) == "mnist5k" and dataset_of({}) == ""
