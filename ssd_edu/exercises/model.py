"""Checker for the head-flattening exercise (notebook 06).

The student writes ``flatten_head(out, values_per_box) -> [B, H * W * k, n]`` for a head's output
``out [B, k * n, H, W]``: one row per default box, in docs/design.md order (row ``i``, column ``j``,
box ``a``). The checker compares it with :func:`ssd_edu.model.flatten_head` on a map small enough
to follow on paper, then on seeded random ones, and names the usual mistakes: reshaping without
moving the channels last, columns before rows, and reading the channels as value-major.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssd_edu.exercises._common import (
    ExerciseFailure,
    call_student,
    expect_close,
    passed,
    refuse_library,
)
from ssd_edu.model.ssd import flatten_head

HINT_NO_PERMUTE = (
    "a plain reshape of [B, k*n, H, W] walks the channels first, so a row mixes values of one "
    "channel at different cells. Move the channels last first: out.permute(0, 2, 3, 1) gives "
    "[B, H, W, k*n], whose last axis holds the k boxes of one cell, then reshape."
)
HINT_COLUMNS_FIRST = (
    "the rows come out with columns before rows (your order is j, i, box). docs/design.md's order "
    "is row i, then column j: permute to [B, H, W, k*n] (dims 0, 2, 3, 1), not [B, W, H, k*n]."
)
HINT_VALUE_MAJOR = (
    "channel a * n + v holds value v of box a (the k boxes are the outer index, their n values "
    "the inner one). Yours reads the channels as v * k + a. After permute(0, 2, 3, 1) a plain "
    "reshape(B, -1, n) is already right."
)


def _columns_first(out: torch.Tensor, n: int) -> torch.Tensor:
    return out.permute(0, 3, 2, 1).reshape(out.shape[0], -1, n)


def _value_major(out: torch.Tensor, n: int) -> torch.Tensor:
    b, c, h, w = out.shape
    return out.reshape(b, n, c // n, h, w).permute(0, 3, 4, 2, 1).reshape(b, -1, n)


def _cases() -> list[tuple[str, torch.Tensor, int]]:
    # numbered channels: value 1000 * channel + 10 * i + j, so a wrong row is easy to read
    c, f = 2 * 4, 2
    ch = torch.arange(c).reshape(1, c, 1, 1) * 1000
    ij = (torch.arange(f).reshape(1, 1, f, 1) * 10 + torch.arange(f).reshape(1, 1, 1, f)).float()
    cases = [("2x2 map, k=2 boxes, n=4 offsets, entries 1000*channel + 10*i + j", ch + ij, 4)]
    cases.append(("1x1 map, k=4 boxes, n=3 classes", torch.arange(12.0).reshape(1, 12, 1, 1), 3))
    g = torch.Generator().manual_seed(2016)
    for b, k, n, h, w in [(2, 6, 21, 3, 3), (3, 4, 4, 5, 5), (1, 6, 5, 4, 2)]:
        out = torch.randn(b, k * n, h, w, generator=g)
        cases.append((f"random [{b}, {k}*{n}, {h}, {w}], n={n}", out, n))
    return cases


def check_flatten_head(student_fn: Callable[..., torch.Tensor]) -> None:
    """Compare ``student_fn(out, values_per_box)`` with :func:`ssd_edu.model.flatten_head`.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "flatten_head", flatten_head)
    cases = _cases()
    for case, out, n in cases:
        expected = flatten_head(out, n)  # [B, H*W*k, n]
        got = call_student(student_fn, case, out.clone(), n)
        if not isinstance(got, torch.Tensor):
            raise ExerciseFailure(
                f"case '{case}': expected a torch.Tensor, got {type(got).__name__}"
            )
        hint = ""
        if got.shape == expected.shape and not torch.equal(got, expected):
            if torch.equal(got, out.reshape(out.shape[0], -1, n)):
                hint = HINT_NO_PERMUTE
            elif torch.equal(got, _columns_first(out, n)):
                hint = HINT_COLUMNS_FIRST
            elif torch.equal(got, _value_major(out, n)):
                hint = HINT_VALUE_MAJOR
        expect_close(case, got, expected, hint=hint, atol=0, rtol=0)
    passed("flatten_head", len(cases))
