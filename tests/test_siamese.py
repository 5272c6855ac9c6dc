"""Siamese networks end to end: the P x K sampler, the one-shot digits (classes held out of
training), LFW read from a tiny copy in torchvision's on-disk layout, the metric-learning task
through zoo-train and its checkpoint, and face verification / recognition (``zoo.faces`` and the
``zoo-face`` command) on image files."""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from datamodules import DataFileError, DatasetNotFoundError
from datamodules.vision.lfw import LFWDataModule, read_pairs, read_people
from datamodules.vision.oneshot import (SQUARE_SYMMETRIES, MNIST5kOneShotDataModule, PKBatchSampler, apply_symmetry,
                                        compose_symmetries)
from zoo.cli.face import main as face_main
from zoo.cli.train import train
from zoo.faces import FaceDatabase, FaceError, FaceModel, identify, verify
from zoo.tasks import load_task
from zoo.tasks.metric_learning import MetricLearningTask

from conftest import compose_train

bad_input = pytest.mark.bad_input
QUICK = ["trainer=cpu", "logger=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


# -- the P x K sampler --------------------------------------------------------------------------------

def test_pk_batches_hold_p_classes_of_k_and_follow_the_seed():
    labels = torch.arange(6).repeat_interleave(10)  # 6 classes x 10
    sampler = PKBatchSampler(labels, p=3, k=4, generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 60 // 12
    for b in batches:
        classes, counts = torch.unique(labels[b], return_counts=True)
        assert len(classes) == 3 and counts.tolist() == [4, 4, 4]
        assert len(set(b)) == 12  # no example twice in a batch (every class has >= k)
    again = list(PKBatchSampler(labels, p=3, k=4, generator=torch.Generator().manual_seed(0)))
    assert again == batches
    other = list(PKBatchSampler(labels, p=3, k=4, generator=torch.Generator().manual_seed(1)))
    assert other != batches


def test_pk_batches_under_ddp_come_from_each_process_own_share_of_the_data():
    """Lightning hands a ``DistributedSampler`` to the batch sampler of each DDP process: the
    processes then draw disjoint examples, as many batches each, and a new share every epoch."""
    from torch.utils.data import DistributedSampler

    labels = torch.arange(6).repeat_interleave(10)
    single = PKBatchSampler(labels, p=3, k=4)
    assert single.batch_size == 12 and single.drop_last and isinstance(single.sampler, torch.utils.data.RandomSampler)

    def epoch(rank, e):
        dist = DistributedSampler(range(len(labels)), num_replicas=2, rank=rank, shuffle=True, seed=0)
        dist.set_epoch(e)
        sampler = PKBatchSampler(labels, p=3, k=2, batches_per_epoch=8, generator=torch.Generator().manual_seed(0),
                                 sampler=dist)
        return set(dist), list(sampler)

    for e in (0, 1):
        (share0, batches0), (share1, batches1) = epoch(0, e), epoch(1, e)
        assert not share0 & share1 and len(share0) == len(share1) == 30
        assert len(batches0) == len(batches1) == 4  # the epoch's 8 batches, shared out
        for share, batches in ((share0, batches0), (share1, batches1)):
            for b in batches:
                assert set(b) <= share
                classes, counts = torch.unique(labels[b], return_counts=True)
                assert len(classes) == 3 and counts.tolist() == [2, 2, 2]
    assert epoch(0, 0)[0] != epoch(0, 1)[0]  # reshuffled between epochs


def test_pk_batches_drawn_by_size_meet_a_big_class_as_often_as_its_examples_say():
    """``class_draw="by_size"``: two classes of 400 among twenty of 10 are in nearly every batch
    (each example then seen about as often), where a uniform draw gives them 3 batches in 11."""
    labels = torch.cat([torch.zeros(400), torch.ones(400), torch.arange(2, 22).repeat_interleave(10)]).long()
    counts = {}
    for draw in ("uniform", "by_size"):
        sampler = PKBatchSampler(labels, p=6, k=2, batches_per_epoch=200, generator=torch.Generator().manual_seed(0),
                                 class_draw=draw)
        batches = list(sampler)
        for b in batches:
            classes, per_class = torch.unique(labels[b], return_counts=True)
            assert len(classes) == 6 and per_class.tolist() == [2] * 6  # still P distinct classes x K
        counts[draw] = sum(int(labels[b].eq(0).any()) for b in batches) / len(batches)
        again = list(PKBatchSampler(labels, p=6, k=2, batches_per_epoch=200,
                                    generator=torch.Generator().manual_seed(0), class_draw=draw))
        assert again == batches
    assert abs(counts["uniform"] - 6 / 22) < 0.08 and counts["by_size"] > 0.9


@bad_input
def test_pk_sampler_refuses_impossible_batches():
    labels = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"p \(classes per batch\) must be an int in 1..2"):
        PKBatchSampler(labels, p=3, k=2)
    with pytest.raises(ValueError, match="k .* must be an int >= 2"):
        PKBatchSampler(labels, p=2, k=1)
    with pytest.raises(ValueError, match="class_draw must be one of uniform, by_size, got 'weighted'"):
        PKBatchSampler(labels, p=2, k=2, class_draw="weighted")
    with pytest.raises(ValueError, match="MNIST5kOneShotDataModule: class_draw must be one of uniform, by_size"):
        MNIST5kOneShotDataModule(class_draw="weighted")


# -- one-shot digits ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    dm = MNIST5kOneShotDataModule()
    dm.setup()
    return dm


def test_one_shot_digits_hold_the_test_classes_out_of_training(digits):
    train_y = digits.train_set.tensors[1]
    val_y, test_y = digits.val_set.tensors[1], digits.test_set.tensors[1]
    assert set(train_y.tolist()) == {0, 1, 2, 3, 4} and len(train_y) == 2500
    assert set(val_y.tolist()) == set(test_y.tolist()) == {5, 6, 7, 8, 9}
    assert len(val_y) == 500 and len(test_y) == 2000
    # val and test hold other digits of the same classes: no image in both
    val_x, test_x = digits.val_set.tensors[0].flatten(1), digits.test_set.tensors[0].flatten(1)
    assert not (torch.cdist(val_x[:100], test_x).min(1).values == 0).any()
    assert len(set(test_y[:250].tolist())) == 5  # shuffled: an evaluation batch mixes classes
    x, y = next(iter(digits.train_dataloader()))
    assert x.shape == (40, 1, 28, 28) and torch.unique(y, return_counts=True)[1].tolist() == [8] * 5
    assert digits.data_facts()["test_classes"] == [5, 6, 7, 8, 9]


@bad_input
def test_one_shot_digits_refuse_bad_settings():
    with pytest.raises(ValueError, match=r"must be disjoint .* both hold \[4\]"):
        MNIST5kOneShotDataModule(train_classes=[0, 1, 2, 3, 4], test_classes=[4, 5, 6])
    with pytest.raises(ValueError, match="batch_size must be a multiple of samples_per_class=8"):
        MNIST5kOneShotDataModule(batch_size=30)
    with pytest.raises(ValueError, match="only 5 training classes"):
        MNIST5kOneShotDataModule(batch_size=48, samples_per_class=8)


# -- class augmentation by the symmetries of the square ----------------------------------------------

def test_square_symmetries_compose_as_the_images_do():
    x = torch.randn(2, 1, 5, 5)
    for g in SQUARE_SYMMETRIES:
        for h in SQUARE_SYMMETRIES:
            assert torch.equal(apply_symmetry(apply_symmetry(x, h), g), apply_symmetry(x, compose_symmetries(g, h)))
    assert torch.equal(apply_symmetry(x, "flip_rot180"), torch.flip(x, dims=(-2,)))  # the top-bottom mirror


def test_class_transforms_make_new_training_classes_and_leave_val_and_test_alone(digits):
    rot = MNIST5kOneShotDataModule(class_transforms="rot4", batch_size=80)
    rot.setup()
    x, y = rot.train_set.tensors
    classes, counts = torch.unique(y, return_counts=True)
    assert len(y) == 4 * 2500 and len(classes) == 20 and counts.tolist() == [500] * 20
    assert set((classes % 10).tolist()) == {0, 1, 2, 3, 4}  # every new class comes from a training digit
    base_x, base_y = digits.train_set.tensors
    assert torch.equal(x[:2500], base_x) and torch.equal(y[:2500], base_y)
    assert torch.equal(x[2500:5000], torch.rot90(base_x, 1, dims=(-2, -1))) and torch.equal(y[2500:5000], base_y + 10)
    for split in ("val_set", "test_set"):  # unseen classes: the same digits, untransformed
        for a, b in zip(getattr(rot, split).tensors, getattr(digits, split).tensors):
            assert torch.equal(a, b)
    again = MNIST5kOneShotDataModule(class_transforms="rot4", batch_size=80)
    again.setup()
    assert torch.equal(again.train_set.tensors[0], x) and torch.equal(again.train_set.tensors[1], y)
    xb, yb = next(iter(rot.train_dataloader()))
    assert xb.shape == (80, 1, 28, 28) and torch.unique(yb, return_counts=True)[1].tolist() == [8] * 10
    assert rot.describe()["train_identities"] == 20


def test_rot4_flip_makes_forty_classes_or_merges_the_symmetric_digits():
    full = MNIST5kOneShotDataModule(class_transforms="rot4_flip")
    merged = MNIST5kOneShotDataModule(class_transforms="rot4_flip", merge_symmetric=True)
    assert len(set(full.class_labels.values())) == 40
    assert len(set(merged.class_labels.values())) == 2 + 2 + 8 + 4 + 8
    for c in (0, 1):  # an upright oval or stroke: a half turn and both mirrors leave it alike
        assert {merged.class_labels[(c, g)] for g in ("id", "rot180", "flip", "flip_rot180")} == {c}
        assert len({merged.class_labels[(c, g)] for g in ("rot90", "rot270", "flip_rot90", "flip_rot270")}) == 1
    assert merged.class_labels[(3, "flip_rot180")] == 3 and merged.class_labels[(3, "flip")] != 3
    assert len({merged.class_labels[(2, g)] for g in SQUARE_SYMMETRIES}) == 8
    merged.setup()
    assert len(torch.unique(merged.train_set.tensors[1])) == 24 and len(merged.train_set) == 8 * 2500


@bad_input
def test_class_transforms_refuse_unknown_names_and_too_many_classes_per_batch():
    with pytest.raises(ValueError, match="class_transforms must be one of none, rot4, rot4_flip"):
        MNIST5kOneShotDataModule(class_transforms="rot8")
    with pytest.raises(ValueError, match="only 20 training classes"):
        MNIST5kOneShotDataModule(class_transforms="rot4", batch_size=8 * 21)


# -- LFW, from a tiny copy in torchvision's layout --------------------------------------------------------

TRAIN_PEOPLE = [("Ada_Lovelace", 3), ("Alan_Turing", 2), ("Grace_Hopper", 2), ("Karen_Jones", 1),
                ("Claude_Shannon", 2), ("John_Neumann", 2)]
TEST_PEOPLE = [("Emmy_Noether", 2), ("Kurt_Godel", 3), ("Ida_Rhodes", 1)]


def write_face(path: Path, seed: int, size: int = 250) -> None:
    """A 250x250 JPEG: a coloured disc (the 'face') on a noisy background."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    img[disc] = rng.integers(80, 255, 3, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, "JPEG", quality=90)


def write_lfw(data_dir: Path) -> Path:
    """``<data_dir>/lfw-py/`` as torchvision's LFWPeople and LFWPairs read it."""
    root = data_dir / "lfw-py"
    seed = 0
    for name, count in TRAIN_PEOPLE + TEST_PEOPLE:
        for k in range(1, count + 1):
            write_face(root / "lfw_funneled" / name / f"{name}_{k:04d}.jpg", seed)
            seed += 1
    for file, people in (("peopleDevTrain.txt", TRAIN_PEOPLE), ("peopleDevTest.txt", TEST_PEOPLE)):
        (root / file).write_text(f"{len(people)}\n" + "".join(f"{n}\t{c}\n" for n, c in people))
    (root / "lfw-names.txt").write_text("".join(f"{n}\t{c}\n" for n, c in sorted(TRAIN_PEOPLE + TEST_PEOPLE)))
    # 2 matched pairs "<Name>\t<i>\t<j>", then 2 mismatched "<Name>\t<i>\t<Other>\t<j>"
    (root / "pairsDevTest.txt").write_text("2\nKurt_Godel\t1\t3\nEmmy_Noether\t1\t2\n"
                                           "Emmy_Noether\t2\tKurt_Godel\t1\nIda_Rhodes\t1\tKurt_Godel\t2\n")
    return root


def test_lfw_reads_people_and_pairs_from_torchvision_layout(tmp_path):
    root = write_lfw(tmp_path)
    assert read_people(root / "peopleDevTest.txt") == TEST_PEOPLE
    pairs = read_pairs(root / "pairsDevTest.txt", root / "lfw_funneled")
    assert [p[2] for p in pairs] == [1, 1, 0, 0]
    assert pairs[0][0].name == "Kurt_Godel_0001.jpg" and pairs[0][1].name == "Kurt_Godel_0003.jpg"
    assert pairs[3][1] == root / "lfw_funneled" / "Kurt_Godel" / "Kurt_Godel_0002.jpg"

    dm = LFWDataModule(data_dir=str(tmp_path), batch_size=8, samples_per_class=2, image_size=32, val_fraction=0.2)
    dm.prepare_data()
    dm.setup()
    # training people with >= 2 images: 5 of 6, one held out for validation
    assert len(dm.people["train"]) == 4 and len(dm.people["val"]) == 1
    assert set(dm.people["train"]).isdisjoint(dm.people["val"]) and "Karen_Jones" not in dm.people["train"]
    assert len(dm.test_set) == 6 and dm.people["test"] == [n for n, _ in TEST_PEOPLE]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert torch.unique(y, return_counts=True)[1].tolist() == [2, 2, 2, 2]
    assert len(dm.official_pairs()) == 4
    img, _ = dm.read_input(root / "lfw_funneled" / "Ada_Lovelace" / "Ada_Lovelace_0001.jpg")
    assert img.shape == (3, 32, 32)


def test_a_siamese_net_trains_on_lfw(tmp_path):
    write_lfw(tmp_path / "data")
    cfg = compose_train(["experiment=siamese_triplet_mnist5k", "data=lfw", "model=siamese_faces", *QUICK,
                         "trainer.fast_dev_run=true", "data.batch_size=8", "data.samples_per_class=2",
                         "data.image_size=32", "data.val_fraction=0.2", "task.n_way=2"], tmp_path)
    rec = train(cfg)
    assert rec["family"] == "Siamese networks" and math.isfinite(rec["test"]["test/auroc"])


@bad_input
def test_lfw_names_the_file_of_a_bad_pairs_line_or_a_missing_image(tmp_path):
    root = write_lfw(tmp_path)
    bad = root / "pairsDevTest.txt"
    bad.write_text("2\nKurt_Godel\t1\t3\nEmmy_Noether\t1\n"
                   "Emmy_Noether\t2\tKurt_Godel\t1\nIda_Rhodes\t1\tKurt_Godel\t2\n")
    with pytest.raises(DataFileError, match=r"pairsDevTest.txt, line 3: expected '<Name>\\t<i>\\t<j>' \(a matched pair\)"):
        read_pairs(bad, root / "lfw_funneled")
    bad.write_text("2\nKurt_Godel\t1\tthree\n")
    with pytest.raises(DataFileError, match="line 1 announces"):
        read_pairs(bad, root / "lfw_funneled")
    bad.write_text("1\nKurt_Godel\t1\t9\nIda_Rhodes\t1\tKurt_Godel\t2\n")
    with pytest.raises(DatasetNotFoundError, match=r"Kurt_Godel_0009.jpg: no such image, named by .*pairsDevTest.txt, line 2"):
        read_pairs(bad, root / "lfw_funneled")
    (root / "lfw_funneled" / "Alan_Turing" / "Alan_Turing_0002.jpg").unlink()
    dm = LFWDataModule(data_dir=str(tmp_path), batch_size=8, samples_per_class=2, image_size=32)
    with pytest.raises(DatasetNotFoundError, match=r"Alan_Turing_0002.jpg: no such image, listed in .*peopleDevTrain.txt"):
        dm.setup()
    (root / "peopleDevTrain.txt").write_text("1\nAda_Lovelace\tthree\n")
    with pytest.raises(DataFileError, match=r"peopleDevTrain.txt, line 2: the number of images must be an integer"):
        read_people(root / "peopleDevTrain.txt")
    with pytest.raises(DatasetNotFoundError, match="no longer downloadable"):
        LFWDataModule(data_dir=str(tmp_path / "nowhere")).prepare_data()


# -- the task -------------------------------------------------------------------------------------------

@bad_input
def test_the_task_refuses_a_loss_without_its_head_and_unknown_names():
    net = zoo.create_model("siamese_digits")
    with pytest.raises(ValueError, match="task.loss=head trains a verification head: give task.head"):
        MetricLearningTask(net, loss="head")
    with pytest.raises(ValueError, match="task.head is given but task.loss=triplet does not train it"):
        MetricLearningTask(net, head=zoo.create_model("verification_head"))
    with pytest.raises(ValueError, match="task.loss must be one of triplet, contrastive, head"):
        MetricLearningTask(net, loss="arcface")
    with pytest.raises(ValueError, match="task.mining must be one of"):
        MetricLearningTask(net, mining="hardest")
    with pytest.raises(ValueError, match=r"task.distance_threshold must be a distance >= 0 \(or null\), got -0.5"):
        MetricLearningTask(net, distance_threshold=-0.5)
    assert MetricLearningTask(net).published_facts() == {}  # no threshold before a validation epoch
    assert MetricLearningTask(net, distance_threshold=0.75).published_facts() == {"distance_threshold": 0.75}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A verification-head Siamese net trained for a few batches: its checkpoint holds two nets."""
    tmp = tmp_path_factory.mktemp("siamese")
    cfg = compose_train(["experiment=siamese_head_mnist5k", *QUICK, "trainer.max_epochs=1",
                         "data.batches_per_epoch=6", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
                         "task.num_pairs=300", "task.episodes=100"], tmp)
    return train(cfg), tmp


def test_the_head_task_trains_and_its_checkpoint_rebuilds_both_nets(trained):
    rec, _ = trained
    assert rec["family"] == "Siamese networks"
    assert {"test/auroc", "test/accuracy", "test/eer", "test/tar", "test/one_shot"} <= set(rec["test"])
    assert all(0 <= rec["test"][k] <= 1 for k in ("test/auroc", "test/one_shot"))
    assert "test_accuracy_at_val_threshold" in rec and "pair_distances.png" in rec["plots"]
    ckpt = torch.load(rec["best_checkpoint"], weights_only=True)
    assert set(ckpt["zoo"]["net_specs"]) == {"net", "head"}
    task = load_task(rec["best_checkpoint"])
    assert task.loss_name == "head" and task.head.embedding_dim == 64
    assert math.isfinite(float(task.distance_threshold))  # chosen on the validation pairs


# -- faces: enroll, verify, identify ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def images(trained, digits):
    """PNG files of test digits: two of a 5 ('ada'), one of a 7 ('bob'), one of a 9 (unknown)."""
    _, tmp = trained
    x, y = digits.test_set.tensors
    raw = (x * digits.std[0] + digits.mean[0]).clamp(0, 1)  # back to [0, 1] pixels
    files = {}
    for key, digit, nth in (("ada1", 5, 0), ("ada2", 5, 1), ("bob1", 7, 0), ("stranger", 9, 0)):
        idx = (y == digit).nonzero()[nth].item()
        path = tmp / f"{key}.png"
        Image.fromarray((raw[idx, 0] * 255).round().byte().numpy()).save(path)
        files[key] = str(path)
    return files


def run_face(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = face_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_zoo_face_enrolls_verifies_and_identifies(trained, images, tmp_path):
    rec, _ = trained
    ckpt, db = rec["best_checkpoint"], str(tmp_path / "faces.json")
    # a threshold of 1e-4: only the very image enrolled is within it, whatever the training did
    code, out, _ = run_face("enroll", "ada", images["ada1"], images["ada2"], "--db", db, "--model", ckpt,
                            "--threshold", "1e-4")
    assert code == 0 and "enrolled ada: 2 image(s)" in out
    assert run_face("enroll", "bob", images["bob1"], "--db", db)[0] == 0  # the database remembers the model
    stored = json.loads(Path(db).read_text())
    assert set(stored["people"]) == {"ada", "bob"} and len(stored["people"]["ada"]) == 2
    assert stored["threshold"] == 1e-4 and len(stored["people"]["bob"][0]) == 64  # embeddings, no image

    code, out, _ = run_face("verify", images["ada2"], "--name", "ada", "--db", db)
    assert code == 0 and "MATCH for ada" in out
    code, out, _ = run_face("verify", images["ada2"], "--name", "bob", "--db", db)
    assert code == 1 and "NO MATCH for bob" in out
    code, out, _ = run_face("identify", images["bob1"], "--db", db, "--json")
    assert code == 0 and json.loads(out)["name"] == "bob"
    code, out, _ = run_face("identify", images["stranger"], "--db", db)
    assert code == 0 and "not recognized" in out
    assert json.loads(run_face("identify", images["stranger"], "--db", db, "--json")[1])["name"] is None


def test_the_face_api_uses_the_models_validated_threshold(trained, images, tmp_path):
    rec, _ = trained
    model = FaceModel.load(rec["best_checkpoint"])
    db = FaceDatabase.create(model)
    assert db.threshold == pytest.approx(float(model.task.distance_threshold)) and db.threshold > 0
    db.enroll("ada", model.embed_files([images["ada1"]]))
    db.save(tmp_path / "db.json")
    again = FaceDatabase.load(tmp_path / "db.json")
    result = verify(model, again, "ada", images["ada1"])
    assert result["match"] and result["distance"] < 1e-3
    far = identify(model, again, images["bob1"])
    assert far["nearest"][0][0] == "ada" and far["recognized"] == (far["distance"] <= db.threshold)


@bad_input
def test_zoo_face_says_what_to_do_with_bad_input(trained, images, tmp_path):
    rec, _ = trained
    ckpt, db = rec["best_checkpoint"], str(tmp_path / "faces.json")
    code, _, err = run_face("identify", images["ada1"], "--db", db)
    assert code == 2 and "no face database at" in err and "enroll someone first" in err
    model = FaceModel.load(ckpt)
    FaceDatabase.create(model).save(db)  # a database with no one in it
    code, _, err = run_face("verify", images["ada1"], "--name", "ada", "--db", db)
    assert code == 2 and "is empty: enroll someone first" in err
    assert run_face("enroll", "ada", images["ada1"], "--db", db)[0] == 0
    code, _, err = run_face("verify", images["ada1"], "--name", "eve", "--db", db)
    assert code == 2 and "'eve' is not enrolled" in err and "(enrolled: ada)" in err
    code, _, err = run_face("verify", str(tmp_path / "missing.png"), "--name", "ada", "--db", db)
    assert code == 2 and "missing.png: no such image file" in err
    code, _, err = run_face("enroll", "eve", images["ada1"], "--db", str(tmp_path / "new.json"),
                            "--model", "siamese_digits.nowhere")
    assert code == 2 and "neither a checkpoint file nor a published weight" in err
    with pytest.raises(FaceError, match=r"takes images of shape \(1, 28, 28\).*got \(3, 32, 32\)"):
        model.embed_images(torch.zeros(2, 3, 32, 32))
    other = FaceDatabase(threshold=0.5, model="another", embedding_dim=128, people={"x": [[0.0] * 128]})
    with pytest.raises(FaceError, match="not comparable"):
        verify(model, other, "x", images["ada1"])
    Path(db).write_text("{\"format\": \"something else\"}")
    code, _, err = run_face("identify", images["ada1"], "--db", db)
    assert code == 2 and "is not a face database written by zoo-face" in err


@pytest.mark.parametrize("name", ["siamese_digits.mnist5k_oneshot", "siamese_digits.mnist5k_oneshot_glyphs"])
def test_zoo_face_loads_the_published_weight_by_name_with_its_validated_threshold(digits, tmp_path, name):
    """A published Siamese weight (hash-verified) brings the threshold its run chose on the
    validation pairs: a database made with it needs no ``--threshold``, and it tells digits of the
    unseen classes apart."""
    from zoo.weights import weight_card

    threshold = weight_card(name).data_facts["distance_threshold"]
    assert 0 < threshold < 2  # a distance between unit vectors
    x, y = digits.test_set.tensors
    raw = (x * digits.std[0] + digits.mean[0]).clamp(0, 1)
    files = {}
    for key, digit, nth in (("ada1", 6, 0), ("ada2", 6, 1), ("ada3", 6, 2), ("bob1", 7, 0), ("bob2", 7, 1),
                            ("bob3", 7, 2)):
        idx = (y == digit).nonzero()[nth].item()
        files[key] = str(tmp_path / f"{key}.png")
        Image.fromarray((raw[idx, 0] * 255).round().byte().numpy()).save(files[key])
    db = str(tmp_path / "faces.json")
    assert run_face("enroll", "ada", files["ada1"], files["ada2"], "--db", db, "--model", name)[0] == 0
    assert run_face("enroll", "bob", files["bob1"], files["bob2"], "--db", db)[0] == 0
    assert json.loads(Path(db).read_text())["threshold"] == pytest.approx(threshold)
    code, out, _ = run_face("verify", files["ada1"], "--name", "ada", "--db", db)
    assert code == 0 and "MATCH for ada" in out
    for key, who in (("ada3", "ada"), ("bob3", "bob")):  # digits not enrolled, of the unseen classes 6 and 7
        found = json.loads(run_face("identify", files[key], "--db", db, "--json")[1])
        assert found["nearest"][0][0] == who, found
