"""Digit canvases (``datamodules.vision.canvas``): the DataModule's batch contract, its disjoint
source pools, seeding, facts and refusals, and property-based tests (hypothesis) of the
generator: for any seed, canvas size, scale range and object counts, the boxes are tight and
inside the canvas, the mask, the presence vector and the landmarks agree with the digits pasted,
and the image is the maximum of the digits pasted."""
from __future__ import annotations

import functools
import itertools

import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import compose_train
from datamodules import DigitCanvasDataModule, make_canvases
from datamodules.vision.canvas import Canvases, largest_side, render_object
from datamodules.vision.embedded import load_mnist5k

SMALL = dict(train_canvases=64, val_canvases=24, test_canvases=24, batch_size=16, eval_batch_size=8)
KEYS = {"boxes", "labels", "masks", "presence", "landmarks"}


@functools.lru_cache(maxsize=1)
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_mnist5k()
    return images[:, 0], labels


@pytest.fixture(scope="module")
def dm():
    dm = DigitCanvasDataModule(**SMALL)
    dm.setup()
    return dm


def _check_target(t: dict, size: int, lo: int, hi: int) -> None:
    assert set(t) == KEYS
    n = len(t["labels"])
    assert lo <= n <= hi
    assert t["boxes"].dtype == torch.float32 and t["boxes"].shape == (n, 4)
    assert t["labels"].dtype == torch.int64 and t["labels"].shape == (n,)
    assert t["masks"].dtype == torch.int64 and t["masks"].shape == (size, size)
    assert t["presence"].dtype == torch.float32 and t["presence"].shape == (10,)
    assert t["landmarks"].dtype == torch.float32 and t["landmarks"].shape == (n, 8)


# -- the DataModule ---------------------------------------------------------------------------------

def test_batch_contract_of_every_loader(dm):
    for loader, b in ((dm.train_dataloader(), 16), (dm.val_dataloader(), 8), (dm.test_dataloader(), 8)):
        images, targets = next(iter(loader))
        assert images.dtype == torch.float32 and images.shape == (b, 1, 96, 96)
        # normalised with MNIST's mean/std: the black background is -mean/std
        assert torch.isclose(images.min(), torch.tensor(-0.1307 / 0.3081), atol=1e-5)
        assert images.max() <= (1 - 0.1307) / 0.3081 + 1e-5
        assert isinstance(targets, list) and len(targets) == b
        for t in targets:
            _check_target(t, 96, 1, 3)


def test_the_split_sizes_and_the_object_labels(dm):
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (64, 24, 24)
    _, labels = digits()
    for ds in (dm.train_set, dm.val_set, dm.test_set):
        assert torch.equal(ds.canvases.labels, labels[ds.source_ids])  # each box names its digit's class


def test_source_pools_are_disjoint_stratified_and_hold_their_canvases_digits(dm):
    pools = dm.source_pools
    assert [len(pools[s]) for s in ("train", "val", "test")] == [4000, 500, 500]
    assert np.array_equal(np.sort(np.concatenate(list(pools.values()))), np.arange(5000))  # disjoint, complete
    _, labels = digits()
    for split, per_class in (("train", 400), ("val", 50), ("test", 50)):
        assert torch.bincount(labels[pools[split]], minlength=10).tolist() == [per_class] * 10
    for split, ds in (("train", dm.train_set), ("val", dm.val_set), ("test", dm.test_set)):
        assert set(ds.source_ids.tolist()) <= set(pools[split].tolist())
    used = [set(ds.source_ids.tolist()) for ds in (dm.train_set, dm.val_set, dm.test_set)]
    assert all(not (a & b) for a, b in itertools.combinations(used, 2))


def _all_of(dm) -> list[torch.Tensor]:
    out = []
    for ds in (dm.train_set, dm.val_set, dm.test_set):
        c = ds.canvases
        out += [c.images, c.masks, c.boxes, c.labels, c.landmarks, ds.source_ids]
    return out


def test_the_same_seed_gives_the_same_canvases_another_seed_others(dm):
    again = DigitCanvasDataModule(**SMALL)
    again.setup()
    assert all(torch.equal(a, b) for a, b in zip(_all_of(dm), _all_of(again)))
    other = DigitCanvasDataModule(**SMALL, split_seed=1)
    other.setup()
    assert not torch.equal(dm.train_set.canvases.images, other.train_set.canvases.images)
    assert not np.array_equal(dm.source_pools["test"], other.source_pools["test"])
    assert len(set(dm.canvas_seeds().values())) == 3  # each split draws its own canvases


class _Trainer:
    """What the datamodule reads of its trainer when it redraws: the epoch and the reload cadence."""

    def __init__(self, epoch: int, reload_every: int = 1):
        self.current_epoch, self.reload_dataloaders_every_n_epochs = epoch, reload_every


def _train_images(dm, epoch: int) -> torch.Tensor:
    dm.trainer = _Trainer(epoch)
    return torch.cat([images for images, _ in dm.train_dataloader()])


def test_redraw_train_draws_fresh_canvases_each_epoch_and_the_same_ones_again(dm):
    torch.manual_seed(0)
    redraw = DigitCanvasDataModule(**SMALL, redraw_train=True)
    redraw.setup()
    first = redraw.train_set.canvases.images.clone()
    assert torch.equal(first, dm.train_set.canvases.images)  # epoch 0 is the usual set
    _train_images(redraw, 1)
    second = redraw.train_set.canvases.images.clone()
    assert not torch.equal(first, second)
    assert len(redraw.train_set) == SMALL["train_canvases"]
    _train_images(redraw, 2)
    _train_images(redraw, 1)  # a resumed run that starts again at epoch 1 sees epoch 1's canvases
    assert torch.equal(redraw.train_set.canvases.images, second)
    _train_images(redraw, 0)
    assert torch.equal(redraw.train_set.canvases.images, first)
    # the source digits stay the training pool's; validation and test never change
    assert set(redraw.train_set.source_ids.tolist()) <= set(redraw.source_pools["train"].tolist())
    assert torch.equal(redraw.test_set.canvases.images, dm.test_set.canvases.images)


@pytest.mark.bad_input
def test_redraw_train_without_reloading_loaders_is_refused():
    redraw = DigitCanvasDataModule(**SMALL, redraw_train=True)
    redraw.setup()
    redraw.trainer = _Trainer(0, reload_every=0)
    with pytest.raises(ValueError, match="redraw_train=true needs trainer.reload_dataloaders_every_n_epochs=1"):
        redraw.train_dataloader()


def test_data_facts_and_describe(dm):
    assert dm.data_facts() == {"num_classes": 10, "class_names": [str(i) for i in range(10)], "in_chans": 1,
                               "image_size": 96, "input_shape": [1, 96, 96], "max_objects": 3}
    d = dm.describe()
    assert d["dataset"] == "digit_canvas" and d["input_shape"] == [1, 96, 96]
    assert (d["train_size"], d["val_size"], d["test_size"]) == (64, 24, 24)
    assert d["source_digits"] == {"train": 4000, "val": 500, "test": 500}
    assert d["objects_per_canvas"] == [1, 3] and d["scale_range"] == [0.7, 1.6] and d["max_overlap_iou"] == 0.2


def test_single_object_canvases_for_localization_and_landmarks():
    dm = DigitCanvasDataModule(train_canvases=16, val_canvases=4, test_canvases=4, image_size=64,
                               min_objects=1, max_objects=1, batch_size=16)
    dm.setup()
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (16, 1, 64, 64) and dm.data_facts()["max_objects"] == 1
    for t in targets:
        _check_target(t, 64, 1, 1)
        x1, y1, x2, y2 = t["boxes"][0].tolist()
        xt, yt, xb, yb, xl, yl, xr, yr = t["landmarks"][0].tolist()
        assert (yt, yb, xl, xr) == (y1 + 0.5, y2 - 0.5, x1 + 0.5, x2 - 0.5)  # on the box's edges
        assert t["presence"].nonzero().flatten().tolist() == t["labels"].tolist()


def test_the_configs_compose_and_instantiate_the_datamodule(tmp_path):
    """As zoo-train composes them (the augment group fills ``data.augment`` with null); without
    the default experiment, whose 32x32 digits and affine augmentation are a classifier's."""
    built = {}
    for option in ("digit_canvas", "digit_canvas_single"):
        cfg = compose_train([f"data={option}", "~experiment"], tmp_path)
        assert cfg.data.augment is None
        built[option] = hydra.utils.instantiate(cfg.data, _convert_="all")
    multi, single = built["digit_canvas"], built["digit_canvas_single"]
    assert isinstance(multi, DigitCanvasDataModule) and isinstance(single, DigitCanvasDataModule)
    assert (multi.min_objects, multi.max_objects, multi.image_size) == (1, 3, 96)
    assert (single.min_objects, single.max_objects, single.image_size) == (1, 1, 64)
    assert multi.counts == single.counts == {"train": 4000, "val": 500, "test": 500}


def test_collate_stacks_bare_images_and_read_input_inverts_a_bright_file(tmp_path, dm):
    from PIL import Image

    path = tmp_path / "digit.png"
    Image.fromarray(np.full((30, 40), 250, np.uint8)).save(path)  # a bright (paper) image
    x, note = dm.read_input(path)
    assert x.shape == (1, 96, 96) and x.dtype == torch.float32 and note == {"inverted": True}
    assert torch.allclose(x, torch.full_like(x, (5 / 255 - 0.1307) / 0.3081), atol=1e-5)
    assert dm.collate([x, x]).shape == (2, 1, 96, 96)


BAD_ARGUMENTS = [
    ({"train_canvases": 0}, "train_canvases must be an int >= 1"),
    ({"val_canvases": -5}, "val_canvases must be an int >= 1"),
    ({"test_canvases": 0}, "test_canvases must be an int >= 1"),
    ({"image_size": 40}, r"image_size must be an int of at least 45 \(the largest scaled digit"),
    ({"image_size": 30, "scale_range": [0.5, 1.2]}, "image_size must be an int of at least 34"),
    ({"min_objects": 3, "max_objects": 2}, r"min_objects must be at most max_objects \(2\), got 3"),
    ({"max_objects": 0, "min_objects": 0}, "max_objects must be an int >= 1"),
    ({"min_objects": -1}, "min_objects must be an int >= 0"),
    ({"scale_range": [1.6, 0.7]}, r"scale_range must be increasing \(0 < low <= high\)"),
    ({"scale_range": [0.0, 1.0]}, "scale_range must be positive"),
    ({"scale_range": [-1.0, 1.0]}, "scale_range must be positive"),
    ({"scale_range": [1.0]}, r"scale_range must be two numbers \(low, high\)"),
    ({"max_overlap_iou": 1.5}, r"max_overlap_iou must be a number in \[0, 1\]"),
    ({"val_fraction": 0.0}, r"val_fraction must be in \(0, 1\)"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test_fraction must be below 1"),
    ({"num_classes": 5}, "num_classes must be 10"),
    ({"in_chans": 3}, "in_chans must be 1"),
    ({"augment": torch.nn.Identity()}, r"augment must be null \(augment=none\): an image augmentation"),
    ({"redraw_train": "yes"}, "redraw_train must be true or false"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("kwargs, message", BAD_ARGUMENTS, ids=[str(k) for k, _ in BAD_ARGUMENTS])
def test_a_bad_datamodule_argument_is_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=f"DigitCanvasDataModule: {message}"):
        DigitCanvasDataModule(**kwargs)


BAD_GENERATOR_ARGUMENTS = [
    ({"count": 0}, "count must be an int >= 1"),
    ({"count": -2}, "count must be an int >= 1"),
    ({"size": 44}, "size must be an int of at least 45"),
    ({"min_objects": 2, "max_objects": 1}, r"min_objects must be at most max_objects \(1\), got 2"),
    ({"scale_range": (1.0, 0.9)}, "scale_range must be increasing"),
    ({"scale_range": (0.0, 0.9)}, "scale_range must be positive"),
    ({"mask_threshold": 255}, r"mask_threshold must be an int in 0..254"),
    ({"placement_tries": 0}, "placement_tries must be an int >= 1"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("kwargs, message", BAD_GENERATOR_ARGUMENTS, ids=[str(k) for k, _ in BAD_GENERATOR_ARGUMENTS])
def test_a_bad_generator_argument_is_refused_by_name(kwargs, message):
    images, labels = digits()
    args = {"count": 2, **kwargs}
    with pytest.raises(ValueError, match=f"make_canvases: {message}"):
        make_canvases(images[:50], labels[:50], **args)


@pytest.mark.bad_input
def test_digits_of_another_shape_or_type_are_refused():
    images, labels = digits()
    with pytest.raises(ValueError, match=r"digits must be a non-empty uint8 tensor \(N, 28, 28\)"):
        make_canvases(images[:10].float(), labels[:10], 2)
    with pytest.raises(ValueError, match=r"labels must be an integer tensor \(10,\)"):
        make_canvases(images[:10], labels[:9], 2)


# -- the generator: properties for any settings ---------------------------------------------------

# derandomize: hypothesis draws the same cases on every run, so CI and a local run test the same
# canvases and a failure reproduces; database=None: nothing is written to .hypothesis/
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


@st.composite
def canvas_settings(draw):
    lo = draw(st.floats(0.5, 1.3))
    hi = draw(st.floats(lo, 1.8))
    size = draw(st.integers(largest_side((lo, hi)), 96))
    max_objects = draw(st.integers(1, 4))
    min_objects = draw(st.integers(0, max_objects))
    return dict(count=draw(st.integers(1, 4)), size=size, min_objects=min_objects, max_objects=max_objects,
                scale_range=(lo, hi), max_overlap_iou=draw(st.sampled_from([0.0, 0.1, 0.2, 0.5])),
                seed=draw(st.integers(0, 2**31 - 1)))


def _generate(kw: dict) -> Canvases:
    images, labels = digits()
    return make_canvases(images, labels, **kw)


def _pasted(c: Canvases, i: int) -> list[dict]:
    """Canvas ``i``'s digits rendered again from their sources and placements, in canvas
    coordinates: each one's pixels (uint8 S x S, 0 off the digit), box, label and landmarks."""
    images, _ = digits()
    size = c.images.shape[-1]
    out = []
    for k in range(c.offsets[i], c.offsets[i + 1]):
        x0, y0, side = c.placements[k].tolist()
        full = torch.zeros((size, size), dtype=torch.uint8)
        full[y0:y0 + side, x0:x0 + side] = render_object(images, int(c.sources[k]), side)
        out.append({"pixels": full, "box": c.boxes[k].tolist(), "label": int(c.labels[k]),
                    "landmarks": c.landmarks[k].view(4, 2).tolist()})
    return out


@SETTINGS
@given(canvas_settings())
def test_object_counts_labels_and_presence(kw):
    c = _generate(kw)
    _, labels = digits()
    n = c.num_objects()
    assert ((n >= kw["min_objects"]) & (n <= kw["max_objects"])).all()
    assert torch.equal(c.labels, labels[c.sources])
    for i in range(len(c)):
        present = set(c.labels[c.objects(i)].tolist())
        assert set(c.presence[i].nonzero().flatten().tolist()) == present
        assert set(c.presence[i].unique().tolist()) <= {0.0, 1.0}


@SETTINGS
@given(canvas_settings())
def test_boxes_are_inside_the_canvas_and_tight_around_their_digit(kw):
    c = _generate(kw)
    size = kw["size"]
    b = c.boxes
    assert ((b >= 0) & (b <= size)).all()
    assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()  # positive area
    assert torch.equal(b, b.round())  # pixel edges
    for i in range(len(c)):
        for obj in _pasted(c, i):
            ys, xs = obj["pixels"].nonzero(as_tuple=True)
            # the digit's ink reaches all four sides of its box: the box is its tight extent
            assert obj["box"] == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


@SETTINGS
@given(canvas_settings())
def test_the_canvas_is_the_max_of_its_digits_and_black_off_the_boxes(kw):
    c = _generate(kw)
    size = kw["size"]
    for i in range(len(c)):
        objs = _pasted(c, i)
        expected = torch.zeros((size, size), dtype=torch.uint8)
        covered = torch.zeros((size, size), dtype=torch.bool)
        for obj in objs:
            expected = torch.maximum(expected, obj["pixels"])
            x1, y1, x2, y2 = (int(v) for v in obj["box"])
            covered[y1:y2, x1:x2] = True
        assert torch.equal(c.images[i, 0], expected)
        assert (c.images[i, 0][~covered] == 0).all()
        assert (c.masks[i][~covered] == 0).all()


@SETTINGS
@given(canvas_settings())
def test_the_mask_shows_the_class_of_every_digit_not_hidden_by_later_ones(kw):
    c = _generate(kw)
    size = kw["size"]
    for i in range(len(c)):
        objs = _pasted(c, i)
        inks = [obj["pixels"] > c.mask_threshold for obj in objs]
        expected = torch.zeros((size, size), dtype=torch.long)
        for obj, ink in zip(objs, inks):  # later digits win
            expected[ink] = obj["label"] + 1
        assert torch.equal(c.masks[i].long(), expected)
        visible = set()
        for k, (obj, ink) in enumerate(zip(objs, inks)):
            later = torch.zeros_like(ink)
            for other in inks[k + 1:]:
                later |= other
            if (ink & ~later).any():
                visible.add(obj["label"] + 1)
        assert set(c.masks[i].unique().tolist()) - {0} == visible
        assert visible <= {label + 1 for label in c.labels[c.objects(i)].tolist()}


@SETTINGS
@given(canvas_settings())
def test_landmarks_are_the_extreme_ink_pixels_on_the_box_edges(kw):
    c = _generate(kw)
    for i in range(len(c)):
        for obj in _pasted(c, i):
            x1, y1, x2, y2 = obj["box"]
            (xt, yt), (xb, yb), (xl, yl), (xr, yr) = obj["landmarks"]
            assert (yt, yb, xl, xr) == (y1 + 0.5, y2 - 0.5, x1 + 0.5, x2 - 0.5)
            for x, y in obj["landmarks"]:
                assert x1 < x < x2 and y1 < y < y2
                assert obj["pixels"][int(y), int(x)] > 0  # each landmark is an ink pixel of its digit


@SETTINGS
@given(canvas_settings())
def test_boxes_overlap_at_most_as_allowed_when_no_count_is_forced(kw):
    """With ``min_objects <= 1`` no digit is ever placed against the limit (the first always has
    room), so every pair of boxes on a canvas has an IoU of at most ``max_overlap_iou``."""
    kw = {**kw, "min_objects": min(kw["min_objects"], 1)}
    c = _generate(kw)
    for i in range(len(c)):
        boxes = c.boxes[c.objects(i)].double()
        for a, b in itertools.combinations(boxes, 2):
            w = (torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])).clamp(min=0)
            h = (torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])).clamp(min=0)
            inter = w * h
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            assert inter / union <= kw["max_overlap_iou"] + 1e-12


@SETTINGS
@given(canvas_settings())
def test_the_same_arguments_give_bit_identical_canvases(kw):
    a, b = _generate(kw), _generate(kw)
    for field in ("images", "masks", "presence", "offsets", "boxes", "labels", "landmarks", "sources", "placements"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    other = _generate({**kw, "seed": kw["seed"] + 1})
    assert not (torch.equal(a.images, other.images) and torch.equal(a.sources, other.sources))


_CANVAS_DIGEST = """
import hashlib, sys
from datamodules import make_canvases
from datamodules.vision.embedded import load_mnist5k
images, labels = load_mnist5k()
c = make_canvases(images[:, 0][:500], labels[:500], count=200, seed=3)
print(hashlib.sha256(c.images.numpy().tobytes()).hexdigest())
"""


def test_the_canvases_are_the_same_under_every_cpu_kernel():
    """The canvases are data: the same seed must give the same pixels on any CPU, with torch's
    vectorized kernels and with its scalar ones (ATEN_CPU_CAPABILITY=default)."""
    import os
    import subprocess
    import sys

    # the native run must not inherit a capability the suite itself runs under
    base = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}

    def digest(**env) -> str:
        out = subprocess.run([sys.executable, "-c", _CANVAS_DIGEST], capture_output=True, text=True,
                             timeout=300, env={**base, **env}, check=True)
        return out.stdout.strip()

    native, scalar = digest(), digest(ATEN_CPU_CAPABILITY="default")
    assert len(native) == 64
    assert native == scalar


def test_scale_digits_is_exact_bilinear_rounded_half_to_even():
    """Hand-checked: a 2x2 image scaled to 3x3 and to 4x4, against the bilinear values worked
    out in fractions; and random images against float64 interpolation, never more than half a
    grey level away."""
    from fractions import Fraction

    from datamodules.vision.canvas import _bilinear_weights, scale_digits

    # 2 -> 4: output pixel d samples (2d + 1 - 2) / 4 = -1/4 (clamped to 0), 1/4, 3/4, 5/4 (-> 1)
    w, den = _bilinear_weights(2, 4)
    assert den == 8
    assert w.tolist() == [[8, 0], [6, 2], [2, 6], [0, 8]]
    x = torch.tensor([[[0, 255], [10, 20]]], dtype=torch.uint8)
    got = scale_digits(x, 4)[0]
    # row 1 samples rows 0 and 1 with weights 3/4, 1/4; column 1 likewise
    v = Fraction(3, 4) * (Fraction(3, 4) * 0 + Fraction(1, 4) * 255) + \
        Fraction(1, 4) * (Fraction(3, 4) * 10 + Fraction(1, 4) * 20)
    assert v == Fraction(815, 16)  # 50.9375
    assert got[1, 1].item() == 51
    assert got[0].tolist() == [0, 64, 191, 255]  # 63.75 -> 64, 191.25 -> 191
    # halves go to even: 1 and 2 side by side, scaled 2 -> 4, give 1.25, 1.75 in the middle;
    # 2 -> 3 samples (2d + 1) * 2 / 6 - 1/2 = -1/6 (-> 0), 1/2, 7/6 (-> 1): the middle is a half
    for a, b, middle in ((1, 2, 2), (2, 3, 2), (3, 4, 4)):  # 1.5 -> 2, 2.5 -> 2, 3.5 -> 4
        row = scale_digits(torch.tensor([[[a, b], [a, b]]], dtype=torch.uint8), 3)[0, 0]
        assert row.tolist() == [a, middle, b], (a, b, row.tolist())
    # the same size is the identity
    imgs = torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(scale_digits(imgs, 28), imgs)
    for side in (19, 28, 33, 45):
        ref = F.interpolate(imgs[:, None].double(), size=(side, side), mode="bilinear",
                            align_corners=False, antialias=False)[:, 0]
        out = scale_digits(imgs, side)
        assert out.shape == (20, side, side) and out.dtype == torch.uint8
        assert ((out.double() - ref).abs() <= 0.5 + 1e-9).all()
    with pytest.raises(ValueError, match="scale_digits: x must be a uint8"):
        scale_digits(imgs.float(), 30)
