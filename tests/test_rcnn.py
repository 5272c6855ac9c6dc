"""Faster R-CNN on the zoo's backbones (zoo.models.rcnn) and its task (zoo.tasks.rcnn): what the
net returns in each mode, that torchvision's preprocessing leaves the canvases as they are, the
label shift, that training lowers the loss and validation leaves batch norm alone, and a run
through zoo-train."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.models.rcnn import LOSS_KEYS
from zoo.tasks import RCNNTask

NUM_CLASSES = 10


@pytest.fixture(scope="module")
def batch():
    """Four 96x96 digit canvases and their targets (data labels 0..9)."""
    from datamodules.vision.canvas import DigitCanvasDataModule

    dm = DigitCanvasDataModule(batch_size=4, train_canvases=8, val_canvases=4, test_canvases=4)
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    return images, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]


def _shifted(targets):
    return [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]


def _net(name: str = "faster_rcnn_mobilenet", **kwargs):
    torch.manual_seed(0)
    return zoo.create_model(name, **kwargs)


@pytest.mark.parametrize("name", ["faster_rcnn_mobilenet", "faster_rcnn_resnet"])
def test_training_mode_returns_torchvisions_four_losses(name, batch):
    images, targets = batch
    net = _net(name).train()
    losses = net(images, _shifted(targets))
    assert set(losses) == set(LOSS_KEYS)
    for key, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value) and value.requires_grad, key


@pytest.mark.parametrize("name", ["faster_rcnn_mobilenet", "faster_rcnn_resnet"])
def test_evaluation_mode_returns_detections(name, batch):
    images, _ = batch
    net = _net(name).eval()
    with torch.no_grad():
        detections = net(images)
    assert isinstance(detections, list) and len(detections) == len(images)
    for d in detections:
        assert set(d) == {"boxes", "scores", "labels"}
        n = d["boxes"].shape[0]
        assert d["boxes"].shape == (n, 4) and d["scores"].shape == (n,) and d["labels"].shape == (n,)
        assert d["labels"].dtype == torch.int64
        if n:  # torchvision's labels: 1..num_classes (0 is the background, never detected)
            assert 1 <= int(d["labels"].min()) and int(d["labels"].max()) <= NUM_CLASSES
            assert float(d["boxes"].min()) >= 0 and float(d["boxes"].max()) <= 96


def test_training_mode_without_targets_gives_the_raw_outputs_of_both_stages():
    net = _net().train()
    (x,) = net.example_inputs(3)
    assert x.shape == (3, 1, 96, 96)
    objectness, deltas, logits, box_deltas = net(x)
    n = 12 * 12 * 9  # stride 8 on 96 px, 3 sizes x 3 ratios per cell
    k = net.rois_per_image
    assert objectness.shape == (3, n) and deltas.shape == (3, n, 4)
    assert logits.shape == (3, k, NUM_CLASSES + 1) and box_deltas.shape == (3, k, NUM_CLASSES + 1, 4)


@pytest.mark.parametrize("training", [True, False])
def test_the_transform_leaves_a_canvas_unresized_and_unnormalised(training, batch):
    images, targets = batch
    transform = _net().detector.transform.train(training)
    image_list, moved = transform(images, _shifted(targets))
    assert image_list.image_sizes == [(96, 96)] * len(images)
    assert torch.equal(image_list.tensors, images)  # bit for bit: no resize, mean 0, std 1, no padding
    for t, m in zip(targets, moved):
        assert torch.equal(m["boxes"], t["boxes"])


def test_labels_are_shifted_by_one_for_the_net_and_back(batch):
    images, targets = batch
    net = _net()
    task = RCNNTask(net, num_classes=NUM_CLASSES)
    seen = []
    forward = net.forward
    net.forward = lambda x, t=None, **kw: seen.append(t) or forward(x, t, **kw)
    task.net.train()
    task.shared_step((images, targets), "train")
    assert [s["labels"].tolist() for s in seen[0]] == [(t["labels"] + 1).tolist() for t in targets]
    assert set(seen[0][0]) == {"boxes", "labels"}  # masks, landmarks ... stay behind
    fake = [{"boxes": torch.zeros(2, 4), "scores": torch.ones(2), "labels": torch.tensor([1, NUM_CLASSES])}]
    assert task.data_detections(fake)[0]["labels"].tolist() == [0, NUM_CLASSES - 1]
    net.forward = forward
    task.net.eval()
    detections = task.predict_step(images)
    labels = torch.cat([d["labels"] for d in detections])
    assert len(labels) and int(labels.min()) >= 0 and int(labels.max()) < NUM_CLASSES  # the data's classes


def test_a_few_steps_lower_the_summed_loss(batch):
    images, targets = batch
    wanted = _shifted(targets)
    net = _net().train()

    def seeded_loss():
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(1)  # the same anchors and proposals sampled each time
            return float(sum(net(images, wanted).values()))

    before = seeded_loss()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for _ in range(8):
        loss = sum(net(images, wanted).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = seeded_loss()
    assert after < 0.8 * before, (before, after)


def test_validation_leaves_batch_norm_statistics_and_modes_alone(batch):
    images, targets = batch
    net = _net()
    task = RCNNTask(net, num_classes=NUM_CLASSES)
    net.train()  # even a net left in training mode: the backbone is evaluated with running statistics
    buffers = {k: v.clone() for k, v in net.state_dict().items()}
    modes = {k: m.training for k, m in net.named_modules()}
    rng = torch.get_rng_state()
    with torch.no_grad():
        loss, detections, truth = task.shared_step((images, targets), "val")
        again, _, _ = task.shared_step((images, targets), "val")
    assert all(torch.equal(v, buffers[k]) for k, v in net.state_dict().items())
    assert {k: m.training for k, m in net.named_modules()} == modes
    assert torch.equal(torch.get_rng_state(), rng)  # the loss's sampling drew from a forked state
    assert torch.isfinite(loss) and float(loss) == float(again)  # seeded: the same figure
    assert len(detections) == len(truth) == len(images)
    assert torch.equal(truth[0]["labels"], targets[0]["labels"])  # the data's labels


def test_fast_rcnn_classifies_given_proposals(batch):
    images, targets = batch
    net = _net().train()
    proposals = [t["boxes"] + torch.tensor([1.0, -1.0, 2.0, 1.0]) for t in targets]
    losses = net(images, _shifted(targets), proposals=proposals)
    assert set(losses) == {"loss_classifier", "loss_box_reg"}
    net.eval()
    with torch.no_grad():
        detections = net(images, proposals=proposals)
    assert len(detections) == len(images) and all(d["boxes"].shape[1] == 4 for d in detections)


def test_a_published_backbone_is_loaded():
    net = _net("faster_rcnn_mobilenet", pretrained_backbone="mnist5k", width_mult=None, small_input=False)
    published = zoo.create_model("mobilenet_v2", pretrained="mnist5k")
    body = net.detector.backbone.body
    assert torch.equal(body[0].conv.weight, published.stem.conv.weight)
    assert torch.equal(body[-1][0].project.conv.weight, published.stages[len(body) - 2][0].project.conv.weight)


def test_zoo_train_runs_the_experiment_and_records_map50(tmp_path):
    from conftest import compose_train
    from zoo.cli.train import train
    from zoo.tasks import load_task

    cfg = compose_train(["experiment=faster_rcnn_canvas", "trainer=cpu", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                         "trainer.limit_test_batches=1", "data.train_canvases=32", "data.val_canvases=16",
                         "data.test_canvases=16", "trainer.enable_progress_bar=false",
                         "trainer.enable_model_summary=false", "logger=none"], tmp_path)
    record = train(cfg)
    assert record["task"] == "RCNNTask" and record["model"] == "faster_rcnn_mobilenet"
    assert set(record["test"]) >= {"test/map50", "test/map", "test/loss"}
    assert 0 <= record["test"]["test/map50"] <= 1
    assert "test_detections.png" in record["plots"]
    task = load_task(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert isinstance(task, RCNNTask)


@pytest.mark.bad_input
def test_num_classes_below_one_is_refused():
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 1 .*background.*got 0"):
        zoo.create_model("faster_rcnn_mobilenet", num_classes=0)


@pytest.mark.bad_input
@pytest.mark.parametrize("name", ["faster_rcnn_mobilenet", "faster_rcnn_resnet"])
def test_an_image_size_off_the_feature_grid_is_refused(name):
    with pytest.raises(ValueError, match=r"image_size=100 cannot be handled by the backbone.*multiple of 8"):
        zoo.create_model(name, image_size=100)


@pytest.mark.bad_input
def test_an_unknown_backbone_weight_tag_is_refused():
    with pytest.raises(ValueError, match=r"pretrained_backbone='nope'.*mobilenet_v2.*mnist5k"):
        zoo.create_model("faster_rcnn_mobilenet", pretrained_backbone="nope", width_mult=None)


@pytest.mark.bad_input
def test_backbone_weights_of_another_width_are_refused():
    with pytest.raises(ValueError, match=r"pretrained_backbone='mnist5k'.*width_mult=0.5 \(the weights: 0.35\)"):
        zoo.create_model("faster_rcnn_mobilenet", pretrained_backbone="mnist5k")


@pytest.mark.bad_input
def test_the_task_refuses_a_net_that_is_no_rcnn():
    with pytest.raises(ValueError, match="RCNNTask needs a Faster R-CNN net"):
        RCNNTask(zoo.create_model("lenet5"), num_classes=NUM_CLASSES)
