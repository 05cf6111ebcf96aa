"""The flatten_head exercise checker: passes the solution, fails the stub and each usual mistake."""

from __future__ import annotations

import pytest
import torch

from ssd_edu.exercises import ExerciseFailure, check_flatten_head


def solution(out: torch.Tensor, values_per_box: int) -> torch.Tensor:
    b, c, h, w = out.shape
    k = c // values_per_box
    rows = out.reshape(b, k, values_per_box, h, w)  # channel a * n + v -> [a, v]
    return rows.permute(0, 3, 4, 1, 2).reshape(b, h * w * k, values_per_box)


def stub(out, values_per_box):
    raise NotImplementedError()


def no_permute(out, values_per_box):
    return out.reshape(out.shape[0], -1, values_per_box)


def columns_first(out, values_per_box):
    return out.permute(0, 3, 2, 1).reshape(out.shape[0], -1, values_per_box)


def value_major(out, values_per_box):
    b, c, h, w = out.shape
    rows = out.reshape(b, values_per_box, c // values_per_box, h, w)  # read as [v, a]
    return rows.permute(0, 3, 4, 2, 1).reshape(b, -1, values_per_box)


def forgets_batch(out, values_per_box):
    return out[0].permute(1, 2, 0).reshape(-1, values_per_box)


def test_solution_passes(capsys):
    check_flatten_head(solution)
    assert "flatten_head: all 5 cases passed" in capsys.readouterr().out


def test_stub_fails_with_not_implemented():
    with pytest.raises(ExerciseFailure, match="not implemented yet"):
        check_flatten_head(stub)


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (no_permute, "Move the channels last first"),
        (columns_first, "columns before rows"),
        (value_major, r"v \* k \+ a"),
    ],
)
def test_each_usual_mistake_gets_its_hint(fn, hint):
    with pytest.raises(ExerciseFailure, match=hint) as err:
        check_flatten_head(fn)
    assert "case '" in str(err.value) and "expected" in str(err.value)


def test_wrong_shape_is_reported():
    with pytest.raises(ExerciseFailure, match=r"expected shape \[1, 8, 4\], got \[8, 4\]"):
        check_flatten_head(forgets_batch)
