"""Sentiment classification: gensim's labelled polarity sentences and their folds, the IMDB and
SST-2 readers on tiny copies in their real formats, the bag-of-embeddings net, the text
classification task (step, metrics, predictions, pretrained vectors) and the errors bad input gets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.base import DataFileError, DatasetNotFoundError
from datamodules.text import IMDBDataModule, PolaritySentencesDataModule, SST2DataModule, polarity_path
from datamodules.text.sentiment import read_polarity, read_sst2_tsv, stratified_folds
from zoo.registry import create_model
from zoo.tasks import TextClassificationTask


@pytest.fixture(scope="module")
def polarity():
    dm = PolaritySentencesDataModule(fold=3, batch_size=8, max_length=100)
    dm.setup()
    return dm


# -- gensim's sentences ------------------------------------------------------------------------------
def test_the_labels_are_read_from_the_fasttext_prefixes():
    examples = read_polarity(polarity_path())
    assert len(examples) == 200
    labels = [y for _, y in examples]
    assert labels == [0] * 100 + [1] * 100  # __label__neg lines first, then __label__pos
    assert examples[0] == ("simplistic , silly and tedious .", 0)
    assert not any(t.startswith("__label__") for t, _ in examples)
    assert any("\u2014" in t or "é" in t for t, _ in examples)  # Windows-1252 bytes decoded


def test_folds_are_disjoint_stratified_and_cover_every_sentence():
    labels = [0] * 100 + [1] * 100
    folds = stratified_folds(labels, 10, seed=0)
    assert len(folds) == 10
    together = np.concatenate(folds)
    assert sorted(together.tolist()) == list(range(200))  # disjoint and covering
    assert all(len(f) == 20 and int(np.asarray(labels)[f].sum()) == 10 for f in folds)
    assert [f.tolist() for f in stratified_folds(labels, 10, seed=0)] == [f.tolist() for f in folds]
    assert [f.tolist() for f in stratified_folds(labels, 10, seed=1)] != [f.tolist() for f in folds]


def test_each_run_tests_its_fold_and_trains_on_the_others(polarity):
    splits = polarity.read_splits()
    test = {t for t, _ in splits["test"]}
    expected = {read_polarity(polarity_path())[i][0] for i in polarity.folds()[3]}
    assert test == expected and len(splits["test"]) == 20
    train, val = {t for t, _ in splits["train"]}, {t for t, _ in splits["val"]}
    assert not (train & test) and not (val & test) and not (train & val)
    assert len(train) + len(val) == 180 and len(val) == 18
    # the vocabulary is the training folds' only
    from datamodules.text.vocab import word_tokens
    train_words = {w for t in train for w in word_tokens(t)}
    assert set(polarity.vocab.itos[2:]) == train_words
    facts = polarity.data_facts()
    assert facts["class_names"] == ["negative", "positive"] and facts["pad_idx"] == 0


def test_batches_hold_padded_ids_lengths_and_labels(polarity):
    batch = next(iter(polarity.train_dataloader()))
    assert batch["tokens"].shape[0] == 8 and batch["tokens"].dtype == torch.long
    assert batch["lengths"].max() == batch["tokens"].shape[1] and batch["lengths"].min() >= 1
    for row, n in zip(batch["tokens"], batch["lengths"]):
        assert (row[n:] == 0).all() and (row[:n] != 0).all()
    assert set(batch["labels"].tolist()) <= {0, 1}


def test_bad_polarity_files_and_options_are_refused(tmp_path):
    bad = tmp_path / "bad.cor"
    bad.write_text("__label__neg fine .\n__label__meh what is this ?\n", encoding="cp1252")
    with pytest.raises(DataFileError, match=r"bad.cor, line 2: starts with '__label__meh'"):
        read_polarity(bad)
    bad.write_text("__label__pos good .\n__label__neg   \n", encoding="cp1252")
    with pytest.raises(DataFileError, match=r"bad.cor, line 2: an empty sentence"):
        read_polarity(bad)
    with pytest.raises(DatasetNotFoundError, match="nothere.cor"):
        read_polarity(tmp_path / "nothere.cor")
    with pytest.raises(ValueError, match=r"fold must be an integer in 0..9"):
        PolaritySentencesDataModule(fold=10)
    with pytest.raises(ValueError, match="augment must be null"):
        PolaritySentencesDataModule(augment={"x": 1})


# -- real datasets on tiny copies ------------------------------------------------------------------
def write_sst2(root, rows=None):
    folder = root / "SST-2"
    folder.mkdir(parents=True)
    rows = rows or [("a gorgeous , witty film ", 1), ("it 's a dud", 0), ("the acting is superb", 1),
                    ("dull and lifeless", 0), ("i loved every minute", 1), ("an \"unfunny\" mess", 0),
                    ("warm and funny", 1), ("tedious", 0), ("great fun", 1), ("boring , boring , boring", 0)]
    body = "".join(f"{t}\t{y}\n" for t, y in rows)
    (folder / "train.tsv").write_text("sentence\tlabel\n" + body)
    (folder / "dev.tsv").write_text("sentence\tlabel\nwitty and warm\t1\na lifeless dud\t0\n")
    (folder / "test.tsv").write_text("index\tsentence\n0\tno labels here\n")
    return folder


def test_sst2_reads_glue_tsv_files(tmp_path):
    write_sst2(tmp_path)
    dm = SST2DataModule(root=str(tmp_path), val_fraction=0.2, batch_size=4)
    dm.prepare_data()
    dm.setup()
    assert len(dm.train_set) == 8 and len(dm.val_set) == 2
    assert dm.test_set.texts == ["witty and warm", "a lifeless dud"] and dm.test_set.labels == [1, 0]
    assert 'an "unfunny" mess' in dm.train_set.texts + dm.val_set.texts  # quotes are text, not quoting
    batch = next(iter(dm.test_dataloader()))
    assert batch["labels"].tolist() == [1, 0]


def test_malformed_sst2_lines_are_named(tmp_path):
    folder = write_sst2(tmp_path)
    (folder / "train.tsv").write_text("sentence\tlabel\ngood\t1\nno label here\n")
    with pytest.raises(DataFileError, match=r"train.tsv, line 3: 1 tab-separated fields"):
        read_sst2_tsv(folder / "train.tsv")
    (folder / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\tnegative\n")
    with pytest.raises(DataFileError, match=r"train.tsv, line 3: label 'negative'"):
        read_sst2_tsv(folder / "train.tsv")
    (folder / "train.tsv").write_text("sentence\tlabel\n \t1\n")
    with pytest.raises(DataFileError, match=r"train.tsv, line 2: an empty sentence"):
        read_sst2_tsv(folder / "train.tsv")
    with pytest.raises(DataFileError, match=r"test.tsv, line 1: the header"):
        read_sst2_tsv(folder / "test.tsv")
    with pytest.raises(DatasetNotFoundError, match=r"dev.tsv not found.*data.download=true"):
        (folder / "dev.tsv").unlink()
        SST2DataModule(root=str(tmp_path)).prepare_data()


def write_imdb(root):
    reviews = {"train": {"pos": ["A great film.<br /><br />Loved it.", "Wonderful acting", "superb", "fun fun",
                                 "moving and warm"],
                         "neg": ["Awful.<br />Just awful.", "boring plot", "a dull mess", "tedious", "bad acting"]},
               "test": {"pos": ["great and warm"], "neg": ["dull and bad"]}}
    for split, classes in reviews.items():
        for label, texts in classes.items():
            folder = root / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for i, text in enumerate(texts):
                (folder / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(text)
    return root / "aclImdb"


def test_imdb_reads_the_aclimdb_folders(tmp_path):
    write_imdb(tmp_path)
    dm = IMDBDataModule(root=str(tmp_path), val_fraction=0.2, max_length=3, batch_size=4)
    dm.prepare_data()
    dm.setup()
    assert len(dm.train_set) == 8 and len(dm.val_set) == 2 and dm.test_set.labels == [0, 1]
    assert "<br" not in " ".join(dm.train_set.texts + dm.val_set.texts)
    assert max(len(s) for s in dm.train_set.ids) == 3  # cut to max_length
    # root may be the aclImdb folder itself
    dm2 = IMDBDataModule(root=str(tmp_path / "aclImdb"))
    dm2.prepare_data()


def test_imdb_missing_folders_and_empty_reviews_are_named(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"aclImdb/train/pos.*not found"):
        IMDBDataModule(root=str(tmp_path)).prepare_data()
    folder = write_imdb(tmp_path)
    (folder / "train" / "neg" / "3_1.txt").write_text("  <br />  ")
    with pytest.raises(DataFileError, match=r"3_1.txt: an empty review"):
        IMDBDataModule(root=str(tmp_path)).setup()


# -- the nets and the task ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bag_of_embeddings", "deep_averaging_network", "lstm_classifier"])
def test_nets_take_ids_with_lengths_and_ignore_the_padding(name):
    torch.manual_seed(0)
    net = create_model(name, vocab_size=30, embedding_dim=8, padding_idx=0).eval()
    x = torch.randint(1, 30, (3, 6))
    lengths = torch.tensor([6, 3, 1])
    padded = x.clone()
    for b, n in enumerate(lengths):
        padded[b, n:] = 0
    out = net(padded, lengths)
    assert out.shape == (3, 2)
    alone = torch.cat([net(x[b:b + 1, :n]) for b, n in enumerate(lengths.tolist())])
    assert torch.allclose(out, alone, atol=1e-6)  # padding never changes a text's result
    net.train()
    net(padded, lengths).sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_the_task_trains_on_a_batch_and_counts_f1_of_the_positive_class(polarity):
    facts = polarity.data_facts()
    net = create_model("bag_of_embeddings", vocab_size=facts["vocab_size"], embedding_dim=8, padding_idx=0)
    task = TextClassificationTask(net, class_names=facts["class_names"])
    batch = next(iter(polarity.train_dataloader()))
    loss, logits, labels = task.shared_step(batch, "train")
    loss.backward()
    assert torch.isfinite(loss) and logits.shape == (8, 2)
    metrics = task.build_metrics("test/")
    preds, target = task.metric_inputs(torch.tensor([[0., 1], [0, 1], [1, 0], [1, 0]]), torch.tensor([1, 0, 0, 1]),
                                       "test")
    metrics.update(preds, target)
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got == {"test/acc": 0.5, "test/f1": 0.5}  # positives: tp 1, fp 1, fn 1
    with pytest.raises(ValueError, match=r"labels \[2\] are outside 0..1"):
        task.metric_inputs(torch.zeros(1, 2), torch.tensor([2]), "val")
    bad = dict(batch, lengths=torch.zeros_like(batch["lengths"]))
    with pytest.raises(ValueError, match="an empty text"):
        task.shared_step(bad, "train")


def test_lines_of_a_file_are_classified_and_bad_files_refused(polarity, tmp_path):
    facts = polarity.data_facts()
    net = create_model("lstm_classifier", vocab_size=facts["vocab_size"], embedding_dim=8, hidden_size=8)
    task = TextClassificationTask(net, class_names=facts["class_names"]).eval()
    (tmp_path / "a.txt").write_text("A silly and tedious film.\n\nZqxwv, but funny!\n")
    (tmp_path / "b.txt").write_text("wonderful\n")
    examples, notes = zip(*(polarity.read_input(tmp_path / f) for f in ("a.txt", "b.txt")))
    assert examples[0]["texts"] == ["A silly and tedious film.", "Zqxwv, but funny!"]
    assert "zqxwv" in notes[0]["unknown_words"]
    with torch.no_grad():
        outputs = task.predict_step(polarity.collate(list(examples)))
    assert [len(o) for o in outputs] == [2, 1]
    described = task.describe_prediction(outputs[0])
    assert [d["text"] for d in described["lines"]] == examples[0]["texts"]
    assert all(d["class"] in ("negative", "positive") and 0.5 <= d["probability"] <= 1 for d in described["lines"])
    (tmp_path / "empty.txt").write_text(" \n\n")
    with pytest.raises(ValueError, match="empty.txt: no words to classify"):
        polarity.read_input(tmp_path / "empty.txt")
    (tmp_path / "long.txt").write_text("fine\n" + "word " * 101 + "\n")
    with pytest.raises(ValueError, match=r"long.txt, line 2: 101 tokens; .*max_length=100"):
        polarity.read_input(tmp_path / "long.txt")


def test_pretrained_vectors_start_the_embedding_and_may_be_frozen(polarity, tmp_path):
    facts = polarity.data_facts()
    vocab = facts["vocab"]
    words = [vocab[5], vocab[9], "notinthevocabulary"]
    (tmp_path / "vec.txt").write_text("3 4\n" + "".join(f"{w} {i} 1 2 3\n" for i, w in enumerate(words)))
    net = create_model("bag_of_embeddings", vocab_size=len(vocab), embedding_dim=4, padding_idx=0)
    task = TextClassificationTask(net, vocab=vocab, pretrained_vectors=str(tmp_path / "vec.txt"),
                                  freeze_embeddings=True)
    before = net.embedding.weight[7].clone()
    assert task.load_word_vectors(tmp_path / "vec.txt") == 2
    assert net.embedding.weight[5].tolist() == [0, 1, 2, 3] and net.embedding.weight[9].tolist() == [1, 1, 2, 3]
    assert torch.equal(net.embedding.weight[7], before) and not net.embedding.weight.requires_grad
    with pytest.raises(ValueError, match="model.embedding_dim=4"):
        TextClassificationTask(create_model("bag_of_embeddings", vocab_size=len(vocab), embedding_dim=8),
                               vocab=vocab).load_word_vectors(tmp_path / "vec.txt")
    with pytest.raises(FileNotFoundError, match="nothere.vec"):
        task.load_word_vectors(tmp_path / "nothere.vec")
