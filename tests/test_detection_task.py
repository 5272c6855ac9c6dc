"""The detection task: its mean average precision agrees with an independent COCO evaluation
(pycocotools) on the same predictions, and YOLO trains and evaluates through zoo-train."""
from __future__ import annotations

import contextlib
import io

import pytest
import torch

from zoo.tasks.detection import MAP


def _detections_and_truth(seed: int = 0, images: int = 30, classes: int = 4):
    """Ground truth of 1-3 boxes per image; detections: each true box jittered (sometimes with
    the wrong class), plus false positives, with random scores."""
    g = torch.Generator().manual_seed(seed)
    preds, truth = [], []
    for _ in range(images):
        n = int(torch.randint(1, 4, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 60
        wh = 10 + torch.rand(n, 2, generator=g) * 30
        boxes = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(0, classes, (n,), generator=g)
        truth.append({"boxes": boxes, "labels": labels})
        jitter = (torch.rand(n, 4, generator=g) - 0.5) * 12
        wrong = torch.rand(n, generator=g) < 0.15
        det_labels = torch.where(wrong, (labels + 1) % classes, labels)
        m = int(torch.randint(0, 3, (1,), generator=g))  # false positives
        fxy = torch.rand(m, 2, generator=g) * 70
        fboxes = torch.cat([fxy, fxy + 5 + torch.rand(m, 2, generator=g) * 20], 1)
        all_boxes = torch.cat([boxes + jitter, fboxes])
        all_boxes = torch.cat([all_boxes[:, :2], torch.maximum(all_boxes[:, 2:], all_boxes[:, :2] + 1)], 1)
        preds.append({"boxes": all_boxes, "labels": torch.cat([det_labels, torch.randint(0, classes, (m,), generator=g)]),
                      "scores": torch.rand(n + m, generator=g)})
    return preds, truth


def _pycocotools_stats(preds, truth, classes: int):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    gt = {"images": [{"id": i} for i in range(len(truth))], "categories": [{"id": c} for c in range(classes)],
          "annotations": []}
    for i, t in enumerate(truth):
        for b, c in zip(t["boxes"], t["labels"]):
            box = xywh(b)
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": int(c),
                                      "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    dets = [{"image_id": i, "category_id": int(c), "bbox": xywh(b), "score": float(s)}
            for i, p in enumerate(preds) for b, c, s in zip(p["boxes"], p["labels"], p["scores"])]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        e = COCOeval(coco, coco.loadRes(dets), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats  # [0]: AP@[.5:.95], [1]: AP@.5


@pytest.mark.parametrize("seed", [0, 1])
def test_map_agrees_with_pycocotools(seed):
    preds, truth = _detections_and_truth(seed)
    ours = {}
    for key in ("map", "map_50"):
        metric = MAP(key)
        metric.update(preds[:17], truth[:17])  # in two updates, as an epoch's flushes give them
        metric.update(preds[17:], truth[17:])
        ours[key] = float(metric.compute())
    stats = _pycocotools_stats(preds, truth, classes=4)
    assert 0.2 < stats[1] < 0.95  # a non-trivial case: some hits, some misses
    # the same definition computed by two programs, with the same float64 thresholds: equal to
    # 1e-6 (the figures are float32 in torchmetrics)
    assert ours["map"] == pytest.approx(stats[0], abs=1e-6)
    assert ours["map_50"] == pytest.approx(stats[1], abs=1e-6)


def test_yolo_trains_evaluates_and_keeps_its_anchors(tmp_path):
    from conftest import compose_train
    from zoo.cli.train import train
    from zoo.tasks import load_task

    cfg = compose_train(["experiment=yolo_canvas", "trainer=cpu", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
                         "trainer.limit_test_batches=1", "data.train_canvases=96", "data.val_canvases=32",
                         "data.test_canvases=32", "trainer.enable_progress_bar=false",
                         "trainer.enable_model_summary=false"], tmp_path)
    record = train(cfg)
    assert set(record["test"]) >= {"test/map50", "test/map", "test/loss"}
    anchors = torch.tensor(record["anchors"])
    assert anchors.shape == (3, 2) and bool((anchors > 0).all())
    assert 0 < record["anchor_mean_iou"] <= 1
    assert "test_detections.png" in record["plots"]
    task = load_task(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert torch.allclose(task.anchors, anchors, atol=0.01)  # the checkpoint carries them
    # zoo-predict on a user's image file: a list of objects with class, score and box
    from PIL import Image

    from zoo.cli.predict import predict

    Image.new("L", (120, 100)).save(tmp_path / "mine.png")
    (result,) = predict(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), [tmp_path / "mine.png"])
    assert result["file"].endswith("mine.png") and isinstance(result["objects"], list)


@pytest.mark.parametrize("experiment,size", [("yolo_canvas", 96), ("faster_rcnn_canvas", 96), ("unet_canvas", 96)])
def test_the_canvas_recipes_run_on_real_format_voc(tmp_path, experiment, size):
    """The README's real-data recipe: a canvas experiment with data=voc_detection (or
    voc_segmentation for U-Net) reads a tiny VOC copy and trains a step; class count and
    channels come from the data."""
    from conftest import compose_train
    from test_detection_data import write_voc
    from zoo.cli.train import train

    write_voc(tmp_path / "data")
    data = "voc_segmentation" if experiment == "unet_canvas" else "voc_detection"
    cfg = compose_train([f"experiment={experiment}", f"data={data}", f"data.image_size={size}",
                         "data.num_workers=0", "trainer=cpu", "trainer.fast_dev_run=true"], tmp_path)
    record = train(cfg)
    assert record["data_facts"]["num_classes"] == 20 and record["data_facts"]["in_chans"] == 3
