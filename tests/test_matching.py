"""Matching (§2.2): hand-worked cases, a plain loop reference, properties, and bad input."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from ssd_edu.boxes import box_iou, cxcywh_to_xyxy, decode, encode
from ssd_edu.matching import assign_targets, assign_targets_batch, match
from ssd_edu.priors import SSD128_SHAPES, default_boxes

PRIORS = default_boxes(SSD128_SHAPES)  # [1524, 4], small enough for loops in the reference


def xyxy(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def cxcywh(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


# ---------------------------------------------------------------- a plain, slow reference


def reference_match(gt_boxes, priors, iou_threshold=0.5):
    """The rules of the module docstring, written with loops and no cleverness."""
    num_gt, num_priors = len(gt_boxes), len(priors)
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors)).tolist()
    matches = [-1] * num_priors
    for p in range(num_priors):
        best_g, best = -1, -1.0
        for g in range(num_gt):
            if iou[g][p] > best:  # strict: the first (lowest) object wins a tie
                best_g, best = g, iou[g][p]
        if best_g >= 0 and best >= iou_threshold:
            matches[p] = best_g
    # forced step: greedy pairing, best overlap first; ties -> lower object, then lower box
    free_gt, free_prior = set(range(num_gt)), set(range(num_priors))
    while free_gt:
        best, pair = 0.0, None
        for g in sorted(free_gt):
            for p in sorted(free_prior):
                if iou[g][p] > best:
                    best, pair = iou[g][p], (g, p)
        if pair is None:
            break
        g, p = pair
        matches[p] = g
        free_gt.remove(g)
        free_prior.remove(p)
    return torch.tensor(matches, dtype=torch.long)


def random_gt(generator, n, min_size=0.02):
    xy = torch.rand(n, 2, generator=generator) * 0.9
    wh = min_size + torch.rand(n, 2, generator=generator) * 0.6
    return torch.cat((xy, (xy + wh).clamp(max=1.0)), dim=1)


# ---------------------------------------------------------------- hand-worked cases


def test_identical_box_is_matched_and_far_box_is_background():
    priors = cxcywh((0.25, 0.25, 0.5, 0.5), (0.75, 0.75, 0.5, 0.5))
    gt = xyxy((0.0, 0.0, 0.5, 0.5))
    assert match(gt, priors).tolist() == [0, -1]


def test_overlap_equal_to_threshold_counts_as_match():
    # prior 0 is twice the object (IoU exactly 0.5); prior 1 is the object itself (forced)
    priors = cxcywh((0.25, 0.5, 0.5, 1.0), (0.25, 0.25, 0.5, 0.5))
    gt = xyxy((0.0, 0.0, 0.5, 0.5))
    assert match(gt, priors, iou_threshold=0.5).tolist() == [0, 0]
    assert match(gt, priors, iou_threshold=0.51).tolist() == [-1, 0]


def test_small_object_gets_its_best_box_though_below_threshold():
    # object 0.1 x 0.1 inside priors of side 0.5 and 1.0: IoU 0.04 and 0.01, both < 0.5
    priors = cxcywh((0.5, 0.5, 1.0, 1.0), (0.25, 0.25, 0.5, 0.5), (0.75, 0.75, 0.5, 0.5))
    gt = xyxy((0.1, 0.1, 0.2, 0.2))
    assert match(gt, priors).tolist() == [-1, 0, -1]


def test_two_objects_sharing_a_best_box_both_get_one():
    # prior 0 is (0, 0, 0.5, 0.5), prior 1 is its left half, prior 2 is far away
    priors = cxcywh((0.25, 0.25, 0.5, 0.5), (0.125, 0.25, 0.25, 0.5), (0.8, 0.8, 0.2, 0.2))
    # object 0: IoU 0.64 with prior 0, 0.06 / 0.225 = 0.27 with prior 1
    # object 1: IoU 1.0 with prior 0, 0.5 with prior 1
    gt = xyxy((0.1, 0.1, 0.5, 0.5), (0.0, 0.0, 0.5, 0.5))
    # both want prior 0; object 1 overlaps it more and keeps it; object 0 takes prior 1, its best
    # free box, although the threshold step alone would have given prior 1 to object 1
    assert match(gt, priors).tolist() == [1, 0, -1]


def test_equal_claims_go_to_the_lower_object_index():
    priors = cxcywh((0.5, 0.5, 0.4, 0.4), (0.5, 0.5, 0.8, 0.8))
    same = (0.3, 0.3, 0.7, 0.7)
    # both objects are identical: object 0 keeps prior 0, object 1 gets the next best
    assert match(xyxy(same, same), priors).tolist() == [0, 1]


def test_ties_among_default_boxes_go_to_the_lower_index():
    # an object exactly between two equal priors: both overlap it by the same amount
    priors = cxcywh((0.25, 0.5, 0.5, 0.5), (0.75, 0.5, 0.5, 0.5))
    gt = xyxy((0.375, 0.375, 0.625, 0.625))  # fractions exact in binary
    assert match(gt, priors).tolist() == [0, -1]


def test_object_overlapping_no_box_gets_no_forced_match():
    priors = cxcywh((0.25, 0.25, 0.5, 0.5))
    assert match(xyxy((0.6, 0.6, 0.9, 0.9)), priors).tolist() == [-1]


def test_targets_of_a_hand_worked_case():
    priors = cxcywh((0.5, 0.5, 0.5, 0.5), (0.1, 0.1, 0.2, 0.2))
    gt = xyxy((0.3, 0.2, 0.7, 0.8))  # centre (0.5, 0.5), size (0.4, 0.6)
    loc_t, cls_t = assign_targets(gt, torch.tensor([7]), priors)
    assert cls_t.tolist() == [7, 0]
    expected = torch.tensor(
        [0.0, 0.0, torch.log(torch.tensor(0.8)) / 0.2, torch.log(torch.tensor(1.2)) / 0.2]
    )
    assert_close(loc_t[0], expected)
    assert loc_t[1].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_zero_objects_give_all_background():
    loc_t, cls_t = assign_targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), PRIORS)
    assert (cls_t == 0).all() and (loc_t == 0).all()
    assert (match(torch.zeros(0, 4), PRIORS) == -1).all()
    loc_b, cls_b = assign_targets_batch(
        [torch.zeros(0, 4)] * 3, [torch.zeros(0).long()] * 3, PRIORS
    )
    assert loc_b.shape == (3, len(PRIORS), 4) and (loc_b == 0).all() and (cls_b == 0).all()


def test_empty_batch():
    loc_t, cls_t = assign_targets_batch([], [], PRIORS)
    assert loc_t.shape == (0, len(PRIORS), 4) and cls_t.shape == (0, len(PRIORS))


# ---------------------------------------------------------------- reference and batched form


def test_match_equals_the_loop_reference_on_random_images():
    generator = torch.Generator().manual_seed(0)
    for trial in range(6):
        n = [1, 2, 5, 9, 3, 12][trial]
        gt = random_gt(generator, n)
        if trial == 4:
            gt = torch.cat((gt, gt[:1], gt[:1] + 0.001))  # duplicates and near-duplicates
        for threshold in (0.3, 0.5, 0.7):
            assert torch.equal(match(gt, PRIORS, threshold), reference_match(gt, PRIORS, threshold))


def test_batch_equals_one_image_at_a_time():
    generator = torch.Generator().manual_seed(1)
    counts = [3, 0, 1, 7, 2]
    boxes = [random_gt(generator, n) for n in counts]
    labels = [torch.randint(1, 21, (n,), generator=generator) for n in counts]
    loc_b, cls_b = assign_targets_batch(boxes, labels, PRIORS)
    assert loc_b.shape == (5, len(PRIORS), 4) and cls_b.shape == (5, len(PRIORS))
    assert cls_b.dtype == torch.long
    for b in range(5):
        loc_t, cls_t = assign_targets(boxes[b], labels[b], PRIORS)
        assert torch.equal(cls_b[b], cls_t)
        assert_close(loc_b[b], loc_t)


def test_follows_priors_dtype_and_accepts_any_integer_labels():
    priors = PRIORS.double()
    loc_t, cls_t = assign_targets(
        xyxy((0.1, 0.1, 0.5, 0.6)), torch.tensor([3], dtype=torch.int32), priors
    )
    assert loc_t.dtype == torch.float64 and cls_t.dtype == torch.long


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    generator = torch.Generator().manual_seed(2)
    boxes = [random_gt(generator, n) for n in (4, 0, 9)]
    labels = [torch.randint(1, 21, (len(b),), generator=generator) for b in boxes]
    loc_c, cls_c = assign_targets_batch(boxes, labels, PRIORS)
    loc_g, cls_g = assign_targets_batch(boxes, labels, PRIORS.cuda())  # ground truth moved over
    assert torch.equal(cls_g.cpu(), cls_c)
    assert_close(loc_g.cpu(), loc_c)


# ---------------------------------------------------------------- properties

box_strategy = st.tuples(
    st.floats(0.0, 0.9), st.floats(0.0, 0.9), st.floats(0.01, 0.6), st.floats(0.01, 0.6)
).map(lambda t: (t[0], t[1], min(t[0] + t[2], 1.0), min(t[1] + t[3], 1.0)))


@settings(max_examples=40, deadline=None)
@given(
    boxes=st.lists(box_strategy, min_size=1, max_size=8),
    threshold=st.sampled_from([0.3, 0.5, 0.7]),
)
def test_properties_of_the_matching(boxes, threshold):
    gt = xyxy(*boxes)
    labels = torch.arange(1, len(boxes) + 1)
    m = match(gt, PRIORS, threshold)
    iou = box_iou(gt, cxcywh_to_xyxy(PRIORS))  # [G, P]
    # every object has at least one positive (the priors cover the image, so each overlaps one)
    assert set(m[m >= 0].tolist()) == set(range(len(boxes)))
    # every positive reaches the threshold, or is one of the G forced matches
    positive = torch.nonzero(m >= 0).squeeze(1)
    below = iou[m[positive], positive] < threshold
    assert int(below.sum()) <= len(boxes)
    # the targets decode back to the matched object
    loc_t, cls_t = assign_targets(gt, labels, PRIORS, threshold)
    assert torch.equal(cls_t, torch.where(m >= 0, labels[m.clamp(min=0)], 0))
    assert_close(decode(loc_t, PRIORS)[positive], gt[m[positive]], atol=1e-5, rtol=1e-4)
    assert torch.isfinite(loc_t).all() and (loc_t[m < 0] == 0).all()


def test_encoded_targets_match_boxes_encode():
    gt = xyxy((0.2, 0.1, 0.6, 0.7), (0.05, 0.5, 0.15, 0.62))
    m = match(gt, PRIORS)
    loc_t, _ = assign_targets(gt, torch.tensor([1, 2]), PRIORS)
    pos = m >= 0
    assert_close(loc_t[pos], encode(gt[m[pos]], PRIORS[pos]))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: match(torch.zeros(3, 5), PRIORS),
            ValueError,
            r"gt_boxes must have shape \[\.\.\., 4\], got \[3, 5\]",
        ),
        (
            lambda: match(torch.zeros(2, 3, 4), PRIORS),
            ValueError,
            r"gt_boxes must have shape \[N, 4\], got \[2, 3, 4\]",
        ),
        (
            lambda: match(xyxy((0.1, 0.1, 0.2, 0.2)), torch.zeros(5, 3)),
            ValueError,
            r"priors must have shape",
        ),
        (
            lambda: match(xyxy((0.1, 0.1, 0.2, 0.2)), torch.zeros(0, 4)),
            ValueError,
            r"priors must hold at least one",
        ),
        (
            lambda: match(xyxy((0.1, 0.1, 0.2, 0.2)), PRIORS, 0.0),
            ValueError,
            r"iou_threshold must be in \(0, 1\], got 0.0",
        ),
        (
            lambda: match(xyxy((0.3, 0.1, 0.2, 0.2)), PRIORS),
            ValueError,
            r"gt_boxes\[0\] = \[0.3.*degenerate",
        ),
        (
            lambda: match(xyxy((0.1, 0.1, 0.2, 0.2), (0.1, 0.4, 0.2, 0.4)), PRIORS),
            ValueError,
            r"gt_boxes\[1\] .*degenerate",
        ),
        (
            lambda: match(xyxy((0.1, 0.1, float("nan"), 0.2)), PRIORS),
            ValueError,
            r"gt_boxes\[0\] .*not finite",
        ),
        (
            lambda: match(torch.zeros(1, 4, dtype=torch.long), PRIORS),
            TypeError,
            r"gt_boxes must be a floating-point",
        ),
        (
            lambda: assign_targets(xyxy((0.1, 0.1, 0.2, 0.2)), torch.tensor([1, 2]), PRIORS),
            ValueError,
            r"gt_labels must have shape \[1\] to line up with gt_boxes of shape \[1, 4\], got \[2",
        ),
        (
            lambda: assign_targets(xyxy((0.1, 0.1, 0.2, 0.2)), torch.tensor([0]), PRIORS),
            ValueError,
            r"gt_labels\[0\] = 0: object labels must be >= 1 \(label 0 is background",
        ),
        (
            lambda: assign_targets(xyxy((0.1, 0.1, 0.2, 0.2)), torch.tensor([1.0]), PRIORS),
            TypeError,
            r"gt_labels must hold integers",
        ),
        (
            lambda: assign_targets(xyxy((0.1, 0.1, 0.2, 0.2)), [1], PRIORS),
            TypeError,
            r"gt_labels must be a torch.Tensor",
        ),
    ],
)
def test_bad_input_of_one_image(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _batch(boxes, labels):
    return lambda: assign_targets_batch(boxes, labels, PRIORS)


GOOD = xyxy((0.1, 0.1, 0.2, 0.2))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            _batch(torch.zeros(2, 1, 4), [torch.tensor([1])] * 2),
            TypeError,
            r"gt_boxes must be a list of \[G_i, 4\] tensors",
        ),
        (
            _batch([GOOD, GOOD], [torch.tensor([1])]),
            ValueError,
            r"gt_labels has 1 images but gt_boxes has 2",
        ),
        (
            _batch([GOOD, torch.zeros(2, 5)], [torch.tensor([1])] * 2),
            ValueError,
            r"gt_boxes\[1\] must have shape \[\.\.\., 4\], got \[2, 5\]",
        ),
        (
            _batch([GOOD, GOOD], [torch.tensor([1]), torch.tensor([1, 2])]),
            ValueError,
            r"gt_labels\[1\] must have shape \[1\] to line up with gt_boxes\[1\]",
        ),
        (
            _batch([GOOD, GOOD, GOOD], [torch.tensor([1]), torch.tensor([2]), torch.tensor([0])]),
            ValueError,
            r"gt_labels\[2\]\[0\] = 0: object labels must be >= 1",
        ),
        (
            _batch(
                [GOOD, torch.cat((GOOD, xyxy((0.5, 0.5, 0.5, 0.7))))],
                [torch.tensor([1]), torch.tensor([1, 2])],
            ),
            ValueError,
            r"gt_boxes\[1\]\[1\] = \[0.5, 0.5, 0.5, 0.7\] is degenerate",
        ),
    ],
)
def test_bad_input_of_a_batch(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------- drawing used by notebook 02


def test_drawing_functions_of_the_notebook():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.priors import SSD300_VOC
    from ssd_edu.viz import draw_matches, plot_iou_maps, plot_matches
    from ssd_edu.widgets import matching_explorer

    priors = default_boxes(SSD300_VOC)
    gt = xyxy((0.1, 0.12, 0.16, 0.18), (0.35, 0.32, 0.89, 0.82))
    labels = torch.tensor([1, 2])
    image = torch.rand(3, 40, 40)
    iou = box_iou(gt, cxcywh_to_xyxy(priors))  # [2, P]

    fig = plot_iou_maps(iou[0], SSD300_VOC, gt[0], title="small")
    assert len(fig.axes) == 6 + 1  # one panel per map and the colour bar
    assert fig.axes[0].get_title() == "38x38 map, best 0.36"
    plt.close(fig)
    with pytest.raises(ValueError, match=r"iou must have shape \[8732\], got \[2, 8732\]"):
        plot_iou_maps(iou, SSD300_VOC)

    fig, ax = plt.subplots()
    m = draw_matches(ax, image, gt, labels, priors, 0.5, ["square", "ellipse"])
    assert torch.equal(m, match(gt, priors, 0.5))
    counts = torch.bincount(m[m >= 0], minlength=2).tolist()
    assert ax.get_title() == f"IoU >= 0.50: positives per object {counts}"
    plt.close(fig)

    fig = plot_matches(image, gt, labels, priors, 0.7)
    assert "IoU >= 0.70" in fig.axes[0].get_title()
    plt.close(fig)

    explorer = matching_explorer(image, gt, labels, priors, ["square", "ellipse"])
    slider = explorer.controls["iou_threshold"]
    assert slider.value == 0.5 and slider.description == "IoU threshold"
    slider.value = 0.7
    (shown,) = explorer.output.outputs
    assert "image/png" in shown["data"]
    plt.close("all")


def test_mixed_counts_pad_like_single_images():
    # one empty image between two others: padding with pad_sequence keeps every image's targets
    gt = [torch.tensor([[0.1, 0.1, 0.4, 0.5]]), torch.zeros(0, 4), random_gt(torch.Generator(), 4)]
    labels = [torch.tensor([2]), torch.zeros(0, dtype=torch.long), torch.tensor([1, 3, 2, 1])]
    loc_b, cls_b = assign_targets_batch(gt, labels, PRIORS)
    for b in range(3):
        loc_1, cls_1 = assign_targets(gt[b], labels[b], PRIORS)
        assert torch.equal(loc_b[b], loc_1) and torch.equal(cls_b[b], cls_1)


# ---------------------------------------------------------------- the worked table of notebook 02

WORKED_GT = torch.tensor(
    [[0.10, 0.10, 0.50, 0.50], [0.70, 0.10, 0.76, 0.16], [0.25, 0.30, 0.55, 0.60]]
)
WORKED_PRIORS = torch.tensor([
    [0.30, 0.30, 0.40, 0.40], [0.33, 0.32, 0.40, 0.40], [0.73, 0.13, 0.10, 0.10],
    [0.34, 0.36, 0.40, 0.40], [0.75, 0.15, 0.20, 0.20], [0.80, 0.75, 0.30, 0.30],
])


def test_match_decisions_name_the_forced_threshold_and_overridden_cells():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.viz import match_decisions, plot_match_table

    iou = box_iou(WORKED_GT, cxcywh_to_xyxy(WORKED_PRIORS))  # [3, 6]
    matches = match(WORKED_GT, WORKED_PRIORS)
    assert matches.tolist() == [0, 0, 1, 2, -1, -1]
    # d3 overlaps A by 0.62 but is C's best box (0.43): C's forced match takes it
    assert match_decisions(iou, matches) == [
        ["forced", "threshold", "", "overridden", "", ""],
        ["", "", "forced", "", "", ""],
        ["", "", "", "forced", "", ""],
    ]
    fig = plot_match_table(iou, matches)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[:6] == ["1.00", "0.78", "0.00", "0.62", "0.00", "0.00"]
    assert texts[-6:] == ["A", "A", "B", "C", "bg", "bg"]
    plt.close(fig)
