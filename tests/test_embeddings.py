"""Word embeddings: the losses on hand-computed values, the sampler's unigram^(3/4) noise,
skip-gram pairs and co-occurrence counts on tiny corpora, the evaluation readers and their
errors, the nets, debiasing on hand-built vectors, and zoo-embed on a tiny trained model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import zoo
from datamodules.text.embeddings import (CooccurrenceDataModule, SkipGramDataModule, cooccurrence_counts,
                                         draw_negatives, embedding_tokens, skipgram_pairs,
                                         subsample_keep_probability, unigram_table)
from zoo.losses.embeddings import glove_loss, glove_weight, sgns_loss
from zoo.ops.debias import bias_direction, bias_projection, debias, equalize, neutralize
from zoo.text_eval import (Analogy, EvalFormatError, WordPair, analogy_correct, evaluate_vectors, gensim_eval_file,
                           pair_similarities, read_analogies, read_word_pairs)

from conftest import compose_train


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# -- losses ----------------------------------------------------------------------------------------
def test_sgns_loss_by_hand():
    assert float(sgns_loss(torch.zeros(1, 2))) == pytest.approx(2 * math.log(2))
    scores = torch.tensor([[2.0, -1.0, 3.0]])
    expected = -math.log(_sig(2.0)) - math.log(_sig(1.0)) - math.log(_sig(-3.0))
    assert float(sgns_loss(scores)) == pytest.approx(expected, rel=1e-6)
    both = torch.tensor([[2.0, -1.0, 3.0], [0.0, 0.0, 0.0]])
    assert float(sgns_loss(both, reduction="sum")) == pytest.approx(expected + 3 * math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 1 \+ K\)"):
        sgns_loss(torch.zeros(3))


def test_glove_loss_by_hand():
    x = torch.tensor([10.0, 100.0, 400.0])
    assert glove_weight(x).tolist() == pytest.approx([0.1 ** 0.75, 1.0, 1.0])
    pred = torch.log(x) + torch.tensor([1.0, 2.0, 0.0])  # errors 1, 2, 0
    assert float(glove_loss(pred, x, reduction="sum")) == pytest.approx(0.1 ** 0.75 + 4.0, rel=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        glove_loss(pred, x[:2])


# -- sampling --------------------------------------------------------------------------------------
def test_noise_is_unigram_to_the_three_quarters():
    counts = np.array([1, 16, 81, 0])  # ^0.75: 1, 8, 27, 0
    draws = draw_negatives(unigram_table(counts), (200_000,), np.random.default_rng(0))
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert freq == pytest.approx([1 / 36, 8 / 36, 27 / 36, 0.0], abs=0.005)


def test_subsampling_probability_by_hand():
    counts = np.array([1000, 10])  # total 1010, threshold s N = 1.01 with s = 1e-3
    keep = subsample_keep_probability(counts, 1e-3)
    t = 1e-3 * 1010
    assert keep[0] == pytest.approx((math.sqrt(1000 / t) + 1) * t / 1000)
    assert keep[1] == pytest.approx(min(1.0, (math.sqrt(10 / t) + 1) * t / 10))
    assert subsample_keep_probability(counts, 0).tolist() == [1.0, 1.0]


def test_skipgram_pairs_respect_window_and_sentences():
    ids, one = np.array([0, 1, 2, 3]), np.zeros(4, dtype=int)
    c, o = skipgram_pairs(ids, one, 1, None, dynamic=False)
    assert sorted(zip(c.tolist(), o.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)]
    c, o = skipgram_pairs(ids, np.array([0, 0, 1, 1]), 3, None, dynamic=False)  # two sentences
    assert sorted(zip(c.tolist(), o.tolist())) == [(0, 1), (1, 0), (2, 3), (3, 2)]
    # dynamic windows: never more than the fixed window's pairs, each within the window
    c, o = skipgram_pairs(np.arange(50), np.zeros(50, dtype=int), 4, np.random.default_rng(0))
    assert 0 < len(c) < 2 * (4 * 50 - 10) and np.abs(c - o).max() <= 4


def test_cooccurrence_counts_by_hand():
    i, j, x = cooccurrence_counts(np.array([0, 1, 2, 0]), np.array([0, 0, 0, 1]), 2, 3)
    got = {(a, b): v for a, b, v in zip(i.tolist(), j.tolist(), x.tolist())}
    # sentence [0 1 2]: 0-1 at 1, 1-2 at 1, 0-2 at 2; the last 0 is a sentence of its own
    assert got == {(0, 1): 1.0, (1, 0): 1.0, (1, 2): 1.0, (2, 1): 1.0, (0, 2): 0.5, (2, 0): 0.5}


TINY = ("the king rules the land and the queen rules the land .\n"
        "a man and a woman walk to the city , the king and the queen walk too .\n") * 40


@pytest.fixture
def tiny_corpus(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TINY)
    return path


def test_tokens():
    assert embedding_tokens("The cat's 2 mats, isn't it?") == ["the", "cat's", "2", "mats", "isn't", "it"]


def test_skipgram_datamodule_batches_are_reproducible(tiny_corpus):
    def first_batches(seed):
        dm = SkipGramDataModule(corpus=str(tiny_corpus), min_count=1, batch_size=64, negatives=3, seed=seed)
        dm.setup()
        ds = dm.train_set
        return dm, [ds[k] for k in range(len(ds))], [ds[k] for k in range(len(ds))]

    dm, epoch0, epoch1 = first_batches(7)
    b = epoch0[0]
    assert b["center"].shape == (64,) and b["context"].shape == (64,) and b["negatives"].shape == (64, 3)
    assert b["center"].dtype == torch.int64 and int(b["negatives"].max()) < len(dm.vocab)
    assert sum(len(x["center"]) for x in epoch1) == dm.train_set.examples  # the first epoch's count
    assert not torch.equal(epoch0[0]["center"], epoch1[0]["center"])  # redrawn each epoch
    _, again, _ = first_batches(7)
    assert all(torch.equal(a["negatives"], b["negatives"]) for a, b in zip(epoch0, again))
    assert dm.data_facts()["vocab"][0] == "the"


def test_cooccurrence_datamodule(tiny_corpus):
    dm = CooccurrenceDataModule(corpus=str(tiny_corpus), min_count=1, batch_size=32, window=3, seed=0)
    dm.setup()
    b = dm.train_set[0]
    assert set(b) == {"i", "j", "x"} and b["x"].dtype == torch.float32 and bool((b["x"] > 0).all())
    assert dm.describe()["nonzero_cooccurrences"] == len(dm.cooc[0])


def test_bad_corpus_and_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such.txt.*data.corpus"):
        SkipGramDataModule(corpus=str(tmp_path / "no-such.txt")).setup()
    empty = tmp_path / "empty.txt"
    empty.write_text("... !!!\n")
    with pytest.raises(ValueError, match="no words"):
        SkipGramDataModule(corpus=str(empty)).setup()
    with pytest.raises(ValueError, match="window must be a positive integer"):
        SkipGramDataModule(window=0)
    rare = tmp_path / "rare.txt"
    rare.write_text("every word here is seen once\n")
    with pytest.raises(ValueError, match="min_count"):
        SkipGramDataModule(corpus=str(rare), min_count=5).setup()


# -- evaluation readers ----------------------------------------------------------------------------
def test_gensim_sets_read():
    ws, sl = read_word_pairs(gensim_eval_file("ws353")), read_word_pairs(gensim_eval_file("simlex"))
    an = read_analogies(gensim_eval_file("analogy"))
    assert len(ws) == 353 and len(sl) == 999 and len(an) == 19544
    assert ws[0] == WordPair("love", "sex", 6.77) and an[0] == Analogy("capital-common-countries", "athens",
                                                                         "greece", "baghdad", "iraq")


def test_malformed_eval_files_name_file_and_line(tmp_path):
    bad = tmp_path / "pairs.tsv"
    bad.write_text("# header\ncat\tdog\t7.0\ncat\tdog\n")
    with pytest.raises(EvalFormatError, match=r"pairs.tsv, line 3: expected"):
        read_word_pairs(bad)
    bad.write_text("cat\tdog\tseven\n")
    with pytest.raises(EvalFormatError, match=r"line 1: the score 'seven' is not a number"):
        read_word_pairs(bad)
    q = tmp_path / "q.txt"
    q.write_text(": s\na b c d\na b c\n")
    with pytest.raises(EvalFormatError, match=r"q.txt, line 3: expected four words"):
        read_analogies(q)
    q.write_text("a b c d\n")
    with pytest.raises(EvalFormatError, match="before any ': section' header"):
        read_analogies(q)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_word_pairs(tmp_path / "missing.txt")


def test_evaluation_on_hand_built_vectors():
    stoi = {"man": 0, "king": 1, "woman": 2, "queen": 3, "apple": 4}
    vectors = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0], [0, 0, 1.0], [0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    hits = analogy_correct(vectors, stoi, [Analogy("s", "man", "king", "woman", "queen"),
                                           Analogy("s", "man", "king", "woman", "unknown")])
    assert hits.tolist() == [1.0]  # the second question is not covered
    pred, gold = pair_similarities(vectors, stoi, [WordPair("man", "king", 5.0), WordPair("man", "pear", 1.0)])
    assert pred.tolist() == pytest.approx([1 / math.sqrt(2)]) and gold.tolist() == [5.0]
    sets = {"ws353": [WordPair("man", "king", 9.0), WordPair("man", "queen", 2.0), WordPair("man", "apple", 0.0)],
            "simlex": [WordPair("man", "king", 1.0)], "analogy": [Analogy("s", "man", "king", "woman", "queen")]}
    out = evaluate_vectors(vectors, stoi, sets)
    assert out["ws353_spearman"] == pytest.approx(1.0, abs=1e-5) and out["ws353_covered"] == 3
    assert math.isnan(out["simlex_spearman"]) and out["analogy_accuracy"] == 1.0


# -- nets --------------------------------------------------------------------------------------------
def test_nets_score_as_documented():
    net = zoo.create_model("word2vec_sgns", vocab_size=5, embedding_dim=3)
    with torch.no_grad():
        net.input_embeddings.weight.copy_(torch.arange(15.0).view(5, 3))
        net.output_embeddings.weight.copy_(torch.eye(5, 3))
    scores = net(torch.tensor([1]), torch.tensor([0]), torch.tensor([[1, 2]]))
    assert scores.tolist() == [[3.0, 4.0, 5.0]]  # v_1 = (3, 4, 5) . e_0, e_1, e_2
    assert torch.equal(net(torch.tensor([[1, 0, 1, 2]])), scores)  # the packed form
    g = zoo.create_model("glove", vocab_size=4, embedding_dim=2)
    with torch.no_grad():
        g.word.weight.fill_(1.0), g.context.weight.fill_(2.0), g.word_bias.weight.fill_(0.5)
        g.context_bias.weight.fill_(0.25)
    assert g(torch.tensor([0]), torch.tensor([3])).tolist() == [4.75]  # 1*2 + 1*2 + 0.5 + 0.25
    assert torch.equal(g.vectors(), torch.full((4, 2), 3.0))


# -- debiasing on hand-built vectors ------------------------------------------------------------------
def test_neutralize_and_equalize_by_hand():
    g = torch.tensor([1.0, 0.0, 0.0])
    assert neutralize(torch.tensor([0.6, 0.8, 0.0]), g).tolist() == pytest.approx([0.0, 1.0, 0.0])
    e1, e2 = equalize(torch.tensor([0.8, 0.6, 0.0]), torch.tensor([-0.6, 0.8, 0.0]), g)
    # mu = (0.1, 0.7, 0), nu = (0, 0.7, 0), sqrt(1 - 0.49) along +-g
    assert e1.tolist() == pytest.approx([math.sqrt(0.51), 0.7, 0.0], abs=1e-6)
    assert e2.tolist() == pytest.approx([-math.sqrt(0.51), 0.7, 0.0], abs=1e-6)


def test_bias_direction_and_debias_report():
    stoi = {"she": 0, "he": 1, "nurse": 2, "doctor": 3, "woman": 4, "man": 5}
    v = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 1.0, 0.0], [0.5, 0.0, 1.0], [-0.2, 0.0, 1.0],
                      [0.9, 0.3, 0.1], [-0.8, 0.3, 0.1]])
    g = bias_direction(v, [("she", "he")], stoi)
    assert g.tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)  # oriented towards "she"
    before = bias_projection(v, g, ["nurse", "doctor"], stoi)
    assert before == pytest.approx((0.5 / math.sqrt(1.25) + 0.2 / math.sqrt(1.04)) / 2, rel=1e-5)
    out, report = debias(v, stoi, definitional=[("she", "he")], equalize_pairs=[("woman", "man")],
                         neutral=["nurse", "doctor", "unknownword"])
    assert report["bias_before"] == pytest.approx(before) and report["bias_after"] == pytest.approx(0.0, abs=1e-6)
    assert report["neutral_words"] == ["nurse", "doctor"]
    # equalized: the two words are equally far from every neutralized word
    assert float(out[4] @ out[2]) == pytest.approx(float(out[5] @ out[2]), abs=1e-6)
    with pytest.raises(ValueError, match="definitional pairs"):
        bias_direction(v, [("queen", "king")], stoi)


# -- zoo-train and zoo-embed on a tiny model ---------------------------------------------------------
def test_train_and_query_a_tiny_model(tmp_path, tiny_corpus, capsys):
    from zoo.cli.embed import main as embed
    from zoo.cli.train import train

    cfg = compose_train(["experiment=word2vec_enwiki", f"data.corpus={tiny_corpus}", "data.min_count=1",
                         "data.batch_size=256", "model.embedding_dim=8", "trainer=cpu", "trainer.max_epochs=2",
                         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=none"],
                        tmp_path)
    rec = train(cfg)
    assert rec["test"]["test/ws353_covered"] == 2.0  # (king, queen), (man, woman)
    run = tmp_path / "run"
    assert embed([str(run), "neighbors", "king", "-k", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert embed([str(run), "analogy", "man", "king", "woman", "--json"]) == 0
    assert '"answers"' in capsys.readouterr().out
    assert embed([str(run), "neighbors", "kinq"]) == 2
    err = capsys.readouterr().err
    assert "'kinq' is not in the vocabulary" in err and "king" in err
    assert embed([str(run), "debias", "--words", "city", "land"]) == 0
    assert "before" in capsys.readouterr().out
    assert embed([str(tmp_path / "nowhere"), "neighbors", "king"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_glove_trains_through_zoo_train(tmp_path, tiny_corpus):
    from zoo.cli.train import train

    cfg = compose_train(["experiment=glove_enwiki", f"data.corpus={tiny_corpus}", "data.min_count=1",
                         "data.batch_size=64", "model.embedding_dim=8", "trainer=cpu", "trainer.max_epochs=2",
                         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=none"],
                        tmp_path)
    rec = train(cfg)
    assert rec["model"] == "glove" and rec["test"]["test/ws353_covered"] == 2.0
    assert all(v == v for k, v in rec["test"].items() if k != "test/simlex_spearman")  # finite


def test_bench_table_from_runs():
    from zoo.bench.word2vec import render_markdown, summarise

    def run(ws, secs):
        return {"ws353_spearman": ws, "simlex_spearman": 0.1, "analogy_accuracy": 0.02, "ws353_covered": 241,
                "simlex_covered": 505, "analogy_covered": 3822, "train_seconds": secs, "vocab_size": 9566}

    rows = summarise({"gensim word2vec": [run(0.20, 10.0), run(0.22, 12.0)],
                      "zoo word2vec_sgns": [run(0.21, 30.0), run(0.19, 36.0)]})
    assert rows[0]["ws353_spearman_mean"] == pytest.approx(0.21)
    assert rows[0]["ws353_spearman_std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert rows[1]["time_ratio_to_gensim"] == pytest.approx(3.0)
    text = render_markdown({"hyperparameters": {"corpus": "enwiki", "min_count": 5, "dim": 100, "window": 5,
                                                "negatives": 5, "sample": 1e-3, "epochs": 5, "workers": 1},
                            "seeds": [0, 1], "rows": rows, "ws353_gap": -0.01, "command": "zoo-bench-word2vec",
                            "totals": {"ws353": 353, "simlex": 999, "analogy": 19544}})
    assert "| zoo word2vec_sgns | 0.200 ± 0.014 |" in text and "3.0x" in text and "met" in text
