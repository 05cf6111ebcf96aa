"""The nms exercise checker: passes the solution, fails the stub and each usual mistake."""

from __future__ import annotations

import pytest
import torch

from ssd_edu.boxes import box_iou
from ssd_edu.exercises import ExerciseFailure, check_nms


def solution(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def stub(boxes, scores, iou_threshold):
    raise NotImplementedError()


def greater_or_equal(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i] >= iou_threshold  # equal overlap suppresses: wrong
    return torch.tensor(keep, dtype=torch.long)


def not_sorted(boxes, scores, iou_threshold):
    overlaps = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in range(len(boxes)):  # index order, scores ignored
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def not_greedy(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    overlaps = box_iou(boxes, boxes)
    keep = []
    for a, j in enumerate(order):
        # suppressed by any higher-scored box, even one that was itself suppressed
        if not any(overlaps[i, j] > iou_threshold for i in order[:a]):
            keep.append(j)
    return torch.tensor(keep, dtype=torch.long)


def returns_mask(boxes, scores, iou_threshold):
    mask = torch.zeros(len(boxes), dtype=torch.bool)
    mask[solution(boxes, scores, iou_threshold)] = True
    return mask


def index_order(boxes, scores, iou_threshold):
    return solution(boxes, scores, iou_threshold).sort().values


def unstable_ties(boxes, scores, iou_threshold):
    # ties visited highest index first: sort the reversed scores, then map back
    order = len(scores) - 1 - torch.sort(scores.flip(0), descending=True, stable=True).indices
    overlaps = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def test_solution_passes(capsys):
    check_nms(solution)
    assert "nms: all 9 cases passed" in capsys.readouterr().out


def test_library_passes(copy_of):
    from ssd_edu.fast.nms import nms as fast_nms
    from ssd_edu.nms import nms

    for library in (nms, fast_nms, lambda b, s, t: fast_nms(b, s, t)):
        with pytest.raises(ExerciseFailure, match="library's own nms"):
            check_nms(library)
    check_nms(copy_of(nms))


@pytest.mark.parametrize(
    "fn, message",
    [
        (stub, "not implemented yet"),
        (
            greater_or_equal,
            r"exactly the threshold(.|\n)*expected \[0, 1\], got \[0\]\nhint: .*`>`",
        ),
        (not_sorted, r"scores not in index order(.|\n)*got \[0, 2\]\nhint: visit the boxes"),
        (not_greedy, r"a chain(.|\n)*expected \[0, 2\], got \[0\]\nhint: only kept boxes"),
        (returns_mask, r"got \[True, True\] \(dtype torch.bool\)\nhint: return the indices"),
        (index_order, r"index order(.|\n)*expected \[2, 1\], got \[1, 2\]\nhint: you keep the"),
        (unstable_ties, r"equal scores(.|\n)*got \[2\]\nhint: equal scores"),
    ],
    ids=["stub", ">=", "unsorted", "non-greedy", "mask", "index-order", "ties"],
)
def test_mistakes_fail_with_their_hint(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_nms(fn)


def test_crash_names_the_case():
    def crashes(boxes, scores, iou_threshold):
        return boxes @ scores

    with pytest.raises(ExerciseFailure, match="case 'two boxes .*': your function raised"):
        check_nms(crashes)


def test_an_unstable_sort_is_named():
    def unstable(boxes, scores, threshold):
        overlaps = box_iou(boxes, boxes)
        kept = []
        for i in torch.sort(scores, descending=True).indices.tolist():  # not stable
            if all(float(overlaps[k, i]) <= threshold for k in kept):
                kept.append(i)
        return torch.tensor(kept, dtype=torch.long)

    with pytest.raises(ExerciseFailure, match="Sort with stable=True"):
        check_nms(unstable)
