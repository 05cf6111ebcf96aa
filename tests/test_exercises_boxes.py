"""The box_iou exercise checker: passes the solution, fails the stub and each usual mistake."""

from __future__ import annotations

import pytest
import torch

from ssd_edu.exercises import ExerciseFailure, check_box_iou


def solution(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, 1.0), 0.0)


def stub(a, b):
    raise NotImplementedError()


def no_clamp(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).prod(dim=-1)  # negative sides not clamped
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, 1.0), 0.0)


def union_double_counts(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :]  # overlap counted twice
    return torch.where(union > 0, inter / torch.where(union > 0, union, 1.0), 0.0)


def nan_for_zero_area(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)  # 0 / 0 for zero-area pairs


def transposed(a, b):
    return solution(b, a)


def returns_list(a, b):
    return solution(a, b).tolist()


def test_solution_passes(capsys):
    check_box_iou(solution)
    assert "box_iou: all 10 cases passed" in capsys.readouterr().out


def test_the_library_is_refused_and_its_rule_passes():
    from ssd_edu.boxes import box_iou

    with pytest.raises(ExerciseFailure, match="library's own box_iou"):
        check_box_iou(box_iou)
    with pytest.raises(ExerciseFailure, match="library's own box_iou"):
        check_box_iou(lambda a, b: box_iou(a, b))  # a thin wrapper

    def written_out(a, b):  # the rule, as a student writes it
        wh = (
            torch.minimum(a[:, None, 2:], b[None, :, 2:])
            - torch.maximum(a[:, None, :2], b[None, :, :2])
        ).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(1)  # noqa: E731
        union = area(a)[:, None] + area(b)[None, :] - inter
        return torch.where(union > 0, inter / union.clamp(min=1e-30), 0.0)

    check_box_iou(written_out)


@pytest.mark.parametrize(
    "fn, message",
    [
        (stub, "not implemented yet"),
        (no_clamp, r"disjoint boxes, apart in x and in y(.|\n)*hint: boxes that do not overlap"),
        (
            union_double_counts,
            r"worked on paper(.|\n)*expected 0.142857, got 0.125(.|\n)*"
            r"hint: the union counts the overlap once",
        ),
        (nan_for_zero_area, r"zero-area boxes(.|\n)*got nan(.|\n)*hint: two zero-area boxes"),
        (transposed, r"3 boxes against 2.*expected shape \[3, 2\], got \[2, 3\]\nhint: the result"),
        (returns_list, "expected a torch.Tensor, got list"),
    ],
    ids=["stub", "no_clamp", "union", "nan", "transposed", "list"],
)
def test_mistakes_fail_with_their_hint(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_box_iou(fn)


def test_crash_names_the_case():
    def crashes(a, b):
        return a @ b

    with pytest.raises(
        ExerciseFailure, match="case 'two overlapping .*': your function raised RuntimeError"
    ):
        check_box_iou(crashes)
