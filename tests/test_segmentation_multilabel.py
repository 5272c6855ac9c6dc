"""The segmentation and multi-label tasks: their figures on hand-built maps and label sets, and
one real step through each net."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.tasks import MultiLabelTask, SegmentationTask


def _seg_task(k: int = 3) -> SegmentationTask:
    return SegmentationTask(zoo.create_model("unet", num_classes=k, image_size=16, base_width=4, depth=2),
                            num_classes=k, class_names=["a", "b"][: k - 1])


def test_mean_iou_and_dice_over_object_classes_on_a_hand_built_map():
    """A 4x4 map, classes 0 (background), 1, 2. Class 1: true 4 pixels, predicted 6, overlap 4 ->
    IoU 4/6, Dice 8/10. Class 2: true 4, predicted 2, overlap 2 -> IoU 2/4, Dice 4/6.
    Mean IoU (1 and 2) = (2/3 + 1/2) / 2 = 7/12; mean Dice = (0.8 + 2/3) / 2 = 11/15."""
    truth = torch.tensor([[1, 1, 0, 0],
                          [1, 1, 0, 0],
                          [0, 0, 2, 2],
                          [0, 0, 2, 2]])
    pred = torch.tensor([[1, 1, 1, 0],
                         [1, 1, 1, 0],
                         [0, 0, 2, 2],
                         [0, 0, 0, 0]])
    metrics = _seg_task().build_metrics("test/")
    metrics.update(pred[None], truth[None])
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got["test/miou"] == pytest.approx(7 / 12, abs=1e-6)
    assert got["test/dice"] == pytest.approx(11 / 15, abs=1e-6)
    assert got["test/pixel_acc"] == pytest.approx(12 / 16)


def test_a_segmentation_step_keeps_the_class_map_not_the_logits():
    task = _seg_task()
    images = torch.randn(2, 1, 16, 16)
    masks = torch.randint(0, 3, (2, 16, 16))
    loss, preds, target = task.shared_step((images, [{"masks": m} for m in masks]), "train")
    loss.backward()
    assert preds.shape == (2, 16, 16) and preds.dtype == torch.long and torch.equal(target, masks)
    d = task.describe_prediction(task.predict_step(images)[0])
    assert d["map_size"] == [16, 16] and all(c["class"] in ("a", "b") for c in d["classes"])


@pytest.mark.bad_input
def test_segmentation_refuses_a_net_that_changes_the_size():
    class Shrinks(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 3, 8, 8, requires_grad=True)

    task = SegmentationTask(Shrinks(), num_classes=3)
    with pytest.raises(ValueError, match=r"the net's map is \(8, 8\) but the masks are \(16, 16\)"):
        task.shared_step((torch.zeros(1, 1, 16, 16), torch.zeros(1, 16, 16, dtype=torch.long)), "train")


def test_multilabel_f1_and_exact_match_on_hand_built_sets():
    """Three images, three classes. Truth {0,1}, {2}, {}; predicted {0}, {2}, {1}.
    Decisions: TP 2 (0 on image 1, 2 on image 2), FP 1 (1 on image 3), FN 1 (1 on image 1) ->
    micro F1 = 2*2 / (2*2 + 1 + 1) = 2/3; exact match 1/3 (image 2)."""
    task = MultiLabelTask(zoo.create_model("multilabel_cnn", num_classes=3, image_size=32), num_classes=3)
    truth = torch.tensor([[1, 1, 0], [0, 0, 1], [0, 0, 0]])
    probs = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.3, 0.8], [0.2, 0.7, 0.4]])
    metrics = task.build_metrics("test/")
    metrics.update(probs, truth)
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got["test/f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["test/exact_match"] == pytest.approx(1 / 3, abs=1e-6)


def test_a_multilabel_step_and_its_description():
    task = MultiLabelTask(zoo.create_model("multilabel_cnn", num_classes=3, image_size=32), num_classes=3,
                          class_names=["x", "y", "z"])
    images = torch.randn(2, 1, 32, 32)
    targets = [{"presence": torch.tensor([1.0, 0, 1])}, {"presence": torch.tensor([0.0, 1, 0])}]
    loss, probs, y = task.shared_step((images, targets), "train")
    loss.backward()
    assert probs.shape == (2, 3) and y.dtype == torch.long
    d = task.describe_prediction(torch.tensor([0.9, 0.1, 0.6]))
    assert [c["class"] for c in d["present"]] == ["x", "z"]


def test_ignored_pixels_count_in_neither_the_loss_nor_the_metrics():
    """The hand-built map of the first test with its class-2 pixels marked 255 (ignored) in the
    truth: class 2's predictions there no longer count, class 1's IoU stays 4/6."""
    task = SegmentationTask(zoo.create_model("unet", num_classes=3, image_size=16, base_width=4, depth=2),
                            num_classes=3, ignore_index=255)
    truth = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 255, 255], [0, 0, 255, 255]])
    pred = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 2, 2], [0, 0, 0, 0]])
    iou = task.build_metrics("t/")["miou"]
    iou.update(pred[None], truth[None])
    per_class = super(type(iou), iou).compute()
    assert per_class[1] == pytest.approx(4 / 6, abs=1e-6)

    class Even(torch.nn.Module):  # equal logits for the 3 classes everywhere
        def forward(self, x):
            return torch.zeros(x.shape[0], 3, *x.shape[-2:], requires_grad=True)

    task = SegmentationTask(Even(), num_classes=3, ignore_index=255)
    masks = torch.full((1, 16, 16), 255)
    masks[0, 0, 0] = 1
    loss, _, _ = task.shared_step((torch.zeros(1, 1, 16, 16), masks), "train")
    assert loss.item() == pytest.approx(torch.log(torch.tensor(3.0)).item())  # one pixel counted, not 256


@pytest.mark.bad_input
def test_background_weight_is_saved_as_given_and_reloads():
    """background_weight stands for class_weights [w, 1, ..., 1]; the checkpoint's hyperparameters
    keep the arguments as given, so the task rebuilds from them; contradictory weights are refused."""
    net = zoo.create_model("unet", num_classes=3, image_size=16, base_width=4, depth=2)
    task = SegmentationTask(net, num_classes=3, background_weight=0.1)
    assert task.class_weights.tolist() == pytest.approx([0.1, 1.0, 1.0])
    assert task.hparams["class_weights"] is None and task.hparams["background_weight"] == 0.1
    again = SegmentationTask(net, **{k: v for k, v in task.hparams.items() if k in ("num_classes", "class_weights",
                                                                                     "background_weight")})
    assert torch.equal(again.class_weights, task.class_weights)
    # what older checkpoints hold: the derived weights beside background_weight -- they agree
    assert SegmentationTask(net, num_classes=3, class_weights=[0.1, 1, 1], background_weight=0.1) is not None
    with pytest.raises(ValueError, match="not both"):
        SegmentationTask(net, num_classes=3, class_weights=[0.5, 1, 1], background_weight=0.1)
    with pytest.raises(ValueError, match="positive"):
        SegmentationTask(net, num_classes=3, background_weight=0.0)
