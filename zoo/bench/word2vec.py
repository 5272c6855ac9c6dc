"""``zoo-bench-word2vec``: our skip-gram beside gensim's ``Word2Vec`` on the same corpus with the
same hyperparameters, and GloVe in the same table.

    zoo-bench-word2vec                                  # enwiki, seeds 0 1 2, writes reports/text/
    zoo-bench-word2vec --reports /tmp/w2v --seeds 0 --no-glove

Both word2vec sides read the same token lists (``datamodules.text.embeddings.corpus_sentences``:
one list per line of the corpus, lower-cased words) and use the same hyperparameters: skip-gram
(``sg=1``), negative sampling (``negative=K``, ``hs=0``, noise unigram^(3/4)), ``vector_size``,
``window`` (dynamic, as both draw each centre's window in 1..window), ``epochs``, ``min_count``,
``sample``, learning rate 0.025 decayed linearly to 0.0001. gensim runs with ``workers=1``: one
thread, like our run (``OMP_NUM_THREADS=1`` is advised for the whole command), so that the time
ratio compares implementations, not core counts, and so that gensim's result is reproducible
from its seed (with several workers the order of updates depends on thread scheduling).

Ours is ``zoo-train experiment=word2vec_enwiki`` (``data.corpus`` etc. set to match), through the
whole training path (Lightning, checkpoints, per-epoch evaluation); its time is the run's
training time (``train_time_s``: training batches only, validation excluded), gensim's the
``train()`` call (vocabulary building excluded on both sides: our datamodule's setup is not in
``train_time_s`` either). GloVe is ``zoo-train experiment=glove_enwiki`` on the same corpus.

Every model's vectors are scored by the same code (``zoo.text_eval.evaluate_vectors``):
WordSim-353 and SimLex-999 Spearman and 3CosAdd analogy accuracy over the covered questions.
Figures are mean +- std (sample std) over the seeds. Writes ``<reports>/word2vec_vs_gensim.json``
and ``.md`` with the command that reproduces them.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["main", "run_gensim", "run_zoo"]

METRICS = ("ws353_spearman", "simlex_spearman", "analogy_accuracy")
COVERAGE = ("ws353_covered", "simlex_covered", "analogy_covered")


def _compose(overrides: list[str], out_dir: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from zoo.conf import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={out_dir}", "logger=none",
                                           "trainer=cpu", "trainer.enable_progress_bar=false",
                                           "trainer.enable_model_summary=false", "command=zoo-bench-word2vec"])


def run_gensim(sentences: list[list[str]], hp: dict, seed: int, workers: int = 1) -> dict:
    """gensim's skip-gram with negative sampling; the figures of its vectors and its train time."""
    from gensim.models import Word2Vec

    from zoo.text_eval import evaluate_vectors

    model = Word2Vec(vector_size=hp["dim"], window=hp["window"], negative=hp["negatives"], sg=1, hs=0,
                     min_count=hp["min_count"], sample=hp["sample"], epochs=hp["epochs"], workers=workers,
                     seed=seed, alpha=0.025, min_alpha=0.0001, ns_exponent=0.75)
    model.build_vocab(sentences)
    t0 = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=hp["epochs"])
    seconds = time.perf_counter() - t0
    wv = model.wv
    vectors = torch.from_numpy(np.asarray(wv.vectors, dtype=np.float32))
    out = evaluate_vectors(vectors, dict(wv.key_to_index))
    return {**out, "train_seconds": seconds, "vocab_size": len(wv.key_to_index)}


def run_zoo(experiment: str, overrides: list[str], seed: int) -> dict:
    """``zoo-train experiment=...`` in a temporary folder; its test figures and training time."""
    from zoo.cli.train import train

    with tempfile.TemporaryDirectory() as tmp:
        rec = train(_compose([f"experiment={experiment}", f"seed={seed}", *overrides], Path(tmp) / "run"))
    out = {k: rec["test"].get(f"test/{k}", float("nan")) for k in (*METRICS, *COVERAGE)}
    return {**out, "train_seconds": rec["train_time_s"], "fit_wall_seconds": rec["fit_wall_s"],
            "vocab_size": rec["data"].get("vocab_size")}


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [float(v) for v in values]
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def summarise(runs: dict[str, list[dict]], baseline: str = "gensim word2vec") -> list[dict]:
    rows = []
    base_time = _mean_std([r["train_seconds"] for r in runs[baseline]])[0] if runs.get(baseline) else None
    for name, rs in runs.items():
        row = {"model": name, "seeds": len(rs)}
        for key in (*METRICS, "train_seconds"):
            row[key + "_mean"], row[key + "_std"] = _mean_std([r[key] for r in rs])
        for key in COVERAGE:
            row[key] = int(rs[0][key])
        row["vocab_size"] = rs[0].get("vocab_size")
        row["time_ratio_to_gensim"] = row["train_seconds_mean"] / base_time if base_time else None
        rows.append(row)
    return rows


def render_markdown(result: dict) -> str:
    hp, rows = result["hyperparameters"], result["rows"]
    total = result["totals"]
    lines = ["# Skip-gram: ours against gensim's Word2Vec, and GloVe", "",
             f"Corpus: `{hp['corpus']}` (gensim's test data), vocabulary: words seen at least {hp['min_count']} "
             f"times. Hyperparameters (both word2vec sides): dimension {hp['dim']}, window {hp['window']} "
             f"(dynamic), {hp['negatives']} negatives, subsampling {hp['sample']}, {hp['epochs']} epochs, "
             f"learning rate 0.025 -> 0.0001; gensim workers={hp['workers']}. Seeds: {result['seeds']}. "
             "Mean ± std over the seeds; the time is training only, on this machine's CPU, one thread.", "",
             "| model | WS353 Spearman | SimLex-999 Spearman | analogy 3CosAdd (%) | coverage WS353 / SimLex / analogy "
             "| train seconds | time ratio to gensim |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = f"{r['time_ratio_to_gensim']:.1f}x" if r["time_ratio_to_gensim"] is not None else "-"
        lines.append(
            f"| {r['model']} | {r['ws353_spearman_mean']:.3f} ± {r['ws353_spearman_std']:.3f} "
            f"| {r['simlex_spearman_mean']:.3f} ± {r['simlex_spearman_std']:.3f} "
            f"| {100 * r['analogy_accuracy_mean']:.2f} ± {100 * r['analogy_accuracy_std']:.2f} "
            f"| {r['ws353_covered']}/{total['ws353']} / {r['simlex_covered']}/{total['simlex']} / "
            f"{r['analogy_covered']}/{total['analogy']} "
            f"| {r['train_seconds_mean']:.1f} ± {r['train_seconds_std']:.1f} | {ratio} |")
    gap = result.get("ws353_gap")
    if gap is not None:
        lines += ["", f"WordSim-353 gap, ours - gensim: {gap:+.3f} (acceptance: within ±0.05: "
                      f"{'met' if abs(gap) <= 0.05 else 'NOT met'})."]
    lines += ["", "Reproduce:", "", "```", result["command"], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-bench-word2vec", description=__doc__.splitlines()[0])
    p.add_argument("--reports", default="reports/text", help="output folder (word2vec_vs_gensim.json and .md)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--corpus", default="enwiki", help="enwiki | lee | enwiki+lee | a text file")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negatives", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=1, help="gensim's worker threads (1: see the docstring)")
    p.add_argument("--glove-epochs", type=int, default=None, help="GloVe's epochs (default: the experiment's)")
    p.add_argument("--no-glove", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from datamodules.text.embeddings import corpus_sentences
    from zoo.text_eval import gensim_eval_file, read_analogies, read_word_pairs

    hp = {"corpus": args.corpus, "dim": args.dim, "window": args.window, "negatives": args.negatives,
          "epochs": args.epochs, "min_count": args.min_count, "sample": args.sample, "workers": args.workers}
    shared = [f"data.corpus={args.corpus}", f"data.min_count={args.min_count}", f"model.embedding_dim={args.dim}"]
    w2v = [*shared, f"data.window={args.window}", f"data.negatives={args.negatives}", f"data.sample={args.sample}",
           f"trainer.max_epochs={args.epochs}"]
    glove = [*shared] + ([f"trainer.max_epochs={args.glove_epochs}"] if args.glove_epochs else [])
    sentences = corpus_sentences(args.corpus)
    runs: dict[str, list[dict]] = {"gensim word2vec": [], "zoo word2vec_sgns": []}
    if not args.no_glove:
        runs["zoo glove"] = []
    for seed in args.seeds:
        # alternate the order, so that a drift of the machine's speed hits both sides
        order = ["gensim", "zoo"] if seed % 2 == 0 else ["zoo", "gensim"]
        for side in order:
            if side == "gensim":
                r = run_gensim(sentences, hp, seed, args.workers)
                runs["gensim word2vec"].append(r)
            else:
                r = run_zoo("word2vec_enwiki", w2v, seed)
                runs["zoo word2vec_sgns"].append(r)
            print(f"seed {seed} {side}: WS353 {r['ws353_spearman']:.3f} SimLex {r['simlex_spearman']:.3f} "
                  f"analogy {r['analogy_accuracy']:.4f} train {r['train_seconds']:.1f}s", flush=True)
        if not args.no_glove:
            r = run_zoo("glove_enwiki", glove, seed)
            runs["zoo glove"].append(r)
            print(f"seed {seed} glove: WS353 {r['ws353_spearman']:.3f} SimLex {r['simlex_spearman']:.3f} "
                  f"analogy {r['analogy_accuracy']:.4f} train {r['train_seconds']:.1f}s", flush=True)
    rows = summarise(runs)
    by_name = {r["model"]: r for r in rows}
    gap = by_name["zoo word2vec_sgns"]["ws353_spearman_mean"] - by_name["gensim word2vec"]["ws353_spearman_mean"]
    command = "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 " + " ".join(shlex.quote(a) for a in ["zoo-bench-word2vec",
                                                                                          *(argv if argv is not None else sys.argv[1:])])
    totals = {"ws353": len(read_word_pairs(gensim_eval_file("ws353"))),
              "simlex": len(read_word_pairs(gensim_eval_file("simlex"))),
              "analogy": len(read_analogies(gensim_eval_file("analogy")))}
    import gensim

    result = {"hyperparameters": hp, "seeds": args.seeds, "rows": rows, "runs": runs, "ws353_gap": gap,
              "totals": totals, "command": command,
              "versions": {"gensim": gensim.__version__, "torch": torch.__version__}}
    out = Path(args.reports)
    out.mkdir(parents=True, exist_ok=True)
    (out / "word2vec_vs_gensim.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "word2vec_vs_gensim.md").write_text(render_markdown(result))
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
