"""The box operations of ``zoo.ops``: cases worked out by hand, properties checked with
hypothesis on drawn boxes, agreement with torchvision's reference implementations, and the
errors bad input gets."""
from __future__ import annotations

import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.ops import (
    batched_nms,
    box_area,
    box_iou,
    box_iou_aligned,
    clip_boxes,
    cxcywh_to_xyxy,
    decode_localization,
    encode_localization,
    nms,
    xywh_to_xyxy,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
)

# Every property below runs on a fixed sequence of examples: derandomize=True draws them from a
# seed derived from the test itself, so CI runs are deterministic and a failure reproduces on
# any machine; database=None keeps hypothesis from writing a .hypothesis/ folder. deadline=None:
# the first example pays torch's warm-up, which says nothing about the code. max_examples keeps
# the whole file to a few seconds on 2 slow CPU cores.
FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None)
FEW = settings(max_examples=30, deadline=None, derandomize=True, database=None)

HI = 512.0  # coordinates are drawn in [0, HI]


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


# --------------------------------------------------------------------------- strategies

def coordinates(hi: float = HI, grid: bool = False) -> st.SearchStrategy[float]:
    """Finite coordinates in [0, hi]: any float32, or (grid=True) multiples of 1/4, which float32
    holds exactly, as it does their sums with the integer offsets torchvision's batched NMS adds."""
    if grid:
        return st.integers(0, int(hi * 4)).map(lambda q: q / 4)
    return st.floats(0.0, hi, width=32, allow_nan=False, allow_infinity=False)


@st.composite
def boxes(draw, min_n: int = 0, max_n: int = 12, hi: float = HI, grid: bool = False,
          positive: bool = False) -> torch.Tensor:
    """(N, 4) valid boxes (x1 <= x2, y1 <= y2); with positive=True every box has positive area."""
    coord = coordinates(hi, grid)
    pair = st.lists(coord, min_size=2, max_size=2, unique=positive).map(sorted)
    rows = draw(st.lists(st.tuples(pair, pair), min_size=min_n, max_size=max_n))
    return torch.tensor([[x1, y1, x2, y2] for (x1, x2), (y1, y2) in rows], dtype=torch.float32).reshape(-1, 4)


@st.composite
def scored_boxes(draw, with_classes: bool = False):
    """Boxes crowded into a 64-pixel square (so that many overlap), on the 1/4 grid, with
    distinct scores (a permutation: no tie for the two implementations to break differently), an
    IoU threshold and, optionally, a class of 3 per box."""
    b = draw(boxes(min_n=0, max_n=16, hi=64.0, grid=True))
    n = b.shape[0]
    scores = torch.tensor(draw(st.permutations(range(n))), dtype=torch.float32) / max(n, 1)
    threshold = draw(st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0]), st.floats(0.0, 1.0)))
    if not with_classes:
        return b, scores, threshold
    classes = torch.tensor(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=torch.long)
    return b, scores, classes, threshold


# --------------------------------------------------------------------------- by hand

def test_conversions_by_hand():
    b = t([[2, 4, 10, 8]])
    # centre ((2+10)/2, (4+8)/2) = (6, 6), size (10-2, 8-4) = (8, 4)
    assert xyxy_to_cxcywh(b).tolist() == [[6, 6, 8, 4]]
    assert xyxy_to_xywh(b).tolist() == [[2, 4, 8, 4]]
    assert cxcywh_to_xyxy(t([[6, 6, 8, 4]])).tolist() == [[2, 4, 10, 8]]
    assert xywh_to_xyxy(t([[2, 4, 8, 4]])).tolist() == [[2, 4, 10, 8]]
    # any leading shape: (2, 1, 4) in, (2, 1, 4) out
    assert xyxy_to_cxcywh(b.expand(2, 1, 4)).shape == (2, 1, 4)


def test_iou_by_hand():
    a = t([[0, 0, 4, 4]])                     # area 16
    b = t([[2, 1, 6, 5],                      # area 16; overlap x in [2, 4], y in [1, 4]: 2 * 3 = 6
           [4, 0, 8, 4],                      # shares an edge with a: overlap 0
           [0, 0, 4, 4],                      # a itself
           [1, 1, 3, 3]])                     # inside a: area 4, overlap 4
    assert box_area(b).tolist() == [16, 16, 16, 4]
    iou = box_iou(a, b)
    # 6 / (16 + 16 - 6) = 6 / 26 = 3 / 13; 0; 1; 4 / 16 = 1 / 4
    torch.testing.assert_close(iou, torch.tensor([[3 / 13, 0.0, 1.0, 0.25]]))
    torch.testing.assert_close(box_iou_aligned(a.expand(4, 4), b), iou[0])


def test_zero_area_boxes_have_iou_zero_and_no_nan():
    point = t([[3, 3, 3, 3]])                 # area 0
    line = t([[1, 3, 5, 3]])                  # area 0, through the point
    box = t([[0, 0, 4, 4]])                   # holds both
    a = torch.cat([point, line, box]).requires_grad_()
    iou = box_iou(a, a)
    # every pair with a zero-area box: intersection 0, so IoU 0; a zero-area box with itself has
    # union 0, and IoU 0 rather than 0 / 0
    assert iou.tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 1]]
    aligned = box_iou_aligned(a, a)
    assert aligned.tolist() == [0, 0, 1]
    (iou.sum() + aligned.sum()).backward()
    assert torch.isfinite(a.grad).all()


def test_nms_by_hand():
    boxes_ = t([[0, 0, 10, 10],     # 0: A, score 0.9
                [4, 0, 14, 10],     # 1: B, score 0.8; IoU(A, B) = 6*10 / (100 + 100 - 60) = 60/140 = 0.43
                [8, 0, 18, 10],     # 2: C, score 0.7; IoU(A, C) = 2*10 / 180 = 0.11, IoU(B, C) = 0.43
                [30, 30, 40, 40]])  # 3: D, score 0.95, far from the others
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # threshold 0.4: D is kept (best), then A; A drops B (0.43 > 0.4); C overlaps A by 0.11 only,
    # so it is kept although it overlaps B by 0.43: a dropped box suppresses nothing.
    assert nms(boxes_, scores, 0.4).tolist() == [3, 0, 2]
    # threshold 0.5: nothing overlaps by more, all four kept, by decreasing score
    assert nms(boxes_, scores, 0.5).tolist() == [3, 0, 1, 2]
    # threshold 0.1: A drops B (0.43) and C (0.11 > 0.1)
    assert nms(boxes_, scores, 0.1).tolist() == [3, 0]
    # the comparison is strict: a box whose IoU is exactly the threshold is kept
    # (the lower half of A: overlap 50, union 100, IoU 0.5, which float32 holds exactly)
    assert nms(t([[0, 0, 10, 10], [0, 0, 10, 5]]), torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(t([[0, 0, 10, 10], [0, 0, 10, 5]]), torch.tensor([0.9, 0.8]), 0.49).tolist() == [0]
    # float32 cannot hold 0.3: an IoU of 30/100 rounds to 0.30000001, above the threshold 0.3
    # compared in float64; the box is dropped, as torchvision's kernel drops it
    strip = t([[0, 0, 10, 10], [0, 0, 10, 3]])
    assert nms(strip, torch.tensor([0.9, 0.8]), 0.3).tolist() == [0]
    assert torchvision.ops.nms(strip, torch.tensor([0.9, 0.8]), 0.3).tolist() == [0]
    assert nms(t([]), torch.tensor([]), 0.5).tolist() == []


def test_batched_nms_keeps_overlapping_boxes_of_different_classes():
    boxes_ = t([[0, 0, 10, 10],     # 0: class 0, score 0.9
                [1, 1, 11, 11],     # 1: class 1, score 0.8; IoU with 0: 9*9 / (200 - 81) = 81/119 = 0.68
                [0, 0, 10, 9]])     # 2: class 0, score 0.7; IoU with 0: 90 / 100 = 0.9
    scores = torch.tensor([0.9, 0.8, 0.7])
    classes = torch.tensor([0, 1, 0])
    # 1 overlaps 0 by 0.68 > 0.5 but is of another class, so it survives; 2 is dropped by 0
    assert batched_nms(boxes_, scores, classes, 0.5).tolist() == [0, 1]
    # one class: 0 drops both
    assert nms(boxes_, scores, 0.5).tolist() == [0]


def test_clip_boxes_by_hand():
    # image of height 30, width 16: x into [0, 16], y into [0, 30]
    assert clip_boxes(t([[-5, 3, 20, 40], [20, 35, 25, 50]]), 30, 16).tolist() == [[0, 3, 16, 30], [16, 30, 16, 30]]


def test_localization_target_by_hand():
    # box (10, 20)-(50, 40) in a 100 x 200 (height x width) image: centre (30, 30), size 40 x 20
    # b_x = 30/200 = 0.15, b_y = 30/100 = 0.3, b_h = 20/100 = 0.2, b_w = 40/200 = 0.2; class 2 of 3
    target = encode_localization([10, 20, 50, 40], 2, 3, (100, 200))
    torch.testing.assert_close(target, torch.tensor([1, 0.15, 0.3, 0.2, 0.2, 0, 0, 1]))
    box, label = decode_localization(target, (100, 200))
    torch.testing.assert_close(box, torch.tensor([10.0, 20, 50, 40]))
    assert int(label) == 2
    for missing in (None, -1):
        empty = encode_localization(None, missing, 3, 64)
        assert empty.tolist() == [0.0] * 8
        box, label = decode_localization(empty, 64)
        assert box.tolist() == [0.0] * 4 and int(label) == -1


# --------------------------------------------------------------------------- properties

# A conversion round trip rounds each coordinate at most four times (a sum, a halving, a
# difference, a sum), on float32 values below 1024, whose spacing there is 2**-13 ~ 1.2e-4; half
# a spacing per rounding is under 2.5e-4 in all, so 5e-4 bounds the error with a margin, while a
# wrong formula is off by at least a quarter-width.
ROUND_TRIP = dict(rtol=0.0, atol=5e-4)


@FAST
@given(boxes(max_n=8))
def test_conversions_round_trip(b):
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(b)), b, **ROUND_TRIP)
    torch.testing.assert_close(xywh_to_xyxy(xyxy_to_xywh(b)), b, **ROUND_TRIP)
    # and the other way round, from boxes given by centre or corner and size
    sizes = xyxy_to_cxcywh(b)
    torch.testing.assert_close(xyxy_to_cxcywh(cxcywh_to_xyxy(sizes)), sizes, **ROUND_TRIP)
    assert (xyxy_to_cxcywh(b)[:, 2:] >= 0).all()  # a valid box has a non-negative size


@FAST
@given(boxes(max_n=8), boxes(max_n=8))
def test_iou_is_symmetric_and_in_unit_interval(a, b):
    iou = box_iou(a, b)
    assert iou.shape == (a.shape[0], b.shape[0])
    assert not iou.isnan().any()
    assert ((iou >= 0) & (iou <= 1)).all()
    # max, min, the product and the sum of the two areas are all symmetric, so exactly so
    assert torch.equal(iou, box_iou(b, a).T)


@FAST
@given(boxes(min_n=1, max_n=8, positive=True), boxes(min_n=1, max_n=8))
def test_iou_of_a_box_with_itself_is_one_and_aligned_is_the_diagonal(a, b):
    # intersection and union are both the box's own area, computed identically: exactly 1
    assert torch.equal(box_iou_aligned(a, a), torch.ones(a.shape[0]))
    assert torch.equal(box_iou(a, a).diagonal(), torch.ones(a.shape[0]))
    n = min(a.shape[0], b.shape[0])
    assert torch.equal(box_iou_aligned(a[:n], b[:n]), box_iou(a[:n], b[:n]).diagonal())
    # aligned takes any leading shape: a (1, n, 4) batch gives (1, n)
    assert torch.equal(box_iou_aligned(a[None, :n], b[None, :n])[0], box_iou_aligned(a[:n], b[:n]))


@FAST
@given(boxes(max_n=8), boxes(max_n=8))
def test_iou_matches_torchvision(a, b):
    reference = torchvision.ops.box_iou(a, b)
    # torchvision gives NaN (0 / 0) for two boxes of zero area; we give 0
    torch.testing.assert_close(box_iou(a, b), torch.nan_to_num(reference, nan=0.0), rtol=1e-6, atol=1e-6)


@FAST
@given(scored_boxes())
def test_nms_matches_torchvision(case):
    b, scores, threshold = case
    assert nms(b, scores, threshold).tolist() == torchvision.ops.nms(b, scores, threshold).tolist()


@FAST
@given(scored_boxes(with_classes=True))
def test_batched_nms_matches_torchvision(case):
    b, scores, classes, threshold = case
    ours = batched_nms(b, scores, classes, threshold).tolist()
    assert ours == torchvision.ops.batched_nms(b, scores, classes, threshold).tolist()


@FAST
@given(scored_boxes(with_classes=True))
def test_the_matrix_and_the_row_by_row_suppression_keep_the_same_boxes(case):
    """Up to _MATRIX_NMS_LIMIT boxes the IoUs come from one matrix, beyond it one row at a time:
    the two paths keep the same boxes, with and without classes."""
    b, scores, classes, threshold = case
    from zoo.ops import boxes as box_ops

    by_matrix = (nms(b, scores, threshold).tolist(), batched_nms(b, scores, classes, threshold).tolist())
    limit = box_ops._MATRIX_NMS_LIMIT
    box_ops._MATRIX_NMS_LIMIT = -1
    try:
        by_rows = (nms(b, scores, threshold).tolist(), batched_nms(b, scores, classes, threshold).tolist())
    finally:
        box_ops._MATRIX_NMS_LIMIT = limit
    assert by_matrix == by_rows


def _check_greedy(b, scores, classes, threshold, kept):
    """The two facts that define greedy NMS, checked on its output."""
    kept_set = set(kept)
    assert len(kept_set) == len(kept)
    assert [scores[i].item() for i in kept] == sorted((scores[i].item() for i in kept), reverse=True)
    iou = box_iou(b, b).double()
    same = classes[:, None] == classes[None, :]
    # no two kept boxes (of one class) overlap by more than the threshold
    for i in kept:
        for j in kept:
            if i != j and same[i, j]:
                assert iou[i, j] <= threshold, (i, j, iou[i, j].item())
    # every dropped box overlaps a kept box of its class, of higher score, by more than it
    for j in range(b.shape[0]):
        if j not in kept_set:
            assert any(same[i, j] and scores[i] > scores[j] and iou[i, j] > threshold for i in kept), j


@FAST
@given(scored_boxes(with_classes=True))
def test_nms_output_is_greedy(case):
    b, scores, classes, threshold = case
    _check_greedy(b, scores, torch.zeros_like(classes), threshold, nms(b, scores, threshold).tolist())
    _check_greedy(b, scores, classes, threshold, batched_nms(b, scores, classes, threshold).tolist())


@FAST
@given(boxes(max_n=8, hi=2 * HI), st.integers(1, 512), st.integers(1, 512))
def test_clipped_boxes_lie_in_the_image_and_stay_valid(b, height, width):
    clipped = clip_boxes(b, height, width)
    assert ((clipped[:, 0::2] >= 0) & (clipped[:, 0::2] <= width)).all()
    assert ((clipped[:, 1::2] >= 0) & (clipped[:, 1::2] <= height)).all()
    box_area(clipped)  # still valid: raises otherwise
    inside = (b[:, 2] <= width) & (b[:, 3] <= height)
    assert torch.equal(clipped[inside], b[inside])  # boxes already inside are untouched


@st.composite
def localization_cases(draw):
    height, width = draw(st.integers(1, 512)), draw(st.integers(1, 512))
    num_classes = draw(st.integers(1, 10))
    label = draw(st.one_of(st.none(), st.just(-1), st.integers(0, num_classes - 1)))
    xs = draw(st.lists(st.floats(0, width, width=32), min_size=2, max_size=2).map(sorted))
    ys = draw(st.lists(st.floats(0, height, width=32), min_size=2, max_size=2).map(sorted))
    return [xs[0], ys[0], xs[1], ys[1]], label, num_classes, (height, width)


# The target holds fractions in float32 (relative error 2**-24 each); scaling back to pixels below
# 512 and converting centre and size to corners adds a few roundings of ~3e-5 each: 1e-3 bounds it.
@FEW
@given(localization_cases())
def test_localization_round_trip(case):
    box, label, num_classes, image_size = case
    target = encode_localization(box, label, num_classes, image_size)
    assert target.shape == (5 + num_classes,)
    decoded_box, decoded_label = decode_localization(target, image_size)
    if label is None or label == -1:
        assert target.eq(0).all() and int(decoded_label) == -1 and decoded_box.eq(0).all()
    else:
        assert target[0] == 1 and target[5:].sum() == 1
        assert ((target[1:5] >= 0) & (target[1:5] <= 1)).all()  # a box inside the image: fractions
        assert int(decoded_label) == label
        torch.testing.assert_close(decoded_box, torch.tensor(box), rtol=0.0, atol=1e-3)
    # a batch of one decodes the same
    batch_box, batch_label = decode_localization(target[None], image_size)
    assert torch.equal(batch_box[0], decoded_box) and int(batch_label[0]) == int(decoded_label)


# --------------------------------------------------------------------------- bad input

BAD = [
    # (call, the message it must raise)
    (lambda: xyxy_to_cxcywh(torch.zeros(3, 5)), "xyxy_to_cxcywh: argument `boxes` must have a last dimension of 4"),
    (lambda: box_iou(torch.zeros(3, 3), t([[0, 0, 1, 1]])), "box_iou: argument `a` must have a last dimension of 4"),
    (lambda: box_iou_aligned(t([[0, 0, 1, 1]]), torch.zeros(1, 2)),
     "box_iou_aligned: argument `b` must have a last dimension of 4"),
    (lambda: nms(torch.zeros(2, 4), torch.zeros(3), 0.5),
     "nms: argument `scores` must have shape (2,), one value per box"),
    (lambda: batched_nms(torch.zeros(2, 4), torch.zeros(2), torch.zeros(3, dtype=torch.long), 0.5),
     "batched_nms: argument `classes` must have shape (2,), one value per box"),
    (lambda: nms(torch.zeros(2, 4), torch.zeros(2), 1.5), "nms: argument `iou_threshold` must lie in [0, 1], got 1.5"),
    (lambda: nms(torch.zeros(2, 4), torch.zeros(2), -0.1), "nms: argument `iou_threshold` must lie in [0, 1]"),
    (lambda: batched_nms(torch.zeros(2, 4), torch.zeros(2), torch.zeros(2, dtype=torch.long), math.nan),
     "batched_nms: argument `iou_threshold` must lie in [0, 1], got nan"),
    (lambda: box_iou(t([[0, 0, 1, 1]]), t([[0, 0, 1, 1], [0, 0, 2, 2], [5, 0, 4, 1]])),
     "box_iou: argument `b` has x2 < x1 or y2 < y1 at row 2: [5.0, 0.0, 4.0, 1.0]"),
    (lambda: box_area(t([[0, 3, 1, 2]])), "box_area: argument `boxes` has x2 < x1 or y2 < y1 at row 0"),
    (lambda: box_iou_aligned(t([[0, 0, 1, 1]] * 2).reshape(2, 1, 4), t([[0, 0, 1, 1], [2, 2, 1, 3]]).reshape(2, 1, 4)),
     "box_iou_aligned: argument `b` has x2 < x1 or y2 < y1 at row (1, 0)"),
    (lambda: nms(t([[0, 0, 1, 1], [0, 0, 1, math.nan]]), torch.zeros(2), 0.5),
     "nms: argument `boxes` has a non-finite coordinate at row 1"),
    (lambda: nms(t([[0, 0, 1, 1], [0, 0, 1, 1]]), torch.tensor([0.5, math.nan]), 0.5),
     "nms: argument `scores` has a NaN at index 1"),
    (lambda: batched_nms(t([[1, 0, 0, 1]]), torch.zeros(1), torch.zeros(1, dtype=torch.long), 0.5),
     "batched_nms: argument `boxes` has x2 < x1 or y2 < y1 at row 0"),
    (lambda: batched_nms(t([[0, 0, 1, 1]]), torch.zeros(1), torch.zeros(1), 0.5),
     "batched_nms: argument `classes` must hold integer class indices"),
    (lambda: box_iou_aligned(t([[0, 0, 1, 1]] * 2), t([[0, 0, 1, 1]] * 3)),
     "box_iou_aligned: arguments `a` and `b` must have the same shape, got (2, 4) and (3, 4)"),
    (lambda: nms(torch.zeros(1, 2, 4), torch.zeros(1), 0.5), "nms: argument `boxes` must have shape (N, 4)"),
    (lambda: clip_boxes(t([[0, 0, 1, 1]]), -1, 10), "clip_boxes: argument `height` must be >= 0"),
    (lambda: encode_localization([0, 0, 1, 1], 3, 3, 32), "encode_localization: argument `label` must be in [0, 3)"),
    (lambda: encode_localization([4, 0, 1, 1], 0, 3, 32),
     "encode_localization: argument `box_xyxy` has x2 < x1 or y2 < y1 at the box"),
    (lambda: encode_localization(None, 1, 3, 32), "encode_localization: argument `box_xyxy` is None"),
    (lambda: decode_localization(torch.zeros(5), 32),
     "decode_localization: argument `target` must have a last dimension of 5 + num_classes"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("call, message", BAD, ids=[m.split(":")[0] + "-" + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises(ValueError) as caught:
        call()
    assert message in str(caught.value)


@pytest.mark.bad_input
def test_boxes_that_are_not_tensors_get_a_type_error():
    with pytest.raises(TypeError, match=r"box_iou: argument `a` must be a torch.Tensor of boxes, got list"):
        box_iou([[0, 0, 1, 1]], t([[0, 0, 1, 1]]))


def test_check_false_skips_validation_only():
    b = t([[0, 0, 4, 4], [1, 1, 3, 3]])
    assert torch.equal(box_iou(b, b, check=False), box_iou(b, b))
    # IoU 4/16 = 0.25: kept at threshold 0.3
    assert nms(b, torch.tensor([0.9, 0.8]), 0.3, check=False).tolist() == [0, 1]
    with pytest.raises(ValueError, match="last dimension of 4"):  # the shape is still checked
        box_iou_aligned(torch.zeros(2, 3), torch.zeros(2, 3), check=False)
