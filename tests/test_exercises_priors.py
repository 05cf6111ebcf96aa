"""The map_default_boxes exercise checker: passes the solution, fails the stub and each mistake."""

from __future__ import annotations

import math

import pytest
import torch

from ssd_edu.exercises import ExerciseFailure, check_map_default_boxes


def boxes_loop(
    f,
    step,
    image_size,
    min_size,
    max_size,
    aspect_ratios,
    *,
    offset=0.5,
    swap=False,
    extra=True,
    reciprocal=True,
    extra_last=False,
):
    """A plain loop solution; the keyword arguments make it commit one usual mistake."""
    s_k = min_size / image_size
    s_k_prime = math.sqrt(s_k * max_size / image_size)
    rows = []
    for i in range(f):
        for j in range(f):
            cx = (j + offset) * step / image_size
            cy = (i + offset) * step / image_size
            if swap:
                cx, cy = cy, cx
            cell = [[cx, cy, s_k, s_k]]
            if extra and not extra_last:
                cell.append([cx, cy, s_k_prime, s_k_prime])
            for a in aspect_ratios:
                r = math.sqrt(a)
                cell.append([cx, cy, s_k * r, s_k / r])
                if reciprocal:
                    cell.append([cx, cy, s_k / r, s_k * r])
            if extra_last:
                cell.append([cx, cy, s_k_prime, s_k_prime])
            rows += cell
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def solution(f, step, image_size, min_size, max_size, aspect_ratios):
    return boxes_loop(f, step, image_size, min_size, max_size, aspect_ratios)


def stub(f, step, image_size, min_size, max_size, aspect_ratios):
    raise NotImplementedError()


def mistake(**kwargs):
    def fn(f, step, image_size, min_size, max_size, aspect_ratios):
        return boxes_loop(f, step, image_size, min_size, max_size, aspect_ratios, **kwargs)

    return fn


def a_then_all_reciprocals(f, step, image_size, min_size, max_size, aspect_ratios):
    # all the wide boxes first, then all the tall ones: right boxes, wrong order
    boxes = boxes_loop(f, step, image_size, min_size, max_size, aspect_ratios)
    per_cell = 2 + 2 * len(aspect_ratios)
    order = [0, 1] + list(range(2, per_cell, 2)) + list(range(3, per_cell, 2))
    return boxes.reshape(f * f, per_cell, 4)[:, order].reshape(-1, 4)


def test_solution_passes(capsys):
    check_map_default_boxes(solution)
    assert "map_default_boxes: all 7 cases passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "fn, message",
    [
        (stub, "not implemented yet"),
        (mistake(offset=0.0), r"1x1 map(.|\n)*hint: the centre of cell \(i, j\)"),
        (mistake(swap=True), r"2x2 map(.|\n)*hint: rows and columns are swapped"),
        (mistake(extra=False), r"expected shape \[4, 4\] .*got \[3, 4\]\nhint: each cell has one"),
        (mistake(reciprocal=False), r"got \[3, 4\]\nhint: each ratio a gives two boxes"),
        (
            mistake(extra_last=True),
            r"1x1 map(.|\n)*hint: you have the right boxes .* another order",
        ),
        (a_then_all_reciprocals, r"5x5 map(.|\n)*hint: you have the right boxes"),
    ],
    ids=["stub", "corner", "swapped", "no_extra", "no_reciprocal", "extra_last", "order"],
)
def test_mistakes_fail_with_their_hint(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_map_default_boxes(fn)


def test_wrong_values_without_a_known_mistake_say_expected_and_got():
    def shifted(*args):
        return solution(*args) + 0.01

    with pytest.raises(
        ExerciseFailure, match=r"1x1 map.*values differ .* expected 0.141421, got 0.151421\)$"
    ):
        check_map_default_boxes(shifted)
