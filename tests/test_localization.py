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
