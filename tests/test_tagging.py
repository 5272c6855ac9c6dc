"""Sequence tagging: the generated NER data (with its right-context cases), the tagging task's
masked loss and exact metrics, predictions, and the errors bad input gets."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from datamodules.text import FakerNERDataModule, collate_tagged, tag_names
from datamodules.text.ner import AMBIGUOUS
from zoo.registry import create_model
from zoo.tasks import TaggingTask
from zoo.tasks.tagging import EntityF1, TokenAccuracy, TokenF1, entity_spans

BIO = tag_names("BIO")  # O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG


@pytest.fixture(scope="module")
def ner():
    dm = FakerNERDataModule(train_sentences=600, val_sentences=50, test_sentences=50, batch_size=16)
    dm.setup()
    return dm


def test_entity_spans_read_bio_io_and_unnamed_tags():
    # B-PER I-PER O B-LOC I-LOC I-PER  -> PER 0-2, LOC 3-5, and a stray I-PER opens PER 5-6
    assert entity_spans([1, 2, 0, 3, 4, 2], BIO) == {(0, 2, "PER"), (3, 5, "LOC"), (5, 6, "PER")}
    assert entity_spans([1, 1, 2], BIO) == {(0, 1, "PER"), (1, 3, "PER")}  # B after B: two people
    io = tag_names("IO")  # O, I-PER, I-LOC, I-ORG
    assert entity_spans([1, 1, 0, 2, 3], io) == {(0, 2, "PER"), (3, 4, "LOC"), (4, 5, "ORG")}
    assert entity_spans([0, 4, 4, 0, 2], None) == {(1, 3, "4"), (4, 5, "2")}


def test_f1_and_accuracy_are_ratios_of_counts():
    target = [torch.tensor([1, 2, 0, 3, 0]), torch.tensor([5, 6, 0])]  # entities: PER, LOC, ORG
    preds = [torch.tensor([1, 2, 0, 0, 0]), torch.tensor([5, 0, 3])]   # PER right; LOC missed; ORG cut; LOC extra
    f1 = EntityF1(BIO)
    f1.update(preds, target)
    assert (f1.tp.item(), f1.fp.item(), f1.fn.item()) == (1, 2, 2)
    assert f1.compute().item() == pytest.approx(2 / (2 + 2 + 2))
    tok = TokenF1(BIO)
    tok.update(preds, target)  # non-O tokens: 1,2,3 | 5,6 ; predicted non-O: 1,2 | 5,3
    assert (tok.tp.item(), tok.fp.item(), tok.fn.item()) == (3, 1, 2)
    acc = TokenAccuracy()
    acc.update(preds, target)
    assert acc.compute().item() == pytest.approx(5 / 8)


class Fixed(nn.Module):
    """Returns the logits it is given, for tokens of any length: (B, T) -> (B, T, K)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, tokens, lengths=None):
        return self.logits[:, :tokens.shape[1]]


def test_the_loss_and_metrics_ignore_padding():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, len(BIO))
    batch = collate_tagged([(torch.tensor([3, 4, 5, 6, 7]), torch.tensor([1, 2, 0, 0, 3])),
                            (torch.tensor([3, 4]), torch.tensor([0, 5]))])
    assert batch["tags"][1, 2:].tolist() == [-100] * 3 and batch["tokens"][1, 2:].tolist() == [0] * 3
    task = TaggingTask(Fixed(logits), tags=BIO)
    loss, preds, target = task.shared_step(batch, "train")
    changed = logits.clone()
    changed[1, 2:] = 100.0  # anything at the padded steps
    loss2, preds2, _ = TaggingTask(Fixed(changed), tags=BIO).shared_step(batch, "train")
    assert loss.item() == pytest.approx(loss2.item())
    assert [len(p) for p in preds] == [5, 2] and [t.tolist() for t in target] == [[1, 2, 0, 0, 3], [0, 5]]
    assert all(torch.equal(a, b) for a, b in zip(preds, preds2))
    real = torch.nn.functional.cross_entropy(torch.cat([logits[0], logits[1, :2]]), torch.tensor([1, 2, 0, 0, 3, 0, 5]))
    assert loss.item() == pytest.approx(real.item(), rel=1e-6)  # the mean over the 7 real tokens


def test_bad_batches_and_tag_sets_are_refused():
    with pytest.raises(ValueError, match="'O'"):
        TaggingTask(Fixed(torch.zeros(1, 2, 2)), tags=["B-PER", "I-PER"])
    with pytest.raises(ValueError, match="num_tags=5"):
        TaggingTask(Fixed(torch.zeros(1, 2, 2)), tags=BIO, num_tags=5)
    task = TaggingTask(Fixed(torch.zeros(2, 3, len(BIO))), tags=BIO)
    batch = {"tokens": torch.zeros(2, 3, dtype=torch.long), "tags": torch.zeros(2, 3, dtype=torch.long),
             "lengths": torch.tensor([3, 0])}
    with pytest.raises(ValueError, match="empty sentence"):
        task.shared_step(batch, "val")
    narrow = TaggingTask(Fixed(torch.zeros(2, 3, 4)), tags=BIO)
    batch["lengths"] = torch.tensor([3, 1])
    with pytest.raises(ValueError, match="scores 4 tags but the data has 7"):
        narrow.shared_step(batch, "val")


def test_the_data_holds_sentences_only_the_right_context_disambiguates(ner):
    """The same word after the same left context, a person in one sentence and not in another."""
    readings: dict[tuple, set] = {}
    for words, tags, ambiguous in ner.train_set.sentences:
        if not ambiguous:
            continue
        for i, w in enumerate(words):
            if w in AMBIGUOUS:
                readings.setdefault((tuple(words[:i]), w), set()).add(tags[i])
    both = [k for k, tags in readings.items() if tags == {"B-PER", "O"}]
    assert len(both) >= 5, readings
    assert any(left == () for left, _ in both)  # at the very start of a sentence
    n_amb = sum(a for _, _, a in ner.train_set.sentences)
    assert 0.2 < n_amb / len(ner.train_set) < 0.4  # ambiguous_fraction 0.3


def test_the_ner_batches_and_facts(ner):
    facts = ner.data_facts()
    assert facts["tags"] == BIO and facts["num_tags"] == 7 and facts["vocab"][:2] == ["<pad>", "<unk>"]
    batch = next(iter(ner.train_dataloader()))
    assert batch["tokens"].shape == batch["tags"].shape and batch["tokens"].shape[0] == 16
    assert int(batch["lengths"].max()) == batch["tokens"].shape[1]
    again = FakerNERDataModule(train_sentences=600, val_sentences=50, test_sentences=50)
    again.setup()
    assert again.train_set.sentences == ner.train_set.sentences  # deterministic
    io = FakerNERDataModule(train_sentences=20, val_sentences=5, test_sentences=5, scheme="IO")
    assert io.data_facts()["tags"] == ["O", "I-PER", "I-LOC", "I-ORG"]
    with pytest.raises(ValueError, match="scheme must be BIO or IO"):
        FakerNERDataModule(scheme="BILOU")


def test_a_sentence_file_is_tagged_and_bad_files_are_refused(ner, tmp_path):
    facts = ner.data_facts()
    net = create_model("lstm_tagger", vocab_size=facts["vocab_size"], num_tags=facts["num_tags"], hidden_size=8,
                       embedding_dim=8)
    task = TaggingTask(net, tags=facts["tags"]).eval()
    (tmp_path / "s.txt").write_text("Teddy Zqxwv was president.\n")
    example, note = ner.read_input(tmp_path / "s.txt")
    assert example["words"] == ["teddy", "zqxwv", "was", "president", "."] and "zqxwv" in note["unknown_words"]
    assert example["tokens"][1] == facts["unk_idx"]
    with torch.no_grad():
        [out] = task.predict_step(ner.collate([example]))
    described = task.describe_prediction(out)
    assert [t["word"] for t in described["tokens"]] == example["words"]
    assert all(t["tag"] in BIO for t in described["tokens"]) and isinstance(described["entities"], list)
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ValueError, match="empty.txt: no words to tag"):
        ner.read_input(tmp_path / "empty.txt")
    (tmp_path / "long.txt").write_text("word " * 70)
    with pytest.raises(ValueError, match="max_length=64"):
        ner.read_input(tmp_path / "long.txt")
