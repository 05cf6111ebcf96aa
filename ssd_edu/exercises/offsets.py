"""Checkers for the offset exercises (notebook 02): encode and decode, eq. 2 with the variances.

The student writes ``encode(matched, priors, variances=(0.1, 0.2)) -> [P, 4]``, the offsets of
matched xyxy boxes from their cxcywh default boxes, and ``decode(loc, priors, variances) -> [P, 4]``
xyxy, its inverse. The checkers compare them with :func:`ssd_edu.boxes.encode` and
:func:`ssd_edu.boxes.decode` on a case worked on paper, on other variances, and on seeded random
boxes, and name the usual mistakes: the variances forgotten, multiplied instead of divided (or
the other way round in decode), the two variances swapped, width and height swapped, the centre
offset divided by the ground truth's size instead of the default box's, no logarithm (or no
exponential), and boxes returned in the wrong format.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssd_edu.boxes import VARIANCES, cxcywh_to_xyxy, decode, encode, xyxy_to_cxcywh
from ssd_edu.exercises._common import (
    ExerciseFailure,
    call_student,
    expect_close,
    passed,
    refuse_library,
)

HINT_NO_VARIANCE = (
    "the offsets are divided by the variances: (g_cx - d_cx) / (0.1 * d_w) and "
    "log(g_w / d_w) / 0.2. Without them the targets are 5 to 10 times too small."
)
HINT_VARIANCE_TIMES = (
    "encode divides by the variances and decode multiplies by them; yours does the opposite."
)
HINT_VARIANCES_SWAPPED = (
    "variances[0] (0.1) scales the centre offsets and variances[1] (0.2) the size offsets; "
    "yours uses them the other way round."
)
HINT_WH_SWAPPED = (
    "the x offset is measured in default-box widths and the y offset in heights (cx with w, cy "
    "with h); yours pairs them the other way round. Keep the order (cx, cy, w, h)."
)
HINT_GT_SIZE = (
    "the centre offset is measured in units of the *default box's* size, d_w and d_h (the only "
    "size known at test time, when decode has no ground truth), not the object's."
)
HINT_NO_LOG = (
    "the size offsets are logarithms of ratios, log(g_w / d_w) / 0.2: a box of the default "
    "box's size gives 0, and a box twice as wide log(2) / 0.2."
)
HINT_NO_EXP = (
    "decode inverts the logarithm: w = d_w * exp(0.2 * loc_w), not d_w * (1 + 0.2 * loc_w)."
)
HINT_FORMAT = (
    "decode returns corners (x1, y1, x2, y2), not centre and size: convert with "
    "cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2."
)


def _encode_variants(matched, priors, v):
    """The wrong encodes a student writes, by hint: each from the plain formula."""
    g, d = xyxy_to_cxcywh(matched), priors

    def offsets(c_div, s_div, centre_unit=None, size=torch.log, swap=False):
        unit = d[:, 2:] if centre_unit is None else centre_unit
        unit = unit.flip(-1) if swap else unit
        centre = (g[:, :2] - d[:, :2]) / (c_div * unit)
        ratio = g[:, 2:] / d[:, 2:]
        return torch.cat((centre, size(ratio) / s_div), dim=-1)

    return [
        (HINT_NO_VARIANCE, offsets(1.0, 1.0)),
        (HINT_VARIANCE_TIMES, offsets(1 / v[0], 1 / v[1])),
        (HINT_VARIANCES_SWAPPED, offsets(v[1], v[0])),
        (HINT_WH_SWAPPED, offsets(v[0], v[1], swap=True)),
        (HINT_GT_SIZE, offsets(v[0], v[1], centre_unit=g[:, 2:])),
        (HINT_NO_LOG, offsets(v[0], v[1], size=lambda r: r - 1)),
        (HINT_NO_LOG, offsets(v[0], v[1], size=lambda r: r)),
    ]


def _decode_variants(loc, priors, v):
    """The wrong decodes a student writes, by hint."""
    d = priors

    def boxes(c_mul, s_mul, swap=False, size=torch.exp, corners=True):
        unit = d[:, 2:].flip(-1) if swap else d[:, 2:]
        centre = d[:, :2] + loc[:, :2] * c_mul * unit
        wh = d[:, 2:] * size(loc[:, 2:] * s_mul)
        out = torch.cat((centre, wh), dim=-1)
        return cxcywh_to_xyxy(out) if corners else out

    return [
        (HINT_NO_VARIANCE, boxes(1.0, 1.0)),
        (HINT_VARIANCE_TIMES, boxes(1 / v[0], 1 / v[1])),
        (HINT_VARIANCES_SWAPPED, boxes(v[1], v[0])),
        (HINT_WH_SWAPPED, boxes(v[0], v[1], swap=True)),
        (HINT_NO_EXP, boxes(v[0], v[1], size=lambda x: 1 + x)),
        (HINT_FORMAT, boxes(v[0], v[1], corners=False)),
    ]


def _hint(got: torch.Tensor, variants) -> str:
    for hint, wrong in variants:
        if got.shape == wrong.shape and torch.allclose(got.double(), wrong.double(), atol=1e-5):
            return hint
    return ""


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor, tuple[float, float]]]:
    """``(name, matched [P, 4] xyxy, priors [P, 4] cxcywh, variances)``."""
    cases = [
        (
            "worked on paper: a box 0.1 right of and three times as wide as a 0.2 x 0.4 default "
            "box (offsets 5, 0, log(3) / 0.2 = 5.493, 0)",
            torch.tensor([[0.1, 0.3, 0.7, 0.7]]),
            torch.tensor([[0.3, 0.5, 0.2, 0.4]]),
            VARIANCES,
        ),
        (
            "a box equal to its default box (offsets 0)",
            torch.tensor([[0.1, 0.2, 0.3, 0.6]]),
            torch.tensor([[0.2, 0.4, 0.2, 0.4]]),
            VARIANCES,
        ),
        (
            "a wide default box and a tall object, moved in x and y",
            torch.tensor([[0.40, 0.10, 0.50, 0.90], [0.0, 0.0, 1.0, 0.2]]),
            torch.tensor([[0.5, 0.4, 0.6, 0.2], [0.4, 0.15, 0.3, 0.1]]),
            VARIANCES,
        ),
        (
            "other variances (0.2, 0.5): use the argument, not the constants",
            torch.tensor([[0.2, 0.3, 0.6, 0.7], [0.40, 0.10, 0.50, 0.90]]),
            torch.tensor([[0.3, 0.5, 0.2, 0.4], [0.5, 0.4, 0.6, 0.2]]),
            (0.2, 0.5),
        ),
    ]
    g = torch.Generator().manual_seed(22)
    for n, count in enumerate((7, 40)):
        centre = torch.rand(count, 2, generator=g) * 0.8 + 0.1  # [count, 2]
        size = torch.rand(count, 2, generator=g) * 0.5 + 0.05  # [count, 2], w != h
        priors = torch.cat((centre, size), dim=1)  # [count, 4] cxcywh
        jitter = torch.randn(count, 4, generator=g) * 0.3  # offsets of about unit scale
        matched = decode(jitter, priors)  # [count, 4] xyxy near each default box
        cases.append((f"random boxes {n} ({count} default boxes)", matched, priors, VARIANCES))
    return cases


def check_encode(student_fn: Callable[..., torch.Tensor]) -> None:
    """Compare ``student_fn(matched, priors, variances)`` with :func:`ssd_edu.boxes.encode`.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "encode", encode)
    cases = _cases()
    for case, matched, priors, variances in cases:
        expected = encode(matched, priors, variances)  # [P, 4]
        got = call_student(student_fn, case, matched.clone(), priors.clone(), variances)
        hint = (
            _hint(got, _encode_variants(matched, priors, variances))
            if isinstance(got, torch.Tensor)
            else ""
        )
        expect_close(case, got, expected, hint=hint)
    passed("encode", len(cases))


def check_decode(student_fn: Callable[..., torch.Tensor]) -> None:
    """Compare ``student_fn(loc, priors, variances)`` with :func:`ssd_edu.boxes.decode`, and
    check that it gives back the boxes that :func:`ssd_edu.boxes.encode` encoded.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "decode", decode)
    cases = _cases()
    for case, matched, priors, variances in cases:
        loc = encode(matched, priors, variances)  # [P, 4] offsets of boxes we know
        got = call_student(student_fn, case, loc.clone(), priors.clone(), variances)
        hint = (
            _hint(got, _decode_variants(loc, priors, variances))
            if isinstance(got, torch.Tensor)
            else ""
        )
        expect_close(case, got, decode(loc, priors, variances), hint=hint)
        if not torch.allclose(got.double(), matched.double(), atol=1e-5):
            raise ExerciseFailure(f"case '{case}': decode(encode(box)) is not the box")
    passed("decode", len(cases))
