"""YOLO's building blocks: k-means anchors, the grid targets, the loss and the decoder on
hand-built cases (expected numbers worked out in the comments), the net's output layout, a
few optimizer steps, and the round trip targets -> ideal prediction -> boxes on drawn boxes."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import zoo
from zoo.losses.yolo import build_yolo_targets, decode_yolo, yolo_boxes, yolo_loss
from zoo.ops import anchor_iou, box_iou, kmeans_anchors, mean_best_iou

LN2 = math.log(2.0)


def _image(boxes, labels) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.long)}


def ideal_prediction(targets: dict[str, torch.Tensor], num_classes: int, big: float = 20.0) -> torch.Tensor:
    """The raw output a perfect net would give for ``targets``: the box targets inverted through
    the sigmoid (offsets clamped into (0, 1)), objectness logit ``+big`` at object predictions and
    ``-big`` elsewhere, class logit ``big`` for the label and 0 for the other classes."""
    obj, box = targets["obj_mask"], targets["box_target"]
    pred = torch.zeros(*obj.shape, 5 + num_classes)
    pred[..., :2] = torch.logit(box[..., :2].clamp(1e-6, 1 - 1e-6))
    pred[..., 2:4] = box[..., 2:4]
    pred[..., 4] = torch.where(obj, big, -big)
    onehot = torch.nn.functional.one_hot(targets["class_target"].clamp(min=0), num_classes).float()
    pred[..., 5:] = torch.where(obj[..., None], big * onehot, torch.zeros_like(onehot))
    return pred


# --------------------------------------------------------------------------- anchors

def test_anchor_iou_of_hand_made_sizes():
    a = torch.tensor([[10.0, 20.0], [4.0, 4.0], [6.0, 6.0]])
    b = torch.tensor([[20.0, 10.0], [2.0, 8.0], [3.0, 3.0]])
    iou = anchor_iou(a, b)
    assert iou.shape == (3, 3)
    # (10, 20) vs (20, 10): inter 10 * 10 = 100, union 200 + 200 - 100 = 300
    assert iou[0, 0] == pytest.approx(1 / 3)
    # (4, 4) vs (2, 8): inter 2 * 4 = 8, union 16 + 16 - 8 = 24
    assert iou[1, 1] == pytest.approx(1 / 3)
    # (6, 6) vs (3, 3): the small one lies inside: 9 / 36
    assert iou[2, 2] == pytest.approx(0.25)
    # (10, 20) vs (3, 3): 9 / 200
    assert iou[0, 2] == pytest.approx(9 / 200)
    assert torch.allclose(anchor_iou(b, a), iou.T)
    assert torch.allclose(anchor_iou(a, a).diagonal(), torch.ones(3))


def test_mean_best_iou_of_hand_made_sizes():
    # (10, 10) matches its anchor exactly (1); (20, 20) holds it: 100 / 400 = 0.25; mean 0.625
    assert mean_best_iou(torch.tensor([[10.0, 10.0], [20.0, 20.0]]), torch.tensor([[10.0, 10.0]])) == \
        pytest.approx(0.625)
    # with a second anchor of (20, 20) both match exactly
    assert mean_best_iou(torch.tensor([[10.0, 10.0], [20.0, 20.0]]),
                         torch.tensor([[20.0, 20.0], [10.0, 10.0]])) == pytest.approx(1.0)


def test_kmeans_recovers_two_obvious_clusters():
    gen = torch.Generator().manual_seed(0)
    small = torch.tensor([10.0, 12.0]) + (torch.rand(60, 2, generator=gen) - 0.5) * 2   # (10, 12) +- 1
    large = torch.tensor([50.0, 40.0]) + (torch.rand(40, 2, generator=gen) - 0.5) * 6   # (50, 40) +- 3
    wh = torch.cat([large, small])[torch.randperm(100, generator=gen)]
    anchors = kmeans_anchors(wh, 2, seed=0)
    assert anchors.shape == (2, 2) and anchors.dtype == torch.float32
    # sorted by area: the small cluster first; each centroid is its cluster's mean size
    assert torch.allclose(anchors[0], small.mean(0), atol=1e-4)
    assert torch.allclose(anchors[1], large.mean(0), atol=1e-4)
    # every box is within IoU reach of its anchor: (9 * 11) / (11 * 13) = 0.69 at worst
    assert mean_best_iou(wh, anchors) > 0.85
    # deterministic: the same seed gives the same anchors, bit for bit, whatever the seed
    assert torch.equal(kmeans_anchors(wh, 2, seed=0), anchors)
    for seed in (1, 2, 3):
        assert torch.allclose(kmeans_anchors(wh, 2, seed=seed), anchors, atol=1e-4)


def test_kmeans_with_as_many_clusters_as_sizes_returns_the_sizes_by_area():
    wh = torch.tensor([[30, 30], [5, 8], [30, 30], [12, 4], [5, 8]])  # integer sizes: 3 distinct
    anchors = kmeans_anchors(wh, 3, seed=7)
    # areas 48 (12 x 4), 40 (5 x 8), 900: sorted 40, 48, 900
    assert torch.equal(anchors, torch.tensor([[5.0, 8.0], [12.0, 4.0], [30.0, 30.0]]))
    assert mean_best_iou(wh, anchors) == pytest.approx(1.0)


def test_kmeans_more_anchors_raise_the_mean_best_iou():
    gen = torch.Generator().manual_seed(1)
    wh = 8 + torch.rand(300, 2, generator=gen) * 40
    scores = [mean_best_iou(wh, kmeans_anchors(wh, k, seed=0)) for k in (1, 3, 6)]
    assert scores[0] < scores[1] < scores[2] < 1


# --------------------------------------------------------------------------- targets

ANCHORS = torch.tensor([[10.0, 10.0], [20.0, 20.0], [40.0, 40.0]])


def test_a_box_goes_to_the_cell_of_its_centre_and_its_best_anchor():
    # box (28, 14, 52, 26): centre (40, 20), size 24 x 12; stride 16
    # col = floor(40 / 16) = 2, t_x = 40 / 16 - 2 = 0.5; row = floor(20 / 16) = 1, t_y = 0.25
    # IoU with (10, 10): 10 * 10 / (288 + 100 - 100) = 0.347
    #          (20, 20): 20 * 12 / (288 + 400 - 240) = 0.536   <- best
    #          (40, 40): 24 * 12 / 1600                = 0.18
    # t_w = log(24 / 20) = log 1.2, t_h = log(12 / 20) = log 0.6
    t = build_yolo_targets([_image([[28, 14, 52, 26]], [7])], ANCHORS, grid=6, stride=16, num_classes=10)
    assert t["obj_mask"].shape == (1, 3, 6, 6) and t["obj_mask"].sum() == 1
    assert t["obj_mask"][0, 1, 1, 2]
    assert torch.allclose(t["box_target"][0, 1, 1, 2], torch.tensor([0.5, 0.25, math.log(1.2), math.log(0.6)]))
    assert t["class_target"][0, 1, 1, 2] == 7
    assert (t["class_target"] == -1).sum() == 3 * 36 - 1
    assert torch.equal(t["noobj_mask"], ~t["obj_mask"])
    assert t["box_target"][~t["obj_mask"]].abs().sum() == 0
    assert t["collisions"].tolist() == [0] and t["gt_kept"].tolist() == [[True]]
    assert torch.equal(t["gt_boxes"][0, 0], torch.tensor([28.0, 14, 52, 26]))


def test_batches_pad_the_ground_truth_and_keep_images_apart():
    # image 0: two boxes, image 1: none, image 2: one box on the far corner of the image: centre
    # (96, 96) goes to the last cell (5, 5) with t_x = t_y = 96 / 16 - 5 = 1
    t = build_yolo_targets([_image([[0, 0, 10, 10], [60, 60, 100, 100]], [1, 2]), _image([], []),
                            _image([[86, 86, 106, 106]], [3])], ANCHORS, grid=6, stride=16, num_classes=10)
    assert t["gt_boxes"].shape == (3, 2, 4)
    assert t["gt_mask"].tolist() == [[True, True], [False, False], [True, False]]
    assert t["obj_mask"].sum(dim=(1, 2, 3)).tolist() == [2, 0, 1]
    # (86..106)^2 is 20 x 20: anchor 1
    assert t["obj_mask"][2, 1, 5, 5] and torch.allclose(t["box_target"][2, 1, 5, 5], torch.tensor([1.0, 1, 0, 0]))
    # (0, 0, 10, 10): centre (5, 5), cell (0, 0), anchor 0, t = (5/16, 5/16, 0, 0)
    assert torch.allclose(t["box_target"][0, 0, 0, 0], torch.tensor([5 / 16, 5 / 16, 0, 0]))
    assert t["class_target"][0, 0, 0, 0] == 1 and t["class_target"][2, 1, 5, 5] == 3


def test_a_collision_keeps_the_larger_box_and_is_counted():
    # both centred at (40, 24): cell (row 1, col 2). With anchors (14, 14) and (40, 40):
    # 16 x 16: IoU 196 / 256 = 0.77 with (14, 14), 256 / 1600 = 0.16 with (40, 40)
    # 12 x 12: IoU 144 / 196 = 0.73 with (14, 14)
    # both claim anchor 0: the 16 x 16 box (area 256 > 144) is kept, whatever the order
    anchors = torch.tensor([[14.0, 14.0], [40.0, 40.0]])
    big, small = [32, 16, 48, 32], [34, 18, 46, 30]
    # a third box in the same cell but of anchor 1's shape (36 x 36) does not collide
    other = [22, 6, 58, 42]
    for boxes, labels, kept in (([big, small, other], [1, 2, 3], [True, False, True]),
                                ([small, big, other], [2, 1, 3], [False, True, True])):
        t = build_yolo_targets([_image(boxes, labels), _image([small], [5])], anchors, grid=6, stride=16,
                               num_classes=10)
        assert t["collisions"].tolist() == [1, 0]
        assert t["gt_kept"].tolist() == [kept, [True, False, False]]  # padded to 3 rows
        assert t["obj_mask"][0].sum() == 2
        assert t["class_target"][0, 0, 1, 2] == 1                  # the larger box's label
        assert t["box_target"][0, 0, 1, 2, 2] == pytest.approx(math.log(16 / 14))
        assert t["class_target"][0, 1, 1, 2] == 3
        # the other image, on its own, is unaffected
        assert t["class_target"][1, 0, 1, 2] == 5


def test_equal_boxes_in_one_slot_keep_the_first():
    t = build_yolo_targets([_image([[30, 10, 50, 30], [30, 10, 50, 30]], [4, 6])], ANCHORS, grid=6, stride=16,
                           num_classes=10)
    assert t["collisions"].tolist() == [1] and t["gt_kept"].tolist() == [[True, False]]
    assert t["class_target"][0, 1, 1, 2] == 4


# --------------------------------------------------------------------------- loss

def test_the_loss_of_a_hand_made_case():
    # grid 2, stride 16, one anchor (16, 16), 2 classes, pred all zeros.
    # box (0, 8, 8, 16): centre (4, 12) in cell (0, 0): t = (0.25, 0.75, log 0.5, log 0.5)
    # coord = 5 * [(0.5 - 0.25)^2 + (0.5 - 0.75)^2 + 2 (log 2)^2] = 5 * (0.125 + 2 ln^2 2)
    # obj = BCE(0, 1) = ln 2; class = CE(uniform over 2) = ln 2
    # noobj: the 3 other cells decode to 16 x 16 boxes centred on their cells, none overlapping
    # the ground truth (touching at most): nothing ignored, 0.5 * 3 * ln 2
    anchors = torch.tensor([[16.0, 16.0]])
    t = build_yolo_targets([_image([[0, 8, 8, 16]], [1])], anchors, grid=2, stride=16, num_classes=2)
    loss, parts = yolo_loss(torch.zeros(1, 1, 2, 2, 7), t, anchors, stride=16)
    expected = {"coord": 5 * (0.125 + 2 * LN2 ** 2), "obj": LN2, "noobj": 1.5 * LN2, "class": LN2}
    for key, value in expected.items():
        assert parts[key].item() == pytest.approx(value, rel=1e-6), key
    assert loss.item() == pytest.approx(sum(expected.values()), rel=1e-6)
    assert parts["ignored"].item() == 0


def test_predictions_that_already_match_a_box_are_ignored():
    # anchors (16, 16) and (12, 12); box (2, 2, 14, 14): 12 x 12 centred at (8, 8), anchor 1.
    # Anchor 0's prediction at cell (0, 0) with zero outputs is the box (0, 0, 16, 16): IoU
    # 144 / 256 = 0.5625 > 0.5, so it leaves the no-object term. 8 predictions: 1 object,
    # 1 ignored, 6 no-object -> noobj = 0.5 * 6 ln 2; without the ignore rule 0.5 * 7 ln 2.
    anchors = torch.tensor([[16.0, 16.0], [12.0, 12.0]])
    t = build_yolo_targets([_image([[2, 2, 14, 14]], [0])], anchors, grid=2, stride=16, num_classes=2)
    pred = torch.zeros(1, 2, 2, 2, 7)
    _, parts = yolo_loss(pred, t, anchors, stride=16)
    assert parts["noobj"].item() == pytest.approx(3 * LN2) and parts["ignored"].item() == 1
    _, parts = yolo_loss(pred, t, anchors, stride=16, ignore_threshold=0.6)
    assert parts["noobj"].item() == pytest.approx(3.5 * LN2) and parts["ignored"].item() == 0
    _, parts = yolo_loss(pred, t, anchors, stride=16, ignore_threshold=1.0)
    assert parts["noobj"].item() == pytest.approx(3.5 * LN2)


def _two_images():
    return [_image([[28, 14, 52, 26], [0, 50, 30, 96]], [7, 2]), _image([[40, 40, 80, 76]], [9])]


def test_a_perfect_prediction_costs_nothing_and_decodes_to_the_boxes():
    images = _two_images()
    t = build_yolo_targets(images, ANCHORS, grid=6, stride=16, num_classes=10)
    pred = ideal_prediction(t, 10)
    loss, parts = yolo_loss(pred, t, ANCHORS, stride=16, num_classes=10)
    # sigmoid(logit(t)) = t to float rounding; BCE(+-20) = log(1 + e^-20) = 2e-9 per prediction;
    # CE with a margin of 20 over 9 classes = log(1 + 9 e^-20) = 1.9e-8
    assert parts["coord"] < 1e-9 and parts["class"] < 1e-6 and loss < 1e-5
    dets = decode_yolo(pred, ANCHORS, stride=16)
    for image, det in zip(images, dets):
        assert len(det["boxes"]) == len(image["boxes"])
        iou = box_iou(det["boxes"], image["boxes"])
        best = iou.max(dim=0)
        assert (best.values > 0.99).all()
        assert torch.equal(det["labels"][best.indices], image["labels"])
        assert (det["scores"] > 0.99).all()


def test_nms_removes_a_duplicated_lower_score_box():
    images = _two_images()
    t = build_yolo_targets(images, ANCHORS, grid=6, stride=16, num_classes=10)
    pred = ideal_prediction(t, 10)
    # the 24 x 12 box of image 0 sits on anchor 1 at cell (1, 2); anchor 2 (40 x 40) of the same
    # cell predicts the same box, class and centre with objectness sigmoid(2) = 0.88
    pred[0, 2, 1, 2] = pred[0, 1, 1, 2]
    pred[0, 2, 1, 2, 2:4] = torch.tensor([math.log(24 / 40), math.log(12 / 40)])
    pred[0, 2, 1, 2, 4] = 2.0
    dup = decode_yolo(pred, ANCHORS, stride=16, iou_threshold=1.0)[0]  # IoU 1 is not > 1: both kept
    assert len(dup["boxes"]) == 3
    assert box_iou(dup["boxes"][2:], torch.tensor([[28.0, 14, 52, 26]])).item() > 0.99
    assert dup["scores"][2].item() == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item(), rel=1e-4)
    det = decode_yolo(pred, ANCHORS, stride=16)[0]
    assert len(det["boxes"]) == 2 and (det["scores"] > 0.99).all()
    # another class at the same place is not suppressed (per-class NMS)
    pred[0, 2, 1, 2, 5:] = 0
    pred[0, 2, 1, 2, 5 + 3] = 20.0
    det = decode_yolo(pred, ANCHORS, stride=16)[0]
    assert len(det["boxes"]) == 3 and 3 in det["labels"].tolist()


def test_decoding_clips_to_the_image_and_limits_the_count():
    # one anchor (40, 40) at cell (0, 0) with zero offsets: centre (8, 8), box (-12, -12, 28, 28)
    anchors = torch.tensor([[40.0, 40.0]])
    pred = torch.full((1, 1, 2, 2, 6), -20.0)
    pred[0, 0, 0, 0] = torch.tensor([0.0, 0.0, 0.0, 0.0, 20.0, 0.0])
    det = decode_yolo(pred, anchors, stride=16)[0]
    assert torch.allclose(det["boxes"], torch.tensor([[0.0, 0.0, 28.0, 28.0]]))
    # enormous sizes stay finite (t_wh clamped) and clipped
    pred[0, 0, 0, 0, 2:4] = 1e4
    assert torch.equal(decode_yolo(pred, anchors, stride=16)[0]["boxes"], torch.tensor([[0.0, 0.0, 32.0, 32.0]]))
    assert torch.isfinite(yolo_boxes(pred, anchors, 16)).all()
    pred[..., 4] = 20.0
    pred[..., 2:4] = 0.0
    assert len(decode_yolo(pred, anchors, stride=16, iou_threshold=1.0)[0]["boxes"]) == 4
    assert len(decode_yolo(pred, anchors, stride=16, iou_threshold=1.0, max_detections=3)[0]["boxes"]) == 3
    assert len(decode_yolo(pred, anchors, stride=16, max_detections=0)[0]["boxes"]) == 0


def test_no_gradient_reaches_the_coordinates_of_no_object_predictions():
    t = build_yolo_targets(_two_images(), ANCHORS, grid=6, stride=16, num_classes=10)
    pred = torch.randn(2, 3, 6, 6, 15, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss, _ = yolo_loss(pred, t, ANCHORS, stride=16)
    loss.backward()
    obj = t["obj_mask"]
    assert (pred.grad[~obj][:, :4] == 0).all()      # coordinates
    assert (pred.grad[~obj][:, 5:] == 0).all()      # class scores
    assert (pred.grad[obj][:, :4] != 0).all()
    assert (pred.grad[..., 4] != 0).sum() > 0


def test_the_lambdas_scale_their_terms():
    t = build_yolo_targets(_two_images(), ANCHORS, grid=6, stride=16, num_classes=10)
    pred = torch.randn(2, 3, 6, 6, 15, generator=torch.Generator().manual_seed(1))
    base, p1 = yolo_loss(pred, t, ANCHORS, 16, lambda_coord=1.0, lambda_noobj=1.0)
    scaled, p2 = yolo_loss(pred, t, ANCHORS, 16, lambda_coord=3.0, lambda_noobj=0.25)
    assert p2["coord"].item() == pytest.approx(3 * p1["coord"].item(), rel=1e-6)
    assert p2["noobj"].item() == pytest.approx(0.25 * p1["noobj"].item(), rel=1e-6)
    for key in ("obj", "class"):
        assert p2[key] == p1[key]
    assert (scaled - base).item() == pytest.approx(2 * p1["coord"].item() - 0.75 * p1["noobj"].item(), rel=1e-5)
    # the default weights are YOLOv1's 5 and 0.5
    default, p3 = yolo_loss(pred, t, ANCHORS, 16)
    assert p3["coord"].item() == pytest.approx(5 * p1["coord"].item(), rel=1e-6)
    assert p3["noobj"].item() == pytest.approx(0.5 * p1["noobj"].item(), rel=1e-6)
    assert default.item() == pytest.approx(sum(p3[k].item() for k in ("coord", "obj", "noobj", "class")), rel=1e-6)


def test_the_loss_is_a_mean_over_images():
    # the same image twice costs what it costs once
    images = _two_images()[:1]
    anchors = ANCHORS
    one = build_yolo_targets(images, anchors, 6, 16, 10)
    two = build_yolo_targets(images * 2, anchors, 6, 16, 10)
    pred = torch.randn(1, 3, 6, 6, 15, generator=torch.Generator().manual_seed(2))
    l1, _ = yolo_loss(pred, one, anchors, 16)
    l2, _ = yolo_loss(pred.expand(2, -1, -1, -1, -1), two, anchors, 16)
    assert l2.item() == pytest.approx(l1.item(), rel=1e-6)


# --------------------------------------------------------------------------- the net

def test_the_net_outputs_a_grid_of_anchor_predictions():
    net = zoo.create_model("yolo_tiny")
    assert zoo.model_card("yolo_tiny").task == "detection"
    assert (net.stride, net.grid, net.num_anchors) == (16, 6, 3)
    (x,) = net.example_inputs(2)
    assert x.shape == (2, 1, 96, 96)
    out = net(x)
    assert out.shape == (2, 3, 6, 6, 15)
    # channels a * (5 + C) .. (a + 1) * (5 + C) of the head are anchor a's
    raw = net.head(net.features(x))
    assert torch.equal(out[:, 1, 2, 4], raw[:, 15:30, 2, 4])
    net = zoo.create_model("yolo_tiny", num_classes=3, num_anchors=5, in_chans=3, image_size=64)
    assert net(net.example_inputs(1)[0]).shape == (1, 5, 4, 4, 8)
    with pytest.raises(ValueError, match="multiple of the stride 16"):
        zoo.create_model("yolo_tiny", image_size=100)


@pytest.mark.bad_input
def test_given_anchors_are_kept_and_published():
    """A published weight's card holds the task's anchors (they are not the net's tensors); given
    back to the task they are used as they are, and malformed ones are refused."""
    from zoo.tasks.detection import DetectionTask

    net = zoo.create_model("yolo_tiny")
    anchors = [[12.5, 18.25], [19.0, 23.5], [26.75, 29.0]]
    task = DetectionTask(net, num_classes=10, anchors=anchors)
    assert task.anchors.tolist() == anchors and task.published_facts() == {"anchors": anchors}
    assert "anchors" in DetectionTask.data_facts_used
    with pytest.raises(ValueError, match="no anchors yet"):  # without them, a task must train first
        DetectionTask(net, num_classes=10).shared_step(
            {"image": torch.zeros(1, 1, 96, 96), "targets": [{"boxes": torch.zeros(0, 4),
                                                              "labels": torch.zeros(0, dtype=torch.long)}]}, "val")
    with pytest.raises(ValueError, match="3 positive"):
        DetectionTask(net, num_classes=10, anchors=[[1.0, 2.0]])
    with pytest.raises(ValueError, match="3 positive"):
        DetectionTask(net, num_classes=10, anchors=[[1.0, 2.0], [0.0, 1.0], [3.0, 3.0]])


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    net = zoo.create_model("yolo_tiny", widths=(8, 8, 16, 16), neck=(32,))
    images = [_image([[10, 10, 40, 40], [50, 60, 80, 90]], [1, 2]), _image([[30, 20, 70, 50]], [3])]
    x = torch.zeros(2, 1, 96, 96)
    for i, image in enumerate(images):
        for (x1, y1, x2, y2), label in zip(image["boxes"].long().tolist(), image["labels"].tolist()):
            x[i, 0, y1:y2, x1:x2] = 0.3 + 0.2 * label
    t = build_yolo_targets(images, ANCHORS, 6, 16, 10)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss, _ = yolo_loss(net(x), t, ANCHORS, 16)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses


# --------------------------------------------------------------------------- round trip

@st.composite
def _boxes(draw):
    """1 to 10 boxes inside a 96x96 image, at least 1 px wide and high, distinct labels (so that
    per-class NMS never merges two of them)."""
    n = draw(st.integers(1, 10))
    boxes = []
    for _ in range(n):
        x1 = draw(st.floats(0, 95))
        y1 = draw(st.floats(0, 95))
        w = draw(st.floats(1, 96 - x1))
        h = draw(st.floats(1, 96 - y1))
        boxes.append([x1, y1, min(x1 + w, 96.0), min(y1 + h, 96.0)])
    labels = draw(st.permutations(list(range(10))))[:n]
    return boxes, labels


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(_boxes())
def test_every_box_that_did_not_collide_comes_back(drawn):
    boxes, labels = drawn
    image = _image(boxes, labels)
    anchors = torch.tensor([[12.0, 16.0], [30.0, 30.0], [60.0, 50.0]])
    t = build_yolo_targets([image], anchors, grid=6, stride=16, num_classes=10)
    kept = t["gt_kept"][0]
    assert int(kept.sum()) + int(t["collisions"][0]) == len(boxes)
    det = decode_yolo(ideal_prediction(t, 10), anchors, stride=16)[0]
    assert len(det["boxes"]) == int(kept.sum())
    for box, label in zip(image["boxes"][kept], image["labels"][kept]):
        same = det["labels"] == label
        assert same.sum() == 1
        assert box_iou(det["boxes"][same], box[None]).item() > 0.99


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.bad_input
@pytest.mark.parametrize("boxes", [torch.zeros(4), torch.zeros(2, 5), [[0.0, 0.0, 1.0, 1.0]]])
def test_targets_whose_boxes_are_not_n_by_4_are_refused(boxes):
    targets = [_image([[0, 0, 10, 10]], [1]), {"boxes": boxes, "labels": torch.zeros(1, dtype=torch.long)}]
    with pytest.raises(ValueError, match=r"argument `targets\[1\]\['boxes'\]` must be a tensor of shape \(n, 4\)"):
        build_yolo_targets(targets, ANCHORS, 6, 16, 10)


@pytest.mark.bad_input
@pytest.mark.parametrize("label", [10, -1])
def test_labels_out_of_range_are_refused(label):
    with pytest.raises(ValueError, match=rf"argument `targets\[0\]\['labels'\]` must lie in \[0, 10\), got {label}"):
        build_yolo_targets([_image([[0, 0, 10, 10]], [label])], ANCHORS, 6, 16, 10)


@pytest.mark.bad_input
def test_bad_ground_truth_is_refused():
    with pytest.raises(ValueError, match=r"`targets\[0\]\['labels'\]` must be a tensor of shape \(2,\)"):
        build_yolo_targets([{"boxes": torch.zeros(2, 4), "labels": torch.zeros(3, dtype=torch.long)}], ANCHORS,
                           6, 16, 10)
    with pytest.raises(ValueError, match=r"`targets\[0\]\['labels'\]` must hold integer class indices"):
        build_yolo_targets([{"boxes": torch.tensor([[0.0, 0, 4, 4]]), "labels": torch.tensor([1.0])}], ANCHORS,
                           6, 16, 10)
    with pytest.raises(ValueError, match=r"`targets\[0\]\['boxes'\]` must hold finite .* row 1"):
        build_yolo_targets([_image([[0, 0, 4, 4], [5, 5, 5, 9]], [1, 1])], ANCHORS, 6, 16, 10)
    with pytest.raises(ValueError, match=r"`targets\[0\]\['boxes'\]` has a box whose centre lies off the grid"):
        build_yolo_targets([_image([[90, 90, 110, 110]], [1])], ANCHORS, 6, 16, 10)
    with pytest.raises(ValueError, match=r"`targets\[0\]` must be a dict with 'boxes'"):
        build_yolo_targets([{"boxes": torch.zeros(0, 4)}], ANCHORS, 6, 16, 10)
    with pytest.raises(ValueError, match=r"argument `targets` must be a list of dicts"):
        build_yolo_targets(_image([[0, 0, 4, 4]], [1]), ANCHORS, 6, 16, 10)


@pytest.mark.bad_input
@pytest.mark.parametrize("anchors", [torch.ones(3), torch.ones(3, 3), torch.ones(0, 2), torch.tensor([[4.0, 0.0]])])
def test_anchors_of_the_wrong_shape_are_refused(anchors):
    t = build_yolo_targets([_image([[0, 0, 10, 10]], [1])], ANCHORS, 6, 16, 10)
    calls = [lambda: build_yolo_targets([_image([[0, 0, 10, 10]], [1])], anchors, 6, 16, 10),
             lambda: yolo_loss(torch.zeros(1, 3, 6, 6, 15), t, anchors, 16),
             lambda: decode_yolo(torch.zeros(1, 3, 6, 6, 15), anchors, 16)]
    for call in calls:
        with pytest.raises(ValueError, match=r"argument `anchors` must (have shape \(A, 2\)|hold finite, positive)"):
            call()


@pytest.mark.bad_input
def test_a_prediction_that_does_not_match_the_anchors_or_classes_is_refused():
    t = build_yolo_targets([_image([[0, 0, 10, 10]], [9])], ANCHORS, 6, 16, 10)
    with pytest.raises(ValueError, match=r"argument `pred` must have shape \(B, 3, S, S, 5 \+ C\) for 3 anchors"):
        yolo_loss(torch.zeros(1, 4, 6, 6, 15), t, ANCHORS, 16)
    with pytest.raises(ValueError, match=r"argument `pred` must have shape \(B, 3, S, S, 5 \+ 10\) for 3 anchors "
                                         r"and 10 classes, got \(1, 3, 6, 6, 13\)"):
        yolo_loss(torch.zeros(1, 3, 6, 6, 13), t, ANCHORS, 16, num_classes=10)
    with pytest.raises(ValueError, match=r"argument `pred` has 8 class scores .* the targets hold label 9"):
        yolo_loss(torch.zeros(1, 3, 6, 6, 13), t, ANCHORS, 16)
    with pytest.raises(ValueError, match=r"argument `pred` has shape \(1, 3, 5, 5, 15\), whose \(B, A, S, S\) "
                                         r"does not match the targets' \(1, 3, 6, 6\)"):
        yolo_loss(torch.zeros(1, 3, 5, 5, 15), t, ANCHORS, 16)
    with pytest.raises(ValueError, match=r"argument `pred` must have shape \(B, 3, S, S, 5 \+ C\)"):
        decode_yolo(torch.zeros(1, 2, 6, 6, 15), ANCHORS, 16)
    with pytest.raises(ValueError, match=r"argument `pred` must have shape \(B, 3, S, S, 5 \+ 10\)"):
        decode_yolo(torch.zeros(1, 3, 6, 6, 14), ANCHORS, 16, num_classes=10)
    with pytest.raises(ValueError, match=r"argument `targets` must be the dict of build_yolo_targets"):
        yolo_loss(torch.zeros(1, 3, 6, 6, 15), {"obj_mask": t["obj_mask"]}, ANCHORS, 16)


@pytest.mark.bad_input
def test_bad_thresholds_are_refused():
    t = build_yolo_targets([_image([[0, 0, 10, 10]], [1])], ANCHORS, 6, 16, 10)
    pred = torch.zeros(1, 3, 6, 6, 15)
    with pytest.raises(ValueError, match=r"argument `conf_threshold` must lie in \[0, 1\]"):
        decode_yolo(pred, ANCHORS, 16, conf_threshold=1.5)
    with pytest.raises(ValueError, match=r"argument `max_detections` must be an int >= 0"):
        decode_yolo(pred, ANCHORS, 16, max_detections=-1)
    with pytest.raises(ValueError, match=r"argument `lambda_noobj` must be a finite number >= 0"):
        yolo_loss(pred, t, ANCHORS, 16, lambda_noobj=-1)
    with pytest.raises(ValueError, match=r"argument `ignore_threshold` must lie in \[0, 1\]"):
        yolo_loss(pred, t, ANCHORS, 16, ignore_threshold=float("nan"))
    with pytest.raises(ValueError, match=r"argument `stride` must be an int >= 1"):
        build_yolo_targets([], ANCHORS, 6, 0, 10)


@pytest.mark.bad_input
def test_kmeans_refuses_bad_k_and_sizes():
    wh = torch.tensor([[10.0, 10.0], [20.0, 20.0], [10.0, 10.0]])
    with pytest.raises(ValueError, match=r"kmeans_anchors: argument `k` must be an int >= 1, got 0"):
        kmeans_anchors(wh, 0, seed=0)
    with pytest.raises(ValueError, match=r"argument `k` \(3\) exceeds the number of distinct box sizes in `wh` "
                                         r"\(2 among 3 boxes\)"):
        kmeans_anchors(wh, 3, seed=0)
    with pytest.raises(ValueError, match=r"argument `wh` must hold finite, positive widths and heights; row 1"):
        kmeans_anchors(torch.tensor([[10.0, 10.0], [0.0, 5.0]]), 1, seed=0)
    with pytest.raises(ValueError, match=r"argument `wh` must hold finite, positive widths and heights; row 0"):
        kmeans_anchors(torch.tensor([[float("nan"), 10.0]]), 1, seed=0)
    with pytest.raises(ValueError, match=r"argument `wh` must have shape \(N, 2\)"):
        kmeans_anchors(torch.ones(4, 4), 1, seed=0)
    with pytest.raises(ValueError, match=r"anchor_iou: argument `wh_b` must hold finite, positive"):
        anchor_iou(wh, torch.tensor([[-1.0, 2.0]]))
