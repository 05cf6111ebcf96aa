"""The learning-rate schedule checker accepts a correct solution and names each common mistake."""

from __future__ import annotations

import pytest

from ssd_edu.exercises import ExerciseFailure, check_learning_rate


def correct(iteration, base_lr, warmup_iters, warmup_factor, lr_steps, gamma):
    k = sum(1 for s in lr_steps if iteration >= s)
    lr = base_lr * gamma**k
    if iteration < warmup_iters:
        lr *= warmup_factor + (1 - warmup_factor) * iteration / warmup_iters
    return lr


def stub(iteration, base_lr, warmup_iters, warmup_factor, lr_steps, gamma):
    raise NotImplementedError()


def late_step(iteration, base_lr, warmup_iters, warmup_factor, lr_steps, gamma):
    k = sum(1 for s in lr_steps if iteration > s)  # one iteration late
    lr = base_lr * gamma**k
    if iteration < warmup_iters:
        lr *= warmup_factor + (1 - warmup_factor) * iteration / warmup_iters
    return lr


def warmup_from_zero(iteration, base_lr, warmup_iters, warmup_factor, lr_steps, gamma):
    k = sum(1 for s in lr_steps if iteration >= s)
    lr = base_lr * gamma**k
    if iteration < warmup_iters:
        lr *= iteration / warmup_iters  # forgets warmup_factor
    return lr


def one_decay(iteration, base_lr, warmup_iters, warmup_factor, lr_steps, gamma):
    passed = any(iteration >= s for s in lr_steps)
    lr = base_lr * (gamma if passed else 1.0)  # gamma once, however many steps passed
    if iteration < warmup_iters:
        lr *= warmup_factor + (1 - warmup_factor) * iteration / warmup_iters
    return lr


def steps_ignored_in_warmup(iteration, base_lr, warmup_iters, warmup_factor, lr_steps, gamma):
    if iteration < warmup_iters:
        return base_lr * (warmup_factor + (1 - warmup_factor) * iteration / warmup_iters)
    return base_lr * gamma ** sum(1 for s in lr_steps if iteration >= s)


def returns_a_list(iteration, base_lr, warmup_iters, warmup_factor, lr_steps, gamma):
    return [correct(iteration, base_lr, warmup_iters, warmup_factor, lr_steps, gamma)]


def test_correct_solution_passes(capsys):
    check_learning_rate(correct)
    assert "all 16 cases passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mistake, message",
    [
        (stub, "not implemented yet"),
        (late_step, "iteration >= step"),
        (warmup_from_zero, "starts at warmup_factor"),
        (one_decay, "gamma \\*\\* k"),
        (steps_ignored_in_warmup, "step may fall inside the warm-up"),
        (returns_a_list, "expected a number"),
    ],
)
def test_mistakes_fail_with_a_hint(mistake, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_learning_rate(mistake)


def test_failure_names_the_case():
    with pytest.raises(ExerciseFailure, match="case 'paper's schedule, iteration 80000"):
        check_learning_rate(late_step)
