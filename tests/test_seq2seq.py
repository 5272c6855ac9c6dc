"""Sequence to sequence: the generated translation data (dates, numbers in words), the parallel
text reader on a tiny Multi30k copy, the recurrent encoder-decoders' contract, greedy and beam
search (on a hand-built model whose most likely sequence greedy decoding misses), BLEU against
the sacrebleu package, the task through zoo-train, and zoo-translate."""
from __future__ import annotations

import itertools
import json
import math
import re

import pytest
import torch
import torch.nn as nn

import zoo
from datamodules.base import DataFileError, DatasetNotFoundError
from datamodules.text.translation import (DateTranslationDataModule, Multi30kDataModule, NumberWordsDataModule,
                                          number_tokens, number_words)
from zoo.ops.decoding import beam_search, greedy_decode, length_normalized
from zoo.tasks.seq2seq import CorpusBLEU, CorpusSacreBLEU, detokenize, sacrebleu_signature

from conftest import compose_train

SMALL = dict(train_size=200, val_size=40, test_size=40)


# -- data ------------------------------------------------------------------------------------------
def test_dates_are_iso_disjoint_reproducible_and_unambiguous():
    dm = DateTranslationDataModule(**SMALL, split_seed=3)
    dm.setup()
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}$")
    days = {k: {t for _, t in v} for k, v in dm.splits.items()}
    assert all(iso.match(t) for v in dm.splits.values() for _, t in v)
    assert not (days["train"] & days["test"]) and not (days["train"] & days["val"]) and not (days["val"] & days["test"])
    again = DateTranslationDataModule(**SMALL, split_seed=3)
    again.setup()
    assert again.splits == dm.splits
    other = DateTranslationDataModule(**SMALL, split_seed=4)
    other.setup()
    assert other.splits["train"] != dm.splits["train"]
    # every day of one month in every pattern and locale: a rendering names one date only
    big = DateTranslationDataModule(train_size=1, val_size=1, test_size=1)
    seen: dict[str, str] = {}
    import datetime as dt

    from datamodules.text.translation import render_date
    for day in [dt.date(1950, 1, 1) + dt.timedelta(days=k) for k in range(0, 36524, 331)]:
        for loc in big.locales:
            for pat in big.formats + big.numeric_formats:
                text = render_date(day, pat, loc)
                assert seen.setdefault(text, day.isoformat()) == day.isoformat(), (text, pat, loc)


def test_date_batches_follow_the_contract():
    dm = DateTranslationDataModule(**SMALL, batch_size=8)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    b, s = batch["src"].shape
    assert batch["src_mask"].dtype == torch.bool and batch["src_mask"].shape == (b, s)
    assert (batch["src"][~batch["src_mask"]] == 0).all()
    assert (batch["tgt_in"][:, 0] == 1).all()  # <s>
    rows = (batch["tgt_out"] == 2).nonzero()  # one </s> per row, then -100
    assert rows.shape[0] == b and (batch["tgt_out"][:, :] != -100).sum(1).tolist() == [r + 1 for r in rows[:, 1].tolist()]
    assert torch.equal(batch["tgt_in"][:, 1:][batch["tgt_out"][:, :-1] != -100],
                       batch["tgt_out"][:, :-1][batch["tgt_out"][:, :-1] != -100])
    facts = dm.data_facts()
    assert facts["tgt_detok"] == "chars" and facts["max_tgt_len"] == 10
    assert detokenize([facts["tgt_vocab"][i] for i in batch["tgt_out"][0].tolist() if i > 3], "chars") == batch["tgt_text"][0]


def test_number_words_match_num2words_and_detokenize_back():
    from num2words import num2words

    for n in [0, 7, 21, 71, 80, 99, 101, 1000, 2001, 123456, 9999999, 1000000, 4000080]:
        for lang in ("fr", "en", "es"):
            assert number_words(n, lang, 7) == " ".join(num2words(n, lang=lang).split())
    dm = NumberWordsDataModule(**SMALL, max_digits=6)
    dm.setup()
    nums = {k: {t for _, t in v} for k, v in dm.splits.items()}
    assert not (nums["train"] & nums["test"]) and not (nums["val"] & nums["test"])
    for _, tgt in dm.splits["train"][:50]:
        assert detokenize(number_tokens(tgt), "words") == tgt
    assert "-" in dm.tgt_vocab and "," in dm.tgt_vocab


def test_number_lists_keep_their_numbers_apart_and_one_number_is_the_published_split():
    one = NumberWordsDataModule(**SMALL, max_digits=6)
    assert one.make_splits() == NumberWordsDataModule(**SMALL, max_digits=6, numbers_per_source=1).make_splits()
    dm = NumberWordsDataModule(**SMALL, max_digits=6, numbers_per_source=3)
    splits = dm.make_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": SMALL["train_size"], "val": SMALL["val_size"],
                                                      "test": SMALL["test_size"]}
    counts = [src.count(" ; ") + 1 for src, _ in splits["train"]]
    assert set(counts) == {1, 2, 3}
    for src, tgt in splits["train"][:50]:
        assert src.count(" ; ") == tgt.count("; ")  # one number for one number
        assert detokenize(number_tokens(tgt), "words") == tgt  # "seven; eight" round-trips
        assert ";" in number_tokens(tgt) or "; " not in tgt
    numbers = {k: {n for _, t in v for n in t.split("; ")} for k, v in splits.items()}
    assert not (numbers["train"] & numbers["test"]) and not (numbers["train"] & numbers["val"])
    assert dm.describe()["numbers_per_source"] == 3
    assert splits == NumberWordsDataModule(**SMALL, max_digits=6, numbers_per_source=3).make_splits()


@pytest.mark.bad_input
def test_bad_data_settings_are_refused():
    with pytest.raises(ValueError, match="100 years"):
        DateTranslationDataModule(start="1900-01-01", end="2049-12-31")
    with pytest.raises(ValueError, match="unknown locale 'xx_YY'"):
        DateTranslationDataModule(locales=["xx_YY"])
    with pytest.raises(ValueError, match="not a num2words language"):
        NumberWordsDataModule(src_lang="klingon")
    with pytest.raises(ValueError, match="distinct numbers"):
        NumberWordsDataModule(max_digits=2, train_size=1000)
    with pytest.raises(ValueError, match="numbers_per_source"):
        NumberWordsDataModule(numbers_per_source=0)
    with pytest.raises(ValueError, match="augment must be null"):
        DateTranslationDataModule(augment={"x": 1})


@pytest.mark.bad_input
def test_user_sources_are_checked():
    dm = DateTranslationDataModule(**SMALL)
    dm.setup()
    assert dm.encode_source("  4 March 2021 ")["src_text"] == "4 march 2021"
    with pytest.raises(KeyError, match=r"dates.txt:3: '\u0436' is not in the vocabulary"):
        dm.encode_source("4 \u0436 2021", where="dates.txt:3")
    with pytest.raises(ValueError, match="empty"):
        dm.encode_source("   ", where="x:1")
    with pytest.raises(ValueError, match="max_src_len=64"):
        dm.encode_source("1" * 65, where="x:1")


def _write_multi30k(root, n_train=40):
    root.mkdir(parents=True)
    de = ["ein mann fährt fahrrad .", "zwei hunde spielen im schnee .", "eine frau liest ein buch .",
          "ein kind isst einen apfel .", "die katze schläft auf dem sofa ."]
    en = ["a man rides a bike .", "two dogs play in the snow .", "a woman reads a book .",
          "a child eats an apple .", "the cat sleeps on the sofa ."]
    for stem, n in (("train", n_train), ("val", 5), ("test_2016_flickr", 5)):
        (root / f"{stem}.de").write_text("\n".join(de[i % 5] for i in range(n)) + "\n", encoding="utf-8")
        (root / f"{stem}.en").write_text("\n".join(en[i % 5].capitalize() for i in range(n)) + "\n", encoding="utf-8")


def test_multi30k_reads_a_tiny_copy_with_subwords(tmp_path):
    _write_multi30k(tmp_path / "multi30k")
    dm = Multi30kDataModule(root=tmp_path / "multi30k", vocab_size=60, batch_size=4)
    dm.setup()
    assert len(dm.train_set) == 40 and len(dm.test_set) == 5
    batch = next(iter(dm.test_dataloader()))
    assert batch["src"].shape[0] == 4 and batch["tgt_text"][0] == "a man rides a bike ."
    tokens = dm.tgt_tokens("a woman reads a book .")
    assert detokenize(tokens, "subwords") == "a woman reads a book ."
    assert dm.data_facts()["tgt_detok"] == "subwords"


@pytest.mark.bad_input
def test_multi30k_bad_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train.de not found.*data.download=true"):
        Multi30kDataModule(root=tmp_path / "none").setup()
    _write_multi30k(tmp_path / "m")
    (tmp_path / "m" / "val.en").write_text("one line only\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="val.de has 5 lines but .*val.en has 1"):
        Multi30kDataModule(root=tmp_path / "m").setup()


# -- nets ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gru_seq2seq", "lstm_seq2seq", "attention_seq2seq"])
def test_net_contract(name):
    torch.manual_seed(0)
    net = zoo.create_model(name, src_vocab_size=20, tgt_vocab_size=15, fused=False).eval()
    src, src_mask, tgt_in = net.example_inputs(3)
    logits = net(src, src_mask, tgt_in)
    assert logits.shape == (3, tgt_in.shape[1], 15)
    memory = net.encode(src, src_mask)
    assert torch.allclose(net.decode(memory, tgt_in[:, :4]), logits[:, :4], atol=1e-5)  # causal
    s = int(src_mask[-1].sum())  # the padded row alone, unpadded: the same logits
    assert torch.allclose(net(src[-1:, :s], src_mask[-1:, :s], tgt_in[-1:]), logits[-1:], atol=1e-5)
    picked = net.select(memory, torch.tensor([2, 0]))
    assert torch.allclose(net.decode(picked, tgt_in[[2, 0]]), logits[[2, 0]], atol=1e-5)
    weights = net.attention(memory, tgt_in)
    if name == "attention_seq2seq":
        assert weights.shape == (3, tgt_in.shape[1], src.shape[1])
        assert torch.allclose(weights.sum(-1), torch.ones(3, tgt_in.shape[1]), atol=1e-5)
        assert (weights[-1, :, s:] == 0).all()  # padding gets no attention
    else:
        assert weights is None
    logits.sum().backward()
    with pytest.raises(ValueError, match="empty source"):
        net.encode(src, torch.zeros_like(src_mask))


# -- decoding --------------------------------------------------------------------------------------
class TableModel(nn.Module):
    """A hand-built 'net' of the seq2seq contract: the next-token distribution depends on the
    prefix only, read from a table (ids: 0 pad, 1 <s>, 2 </s>, 3 a, 4 b)."""

    V = 5

    def __init__(self, table: dict[tuple[int, ...], dict[int, float]]):
        super().__init__()
        self.table = table

    def encode(self, src, src_mask):
        return {"src": src}

    def select(self, memory, index):
        return {k: v.index_select(0, index) for k, v in memory.items()}

    def _dist(self, prefix: tuple[int, ...]) -> torch.Tensor:
        probs = torch.full((self.V,), 1e-9)
        for tok, p in self.table.get(prefix[1:], {2: 1.0}).items():
            probs[tok] = p
        return torch.log(probs / probs.sum())

    def decode(self, memory, tgt_in):
        b, t = tgt_in.shape
        out = torch.zeros(b, t, self.V)
        for i in range(b):
            for j in range(t):
                out[i, j] = self._dist(tuple(tgt_in[i, :j + 1].tolist()))
        return out


def _seq_logprob(model, seq):
    prefix, total = (1,), 0.0
    for tok in seq:
        total += float(model._dist(prefix)[tok])
        prefix = prefix + (tok,)
    return total


def _brute_force_best(model, max_len, alpha=0.0):
    best = None
    for n in range(1, max_len + 1):
        for body in itertools.product([3, 4], repeat=n - 1):
            seq = (*body, 2)
            score = length_normalized(_seq_logprob(model, seq), len(seq), alpha)
            if best is None or score > best[0]:
                best = (score, seq)
    return best


def test_beam_search_finds_the_sequence_greedy_misses():
    # greedy takes "a" (0.6), after which every continuation is poor; "b </s>" has 0.4 * 0.9
    table = {(): {3: 0.6, 4: 0.4}, (3,): {3: 0.34, 4: 0.33, 2: 0.33}, (4,): {2: 0.9, 3: 0.05, 4: 0.05},
             (3, 3): {2: 0.34, 3: 0.33, 4: 0.33}, (3, 4): {2: 0.34, 3: 0.33, 4: 0.33}}
    model = TableModel(table)
    src, mask = torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)
    greedy = greedy_decode(model, src, mask, 1, 2, max_len=4)
    beam = beam_search(model, src, mask, 1, 2, max_len=4, beam_width=2, alpha=0.0)
    best_score, best_seq = _brute_force_best(model, 4)
    assert tuple(beam.tokens[0, :beam.lengths[0]].tolist()) == best_seq == (4, 2)
    assert tuple(greedy.tokens[0, :greedy.lengths[0]].tolist()) != best_seq
    assert greedy.scores[0] < best_score
    assert math.isclose(float(beam.scores[0]), best_score, rel_tol=1e-5)
    assert torch.equal(beam.tokens[0], beam.tokens[1])  # every source of the batch


def test_length_normalization_prefers_longer_outputs():
    # "</s>" now: 0.4; "a a a </s>": 0.6 * 0.95 * 0.95 * 0.95 = 0.51 total but over four tokens...
    # make the short one win on probability and the long one on probability per token
    table = {(): {2: 0.5, 3: 0.5}, (3,): {3: 0.9, 2: 0.1}, (3, 3): {3: 0.9, 2: 0.1}, (3, 3, 3): {2: 0.9, 3: 0.1}}
    model = TableModel(table)
    src, mask = torch.ones(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool)
    short = beam_search(model, src, mask, 1, 2, max_len=6, beam_width=3, alpha=0.0)
    long = beam_search(model, src, mask, 1, 2, max_len=6, beam_width=3, alpha=1.0)
    assert short.tokens[0, :short.lengths[0]].tolist() == [2] == list(_brute_force_best(model, 6, 0.0)[1])
    assert long.tokens[0, :long.lengths[0]].tolist() == [3, 3, 3, 2] == list(_brute_force_best(model, 6, 1.0)[1])
    assert math.isclose(float(long.normalized[0]), _seq_logprob(model, [3, 3, 3, 2]) / 4, rel_tol=1e-5)


def test_beam_of_one_is_greedy_and_bad_settings_are_refused():
    torch.manual_seed(1)
    net = zoo.create_model("attention_seq2seq", src_vocab_size=12, tgt_vocab_size=9, fused=False).eval()
    src, mask, _ = net.example_inputs(4)
    g = greedy_decode(net, src, mask, 1, 2, 7)
    b = beam_search(net, src, mask, 1, 2, 7, beam_width=1)
    assert torch.equal(g.tokens, b.tokens)
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(net, src, mask, 1, 2, 7, beam_width=0)
    with pytest.raises(ValueError, match="alpha"):
        beam_search(net, src, mask, 1, 2, 7, alpha=-1)


# -- BLEU ------------------------------------------------------------------------------------------
def test_bleu_agrees_with_the_sacrebleu_package():
    import sacrebleu

    hyps = ["the cat sat on the mat .", "a dog runs in the park", "twenty-one thousand, two hundred",
            "it is raining today", "the quick brown fox jumps over the lazy dog"]
    refs = ["the cat sat on a mat .", "a dog is running in the park", "twenty-one thousand, two hundred",
            "it rains today", "the quick brown fox jumped over the lazy dog"]
    records = [(0, 0, h, 0) for h in hyps]
    for tok in ("13a", "char", "intl"):
        metric = CorpusSacreBLEU(tokenize=tok)
        metric.update(records[:2], refs[:2])  # two updates: corpus statistics add up
        metric.update(records[2:], refs[2:])
        ours = 100 * float(metric.compute())
        theirs = sacrebleu.corpus_bleu(hyps, [refs], tokenize=tok, smooth_method="none").score
        assert ours == pytest.approx(theirs, abs=1e-3), tok
        signature, score = sacrebleu_signature(hyps, refs, tok)
        assert score == pytest.approx(theirs) and f"tok:{tok}" in signature and "nrefs:1" in signature
    plain = CorpusBLEU()
    plain.update(records, refs)
    theirs = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", smooth_method="none").score
    assert 100 * float(plain.compute()) == pytest.approx(theirs, abs=1e-3)
    chars = CorpusBLEU(chars=True)  # character BLEU: the same figure as SacreBLEU's char tokenizer
    chars.update(records, refs)
    theirs = sacrebleu.corpus_bleu(hyps, [refs], tokenize="char", smooth_method="none").score
    assert 100 * float(chars.compute()) == pytest.approx(theirs, abs=1e-3)


# -- the task, zoo-train and zoo-translate ---------------------------------------------------------
@pytest.fixture(scope="module")
def trained_dates(tmp_path_factory):
    from zoo.cli.train import train

    tmp = tmp_path_factory.mktemp("dates")
    cfg = compose_train(["experiment=date_attention_lstm", "trainer=cpu", "trainer.max_epochs=1",
                         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=none",
                         "data.train_size=256", "data.val_size=32", "data.test_size=32", "data.batch_size=32",
                         "model.fused=false", "task.decode=beam", "task.beam_width=2"], tmp)
    record = train(cfg)
    return record, tmp


def test_task_records_bleu_signature_examples_and_plots(trained_dates):
    record, tmp = trained_dates
    assert {"test/exact_match", "test/bleu", "test/sacrebleu", "test/token_acc"} <= set(record["test"])
    assert "tok:char" in record["sacrebleu"]["signature"]
    assert record["sacrebleu"]["package_score"] == pytest.approx(100 * record["test"]["test/sacrebleu"], abs=1e-2)
    ex = record["examples"][0]
    assert len(ex["attention"]) == len(ex["out_tokens"]) and len(ex["attention"][0]) == len(ex["src_tokens"])
    assert sum(r["count"] for r in record["bleu_by_src_len"]) == 32
    assert record["decoding"]["mode"] == "beam"
    assert {"attention.png", "bleu_by_length.png"} <= set(record["plots"])


def test_translate_command(trained_dates, tmp_path, capsys, monkeypatch):
    import io

    from zoo.cli.translate import main

    record, _ = trained_dates
    ckpt = record["best_checkpoint"]
    src = tmp_path / "dates.txt"
    src.write_text("4 march 2021\n\nsamstag, 22. juni 1985\n", encoding="utf-8")
    assert main([ckpt, str(src), "--beam", "3", "--alpha", "0.7", "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["line"] for r in out] == [1, 3] and all(isinstance(r["translation"], str) for r in out)
    monkeypatch.setattr("sys.stdin", io.StringIO("4 march 2021\n"))
    assert main([ckpt, "--greedy"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


@pytest.mark.bad_input
def test_translate_command_errors(trained_dates, tmp_path, capsys):
    from zoo.cli.translate import main

    ckpt = trained_dates[0]["best_checkpoint"]
    bad = tmp_path / "bad.txt"
    bad.write_text("4 march 2021\n4 \u0436 2021\n", encoding="utf-8")
    assert main([ckpt, str(bad)]) == 2
    assert re.search(r"bad.txt:2: '\u0436' is not in the vocabulary", capsys.readouterr().err)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert main([ckpt, str(empty)]) == 2 and "empty" in capsys.readouterr().err
    assert main([ckpt, str(tmp_path / "missing.txt")]) == 2 and "no such file" in capsys.readouterr().err
    assert main([str(tmp_path / "none.ckpt"), str(bad)]) == 2
    assert "neither a checkpoint file nor a published weight" in capsys.readouterr().err


@pytest.mark.skipif("attention_seq2seq.faker_dates" not in __import__("zoo.weights").weights.list_weights(),
                    reason="the date-translation weight is not shipped")
def test_translate_a_published_weight_by_name(tmp_path, capsys):
    """The published attention model, loaded by name (hash-verified), translates dates it never
    saw in the formats of its training locales."""
    from zoo.cli.translate import main

    src = tmp_path / "dates.txt"
    src.write_text("15 mars 2021\nThursday, March 4, 2021\n22. Juni 1985\n", encoding="utf-8")
    assert main(["attention_seq2seq.faker_dates", str(src), "--beam", "3"]) == 0
    assert capsys.readouterr().out.split() == ["2021-03-15", "2021-03-04", "1985-06-22"]
