"""Pascal VOC (detection, segmentation) and COCO (detection) read tiny copies written here in their
real on-disk layouts: JPEG images, VOC's XML annotations and ImageSets lists, a palette PNG
mask, COCO instances JSON files. Nothing is downloaded.

The expected numbers are worked out by hand in the comments: a VOC box ``(xmin, ymin, xmax,
ymax)`` (1-based, inclusive) is ``(xmin - 1, ymin - 1, xmax, ymax)`` in 0-based pixels, a COCO
``[x, y, w, h]`` is ``(x, y, x + w, y + h)``, and both are scaled by ``S / width`` and
``S / height`` with the image (S = ``image_size``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import (
    COCODetectionDataModule,
    DataFileError,
    DatasetNotFoundError,
    VOCDetectionDataModule,
    VOCSegmentationDataModule,
)
from datamodules.vision.detection_data import IMAGENET_MEAN, IMAGENET_STD, VOC_CLASSES, parse_voc_annotation

from conftest import compose_train

bad_input = pytest.mark.bad_input
S = 100  # image_size of every datamodule below
RED, BLUE = (255, 0, 0), (0, 0, 255)


# -- writers of the real formats ----------------------------------------------------------------
def write_jpeg(path: Path, width: int, height: int) -> None:
    """A JPEG whose left half is red and right half blue."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (width, height), BLUE)
    im.paste(Image.new("RGB", (width // 2, height), RED), (0, 0))
    im.save(path, "JPEG", quality=95)


def voc_object(name: str, box: tuple, difficult: int | None = 0, part: bool = False) -> str:
    """One <object> as VOC's files write it (tab-indented; a person may have <part>s with their
    own <bndbox>, which is not the object's)."""
    xmin, ymin, xmax, ymax = box
    diff = f"\t\t<difficult>{difficult}</difficult>\n" if difficult is not None else ""
    parts = ("\t\t<part>\n\t\t\t<name>head</name>\n\t\t\t<bndbox>\n\t\t\t\t<xmin>1</xmin>\n\t\t\t\t<ymin>1</ymin>\n"
             "\t\t\t\t<xmax>3</xmax>\n\t\t\t\t<ymax>3</ymax>\n\t\t\t</bndbox>\n\t\t</part>\n") if part else ""
    return (f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
            f"{diff}\t\t<bndbox>\n\t\t\t<xmin>{xmin}</xmin>\n\t\t\t<ymin>{ymin}</ymin>\n"
            f"\t\t\t<xmax>{xmax}</xmax>\n\t\t\t<ymax>{ymax}</ymax>\n\t\t</bndbox>\n{parts}\t</object>\n")


def write_voc_xml(path: Path, image_id: str, width: int, height: int, objects: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation>\n\t<folder>VOC2012</folder>\n\t<filename>{image_id}.jpg</filename>\n"
        f"\t<source>\n\t\t<database>The VOC2008 Database</database>\n\t\t<annotation>PASCAL VOC2008</annotation>\n"
        f"\t\t<image>flickr</image>\n\t</source>\n"
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
        f"\t<segmented>1</segmented>\n{''.join(objects)}</annotation>\n")


# image id -> (width, height, objects)
VOC_IMAGES = {
    "2008_000001": (200, 100, [voc_object("dog", (21, 11, 60, 50)),
                               voc_object("person", (101, 1, 200, 100), difficult=1, part=True)]),
    "2008_000002": (100, 100, [voc_object("aeroplane", (1, 1, 100, 50)),
                               voc_object("tvmonitor", (51, 51, 75, 100), difficult=None)]),
    "2008_000003": (50, 200, [voc_object("car", (11, 21, 30, 60))]),
}


def write_voc(root: Path, year: str = "2012", test: bool = False) -> Path:
    """VOCdevkit/VOC<year>/ with the three images above: train = 000001, 000002; val = 000003
    (and test = 000003 with ``test``); a palette mask for every image."""
    voc = root / "VOCdevkit" / f"VOC{year}"
    for image_id, (w, h, objects) in VOC_IMAGES.items():
        write_jpeg(voc / "JPEGImages" / f"{image_id}.jpg", w, h)
        write_voc_xml(voc / "Annotations" / f"{image_id}.xml", image_id, w, h, objects)
        write_mask(voc / "SegmentationClass" / f"{image_id}.png", w, h)
    for sets in ("Main", "Segmentation"):
        folder = voc / "ImageSets" / sets
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "train.txt").write_text("2008_000001\n2008_000002\n")
        (folder / "val.txt").write_text("2008_000003\n")
        (folder / "trainval.txt").write_text("2008_000001\n2008_000002\n2008_000003\n")
        if test:
            (folder / "test.txt").write_text("2008_000003\n")
    return voc


def mask_array(width: int, height: int) -> np.ndarray:
    """(height, width) class indices: background on the left, a 4-column border (255) at the
    middle, dog (class 11, value 12) top right, person (class 14, value 15) bottom right."""
    m = np.zeros((height, width), np.uint8)
    mid = width // 2
    m[: height // 2, mid:] = 12
    m[height // 2:, mid:] = 15
    m[:, mid - 2: mid + 2] = 255
    return m


def write_mask(path: Path, width: int, height: int, array: np.ndarray | None = None) -> None:
    """A palette PNG as VOC's SegmentationClass holds: mode P, the value of a pixel its class."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask_array(width, height) if array is None else array, mode="P")
    palette = [0] * 768
    for v in range(21):  # any colours: the pixel values are what counts
        palette[3 * v: 3 * v + 3] = [(v * 37) % 256, (v * 91) % 256, (v * 53) % 256]
    palette[765:768] = [224, 224, 192]  # VOC's border colour
    im.putpalette(palette)
    im.save(path)


COCO_CATEGORIES = [{"supercategory": "animal", "id": 18, "name": "dog"},
                   {"supercategory": "person", "id": 1, "name": "person"},
                   {"supercategory": "vehicle", "id": 3, "name": "car"}]


def coco_image(iid: int, w: int, h: int) -> dict:
    return {"license": 1, "file_name": f"{iid:012d}.jpg", "coco_url": "", "height": h, "width": w,
            "date_captured": "2013-11-14 11:18:45", "flickr_url": "", "id": iid}


def coco_ann(aid: int, iid: int, cid: int, bbox: list, crowd: int = 0) -> dict:
    return {"segmentation": [[bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1]]], "area": bbox[2] * bbox[3],
            "iscrowd": crowd, "image_id": iid, "bbox": bbox, "category_id": cid, "id": aid}


def write_coco(root: Path, year: str = "2017") -> dict[str, dict]:
    """annotations/instances_{train,val}<year>.json and the images: train = image 9 (200x100:
    a dog and a crowd of people) and image 25 (100x100, no annotation); val = image 30 (100x200:
    a car, and a box of zero height that is dropped)."""
    files = {
        "train": {"info": {"year": 2017}, "licenses": [],
                  "images": [coco_image(9, 200, 100), coco_image(25, 100, 100)],
                  "annotations": [coco_ann(101, 9, 18, [20, 10, 40, 40]),
                                  coco_ann(102, 9, 1, [100, 0, 100, 100], crowd=1)],
                  "categories": COCO_CATEGORIES},
        "val": {"info": {"year": 2017}, "licenses": [],
                "images": [coco_image(30, 100, 200)],
                "annotations": [coco_ann(103, 30, 3, [10.5, 20, 30, 60.5]),
                                coco_ann(104, 30, 3, [0, 0, 5, 0])],
                "categories": COCO_CATEGORIES},
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, data in files.items():
        for img in data["images"]:
            write_jpeg(root / f"{split}{year}" / img["file_name"], img["width"], img["height"])
        (root / "annotations" / f"instances_{split}{year}.json").write_text(json.dumps(data))
    return files


def voc_dm(root: Path, **kw) -> VOCDetectionDataModule:
    return VOCDetectionDataModule(data_dir=str(root), **{"image_size": S, "batch_size": 2, **kw})


def seg_dm(root: Path, **kw) -> VOCSegmentationDataModule:
    return VOCSegmentationDataModule(data_dir=str(root), **{"image_size": S, "batch_size": 2, **kw})


def coco_dm(root: Path, **kw) -> COCODetectionDataModule:
    return COCODetectionDataModule(data_dir=str(root), **{"image_size": S, "batch_size": 2, **kw})


def colour_at(image: torch.Tensor, row: int, col: int) -> np.ndarray:
    """The RGB (0..1) of a normalised image's pixel."""
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return (image[:, row, col] * std + mean).numpy()


def raises(fn, *, cls=DataFileError, names, says) -> str:
    """Call ``fn``, expecting ``cls`` whose message holds ``names`` (a file) and each of ``says``."""
    with pytest.raises(cls) as err:
        fn()
    message = str(err.value)
    assert str(names) in message, message
    for text in [says] if isinstance(says, str) else says:
        assert text in message, message
    return message


def assert_target(target: dict, boxes, labels, ignore_boxes=(), ignore_labels=()) -> None:
    assert set(target) == {"boxes", "labels", "ignore_boxes", "ignore_labels", "orig_size"}
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    assert target["ignore_boxes"].dtype == torch.float32 and target["ignore_labels"].dtype == torch.int64
    torch.testing.assert_close(target["boxes"], torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    assert target["labels"].tolist() == list(labels)
    torch.testing.assert_close(target["ignore_boxes"], torch.tensor(ignore_boxes, dtype=torch.float32).reshape(-1, 4))
    assert target["ignore_labels"].tolist() == list(ignore_labels)


DOG, PERSON, AEROPLANE, TV, CAR = (VOC_CLASSES.index(n) for n in ("dog", "person", "aeroplane", "tvmonitor", "car"))


# -- VOC detection -------------------------------------------------------------------------------
def test_voc_detection_boxes_are_converted_scaled_and_batched(tmp_path):
    write_voc(tmp_path)
    dm = voc_dm(tmp_path)
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (2, 1, 1)
    assert (DOG, PERSON, AEROPLANE, TV, CAR) == (11, 14, 0, 19, 6)  # VOC's standard order

    image, target = dm.train_set[0]  # 2008_000001, 200 wide x 100 high: x * 100/200, y * 100/100
    assert image.shape == (3, S, S) and image.dtype == torch.float32
    # dog (21, 11, 60, 50) -> 0-based (20, 10, 60, 50) -> (10, 10, 30, 50);
    # person, difficult: (101, 1, 200, 100) -> (100, 0, 200, 100) -> (50, 0, 100, 100), ignored
    # (its <part> head box (1, 1, 3, 3) is not the person's)
    assert_target(target, [[10, 10, 30, 50]], [DOG], [[50, 0, 100, 100]], [PERSON])
    assert target["orig_size"].tolist() == [100, 200]
    np.testing.assert_allclose(colour_at(image, 50, 10), [1, 0, 0], atol=0.06)  # red on the left
    np.testing.assert_allclose(colour_at(image, 50, 90), [0, 0, 1], atol=0.06)  # blue on the right

    # 2008_000002, 100 x 100, unscaled: aeroplane (1, 1, 100, 50) -> (0, 0, 100, 50);
    # tvmonitor (51, 51, 75, 100) -> (50, 50, 75, 100), no <difficult> element: not difficult
    assert_target(dm.train_set[1][1], [[0, 0, 100, 50], [50, 50, 75, 100]], [AEROPLANE, TV])
    # val 2008_000003, 50 wide x 200 high: x * 2, y * 0.5; car (11, 21, 30, 60) -> (10, 20, 30, 60)
    # -> (20, 10, 60, 30)
    assert_target(dm.val_set[0][1], [[20, 10, 60, 30]], [CAR])

    images, targets = next(iter(dm.val_dataloader()))
    assert images.shape == (1, 3, S, S) and isinstance(targets, list) and len(targets) == 1
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, S, S) and len(targets) == 2
    assert sorted(len(t["boxes"]) for t in targets) == [1, 2]
    assert dm.describe()["split_source"] == {"train": "train", "val": "val", "test": "val"}  # no test.txt


def test_voc_detection_facts_and_training_box_sizes(tmp_path):
    write_voc(tmp_path)
    dm = voc_dm(tmp_path)
    facts = dm.data_facts()  # known before the data is read
    assert facts == {"num_classes": 20, "class_names": list(VOC_CLASSES), "in_chans": 3, "image_size": S,
                     "input_shape": [3, S, S]}
    # the training boxes not ignored, after resizing: dog 20x40, aeroplane 100x50, tvmonitor 25x50
    torch.testing.assert_close(dm.train_box_sizes(), torch.tensor([[20.0, 40], [100, 50], [25, 50]]))
    assert dm.describe()["objects"]["train"] == {"objects": 3, "ignored": 1}


def test_voc_keep_difficult_makes_them_ordinary_objects(tmp_path):
    write_voc(tmp_path)
    dm = voc_dm(tmp_path, keep_difficult=True)
    dm.setup("fit")
    assert_target(dm.train_set[0][1], [[10, 10, 30, 50], [50, 0, 100, 100]], [DOG, PERSON])
    # the person, 50x100 after resizing, is now a training box too
    torch.testing.assert_close(dm.train_box_sizes(), torch.tensor([[20.0, 40], [50, 100], [100, 50], [25, 50]]))


def test_voc_test_list_limit_and_other_splits(tmp_path):
    write_voc(tmp_path, year="2007", test=True)
    dm = voc_dm(tmp_path, year=2007, train_split="trainval", limit=2)
    dm.setup("test")
    assert dm.describe()["split_source"] == {"train": "trainval", "val": "val", "test": "test"}
    assert [dm.train_set.annotations.ids, dm.test_set.annotations.ids] == [["2008_000001", "2008_000002"],
                                                                            ["2008_000003"]]
    assert len(dm.val_set) == 1 and len(dm.test_set) == 1


def test_voc_hflip_mirrors_images_and_boxes_together(tmp_path):
    write_voc(tmp_path)
    dm = voc_dm(tmp_path, hflip=True)
    dm.setup("fit")
    seen = {}
    for seed in range(20):
        torch.manual_seed(seed)
        image, target = dm.train_set[0]
        seen[bool(colour_at(image, 50, 10)[0] < 0.5)] = target  # flipped: blue on the left
    assert set(seen) == {False, True}
    assert_target(seen[False], [[10, 10, 30, 50]], [DOG], [[50, 0, 100, 100]], [PERSON])
    # x -> 100 - x: (10, 10, 30, 50) -> (70, 10, 90, 50); (50, 0, 100, 100) -> (0, 0, 50, 100)
    assert_target(seen[True], [[70, 10, 90, 50]], [DOG], [[0, 0, 50, 100]], [PERSON])
    assert dm.val_set.hflip is False


def test_voc_one_pixel_boxes_and_read_input(tmp_path):
    path = tmp_path / "a.xml"
    write_voc_xml(path, "a", 10, 10, [voc_object("cat", (5, 5, 5, 5)), voc_object("cow", (1.5, 2, 10, 10))])
    size, boxes, labels, difficult = parse_voc_annotation(path)
    # xmin = xmax = 5 is the one pixel [4, 5); fractional corners (some VOC 2012 files) are kept
    assert size == (10, 10) and boxes == [(4, 4, 5, 5), (0.5, 1, 10, 10)] and difficult == [False, False]
    assert labels == [VOC_CLASSES.index("cat"), VOC_CLASSES.index("cow")]

    write_jpeg(tmp_path / "mine.jpg", 40, 20)
    dm = voc_dm(tmp_path / "nowhere")
    image, note = dm.read_input(tmp_path / "mine.jpg")
    assert image.shape == (3, S, S) and note == {"orig_size": [20, 40]}
    assert dm.collate([image, image]).shape == (2, 3, S, S)


# -- VOC segmentation ----------------------------------------------------------------------------
def test_voc_segmentation_masks_after_resizing(tmp_path):
    write_voc(tmp_path)
    dm = seg_dm(tmp_path)
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (2, 1, 1)
    image, target = dm.train_set[0]  # 2008_000001: 200 wide x 100 high -> 100 x 100
    assert set(target) == {"masks", "orig_size"} and image.shape == (3, S, S)
    mask = target["masks"]
    assert mask.shape == (S, S) and mask.dtype == torch.int64
    # nearest neighbour, 2:1 across: output column i takes source column 2i or 2i + 1; the source
    # has background in columns 0..97, the border (255) in 98..101, the classes from 102 on
    # (dog 12 in rows 0..49, person 15 in rows 50..99), so: columns 0..48 background, 49..50
    # border, 51..99 dog above row 50 and person below
    expected = torch.zeros(S, S, dtype=torch.int64)
    expected[:50, 51:] = 12
    expected[50:, 51:] = 15
    expected[:, 49:51] = 255
    torch.testing.assert_close(mask, expected)
    assert set(torch.unique(dm.val_set[0][1]["masks"]).tolist()) == {0, 12, 15, 255}

    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, S, S) and torch.stack([t["masks"] for t in targets]).shape == (2, S, S)
    assert dm.data_facts() == {"num_classes": 20, "class_names": list(VOC_CLASSES), "in_chans": 3,
                               "image_size": S, "input_shape": [3, S, S], "ignore_index": 255}


def test_voc_segmentation_borders_as_background_and_hflip(tmp_path):
    write_voc(tmp_path)
    dm = seg_dm(tmp_path, ignore_index=0, hflip=True)
    dm.setup("fit")
    assert dm.data_facts()["ignore_index"] is None
    masks = set()
    for seed in range(20):
        torch.manual_seed(seed)
        image, target = dm.train_set[0]
        mask = target["masks"]
        assert 255 not in mask.unique().tolist()
        flipped = bool(colour_at(image, 50, 10)[0] < 0.5)
        assert int(mask[10, 90]) == (0 if flipped else 12) and int(mask[10, 10]) == (12 if flipped else 0)
        masks.add(flipped)
    assert masks == {False, True}


# -- COCO ----------------------------------------------------------------------------------------
def test_coco_boxes_classes_and_empty_images(tmp_path):
    write_coco(tmp_path)
    dm = coco_dm(tmp_path)
    assert dm.data_facts()["num_classes"] is None  # the categories are read in setup
    dm.prepare_data()
    dm.setup("fit")
    # category ids 1, 3, 18 in increasing order -> labels 0, 1, 2
    assert dm.data_facts() == {"num_classes": 3, "class_names": ["person", "car", "dog"], "in_chans": 3,
                               "image_size": S, "input_shape": [3, S, S]}
    assert dm.category_ids == [1, 3, 18]
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (2, 1, 1)

    # image 9, 200 wide x 100 high: x * 0.5; dog [20, 10, 40, 40] -> (20, 10, 60, 50) -> (10, 10, 30, 50);
    # the crowd of people [100, 0, 100, 100] -> (100, 0, 200, 100) -> (50, 0, 100, 100), ignored
    image, target = dm.train_set[0]
    assert image.shape == (3, S, S)
    assert_target(target, [[10, 10, 30, 50]], [2], [[50, 0, 100, 100]], [0])
    assert_target(dm.train_set[1][1], [], [])  # image 25: no annotation, kept with no box
    # val image 30, 100 wide x 200 high: y * 0.5; car [10.5, 20, 30, 60.5] -> (10.5, 20, 40.5, 80.5)
    # -> (10.5, 10, 40.5, 40.25); annotation 104 (height 0) dropped
    assert_target(dm.val_set[0][1], [[10.5, 10, 40.5, 40.25]], [1])
    assert dm.test_set.annotations is dm.val_set.annotations  # COCO has no public test annotations

    torch.testing.assert_close(dm.train_box_sizes(), torch.tensor([[20.0, 40.0]]))  # the crowd is left out
    described = dm.describe()
    assert described["objects"]["val"]["dropped_empty_boxes"] == 1
    assert described["objects"]["train"] == {"objects": 1, "crowds": 1, "images_without_objects": 1,
                                             "dropped_empty_boxes": 0}
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, S, S) and sorted(len(t["boxes"]) for t in targets) == [0, 1]


def test_coco_limit_keeps_the_first_images(tmp_path):
    write_coco(tmp_path)
    dm = coco_dm(tmp_path, limit=1)
    dm.setup("fit")
    assert dm.train_set.annotations.ids == ["9"] and len(dm.val_set) == 1


def test_configs_build_without_the_data_and_say_how_to_get_it(tmp_path):
    from hydra.utils import instantiate

    for option, cls in (("voc_detection", VOCDetectionDataModule), ("voc_segmentation", VOCSegmentationDataModule),
                        ("coco_detection", COCODetectionDataModule)):
        cfg = compose_train([f"data={option}", "~experiment"], tmp_path)
        assert cfg.data.download is False and cfg.data.limit is None
        dm = instantiate(cfg.data, _convert_="all")  # nothing on disk is touched
        assert isinstance(dm, cls) and dm.data_dir == str(tmp_path / "data")
        assert not (tmp_path / "data").exists()
        raises(dm.prepare_data, cls=DatasetNotFoundError, names=tmp_path / "data", says="data.download=true")


# -- bad inputs: VOC ------------------------------------------------------------------------------
def _voc_fault(tmp_path, image_id: str = "2008_000002") -> tuple[Path, Path]:
    voc = write_voc(tmp_path)
    return voc, voc / "Annotations" / f"{image_id}.xml"


@bad_input
def test_voc_folder_missing_names_it_and_the_layout(tmp_path):
    msg = raises(voc_dm(tmp_path).prepare_data, cls=DatasetNotFoundError,
                 names=tmp_path / "VOCdevkit" / "VOC2012", says=["Annotations/<id>.xml", "data.download=true"])
    assert "ImageSets/Main/train.txt" in msg


@bad_input
def test_voc_xml_that_does_not_parse(tmp_path):
    _, xml = _voc_fault(tmp_path)
    xml.write_text(xml.read_text()[:-30])  # cut short
    raises(voc_dm(tmp_path).setup, names=xml, says="not a well-formed XML file")


@bad_input
def test_voc_xml_with_entities_is_not_read(tmp_path):
    _, xml = _voc_fault(tmp_path)
    xml.write_text('<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x "xxxxxxxx">]>\n' + xml.read_text())
    raises(voc_dm(tmp_path).setup, names=xml, says="entities")


@bad_input
@pytest.mark.parametrize("objects, says", [
    ([voc_object("unicorn", (1, 1, 5, 5))], "class name 'unicorn', which is not one of VOC's 20 classes"),
    ([voc_object("cat", ("a1", 1, 5, 5))], "<xmin> of its <bndbox> is 'a1', not a number"),
    ([voc_object("cat", (1, 1, 5, 5)).replace("<ymax>5</ymax>", "")], "<ymax> of its <bndbox> is missing"),
    ([voc_object("cat", (1, 1, 5, 5)).replace("bndbox>", "box>")], "object 1 (cat) has no <bndbox>"),
    ([voc_object("cat", (9, 1, 5, 5))], "xmin=9, ymin=1, xmax=5, ymax=5: its corners are the wrong way round"),
    ([voc_object("cat", (1, 1, 5, 5), difficult=2)], "<difficult> '2'"),
    ([voc_object("cat", (1, 1, 5, 5)), voc_object("cat", (150, 1, 160, 5))], "object 2: its box (149.0, 0.0, "
                                                                             "160.0, 5.0)"),
], ids=["class", "not-a-number", "no-coordinate", "no-bndbox", "xmax-below-xmin", "difficult", "outside"])
def test_voc_malformed_objects(tmp_path, objects, says):
    _, xml = _voc_fault(tmp_path)
    write_voc_xml(xml, "2008_000002", 100, 100, objects)
    raises(voc_dm(tmp_path).setup, names=xml, says=says)


@bad_input
def test_voc_listed_image_missing(tmp_path):
    voc, _ = _voc_fault(tmp_path)
    (voc / "JPEGImages" / "2008_000002.jpg").unlink()
    raises(voc_dm(tmp_path).setup, cls=DatasetNotFoundError, names=voc / "JPEGImages" / "2008_000002.jpg",
           says=str(voc / "ImageSets" / "Main" / "train.txt"))


@bad_input
def test_voc_listed_annotation_missing(tmp_path):
    voc, xml = _voc_fault(tmp_path)
    xml.unlink()
    raises(voc_dm(tmp_path).setup, names=xml, says=[str(voc / "ImageSets" / "Main" / "train.txt"), "is missing"])


@bad_input
@pytest.mark.parametrize("line", ["../../etc/passwd", "2008_000001  1"])
def test_voc_list_lines_that_are_not_image_ids(tmp_path, line):
    voc, _ = _voc_fault(tmp_path)
    lst = voc / "ImageSets" / "Main" / "train.txt"
    lst.write_text(f"2008_000001\n{line}\n")
    raises(voc_dm(tmp_path).setup, names=lst, says=["line 2", "is not one image id"])


@bad_input
def test_voc_image_of_another_size_than_annotated(tmp_path):
    voc, _ = _voc_fault(tmp_path)
    write_jpeg(voc / "JPEGImages" / "2008_000002.jpg", 60, 100)
    dm = voc_dm(tmp_path)
    dm.setup("fit")
    raises(lambda: dm.train_set[1], names=voc / "JPEGImages" / "2008_000002.jpg",
           says=["is 60x100 pixels", "2008_000002.xml says 100x100"])


@bad_input
def test_voc_image_that_is_not_an_image(tmp_path):
    voc, _ = _voc_fault(tmp_path)
    jpg = voc / "JPEGImages" / "2008_000002.jpg"
    jpg.write_bytes(jpg.read_bytes()[:40])  # truncated
    dm = voc_dm(tmp_path)
    dm.setup("fit")
    raises(lambda: dm.train_set[1], names=jpg, says="not an image Pillow can read")


@bad_input
@pytest.mark.parametrize("kwargs, says", [
    ({"augment": object()}, "augment must be null"),
    ({"year": 2020}, "year must be one of 2007"),
    ({"image_size": 0}, "image_size must be an int >= 8"),
    ({"num_classes": 21}, "num_classes must be 20"),
    ({"limit": 0}, "limit must be null or an int >= 1"),
    ({"train_split": "../train"}, "train_split must name a list"),
], ids=["augment", "year", "image_size", "num_classes", "limit", "split"])
def test_voc_bad_arguments_fail_at_construction(tmp_path, kwargs, says):
    with pytest.raises(ValueError) as err:
        voc_dm(tmp_path, **kwargs)
    assert says in str(err.value)


# -- bad inputs: VOC segmentation ----------------------------------------------------------------
@bad_input
@pytest.mark.parametrize("fault, says", [
    ("value", "holds the pixel value 30; a VOC mask holds 0 (background), 1..20"),
    ("rgb", "is a RGB image, not a mask of class indices"),
    ("size", "is 100x100 pixels but its image is 200x100"),
], ids=["value", "rgb", "size"])
def test_voc_masks_that_are_not_voc_masks(tmp_path, fault, says):
    voc = write_voc(tmp_path)
    png = voc / "SegmentationClass" / "2008_000001.png"
    if fault == "value":
        array = mask_array(200, 100)
        array[0, 0] = 30
        write_mask(png, 200, 100, array)
    elif fault == "rgb":
        Image.new("RGB", (200, 100), (128, 0, 0)).save(png)
    else:
        write_mask(png, 100, 100)
    dm = seg_dm(tmp_path)
    dm.setup("fit")
    raises(lambda: dm.train_set[0], names=png, says=says)


@bad_input
def test_voc_listed_mask_missing(tmp_path):
    voc = write_voc(tmp_path)
    png = voc / "SegmentationClass" / "2008_000003.png"
    png.unlink()
    raises(seg_dm(tmp_path).setup, names=png, says=[str(voc / "ImageSets" / "Segmentation" / "val.txt"),
                                                      "is missing"])


@bad_input
def test_voc_segmentation_ignore_index_that_is_a_class(tmp_path):
    with pytest.raises(ValueError, match="ignore_index must be an int outside 1..20"):
        seg_dm(tmp_path, ignore_index=3)


# -- bad inputs: COCO -----------------------------------------------------------------------------
def _coco_fault(tmp_path, edit, split: str = "train") -> Path:
    files = write_coco(tmp_path)
    edit(files[split])
    path = tmp_path / "annotations" / f"instances_{split}2017.json"
    path.write_text(json.dumps(files[split]))
    return path


@bad_input
def test_coco_files_missing_name_the_folder(tmp_path):
    msg = raises(coco_dm(tmp_path).prepare_data, cls=DatasetNotFoundError,
                 names=tmp_path / "annotations" / "instances_train2017.json", says="data.download=true")
    assert str(tmp_path / "val2017") in msg


@bad_input
def test_coco_json_that_does_not_parse(tmp_path):
    write_coco(tmp_path)
    path = tmp_path / "annotations" / "instances_train2017.json"
    path.write_text(path.read_text()[:-10])
    raises(coco_dm(tmp_path).setup, names=path, says="not a valid JSON file")


@bad_input
@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_coco_json_without_a_section(tmp_path, key):
    path = _coco_fault(tmp_path, lambda d: d.pop(key))
    raises(coco_dm(tmp_path).setup, names=path, says=["is not a COCO instances file", repr(key)])


@bad_input
@pytest.mark.parametrize("edit, says", [
    (lambda d: d["annotations"][0].update(image_id=77), "annotation id 101 points to image_id 77, which is not "
                                                        "among the file's images"),
    (lambda d: d["annotations"][0].update(category_id=5), "annotation id 101 (image id 9) has the category_id 5"),
    (lambda d: d["annotations"][1].update(bbox=[100, 0, -3, 100]), "annotation id 102 (image id 9) has a bbox of "
                                                                   "width -3 and height 100"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, "3", 4]), "annotation id 101 (image id 9) has the bbox"),
    (lambda d: d["annotations"][0].update(bbox=[500, 500, 5, 5]), "annotation id 101 (image id 9): its box"),
    (lambda d: d["images"][0].update(file_name="../../secret.jpg"), "image id 9 has the file_name "
                                                                    "'../../secret.jpg'"),
    (lambda d: d["images"][1].update(width=0), "image id 25 has width 0"),
    (lambda d: d["images"].append(dict(d["images"][0])), "image id 9 appears twice"),
], ids=["unknown-image", "unknown-category", "negative-width", "not-numbers", "outside", "file-name",
        "image-size", "duplicate-image"])
def test_coco_malformed_annotations(tmp_path, edit, says):
    path = _coco_fault(tmp_path, edit)
    raises(coco_dm(tmp_path).setup, names=path, says=says)


@bad_input
def test_coco_listed_image_missing(tmp_path):
    write_coco(tmp_path)
    jpg = tmp_path / "val2017" / "000000000030.jpg"
    jpg.unlink()
    raises(coco_dm(tmp_path).setup, cls=DatasetNotFoundError, names=jpg,
           says=str(tmp_path / "annotations" / "instances_val2017.json"))


@bad_input
def test_coco_val_categories_must_be_the_train_ones(tmp_path):
    path = _coco_fault(tmp_path, lambda d: d["categories"][0].update(name="wolf"), split="val")
    raises(coco_dm(tmp_path).setup, names=path, says="lists other categories than")


@bad_input
def test_coco_num_classes_is_checked_against_the_categories(tmp_path):
    write_coco(tmp_path)
    raises(coco_dm(tmp_path, num_classes=80).setup, cls=ValueError,
           names=tmp_path / "annotations" / "instances_train2017.json",
           says="num_classes is 80 but")
