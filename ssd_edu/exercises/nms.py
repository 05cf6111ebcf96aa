"""Checker for the non-maximum suppression exercise (notebook 05).

The student writes ``nms(boxes, scores, iou_threshold) -> [K] long``: the indices of the kept
boxes, highest score first. The checker compares with :func:`ssd_edu.nms.nms` on small sets a
reader can work out on paper, each built so that one usual mistake changes the answer, then on
seeded random sets, and names the mistake: ``>=`` instead of ``>``, boxes visited in index order
instead of score order, suppression by boxes that were themselves suppressed (not greedy), a mask
instead of indices, indices in index order instead of score order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssd_edu.boxes import box_iou
from ssd_edu.exercises._common import (
    ExerciseFailure,
    call_student,
    expect_equal,
    passed,
    refuse_library,
)
from ssd_edu.fast.nms import nms as fast_nms
from ssd_edu.nms import batched_nms, nms

HINT_GREATER = (
    "a box is suppressed only when its overlap is greater than the threshold; an overlap exactly "
    "equal to it keeps the box. Use `>`, not `>=`."
)
HINT_SORT = (
    "visit the boxes from the highest score down, not in the order they are given: "
    "order = torch.sort(scores, descending=True, stable=True).indices."
)
HINT_GREEDY = (
    "only kept boxes suppress. A box that was itself suppressed must not remove others: here B "
    "is suppressed by A, so C (which overlaps B but not A) stays. Check each box against the "
    "boxes kept so far, or mark as suppressed only the boxes overlapping a box you keep."
)
HINT_MASK = (
    "return the indices of the kept boxes (a long tensor such as tensor([2, 0])), not a "
    "True/False mask over all boxes: torch.nonzero(mask) gives indices, but in index order."
)
HINT_ORDER = (
    "you keep the right boxes but list them in index order. Return them highest score first, in "
    "the order the greedy loop keeps them."
)
HINT_TIES = (
    "equal scores: the lower index counts as higher-scored. Sort with stable=True so that ties "
    "keep their original order."
)


def _xyxy(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float, dict[tuple[int, ...], str]]]:
    """(name, boxes, scores, threshold, {a mistaken answer: its hint})."""
    cases = [
        (
            "two boxes overlapping by exactly the threshold (IoU = 2/4 = 0.5, threshold 0.5)",
            _xyxy([[0, 0, 2, 1], [0, 0, 2, 2]]),
            torch.tensor([0.9, 0.8]),
            0.5,
            {(0,): HINT_GREATER},
        ),
        (
            "scores not in index order (box 1 beats box 0; box 2 overlaps nothing)",
            _xyxy([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [3, 3, 4, 4]]),
            torch.tensor([0.6, 0.9, 0.95]),
            0.5,
            {(0, 2): HINT_SORT, (2, 0): HINT_SORT, (1, 2): HINT_ORDER},
        ),
        (
            "a chain: A overlaps B (IoU 1/3), B overlaps C, A does not overlap C; threshold 0.3",
            _xyxy([[0, 0, 2, 1], [1, 0, 3, 1], [2, 0, 4, 1]]),
            torch.tensor([0.9, 0.8, 0.7]),
            0.3,
            {(0,): HINT_GREEDY},
        ),
        (
            "three identical boxes with equal scores",
            _xyxy([[0.2, 0.2, 0.6, 0.6]] * 3),
            torch.tensor([0.5, 0.5, 0.5]),
            0.45,
            {(1,): HINT_TIES, (2,): HINT_TIES},
        ),
        ("no boxes at all", _xyxy([]), torch.zeros(0), 0.45, {}),
        (
            "20 boxes in a chain, all with the same score (each overlaps its neighbours)",
            _xyxy([[i, 0, i + 1.5, 1] for i in range(20)]),  # neighbours: IoU 0.5 / 2.5 = 0.2
            torch.full((20,), 0.5),
            0.1,
            {},
        ),
    ]
    g = torch.Generator().manual_seed(2016)
    for n, count in enumerate([12, 40, 150]):
        centres = torch.rand(max(count // 6, 1), 2, generator=g)  # a few objects
        which = torch.randint(0, len(centres), (count,), generator=g)
        xy = centres[which] + torch.randn(count, 2, generator=g) * 0.04  # jittered copies
        boxes = torch.cat((xy, xy + 0.1 + torch.rand(count, 2, generator=g) * 0.2), dim=1)
        scores = torch.rand(count, generator=g)
        cases.append((f"random set {n} ({count} boxes, threshold 0.45)", boxes, scores, 0.45, {}))
    return cases


def _unstable(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> tuple[int, ...]:
    """The greedy answer when the boxes are visited in the order of an unstable sort."""
    overlaps = box_iou(boxes, boxes) if len(boxes) else torch.zeros(0, 0)
    kept: list[int] = []
    for i in torch.sort(scores, descending=True, stable=False).indices.tolist():
        if all(float(overlaps[k, i]) <= threshold for k in kept):
            kept.append(i)
    return tuple(kept)


def check_nms(student_fn: Callable[..., torch.Tensor]) -> None:
    """Compare ``student_fn(boxes, scores, iou_threshold)`` with :func:`ssd_edu.nms.nms`.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "nms", nms, fast_nms, batched_nms)
    cases = _cases()
    for case, boxes, scores, threshold, mistakes in cases:
        expected = nms(boxes, scores, threshold)  # [K]
        got = call_student(student_fn, case, boxes.clone(), scores.clone(), threshold)
        if not isinstance(got, torch.Tensor):
            raise ExerciseFailure(
                f"case '{case}': expected a torch.Tensor, got {type(got).__name__}"
            )
        if got.dtype == torch.bool or (
            got.shape == scores.shape and len(scores) > 0 and set(got.tolist()) <= {0, 1}
            and not torch.equal(got.long(), expected)
        ):  # fmt: skip
            raise ExerciseFailure(
                f"case '{case}': expected indices {expected.tolist()}, got {got.tolist()} "
                f"(dtype {got.dtype})\nhint: {HINT_MASK}"
            )
        if got.is_floating_point():
            raise ExerciseFailure(
                f"case '{case}': indices must be integers (torch.long), got dtype {got.dtype}"
            )
        answer = tuple(got.reshape(-1).tolist())
        hint = mistakes.get(answer, "")
        if (
            not hint
            and answer != tuple(expected.tolist())
            and answer == _unstable(boxes, scores, threshold)
        ):
            hint = HINT_TIES
        if (
            not hint
            and sorted(answer) == sorted(expected.tolist())
            and answer != tuple(expected.tolist())
        ):
            hint = HINT_ORDER
        expect_equal(case, got, expected, hint=hint)
    passed("nms", len(cases))
