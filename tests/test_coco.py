"""The COCO-format reader: a hand-written file, the VOC reader's item format, bad files named."""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssd_edu.coco_json import ground_truths_to_coco_json
from ssd_edu.data import (
    VOC_CLASSES,
    COCODetection,
    EvalTransform,
    TrainTransform,
    VOCDetection,
    collate_detections,
    make_toy_voc,
    split_image_ids,
)
from ssd_edu.data.images import ImageReadError

# three images, listed out of id order; categories out of id order, with a gap in the ids
FILE = {
    "info": {"description": "hand-written"},
    "images": [
        {"id": 30, "file_name": "sub/c.png", "width": 80, "height": 80},
        {"id": 10, "file_name": "a.jpg", "width": 200, "height": 100},
        {"id": 20, "file_name": "b.jpg", "width": 64, "height": 48},
    ],
    "annotations": [
        # 200 x 100: [20, 10, 100, 50] covers x 20..120, y 10..60 -> [0.1, 0.1, 0.6, 0.6]
        {"id": 1, "image_id": 10, "category_id": 90, "bbox": [20, 10, 100, 50], "area": 1.0},
        # leaves the image (x to 250, y to 120): clipped to [0.75, 0.8, 1, 1]; a crowd region
        {"id": 2, "image_id": 10, "category_id": 2, "bbox": [150, 80, 100, 40], "iscrowd": 1},
        # 64 x 48: [16, 12, 32, 24] -> [0.25, 0.25, 0.75, 0.75]
        {"id": 5, "image_id": 20, "category_id": 7, "bbox": [16, 12, 32, 24], "iscrowd": 0},
    ],
    "categories": [{"id": 90, "name": "zebra"}, {"id": 2, "name": "cat"}, {"id": 7, "name": "dog"}],
}


def write(root: Path, data: dict, name: str = "ann.json") -> Path:
    for image in data["images"]:
        path = root / image["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            pixels = np.full((image["height"], image["width"], 3), 100, np.uint8)
            Image.fromarray(pixels).save(path)
    (root / name).write_text(json.dumps(data))
    return root / name


@pytest.fixture
def coco(tmp_path) -> Path:
    return write(tmp_path, FILE)


def test_read_by_hand(coco):
    ds = COCODetection(coco.parent, coco)
    assert ds.image_ids == [10, 20, 30]  # id order, whatever the file's order
    assert ds.class_names == ("cat", "dog", "zebra") and ds.category_ids == (2, 7, 90)
    a = ds.annotation(0)
    torch.testing.assert_close(a["boxes"], torch.tensor([[0.1, 0.1, 0.6, 0.6], [0.75, 0.8, 1, 1]]))
    assert a["boxes"].dtype == torch.float32 and a["labels"].dtype == torch.int64
    assert a["labels"].tolist() == [3, 1]  # zebra (id 90), cat (id 2)
    assert a["difficult"].tolist() == [False, True] == a["iscrowd"].tolist()
    assert a["annotation_ids"].tolist() == [1, 2]
    assert (a["width"], a["height"], a["filename"], a["image_id"]) == (200, 100, "a.jpg", 10)
    b = ds.annotation(1)
    torch.testing.assert_close(b["boxes"], torch.tensor([[0.25, 0.25, 0.75, 0.75]]))
    assert b["labels"].tolist() == [2]
    c = ds.annotation(2)  # an image without annotations: kept, empty
    assert c["boxes"].shape == (0, 4) and c["labels"].shape == (0,) and c["difficult"].shape == (0,)


def test_items_as_voc_gives_them(coco):
    ds = COCODetection(coco.parent, coco)
    image, boxes, labels, difficult = ds[0]
    assert image.shape == (3, 100, 200) and image.dtype == torch.uint8
    assert int(image[0, 0, 0]) == 100
    assert torch.equal(boxes, ds.annotation(0)["boxes"]) and labels.tolist() == [3, 1]
    assert ds[-1][1].shape == (0, 4)
    with pytest.raises(IndexError):
        ds[3]


def test_with_transforms_seeding_and_collate(coco):
    train = COCODetection(coco.parent, coco, transform=TrainTransform(size=96), seed=5)
    a, b = train[1], train[1]
    assert torch.equal(a[0], b[0])
    train.set_epoch(1)
    assert not torch.equal(a[0], train[1][0])
    evals = COCODetection(coco.parent, coco, transform=EvalTransform(size=96))
    batch = [train[i] for i in range(3)] + [evals[i] for i in range(3)]
    images, boxes, labels, difficult = collate_detections(batch)
    assert images.shape == (6, 3, 96, 96) and images.dtype == torch.float32
    assert len(boxes) == len(labels) == len(difficult) == 6


def test_keep_crowd_false_drops_crowd_regions(coco):
    ds = COCODetection(coco.parent, coco, keep_crowd=False)
    assert ds.annotation(0)["annotation_ids"].tolist() == [1]
    assert not ds[0][3].any()


def test_image_ids_choose_a_split(coco):
    ds = COCODetection(coco.parent, coco, image_ids=[30, 10])
    assert ds.image_ids == [10, 30] and len(ds) == 2
    assert ds.annotation(1)["image_id"] == 30
    with pytest.raises(ValueError, match=r"image_ids\[1\] = 99 is not an image of .*ann\.json"):
        COCODetection(coco.parent, coco, image_ids=[10, 99])
    with pytest.raises(ValueError, match=r"image_ids\[1\] = 10 is listed twice"):
        COCODetection(coco.parent, coco, image_ids=[10, 10])


def test_split_image_ids_is_deterministic_and_complete():
    ids = list(range(1, 101))
    kept, held = split_image_ids(ids, 0.2, seed=3)
    assert len(held) == 20 and len(kept) == 80 and sorted(kept + held) == ids
    assert (kept, held) == split_image_ids(ids[::-1], 0.2, seed=3)  # the order does not matter
    assert held != split_image_ids(ids, 0.2, seed=4)[1]
    # the rule, written out: the ids ranked by sha256 of "seed:id", the first 30% held out
    ranked = sorted(range(1, 11), key=lambda i: hashlib.sha256(f"0:{i}".encode()).hexdigest())
    assert split_image_ids(range(1, 11), 0.3) == (sorted(ranked[3:]), sorted(ranked[:3]))
    assert split_image_ids(range(1, 11), 0.3) == ([1, 2, 3, 5, 6, 8, 10], [4, 7, 9])
    for fraction, message in (
        (0.0, r"in \(0, 1\)"),
        (1.0, r"in \(0, 1\)"),
        (0.004, "both need"),
        (0.996, "both need"),
    ):
        with pytest.raises(ValueError, match=message):
            split_image_ids(ids, fraction)
    with pytest.raises(ValueError, match="distinct"):
        split_image_ids([1, 1, 2], 0.5)


def test_round_trip_from_voc(tmp_path):
    # a toy VOC set written as a COCO file reads back with the same boxes, labels and images
    root = tmp_path / "VOCdevkit"
    make_toy_voc(root, 6, seed=1, test_fraction=0.0)
    voc = VOCDetection(root)
    anns = [voc.annotation(i) for i in range(len(voc))]
    data = ground_truths_to_coco_json(
        [(a["boxes"], a["labels"], a["difficult"]) for a in anns],
        list(range(1, len(voc) + 1)),
        list(range(1, 21)),
        [(a["width"], a["height"]) for a in anns],
        class_names=VOC_CLASSES,
        file_names=[voc.image_path(i).name for i in range(len(voc))],
    )
    (tmp_path / "voc.json").write_text(json.dumps(data))
    ds = COCODetection(root / "VOC2007" / "JPEGImages", tmp_path / "voc.json")
    assert ds.class_names == VOC_CLASSES and len(ds) == len(voc)
    for i in range(len(voc)):
        ours, theirs = ds[i], voc[i]
        assert torch.equal(ours[0], theirs[0])
        torch.testing.assert_close(ours[1], theirs[1], atol=1e-6, rtol=0)
        assert torch.equal(ours[2], theirs[2]) and torch.equal(ours[3], theirs[3])


# ------------------------------------------------------------------------------ bad files


def broken(change) -> dict:
    data = copy.deepcopy(FILE)
    change(data)
    return data


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("annotations"), r"not a COCO detection file: no 'annotations' key"),
        (lambda d: d["images"].append(dict(d["images"][0])), r"images\[3\] has id 30, already"),
        (
            lambda d: d["annotations"].append(dict(d["annotations"][0])),
            r"annotations\[3\] has id 1",
        ),
        (lambda d: d["categories"].append({"id": 2, "name": "x"}), r"categories\[3\] has id 2"),
        (lambda d: d["categories"].append({"id": 3, "name": "cat"}), "the name 'cat' of categ"),
        (
            lambda d: d["annotations"][2].update(image_id=99),
            r"annotation id 5 .*image id 99 is not",
        ),
        (lambda d: d["annotations"][2].update(category_id=8), r"id 5 .*category id 8 is not in"),
        (lambda d: d["annotations"][2].pop("bbox"), r"annotation id 5 .*image id 20: 'bbox' must"),
        (lambda d: d["annotations"][2].update(bbox=[1, 2, 3]), r"'bbox' must be \[x, y, w, h\]"),
        (lambda d: d["annotations"][2].update(iscrowd=2), r"'iscrowd' must be 0 or 1, got 2"),
        (lambda d: d["images"][1].pop("file_name"), r"images\[1\] \(id 10\): missing 'file_name'"),
        (lambda d: d["images"][1].update(width=0), r"images\[1\] \(id 10\): 'width' must be a pos"),
        (lambda d: d["images"][1].update(id="10"), r"images\[1\]: 'id' must be an integer id"),
        (lambda d: d.update(categories=[]), r"'categories' is empty"),
        (lambda d: d.update(images={}), r"'images' must be a list, got dict"),
    ],
)
def test_bad_files_are_named(tmp_path, change, message):
    data = broken(change)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        COCODetection(tmp_path, path)
    assert str(path) in str(info.value)


def test_not_json_and_not_coco_are_named(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text("{'images': []")
    with pytest.raises(ValueError, match=r"ann\.json: not a JSON file"):
        COCODetection(tmp_path, path)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"ann\.json: not a JSON file"):
        COCODetection(tmp_path, path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"ann\.json: not a COCO detection file: .* is a list"):
        COCODetection(tmp_path, path)
    with pytest.raises(FileNotFoundError, match=r"annotation file .*missing\.json not found"):
        COCODetection(tmp_path, tmp_path / "missing.json")


@pytest.mark.parametrize(
    "bbox, why",
    [
        ([10, 10, 0, 5], "non-positive size"),
        ([10, 10, 5, -1], "non-positive size"),
        ([300, 10, 20, 20], "nothing inside the image"),
    ],
)
def test_degenerate_boxes_warn_and_are_dropped(tmp_path, bbox, why):
    data = broken(lambda d: d["annotations"][2].update(bbox=bbox))
    path = write(tmp_path, data)
    names = r"annotation id 5 \(annotations\[2\]\), image id 20: "
    with pytest.warns(UserWarning, match=rf"{names}.*{why}.*object dropped"):
        ds = COCODetection(tmp_path, path)
    assert ds.annotation(1)["boxes"].shape == (0, 4)  # image 20 is kept, without the object


def test_missing_image_names_the_file_and_image_id(coco):
    (coco.parent / "b.jpg").unlink()
    ds = COCODetection(coco.parent, coco)
    with pytest.raises(FileNotFoundError, match=r"b\.jpg not found \(image id 20\)"):
        ds[1]


def test_a_truncated_image_names_file_image_id_and_index(coco):
    path = coco.parent / "a.jpg"
    path.write_bytes(path.read_bytes()[:300])
    ds = COCODetection(coco.parent, coco)
    with pytest.raises(ImageReadError) as info:
        ds[0]
    message = str(info.value)
    assert str(path) in message and "image id 10" in message and "dataset index 0" in message


def test_mismatched_image_size_warns(coco):
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(coco.parent / "b.jpg")
    ds = COCODetection(coco.parent, coco)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds[1]
    assert any("but its annotation says 64x48" in str(w.message) for w in caught)
