"""Embedded datamodules: deterministic stratified splits, the batch contract, options."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from datamodules import Digits8x8DataModule, MNIST5kDataModule, RandomAffine, RandomCropFlip, stratified_split


@pytest.fixture(scope="module")
def mnist5k():
    dm = MNIST5kDataModule()
    dm.setup()
    return dm


def _hashes(ds) -> set[str]:
    return {hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in ds.tensors[0]}


def test_mnist5k_split_sizes_and_stratification(mnist5k):
    assert (len(mnist5k.train_set), len(mnist5k.val_set), len(mnist5k.test_set)) == (4000, 500, 500)
    for ds, per_class in ((mnist5k.train_set, 400), (mnist5k.val_set, 50), (mnist5k.test_set, 50)):
        assert torch.bincount(ds.tensors[1], minlength=10).tolist() == [per_class] * 10


def test_mnist5k_splits_are_disjoint(mnist5k):
    tr, va, te = _hashes(mnist5k.train_set), _hashes(mnist5k.val_set), _hashes(mnist5k.test_set)
    assert not (tr & te) and not (va & te) and not (tr & va)


def test_split_is_deterministic_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    a = stratified_split(labels, [0.1, 0.1], seed=0)
    b = stratified_split(labels, [0.1, 0.1], seed=0)
    c = stratified_split(labels, [0.1, 0.1], seed=1)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not (a[2] == c[2]).all()


def test_batch_contract(mnist5k):
    x, y = next(iter(mnist5k.train_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (64, 1, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (64,)
    # normalised with MNIST's mean/std: background pixels map to -mean/std (float32 arithmetic
    # against a float64 quotient: a few ulps of 0.42, far inside 1e-5)
    assert torch.isclose(x.min(), torch.tensor(-0.1307 / 0.3081), atol=1e-5)


def test_padding_to_32_uses_background():
    dm = MNIST5kDataModule(image_size=32, in_chans=3)
    dm.setup()
    x = dm.test_set.tensors[0]
    assert x.shape[1:] == (3, 32, 32)
    border = torch.cat([x[..., :2, :].flatten(), x[..., -2:, :].flatten()])
    assert torch.allclose(border, torch.tensor(-0.1307 / 0.3081))  # float32 vs float64: ulps


def test_binary_one_against_rest():
    dm = MNIST5kDataModule(positive_class=3, num_classes=2)
    dm.setup()
    y = dm.test_set.tensors[1]
    assert set(y.tolist()) == {0, 1} and int(y.sum()) == 50
    assert dm.class_names == ["not 3", "3"]


def test_wrong_num_classes_fails_early():
    with pytest.raises(ValueError, match="num_classes=5 but the data has 10 classes"):
        MNIST5kDataModule(num_classes=5)


def test_limit_keeps_a_stratified_subset():
    dm = MNIST5kDataModule(limit=100)
    dm.setup()
    assert torch.bincount(dm.train_set.tensors[1]).tolist() == [10] * 10
    assert len(dm.test_set) == 500  # the test split does not depend on limit


def test_digits8x8():
    dm = Digits8x8DataModule()
    dm.setup()
    n = len(dm.train_set) + len(dm.val_set) + len(dm.test_set)
    assert n == 1797
    assert dm.train_set.tensors[0].shape[1:] == (1, 8, 8)


def test_augmentations_keep_shape_and_are_seeded():
    x = torch.randn(8, 3, 32, 32)
    torch.manual_seed(0)
    a = RandomAffine()(x)
    torch.manual_seed(0)
    b = RandomAffine()(x)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, x)
    assert torch.equal(RandomCropFlip(padding=0, flip_p=0.0)(x), x)
    assert torch.equal(RandomCropFlip(padding=0, flip_p=1.0)(x), x.flip(-1))
    # the identity transform still resamples: grid coordinates rounded in float32 (1e-5 of a pixel)
    assert torch.allclose(RandomAffine(degrees=0, translate=0, scale=(1, 1))(x), x, atol=1e-5)
    y = RandomCropFlip(padding=4, flip_p=0.0)(x)
    assert y.shape == x.shape


def test_resize_to_draws_the_image_into_a_box_then_pads():
    """8x8 digits in MNIST's framing: resized to 20x20, padded with background to 32x32."""
    dm = Digits8x8DataModule(batch_size=16, image_size=32, resize_to=20, normalize=[[0.1307], [0.3081]])
    dm.setup("fit")
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 32, 32)
    background = (0.0 - 0.1307) / 0.3081
    border = torch.cat([x[..., :6, :].flatten(), x[..., -6:, :].flatten(), x[..., :, :6].flatten(),
                        x[..., :, -6:].flatten()])
    assert torch.allclose(border, torch.full_like(border, background))  # float32 vs float64: ulps
    assert (x[..., 6:26, 6:26] > background + 1e-3).any()  # the digit is in the box
    assert dm.describe()["resize_to"] == 20
    for bad in (0, 33, 21):  # not positive, larger than the canvas, odd margin
        with pytest.raises(ValueError, match="resize_to"):
            Digits8x8DataModule(image_size=32, resize_to=bad)


def test_train_on_val_adds_the_validation_split_and_keeps_the_test_split(mnist5k):
    refit = MNIST5kDataModule(train_on_val=True)
    refit.setup()
    assert len(refit.train_set) == 4500 and len(refit.test_set) == 500
    assert _hashes(refit.train_set) == _hashes(mnist5k.train_set) | _hashes(mnist5k.val_set)
    assert _hashes(refit.test_set) == _hashes(mnist5k.test_set)
    assert refit.describe()["val_size"] == 0 and refit.describe()["train_on_val"] is True
    assert refit.val_dataloader() == []
