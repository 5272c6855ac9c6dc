"""Neural style transfer: the costs on hand-computed values, the VGG feature extractor and its
three sources of weights, the optimisation method (the total cost falls at least tenfold from
noise), the feed-forward task and its commands, and the clear errors of bad input."""
from __future__ import annotations

import json

import pytest
import torch

import zoo
from datamodules.vision.style_images import StyleCropsDataModule, load_image, random_crops, save_image
from zoo.losses.style import (FeatureNetworkError, LayerActivations, content_cost, feature_network, gram_matrix,
                              layer_style_cost, style_cost, total_cost, total_variation, vgg_layer_names)

from conftest import compose_train


# -- the costs, on values worked out by hand ----------------------------------------------------------

def test_gram_matrix_by_hand():
    # one image, n_C = 2 channels of 1 x 2 pixels: A = [[1, 2], [3, 4]]
    a = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])          # (n_C=2, n_H=1, n_W=2)
    # G = A A^T = [[1+4, 3+8], [3+8, 9+16]]
    assert torch.equal(gram_matrix(a), torch.tensor([[5.0, 11.0], [11.0, 25.0]]))
    assert gram_matrix(a[None]).shape == (1, 2, 2)


def test_content_cost_by_hand():
    a_C = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])        # n_C=2, n_H=1, n_W=2
    a_G = torch.tensor([[[0.0, 2.0]], [[3.0, 6.0]]])
    # sum of squares = 1 + 0 + 0 + 4 = 5; 1 / (4 * 1 * 2 * 2) = 1/16
    assert content_cost(a_C, a_G).item() == pytest.approx(5 / 16)
    batch = torch.stack([a_G, a_C])                          # per example: 5/16 and 0
    assert content_cost(a_C, batch, reduction="none").tolist() == pytest.approx([5 / 16, 0.0])
    assert content_cost(a_C, batch).item() == pytest.approx(5 / 32)


def test_style_costs_by_hand():
    a_S = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])        # G_S = [[5, 11], [11, 25]]
    a_G = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])        # G_G = [[1, 0], [0, 1]]
    G_S = gram_matrix(a_S)
    # sum (G_S - G_G)^2 = 16 + 121 + 121 + 576 = 834; 1 / (4 n_C^2 (n_H n_W)^2) = 1 / (4 * 4 * 4) = 1/64
    assert layer_style_cost(G_S, a_G).item() == pytest.approx(834 / 64)
    assert layer_style_cost(G_S, a_S).item() == 0.0
    # two layers weighted 0.25 and 0.75: the second layer matches exactly
    cost = style_cost({"l1": G_S, "l2": G_S}, {"l1": a_G, "l2": a_S}, {"l1": 0.25, "l2": 0.75})
    assert cost.item() == pytest.approx(0.25 * 834 / 64)
    # equal weights by default: (834/64 + 0) / 2
    assert style_cost({"l1": G_S, "l2": G_S}, {"l1": a_G, "l2": a_S}).item() == pytest.approx(834 / 128)


def test_total_variation_and_total_cost_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])           # (1, 1, 2, 2)
    # vertical differences 2, 3 -> mean of squares 6.5; horizontal 1, 2 -> 2.5
    assert total_variation(x).item() == pytest.approx(9.0)
    assert total_variation(torch.ones(1, 3, 4, 4)).item() == 0.0
    j = total_cost(torch.tensor(2.0), torch.tensor(3.0), alpha=10, beta=40, tv=torch.tensor(9.0), tv_weight=0.5)
    assert j.item() == pytest.approx(10 * 2 + 40 * 3 + 0.5 * 9)


# -- the feature network ----------------------------------------------------------------------------

def test_layer_names_and_activations_of_the_zoo_vgg():
    net = zoo.create_model("vgg11_bn", width_mult=0.25).eval()
    assert vgg_layer_names(net) == ["conv1_1", "conv2_1", "conv3_1", "conv3_2", "conv4_1", "conv4_2",
                                    "conv5_1", "conv5_2"]
    acts = LayerActivations(net, ["conv1_1", "conv3_2", "relu4_2"])(torch.rand(2, 3, 32, 32))
    assert acts["conv1_1"].shape == (2, 16, 32, 32) and acts["conv3_2"].shape == (2, 64, 8, 8)
    assert acts["relu4_2"].shape == (2, 128, 4, 4) and (acts["relu4_2"] >= 0).all()  # after the ReLU
    # the first activation is the first unit of the net itself
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(LayerActivations(net, ["conv1_1"])(x)["conv1_1"], net.stages[0][0](x))


def test_a_grey_feature_network_reads_each_colour_channel():
    source = feature_network("zoo:vgg11_bn.mnist5k")
    assert source.net.in_chans == 1 and source.mean == (0.1307,)
    x = torch.rand(2, 3, 32, 32)
    acts = source.activations(["conv2_1"])(x)["conv2_1"]                    # (2, 3 * 32, 16, 16)
    assert acts.shape == (2, 96, 16, 16)
    green = source.activations(["conv2_1"])(x[:, [1, 1, 1]])["conv2_1"]
    assert torch.allclose(acts[:, 32:64], green[:, :32])  # channels 32-63 are the green channel's
    assert not any(p.requires_grad for p in source.net.parameters())


def test_random_features_are_seeded():
    a, b = feature_network("random", seed=3), feature_network("random", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters()))
    assert "random weights" in a.description


# -- the optimisation method ---------------------------------------------------------------------------

def test_gatys_total_cost_falls_tenfold_from_noise():
    from zoo.cli.style import gatys_transfer

    content = load_image("skimage:astronaut", 32)
    style = load_image("skimage:gravel", 32)
    result = gatys_transfer(content, style, feature_network("random"), steps=15)
    assert result.history[0]["total"] / result.history[-1]["total"] >= 10, result.history
    assert result.image.shape == (3, 32, 32) and 0 <= result.image.min() and result.image.max() <= 1
    assert len(result.history) == 16 and result.seconds > 0


def test_zoo_style_writes_the_image_costs_and_figures(tmp_path):
    from zoo.cli.style import main

    out = tmp_path / "out.png"
    assert main(["--content", "skimage:chelsea", "--style", "skimage:brick", "--features", "random", "--steps", "3",
                 "--size", "32", "--optimizer", "adam", "--init", "content+noise", "--out", str(out)]) == 0
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["settings"]["optimizer"] == "adam" and len(record["history"]) == 4
    assert {"total", "content", "style", "seconds"} <= set(record["history"][-1])
    for name in ("out.png", "out_costs.png", "out_panel.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert load_image(out).shape == (3, 21, 32)  # chelsea is 300 x 451


def test_the_report_writes_its_table(tmp_path):
    from zoo.cli.style import report_main

    assert report_main(["--out-dir", str(tmp_path), "--size", "32", "--steps", "2"]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "`zoo:vgg11_bn.mnist5k`" in text and "`random`" in text and "never trained" in text
    assert (tmp_path / "comparison.png").is_file() and (tmp_path / "random.png").is_file()


# -- the feed-forward network and its task ------------------------------------------------------------

def test_style_net_keeps_any_size():
    net = zoo.create_model("style_net", base_width=4, num_residual=1)
    y = net(torch.rand(1, 3, 30, 21))
    assert y.shape == (1, 3, 30, 21) and 0 <= y.min() and y.max() <= 1


def test_content_crops_are_deterministic():
    imgs = [torch.rand(3, 40, 50)]
    a = random_crops(imgs, 4, 16, torch.Generator().manual_seed(1))
    b = random_crops(imgs, 4, 16, torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b)
    dm = StyleCropsDataModule(image_size=16, train_crops=4, val_crops=2, test_crops=2, source_size=64)
    dm.setup()
    (batch,) = next(iter(dm.train_dataloader()))
    assert batch.shape == (4, 3, 16, 16) and dm.data_facts()["input_shape"] == [3, 16, 16]


def test_the_task_config_instantiates_with_any_net(tmp_path):
    import hydra

    cfg = compose_train(["task=style_transfer", "~experiment"], tmp_path)
    task = hydra.utils.instantiate(cfg.task, _convert_="all", net=zoo.create_model("lenet5"))
    assert task.family == "Style transfer" and task.nets == ("net", "feature_net")
    assert not task.train().feature_net.training  # the frozen VGG keeps its running statistics


def test_a_trained_checkpoint_stylises_from_the_command_line(tmp_path):
    """A fast_dev_run of the experiment writes a checkpoint; load_task rebuilds both nets from it,
    and zoo-style --net and zoo-predict stylise a user's image with it."""
    from zoo.cli.predict import predict
    from zoo.cli.style import main
    from zoo.cli.train import train
    from zoo.tasks import load_task

    cfg = compose_train(["experiment=style_johnson_skimage", "trainer=cpu", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
                         "trainer.enable_progress_bar=false", "logger=none", "data.image_size=16",
                         "data.train_crops=2", "data.val_crops=2", "data.test_crops=2", "data.source_size=64",
                         "task.style_size=32", "model.base_width=4", "model.num_residual=1"], tmp_path)
    rec = train(cfg)
    assert rec["test"]["test/loss"] > 0 and "test/style_cost" in rec["test"]
    ckpt = next((tmp_path / "run").rglob("*.ckpt"))
    task = load_task(ckpt)
    assert task.feature_net.zoo_spec["name"] == "vgg11_bn"
    photo = tmp_path / "photo.png"
    save_image(torch.rand(3, 20, 28), photo)
    out = tmp_path / "stylised.png"
    assert main(["--net", str(ckpt), "--content", str(photo), "--size", "24", "--out", str(out)]) == 0
    assert load_image(out).shape == (3, 17, 24)
    (result,) = predict(str(ckpt), [photo])
    assert result["stylised_shape"][0] == 3


# -- bad input -------------------------------------------------------------------------------------------

@pytest.mark.bad_input
def test_a_missing_or_unreadable_image_says_what_to_do(tmp_path):
    from datamodules import DataFileError

    with pytest.raises(FileNotFoundError, match="no such image file.*skimage:<name>"):
        load_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataFileError, match="not an image Pillow can read"):
        load_image(bad)


@pytest.mark.bad_input
def test_an_unknown_skimage_name_lists_the_bundled_images():
    with pytest.raises(ValueError, match="unknown scikit-image image 'gravle'.*Did you mean: gravel"):
        load_image("skimage:gravle")


@pytest.mark.bad_input
def test_an_unknown_layer_lists_the_layers():
    net = zoo.create_model("vgg11_bn", width_mult=0.25)
    with pytest.raises(FeatureNetworkError, match="unknown layer 'conv3_3'.*conv3_1, conv3_2"):
        LayerActivations(net, ["conv3_3"])
    with pytest.raises(FeatureNetworkError, match="must be one of the zoo's VGG"):
        LayerActivations(zoo.create_model("lenet5"), ["conv1_1"])


@pytest.mark.bad_input
def test_unavailable_feature_networks_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FeatureNetworkError, match="not available here.*hub cache.*--imagenet-path.*--features random"):
        feature_network("imagenet")
    with pytest.raises(FeatureNetworkError, match="not a VGG.*zoo:vgg11_bn.mnist5k|vgg11_bn.mnist5k"):
        feature_network("zoo:lenet5.mnist5k")
    with pytest.raises(FeatureNetworkError, match="Unknown weights"):
        feature_network("zoo:vgg99.nothing")
    with pytest.raises(FeatureNetworkError, match="unknown feature network 'alexnet'"):
        feature_network("alexnet")


@pytest.mark.bad_input
def test_zoo_style_ends_bad_input_with_one_line(tmp_path, capsys, monkeypatch):
    from zoo.cli.style import main

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for argv, said in [(["--content", str(tmp_path / "missing.jpg")], "no such image file"),
                       (["--style", "skimage:nope"], "unknown scikit-image image"),
                       (["--features", "imagenet"], "torchvision's ImageNet weights of vgg19 are not available"),
                       (["--content-layer", "conv9_1", "--steps", "1", "--size", "32"], "unknown layer 'conv9_1'")]:
        assert main([*argv, "--out", str(tmp_path / "o.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zoo-style: ") and said in err, err
