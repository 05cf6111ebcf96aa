"""Checker for the matching exercise (notebook 02).

The student writes ``match(gt_boxes, priors, iou_threshold=0.5) -> [P] long``: for each default
box the index of its object, or -1 for background, with SSD's two steps (forced best box per
object, then every default box whose best overlap is ``>= iou_threshold``). The checker compares
it with :func:`ssd_edu.matching.match` on cases small enough to work out on paper, then on seeded
random images, and names the usual mistakes: no forced match, ``>`` instead of ``>=``, an argmax
over objects with no threshold, the forced step written as ``matches[g] = best_prior[g]``
(objects indexed by default box instead of default boxes by object), and two objects that want
the same default box.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssd_edu.boxes import box_iou, cxcywh_to_xyxy
from ssd_edu.exercises._common import ExerciseFailure, call_student, passed, refuse_library
from ssd_edu.fast.matching import assign_targets_batch as fast_assign_targets_batch
from ssd_edu.matching import assign_targets, match
from ssd_edu.priors import SSD128_SHAPES, default_boxes

HINT_FORCED = (
    "every object must keep at least its best default box, even when that overlap is below "
    "iou_threshold (step 1, the forced match): a small object overlaps no default box by 0.5 and "
    "would otherwise never be trained on."
)
HINT_STRICT = (
    "an overlap exactly equal to iou_threshold counts as a match: the library uses "
    "iou >= iou_threshold (the paper writes 'higher than 0.5'; the released code keeps equality)."
)
HINT_THRESHOLD = (
    "a default box whose best overlap is below iou_threshold is background (-1) unless it is an "
    "object's forced best box: an argmax over the objects alone gives every default box an object."
)
HINT_INDEXING = (
    "matches has one entry per default box and holds an object index (0..G-1) or -1. The forced "
    "step writes the object index g at position best_prior[g] (matches[best_prior[g]] = g); "
    "writing best_prior[g] at position g indexes the objects by default box instead."
)
HINT_SHARED = (
    "two objects want the same default box. Pair greedily: repeatedly take the (object, default "
    "box) pair with the highest overlap among objects not yet paired and boxes not yet taken "
    "(ties: lower object index, then lower box index). The object that overlaps the box more "
    "keeps it; the other takes its best box still free, so both end up with a positive."
)
HINT_BEST_OBJECT = (
    "in the threshold step each default box takes the object it overlaps MOST (argmax over the "
    "objects, the lower index on ties), and forced pairs override it."
)


def _xyxy(*rows: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def _cxcywh(*rows: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    cases = [
        (
            "one object equal to default box 1 of 3",
            _xyxy((0.5, 0.5, 1.0, 1.0)),
            _cxcywh((0.25, 0.25, 0.5, 0.5), (0.75, 0.75, 0.5, 0.5), (0.25, 0.75, 0.5, 0.5)),
            0.5,
        ),
        (
            "a small object that no default box overlaps by 0.5 (best IoU 0.04)",
            _xyxy((0.1, 0.1, 0.2, 0.2)),
            _cxcywh((0.5, 0.5, 1.0, 1.0), (0.25, 0.25, 0.5, 0.5), (0.75, 0.75, 0.5, 0.5)),
            0.5,
        ),
        (
            "default box 0 overlaps the object by exactly 0.5, box 1 by 1.0",
            _xyxy((0.0, 0.0, 0.5, 0.5)),
            _cxcywh((0.25, 0.5, 0.5, 1.0), (0.25, 0.25, 0.5, 0.5)),
            0.5,
        ),
        (
            "two objects whose best default boxes are 3 and 4 of 5",
            _xyxy((0.5, 0.5, 1.0, 1.0), (0.0, 0.5, 0.5, 1.0)),
            _cxcywh(
                (0.25, 0.25, 0.5, 0.5),
                (0.75, 0.25, 0.5, 0.5),
                (0.5, 0.5, 1.0, 1.0),
                (0.75, 0.75, 0.5, 0.5),
                (0.25, 0.75, 0.5, 0.5),
            ),
            0.5,
        ),
        (
            "two objects share their best default box 0 (IoU 0.64 and 1.0)",
            _xyxy((0.1, 0.1, 0.5, 0.5), (0.0, 0.0, 0.5, 0.5)),
            _cxcywh((0.25, 0.25, 0.5, 0.5), (0.125, 0.25, 0.25, 0.5), (0.8, 0.8, 0.2, 0.2)),
            0.5,
        ),
        (
            "no objects in the image (G = 0)",
            torch.zeros(0, 4),
            _cxcywh((0.25, 0.25, 0.5, 0.5), (0.75, 0.75, 0.5, 0.5)),
            0.5,
        ),
    ]
    priors = default_boxes(SSD128_SHAPES)  # [1524, 4]
    g = torch.Generator().manual_seed(2016)
    for n, (count, threshold) in enumerate([(3, 0.5), (8, 0.5), (6, 0.35)]):
        xy = torch.rand(count, 2, generator=g) * 0.85  # [count, 2]
        wh = 0.03 + torch.rand(count, 2, generator=g) * 0.5  # [count, 2]
        boxes = torch.cat((xy, (xy + wh).clamp(max=1.0)), dim=1)  # [count, 4]
        cases.append(
            (
                f"random image {n}: {count} objects, {len(priors)} default boxes, "
                f"threshold {threshold}",
                boxes,
                priors,
                threshold,
            )
        )
    return cases


def _hint(got: torch.Tensor, expected: torch.Tensor, iou: torch.Tensor, threshold: float) -> str:
    """The most likely mistake behind a wrong answer (``iou`` is ``[G, P]``), or ``""``."""
    num_gt = iou.shape[0]
    if ((got < -1) | (got >= num_gt)).any():
        return HINT_INDEXING
    best_prior = iou.argmax(dim=1) if num_gt else torch.zeros(0, dtype=torch.long)  # [G]
    # an object left without a positive: forced match missing, or lost to a shared best box
    for g in range(num_gt):
        if (expected == g).any() and not (got == g).any():
            shared = (best_prior == best_prior[g]).sum() > 1
            return HINT_SHARED if shared else HINT_FORCED
    best_iou = iou.max(dim=0).values if num_gt else torch.zeros_like(got, dtype=iou.dtype)  # [P]
    forced = torch.zeros_like(got, dtype=torch.bool)
    forced[best_prior] = True
    wrongly_positive = (got >= 0) & (expected < 0) & (best_iou < threshold) & ~forced
    if wrongly_positive.any():
        return HINT_THRESHOLD
    if ((got < 0) & (expected >= 0) & (best_iou == threshold)).any():
        return HINT_STRICT
    if ((got >= 0) & (expected >= 0) & (got != expected)).any():
        return HINT_SHARED if bool((best_prior.bincount() > 1).any()) else HINT_BEST_OBJECT
    return ""


def _expect_matches(case: str, got, expected: torch.Tensor, iou, threshold: float) -> None:
    if not isinstance(got, torch.Tensor):
        raise ExerciseFailure(f"case '{case}': expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape):
        raise ExerciseFailure(
            f"case '{case}': expected shape {list(expected.shape)} (one entry per default box), "
            f"got {list(got.shape)}"
        )
    if got.is_floating_point() or got.dtype == torch.bool:
        raise ExerciseFailure(
            f"case '{case}': expected an integer tensor (torch.long) of object indices, "
            f"got dtype {got.dtype}"
        )
    got = got.long().cpu()
    if torch.equal(got, expected):
        return
    p = int(torch.nonzero(got != expected)[0])
    overlaps = [round(v, 3) for v in iou[:, p].tolist()]
    msg = (
        f"case '{case}': default box {p}: expected {int(expected[p])}, got {int(got[p])} "
        f"(its IoU with each object: {overlaps}; {int((got != expected).sum())} of "
        f"{len(expected)} entries differ)"
    )
    hint = _hint(got, expected, iou, threshold)
    raise ExerciseFailure(msg + (f"\nhint: {hint}" if hint else ""))


def check_match(student_fn: Callable[..., torch.Tensor]) -> None:
    """Compare ``student_fn(gt_boxes, priors, iou_threshold)`` with :func:`ssd_edu.matching.match`.

    Raises:
        ExerciseFailure: naming the case, the first default box that differs, what was expected,
            what came back, and a hint for the usual mistakes.
    """
    refuse_library(student_fn, "match", match, assign_targets, fast_assign_targets_batch)
    cases = _cases()
    for case, gt_boxes, priors, threshold in cases:
        expected = match(gt_boxes, priors, threshold)  # [P]
        iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors))  # [G, P]
        got = call_student(student_fn, case, gt_boxes.clone(), priors.clone(), threshold)
        _expect_matches(case, got, expected, iou, threshold)
    passed("match", len(cases))
