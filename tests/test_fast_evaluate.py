"""The vectorised VOC evaluation of ssd_edu.fast equals the devkit's loop, to the last bit."""

from __future__ import annotations

import math

import pytest
import torch

from ssd_edu import evaluate as reference
from ssd_edu.fast import evaluate as fast

NAMES = ["circle", "square", "triangle", "cross"]


def random_data(seed, num_images=8, num_classes=4, pixel=False, crowded=False):
    """Objects, jittered copies of them (duplicates), random boxes; scores with many ties."""
    g = torch.Generator().manual_seed(seed)
    dets, gts = [], []
    for _ in range(num_images):
        n = int(torch.randint(0, 12 if crowded else 5, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 0.6
        boxes = torch.cat((xy, xy + 0.1 + torch.rand(n, 2, generator=g) * 0.3), 1)
        labels = torch.randint(1, num_classes + 1, (n,), generator=g)
        difficult = torch.rand(n, generator=g) < 0.2
        copies = int(torch.randint(0, 4, (1,), generator=g))
        hits = boxes.repeat(copies, 1) + torch.randn(copies * n, 4, generator=g) * 0.04
        m = int(torch.randint(0, 6, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 0.7
        noise = torch.cat((xy, xy + 0.05 + torch.rand(m, 2, generator=g) * 0.3), 1)
        d_boxes = torch.cat((hits, noise))
        d_labels = torch.cat(
            (labels.repeat(copies), torch.randint(1, num_classes + 1, (m,), generator=g))
        )
        scores = (torch.rand(len(d_boxes), generator=g) * 10).round() / 10  # ties
        if pixel:
            boxes, d_boxes = (boxes * 500).round(), (d_boxes * 500).round()
        dets.append((d_boxes, scores, d_labels))
        gts.append((boxes, labels, difficult))
    return dets, gts


def assert_same(a, b):
    torch.testing.assert_close(a.ap, b.ap, equal_nan=True, rtol=0, atol=0)
    assert a.mean_ap == b.mean_ap or (math.isnan(a.mean_ap) and math.isnan(b.mean_ap))
    for name in ("num_positives", "true_positives", "false_positives", "ignored"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ("recall", "precision", "scores", "tp_flags"):
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
            torch.testing.assert_close(x, y, equal_nan=True, rtol=0, atol=0)
    if a.coco_ap is not None or b.coco_ap is not None:
        torch.testing.assert_close(a.coco_ap, b.coco_ap, equal_nan=True, rtol=0, atol=0)
    assert a.table() == b.table()


@pytest.mark.parametrize("seed", range(8))
def test_random_data_all_settings(seed):
    pixel, use_07 = seed % 2 == 1, seed % 4 < 2
    dets, gts = random_data(seed, pixel=pixel, crowded=seed >= 4)
    threshold = [0.0, 0.3, 0.5, 0.7][seed % 4]
    kwargs = dict(iou_threshold=threshold, use_07_metric=use_07, pixel=pixel, coco=True)
    assert_same(
        fast.evaluate_detections(dets, gts, NAMES, **kwargs),
        reference.evaluate_detections(dets, gts, NAMES, **kwargs),
    )


def test_chunks_of_pairs_give_the_same_result(monkeypatch):
    dets, gts = random_data(3, crowded=True)
    want = reference.evaluate_detections(dets, gts, NAMES)
    for size in (1, 2, 7):
        monkeypatch.setattr(fast, "_MAX_PAIRS", size)
        assert_same(fast.evaluate_detections(dets, gts, NAMES), want)


def test_edge_cases():
    empty_det = (torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    empty_gt = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=bool))
    dets, gts = random_data(1)
    cases = [
        ([], []),  # no images at all
        ([empty_det] * 3, [empty_gt] * 3),  # images with nothing
        ([empty_det] * len(gts), gts),  # objects, no detections
        (dets, [empty_gt] * len(dets)),  # detections, no objects: every AP undefined
        (dets, [(b, lab) for b, lab, _ in gts]),  # ground truth without difficult flags
    ]
    for d, g in cases:
        for coco in (False, True):
            assert_same(
                fast.evaluate_detections(d, g, NAMES, coco=coco),
                reference.evaluate_detections(d, g, NAMES, coco=coco),
            )


def test_identical_detections_and_objects_tie_in_input_order():
    box = torch.tensor([[0.1, 0.1, 0.5, 0.5]])
    # two identical objects and three identical detections of equal score in each image
    gts = [(box.repeat(2, 1), torch.tensor([1, 1]), torch.tensor([False, True]))] * 2
    dets = [(box.repeat(3, 1), torch.full((3,), 0.5), torch.tensor([1, 1, 1]))] * 2
    assert_same(
        fast.evaluate_detections(dets, gts, NAMES), reference.evaluate_detections(dets, gts, NAMES)
    )


@pytest.mark.parametrize(
    ("dets", "gts", "kwargs"),
    [
        ([(torch.zeros(1, 4), torch.zeros(2), torch.tensor([1]))], None, {}),
        ([(torch.zeros(1, 4), torch.zeros(1), torch.tensor([9]))], None, {}),
        ([(torch.zeros(1, 4), torch.tensor([float("nan")]), torch.tensor([1]))], None, {}),
        ([(torch.zeros(1, 4), torch.zeros(1), torch.tensor([1.0]))], None, {}),
        ([(torch.zeros(1, 4), torch.zeros(1))], None, {}),
        ([], None, dict(iou_threshold=1.5)),
    ],
)
def test_bad_input_gets_the_references_message(dets, gts, kwargs):
    gts = (
        gts
        if gts is not None
        else [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))] * len(dets)
    )
    with pytest.raises((TypeError, ValueError)) as expected:
        reference.evaluate_detections(dets, gts, NAMES, **kwargs)
    with pytest.raises(expected.type) as got:
        fast.evaluate_detections(dets, gts, NAMES, **kwargs)
    assert str(got.value) == str(expected.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_the_cpu_reference():
    dets, gts = random_data(5)
    on = [tuple(x.cuda() for x in item) for item in dets]
    gon = [tuple(x.cuda() for x in item) for item in gts]
    a = reference.evaluate_detections(dets, gts, NAMES, coco=True)
    b = fast.evaluate_detections(on, gon, NAMES, coco=True)
    torch.testing.assert_close(a.ap, b.ap, equal_nan=True)
    assert a.coco_map == pytest.approx(b.coco_map)
