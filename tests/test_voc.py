"""PASCAL VOC reader: annotation parsing on hand-written fixtures, toy VOC round trip, 07+12."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssd_edu.data import (
    VOC_CLASSES,
    EvalTransform,
    TrainTransform,
    VOCDetection,
    collate_detections,
    make_toy_voc,
    parse_annotation,
)

FIXTURES = Path(__file__).parent / "fixtures"


def label(name: str) -> int:
    return VOC_CLASSES.index(name) + 1


def test_voc_classes_are_the_20_names():
    assert len(VOC_CLASSES) == 20 and len(set(VOC_CLASSES)) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[14] == "person"


def test_parse_by_hand():
    # 200 x 100 image. dog: pixels 1..100 x 1..50 -> [0, 0, 0.5, 0.5];
    # person (odd whitespace, decimal): 51..150 x 26..100 -> [0.25, 0.25, 0.75, 1.0], difficult;
    # car leaves the image (230 > 200, 120 > 100) -> clipped to [0.9, 0.9, 1, 1]
    ann = parse_annotation(FIXTURES / "voc_good.xml")
    expected = torch.tensor([[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 1.0], [0.9, 0.9, 1.0, 1.0]])
    torch.testing.assert_close(ann["boxes"], expected)
    assert ann["boxes"].dtype == torch.float32
    assert ann["labels"].tolist() == [label("dog"), label("person"), label("car")]
    assert ann["labels"].dtype == torch.int64
    assert ann["difficult"].tolist() == [False, True, False]
    assert ann["truncated"].tolist() == [False, True, False]
    assert (ann["width"], ann["height"], ann["filename"]) == (200, 100, "000001.jpg")


def test_parse_with_own_class_names():
    ann = parse_annotation(FIXTURES / "voc_good.xml", class_names=("car", "dog", "person"))
    assert ann["labels"].tolist() == [2, 3, 1]


def test_malformed_xml_names_the_file():
    with pytest.raises(ValueError, match=r"voc_bad_xml\.xml: malformed XML"):
        parse_annotation(FIXTURES / "voc_bad_xml.xml")


def test_unknown_class_names_file_and_object():
    with pytest.raises(ValueError, match=r"voc_unknown_class\.xml: object 1 \('unicorn'\)"):
        parse_annotation(FIXTURES / "voc_unknown_class.xml")
    with pytest.raises(ValueError, match="pass your dataset's class list as class_names"):
        parse_annotation(FIXTURES / "voc_unknown_class.xml")


def test_degenerate_box_warns_and_is_dropped():
    with pytest.warns(UserWarning, match=r"voc_degenerate\.xml: object 0 \('cat'\): degenerate"):
        ann = parse_annotation(FIXTURES / "voc_degenerate.xml")
    assert ann["labels"].tolist() == [label("bird")]
    torch.testing.assert_close(ann["boxes"], torch.tensor([[0.05, 0.1, 0.15, 0.4]]))
    assert ann["difficult"].tolist() == [True]


def test_missing_size_is_an_error():
    with pytest.raises(ValueError, match=r"voc_no_size\.xml: missing <size>"):
        parse_annotation(FIXTURES / "voc_no_size.xml")


def test_box_entirely_outside_is_dropped(tmp_path):
    xml = (
        "<annotation><size><width>10</width><height>10</height></size><object><name>cat</name>"
        "<bndbox><xmin>20</xmin><ymin>2</ymin><xmax>30</xmax><ymax>5</ymax></bndbox></object>"
        "</annotation>"
    )
    (tmp_path / "a.xml").write_text(xml)
    with pytest.warns(UserWarning, match="degenerate box"):
        ann = parse_annotation(tmp_path / "a.xml")
    assert ann["boxes"].shape == (0, 4) and ann["labels"].shape == (0,)


def test_non_numeric_coordinate(tmp_path):
    xml = (
        "<annotation><size><width>10</width><height>10</height></size><object><name>cat</name>"
        "<bndbox><xmin>one</xmin><ymin>2</ymin><xmax>3</xmax><ymax>5</ymax></bndbox></object>"
        "</annotation>"
    )
    (tmp_path / "a.xml").write_text(xml)
    with pytest.raises(ValueError, match=r"object 0 \('cat'\): <xmin> must be a number, got 'one'"):
        parse_annotation(tmp_path / "a.xml")


# ---------------------------------------------------------------------------------------------
# toy VOC: written by make_toy_voc, read back by VOCDetection
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def devkit(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("VOCdevkit")
    make_toy_voc(root, 12, seed=1)
    make_toy_voc(root, 6, seed=2, year="2012")
    return root


def test_toy_voc_layout(devkit):
    for sub in (
        "Annotations",
        "JPEGImages",
        "ImageSets/Main/trainval.txt",
        "ImageSets/Main/test.txt",
    ):
        assert (devkit / "VOC2007" / sub).exists()
    trainval = (devkit / "VOC2007/ImageSets/Main/trainval.txt").read_text().split()
    test = (devkit / "VOC2007/ImageSets/Main/test.txt").read_text().split()
    assert len(trainval) + len(test) == 12 and not set(trainval) & set(test)


def test_toy_voc_round_trip(devkit):
    ds = VOCDetection(devkit, image_set="test")
    assert len(ds) == 3
    n_difficult = 0
    for i in range(len(ds)):
        image, boxes, labels, difficult = ds[i]
        h, w = image.shape[1:]
        assert image.dtype == torch.uint8 and image.shape[0] == 3
        ann = ds.annotation(i)
        assert (ann["width"], ann["height"]) == (w, h)
        # the XML's 1-based inclusive pixels come back as the painted pixel edges
        assert torch.all(boxes[:, 2:] > boxes[:, :2])
        px = boxes * torch.tensor([w, h, w, h])
        torch.testing.assert_close(px, px.round(), atol=1e-3, rtol=0)
        assert labels.min() >= 1 and labels.max() <= 20
        n_difficult += int(difficult.sum())
    all_difficult = sum(
        int(VOCDetection(devkit).annotation(i)["difficult"].sum()) for i in range(9)
    )
    assert n_difficult + all_difficult > 0, "make_toy_voc should mark some objects difficult"


def test_box_edges_match_painted_pixels(devkit):
    # a box from the XML covers exactly the shape's pixels: the row just outside differs
    ds = VOCDetection(devkit)
    image, boxes, _, _ = ds[0]
    h, w = image.shape[1:]
    x1, y1, x2, y2 = (boxes[0] * torch.tensor([w, h, w, h])).round().long().tolist()
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_keep_difficult_false_drops_them(devkit):
    keep = VOCDetection(devkit, keep_difficult=True)
    drop = VOCDetection(devkit, keep_difficult=False)
    total_keep = sum(len(keep.annotation(i)["labels"]) for i in range(len(keep)))
    total_drop = sum(len(drop.annotation(i)["labels"]) for i in range(len(drop)))
    n_hard = sum(int(keep.annotation(i)["difficult"].sum()) for i in range(len(keep)))
    assert total_drop == total_keep - n_hard
    assert all(not drop[i][3].any() for i in range(len(drop)))


def test_annotations_are_parsed_once_and_handed_out_as_copies(devkit, monkeypatch):
    from ssd_edu.data import voc

    calls = []
    original = voc.parse_annotation

    def counting(path, class_names):
        calls.append(path)
        return original(path, class_names)

    monkeypatch.setattr(voc, "parse_annotation", counting)
    ds = VOCDetection(devkit)
    first = ds.annotation(0)
    first["boxes"] = torch.zeros(0, 4)  # a caller replacing a field
    again = ds.annotation(0)
    ds[0]
    assert len(calls) == 1
    assert len(again["boxes"]) > 0 and torch.equal(again["boxes"], ds.annotation(0)["boxes"])


def test_07_plus_12_union(devkit):
    v07, v12 = VOCDetection(devkit), VOCDetection(devkit, years="2012")
    both = VOCDetection(devkit, years=("2007", "2012"))
    assert len(both) == len(v07) + len(v12)
    assert both.image_ids == v07.image_ids + v12.image_ids
    assert both.image_ids[0].startswith("VOC2007/") and both.image_ids[-1].startswith("VOC2012/")
    assert len(set(both.image_ids)) == len(both)
    torch.testing.assert_close(both[len(v07)][1], v12[0][1])


def test_missing_image_names_the_file(devkit, tmp_path):
    root = tmp_path / "VOCdevkit"
    make_toy_voc(root, 4, seed=3)
    ds = VOCDetection(root)
    ds.image_path(0).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{ds.image_ids[0].split('/')[1]}\.jpg not found"):
        ds[0]


def test_missing_image_set_explains_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="root must be the VOCdevkit folder"):
        VOCDetection(tmp_path)


def test_with_transforms_and_collate(devkit):
    train = VOCDetection(devkit, years=("2007", "2012"), transform=TrainTransform(size=300))
    evals = VOCDetection(devkit, transform=EvalTransform(size=300))
    batch = [train[i] for i in range(4)] + [evals[i] for i in range(2)]
    for image, boxes, labels, difficult in batch:
        assert image.shape == (3, 300, 300) and image.dtype == torch.float32
        assert torch.isfinite(image).all()
        assert boxes.shape == (len(labels), 4) and difficult.shape == labels.shape
        if len(boxes):
            assert boxes.min() >= 0 and boxes.max() <= 1
            assert torch.all(boxes[:, 2:] > boxes[:, :2])
    images, boxes, labels, difficult = collate_detections(batch)
    assert images.shape == (6, 3, 300, 300)
    assert len(boxes) == len(labels) == len(difficult) == 6


def test_transform_seeded_per_epoch(devkit):
    ds = VOCDetection(devkit, transform=TrainTransform(size=96), seed=5)
    a, b = ds[1], ds[1]
    torch.testing.assert_close(a[0], b[0])
    ds.set_epoch(1)
    c = ds[1]
    assert not torch.equal(a[0], c[0])


def test_mismatched_image_size_warns(tmp_path):
    root = tmp_path / "VOCdevkit"
    make_toy_voc(root, 2, seed=4, test_fraction=0.0)
    ds = VOCDetection(root)
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(ds.image_path(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds[0]
    assert any("but its annotation says" in str(w.message) for w in caught)


def test_dataloader_with_two_workers_matches_one_process(devkit):
    from torch.utils.data import DataLoader

    ds = VOCDetection(devkit, transform=TrainTransform(size=64), seed=3)
    ds.set_epoch(2)
    kwargs = {"batch_size": 3, "collate_fn": collate_detections}
    single = list(DataLoader(ds, **kwargs))
    multi = list(DataLoader(ds, num_workers=2, **kwargs))
    for a, b in zip(single, multi, strict=True):
        assert torch.equal(a[0], b[0])
        assert all(torch.equal(x, y) for x, y in zip(a[1], b[1]))
        assert all(torch.equal(x, y) for x, y in zip(a[2], b[2]))
