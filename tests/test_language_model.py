"""Language modelling: the text datamodules (faker names, gensim's Lee corpus, Penn Treebank and
WikiText-2 read from tiny copies in their own formats), the task's exact perplexity, padding,
truncated BPTT, sampling, and the errors bad input gets."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from datamodules.base import DataFileError, DatasetNotFoundError
from datamodules.text import (BPTTWindows, FakerNamesDataModule, LeeCorpusDataModule, PennTreebankDataModule,
                              UnknownTokenError, Vocabulary, WikiText2DataModule, collate_sequences, word_tokens)
from zoo.registry import create_model
from zoo.tasks import LanguageModelTask
from zoo.tasks.language_model import Perplexity, draw_tokens


class Scores(nn.Module):
    """Logits given by hand, the same at every position: (B, T) -> (B, T, V)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, tokens, lengths=None):
        return self.logits.expand(*tokens.shape, -1)


@pytest.fixture(scope="module")
def names():
    dm = FakerNamesDataModule(batch_size=8)
    dm.setup()
    return dm


# -- perplexity ------------------------------------------------------------------------------------
def test_uniform_logits_give_a_perplexity_of_the_vocabulary_size():
    v = 7
    task = LanguageModelTask(Scores(torch.zeros(v)), unigram_counts=[3] * v)
    batch = collate_sequences([torch.tensor([1, 2, 3, 4]), torch.tensor([1, 5]), torch.tensor([1, 6, 6])])
    loss, row_nll, counts = task.shared_step(batch, "test")
    assert counts.tolist() == [3, 1, 2]  # padding is not counted
    assert loss.item() == pytest.approx(math.log(v), rel=1e-6)
    metrics = task.build_metrics("test/")
    metrics.update(row_nll, counts)
    out = metrics.compute()
    assert out["test/perplexity"].item() == pytest.approx(v, rel=1e-6)
    assert out["test/unigram_perplexity"].item() == pytest.approx(v, rel=1e-6)  # equal counts: uniform too


def test_perplexity_is_the_exponent_of_summed_nll_over_all_tokens_not_a_mean_of_batches():
    m = Perplexity(0)
    m.update(torch.tensor([[2.0], [4.0]]), torch.tensor([1, 1]))  # batch 1: 2 tokens, NLL 6
    m.update(torch.tensor([[10.0]]), torch.tensor([8]))           # batch 2: 8 tokens, NLL 10
    assert m.compute().item() == pytest.approx(math.exp(16 / 10))


def test_the_unigram_baseline_is_the_add_one_smoothed_training_distribution():
    counts = [0, 0, 6, 2]  # ids 2 and 3 seen as targets 6 and 2 times
    task = LanguageModelTask(Scores(torch.zeros(4)), unigram_counts=counts)
    batch = collate_sequences([torch.tensor([1, 2, 3])])  # targets 2, 3
    _, row_nll, _ = task.shared_step(batch, "test")
    expected = -(math.log(7 / 12) + math.log(3 / 12))
    assert row_nll[0, 1].item() == pytest.approx(expected, rel=1e-6)


def test_padding_never_changes_the_loss_or_the_counts():
    torch.manual_seed(0)
    net = create_model("char_rnn_lm", vocab_size=9, hidden_size=16, embedding_dim=8)
    task = LanguageModelTask(net)
    alone = collate_sequences([torch.tensor([1, 4, 5, 2])])
    padded = collate_sequences([torch.tensor([1, 4, 5, 2]), torch.tensor([1, 3, 3, 3, 3, 3, 3, 2])])
    padded["tokens"][0, 3:] = 7  # whatever sits in the padding
    net.eval()
    a = task.shared_step(alone, "val")
    b = task.shared_step(padded, "val")
    assert b[2][0] == a[2][0] == 3
    assert torch.allclose(b[1][0], a[1][0], atol=1e-5)


def test_an_empty_sequence_is_refused():
    task = LanguageModelTask(Scores(torch.zeros(5)))
    batch = {"tokens": torch.zeros(2, 3, dtype=torch.long), "targets": torch.zeros(2, 3, dtype=torch.long),
             "lengths": torch.tensor([3, 0])}
    with pytest.raises(ValueError, match="empty sequence"):
        task.shared_step(batch, "train")


# -- truncated BPTT -----------------------------------------------------------------------------------
def test_bptt_windows_continue_each_row():
    stream = torch.arange(103)
    ds = BPTTWindows(stream, rows=4, bptt=7)  # 4 rows of 25 (3 tokens dropped), 24 targets per row
    assert ds.tokens_counted == 4 * 24 and len(ds) == 4  # windows of 7, 7, 7, 3
    w = [ds[k] for k in range(len(ds))]
    assert [x["tokens"].shape[1] for x in w] == [7, 7, 7, 3]
    assert torch.equal(w[0]["tokens"][:, 0], torch.tensor([0, 25, 50, 75]))
    for a, b in zip(w, w[1:]):
        assert torch.equal(b["tokens"][:, 0], a["targets"][:, -1])  # the next window goes on
        assert torch.equal(a["targets"], a["tokens"] + 1)
    with pytest.raises(ValueError, match="too short"):
        BPTTWindows(torch.arange(5), rows=4, bptt=3)


def test_the_carried_state_makes_two_windows_one_sequence():
    torch.manual_seed(0)
    net = create_model("word_lstm_lm", vocab_size=11, embedding_dim=8, hidden_size=8, num_layers=2, dropout=0.0)
    net.eval()
    ds = BPTTWindows(torch.randint(0, 11, (2 * 13,)), rows=2, bptt=6)
    task = LanguageModelTask(net)
    with torch.no_grad():
        parts = [task.shared_step(ds[k], "val")[1] for k in range(len(ds))]
        whole = task.shared_step({"tokens": ds.data[:, :-1], "targets": ds.data[:, 1:]}, "val")[1]
        cut = LanguageModelTask(net, carry_state=False)
        restarted = sum(cut.shared_step(ds[k], "val")[1] for k in range(len(ds)))
    assert torch.allclose(sum(parts), whole, atol=1e-4)  # windows 0, 1, 2 read as one stream
    assert not torch.allclose(restarted, whole, atol=1e-4)  # from zeros at each window: another figure


# -- sampling ---------------------------------------------------------------------------------------------
def test_greedy_and_top_1_sampling_agree_and_stop_at_the_end_token():
    torch.manual_seed(0)
    net = create_model("char_rnn_lm", vocab_size=6, hidden_size=8, embedding_dim=4).eval()
    prompt = torch.tensor([[1, 3]])
    greedy = draw_tokens(net, prompt, 12, temperature=0)
    top1 = draw_tokens(net, prompt, 12, temperature=1.5, top_k=1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(greedy, top1)
    ended = draw_tokens(net, prompt.expand(4, -1), 12, generator=torch.Generator().manual_seed(0), end_token=2)
    assert ended.shape == (4, 12)
    for row in ended.tolist():  # after the end token, only end tokens
        if 2 in row:
            assert set(row[row.index(2):]) == {2}
    with pytest.raises(ValueError, match="temperature"):
        draw_tokens(net, prompt, 3, temperature=-1)


def test_samples_are_decoded_with_the_vocabulary(names):
    facts = names.data_facts()
    net = create_model("char_rnn_lm", vocab_size=facts["vocab_size"], hidden_size=16, embedding_dim=8)
    task = LanguageModelTask(net, **{k: facts[k] for k in LanguageModelTask.data_facts_used}, num_samples=4,
                             max_new_tokens=10)
    [(prompt, samples)] = task.predict_step(names.collate([{"prompt": names.encode_prompt("ma")}]))
    assert samples.shape == (4, 10)
    out = task.describe_prediction((prompt, samples))
    assert out["prompt"] == "ma" and len(out["samples"]) == 4
    assert all(s.startswith("ma") and "<pad>" not in s and "<s>" not in s for s in out["samples"])
    assert len(task.test_outputs()["samples"]) == 4


# -- the names ------------------------------------------------------------------------------------------
def test_names_are_split_into_disjoint_sets_with_a_character_vocabulary(names):
    train, val, test = (set(names.splits[s]) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert len(train) > 2000 and len(val) > 200
    facts = names.data_facts()
    assert facts["vocab"][:4] == ["<pad>", "<s>", "</s>", "<unk>"] and facts["token_join"] == ""
    assert len(facts["unigram_counts"]) == facts["vocab_size"]
    assert facts["unigram_counts"][facts["eos_idx"]] == len(train)  # each name ends once
    batch = next(iter(names.train_dataloader()))
    assert batch["tokens"].shape == batch["targets"].shape and batch["tokens"].shape[0] == 8
    assert (batch["tokens"][:, 0] == facts["bos_idx"]).all()
    ends = batch["targets"].gather(1, (batch["lengths"] - 1)[:, None])
    assert (ends == facts["eos_idx"]).all()
    again = FakerNamesDataModule()
    again.setup()
    assert again.splits == names.splits  # deterministic


def test_a_prompt_file_becomes_a_prompt_and_bad_ones_are_refused(names, tmp_path):
    (tmp_path / "p.txt").write_text("Ma\n")
    example, _ = names.read_input(tmp_path / "p.txt")
    assert names.vocab.decode(example["prompt"].tolist()) == ["<s>", "m", "a"]
    (tmp_path / "empty.txt").write_text("")
    assert names.read_input(tmp_path / "empty.txt")[0]["prompt"].tolist() == [names.vocab.index("<s>")]
    (tmp_path / "odd.txt").write_text("ma§")
    with pytest.raises(UnknownTokenError, match="'§' is not in the vocabulary") as err:
        names.read_input(tmp_path / "odd.txt")
    assert "odd.txt" in str(err.value)
    (tmp_path / "long.txt").write_text("a" * 40)
    with pytest.raises(ValueError, match="max_length=24"):
        names.read_input(tmp_path / "long.txt")


def test_a_vocabulary_without_unknown_token_names_the_token_it_refuses():
    v = Vocabulary(["<pad>", "a", "b"])
    assert v.encode("ab") == [1, 2]
    with pytest.raises(UnknownTokenError, match="'c' is not in the vocabulary"):
        v.encode("abc", where="line 3")
    assert word_tokens("Mr. O'Neill's dog, 4:00pm!") == ["mr", ".", "o'neill's", "dog", ",", "4", ":", "00pm", "!"]


# -- word corpora ---------------------------------------------------------------------------------------
def test_the_lee_corpus_streams_with_a_training_vocabulary():
    dm = LeeCorpusDataModule(batch_size=10, eval_batch_size=5, bptt=20)
    dm.setup()
    facts = dm.data_facts()
    assert facts["vocab"][:2] == ["<unk>", "<eos>"] and facts["token_join"] == " "
    d = dm.describe()
    assert d["train_tokens"] > 40000 and 0 < d["test_unk_rate"] < 0.3
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"].shape == (10, 20) and batch["position"] == 0
    assert len(dm.train_set) == -(-(dm.train_set.data.shape[1] - 1) // 20)


PTB = ["no it was n't black monday", "but while the new york stock exchange did n't fall apart",
       "the <unk> company said N shares rose"]


def _write(folder, names, lines):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("".join(f" {line} \n" for line in lines))  # PTB's spacing


def test_penn_treebank_reads_its_own_files(tmp_path):
    _write(tmp_path / "ptb", ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"], PTB * 4)
    dm = PennTreebankDataModule(root=str(tmp_path), batch_size=2, eval_batch_size=2, bptt=5)
    dm.prepare_data()
    dm.setup()
    facts = dm.data_facts()
    assert "<unk>" in facts["vocab"] and "n't" in facts["vocab"] and "N" in facts["vocab"]
    n = sum(len(line.split()) + 1 for line in PTB * 4)  # each line and its <eos>
    assert len(dm.streams["train"]) == n
    assert dm.vocab.decode(dm.streams["train"][:6].tolist()) == ["no", "it", "was", "n't", "black", "monday"]
    assert dm.vocab.decode(dm.streams["train"][6:7].tolist()) == ["<eos>"]


def test_wikitext2_skips_blank_lines_and_keeps_headings(tmp_path):
    lines = [" = Valkyria Chronicles III = ", "", " Senjō no Valkyria 3 : <unk> Chronicles ( Japanese ) ", ""]
    for name in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"):
        (tmp_path / name).write_text("\n".join(lines * 3) + "\n")
    dm = WikiText2DataModule(root=str(tmp_path), batch_size=2, eval_batch_size=1, bptt=4)
    dm.setup()
    words = dm.vocab.decode(dm.streams["train"].tolist())
    assert words[:6] == ["=", "Valkyria", "Chronicles", "III", "=", "<eos>"]
    assert words.count("<eos>") == 6  # the blank lines are not sentences


def test_a_missing_or_empty_corpus_file_is_named(tmp_path):
    _write(tmp_path, ["ptb.train.txt", "ptb.valid.txt"], PTB)
    dm = PennTreebankDataModule(root=str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="ptb.test.txt"):
        dm.prepare_data()
    with pytest.raises(DatasetNotFoundError, match="ptb.test.txt"):
        dm.setup()
    (tmp_path / "ptb.test.txt").write_text("\n  \n")
    with pytest.raises(DataFileError, match=r"ptb.test.txt: the file is empty"):
        PennTreebankDataModule(root=str(tmp_path)).setup()


def test_a_word_prompt_maps_unknown_words_and_refuses_an_overlong_one(tmp_path):
    _write(tmp_path, ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"], PTB * 4)
    dm = PennTreebankDataModule(root=str(tmp_path), batch_size=2, eval_batch_size=2, max_prompt_length=5)
    (tmp_path / "p.txt").write_text("the zebra company")
    example, note = dm.read_input(tmp_path / "p.txt")
    assert dm.vocab.decode(example["prompt"].tolist()) == ["<eos>", "the", "<unk>", "company"]
    assert note == {"unknown_words": ["zebra"]}
    (tmp_path / "long.txt").write_text("the company said " * 3)
    with pytest.raises(ValueError, match="max_prompt_length=5"):
        dm.read_input(tmp_path / "long.txt")
