"""Checker for the average-precision exercise (notebook 08).

The student writes ``average_precision(recall, precision, use_07_metric=True) -> float`` for one
class: the VOC2007 11-point form and the area form (envelope, sentinels at recall 0 and 1). The
checker gives it ``[K]`` float64 tensors and compares with the library's
:func:`ssd_edu.evaluate.average_precision` on hand-made and seeded random precision-recall
points. When an answer is wrong, it recomputes the usual mistaken versions on that case; if one
of them gives the student's number, the hint names it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ssd_edu.evaluate import average_precision
from ssd_edu.exercises._common import ExerciseFailure, call_student, passed, refuse_library

HINT_ENVELOPE = (
    "in the area form, replace each precision by the largest precision at that recall or any "
    "higher recall (the envelope: a running max taken from the right) before summing."
)
HINT_TEN_POINTS = (
    "the 11-point form samples 11 recall levels 0, 0.1, ..., 1.0 (both ends included) and "
    "divides their sum by 11."
)
HINT_SENTINELS = (
    "add a point at recall 0 in front (and recall 1, precision 0 at the end) before taking the "
    "recall steps: the first step, from recall 0 to the first point, counts too."
)
HINT_WEIGHTS = (
    "the area form is a sum of rectangles: weight each (envelope) precision by the recall step "
    "(r_{k+1} - r_k) it covers; do not average the precisions."
)
HINT_ARANGE = (
    "your recall levels are not exactly 0.3, 0.6 and 0.7: np.arange(0, 1.1, 0.1) gives "
    "0.30000000000000004 (floats add up their rounding), so a recall of exactly 0.3 misses its "
    "level. Use [i / 10 for i in range(11)]."
)
HINT_NO_ENVELOPE_07 = (
    "at each of the 11 levels take the best precision at that recall or beyond (the envelope), "
    "not the precision of the first point that reaches the level."
)
HINT_EMPTY = "a class with no detections has no points: its AP is 0.0."


def _envelope(precision: Tensor) -> Tensor:
    return precision.flip(0).cummax(0).values.flip(0)


def _points_ap(
    recall: Tensor, precision: Tensor, levels: Tensor, divide_by: int, envelope: bool = True
) -> float:
    env = _envelope(precision) if envelope else precision
    total = 0.0
    for t in levels.tolist():
        reached = env[recall >= t]
        total += (float(reached.max()) if envelope else float(reached[0])) if len(reached) else 0.0
    return total / divide_by


def _mistakes(recall: Tensor, precision: Tensor, use_07: bool) -> list[tuple[str, float]]:
    """The numbers the usual mistakes give on this case, each with its hint."""
    if len(recall) == 0:
        return []
    if use_07:
        tenths = torch.arange(11, dtype=torch.float64) / 10
        arange = torch.from_numpy(np.arange(0, 1.1, 0.1))  # the popular port's levels
        return [
            (HINT_ARANGE, _points_ap(recall, precision, arange, 11)),
            (HINT_NO_ENVELOPE_07, _points_ap(recall, precision, tenths, 11, envelope=False)),
            (HINT_TEN_POINTS, _points_ap(recall, precision, tenths[:10], 10)),  # 0 .. 0.9
            (HINT_TEN_POINTS, _points_ap(recall, precision, tenths[1:], 10)),  # 0.1 .. 1
            (HINT_TEN_POINTS, _points_ap(recall, precision, tenths, 10)),  # 11 levels / 10
        ]
    zero, one = recall.new_zeros(1), recall.new_ones(1)
    mrec = torch.cat((zero, recall, one))
    mpre = torch.cat((zero, precision, zero))
    env = _envelope(mpre)
    steps = mrec[1:] - mrec[:-1]
    own_env = _envelope(precision)
    return [
        (HINT_ENVELOPE, float((steps * mpre[1:]).sum())),
        (HINT_SENTINELS, float(((recall[1:] - recall[:-1]) * own_env[1:]).sum())),
        (HINT_SENTINELS, float(((recall[1:] - recall[:-1]) * precision[1:]).sum())),
        (HINT_WEIGHTS, float(precision.mean())),
        (HINT_WEIGHTS, float(own_env.mean())),
        (HINT_WEIGHTS, float(env[1:].mean())),
    ]


def _curve(tp_flags: list[int], num_positives: int) -> tuple[Tensor, Tensor]:
    """Recall and precision after each detection from a list of TP (1) / FP (0) verdicts."""
    tp = torch.tensor(tp_flags, dtype=torch.float64).cumsum(0)  # [K]
    seen = torch.arange(1, len(tp_flags) + 1, dtype=torch.float64)  # [K]
    return tp / num_positives, tp / seen


def _cases() -> list[tuple[str, Tensor, Tensor, bool]]:
    cases = []
    worked = _curve([1, 0, 1, 0, 1], 4)  # the notebook's worked example
    rising = _curve([1, 0, 1, 1], 5)  # precision rises again after a false positive
    late = _curve([0, 1, 1], 2)  # a false positive first, then every object: recall reaches 1
    exact = _curve([1, 1, 1, 0, 1, 1, 1, 0, 0, 1], 10)  # recall lands exactly on 0.3, 0.6 and 0.7
    for use_07 in (True, False):
        form = "11-point" if use_07 else "area"
        cases += [
            (f"worked example TP FP TP FP TP, 4 objects ({form})", *worked, use_07),
            (f"TP FP TP TP, 5 objects: precision rises again ({form})", *rising, use_07),
            (f"FP TP TP, 2 objects: recall reaches 1 ({form})", *late, use_07),
            (f"7 TPs of 10 objects: recall exactly 0.3, 0.6, 0.7 ({form})", *exact, use_07),
        ]
    g = torch.Generator().manual_seed(2007)
    for n, (k, npos) in enumerate([(30, 12), (8, 20), (50, 10)]):
        flags = (torch.rand(k, generator=g) < 0.4).long().tolist()
        flags[int(torch.randint(k, (1,), generator=g))] = 1  # at least one true positive
        npos = max(npos, sum(flags))
        for use_07 in (True, False):
            form = "11-point" if use_07 else "area"
            cases.append(
                (
                    f"random {n}: {k} detections, {npos} objects ({form})",
                    *_curve(flags, npos),
                    use_07,
                )
            )
    empty = torch.zeros(0, dtype=torch.float64)
    cases.append(("no detections at all (11-point)", empty, empty.clone(), True))
    cases.append(("no detections at all (area)", empty, empty.clone(), False))
    return cases


def check_average_precision(student_fn: Callable[..., float]) -> None:
    """Compare ``student_fn(recall, precision, use_07_metric)`` with the library's AP.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "average_precision", average_precision)
    cases = _cases()
    for case, recall, precision, use_07 in cases:
        try:
            got = call_student(
                student_fn, case, recall.clone(), precision.clone(), use_07_metric=use_07
            )
        except ExerciseFailure as e:
            if len(recall) == 0 and "raised" in str(e):
                raise ExerciseFailure(f"{e}\nhint: {HINT_EMPTY}") from e
            raise
        try:
            value = float(got)
        except (TypeError, ValueError):
            raise ExerciseFailure(
                f"case '{case}': expected a float, got {type(got).__name__}"
            ) from None
        expected = average_precision(recall, precision, use_07_metric=use_07)
        if abs(value - expected) <= 1e-6:
            continue
        hints = [
            h for h, wrong in _mistakes(recall, precision, use_07) if abs(value - wrong) <= 1e-6
        ]
        if len(recall) == 0:
            hints.append(HINT_EMPTY)
        points = ", ".join(
            f"({r:.3f}, {p:.3f})" for r, p in zip(recall.tolist(), precision.tolist())
        )
        msg = (
            f"case '{case}': expected AP {expected:.6f}, got {value:.6f}\n"
            f"(recall, precision) points: [{points[:400]}]"
        )
        if hints:
            msg += "\nhint: " + hints[0]
        raise ExerciseFailure(msg)
    passed("check_average_precision", len(cases))
