"""Classification with localization, landmarks and the sliding-window detector: the nets, the
loss on hand-computed values, and the convolutional form of a window classifier giving the same
scores as classifying every crop."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.losses.localization import localization_loss
from zoo.models.localization import sliding_window_scores
from zoo.ops import decode_localization, encode_localization


def test_the_convolutional_form_scores_every_window_as_the_classifier_does():
    torch.manual_seed(0)
    net = zoo.create_model("window_cnn", num_classes=10).eval()
    conv = net.convolutional().eval()
    image = torch.randn(2, 1, 60, 76)  # (60-28)/4+1 = 9 rows, (76-28)/4+1 = 13 columns of windows
    with torch.no_grad():
        slow = sliding_window_scores(net, image)
        fast = conv(image)
        one = conv(image[:, :, :28, :28])
    assert slow.shape == fast.shape == (2, 11, 9, 13)
    # the same sums in another order (a convolution against a matrix product): float32 rounding
    # of ~400-term sums of unit-sized products stays below 1e-5
    assert (slow - fast).abs().max() < 1e-5
    assert torch.allclose(one[:, :, 0, 0], net(image[:, :, :28, :28]).detach(), atol=1e-5)


def test_the_convolutional_form_is_a_copy():
    net = zoo.create_model("window_cnn")
    conv = net.convolutional()
    with torch.no_grad():
        conv[1].weight.add_(1.0)
    assert not torch.equal(conv[1].weight.flatten(1), net.fc1.weight)


@pytest.mark.parametrize("name,extra", [("localizer", 0), ("landmarker", 8)])
def test_localization_nets_output_the_target_vector(name, extra):
    net = zoo.create_model(name, num_classes=10, image_size=96)
    (x,) = net.example_inputs(3)
    out = net(x)
    assert out.shape == (3, 5 + 10 + extra)
    parts = net.split(out)
    assert parts["box"].shape == (3, 4) and parts["classes"].shape == (3, 10)
    assert ("landmarks" in parts) == bool(extra)


def _target(n: int, box=(0.5, 0.5, 0.5, 0.5), label: int | None = 0) -> torch.Tensor:
    t = torch.zeros(5 + n)
    if label is not None:
        t[0] = 1
        t[1:5] = torch.tensor(box)
        t[5 + label] = 1
    return t


def test_the_squared_loss_on_hand_computed_values():
    """Raw outputs of 0: p_c = sigmoid(0) = 0.5, box components 0.5, class softmax [0.5, 0.5].
    No object: (0.5 - 0)^2 = 0.25. An object of class 0 with box (0.5, 0.5, 0.5, 0.5):
    (0.5 - 1)^2 + 0 (box) + (0.5 - 1)^2 + (0.5 - 0)^2 = 0.75. Mean 0.5."""
    pred = torch.zeros(2, 7)
    target = torch.stack([_target(2, label=None), _target(2)])
    loss, parts = localization_loss(pred, target, num_classes=2, form="squared")
    assert loss.item() == pytest.approx(0.5, abs=1e-7)
    assert parts["objectness"].item() == pytest.approx(0.25)
    assert parts["class"].item() == pytest.approx(0.25)  # 0.5 on one of two examples


def test_the_mixed_loss_on_hand_computed_values():
    """No object: log 2 (logistic loss at 0). An object whose box is off by 0.25 in each of its
    4 components: log 2 + 5 * 4 * 0.25^2 + log 2 (cross-entropy of two equal logits) = 2 log 2 + 1.25."""
    pred = torch.zeros(2, 7)
    target = torch.stack([_target(2, label=None), _target(2, box=(0.75, 0.25, 0.75, 0.25))])
    loss, parts = localization_loss(pred, target, num_classes=2, form="mixed", box_weight=5.0)
    assert loss.item() == pytest.approx((math.log(2) + 2 * math.log(2) + 1.25) / 2, rel=1e-6)
    assert parts["box"].item() == pytest.approx(1.25 / 2, rel=1e-6)


@pytest.mark.parametrize("form", ["squared", "mixed"])
def test_an_image_without_object_trains_only_p_c(form):
    pred = torch.randn(2, 7, requires_grad=True)
    target = torch.stack([_target(2, label=None), _target(2, label=1)])
    loss, _ = localization_loss(pred, target, num_classes=2, form=form)
    loss.backward()
    assert torch.all(pred.grad[0, 1:] == 0) and pred.grad[0, 0] != 0
    assert torch.all(pred.grad[1] != 0)


def test_the_landmark_term_counts_only_where_there_is_an_object():
    pred = torch.zeros(2, 7 + 4, requires_grad=True)
    target = torch.cat([torch.stack([_target(2, label=None), _target(2)]), torch.full((2, 4), 0.75)], dim=1)
    loss, parts = localization_loss(pred, target, num_classes=2, form="squared")
    # object row: 0.25 + 0 + 0.5 + 4 * (0.5 - 0.75)^2 = 1.0; no-object row: 0.25
    assert loss.item() == pytest.approx((1.0 + 0.25) / 2)
    assert parts["landmarks"].item() == pytest.approx(0.25 / 2)


def test_a_decoded_perfect_prediction_gives_back_the_box():
    target = encode_localization([10.0, 20.0, 50.0, 60.0], 3, num_classes=10, image_size=96)
    boxes, labels = decode_localization(target, 96)
    assert torch.allclose(boxes, torch.tensor([10.0, 20.0, 50.0, 60.0]), atol=1e-4) and labels.item() == 3


@pytest.mark.bad_input
def test_the_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"shape \(B, 5 \+ num_classes \[\+ 2K\]\) with num_classes=10"):
        localization_loss(torch.zeros(2, 15), torch.zeros(2, 14), num_classes=10)
    with pytest.raises(ValueError, match="form must be 'squared' or 'mixed'"):
        localization_loss(torch.zeros(2, 15), torch.zeros(2, 15), num_classes=10, form="l1")


@pytest.mark.bad_input
def test_a_window_too_small_for_the_net_is_refused():
    with pytest.raises(ValueError, match="window=12 is too small"):
        zoo.create_model("window_cnn", window=12)


# -- the task ---------------------------------------------------------------------------------------
def _batch(n_images: int = 4, landmarks: bool = False):
    torch.manual_seed(0)
    images = torch.randn(n_images, 1, 96, 96)
    targets = []
    for i in range(n_images):
        if i == 0:  # an image without object
            t = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
            if landmarks:
                t["landmarks"] = torch.zeros(0, 8)
        else:
            t = {"boxes": torch.tensor([[10.0 * i, 12.0, 10.0 * i + 30, 50.0]]), "labels": torch.tensor([i])}
            if landmarks:
                t["landmarks"] = torch.tensor([[10.0 * i + 15, 12.5, 10.0 * i + 15, 49.5,
                                                10.0 * i + 0.5, 30.0, 10.0 * i + 29.5, 31.0]])
        targets.append(t)
    return images, targets


def _perfect_outputs(task, target: torch.Tensor) -> torch.Tensor:
    """Raw scores that decode exactly to ``target``: the inverse sigmoid of its fractions, and
    large logits for p_c and the true class."""
    from zoo.tasks.localization import _logit_form

    out = _logit_form(target, task.num_classes)
    out[:, 0] = torch.where(target[:, 0] > 0.5, 20.0, -20.0)
    out[:, 5:5 + task.num_classes] = target[:, 5:5 + task.num_classes] * 20.0
    return out


@pytest.mark.parametrize("name", ["localizer", "landmarker"])
def test_the_task_scores_a_perfect_prediction_as_perfect(name):
    from zoo.tasks import LocalizationTask

    net = zoo.create_model(name, num_classes=10, image_size=96)
    task = LocalizationTask(net, num_classes=10, image_size=96)
    images, targets = _batch(landmarks=name == "landmarker")
    target = task.encode(targets, "cpu")
    assert target.shape == (4, 15 + (8 if name == "landmarker" else 0))
    assert target[0, 0] == 0 and torch.all(target[1:, 0] == 1)
    metrics = task.build_metrics("test/")
    metrics.update(_perfect_outputs(task, target), target)
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got["test/iou"] == pytest.approx(1.0, abs=1e-4)
    assert got["test/acc"] == 1.0 and got["test/hit"] == 1.0 and got["test/objectness_acc"] == 1.0
    if name == "landmarker":
        assert got["test/landmark_err"] == pytest.approx(0.0, abs=1e-3)
    # a real forward pass and loss, finite, with a gradient
    loss, out, tgt = task.shared_step((images, targets), "train")
    loss.backward()
    assert torch.isfinite(loss) and out.shape == tgt.shape


def test_a_box_shifted_by_half_its_width_scores_iou_one_third():
    """A 30x38 box against the same box moved 15 px right: overlap 15x38, union 45x38 -> 1/3."""
    from zoo.tasks import LocalizationTask

    task = LocalizationTask(zoo.create_model("localizer"), num_classes=10, image_size=96)
    _, targets = _batch(2)
    target = task.encode(targets[1:], "cpu")
    moved = task.encode([{"boxes": targets[1]["boxes"] + torch.tensor([15.0, 0, 15.0, 0]),
                          "labels": targets[1]["labels"]}], "cpu")
    metrics = task.build_metrics("val/")
    metrics.update(_perfect_outputs(task, moved), target)
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got["val/iou"] == pytest.approx(1 / 3, abs=1e-4)
    assert got["val/hit"] == 0.0 and got["val/acc"] == 1.0


def test_a_prediction_is_described_in_pixels_and_class_names():
    from zoo.tasks import LocalizationTask

    task = LocalizationTask(zoo.create_model("localizer"), num_classes=10, image_size=96,
                            class_names=[f"digit {i}" for i in range(10)])
    _, targets = _batch(2)
    out = _perfect_outputs(task, task.encode(targets[1:], "cpu"))[0]
    d = task.describe_prediction(out)
    assert d["class"] == "digit 1" and d["object_probability"] > 0.99
    assert d["box_xyxy"] == pytest.approx([10.0, 12.0, 40.0, 50.0], abs=0.1)


@pytest.mark.bad_input
def test_a_landmark_net_without_landmarks_in_the_data_is_told_where_to_get_them():
    from zoo.tasks import LocalizationTask

    task = LocalizationTask(zoo.create_model("landmarker"), num_classes=10, image_size=96)
    _, targets = _batch(2)
    with pytest.raises(ValueError, match="target 1 has no 'landmarks'.*data=digit_canvas_single"):
        task.encode(targets, "cpu")
