"""COCO's metric: hand-worked cases, the file formats, bad inputs, and agreement with pycocotools.

pycocotools is the referee: on random and real-looking data sets (crowd regions, images without
objects, classes without detections, more than 100 detections per image, objects of every size,
overlaps of exactly a threshold, equal scores) ``coco_eval`` must give its twelve figures to 1e-6.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch

from ssd_edu import evaluate
from ssd_edu.coco_eval import SUMMARY_NAMES, coco_eval
from ssd_edu.coco_json import coco_boxes, detections_to_coco_json, ground_truths_to_coco_json


def t(rows, dtype=torch.float32):
    return torch.tensor(rows, dtype=dtype).reshape(-1, 4)


def px(boxes, size):
    """Pixel corners [x1, y1, x2, y2] -> xyxy fractions of a (width, height) image."""
    w, h = size
    return t([[x1 / w, y1 / h, x2 / w, y2 / h] for x1, y1, x2, y2 in boxes], torch.float64)


def det(boxes, scores, labels):
    return (
        boxes,
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.long),
    )


def gt(boxes, labels, crowd=None):
    crowd = [False] * len(labels) if crowd is None else crowd
    return (boxes, torch.tensor(labels, dtype=torch.long), torch.tensor(crowd, dtype=torch.bool))


SIZE = (640, 480)
BIG = [[100, 100, 300, 300]]  # 200 x 200 = 40000 pixels: a large object


# --------------------------------------------------------------------------------- by hand


def test_one_perfect_detection_of_a_large_object():
    r = coco_eval([det(px(BIG, SIZE), [0.9], [1])], [gt(px(BIG, SIZE), [1])], [SIZE])
    assert set(r) == set(SUMMARY_NAMES) and len(SUMMARY_NAMES) == 12
    for name in ("AP", "AP50", "AP75", "APl", "AR1", "AR10", "AR100", "ARl"):
        assert r[name] == pytest.approx(1.0, abs=1e-12), name
    # no small or medium object anywhere: undefined, reported as pycocotools does
    assert r["APs"] == r["APm"] == r["ARs"] == r["ARm"] == -1.0


def test_overlap_of_exactly_the_threshold_counts_unlike_the_voc_rule():
    # object 100 x 100 pixels, detection its left half: IoU exactly 0.5 (exact in binary fractions
    # of a 400-pixel image too, so that the VOC rule sees exactly 0.5 as well)
    size = (400, 400)
    obj, half = px([[0, 0, 100, 100]], size), px([[0, 0, 50, 100]], size)
    r = coco_eval([det(half, [0.9], [1])], [gt(obj, [1])], [size])
    # a true positive at 0.50 only (COCO counts overlap >= t): AP50 = 1, nine thresholds give 0
    assert r["AP50"] == pytest.approx(1.0) and r["AP75"] == 0.0
    assert r["AP"] == pytest.approx(0.1) and r["AR100"] == pytest.approx(0.1)
    # the VOC-rule "COCO-style" AP needs overlap > 0.5: the same detection counts nowhere
    assert evaluate.coco_map([det(half, [0.9], [1])], [gt(obj, [1])], ["a"]) == 0.0


def test_equal_overlaps_go_to_the_later_object():
    # the first detection overlaps A and B equally (90 / 110 each); COCOeval gives it B, the
    # later one, which leaves A to the second detection (IoU 1 with A, 80 / 120 with B)
    size = (512, 512)  # pixel / 512 is exact in binary: the two overlaps are equal to the bit
    objects = px([[0, 0, 100, 100], [20, 0, 120, 100]], size)
    boxes = px([[10, 0, 110, 100], [0, 0, 100, 100]], size)
    r = coco_eval([det(boxes, [0.9, 0.8], [1, 1])], [gt(objects, [1, 1])], [size])
    assert r["AP75"] == pytest.approx(1.0)  # had it taken A, the second would miss B at 0.75


def test_a_detection_inside_a_crowd_region_is_ignored_not_false():
    crowd = [[0, 0, 600, 400]]
    inside = [[10, 10, 40, 40]]  # overlaps the crowd by its own area: IoU 1 over a crowd
    boxes = px(BIG + crowd, SIZE)
    detections = [det(torch.cat((px(BIG, SIZE), px(inside, SIZE))), [0.5, 0.9], [1, 1])]
    r = coco_eval(detections, [gt(boxes, [1, 1], [False, True])], [SIZE])
    assert r["AP"] == pytest.approx(1.0)  # the higher-scored crowd detection costs nothing
    # without the crowd region the same detection is a false positive ranked first
    r = coco_eval(detections, [gt(px(BIG, SIZE), [1])], [SIZE])
    assert r["AP"] < 0.99


def test_a_class_with_only_crowd_regions_is_undefined():
    crowd = px([[0, 0, 600, 400]], SIZE)
    r = coco_eval([det(crowd, [0.9], [1])], [gt(crowd, [1], [True])], [SIZE])
    assert all(v == -1.0 for v in r.values())


def test_at_most_100_detections_per_image_and_class():
    # 100 false positives of class 1 scored above the one true positive: it is never seen
    wrong = px([[500, 400, 520, 420]] * 100, SIZE)
    boxes = torch.cat((wrong, px(BIG, SIZE)))
    scores = [0.9] * 100 + [0.1]
    r = coco_eval([det(boxes, scores, [1] * 101)], [gt(px(BIG, SIZE), [1])], [SIZE])
    assert r["AP"] == 0.0 and r["AR100"] == 0.0
    # the limit is per class: 100 detections of class 2 do not push out class 1's one
    labels = [2] * 100 + [1]
    two = [det(boxes, scores, labels)]
    r = coco_eval(two, [gt(px(BIG + BIG, SIZE), [1, 2])], [SIZE])
    assert r["AR100"] == pytest.approx(0.5)  # class 1 found, class 2 not: mean over classes


def test_ar1_keeps_only_the_best_detection_of_each_image_and_class():
    objects = px([[0, 0, 100, 100], [200, 200, 300, 300]], SIZE)
    r = coco_eval([det(objects, [0.9, 0.8], [1, 1])], [gt(objects, [1, 1])], [SIZE])
    assert r["AR1"] == pytest.approx(0.5) and r["AR10"] == pytest.approx(1.0)


def test_an_object_of_area_exactly_32_squared_is_small_and_medium():
    box = px([[0, 0, 32, 32]], SIZE)
    r = coco_eval([det(box, [0.9], [1])], [gt(box, [1])], [SIZE])
    assert r["APs"] == pytest.approx(1.0) and r["APm"] == pytest.approx(1.0)
    assert r["APl"] == -1.0


def test_no_images_or_no_detections():
    assert all(v == -1.0 for v in coco_eval([], [], []).values())
    empty = (torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    r = coco_eval([empty], [gt(px(BIG, SIZE), [1])], [SIZE])
    assert r["AP"] == 0.0 and r["AR100"] == 0.0 and r["APs"] == -1.0


def test_reexported_from_evaluate():
    assert evaluate.coco_eval is coco_eval


# --------------------------------------------------------------------------------- formats


def test_coco_boxes_by_hand():
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6]], dtype=torch.float64)
    torch.testing.assert_close(
        coco_boxes(boxes, 200, 100), torch.tensor([[20.0, 20.0, 80.0, 40.0]], dtype=torch.float64)
    )


def test_detections_to_coco_json_by_hand():
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0, 0, 1, 1]], dtype=torch.float64)
    out = detections_to_coco_json([det(boxes, [0.5, 0.25], [2, 1])], [42], [7, 9], [(200, 100)])
    assert out == [
        {"image_id": 42, "category_id": 9, "bbox": [20.0, 20.0, 80.0, 40.0], "score": 0.5},
        {"image_id": 42, "category_id": 7, "bbox": [0.0, 0.0, 200.0, 100.0], "score": 0.25},
    ]
    json.dumps(out)  # plain Python numbers


def test_ground_truths_to_coco_json_by_hand():
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6]], dtype=torch.float64)
    data = ground_truths_to_coco_json(
        [gt(boxes, [1], [True]), gt(t([]), [])], [3, 4], [5], [(200, 100), (10, 20)], ["cat"]
    )
    assert data["images"] == [
        {"id": 3, "file_name": "3.jpg", "width": 200, "height": 100},
        {"id": 4, "file_name": "4.jpg", "width": 10, "height": 20},
    ]
    assert data["annotations"] == [
        {
            "id": 1,
            "image_id": 3,
            "category_id": 5,
            "bbox": [20.0, 20.0, 80.0, 40.0],
            "area": 3200.0,
            "iscrowd": 1,
        }
    ]
    assert data["categories"] == [{"id": 5, "name": "cat"}]


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda d: detections_to_coco_json(d, [1], [7], [(10, 10)]), ValueError, r"1\.\.1 \(len"),
        (lambda d: detections_to_coco_json(d, ["a"], [7, 8], [(10, 10)]), TypeError, "integer"),
        (lambda d: detections_to_coco_json(d, [1], [7, 7], [(10, 10)]), ValueError, "already"),
        (lambda d: detections_to_coco_json(d, [1, 2], [7, 8], [(1, 1)]), ValueError, "one id"),
        (lambda d: detections_to_coco_json(d, [1], [7, 8], [(0, 10)]), ValueError, "positive"),
        (lambda d: detections_to_coco_json(d, [1], [7, 8], [10]), ValueError, r"\(width, height"),
    ],
)
def test_format_writers_refuse_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call([det(t([[0, 0, 1, 1]]), [0.5], [2])])


def test_nan_score_is_refused_in_json():
    with pytest.raises(ValueError, match=r"detections\[0\].*finite"):
        detections_to_coco_json([det(t([[0, 0, 1, 1]]), [math.nan], [1])], [1], [1], [(9, 9)])


@pytest.mark.parametrize(
    "dets, gts, sizes, message",
    [
        ([det(t([[0, 0, 1, 1]]), [0.5], [0])], [gt(t([]), [])], [SIZE], r"labels must be >= 1"),
        ([det(t([[0, 0, 1, 1]]), [math.nan], [1])], [gt(t([]), [])], [SIZE], r"scores\[0\] is NaN"),
        ([], [gt(t([]), [])], [SIZE], "one entry per image"),
        ([det(t([]), [], [])], [gt(t([]), [])], [], "one .width, height. per image"),
        ([det(t([]), [], [])], [gt(t([]), [])], [(-1, 3)], r"image_sizes\[0\] must be positive"),
        ([det(t([]), [], [])], [gt(t([[0, 0, 1, 1]]), [1], [1, 0])], [SIZE], r"iscrowd must have"),
    ],
)
def test_coco_eval_refuses_bad_input(dets, gts, sizes, message):
    with pytest.raises(ValueError, match=message):
        coco_eval(dets, gts, sizes)


# ----------------------------------------------------------------- against pycocotools


def pycocotools_stats(detections, ground_truths, sizes):
    """COCOeval's twelve figures, given the same data through our COCO writers."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    labels = {int(v) for _, lab, _ in ground_truths for v in lab}
    labels |= {int(v) for *_, lab in detections for v in lab}
    cats = list(range(1, max(labels, default=1) + 1))
    ids = list(range(1, len(sizes) + 1))
    results = detections_to_coco_json(detections, ids, cats, sizes)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = ground_truths_to_coco_json(ground_truths, ids, cats, sizes)
        truth.createIndex()
        run = COCOeval(truth, truth.loadRes(results), "bbox")
        run.evaluate()
        run.accumulate()
        run.summarize()
    return dict(zip(SUMMARY_NAMES, run.stats.tolist()))


def random_set(seed: int, n_images: int = 25, num_classes: int = 4):
    """Random objects and detections: jittered copies of the objects, random boxes, wrong
    classes, and scores on a coarse grid (many ties); fractions in float32, as a model gives."""
    g = np.random.default_rng(seed)
    detections, ground_truths, sizes = [], [], []
    for _ in range(n_images):
        size = (int(g.integers(40, 700)), int(g.integers(40, 700)))
        n_obj = int(g.integers(0, 8))
        xy = g.uniform(0, 0.9, (n_obj, 2))
        objects = np.clip(np.concatenate([xy, xy + g.uniform(0.02, 0.6, (n_obj, 2))], 1), 0, 1)
        labels = g.integers(1, num_classes + 1, n_obj)
        n_det = int(g.integers(0, 130))
        xy = g.uniform(0, 0.9, (n_det, 2))
        boxes = np.concatenate([xy, xy + g.uniform(0.01, 0.5, (n_det, 2))], 1)
        det_labels = g.integers(1, num_classes + 1, n_det)
        if n_obj:  # most detections near an object, most of those with its class
            near = g.random(n_det) < 0.6
            src = g.integers(0, n_obj, n_det)
            boxes[near] = objects[src[near]] + g.normal(0, 0.03, (int(near.sum()), 4))
            keep = near & (g.random(n_det) < 0.8)
            det_labels[keep] = labels[src[keep]]
        boxes = np.clip(boxes, 0, 1)
        detections.append(det(t(boxes), np.round(g.random(n_det), 1).tolist(), det_labels))
        ground_truths.append(gt(t(objects), labels, (g.random(n_obj) < 0.15).tolist()))
        sizes.append(size)
    return detections, ground_truths, sizes


def real_looking_set(seed: int):
    """COCO-like images: integer pixel boxes of every size, crowd regions, equal objects (ties in
    overlap), empty images, a class never detected and one never present, one image with 150
    detections of one class, detections on the pixel grid (overlaps of exactly a threshold)."""
    g = np.random.default_rng(seed)
    detections, ground_truths, sizes = [], [], []
    for i in range(30):
        w, h = [(640, 480), (480, 640), (640, 427), (500, 375)][i % 4]
        objects, labels, crowd = [], [], []
        for _ in range(0 if i % 7 == 3 else int(g.integers(1, 7))):
            side = int(g.choice([8, 20, 32, 50, 96, 150, 300]))  # small, medium and large
            bw, bh = side, max(2, int(side * g.uniform(0.5, 1.5)))
            x, y = int(g.integers(0, w - bw)), int(g.integers(0, max(1, h - bh)))
            objects.append([x, y, x + bw, min(h, y + bh)])
            labels.append(int(g.integers(1, 5)))  # classes 1..4; class 5 is only ever detected
            crowd.append(bool(g.random() < 0.1))
        if objects and g.random() < 0.3:  # the same object annotated twice
            objects.append(list(objects[0]))
            labels.append(labels[0])
            crowd.append(False)
        dets, scores, det_labels = [], [], []
        for (x1, y1, x2, y2), c in zip(objects, labels):
            for _ in range(int(g.integers(0, 4))):  # copies shifted by whole pixels
                dx, dy = (int(v) for v in g.integers(-(x2 - x1) // 2, (x2 - x1) // 2 + 1, 2))
                dets.append([x1 + dx, y1 + dy, x2 + dx, y2 + dy])
                scores.append(float(g.choice([0.3, 0.5, 0.7, 0.9])))
                det_labels.append(c if c != 4 else 1)  # class 4 has objects, never detections
        n_random = 150 if i == 5 else int(g.integers(0, 20))
        for _ in range(n_random):
            x, y, side = int(g.integers(0, w - 40)), int(g.integers(0, h - 40)), 40
            dets.append([x, y, x + side, y + side])
            scores.append(float(g.choice([0.1, 0.2, 0.3])))
            det_labels.append(2 if i == 5 else int(g.choice([1, 2, 3, 5])))
        boxes = px(dets, (w, h)).clamp(0, 1)
        detections.append(det(boxes, scores, det_labels))
        ground_truths.append(gt(px(objects, (w, h)), labels, crowd))
        sizes.append((w, h))
    return detections, ground_truths, sizes


def assert_agrees(detections, ground_truths, sizes):
    ours = coco_eval(detections, ground_truths, sizes)
    theirs = pycocotools_stats(detections, ground_truths, sizes)
    for name in SUMMARY_NAMES:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-6), name
    return ours


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_pycocotools_on_random_sets(seed):
    assert_agrees(*random_set(seed))


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_pycocotools_on_real_looking_sets(seed):
    detections, ground_truths, sizes = real_looking_set(seed)
    ours = assert_agrees(detections, ground_truths, sizes)
    # the set exercises what it claims: every figure defined, crowds, a 150-detection image
    assert all(v >= 0 for v in ours.values())
    assert any(bool(c.any()) for *_, c in ground_truths)
    assert max(len(s) for _, s, _ in detections) >= 150


def test_agrees_with_pycocotools_with_float32_boxes_and_many_ties():
    detections, ground_truths, sizes = real_looking_set(7)
    as32 = [(b.float(), s, lab) for b, s, lab in detections]
    tied = [(b, torch.full_like(s, 0.5), lab) for b, s, lab in as32]  # every score equal
    assert_agrees(as32, ground_truths, sizes)
    assert_agrees(tied, ground_truths, sizes)


def test_agrees_with_pycocotools_on_the_hand_worked_cases():
    size = (512, 512)
    tie = px([[0, 0, 100, 100], [20, 0, 120, 100]], size)
    crowd = px(BIG + [[0, 0, 600, 400]], SIZE)
    wrong = px([[500, 400, 520, 420]] * 100 + BIG, SIZE)
    cases = [
        (
            [det(px([[10, 0, 110, 100], [0, 0, 100, 100]], size), [0.9, 0.8], [1, 1])],
            [gt(tie, [1, 1])],
            [size],
        ),
        (
            [det(px([[0, 0, 50, 100]], size), [0.9], [1])],
            [gt(px([[0, 0, 100, 100]], size), [1])],
            [size],
        ),
        (
            [det(px(BIG + [[10, 10, 40, 40]], SIZE), [0.5, 0.9], [1, 1])],
            [gt(crowd, [1, 1], [False, True])],
            [SIZE],
        ),
        ([det(wrong, [0.9] * 100 + [0.1], [1] * 101)], [gt(px(BIG, SIZE), [1])], [SIZE]),
    ]
    for case in cases:
        assert_agrees(*case)
