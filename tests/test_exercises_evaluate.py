"""The average-precision exercise checker: passes the right answer, names each usual mistake."""

import pytest
import torch

from ssd_edu.exercises import ExerciseFailure, check_average_precision
from ssd_edu.exercises.evaluate import (
    HINT_EMPTY,
    HINT_ENVELOPE,
    HINT_SENTINELS,
    HINT_TEN_POINTS,
    HINT_WEIGHTS,
)


def envelope(precision):
    return precision.flip(0).cummax(0).values.flip(0)


def solution(recall, precision, use_07_metric=True):
    """The notebook's solution."""
    if len(recall) == 0:
        return 0.0
    if use_07_metric:
        total = 0.0
        for i in range(11):
            reached = precision[recall >= i / 10]
            total += float(reached.max()) if len(reached) else 0.0
        return total / 11
    mrec = torch.cat(
        (torch.zeros(1, dtype=recall.dtype), recall, torch.ones(1, dtype=recall.dtype))
    )
    mpre = torch.cat(
        (torch.zeros(1, dtype=precision.dtype), precision, torch.zeros(1, dtype=precision.dtype))
    )
    mpre = envelope(mpre)
    return float(((mrec[1:] - mrec[:-1]) * mpre[1:]).sum())


def stub(recall, precision, use_07_metric=True):
    raise NotImplementedError()


def no_envelope(recall, precision, use_07_metric=True):
    if use_07_metric:
        return solution(recall, precision, True)
    mrec = torch.cat(
        (torch.zeros(1, dtype=recall.dtype), recall, torch.ones(1, dtype=recall.dtype))
    )
    mpre = torch.cat(
        (torch.zeros(1, dtype=precision.dtype), precision, torch.zeros(1, dtype=precision.dtype))
    )
    return float(((mrec[1:] - mrec[:-1]) * mpre[1:]).sum())


def ten_points(recall, precision, use_07_metric=True):
    if not use_07_metric:
        return solution(recall, precision, False)
    if len(recall) == 0:
        return 0.0
    total = 0.0
    for i in range(10):  # 0, 0.1, ..., 0.9: recall 1.0 is never sampled
        reached = precision[recall >= i / 10]
        total += float(reached.max()) if len(reached) else 0.0
    return total / 10


def no_sentinels(recall, precision, use_07_metric=True):
    if use_07_metric:
        return solution(recall, precision, True)
    if len(recall) == 0:
        return 0.0
    env = envelope(precision)
    return float(((recall[1:] - recall[:-1]) * env[1:]).sum())


def unweighted_mean(recall, precision, use_07_metric=True):
    if use_07_metric:
        return solution(recall, precision, True)
    if len(recall) == 0:
        return 0.0
    return float(envelope(precision).mean())


def crashes_on_empty(recall, precision, use_07_metric=True):
    return solution(recall, precision, use_07_metric) + 0 * float(recall.max())


def returns_list(recall, precision, use_07_metric=True):
    return [solution(recall, precision, use_07_metric)]


def test_checker_passes_the_solution(capsys):
    check_average_precision(solution)
    assert "check_average_precision: all" in capsys.readouterr().out


def test_checker_passes_the_library(copy_of):
    from ssd_edu.evaluate import average_precision

    with pytest.raises(ExerciseFailure, match="library's own average_precision"):
        check_average_precision(average_precision)
    check_average_precision(copy_of(average_precision))


def test_stub_is_reported_as_not_implemented():
    with pytest.raises(ExerciseFailure, match="not implemented yet"):
        check_average_precision(stub)


@pytest.mark.parametrize(
    "mistake, hint, case",
    [
        (no_envelope, HINT_ENVELOPE, "precision rises again"),
        (ten_points, HINT_TEN_POINTS, "11-point"),
        (no_sentinels, HINT_SENTINELS, "area"),
        (unweighted_mean, HINT_WEIGHTS, "area"),
        (crashes_on_empty, HINT_EMPTY, "no detections"),
    ],
)
def test_each_mistake_gets_its_hint(mistake, hint, case):
    with pytest.raises(ExerciseFailure) as info:
        check_average_precision(mistake)
    message = str(info.value)
    assert case in message and "hint: " + hint in message
    if mistake is not crashes_on_empty:
        assert "expected AP" in message and ", got " in message


def test_wrong_type_is_named():
    with pytest.raises(ExerciseFailure, match="expected a float, got list"):
        check_average_precision(returns_list)


def _eleven_point(levels, envelope=True):
    def ap(recall, precision, use_07_metric=True):
        if len(recall) == 0:
            return 0.0
        if not use_07_metric:
            return solution(recall, precision, use_07_metric=False)
        env = precision.flip(0).cummax(0).values.flip(0) if envelope else precision
        total = 0.0
        for t in levels:
            reached = env[recall >= t]
            if len(reached):
                total += float(reached.max()) if envelope else float(reached[0])
        return total / 11

    return ap


def test_float_levels_of_np_arange_are_named():
    import numpy as np

    arange = r"np.arange\(0, 1.1, 0.1\) gives 0.30000000000000004"
    with pytest.raises(ExerciseFailure, match=arange):
        check_average_precision(_eleven_point(np.arange(0, 1.1, 0.1).tolist()))


def test_eleven_points_without_the_envelope_are_named():
    with pytest.raises(ExerciseFailure, match="not the precision of the first point that"):
        check_average_precision(_eleven_point([i / 10 for i in range(11)], envelope=False))
