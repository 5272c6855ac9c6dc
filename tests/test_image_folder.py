"""data=image_folder: your own images in torchvision's ImageFolder layout (root/train/<class>/*,
optional val/ and test/), written here as tiny folders of synthetic PNG and JPEG shapes."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from conftest import compose_train
from datamodules import DatasetNotFoundError, ImageFolderDataModule

CLASSES = ["circle", "square", "triangle"]


def _shape(kind: str, i: int, grey: bool) -> Image.Image:
    """A filled shape on a plain background; size, place and colour vary with ``i`` (and the
    images are not square, so that reading resizes them)."""
    w, h = 40 + i % 5, 36 + (i * 3) % 7
    bg = (20 + 9 * i % 60, 30, 60 + 5 * i % 40)
    fg = (200, 60 + 13 * i % 150, 40 + 7 * i % 200)
    im = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(im)
    x0, y0 = 4 + i % 6, 3 + i % 5
    x1, y1 = x0 + 22 + i % 8, y0 + 22 + i % 7
    if kind == "circle":
        d.ellipse((x0, y0, x1, y1), fill=fg)
    elif kind == "square":
        d.rectangle((x0, y0, x1, y1), fill=fg)
    else:
        d.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=fg)
    return im.convert("L") if grey else im


def write_split(root: Path, split: str, per_class: int, grey: bool = False, start: int = 0,
                classes=CLASSES) -> None:
    """``per_class`` images of each class under root/split/<class>/, every other one a JPEG."""
    for c, kind in enumerate(classes):
        folder = root / split / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_class):
            im = _shape(CLASSES[c % len(CLASSES)], 7 * c + i, grey)
            if i % 2:
                im.save(folder / f"{kind}_{i:03d}.jpg", quality=95)
            else:
                im.save(folder / f"{kind}_{i:03d}.png")


@pytest.fixture(scope="module")
def train_only(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    write_split(root, "train", 12)
    (root / "train" / "circle" / "notes.txt").write_text("not an image: skipped\n")
    return root


def _hashes(ds) -> list[str]:
    return sorted(hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in ds.tensors[0])


def _counts(ds) -> list[int]:
    return torch.bincount(ds.tensors[1], minlength=len(CLASSES)).tolist()


def test_classes_come_from_the_folders_and_the_drawn_splits_are_stratified(train_only):
    dm = ImageFolderDataModule(root=str(train_only), native_size=32, val_fraction=0.25, test_fraction=0.25)
    assert dm.class_names == CLASSES  # known from the folder names, before any image is read
    dm.setup()
    assert dm.data_facts() == {"num_classes": 3, "class_names": CLASSES, "in_chans": 3, "image_size": 32,
                               "input_shape": [3, 32, 32]}
    assert (_counts(dm.train_set), _counts(dm.val_set), _counts(dm.test_set)) == ([6] * 3, [3] * 3, [3] * 3)
    tr, va, te = (set(_hashes(s)) for s in (dm.train_set, dm.val_set, dm.test_set))
    assert len(tr | va | te) == 36 and not (tr & va or tr & te or va & te)
    assert dm.describe()["splits"] == {"train": "train/", "val": "drawn from train/", "test": "drawn from train/"}


def test_the_split_is_seeded(train_only):
    def test_split(seed):
        dm = ImageFolderDataModule(root=str(train_only), native_size=16, split_seed=seed,
                                   val_fraction=0.25, test_fraction=0.25)
        dm.setup()
        return _hashes(dm.test_set)

    assert test_split(0) == test_split(0)
    assert test_split(0) != test_split(1)


def test_batch_contract_and_statistics(train_only):
    dm = ImageFolderDataModule(root=str(train_only), native_size=24, batch_size=8)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (8, 3, 24, 24)
    assert y.dtype == torch.int64 and y.shape == (8,)
    # normalised with the training split's own statistics, which are kept and reported
    train_x = dm.train_set.tensors[0]
    assert torch.allclose(train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(train_x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    assert dm.describe()["normalize"] == [list(dm.mean), list(dm.std)]
    state = dm.state_dict()
    assert state["class_names"] == CLASSES and state["mean"] == list(dm.mean)


def test_given_val_and_test_folders_are_used_as_given(tmp_path):
    write_split(tmp_path, "train", 6)
    write_split(tmp_path, "val", 2, start=100)
    write_split(tmp_path, "test", 3, start=200)
    dm = ImageFolderDataModule(root=str(tmp_path), native_size=16)
    dm.setup()
    assert (_counts(dm.train_set), _counts(dm.val_set), _counts(dm.test_set)) == ([6] * 3, [2] * 3, [3] * 3)
    assert dm.describe()["splits"] == {"train": "train/", "val": "val/", "test": "test/"}


def test_a_given_test_folder_and_a_drawn_validation_split(tmp_path):
    write_split(tmp_path, "train", 12)
    write_split(tmp_path, "test", 2, start=100)
    dm = ImageFolderDataModule(root=str(tmp_path), native_size=16, val_fraction=0.25)
    dm.setup()
    assert (_counts(dm.train_set), _counts(dm.val_set), _counts(dm.test_set)) == ([9] * 3, [3] * 3, [2] * 3)
    assert dm.describe()["splits"]["test"] == "test/"


def test_grey_images_give_one_channel_and_in_chans_1_turns_colour_grey(tmp_path, train_only):
    write_split(tmp_path, "train", 4, grey=True)
    dm = ImageFolderDataModule(root=str(tmp_path), native_size=16, val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    assert dm.data_facts()["in_chans"] == 1 and dm.train_set.tensors[0].shape[1:] == (1, 16, 16)
    dm = ImageFolderDataModule(root=str(train_only), native_size=16, in_chans=1)
    dm.setup()
    assert dm.data_facts()["input_shape"] == [1, 16, 16] and len(dm.mean) == 1
    dm = ImageFolderDataModule(root=str(tmp_path), native_size=16, in_chans=3, val_fraction=0.25,
                               test_fraction=0.25)
    dm.setup()  # grey images, kept in one channel, replicated for a 3-channel net
    assert dm.describe()["channels"] == 1 and dm.train_set.tensors[0].shape[1] == 3


def _corrupt(root: Path) -> str:
    (root / "train" / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return "broken.png"


def _empty_class(root: Path) -> str:
    (root / "train" / "hexagon").mkdir()
    return "hexagon"


def _unknown_test_class(root: Path) -> str:
    write_split(root, "test", 2, classes=CLASSES + ["star"])
    return "star"


def _class_missing_in_val(root: Path) -> str:
    write_split(root, "val", 2, classes=CLASSES[:2])
    return "'triangle'.*val|val.*'triangle'"


def _too_few_to_draw(root: Path) -> str:
    for f in sorted((root / "train" / "circle").iterdir())[1:]:
        f.unlink()
    return "'circle'.*(val|test)"


def _one_class(root: Path) -> str:
    for c in CLASSES[1:]:
        for f in (root / "train" / c).iterdir():
            f.unlink()
        (root / "train" / c).rmdir()
    return "1 class folder"


@pytest.mark.parametrize("make, error", [
    (_corrupt, ValueError),
    (_empty_class, ValueError),
    (_unknown_test_class, ValueError),
    (_class_missing_in_val, ValueError),
    (_too_few_to_draw, ValueError),
    (_one_class, ValueError),
])
def test_clear_errors_name_the_offender(tmp_path, make, error):
    write_split(tmp_path, "train", 4)
    pattern = make(tmp_path)
    dm = ImageFolderDataModule(root=str(tmp_path), native_size=8, val_fraction=0.25, test_fraction=0.25)
    with pytest.raises(error, match=pattern):
        dm.setup()


def test_a_class_left_out_of_a_drawn_split_is_named(tmp_path):
    write_split(tmp_path, "train", 20, classes=CLASSES[:2])
    write_split(tmp_path, "train", 2, classes=CLASSES[2:])
    write_split(tmp_path, "test", 1, start=100)
    # 3 validation images of 42, stratified: one per large class, none for the class of two
    dm = ImageFolderDataModule(root=str(tmp_path), native_size=8, val_fraction=0.08)
    with pytest.raises(ValueError, match="class 'triangle' has no examples in the val split"):
        dm.setup()


def test_missing_folders_are_dataset_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        ImageFolderDataModule(root=str(tmp_path / "nowhere")).setup()
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "train"))):
        ImageFolderDataModule(root=str(tmp_path)).prepare_data()


def test_num_classes_is_checked(train_only):
    with pytest.raises(ValueError, match="num_classes=4 but .* has 3 class folders"):
        ImageFolderDataModule(root=str(train_only), num_classes=4).setup()


def test_finetune_folder_experiment_trains_a_published_weight(tmp_path, quick):
    """The experiment end to end on colour shapes: resnet20_cifar.mnist5k (1-channel input),
    its 10-class head replaced by a 3-class one, the images read as grey at 32x32."""
    from zoo.cli.train import train

    root = tmp_path / "shapes"
    write_split(root, "train", 12)
    write_split(root, "test", 2, start=100)
    cfg = compose_train(["experiment=finetune_folder", f"data.root={root}", "model.pretrained=mnist5k",
                         "logger=none", *quick, "trainer.max_epochs=1"], tmp_path)
    rec = train(cfg)
    assert rec["data"]["class_names"] == CLASSES
    assert rec["data"]["input_shape"] == [1, 32, 32] and rec["data"]["test_size"] == 6
    assert rec["model_kwargs"]["num_classes"] == 3
    assert rec["test"] and all(v == v for v in rec["test"].values())  # finite, not NaN
    # zoo-predict on the run's checkpoint labels a new image with the folder's class names
    import json

    from zoo.cli.predict import main as predict_main

    new = tmp_path / "new_circle.png"
    _shape("circle", 999, grey=False).save(new)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert predict_main([rec["best_checkpoint"], str(new), "--json", "--top", "3"]) == 0
    [pred] = json.loads(out.getvalue())
    assert [t["class"] for t in pred["top"]] and {t["class"] for t in pred["top"]} == set(CLASSES)
    assert sum(t["probability"] for t in pred["top"]) == pytest.approx(1.0, abs=1e-3)  # rounded to 4 decimals each
