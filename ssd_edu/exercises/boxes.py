"""Checker for the jaccard-overlap exercise (notebook 01).

The student writes ``box_iou(a, b) -> [N, M]`` for ``a: [N, 4]`` and ``b: [M, 4]`` xyxy boxes.
The checker compares it with :func:`ssd_edu.boxes.box_iou` on boxes a reader can work out on paper,
then on seeded random ones, and names the usual mistakes: an intersection not clamped at 0, a
union that counts the overlap twice, NaN for zero-area boxes, the result transposed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssd_edu.boxes import _iou, box_area, box_iou, box_iou_paired
from ssd_edu.exercises._common import (
    ExerciseFailure,
    call_student,
    expect_close,
    passed,
    refuse_library,
)

HINT_CLAMP = (
    "boxes that do not overlap must give 0. Clamp the intersection's width and height at 0 "
    "(e.g. (bottom_right - top_left).clamp(min=0)) before multiplying them: two negative sides "
    "make a positive 'area', one negative side a negative one."
)
HINT_UNION = (
    "the union counts the overlap once: area(A) + area(B) - intersection. Without the "
    "subtraction two identical boxes give 0.5 instead of 1."
)
HINT_NAN = (
    "two zero-area boxes have union 0, and 0 / 0 is NaN. Define their overlap as 0, e.g. "
    "torch.where(union > 0, inter / union, 0) (avoid dividing by 0 inside the where too)."
)
HINT_TRANSPOSE = (
    "the result must be [N, M]: row n is box a[n] against every box of b. Yours looks like the "
    "transpose, [M, N]; broadcast a[:, None, :] against b[None, :, :]."
)


def _xyxy(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    cases = [
        (
            "two overlapping boxes, worked on paper (IoU = 1/7)",
            _xyxy([[0.0, 0.0, 0.2, 0.2]]),
            _xyxy([[0.1, 0.1, 0.3, 0.3]]),
        ),
        (
            "a box with itself (IoU = 1)",
            _xyxy([[0.1, 0.2, 0.5, 0.6]]),
            _xyxy([[0.1, 0.2, 0.5, 0.6]]),
        ),
        (
            "a box inside another (IoU = 1/4)",
            _xyxy([[0.0, 0.0, 0.4, 0.4]]),
            _xyxy([[0.1, 0.1, 0.3, 0.3]]),
        ),
        (
            "disjoint boxes, apart in x and in y (IoU = 0)",
            _xyxy([[0.0, 0.0, 0.2, 0.2]]),
            _xyxy([[0.5, 0.6, 0.9, 0.9]]),
        ),
        (
            "disjoint boxes, apart in x only (IoU = 0)",
            _xyxy([[0.0, 0.0, 0.2, 0.5]]),
            _xyxy([[0.5, 0.1, 0.9, 0.4]]),
        ),
        (
            "zero-area boxes (a point and a line) against themselves (IoU = 0)",
            _xyxy([[0.5, 0.5, 0.5, 0.5], [0.2, 0.3, 0.8, 0.3]]),
            _xyxy([[0.5, 0.5, 0.5, 0.5], [0.2, 0.3, 0.8, 0.3]]),
        ),
        (
            "3 boxes against 2 (result [3, 2])",
            _xyxy([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75], [0.6, 0.0, 1.0, 0.3]]),
            _xyxy([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]),
        ),
    ]
    g = torch.Generator().manual_seed(2016)
    for n, (N, M) in enumerate([(5, 8), (20, 3), (1, 30)]):
        boxes = []
        for count in (N, M):
            xy = torch.rand(count, 2, generator=g)  # [count, 2]
            wh = torch.rand(count, 2, generator=g) * 0.5  # [count, 2]
            wh[::4, 0] = 0  # some zero-width boxes
            boxes.append(torch.cat((xy, xy + wh), dim=1))  # [count, 4]
        cases.append((f"random boxes {n} ({N} x {M})", boxes[0], boxes[1]))
    return cases


def _hint(got: torch.Tensor, a: torch.Tensor, b: torch.Tensor, expected: torch.Tensor) -> str:
    """The most likely mistake behind a wrong answer, or ``""``."""
    if torch.isnan(got).any():
        return HINT_NAN
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # [N, M, 2]
    disjoint = (bottom_right <= top_left).any(dim=-1)  # [N, M]
    if (got[disjoint] != 0).any():
        return HINT_CLAMP
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)  # [N, M]
    total = box_area(a)[:, None] + box_area(b)[None, :]  # [N, M]
    no_subtraction = torch.where(total > 0, inter / total.clamp(min=1e-12), 0.0)
    if torch.allclose(got.double(), no_subtraction.double(), atol=1e-5):
        return HINT_UNION
    return ""


def check_box_iou(student_fn: Callable[..., torch.Tensor]) -> None:
    """Compare ``student_fn(a, b)`` with the library's :func:`ssd_edu.boxes.box_iou`.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "box_iou", box_iou, box_iou_paired, _iou)
    cases = _cases()
    for case, a, b in cases:
        expected = box_iou(a, b)  # [N, M]
        got = call_student(student_fn, case, a.clone(), b.clone())
        if not isinstance(got, torch.Tensor):
            raise ExerciseFailure(
                f"case '{case}': expected a torch.Tensor, got {type(got).__name__}"
            )
        N, M = expected.shape
        if tuple(got.shape) == (M, N) and N != M:
            raise ExerciseFailure(
                f"case '{case}': expected shape {[N, M]}, got {list(got.shape)}"
                f"\nhint: {HINT_TRANSPOSE}"
            )
        hint = _hint(got, a, b, expected) if got.shape == expected.shape else ""
        expect_close(case, got, expected, hint=hint)
    passed("box_iou", len(cases))
