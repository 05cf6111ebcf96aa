"""Checker for the learning-rate schedule exercise (notebook 09).

The student writes ``learning_rate(iteration, base_lr, warmup_iters, warmup_factor, lr_steps,
gamma)``: linear warm-up from ``warmup_factor * base_lr`` to ``base_lr`` over ``warmup_iters``
iterations, and a division by ``1 / gamma`` at each iteration listed in ``lr_steps``. The checker
compares it with :func:`ssd_edu.train.lr_factor` and, when the value matches a well-known wrong
variant (step one iteration late, warm-up from 0, one decay for all steps), says so.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch

from ssd_edu.config import TrainConfig, lr_factor
from ssd_edu.exercises._common import (
    ExerciseFailure,
    call_student,
    expect_close,
    passed,
    refuse_library,
)

HINT_LATE_STEP = (
    "your value matches a step taken one iteration late. The rate drops AT the listed iteration: "
    "count a step as passed when iteration >= step (not >)."
)
HINT_WARMUP_FROM_ZERO = (
    "your value matches a warm-up that starts at 0. It starts at warmup_factor * base_lr and "
    "rises linearly to base_lr: factor = warmup_factor + (1 - warmup_factor) * iteration / "
    "warmup_iters."
)
HINT_ONE_DECAY = (
    "your value matches multiplying by gamma once, however many steps have passed. Multiply by "
    "gamma once per step passed: gamma ** k, with k the number of steps <= iteration."
)
HINT_NO_DECAY_IN_WARMUP = (
    "your value matches a warm-up that ignores the steps. Both factors apply together: the "
    "warm-up factor times gamma ** k (a step may fall inside the warm-up)."
)


def _reference(it, base_lr, warmup_iters, warmup_factor, lr_steps, gamma) -> float:
    cfg = TrainConfig(
        lr=base_lr,
        warmup_iters=warmup_iters,
        warmup_factor=warmup_factor,
        lr_steps=tuple(lr_steps),
        lr_gamma=gamma,
    )
    return base_lr * lr_factor(cfg, it)


def _wrong_variants(it, base_lr, warmup_iters, warmup_factor, lr_steps, gamma):
    k = sum(it >= s for s in lr_steps)
    k_late = sum(it > s for s in lr_steps)
    t = it / warmup_iters if warmup_iters else 1.0
    warm = warmup_factor + (1 - warmup_factor) * t if it < warmup_iters else 1.0
    warm_zero = t if it < warmup_iters else 1.0
    return [
        # first match wins: at the second step "one decay" and "late step" give the same value,
        # and a late step is already caught at the first step, where the two differ
        (base_lr * warm * (gamma if k else 1.0), HINT_ONE_DECAY),
        (base_lr * warm * gamma**k_late, HINT_LATE_STEP),
        (base_lr * warm_zero * gamma**k, HINT_WARMUP_FROM_ZERO),
        (base_lr * (warm if it < warmup_iters else gamma**k), HINT_NO_DECAY_IN_WARMUP),
    ]


def _cases() -> list[tuple[str, tuple]]:
    paper = (1e-3, 1000, 0.1, (80_000, 100_000), 0.1)
    cases = [
        ("paper's schedule, iteration 0 (start of warm-up)", (0, *paper)),
        ("paper's schedule, iteration 500 (half-way through warm-up)", (500, *paper)),
        ("paper's schedule, iteration 1000 (warm-up just over)", (1000, *paper)),
        ("paper's schedule, iteration 79999 (last at full rate)", (79_999, *paper)),
        ("paper's schedule, iteration 80000 (first step)", (80_000, *paper)),
        ("paper's schedule, iteration 100000 (second step)", (100_000, *paper)),
        ("paper's schedule, iteration 119999", (119_999, *paper)),
        ("no warm-up (warmup_iters = 0), iteration 0", (0, 0.01, 0, 0.1, (5,), 0.5)),
        ("no steps at all, iteration 50", (50, 0.01, 10, 0.1, (), 0.1)),
        ("a step inside the warm-up, iteration 7", (7, 0.1, 10, 0.2, (5, 8), 0.5)),
    ]
    rng = random.Random(0)
    for n in range(6):
        warmup = rng.choice([0, 5, 20])
        steps = tuple(sorted(rng.sample(range(1, 60), rng.randint(0, 3))))
        it = rng.randrange(0, 70)
        args = (
            it,
            rng.choice([1e-3, 0.01, 0.05]),
            warmup,
            rng.choice([0.0, 0.1, 1 / 3]),
            steps,
            rng.choice([0.1, 0.5]),
        )
        cases.append((f"random schedule {n} (seed 0)", args))
    return cases


def check_learning_rate(student_fn: Callable[..., float]) -> None:
    """Compare ``student_fn(iteration, base_lr, warmup_iters, warmup_factor, lr_steps, gamma)``.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "learning_rate", lr_factor)
    cases = _cases()
    for case, args in cases:
        got = call_student(student_fn, case, *args)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = float(got)
        if not isinstance(got, (int, float)):
            raise ExerciseFailure(
                f"case '{case}': expected a number (the learning rate), got {type(got).__name__}"
            )
        expected = _reference(*args)
        hint = ""
        if not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-12):
            for value, mistake in _wrong_variants(*args):
                if math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-12) and not math.isclose(
                    value, expected, rel_tol=1e-6, abs_tol=1e-12
                ):
                    hint = mistake
                    break
        expect_close(
            f"{case}; arguments {args}",
            torch.tensor(float(got), dtype=torch.float64),
            torch.tensor(expected, dtype=torch.float64),
            hint,
            atol=1e-12,
            rtol=1e-6,
        )
    passed("check_learning_rate", len(cases))
