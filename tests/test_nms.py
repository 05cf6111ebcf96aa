"""The reference NMS and detection output: hand-worked boxes, brute-force loops, properties,
limits. tests/test_fast_nms.py holds the fast layer equal to these."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ssd_edu.boxes import box_iou, decode  # noqa: E402
from ssd_edu.nms import batched_nms, detect, nms, score_candidates  # noqa: E402
from ssd_edu.priors import SSD128_SHAPES, default_boxes  # noqa: E402

# ------------------------------------------------------------------ slow, obvious references


def greedy_reference(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Textbook greedy NMS: visit boxes by score (ties: lower index first); keep a box unless a
    kept box overlaps it by more than the threshold."""
    overlaps = box_iou(boxes, boxes).tolist()
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for j in order:
        if all(not overlaps[i][j] > threshold for i in kept):
            kept.append(j)
    return kept


def per_class_reference(boxes, scores, classes, threshold) -> list[int]:
    """NMS once per class, merged by score (ties: lower index first)."""
    kept = []
    for c in sorted(set(classes.tolist())):
        idx = [i for i in range(len(classes)) if int(classes[i]) == c]
        kept += [idx[k] for k in greedy_reference(boxes[idx], scores[idx], threshold)]
    return sorted(kept, key=lambda i: (-float(scores[i]), i))


def detect_reference(loc, logits, priors, score_threshold, iou_threshold, top_k, per_class):
    """detect written as loops: per image, per class, the reference NMS, then the best top_k."""
    results = []
    for b in range(loc.shape[0]):
        boxes = decode(loc[b], priors)  # [P, 4]
        probs = torch.softmax(logits[b], dim=-1)  # [P, C]
        found = []  # (score, label, box index)
        for c in range(1, logits.shape[2]):
            ranked = sorted(range(len(priors)), key=lambda p: (-float(probs[p, c]), p))
            chosen = [p for p in ranked[:per_class] if float(probs[p, c]) > score_threshold]
            for k in greedy_reference(boxes[chosen], probs[chosen, c], iou_threshold):
                found.append((float(probs[chosen[k], c]), c, chosen[k]))
        found = sorted(found, key=lambda f: -f[0])[:top_k]  # stable: class order among ties
        results.append(
            (
                boxes[[f[2] for f in found]].reshape(-1, 4),
                torch.tensor([f[0] for f in found]),
                torch.tensor([f[1] for f in found], dtype=torch.long),
            )
        )
    return results


def random_boxes(n: int, g: torch.Generator, duplicates: bool = True) -> torch.Tensor:
    """Clustered random boxes (so that NMS has work), some exact copies, some zero-width."""
    centres = torch.rand(max(n // 5, 1), 2, generator=g)  # a few objects
    which = torch.randint(0, len(centres), (n,), generator=g)
    xy = centres[which] + torch.randn(n, 2, generator=g) * 0.05  # [n, 2]
    wh = 0.05 + torch.rand(n, 2, generator=g) * 0.3  # [n, 2]
    boxes = torch.cat((xy, xy + wh), dim=1)  # [n, 4]
    if duplicates and n > 3:
        boxes[1::4] = boxes[0::4][: len(boxes[1::4])]  # identical boxes
        boxes[2::7, 2] = boxes[2::7, 0]  # zero width
    return boxes


# ------------------------------------------------------------------ nms: worked by hand


def test_hand_worked_three_boxes():
    # A and B share the left half of A: intersection 2, union 4, overlap exactly 1/2. C is apart.
    boxes = torch.tensor([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]])
    scores = torch.tensor([0.8, 0.9, 0.7])
    assert box_iou(boxes[:1], boxes[1:2]).item() == 0.5
    # B is best; A overlaps it by exactly the threshold, which does not suppress
    assert nms(boxes, scores, 0.5).tolist() == [1, 0, 2]
    # below the overlap, A goes; C never overlaps anything
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]


def test_suppressed_box_suppresses_nothing():
    # a chain: A overlaps B, B overlaps C, A does not overlap C. Greedy drops B, so C stays.
    boxes = torch.tensor([[0.0, 0.0, 2.0, 1.0], [1.0, 0.0, 3.0, 1.0], [2.0, 0.0, 4.0, 1.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]


def test_equal_scores_keep_lower_index():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 3)
    assert nms(boxes, torch.tensor([0.5, 0.5, 0.5]), 0.5).tolist() == [0]
    assert nms(boxes, torch.tensor([0.4, 0.5, 0.5]), 0.5).tolist() == [1]
    # threshold 1: nothing overlaps by more than 1, so all stay, in stable order
    assert nms(boxes, torch.tensor([0.5, 0.5, 0.5]), 1.0).tolist() == [0, 1, 2]


def test_threshold_zero_suppresses_any_overlap_but_not_touching():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.9, 0.0, 2.0, 1.0], [1.0, 2.0, 2.0, 3.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.0).tolist() == [0, 2]


def test_empty_input_gives_empty_long():
    kept = nms(torch.zeros(0, 4), torch.zeros(0), 0.45)
    assert kept.dtype == torch.long and kept.shape == (0,) and kept.device.type == "cpu"
    kept = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert kept.dtype == torch.long and kept.shape == (0,)


def test_follows_dtype_float64_and_one_box():
    boxes = torch.tensor([[0.1, 0.1, 0.4, 0.5]], dtype=torch.float64)
    assert nms(boxes, torch.tensor([0.3], dtype=torch.float64), 0.45).tolist() == [0]


# ------------------------------------------------------------------ nms: against the reference


def test_nms_matches_brute_force_on_random_sets():
    g = torch.Generator().manual_seed(7)
    for trial in range(30):
        n = int(torch.randint(0, 60, (1,), generator=g))
        boxes = random_boxes(n, g)
        scores = torch.rand(n, generator=g)
        if trial % 3 == 0:
            scores = (scores * 4).floor() / 4  # many equal scores
        threshold = [0.0, 0.3, 0.45, 0.5, 0.7, 1.0][trial % 6]
        kept = nms(boxes, scores, threshold)
        assert kept.tolist() == greedy_reference(boxes, scores, threshold), (trial, threshold)


def test_nms_on_a_large_set():
    g = torch.Generator().manual_seed(7)
    boxes = random_boxes(700, g)
    scores = torch.rand(700, generator=g)
    assert nms(boxes, scores, 0.45).tolist() == greedy_reference(boxes, scores, 0.45)


# boxes on a small integer grid: equal overlaps, identical boxes and ties are common
grid_box = st.tuples(
    st.integers(0, 4), st.integers(0, 4), st.integers(0, 3), st.integers(0, 3)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])
box_sets = st.lists(st.tuples(grid_box, st.integers(0, 3)), min_size=0, max_size=25)


def _tensors(items):
    boxes = torch.tensor([b for b, _ in items], dtype=torch.float32).reshape(-1, 4)
    scores = torch.tensor([s / 4 for _, s in items], dtype=torch.float32)
    return boxes, scores


@settings(max_examples=80, deadline=None)
@given(box_sets, st.sampled_from([0.0, 0.25, 1 / 3, 0.45, 0.5, 1.0]))
def test_nms_matches_brute_force_on_grid_boxes(items, threshold):
    boxes, scores = _tensors(items)
    kept = nms(boxes, scores, threshold)
    assert kept.tolist() == greedy_reference(boxes, scores, threshold)


@settings(max_examples=50, deadline=None)
@given(box_sets, st.sampled_from([0.0, 0.3, 0.45, 0.5, 0.9]))
def test_nms_is_idempotent(items, threshold):
    boxes, scores = _tensors(items)
    kept = nms(boxes, scores, threshold)
    again = nms(boxes[kept], scores[kept], threshold)
    assert again.tolist() == list(range(len(kept)))
    # and no two kept boxes overlap by more than the threshold
    overlaps = box_iou(boxes[kept], boxes[kept]).fill_diagonal_(0)
    assert not (overlaps > threshold).any()


# ------------------------------------------------------------------ batched_nms


def test_batched_keeps_overlapping_boxes_of_different_classes():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 3)
    scores = torch.tensor([0.9, 0.8, 0.7])
    classes = torch.tensor([1, 2, 1])
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == [0, 1]


def test_batched_matches_per_class_loops():
    g = torch.Generator().manual_seed(11)
    for trial in range(24):
        n = int(torch.randint(0, 70, (1,), generator=g))
        boxes = random_boxes(n, g)
        scores = torch.rand(n, generator=g)
        if trial % 2:
            scores = (scores * 5).floor() / 5  # ties inside and across classes
        classes = torch.randint(0, 4, (n,), generator=g)
        threshold = [0.3, 0.45, 0.6][trial % 3]
        got = batched_nms(boxes, scores, classes, threshold)
        assert got.tolist() == per_class_reference(boxes, scores, classes, threshold), trial


# ------------------------------------------------------------------ detect


def small_outputs(batch: int, num_classes: int, seed: int, background: float = 0.0):
    priors = default_boxes(SSD128_SHAPES)  # [P, 4]
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(batch, len(priors), 4, generator=g) * 0.5  # [B, P, 4]
    logits = torch.randn(batch, len(priors), num_classes, generator=g) * 2  # [B, P, C]
    logits[..., 0] += background
    return loc, logits, priors


def test_detect_matches_loop_reference():
    loc, logits, priors = small_outputs(2, 4, seed=0, background=3.0)
    settings_ = dict(score_threshold=0.05, iou_threshold=0.45, top_k=30)
    got = detect(loc, logits, priors, candidates_per_class=20, **settings_)
    want = detect_reference(loc, logits, priors, per_class=20, **settings_)
    for (boxes, scores, labels), (w_boxes, w_scores, w_labels) in zip(got, want):
        assert torch.equal(labels, w_labels)
        torch.testing.assert_close(scores, w_scores)
        torch.testing.assert_close(boxes, w_boxes)


def test_score_candidates_matches_loop_reference():
    loc, logits, priors = small_outputs(2, 4, seed=2, background=2.0)
    got = score_candidates(loc, logits, priors, score_threshold=0.1, candidates_per_class=15)
    for b, (boxes, scores, labels) in enumerate(got):
        decoded = decode(loc[b], priors)  # [P, 4]
        probs = torch.softmax(logits[b], dim=-1)  # [P, C]
        want = []  # (label, prior index), class by class, best score first
        for c in range(1, 4):
            ranked = sorted(range(len(priors)), key=lambda p: (-float(probs[p, c]), p))
            want += [(c, p) for p in ranked[:15] if float(probs[p, c]) > 0.1]
        assert labels.tolist() == [c for c, _ in want]
        torch.testing.assert_close(scores, torch.stack([probs[p, c] for c, p in want]))
        torch.testing.assert_close(boxes, decoded[[p for _, p in want]])


def test_detect_is_nms_over_score_candidates():
    loc, logits, priors = small_outputs(2, 5, seed=3, background=1.0)
    candidates = score_candidates(loc, logits, priors)
    for (boxes, scores, labels), (c_boxes, c_scores, c_labels) in zip(
        detect(loc, logits, priors), candidates
    ):
        keep = batched_nms(c_boxes, c_scores, c_labels, 0.45)[:200]
        assert torch.equal(boxes, c_boxes[keep]) and torch.equal(labels, c_labels[keep])
        assert torch.equal(scores, c_scores[keep])


def test_score_candidates_rejects_bad_cap():
    loc, logits, priors = small_outputs(1, 3, seed=0)
    with pytest.raises(ValueError, match="candidates_per_class must be a positive int, got 0"):
        score_candidates(loc, logits, priors, candidates_per_class=0)


def test_detect_limits():
    loc, logits, priors = small_outputs(3, 5, seed=1)
    out = detect(loc, logits, priors, score_threshold=0.2, top_k=25, candidates_per_class=7)
    assert len(out) == 3
    for boxes, scores, labels in out:
        assert boxes.shape == (len(scores), 4) and labels.dtype == torch.long
        assert len(scores) <= 25
        assert (scores > 0.2).all()
        assert ((labels >= 1) & (labels <= 4)).all()  # background (0) never comes out
        assert torch.equal(scores, scores.sort(descending=True).values)
        for c in range(1, 5):
            assert (labels == c).sum() <= 7  # candidates per class cap what NMS may keep
    # top_k keeps exactly the best detections of the uncapped result
    full = detect(loc, logits, priors, score_threshold=0.2, top_k=10_000, candidates_per_class=7)
    for (boxes, scores, labels), (f_boxes, f_scores, f_labels) in zip(out, full):
        assert len(f_scores) > 25
        assert torch.equal(scores, f_scores[:25]) and torch.equal(labels, f_labels[:25])
        assert torch.equal(boxes, f_boxes[:25])


def test_detect_paper_defaults_on_ssd300_sized_output():
    priors = torch.rand(8732, 4) * 0.5 + 0.1
    loc, logits = torch.zeros(1, 8732, 4), torch.zeros(1, 8732, 21)
    boxes, scores, labels = detect(loc, logits, priors)[0]
    # flat logits: every class scores 1/21 > 0.01 on every box; at most 200 come out
    assert len(scores) == 200
    torch.testing.assert_close(scores, torch.full((200,), 1 / 21))


def test_detect_image_without_detections():
    loc, logits, priors = small_outputs(2, 3, seed=2)
    logits[1, :, 0] = 50.0  # the second image is all background
    out = detect(loc, logits, priors)
    boxes, scores, labels = out[1]
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)
    assert labels.dtype == torch.long and boxes.dtype == loc.dtype
    assert len(out[0][0]) > 0


# ------------------------------------------------------------------ bad inputs

PRIORS4 = torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 4)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: nms(torch.zeros(3, 5), torch.zeros(3), 0.5), ValueError, r"boxes .*\[3, 5\]"),
        (lambda: nms(torch.zeros(3, 4), torch.zeros(2), 0.5), ValueError, r"scores .*got \[2\]"),
        (lambda: nms(torch.zeros(3, 4), torch.zeros(3), 1.5), ValueError, "iou_threshold .*1.5"),
        (
            lambda: nms(torch.tensor([[0.0, 0, 1, 1]] * 2), torch.tensor([0.5, float("nan")]), 0.5),
            ValueError,
            r"scores\[1\] is NaN",
        ),
        (
            lambda: detect(torch.full((1, 4, 4), float("nan")), torch.zeros(1, 4, 3), PRIORS4),
            ValueError,
            "loc of image 0 is NaN at default box 0",
        ),
        (lambda: nms(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3), 0.5), TypeError, "float"),
        (
            lambda: batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2).long(), 0.5),
            ValueError,
            r"classes .*got \[2\]",
        ),
        (
            lambda: batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), 0.5),
            TypeError,
            "classes must be an integer",
        ),
        (
            lambda: detect(torch.zeros(2, 10, 4), torch.zeros(2, 9, 3), torch.zeros(10, 4)),
            ValueError,
            r"logits .*\[2, 9, 3\]",
        ),
        (
            lambda: detect(torch.zeros(2, 10, 4), torch.zeros(2, 10, 3), torch.zeros(11, 4)),
            ValueError,
            r"priors .*P = 10, got \[11, 4\]",
        ),
        (
            lambda: detect(torch.zeros(2, 10, 4), torch.zeros(2, 10, 1), torch.zeros(10, 4)),
            ValueError,
            "C >= 2",
        ),
        (
            lambda: detect(torch.zeros(10, 4), torch.zeros(10, 3), torch.zeros(10, 4)),
            ValueError,
            r"loc .*\[10, 4\]",
        ),
        (
            lambda: detect(torch.zeros(1, 9, 4), torch.zeros(1, 9, 3), torch.zeros(9, 4), top_k=0),
            ValueError,
            "top_k must be a positive int, got 0",
        ),
        (
            lambda: detect(
                torch.zeros(1, 10, 4), torch.zeros(1, 10, 3), torch.zeros(10, 4), score_threshold=-1
            ),
            ValueError,
            "score_threshold",
        ),
    ],
)
def test_bad_inputs_are_rejected(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------ the notebook's figure


def test_plot_nms_draws_before_and_after():
    from ssd_edu.viz import plot_nms

    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.52], [0.6, 0.6, 0.9, 0.9]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.tensor([1, 1, 2])
    fig = plot_nms(torch.zeros(3, 20, 30), boxes, scores, labels, 0.45, class_names=["a", "b"])
    before, after = fig.axes
    assert len(before.patches) == 3 and len(after.patches) == 2
    assert "0.45" in after.get_title()
    plt.close(fig)


def test_tiny_but_nonzero_boxes_overlap_as_box_iou_says():
    # a union far below float32's normal range must not be floored (that would halve this IoU)
    boxes = torch.tensor([[0.0, 0.0, 0.5, 1.18e-38], [0.0, 0.0, 0.5, 1.18e-38]])
    assert box_iou(boxes, boxes)[0, 1] == 1.0
    assert nms(boxes, torch.tensor([1.0, 0.5]), 0.6).tolist() == [0]
