"""Checker for the default-boxes exercise (notebook 01).

The student writes ``map_default_boxes(f, step, image_size, min_size, max_size, aspect_ratios)``
returning the ``[f * f * (2 + 2 * len(aspect_ratios)), 4]`` cxcywh default boxes of one ``f x f``
feature map in docs/design.md order (row ``i``, then column ``j``, then per cell: the ``s_k``
square, the ``sqrt(s_k s_{k+1})`` square, then ``a`` and ``1/a`` for each ratio). The library's
:func:`ssd_edu.priors.default_boxes` on a one-map config is the reference. When an answer is wrong
the checker rebuilds the boxes with each usual mistake and names the one that matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ssd_edu.exercises._common import (
    ExerciseFailure,
    call_student,
    expect_close,
    passed,
    refuse_library,
)
from ssd_edu.priors import PriorConfig, default_boxes

HINT_CENTRE = (
    "the centre of cell (i, j) is ((j + 0.5) * step, (i + 0.5) * step) / image_size: the middle "
    "of the cell, not its top-left corner j * step."
)
HINT_SWAPPED = (
    "rows and columns are swapped. Go row by row: for i (rows, y), then for j (columns, x), "
    "with cx from j and cy from i; with meshgrid use indexing='ij' and take cx from the second "
    "grid."
)
HINT_EXTRA = (
    "each cell has one more square: side s_k' = sqrt(s_k * s_{k+1}), with "
    "s_k = min_size / image_size and s_{k+1} = max_size / image_size; it comes right after the "
    "s_k square."
)
HINT_RECIPROCAL = (
    "each ratio a gives two boxes: a wide one (w = s_k sqrt(a), h = s_k / sqrt(a)) and a tall one "
    "with the ratio 1/a (w and h swapped), one right after the other."
)
HINT_ORDER = (
    "you have the right boxes in each cell but in another order. Per cell: [s_k square, s_k' "
    "square, then for each ratio a: (a, 1/a)], the order the network's outputs assume."
)


def _library(f, step, image_size, min_size, max_size, aspect_ratios) -> torch.Tensor:
    cfg = PriorConfig(
        image_size=image_size,
        feature_maps=(f,),
        steps=(step,),
        min_sizes=(min_size,),
        max_sizes=(max_size,),
        aspect_ratios=(tuple(aspect_ratios),),
    )
    return default_boxes(cfg, dtype=torch.float64)  # [f*f*A, 4]


def _variant(
    f: int,
    step: float,
    image_size: int,
    min_size: float,
    max_size: float,
    aspect_ratios: Sequence[float],
    offset: float = 0.5,
    swap: bool = False,
    extra: bool = True,
    reciprocal: bool = True,
) -> torch.Tensor:
    """The boxes as a student with one of the usual mistakes would build them."""
    s_k = min_size / image_size
    wh = [(s_k, s_k)]
    if extra:
        s_k_prime = math.sqrt(s_k * max_size / image_size)
        wh.append((s_k_prime, s_k_prime))
    for a in aspect_ratios:
        wh.append((s_k * math.sqrt(a), s_k / math.sqrt(a)))
        if reciprocal:
            wh.append((s_k / math.sqrt(a), s_k * math.sqrt(a)))
    wh_t = torch.tensor(wh, dtype=torch.float64)  # [A, 2]
    pos = (torch.arange(f, dtype=torch.float64) + offset) * step / image_size  # [f]
    cy, cx = torch.meshgrid(pos, pos, indexing="ij")  # [f, f]
    if swap:
        cx, cy = cy, cx
    centres = torch.stack((cx, cy), dim=-1).reshape(-1, 1, 2)  # [f*f, 1, 2]
    boxes = torch.cat(torch.broadcast_tensors(centres, wh_t[None]), dim=-1)  # [f*f, A, 4]
    return boxes.reshape(-1, 4)


def _cases() -> list[tuple[str, tuple]]:
    return [
        ("a 1x1 map on a 300 px image, ratios [2]", (1, 300, 300, 30, 60, [2])),
        ("a 2x2 map, step 50 on a 100 px image, ratios [2]", (2, 50, 100, 20, 45, [2])),
        ("SSD300's 3x3 map (step 100, sizes 213/264), ratios [2]", (3, 100, 300, 213, 264, [2])),
        (
            "SSD300's 5x5 map (step 64, sizes 162/213), ratios [2, 3]",
            (5, 64, 300, 162, 213, [2, 3]),
        ),
        ("SSD300's 38x38 map (step 8, sizes 30/60), ratios [2]", (38, 8, 300, 30, 60, [2])),
        ("a 4x4 map, no ratios (squares only)", (4, 16, 64, 10, 20, [])),
        ("a 7x7 map, step 9.5 (not image_size / f), ratios [2, 3]", (7, 9.5, 70, 12, 30, [2, 3])),
    ]


def _same(got: torch.Tensor, want: torch.Tensor) -> bool:
    return got.shape == want.shape and torch.allclose(got.double(), want, atol=1e-5, rtol=1e-4)


def _diagnose(got: torch.Tensor, args: tuple, expected: torch.Tensor) -> str:
    """The hint for the mistake whose boxes equal the student's, or ``""``."""
    mistakes = [
        (HINT_CENTRE, {"offset": 0.0}),
        (HINT_SWAPPED, {"swap": True}),
        (HINT_EXTRA, {"extra": False}),
        (HINT_RECIPROCAL, {"reciprocal": False}),
        (HINT_EXTRA + "\nhint: " + HINT_RECIPROCAL, {"extra": False, "reciprocal": False}),
    ]
    for hint, change in mistakes:
        if _same(got, _variant(*args, **change)):
            return hint
    f, n_ratios = args[0], len(args[5])
    per_cell = 2 + 2 * n_ratios
    if got.shape == expected.shape:
        # same boxes per cell, in another order? compare each cell's boxes sorted
        g = got.double().reshape(f * f, per_cell, 4)
        e = expected.reshape(f * f, per_cell, 4)
        key = torch.tensor([1e6, 1e4, 1e2, 1.0], dtype=torch.float64)
        g_sorted = g.gather(1, (g @ key).argsort(dim=1)[..., None].expand_as(g))
        e_sorted = e.gather(1, (e @ key).argsort(dim=1)[..., None].expand_as(e))
        if torch.allclose(g_sorted, e_sorted, atol=1e-5, rtol=1e-4):
            return HINT_ORDER
    elif got.ndim == 2 and got.shape[0] % (f * f) == 0:
        n = got.shape[0] // (f * f)
        if n == per_cell - 1:
            return HINT_EXTRA + "\nhint: or " + HINT_RECIPROCAL if n_ratios == 1 else HINT_EXTRA
        if n == 2 + n_ratios:
            return HINT_RECIPROCAL
    return ""


def check_map_default_boxes(student_fn: Callable[..., torch.Tensor]) -> None:
    """Compare ``student_fn(f, step, image_size, min_size, max_size, aspect_ratios)`` with the
    library's default boxes of a one-map configuration.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "map_default_boxes", default_boxes)
    cases = _cases()
    for case, args in cases:
        expected = _library(*args)  # [f*f*A, 4]
        got = call_student(student_fn, case, *args[:5], list(args[5]))
        if not isinstance(got, torch.Tensor):
            raise ExerciseFailure(
                f"case '{case}': expected a torch.Tensor, got {type(got).__name__}"
            )
        if _same(got, expected):
            continue
        hint = _diagnose(got, args, expected)
        if got.shape != expected.shape:
            f, A = args[0], 2 + 2 * len(args[5])
            raise ExerciseFailure(
                f"case '{case}': expected shape {list(expected.shape)} (f * f = {f * f} cells x "
                f"{A} boxes), got {list(got.shape)}" + (f"\nhint: {hint}" if hint else "")
            )
        expect_close(case, got, expected, hint=hint)
    passed("map_default_boxes", len(cases))
