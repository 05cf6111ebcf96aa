"""VOC evaluation: hand-worked cases, the devkit's rule against a plain loop, and bad inputs."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssd_edu.evaluate import (
    COCO_IOU_THRESHOLDS,
    average_precision,
    coco_map,
    detection_verdicts,
    evaluate_detections,
    interpolated_precision,
)
from ssd_edu.viz import draw_verdicts, plot_ap_interpolation, plot_pr_curves, pr_curves_figure

NAMES = ["circle", "square", "triangle"]


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def gt(boxes, labels, difficult=None):
    difficult = [False] * len(labels) if difficult is None else difficult
    return (
        t(boxes).reshape(-1, 4),
        torch.tensor(labels, dtype=torch.long),
        torch.tensor(difficult),
    )


def det(boxes, scores, labels):
    return (t(boxes).reshape(-1, 4), t(scores), torch.tensor(labels, dtype=torch.long))


# ---------------------------------------------------------------- a plain reference (the devkit)


def reference_iou(a, b, pixel):
    one = 1.0 if pixel else 0.0
    iw = max(min(a[2], b[2]) - max(a[0], b[0]) + one, 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]) + one, 0.0)
    inter = iw * ih
    union = (a[2] - a[0] + one) * (a[3] - a[1] + one) + (b[2] - b[0] + one) * (b[3] - b[1] + one)
    union -= inter
    return inter / union if union > 0 else 0.0


def reference_ap(rec, prec, mode):
    """mode: '07' (11 levels i/10), 'area' (sentinels + envelope), 'coco' (101 levels)."""
    if mode in ("07", "coco"):
        levels = [i / 10 for i in range(11)] if mode == "07" else np.linspace(0, 1, 101).tolist()
        n = len(levels)
        total = 0.0
        for level in levels:
            reached = [p for r, p in zip(rec, prec) if r >= level]
            total += max(reached) if reached else 0.0
        return total / n
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1))


def reference_class_ap(dets, gts, label, thr, mode, pixel=False):
    """The devkit's loop for one class, written out: (AP or nan, rec, prec, counted flags)."""
    objects, taken, npos = {}, {}, 0
    for i, (boxes, labels, difficult) in enumerate(gts):
        objects[i] = [
            (boxes[j].tolist(), bool(difficult[j]))
            for j in range(len(labels))
            if labels[j] == label
        ]
        taken[i] = [False] * len(objects[i])
        npos += sum(1 for _, d in objects[i] if not d)
    found = []
    for i, (boxes, scores, labels) in enumerate(dets):
        for k in range(len(labels)):
            if labels[k] == label:
                found.append((-float(scores[k]), i, boxes[k].tolist()))
    found.sort(key=lambda x: x[0])  # Python's sort is stable: ties keep (image, position) order
    tp, fp = [], []
    for _, i, box in found:
        best, jbest = -math.inf, -1
        for j, (obox, _) in enumerate(objects[i]):
            o = reference_iou(box, obox, pixel)
            if o > best:
                best, jbest = o, j
        if best > thr:
            if objects[i][jbest][1]:  # difficult: neither TP nor FP, as the devkit does
                tp.append(0)
                fp.append(0)
            elif not taken[i][jbest]:
                taken[i][jbest] = True
                tp.append(1)
                fp.append(0)
            else:
                tp.append(0)
                fp.append(1)
        else:
            tp.append(0)
            fp.append(1)
    ctp, cfp, rec, prec = 0, 0, [], []
    for a, b in zip(tp, fp):
        ctp += a
        cfp += b
        rec.append(ctp / npos if npos else math.nan)
        prec.append(ctp / max(ctp + cfp, np.finfo(np.float64).eps))
    counted = [a + b == 1 for a, b in zip(tp, fp)]
    if npos == 0:
        return math.nan, rec, prec, counted
    return reference_ap(rec, prec, mode), rec, prec, counted


def random_data(seed, num_images=6, num_classes=3, pixel=False):
    g = torch.Generator().manual_seed(seed)
    dets, gts = [], []
    for _ in range(num_images):
        n = int(torch.randint(0, 5, (1,), generator=g))
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
        # scores rounded to one decimal: plenty of ties, to check their order too
        scores = (torch.rand(len(d_boxes), generator=g) * 10).round() / 10
        if pixel:
            boxes, d_boxes = (boxes * 500).round(), (d_boxes * 500).round()
        dets.append((d_boxes, scores, d_labels))
        gts.append((boxes, labels, difficult))
    return dets, gts


# ---------------------------------------------------------------- average_precision by hand

# five detections of one class, 4 objects: TP FP TP FP TP
WORKED_RECALL = [0.25, 0.25, 0.5, 0.5, 0.75]
WORKED_PRECISION = [1.0, 0.5, 2 / 3, 0.5, 0.6]


def test_average_precision_11_point_by_hand():
    # envelope 1, 2/3, 2/3, .6, .6: levels 0-.2 read 1, .3-.5 read 2/3, .6-.7 read .6, .8-1 read 0
    expected = (3 * 1.0 + 3 * (2 / 3) + 2 * 0.6) / 11
    assert average_precision(WORKED_RECALL, WORKED_PRECISION) == pytest.approx(expected)


def test_average_precision_area_by_hand():
    # steps 0->.25 at 1, .25->.5 at 2/3, .5->.75 at .6, .75->1 at 0 (the sentinel)
    expected = 0.25 * 1.0 + 0.25 * (2 / 3) + 0.25 * 0.6
    got = average_precision(WORKED_RECALL, WORKED_PRECISION, use_07_metric=False)
    assert got == pytest.approx(expected)
    assert got == pytest.approx(17 / 30)


def test_average_precision_accepts_tensors_and_arrays_and_empty():
    r, p = torch.tensor(WORKED_RECALL), np.array(WORKED_PRECISION)
    assert average_precision(r, p) == pytest.approx(average_precision(WORKED_RECALL, p))
    assert average_precision([], []) == 0.0
    assert average_precision([], [], use_07_metric=False) == 0.0


def test_recall_exactly_on_a_level_counts_for_it():
    # 10 objects, 3 found first: recall exactly 3/10 reaches level 0.3 (4 levels: 0, .1, .2, .3);
    # np.arange(0, 1.1, 0.1) would give 0.30000000000000004 and only 3 levels
    recall = [k / 10 for k in range(1, 4)]
    assert average_precision(recall, [1.0, 1.0, 1.0]) == pytest.approx(4 / 11)


@pytest.mark.parametrize(
    "recall, precision, message",
    [
        ([0.1, 0.2], [1.0], "same shape"),
        ([[0.1]], [[1.0]], "recall must be 1-D"),
        ([0.1, 1.5], [1.0, 1.0], r"recall must lie in \[0, 1\]"),
        ([0.1, 0.2], [1.0, -0.5], r"precision must lie in \[0, 1\]"),
        ([0.5, 0.2], [1.0, 1.0], "non-decreasing"),
    ],
)
def test_average_precision_rejects(recall, precision, message):
    with pytest.raises(ValueError, match=message):
        average_precision(recall, precision)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=12),
    st.booleans(),
    st.integers(0, 11),
    st.floats(0, 1),
)
def test_ap_in_unit_interval_and_monotone_in_precision(points, use_07, k, raise_to):
    recall = sorted(r for r, _ in points)
    precision = [p for _, p in points]
    ap = average_precision(recall, precision, use_07)
    assert 0.0 <= ap <= 1.0 + 1e-12
    higher = list(precision)
    i = k % len(higher)
    higher[i] = max(higher[i], raise_to)  # raising one precision never lowers AP
    assert average_precision(recall, higher, use_07) >= ap - 1e-12


# ---------------------------------------------------------------- evaluate_detections by hand


def worked_example(difficult_d=False):
    """Image 0: objects A, B; image 1: objects C, D (all class 1). Detections, best first:
    0.9 on A (TP), 0.8 shifted copy of A (duplicate: FP), 0.7 on C (TP), 0.6 on empty ground
    in image 1 (FP), 0.5 on B (TP). D is missed (with difficult_d: found at 0.65, ignored).
    """
    gts = [
        gt([[0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], [1, 1]),
        gt([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]], [1, 1], [False, difficult_d]),
    ]
    dets = [
        det(
            [[0.0, 0.0, 0.4, 0.4], [0.02, 0.0, 0.42, 0.4], [0.5, 0.5, 0.9, 0.9]],
            [0.9, 0.8, 0.5],
            [1, 1, 1],
        ),
        det([[0.1, 0.1, 0.5, 0.5], [0.6, 0.0, 0.9, 0.3]], [0.7, 0.6], [1, 1]),
    ]
    if difficult_d:
        dets[1] = det(
            [[0.1, 0.1, 0.5, 0.5], [0.6, 0.0, 0.9, 0.3], [0.6, 0.6, 0.9, 0.9]],
            [0.7, 0.6, 0.65],
            [1, 1, 1],
        )
    return dets, gts


def test_worked_example_points_and_ap():
    dets, gts = worked_example()
    r = evaluate_detections(dets, gts, NAMES)
    torch.testing.assert_close(r.recall[0], torch.tensor(WORKED_RECALL, dtype=torch.float64))
    torch.testing.assert_close(r.precision[0], torch.tensor(WORKED_PRECISION, dtype=torch.float64))
    torch.testing.assert_close(
        r.scores[0], torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5], dtype=torch.float64)
    )
    assert r.tp_flags[0].tolist() == [True, False, True, False, True]
    assert r.ap[0] == pytest.approx(6.2 / 11)
    assert (r.num_positives.tolist(), r.true_positives[0], r.false_positives[0]) == (
        [4, 0, 0],
        3,
        2,
    )
    assert r.mean_ap == pytest.approx(6.2 / 11)  # the other two classes have no objects
    area = evaluate_detections(dets, gts, NAMES, use_07_metric=False)
    assert area.ap[0] == pytest.approx(17 / 30)
    assert "circle" in r.table() and r.per_class()["circle"] == pytest.approx(6.2 / 11)


def test_difficult_object_is_ignored_not_counted():
    dets, gts = worked_example(difficult_d=True)
    r = evaluate_detections(dets, gts, NAMES)
    # D no longer counts as an object, and the 0.65 detection on it leaves no point
    assert r.num_positives[0] == 3 and r.ignored[0] == 1
    torch.testing.assert_close(r.recall[0], torch.tensor([1, 1, 2, 2, 3], dtype=torch.float64) / 3)
    assert len(r.precision[0]) == 5


def test_perfect_detections_give_one():
    _, gts = random_data(3, num_images=8)
    gts = [(b, l, torch.zeros_like(d)) for b, l, d in gts]
    dets = [(b, torch.linspace(0.9, 0.5, len(b)), l) for b, l, _ in gts]
    r = evaluate_detections(dets, gts, NAMES, coco=True)
    defined = ~r.ap.isnan()
    assert bool(defined.any())
    assert torch.all(r.ap[defined] == 1.0) and r.mean_ap == 1.0 and r.coco_map == 1.0
    assert evaluate_detections(dets, gts, NAMES, use_07_metric=False).mean_ap == 1.0


def test_no_detections_give_zero():
    _, gts = random_data(4, num_images=5)
    empty = [(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))] * len(gts)
    r = evaluate_detections(empty, gts, NAMES, coco=True)
    defined = ~r.ap.isnan()
    assert torch.all(r.ap[defined] == 0.0) and r.mean_ap == 0.0 and r.coco_map == 0.0


def test_duplicates_are_false_positives():
    gts = [gt([[0.2, 0.2, 0.6, 0.6]], [2])]
    box = [0.2, 0.2, 0.6, 0.6]
    dets = [det([box, box, box], [0.9, 0.8, 0.7], [2, 2, 2])]
    r = evaluate_detections(dets, gts, NAMES)
    assert (r.true_positives[1], r.false_positives[1]) == (1, 2)
    torch.testing.assert_close(r.precision[1], torch.tensor([1, 1 / 2, 1 / 3], dtype=torch.float64))
    assert r.ap[1] == 1.0  # recall 1 is reached at precision 1 first


def test_rule_takes_best_overlap_object_not_best_free_one():
    # two identical objects: both detections overlap the first most (first on ties), so the
    # second detection is a duplicate even though the second object is still free
    gts = [gt([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5]], [1, 1])]
    dets = [det([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5]], [0.9, 0.8], [1, 1])]
    r = evaluate_detections(dets, gts, NAMES)
    assert (r.true_positives[0], r.false_positives[0]) == (1, 1)


def test_images_without_objects_and_without_detections():
    gts = [gt([], []), gt([[0.1, 0.1, 0.5, 0.5]], [1]), gt([], [])]
    dets = [
        det([[0.1, 0.1, 0.5, 0.5]], [0.95], [1]),  # an image with no object: a false positive
        det([[0.1, 0.1, 0.5, 0.5]], [0.9], [1]),
        det([], [], []),
    ]
    r = evaluate_detections(dets, gts, NAMES)
    torch.testing.assert_close(r.precision[0], torch.tensor([0.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(r.recall[0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert r.ap[0] == pytest.approx(0.5)  # 11-point: every level reads precision 0.5


def test_classes_without_objects_get_nan_and_leave_the_mean():
    gts = [gt([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]], [1, 3], [False, True])]
    dets = [det([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.7, 0.7]], [0.9, 0.8], [1, 2])]
    r = evaluate_detections(dets, gts, NAMES)
    # class 2: no object at all; class 3: only a difficult one. Neither has a defined AP
    assert r.ap[0] == 1.0 and math.isnan(r.ap[1]) and math.isnan(r.ap[2])
    assert r.mean_ap == 1.0
    assert r.false_positives[1] == 1 and torch.isnan(r.recall[1]).all()
    nothing = evaluate_detections([det([], [], [])], [gt([], [])], NAMES)
    assert math.isnan(nothing.mean_ap)


def test_ties_keep_input_order():
    gts = [gt([[0.1, 0.1, 0.5, 0.5]], [1])]
    miss, hit = [0.6, 0.6, 0.9, 0.9], [0.1, 0.1, 0.5, 0.5]
    first_miss = evaluate_detections([det([miss, hit], [0.5, 0.5], [1, 1])], gts, NAMES)
    first_hit = evaluate_detections([det([hit, miss], [0.5, 0.5], [1, 1])], gts, NAMES)
    assert first_miss.precision[0].tolist() == [0.0, 0.5]
    assert first_hit.precision[0].tolist() == [1.0, 0.5]


def test_pixel_convention_adds_one_to_widths():
    # gt 9 px wide inclusive (0..8), det 5 px (0..4): pixel IoU 5*10 / (9*10) = 0.556 > 0.5;
    # as plain coordinates the overlap is 4*9 / (8*9) = 0.5, not above the threshold
    gts = [gt([[0, 0, 8, 9]], [1])]
    dets = [det([[0, 0, 4, 9]], [0.9], [1])]
    assert evaluate_detections(dets, gts, NAMES, pixel=True).true_positives[0] == 1
    assert evaluate_detections(dets, gts, NAMES).true_positives[0] == 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("use_07", [True, False])
def test_matches_plain_reference_on_random_data(seed, use_07):
    pixel = seed % 2 == 1
    dets, gts = random_data(seed, pixel=pixel)
    r = evaluate_detections(dets, gts, NAMES, use_07_metric=use_07, pixel=pixel)
    for c in range(len(NAMES)):
        ap, rec, prec, counted = reference_class_ap(
            dets, gts, c + 1, 0.5, "07" if use_07 else "area", pixel
        )
        if math.isnan(ap):
            assert math.isnan(r.ap[c])
            continue
        assert float(r.ap[c]) == pytest.approx(ap, abs=1e-12)
        # the devkit keeps a repeated point for each ignored detection; ours leaves it out
        kept = [k for k in range(len(rec)) if counted[k]]
        assert r.recall[c].tolist() == pytest.approx([rec[k] for k in kept], abs=1e-12)
        assert r.precision[c].tolist() == pytest.approx([prec[k] for k in kept], abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_coco_map_matches_reference(seed):
    dets, gts = random_data(seed + 10, num_images=8)
    per_class = []
    for c in range(len(NAMES)):
        aps = [reference_class_ap(dets, gts, c + 1, thr, "coco")[0] for thr in COCO_IOU_THRESHOLDS]
        if not math.isnan(aps[0]):
            per_class.append(sum(aps) / len(aps))
    assert coco_map(dets, gts, NAMES) == pytest.approx(sum(per_class) / len(per_class), abs=1e-12)
    assert COCO_IOU_THRESHOLDS[0] == 0.5 and COCO_IOU_THRESHOLDS[-1] == pytest.approx(0.95)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.permutations(list(range(6))))
def test_image_order_does_not_matter_with_distinct_scores(seed, perm):
    dets, gts = random_data(seed)
    dets = [
        (b, torch.rand(len(b), generator=torch.Generator().manual_seed(seed + i)) + i, l)
        for i, (b, _, l) in enumerate(dets)
    ]  # distinct scores: no ties to reorder
    a = evaluate_detections(dets, gts, NAMES)
    b = evaluate_detections([dets[i] for i in perm], [gts[i] for i in perm], NAMES)
    torch.testing.assert_close(a.ap, b.ap, equal_nan=True)


def test_ground_truth_without_difficult_flags():
    dets, gts = worked_example()
    two = [(b, l) for b, l, _ in gts]
    assert evaluate_detections(dets, two, NAMES).ap[0] == pytest.approx(6.2 / 11)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    dets, gts = random_data(5)
    on = [tuple(x.cuda() for x in item) for item in dets]
    gon = [tuple(x.cuda() for x in item) for item in gts]
    a = evaluate_detections(dets, gts, NAMES, coco=True)
    b = evaluate_detections(on, gon, NAMES, coco=True)
    torch.testing.assert_close(a.ap, b.ap, equal_nan=True)
    assert a.coco_map == pytest.approx(b.coco_map)


# ---------------------------------------------------------------- bad inputs


def test_rejects_bad_inputs():
    dets, gts = worked_example()
    with pytest.raises(ValueError, match="one entry per image, got 2 and 1"):
        evaluate_detections(dets, gts[:1], NAMES)
    with pytest.raises(ValueError, match=r"labels must lie in 1..3 .* from 1 to 4"):
        evaluate_detections([det([[0, 0, 1, 1]], [0.5], [4])] + dets[1:], gts, NAMES)
    with pytest.raises(ValueError, match=r"ground_truths labels must lie in 1..3 .* from 0 to 1"):
        evaluate_detections(dets, [gt([[0, 0, 1, 1]], [0])] + gts[1:], NAMES)
    with pytest.raises(TypeError, match="labels must be integers"):
        evaluate_detections([(t([[0, 0, 1, 1]]), t([0.5]), t([1.0]))] + dets[1:], gts, NAMES)
    with pytest.raises(
        ValueError, match=r"detections\[0\] scores must have shape \[1\] \(one per box\), got \[2\]"
    ):
        evaluate_detections(
            [(t([[0, 0, 1, 1]]), t([0.5, 0.4]), torch.tensor([1]))] + dets[1:], gts, NAMES
        )
    with pytest.raises(
        ValueError, match=r"detections\[1\] boxes must have shape \[\.\.\., 4\], got \[2\]"
    ):
        evaluate_detections(dets[:1] + [(t([0, 0]), t([0.5]), torch.tensor([1]))], gts, NAMES)
    with pytest.raises(ValueError, match=r"must be a tuple \(boxes, scores, labels\), got 2 items"):
        evaluate_detections([dets[0][:2]] + dets[1:], gts, NAMES)
    with pytest.raises(ValueError, match=r"iou_threshold must lie in \[0, 1\), got 1.5"):
        evaluate_detections(dets, gts, NAMES, iou_threshold=1.5)
    with pytest.raises(ValueError, match="at least one object class"):
        evaluate_detections(dets, gts, [])


# ---------------------------------------------------------------- the pictures


def test_plot_functions_draw():
    dets, gts = worked_example()
    r = evaluate_detections(dets, gts, NAMES)
    fig, (a, b) = plt.subplots(1, 2)
    plot_pr_curves(a, r)
    plot_ap_interpolation(b, r.recall[0], r.precision[0])
    assert len(a.lines) == 1 and "AP 0.564" in a.get_legend().get_texts()[0].get_text()
    assert "11-point AP 0.5636" in b.get_title() and "area AP 0.5667" in b.get_title()
    plt.close(fig)


def test_pr_curves_figure_follows_its_knobs():
    dets, gts = worked_example()
    loose = pr_curves_figure(dets, gts, NAMES, iou_threshold=0.5)
    strict = pr_curves_figure(dets, gts, NAMES, iou_threshold=0.97, use_07_metric=False)
    assert "mAP 0.564 (11-point, IoU > 0.50)" in loose.axes[0].get_title()
    # the knobs reach the evaluation: the title names the form and the threshold used
    assert "(area, IoU > 0.97)" in strict.axes[0].get_title()
    plt.close(loose)
    plt.close(strict)


def test_interpolated_precision_by_loops_and_by_hand():
    # by hand: envelope of (0.5, 1.0, 0.4, 0.6) is (1.0, 1.0, 0.6, 0.6); level 0.9 lies past the
    # last recall (0.8), so it reads 0
    recall, precision = [0.2, 0.4, 0.6, 0.8], [0.5, 1.0, 0.4, 0.6]
    env, sampled = interpolated_precision(recall, precision, [0.0, 0.5, 0.9])
    assert env.tolist() == [1.0, 1.0, 0.6, 0.6] and sampled.tolist() == [1.0, 0.6, 0.0]
    g = torch.Generator().manual_seed(0)
    recall = torch.rand(30, generator=g, dtype=torch.float64).sort().values  # [30]
    precision = torch.rand(30, generator=g, dtype=torch.float64)  # [30]
    levels = torch.arange(11, dtype=torch.float64) / 10
    env, sampled = interpolated_precision(recall, precision, levels)
    for k in range(30):
        assert env[k] == precision[k:].max()
    for t, got in zip(levels.tolist(), sampled.tolist()):
        reach = [float(p) for r, p in zip(recall, precision) if r >= t]
        assert got == (max(reach) if reach else 0.0)
    assert float(sampled.mean()) == pytest.approx(average_precision(recall, precision))


def test_detection_verdicts_by_hand_in_input_order():
    # object 0 found twice (the 0.9 one first: the 0.8 duplicate is FP), object 1 difficult
    # (ignored), one detection on background, one of a class the image lacks
    truth = (t([[0, 0, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]]), torch.tensor([1, 1]),
             torch.tensor([False, True]))
    dets = (t([[0.02, 0, 0.42, 0.4], [0.5, 0.5, 0.9, 0.9], [0, 0, 0.4, 0.4], [0.6, 0, 0.9, 0.3],
               [0, 0, 0.4, 0.4]]),
            torch.tensor([0.8, 0.7, 0.9, 0.6, 0.95]), torch.tensor([1, 1, 1, 1, 2]))
    assert detection_verdicts(dets, truth).tolist() == [0, -1, 1, 0, 0]
    # without the difficult flag the 0.7 detection is a true positive
    assert detection_verdicts(dets, truth[:2]).tolist() == [0, 1, 1, 0, 0]


def test_detection_verdicts_agree_with_the_data_set_evaluation():
    g = torch.Generator().manual_seed(3)
    dets, gts = [], []
    for _ in range(6):
        xy = torch.rand(4, 2, generator=g) * 0.6
        boxes = torch.cat((xy, xy + 0.2 + 0.2 * torch.rand(4, 2, generator=g)), 1)
        labels = torch.randint(1, 4, (4,), generator=g)
        gts.append((boxes, labels, torch.rand(4, generator=g) < 0.2))
        noisy = (boxes.repeat(2, 1) + 0.05 * torch.randn(8, 4, generator=g)).clamp(0, 1)
        scores = torch.rand(8, generator=g).round(decimals=1)  # ties on purpose
        dets.append((noisy, scores, labels.repeat(2)))
    result = evaluate_detections(dets, gts, NAMES)
    verdicts = torch.cat([detection_verdicts(d, gt) for d, gt in zip(dets, gts)])
    assert int((verdicts == 1).sum()) == int(result.true_positives.sum())
    assert int((verdicts == 0).sum()) == int(result.false_positives.sum())
    assert int((verdicts == -1).sum()) == int(result.ignored.sum())


def test_draw_verdicts_colours_each_detection_by_its_verdict():
    truth = (t([[0.1, 0.1, 0.5, 0.5]]), torch.tensor([1]))
    dets = (t([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]),
            torch.tensor([0.9, 0.8, 0.1]), torch.tensor([1, 1, 1]))
    fig, ax = plt.subplots()
    verdicts = draw_verdicts(ax, torch.rand(3, 32, 32), dets, truth, NAMES, score_threshold=0.5)
    assert verdicts.tolist() == [1, 0, 0]
    edges = [matplotlib.colors.to_hex(p.get_edgecolor()) for p in ax.patches]
    # the object in black, then the drawn detections: one TP (green), one FP (red); 0.1 not drawn
    green, red = (matplotlib.colors.to_hex(c) for c in ("tab:green", "tab:red"))
    assert edges == ["#000000", green, red]
    assert [x.get_text() for x in ax.texts] == ["circle", "circle 0.90", "circle 0.80"]
    plt.close(fig)
